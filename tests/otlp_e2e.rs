//! End-to-end OTLP ingest (`POST /v1/traces`) against the real binary: OTLP/JSON and
//! gzip'd protobuf, both key headers, skipped and rejected spans, refusals. The stock
//! Python exporter and instrumentation are exercised by tests/otel/.

mod common;
use burnrate::otlp::proto;
use common::*;
use serde_json::{json, Value};
use std::io::Write;

fn now_nanos() -> u64 {
    jiff::Timestamp::now().as_nanosecond() as u64
}

fn attr(key: &str, value: Value) -> Value {
    let value = match value {
        Value::String(s) => json!({"stringValue": s}),
        n if n.is_i64() => json!({"intValue": n.to_string()}),
        n => json!({"doubleValue": n}),
    };
    json!({"key": key, "value": value})
}

/// An OTLP/JSON span: `span` is its id's last byte, `attrs` its attributes.
fn json_span(span: u8, attrs: &[(&str, Value)]) -> Value {
    let end = now_nanos() - 1_000_000_000;
    json!({
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": format!("eee19b7ec3c1b1{span:02x}"),
        "name": "chat gpt-4o-mini",
        "startTimeUnixNano": (end - 840_000_000).to_string(),
        "endTimeUnixNano": end.to_string(),
        "attributes": attrs.iter().map(|(k, v)| attr(k, v.clone())).collect::<Vec<_>>(),
    })
}

fn export(spans: Vec<Value>) -> Vec<u8> {
    json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", json!("support-bot"))]},
        "scopeSpans": [{"spans": spans}],
    }]})
    .to_string()
    .into_bytes()
}

fn chat_attrs() -> Vec<(&'static str, Value)> {
    vec![
        ("gen_ai.provider.name", json!("openai")),
        ("gen_ai.request.model", json!("gpt-4o-mini")),
        ("gen_ai.usage.input_tokens", json!(1000)),
        ("gen_ai.usage.cache_read.input_tokens", json!(400)),
        ("gen_ai.usage.output_tokens", json!(200)),
        ("burnrate.tenant_id", json!("acme")),
    ]
}

const TRACES: &str = "/v1/traces";

#[tokio::test]
async fn otlp_json_spans_with_usage_become_priced_events_and_the_rest_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let http_span = json_span(2, &[("http.request.method", json!("POST"))]);
    let body = export(vec![json_span(1, &chat_attrs()), http_span]);
    let r = api
        .post_raw(TRACES, Some(&ingest), "application/json", body.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["accepted"],
            &r.body["skipped"],
            &r.body["duplicates"]
        ),
        (&json!(1), &json!(1), &json!(0))
    );
    // An exporter's retry of the same export is a duplicate.
    let r = api
        .post_raw(TRACES, Some(&ingest), "application/json", body)
        .await;
    assert_eq!(
        (&r.body["accepted"], &r.body["duplicates"]),
        (&json!(0), &json!(1))
    );

    let id = "otel-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b101";
    let r = api
        .get(&format!("/v1/events?externalRequestId={id}"), &read)
        .await;
    let e = &r.body["events"][0];
    assert_eq!(
        (
            &e["endpointTag"],
            &e["tenantId"],
            &e["inputTokens"],
            &e["cachedTokens"]
        ),
        (
            &json!("support-bot"),
            &json!("acme"),
            &json!(1000),
            &json!(400)
        )
    );
    assert_eq!(
        (&e["latencyMs"], &e["status"]),
        (&json!(840), &json!("success"))
    );
    // gpt-4o-mini: 600 * $0.15/M + 400 * $0.075/M + 200 * $0.60/M = $0.00024
    assert_eq!(e["costUsd"], json!(0.00024));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn gzip_protobuf_with_a_bearer_key_is_answered_in_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let request: proto::ExportTraceServiceRequest =
        burnrate::otlp::decode_json(&export(vec![json_span(1, &chat_attrs())])).unwrap();
    let body = gzip(&prost::Message::encode_to_vec(&request));
    let resp = api
        .http
        .post(format!("{}{TRACES}", api.url))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .header("Authorization", format!("Bearer {ingest}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let reply: proto::ExportTraceServiceResponse =
        prost::Message::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(reply.partial_success, None, "everything was accepted");
    let r = api.get("/v1/summary", &read).await;
    assert_eq!(r.body["requests"], json!(1), "{}", r.body);
}

#[tokio::test]
async fn a_bad_usage_span_is_rejected_naming_the_field_and_the_span() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut bad = chat_attrs();
    bad[4] = ("gen_ai.usage.output_tokens", json!(-5));
    let body = export(vec![json_span(1, &chat_attrs()), json_span(7, &bad)]);
    let r = api
        .post_raw(TRACES, Some(&ingest), "application/json", body)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["accepted"], json!(1));
    let rejected = &r.body["rejected"][0];
    assert_eq!(
        rejected["span"],
        json!("5b8efff798038103d269b633813fc60c/eee19b7ec3c1b107")
    );
    assert_eq!(blamed(&rejected["errors"]), vec!["outputTokens"]);
    assert_eq!(r.body["partialSuccess"]["rejectedSpans"], json!(1));
}

#[tokio::test]
async fn traces_need_an_ingest_key_and_an_otlp_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let body = export(vec![json_span(1, &chat_attrs())]);
    let r = api
        .post_raw(TRACES, Some(&read), "application/json", body.clone())
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api
        .post_raw(TRACES, None, "application/json", body.clone())
        .await;
    assert_eq!(r.status, 401);
    let r = api
        .post_raw(TRACES, Some(&ingest), "text/plain", body)
        .await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (415, &json!("unsupported_media_type"))
    );
    let r = api
        .post_raw(
            TRACES,
            Some(&ingest),
            "application/x-protobuf",
            vec![0x0a, 0xff],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["body"]);
}

#[tokio::test]
async fn a_workspace_maps_its_own_attribute_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, admin) = (key(&db, "default", "ingest"), key(&db, "default", "admin"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let r = api
        .put_json(
            "/v1/workspace/settings",
            &admin,
            &json!({"otlpAttributes": {"endpointTag": ["app.feature"]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .put_json(
            "/v1/workspace/settings",
            &admin,
            &json!({"otlpAttributes": {"model": ["x"]}}),
        )
        .await;
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        vec!["otlpAttributes.model"]
    );
    // The server rereads settings every 2 s.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let mut attrs = chat_attrs();
    attrs.push(("app.feature", json!("search.rank")));
    let r = api
        .post_raw(
            TRACES,
            Some(&ingest),
            "application/json",
            export(vec![json_span(1, &attrs)]),
        )
        .await;
    assert_eq!(r.body["accepted"], json!(1), "{}", r.body);
    let id = "otel-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b101";
    let r = api
        .get(&format!("/v1/events?externalRequestId={id}"), &admin)
        .await;
    assert_eq!(r.body["events"][0]["endpointTag"], json!("search.rank"));
}
