//! Deploy notes through the real binary: `POST /v1/deploys` checks every field (4xx
//! naming it), `GET /v1/deploys` and `burnrate deploy` list them; explain sentences and
//! alert evidence quote the note of the version that changed the cost, and the dashboard
//! marks it on the Overview chart and the Prompt versions page.

mod common;

use common::{blamed, cli, key, Api, Server};
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;
const NOTE: &str = "longer summaries for enterprise";

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn at(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// 60 calls of v3 at $0.01 yesterday, then 60 of v4 at $0.03 in the last hours: v4 took
/// the endpoint over and tripled its cost per request.
fn calls(now: i64) -> Value {
    let call = |i: i64, version: &str, t: i64, cost: f64| {
        json!({"externalRequestId": format!("{version}-{i}"), "provider": "openai",
               "model": "gpt-4o-mini", "endpointTag": "summarize.doc", "promptVersion": version,
               "tenantId": "acme", "inputTokens": 100, "outputTokens": 10, "costUsd": cost,
               "status": "success", "timestamp": at(t)})
    };
    let mut all: Vec<Value> = (0..60)
        .map(|i| call(i, "v3", now - 30 * HOUR + i * 60_000, 0.01))
        .collect();
    all.extend((0..60).map(|i| call(i, "v4", now - 5 * HOUR + i * 60_000, 0.03)));
    Value::Array(all)
}

#[tokio::test]
async fn deploy_notes_are_checked_listed_and_quoted_by_explain_alerts_and_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let now = now_ms();

    // Every bad field is named.
    let bad = api
        .post(
            "/v1/deploys",
            &ingest,
            &json!({"note": "x".repeat(501), "endpointTag": 5, "colour": "red",
                    "time": "yesterday", "author": ""}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(
        blamed(&bad.body["error"]["fields"]),
        vec!["colour", "endpointTag", "author", "note", "time"]
    );
    let missing = api
        .post(
            "/v1/deploys",
            &ingest,
            &json!({"endpointTag": "summarize.doc"}),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(blamed(&missing.body["error"]["fields"]), vec!["note"]);
    let ahead = api
        .post(
            "/v1/deploys",
            &ingest,
            &json!({"note": "x", "time": at(now + 3_600_000)}),
        )
        .await;
    assert_eq!(blamed(&ahead.body["error"]["fields"]), vec!["time"]);
    let denied = api.post("/v1/deploys", &read, &json!({"note": "x"})).await;
    assert_eq!(denied.status, 403, "a read key cannot write notes");

    let created = api
        .post(
            "/v1/deploys",
            &ingest,
            &json!({"endpointTag": "summarize.doc", "promptVersion": "v4", "note": NOTE,
                    "author": "ana", "time": at(now - 5 * HOUR - 60_000)}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["note"], NOTE);
    // The CLI writes to the same store, a note for another endpoint.
    let out = cli(
        &db,
        &[
            "deploy",
            "note",
            "faster chat",
            "--endpoint-tag",
            "chat",
            "--prompt-version",
            "c2",
        ],
    );
    assert!(out.starts_with("deploy note 2 recorded at "), "{out}");
    let listed = api
        .get("/v1/deploys?since=1d&endpointTag=summarize.doc", &read)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let notes = listed.body["deploys"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{}", listed.body);
    assert_eq!(notes[0]["promptVersion"], "v4");
    assert_eq!(notes[0]["author"], "ana");
    let all = api.get("/v1/deploys?since=1d", &read).await;
    assert_eq!(all.body["deploys"].as_array().unwrap().len(), 2);
    let bad_window = api.get("/v1/deploys?since=forever", &read).await;
    assert_eq!(blamed(&bad_window.body["error"]["fields"]), vec!["since"]);

    let stored = api.post("/v1/ingest/batch", &ingest, &calls(now)).await;
    assert_eq!(stored.status, 202, "{}", stored.body);
    assert_eq!(stored.body["accepted"], 120);

    let mention = format!("after v4: '{NOTE}'");
    let explained = api.get("/v1/explain?since=24h", &read).await;
    assert_eq!(explained.status, 200, "{}", explained.body);
    let summary = explained.body["summary"].as_str().unwrap();
    assert!(summary.contains(&mention), "{summary}");
    assert_eq!(explained.body["deploys"][0]["note"], NOTE);

    let findings = api.get("/v1/alerts/findings", &read).await;
    assert_eq!(findings.status, 200, "{}", findings.body);
    let drift = findings.body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "cost_per_request_drift")
        .unwrap_or_else(|| panic!("no drift finding: {}", findings.body));
    assert_eq!(
        drift["evidence"]["deploy"]["text"],
        json!(mention),
        "{drift}"
    );
    assert_eq!(drift["evidence"]["deploy"]["note"]["author"], "ana");
    assert!(
        drift["text"]
            .as_str()
            .unwrap()
            .ends_with(&format!("Deploy note: {mention}.")),
        "{drift}"
    );

    // The dashboard: a marker on the Overview's chart and the note on Prompt versions.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{}/login", server.url))
        .form(&[("key", read.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = |path: &'static str| {
        let req = http
            .get(format!("{}{path}", server.url))
            .header("cookie", &cookie);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.text().await.unwrap()
        }
    };
    let overview = page("/?range=24h").await;
    assert!(
        overview.contains("class=\"deploy\""),
        "no marker on the chart"
    );
    assert!(
        overview.contains(&format!("summarize.doc: after v4: &#39;{NOTE}&#39; (ana)"))
            || overview.contains(&format!("summarize.doc: after v4: '{NOTE}' (ana)")),
        "the note under the chart"
    );
    let versions = page("/versions?range=24h").await;
    assert!(
        versions.contains(&format!("“{NOTE}” — ana")),
        "the note by v4"
    );
    server.stop();
}
