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

/// A tenant's plan changes, oldest first (`effectiveFrom` null: since always), and its
/// plan now: `GET /v1/plans/history?tenant=acme`.
pub async fn history(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let Some(tenant) = params.get("tenant").filter(|t| !t.is_empty()) else {
        return Err(ApiError::field("tenant", "is required: the tenantId"));
    };
    plans::check_tenant("tenant", tenant).map_err(|e| ApiError::invalid_request(vec![e]))?;
    let (_, changes) = state
        .budgets
        .tenant_history(key.workspace_id, tenant)
        .await?;
    let plan_now = state.budgets.plan_of(key.workspace_id, tenant).await?;
    let changes: Vec<Value> = changes
        .into_iter()
        .map(|(from, plan)| {
            let from = (from != plans::ALWAYS).then(|| crate::report::rfc3339(from));
            json!({"effectiveFrom": from, "plan": plan})
        })
        .collect();
    Ok(Json(
        json!({"tenantId": tenant, "plan": plan_now, "history": changes}),
    ))
}

/// Put a tenant on a plan: `{"plan": "pro"}`, or `{"plan": null}` to take it off;
/// `"effectiveFrom"` (an RFC 3339 time or a UTC day) dates the change (without it: the
/// tenant's first plan is its plan since always, a change takes effect now).
pub async fn set_tenant_plan(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))?;
    let Some(obj) = body.as_object() else {
        return Err(ApiError::field("body", "must be a JSON object"));
    };
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "plan" | "effectiveFrom"))
    {
        return Err(ApiError::field(
            other.as_str(),
            "is not a plan assignment field; use plan, effectiveFrom",
        ));
    }
    let plan = match obj.get("plan") {
        Some(Value::String(p)) => Some(p.clone()),
        Some(Value::Null) => None,
        _ => {
            return Err(ApiError::field(
                "plan",
                "is required: a plan name, or null to take the tenant off its plan",
            ))
        }
    };
    let from = match obj.get("effectiveFrom") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(
            plans::parse_effective_from("effectiveFrom", t)
                .map_err(|e| ApiError::invalid_request(vec![e]))?,
        ),
        Some(_) => {
            return Err(ApiError::field(
                "effectiveFrom",
                "must be an RFC 3339 time or a day YYYY-MM-DD (UTC)",
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
        .assign_plans(key.workspace_id, &[(tenant.clone(), plan.clone(), from)])
        .await?;
    let from = from.map(crate::report::rfc3339);
    Ok(Json(
        json!({"tenantId": tenant, "plan": plan, "effectiveFrom": from}),
    ))
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
