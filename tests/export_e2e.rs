//! `GET /v1/events?format=csv|ndjson`: every event of the query, across pages, streamed
//! from the real binary; money as exact decimal text.

mod common;
use common::*;
use serde_json::{json, Value};

async fn text(api: &Api, path: &str, key: &str) -> (u16, String, String) {
    let resp = api
        .http
        .get(format!("{}{path}", api.url))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    (status, kind, resp.text().await.unwrap())
}

#[tokio::test]
async fn exports_stream_every_event_of_the_window_across_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    // 2,500 events: three pages of the store's 1,000.
    for batch in 0..5 {
        let events: Vec<Value> = (0..500).map(|i| event(&format!("e-{batch}-{i}"))).collect();
        let r = api.post("/v1/ingest/batch", &ingest, &json!(events)).await;
        assert_eq!(r.body["accepted"], json!(500), "{}", r.body);
    }
    let mut other = event("elsewhere");
    other["endpointTag"] = json!("search.rank");
    api.post("/v1/ingest/llm-request", &ingest, &other).await;

    let (status, kind, csv) = text(
        &api,
        "/v1/events?format=csv&since=1h&endpointTag=support.reply",
        &read,
    )
    .await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2501, "a header and every event");
    assert!(lines[0].starts_with("externalRequestId,timestamp,"));
    let ids: std::collections::BTreeSet<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids.len(), 2500);
    assert!(!csv.contains("elsewhere"));
    // 600 x $0.15/M + 400 x $0.075/M + 200 x $0.60/M
    assert!(lines[1].contains(",0.00024,catalog,"), "{}", lines[1]);

    let (status, _, ndjson) = text(&api, "/v1/events?format=ndjson", &read).await;
    assert_eq!(status, 200);
    let events: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2501);
}

#[tokio::test]
async fn a_bad_format_or_a_limit_with_an_export_is_a_400_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let r = api.get("/v1/events?format=xml", &read).await;
    assert_eq!(
        (r.status, blamed(&r.body["error"]["fields"])),
        (400, vec!["format".to_string()])
    );
    let r = api.get("/v1/events?format=csv&limit=5", &read).await;
    assert_eq!(
        (r.status, blamed(&r.body["error"]["fields"])),
        (400, vec!["limit".to_string()])
    );
}

#[test]
fn burnrate_export_writes_every_event_and_since_keeps_the_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let mut lines: Vec<String> = (0..1500)
        .map(|i| event(&format!("x-{i}")).to_string())
        .collect();
    let mut old = event("old");
    old["timestamp"] = json!("2021-01-01T00:00:00Z");
    lines.push(old.to_string());
    let file = dir.path().join("e.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    cli(&db, &["import", file.to_str().unwrap()]);
    let csv = cli(&db, &["export"]);
    assert_eq!(csv.lines().count(), 1502, "a header and every event");
    assert!(csv.contains("\nold,2021-01-01T00:00:00Z,"));
    let recent = cli(&db, &["export", "--format", "ndjson", "--since", "7d"]);
    assert_eq!(recent.lines().count(), 1500);
    assert!(!recent.contains("\"old\""));
}
