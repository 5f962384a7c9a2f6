//! Why spend changed between two windows: the change split into a volume effect and a
//! cost-per-request effect (overall, per group of each dimension), what changed inside
//! the endpoints that moved most, the few drivers that explain most of it, and a
//! paragraph in words. Pure: the caller passes the aggregate rows of both windows.
//!
//! The split is the two-factor midpoint (Shapley) decomposition of cost = requests x
//! cost/request: volume = Δn x (p0 + p1) / 2 and cost/request = Δp x (n0 + n1) / 2. Of
//! the usual choices it is the one that is symmetric (the same answer with the windows
//! swapped, negated) and leaves no residual "interaction" term to explain. It is
//! computed in integer arithmetic: the volume effect is rounded to the nearest nano-USD
//! and the cost/request effect is the rest, so the parts add up exactly. Groups without
//! baseline requests are `new`, groups without current requests `vanished`: their whole
//! change is their own part, since a cost/request change is undefined for them.

use crate::money::Usd;
use crate::query::{Dimension, Row, Sums};
use serde::Serialize;

/// Endpoints looked into for causes (prompt versions, models, retries, tokens, cache).
pub const TOP_ENDPOINTS: usize = 3;
/// Drivers at most, and the smallest share of the change one must explain to be listed.
const MAX_DRIVERS: usize = 6;
/// Shares of money are per mille, compared in integers (money never goes through f64).
const MIN_DRIVER_SHARE_PER_MILLE: i64 = 50;
/// A total change below this share of the spend counts as flat: no drivers.
const FLAT_SHARE_PER_MILLE: i64 = 5;
/// Another dimension's group is "the same change" within this share of it.
const SAME_DOLLARS_PER_MILLE: i64 = 20;
/// A version or model "took over" when its share of an endpoint's requests grew by this.
const MIX_SHIFT: f64 = 0.2;
/// A ratio (retry ratio, error share, cache hit rate) "moved" by this many points.
const RATIO_SHIFT: f64 = 0.1;
/// A per-request measure "moved" by this relative change.
const RELATIVE_SHIFT: f64 = 0.1;

/// A value in the baseline window and in the current one.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Pair<T> {
    pub baseline: T,
    pub current: T,
}

/// The two parts of one change; `volume + cost_per_request` is the change exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    pub volume_usd: Usd,
    pub cost_per_request_usd: Usd,
}

/// The split of one group's change between two windows. Volume counts priced calls,
/// the same calls `Sums::cost_per_request` divides by, so that cost = calls x
/// cost/request holds on both sides; unpriced calls have no known cost and move
/// neither part.
fn split_of(b: &Sums, c: &Sums) -> Split {
    split(b.priced, b.cost, c.priced, c.cost)
}

/// Round num / den (den > 0) to the nearest integer, halves away from zero.
fn div_round(num: i128, den: i128) -> i128 {
    let (q, r) = (num / den, num % den);
    if 2 * r.abs() >= den {
        q + num.signum()
    } else {
        q
    }
}

/// The midpoint split of c1 - c0 for n0 -> n1 requests costing c0 -> c1 (nano-USD).
/// With no requests on one side everything is volume (callers report those groups as
/// new or vanished).
pub fn split(n0: u64, c0: Usd, n1: u64, c1: Usd) -> Split {
    let change = c1.0 as i128 - c0.0 as i128;
    let volume = if n0 == 0 || n1 == 0 {
        change
    } else {
        let (n0, n1, c0, c1) = (n0 as i128, n1 as i128, c0.0 as i128, c1.0 as i128);
        // volume = (n1 - n0) * (c0/n0 + c1/n1) / 2 = (n1 - n0)(c0 n1 + c1 n0) / (2 n0 n1).
        // One division when it fits in i128 (any realistic window); otherwise one per
        // term, which is at most a nano off the exact value. The rest is cost/request
        // either way, so the parts always add up.
        let exact = (c0 * n1 + c1 * n0)
            .checked_mul(n1 - n0)
            .zip((2 * n0).checked_mul(n1));
        match exact {
            Some((num, den)) => div_round(num, den),
            None => div_round((n1 - n0) * c0, 2 * n0) + div_round((n1 - n0) * c1, 2 * n1),
        }
    };
    Split {
        volume_usd: Usd(volume as i64),
        cost_per_request_usd: Usd((change - volume) as i64),
    }
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d != 0).then(|| n as f64 / d as f64)
}

fn change_pct(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| (now - before) / before * 100.0)
}

/// Cost per request: the one definition (`Sums::cost_per_request`, priced calls only).
fn cost_per_request(s: &Sums) -> Option<Usd> {
    s.cost_per_request()
}

/// The headline measures of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub from: String,
    pub to: String,
    pub cost_usd: Usd,
    pub requests: u64,
    pub cost_per_request: Option<Usd>,
    pub tokens_per_request: Option<f64>,
    pub input_tokens_per_request: Option<f64>,
    pub output_tokens_per_request: Option<f64>,
    pub retry_ratio: Option<f64>,
    pub error_share: Option<f64>,
    pub cache_hit_rate: Option<f64>,
    pub unpriced: u64,
}

impl Totals {
    fn of(s: &Sums, (from, to): (i64, i64)) -> Totals {
        Totals {
            from: rfc3339(from),
            to: rfc3339(to),
            cost_usd: s.cost,
            requests: s.requests,
            cost_per_request: cost_per_request(s),
            tokens_per_request: s.tokens_per_request(),
            input_tokens_per_request: ratio(s.input, s.requests),
            output_tokens_per_request: ratio(s.output, s.requests),
            retry_ratio: ratio(s.attempts.saturating_sub(s.requests), s.requests),
            error_share: ratio(s.errors, s.requests),
            cache_hit_rate: ratio(s.cached, s.input),
            unpriced: s.unpriced(),
        }
    }
}

/// How a group took part in the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// In both windows: the change splits into volume and cost/request.
    Both,
    /// Only in the current window.
    New,
    /// Only in the baseline window.
    Vanished,
}

/// One group of a dimension: its numbers in both windows and its part of the change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupChange {
    pub value: String,
    pub presence: Presence,
    pub requests: Pair<u64>,
    /// Cost of the priced calls; None on a side whose calls are all unpriced (see
    /// `unpriced`), never $0 for unknown.
    pub cost_usd: Pair<Option<Usd>>,
    pub unpriced: Pair<u64>,
    pub cost_per_request: Pair<Option<Usd>>,
    pub change_usd: Usd,
    #[serde(flatten)]
    pub split: Split,
    /// This group's change as a share of the total change, in percent (negative when it
    /// went against the total).
    pub share_of_change_pct: Option<f64>,
    pub requests_change_pct: Option<f64>,
    pub cost_per_request_change_pct: Option<f64>,
}

/// One dimension: its groups ranked by the size of their change, and the change split
/// four ways; `volume + costPerRequest + new + vanished` is the total change exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DimensionChange {
    pub dimension: String,
    pub change_usd: Usd,
    #[serde(flatten)]
    pub split: Split,
    pub new_usd: Usd,
    pub vanished_usd: Usd,
    pub groups: Vec<GroupChange>,
}

/// The groups of both windows matched by value.
fn pairs(baseline: &[Row], current: &[Row]) -> Vec<(String, Pair<Sums>)> {
    let mut out: std::collections::BTreeMap<String, Pair<Sums>> = Default::default();
    // Each group is one row of its window's answer: its sums are taken as they are.
    for r in baseline {
        out.entry(r.group.join("/")).or_default().baseline = r.sums;
    }
    for r in current {
        out.entry(r.group.join("/")).or_default().current = r.sums;
    }
    out.into_iter().collect()
}

fn group_change(value: String, s: &Pair<Sums>, total_change: i64) -> GroupChange {
    let (b, c) = (&s.baseline, &s.current);
    let presence = match (b.requests, c.requests) {
        (0, _) => Presence::New,
        (_, 0) => Presence::Vanished,
        _ => Presence::Both,
    };
    let change = c.cost.0 - b.cost.0;
    let cpr = Pair {
        baseline: cost_per_request(b),
        current: cost_per_request(c),
    };
    GroupChange {
        value,
        presence,
        requests: Pair {
            baseline: b.requests,
            current: c.requests,
        },
        cost_usd: Pair {
            baseline: b.cost_usd(),
            current: c.cost_usd(),
        },
        unpriced: Pair {
            baseline: b.unpriced(),
            current: c.unpriced(),
        },
        cost_per_request: cpr,
        change_usd: Usd(change),
        split: split_of(b, c),
        share_of_change_pct: (total_change != 0)
            .then(|| change as f64 / total_change as f64 * 100.0),
        requests_change_pct: change_pct(c.requests as f64, b.requests as f64),
        cost_per_request_change_pct: match (cpr.current, cpr.baseline) {
            (Some(now), Some(before)) => change_pct(now.0 as f64, before.0 as f64),
            _ => None,
        },
    }
}

/// Decompose one dimension's change: every group with its split, largest change first
/// (ties by value, for stable answers).
pub fn dimension_change(
    dimension: &Dimension,
    baseline: &[Row],
    current: &[Row],
) -> DimensionChange {
    let groups_sums = pairs(baseline, current);
    let total: i64 = groups_sums
        .iter()
        .map(|(_, s)| s.current.cost.0 - s.baseline.cost.0)
        .sum();
    let mut groups: Vec<GroupChange> = groups_sums
        .into_iter()
        .map(|(value, s)| group_change(value, &s, total))
        .collect();
    groups.sort_by(|a, b| {
        b.change_usd
            .0
            .abs()
            .cmp(&a.change_usd.0.abs())
            .then_with(|| a.value.cmp(&b.value))
    });
    let (mut volume, mut cpr, mut new, mut vanished) = (0i64, 0i64, 0i64, 0i64);
    for g in &groups {
        match g.presence {
            Presence::New => new += g.change_usd.0,
            Presence::Vanished => vanished += g.change_usd.0,
            Presence::Both => {
                volume += g.split.volume_usd.0;
                cpr += g.split.cost_per_request_usd.0;
            }
        }
    }
    DimensionChange {
        dimension: dimension.name(),
        change_usd: Usd(total),
        split: Split {
            volume_usd: Usd(volume),
            cost_per_request_usd: Usd(cpr),
        },
        new_usd: Usd(new),
        vanished_usd: Usd(vanished),
        groups,
    }
}

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

fn shift(r: &MixRow) -> f64 {
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

/// Everything the caller read, for both windows.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub current: (i64, i64),
    pub baseline: (i64, i64),
    pub total: Pair<Sums>,
    /// The requested dimensions, in order, with their groups in both windows.
    pub dimensions: Vec<(Dimension, Pair<Vec<Row>>)>,
    pub endpoints: Vec<EndpointInput>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub current: Totals,
    pub baseline: Totals,
    pub change_usd: Usd,
    pub change_pct: Option<f64>,
    /// The total change split into volume and cost/request (adds up exactly).
    pub effects: Split,
    pub dimensions: Vec<DimensionChange>,
    pub endpoints: Vec<EndpointFindings>,
    pub drivers: Vec<Driver>,
    pub summary: String,
    /// How the split is computed, in words.
    pub method: &'static str,
}

pub const METHOD: &str = "two-factor midpoint (Shapley) decomposition of cost = priced requests x cost/request (cost of priced calls / priced calls; unpriced calls have no known cost): volume = Δrequests x mean of both cost/request, cost/request = Δcost/request x mean of both request counts; integer nano-USD, volume rounded to the nearest nano and cost/request taking the rest so the parts add up exactly; groups only in one window are new or vanished";

/// Explain the change from the baseline window to the current one.
pub fn explain(input: &Input) -> Explanation {
    let t = &input.total;
    let change = t.current.cost.0 - t.baseline.cost.0;
    let dimensions: Vec<DimensionChange> = input
        .dimensions
        .iter()
        .map(|(d, rows)| dimension_change(d, &rows.baseline, &rows.current))
        .collect();
    let endpoints: Vec<EndpointFindings> = input
        .endpoints
        .iter()
        .map(|e| endpoint_findings(e, input.current))
        .collect();
    let spend = t.baseline.cost.0.max(t.current.cost.0);
    let drivers = drivers(&dimensions, &endpoints, change, spend);
    let mut out = Explanation {
        current: Totals::of(&t.current, input.current),
        baseline: Totals::of(&t.baseline, input.baseline),
        change_usd: Usd(change),
        change_pct: change_pct(t.current.cost.0 as f64, t.baseline.cost.0 as f64),
        effects: split_of(&t.baseline, &t.current),
        dimensions,
        endpoints,
        drivers,
        summary: String::new(),
        method: METHOD,
    };
    out.summary = summary(&out);
    out
}

/// The few groups whose change explains most of the total: ranked by size, each at
/// least MIN_DRIVER_SHARE_PER_MILLE of it, with endpoints refined by their cause. The
/// versions or models behind an endpoint's cause are that cause seen from the other
/// side, so they are left out; a group of another dimension with the same dollars (the
/// one tenant behind an endpoint's rise, the endpoint's only model) is named in the
/// listed driver's sentence instead of being listed again.
fn drivers(
    dims: &[DimensionChange],
    endpoints: &[EndpointFindings],
    total: i64,
    spend: i64,
) -> Vec<Driver> {
    // A flat total has nothing to explain (its offsetting moves are in the tables).
    let scale = total.abs();
    if scale == 0 || per_mille(scale, spend, FLAT_SHARE_PER_MILLE).is_lt() {
        return Vec::new();
    }
    let mut candidates: Vec<(&DimensionChange, &GroupChange)> = dims
        .iter()
        .flat_map(|d| d.groups.iter().map(move |g| (d, g)))
        .filter(|(_, g)| per_mille(g.change_usd.0.abs(), scale, MIN_DRIVER_SHARE_PER_MILLE).is_ge())
        .collect();
    // Stable: equal changes keep the order of `by`.
    candidates.sort_by_key(|(_, g)| std::cmp::Reverse(g.change_usd.0.abs()));
    let mut out: Vec<Driver> = Vec::new();
    let mut also: Vec<Vec<String>> = Vec::new();
    for (d, g) in candidates {
        if behind_cause(endpoints, d, g) {
            continue;
        }
        if let Some(i) = same_dollars(&out, d, g) {
            also[i].push(label(&d.dimension, &g.value));
            continue;
        }
        if out.len() < MAX_DRIVERS {
            let finding = endpoints.iter().find(|e| {
                d.dimension == Dimension::EndpointTag.name() && e.endpoint_tag == g.value
            });
            out.push(driver(&d.dimension, g, finding, total));
            also.push(Vec::new());
        }
    }
    for (d, names) in out.iter_mut().zip(also) {
        if !names.is_empty() {
            let s = d.sentence.trim_end_matches('.');
            d.sentence = format!("{s}; the same change is {}.", names.join(" and "));
        }
    }
    out
}

/// Whether group `g` of dimension `d` is a version or model whose share moved inside an
/// endpoint whose cause is that version or model mix.
fn behind_cause(endpoints: &[EndpointFindings], d: &DimensionChange, g: &GroupChange) -> bool {
    endpoints.iter().any(|e| {
        let rows = match e.cause.as_ref().map(|c| c.kind) {
            Some(Kind::PromptVersion) if d.dimension == Dimension::PromptVersion.name() => {
                &e.prompt_versions
            }
            Some(Kind::ModelMix) if d.dimension == Dimension::Model.name() => &e.models,
            _ => return false,
        };
        rows.iter()
            .any(|r| r.value == g.value && shift(r).abs() >= MIX_SHIFT)
    })
}

/// The listed driver of another dimension whose change is within 2% of `g`'s.
fn same_dollars(out: &[Driver], d: &DimensionChange, g: &GroupChange) -> Option<usize> {
    out.iter().position(|k| {
        k.dimension != d.dimension
            && k.contribution_usd.0.signum() == g.change_usd.0.signum()
            && per_mille(
                (k.contribution_usd.0 - g.change_usd.0).abs(),
                g.change_usd.0.abs(),
                SAME_DOLLARS_PER_MILLE,
            )
            .is_le()
    })
}

/// How `part` compares with `per_mille`/1000 of `whole`, exactly: cross-multiplied in
/// i128 (an i64 amount times a thousand cannot overflow it).
fn per_mille(part: i64, whole: i64, per_mille: i64) -> std::cmp::Ordering {
    (part as i128 * 1000).cmp(&(whole as i128 * per_mille as i128))
}

fn driver(
    dimension: &str,
    g: &GroupChange,
    finding: Option<&EndpointFindings>,
    total: i64,
) -> Driver {
    let rate_led = g.split.cost_per_request_usd.0.abs() > g.split.volume_usd.0.abs();
    let cause = finding.and_then(|f| f.cause.as_ref()).filter(|_| rate_led);
    let kind = match (g.presence, cause) {
        (Presence::New, _) => Kind::NewGroup,
        (Presence::Vanished, _) => Kind::Volume,
        (Presence::Both, Some(c)) => c.kind,
        (Presence::Both, None) if rate_led => Kind::CostPerRequest,
        (Presence::Both, None) => Kind::Volume,
    };
    let (dim, value, endpoint) = match cause {
        Some(c) if kind == c.kind && c.dimension != dimension => {
            (c.dimension.clone(), c.value.clone(), Some(g.value.clone()))
        }
        _ => (dimension.to_string(), g.value.clone(), None),
    };
    Driver {
        kind,
        sentence: sentence(kind, dimension, g, finding, total),
        dimension: dim,
        value,
        endpoint_tag: endpoint,
        contribution_usd: g.change_usd,
        contribution_pct: g.share_of_change_pct,
    }
}

/// "endpoint summarize.doc", "tenant acme", "promptVersion v4", "team x" (tags).
fn label(dimension: &str, value: &str) -> String {
    let word = match dimension {
        "endpointTag" => "endpoint",
        "tenantId" => "tenant",
        "userId" => "user",
        other => other.strip_prefix("tag:").unwrap_or(other),
    };
    format!("{word} {value}")
}

fn pct_text(p: f64) -> String {
    format!("{p:.0}%")
}

fn signed_pct(p: f64) -> String {
    if p >= 0.0 {
        format!("+{p:.0}%")
    } else {
        format!("−{:.0}%", -p)
    }
}

fn signed_usd(u: Usd) -> String {
    if u.0 >= 0 {
        format!("+{}", u.readable())
    } else {
        format!("−{}", Usd(-u.0).readable())
    }
}

/// "rose 2.9x", "rose 12%", "fell 30%", "was flat".
fn moved_words(now: f64, before: f64) -> String {
    if before == 0.0 {
        return if now > 0.0 {
            "rose from zero"
        } else {
            "was flat"
        }
        .into();
    }
    let r = now / before;
    if r >= 2.0 {
        format!("rose {r:.1}x")
    } else if r >= 1.05 {
        format!("rose {:.0}%", (r - 1.0) * 100.0)
    } else if r <= 0.95 {
        format!("fell {:.0}%", (1.0 - r) * 100.0)
    } else {
        "was flat".into()
    }
}

fn volume_words(g: &GroupChange) -> String {
    match g.requests_change_pct {
        Some(p) if p.abs() < 5.0 => "volume was flat".into(),
        Some(p) => format!("volume {}", signed_pct(p)),
        None => "volume new".into(),
    }
}

fn cpr_words(g: &GroupChange) -> String {
    let p = g.cost_per_request;
    match (p.baseline, p.current) {
        (Some(b), Some(c)) => format!(
            "cost/request {} ({} → {})",
            moved_words(c.0 as f64, b.0 as f64),
            b.readable(),
            c.readable()
        ),
        _ => "cost/request n/a".into(),
    }
}

fn share_text(p: Option<f64>) -> String {
    p.map_or("—".into(), |p| pct_text(p * 100.0))
}

/// How the sentence opens: the group's part of the change.
fn lead(dimension: &str, g: &GroupChange, total: i64) -> String {
    let who = match g.presence {
        Presence::New => format!("new {}", label(dimension, &g.value)),
        _ => label(dimension, &g.value),
    };
    let same_way = total != 0 && g.change_usd.0.signum() == total.signum();
    match g.share_of_change_pct {
        Some(p) if same_way => {
            let rise = if total > 0 { "rise" } else { "drop" };
            format!("{} of the {rise} comes from {who}", pct_text(p))
        }
        _ => format!(
            "{who} went {} ({})",
            if g.change_usd.0 > 0 { "up" } else { "down" },
            signed_usd(g.change_usd)
        ),
    }
}

/// The plain sentence of one driver.
fn sentence(
    kind: Kind,
    dimension: &str,
    g: &GroupChange,
    f: Option<&EndpointFindings>,
    total: i64,
) -> String {
    let lead = lead(dimension, g, total);
    let tail = match (kind, f) {
        (Kind::NewGroup, _) => format!(
            ", which had no requests in the baseline ({} now, {})",
            g.requests.current,
            crate::money::with_unpriced(g.cost_usd.current, g.unpriced.current)
        ),
        (Kind::Volume, _) if g.presence == Presence::Vanished => format!(
            ", which stopped ({} requests in the baseline)",
            g.requests.baseline
        ),
        (Kind::Volume, _) => format!(
            ", whose volume {} ({} → {} requests); {}",
            moved_words(g.requests.current as f64, g.requests.baseline as f64),
            g.requests.baseline,
            g.requests.current,
            cpr_words(g)
        ),
        (Kind::PromptVersion, Some(f)) => {
            let v = cause_row(&f.prompt_versions, f);
            format!(
                ", whose {} after promptVersion {} went live{} ({} of its requests now); {}",
                cpr_words(g),
                v.map_or("", |v| v.value.as_str()),
                v.and_then(|v| v.first_seen.as_deref())
                    .and_then(day_time)
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default(),
                share_text(v.and_then(|v| v.share.current)),
                volume_words(g)
            )
        }
        (Kind::ModelMix, Some(f)) => {
            let m = cause_row(&f.models, f);
            format!(
                ", whose {} as its traffic moved to model {} ({} → {} of requests); {}",
                cpr_words(g),
                m.map_or("", |m| m.value.as_str()),
                share_text(m.and_then(|m| m.share.baseline).or(Some(0.0))),
                share_text(m.and_then(|m| m.share.current)),
                volume_words(g)
            )
        }
        (Kind::Retries, Some(f)) => format!(
            ", whose retry ratio went from {} to {} and error share from {} to {}; {} (calls that fail without usage cost nothing, retries count once)",
            share_text(f.retry_ratio.baseline),
            share_text(f.retry_ratio.current),
            share_text(f.error_share.baseline),
            share_text(f.error_share.current),
            cpr_words(g)
        ),
        (Kind::Tokens, Some(f)) => {
            let rel = |p: &Pair<Option<f64>>| match (p.baseline, p.current) {
                (Some(b), Some(c)) => change_pct(c, b).map_or("n/a".into(), signed_pct),
                _ => "n/a".into(),
            };
            format!(
                ", whose {} with more tokens per request (input {}, output {}); {}",
                cpr_words(g),
                rel(&f.input_tokens_per_request),
                rel(&f.output_tokens_per_request),
                volume_words(g)
            )
        }
        (Kind::Cache, Some(f)) => format!(
            ", whose cache hit rate went from {} to {}; {}; {}",
            share_text(f.cache_hit_rate.baseline),
            share_text(f.cache_hit_rate.current),
            cpr_words(g),
            volume_words(g)
        ),
        _ => format!(", whose {}; {}", cpr_words(g), volume_words(g)),
    };
    format!("{lead}{tail}.")
}

fn cause_row<'a>(rows: &'a [MixRow], f: &EndpointFindings) -> Option<&'a MixRow> {
    let value = &f.cause.as_ref()?.value;
    rows.iter().find(|r| &r.value == value)
}

/// The one paragraph: the total change, how it splits, then the leading drivers.
fn summary(e: &Explanation) -> String {
    let (b, c) = (&e.baseline, &e.current);
    if b.requests == 0 && c.requests == 0 {
        return "No requests in either window.".into();
    }
    let mut out = if e.change_usd.0 == 0 {
        format!("Spend was unchanged at {}", c.cost_usd.readable())
    } else {
        format!(
            "Spend {} from {} to {}{}",
            if e.change_usd.0 > 0 { "rose" } else { "fell" },
            b.cost_usd.readable(),
            c.cost_usd.readable(),
            e.change_pct
                .map(|p| format!(" ({})", signed_pct(p)))
                .unwrap_or_default()
        )
    };
    out.push_str(&format!(
        " in {} against {}; requests {} → {}; volume effect {}, cost/request effect {}.",
        span(&c.from, &c.to),
        span(&b.from, &b.to),
        crate::money::group_digits(&b.requests.to_string()),
        crate::money::group_digits(&c.requests.to_string()),
        signed_usd(e.effects.volume_usd),
        signed_usd(e.effects.cost_per_request_usd)
    ));
    for d in e.drivers.iter().take(3) {
        out.push(' ');
        out.push_str(&capitalize(&d.sentence));
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// RFC 3339 in UTC.
fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `Nov 18 06:00 – Nov 25 06:00 UTC`.
fn span(from: &str, to: &str) -> String {
    let short = |t: &str| day_time(t).map(|t| t.trim_end_matches(" UTC").to_string());
    format!(
        "{} – {} UTC",
        short(from).unwrap_or_default(),
        short(to).unwrap_or_default()
    )
}

/// `Nov 20 14:00 UTC` from RFC 3339 text.
fn day_time(text: &str) -> Option<String> {
    let t: jiff::Timestamp = text.parse().ok()?;
    Some(
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%b %-d %H:%M UTC")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const USD: i64 = 1_000_000_000;

    fn sums(requests: u64, cost: i64) -> Sums {
        Sums {
            requests,
            attempts: requests,
            priced: requests,
            cost: Usd(cost),
            ..Default::default()
        }
    }

    fn row(value: &str, requests: u64, cost: i64) -> Row {
        Row {
            group: vec![value.to_string()],
            bucket_ms: None,
            sums: sums(requests, cost),
        }
    }

    fn parts(v: i64, r: i64) -> Split {
        Split {
            volume_usd: Usd(v),
            cost_per_request_usd: Usd(r),
        }
    }

    #[test]
    fn unpriced_calls_are_no_volume_and_an_unpriced_group_has_no_cost() {
        // 2 priced calls at $0.01 -> 3 priced at $0.02 average, plus unpriced calls on
        // both sides: cost/request is over priced calls (the one definition), the split
        // counts priced calls, and a group whose calls are all unpriced has no cost.
        let mixed = |priced: u64, unpriced: u64, cost: i64| Row {
            group: vec!["support.reply".into()],
            bucket_ms: None,
            sums: Sums {
                requests: priced + unpriced,
                priced,
                cost: Usd(cost),
                ..Default::default()
            },
        };
        let mut unknown = mixed(0, 4, 0);
        unknown.group = vec!["labs.unpriced".into()];
        let d = dimension_change(
            &Dimension::EndpointTag,
            &[mixed(2, 1, 20_000_000), unknown.clone()],
            &[mixed(3, 2, 60_000_000), unknown],
        );
        let g = d
            .groups
            .iter()
            .find(|g| g.value == "support.reply")
            .unwrap();
        assert_eq!(g.cost_per_request.current, Some(Usd(20_000_000)));
        assert_eq!(g.split, parts(15_000_000, 25_000_000));
        let u = d
            .groups
            .iter()
            .find(|g| g.value == "labs.unpriced")
            .unwrap();
        assert_eq!(
            u.cost_usd,
            Pair {
                baseline: None,
                current: None
            }
        );
        assert_eq!(
            u.unpriced,
            Pair {
                baseline: 4,
                current: 4
            }
        );
        assert_eq!(u.cost_per_request.current, None);
    }

    #[test]
    fn volume_only() {
        // 100 -> 200 requests at $0.01 each: all of the +$1 is volume.
        assert_eq!(split(100, Usd(USD), 200, Usd(2 * USD)), parts(USD, 0));
    }

    #[test]
    fn price_only() {
        // 100 requests, $0.01 -> $0.03 each: all of the +$2 is cost/request.
        assert_eq!(split(100, Usd(USD), 100, Usd(3 * USD)), parts(0, 2 * USD));
    }

    #[test]
    fn both_at_the_midpoint() {
        // 100 -> 200 requests, $0.01 -> $0.015: volume 100 x $0.0125 = $1.25,
        // cost/request $0.005 x 150 = $0.75; together the +$2.
        assert_eq!(
            split(100, Usd(USD), 200, Usd(3 * USD)),
            parts(1_250_000_000, 750_000_000)
        );
        // Swapping the windows negates both parts (the midpoint split is symmetric).
        assert_eq!(
            split(200, Usd(3 * USD), 100, Usd(USD)),
            parts(-1_250_000_000, -750_000_000)
        );
    }

    #[test]
    fn rounding_goes_to_the_nearest_nano_and_the_rest_to_cost_per_request() {
        // 3 -> 7 requests, 10 -> 20 nanos: exact volume 520/42 = 12.38, cost/request
        // -2.38; volume rounds to 12, cost/request takes -2 so they add up to 10.
        assert_eq!(split(3, Usd(10), 7, Usd(20)), parts(12, -2));
        // A half rounds away from zero: 1 -> 2 requests, 0 -> 2 nanos: volume 1 x 0.5,
        // cost/request 1 x 1.5; and the same backwards.
        assert_eq!(split(1, Usd(0), 2, Usd(2)), parts(1, 1));
        assert_eq!(split(2, Usd(2), 1, Usd(0)), parts(-1, -1));
    }

    #[test]
    fn zero_baseline_cost_and_zero_baseline_requests() {
        // $0 before (unpriced or failed calls): 10 -> 20 requests, $0 -> $2. Volume at
        // the mean cost/request ($0.05) x 10 = $0.50, the rest is cost/request.
        assert_eq!(
            split(10, Usd(0), 20, Usd(2 * USD)),
            parts(500_000_000, 1_500_000_000)
        );
        // No requests before: everything is volume (the group is new).
        assert_eq!(split(0, Usd(0), 5, Usd(USD)), parts(USD, 0));
        let e = explain(&Input {
            current: (10, 20),
            baseline: (0, 10),
            total: Pair {
                baseline: Sums::default(),
                current: sums(5, USD),
            },
            ..Default::default()
        });
        assert_eq!(e.effects, parts(USD, 0));
        assert_eq!(e.change_pct, None);
        assert!(
            e.summary.starts_with("Spend rose from $0.00 to $1.00"),
            "{}",
            e.summary
        );
    }

    #[test]
    fn new_and_vanished_groups_are_their_own_parts() {
        let d = dimension_change(
            &Dimension::TenantId,
            &[row("a", 100, USD), row("gone", 10, 300_000_000)],
            &[row("a", 200, 2 * USD), row("fresh", 4, 800_000_000)],
        );
        assert_eq!(d.change_usd, Usd(USD + 800_000_000 - 300_000_000));
        assert_eq!(d.split, parts(USD, 0));
        assert_eq!(d.new_usd, Usd(800_000_000));
        assert_eq!(d.vanished_usd, Usd(-300_000_000));
        let by_value = |v: &str| d.groups.iter().find(|g| g.value == v).unwrap();
        assert_eq!(by_value("fresh").presence, Presence::New);
        assert_eq!(by_value("gone").presence, Presence::Vanished);
        assert_eq!(by_value("a").presence, Presence::Both);
        // Ranked by the size of the change; shares of the $1.50 change.
        let order: Vec<&str> = d.groups.iter().map(|g| g.value.as_str()).collect();
        assert_eq!(order, ["a", "fresh", "gone"]);
        assert_eq!(by_value("gone").share_of_change_pct, Some(-20.0));
    }

    #[test]
    fn parts_add_up_exactly_on_random_groups() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..200 {
            let mut base = Vec::new();
            let mut cur = Vec::new();
            for g in 0..rng.random_range(1..12) {
                let name = format!("g{g}");
                if rng.random_bool(0.85) {
                    base.push(row(
                        &name,
                        rng.random_range(1..100_000),
                        rng.random_range(0..10_000 * USD),
                    ));
                }
                if rng.random_bool(0.85) {
                    cur.push(row(
                        &name,
                        rng.random_range(1..100_000),
                        rng.random_range(0..10_000 * USD),
                    ));
                }
            }
            let d = dimension_change(&Dimension::Model, &base, &cur);
            let total: i64 = cur.iter().map(|r| r.sums.cost.0).sum::<i64>()
                - base.iter().map(|r| r.sums.cost.0).sum::<i64>();
            assert_eq!(d.change_usd.0, total);
            let parts = d.split.volume_usd.0
                + d.split.cost_per_request_usd.0
                + d.new_usd.0
                + d.vanished_usd.0;
            assert_eq!(parts, total);
            for g in &d.groups {
                assert_eq!(
                    g.split.volume_usd.0 + g.split.cost_per_request_usd.0,
                    g.change_usd.0
                );
                if g.presence == Presence::Both {
                    // Within half a nano of the real-valued Shapley volume effect.
                    let (n0, n1) = (g.requests.baseline as f64, g.requests.current as f64);
                    let (c0, c1) = (
                        g.cost_usd.baseline.unwrap().0 as f64,
                        g.cost_usd.current.unwrap().0 as f64,
                    );
                    let exact = (n1 - n0) * (c0 / n0 + c1 / n1) / 2.0;
                    assert!(
                        (g.split.volume_usd.0 as f64 - exact).abs() <= 0.5 + exact.abs() * 1e-12
                    );
                }
            }
        }
    }

    fn two_dims(endpoints: Pair<Vec<Row>>, tenants: Pair<Vec<Row>>) -> Input {
        let total = |rows: &[Row]| Sums::total(rows.iter().map(|r| &r.sums)).unwrap();
        Input {
            current: (7 * 86_400_000, 14 * 86_400_000),
            baseline: (0, 7 * 86_400_000),
            total: Pair {
                baseline: total(&endpoints.baseline),
                current: total(&endpoints.current),
            },
            dimensions: vec![
                (Dimension::EndpointTag, endpoints),
                (Dimension::TenantId, tenants),
            ],
            endpoints: vec![],
        }
    }

    #[test]
    fn the_first_driver_is_the_largest_change_with_its_kind() {
        // support.reply triples its volume; chat.assist is flat; tenants share it out.
        let e = explain(&two_dims(
            Pair {
                baseline: vec![
                    row("support.reply", 100, USD),
                    row("chat.assist", 100, 2 * USD),
                ],
                current: vec![
                    row("support.reply", 300, 3 * USD),
                    row("chat.assist", 100, 2 * USD),
                ],
            },
            Pair {
                baseline: vec![
                    row("acme", 100, 1_500_000_000),
                    row("globex", 100, 1_500_000_000),
                ],
                current: vec![
                    row("acme", 200, 2_500_000_000),
                    row("globex", 200, 2_500_000_000),
                ],
            },
        ));
        assert_eq!(e.change_usd, Usd(2 * USD));
        let d = &e.drivers[0];
        assert_eq!(
            (d.kind, d.dimension.as_str(), d.value.as_str()),
            (Kind::Volume, "endpointTag", "support.reply")
        );
        assert_eq!(d.contribution_pct, Some(100.0));
        assert_eq!(
            d.sentence,
            "100% of the rise comes from endpoint support.reply, whose volume rose 3.0x (100 → 300 requests); cost/request was flat ($0.01 → $0.01)."
        );
        assert!(
            e.summary
                .starts_with("Spend rose from $3.00 to $5.00 (+67%)"),
            "{}",
            e.summary
        );
        // Overall, more of the cheaper endpoint lowers the mean cost/request: the split
        // of the totals shows that; the endpoint dimension's split shows pure volume.
        assert!(
            e.summary
                .contains("volume effect +$2.75, cost/request effect −$0.75"),
            "{}",
            e.summary
        );
        assert_eq!(e.dimensions[0].split, parts(2 * USD, 0));
        let tenants: Vec<(&str, Kind)> = e.drivers[1..]
            .iter()
            .map(|d| (d.value.as_str(), d.kind))
            .collect();
        assert_eq!(tenants, [("acme", Kind::Volume), ("globex", Kind::Volume)]);
    }

    #[test]
    fn a_new_prompt_version_explains_its_endpoint_and_is_not_listed_again() {
        let day = 86_400_000;
        let v = |value: &str, b: Sums, c: Sums, first: i64| MixInput {
            value: value.into(),
            sums: Pair {
                baseline: b,
                current: c,
            },
            first_seen_ms: Some(first),
        };
        let endpoint = EndpointInput {
            endpoint: "summarize.doc".into(),
            sums: Pair {
                baseline: sums(100, USD),
                current: sums(100, 2_900_000_000),
            },
            versions: vec![
                v("v3", sums(100, USD), sums(0, 0), 0),
                v("v4", sums(0, 0), sums(100, 2_900_000_000), 9 * day),
            ],
            models: vec![],
        };
        let mut input = two_dims(
            Pair {
                baseline: vec![row("summarize.doc", 100, USD)],
                current: vec![row("summarize.doc", 100, 2_900_000_000)],
            },
            Pair {
                baseline: vec![row("acme", 100, USD)],
                current: vec![row("acme", 100, 2_900_000_000)],
            },
        );
        input.dimensions.push((
            Dimension::PromptVersion,
            Pair {
                baseline: vec![row("v3", 100, USD)],
                current: vec![row("v4", 100, 2_900_000_000)],
            },
        ));
        input.endpoints = vec![endpoint];
        let e = explain(&input);
        let d = &e.drivers[0];
        assert_eq!(
            (d.kind, d.dimension.as_str(), d.value.as_str()),
            (Kind::PromptVersion, "promptVersion", "v4")
        );
        assert_eq!(d.endpoint_tag.as_deref(), Some("summarize.doc"));
        assert_eq!(d.contribution_usd, Usd(1_900_000_000));
        assert_eq!(
            d.sentence,
            "100% of the rise comes from endpoint summarize.doc, whose cost/request rose 2.9x ($0.01 → $0.029) after promptVersion v4 went live on Jan 10 00:00 UTC (100% of its requests now); volume was flat; the same change is tenant acme."
        );
        // The tenant saw the same dollars, and v3/v4 are the cause seen from the side.
        assert_eq!(e.drivers.len(), 1, "{:?}", e.drivers);
        assert_eq!(e.endpoints[0].prompt_versions[0].value, "v4");
        assert!(e.endpoints[0].prompt_versions[0].new_in_window);
    }

    #[test]
    fn retries_explain_a_drop_of_cost_per_request() {
        let mut storm = sums(100, 400_000_000);
        storm.attempts = 250;
        storm.errors = 60;
        let e = endpoint_findings(
            &EndpointInput {
                endpoint: "chat.assist".into(),
                sums: Pair {
                    baseline: sums(100, USD),
                    current: storm,
                },
                ..Default::default()
            },
            (0, 1),
        );
        assert_eq!(e.retry_ratio.current, Some(1.5));
        assert_eq!(
            e.cause,
            Some(Cause {
                kind: Kind::Retries,
                dimension: "endpointTag".into(),
                value: "chat.assist".into()
            })
        );
    }

    #[test]
    fn a_new_group_is_its_own_kind_of_driver() {
        let e = explain(&two_dims(
            Pair {
                baseline: vec![row("support.reply", 100, USD)],
                current: vec![
                    row("support.reply", 100, USD),
                    row("agent.plan", 10, 3 * USD),
                ],
            },
            Pair {
                baseline: vec![row("acme", 100, USD)],
                current: vec![row("acme", 100, USD), row("initech", 10, 3 * USD)],
            },
        ));
        let d = &e.drivers[0];
        assert_eq!((d.kind, d.value.as_str()), (Kind::NewGroup, "agent.plan"));
        assert_eq!(
            d.sentence,
            "100% of the rise comes from new endpoint agent.plan, which had no requests in the baseline (10 now, $3.00); the same change is tenant initech."
        );
        assert_eq!(e.dimensions[0].new_usd, Usd(3 * USD));
    }

    #[test]
    fn no_change_no_drivers() {
        let rows = vec![row("a", 10, USD)];
        let e = explain(&two_dims(
            Pair {
                baseline: rows.clone(),
                current: rows.clone(),
            },
            Pair {
                baseline: rows.clone(),
                current: rows,
            },
        ));
        assert!(e.drivers.is_empty());
        assert!(
            e.summary.starts_with("Spend was unchanged at $1.00"),
            "{}",
            e.summary
        );
    }
}
