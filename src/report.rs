//! Reports built on the one aggregate query: top lists with change vs the previous
//! window, time series, prompt-version comparisons and concentration. The JSON API, the
//! dashboard and `burnrate top` all show these same structures.

pub mod explain;
pub mod margin;
pub mod quality;
pub mod reconcile;

use crate::money::Usd;
use crate::query::{Answer, Bucket, Dimension, Measure, Query, Row, SumOverflow, Sums};
use crate::store::{Result, Store, WorkspaceId};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

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
    /// Cost of the priced calls; null when the group has calls and none is priced.
    /// Always read with `unpriced` (see `Sums::cost_usd`).
    pub cost_usd: Option<Usd>,
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
            cost_usd: s.cost_usd(),
            cost_per_request: s.cost_per_request(),
            tokens_per_request: s.tokens_per_request(),
            input_tokens_per_request: ratio(s.input, s.requests),
            output_tokens_per_request: ratio(s.output, s.requests),
            error_rate: ratio(s.errors, s.requests),
            retry_ratio: ratio(s.attempts.saturating_sub(s.requests), s.requests),
            cache_hit_rate: ratio(s.cached, s.input),
            unpriced: s.unpriced(),
            latency_avg_ms: (s.latency_count > 0)
                .then(|| s.latency_sum as f64 / s.latency_count as f64),
        }
    }

    /// The known money (priced calls only; $0 when none is priced), for arithmetic.
    pub fn priced_cost(&self) -> Usd {
        self.cost_usd.unwrap_or(Usd::ZERO)
    }

    /// The group's money as the dashboard and the CLI show it (`money::with_unpriced`).
    pub fn money_text(&self) -> String {
        crate::money::with_unpriced(self.cost_usd, self.unpriced)
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
            cost_usd_pct: pct(usd(now.cost_usd), usd(before.cost_usd)),
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

/// `base`'s window and filters grouped by `dims`, the largest `limit` groups by cost
/// (the answer's totals still cover every group).
pub fn by_cost(base: &Query, dims: Vec<Dimension>, limit: usize) -> Query {
    Query {
        group_by: dims,
        bucket: None,
        order_by: Some(Measure::CostUsd),
        ascending: false,
        limit,
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

/// `q` narrowed to the groups of `rows` (each of its group-by dimensions to the values
/// the rows show), every one of them kept: how the previous window of a top list is
/// read exactly for the groups it shows, however many groups there are.
pub fn only_groups(q: &Query, rows: &[Row]) -> Query {
    let mut q = q.clone();
    for (i, d) in q.group_by.clone().iter().enumerate() {
        let mut values: Vec<String> = rows.iter().map(|r| r.group[i].clone()).collect();
        values.sort();
        values.dedup();
        q.filters.restrict(d, &values);
    }
    q.limit = usize::MAX;
    q
}

/// A group's share of a total cost, in percent (None when the total is $0).
pub fn share_pct(cost: Usd, total: Usd) -> Option<f64> {
    (total.0 > 0).then(|| cost.0 as f64 / total.0 as f64 * 100.0)
}

fn group_map(dims: &[Dimension], values: &[String]) -> serde_json::Map<String, Value> {
    dims.iter()
        .zip(values)
        .map(|(d, v)| (d.name(), Value::String(v.clone())))
        .collect()
}

/// Top groups of `kind` by cost in the window of `base` (its filters kept), with share
/// of total and change vs the previous window of equal length. Totals and shares come
/// from the store's totals of every group, never from the listed rows.
pub async fn top(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    kind: TopKind,
    limit: usize,
) -> Result<TopReport> {
    let q = by_cost(base, kind.dimensions(), limit);
    let mut total_q = previous_window(&q);
    total_q.group_by.clear();
    // Both windows at once: each read runs on its own connection and core.
    let (now, previous_total) =
        tokio::try_join!(store.aggregate(ws, q.clone()), store.aggregate(ws, total_q))?;
    top_of(store, ws, &q, &now, previous_total.total()).await
}

/// The top list of one dimension and its concentration, as the Tenants & users page
/// shows both: each window is grouped once for both (at 100,000 users a grouping is most
/// of the page's time).
pub async fn top_and_concentration(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    kind: TopKind,
    limit: usize,
) -> Result<(TopReport, Concentration)> {
    let dims = kind.dimensions();
    let by = dims[0].clone();
    let q = by_cost(base, dims, limit.max(5));
    let (now, before) = tokio::try_join!(
        store.aggregate(ws, q.clone()),
        store.aggregate(ws, previous_window(&by_cost(base, vec![by.clone()], 5)))
    )?;
    let concentration = concentration_of(by, &now, &before)?;
    let mut report = top_of(store, ws, &q, &now, before.total()).await?;
    report.rows.truncate(limit);
    Ok((report, concentration))
}

/// The top report of `now` (the answer of `q`), each group against its own sums in the
/// previous window.
async fn top_of(
    store: &dyn Store,
    ws: WorkspaceId,
    q: &Query,
    now: &Answer,
    previous_total: Sums,
) -> Result<TopReport> {
    let before = if now.rows.is_empty() {
        Vec::new()
    } else {
        let prev = only_groups(&previous_window(q), &now.rows);
        store.aggregate(ws, prev).await?.rows
    };
    let previous: std::collections::HashMap<&[String], &Sums> = before
        .iter()
        .map(|b| (b.group.as_slice(), &b.sums))
        .collect();
    let total = now.total();
    let rows = now
        .rows
        .iter()
        .map(|r| {
            let prev = previous.get(r.group.as_slice()).copied().copied();
            let (stats, previous) = (Stats::of(&r.sums), Stats::of(&prev.unwrap_or_default()));
            TopRow {
                group: group_map(&q.group_by, &r.group),
                // Unknown for a group with no priced call, not 0%.
                share_pct: r.sums.cost_usd().and_then(|c| share_pct(c, total.cost)),
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

impl Series {
    fn empty(key: &str, buckets: usize) -> Series {
        Series {
            key: key.into(),
            cost_usd: vec![Usd::ZERO; buckets],
            requests: vec![0; buckets],
        }
    }
}

fn add(s: &mut Series, i: usize, sums: &Sums) -> Result<()> {
    s.cost_usd[i] = Usd(s.cost_usd[i]
        .0
        .checked_add(sums.cost.0)
        .ok_or(SumOverflow)?);
    s.requests[i] = s.requests[i]
        .checked_add(sums.requests)
        .ok_or(SumOverflow)?;
    Ok(())
}

/// The start of every bucket of `q`'s window (the first one holds the window's start).
fn bucket_starts(q: &Query, bucket: Bucket) -> Vec<i64> {
    let step = bucket.millis();
    let first = q.from_ms.div_euclid(step) * step;
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t < q.to_ms)
        .collect()
}

/// Cost and requests per bucket of each of `keys` of `dim` in one read (a row of
/// sparklines): the series of `keys`, in their order, zero where a key had no call.
pub async fn key_series(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    bucket: Bucket,
    dim: &Dimension,
    keys: &[String],
) -> Result<Vec<Series>> {
    let mut q = base.clone();
    q.bucket = Some(bucket);
    q.group_by = vec![dim.clone()];
    q.filters.text.insert(dim.clone(), keys.to_vec());
    q.limit = usize::MAX;
    let starts = bucket_starts(&q, bucket);
    let mut series: Vec<Series> = keys
        .iter()
        .map(|k| Series::empty(k, starts.len()))
        .collect();
    for r in &store.aggregate(ws, q).await?.rows {
        let i = r
            .bucket_ms
            .map(|t| ((t - starts[0]) / bucket.millis()) as usize);
        let Some(i) = i.filter(|i| *i < starts.len()) else {
            continue;
        };
        if let Some(s) = series.iter_mut().find(|s| s.key == r.group[0]) {
            add(s, i, &r.sums)?;
        }
    }
    Ok(series)
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
/// Three exact reads: the top groups over the window, their buckets, and the buckets'
/// totals of every group; "other" is the total minus the top groups, so the series
/// always add up to the total however many groups there are.
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
    q.group_by.clear();
    q.limit = usize::MAX;
    let starts = bucket_starts(&q, bucket);
    let index = |t: i64| ((t - starts[0]) / bucket.millis()) as usize;
    let empty = |key: &str| Series::empty(key, starts.len());
    let (totals, split) = match &by {
        None => (store.aggregate(ws, q.clone()).await?, None),
        Some(dim) => {
            let top = store
                .aggregate(ws, by_cost(base, vec![dim.clone()], top_n))
                .await?
                .rows;
            let mut split = only_groups(&by_cost(base, vec![dim.clone()], top_n), &top);
            split.bucket = Some(bucket);
            let keys: Vec<String> = top.iter().map(|r| r.group[0].clone()).collect();
            if keys.is_empty() {
                (
                    store.aggregate(ws, q.clone()).await?,
                    Some((keys, Vec::new())),
                )
            } else {
                let (totals, rows) =
                    tokio::try_join!(store.aggregate(ws, q.clone()), store.aggregate(ws, split))?;
                (totals, Some((keys, rows.rows)))
            }
        }
    };
    let mut total = empty("total");
    for r in &totals.totals {
        if let Some(i) = r.bucket_ms.map(index).filter(|i| *i < starts.len()) {
            add(&mut total, i, &r.sums)?;
        }
    }
    let mut series = Vec::new();
    if let Some((keys, rows)) = split {
        series = keys.iter().map(|k| empty(k)).collect::<Vec<_>>();
        for r in &rows {
            let Some(i) = r.bucket_ms.map(index).filter(|i| *i < starts.len()) else {
                continue;
            };
            if let Some(s) = series.iter_mut().find(|s| s.key == r.group[0]) {
                add(s, i, &r.sums)?;
            }
        }
        let mut other = empty("other");
        for i in 0..starts.len() {
            let kept_cost = series.iter().map(|s| s.cost_usd[i].0).sum::<i64>();
            let kept_requests = series.iter().map(|s| s.requests[i]).sum::<u64>();
            other.cost_usd[i] = Usd(total.cost_usd[i].0 - kept_cost);
            other.requests[i] = total.requests[i].saturating_sub(kept_requests);
        }
        if other.requests.iter().any(|n| *n > 0) {
            series.push(other);
        }
    } else {
        let mut all = total.clone();
        all.key = "all".into();
        if all.requests.iter().any(|n| *n > 0) {
            series.push(all);
        }
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

/// Nearest-rank p95 latency of the newest `P95_SAMPLE` calls of each (endpoint, prompt
/// version) of `wanted` in the window of `base`: one grouped read
/// (`EventStore::latency_percentiles`), narrowed to the endpoints and version names
/// asked for (any other pair their product includes is read and not used).
async fn latency_p95s(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    wanted: &[(String, String)],
) -> Result<BTreeMap<(String, String), u32>> {
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut q = base.clone();
    q.group_by = vec![Dimension::EndpointTag, Dimension::PromptVersion];
    q.bucket = None;
    for (i, d) in q.group_by.clone().iter().enumerate() {
        let mut values: Vec<String> = wanted
            .iter()
            .map(|w| if i == 0 { w.0.clone() } else { w.1.clone() })
            .collect();
        values.sort();
        values.dedup();
        q.filters.restrict(d, &values);
    }
    let groups = store.latency_percentiles(ws, q, P95_SAMPLE, 95).await?;
    Ok(groups
        .into_iter()
        .filter_map(|g| match <[String; 2]>::try_from(g.group) {
            Ok([endpoint, version]) => Some(((endpoint, version), g.latency_ms)),
            Err(_) => None,
        })
        .collect())
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
    let q = by_cost(
        base,
        vec![Dimension::EndpointTag, Dimension::PromptVersion],
        usize::MAX,
    );
    let (rows, seen) = tokio::try_join!(
        store.aggregate(ws, q),
        store.versions_seen(ws, base.filters.clone())
    )?;
    let seen_of = |endpoint: &str, version: &str| {
        seen.iter()
            .find(|s| s.endpoint_tag == endpoint && s.prompt_version == version)
            .map_or((0, 0), |s| (s.first_ms, s.last_ms))
    };
    let rows = rows.rows;
    let mut endpoints: Vec<String> = rows.iter().map(|r| r.group[0].clone()).collect();
    endpoints.sort();
    endpoints.dedup();
    // Each endpoint's current version and baseline, then their p95s in one read.
    let mut compared = Vec::new();
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
        let current = versions[0].clone();
        let baseline_stats = match baseline {
            Some(name) => versions.iter().find(|v| v.prompt_version == name).cloned(),
            None => versions.get(1).cloned(),
        };
        compared.push((endpoint, current, baseline_stats, versions));
    }
    let mut wanted = Vec::new();
    for (endpoint, current, baseline, _) in &compared {
        for v in std::iter::once(current).chain(baseline) {
            wanted.push((endpoint.clone(), v.prompt_version.clone()));
        }
    }
    let p95_of = latency_p95s(store, ws, base, &wanted).await?;
    let mut out = Vec::new();
    for (endpoint, mut current, mut baseline_stats, versions) in compared {
        let p95 = |version: &str| {
            p95_of
                .get(&(endpoint.clone(), version.to_string()))
                .copied()
        };
        current.latency_p95_ms = p95(&current.prompt_version);
        if let Some(b) = baseline_stats.as_mut() {
            b.latency_p95_ms = p95(&b.prompt_version);
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

/// The shares of the answer's top groups in the total of every group.
fn shares(answer: &Answer) -> Result<Shares> {
    let total = answer.total().cost;
    let rows = &answer.rows;
    let top: Vec<Share> = rows
        .iter()
        .take(5)
        .map(|r| Share {
            key: r.group[0].clone(),
            share_pct: share_pct(r.sums.cost, total),
        })
        .collect();
    let top1 = rows.first().map(|r| r.sums).unwrap_or_default();
    let top5 = Sums::total(rows.iter().take(5).map(|r| &r.sums))?;
    Ok(Shares {
        top1: share_pct(top1.cost, total),
        top5: share_pct(top5.cost, total),
        top,
    })
}

/// How much of the spend the largest one and five groups of `by` take, now and before:
/// the five largest groups and the store's total of every group, exact at any count.
pub async fn concentration(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    by: Dimension,
) -> Result<Concentration> {
    let q = by_cost(base, vec![by.clone()], 5);
    // Both windows at once: each read runs on its own connection and core.
    let (now, before) = tokio::try_join!(
        store.aggregate(ws, q.clone()),
        store.aggregate(ws, previous_window(&q))
    )?;
    concentration_of(by, &now, &before)
}

/// The concentration of two answers grouped by `by` and ordered by cost (now, before).
fn concentration_of(by: Dimension, now: &Answer, before: &Answer) -> Result<Concentration> {
    let (now, before) = (shares(now)?, shares(before)?);
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
    /// Sum of priced calls only, null when every call is unpriced; see `unpriced`.
    pub cost_usd: Option<Usd>,
    /// Cost of the priced calls over the priced calls (`Sums::cost_per_request`).
    pub cost_per_request: Option<Usd>,
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
    let s = store.aggregate(ws, q).await?.total();
    Ok(Summary {
        requests: s.requests,
        attempts: s.attempts,
        retry_ratio: ratio(s.attempts.saturating_sub(s.requests), s.requests).unwrap_or(0.0),
        cost_usd: s.cost_usd(),
        cost_per_request: s.cost_per_request(),
        tokens: TokenTotals {
            input: s.input,
            cached: s.cached,
            cache_write: s.cache_write,
            output: s.output,
            reasoning: s.reasoning,
        },
        unpriced: s.unpriced(),
        pricing_coverage: ratio(s.priced, s.requests).unwrap_or(1.0),
        usage_missing: s.usage_missing,
        idless: s.idless,
        errors: s.errors,
    })
}
