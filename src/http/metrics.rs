//! `GET /metrics` (Prometheus, read key) and the middleware timing every routed request.

use super::authorize;
use super::error::ApiError;
use super::server::RequestStart;
use super::state::HttpState;
use crate::budget::service::MEMBER_PAGE;
use crate::metrics::BudgetGauge;
use crate::store::Scope;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The OpenMetrics text format prometheus-client writes; Prometheus asks for it.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The key's workspace: its calls, ingest and guard counts, budgets; plus the server's
/// latency histograms.
pub async fn metrics(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let ws = key.workspace_id;
    let name = state
        .store
        .workspaces()
        .await?
        .into_iter()
        .find(|w| w.id == ws)
        .map(|w| w.name)
        .unwrap_or_default();
    let now = state.now_ms();
    let mut gauges = Vec::new();
    for budget in state.budgets.list(ws).await? {
        let status = state.budgets.status(ws, &budget, now, MEMBER_PAGE).await?;
        gauges.push(BudgetGauge {
            id: status.budget_id,
            name: status.name,
            used_ratio: status.used_pct / 100.0,
            remaining_nanos: status.remaining_usd.nanos(),
        });
    }
    let text = state.metrics.render(ws, &name, &gauges);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

const GUARD_ROUTE: &str = "/v1/guard";

/// Time each request of a matched route (label: the route's pattern, never the path
/// with its ids).
pub async fn track(State(state): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().to_string();
    let start = std::time::Instant::now();
    // The guard's latency target is server-side: timed from the first read of its bytes.
    let guard_start = (route == GUARD_ROUTE).then(|| {
        req.extensions()
            .get::<RequestStart>()
            .map_or(start, |read| read.0)
    });
    let response = next.run(req).await;
    if let Some(read) = guard_start {
        state.metrics.observe_guard(read.elapsed().as_secs_f64());
    }
    state
        .metrics
        .observe_http(&route, &method, start.elapsed().as_secs_f64());
    response
}
