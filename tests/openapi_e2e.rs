//! The OpenAPI document: every API route of the router is in it (read from
//! src/http/mod.rs, so a route added there without a line in `openapi::ROUTES` fails
//! here), and the binary serves it without a key. tests/otel/test_openapi.py validates it
//! with openapi-spec-validator. The replies of the main reads are checked against their
//! documented schemas (closed objects: a field missing from the document fails).

mod common;
use burnrate::openapi::ROUTES;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// (method, path) of every `.route(...)` in the router's source.
fn router_routes() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).unwrap();
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join("");
    let mut routes = BTreeSet::new();
    for chunk in flat.split(".route(\"").skip(1) {
        let (path, rest) = chunk.split_once('"').unwrap();
        // The method routers up to the end of this route call.
        let call = rest.split(".route(").next().unwrap();
        let call = call.split(".merge(").next().unwrap();
        for method in ["get", "post", "put", "delete"] {
            let first = call.starts_with(&format!(",{method}("));
            if first || call.contains(&format!(").{method}(")) {
                routes.insert((method.to_string(), path.to_string()));
            }
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_is_in_the_document_and_no_other() {
    let router = router_routes();
    assert!(router.len() > 30, "{router:?}");
    let documented: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = router.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&router).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes without an OpenAPI operation: {missing:?}; operations without a route: {extra:?}"
    );
}

#[tokio::test]
async fn the_document_is_served_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("b.db"), &[]);
    let resp = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"]["/v1/traces"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/IngestReply"
    );
}

/// A small JSON Schema check of the keywords the document uses ($ref, type, anyOf,
/// enum, required, properties, additionalProperties, items, minimum): the problems of
/// `value` against `schema`, each with its JSON path.
fn problems(doc: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "dangling $ref {r}");
        return problems(doc, target, value, path, out);
    }
    if let Some(any) = schema["anyOf"].as_array() {
        let fits = any.iter().any(|s| {
            let mut inner = Vec::new();
            problems(doc, s, value, path, &mut inner);
            inner.is_empty()
        });
        if !fits {
            out.push(format!("{path}: {value} fits none of {}", schema["anyOf"]));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = |t: &str| t == type_of || (t == "number" && type_of == "integer");
    if !types.is_empty() && !types.iter().any(|t| fits(t)) {
        out.push(format!("{path}: {value} is not {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            out.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    if let (Some(min), Some(v)) = (schema["minimum"].as_f64(), value.as_f64()) {
        if v < min {
            out.push(format!("{path}: {v} < {min}"));
        }
    }
    if let Value::Object(fields) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !fields.contains_key(name) {
                out.push(format!("{path}: required {name} is missing"));
            }
        }
        for (name, v) in fields {
            let here = format!("{path}.{name}");
            match (&schema["properties"][name], &schema["additionalProperties"]) {
                (Value::Null, Value::Bool(false)) => {
                    out.push(format!("{here}: not in the document"))
                }
                (Value::Null, Value::Object(_)) => {
                    problems(doc, &schema["additionalProperties"], v, &here, out)
                }
                (Value::Null, _) => {}
                (s, _) => problems(doc, s, v, &here, out),
            }
        }
    }
    if let (Value::Array(items), Some(_)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            problems(doc, &schema["items"], v, &format!("{path}[{i}]"), out);
        }
    }
}

/// The 2xx JSON schema of an operation.
fn reply_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let responses = &doc["paths"][path][method]["responses"];
    let (_, ok) = responses
        .as_object()
        .unwrap()
        .iter()
        .find(|(code, _)| code.starts_with('2'))
        .unwrap();
    &ok["content"]["application/json"]["schema"]
}

/// The main reads, as a client calls them (method, template path, URL).
const READS: &[(&str, &str, &str)] = &[
    ("get", "/v1/events", "/v1/events?limit=10"),
    ("get", "/v1/summary", "/v1/summary"),
    ("get", "/v1/top/{kind}", "/v1/top/endpoints"),
    ("get", "/v1/top/{kind}", "/v1/top/models"),
    ("get", "/v1/timeseries", "/v1/timeseries?since=24h&by=model"),
    ("get", "/v1/prompt-versions", "/v1/prompt-versions"),
    ("get", "/v1/concentration", "/v1/concentration"),
    ("get", "/v1/quality", "/v1/quality"),
    ("get", "/v1/budgets", "/v1/budgets"),
    ("get", "/v1/budgets/{id}", "/v1/budgets/1"),
    ("get", "/v1/budgets/{id}/status", "/v1/budgets/1/status"),
    (
        "get",
        "/v1/gate",
        "/v1/gate?endpointTag=support.reply&candidate=v2",
    ),
];

#[tokio::test]
async fn the_replies_of_the_main_reads_fit_their_documented_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let doc = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let r = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "each", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 0.0005, "overrides": {"acme": 1}, "action": "block"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut replies: Vec<(&str, &str, Value)> = vec![("post", "/v1/budgets", r.body)];
    // Priced and unpriced calls, two prompt versions, a day ago and now (explain's
    // baseline needs the older ones).
    let now = jiff::Timestamp::now().as_millisecond();
    let mut events = Vec::new();
    for (i, (version, model, hours_ago)) in [
        ("v1", "gpt-4o-mini", 30),
        ("v1", "gpt-4o-mini", 2),
        ("v2", "gpt-4o-mini", 1),
        ("v2", "house-model-unpriced", 1),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(&format!("e-{i}"));
        e["promptVersion"] = json!(version);
        e["model"] = json!(model);
        e["latencyMs"] = json!(300 + i);
        e["tenantId"] = json!(if i == 3 { "beta" } else { "acme" });
        let at = jiff::Timestamp::from_millisecond(now - hours_ago * 3_600_000).unwrap();
        e["timestamp"] = json!(at.to_string());
        events.push(e);
    }
    let r = api.post("/v1/ingest/batch", &ingest, &json!(events)).await;
    assert_eq!(r.body["accepted"], json!(4), "{}", r.body);

    // The guard: allowed (acme's own $1 cap) and denied with the quota (beta's $0.0005).
    for (tenant, allow) in [("acme", true), ("beta", false)] {
        let body = json!({"endpointTag": "support.reply", "tenantId": tenant,
                          "estimatedCostUsd": 0.001});
        let r = api.post("/v1/guard", &ingest, &body).await;
        assert_eq!(
            (r.status, &r.body["allow"]),
            (200, &json!(allow)),
            "{}",
            r.body
        );
        replies.push(("post", "/v1/guard", r.body));
    }
    assert!(replies.last().unwrap().2["quota"].is_object());
    for (method, template, url) in READS {
        let r = api.get(url, &read).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        replies.push((method, template, r.body));
    }
    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"groupBy": ["model"], "bucket": "hour", "measures": ["requests", "costUsd", "costPerRequest", "inputTokens"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    replies.push(("post", "/v1/query", r.body));
    let window = format!(
        "/v1/explain?from={}&to={}",
        jiff::Timestamp::from_millisecond(now - 24 * 3_600_000).unwrap(),
        jiff::Timestamp::from_millisecond(now).unwrap()
    );
    let r = api.get(&window, &read).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body["drivers"].as_array().unwrap().is_empty());
    replies.push(("get", "/v1/explain", r.body));

    for (method, template, body) in &replies {
        let schema = reply_schema(&doc, method, template);
        assert_ne!(
            schema["$ref"], "#/components/schemas/Object",
            "{method} {template} has no real reply schema"
        );
        let mut out = Vec::new();
        problems(&doc, schema, body, "$", &mut out);
        assert!(out.is_empty(), "{method} {template}: {out:#?}");
    }

    // The check can fail: a field the document does not name, a missing one, a string
    // where money is a number.
    let (_, _, summary) = replies
        .iter()
        .find(|(_, path, _)| *path == "/v1/summary")
        .unwrap();
    let schema = reply_schema(&doc, "get", "/v1/summary");
    for broken in [
        {
            let mut b = summary.clone();
            b["undocumented"] = json!(1);
            b
        },
        {
            let mut b = summary.clone();
            b.as_object_mut().unwrap().remove("requests");
            b
        },
        {
            let mut b = summary.clone();
            b["costUsd"] = json!("0.00024");
            b
        },
    ] {
        let mut out = Vec::new();
        problems(&doc, schema, &broken, "$", &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
