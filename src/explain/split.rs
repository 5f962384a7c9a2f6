//! The split: each change of cost between two windows divided into a volume effect and
//! a cost-per-request effect, overall, per group of each dimension, with the headline
//! measures of both windows.
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
pub(super) fn split_of(b: &Sums, c: &Sums) -> Split {
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

pub(super) fn ratio(n: u64, d: u64) -> Option<f64> {
    (d != 0).then(|| n as f64 / d as f64)
}

pub(super) fn change_pct(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| (now - before) / before * 100.0)
}

/// Cost per request: the one definition (`Sums::cost_per_request`, priced calls only).
pub(super) fn cost_per_request(s: &Sums) -> Option<Usd> {
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
    pub(super) fn of(s: &Sums, (from, to): (i64, i64)) -> Totals {
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

/// RFC 3339 in UTC.
pub(super) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
