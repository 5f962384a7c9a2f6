//! Scheduled digests against an in-process server whose clock the test sets: a daily
//! digest arrives at a local webhook receiver at its local time (Europe/Berlin), with
//! the period's spend against the period before, and only once, even after a restart;
//! a bad schedule is a 400 naming the field.

mod common;

use burnrate::server::{start_with_clock, Config, Running};
use common::key;
use common::webhook::receiver;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn config(db: &Path) -> Config {
    // The minute loop stays off (`embedded`): the test evaluates at the times it chooses.
    Config::embedded(format!("sqlite://{}", db.display()))
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(running: &Running, key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: format!("http://{}", running.addr),
            key: key.to_string(),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// `n` calls at `at`, each reporting its cost ($0.50), so spend is exact by hand.
fn calls(tag: &str, n: usize, at: &str) -> Value {
    json!((0..n)
        .map(|i| json!({
            "externalRequestId": format!("{tag}-{i}"), "provider": "openai", "model": "gpt-4.1",
            "endpointTag": "chat.assist", "inputTokens": 1000, "outputTokens": 100,
            "costUsd": 0.5, "status": "success", "timestamp": at,
        }))
        .collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_digest_arrives_at_its_local_time_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("digest.db");
    let admin = key(&db, "default", "admin");
    // 07:00 UTC on Wednesday 25 Feb 2026 is 08:00 in Berlin.
    let now = Arc::new(AtomicI64::new(ms("2026-02-25T07:00:00Z")));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let running = start_with_clock(config(&db), clock.clone()).await.unwrap();
    let api = Client::new(&running, &admin);
    let (inbox, url) = receiver("/hooks/digest").await;

    let digest = json!({"cadence": "daily", "time": "09:00", "timeZone": "Europe/Berlin"});
    for (bad, field) in [
        (
            json!({"cadence": "daily", "time": "09:00", "timeZone": "Mars/Olympus"}),
            "digest.timeZone",
        ),
        (
            json!({"cadence": "daily", "time": "9am", "timeZone": "UTC"}),
            "digest.time",
        ),
        (
            json!({"cadence": "hourly", "time": "09:00", "timeZone": "UTC"}),
            "digest.cadence",
        ),
    ] {
        let (status, body) = api
            .post(
                "/v1/channels",
                &json!({"name": "x", "type": "webhook", "url": url, "digest": bad}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], field, "{body}");
    }
    let (status, body) = api
        .post(
            "/v1/channels",
            &json!({"name": "daily", "type": "webhook", "url": url, "digest": digest}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();

    // Four calls in the digest's day (09:00 Berlin on the 24th to 09:00 on the 25th),
    // two in the day before it.
    for (tag, n, at) in [
        ("day", 4, "2026-02-24T12:00:00Z"),
        ("before", 2, "2026-02-23T12:00:00Z"),
    ] {
        let (status, body) = api.post("/v1/ingest/batch", &calls(tag, n, at)).await;
        assert_eq!(status, 202, "{body}");
    }
    // And an endpoint that spent $0.50 the day before and nothing in the digest's day.
    let mut gone = calls("gone", 1, "2026-02-23T13:00:00Z");
    gone[0]["endpointTag"] = json!("report.weekly");
    let (status, body) = api.post("/v1/ingest/batch", &gone).await;
    assert_eq!(status, 202, "{body}");
    // Tenants: globex pays $1 (a one-off at 00:00 UTC on the 25th, inside the digest's
    // day) for a $0.50 call, profitable; acme pays $0.25 for $1.00
    // of calls; the tenantless calls ($1.00, tenant unknown) bring no revenue.
    let mut tenants = calls("tenants", 3, "2026-02-24T14:00:00Z");
    for (i, tenant) in ["globex", "acme", "acme"].iter().enumerate() {
        tenants[i]["tenantId"] = json!(tenant);
        tenants[i]["endpointTag"] = json!("support.reply");
    }
    let (status, body) = api.post("/v1/ingest/batch", &tenants).await;
    assert_eq!(status, 202, "{body}");
    let revenue = json!({"entries": [
        {"tenantId": "globex", "type": "oneOff", "date": "2026-02-25", "amountUsd": 1},
        {"tenantId": "acme", "type": "oneOff", "date": "2026-02-25", "amountUsd": 0.25}]});
    let (status, body) = api.post("/v1/revenue", &revenue).await;
    assert!(status < 300, "{status} {body}");

    let evaluate = |at: &'static str| {
        let api = &api;
        let now = now.clone();
        async move {
            now.store(ms(at), Ordering::SeqCst);
            let (status, body) = api.post("/v1/alerts/evaluate", &json!({})).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    evaluate("2026-02-25T07:59:00Z").await;
    assert_eq!(inbox.len(), 0, "nothing before 09:00 Berlin");
    evaluate("2026-02-25T08:00:30Z").await;
    let received = inbox.messages();
    assert_eq!(received.len(), 1, "the digest at 09:00 Berlin");
    let (headers, body) = &received[0];
    burnrate::notify::verify(
        &secret,
        headers,
        body,
        ms("2026-02-25T08:00:30Z") / 1000,
        300,
    )
    .expect("signed like every webhook");
    let message: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(message["type"], "alert.digest");
    let data = &message["data"];
    assert_eq!(data["period"]["start"], "2026-02-24T08:00:00Z");
    assert_eq!(data["period"]["end"], "2026-02-25T08:00:00Z");
    assert_eq!(data["spend"]["nowUsd"], json!(3.5));
    assert_eq!(data["spend"]["beforeUsd"], json!(1.5));
    let movers: Vec<(&str, f64)> = data["movers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["endpointTag"].as_str().unwrap(),
                m["changeUsd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        movers,
        [
            ("support.reply", 1.5),
            ("chat.assist", 1.0),
            ("report.weekly", -0.5)
        ]
    );
    assert_eq!(data["unprofitable"]["count"], json!(2), "{}", data["text"]);
    let text = data["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Spend $3.50 vs $1.50 the period before (+$2.00).\nTop movers:\n\
             - support.reply: $0.00 -> $1.50 (+$1.50)\n\
             - chat.assist: $1.00 -> $2.00 (+$1.00)\n\
             - report.weekly: $0.50 -> $0.00 (-$0.50)\n\
             Budgets at risk: none\nUnprofitable tenants:\n\
             - unknown: margin -$2.00 ($0.00 revenue, $2.00 AI cost)\n\
             - acme: margin -$0.75 ($0.25 revenue, $1.00 AI cost)\n\
             Firing now: none"
        ),
        "{text}"
    );

    // Later in the same period: nothing more; nor after a restart.
    evaluate("2026-02-25T09:30:00Z").await;
    assert_eq!(inbox.len(), 1, "once per period");
    running.stop().await.unwrap();
    let running = start_with_clock(config(&db), clock.clone()).await.unwrap();
    let api = Client::new(&running, &admin);
    now.store(ms("2026-02-25T10:00:00Z"), Ordering::SeqCst);
    let (status, _) = api.post("/v1/alerts/evaluate", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(inbox.len(), 1, "a restart does not send it again");
    // The next day's digest comes at the next 09:00 Berlin.
    now.store(ms("2026-02-26T08:01:00Z"), Ordering::SeqCst);
    api.post("/v1/alerts/evaluate", &json!({})).await;
    assert_eq!(inbox.len(), 2);
    running.stop().await.unwrap();
}
