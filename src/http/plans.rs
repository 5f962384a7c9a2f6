//! Plans API: which plan each tenant is on (`/v1/plans`), for the per-plan limits of a
//! budget for each tenant. One tenant at a time, or a `tenantId,plan` CSV import.

use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::budget::plans;
use crate::store::Scope;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many tenants are on each plan.
pub async fn plans(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let map = state.budgets.plans(key.workspace_id).await?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for plan in map.values() {
        *counts.entry(plan).or_default() += 1;
    }
    let plans: Vec<Value> = counts
        .into_iter()
        .map(|(plan, tenants)| json!({"plan": plan, "tenants": tenants}))
        .collect();
    Ok(Json(json!({"tenants": map.len(), "plans": plans})))
}

/// One tenant's plan (null when it has none).
pub async fn tenant_plan(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let plan = state.budgets.plan_of(key.workspace_id, &tenant).await?;
    Ok(Json(json!({"tenantId": tenant, "plan": plan})))
}

/// Put a tenant on a plan: `{"plan": "pro"}`, or `{"plan": null}` to take it off.
pub async fn set_tenant_plan(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    let plan = match body.as_object().map(|o| (o.len(), o.get("plan"))) {
        Some((1, Some(Value::String(p)))) => Some(p.clone()),
        Some((1, Some(Value::Null))) => None,
        _ => {
            return Err(ApiError::field(
                "plan",
                "is required, alone: a plan name, or null to take the tenant off its plan",
            ))
        }
    };
    let checked = plans::check_tenant("tenantId", &tenant).and_then(|_| {
        plan.as_deref()
            .map_or(Ok(()), |p| plans::check_plan("plan", p))
    });
    if let Err(e) = checked {
        return Err(ApiError::invalid_request(vec![e]));
    }
    state
        .budgets
        .assign_plans(key.workspace_id, &[(tenant.clone(), plan.clone())])
        .await?;
    Ok(Json(json!({"tenantId": tenant, "plan": plan})))
}

/// `tenantId,plan` lines as the body (text/csv); an empty plan takes a tenant off its
/// plan. A bad line refuses the whole import, naming each bad line.
pub async fn import(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::field("body", "is not UTF-8"))?;
    let assignments = plans::parse_csv(text).map_err(ApiError::invalid_request)?;
    let assigned = state
        .budgets
        .assign_plans(key.workspace_id, &assignments)
        .await?;
    Ok(Json(json!({ "assigned": assigned })))
}
