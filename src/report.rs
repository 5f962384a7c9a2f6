//! Reports built on the one aggregate query: top lists with change vs the previous
//! window, time series, prompt-version comparisons and concentration. The JSON API, the
//! dashboard and `burnrate top` all show these same structures.

pub mod explain;

use crate::money::Usd;
use crate::query::{Bucket, Dimension, Measure, Query, Row, Sums};
use crate::store::{Result, Store, WorkspaceId};
use serde::Serialize;
use serde_json::Value;

/// The kinds of top list and the dimensions each groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopKind {
    Endpoints,
    Tenants,
    Users,
    PromptVersions,
    Models,
}

impl TopKind {
    pub fn parse(s: &str) -> Option<TopKind> {
        Some(match s {
            "endpoints" => TopKind::Endpoints,
            "tenants" => TopKind::Tenants,
            "users" => TopKind::Users,
            "prompt-versions" => TopKind::PromptVersions,
            "models" => TopKind::Models,
            _ => return None,
        })
    }

    pub fn dimensions(self) -> Vec<Dimension> {
        match self {
            TopKind::Endpoints => vec![Dimension::EndpointTag],
            TopKind::Tenants => vec![Dimension::TenantId],
            TopKind::Users => vec![Dimension::UserId],
            TopKind::PromptVersions => vec![Dimension::EndpointTag, Dimension::PromptVersion],
            TopKind::Models => vec![Dimension::Provider, Dimension::Model],
        }
    }

    pub const EXPECTED: &'static str = "endpoints, tenants, users, prompt-versions, models";
}

/// A percentage change, null when there is nothing to compare with.
pub fn change_pct(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| (now - before) / before * 100.0)
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d != 0).then(|| n as f64 / d as f64)
}

/// The measures every report row shows, from exact sums.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub requests: u64,
    pub cost_usd: Usd,
    pub cost_per_request: Option<Usd>,
    pub tokens_per_request: Option<f64>,
    pub input_tokens_per_request: Option<f64>,
    pub output_tokens_per_request: Option<f64>,
    pub error_rate: Option<f64>,
    pub retry_ratio: Option<f64>,
    pub cache_hit_rate: Option<f64>,
    pub unpriced: u64,
    pub latency_avg_ms: Option<f64>,
}

impl Stats {
    pub fn of(s: &Sums) -> Stats {
        Stats {
            requests: s.requests,
            cost_usd: s.cost,
            cost_per_request: (s.priced > 0).then(|| Usd(s.cost.0 / s.priced as i64)),
            tokens_per_request: ratio(s.input + s.output, s.requests),
            input_tokens_per_request: ratio(s.input, s.requests),
            output_tokens_per_request: ratio(s.output, s.requests),
            error_rate: ratio(s.errors, s.requests),
            retry_ratio: ratio(s.attempts.saturating_sub(s.requests), s.requests),
            cache_hit_rate: ratio(s.cached, s.input),
            unpriced: s.requests - s.priced,
            latency_avg_ms: (s.latency_count > 0)
                .then(|| s.latency_sum as f64 / s.latency_count as f64),
        }
    }
}

/// Percentage changes of the headline measures.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub requests_pct: Option<f64>,
    pub cost_usd_pct: Option<f64>,
    pub cost_per_request_pct: Option<f64>,
    pub tokens_per_request_pct: Option<f64>,
}

impl Change {
    pub fn between(now: &Stats, before: &Stats) -> Change {
        let usd = |u: Option<Usd>| u.map(|u| u.0 as f64);
        let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => change_pct(a, b),
            _ => None,
        };
        Change {
            requests_pct: change_pct(now.requests as f64, before.requests as f64),
            cost_usd_pct: change_pct(now.cost_usd.0 as f64, before.cost_usd.0 as f64),
            cost_per_request_pct: pct(usd(now.cost_per_request), usd(before.cost_per_request)),
            tokens_per_request_pct: pct(now.tokens_per_request, before.tokens_per_request),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopRow {
    /// The group's values by dimension name, e.g. {"endpointTag": "support.reply"}.
    pub group: serde_json::Map<String, Value>,
    #[serde(flatten)]
    pub stats: Stats,
    /// Share of the window's total cost, in percent.
    pub share_pct: Option<f64>,
    pub previous: Stats,
    pub change: Change,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopReport {
    pub from: String,
    pub to: String,
    pub previous_from: String,
    pub total: Stats,
    pub previous_total: Stats,
    pub rows: Vec<TopRow>,
}

pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `base`'s window and filters grouped by `dims`, every group, largest cost first.
pub fn by_cost(base: &Query, dims: Vec<Dimension>) -> Query {
    Query {
        group_by: dims,
        bucket: None,
        order_by: Some(Measure::CostUsd),
        ascending: false,
        limit: crate::query::MAX_LIMIT,
        ..base.clone()
    }
}

/// The same query one window earlier (equal length, ending where this one starts).
pub fn previous_window(q: &Query) -> Query {
    let len = q.to_ms - q.from_ms;
    Query {
        from_ms: q.from_ms - len,
        to_ms: q.from_ms,
        ..q.clone()
    }
}

fn total_of(rows: &[Row]) -> Sums {
    let mut total = Sums::default();
    for r in rows {
        total.add(&r.sums);
    }
    total
}

fn group_map(dims: &[Dimension], values: &[String]) -> serde_json::Map<String, Value> {
    dims.iter()
        .zip(values)
        .map(|(d, v)| (d.name(), Value::String(v.clone())))
        .collect()
}

/// Top groups of `kind` by cost in the window of `base` (its filters kept), with share
/// of total and change vs the previous window of equal length.
pub async fn top(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    kind: TopKind,
    limit: usize,
) -> Result<TopReport> {
    let q = by_cost(base, kind.dimensions());
    // Both windows at once: each read runs on its own connection and core.
    let (now, before) = tokio::try_join!(
        store.aggregate(ws, q.clone()),
        store.aggregate(ws, previous_window(&q))
    )?;
    let (total, previous_total) = (total_of(&now), total_of(&before));
    let rows = now
        .iter()
        .take(limit)
        .map(|r| {
            let prev = before
                .iter()
                .find(|b| b.group == r.group)
                .map(|b| b.sums)
                .unwrap_or_default();
            let (stats, previous) = (Stats::of(&r.sums), Stats::of(&prev));
            TopRow {
                group: group_map(&q.group_by, &r.group),
                share_pct: (total.cost.0 > 0)
                    .then(|| r.sums.cost.0 as f64 / total.cost.0 as f64 * 100.0),
                change: Change::between(&stats, &previous),
                stats,
                previous,
            }
        })
        .collect();
    Ok(TopReport {
        from: rfc3339(q.from_ms),
        to: rfc3339(q.to_ms),
        previous_from: rfc3339(q.from_ms - (q.to_ms - q.from_ms)),
        total: Stats::of(&total),
        previous_total: Stats::of(&previous_total),
        rows,
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub key: String,
    pub cost_usd: Vec<Usd>,
    pub requests: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeseries {
    pub bucket: Bucket,
    pub by: Option<String>,
    /// Start of each bucket; every series has one value per bucket.
    pub buckets: Vec<String>,
    pub series: Vec<Series>,
    /// The same totals per bucket, all groups together.
    pub total: Series,
}

/// Cost and requests per bucket, split by `by` into its top `top_n` groups plus "other".
pub async fn timeseries(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    bucket: Bucket,
    by: Option<Dimension>,
    top_n: usize,
) -> Result<Timeseries> {
    let mut q = base.clone();
    q.bucket = Some(bucket);
    q.group_by = by.iter().cloned().collect();
    q.limit = crate::query::MAX_LIMIT;
    let rows = store.aggregate(ws, q.clone()).await?;
    let step = bucket.millis();
    let first = q.from_ms.div_euclid(step) * step;
    let starts: Vec<i64> = (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t < q.to_ms)
        .collect();
    let index = |t: i64| ((t - first) / step) as usize;
    // Rank groups by total cost over the window; the rest fold into "other".
    let mut totals: Vec<(String, i64)> = Vec::new();
    for r in &rows {
        let key = r.group.first().cloned().unwrap_or_else(|| "all".into());
        match totals.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => *c += r.sums.cost.0,
            None => totals.push((key, r.sums.cost.0)),
        }
    }
    totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let kept: Vec<String> = totals.iter().take(top_n).map(|(k, _)| k.clone()).collect();
    let empty = |key: &str| Series {
        key: key.into(),
        cost_usd: vec![Usd::ZERO; starts.len()],
        requests: vec![0; starts.len()],
    };
    let mut series: Vec<Series> = kept.iter().map(|k| empty(k)).collect();
    let mut other = empty("other");
    let mut total = empty("total");
    for r in &rows {
        let Some(i) = r.bucket_ms.map(index).filter(|i| *i < starts.len()) else {
            continue;
        };
        let key = r.group.first().cloned().unwrap_or_else(|| "all".into());
        let target = match series.iter_mut().find(|s| s.key == key) {
            Some(s) => s,
            None => &mut other,
        };
        for s in [target, &mut total] {
            s.cost_usd[i] = Usd(s.cost_usd[i].0 + r.sums.cost.0);
            s.requests[i] += r.sums.requests;
        }
    }
    if other.requests.iter().any(|n| *n > 0) {
        series.push(other);
    }
    Ok(Timeseries {
        bucket,
        by: by.map(|d| d.name()),
        buckets: starts.iter().map(|t| rfc3339(*t)).collect(),
        series,
        total,
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionStats {
    pub prompt_version: String,
    #[serde(flatten)]
    pub stats: Stats,
    /// Nearest-rank p95 of the newest `P95_SAMPLE` calls' latency (current and baseline
    /// versions only; None for the others or without latencies).
    pub latency_p95_ms: Option<u32>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionComparison {
    pub endpoint_tag: String,
    pub current: VersionStats,
    pub baseline: Option<VersionStats>,
    /// Changes of current vs baseline, in percent.
    pub delta: Option<VersionDelta>,
    /// Every version seen in the window, newest first-seen first.
    pub versions: Vec<VersionStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDelta {
    pub cost_per_request_pct: Option<f64>,
    pub input_tokens_per_request_pct: Option<f64>,
    pub output_tokens_per_request_pct: Option<f64>,
    pub cache_hit_rate_pct: Option<f64>,
    pub error_rate_pct: Option<f64>,
    pub latency_avg_ms_pct: Option<f64>,
    pub latency_p95_ms_pct: Option<f64>,
}

/// Calls read per version for its p95 latency (the newest of the window).
pub const P95_SAMPLE: usize = 10_000;

/// Nearest-rank p95 of the version's latencies in the window of `base`.
async fn latency_p95(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    endpoint: &str,
    version: &str,
) -> Result<Option<u32>> {
    let mut q = base.clone();
    q.filters
        .text
        .insert(Dimension::EndpointTag, vec![endpoint.to_string()]);
    q.filters
        .text
        .insert(Dimension::PromptVersion, vec![version.to_string()]);
    let mut latencies = store.latencies(ws, q, P95_SAMPLE).await?;
    if latencies.is_empty() {
        return Ok(None);
    }
    let rank = (latencies.len() * 95).div_ceil(100) - 1;
    Ok(Some(*latencies.select_nth_unstable(rank).1))
}

fn pct(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    change_pct(a?, b?)
}

/// Per endpoint: the current prompt version (the latest to appear) against its baseline
/// (the one before it, or `baseline` when given). Regressions (largest cost/request
/// increase) first.
pub async fn prompt_versions(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    baseline: Option<&str>,
) -> Result<Vec<VersionComparison>> {
    let q = by_cost(base, vec![Dimension::EndpointTag, Dimension::PromptVersion]);
    let (rows, seen) = tokio::try_join!(
        store.aggregate(ws, q),
        store.versions_seen(ws, base.filters.clone())
    )?;
    let seen_of = |endpoint: &str, version: &str| {
        seen.iter()
            .find(|s| s.endpoint_tag == endpoint && s.prompt_version == version)
            .map_or((0, 0), |s| (s.first_ms, s.last_ms))
    };
    let mut endpoints: Vec<String> = rows.iter().map(|r| r.group[0].clone()).collect();
    endpoints.sort();
    endpoints.dedup();
    let mut out = Vec::new();
    for endpoint in endpoints {
        let mut versions: Vec<VersionStats> = rows
            .iter()
            .filter(|r| r.group[0] == endpoint)
            .map(|r| VersionStats {
                prompt_version: r.group[1].clone(),
                stats: Stats::of(&r.sums),
                latency_p95_ms: None,
                first_seen: rfc3339(seen_of(&r.group[0], &r.group[1]).0),
                last_seen: rfc3339(seen_of(&r.group[0], &r.group[1]).1),
            })
            .collect();
        versions.sort_by(|a, b| {
            b.first_seen
                .cmp(&a.first_seen)
                .then(a.prompt_version.cmp(&b.prompt_version))
        });
        let mut current = versions[0].clone();
        let mut baseline_stats = match baseline {
            Some(name) => versions.iter().find(|v| v.prompt_version == name).cloned(),
            None => versions.get(1).cloned(),
        };
        let baseline_name = baseline_stats.as_ref().map(|b| b.prompt_version.clone());
        let (current_p95, baseline_p95) = tokio::try_join!(
            latency_p95(store, ws, base, &endpoint, &current.prompt_version),
            async {
                match &baseline_name {
                    Some(name) => latency_p95(store, ws, base, &endpoint, name).await,
                    None => Ok(None),
                }
            }
        )?;
        current.latency_p95_ms = current_p95;
        if let Some(b) = baseline_stats.as_mut() {
            b.latency_p95_ms = baseline_p95;
        }
        let p95s = (
            current.latency_p95_ms,
            baseline_stats.as_ref().and_then(|b| b.latency_p95_ms),
        );
        let delta = baseline_stats.as_ref().map(|b| {
            let (c, b) = (&current.stats, &b.stats);
            let usd = |u: Option<Usd>| u.map(|u| u.0 as f64);
            VersionDelta {
                cost_per_request_pct: pct(usd(c.cost_per_request), usd(b.cost_per_request)),
                input_tokens_per_request_pct: pct(
                    c.input_tokens_per_request,
                    b.input_tokens_per_request,
                ),
                output_tokens_per_request_pct: pct(
                    c.output_tokens_per_request,
                    b.output_tokens_per_request,
                ),
                cache_hit_rate_pct: pct(c.cache_hit_rate, b.cache_hit_rate),
                error_rate_pct: pct(c.error_rate, b.error_rate),
                latency_avg_ms_pct: pct(c.latency_avg_ms, b.latency_avg_ms),
                latency_p95_ms_pct: pct(p95s.0.map(f64::from), p95s.1.map(f64::from)),
            }
        });
        out.push(VersionComparison {
            endpoint_tag: endpoint,
            current,
            baseline: baseline_stats,
            delta,
            versions,
        });
    }
    let regression = |v: &VersionComparison| {
        v.delta
            .as_ref()
            .and_then(|d| d.cost_per_request_pct)
            .unwrap_or(f64::NEG_INFINITY)
    };
    out.sort_by(|a, b| {
        regression(b)
            .total_cmp(&regression(a))
            .then(a.endpoint_tag.cmp(&b.endpoint_tag))
    });
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Concentration {
    pub by: String,
    pub top1_share_pct: Option<f64>,
    pub top5_share_pct: Option<f64>,
    pub previous_top1_share_pct: Option<f64>,
    pub previous_top5_share_pct: Option<f64>,
    /// The five largest groups now, with their share.
    pub top: Vec<Share>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Share {
    pub key: String,
    pub share_pct: Option<f64>,
}

/// Top-1 share, top-5 share and the top five, of one window.
struct Shares {
    top1: Option<f64>,
    top5: Option<f64>,
    top: Vec<Share>,
}

fn shares(rows: &[Row]) -> Shares {
    let total: i64 = rows.iter().map(|r| r.sums.cost.0).sum();
    let share = |c: i64| (total > 0).then(|| c as f64 / total as f64 * 100.0);
    let top: Vec<Share> = rows
        .iter()
        .take(5)
        .map(|r| Share {
            key: r.group[0].clone(),
            share_pct: share(r.sums.cost.0),
        })
        .collect();
    let top1 = rows.first().map(|r| r.sums.cost.0).unwrap_or(0);
    let top5: i64 = rows.iter().take(5).map(|r| r.sums.cost.0).sum();
    Shares {
        top1: share(top1),
        top5: share(top5),
        top,
    }
}

/// How much of the spend the largest one and five groups of `by` take, now and before.
pub async fn concentration(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    by: Dimension,
) -> Result<Concentration> {
    let q = by_cost(base, vec![by.clone()]);
    // Both windows at once: each read runs on its own connection and core.
    let (now, before) = tokio::try_join!(
        store.aggregate(ws, q.clone()),
        store.aggregate(ws, previous_window(&q))
    )?;
    let (now, before) = (shares(&now), shares(&before));
    Ok(Concentration {
        by: by.name(),
        top1_share_pct: now.top1,
        top5_share_pct: now.top5,
        previous_top1_share_pct: before.top1,
        previous_top5_share_pct: before.top5,
        top: now.top,
    })
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenTotals {
    pub input: u64,
    pub cached: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// Totals of a window (GET /v1/summary).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub requests: u64,
    pub attempts: u64,
    pub retry_ratio: f64,
    /// Sum of priced calls only; see `unpriced`.
    pub cost_usd: Usd,
    pub tokens: TokenTotals,
    /// Calls with no price (unknown model or no rate for the tier).
    pub unpriced: u64,
    /// priced / all calls.
    pub pricing_coverage: f64,
    pub usage_missing: u64,
    pub idless: u64,
    pub errors: u64,
}

/// Totals of `base`'s window and filters, from the one aggregate query.
pub async fn summary(store: &dyn Store, ws: WorkspaceId, base: &Query) -> Result<Summary> {
    let mut q = base.clone();
    q.group_by.clear();
    q.bucket = None;
    let s = store
        .aggregate(ws, q)
        .await?
        .first()
        .map(|r| r.sums)
        .unwrap_or_default();
    Ok(Summary {
        requests: s.requests,
        attempts: s.attempts,
        retry_ratio: ratio(s.attempts.saturating_sub(s.requests), s.requests).unwrap_or(0.0),
        cost_usd: s.cost,
        tokens: TokenTotals {
            input: s.input,
            cached: s.cached,
            cache_write: s.cache_write,
            output: s.output,
            reasoning: s.reasoning,
        },
        unpriced: s.requests - s.priced,
        pricing_coverage: ratio(s.priced, s.requests).unwrap_or(1.0),
        usage_missing: s.usage_missing,
        idless: s.idless,
        errors: s.errors,
    })
}
