//! HTTP: the axum router, authentication and the accept loop. The only module
//! that knows axum.

pub mod api;
pub mod arrival;
pub mod control;
pub mod dashboard;
pub mod error;
pub mod lifecycle;
pub mod mappings;
pub mod margin;
pub mod metrics;
pub mod otlp;
pub mod plans;
pub mod quality;
pub mod reconcile;
pub mod server;
pub mod settings;
pub mod state;

use crate::app::AppState;
use crate::store::{KeyInfo, Scope};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post, put};
use axum::Router;
use error::ApiError;
use state::HttpState;
use std::sync::Arc;

pub fn router(state: Arc<AppState>) -> Router {
    let state = Arc::new(HttpState::new(state));
    Router::new()
        .route("/v1/ingest/llm-request", post(api::ingest_one))
        .route("/v1/ingest/batch", post(api::ingest_batch))
        .route("/v1/traces", post(otlp::traces))
        .route("/v1/events", get(api::events))
        .route("/v1/summary", get(api::summary))
        .route("/v1/query", post(api::query))
        .route("/v1/top/{kind}", get(api::top))
        .route("/v1/timeseries", get(api::timeseries))
        .route("/v1/prompt-versions", get(api::prompt_versions))
        .route("/v1/concentration", get(api::concentration))
        .route("/v1/quality", get(quality::quality))
        .route("/v1/guard", post(control::guard))
        .route(
            "/v1/budgets",
            get(control::budgets).post(control::create_budget),
        )
        .route(
            "/v1/budgets/{id}",
            get(control::budget)
                .put(control::update_budget)
                .delete(control::delete_budget),
        )
        .route("/v1/budgets/{id}/status", get(control::budget_status))
        .route("/v1/plans", get(plans::plans))
        .route("/v1/plans/history", get(plans::history))
        // A CSV of 100,000 tenants is a few MB: past axum's 2 MB default body limit.
        .route(
            "/v1/plans/import",
            post(plans::import).layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route(
            "/v1/plans/tenants/{tenant}",
            get(plans::tenant_plan).put(plans::set_tenant_plan),
        )
        .route("/v1/plans/definitions", get(margin::definitions))
        .route("/v1/plans/definitions/{plan}", put(margin::define))
        .route(
            "/v1/revenue",
            get(margin::entries).post(margin::add_entries),
        )
        .route(
            "/v1/revenue/import",
            post(margin::import).layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route("/v1/margin", get(margin::margin))
        .route("/v1/reconciliation", get(reconcile::reconciliation))
        .route(
            "/v1/reconciliation/import",
            post(reconcile::import).layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route(
            "/v1/rate-caps",
            get(control::rate_caps).post(control::create_rate_cap),
        )
        .route("/v1/rate-caps/{id}", delete(control::delete_rate_cap))
        .route(
            "/v1/mappings",
            get(mappings::list).put(mappings::add).post(mappings::add),
        )
        .route("/v1/mappings/{id}", delete(mappings::remove))
        .route(
            "/v1/deploys",
            get(control::deploys).post(control::create_deploy),
        )
        .route("/v1/alerts", get(control::alerts))
        .route("/v1/alerts/evaluate", post(control::evaluate_alerts))
        .route("/v1/alerts/findings", get(control::findings))
        .route(
            "/v1/alert-rules",
            get(control::alert_rules).put(control::change_alert_rules),
        )
        .route(
            "/v1/channels",
            get(control::channels).post(control::add_channel),
        )
        .route("/v1/channels/{id}", delete(control::delete_channel))
        .route("/v1/channels/{id}/test", post(control::test_channel))
        .route(
            "/v1/workspace/settings",
            get(settings::get_settings).put(settings::put_settings),
        )
        .route(
            "/v1/erasure",
            get(lifecycle::erasures).post(lifecycle::erase),
        )
        .route("/v1/retention", get(lifecycle::retention))
        .route("/v1/prices/reprice", post(lifecycle::reprice))
        .route("/v1/prices/corrections", get(lifecycle::corrections))
        .route("/v1/explain", get(api::explain))
        .route("/v1/gate", get(api::gate))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(api::openapi))
        .merge(dashboard::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(api::not_found)
        .with_state(state)
}

/// The key from `X-API-Key` or `Authorization: Bearer`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Check the key and its scope against the live keys in memory (`keytable`: a key
/// revoked with the CLI or on another node is refused within 250 ms and one reload).
/// Without a key header, read endpoints accept the dashboard's session cookie (whose key
/// is checked the same way).
pub async fn authorize(
    state: &HttpState,
    headers: &HeaderMap,
    needed: Scope,
) -> Result<KeyInfo, ApiError> {
    let info = match presented_key(headers).filter(|k| !k.is_empty()) {
        Some(key) => state
            .authenticate(crate::auth::hash_key(key))
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked API key"))?,
        // No key header: a dashboard session may read (never ingest) with its key.
        None if needed == Scope::Read => state
            .sessions
            .key_of(&state.app, state.now_ms(), headers)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing API key: send X-API-Key or Authorization: Bearer, or log in to the dashboard",
                )
            })?,
        None => {
            return Err(ApiError::unauthorized(
                "missing API key: send X-API-Key or Authorization: Bearer",
            ))
        }
    };
    if !info.scope.allows(needed) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a {} key cannot use this endpoint; it needs a {} key",
                info.scope.as_str(),
                needed.as_str()
            ),
        ));
    }
    Ok(info)
}

/// Serve until `shutdown` resolves, then stop accepting and let in-flight requests end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    limits: server::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, router(state), limits, shutdown).await
}
