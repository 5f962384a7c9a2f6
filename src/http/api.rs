//! JSON API handlers: ingest, the request explorer, totals, health.

use super::authorize;
use super::error::ApiError;
use super::state::HttpState;
use crate::export::TableFormat;
use crate::ingest::{self, Item, MAX_BODY_BYTES};
use crate::store::{EventOrder, EventQuery, KeyInfo, Scope};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Read the body up to the ingest limit; past it, 413 without reading the rest.
pub(super) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body is larger than {} MiB", MAX_BODY_BYTES / (1024 * 1024)),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-ndjson") || v.starts_with("application/jsonl")
        })
}

/// The key of an ingest request (ingest scope), refused while its workspace is paused.
pub(super) async fn ingest_key(
    state: &HttpState,
    headers: &HeaderMap,
) -> Result<KeyInfo, ApiError> {
    let key = authorize(state, headers, Scope::Ingest).await?;
    if key.workspace_paused {
        return Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "workspace_paused",
            "ingest for this workspace is paused by policy",
        ));
    }
    Ok(key)
}

/// Bodies up to this size are parsed on the worker that read them (a few events).
const INLINE_PARSE_BYTES: usize = 16 * 1024;

/// Run parsing, validation and pricing (CPU work on up to 10,000 events) off the
/// reactor, bounded so that it never crowds out the writer.
pub(super) async fn off_reactor<T: Send + 'static>(
    state: &HttpState,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state.cpu_permits.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "shutting down",
        )
    })?;
    // The blocking pool's threads that parse yield to the workers serving requests.
    let work = move || {
        crate::sched::background("burnrate-parse");
        work()
    };
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })?
}

/// What an ingest request's prepared events became: the reply's parts.
pub(super) struct Accepted {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<ingest::Rejected>,
    pub warnings: Vec<ingest::Warning>,
    pub warnings_omitted: usize,
    /// Budgets the accepted events touched that are past a warning threshold / exceeded.
    pub budget_warning: Vec<i64>,
    pub budget_exceeded: Vec<i64>,
}

impl Accepted {
    /// The ingest reply (`{"accepted", "duplicates", "rejected", "warnings", "budget"}`).
    pub fn body(&self) -> Value {
        let mut body = json!({
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "warnings": self.warnings,
            "budget": {"warning": self.budget_warning, "exceeded": self.budget_exceeded},
        });
        if self.warnings_omitted > 0 {
            body["warningsOmitted"] = json!(self.warnings_omitted);
        }
        body
    }
}

/// The path every ingest endpoint shares once its items are validated and priced: the
/// key's rate limit, the store (dedupe, durability), the budget counters. `total` is the
/// number of items the request held. A request with no valid event is an error (for
/// `single`, the one event's field errors).
pub(super) async fn accept_prepared(
    state: &HttpState,
    key: &KeyInfo,
    prepared: ingest::Prepared,
    total: usize,
    single: bool,
) -> Result<Accepted, ApiError> {
    let now = state.now_ms();
    if let Err(wait) = state.limiter.take(key.key_id, total, now) {
        return Err(ApiError::too_many(
            wait,
            "ingest rate limit for this key exceeded",
        ));
    }
    let tally = crate::store::FieldTally {
        key_id: Some(key.key_id),
        ..prepared.unknown.clone()
    };
    state
        .metrics
        .record_privacy(key.workspace_id, prepared.privacy);
    let samples: Vec<_> = prepared
        .events
        .iter()
        .map(crate::metrics::Sample::of)
        .collect();
    let receipt = state
        .ingest
        .accept(key.workspace_id, prepared.events, tally, now)
        .await?;
    let outcome = receipt.outcome;
    state.metrics.record_ingest(
        key.workspace_id,
        samples,
        &outcome.results,
        prepared.rejected.len(),
        state.now_ms(),
    );
    if outcome.results.is_empty() {
        let mut err = if single {
            ApiError::invalid_event(prepared.rejected[0].errors.clone())
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_events",
                "no event in the batch is valid",
            )
        };
        if !single {
            err.rejected = prepared.rejected;
        }
        return Err(err);
    }
    let (budget_warning, budget_exceeded) = (receipt.budget_warning, receipt.budget_exceeded);
    Ok(Accepted {
        accepted: outcome.accepted(),
        duplicates: outcome.duplicates(),
        rejected: prepared.rejected,
        warnings: prepared.warnings,
        warnings_omitted: prepared.warnings_omitted,
        budget_warning,
        budget_exceeded,
    })
}

/// Both JSON ingest endpoints: one event, or a batch (array or NDJSON).
async fn ingest_items(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    single: bool,
) -> Result<Response, ApiError> {
    let key = ingest_key(state, headers).await?;
    let bytes = read_body(headers, body).await?;
    let ndjson = is_ndjson(headers);
    let now = state.now_ms();
    let book = state.prices();
    let settings = state.settings.with_secret(key.workspace_id).await?;
    let inline = bytes.len() <= INLINE_PARSE_BYTES;
    let work = move || {
        let items: Vec<Item> = if single {
            vec![ingest::parse_single(&bytes)?]
        } else {
            ingest::parse_batch(&bytes, ndjson)?
        };
        let total = items.len();
        Ok((ingest::prepare(items, &book, &settings, now), total))
    };
    // A small body (a single event, a handful) is parsed here, in tens of microseconds:
    // queued for a parse thread it waited behind whole batches (154 ms p99 for single
    // events under a batch load, ARCHITECTURE.md).
    let (prepared, total) = if inline {
        work()?
    } else {
        off_reactor(state, work).await?
    };
    let accepted = accept_prepared(state, &key, prepared, total, single).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted.body())).into_response())
}

/// The OpenAPI document (no key: it describes, it holds no data).
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

pub async fn ingest_one(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest_items(&state, &headers, body, true).await
}

pub async fn ingest_batch(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest_items(&state, &headers, body, false).await
}

/// Query parameters arrive as strings so that every bad one gets a 400 naming it.
pub(super) type Params = Query<HashMap<String, String>>;

pub async fn events(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let format = match params.get("format").map(String::as_str) {
        None | Some("json") => None,
        Some(f) => Some(
            crate::export::Format::parse(f)
                .ok_or_else(|| ApiError::field("format", "must be json, csv or ndjson"))?,
        ),
    };
    if format.is_some() && params.contains_key("limit") {
        return Err(ApiError::field(
            "limit",
            "does not apply to format=csv or ndjson: an export streams every event",
        ));
    }
    let limit = match params.get("limit") {
        None if format.is_some() => 1000,
        None => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "limit",
                    "must be an integer from 1 to 1000",
                ))
            }
        },
    };
    let order = match params.get("order").map(String::as_str) {
        None | Some("newest") => EventOrder::Newest,
        Some("cost") => EventOrder::Costliest,
        Some(_) => {
            return Err(ApiError::field(
                "order",
                "must be newest or cost (most expensive first, priced calls only)",
            ))
        }
    };
    // Without filter parameters the explorer lists everything (all environments and
    // data modes); with any, the usual window and defaults of the query layer apply.
    let filtered = params.keys().any(|k| {
        !matches!(
            k.as_str(),
            "limit" | "cursor" | "externalRequestId" | "format" | "order"
        )
    });
    let (window, filters) = if filtered {
        let mut base = base_query(
            &params,
            state.now_ms(),
            &["limit", "cursor", "externalRequestId", "format", "order"],
        )?;
        widen(&state, key.workspace_id, &mut base.filters).await?;
        (Some((base.from_ms, base.to_ms)), Some(base.filters))
    } else {
        (None, None)
    };
    let query = EventQuery {
        external_request_id: params.get("externalRequestId").cloned(),
        window,
        filters,
        cursor: params.get("cursor").cloned(),
        limit,
        order,
    };
    if let Some(format) = format {
        return Ok(export_events(&state, key.workspace_id, query, format));
    }
    let page = state
        .store
        .events(key.workspace_id, query)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::BadCursor => {
                ApiError::field("cursor", "is not a cursor returned by this API")
            }
            other => other.into(),
        })?;
    Ok(Json(page).into_response())
}

/// Every event the query matches, page after page of 1,000 (one page in memory at a
/// time). A read failing mid-way ends the body with an error, so the client sees a
/// cut transfer rather than a short file that looks complete.
fn export_events(
    state: &HttpState,
    ws: crate::store::WorkspaceId,
    query: EventQuery,
    format: crate::export::Format,
) -> Response {
    let store = state.store.clone();
    let pages = futures_util::stream::unfold(Some((query, true)), move |next| {
        let store = store.clone();
        async move {
            let (mut query, first) = next?;
            let page = match store.events(ws, query.clone()).await {
                Ok(page) => page,
                Err(_) => {
                    let err = std::io::Error::other("reading events failed; the export is cut");
                    return Some((Err(err), None));
                }
            };
            let mut text = if first { format.head() } else { String::new() };
            for event in &page.events {
                text.push_str(&format.line(event));
            }
            let after = page.next_cursor.map(|cursor| {
                query.cursor = Some(cursor);
                (query, false)
            });
            Some((Ok::<_, std::io::Error>(Bytes::from(text)), after))
        }
    });
    let name = match format {
        crate::export::Format::Csv => "attachment; filename=\"events.csv\"",
        crate::export::Format::Ndjson => "attachment; filename=\"events.ndjson\"",
    };
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CONTENT_DISPOSITION, name),
        ],
        Body::from_stream(pages),
    )
        .into_response()
}

pub async fn summary(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let mut base = base_query(&params, state.now_ms(), &[])?;
    widen(&state, key.workspace_id, &mut base.filters).await?;
    let summary = crate::report::summary(state.store.as_ref(), key.workspace_id, &base).await?;
    let mut body = serde_json::to_value(&summary).unwrap_or_default();
    body["from"] = rfc3339(base.from_ms);
    body["to"] = rfc3339(base.to_ms);
    // Retention: from when raw events exist (only once something was pruned); totals of
    // older windows come from the rollups, lists of events only from this time.
    if let Some(ms) = state.store.raw_from(key.workspace_id).await? {
        body["rawFrom"] = rfc3339(ms);
    }
    Ok(Json(body).into_response())
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers reads and takes writes (not while a full disk makes
/// every ingest fail; it probes again on each call, so it recovers by itself).
pub async fn readyz(State(state): State<Arc<HttpState>>) -> Result<&'static str, ApiError> {
    state.store.price_generation().await?;
    state.store.check_writable().await?;
    Ok("ready")
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// `POST /v1/query`: the aggregate query as JSON.
pub async fn query(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
    body: Body,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    // The query is the body; the URL carries only the answer's format.
    if let Some(name) = params.keys().find(|k| k.as_str() != "format") {
        return Err(ApiError::field(name, "is not a parameter of this endpoint"));
    }
    let format = table_format(&params)?;
    let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "a query is at most 1 MiB",
        )
    })?;
    let request: crate::query::QueryRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::field("body", format!("is not a valid query: {e}")))?
    };
    let mut query = request
        .check(state.now_ms())
        .map_err(|e| ApiError::field(&e.field, e.message))?;
    widen(&state, key.workspace_id, &mut query.filters).await?;
    let answer = state
        .store
        .aggregate(key.workspace_id, query.clone())
        .await?;
    if format != TableFormat::Json {
        let table = crate::export::query_table(&query, &answer);
        return Ok(table_response(format, &table, "query"));
    }
    Ok(Json(query_answer(&query, &answer)).into_response())
}

/// `format=json|csv|ndjson` of the aggregate reads (JSON when absent).
pub(super) fn table_format(params: &HashMap<String, String>) -> Result<TableFormat, ApiError> {
    TableFormat::parse(params.get("format").map(String::as_str))
        .ok_or_else(|| ApiError::field("format", "must be json, csv or ndjson"))
}

/// `format` and `table` of a read that answers several tables: `table` picks one of them
/// (parsed by `parse`, its default when absent) and only applies to csv or ndjson.
pub(super) fn export_params<T>(
    params: &HashMap<String, String>,
    parse: fn(Option<&str>) -> Option<T>,
    expected: &str,
) -> Result<(TableFormat, T), ApiError> {
    let format = table_format(params)?;
    let table = params.get("table").map(String::as_str);
    if format == TableFormat::Json && table.is_some() {
        return Err(ApiError::field(
            "table",
            "applies only to format=csv or ndjson (the JSON answer holds every table)",
        ));
    }
    let table = parse(table)
        .ok_or_else(|| ApiError::field("table", format!("must be one of: {expected}")))?;
    Ok((format, table))
}

/// An aggregate answer as a CSV or NDJSON download named `stem.csv` / `stem.ndjson`
/// (the pure writers are `export::Table`'s).
pub(super) fn table_response(
    format: TableFormat,
    table: &crate::export::Table,
    stem: &str,
) -> Response {
    let (content_type, ext, body) = match format {
        TableFormat::Ndjson => ("application/x-ndjson", "ndjson", table.to_ndjson()),
        TableFormat::Csv | TableFormat::Json => ("text/csv; charset=utf-8", "csv", table.to_csv()),
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{stem}.{ext}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn rfc3339(ms: i64) -> serde_json::Value {
    json!(jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default())
}

/// One row's measures as JSON. Money goes with its unpriced count: when `costUsd` is
/// asked for, `unpriced` is always there too, and `costUsd` is null for a group whose
/// calls are all unpriced.
fn measures_json(
    measures: &[crate::query::Measure],
    sums: &crate::query::Sums,
    out: &mut serde_json::Map<String, serde_json::Value>,
) {
    use crate::query::Measure;
    let mut all = measures.to_vec();
    if all.contains(&Measure::CostUsd) && !all.contains(&Measure::Unpriced) {
        all.push(Measure::Unpriced);
    }
    for m in all {
        out.insert(m.name().into(), sums.value(m));
    }
}

/// Rows as JSON objects: the group's dimensions under `group`, then each measure; then
/// the totals of every group (per bucket when bucketed) and how many groups the limit
/// cut off, so that a total is never summed from cut rows.
pub fn query_answer(
    query: &crate::query::Query,
    answer: &crate::query::Answer,
) -> serde_json::Value {
    let row_json = |row: &crate::query::Row, with_group: bool| {
        let mut out = serde_json::Map::new();
        if with_group {
            let group: serde_json::Map<String, serde_json::Value> = query
                .group_by
                .iter()
                .zip(&row.group)
                .map(|(d, v)| (d.name(), json!(v)))
                .collect();
            out.insert("group".into(), serde_json::Value::Object(group));
        }
        if let Some(b) = row.bucket_ms {
            out.insert("bucket".into(), rfc3339(b));
        }
        measures_json(&query.measures, &row.sums, &mut out);
        serde_json::Value::Object(out)
    };
    let rows: Vec<serde_json::Value> = answer.rows.iter().map(|r| row_json(r, true)).collect();
    let totals: Vec<serde_json::Value> = answer.totals.iter().map(|r| row_json(r, false)).collect();
    let mut out = json!({
        "from": rfc3339(query.from_ms),
        "to": rfc3339(query.to_ms),
        "groupBy": query.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "bucket": query.bucket,
        "measures": query.measures,
        "rows": rows,
        "totals": totals,
        "rowsCut": answer.cut,
    });
    // Only when part of the window was read from raw events that retention pruned: that
    // part counts only the events from this time on.
    if let Some(ms) = answer.raw_from_ms {
        out["rawPrunedBefore"] = rfc3339(ms);
    }
    out
}

/// Read filters on tenantId, userId or a tag naming a personal value (an e-mail, a phone)
/// also match the pseudonym ingest stored for it (`privacy::Privacy::widen_filters`).
pub(super) async fn widen(
    state: &HttpState,
    ws: crate::store::WorkspaceId,
    filters: &mut crate::query::Filters,
) -> Result<(), ApiError> {
    state
        .settings
        .with_secret(ws)
        .await?
        .privacy()
        .widen_filters(filters);
    Ok(())
}

/// Filters and window from URL parameters, checked like a POST /v1/query body. Values
/// may be comma-separated lists. Parameters a handler reads itself are listed in `own`;
/// anything else unknown is a 400, so a typo never silently widens a view.
pub fn base_query(
    params: &HashMap<String, String>,
    now_ms: i64,
    own: &[&str],
) -> Result<crate::query::Query, ApiError> {
    let mut request = crate::query::QueryRequest {
        from: since_param(params, now_ms)?.or_else(|| params.get("from").cloned()),
        to: params.get("to").cloned(),
        ..Default::default()
    };
    for (name, value) in params {
        if matches!(name.as_str(), "from" | "to" | "since") || own.contains(&name.as_str()) {
            continue;
        }
        let is_filter = matches!(
            name.as_str(),
            "environment"
                | "dataMode"
                | "status"
                | "provider"
                | "model"
                | "endpointTag"
                | "promptVersion"
                | "tenantId"
                | "userId"
        ) || name.starts_with("tag:");
        if !is_filter {
            return Err(ApiError::field(name, "is not a parameter of this endpoint"));
        }
        let values: Vec<Value> = value
            .split(',')
            .map(|v| Value::String(v.trim().to_string()))
            .collect();
        request.filters.insert(name.clone(), Value::Array(values));
    }
    // Name the URL parameter the client wrote, not the query body's path to it.
    request.check(now_ms).map_err(|e| {
        let field = e.field.strip_prefix("filters.").unwrap_or(&e.field);
        ApiError::field(field, e.message)
    })
}

/// `since=7d`: the window of that length ending at `to` (default now), as `from`. Parsed
/// by the same function as the CLI's --since; with `from` it is ambiguous, a 400.
fn since_param(params: &HashMap<String, String>, now_ms: i64) -> Result<Option<String>, ApiError> {
    let Some(text) = params.get("since") else {
        return Ok(None);
    };
    if params.contains_key("from") {
        return Err(ApiError::field(
            "since",
            "cannot be combined with from; give since (a window ending now or at to) or from",
        ));
    }
    let length = crate::window::parse_since(text).map_err(|e| ApiError::field("since", e))?;
    let to = time_param(params, "to")?.unwrap_or(now_ms);
    Ok(Some(crate::report::rfc3339(to - length)))
}

pub(super) fn limit_param(
    params: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                "limit",
                format!("must be an integer from 1 to {max}"),
            )),
        },
    }
}

pub async fn top(
    State(state): State<Arc<HttpState>>,
    axum::extract::Path(kind_text): axum::extract::Path<String>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let kind = crate::report::TopKind::parse(&kind_text).ok_or_else(|| {
        ApiError::field(
            "kind",
            format!("must be one of: {}", crate::report::TopKind::EXPECTED),
        )
    })?;
    let format = table_format(&params)?;
    let mut base = base_query(&params, state.now_ms(), &["limit", "format"])?;
    widen(&state, key.workspace_id, &mut base.filters).await?;
    let limit = limit_param(&params, 20, 1000)?;
    let report =
        crate::report::top(state.store.as_ref(), key.workspace_id, &base, kind, limit).await?;
    if format != TableFormat::Json {
        let dims: Vec<String> = kind.dimensions().iter().map(|d| d.name()).collect();
        let table = crate::export::top_table(&dims, &report);
        return Ok(table_response(format, &table, &format!("top-{kind_text}")));
    }
    Ok(Json(report).into_response())
}

pub async fn timeseries(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let format = table_format(&params)?;
    let mut base = base_query(
        &params,
        state.now_ms(),
        &["bucket", "by", "limit", "format"],
    )?;
    widen(&state, key.workspace_id, &mut base.filters).await?;
    let bucket = match params.get("bucket").map(String::as_str) {
        None | Some("hour") => crate::query::Bucket::Hour,
        Some("day") => crate::query::Bucket::Day,
        Some(_) => return Err(ApiError::field("bucket", "must be hour or day")),
    };
    let buckets = (base.to_ms - base.from_ms) / bucket.millis();
    if buckets > 2000 {
        return Err(ApiError::field(
            "bucket",
            "gives more than 2000 points for this window; use day",
        ));
    }
    let by = params
        .get("by")
        .map(|d| {
            crate::query::Dimension::parse(d).ok_or_else(|| {
                ApiError::field(
                    "by",
                    format!("must be one of: {}", crate::query::Dimension::EXPECTED),
                )
            })
        })
        .transpose()?;
    let top_n = limit_param(&params, 8, 50)?;
    let series = crate::report::timeseries(
        state.store.as_ref(),
        key.workspace_id,
        &base,
        bucket,
        by,
        top_n,
    )
    .await?;
    if format != TableFormat::Json {
        let table = crate::export::timeseries_table(&series);
        return Ok(table_response(format, &table, "timeseries"));
    }
    Ok(Json(series).into_response())
}

pub async fn prompt_versions(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let (format, table) = export_params(
        &params,
        crate::export::VersionTable::parse,
        crate::export::VersionTable::EXPECTED,
    )?;
    let own = ["baseline", "format", "table"];
    let mut base = base_query(&params, state.now_ms(), &own)?;
    widen(&state, key.workspace_id, &mut base.filters).await?;
    let endpoints = crate::report::prompt_versions(
        state.store.as_ref(),
        key.workspace_id,
        &base,
        params.get("baseline").map(String::as_str),
    )
    .await?;
    if format != TableFormat::Json {
        let rows = crate::export::version_table(table, &endpoints);
        let stem = format!("prompt-versions-{}", table.name());
        return Ok(table_response(format, &rows, &stem));
    }
    Ok(Json(
        json!({"from": rfc3339(base.from_ms), "to": rfc3339(base.to_ms), "endpoints": endpoints}),
    )
    .into_response())
}

pub async fn concentration(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let mut base = base_query(&params, state.now_ms(), &["by"])?;
    widen(&state, key.workspace_id, &mut base.filters).await?;
    let by = match params.get("by").map(String::as_str) {
        None | Some("tenantId") => crate::query::Dimension::TenantId,
        Some("endpointTag") => crate::query::Dimension::EndpointTag,
        Some("userId") => crate::query::Dimension::UserId,
        Some(_) => {
            return Err(ApiError::field(
                "by",
                "must be tenantId, userId or endpointTag",
            ))
        }
    };
    let report =
        crate::report::concentration(state.store.as_ref(), key.workspace_id, &base, by).await?;
    Ok(Json(report).into_response())
}

/// An RFC 3339 time parameter, if given.
pub(super) fn time_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| {
                    ApiError::field(
                        name,
                        "must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z",
                    )
                })
        })
        .transpose()
}

/// The explain request of URL parameters; the dashboard and the CLI read theirs here
/// too, so every front door accepts and refuses the same things.
pub fn explain_request(
    params: &HashMap<String, String>,
    now_ms: i64,
) -> Result<crate::report::explain::ExplainRequest, ApiError> {
    let base = base_query(params, now_ms, &["baselineFrom", "baselineTo", "by"])?;
    let request = crate::report::explain::ExplainRequest::new(
        base,
        time_param(params, "baselineFrom")?,
        time_param(params, "baselineTo")?,
        params.get("by").map(String::as_str),
    )?;
    Ok(request)
}

/// `GET /v1/explain`: why spend changed between two windows.
pub async fn explain(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let (format, table) = export_params(
        &params,
        crate::export::ExplainTable::parse,
        crate::export::ExplainTable::EXPECTED,
    )?;
    // format and table pick the answer's shape; the rest is the explain request the
    // dashboard and the CLI read too.
    let mut params = params;
    params.remove("format");
    params.remove("table");
    let mut request = explain_request(&params, state.now_ms())?;
    widen(&state, key.workspace_id, &mut request.window.filters).await?;
    let explanation =
        crate::report::explain::explain(state.store.as_ref(), key.workspace_id, &request).await?;
    if format != TableFormat::Json {
        let rows = crate::export::explain_table(table, &explanation);
        let stem = format!("explain-{}", table.name());
        return Ok(table_response(format, &rows, &stem));
    }
    Ok(Json(explanation).into_response())
}

/// The gate's window when none is given: a week, so that a canary has a baseline.
const GATE_WINDOW_MS: i64 = 7 * 86_400_000;

/// The gate request of URL parameters (shared with the CLI).
pub fn gate_request(
    params: &HashMap<String, String>,
    now_ms: i64,
) -> Result<crate::report::explain::GateRequest, ApiError> {
    use crate::gate::{Metric, Settings, DEFAULT_MAX_INCREASE_PCT, DEFAULT_MIN_SAMPLES};
    let required = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::field(name, "is required"))
    };
    let endpoint = required("endpointTag")?;
    if endpoint.contains(',') {
        return Err(ApiError::field("endpointTag", "takes one endpoint"));
    }
    if params.contains_key("promptVersion") {
        return Err(ApiError::field(
            "promptVersion",
            "is not a parameter of the gate; use candidate and baseline",
        ));
    }
    let candidate = required("candidate")?;
    let baseline = params
        .get("baseline")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let metric = match params.get("metric") {
        None => Metric::CostPerRequest,
        Some(m) => Metric::parse(m).ok_or_else(|| {
            ApiError::field("metric", format!("must be one of: {}", Metric::EXPECTED))
        })?,
    };
    let max_increase_pct = match params.get("maxIncreasePct") {
        None => DEFAULT_MAX_INCREASE_PCT,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && *p >= -100.0)
            .ok_or_else(|| {
                ApiError::field("maxIncreasePct", "must be a number of at least -100")
            })?,
    };
    let min_samples = match params.get("minSamples") {
        None => DEFAULT_MIN_SAMPLES,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (2..=crate::report::explain::GATE_SAMPLE_CAP).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    "minSamples",
                    format!(
                        "must be an integer from 2 to {}",
                        crate::report::explain::GATE_SAMPLE_CAP
                    ),
                )
            })?,
    };
    let mut params = params.clone();
    if !params.contains_key("from") && !params.contains_key("since") {
        let to = time_param(&params, "to")?.unwrap_or(now_ms);
        params.insert("from".into(), crate::report::rfc3339(to - GATE_WINDOW_MS));
    }
    let own = [
        "endpointTag",
        "candidate",
        "baseline",
        "metric",
        "maxIncreasePct",
        "minSamples",
    ];
    let window = base_query(&params, now_ms, &own)?;
    Ok(crate::report::explain::GateRequest {
        window,
        endpoint,
        candidate,
        baseline,
        metric,
        settings: Settings {
            max_increase_pct,
            min_samples,
        },
    })
}

/// `GET /v1/gate`: is a candidate prompt version more expensive than its baseline?
pub async fn gate(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Read).await?;
    let mut request = gate_request(&params, state.now_ms())?;
    widen(&state, key.workspace_id, &mut request.window.filters).await?;
    let report =
        crate::report::explain::gate(state.store.as_ref(), key.workspace_id, &request).await?;
    Ok(Json(report).into_response())
}
