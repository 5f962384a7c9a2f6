//! `GET /v1/quality`: tracking quality of a window (shares, checks, score, the naming
//! lint, the Setup stage), the report `burnrate doctor` and the Setup page show too.

use super::api::{base_query, widen, Params};
use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::store::Scope;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;
use std::sync::Arc;

/// The window when neither from nor since is given.
pub const DEFAULT_SINCE: &str = "7d";

/// The window and filters of URL parameters (shared with the CLI): as every read
/// endpoint's, but a week by default.
pub fn quality_query(
    params: &HashMap<String, String>,
    now_ms: i64,
) -> Result<crate::query::Query, ApiError> {
    let mut params = params.clone();
    if !params.contains_key("from") && !params.contains_key("since") {
        params.insert("since".into(), DEFAULT_SINCE.into());
    }
    base_query(&params, now_ms, &[])
}

pub async fn quality(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let mut base = quality_query(&params, state.now_ms())?;
    widen(&state, key.workspace_id, &mut base.filters).await?;
    let privacy = Some(state.metrics.privacy_counts(key.workspace_id));
    let report =
        crate::report::quality::quality(state.store.as_ref(), key.workspace_id, &base, privacy)
            .await?;
    Ok(Json(report).into_response())
}
