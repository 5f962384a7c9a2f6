//! The OpenAPI 3.1 document served at `GET /openapi.json`, built from the code's own
//! tables: the routes (`ROUTES`, checked against the router by tests/openapi_e2e.rs), the
//! event contract's fields (`event::FIELD_NAMES`), its vocabularies (`Status::ALL`, ...)
//! and the validator's limits. Pure.

use crate::event::{DataMode, Environment, Operation, ServiceTier, Status, FIELD_NAMES};
use crate::validate;
use serde_json::{json, Map, Value};

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
        "Object",
    ),
    route(
        "get",
        "/v1/summary",
        R,
        "Totals of a window",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/query",
        R,
        "The aggregate query; ?format=csv or ndjson answers its rows as CSV or NDJSON (json is the default)",
        OBJ,
        "Object",
    ),
    route(
        "get",
        "/v1/top/{kind}",
        R,
        "Top endpoints, tenants, users, models, ... with share and change; format=csv or ndjson answers the rows as CSV or NDJSON (json is the default)",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/timeseries",
        R,
        "Spend over time by a dimension; format=csv or ndjson answers one line per (bucket, series) (json is the default)",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/prompt-versions",
        R,
        "Prompt versions compared per endpoint; format=csv or ndjson answers one table, table=comparisons (default) or versions",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/concentration",
        R,
        "How concentrated spend is",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/quality",
        R,
        "Tracking quality of a window (default 7d): shares of events with externalRequestId, tenantId, promptVersion, usage and a price (overall and per endpointTag), unknown fields per key, personal ids counted, endpointTag naming lint, checks, score and Setup stage (docs/quality.md)",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/guard",
        I,
        "May this call go ahead (budgets, rate caps)? A member's own cap answers reason tenant_quota_exceeded (user_, endpoint_) with quota: member, plan, limitUsd, spentUsd, resetsAt, message",
        OBJ,
        "Object",
    ),
    route(
        "get",
        "/v1/budgets",
        R,
        "Budgets with their status (per-member budgets with a page of members over and near their caps: membersOffset, membersLimit); format=csv or ndjson answers one table, table=budgets (default) or members",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/budgets",
        A,
        "Create a budget; a scope value \"*\" (tenantId, userId or endpointTag) makes one for each value, with overrides {member: limitUsd} and, for tenants, planLimits {plan: limitUsd or null}",
        OBJ,
        "Object",
    ),
    route("get", "/v1/budgets/{id}", R, "One budget", None, "Object"),
    route(
        "put",
        "/v1/budgets/{id}",
        A,
        "Change a budget",
        OBJ,
        "Object",
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
        "Object",
    ),
    route(
        "get",
        "/v1/plans",
        R,
        "How many tenants are on each plan",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/plans/import",
        A,
        "Put tenants on plans from a text/csv body of tenantId,plan lines (header first; an empty plan takes a tenant off its plan)",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/plans/tenants/{tenant}",
        R,
        "One tenant's plan",
        None,
        "Object",
    ),
    route(
        "put",
        "/v1/plans/tenants/{tenant}",
        A,
        "Put a tenant on a plan: {\"plan\": name}, or null to take it off",
        OBJ,
        "Object",
    ),
    route(
        "get",
        "/v1/plans/definitions",
        R,
        "Every plan's monthly price",
        None,
        "Object",
    ),
    route(
        "put",
        "/v1/plans/definitions/{plan}",
        A,
        "Define or change a plan's monthly price: {\"priceUsd\": 50}",
        OBJ,
        "Object",
    ),
    route(
        "get",
        "/v1/revenue",
        R,
        "One tenant's revenue entries (tenantId=), by date",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/revenue",
        A,
        "Add revenue entries: {\"entries\": [{tenantId, type: override|oneOff, date: YYYY-MM-DD, amountUsd}]}",
        OBJ,
        "Object",
    ),
    route(
        "post",
        "/v1/revenue/import",
        A,
        "Add revenue entries from a text/csv body of tenantId,type,date,amountUsd lines (header first)",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/margin",
        R,
        "Revenue, AI cost, margin and cost per active user-day per tenant, unprofitable first (month=YYYY-MM or from/to, filters, offset, limit), with month-end projections",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/reconciliation",
        R,
        "The provider's bill against burnrate's attribution per UTC day and provider (and model where the report has it): billed, attributed, difference, coverage %, unattributed spend by cause (from, to: YYYY-MM-DD or RFC 3339, default the last 30 days; environment; dataMode, default real)",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/reconciliation/import",
        A,
        "Import a provider's cost report as the body (format=openai-costs|openai-usage|anthropic-cost|csv, sniffed when omitted); a provider's day imported again replaces the stored one",
        None,
        "Object",
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
    route("get", "/v1/rate-caps", R, "Rate caps", None, "Object"),
    route(
        "post",
        "/v1/rate-caps",
        A,
        "Create a rate cap",
        OBJ,
        "Object",
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
        "Object",
    ),
    route(
        "post",
        "/v1/alerts/evaluate",
        A,
        "Evaluate the alert rules now",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/alerts/findings",
        R,
        "What the rules find now, without storing",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/alert-rules",
        R,
        "The alert rules' settings",
        None,
        "Object",
    ),
    route(
        "put",
        "/v1/alert-rules",
        A,
        "Change the alert rules' settings",
        OBJ,
        "Object",
    ),
    route(
        "get",
        "/v1/channels",
        R,
        "Notification channels (redacted)",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/channels",
        A,
        "Add a notification channel",
        Some("ChannelRequest"),
        "Object",
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
        "Object",
    ),
    route(
        "get",
        "/v1/workspace/settings",
        A,
        "The workspace's ingest settings",
        None,
        "WorkspaceSettings",
    ),
    route(
        "put",
        "/v1/workspace/settings",
        A,
        "Change the workspace's ingest settings",
        Some("WorkspaceSettings"),
        "WorkspaceSettings",
    ),
    route(
        "post",
        "/v1/erasure",
        A,
        "Erase one tenant's or user's events (rollups corrected exactly); returns the audit record, which never holds the id",
        Some("Erasure"),
        "Object",
    ),
    route(
        "get",
        "/v1/erasure",
        A,
        "The workspace's erasure audit records (counts, cost, time, who; never the id)",
        None,
        "Object",
    ),
    route(
        "post",
        "/v1/prices/reprice",
        A,
        "Price the events stored unpriced with the current book and overrides (totals and budgets move by exactly the new costs; priced events are never re-priced)",
        Some("Reprice"),
        "Object",
    ),
    route(
        "get",
        "/v1/retention",
        R,
        "The retention setting (rawRetentionDays) and from when raw events exist (rawFrom)",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/explain",
        R,
        "Why spend changed between two windows; format=csv or ndjson answers one table, table=drivers (default), dimensions, endpoints or mix",
        None,
        "Object",
    ),
    route(
        "get",
        "/v1/gate",
        R,
        "Cost gate: candidate vs baseline prompt version",
        None,
        "Object",
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
        "Object",
    ),
    route("get", "/healthz", None, "Liveness", None, "Object"),
    route(
        "get",
        "/readyz",
        None,
        "Readiness (the store is writable)",
        None,
        "Object",
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
            success(r): {"description": "OK", "content": reply_content(r.reply)},
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
        ("post", "/v1/ingest/llm-request" | "/v1/ingest/batch") => "202",
        ("post", "/v1/budgets" | "/v1/rate-caps" | "/v1/channels" | "/v1/deploys")
        | ("put" | "post", "/v1/mappings") => "201",
        _ => "200",
    }
}

fn reply_content(schema: &str) -> Value {
    if schema == "Text" {
        return json!({"application/openmetrics-text": {"schema": {"type": "string"}}});
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
    json!({
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
        "Reprice": {"type": "object", "required": ["unpriced"], "additionalProperties": false,
            "properties": {"unpriced": {"type": "boolean", "enum": [true]},
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
        "DeployNote": {"type": "object", "required": ["id", "note", "time"], "properties": {
            "id": {"type": "integer"}, "endpointTag": {"type": "string"},
            "promptVersion": {"type": "string"}, "note": {"type": "string"},
            "author": {"type": "string"}, "time": {"type": "string", "format": "date-time"}}},
        "MappingRequest": {"type": "object", "required": ["dimension", "from", "to"],
            "additionalProperties": false, "properties": {
                "dimension": {"type": "string", "enum": ["endpointTag", "tenantId", "userId"]},
                "from": {"type": "string", "minLength": 1, "maxLength": crate::mapping::MAX_VALUE_CHARS,
                    "description": "the old value (the missing-value label `unknown` maps events without one), or a prefix followed by * (svc:*)"},
                "to": {"type": "string", "minLength": 1, "maxLength": crate::mapping::MAX_VALUE_CHARS},
                "effectiveFrom": {"type": "string", "format": "date-time",
                    "description": "events at or after it are mapped (truncated to the start of its hour); absent: all history"},
                "note": {"type": "string", "maxLength": crate::mapping::MAX_NOTE_CHARS}}},
        "Mapping": {"type": "object", "required": ["id", "dimension", "from", "to"], "properties": {
            "id": {"type": "integer"}, "dimension": {"type": "string"},
            "from": {"type": "string"}, "to": {"type": "string"},
            "effectiveFrom": {"type": "string", "format": "date-time"}, "note": {"type": "string"}}},
        "Mappings": {"type": "object", "properties": {
            "mappings": {"type": "array", "items": {"$ref": "#/components/schemas/Mapping"}}}},
        "DeployNotes": {"type": "object", "properties": {
            "deploys": {"type": "array", "items": {"$ref": "#/components/schemas/DeployNote"}}}},
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
    })
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
