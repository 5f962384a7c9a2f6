//! `GET/PUT /v1/workspace/settings`: a workspace's ingest settings (admin key).

use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::store::Scope;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

pub async fn get_settings(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let settings = crate::settings::load(state.store.as_ref(), key.workspace_id).await?;
    Ok(Json(settings).into_response())
}

/// Fields given replace the stored ones; a field left out keeps its value. Ingest uses
/// the new settings from the next request.
pub async fn put_settings(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    match state.settings.update(key.workspace_id, &body).await? {
        Ok(settings) => Ok(Json(settings).into_response()),
        Err(fields) => Err(ApiError::invalid_request(fields)),
    }
}
