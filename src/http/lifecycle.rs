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
    // The erasure edited control objects that named the id: this node's budgets, plans
    // and mapping rules follow at once (other processes at their next reload).
    state.mappings.forget(key.workspace_id);
    state.budgets.reload(key.workspace_id).await?;
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

/// `POST /v1/prices/reprice` (admin). `{"unpriced": true, "from"?, "to"?, "model"?}`
/// prices the workspace's unpriced events with the current book and overrides.
/// `{"entry": ID, "confirm"?: bool, "from"?, "to"?, "model"?}` is the deliberate
/// correction of the events priced with entry ID: a dry run unless `confirm` is true,
/// then one commit and an audit record (201). The budget counters and metrics get the
/// cost changes of a commit at once.
pub async fn reprice(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    let (scope, correction) = reprice_scope(&body)?;
    let (reply, outcome) = match correction {
        None => {
            let (summary, outcome) = crate::lifecycle::reprice_unpriced(
                state.store.as_ref(),
                state.prices(),
                key.workspace_id,
                scope,
                state.now_ms(),
            )
            .await?;
            ((StatusCode::OK, Json(json!(summary))), outcome)
        }
        Some((entry, confirm)) => {
            let (record, outcome) = crate::lifecycle::correct_entry(
                state.store.as_ref(),
                state.prices(),
                key.workspace_id,
                scope,
                entry,
                confirm,
                format!("key {}", key.key_id),
                state.now_ms(),
            )
            .await?;
            let status = match confirm {
                true => StatusCode::CREATED,
                false => StatusCode::OK,
            };
            ((status, Json(json!(record))), outcome)
        }
    };
    if outcome.seq > 0 {
        state.ingest.counters.apply(outcome.seq, &outcome.effects);
        for sink in &state.ingest.sinks {
            sink.apply(outcome.seq, &outcome.effects);
        }
    }
    Ok(reply.into_response())
}

/// `GET /v1/prices/corrections` (admin): every price correction of the workspace, oldest
/// first.
pub async fn corrections(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let records = crate::lifecycle::corrections(state.store.as_ref(), key.workspace_id).await?;
    Ok(Json(json!({ "corrections": records })).into_response())
}

/// A correction's entry id and whether it is confirmed.
type EntryCorrection = (String, bool);

/// The body's scope, each field checked: either `unpriced: true` (priced events are never
/// re-priced implicitly) or `entry` (with `confirm`), times RFC 3339, the model a
/// non-empty string.
fn reprice_scope(
    body: &Value,
) -> Result<(crate::store::RepriceScope, Option<EntryCorrection>), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::field("body", "must be an object"));
    };
    if let Some(other) = obj.keys().find(|k| {
        !matches!(
            k.as_str(),
            "unpriced" | "entry" | "confirm" | "from" | "to" | "model"
        )
    }) {
        return Err(ApiError::field(
            other,
            "is not a field of a re-pricing; use unpriced or entry (with confirm), from, to, model",
        ));
    }
    let correction = match (obj.get("unpriced"), obj.get("entry")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "entry",
                "give unpriced or entry, not both: a correction of priced events is its own run",
            ))
        }
        (None, Some(Value::String(e))) if !e.is_empty() && e.len() <= 256 => {
            let confirm = match obj.get("confirm") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(ApiError::field("confirm", "must be true or false")),
            };
            Some((e.clone(), confirm))
        }
        (None, Some(_)) => {
            return Err(ApiError::field(
                "entry",
                "must be a price entry id (a non-empty string of at most 256 bytes)",
            ))
        }
        (Some(Value::Bool(true)), None) => None,
        _ => {
            return Err(ApiError::field(
                "unpriced",
                "must be true (only unpriced events are re-priced implicitly), or give entry to correct priced events",
            ))
        }
    };
    if correction.is_none() && obj.contains_key("confirm") {
        return Err(ApiError::field(
            "confirm",
            "belongs to a correction (entry); an unpriced re-pricing needs none",
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
    let scope = crate::store::RepriceScope {
        from_ms,
        to_ms,
        model,
        target: crate::store::RepriceTarget::Unpriced,
        dry_run: false,
    };
    Ok((scope, correction))
}
