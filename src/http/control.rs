//! Control API: budgets, rate caps and the pre-call guard.

use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::budget::counters::{GuardAnswer, GuardRequest, MAX_ESTIMATE_USD};
use crate::budget::service::{BudgetError, MAX_MEMBER_PAGE, MEMBER_PAGE, RATE_CAP};
use crate::budget::{Budget, Status};
use crate::event::{DataMode, Environment, FieldError};
use crate::money::Usd;
use crate::store::Scope;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

impl From<BudgetError> for ApiError {
    fn from(e: BudgetError) -> Self {
        match e {
            BudgetError::Invalid(fields) => invalid(fields),
            BudgetError::Store(e) => e.into(),
        }
    }
}

fn invalid(fields: Vec<FieldError>) -> ApiError {
    ApiError::invalid_request(fields)
}

/// 204 when something was deleted, else 404 naming it.
fn deleted(found: bool, what: &str, id: i64) -> Result<StatusCode, ApiError> {
    match found {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(crate::store::StoreError::NotFound(format!("{what} {id}")).into()),
    }
}

/// Ids in paths are integers; anything else is a 400 naming `id`, in the API's shape.
fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::field("id", "must be an integer id from this API"))
}

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))
}

pub async fn create_budget(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let budget = state
        .budgets
        .save(key.workspace_id, None, &body_json(&body)?)
        .await?;
    Ok((StatusCode::CREATED, Json(budget)).into_response())
}

pub async fn update_budget(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Budget>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let id = parse_id(&id)?;
    let budget = state
        .budgets
        .save(key.workspace_id, Some(id), &body_json(&body)?)
        .await?;
    Ok(Json(budget))
}

pub async fn delete_budget(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let id = parse_id(&id)?;
    let kind = crate::budget::service::BUDGET;
    deleted(
        state.budgets.delete(key.workspace_id, kind, id).await?,
        "budget",
        id,
    )
}

/// One entry of GET /v1/budgets. Answers holding money are serialized from their types,
/// never through `json!`: a `Value` holds numbers as f64, which changes amounts with more
/// than ~15 digits (a $9,223,372,036.854775807 limit read back as ...036.854776).
#[derive(Serialize)]
pub struct BudgetEntry {
    budget: Budget,
    status: Status,
}

#[derive(Serialize)]
pub struct BudgetList {
    budgets: Vec<BudgetEntry>,
}

/// Every budget with its current status (each per-member budget with one page of its
/// members over and near their caps: `membersOffset`, `membersLimit`); `format=csv` or
/// `ndjson` answers one table of it (`table=budgets`, the default, or `members`).
pub async fn budgets(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let own = ["format", "table", "membersOffset", "membersLimit"];
    if let Some(name) = params.keys().find(|k| !own.contains(&k.as_str())) {
        return Err(ApiError::field(name, "is not a parameter of this endpoint"));
    }
    let (format, table) = super::api::export_params(
        &params,
        crate::export::BudgetTable::parse,
        crate::export::BudgetTable::EXPECTED,
    )?;
    let page = member_page(&params)?;
    let now = state.now_ms();
    let mut budgets = Vec::new();
    for budget in state.budgets.list(key.workspace_id).await? {
        let status = state
            .budgets
            .status(key.workspace_id, &budget, now, page)
            .await?;
        budgets.push(BudgetEntry { budget, status });
    }
    if format != crate::export::TableFormat::Json {
        let list: Vec<(Budget, Status)> =
            budgets.into_iter().map(|e| (e.budget, e.status)).collect();
        let rows = crate::export::budget_table(table, &list);
        let stem = format!("budgets-{}", table.name());
        return Ok(super::api::table_response(format, &rows, &stem));
    }
    Ok(Json(BudgetList { budgets }).into_response())
}

pub async fn budget(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Budget>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let id = parse_id(&id)?;
    Ok(Json(state.budgets.get(key.workspace_id, id).await?))
}

/// One budget's status; a per-member budget's page of members over and near their caps
/// is chosen with `membersOffset` and `membersLimit` (1 to 1,000, default 10).
pub async fn budget_status(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Status>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let id = parse_id(&id)?;
    let page = member_page(&params)?;
    let budget = state.budgets.get(key.workspace_id, id).await?;
    let status = state
        .budgets
        .status(key.workspace_id, &budget, state.now_ms(), page)
        .await?;
    Ok(Json(status))
}

/// (offset, limit) of a status's member page from `membersOffset` and `membersLimit`.
fn member_page(
    params: &std::collections::HashMap<String, String>,
) -> Result<(usize, usize), ApiError> {
    let mut errors = Vec::new();
    let mut read = |name: &str, default: usize, range: std::ops::RangeInclusive<usize>| match params
        .get(name)
        .map(|v| v.parse::<usize>())
    {
        None => default,
        Some(Ok(n)) if range.contains(&n) => n,
        Some(_) => {
            let (lo, hi) = (range.start(), range.end());
            errors.push(FieldError::new(
                name,
                format!("must be an integer from {lo} to {hi}"),
            ));
            default
        }
    };
    let offset = read("membersOffset", MEMBER_PAGE.0, 0..=usize::MAX / 2);
    let limit = read("membersLimit", MEMBER_PAGE.1, 1..=MAX_MEMBER_PAGE);
    match errors.is_empty() {
        true => Ok((offset, limit)),
        false => Err(invalid(errors)),
    }
}

pub async fn create_rate_cap(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let cap = state
        .budgets
        .save_rate_cap(key.workspace_id, &body_json(&body)?)
        .await?;
    Ok((StatusCode::CREATED, Json(cap)).into_response())
}

pub async fn rate_caps(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let caps = state.budgets.rate_caps(key.workspace_id).await?;
    Ok(Json(json!({ "rateCaps": caps })))
}

pub async fn delete_rate_cap(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let id = parse_id(&id)?;
    deleted(
        state.budgets.delete(key.workspace_id, RATE_CAP, id).await?,
        "rate cap",
        id,
    )
}

/// `POST /v1/deploys`: record a deploy note (an ingest key, as a deploy pipeline holds).
pub async fn create_deploy(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Ingest).await?;
    let note = crate::deploy::parse(&body_json(&body)?, state.now_ms()).map_err(invalid)?;
    let note = crate::deploy::save(state.store.as_ref(), key.workspace_id, note).await?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

/// `GET /v1/deploys`: the notes of a window (the read endpoints' `since`/`from`/`to`,
/// default the last 24 h), optionally of one endpoint (with the notes for every endpoint).
pub async fn deploys(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let endpoint = params.get("endpointTag").cloned();
    let mut window_params = params.clone();
    window_params.remove("endpointTag");
    let window = super::api::base_query(&window_params, state.now_ms(), &[])?;
    let notes = crate::deploy::list(
        state.store.as_ref(),
        key.workspace_id,
        Some((window.from_ms, window.to_ms)),
    )
    .await?;
    let notes: Vec<_> = notes
        .into_iter()
        .filter(|n| endpoint.is_none() || n.endpoint_tag.is_none() || n.endpoint_tag == endpoint)
        .collect();
    Ok(Json(json!({ "deploys": notes })))
}

/// May this call go ahead? Answered from memory; a denial is still a 200 (`allow:false`),
/// so clients read one shape.
pub async fn guard(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<GuardAnswer>, ApiError> {
    let key = authorize(&state, &headers, Scope::Ingest).await?;
    let mut request = parse_guard(&body_json(&body)?).map_err(invalid)?;
    // The guard names people as ingest stores them: a personal tenantId or userId is
    // looked up by its pseudonym (or refused, as ingest would refuse it).
    let settings = state.settings.with_secret(key.workspace_id).await?;
    crate::budget::pseudonymize_ids(
        &settings.privacy(),
        "",
        &mut request.tenant_id,
        &mut request.user_id,
    )
    .map_err(invalid)?;
    // Budgets and caps count spend under the mapped names (docs/mappings.md): so does
    // the call asking.
    let now = state.now_ms();
    // The cached rules, however old: the server's loop rereads them every second, so
    // the guard never waits for that read (only a workspace's first call reads them).
    // Unreadable rules (the store down) leave the names as sent: the guard answers from
    // memory and must keep answering.
    match state
        .mappings
        .cached(state.store.as_ref(), key.workspace_id)
        .await
    {
        Ok(rules) => rules.map_call(
            &mut request.endpoint_tag,
            &mut request.tenant_id,
            &mut request.user_id,
            now,
        ),
        Err(e) => tracing::warn!(error = %e, "id mappings unreadable; guard request unmapped"),
    }
    let answer = state.budgets.guard(key.workspace_id, &request, now);
    let outcome = if answer.allow { "allow" } else { answer.reason };
    state.metrics.record_guard(key.workspace_id, outcome);
    Ok(Json(answer))
}

const GUARD_FIELDS: &[&str] = &[
    "endpointTag",
    "tenantId",
    "userId",
    "model",
    "provider",
    "estimatedCostUsd",
    "externalRequestId",
    "environment",
    "dataMode",
];

pub fn parse_guard(body: &Value) -> Result<GuardRequest, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !GUARD_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.as_str(),
                format!("is not a guard field; use {}", GUARD_FIELDS.join(", ")),
            ));
        }
    }
    let mut text = |field: &str| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => {
                Some(s.trim().to_string())
            }
            Some(_) => {
                errors.push(FieldError::new(
                    field,
                    "must be a non-empty string of at most 256 bytes",
                ));
                None
            }
        }
    };
    let endpoint_tag = text("endpointTag");
    let tenant_id = text("tenantId");
    let user_id = text("userId");
    let model = text("model");
    let provider = text("provider");
    let external_request_id = text("externalRequestId");
    let environment = text("environment");
    let data_mode = text("dataMode");
    if endpoint_tag.is_none() && !errors.iter().any(|e| e.field == "endpointTag") {
        errors.push(FieldError::new("endpointTag", "is required"));
    }
    let environment = environment.and_then(|e| {
        Environment::parse(&e).or_else(|| {
            errors.push(FieldError::new(
                "environment",
                "must be prod, staging or dev",
            ));
            None
        })
    });
    let data_mode = data_mode.and_then(|d| {
        DataMode::parse(&d).or_else(|| {
            errors.push(FieldError::new("dataMode", "must be real, test or demo"));
            None
        })
    });
    let estimate = match obj.get("estimatedCostUsd") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match Usd::parse(&n.to_string()) {
            Ok(usd) if (Usd::ZERO..=MAX_ESTIMATE_USD).contains(&usd) => Some(usd.nanos()),
            _ => {
                errors.push(FieldError::new(
                    "estimatedCostUsd",
                    format!(
                        "must be an amount from 0 to {MAX_ESTIMATE_USD} USD with at most 9 decimals"
                    ),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("estimatedCostUsd", "must be a number"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(GuardRequest {
        environment,
        data_mode,
        endpoint_tag: endpoint_tag.unwrap_or_default(),
        tenant_id,
        user_id,
        model,
        provider,
        estimate,
        external_request_id,
    })
}

impl From<crate::alert::engine::AlertError> for ApiError {
    fn from(e: crate::alert::engine::AlertError) -> Self {
        match e {
            crate::alert::engine::AlertError::Invalid(fields) => invalid(fields),
            crate::alert::engine::AlertError::Store(e) => e.into(),
        }
    }
}

/// Firing alerts first, then history, each with its evidence and deliveries.
pub async fn alerts(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let alerts = state.alerts.alerts(key.workspace_id).await?;
    Ok(Json(json!({ "alerts": alerts })))
}

/// Evaluate the rules now (they also run every minute); answers what changed.
pub async fn evaluate_alerts(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let changed = state
        .alerts
        .evaluate_once(key.workspace_id, &state.prices())
        .await?;
    Ok(Json(json!({ "transitions": changed })))
}

/// What the rules find at `at` (default now), without storing or sending anything.
pub async fn findings(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let at = match params.get("at") {
        None => state.now_ms(),
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|_| ApiError::field("at", "must be an RFC 3339 time"))?
            .as_millisecond(),
    };
    let findings = state
        .alerts
        .findings(key.workspace_id, &state.prices(), at)
        .await?;
    Ok(Json(
        json!({ "at": crate::report::rfc3339(at), "findings": findings }),
    ))
}

pub async fn alert_rules(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    Ok(Json(
        state.alerts.settings(key.workspace_id).await?.to_json(),
    ))
}

pub async fn change_alert_rules(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let settings = state
        .alerts
        .change_settings(key.workspace_id, &body_json(&body)?)
        .await?;
    Ok(Json(settings.to_json()))
}

pub async fn channels(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let channels: Vec<_> = state
        .alerts
        .channels(key.workspace_id)
        .await?
        .iter()
        .map(|c| c.redacted())
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

/// The reply shows a webhook's signing secret once; listings redact it.
pub async fn add_channel(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let channel = state
        .alerts
        .add_channel(key.workspace_id, &body_json(&body)?)
        .await?;
    Ok((StatusCode::CREATED, Json(channel)).into_response())
}

pub async fn delete_channel(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let id = parse_id(&id)?;
    deleted(
        state.alerts.delete_channel(key.workspace_id, id).await?,
        "channel",
        id,
    )
}

pub async fn test_channel(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin).await?;
    let id = parse_id(&id)?;
    let which = crate::alert::engine::ChannelRef::Id(id);
    let report = state.alerts.test_channel(key.workspace_id, which).await?;
    Ok(Json(json!(report)))
}
