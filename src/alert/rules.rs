//! The built-in rules. Each reads windows through the aggregate query layer (never SQL),
//! compares them with a baseline, and returns findings with evidence and drivers.
//! `now` is an argument so a rule can be evaluated at any past time (tests, backtests).

use super::{AlertSettings, Finding, RuleKind, RuleSettings, Severity};
use crate::budget::service::Budgets;
use crate::budget::service::MEMBER_PAGE;
use crate::money::Usd;
use crate::notify::Driver;
use crate::price::PriceBook;
use crate::query::{Dimension, Query, Row, Sums};
use crate::report::margin::RevenueBook;
use crate::report::{by_cost, only_groups, rfc3339, Stats};
use crate::revenue::Months;
use crate::store::{Result, Store, WorkspaceId};
use serde_json::json;

const MINUTE_MS: i64 = 60_000;
pub(super) const DAY_MS: i64 = 86_400_000;
/// Baselines are the 7 days before the window.
const BASELINE_MS: i64 = 7 * DAY_MS;

pub struct Context<'a> {
    pub store: &'a dyn Store,
    pub ws: WorkspaceId,
    pub settings: &'a AlertSettings,
    pub budgets: Option<&'a Budgets>,
    pub book: &'a PriceBook,
    pub now: i64,
    /// Kept across evaluations by the engine (None: made for this evaluation alone).
    pub seen: Option<&'a super::abuse::SeenCache>,
}

/// Every enabled, unmuted rule's findings at `ctx.now`.
pub async fn evaluate(ctx: &Context<'_>) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    for rule in &ctx.settings.rules {
        if !rule.enabled || rule.muted(ctx.now) {
            continue;
        }
        let found = match rule.kind {
            RuleKind::CostPerRequestDrift | RuleKind::CacheHitDrop => {
                version_change(ctx, rule).await?
            }
            RuleKind::TokensPerRequestRise => tokens_rise(ctx, rule).await?,
            RuleKind::HourlySpendSpike => spend_spike(ctx, rule).await?,
            RuleKind::EndpointConcentration => {
                concentration(ctx, rule, Dimension::EndpointTag).await?
            }
            RuleKind::TenantConcentration => concentration(ctx, rule, Dimension::TenantId).await?,
            RuleKind::RetryStorm => retry_storm(ctx, rule).await?,
            RuleKind::UnpricedRatio => unpriced(ctx, rule).await?,
            RuleKind::LongContextCliff => long_context(ctx, rule).await?,
            RuleKind::Budget => budgets(ctx).await?,
            RuleKind::TenantCostOverRevenue => cost_over_revenue(ctx, rule).await?,
            RuleKind::BillMismatch => bill_mismatch(ctx, rule).await?,
            RuleKind::NewUserBurst => super::abuse::new_user_burst(ctx, rule).await?,
            RuleKind::SpendJump => super::abuse::spend_jump(ctx, rule).await?,
        };
        out.extend(found);
    }
    Ok(out)
}

/// The rule's window ending now, in the watched environment and data mode.
pub(super) fn window(ctx: &Context, rule: &RuleSettings) -> Query {
    let from = ctx.now - rule.window_minutes as i64 * MINUTE_MS;
    query(ctx, from, ctx.now)
}

fn query(ctx: &Context, from_ms: i64, to_ms: i64) -> Query {
    watched(ctx.settings, from_ms, to_ms)
}

/// The traffic the rules (and digests) watch between two times: the settings'
/// environment and data mode, measured by cost.
pub fn watched(settings: &AlertSettings, from_ms: i64, to_ms: i64) -> Query {
    let filters = crate::query::Filters {
        environment: vec![settings.environment],
        data_mode: vec![settings.data_mode],
        ..Default::default()
    };
    Query {
        from_ms,
        to_ms,
        filters,
        group_by: Vec::new(),
        bucket: None,
        measures: vec![crate::query::Measure::CostUsd],
        order_by: None,
        ascending: false,
        limit: crate::query::MAX_LIMIT,
        count_by_first: false,
    }
}

/// The rule's window and the 7 days before it, each grouped by `dim`.
async fn window_and_baseline(
    ctx: &Context<'_>,
    rule: &RuleSettings,
    dim: Dimension,
) -> Result<(Query, Query, Vec<Row>, Vec<Row>)> {
    let q = window(ctx, rule);
    let b = baseline(&q);
    let now_rows = grouped(ctx, &q, dim.clone()).await?;
    let before_rows = same_groups(ctx, &b, dim, &now_rows).await?;
    Ok((q, b, now_rows, before_rows))
}

/// The 7 days before `q`'s window.
pub(super) fn baseline(q: &Query) -> Query {
    Query {
        from_ms: q.from_ms - BASELINE_MS,
        to_ms: q.from_ms,
        ..q.clone()
    }
}

pub(super) fn scoped(q: &Query, dim: Dimension, value: &str) -> Query {
    let mut q = q.clone();
    q.filters.text.insert(dim, vec![value.to_string()]);
    q
}

/// The largest groups of `dim` by cost (at most the row limit).
pub(super) async fn grouped(ctx: &Context<'_>, q: &Query, dim: Dimension) -> Result<Vec<Row>> {
    let q = by_cost(q, vec![dim], crate::query::MAX_LIMIT);
    Ok(ctx.store.aggregate(ctx.ws, q).await?.rows)
}

/// The groups of `rows` in another window, each of them however many groups there are
/// (a group the other window's limit would have cut is not mistaken for absent).
pub(super) async fn same_groups(
    ctx: &Context<'_>,
    q: &Query,
    dim: Dimension,
    rows: &[Row],
) -> Result<Vec<Row>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let q = only_groups(&by_cost(q, vec![dim], 1), rows);
    Ok(ctx.store.aggregate(ctx.ws, q).await?.rows)
}

/// The window's total over every group.
pub(super) async fn total(ctx: &Context<'_>, q: &Query) -> Result<Sums> {
    Ok(ctx
        .store
        .aggregate(ctx.ws, by_cost(q, vec![], 1))
        .await?
        .total())
}

pub(super) fn sums_of<'r>(rows: &'r [Row], value: &str) -> Option<&'r Sums> {
    rows.iter().find(|r| r.group[0] == value).map(|r| &r.sums)
}

pub(super) fn usd(nanos: i64) -> String {
    format!("${:.2}", nanos as f64 / 1e9)
}

/// `part` as a percent of `whole`: a share for display and for a rule's threshold.
/// Both are exact integers (nano-USD, or nano-USD times the same window length).
pub(super) fn share_pct(part_nanos: i128, whole_nanos: i128) -> f64 {
    part_nanos as f64 / whole_nanos as f64 * 100.0
}

/// The change of an amount of money as a percent of its old value, None from nothing:
/// a ratio for display and for a rule's threshold (the difference is exact).
fn cost_change_pct(now_nanos: i64, before_nanos: i64) -> Option<f64> {
    (before_nanos > 0).then(|| {
        share_pct(
            now_nanos as i128 - before_nanos as i128,
            before_nanos.into(),
        )
    })
}

/// `nanos x num / den` rounded down, bounded to the i64 range: a baseline's spend
/// scaled to another window's length, for display.
fn scaled(nanos: i64, num: i128, den: i128) -> Usd {
    let v = nanos as i128 * num / den.max(1);
    Usd(v.clamp(i64::MIN.into(), i64::MAX.into()) as i64)
}

pub(super) fn evidence_window(now: &Query, before: &Query) -> serde_json::Value {
    json!({
        "window": {"from": rfc3339(now.from_ms), "to": rfc3339(now.to_ms)},
        "baseline": {"from": rfc3339(before.from_ms), "to": rfc3339(before.to_ms)},
    })
}

pub(super) fn link(page: &str, q: &Query, scope: &[(&str, &str)]) -> String {
    let mut link = format!(
        "{page}?from={}&to={}&environment={}&dataMode={}",
        rfc3339(q.from_ms),
        rfc3339(q.to_ms),
        q.filters.environment.first().map_or("prod", |e| e.as_str()),
        q.filters.data_mode.first().map_or("real", |d| d.as_str()),
    );
    for (k, v) in scope {
        link.push_str(&format!("&{k}={v}"));
    }
    link
}

/// The top 3 groups (by endpoint, tenant, promptVersion or model) behind the rise of
/// spend from `before` (scaled to the window's length) to `now`, with their share.
pub async fn drivers(ctx: &Context<'_>, now: &Query, before: &Query) -> Result<Vec<Driver>> {
    // Expected spend is the baseline's cost x now_len / before_len. Every amount below is
    // multiplied by before_len instead of divided, so it stays an exact integer (i128: a
    // cost in nanos times a length in ms), and contributions compare exactly.
    let now_len = (now.to_ms - now.from_ms) as i128;
    let before_len = (before.to_ms - before.from_ms).max(1) as i128;
    let excess = |now_nanos: i64, before_nanos: i64| {
        now_nanos as i128 * before_len - before_nanos as i128 * now_len
    };
    let total_now = total(ctx, now).await?.cost.0;
    let change = excess(total_now, total(ctx, before).await?.cost.0);
    let mut found: Vec<(i128, Driver)> = Vec::new();
    let dims = [
        Dimension::EndpointTag,
        Dimension::TenantId,
        Dimension::PromptVersion,
        Dimension::Model,
    ];
    for dim in dims {
        let rows_now = grouped(ctx, now, dim.clone()).await?;
        let rows_before = same_groups(ctx, before, dim.clone(), &rows_now).await?;
        for row in &rows_now {
            let value = &row.group[0];
            let before_cost = sums_of(&rows_before, value).map_or(0, |s| s.cost.0);
            let contribution = excess(row.sums.cost.0, before_cost);
            if contribution <= 0 {
                continue;
            }
            let share = if change > 0 {
                share_pct(contribution, change)
            } else {
                share_pct(row.sums.cost.0.into(), total_now.max(1).into())
            };
            found.push((
                contribution,
                Driver {
                    dimension: dim.name(),
                    value: value.clone(),
                    share_pct: (share * 10.0).round() / 10.0,
                    detail: format!(
                        "{} now vs {} expected from the baseline",
                        usd(row.sums.cost.0),
                        usd(scaled(before_cost, now_len, before_len).0)
                    ),
                },
            ));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found.into_iter().take(3).map(|(_, d)| d).collect())
}

fn pct_change(now: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| (now - before) / before * 100.0)
}

/// Rules 1 and 9: the current promptVersion of each endpoint against the previous one.
async fn version_change(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let q = window(ctx, rule);
    let mut out = Vec::new();
    let notes = crate::deploy::list(ctx.store, ctx.ws, None).await?;
    for v in crate::report::prompt_versions(ctx.store, ctx.ws, &q, None).await? {
        let Some(base) = &v.baseline else { continue };
        let (c, b) = (&v.current.stats, &base.stats);
        if c.requests < rule.min_requests || b.requests < rule.min_requests {
            continue;
        }
        let (measure, now_value, before_value, fired) = match rule.kind {
            RuleKind::CostPerRequestDrift => {
                let (Some(cn), Some(bn)) = (c.cost_per_request, b.cost_per_request) else {
                    continue;
                };
                let change = cost_change_pct(cn.0, bn.0).unwrap_or(0.0);
                (
                    "costPerRequest",
                    json!(cn),
                    json!(bn),
                    change > rule.threshold,
                )
            }
            _ => {
                let (Some(cn), Some(bn)) = (c.cache_hit_rate, b.cache_hit_rate) else {
                    continue;
                };
                (
                    "cacheHitRate",
                    json!(cn),
                    json!(bn),
                    (bn - cn) * 100.0 > rule.threshold,
                )
            }
        };
        if !fired {
            continue;
        }
        let endpoint = &v.endpoint_tag;
        let (cur, old) = (&v.current.prompt_version, &base.prompt_version);
        let since = v
            .current
            .first_seen
            .parse::<jiff::Timestamp>()
            .map_or(q.from_ms, |t| t.as_millisecond());
        let now_q = scoped(
            &Query {
                from_ms: since.max(q.from_ms),
                ..q.clone()
            },
            Dimension::EndpointTag,
            endpoint,
        );
        let before_q = scoped(
            &Query {
                to_ms: since.max(q.from_ms + 1),
                ..q.clone()
            },
            Dimension::EndpointTag,
            endpoint,
        );
        let (title, text) = match rule.kind {
            RuleKind::CostPerRequestDrift => (
                format!("{endpoint}: cost/request up after promptVersion {cur}"),
                format!(
                    "Cost per request of {endpoint} is {} with {cur} ({} calls) vs {} with {old} ({} calls): {:+.0}%. {cur} first seen {}.",
                    usd(c.cost_per_request.map_or(0, |u| u.0)),
                    c.requests,
                    usd(b.cost_per_request.map_or(0, |u| u.0)),
                    b.requests,
                    cost_change_pct(c.cost_per_request.map_or(0, |u| u.0), b.cost_per_request.map_or(0, |u| u.0)).unwrap_or(0.0),
                    v.current.first_seen
                ),
            ),
            _ => (
                format!("{endpoint}: cache hit rate down after promptVersion {cur}"),
                format!(
                    "Cache hit rate of {endpoint} is {:.0}% with {cur} vs {:.0}% with {old}; uncached input is billed at the full rate.",
                    c.cache_hit_rate.unwrap_or(0.0) * 100.0,
                    b.cache_hit_rate.unwrap_or(0.0) * 100.0
                ),
            ),
        };
        let mut evidence = evidence_window(&now_q, &before_q);
        evidence["endpointTag"] = json!(endpoint);
        evidence["current"] = json!({"promptVersion": cur, "requests": c.requests, measure: now_value, "firstSeen": v.current.first_seen});
        // The deploy note of this version (a day before it was first seen onwards), quoted.
        let mut text = text;
        if let Some(n) =
            crate::deploy::for_change(&notes, endpoint, Some(cur), since - 86_400_000, ctx.now + 1)
        {
            text = format!("{text} Deploy note: {}.", n.mention());
            evidence["deploy"] = json!({"note": n, "text": n.mention()});
        }
        evidence["baselineVersion"] =
            json!({"promptVersion": old, "requests": b.requests, measure: before_value});
        out.push(Finding {
            rule: rule.kind,
            key: format!("{}:{endpoint}:{cur}", rule.kind.as_str()),
            severity: Severity::Warning,
            title,
            text,
            evidence,
            drivers: drivers(ctx, &now_q, &before_q).await?,
            link: link("/versions", &q, &[("endpointTag", endpoint)]),
        });
    }
    Ok(out)
}

/// Rule 2: input or output tokens per request of an endpoint vs its 7-day baseline.
async fn tokens_rise(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let (q, b, now_rows, before_rows) =
        window_and_baseline(ctx, rule, Dimension::EndpointTag).await?;
    let mut out = Vec::new();
    for row in &now_rows {
        let endpoint = &row.group[0];
        let Some(before) = sums_of(&before_rows, endpoint) else {
            continue;
        };
        if row.sums.requests < rule.min_requests || before.requests < rule.min_requests {
            continue;
        }
        let (n, o) = (Stats::of(&row.sums), Stats::of(before));
        let kinds = [
            (
                "input",
                n.input_tokens_per_request,
                o.input_tokens_per_request,
            ),
            (
                "output",
                n.output_tokens_per_request,
                o.output_tokens_per_request,
            ),
        ];
        for (kind, now_v, before_v) in kinds {
            let (Some(now_v), Some(before_v)) = (now_v, before_v) else {
                continue;
            };
            let Some(change) = pct_change(now_v, before_v).filter(|c| *c > rule.threshold) else {
                continue;
            };
            if !costs_more(&row.sums, before, rule.min_usd) {
                continue;
            }
            let (nq, bq) = (
                scoped(&q, Dimension::EndpointTag, endpoint),
                scoped(&b, Dimension::EndpointTag, endpoint),
            );
            let mut evidence = evidence_window(&q, &b);
            evidence["endpointTag"] = json!(endpoint);
            evidence["tokensPerRequest"] =
                json!({"kind": kind, "now": now_v, "baseline": before_v, "changePct": change});
            out.push(Finding {
                rule: rule.kind,
                key: format!("{}:{endpoint}:{kind}", rule.kind.as_str()),
                severity: Severity::Warning,
                title: format!("{endpoint}: {kind} tokens/request {change:+.0}%"),
                text: format!(
                    "{endpoint} uses {now_v:.0} {kind} tokens per request over the last {} h vs {before_v:.0} in the 7 days before ({change:+.0}%, {} calls).",
                    rule.window_minutes / 60,
                    row.sums.requests
                ),
                evidence,
                drivers: drivers(ctx, &nq, &bq).await?,
                link: link("/endpoints", &q, &[("endpointTag", endpoint)]),
            });
        }
    }
    Ok(out)
}

/// Material: the window cost at least `min_usd` more than its calls would have at the
/// baseline's cost per request (cross-multiplied by the baseline's calls: exact).
fn costs_more(now: &Sums, before: &Sums, min_usd: Usd) -> bool {
    let extra =
        now.cost.0 as i128 * before.requests as i128 - before.cost.0 as i128 * now.requests as i128;
    extra >= min_usd.0 as i128 * before.requests as i128
}

/// Rule 3: spend of the last hour vs the usual spend of the same hour, per endpoint and
/// overall. The usual is the median of the same window on earlier comparable days
/// (`baseline::comparable`: weekdays with weekdays, weekends with weekends), so the daily
/// peak and the weekend dip are expected; a spike is at least `threshold` times it,
/// at least `minUsd` above it and beyond `sigmas` robust deviations of those days.
async fn spend_spike(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let q = window(ctx, rule);
    // The 7 days before stay the evidence's baseline window and the drivers' reference.
    let b = baseline(&q);
    let now_rows = grouped(ctx, &q, Dimension::EndpointTag).await?;
    let history = same_window_earlier(ctx, &q, Dimension::EndpointTag, &now_rows).await?;
    let days: Vec<i64> = history.iter().map(|h| h.0).collect();
    let days = super::baseline::comparable(ctx.now, &days);
    let history: Vec<&(i64, Sums, Vec<Row>)> =
        history.iter().filter(|h| days.contains(&h.0)).collect();
    let mut groups: Vec<(Option<String>, Sums, Vec<i64>)> = Vec::new();
    let totals = history.iter().map(|h| h.1.cost.0).collect();
    groups.push((None, total(ctx, &q).await?, totals));
    for row in now_rows {
        let samples = history
            .iter()
            .map(|h| sums_of(&h.2, &row.group[0]).map_or(0, |s| s.cost.0))
            .collect();
        groups.push((Some(row.group[0].clone()), row.sums, samples));
    }
    let mut out = Vec::new();
    for (endpoint, now, samples) in groups {
        let Some(usual) = super::baseline::Baseline::of(&samples) else {
            continue;
        };
        let Some(times) = rule.spike_times(now.requests, now.cost.0.into(), usual.expected.into())
        else {
            continue;
        };
        if !usual.unusually_high(now.cost.0, rule.sigmas, rule.min_usd.0) {
            continue;
        }
        let name = endpoint.clone().unwrap_or_else(|| "all endpoints".into());
        let (nq, bq) = match &endpoint {
            Some(e) => (
                scoped(&q, Dimension::EndpointTag, e),
                scoped(&b, Dimension::EndpointTag, e),
            ),
            None => (q.clone(), b.clone()),
        };
        let mut evidence = evidence_window(&q, &b);
        evidence["spendUsd"] = json!(Usd(now.cost.0));
        evidence["expectedUsd"] = json!(Usd(usual.expected));
        evidence["times"] = json!(times);
        evidence["requests"] = json!(now.requests);
        evidence["usual"] = json!({
            "days": usual.samples, "medianUsd": Usd(usual.expected),
            "medianAbsoluteDeviationUsd": Usd(usual.mad), "sigmas": rule.sigmas,
            "minUsd": rule.min_usd,
        });
        let scope: Vec<(&str, &str)> = endpoint
            .iter()
            .map(|e| ("endpointTag", e.as_str()))
            .collect();
        out.push(Finding {
            rule: rule.kind,
            key: format!("{}:{}", rule.kind.as_str(), endpoint.as_deref().unwrap_or("*")),
            severity: if times >= 2.0 * rule.threshold { Severity::Critical } else { Severity::Warning },
            title: format!("Spend spike on {name}: {times:.1}x the usual hour"),
            text: format!(
                "{name} spent {} in the last {} min vs {} usual at this time (median of the same window on {} earlier comparable days, deviation {}; {times:.1}x, {} calls).",
                usd(now.cost.0),
                rule.window_minutes,
                usd(usual.expected),
                usual.samples,
                usd(usual.mad),
                now.requests
            ),
            evidence,
            drivers: drivers(ctx, &nq, &bq).await?,
            link: link("/", &q, &scope),
        });
    }
    Ok(out)
}

/// `q`'s window on each of the `baseline::DAYS` days before: (days back, the total,
/// the groups of `rows` by `dim`). Days without a single call (before the data began)
/// give no sample.
pub(super) async fn same_window_earlier(
    ctx: &Context<'_>,
    q: &Query,
    dim: Dimension,
    rows: &[Row],
) -> Result<Vec<(i64, Sums, Vec<Row>)>> {
    let mut out = Vec::new();
    for back in 1..=super::baseline::DAYS {
        let shifted = Query {
            from_ms: q.from_ms - back * DAY_MS,
            to_ms: q.to_ms - back * DAY_MS,
            ..q.clone()
        };
        let all = total(ctx, &shifted).await?;
        if all.requests == 0 {
            continue;
        }
        let groups = same_groups(ctx, &shifted, dim.clone(), rows).await?;
        out.push((back, all, groups));
    }
    Ok(out)
}

/// Rules 4 and 5: a group's share of spend jumps vs the 7 days before.
async fn concentration(
    ctx: &Context<'_>,
    rule: &RuleSettings,
    dim: Dimension,
) -> Result<Vec<Finding>> {
    let (q, b, now_rows, before_rows) = window_and_baseline(ctx, rule, dim.clone()).await?;
    // Shares of the totals of every group, never of the listed (possibly cut) rows.
    let (now_total, before_total) = (total(ctx, &q).await?, total(ctx, &b).await?);
    let (total_now, total_before) = (now_total.cost.0, before_total.cost.0);
    let requests = now_total.requests;
    if requests < rule.min_requests || total_now <= 0 || total_before <= 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for row in &now_rows {
        let value = &row.group[0];
        let share_now = share_pct(row.sums.cost.0.into(), total_now.into());
        let share_before = sums_of(&before_rows, value)
            .map_or(0.0, |s| share_pct(s.cost.0.into(), total_before.into()));
        let gain = share_now - share_before;
        if gain <= rule.threshold || value.starts_with('(') {
            continue;
        }
        // Material: the spend it gained over its old share of today's total, at least
        // minUsd (both sides times the baseline's total, so nothing rounds).
        let before_cost = sums_of(&before_rows, value).map_or(0, |s| s.cost.0);
        let gained = row.sums.cost.0 as i128 * total_before as i128
            - before_cost as i128 * total_now as i128;
        if gained < rule.min_usd.0 as i128 * total_before as i128 {
            continue;
        }
        let (nq, bq) = (
            scoped(&q, dim.clone(), value),
            scoped(&b, dim.clone(), value),
        );
        let mut evidence = evidence_window(&q, &b);
        evidence[dim.name()] = json!(value);
        evidence["sharePct"] = json!({"now": share_now, "baseline": share_before});
        evidence["spendUsd"] = json!(Usd(row.sums.cost.0));
        let page = if dim == Dimension::TenantId {
            "/tenant"
        } else {
            "/endpoints"
        };
        out.push(Finding {
            rule: rule.kind,
            key: format!("{}:{value}", rule.kind.as_str()),
            severity: Severity::Warning,
            title: format!("{value} now takes {share_now:.0}% of spend (was {share_before:.0}%)"),
            text: format!(
                "{} {value} accounts for {share_now:.0}% of spend in the last {} h ({}) vs {share_before:.0}% in the 7 days before.",
                dim.name(),
                rule.window_minutes / 60,
                usd(row.sums.cost.0)
            ),
            evidence,
            drivers: drivers(ctx, &nq, &bq).await?,
            link: link(page, &q, &[(&dim.name(), value)]),
        });
    }
    Ok(out)
}

/// Rule 6: attempts per logical call, or the error share, well above the 7-day norm.
async fn retry_storm(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let (q, b, now_rows, before_rows) =
        window_and_baseline(ctx, rule, Dimension::EndpointTag).await?;
    let mut out = Vec::new();
    for row in &now_rows {
        let endpoint = &row.group[0];
        if row.sums.requests < rule.min_requests {
            continue;
        }
        let before = sums_of(&before_rows, endpoint).copied().unwrap_or_default();
        let (n, o) = (Stats::of(&row.sums), Stats::of(&before));
        let calls = row.sums.requests;
        let storm = |now: Option<f64>, base: Option<f64>, count: u64| {
            let (now, base) = (now.unwrap_or(0.0), base.unwrap_or(0.0));
            now >= 0.10
                && now >= rule.threshold * base
                && beyond_chance(count, calls, base, rule.sigmas)
        };
        let retried = row.sums.attempts.saturating_sub(calls);
        let retries = storm(n.retry_ratio, o.retry_ratio, retried);
        let errors = storm(n.error_rate, o.error_rate, row.sums.errors);
        if !retries && !errors {
            continue;
        }
        let mut evidence = evidence_window(&q, &b);
        evidence["endpointTag"] = json!(endpoint);
        evidence["retryRatio"] = json!({"now": n.retry_ratio, "baseline": o.retry_ratio});
        evidence["errorRate"] = json!({"now": n.error_rate, "baseline": o.error_rate});
        evidence["attempts"] = json!(row.sums.attempts);
        evidence["requests"] = json!(row.sums.requests);
        let (nq, bq) = (
            scoped(&q, Dimension::EndpointTag, endpoint),
            scoped(&b, Dimension::EndpointTag, endpoint),
        );
        out.push(Finding {
            rule: rule.kind,
            key: format!("{}:{endpoint}", rule.kind.as_str()),
            severity: Severity::Critical,
            title: format!("Retry storm on {endpoint}"),
            text: format!(
                "{endpoint}: {:.2} attempts per call and {:.0}% errors in the last {} min (7-day norm {:.2} and {:.0}%), {} calls.",
                1.0 + n.retry_ratio.unwrap_or(0.0),
                n.error_rate.unwrap_or(0.0) * 100.0,
                rule.window_minutes,
                1.0 + o.retry_ratio.unwrap_or(0.0),
                o.error_rate.unwrap_or(0.0) * 100.0,
                row.sums.requests
            ),
            evidence,
            drivers: drivers(ctx, &nq, &bq).await?,
            link: link("/requests", &q, &[("endpointTag", endpoint), ("status", "error")]),
        });
    }
    Ok(out)
}

/// `count` events among `calls` are more than `sigmas` standard deviations above what
/// the baseline's rate predicts (Poisson spread, sqrt of the expected count): a small
/// endpoint's 6 errors in 50 calls is not a storm when its norm is 4. A baseline of
/// none predicts none, so any count is beyond it.
fn beyond_chance(count: u64, calls: u64, base_rate: f64, sigmas: f64) -> bool {
    let expected = calls as f64 * base_rate;
    expected <= 0.0 || (count as f64 - expected) > sigmas * expected.sqrt()
}

/// Rule 7: calls with no price (unknown model): the bill has them, burnrate does not.
async fn unpriced(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let q = window(ctx, rule);
    let rows = grouped(ctx, &q, Dimension::Model).await?;
    // The window's totals over every model, not the sum of the listed ones.
    let all = total(ctx, &q).await?;
    let (requests, unpriced) = (all.requests, all.unpriced());
    if requests < rule.min_requests || unpriced == 0 {
        return Ok(Vec::new());
    }
    let ratio = unpriced as f64 / requests as f64 * 100.0;
    if ratio <= rule.threshold {
        return Ok(Vec::new());
    }
    let mut models: Vec<(&String, u64, bool)> = rows
        .iter()
        .map(|r| (&r.group[0], r.sums.unpriced(), r.sums.priced > 0))
        .filter(|(_, n, _)| *n > 0)
        .collect();
    models.sort_by_key(|m| std::cmp::Reverse(m.1));
    let drivers = models
        .iter()
        .take(3)
        .map(|(m, n, has_price)| Driver {
            dimension: "model".into(),
            value: (*m).clone(),
            share_pct: (*n as f64 / unpriced as f64 * 1000.0).round() / 10.0,
            detail: unpriced_advice(*n, *has_price),
        })
        .collect();
    let mut evidence = evidence_window(&q, &baseline(&q));
    evidence["unpricedRequests"] = json!(unpriced);
    evidence["requests"] = json!(requests);
    evidence["unpricedPct"] = json!(ratio);
    Ok(vec![Finding {
        rule: rule.kind,
        key: rule.kind.as_str().to_string(),
        severity: Severity::Warning,
        title: format!("{ratio:.1}% of calls have no price"),
        text: format!(
            "{unpriced} of {requests} calls in the last {} h have no price (an unknown model, or no usage reported), so their cost is missing from every total (never counted as $0). Run `burnrate prices check`.",
            rule.window_minutes / 60
        ),
        evidence,
        drivers,
        link: link("/models", &q, &[]),
    }])
}

/// What to do about a model's unpriced calls. Other calls of the same model were priced,
/// so a price exists: these calls lack usage (a success that reported no tokens) or use a
/// tier without a rate, and a new price would not help.
fn unpriced_advice(calls: u64, model_has_price: bool) -> String {
    if model_has_price {
        format!("{calls} unpriced calls of a priced model: they report no usage (send the provider's usage) or use a tier without a rate")
    } else {
        format!("{calls} unpriced calls; add a price with `burnrate prices import`")
    }
}

/// Rule 8: prompts whose average size is close to (or past) the model's long-context
/// price threshold. Averages, not single prompts: the aggregate layer keeps sums.
async fn long_context(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let q = window(ctx, rule);
    let rows = ctx
        .store
        .aggregate(
            ctx.ws,
            by_cost(
                &q,
                vec![
                    Dimension::Provider,
                    Dimension::Model,
                    Dimension::EndpointTag,
                ],
                crate::query::MAX_LIMIT,
            ),
        )
        .await?
        .rows;
    let mut out = Vec::new();
    for row in rows {
        let (provider, model, endpoint) = (&row.group[0], &row.group[1], &row.group[2]);
        if row.sums.requests < rule.min_requests {
            continue;
        }
        let Some((entry, _)) = ctx.book.lookup(provider, model, ctx.now) else {
            continue;
        };
        let Some(cliff) = entry.rows.iter().map(|r| r.above).filter(|a| *a > 0).min() else {
            continue;
        };
        let avg = row.sums.input as f64 / row.sums.requests as f64;
        let reached = avg / cliff as f64 * 100.0;
        if reached < rule.threshold {
            continue;
        }
        let mut evidence = evidence_window(&q, &baseline(&q));
        evidence["endpointTag"] = json!(endpoint);
        evidence["model"] = json!(model);
        evidence["avgInputTokens"] = json!(avg);
        evidence["priceThresholdTokens"] = json!(cliff);
        out.push(Finding {
            rule: rule.kind,
            key: format!("{}:{endpoint}:{model}", rule.kind.as_str()),
            severity: Severity::Warning,
            title: format!("{endpoint}: prompts near {model}'s long-context price tier"),
            text: format!(
                "{endpoint} sends {avg:.0} input tokens per call on average to {model}, whose price rises above {cliff} tokens ({reached:.0}% of the way); trimming the prompt keeps it in the cheaper tier."
            ),
            evidence,
            drivers: vec![Driver {
                dimension: "endpointTag".into(),
                value: endpoint.clone(),
                share_pct: 100.0,
                detail: format!("{} calls averaging {avg:.0} input tokens", row.sums.requests),
            }],
            link: link("/models", &q, &[("endpointTag", endpoint), ("model", model)]),
        });
    }
    Ok(out)
}

/// Rule 10: each budget threshold and exceeded, once per period, and a projected
/// exhaustion before the period ends; for a budget for each value, each member's.
async fn budgets(ctx: &Context<'_>) -> Result<Vec<Finding>> {
    let Some(budgets) = ctx.budgets else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for budget in budgets.list(ctx.ws).await? {
        // A per-member budget's limit is each member's: its total has no threshold to
        // cross; each member crossing is its own finding (`members.rs`, capped there).
        if budget.scope.each.is_some() {
            let flagged = budgets
                .counters
                .members(ctx.ws, budget.id, ctx.now, 0, usize::MAX)
                .map(|m| m.page)
                .unwrap_or_default();
            out.extend(super::members::findings(&budget, &flagged, ctx.now));
            continue;
        }
        let status = budgets
            .status(ctx.ws, &budget, ctx.now, MEMBER_PAGE)
            .await?;
        let (start, end) = budget.window(ctx.now);
        let period = rfc3339(start);
        let q = query(ctx, start, ctx.now.min(end));
        let scope =
            json!({"budget": budget.name, "periodStart": period, "periodEnd": rfc3339(end)});
        let spent_pct = status.used_pct;
        let mut marks: Vec<(String, Severity, String)> = budget
            .thresholds
            .iter()
            .filter(|t| spent_pct >= **t)
            .map(|t| {
                (
                    format!("{t}"),
                    Severity::Warning,
                    format!("reached {t}% of its limit"),
                )
            })
            .collect();
        if status.state == crate::budget::State::Exceeded {
            marks.push(("exceeded".into(), Severity::Critical, "is exceeded".into()));
        } else if let Some(at) = &status.projected_exhaustion {
            marks.push((
                "exhaustion".into(),
                Severity::Warning,
                format!("is projected to run out at {at}, before the period ends"),
            ));
        }
        for (mark, severity, what) in marks {
            let mut evidence = scope.clone();
            evidence["status"] = json!(status);
            out.push(Finding {
                rule: RuleKind::Budget,
                key: format!("budget:{}:{period}:{mark}", budget.id),
                severity,
                title: format!("Budget {} {what}", budget.name),
                text: format!(
                    "Budget {} ({} per {}) {what}: {} spent, {} reserved, forecast {} by {}.",
                    budget.name,
                    usd(budget.limit_usd.0),
                    budget.period.as_str(),
                    usd(status.spent_usd.0),
                    usd(status.reserved_usd.0),
                    usd(status.forecast_usd.0),
                    rfc3339(end)
                ),
                evidence,
                drivers: drivers(
                    ctx,
                    &scope_query(&q, &budget),
                    &baseline(&scope_query(&q, &budget)),
                )
                .await?,
                link: format!("/budgets#budget-{}", budget.id),
            });
        }
    }
    Ok(out)
}

fn scope_query(q: &Query, budget: &crate::budget::Budget) -> Query {
    Query {
        filters: budget.scope.filters(),
        ..q.clone()
    }
}

/// A tenant whose AI cost this UTC month so far passes `threshold`% of its revenue over
/// the same days (plan price or override accrued, plus one-offs): exact integers compared
/// (`revenue::passes_share`). Tenants without revenue are left to the margin list.
async fn cost_over_revenue(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let Some(budgets) = ctx.budgets else {
        return Ok(Vec::new());
    };
    let (start, end) = crate::budget::period::Period::Month.bounds(ctx.now, "UTC");
    let q = query(ctx, start, ctx.now);
    let plans = budgets.plans(ctx.ws).await?;
    let book = RevenueBook::load(
        ctx.store,
        ctx.ws,
        plans,
        budgets.plan_history(ctx.ws).await?,
    )
    .await?;
    let (so_far, month) = (Months::new(start, ctx.now), Months::new(start, end));
    let mut out = Vec::new();
    for row in grouped(ctx, &q, Dimension::TenantId).await? {
        let tenant = &row.group[0];
        let revenue = book.revenue_in(tenant, &so_far)?;
        let cost = row.sums.cost;
        if row.sums.requests < rule.min_requests
            || !crate::revenue::passes_share(cost, revenue, rule.threshold)
        {
            continue;
        }
        let share = crate::revenue::cost_share_pct(cost, revenue).unwrap_or_default();
        let projected = crate::budget::forecast::run_rate(cost.0, start, end, ctx.now, i64::MAX);
        let month_revenue = book.revenue_in(tenant, &month)?;
        let scoped_q = scoped(&q, Dimension::TenantId, tenant);
        let mut evidence = json!({"window": {"from": rfc3339(start), "to": rfc3339(ctx.now)}});
        evidence["tenantId"] = json!(tenant);
        evidence["plan"] = json!(book.plan(tenant));
        evidence["costUsd"] = json!(cost);
        evidence["revenueUsd"] = json!(revenue);
        evidence["costSharePct"] = json!(share);
        evidence["thresholdPct"] = json!(rule.threshold);
        evidence["projectedMonthCostUsd"] = json!(Usd(projected.total));
        evidence["monthRevenueUsd"] = json!(month_revenue);
        out.push(Finding {
            rule: rule.kind,
            key: format!("{}:{tenant}:{}", rule.kind.as_str(), rfc3339(start)),
            severity: Severity::Warning,
            title: format!("AI cost of {tenant} is {share:.0}% of its revenue"),
            text: format!(
                "Tenant {tenant} cost {} in AI calls this month so far against {} of revenue over the same days ({share:.0}%, above {}%); at its run rate the month ends at {} of cost for {} of revenue.",
                usd(cost.0),
                usd(revenue.0),
                rule.threshold,
                usd(projected.total),
                usd(month_revenue.0),
            ),
            evidence,
            drivers: drivers(ctx, &scoped_q, &baseline(&scoped_q)).await?,
            link: link("/tenant", &q, &[("tenantId", tenant)]),
        });
    }
    Ok(out)
}

/// Each billed day in the window (whole UTC days up to now) whose attributed spend
/// differs from the provider's bill by more than the threshold's percent of the bill
/// (and at least `minUsd`), compared in integers. The attribution is the
/// reconciliation's: every environment, real traffic.
async fn bill_mismatch(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    use crate::report::reconcile;
    let from = ctx.now - rule.window_minutes as i64 * MINUTE_MS;
    let filters = reconcile::default_filters();
    let r = reconcile::reconciliation(ctx.store, ctx.ws, from, ctx.now, &filters).await?;
    let mut out = Vec::new();
    for day in r.days {
        let gap = Usd(day.difference_usd.0.saturating_abs());
        if !crate::reconcile::mismatch(day.billed_usd, day.attributed_usd, rule.threshold)
            || gap < rule.min_usd
        {
            continue;
        }
        let day_ms = crate::reconcile::day_ms(&day.day).unwrap_or(ctx.now);
        let (day_from, day_to) = (day_ms, day_ms + DAY_MS);
        let mut scoped_q = Query {
            filters: filters.clone(),
            ..query(ctx, day_from, day_to)
        };
        scoped_q
            .filters
            .text
            .insert(Dimension::Provider, vec![day.provider.clone()]);
        let coverage = day.coverage_pct.unwrap_or_default();
        let direction = if day.difference_usd.0 > 0 {
            "below"
        } else {
            "above"
        };
        let mut evidence = json!({"window": {"from": rfc3339(day_from), "to": rfc3339(day_to)}});
        evidence["day"] = json!(day.day);
        evidence["provider"] = json!(day.provider);
        evidence["source"] = json!(day.source);
        evidence["billedUsd"] = json!(day.billed_usd);
        evidence["attributedUsd"] = json!(day.attributed_usd);
        evidence["differenceUsd"] = json!(day.difference_usd);
        evidence["coveragePct"] = json!(day.coverage_pct);
        evidence["thresholdPct"] = json!(rule.threshold);
        evidence["unattributed"] = json!(day.unattributed);
        evidence["unpricedCalls"] = json!(day.unpriced);
        evidence["unpricedModels"] = json!(day.unpriced_models);
        out.push(Finding {
            rule: rule.kind,
            key: format!("{}:{}:{}", rule.kind.as_str(), day.provider, day.day),
            severity: Severity::Warning,
            title: format!(
                "{} bill of {} differs from burnrate by {}",
                day.provider,
                day.day,
                usd(day.difference_usd.0)
            ),
            text: format!(
                "On {} {} billed {} and burnrate attributed {} ({coverage:.1}% coverage, {direction} the bill by more than {}%): not reported {}, price gaps {} ({} unpriced calls), other {}, over-attributed {}.",
                day.day,
                day.provider,
                usd(day.billed_usd.0),
                usd(day.attributed_usd.0),
                rule.threshold,
                usd(day.unattributed.not_reported_usd.0),
                usd(day.unattributed.price_gap_usd.0),
                day.unpriced,
                usd(day.unattributed.other_usd.0),
                usd(day.unattributed.over_attributed_usd.0),
            ),
            evidence,
            drivers: drivers(ctx, &scoped_q, &baseline(&scoped_q)).await?,
            link: format!(
                "/reconciliation?from={}&to={}",
                rfc3339(day_from),
                rfc3339(day_to)
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_endpoints_few_extra_errors_are_no_retry_storm() {
        // 6 errors in 50 calls (12%) against a 4% norm: 3x and over 10%, which used to
        // fire; 2 expected, so 4 more is within 4 deviations (4 x sqrt 2 = 5.7).
        assert!(!beyond_chance(6, 50, 0.04, 4.0));
        // 40 in 200 against the same norm: 8 expected, 32 more is far beyond chance.
        assert!(beyond_chance(40, 200, 0.04, 4.0));
        // A norm of none: any count is beyond it (the 10% and 3x tests decide).
        assert!(beyond_chance(5, 50, 0.0, 4.0));
    }

    #[test]
    fn a_longer_prompt_matters_only_when_it_costs_at_least_min_usd_more() {
        let sums = |requests, cost| Sums {
            requests,
            cost: Usd(cost),
            ..Default::default()
        };
        // 100 calls at 3 cents vs a 2 cent norm: $1 more.
        let (now, before) = (sums(100, 3_000_000_000), sums(700, 14_000_000_000));
        assert!(costs_more(&now, &before, Usd(1_000_000_000)));
        assert!(!costs_more(&now, &before, Usd(1_000_000_001)));
    }
}
