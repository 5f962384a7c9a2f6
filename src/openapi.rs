//! The OpenAPI 3.1 document served at `GET /openapi.json`, built from the code's own
//! tables: the routes (`ROUTES`, checked against the router by tests/openapi_e2e.rs), the
//! event contract's fields (`event::FIELD_NAMES`), its vocabularies (`Status::ALL`, ...)
//! and the validator's limits. Pure.

use crate::event::{DataMode, Environment, Operation, ServiceTier, Status, FIELD_NAMES};
use crate::validate;
use serde_json::{json, Map, Value};

mod control;

/// One operation: method, path (OpenAPI `{param}` syntax, as axum's), the key scope it
/// needs (None: no key), a summary, the request body's schema and the 2xx reply's.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Option<&'static str>,
    pub summary: &'static str,
    pub request: Option<&'static str>,
    pub reply: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    scope: Option<&'static str>,
    summary: &'static str,
    request: Option<&'static str>,
    reply: &'static str,
) -> Route {
    Route {
        method,
        path,
        scope,
        summary,
        request,
        reply,
    }
}

const R: Option<&str> = Some("read");
const I: Option<&str> = Some("ingest");
const A: Option<&str> = Some("admin");
const OBJ: Option<&str> = Some("Object");

/// Every JSON API route of `http::router` (the dashboard's HTML pages are not API).
pub const ROUTES: &[Route] = &[
    route(
        "post",
        "/v1/ingest/llm-request",
        I,
        "Ingest one event",
        Some("Event"),
        "IngestReply",
    ),
    route(
        "post",
        "/v1/ingest/batch",
        I,
        "Ingest a JSON array or NDJSON of events",
        Some("EventBatch"),
        "IngestReply",
    ),
    route(
        "post",
        "/v1/traces",
        I,
        "OTLP/HTTP trace export (protobuf or JSON); spans with GenAI usage become events",
        OBJ,
        "IngestReply",
    ),
    route(
        "get",
        "/v1/events",
        R,
        "List stored events (filters, cursor; order=cost for the most expensive first); format=csv or ndjson streams every match",
        None,
        "Events",
    ),
    route(
        "get",
        "/v1/summary",
        R,
        "Totals of a window",
        None,
        "Summary",
    ),
    route(
        "post",
        "/v1/query",
        R,
        "The aggregate query; ?format=csv or ndjson answers its rows as CSV or NDJSON (json is the default)",
        OBJ,
        "QueryAnswer",
    ),
    route(
        "get",
        "/v1/top/{kind}",
        R,
        "Top endpoints, tenants, users, models, ... with share and change; format=csv or ndjson answers the rows as CSV or NDJSON (json is the default)",
        None,
        "TopReport",
    ),
    route(
        "get",
        "/v1/timeseries",
        R,
        "Spend over time by a dimension; format=csv or ndjson answers one line per (bucket, series) (json is the default)",
        None,
        "Timeseries",
    ),
    route(
        "get",
        "/v1/prompt-versions",
        R,
        "Prompt versions compared per endpoint; format=csv or ndjson answers one table, table=comparisons (default) or versions",
        None,
        "PromptVersions",
    ),
    route(
        "get",
        "/v1/concentration",
        R,
        "How concentrated spend is",
        None,
        "Concentration",
    ),
    route(
        "get",
        "/v1/quality",
        R,
        "Tracking quality of a window (default 7d): shares of events with externalRequestId, tenantId, promptVersion, usage and a price (overall and per endpointTag), unknown fields per key, personal ids counted, endpointTag naming lint, checks, score and Setup stage (docs/quality.md)",
        None,
        "Quality",
    ),
    route(
        "post",
        "/v1/guard",
        I,
        "May this call go ahead (budgets, rate caps)? A member's own cap answers reason tenant_quota_exceeded (user_, endpoint_) with quota: member, plan, limitUsd, spentUsd, resetsAt, message",
        OBJ,
        "GuardAnswer",
    ),
    route(
        "get",
        "/v1/budgets",
        R,
        "Budgets with their status (per-member budgets with a page of members over and near their caps: membersOffset, membersLimit); format=csv or ndjson answers one table, table=budgets (default) or members",
        None,
        "BudgetList",
    ),
    route(
        "post",
        "/v1/budgets",
        A,
        "Create a budget; a scope value \"*\" (tenantId, userId or endpointTag) makes one for each value, with overrides {member: limitUsd} and, for tenants, planLimits {plan: limitUsd or null}",
        OBJ,
        "Budget",
    ),
    route("get", "/v1/budgets/{id}", R, "One budget", None, "Budget"),
    route(
        "put",
        "/v1/budgets/{id}",
        A,
        "Change a budget",
        OBJ,
        "Budget",
    ),
    route(
        "delete",
        "/v1/budgets/{id}",
        A,
        "Delete a budget",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/budgets/{id}/status",
        R,
        "A budget's status and forecast; for a budget for each value, its members over and near their caps (members: count, over, near, page most over first; query membersOffset, membersLimit 1-1000)",
        None,
        "BudgetStatus",
    ),
    route(
        "get",
        "/v1/plans",
        R,
        "How many tenants are on each plan",
        None,
        "PlanCounts",
    ),
    route(
        "get",
        "/v1/plans/history",
        R,
        "A tenant's plan changes (?tenant=), oldest first, each with its effectiveFrom (null: since always), and its plan now",
        None,
        "PlanHistory",
    ),
    route(
        "post",
        "/v1/plans/import",
        A,
        "Put tenants on plans from a text/csv body of tenantId,plan lines, or tenantId,plan,effectiveFrom (header first; an empty plan takes a tenant off its plan)",
        None,
        "PlanImport",
    ),
    route(
        "get",
        "/v1/plans/tenants/{tenant}",
        R,
        "One tenant's plan",
        None,
        "TenantPlan",
    ),
    route(
        "put",
        "/v1/plans/tenants/{tenant}",
        A,
        "Put a tenant on a plan: {\"plan\": name}, or null to take it off; \"effectiveFrom\" (RFC 3339 time or UTC day) dates the change",
        OBJ,
        "TenantPlanChange",
    ),
    route(
        "get",
        "/v1/plans/definitions",
        R,
        "Every plan's monthly price",
        None,
        "PlanDefinitions",
    ),
    route(
        "put",
        "/v1/plans/definitions/{plan}",
        A,
        "Define or change a plan's monthly price: {\"priceUsd\": 50}",
        OBJ,
        "PlanPrice",
    ),
    route(
        "get",
        "/v1/revenue",
        R,
        "One tenant's revenue entries (tenantId=), by date",
        None,
        "RevenueEntries",
    ),
    route(
        "post",
        "/v1/revenue",
        A,
        "Add revenue entries: {\"entries\": [{tenantId, type: override|oneOff, date: YYYY-MM-DD, amountUsd}]}",
        OBJ,
        "RevenueAdded",
    ),
    route(
        "post",
        "/v1/revenue/import",
        A,
        "Add revenue entries from a text/csv body of tenantId,type,date,amountUsd lines (header first)",
        None,
        "RevenueAdded",
    ),
    route(
        "get",
        "/v1/margin",
        R,
        "Revenue, AI cost, margin and cost per active user-day per tenant, unprofitable first (month=YYYY-MM or from/to, filters, offset, limit), with month-end projections",
        None,
        "Margin",
    ),
    route(
        "get",
        "/v1/reconciliation",
        R,
        "The provider's bill against burnrate's attribution per UTC day and provider (and model where the report has it): billed, attributed, difference, coverage %, unattributed spend by cause (from, to: YYYY-MM-DD or RFC 3339, default the last 30 days; environment; dataMode, default real); format=csv or ndjson answers one table, table=days (default) or models",
        None,
        "Reconciliation",
    ),
    route(
        "post",
        "/v1/reconciliation/import",
        A,
        "Import a provider's cost report as the body (format=openai-costs|openai-usage|anthropic-cost|csv, sniffed when omitted); a provider's day imported again replaces the stored one",
        None,
        "ReconciliationImport",
    ),
    route(
        "get",
        "/v1/mappings",
        R,
        "Id mappings (renames and merges of endpointTag, tenantId, userId), oldest first",
        None,
        "Mappings",
    ),
    route(
        "put",
        "/v1/mappings",
        A,
        "Add an id mapping: from (a value, or a prefix ending in *) reads as to, from effectiveFrom (truncated to the hour) or for all history",
        Some("MappingRequest"),
        "Mapping",
    ),
    route(
        "post",
        "/v1/mappings",
        A,
        "Add an id mapping (as PUT)",
        Some("MappingRequest"),
        "Mapping",
    ),
    route(
        "delete",
        "/v1/mappings/{id}",
        A,
        "Remove an id mapping",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/deploys",
        R,
        "Deploy notes in a window (since/from/to, endpointTag)",
        None,
        "DeployNotes",
    ),
    route(
        "post",
        "/v1/deploys",
        I,
        "Record a deploy note",
        Some("DeployNoteRequest"),
        "DeployNote",
    ),
    route("get", "/v1/rate-caps", R, "Rate caps", None, "RateCaps"),
    route(
        "post",
        "/v1/rate-caps",
        A,
        "Create a rate cap",
        OBJ,
        "RateCap",
    ),
    route(
        "delete",
        "/v1/rate-caps/{id}",
        A,
        "Delete a rate cap",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/alerts",
        R,
        "Firing and resolved alerts",
        None,
        "Alerts",
    ),
    route(
        "post",
        "/v1/alerts/evaluate",
        A,
        "Evaluate the alert rules now",
        None,
        "AlertTransitions",
    ),
    route(
        "get",
        "/v1/alerts/findings",
        R,
        "What the rules find now, without storing",
        None,
        "Findings",
    ),
    route(
        "get",
        "/v1/alert-rules",
        R,
        "The alert rules' settings",
        None,
        "AlertRules",
    ),
    route(
        "put",
        "/v1/alert-rules",
        A,
        "Change the alert rules' settings",
        OBJ,
        "AlertRules",
    ),
    route(
        "get",
        "/v1/channels",
        R,
        "Notification channels (redacted)",
        None,
        "Channels",
    ),
    route(
        "post",
        "/v1/channels",
        A,
        "Add a notification channel",
        Some("ChannelRequest"),
        "Channel",
    ),
    route(
        "delete",
        "/v1/channels/{id}",
        A,
        "Delete a channel",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/channels/{id}/test",
        A,
        "Send a test notification",
        None,
        "DeliveryReport",
    ),
    route(
        "get",
        "/v1/workspace/settings",
        A,
        "The workspace's ingest settings",
        None,
        "WorkspaceSettingsReply",
    ),
    route(
        "put",
        "/v1/workspace/settings",
        A,
        "Change the workspace's ingest settings",
        Some("WorkspaceSettings"),
        "WorkspaceSettingsReply",
    ),
    route(
        "post",
        "/v1/erasure",
        A,
        "Erase one tenant's or user's events (rollups corrected exactly); returns the audit record, which never holds the id",
        Some("Erasure"),
        "ErasureRecord",
    ),
    route(
        "get",
        "/v1/erasure",
        A,
        "The workspace's erasure audit records (counts, cost, time, who; never the id)",
        None,
        "Erasures",
    ),
    route(
        "post",
        "/v1/prices/reprice",
        A,
        "Price the events stored unpriced with the current book and overrides (unpriced: true), or correct the events priced with one price entry (entry, a dry run unless confirm: true; 201 with the audit record); totals and budgets move by exactly the cost changes",
        Some("Reprice"),
        "RepriceReply",
    ),
    route(
        "get",
        "/v1/prices/corrections",
        A,
        "The workspace's price correction audit records (entry, window, counts, cost before and after, when, who)",
        None,
        "PriceCorrections",
    ),
    route(
        "get",
        "/v1/retention",
        R,
        "The retention setting (rawRetentionDays) and from when raw events exist (rawFrom)",
        None,
        "Retention",
    ),
    route(
        "get",
        "/v1/explain",
        R,
        "Why spend changed between two windows; format=csv or ndjson answers one table, table=drivers (default), dimensions, endpoints or mix",
        None,
        "Explanation",
    ),
    route(
        "get",
        "/v1/gate",
        R,
        "Cost gate: candidate vs baseline prompt version",
        None,
        "GateReport",
    ),
    route(
        "get",
        "/metrics",
        R,
        "Prometheus metrics (OpenMetrics text)",
        None,
        "Text",
    ),
    route(
        "get",
        "/openapi.json",
        None,
        "This document",
        None,
        "OpenApi",
    ),
    route("get", "/healthz", None, "Liveness", None, "Plain"),
    route(
        "get",
        "/readyz",
        None,
        "Readiness (the store is writable)",
        None,
        "Plain",
    ),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let item = paths
            .entry(r.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        item.insert(r.method.into(), operation(r));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "burnrate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted LLM cost attribution. The event contract: docs/event-contract.md; OTLP ingest: docs/otlp.md.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": schemas(),
        },
    })
}

fn operation(r: &Route) -> Value {
    let mut op = json!({
        "summary": r.summary,
        "operationId": operation_id(r),
        "responses": {
            success(r): reply(r),
            "4XX": {"description": "A client error naming the field", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    });
    if let Some(scope) = r.scope {
        op["security"] = json!([{"apiKey": []}, {"bearer": []}]);
        op["description"] = json!(format!("Needs a key of scope {scope} (or admin)."));
    }
    let params: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if !params.is_empty() {
        op["parameters"] = json!(params);
    }
    if let Some(schema) = r.request {
        op["requestBody"] = json!({"required": true, "content": {
            "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    op
}

fn success(r: &Route) -> &'static str {
    match (r.method, r.path) {
        ("delete", _) => "204",
        ("post", "/v1/ingest/llm-request" | "/v1/ingest/batch") => "202",
        (
            "post",
            "/v1/budgets" | "/v1/rate-caps" | "/v1/channels" | "/v1/deploys" | "/v1/erasure",
        )
        | ("put" | "post", "/v1/mappings") => "201",
        _ => "200",
    }
}

/// The 2xx reply: a DELETE answers 204 without a body.
fn reply(r: &Route) -> Value {
    if r.method == "delete" {
        return json!({"description": "Deleted"});
    }
    json!({"description": "OK", "content": reply_content(r.reply)})
}

fn reply_content(schema: &str) -> Value {
    if schema == "Text" {
        return json!({"application/openmetrics-text": {"schema": {"type": "string"}}});
    }
    if schema == "Plain" {
        return json!({"text/plain": {"schema": {"type": "string"}}});
    }
    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}})
}

fn operation_id(r: &Route) -> String {
    let words: Vec<String> = r
        .path
        .split(['/', '-', '.', '{', '}'])
        .filter(|w| !w.is_empty() && *w != "v1")
        .map(|w| w.to_string())
        .collect();
    format!("{}_{}", r.method, words.join("_"))
}

fn strings(values: impl Iterator<Item = &'static str>) -> Value {
    json!({"type": "string", "enum": values.collect::<Vec<_>>()})
}

fn text(max: usize) -> Value {
    json!({"type": "string", "maxLength": max})
}

/// The schema of one contract field; every name of `FIELD_NAMES` has one.
pub fn field_schema(name: &str) -> Option<Value> {
    let tokens = json!({"type": "integer", "minimum": 0, "maximum": validate::MAX_TOKENS});
    let schema = match name {
        "externalRequestId" | "endpointTag" | "promptVersion" | "tenantId" | "userId"
        | "errorCode" => text(validate::MAX_ID_LEN),
        "model" => text(validate::MAX_MODEL_LEN),
        "provider" => text(validate::MAX_PROVIDER_LEN),
        "attempt" => json!({"type": "integer", "minimum": 1, "maximum": validate::MAX_ATTEMPT}),
        "timestamp" => json!({"type": "string", "format": "date-time"}),
        "inputTokens" | "cachedTokens" | "cacheWriteTokens" | "outputTokens"
        | "reasoningTokens" | "totalTokens" => tokens,
        "imageCount" => {
            json!({"type": "integer", "minimum": 0, "maximum": validate::MAX_IMAGE_COUNT})
        }
        "latencyMs" => {
            json!({"type": "integer", "minimum": 0, "maximum": validate::MAX_LATENCY_MS})
        }
        "status" => strings(Status::ALL.iter().map(|s| s.as_str())),
        "dataMode" => strings(DataMode::ALL.iter().map(|s| s.as_str())),
        "environment" => strings(Environment::ALL.iter().map(|s| s.as_str())),
        "operation" => strings(Operation::ALL.iter().map(|s| s.as_str())),
        "serviceTier" => strings(ServiceTier::ALL.iter().map(|s| s.as_str())),
        "usageMissing" => json!({"type": "boolean"}),
        "costUsd" => json!({"type": "number", "minimum": 0, "maximum": 10_000}),
        "tags" => json!({"type": "object", "maxProperties": validate::MAX_TAGS,
            "additionalProperties": text(validate::MAX_TAG_VALUE_LEN)}),
        _ => return None,
    };
    Some(schema)
}

fn schemas() -> Value {
    let properties: Map<String, Value> = FIELD_NAMES
        .iter()
        .map(|name| {
            let schema = field_schema(name)
                .unwrap_or_else(|| panic!("contract field {name} has no OpenAPI schema"));
            (name.to_string(), schema)
        })
        .collect();
    let field_error = json!({"type": "object", "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}}});
    let indexed = json!({"type": "object", "properties": {
        "index": {"type": "integer"}, "field": {"type": "string"}, "message": {"type": "string"},
        "errors": {"type": "array", "items": field_error}}});
    let mut all = json!({
        "Event": {"type": "object", "required": ["provider", "model", "endpointTag", "status"],
            "properties": properties},
        "EventBatch": {"type": "array", "items": {"$ref": "#/components/schemas/Event"},
            "maxItems": crate::ingest::MAX_BATCH_EVENTS},
        "IngestReply": {"type": "object",
            "required": ["accepted", "duplicates", "rejected", "warnings", "budget"],
            "properties": {
                "accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
                "rejected": {"type": "array", "items": indexed},
                "warnings": {"type": "array", "items": indexed},
                "warningsOmitted": {"type": "integer"},
                "skipped": {"type": "integer", "description": "/v1/traces: spans without GenAI usage"},
                "budget": {"type": "object", "properties": {
                    "warning": {"type": "array", "items": {"type": "integer"}},
                    "exceeded": {"type": "array", "items": {"type": "integer"}}}},
            }},
        "WorkspaceSettings": {"type": "object", "properties": {
            "unknownFields": {"type": "string", "enum": ["warn", "reject"]},
            "requiredFields": {"type": "array", "items": {"type": "string",
                "enum": crate::settings::REQUIRABLE}},
            "otlpAttributes": {"type": "object", "additionalProperties": {
                "type": "array", "items": {"type": "string"}, "maxItems": 10}},
            "piiIds": {"type": "string", "enum": ["pseudonymize", "reject", "allow"],
                "description": "tenantId, userId and tag values that look like an e-mail address or a phone number: stored as a keyed pseudonym (pii_...), rejected, or stored as sent"},
            "pseudonymizeAllIds": {"type": "boolean",
                "description": "pseudonymize every tenantId and userId"},
            "rawRetentionDays": {"type": ["integer", "null"],
                "minimum": crate::settings::RETENTION_DAYS.start(),
                "maximum": crate::settings::RETENTION_DAYS.end(),
                "description": "keep raw events this many whole UTC days (older ones are pruned hourly, their sums stay in the rollups); null keeps every event"},
        }},
        "Reprice": {"type": "object", "additionalProperties": false,
            "description": "either unpriced (true) or entry (with confirm; a dry run without it)",
            "properties": {"unpriced": {"type": "boolean", "enum": [true]},
                "entry": {"type": "string"}, "confirm": {"type": "boolean"},
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time"},
                "model": {"type": "string"}}},
        "Erasure": {"type": "object", "additionalProperties": false,
            "description": "exactly one of tenantId or userId, as the client sent it (a personal value finds its pseudonym)",
            "properties": {"tenantId": {"type": "string"}, "userId": {"type": "string"}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "fields": {"type": "array", "items": field_error}}}}},
        "DeployNoteRequest": {"type": "object", "required": ["note"], "additionalProperties": false,
            "properties": {
                "endpointTag": {"type": "string", "maxLength": crate::deploy::MAX_NAME_CHARS,
                    "description": "absent: the deploy concerns every endpoint"},
                "promptVersion": {"type": "string", "maxLength": crate::deploy::MAX_NAME_CHARS},
                "note": {"type": "string", "minLength": 1, "maxLength": crate::deploy::MAX_NOTE_CHARS},
                "author": {"type": "string", "maxLength": crate::deploy::MAX_NAME_CHARS},
                "time": {"type": "string", "format": "date-time",
                    "description": "default: now; not before 2020, at most 5 minutes ahead"}}},
        "MappingRequest": {"type": "object", "required": ["dimension", "from", "to"],
            "additionalProperties": false, "properties": {
                "dimension": {"type": "string", "enum": ["endpointTag", "tenantId", "userId"]},
                "from": {"type": "string", "minLength": 1, "maxLength": crate::mapping::MAX_VALUE_CHARS,
                    "description": "the old value (the missing-value label `unknown` maps events without one), or a prefix followed by * (svc:*)"},
                "to": {"type": "string", "minLength": 1, "maxLength": crate::mapping::MAX_VALUE_CHARS},
                "effectiveFrom": {"type": "string", "format": "date-time",
                    "description": "events at or after it are mapped (truncated to the start of its hour); absent: all history"},
                "note": {"type": "string", "maxLength": crate::mapping::MAX_NOTE_CHARS}}},
        "ChannelRequest": {"type": "object", "required": ["name", "type"], "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["webhook", "slack", "pagerduty"]},
            "url": {"type": "string", "description": "webhook and slack; pagerduty: optional"},
            "secret": {"type": "string", "description": "webhook: whsec_ + base64; default: generated, shown once"},
            "routingKey": {"type": "string", "description": "pagerduty"},
            "digest": {"type": "object", "required": ["cadence", "time", "timeZone"],
                "additionalProperties": false,
                "description": "a daily or weekly summary at a local time (webhook and slack only): spend vs the period before, top movers, budgets at risk, unprofitable tenants, firing alerts",
                "properties": {
                    "cadence": {"type": "string", "enum": ["daily", "weekly"]},
                    "time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
                        "description": "local time HH:MM"},
                    "timeZone": {"type": "string", "description": "IANA time zone, e.g. Europe/Berlin"},
                    "weekday": {"type": "string", "enum": ["monday", "tuesday", "wednesday",
                        "thursday", "friday", "saturday", "sunday"],
                        "description": "weekly only; default monday"}}}}},
        "Object": {"type": "object"},
    });
    let map = all.as_object_mut().expect("schemas are an object");
    map.extend(reply_schemas());
    map.extend(control::control_schemas());
    all
}

/// Nullable: `T` or null (an unknown value, never 0).
fn or_null(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// An object whose every listed property is required and nothing else is allowed, so a
/// reply field missing from the document fails the reply validation of the tests.
fn closed(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .expect("properties are an object")
        .keys()
        .cloned()
        .collect();
    json!({"type": "object", "required": required, "properties": properties,
        "additionalProperties": false})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array_of(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// `POST /v1/guard`'s answer (`budget::counters::GuardAnswer`).
fn guard_answer() -> Value {
    let money = json!({"type": "number"});
    let string = json!({"type": "string"});
    let int = json!({"type": "integer", "minimum": 0});
    let state = json!({"type": "string", "enum": ["ok", "warning", "exceeded"]});
    let mut position = closed(json!({
        "id": int, "name": string, "action": {"type": "string", "enum": ["notify", "block"]},
        "remaining": money, "state": state, "member": string, "limitUsd": money,
        "plan": string,
    }));
    position["required"] = json!(["id", "name", "action", "remaining", "state"]);
    let quota = closed(json!({
        "budgetId": int, "dimension": string, "member": string, "plan": or_null(string.clone()),
        "limitUsd": money, "spentUsd": money, "resetsAt": {"type": "string", "format": "date-time"},
        "message": string,
    }));
    let mut answer = closed(json!({
        "allow": {"type": "boolean"},
        "reason": {"type": "string", "enum": ["ok", "budget_exceeded", "rate_capped", "budgets_loading",
            "tenant_quota_exceeded", "user_quota_exceeded", "endpoint_quota_exceeded"]},
        "budgets": array_of(position), "retryAfterSeconds": or_null(int.clone()),
        "estimatedCostUsd": money,
        "estimateSource": {"type": "string", "enum": ["client", "endpoint_p95", "none"]},
        "reserved": {"type": "boolean"}, "quota": quota,
    }));
    answer["required"] = json!([
        "allow",
        "reason",
        "budgets",
        "retryAfterSeconds",
        "estimatedCostUsd",
        "estimateSource",
        "reserved"
    ]);
    answer
}

/// The replies of the read endpoints, written from the serialized types (`report::Stats`,
/// `report::TopReport`, `explain::Explanation`, `budget::Status`, ...). Money is a JSON
/// number written from the exact decimal (up to 9 decimals), never through a float.
fn reply_schemas() -> Map<String, Value> {
    let money = json!({"type": "number", "description": "USD, exact decimal (nano-USD)"});
    let money_n = or_null(money.clone());
    let int = json!({"type": "integer", "minimum": 0});
    let num_n = or_null(json!({"type": "number"}));
    let string = json!({"type": "string"});
    let string_n = or_null(string.clone());
    let time = json!({"type": "string", "format": "date-time"});
    let time_n = or_null(time.clone());
    let stats_props = json!({
        "requests": int, "costUsd": money_n, "costPerRequest": money_n,
        "tokensPerRequest": num_n, "inputTokensPerRequest": num_n,
        "outputTokensPerRequest": num_n, "errorRate": num_n, "retryRatio": num_n,
        "cacheHitRate": num_n, "unpriced": int, "latencyAvgMs": num_n,
    });
    let with = |base: &Value, more: Value| {
        let mut props = base.as_object().unwrap().clone();
        props.extend(more.as_object().unwrap().clone());
        closed(Value::Object(props))
    };
    let pair = |schema: &Value| closed(json!({"baseline": schema, "current": schema}));
    let split = json!({"volumeUsd": money, "costPerRequestUsd": money});
    let totals = closed(json!({
        "from": time, "to": time, "costUsd": money, "requests": int,
        "costPerRequest": money_n, "tokensPerRequest": num_n,
        "inputTokensPerRequest": num_n, "outputTokensPerRequest": num_n,
        "retryRatio": num_n, "errorShare": num_n, "cacheHitRate": num_n, "unpriced": int,
    }));
    let group_change = with(
        &split,
        json!({
            "value": string, "presence": {"type": "string", "enum": ["both", "new", "vanished"]},
            "requests": pair(&int), "costUsd": pair(&money_n), "unpriced": pair(&int),
            "costPerRequest": pair(&money_n), "changeUsd": money,
            "shareOfChangePct": num_n, "requestsChangePct": num_n,
            "costPerRequestChangePct": num_n,
        }),
    );
    let mix_row = closed(json!({
        "value": string, "requests": pair(&int), "share": pair(&num_n),
        "costPerRequest": pair(&money_n), "firstSeen": time_n, "newInWindow": {"type": "boolean"},
    }));
    let cause = closed(json!({"kind": string, "dimension": string, "value": string}));
    let mut driver = closed(json!({
        "kind": string, "dimension": string, "value": string, "endpointTag": string,
        "contributionUsd": money, "contributionPct": num_n, "sentence": string,
    }));
    driver["required"] = json!([
        "kind",
        "dimension",
        "value",
        "contributionUsd",
        "contributionPct",
        "sentence"
    ]);
    let version_stats = with(
        &stats_props,
        json!({
            "promptVersion": string, "latencyP95Ms": or_null(int.clone()),
            "firstSeen": time, "lastSeen": time,
        }),
    );
    let delta = closed(json!({
        "costPerRequestPct": num_n, "inputTokensPerRequestPct": num_n,
        "outputTokensPerRequestPct": num_n, "cacheHitRatePct": num_n, "errorRatePct": num_n,
        "latencyAvgMsPct": num_n, "latencyP95MsPct": num_n,
    }));
    let member = {
        let mut m = closed(json!({
            "member": string, "plan": string, "limitUsd": money, "spentUsd": money,
            "reservedUsd": money, "usedPct": {"type": "number"},
            "state": {"type": "string", "enum": ["ok", "warning", "exceeded"]},
        }));
        m["required"] = json!([
            "member",
            "limitUsd",
            "spentUsd",
            "reservedUsd",
            "usedPct",
            "state"
        ]);
        m
    };
    let mut status = closed(json!({
        "budgetId": int, "name": string, "periodStart": time, "periodEnd": time,
        "limitUsd": money, "spentUsd": money, "reservedUsd": money, "remainingUsd": money,
        "usedPct": {"type": "number"},
        "state": {"type": "string", "enum": ["ok", "warning", "exceeded"]},
        "thresholdReached": num_n, "forecastUsd": money, "forecastMethod": string,
        "projectedExhaustion": time_n, "unpricedRequests": int,
        "members": closed(json!({
            "count": int, "over": int, "near": int, "offset": int, "limit": int,
            "page": array_of(member), "nextOffset": or_null(int.clone()),
        })),
    }));
    let required: Vec<Value> = status["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| *k != "members")
        .cloned()
        .collect();
    status["required"] = Value::Array(required);
    let mut budget = closed(json!({
        "id": int, "name": string, "scope": {"type": "object"}, "period": string,
        "timezone": string, "limitUsd": money,
        "thresholds": array_of(json!({"type": "number"})), "action": string,
        "failMode": string,
        "overrides": {"type": "object", "additionalProperties": money},
        "planLimits": {"type": "object", "additionalProperties": money_n},
    }));
    budget["required"] = json!([
        "id",
        "name",
        "scope",
        "period",
        "timezone",
        "limitUsd",
        "thresholds",
        "action",
        "failMode"
    ]);
    let mut stored = closed(json!({
        "externalRequestId": string, "idless": {"type": "boolean"}, "timestamp": time,
        "receivedAt": time, "provider": string, "model": string, "endpointTag": string,
        "promptVersion": string_n, "tenantId": string_n, "userId": string_n,
        "inputTokens": int, "cachedTokens": int, "cacheWriteTokens": int,
        "outputTokens": int, "reasoningTokens": int, "totalTokens": int, "imageCount": int,
        "latencyMs": or_null(int.clone()), "status": string, "errorCode": string_n,
        "dataMode": string, "environment": string, "operation": string,
        "serviceTier": string, "usageMissing": {"type": "boolean"},
        "tags": {"type": "object"}, "attempt": int, "attempts": int, "costUsd": money_n,
        "costSource": string_n, "priceEntryId": string_n, "priceBookVersion": string_n,
        "repricedAt": time,
    }));
    let required: Vec<Value> = stored["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| *k != "repricedAt")
        .cloned()
        .collect();
    stored["required"] = Value::Array(required);
    let series = closed(json!({"key": string, "costUsd": array_of(money.clone()),
        "requests": array_of(int.clone())}));
    let query_row = json!({"type": "object", "properties": {
        "group": {"type": "object", "additionalProperties": string},
        "bucket": time,
        "costUsd": money_n, "costPerRequest": money_n, "unpriced": int},
        "description": "the measures asked, by name"});
    let mut top_row = with(
        &stats_props,
        json!({
            "group": {"type": "object"}, "sharePct": num_n, "previous": schema_ref("Stats"),
            "change": closed(json!({"requestsPct": num_n, "costUsdPct": num_n,
                "costPerRequestPct": num_n, "tokensPerRequestPct": num_n})),
        }),
    );
    top_row["description"] = json!("one group: its dimensions under group, then its stats");
    let mut query = closed(json!({
        "from": time, "to": time, "groupBy": array_of(string.clone()),
        "bucket": or_null(json!({"type": "string", "enum": ["hour", "day"]})),
        "measures": array_of(string.clone()), "rows": array_of(query_row.clone()),
        "totals": array_of(query_row), "rowsCut": int, "rawPrunedBefore": time,
    }));
    let required: Vec<Value> = query["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| *k != "rawPrunedBefore")
        .cloned()
        .collect();
    query["required"] = Value::Array(required);
    let mut summary = closed(json!({
        "from": time, "to": time, "requests": int, "attempts": int, "errors": int,
        "idless": int, "usageMissing": int, "unpriced": int, "costUsd": money_n,
        "costPerRequest": money_n, "pricingCoverage": num_n, "retryRatio": num_n,
        "tokens": closed(json!({"input": int, "cached": int, "cacheWrite": int,
            "output": int, "reasoning": int})),
        "rawFrom": time,
    }));
    let required: Vec<Value> = summary["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| *k != "rawFrom")
        .cloned()
        .collect();
    summary["required"] = Value::Array(required);
    let share = closed(json!({"key": string, "sharePct": num_n}));
    let entries = [
        ("Stats", closed(stats_props.clone())),
        ("StoredEvent", stored),
        (
            "Events",
            closed(json!({"events": array_of(schema_ref("StoredEvent")),
            "nextCursor": string_n})),
        ),
        ("Summary", summary),
        ("QueryAnswer", query),
        (
            "TopReport",
            closed(json!({
            "from": time, "to": time, "previousFrom": time,
            "total": schema_ref("Stats"), "previousTotal": schema_ref("Stats"),
            "rows": array_of(top_row)})),
        ),
        ("Series", series),
        (
            "Timeseries",
            closed(json!({
            "bucket": {"type": "string", "enum": ["hour", "day"]}, "by": string_n,
            "buckets": array_of(time.clone()), "series": array_of(schema_ref("Series")),
            "total": schema_ref("Series")})),
        ),
        ("VersionStats", version_stats),
        (
            "PromptVersions",
            closed(json!({"from": time, "to": time,
            "endpoints": array_of(closed(json!({
                "endpointTag": string, "current": schema_ref("VersionStats"),
                "baseline": or_null(schema_ref("VersionStats")), "delta": or_null(delta),
                "versions": array_of(schema_ref("VersionStats"))})))})),
        ),
        (
            "Concentration",
            closed(json!({
            "by": string, "top1SharePct": num_n, "top5SharePct": num_n,
            "previousTop1SharePct": num_n, "previousTop5SharePct": num_n,
            "top": array_of(share)})),
        ),
        (
            "Explanation",
            closed(json!({
            "current": totals, "baseline": totals, "changeUsd": money, "changePct": num_n,
            "effects": closed(split.clone()),
            "dimensions": array_of(with(&split, json!({
                "dimension": string, "changeUsd": money, "newUsd": money,
                "vanishedUsd": money, "groups": array_of(group_change)}))),
            "endpoints": array_of(with(&split, json!({
                "endpointTag": string, "changeUsd": money, "requests": pair(&int),
                "costPerRequest": pair(&money_n), "retryRatio": pair(&num_n),
                "errorShare": pair(&num_n), "cacheHitRate": pair(&num_n),
                "inputTokensPerRequest": pair(&num_n), "outputTokensPerRequest": pair(&num_n),
                "promptVersions": array_of(mix_row.clone()), "models": array_of(mix_row),
                "cause": or_null(cause)}))),
            "drivers": array_of(driver),
            "deploys": array_of(schema_ref("DeployNote")),
            "summary": string, "method": string})),
        ),
        (
            "GateReport",
            json!({"type": "object",
            "required": ["endpointTag", "candidateVersion", "baselineVersion", "from", "to",
                "sampleCap", "verdict", "reason", "metric"],
            "properties": {"endpointTag": string, "candidateVersion": string,
                "baselineVersion": string_n, "from": time, "to": time, "sampleCap": int,
                "verdict": {"type": "string", "enum": ["pass", "fail", "not_enough_data"]},
                "reason": string, "metric": string}}),
        ),
        ("Budget", budget),
        ("BudgetStatus", status),
        (
            "BudgetList",
            closed(json!({"budgets": array_of(closed(json!({
            "budget": schema_ref("Budget"), "status": schema_ref("BudgetStatus")})))})),
        ),
        (
            "Quality",
            json!({"type": "object",
            "required": ["from", "to", "events", "stage", "score", "checks"],
            "properties": {"from": time, "to": time, "events": int, "stage": string,
                "score": int, "checks": array_of(closed(json!({"id": string,
                    "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
                    "detail": string})))}}),
        ),
        (
            "OpenApi",
            json!({"type": "object", "required": ["openapi", "info", "paths"]}),
        ),
        ("GuardAnswer", guard_answer()),
    ];
    entries
        .into_iter()
        .map(|(name, schema)| (name.to_string(), schema))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_field_is_in_the_event_schema() {
        let doc = document();
        let props = doc["components"]["schemas"]["Event"]["properties"]
            .as_object()
            .unwrap();
        for name in FIELD_NAMES {
            assert!(props.contains_key(*name), "{name}");
        }
        assert_eq!(props["status"]["enum"][0], "success");
        assert_eq!(props["inputTokens"]["maximum"], json!(10_000_000_000u64));
    }

    #[test]
    fn every_route_is_one_operation_with_a_unique_id() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method];
            assert!(op.is_object(), "{} {}", r.method, r.path);
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
        }
    }
}
