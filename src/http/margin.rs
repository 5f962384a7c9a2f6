//! Revenue and margin API: plan prices (`/v1/plans/definitions`), revenue overrides and
//! one-off amounts per tenant (`/v1/revenue`, JSON or a CSV import) and the margin of
//! each tenant over a window (`/v1/margin`), unprofitable first.

use super::api::{base_query, limit_param, time_param, widen};
use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::report::margin::{self, RevenueBook};
use crate::revenue;
use crate::store::Scope;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Every plan's monthly price.
pub async fn definitions(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let objects = state
        .store
        .objects(Some(key.workspace_id), revenue::PLAN_DEFINITION)
        .await?;
    let mut plans: Vec<(String, crate::money::Usd)> =
        revenue::prices(&objects).into_iter().collect();
    plans.sort();
    let plans: Vec<Value> = plans
        .into_iter()
        .map(|(plan, price)| json!({"plan": plan, "priceUsd": price}))
        .collect();
    Ok(Json(json!({ "plans": plans })))
}

/// Define or change a plan's monthly price: `{"priceUsd": 50}`.
pub async fn define(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(plan): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    if body.get("name").is_some() {
        return Err(ApiError::field(
            "name",
            "is the plan in the path; leave it out",
        ));
    }
    let price = revenue::parse_price(&body).map_err(ApiError::invalid_request)?;
    state
        .budgets
        .define_plan(key.workspace_id, &plan, price)
        .await?;
    Ok(Json(json!({"plan": plan, "priceUsd": price})))
}

/// Add revenue entries: `{"entries": [{"tenantId", "type": "override"|"oneOff", "date",
/// "amountUsd"}]}`. One bad entry stores nothing.
pub async fn add_entries(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    let entries = revenue::parse_entries(&body).map_err(ApiError::invalid_request)?;
    let added = state.budgets.add_revenue(key.workspace_id, entries).await?;
    Ok(Json(json!({ "added": added })))
}

/// `tenantId,type,date,amountUsd` lines (text/csv). One bad line imports nothing.
pub async fn import(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::field("body", "is not UTF-8"))?;
    let entries = revenue::parse_csv(text).map_err(ApiError::invalid_request)?;
    let added = state.budgets.add_revenue(key.workspace_id, entries).await?;
    Ok(Json(json!({ "added": added })))
}

/// One tenant's revenue entries (`?tenantId=`), by date.
pub async fn entries(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    if let Some(name) = params.keys().find(|k| k.as_str() != "tenantId") {
        return Err(ApiError::field(
            name,
            "is not a parameter of this endpoint; use tenantId",
        ));
    }
    let tenant = params
        .get("tenantId")
        .ok_or_else(|| ApiError::field("tenantId", "is required"))?;
    let stored = state
        .budgets
        .stored_tenant(key.workspace_id, tenant)
        .await?;
    let objects = state
        .store
        .objects(Some(key.workspace_id), revenue::REVENUE_ENTRIES)
        .await?;
    let mut all = revenue::fold(&objects);
    let list = all.remove(&stored).unwrap_or_default();
    Ok(Json(json!({"tenantId": tenant, "entries": list})))
}

/// The margin of each tenant: `month=YYYY-MM` (to `at`, default now, while the month
/// runs) or `from`/`to`/`since` (default: this month so far), the API's filters,
/// `offset` and `limit` (default 100, at most 1,000).
pub async fn margin(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let now = time_param(&params, "at")?.unwrap_or_else(|| state.now_ms());
    let mut base = base_query(&params, now, &["month", "at", "offset", "limit"])?;
    window(&params, now, &mut base)?;
    widen(&state, key.workspace_id, &mut base.filters).await?;
    let limit = limit_param(&params, 100, 1000)?;
    let offset = match params.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::field("offset", "must be an integer >= 0"))?,
    };
    let plans = state.budgets.plans(key.workspace_id).await?;
    let book = RevenueBook::load(
        state.store.as_ref(),
        key.workspace_id,
        plans,
        state.budgets.plan_history(key.workspace_id).await?,
    )
    .await?;
    let report = margin::margin(
        state.store.as_ref(),
        key.workspace_id,
        &book,
        &base,
        (offset, limit),
    )
    .await?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// The margin's window: `month` (its start to its end or `at`, whichever is first), else
/// the window of from/to/since, else this month so far.
fn window(
    params: &HashMap<String, String>,
    now: i64,
    base: &mut crate::query::Query,
) -> Result<(), ApiError> {
    let explicit = ["from", "to", "since"]
        .iter()
        .any(|p| params.contains_key(*p));
    let month_start = match params.get("month") {
        Some(_) if explicit => {
            return Err(ApiError::field(
                "month",
                "cannot be combined with from, to or since",
            ))
        }
        Some(m) => revenue::parse_month(m).ok_or_else(|| {
            ApiError::field("month", "must be a month YYYY-MM from 2020-01 to 2100-12")
        })?,
        None if explicit => return Ok(()),
        None => crate::budget::period::Period::Month.bounds(now, "UTC").0,
    };
    let (start, end) = crate::budget::period::Period::Month.bounds(month_start, "UTC");
    if start > now {
        return Err(ApiError::field("month", "is in the future"));
    }
    base.from_ms = start;
    base.to_ms = end.min(now);
    Ok(())
}
