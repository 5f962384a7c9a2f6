//! End-to-end ingest: the real binary, a real SQLite file, HTTP on loopback.

mod common;
use common::*;
use serde_json::{json, Value};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

async fn summary(api: &Api, key: &str) -> Value {
    let r = api.get("/v1/summary", key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn single_array_and_ndjson_batches_are_stored_and_priced() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);

    let r = api
        .post("/v1/ingest/llm-request", &ingest, &event("one"))
        .await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (202, Some(1)),
        "{}",
        r.body
    );
    let r = api
        .post(
            "/v1/ingest/batch",
            &ingest,
            &json!([event("a1"), event("a2")]),
        )
        .await;
    assert_eq!(r.body["accepted"], 2);
    let ndjson = format!("{}\n\n{}\n", event("n1"), event("n2"));
    let r = api
        .post_raw(
            "/v1/ingest/batch",
            Some(&ingest),
            "application/x-ndjson",
            ndjson.into_bytes(),
        )
        .await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (202, Some(2)),
        "{}",
        r.body
    );

    let stored = api.get("/v1/events?externalRequestId=n2", &read).await.body;
    let e = &stored["events"][0];
    // 600 x 0.15/M + 400 x 0.075/M + 200 x 0.60/M = 0.00024
    assert_eq!(e["costUsd"], json!(0.00024));
    assert_eq!(e["costSource"], "catalog");
    assert_eq!(
        e["priceEntryId"],
        "litellm-1.110.2+2026-11-25:openai/gpt-4o-mini"
    );
    assert_eq!(
        (e["attempts"].as_u64(), e["tenantId"].as_str()),
        (Some(1), Some("acme"))
    );
    let s = summary(&api, &read).await;
    assert_eq!(
        (s["requests"].as_u64(), s["costUsd"].as_f64()),
        (Some(5), Some(0.0012))
    );
    assert_eq!(s["tokens"]["cached"], 2000);
}

#[tokio::test]
async fn resent_duplicates_and_retries_count_once() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);

    api.post("/v1/ingest/llm-request", &ingest, &event("dup"))
        .await;
    let r = api
        .post(
            "/v1/ingest/batch",
            &ingest,
            &json!([event("dup"), event("dup")]),
        )
        .await;
    assert_eq!(
        (r.body["accepted"].as_u64(), r.body["duplicates"].as_u64()),
        (Some(0), Some(2))
    );

    // Attempt 1 failed without usage, attempt 2 succeeded with usage: one call, two attempts,
    // the cost of attempt 2.
    let mut failed = event("retry");
    failed["status"] = json!("rate_limited");
    failed["usageMissing"] = json!(true);
    failed["inputTokens"] = json!(0);
    failed["cachedTokens"] = json!(0);
    failed["outputTokens"] = json!(0);
    let mut ok = event("retry");
    ok["attempt"] = json!(2);
    assert_eq!(
        api.post("/v1/ingest/llm-request", &ingest, &failed)
            .await
            .body["accepted"],
        1
    );
    assert_eq!(
        api.post("/v1/ingest/llm-request", &ingest, &ok).await.body["accepted"],
        1
    );
    // A late resend of attempt 1 changes nothing.
    assert_eq!(
        api.post("/v1/ingest/llm-request", &ingest, &failed)
            .await
            .body["duplicates"],
        1
    );

    let e = api
        .get("/v1/events?externalRequestId=retry", &read)
        .await
        .body["events"][0]
        .clone();
    assert_eq!(
        (e["attempts"].as_u64(), e["attempt"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (e["status"].as_str(), e["costUsd"].as_f64()),
        (Some("success"), Some(0.00024))
    );
    let s = summary(&api, &read).await;
    assert_eq!(
        (s["requests"].as_u64(), s["attempts"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(s["retryRatio"], 0.5);
    assert_eq!(s["costUsd"], 0.00048);
}

/// Every bad input of the contract gets a 4xx naming the field; nothing valid is lost.
#[tokio::test]
async fn bad_inputs_are_refused_with_the_field_named() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    api.post("/v1/ingest/llm-request", &ingest, &event("kept"))
        .await;

    let with = |patch: Value| {
        let mut e = event("x");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                e.as_object_mut().unwrap().remove(k);
            } else {
                e[k] = v.clone();
            }
        }
        e
    };
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(10)).to_string();
    let tags: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({"provider": null})), "provider"),
        (with(json!({"model": null})), "model"),
        (with(json!({"endpointTag": null})), "endpointTag"),
        (with(json!({"status": null})), "status"),
        (with(json!({"inputTokens": "100"})), "inputTokens"),
        (with(json!({"outputTokens": -5})), "outputTokens"),
        (with(json!({"outputTokens": 2.5})), "outputTokens"),
        (
            with(json!({"cachedTokens": 900, "cacheWriteTokens": 200})),
            "cachedTokens",
        ),
        (with(json!({"reasoningTokens": 201})), "reasoningTokens"),
        (with(json!({"totalTokens": 1})), "totalTokens"),
        (with(json!({"status": "done"})), "status"),
        (with(json!({"dataMode": "live"})), "dataMode"),
        (with(json!({"environment": "production"})), "environment"),
        (with(json!({"serviceTier": "turbo"})), "serviceTier"),
        (with(json!({"tenantId": "t".repeat(129)})), "tenantId"),
        (
            with(json!({"externalRequestId": "i".repeat(129)})),
            "externalRequestId",
        ),
        (with(json!({"timestamp": future})), "timestamp"),
        (with(json!({"timestamp": "yesterday"})), "timestamp"),
        (with(json!({"tags": tags})), "tags"),
        (with(json!({"attempt": 0})), "attempt"),
    ];
    for (body, field) in &cases {
        let r = api.post("/v1/ingest/llm-request", &ingest, body).await;
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        assert!(
            blamed(&r.body["error"]["fields"]).contains(&field.to_string()),
            "{field}: {}",
            r.body
        );
    }
    // The same bad events in a batch next to a good one: the good one is kept.
    let mut batch: Vec<Value> = cases.iter().map(|(b, _)| b.clone()).collect();
    batch.push(event("good-neighbour"));
    let r = api
        .post("/v1/ingest/batch", &ingest, &Value::Array(batch))
        .await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (202, Some(1)),
        "{}",
        r.body
    );
    assert_eq!(r.body["rejected"].as_array().unwrap().len(), cases.len());
    assert_eq!(r.body["rejected"][4]["index"], 4);
    assert_eq!(
        blamed(&r.body["rejected"][4]["errors"]),
        vec!["inputTokens"]
    );

    // Malformed JSON, a cut array, an empty batch, invalid UTF-8: 400 naming the body.
    let bodies: [(&[u8], &str); 4] = [
        (b"{\"provider\": ", "/v1/ingest/llm-request"),
        (b"[{\"provider\": \"x\"}", "/v1/ingest/batch"),
        (b"[]", "/v1/ingest/batch"),
        (b"{\"provider\":\"\xff\"}", "/v1/ingest/llm-request"),
    ];
    for (body, path) in bodies {
        let r = api
            .post_raw(path, Some(&ingest), "application/json", body.to_vec())
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(
            blamed(&r.body["error"]["fields"]),
            vec!["body"],
            "{}",
            r.body
        );
    }
    // NDJSON that ends mid-line: the complete lines are kept, the cut one is named.
    let ndjson = format!("{}\n{}", event("nd-ok"), &event("nd-cut").to_string()[..40]);
    let r = api
        .post_raw(
            "/v1/ingest/batch",
            Some(&ingest),
            "application/x-ndjson",
            ndjson.into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.body["accepted"].as_u64()), (202, Some(1)));
    assert_eq!(
        r.body["rejected"][0]["errors"][0]["message"],
        "line is truncated: the body ends mid-line"
    );

    // Over 10,000 events or over 10 MiB: 413.
    let many: Vec<Value> = (0..10_001).map(|i| event(&format!("m{i}"))).collect();
    assert_eq!(
        api.post("/v1/ingest/batch", &ingest, &Value::Array(many))
            .await
            .status,
        413
    );
    // A declared body over 10 MiB is refused before it is read: send only the headers.
    let status_line = head_only_post(&api.url, "/v1/ingest/batch", &ingest, 11 << 20).await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    let s = summary(&api, &read).await;
    assert_eq!(s["requests"], 3, "kept, good-neighbour and nd-ok: {s}");
}

/// POST headers declaring `length` bytes, and return the status line the server answers
/// before any of the body is sent.
async fn head_only_post(url: &str, path: &str, key: &str, length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = socket.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn keys_have_scopes_workspaces_are_isolated_and_revocation_applies_within_the_key_bound() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    cli(&db, &["workspaces", "create", "other"]);
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    let other_read = key(&db, "other", "read");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);

    let no_key = api
        .post_raw(
            "/v1/ingest/llm-request",
            None,
            "application/json",
            event("a").to_string().into_bytes(),
        )
        .await;
    assert_eq!(no_key.status, 401);
    let bad = api
        .post("/v1/ingest/llm-request", "br_not_a_key", &event("a"))
        .await;
    assert_eq!(bad.status, 401);
    assert!(
        !bad.body.to_string().contains("br_not_a_key"),
        "the key is never echoed"
    );
    assert_eq!(
        api.post("/v1/ingest/llm-request", &read, &event("a"))
            .await
            .status,
        403
    );
    assert_eq!(api.get("/v1/events", &ingest).await.status, 403);
    assert_eq!(
        api.post("/v1/ingest/llm-request", &admin, &event("a"))
            .await
            .status,
        202
    );
    let bearer = api
        .http
        .get(format!("{}/v1/summary", api.url))
        .header("Authorization", format!("Bearer {read}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);

    assert_eq!(
        api.get("/v1/events", &read).await.body["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get("/v1/events", &other_read).await.body["events"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Revoked with the CLI while the server runs: refused within the key table's
    // bound (a check of the store's key generation every 250 ms).
    let prefix = &ingest[..11];
    cli(&db, &["keys", "revoke", prefix]);
    within_key_bound("the revoked key refused", || async {
        api.post("/v1/ingest/llm-request", &ingest, &event("b"))
            .await
            .status
            == 401
    })
    .await;
    let listed = cli(&db, &["keys", "list", "--json"]);
    assert!(
        !listed.contains(&ingest[11..]),
        "keys list never shows a key"
    );
}

#[tokio::test]
async fn paused_workspace_gets_402_and_rate_limit_gets_429() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &["--ingest-rate", "5", "--ingest-burst", "10"]);
    let api = Api::new(&server);

    // Paused and resumed by the CLI: the server's key table sees each within its bound.
    // Polled with a body that is not JSON, which spends no rate: 402 while paused, 400
    // once ingest is open again.
    let probe = || async {
        api.post_raw(
            "/v1/ingest/llm-request",
            Some(&ingest),
            "application/json",
            b"not json".to_vec(),
        )
        .await
        .status
    };
    cli(&db, &["workspaces", "pause", "default"]);
    within_key_bound("the pause applied", || async { probe().await == 402 }).await;
    assert_eq!(
        api.post("/v1/ingest/llm-request", &ingest, &event("p"))
            .await
            .status,
        402
    );
    cli(&db, &["workspaces", "resume", "default"]);
    within_key_bound("the resume applied", || async { probe().await == 400 }).await;

    let batch: Vec<Value> = (0..10).map(|i| event(&format!("r{i}"))).collect();
    assert_eq!(
        api.post("/v1/ingest/batch", &ingest, &Value::Array(batch))
            .await
            .status,
        202
    );
    let r = api
        .post("/v1/ingest/llm-request", &ingest, &event("over"))
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after.as_deref(), Some("1"));
}

#[tokio::test]
async fn every_acknowledged_event_survives_a_kill() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &["--ingest-rate", "0"]);
    let api = std::sync::Arc::new(Api::new(&server));
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (api, ingest) = (api.clone(), ingest.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            for b in 0..20 {
                let batch: Vec<Value> = (0..50).map(|i| event(&format!("c{c}-b{b}-{i}"))).collect();
                let r = api
                    .post("/v1/ingest/batch", &ingest, &Value::Array(batch))
                    .await;
                if r.status == 202 {
                    acked += r.body["accepted"].as_u64().unwrap();
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    assert_eq!(acked, 8 * 20 * 50);
    server.kill();

    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let s = summary(&api, &read).await;
    assert_eq!(s["requests"].as_u64(), Some(acked));
    server.stop();
}

#[tokio::test]
async fn pages_walk_newest_first_with_a_cursor() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let base = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let batch: Vec<Value> = (0..7)
        .map(|i| {
            let mut e = event(&format!("p{i}"));
            e["timestamp"] = json!((base + jiff::SignedDuration::from_secs(i)).to_string());
            e
        })
        .collect();
    api.post("/v1/ingest/batch", &ingest, &Value::Array(batch))
        .await;
    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=3".to_string();
    loop {
        let page = api.get(&path, &read).await.body;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["externalRequestId"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/events?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["p6", "p5", "p4", "p3", "p2", "p1", "p0"]);
    assert_eq!(api.get("/v1/events?limit=0", &read).await.status, 400);
    assert_eq!(api.get("/v1/events?cursor=zzz", &read).await.status, 400);
    assert_eq!(
        api.get(
            "/v1/summary?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            &read
        )
        .await
        .status,
        400
    );
    assert_eq!(
        blamed(&api.get("/v1/summary?dataMode=live", &read).await.body["error"]["fields"]),
        vec!["dataMode"]
    );
}

#[tokio::test]
async fn an_override_imported_while_running_prices_new_events() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut selfhosted = event("before");
    selfhosted["provider"] = json!("selfhosted");
    selfhosted["model"] = json!("acme-7b");
    api.post("/v1/ingest/llm-request", &ingest, &selfhosted)
        .await;
    let before = api
        .get("/v1/events?externalRequestId=before", &read)
        .await
        .body;
    assert_eq!(
        before["events"][0]["costUsd"],
        Value::Null,
        "unknown model is unpriced, not 0"
    );
    assert!(cli(&db, &["prices", "check"]).contains("acme-7b"));

    let overrides = dir.path().join("overrides.json");
    std::fs::write(
        &overrides,
        json!({"format": 1, "kind": "overrides", "version": "local-1", "entries": [
            {"provider": "selfhosted", "model": "acme-7b", "usdPerMTok": [{"tier": "standard", "above": 0, "input": "1", "output": "2"}]}
        ]})
        .to_string(),
    )
    .unwrap();
    cli(&db, &["prices", "import", overrides.to_str().unwrap()]);
    // The server reloads the book within seconds: probe until a new call is priced (a
    // fixed sleep failed on a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for probe in 0.. {
        selfhosted["externalRequestId"] = json!(format!("probe-{probe}"));
        api.post("/v1/ingest/llm-request", &ingest, &selfhosted)
            .await;
        let seen = api
            .get(
                &format!("/v1/events?externalRequestId=probe-{probe}"),
                &read,
            )
            .await
            .body;
        if !seen["events"][0]["costUsd"].is_null() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the imported override never priced a call"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    selfhosted["externalRequestId"] = json!("after");
    api.post("/v1/ingest/llm-request", &ingest, &selfhosted)
        .await;
    let after = api
        .get("/v1/events?externalRequestId=after", &read)
        .await
        .body;
    // 600 x 1/M + 400 x 1/M (no cached rate: no discount) + 200 x 2/M = 0.0014
    assert_eq!(after["events"][0]["costUsd"], json!(0.0014));
    assert_eq!(
        after["events"][0]["priceEntryId"],
        "local-1:selfhosted/acme-7b"
    );
    // History is not re-priced.
    let before = api
        .get("/v1/events?externalRequestId=before", &read)
        .await
        .body;
    assert_eq!(before["events"][0]["costUsd"], Value::Null);
}

#[test]
fn import_reports_bad_lines_and_loads_the_rest() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let file = dir.path().join("events.jsonl");
    let lines = [
        event("i1").to_string(),
        "{not json".into(),
        event("i2").to_string(),
        "".into(),
        json!({"provider": "x"}).to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "import",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2: body: invalid JSON"), "{stderr}");
    assert!(stderr.contains("line 5: model: is required"), "{stderr}");
    assert!(
        stdout.contains("2 accepted, 0 duplicates, 2 rejected"),
        "{stdout}"
    );
    let again = cli(&db, &["import", "--allow-rejects", file.to_str().unwrap()]);
    assert!(again.contains("0 accepted, 2 duplicates"), "{again}");
}

/// The aggregate query answers from the stored events, exactly.
#[tokio::test]
async fn the_aggregate_query_groups_filters_and_buckets() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let hour = |h: i64| (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(h)).to_string();
    let mut events = Vec::new();
    for (i, (endpoint, tenant, h)) in [
        ("a", "t1", 1),
        ("a", "t2", 1),
        ("b", "t1", 2),
        ("b", "t1", 30),
    ]
    .iter()
    .enumerate()
    {
        let mut e = event(&format!("q{i}"));
        e["endpointTag"] = json!(endpoint);
        e["tenantId"] = json!(tenant);
        e["timestamp"] = json!(hour(*h));
        e["tags"] = json!({"team": if *endpoint == "a" { "growth" } else { "core" }});
        events.push(e);
    }
    let mut unknown = event("q-unknown");
    unknown["model"] = json!("mystery-1");
    unknown.as_object_mut().unwrap().remove("tenantId");
    events.push(unknown);
    let mut staging = event("q-staging");
    staging["environment"] = json!("staging");
    events.push(staging);
    api.post("/v1/ingest/batch", &ingest, &Value::Array(events))
        .await;

    let q = |body: Value| {
        let api = &api;
        let read = read.clone();
        async move { api.post("/v1/query", &read, &body).await }
    };
    let r = q(json!({"groupBy": ["endpointTag"], "measures": ["requests", "costUsd", "unpriced", "costPerRequest"]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Last 24 h, prod, real: a x2, b x1 (the 30 h old one is out), support.reply x1 (unpriced).
    let rows = r.body["rows"].as_array().unwrap();
    let by_endpoint: Vec<(String, u64, Option<f64>)> = rows
        .iter()
        .map(|r| {
            (
                r["group"]["endpointTag"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
                r["costUsd"].as_f64(),
            )
        })
        .collect();
    // An endpoint whose calls are all unpriced has no cost (null), never $0.
    assert_eq!(
        by_endpoint,
        vec![
            ("a".into(), 2, Some(0.00048)),
            ("b".into(), 1, Some(0.00024)),
            ("support.reply".into(), 1, None)
        ]
    );
    assert_eq!(rows[2]["unpriced"], 1);
    assert_eq!(
        rows[2]["costPerRequest"],
        Value::Null,
        "no priced call: no cost per request"
    );

    let r = q(json!({"groupBy": ["tenantId"], "filters": {"endpointTag": ["a", "b"]}, "orderBy": "requests"})).await;
    let tenants: Vec<&str> = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["group"]["tenantId"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, vec!["t1", "t2"]);
    let r = q(json!({"groupBy": ["tenantId"], "filters": {"tenantId": "unknown"}})).await;
    assert_eq!(
        r.body["rows"][0]["requests"], 1,
        "missing tenants group and filter as unknown"
    );

    let r = q(json!({"groupBy": ["tag:team"], "from": hour(48), "filters": {"environment": ["prod", "staging"]}, "orderBy": "requests"})).await;
    let teams: Vec<(String, u64)> = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"]["tag:team"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        teams,
        vec![
            ("core".into(), 2),
            ("growth".into(), 2),
            ("unknown".into(), 2)
        ],
        "ties by name"
    );

    let r =
        q(json!({"bucket": "hour", "from": hour(3), "filters": {"endpointTag": ["a", "b"]}})).await;
    let buckets: Vec<u64> = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(buckets, vec![1, 2], "two hourly buckets, oldest first");

    for (body, field) in [
        (json!({"groupBy": ["colour"]}), "groupBy"),
        (json!({"limit": 0}), "limit"),
        (json!({"from": hour(1), "to": hour(2)}), "from"),
        (json!({"filters": {"tenantId": 7}}), "filters.tenantId"),
    ] {
        let r = q(body).await;
        assert_eq!(r.status, 400);
        assert_eq!(blamed(&r.body["error"]["fields"]), vec![field]);
    }
    assert_eq!(api.post("/v1/query", &ingest, &json!({})).await.status, 403);

    // The terminal shows the same numbers as the API.
    let top: Value = serde_json::from_str(&cli(&db, &["top", "endpoints", "--json"])).unwrap();
    let api_top = api.get("/v1/top/endpoints", &read).await.body;
    assert_eq!(top["rows"], api_top["rows"]);
    assert_eq!(top["rows"][0]["group"]["endpointTag"], "a");
    let share = top["rows"][0]["sharePct"].as_f64().unwrap();
    assert!(
        (share - 200.0 / 3.0).abs() < 1e-9,
        "a: 0.00048 of 0.00072 is 66.7%, got {share}"
    );
    let table = cli(&db, &["top", "endpoints"]);
    assert!(
        table.contains("support.reply") && table.contains("unpriced"),
        "{table}"
    );
    let file = dir.path().join("q.json");
    std::fs::write(
        &file,
        json!({"groupBy": ["tenantId"], "orderBy": "requests"}).to_string(),
    )
    .unwrap();
    let answer: Value =
        serde_json::from_str(&cli(&db, &["query", file.to_str().unwrap()])).unwrap();
    assert_eq!(answer["rows"][0]["group"]["tenantId"], "t1");
}

/// The request explorer filters by window and dimensions, and pages within the filter.
#[tokio::test]
async fn the_request_explorer_filters_and_pages() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let batch: Vec<Value> = (0..9)
        .map(|i| {
            let mut e = event(&format!("x{i}"));
            e["endpointTag"] = json!(if i % 3 == 0 { "wanted" } else { "other" });
            e["timestamp"] = json!((jiff::Timestamp::now()
                - jiff::SignedDuration::from_mins(60 - i))
            .to_string());
            e
        })
        .collect();
    api.post("/v1/ingest/batch", &ingest, &Value::Array(batch))
        .await;
    let page = api
        .get("/v1/events?endpointTag=wanted&limit=2", &read)
        .await
        .body;
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["externalRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["x6", "x3"]);
    let cursor = page["nextCursor"].as_str().unwrap();
    let rest = api
        .get(
            &format!("/v1/events?endpointTag=wanted&limit=2&cursor={cursor}"),
            &read,
        )
        .await
        .body;
    assert_eq!(rest["events"][0]["externalRequestId"], "x0");
    assert_eq!(rest["nextCursor"], Value::Null);
    let none = api
        .get("/v1/events?endpointTag=wanted&dataMode=test", &read)
        .await
        .body;
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
}

/// Issue 10, item 1: u64 tokens were stored as i64 (wrapping negative) and broke every
/// read of the workspace; now each numeric field has a ceiling and a 400 names it.
#[tokio::test]
async fn input_tokens_beyond_ten_billion_are_rejected_naming_the_field() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let cases = [
        ("inputTokens", json!(u64::MAX)),
        ("inputTokens", json!(10_000_000_001u64)),
        ("costUsd", json!(9_000_000_000u64)),
        ("latencyMs", json!(86_400_001)),
        ("imageCount", json!(10_001)),
        ("timestamp", json!("2019-12-31T23:59:59Z")),
    ];
    for (field, value) in cases {
        let mut e = event("big");
        e[field] = value.clone();
        let r = api.post("/v1/ingest/llm-request", &ingest, &e).await;
        assert_eq!(r.status, 400, "{field}={value}: {}", r.body);
        assert_eq!(
            blamed(&r.body["error"]["fields"]),
            vec![field],
            "{}",
            r.body
        );
    }
    let mut at_ceiling = event("ceiling");
    at_ceiling["inputTokens"] = json!(10_000_000_000u64);
    at_ceiling["cachedTokens"] = json!(0);
    let r = api
        .post("/v1/ingest/llm-request", &ingest, &at_ceiling)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // The workspace still reads: the one stored event, with its exact tokens.
    let s = summary(&api, &read).await;
    assert_eq!(s["tokens"]["input"], json!(10_000_000_000u64), "{s}");
    let r = api.get("/v1/events", &read).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Issue 10, item 3: a key ending in `\` was stored and then every filter or group-by on
/// it was a 500 (`bad JSON path`).
#[tokio::test]
async fn tag_key_with_backslash_is_rejected_at_ingest() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut e = event("tagged");
    e["tags"] = json!({"team\\": "a"});
    let r = api.post("/v1/ingest/llm-request", &ingest, &e).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["tags.team\\"]);
    e["tags"] = json!({"nul\u{0}": "a"});
    let r = api.post("/v1/ingest/llm-request", &ingest, &e).await;
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        vec!["tags"],
        "{}",
        r.body
    );
    e["tags"] = json!({"team.eu-1_x": "a"});
    let r = api.post("/v1/ingest/llm-request", &ingest, &e).await;
    assert_eq!(r.status, 202, "{}", r.body);
}

#[tokio::test]
async fn group_by_an_invalid_tag_key_is_a_400_not_a_500() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut e = event("tagged");
    e["tags"] = json!({"team.a": "search"});
    api.post("/v1/ingest/llm-request", &ingest, &e).await;
    for bad in ["tag:team\\", "tag:a\"b", "tag:a\u{0}"] {
        let r = api
            .post("/v1/query", &read, &json!({"groupBy": [bad]}))
            .await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        assert_eq!(blamed(&r.body["error"]["fields"]), vec!["groupBy"]);
        let r = api
            .post("/v1/query", &read, &json!({"filters": {bad: ["x"]}}))
            .await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        assert_eq!(
            blamed(&r.body["error"]["fields"]),
            vec![format!("filters.{bad}")]
        );
    }
    let r = api.get("/v1/timeseries?by=tag:team%5C", &read).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A valid key with a dot is one JSON label, not a path.
    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"groupBy": ["tag:team.a"], "measures": ["requests"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["rows"][0]["group"]["tag:team.a"], "search",
        "{}",
        r.body
    );
}

async fn stored(api: &Api, read: &str, id: &str) -> Value {
    let r = api
        .get(&format!("/v1/events?externalRequestId={id}"), read)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"][0].clone()
}

/// Issue 10, item 9: `{"status":"success"}` without any usage was stored as a free
/// success (0 tokens, $0, catalogue-priced).
#[tokio::test]
async fn a_success_without_usage_is_stored_as_usage_missing_and_unpriced() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let bare = json!({"externalRequestId": "bare", "provider": "openai", "model": "gpt-4o-mini",
                      "endpointTag": "support.reply", "status": "success"});
    let r = api.post("/v1/ingest/llm-request", &ingest, &bare).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["warnings"][0]["index"], 0, "{}", r.body);
    assert_eq!(r.body["warnings"][0]["field"], "usage", "{}", r.body);
    let e = stored(&api, &read, "bare").await;
    assert_eq!(e["usageMissing"], true, "{e}");
    assert_eq!(e["costUsd"], Value::Null, "{e}");
    assert_eq!(e["costSource"], Value::Null, "{e}");

    // Zeros the client sends are zeros: priced at $0, no warning.
    let mut zero = bare.clone();
    zero["externalRequestId"] = json!("zero");
    zero["inputTokens"] = json!(0);
    zero["outputTokens"] = json!(0);
    let r = api.post("/v1/ingest/llm-request", &ingest, &zero).await;
    assert_eq!(r.body["warnings"], json!([]), "{}", r.body);
    let e = stored(&api, &read, "zero").await;
    assert_eq!(
        (e["usageMissing"].clone(), e["costUsd"].clone()),
        (json!(false), json!(0)),
        "{e}"
    );

    let s = summary(&api, &read).await;
    assert_eq!(s["requests"], 2, "{s}");
    assert_eq!(s["unpriced"], 1, "{s}");
    assert_eq!(s["usageMissing"], 1, "{s}");
}

/// Issue 10, item 10: `tenantID`, `promptversion`, `input_tokens` were dropped with a 202
/// and attribution silently went to "unknown".
#[tokio::test]
async fn misspelled_fields_are_warned_with_the_closest_name() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut typo = event("typo");
    typo["tenantID"] = json!("acme");
    typo["promptversion"] = json!("v2");
    typo["input_tokens"] = json!(1000);
    let r = api
        .post("/v1/ingest/batch", &ingest, &json!([event("clean"), typo]))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(
        r.body["warnings"],
        json!([
            {"index": 1, "field": "input_tokens", "message": "unknown field; did you mean inputTokens?"},
            {"index": 1, "field": "promptversion", "message": "unknown field; did you mean promptVersion?"},
            {"index": 1, "field": "tenantID", "message": "unknown field; did you mean tenantId?"},
        ]),
        "{}",
        r.body
    );
    // `warnings` is always there, empty when there is nothing to say.
    let r = api
        .post("/v1/ingest/llm-request", &ingest, &event("clean-2"))
        .await;
    assert_eq!(r.body["warnings"], json!([]), "{}", r.body);
    server.stop();
    // Counted per key, durably (the writer commits the count with the events).
    let keys: Value = serde_json::from_str(&cli(&db, &["keys", "list", "--json"])).unwrap();
    let ingest_key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scope"] == "ingest")
        .unwrap();
    assert_eq!(ingest_key["unknownFields"], 3, "{keys}");
    assert_eq!(ingest_key["lastUnknownField"], "tenantID", "{keys}");
}

#[tokio::test]
async fn workspace_rejecting_unknown_fields_rejects_the_event() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, admin) = (key(&db, "default", "ingest"), key(&db, "default", "admin"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let r = api.get("/v1/workspace/settings", &admin).await;
    assert_eq!(
        r.body,
        json!({"unknownFields": "warn", "requiredFields": [],
               "piiIds": "pseudonymize", "pseudonymizeAllIds": false})
    );
    let r = api
        .put_json(
            "/v1/workspace/settings",
            &ingest,
            &json!({"unknownFields": "reject"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api
        .put_json(
            "/v1/workspace/settings",
            &admin,
            &json!({"unknownFields": "drop", "requiredFields": ["model"]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        vec!["requiredFields", "unknownFields"]
    );
    let r = api
        .put_json(
            "/v1/workspace/settings",
            &admin,
            &json!({"unknownFields": "reject"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let mut typo = event("typo");
    typo["tenantID"] = json!("acme");
    let r = api.post("/v1/ingest/llm-request", &ingest, &typo).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["tenantID"]);
    assert_eq!(
        r.body["error"]["fields"][0]["message"],
        "unknown field; did you mean tenantId?"
    );
    let keys: Value = serde_json::from_str(&cli(&db, &["keys", "list", "--json"])).unwrap();
    let counted = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scope"] == "ingest");
    assert_eq!(counted.unwrap()["unknownFields"], 1, "{keys}");

    // The CLI (another process) turns it back; the server follows within 2 s.
    cli(
        &db,
        &[
            "workspaces",
            "configure",
            "default",
            "--unknown-fields",
            "warn",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = api.post("/v1/ingest/llm-request", &ingest, &typo).await;
        if r.status == 202 {
            assert_eq!(r.body["warnings"][0]["field"], "tenantID");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still rejected: {}",
            r.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn required_tenant_id_rejects_events_without_it() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let ingest = key(&db, "default", "ingest");
    let out = cli(
        &db,
        &[
            "workspaces",
            "configure",
            "default",
            "--require",
            "tenantId",
        ],
    );
    assert!(out.contains("\"tenantId\""), "{out}");
    let shown: Value = serde_json::from_str(&cli(&db, &["workspaces", "show", "default"])).unwrap();
    assert_eq!(
        shown,
        json!({"unknownFields": "warn", "requiredFields": ["tenantId"],
               "piiIds": "pseudonymize", "pseudonymizeAllIds": false})
    );
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut anonymous = event("anonymous");
    anonymous.as_object_mut().unwrap().remove("tenantId");
    let r = api
        .post(
            "/v1/ingest/batch",
            &ingest,
            &json!([event("attributed"), anonymous]),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["accepted"], 1);
    assert_eq!(r.body["rejected"][0]["index"], 1);
    assert_eq!(blamed(&r.body["rejected"][0]["errors"]), vec!["tenantId"]);
    let r = api
        .post("/v1/ingest/llm-request", &ingest, &anonymous)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["tenantId"]);
}

/// Issue 10, item 1 (write side): a total that would leave i64 must never wrap or turn
/// into a float, and a failed group commit failed every request in it. Now the request
/// that would overflow a rollup cell gets a 400 naming the field, the good requests
/// committed with it are stored, and the totals the server reads keep the old value.
#[tokio::test]
async fn a_request_that_would_overflow_a_rollup_cell_fails_alone() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let ingest = key(&db, "default", "ingest");
    let read = key(&db, "default", "read");
    // One call of the last hour costing a dollar short of i64::MAX nano-USD (as a store
    // written before the ceilings could hold), on the endpoint the bad event names; its
    // tenant, user and tag-set cells are not the good events' (the rollups sum it at
    // start).
    let hour = jiff::Timestamp::now().as_millisecond() / 3_600_000 * 3_600_000 - 3_600_000;
    let seeded = i64::MAX - 100;
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "INSERT INTO dims (kind, value) VALUES (1, 'openai'), (2, 'gpt-4o-mini'), (3, 'overflow.cell'), (6, 'seed-user');",
        )
        .unwrap();
        let id = |kind: i64, value: &str| -> i64 {
            c.query_row(
                "SELECT id FROM dims WHERE kind = ?1 AND value = ?2",
                rusqlite::params![kind, value],
                |r| r.get(0),
            )
            .unwrap()
        };
        c.execute(
            "INSERT INTO events (workspace_id, external_request_id, idless, ts, received_at, attempt,
                attempt_mask, attempts, provider, model, endpoint, user, input_tokens, cached_tokens,
                cache_write_tokens, output_tokens, reasoning_tokens, image_count, status, data_mode,
                environment, operation, service_tier, usage_missing, cost_nanos)
             VALUES (1, 'seeded', 0, ?1, ?1, 1, 2, 1, ?2, ?3, ?4, ?5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?6)",
            rusqlite::params![
                hour + 1000,
                id(1, "openai"),
                id(2, "gpt-4o-mini"),
                id(3, "overflow.cell"),
                id(6, "seed-user"),
                seeded
            ],
        )
        .unwrap();
        c.execute_batch(
            "INSERT INTO tag_sets (hash, tags) VALUES (0, '{\"seed\":\"x\"}');
             UPDATE events SET tag_set = last_insert_rowid() WHERE external_request_id = 'seeded';",
        )
        .unwrap();
    }
    let server = Server::start(&db, &[]);
    let api = std::sync::Arc::new(Api::new(&server));
    let at = jiff::Timestamp::from_millisecond(hour + 60_000)
        .unwrap()
        .to_string();
    let mut bad = event("bad");
    bad["endpointTag"] = json!("overflow.cell");
    bad["costUsd"] = json!(1);
    bad["timestamp"] = json!(at);
    // Twenty good requests race the bad one, so some share its group commit.
    let mut tasks = Vec::new();
    for i in 0..21 {
        let (api, ingest) = (api.clone(), ingest.clone());
        let body = if i == 10 {
            bad.clone()
        } else {
            let mut good = event(&format!("good-{i}"));
            good["timestamp"] = json!(at);
            good
        };
        tasks.push(tokio::spawn(async move {
            api.post("/v1/ingest/llm-request", &ingest, &body).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let r = task.await.unwrap();
        if i == 10 {
            assert_eq!(r.status, 400, "{}", r.body);
            assert_eq!(blamed(&r.body["error"]["fields"]), vec!["costUsd"]);
        } else {
            assert_eq!(r.status, 202, "request {i}: {}", r.body);
        }
    }
    let r = api.get("/v1/events?limit=100", &read).await;
    let ids: Vec<&str> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["externalRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 21, "{ids:?}");
    assert!(!ids.contains(&"bad"), "{ids:?}");
    // The hour's cell, read from the live rollups: the seeded call alone.
    let window = |t: i64| jiff::Timestamp::from_millisecond(t).unwrap().to_string();
    let body = json!({"from": window(hour), "to": window(hour + 3_600_000),
        "groupBy": ["endpointTag"], "filters": {"endpointTag": ["overflow.cell"]},
        "measures": ["requests"]});
    let r = api.post("/v1/query", &read, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rows"][0]["requests"], json!(1), "{}", r.body);
    server.stop();
    let store = burnrate::store::sqlite::SqliteStore::open(&db).unwrap();
    let query = serde_json::from_value::<burnrate::query::QueryRequest>(body)
        .unwrap()
        .check(hour + 7_200_000)
        .unwrap();
    use burnrate::store::EventStore;
    let answer = store.aggregate(1, query).await.unwrap();
    assert_eq!(
        (answer.rows[0].sums.requests, answer.rows[0].sums.cost.0),
        (1, seeded)
    );
    store.close().await;
}

#[test]
fn import_counts_warnings_like_ingest() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let file = dir.path().join("events.jsonl");
    let mut typo = event("w1");
    typo["tenantID"] = json!("acme");
    let bare = json!({"externalRequestId": "w2", "provider": "openai", "model": "gpt-4o-mini",
                      "endpointTag": "support.reply", "status": "success"});
    let lines = [typo.to_string(), bare.to_string(), event("w3").to_string()];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = cli(&db, &["import", file.to_str().unwrap()]);
    assert!(
        out.contains("3 accepted, 0 duplicates, 0 rejected, 2 warnings"),
        "{out}"
    );
}

#[tokio::test]
async fn a_dated_snapshot_no_source_lists_is_unpriced_and_prices_check_suggests_the_base() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut guessed = event("guessed");
    guessed["provider"] = json!("openai");
    guessed["model"] = json!("gpt-4o-2025-01-01");
    api.post("/v1/ingest/llm-request", &ingest, &guessed).await;
    let stored = api
        .get("/v1/events?externalRequestId=guessed", &read)
        .await
        .body;
    assert_eq!(
        stored["events"][0]["costUsd"],
        Value::Null,
        "not priced as gpt-4o"
    );
    let check = cli(&db, &["prices", "check"]);
    assert!(
        check.contains("openai/gpt-4o-2025-01-01: no price source lists this snapshot; openai/gpt-4o is priced"),
        "{check}"
    );
}

#[tokio::test]
async fn a_backfilled_o3_call_is_billed_at_the_price_in_force_on_its_day() {
    let dir = tmp();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    for (id, day) in [("before-cut", "2025-06-09"), ("after-cut", "2025-06-11")] {
        let mut call = event(id);
        call["model"] = json!("o3");
        call["timestamp"] = json!(format!("{day}T12:00:00Z"));
        call["inputTokens"] = json!(10_000);
        call["cachedTokens"] = json!(2_000);
        call["outputTokens"] = json!(1_000);
        api.post("/v1/ingest/llm-request", &ingest, &call).await;
    }
    let cost = |body: &Value| body["events"][0]["costUsd"].as_f64();
    // 8,000 x $10/M + 2,000 x $2.50/M + 1,000 x $40/M before the 2025-06-10 cut;
    // 8,000 x $2/M + 2,000 x $0.50/M + 1,000 x $8/M after it.
    let before = api
        .get("/v1/events?externalRequestId=before-cut", &read)
        .await
        .body;
    let after = api
        .get("/v1/events?externalRequestId=after-cut", &read)
        .await
        .body;
    assert_eq!((cost(&before), cost(&after)), (Some(0.125), Some(0.025)));
    let show = cli(&db, &["prices", "show", "o3", "--provider", "openai"]);
    assert!(
        show.contains("until 2025-06-10T00:00:00Z: input 10 / cached 2.5 / output 40"),
        "{show}"
    );
    assert!(
        show.contains("from 2025-06-10T00:00:00Z: input 2 / cached 0.5 / output 8"),
        "{show}"
    );
}

/// The embedded store dedupes with the writer's in-memory call index, not a UNIQUE index
/// in the file. Calls stored by another process (a CLI import while the server runs) and
/// calls in a file of the old schema (which had the UNIQUE index) still count once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_stored_by_another_process_or_under_the_old_schema_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calls.db");
    let ingest = key(&db, "default", "ingest");
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let first = api
        .post("/v1/ingest/llm-request", &ingest, &event("served-1"))
        .await;
    assert_eq!(first.body["accepted"], 1);
    // Another process writes the same file: one call the server has, one it has not.
    let file = dir.path().join("calls.ndjson");
    let lines = [
        event("served-1").to_string(),
        event("imported-1").to_string(),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    cli(&db, &["import", file.to_str().unwrap()]);
    for id in ["served-1", "imported-1"] {
        let again = api
            .post("/v1/ingest/llm-request", &ingest, &event(id))
            .await;
        assert_eq!(again.status, 202, "{}", again.body);
        assert_eq!(again.body["duplicates"], 1, "{id}: {}", again.body);
        let found = api
            .get(&format!("/v1/events?externalRequestId={id}"), &read)
            .await;
        assert_eq!(found.body["events"].as_array().unwrap().len(), 1, "{id}");
    }
    server.stop();
    // Schema 2 kept a UNIQUE (workspace_id, external_request_id) index on events.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE UNIQUE INDEX old_call_index ON events (workspace_id, external_request_id);
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut retry = event("served-1");
    retry["attempt"] = json!(2);
    let merged = api.post("/v1/ingest/llm-request", &ingest, &retry).await;
    assert_eq!(merged.body["accepted"], 1, "{}", merged.body);
    let resent = api
        .post("/v1/ingest/llm-request", &ingest, &event("imported-1"))
        .await;
    assert_eq!(resent.body["duplicates"], 1, "{}", resent.body);
    let found = api
        .get("/v1/events?externalRequestId=served-1", &read)
        .await;
    assert_eq!(found.body["events"][0]["attempts"], 2, "{}", found.body);
    server.stop();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (rows, unique): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM events),
                    (SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'events'
                        AND (sql LIKE '%UNIQUE%' OR name LIKE 'sqlite_autoindex%'))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, unique), (2, 0), "two calls, no unique index left");
}
