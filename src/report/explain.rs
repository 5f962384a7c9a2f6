//! The reads behind explain and the promptVersion gate: aggregate rows of both windows
//! (through `Store::aggregate` only) and per-request values, handed to the pure
//! `crate::explain` and `crate::gate`.

use super::by_cost;
use crate::explain::{self, EndpointInput, Explanation, Input, MixInput, Pair};
use crate::gate::{self, Metric, Outcome, Settings};
use crate::query::{Dimension, Query, Row, Sums, MAX_LIMIT};
use crate::store::{RequestValues, Store, StoreError, VersionSeen, WorkspaceId};

/// The dimensions explain splits by when none are asked for.
pub const DEFAULT_BY: &str = "endpointTag,tenantId,promptVersion,model";
pub const MAX_BY: usize = 4;
/// Per-request values read per version for the gate (the newest ones).
pub const GATE_SAMPLE_CAP: usize = 20_000;

/// A request that cannot be answered, naming the parameter at fault; or a store error.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{field} {message}")]
    Field { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn field(field: &str, message: impl Into<String>) -> ExplainError {
    ExplainError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// A checked explain request: the current window with its filters, the baseline
/// window, and the dimensions to split by.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub window: Query,
    pub baseline: (i64, i64),
    /// Whether the baseline was given (else it is the window before, of equal length).
    pub baseline_given: bool,
    pub by: Vec<Dimension>,
}

/// `endpointTag,tenantId`: known dimensions, at most MAX_BY, no repeats.
pub fn parse_by(text: &str) -> Result<Vec<Dimension>, ExplainError> {
    let mut out: Vec<Dimension> = Vec::new();
    for name in text.split(',').map(str::trim) {
        let d = Dimension::parse(name).ok_or_else(|| {
            field(
                "by",
                format!(
                    "unknown dimension {name:?}; use one of: {}",
                    Dimension::EXPECTED
                ),
            )
        })?;
        if out.contains(&d) {
            return Err(field("by", format!("names {name} twice")));
        }
        out.push(d);
    }
    if out.len() > MAX_BY {
        return Err(field("by", format!("takes at most {MAX_BY} dimensions")));
    }
    Ok(out)
}

impl ExplainRequest {
    /// Check the windows: the baseline defaults to the window before of equal length;
    /// one given end fixes the other at the same length; the windows must not overlap.
    pub fn new(
        window: Query,
        baseline_from: Option<i64>,
        baseline_to: Option<i64>,
        by: Option<&str>,
    ) -> Result<ExplainRequest, ExplainError> {
        let len = window.to_ms - window.from_ms;
        if len <= 0 {
            return Err(field("from", "must be before to"));
        }
        let baseline = match (baseline_from, baseline_to) {
            (None, None) => (window.from_ms - len, window.from_ms),
            (Some(f), None) => (f, f + len),
            (None, Some(t)) => (t - len, t),
            (Some(f), Some(t)) if f >= t => {
                return Err(field("baselineFrom", "must be before baselineTo"))
            }
            (Some(f), Some(t)) => (f, t),
        };
        if baseline.0 < window.to_ms && window.from_ms < baseline.1 {
            return Err(field(
                "baselineTo",
                "makes the baseline overlap the window; it must end at or before from (or start at or after to)",
            ));
        }
        let mut window = window;
        window.group_by.clear();
        window.bucket = None;
        Ok(ExplainRequest {
            window,
            baseline,
            baseline_given: baseline_from.is_some() || baseline_to.is_some(),
            by: parse_by(by.unwrap_or(DEFAULT_BY))?,
        })
    }

    fn baseline_query(&self) -> Query {
        Query {
            from_ms: self.baseline.0,
            to_ms: self.baseline.1,
            ..self.window.clone()
        }
    }
}

/// Windows that end before the oldest event (in these environments and data modes)
/// have nothing to compare: a 400 rather than an explanation of nothing.
fn check_data(req: &ExplainRequest, seen: &[VersionSeen]) -> Result<(), ExplainError> {
    let Some(oldest) = seen.iter().map(|s| s.first_ms).min() else {
        return Ok(());
    };
    let at = super::rfc3339(oldest);
    if req.window.to_ms <= oldest {
        return Err(field("to", format!("is before the oldest event ({at})")));
    }
    if req.baseline.1 <= oldest {
        let name = if req.baseline_given {
            "baselineFrom"
        } else {
            "from"
        };
        return Err(field(
            name,
            format!(
                "leaves a baseline window ({} .. {}) that ends before the oldest event ({at}); choose a later window or set baselineFrom/baselineTo",
                super::rfc3339(req.baseline.0),
                super::rfc3339(req.baseline.1)
            ),
        ));
    }
    Ok(())
}

/// One window read: its total and its groups per dimension. The total is the store's
/// total of every group; groups a row limit cut off (users, say) are folded into one
/// "(other)" group so that every dimension still adds up to the total.
async fn window(
    store: &dyn Store,
    ws: WorkspaceId,
    q: &Query,
    dims: &[Dimension],
) -> crate::store::Result<(Sums, Vec<Vec<Row>>)> {
    let mut all = Vec::with_capacity(dims.len());
    let mut total = Sums::default();
    for d in dims {
        let answer = store
            .aggregate(ws, by_cost(q, vec![d.clone()], MAX_LIMIT))
            .await?;
        total = answer.total();
        let mut rows = answer.rows;
        if answer.cut > 0 {
            let kept = Sums::total(rows.iter().map(|r| &r.sums))?;
            rows.push(Row {
                group: vec!["(other)".into()],
                bucket_ms: None,
                sums: Sums::minus(&total, &kept)?,
            });
        }
        all.push(rows);
    }
    Ok((total, all))
}

/// The top endpoints' sums per prompt version and per model, from one query per window
/// grouped by endpoint, version and model (one rollup family holds all three).
async fn endpoint_inputs(
    store: &dyn Store,
    ws: WorkspaceId,
    q: &Pair<Query>,
    endpoints: &Pair<Vec<Row>>,
    seen: &[VersionSeen],
) -> crate::store::Result<Vec<EndpointInput>> {
    let tops = explain::top_endpoints(&endpoints.baseline, &endpoints.current);
    if tops.is_empty() {
        return Ok(Vec::new());
    }
    let narrow = |w: &Query| {
        let mut w = w.clone();
        w.filters.text.insert(Dimension::EndpointTag, tops.clone());
        w
    };
    let dims = vec![
        Dimension::EndpointTag,
        Dimension::PromptVersion,
        Dimension::Model,
    ];
    let (baseline, current) = tokio::join!(
        store.aggregate(ws, by_cost(&narrow(&q.baseline), dims.clone(), usize::MAX)),
        store.aggregate(ws, by_cost(&narrow(&q.current), dims, usize::MAX))
    );
    let rows = Pair {
        baseline: baseline?.rows,
        current: current?.rows,
    };
    let sums_of = |rows: &[Row], endpoint: &str| {
        Sums::total(
            rows.iter()
                .filter(|r| r.group[0] == endpoint)
                .map(|r| &r.sums),
        )
    };
    tops.iter()
        .map(|e| {
            Ok(EndpointInput {
                endpoint: e.clone(),
                sums: Pair {
                    baseline: sums_of(&endpoints.baseline, e)?,
                    current: sums_of(&endpoints.current, e)?,
                },
                versions: mix(&rows, e, 1, |v| {
                    seen.iter()
                        .find(|s| s.endpoint_tag == *e && s.prompt_version == v)
                        .map(|s| s.first_ms)
                })?,
                models: mix(&rows, e, 2, |_| None)?,
            })
        })
        .collect()
}

/// One endpoint's rows folded by the group column `col` (1 = version, 2 = model).
fn mix(
    rows: &Pair<Vec<Row>>,
    endpoint: &str,
    col: usize,
    first_seen: impl Fn(&str) -> Option<i64>,
) -> crate::store::Result<Vec<MixInput>> {
    let mut out: Vec<MixInput> = Vec::new();
    let sides: [(&Vec<Row>, bool); 2] = [(&rows.baseline, true), (&rows.current, false)];
    for (side, is_baseline) in sides {
        for r in side.iter().filter(|r| r.group[0] == endpoint) {
            let value = &r.group[col];
            let i = match out.iter().position(|m| m.value == *value) {
                Some(i) => i,
                None => {
                    out.push(MixInput {
                        value: value.clone(),
                        first_seen_ms: first_seen(value),
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            let sums = &mut out[i].sums;
            if is_baseline {
                sums.baseline.add(&r.sums)?;
            } else {
                sums.current.add(&r.sums)?;
            }
        }
    }
    Ok(out)
}

/// Explain the change from the baseline window to the current one.
pub async fn explain(
    store: &dyn Store,
    ws: WorkspaceId,
    req: &ExplainRequest,
) -> Result<Explanation, ExplainError> {
    let seen = store.versions_seen(ws, req.window.filters.clone()).await?;
    check_data(req, &seen)?;
    let q = Pair {
        baseline: req.baseline_query(),
        current: req.window.clone(),
    };
    // The endpoint dimension is always read: the top endpoints are looked into.
    let mut dims = req.by.clone();
    if !dims.contains(&Dimension::EndpointTag) {
        dims.push(Dimension::EndpointTag);
    }
    // Both windows at once: each query's partial hours at the edges read raw events.
    let (baseline, current) = tokio::join!(
        window(store, ws, &q.baseline, &dims),
        window(store, ws, &q.current, &dims)
    );
    let ((total_b, rows_b), (total_c, rows_c)) = (baseline?, current?);
    let mut dimensions: Vec<(Dimension, Pair<Vec<Row>>)> = dims
        .into_iter()
        .zip(rows_b.into_iter().zip(rows_c))
        .map(|(d, (baseline, current))| (d, Pair { baseline, current }))
        .collect();
    let endpoint_rows = dimensions
        .iter()
        .find(|(d, _)| *d == Dimension::EndpointTag)
        .map(|(_, rows)| rows.clone())
        .unwrap_or_default();
    dimensions.truncate(req.by.len());
    let endpoints = endpoint_inputs(store, ws, &q, &endpoint_rows, &seen).await?;
    let span = (q.baseline.from_ms.min(q.current.from_ms), q.current.to_ms);
    let deploys = crate::deploy::list(store, ws, Some(span)).await?;
    Ok(explain::explain(&Input {
        current: (q.current.from_ms, q.current.to_ms),
        baseline: (q.baseline.from_ms, q.baseline.to_ms),
        total: Pair {
            baseline: total_b,
            current: total_c,
        },
        dimensions,
        endpoints,
        deploys,
    }))
}

/// A checked gate request.
#[derive(Debug, Clone)]
pub struct GateRequest {
    /// Window and filters (environment, data mode); endpoint and versions are added.
    pub window: Query,
    pub endpoint: String,
    pub candidate: String,
    /// None = the version first seen on the endpoint before the candidate.
    pub baseline: Option<String>,
    pub metric: Metric,
    pub settings: Settings,
}

/// The gate's answer: which versions were compared, over which window, and the outcome.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateReport {
    pub endpoint_tag: String,
    pub candidate_version: String,
    /// None when the endpoint has no earlier version to compare with (not enough data).
    pub baseline_version: Option<String>,
    pub from: String,
    pub to: String,
    /// At most this many of the newest requests of each version are compared.
    pub sample_cap: usize,
    #[serde(flatten)]
    pub outcome: Outcome,
}

fn metric_value(m: Metric, v: &RequestValues) -> Option<i64> {
    match m {
        Metric::CostPerRequest => v.cost.map(|c| c.0),
        Metric::InputTokensPerRequest => Some(v.input_tokens as i64),
        Metric::OutputTokensPerRequest => Some(v.output_tokens as i64),
        Metric::Latency => v.latency_ms.map(i64::from),
    }
}

/// The version first seen on `endpoint` most recently before `candidate`.
fn previous_version(seen: &[VersionSeen], endpoint: &str, candidate: &str) -> Option<String> {
    let mine: Vec<&VersionSeen> = seen.iter().filter(|s| s.endpoint_tag == endpoint).collect();
    let start = mine
        .iter()
        .find(|s| s.prompt_version == candidate)?
        .first_ms;
    mine.iter()
        .filter(|s| s.prompt_version != candidate && s.first_ms <= start)
        .max_by_key(|s| (s.first_ms, s.prompt_version.clone()))
        .map(|s| s.prompt_version.clone())
}

async fn values(
    store: &dyn Store,
    ws: WorkspaceId,
    req: &GateRequest,
    version: &str,
) -> crate::store::Result<Vec<i64>> {
    let mut q = req.window.clone();
    q.filters
        .text
        .insert(Dimension::EndpointTag, vec![req.endpoint.clone()]);
    q.filters
        .text
        .insert(Dimension::PromptVersion, vec![version.to_string()]);
    let rows = store.request_values(ws, q, GATE_SAMPLE_CAP).await?;
    // Unpriced calls have no cost and calls without a latency no latency: left out.
    Ok(rows
        .iter()
        .filter_map(|v| metric_value(req.metric, v))
        .collect())
}

/// Compare the candidate version with the baseline version on one endpoint.
pub async fn gate(
    store: &dyn Store,
    ws: WorkspaceId,
    req: &GateRequest,
) -> Result<GateReport, ExplainError> {
    let baseline = match &req.baseline {
        Some(b) => Some(b.clone()),
        None => {
            let seen = store.versions_seen(ws, req.window.filters.clone()).await?;
            previous_version(&seen, &req.endpoint, &req.candidate)
        }
    };
    if baseline.as_ref() == Some(&req.candidate) {
        return Err(field("baseline", "must differ from candidate"));
    }
    let candidate_values = values(store, ws, req, &req.candidate).await?;
    // A new endpoint has no earlier version yet: that is missing data, not a failure to
    // run, so the verdict is not_enough_data (exit 2) like a thin sample.
    let Some(baseline) = baseline else {
        let mut outcome = gate::evaluate(&candidate_values, &[], req.metric, req.settings);
        outcome.reason = format!(
            "no baseline: no earlier version of {} was seen before {} (name one with baseline)",
            req.endpoint, req.candidate
        );
        return Ok(report(req, None, outcome));
    };
    let candidate_values = values(store, ws, req, &req.candidate).await?;
    let baseline_values = values(store, ws, req, &baseline).await?;
    // The bootstrap is CPU work (up to 2000 x 40,000 draws): off the async threads.
    let (metric, settings) = (req.metric, req.settings);
    let outcome = tokio::task::spawn_blocking(move || {
        gate::evaluate(&candidate_values, &baseline_values, metric, settings)
    })
    .await
    .map_err(|e| StoreError::Database(format!("gate task failed: {e}")))?;
    Ok(report(req, Some(baseline), outcome))
}

fn report(req: &GateRequest, baseline: Option<String>, outcome: gate::Outcome) -> GateReport {
    GateReport {
        endpoint_tag: req.endpoint.clone(),
        candidate_version: req.candidate.clone(),
        baseline_version: baseline,
        from: super::rfc3339(req.window.from_ms),
        to: super::rfc3339(req.window.to_ms),
        sample_cap: GATE_SAMPLE_CAP,
        outcome,
    }
}
