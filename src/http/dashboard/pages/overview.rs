//! Overview: the headline measures with their change, spend over time stacked by a
//! chosen dimension with the spike window marked, where the money went, and the budget
//! posture.

use super::{delta, delta_pp, heading, no_data, page_handler, share, Sense};
use crate::http::dashboard::chart::{self, Spike, Stack};
use crate::http::dashboard::{format, Ctx, Page, PageError, PageResult};
use crate::money::Usd;
use crate::query::{Bucket, Dimension, Measure, Query};
use crate::report::{self, Stats, TopKind};
use maud::{html, Markup};

page_handler!(page, Page::Overview, body);

/// The dimensions the chart can stack by.
const BY: &[(&str, &str)] = &[
    ("endpointTag", "Endpoint"),
    ("model", "Model"),
    ("provider", "Provider"),
    ("tenantId", "Tenant"),
    ("promptVersion", "Prompt version"),
];
/// Series in the chart before the rest folds into "other".
const SERIES: usize = 6;
const MAX_BUCKETS: i64 = 2000;

fn bucket_of(ctx: &Ctx, q: &Query) -> Result<Bucket, PageError> {
    let hours = (q.to_ms - q.from_ms) / Bucket::Hour.millis();
    match ctx.view.own("bucket") {
        None => Ok(if hours <= 8 * 24 {
            Bucket::Hour
        } else {
            Bucket::Day
        }),
        Some("hour") if hours <= MAX_BUCKETS => Ok(Bucket::Hour),
        Some("hour") => Err(PageError::Bad(
            "bucket=hour gives more than 2000 bars for this window; use day".into(),
        )),
        Some("day") => Ok(Bucket::Day),
        Some(_) => Err(PageError::Bad("bucket must be hour or day".into())),
    }
}

fn by_of(ctx: &Ctx) -> Result<(&'static str, Dimension), PageError> {
    let name = ctx.view.own("by").unwrap_or("endpointTag");
    BY.iter()
        .find(|(n, _)| *n == name)
        .and_then(|(n, _)| Some((*n, Dimension::parse(n)?)))
        .ok_or_else(|| {
            PageError::Bad(format!(
                "by must be one of: {}",
                BY.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// Cost per bucket: the total, and the top groups of `by` (the rest is "other"). Two
/// queries, so that no answer can hit the query layer's row limit.
pub async fn stack(
    ctx: &Ctx,
    q: &Query,
    bucket: Bucket,
    by: &Dimension,
) -> Result<Stack, PageError> {
    let store = ctx.state.store.as_ref();
    let total = report::timeseries(store, ctx.ws(), q, bucket, None, 1).await?;
    let mut tq = q.clone();
    tq.group_by = vec![by.clone()];
    tq.bucket = None;
    tq.order_by = Some(Measure::CostUsd);
    tq.ascending = false;
    tq.limit = SERIES;
    let keys: Vec<String> = store
        .aggregate(ctx.ws(), tq)
        .await?
        .rows
        .into_iter()
        .filter(|r| r.sums.cost.0 > 0)
        .map(|r| r.group[0].clone())
        .collect();
    let mut series: Vec<(String, Vec<i64>)> = Vec::new();
    if !keys.is_empty() {
        let mut fq = q.clone();
        fq.filters.text.insert(by.clone(), keys.clone());
        let split =
            report::timeseries(store, ctx.ws(), &fq, bucket, Some(by.clone()), keys.len()).await?;
        series = split
            .series
            .into_iter()
            .filter(|s| s.key != "other")
            .map(|s| (s.key, s.cost_usd.iter().map(|u| u.0).collect()))
            .collect();
    }
    let totals: Vec<i64> = total.total.cost_usd.iter().map(|u| u.0).collect();
    let other: Vec<i64> = (0..totals.len())
        .map(|i| totals[i] - series.iter().map(|(_, v)| v[i]).sum::<i64>())
        .collect();
    if other.iter().any(|v| *v > 0) {
        series.push(("other".into(), other));
    }
    Ok(Stack {
        starts: total
            .buckets
            .iter()
            .filter_map(|b| format::parse_ms(b))
            .collect(),
        step_ms: bucket.millis(),
        series,
        totals,
        requests: total.total.requests.clone(),
    })
}

pub async fn body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let (by_name, by) = by_of(ctx)?;
    let bucket = bucket_of(ctx, &q)?;
    let store = ctx.state.store.as_ref();
    // The table and the chart read at once, each on its own connection.
    let (top, stack) = tokio::join!(
        report::top(store, ctx.ws(), &q, TopKind::Endpoints, 6),
        stack(ctx, &q, bucket, &by)
    );
    let top = top?;
    let title = heading(
        "Overview",
        html! { "Where the money went in this window, and how it compares with the window before." },
    );
    if top.total.requests == 0 {
        return Ok(html! { (title) (no_data(ctx, &q).await?) });
    }
    let stack = stack?;
    let budgets = super::budgets::load(ctx, false).await?;
    // The marker follows the workspace's spend-spike alert rule (minimum calls, times).
    let settings = ctx.state.alerts.settings(ctx.ws()).await?;
    let rule = settings.rule(crate::alert::RuleKind::HourlySpendSpike);
    let spike = chart::spike(&stack.totals, &stack.requests, rule);
    let explain_href = spike.map(|s| spike_href(ctx, &stack, &s, &q, Page::Explain));
    let deploys = crate::deploy::list(store, ctx.ws(), Some((q.from_ms, q.to_ms))).await?;
    Ok(html! {
        (title)
        (kpis(ctx, &top.total, &top.previous_total))
        div.callout.info #explain-window {
            span { "Spend " (delta(report::Change::between(&top.total, &top.previous_total).cost_usd_pct, Sense::UpIsBad))
                " against the previous " (format::span(q.to_ms - q.from_ms)) "." }
            a.go href=(ctx.link(Page::Explain, &[])) { "Explain this change →" }
        }
        div.card #spend {
            div.card-head {
                h2 { "Spend over time" }
                span.muted { "per " (if bucket == Bucket::Hour { "hour" } else { "day" }) ", stacked by " (BY.iter().find(|(n, _)| *n == by_name).map_or("", |(_, l)| *l)) }
                div.right {
                    span.muted { "by" }
                    div.seg {
                        @for (name, label) in BY {
                            a class=(if *name == by_name { "on" } else { "" })
                                href=(ctx.link(Page::Overview, &[("by", if *name == "endpointTag" { None } else { Some(name) })])) { (label) }
                        }
                    }
                    div.seg {
                        @for b in ["hour", "day"] {
                            a class=(if (b == "hour") == (bucket == Bucket::Hour) { "on" } else { "" })
                                href=(ctx.link(Page::Overview, &[("bucket", Some(b))])) { (b) }
                        }
                    }
                }
            }
            @if let Some(s) = spike {
                (spike_callout(ctx, &stack, &s, &q, bucket))
            }
            (chart::stacked(&stack, spike.as_ref(), explain_href.as_deref(), &markers(&deploys)))
            @if !deploys.is_empty() {
                ul.deploy-notes #deploys {
                    @for n in &deploys {
                        li { span.muted.tnum { (format::time(n.time_ms)) } " " (deploy_words(n)) }
                    }
                }
            }
            div.legend {
                @let total: i64 = stack.totals.iter().sum();
                @for (i, (key, values)) in stack.series.iter().enumerate() {
                    @let sum: i64 = values.iter().sum();
                    span {
                        span.sw style=(format!("background:{}", chart::color(i, key))) {}
                        (key)
                        span.v { (format::usd(Usd(sum))) " · " (format::share((total > 0).then(|| sum as f64 / total as f64 * 100.0))) }
                    }
                }
            }
        }
        div.grid.cols-2 {
            div.card {
                div.card-head {
                    h2 { "Top endpoints" }
                    span.muted { "click one to see who is behind it" }
                    div.right { a href=(ctx.link(Page::Endpoints, &[])) { "All endpoints →" } }
                }
                table.t {
                    thead { tr {
                        th { "Endpoint" } th.num { "Spend" } th.num { "Share" } th.num { "vs before" } th.num { "Cost / req" }
                    } }
                    tbody {
                        @for row in top.rows.iter().take(6) {
                            @let tag = row.group.get("endpointTag").and_then(|v| v.as_str()).unwrap_or("");
                            tr {
                                td.name { a href=(ctx.link(Page::Tenants, &[("endpointTag", Some(tag))])) { (tag) } }
                                td.num { (super::group_money(&row.stats)) }
                                td.num { (share(row.share_pct)) }
                                td.num { (delta(row.change.cost_usd_pct, Sense::UpIsBad)) }
                                td.num { (super::money_opt(row.stats.cost_per_request)) }
                            }
                        }
                    }
                }
            }
            (super::budgets::posture(ctx, &budgets))
        }
    })
}

/// "summarize.doc: after v4: 'longer summaries' (ana)".
pub fn deploy_words(n: &crate::deploy::DeployNote) -> String {
    let mut out = String::new();
    if let Some(e) = &n.endpoint_tag {
        out.push_str(&format!("{e}: "));
    }
    out.push_str(&n.mention());
    if let Some(a) = &n.author {
        out.push_str(&format!(" ({a})"));
    }
    out
}

fn markers(notes: &[crate::deploy::DeployNote]) -> Vec<chart::Marker> {
    notes
        .iter()
        .map(|n| chart::Marker {
            at_ms: n.time_ms,
            label: format!("{} {}", format::time(n.time_ms), deploy_words(n)),
        })
        .collect()
}

/// The spike's buckets as a window, as a link to `page` keeping the filters.
fn spike_href(ctx: &Ctx, stack: &Stack, s: &Spike, q: &Query, page: Page) -> String {
    let from = stack.starts[s.start].max(q.from_ms);
    let to = (stack.starts[s.end - 1] + stack.step_ms).min(q.to_ms);
    let (from, to) = (format::rfc3339(from), format::rfc3339(to));
    ctx.link(page, &[("from", Some(&from)), ("to", Some(&to))])
}

fn spike_callout(ctx: &Ctx, stack: &Stack, s: &Spike, q: &Query, bucket: Bucket) -> Markup {
    let start = stack.starts[s.start];
    let end = stack.starts[s.end - 1] + stack.step_ms;
    let n = (s.end - s.start) as i64;
    let per = s.cost / n.max(1);
    let times = if s.median > 0 {
        per as f64 / s.median as f64
    } else {
        0.0
    };
    let unit = if bucket == Bucket::Hour {
        "hour"
    } else {
        "day"
    };
    html! {
        div.callout #spike data-spike-from=(format::rfc3339(start)) data-spike-to=(format::rfc3339(end)) {
            span {
                "Spike " b { (format::time(start)) " – " (format::time(end)) " UTC" }
                ": " b { (format::usd(Usd(s.cost))) } " in " (n) " " (unit) (if n == 1 { "" } else { "s" })
                ", " b { (format!("{times:.0}×")) } " the typical " (unit) " (" (format::usd(Usd(s.median))) ")."
            }
            a.go data-go="explain" href=(spike_href(ctx, stack, s, q, Page::Explain)) { "Explain this spike →" }
            a.go data-go="endpoints" style="margin-left:0" href=(spike_href(ctx, stack, s, q, Page::Endpoints)) { "Top endpoints in it →" }
        }
    }
}

fn kpi(id: &str, label: &str, value: Markup, change: Markup, before: String, main: bool) -> Markup {
    html! {
        div class=(if main { "kpi main" } else { "kpi" }) data-kpi=(id) {
            div.label { (label) }
            div.value { (value) }
            div.delta { (change) " " span.faint { "vs " (before) } }
        }
    }
}

fn unpriced_ratio(s: &Stats) -> Option<f64> {
    (s.requests > 0).then(|| s.unpriced as f64 / s.requests as f64)
}

fn kpis(ctx: &Ctx, now: &Stats, before: &Stats) -> Markup {
    let c = report::Change::between(now, before);
    let opt_usd = |u: Option<Usd>| u.map_or("—".to_string(), format::usd);
    html! {
        div.kpis {
            (kpi("spend", "Spend", super::group_money(now), delta(c.cost_usd_pct, Sense::UpIsBad), before.money_text(), true))
            (kpi("requests", "Requests", html! { span data-n=(now.requests) { (format::int(now.requests)) } },
                delta(c.requests_pct, Sense::Neutral), format::int(before.requests), false))
            (kpi("cost-per-request", "Cost / request", super::money_opt(now.cost_per_request),
                delta(c.cost_per_request_pct, Sense::UpIsBad), opt_usd(before.cost_per_request), false))
            (kpi("tokens-per-request", "Tokens / request", html! { (format::count(now.tokens_per_request)) },
                delta(c.tokens_per_request_pct, Sense::UpIsBad), format::count(before.tokens_per_request), false))
            (kpi("retry-ratio", "Retry ratio", html! { (format::ratio(now.retry_ratio)) },
                delta_pp(now.retry_ratio, before.retry_ratio, Sense::UpIsBad), format::ratio(before.retry_ratio), false))
            (kpi("error-rate", "Error rate", html! { (format::ratio(now.error_rate)) },
                delta_pp(now.error_rate, before.error_rate, Sense::UpIsBad), format::ratio(before.error_rate), false))
            (kpi("unpriced", "Unpriced", html! {
                    (format::ratio(unpriced_ratio(now)))
                    @if now.unpriced > 0 {
                        " " a.badge.warn href=(ctx.link(Page::Models, &[])) style="font-size:12px" { (format::int(now.unpriced)) " req" }
                    }
                },
                delta_pp(unpriced_ratio(now), unpriced_ratio(before), Sense::UpIsBad), format::ratio(unpriced_ratio(before)), false))
            (kpi("cache-hit-rate", "Cache hit rate", html! { (format::ratio(now.cache_hit_rate)) },
                delta_pp(now.cache_hit_rate, before.cache_hit_rate, Sense::UpIsGood), format::ratio(before.cache_hit_rate), false))
        }
    }
}
