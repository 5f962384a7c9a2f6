//! Id mappings (`/v1/mappings`): add (admin key), list (read key), remove (admin key).
//! The checks and the reads that apply them live in `mapping`.

use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::store::Scope;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// `PUT` or `POST /v1/mappings`: add one mapping; 201 with its id, or 400 naming every
/// field at fault (a cycle names `to`, a second rule for one value names `from`).
pub async fn add(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    let settings = state.settings.with_secret(key.workspace_id).await?;
    let mapping = crate::mapping::add(
        state.store.as_ref(),
        key.workspace_id,
        &body,
        &settings.privacy(),
    )
    .await?
    .map_err(ApiError::invalid_request)?;
    applied(&state, key.workspace_id).await?;
    Ok((StatusCode::CREATED, Json(mapping)).into_response())
}

/// `GET /v1/mappings`: the workspace's mappings, oldest first.
pub async fn list(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let mappings = crate::mapping::list(state.store.as_ref(), key.workspace_id).await?;
    Ok(Json(json!({ "mappings": mappings })))
}

/// `DELETE /v1/mappings/{id}`: 204, or 404 naming it.
pub async fn remove(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::field("id", "must be an integer id from this API"))?;
    if crate::mapping::remove(state.store.as_ref(), key.workspace_id, id).await? {
        applied(&state, key.workspace_id).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(crate::store::StoreError::NotFound(format!("mapping {id}")).into())
    }
}

/// After a change: the guard reads the rules again and the budgets load their spend
/// under the new names now, not at the next periodic refresh.
async fn applied(state: &HttpState, ws: crate::store::WorkspaceId) -> Result<(), ApiError> {
    state.mappings.forget(ws);
    state.budgets.refresh_spend().await?;
    Ok(())
}
