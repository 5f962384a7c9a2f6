//! Why spend changed between two windows: the change split into a volume effect and a
//! cost-per-request effect (overall, per group of each dimension; `split`), what changed
//! inside the endpoints that moved most (`causes`), the few drivers that explain most of
//! it (`drivers`), and a paragraph in words (`text`). Pure: the caller passes the
//! aggregate rows of both windows.

mod causes;
mod drivers;
mod split;
mod text;

pub use causes::{
    endpoint_findings, top_endpoints, Cause, Driver, EndpointFindings, EndpointInput, Kind,
    MixInput, MixRow, TOP_ENDPOINTS,
};
pub use split::{
    dimension_change, split, DimensionChange, GroupChange, Pair, Presence, Split, Totals,
};

use crate::deploy::DeployNote;
use crate::money::Usd;
use crate::query::{Dimension, Row, Sums};
use serde::Serialize;
use split::{change_pct, split_of};

/// Everything the caller read, for both windows.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub current: (i64, i64),
    pub baseline: (i64, i64),
    pub total: Pair<Sums>,
    /// The requested dimensions, in order, with their groups in both windows.
    pub dimensions: Vec<(Dimension, Pair<Vec<Row>>)>,
    pub endpoints: Vec<EndpointInput>,
    /// Deploy notes from the baseline's start to the current window's end.
    pub deploys: Vec<DeployNote>,
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
    /// The deploy notes of both windows, oldest first.
    pub deploys: Vec<DeployNote>,
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
    let mut drivers = drivers::drivers(&dimensions, &endpoints, change, spend);
    let span = (input.baseline.0.min(input.current.0), input.current.1);
    quote_deploys(&mut drivers, &input.deploys, span);
    let mut out = Explanation {
        current: Totals::of(&t.current, input.current),
        baseline: Totals::of(&t.baseline, input.baseline),
        change_usd: Usd(change),
        change_pct: change_pct(t.current.cost.0 as f64, t.baseline.cost.0 as f64),
        effects: split_of(&t.baseline, &t.current),
        dimensions,
        endpoints,
        drivers,
        deploys: input.deploys.clone(),
        summary: String::new(),
        method: METHOD,
    };
    out.summary = text::summary(
        &out.baseline,
        &out.current,
        out.change_pct,
        out.effects,
        &out.drivers,
    );
    out
}

/// A driver inside an endpoint (or an endpoint itself) that a deploy note in `span`
/// concerns ends with the note: "..., after summarize_v4: 'longer summaries'." A driver
/// whose cause is a prompt version takes the note naming that version, else the newest
/// note naming none (`deploy::for_change`).
fn quote_deploys(drivers: &mut [Driver], notes: &[DeployNote], span: (i64, i64)) {
    for d in drivers {
        let endpoint = match (&d.endpoint_tag, d.dimension.as_str()) {
            (Some(e), _) => e.clone(),
            (None, "endpointTag") => d.value.clone(),
            _ => continue,
        };
        let version = (d.kind == Kind::PromptVersion).then_some(d.value.as_str());
        if let Some(n) = crate::deploy::for_change(notes, &endpoint, version, span.0, span.1) {
            let s = d.sentence.trim_end_matches('.');
            d.sentence = format!("{s}; {}.", n.mention());
        }
    }
}

#[cfg(test)]
mod tests;
