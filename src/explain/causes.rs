//! The causes: what changed inside the endpoints that moved most (the share and cost of
//! each prompt version and model, retries, errors, tokens, cache) and which of those
//! most likely moved an endpoint's cost per request; and the kinds of driver a change is
//! told as.

use super::split::{cost_per_request, dimension_change, ratio, rfc3339, split_of, Pair, Split};
use crate::money::Usd;
use crate::query::{Dimension, Row, Sums};
use serde::Serialize;

/// Endpoints looked into for causes (prompt versions, models, retries, tokens, cache).
pub const TOP_ENDPOINTS: usize = 3;
/// A version or model "took over" when its share of an endpoint's requests grew by this.
pub(super) const MIX_SHIFT: f64 = 0.2;
/// A ratio (retry ratio, error share, cache hit rate) "moved" by this many points.
const RATIO_SHIFT: f64 = 0.1;
/// A per-request measure "moved" by this relative change.
const RELATIVE_SHIFT: f64 = 0.1;

/// The endpoints worth looking into: the largest changes of the endpoint dimension.
pub fn top_endpoints(baseline: &[Row], current: &[Row]) -> Vec<String> {
    dimension_change(&Dimension::EndpointTag, baseline, current)
        .groups
        .into_iter()
        .filter(|g| g.change_usd.0 != 0)
        .take(TOP_ENDPOINTS)
        .map(|g| g.value)
        .collect()
}

/// What the caller read for one endpoint: its sums, per prompt version (with the time
/// each version was first seen, ever) and per model.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub endpoint: String,
    pub sums: Pair<Sums>,
    pub versions: Vec<MixInput>,
    pub models: Vec<MixInput>,
}

#[derive(Debug, Clone, Default)]
pub struct MixInput {
    pub value: String,
    pub sums: Pair<Sums>,
    pub first_seen_ms: Option<i64>,
}

/// One prompt version or model of an endpoint: its share of the endpoint's requests and
/// its cost per request, in both windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MixRow {
    pub value: String,
    pub requests: Pair<u64>,
    pub share: Pair<Option<f64>>,
    pub cost_per_request: Pair<Option<Usd>>,
    /// When this value was first seen on the endpoint (prompt versions only).
    pub first_seen: Option<String>,
    /// First seen inside the current window.
    pub new_in_window: bool,
}

/// What changed inside one endpoint between the windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointFindings {
    pub endpoint_tag: String,
    pub change_usd: Usd,
    #[serde(flatten)]
    pub split: Split,
    pub requests: Pair<u64>,
    pub cost_per_request: Pair<Option<Usd>>,
    pub retry_ratio: Pair<Option<f64>>,
    pub error_share: Pair<Option<f64>>,
    pub cache_hit_rate: Pair<Option<f64>>,
    pub input_tokens_per_request: Pair<Option<f64>>,
    pub output_tokens_per_request: Pair<Option<f64>>,
    pub prompt_versions: Vec<MixRow>,
    pub models: Vec<MixRow>,
    /// What most likely moved its cost per request, if anything stands out.
    pub cause: Option<Cause>,
}

/// A cause found inside an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    pub kind: Kind,
    pub dimension: String,
    pub value: String,
}

fn pair_of<T>(s: &Pair<Sums>, f: impl Fn(&Sums) -> T) -> Pair<T> {
    Pair {
        baseline: f(&s.baseline),
        current: f(&s.current),
    }
}

fn mix_rows(items: &[MixInput], total: &Pair<Sums>, current: (i64, i64)) -> Vec<MixRow> {
    let mut rows: Vec<MixRow> = items
        .iter()
        .map(|m| MixRow {
            value: m.value.clone(),
            requests: pair_of(&m.sums, |s| s.requests),
            share: Pair {
                baseline: ratio(m.sums.baseline.requests, total.baseline.requests),
                current: ratio(m.sums.current.requests, total.current.requests),
            },
            cost_per_request: pair_of(&m.sums, cost_per_request),
            first_seen: m.first_seen_ms.map(rfc3339),
            new_in_window: m
                .first_seen_ms
                .is_some_and(|t| t >= current.0 && t < current.1),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.requests
            .current
            .cmp(&a.requests.current)
            .then_with(|| a.value.cmp(&b.value))
    });
    rows
}

pub(super) fn shift(r: &MixRow) -> f64 {
    r.share.current.unwrap_or(0.0) - r.share.baseline.unwrap_or(0.0)
}

/// Whether `now` moved away from `before` in the direction of `sign` by at least
/// RELATIVE_SHIFT (a zero baseline counts as moved up).
fn moved(now: Option<f64>, before: Option<f64>, sign: i64) -> bool {
    match (now, before) {
        (Some(n), Some(b)) if b != 0.0 => {
            let rel = (n - b) / b;
            rel.abs() >= RELATIVE_SHIFT && (rel > 0.0) == (sign > 0)
        }
        (Some(n), Some(_)) => n > 0.0 && sign > 0,
        _ => false,
    }
}

fn usd_f(u: Option<Usd>) -> Option<f64> {
    u.map(|u| u.0 as f64)
}

/// The version or model that took over the endpoint's traffic (its share grew by
/// MIX_SHIFT or more) and costs more (or less, following `sign`) per request than the
/// endpoint did before.
fn takeover(rows: &[MixRow], before: Option<Usd>, sign: i64) -> Option<&MixRow> {
    rows.iter()
        .filter(|r| shift(r) >= MIX_SHIFT)
        .filter(|r| moved(usd_f(r.cost_per_request.current), usd_f(before), sign))
        .max_by(|a, b| shift(a).total_cmp(&shift(b)))
}

fn up(p: &Pair<Option<f64>>, by: f64) -> bool {
    matches!((p.baseline, p.current), (Some(b), Some(c)) if c - b >= by)
}

/// The first cause that fits a cost/request change of sign `sign`, in this order: a
/// prompt version or a model that took over, retries or errors, tokens, cache.
fn cause_of(f: &EndpointFindings, sign: i64) -> Option<Cause> {
    let before = f.cost_per_request.baseline;
    let at = |kind: Kind, dimension: Dimension, value: &str| Cause {
        kind,
        dimension: dimension.name(),
        value: value.to_string(),
    };
    if let Some(v) = takeover(&f.prompt_versions, before, sign) {
        return Some(at(Kind::PromptVersion, Dimension::PromptVersion, &v.value));
    }
    if let Some(m) = takeover(&f.models, before, sign) {
        return Some(at(Kind::ModelMix, Dimension::Model, &m.value));
    }
    let endpoint = |kind| Some(at(kind, Dimension::EndpointTag, &f.endpoint_tag));
    if up(&f.retry_ratio, RATIO_SHIFT) || up(&f.error_share, RATIO_SHIFT) {
        return endpoint(Kind::Retries);
    }
    let tokens = |p: &Pair<Option<f64>>| p.current.zip(p.baseline);
    let sum = |p: &Pair<Option<f64>>, q: &Pair<Option<f64>>| {
        (tokens(p).zip(tokens(q))).map(|((a, b), (c, d))| (a + c, b + d))
    };
    if let Some((now, before)) = sum(&f.input_tokens_per_request, &f.output_tokens_per_request) {
        if moved(Some(now), Some(before), sign) {
            return endpoint(Kind::Tokens);
        }
    }
    let cache = &f.cache_hit_rate;
    if let (Some(b), Some(c)) = (cache.baseline, cache.current) {
        // Less cache, higher cost per request; more cache, lower.
        if (b - c) * sign as f64 >= RATIO_SHIFT {
            return endpoint(Kind::Cache);
        }
    }
    None
}

/// Look into one endpoint: its ratios, version and model mix, and the likely cause of
/// its cost/request change.
pub fn endpoint_findings(e: &EndpointInput, current: (i64, i64)) -> EndpointFindings {
    let s = &e.sums;
    let (b, c) = (&s.baseline, &s.current);
    let mut f = EndpointFindings {
        endpoint_tag: e.endpoint.clone(),
        change_usd: Usd(c.cost.0 - b.cost.0),
        split: split_of(b, c),
        requests: pair_of(s, |s| s.requests),
        cost_per_request: pair_of(s, cost_per_request),
        retry_ratio: pair_of(s, |s| {
            ratio(s.attempts.saturating_sub(s.requests), s.requests)
        }),
        error_share: pair_of(s, |s| ratio(s.errors, s.requests)),
        cache_hit_rate: pair_of(s, |s| ratio(s.cached, s.input)),
        input_tokens_per_request: pair_of(s, |s| ratio(s.input, s.requests)),
        output_tokens_per_request: pair_of(s, |s| ratio(s.output, s.requests)),
        prompt_versions: mix_rows(&e.versions, s, current),
        models: mix_rows(&e.models, s, current),
        cause: None,
    };
    let rate = f.split.cost_per_request_usd.0;
    if b.requests > 0 && c.requests > 0 && rate != 0 {
        f.cause = cause_of(&f, rate.signum());
    }
    f
}

/// What a driver is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Volume,
    CostPerRequest,
    NewGroup,
    PromptVersion,
    ModelMix,
    Retries,
    Tokens,
    Cache,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Volume => "volume",
            Kind::CostPerRequest => "cost_per_request",
            Kind::NewGroup => "new_group",
            Kind::PromptVersion => "prompt_version",
            Kind::ModelMix => "model_mix",
            Kind::Retries => "retries",
            Kind::Tokens => "tokens",
            Kind::Cache => "cache",
        }
    }
}

/// One finding that explains part of the change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub kind: Kind,
    pub dimension: String,
    pub value: String,
    /// The endpoint a finding inside an endpoint belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_tag: Option<String>,
    /// The change of the group the finding is about (the endpoint for findings inside
    /// one); shares of different dimensions overlap (the same dollars seen by endpoint
    /// and by tenant).
    pub contribution_usd: Usd,
    pub contribution_pct: Option<f64>,
    pub sentence: String,
}
