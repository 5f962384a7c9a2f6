//! Reconciliation API: `POST /v1/reconciliation/import` (admin; a provider's cost
//! report as the body, `?format=` or sniffed) and `GET /v1/reconciliation` (read; each
//! billed day and provider against burnrate's attribution).

use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::reconcile::parse::{self, Format};
use crate::report::reconcile as report;
use crate::store::Scope;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Import a report: one bad line imports nothing; a provider's day imported again
/// replaces the stored one.
pub async fn import(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    if let Some(name) = params.keys().find(|k| k.as_str() != "format") {
        return Err(ApiError::field(
            name,
            "is not a parameter of this endpoint; use format",
        ));
    }
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::field("body", "is not UTF-8"))?;
    let format = Format::named_or_sniffed(params.get("format").map(String::as_str), text)
        .map_err(|m| ApiError::field("format", m))?;
    let mut days = parse::parse(format, text).map_err(ApiError::invalid_request)?;
    crate::reconcile::price_usage(&mut days, &state.prices());
    let summary = report::save(
        state.store.as_ref(),
        key.workspace_id,
        format.as_str(),
        days,
        state.now_ms(),
    )
    .await?;
    Ok(Json(serde_json::to_value(summary).unwrap_or_default()))
}

/// Billed against attributed per day and provider: `from`, `to` (a day `YYYY-MM-DD` or
/// an RFC 3339 time; whole UTC days; default the last 30 days), `environment`,
/// `dataMode` (default real); `format=csv|ndjson` answers one table (`table=days`, the
/// default, or `models`).
pub async fn reconciliation(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(mut params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let (format, table) = super::api::export_params(
        &params,
        crate::export::BillTable::parse,
        crate::export::BillTable::EXPECTED,
    )?;
    params.remove("format");
    params.remove("table");
    let (from, to, filters) =
        report::params(&params, state.now_ms()).map_err(|(f, m)| ApiError::field(&f, m))?;
    let r =
        report::reconciliation(state.store.as_ref(), key.workspace_id, from, to, &filters).await?;
    if format != crate::export::TableFormat::Json {
        let rows = crate::export::bill_table(table, &r.days);
        let stem = format!("reconciliation-{}", table.name());
        return Ok(super::api::table_response(format, &rows, &stem));
    }
    Ok(Json(serde_json::to_value(r).unwrap_or_default()).into_response())
}
