//! The OpenAPI document: every API route of the router is in it (read from
//! src/http/mod.rs, so a route added there without a line in `openapi::ROUTES` fails
//! here), and the binary serves it without a key. tests/otel/test_openapi.py validates it
//! with openapi-spec-validator. The replies of the main reads and of every control route
//! are checked against their documented schemas (closed objects: a field missing from
//! the document fails).

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

/// A server on a fresh store (kept while the directory lives), its ingest, read and
/// admin keys, and the OpenAPI document it serves.
async fn served() -> (tempfile::TempDir, Server, [String; 3], Value) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let keys = ["ingest", "read", "admin"].map(|scope| key(&db, "default", scope));
    let server = Server::start(&db, &[]);
    let doc = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    (dir, server, keys, doc)
}

#[tokio::test]
async fn the_replies_of_the_main_reads_fit_their_documented_schemas() {
    let (_dir, server, [ingest, read, admin], doc) = served().await;
    let api = Api::new(&server);
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

async fn csv(api: &Api, key: &str, path: &str, body: &str) -> common::Reply {
    api.post_raw(path, Some(key), "text/csv", body.as_bytes().to_vec())
        .await
}

/// Calls every control route for real (plans, revenue, margin, reconciliation, rate caps,
/// alerts, alert rules, channels, mappings, deploys, settings, erasure, prices,
/// retention) and checks each 2xx reply against its documented schema.
#[tokio::test]
async fn the_replies_of_the_control_routes_fit_their_documented_schemas() {
    let (_dir, server, [ingest, read, admin], doc) = served().await;
    let api = Api::new(&server);
    let now = jiff::Timestamp::now();
    let today = now.strftime("%Y-%m-%d").to_string();
    // Priced and unpriced calls of two tenants, one with a user (erased below).
    let events: Vec<Value> = (0..6)
        .map(|i| {
            let mut e = event(&format!("c-{i}"));
            e["tenantId"] = json!(if i % 2 == 0 { "acme" } else { "beta" });
            e["userId"] = json!(format!("u-{}", i % 3));
            if i == 5 {
                e["model"] = json!("house-model-unpriced");
            }
            // Two calls on a day of the provider's bill (testdata/reconcile).
            if i < 2 {
                e["timestamp"] = json!("2026-11-02T12:00:00Z");
            }
            e
        })
        .collect();
    let r = api.post("/v1/ingest/batch", &ingest, &json!(events)).await;
    assert_eq!(r.body["accepted"], json!(6), "{}", r.body);
    // A budget already over its limit, so the budget alert fires.
    let budget = json!({"name": "tiny", "scope": {}, "period": "month", "limitUsd": 0.0001});
    let r = api.post("/v1/budgets", &admin, &budget).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let listed = api.get("/v1/events?limit=10", &read).await.body;
    let entry = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["priceEntryId"].as_str())
        .unwrap()
        .to_string();

    let mut replies: Vec<(&str, &str, Value)> = Vec::new();
    let mut expect = |method: &'static str, template: &'static str, r: common::Reply, status| {
        assert_eq!(r.status, status, "{method} {template}: {}", r.body);
        replies.push((method, template, r.body));
    };

    // Plans and revenue.
    let r = api
        .put_json(
            "/v1/plans/definitions/pro",
            &admin,
            &json!({"priceUsd": 50}),
        )
        .await;
    expect("put", "/v1/plans/definitions/{plan}", r, 200);
    let r = api
        .put_json(
            "/v1/plans/tenants/acme",
            &admin,
            &json!({"plan": "pro", "effectiveFrom": "2026-01-01"}),
        )
        .await;
    expect("put", "/v1/plans/tenants/{tenant}", r, 200);
    let r = csv(
        &api,
        &admin,
        "/v1/plans/import",
        "tenantId,plan\nbeta,pro\n",
    )
    .await;
    expect("post", "/v1/plans/import", r, 200);
    for (template, url) in [
        ("/v1/plans", "/v1/plans"),
        ("/v1/plans/history", "/v1/plans/history?tenant=acme"),
        ("/v1/plans/tenants/{tenant}", "/v1/plans/tenants/acme"),
        ("/v1/plans/definitions", "/v1/plans/definitions"),
    ] {
        expect("get", template, api.get(url, &read).await, 200);
    }
    let r = api
        .post(
            "/v1/revenue",
            &admin,
            &json!({"entries": [{"tenantId": "acme", "type": "oneOff", "date": today,
                                 "amountUsd": 10}]}),
        )
        .await;
    expect("post", "/v1/revenue", r, 200);
    let body = format!("tenantId,type,date,amountUsd\nacme,override,{today},40\n");
    expect(
        "post",
        "/v1/revenue/import",
        csv(&api, &admin, "/v1/revenue/import", &body).await,
        200,
    );
    let r = api.get("/v1/revenue?tenantId=acme", &read).await;
    expect("get", "/v1/revenue", r, 200);
    expect("get", "/v1/margin", api.get("/v1/margin", &read).await, 200);
    // The provider's bill: costs (Nov 2 and 3) and usage by model (Nov 5).
    for file in ["openai-costs.json", "openai-usage.json"] {
        let path = format!("{}/testdata/reconcile/{file}", env!("CARGO_MANIFEST_DIR"));
        let r = api
            .post_raw(
                "/v1/reconciliation/import",
                Some(&admin),
                "application/json",
                std::fs::read(path).unwrap(),
            )
            .await;
        expect("post", "/v1/reconciliation/import", r, 200);
    }
    let r = api
        .get("/v1/reconciliation?from=2026-11-01&to=2026-11-07", &read)
        .await;
    assert!(r.body["days"][0]["models"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));
    expect("get", "/v1/reconciliation", r, 200);
    // Rate caps, alerts and their rules, channels.
    let r = api
        .post(
            "/v1/rate-caps",
            &admin,
            &json!({"endpointTag": "support.reply", "requestsPerMinute": 10}),
        )
        .await;
    expect("post", "/v1/rate-caps", r, 201);
    expect(
        "get",
        "/v1/rate-caps",
        api.get("/v1/rate-caps", &read).await,
        200,
    );
    expect(
        "get",
        "/v1/alert-rules",
        api.get("/v1/alert-rules", &read).await,
        200,
    );
    let r = api
        .put_json(
            "/v1/alert-rules",
            &admin,
            &json!({"rules": {"retry_storm": {"mutedUntil": "2099-01-01T00:00:00Z"}}}),
        )
        .await;
    expect("put", "/v1/alert-rules", r, 200);
    // A channel first, so the alerts carry their deliveries.
    let (inbox, url) = common::webhook::receiver("/hook").await;
    let r = api
        .post(
            "/v1/channels",
            &admin,
            &json!({"name": "ops", "type": "webhook", "url": url}),
        )
        .await;
    let channel = r.body["id"].clone();
    expect("post", "/v1/channels", r, 201);
    let r = api.post("/v1/alerts/evaluate", &admin, &json!({})).await;
    expect("post", "/v1/alerts/evaluate", r, 200);
    let r = api.get("/v1/alerts", &read).await;
    assert!(inbox.len() >= 2, "{}", r.body);
    assert!(!r.body["alerts"][0]["deliveries"]
        .as_array()
        .unwrap()
        .is_empty());
    expect("get", "/v1/alerts", r, 200);
    let r = api.get("/v1/alerts/findings", &read).await;
    expect("get", "/v1/alerts/findings", r, 200);
    expect(
        "get",
        "/v1/channels",
        api.get("/v1/channels", &read).await,
        200,
    );
    let r = api
        .post(&format!("/v1/channels/{channel}/test"), &admin, &json!({}))
        .await;
    expect("post", "/v1/channels/{id}/test", r, 200);
    // Mappings, deploys, settings.
    let mapping = json!({"dimension": "endpointTag", "from": "old.*", "to": "support.reply"});
    let r = api.post("/v1/mappings", &admin, &mapping).await;
    expect("post", "/v1/mappings", r, 201);
    expect(
        "get",
        "/v1/mappings",
        api.get("/v1/mappings", &read).await,
        200,
    );
    let r = api
        .post(
            "/v1/deploys",
            &ingest,
            &json!({"note": "v2 prompt", "endpointTag": "support.reply", "author": "ci"}),
        )
        .await;
    expect("post", "/v1/deploys", r, 201);
    expect(
        "get",
        "/v1/deploys",
        api.get("/v1/deploys", &read).await,
        200,
    );
    let r = api.get("/v1/workspace/settings", &admin).await;
    expect("get", "/v1/workspace/settings", r, 200);
    let r = api
        .put_json(
            "/v1/workspace/settings",
            &admin,
            &json!({"unknownFields": "warn", "rawRetentionDays": 400}),
        )
        .await;
    expect("put", "/v1/workspace/settings", r, 200);
    // Erasure, prices, retention.
    let r = api
        .post("/v1/erasure", &admin, &json!({"userId": "u-1"}))
        .await;
    expect("post", "/v1/erasure", r, 201);
    expect(
        "get",
        "/v1/erasure",
        api.get("/v1/erasure", &admin).await,
        200,
    );
    let r = api
        .post("/v1/prices/reprice", &admin, &json!({"unpriced": true}))
        .await;
    expect("post", "/v1/prices/reprice", r, 200);
    let r = api
        .post("/v1/prices/reprice", &admin, &json!({"entry": entry}))
        .await;
    expect("post", "/v1/prices/reprice", r, 200);
    let r = api
        .post(
            "/v1/prices/reprice",
            &admin,
            &json!({"entry": entry, "confirm": true}),
        )
        .await;
    expect("post", "/v1/prices/reprice", r, 201);
    let r = api.get("/v1/prices/corrections", &admin).await;
    expect("get", "/v1/prices/corrections", r, 200);
    expect(
        "get",
        "/v1/retention",
        api.get("/v1/retention", &read).await,
        200,
    );

    if let Ok(path) = std::env::var("BURNRATE_DUMP_REPLIES") {
        let all: Vec<Value> = replies
            .iter()
            .map(|(m, t, b)| json!({"route": format!("{m} {t}"), "body": b}))
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&all).unwrap()).unwrap();
    }
    let mut failures = Vec::new();
    for (method, template, body) in &replies {
        let schema = reply_schema(&doc, method, template);
        if schema["$ref"] == "#/components/schemas/Object" {
            failures.push(format!("{method} {template} has no real reply schema"));
        }
        let mut out = Vec::new();
        problems(&doc, schema, body, "$", &mut out);
        failures.extend(out.into_iter().map(|p| format!("{method} {template}: {p}")));
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The check can fail: an alert with a field the document does not name, a channel
    // of no documented type, a money field as a string, a decimal text as a number.
    let find = |template: &str| {
        let (_, _, body) = replies
            .iter()
            .find(|(m, t, _)| *m == "get" && *t == template)
            .unwrap();
        (reply_schema(&doc, "get", template), body.clone())
    };
    let (alerts_schema, mut alerts) = find("/v1/alerts");
    alerts["alerts"][0]["undocumented"] = json!(1);
    let (channels_schema, mut channels) = find("/v1/channels");
    channels["channels"][0]["type"] = json!("carrier-pigeon");
    let (margin_schema, mut margin) = find("/v1/margin");
    margin["totals"]["costUsd"] = json!("0.0012");
    let (erasures_schema, mut erasures) = find("/v1/erasure");
    erasures["erasures"][0]["costUsd"] = json!(0.00048);
    for (schema, broken) in [
        (alerts_schema, alerts),
        (channels_schema, channels),
        (margin_schema, margin),
        (erasures_schema, erasures),
    ] {
        let mut out = Vec::new();
        problems(&doc, schema, &broken, "$", &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
