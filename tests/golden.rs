//! Golden tests: each `tests/golden/NAME.request.json` is sent to a server holding a fixed
//! seeded demo data set, and the reply must equal `NAME.response.json` exactly (status and
//! JSON body). After an intended change, refresh every expected reply with
//! `scripts/update-golden.sh` and review the diff like code.

mod common;

use common::{cli, key, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The fixed data set: 7 days of seeded demo traffic ending 2026-01-15 (spike on the 13th).
fn data_set(db: &Path) {
    cli(
        db,
        &[
            "demo",
            "--events",
            "3000",
            "--days",
            "7",
            "--seed",
            "11",
            "--end",
            "2026-01-15T00:00:00Z",
        ],
    );
}

async fn send(http: &reqwest::Client, url: &str, read: &str, request: &Value) -> Value {
    let path = request["path"].as_str().expect("request.path");
    let target = format!("{url}{path}");
    let builder = match request["method"].as_str().expect("request.method") {
        "GET" => http.get(target),
        "POST" => http.post(target).json(&request["body"]),
        other => panic!("unsupported method {other}"),
    };
    let reply = builder.header("X-API-Key", read).send().await.unwrap();
    let status = reply.status().as_u16();
    let mut body: Value = reply.json().await.unwrap();
    mask_receive_times(&mut body);
    json!({ "status": status, "body": body })
}

/// `receivedAt` is the wall-clock time of the import, and a key's `prefix` part of a
/// random key: the values no seed fixes.
fn mask_receive_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "receivedAt" {
                    *v = json!("(receive time)");
                } else if k == "prefix" {
                    *v = json!("(key prefix)");
                } else {
                    mask_receive_times(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_receive_times),
        _ => {}
    }
}

#[tokio::test]
async fn every_endpoint_answers_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("golden.db");
    data_set(&db);
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let http = reqwest::Client::new();
    let update = std::env::var_os("GOLDEN_UPDATE").is_some();

    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".request.json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "golden cases went missing");
    let mut failures = Vec::new();
    for request_path in cases {
        let name = request_path.to_string_lossy().replace(".request.json", "");
        let response_path = PathBuf::from(format!("{name}.response.json"));
        let request: Value =
            serde_json::from_str(&std::fs::read_to_string(&request_path).unwrap()).unwrap();
        let got = send(&http, &server.url, &read, &request).await;
        if update {
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            std::fs::write(&response_path, text).unwrap();
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&response_path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => {
                failures.push(format!(
                    "{name}: no response file (run scripts/update-golden.sh)"
                ));
                continue;
            }
        };
        if got != expected {
            failures.push(format!(
                "{name}: reply differs from the recorded one\n--- got:\n{}",
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The p95 latency of a prompt version equals the nearest-rank p95 of its events' own
/// latencies, read back one by one through the request explorer.
#[tokio::test]
async fn prompt_version_p95_latency_is_the_nearest_rank_of_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p95.db");
    data_set(&db);
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let http = reqwest::Client::new();
    let window = "from=2026-01-08T00:00:00Z&to=2026-01-15T00:00:00Z&dataMode=demo";
    let get = |path: String| {
        let req = http
            .get(format!("{}{path}", server.url))
            .header("X-API-Key", &read);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let report = get(format!(
        "/v1/prompt-versions?{window}&endpointTag=summarize.doc"
    ))
    .await;
    let current = &report["endpoints"][0]["current"];
    let version = current["promptVersion"].as_str().unwrap().to_string();
    let mut latencies = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(format!(
            "/v1/events?{window}&endpointTag=summarize.doc&promptVersion={version}&limit=1000{cursor}"
        ))
        .await;
        for e in page["events"].as_array().unwrap() {
            if let Some(ms) = e["latencyMs"].as_u64() {
                latencies.push(ms);
            }
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert!(latencies.len() > 100, "enough calls to make p95 meaningful");
    latencies.sort_unstable();
    let rank = (latencies.len() * 95).div_ceil(100) - 1;
    assert_eq!(current["latencyP95Ms"].as_u64(), Some(latencies[rank]));
}
