//! The drivers: the few groups whose change explains most of the total, ranked by size,
//! an endpoint refined to its cause, each with its sentence.

use super::causes::{shift, Driver, EndpointFindings, Kind, MIX_SHIFT};
use super::split::{DimensionChange, GroupChange, Presence};
use super::text::{label, sentence};
use crate::query::Dimension;

/// Drivers at most, and the smallest share of the change one must explain to be listed.
const MAX_DRIVERS: usize = 6;
/// Shares of money are per mille, compared in integers (money never goes through f64).
const MIN_DRIVER_SHARE_PER_MILLE: i64 = 50;
/// A total change below this share of the spend counts as flat: no drivers.
const FLAT_SHARE_PER_MILLE: i64 = 5;
/// Another dimension's group is "the same change" within this share of it.
const SAME_DOLLARS_PER_MILLE: i64 = 20;
/// The few groups whose change explains most of the total: ranked by size, each at
/// least MIN_DRIVER_SHARE_PER_MILLE of it, with endpoints refined by their cause. The
/// versions or models behind an endpoint's cause are that cause seen from the other
/// side, so they are left out; a group of another dimension with the same dollars (the
/// one tenant behind an endpoint's rise, the endpoint's only model) is named in the
/// listed driver's sentence instead of being listed again.
pub(super) fn drivers(
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
