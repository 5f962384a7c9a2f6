//! `POST /v1/erasure` (erase a tenant's or user's events; admin), `GET /v1/erasure` (the
//! audit records) and `GET /v1/retention` (the setting and from when raw events exist).

use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::store::{Scope, Subject};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// Body `{"tenantId": "..."}` or `{"userId": "..."}` (exactly one). Answers 201 with the
/// audit record, which never holds the id.
pub async fn erase(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    let subject = subject(&body)?;
    let settings = state.settings.with_secret(key.workspace_id).await?;
    let record = crate::lifecycle::erase(
        state.store.as_ref(),
        &settings,
        key.workspace_id,
        subject,
        format!("key {}", key.key_id),
        state.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// The one id the body names, checked field by field.
fn subject(body: &Value) -> Result<Subject, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::field(
            "body",
            "must be an object with tenantId or userId",
        ));
    };
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "tenantId" | "userId"))
    {
        return Err(ApiError::field(
            other,
            "is not a field of an erasure; give tenantId or userId",
        ));
    }
    let text = |field: &str| -> Result<Option<String>, ApiError> {
        match obj.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::field(
                field,
                "must be a non-empty string of at most 256 bytes",
            )),
        }
    };
    match (text("tenantId")?, text("userId")?) {
        (Some(t), None) => Ok(Subject::Tenant(t)),
        (None, Some(u)) => Ok(Subject::User(u)),
        (Some(_), Some(_)) => Err(ApiError::field(
            "userId",
            "give tenantId or userId, not both: one erasure per id",
        )),
        (None, None) => Err(ApiError::field("tenantId", "is required (or userId)")),
    }
}

/// Every erasure of the workspace, oldest first.
pub async fn erasures(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let records: Vec<Value> = state
        .store
        .objects(Some(key.workspace_id), crate::lifecycle::ERASURE_KIND)
        .await?
        .into_iter()
        .map(|o| {
            let mut body = o.body;
            body["id"] = json!(o.id);
            body
        })
        .collect();
    Ok(Json(json!({ "erasures": records })).into_response())
}

/// The workspace's retention setting and from when its raw events exist.
pub async fn retention(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let days = state.settings.get(key.workspace_id).raw_retention_days;
    let raw_from = state.store.raw_from(key.workspace_id).await?;
    Ok(Json(json!({
        "rawRetentionDays": days,
        "rawFrom": raw_from.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()).map(|t| t.to_string()),
    }))
    .into_response())
}

/// `POST /v1/prices/reprice` (admin): `{"unpriced": true, "from"?, "to"?, "model"?}`
/// prices the workspace's unpriced events with the current book and overrides; the
/// budget counters and metrics get the cost changes of the commit at once.
pub async fn reprice(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    let scope = reprice_scope(&body)?;
    let (summary, outcome) = crate::lifecycle::reprice_unpriced(
        state.store.as_ref(),
        state.prices(),
        key.workspace_id,
        scope,
        state.now_ms(),
    )
    .await?;
    if outcome.seq > 0 {
        state.ingest.counters.apply(outcome.seq, &outcome.effects);
        for sink in &state.ingest.sinks {
            sink.apply(outcome.seq, &outcome.effects);
        }
    }
    Ok(Json(summary).into_response())
}

/// The body's scope, each field checked: `unpriced` must be true (priced events are
/// never re-priced here), times are RFC 3339, the model a non-empty string.
fn reprice_scope(body: &Value) -> Result<crate::store::RepriceScope, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::field("body", "must be an object"));
    };
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "unpriced" | "from" | "to" | "model"))
    {
        return Err(ApiError::field(
            other,
            "is not a field of a re-pricing; use unpriced, from, to, model",
        ));
    }
    if obj.get("unpriced") != Some(&Value::Bool(true)) {
        return Err(ApiError::field(
            "unpriced",
            "must be true: only unpriced events are re-priced (priced history never is)",
        ));
    }
    let time = |field: &str, default: i64| -> Result<i64, ApiError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(t)) => t
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| ApiError::field(field, "must be an RFC 3339 time")),
            Some(_) => Err(ApiError::field(field, "must be an RFC 3339 time")),
        }
    };
    let model = match obj.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) if !m.is_empty() => Some(m.clone()),
        Some(_) => return Err(ApiError::field("model", "must be a non-empty string")),
    };
    let (from_ms, to_ms) = (time("from", i64::MIN)?, time("to", i64::MAX)?);
    if from_ms >= to_ms {
        return Err(ApiError::field("to", "must be after from"));
    }
    Ok(crate::store::RepriceScope {
        from_ms,
        to_ms,
        model,
        target: crate::store::RepriceTarget::Unpriced,
        dry_run: false,
    })
}
