//! Alert rules against the real binary: quiet on 30 days of clean demo traffic, each
//! built-in rule firing on an injected incident, and a signed webhook received for a
//! firing and a resolved alert.

mod common;

use common::webhook::receiver;
use common::{cli, key, Api, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const END: &str = "2026-03-01T00:00:00Z";

fn end_ms() -> i64 {
    END.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn at(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// 30 days of clean demo traffic ending at END, generated once per test run.
fn clean_template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let db = dir.join("clean.db");
        cli(
            &db,
            &[
                "demo", "--clean", "--events", "40000", "--days", "30", "--seed", "5", "--end", END,
            ],
        );
        db
    })
}

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    admin: String,
    api: Api,
}

/// A copy of the clean data set behind a server whose rules watch demo traffic.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    std::fs::copy(clean_template(), &db).unwrap();
    let admin = key(&db, "default", "admin");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let r = api
        .put_json("/v1/alert-rules", &admin, &json!({"dataMode": "demo"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    Setup {
        _dir: dir,
        server,
        admin,
        api,
    }
}

impl Setup {
    async fn ingest(&self, events: Vec<Value>) {
        for chunk in events.chunks(1000) {
            let r = self
                .api
                .post("/v1/ingest/batch", &self.admin, &json!(chunk))
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
            assert_eq!(r.body["rejected"], json!([]), "{}", r.body);
        }
    }

    async fn findings(&self, when: &str) -> Vec<Value> {
        let r = self
            .api
            .get(&format!("/v1/alerts/findings?at={when}"), &self.admin)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["findings"].as_array().unwrap().clone()
    }
}

fn keys(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect()
}

/// `n` demo calls spread over the `minutes` before END.
fn calls(n: usize, minutes: i64, tag: &str, make: impl Fn(usize) -> Value) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut e = json!({
                "externalRequestId": format!("{tag}-{i}"), "provider": "openai",
                "model": "gpt-4.1", "endpointTag": "chat.assist", "promptVersion": "assist_v3",
                "tenantId": "globex", "inputTokens": 2400, "outputTokens": 420,
                "status": "success", "dataMode": "demo", "environment": "prod",
                "timestamp": at(end_ms() - 1 - (i as i64 * minutes * 60_000) / n as i64),
            });
            let extra = make(i);
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            e
        })
        .collect()
}

#[tokio::test]
async fn quiet_on_thirty_days_of_clean_demo_traffic() {
    let s = setup().await;
    let mut evaluated = 0;
    // Every 7 hours from day 8 (a full 7-day baseline) to the end: 3 weeks of minutes.
    let mut t = end_ms() - 22 * 86_400_000;
    while t <= end_ms() {
        let found = s.findings(&at(t)).await;
        assert!(
            found.is_empty(),
            "false alert at {}: {:#}",
            at(t),
            json!(found)
        );
        evaluated += 1;
        t += 7 * 3_600_000;
    }
    assert!(evaluated >= 70);
    drop(s.server);
}

#[tokio::test]
async fn each_rule_fires_on_its_incident() {
    type Incident = (&'static str, Vec<Value>, &'static str);
    let incidents: Vec<Incident> = vec![
        (
            "runaway endpoint",
            calls(400, 50, "runaway", |_| json!({})),
            "hourly_spend_spike:chat.assist",
        ),
        (
            "prompt regression",
            calls(
                80,
                600,
                "regress",
                |_| json!({"promptVersion": "assist_v4", "inputTokens": 7200, "outputTokens": 1200}),
            ),
            "cost_per_request_drift:chat.assist:assist_v4",
        ),
        (
            "retry storm",
            calls(
                150,
                50,
                "storm",
                |_| json!({"endpointTag": "support.reply", "model": "gpt-4o-mini", "attempt": 2}),
            )
            .into_iter()
            .flat_map(|ok| {
                let mut failed = ok.clone();
                failed["attempt"] = json!(1);
                failed["status"] = json!("rate_limited");
                failed["usageMissing"] = json!(true);
                for f in ["inputTokens", "outputTokens"] {
                    failed.as_object_mut().unwrap().remove(f);
                }
                [failed, ok]
            })
            .collect(),
            "retry_storm:support.reply",
        ),
        (
            "tenant burst",
            calls(300, 1200, "burst", |_| {
                json!({"tenantId": "tenant-039", "endpointTag": "summarize.doc", "provider": "anthropic",
                       "model": "claude-sonnet-4-5-20250929", "promptVersion": "summarize_v4",
                       "inputTokens": 5200, "outputTokens": 520})
            }),
            "tenant_concentration:tenant-039",
        ),
        (
            "new endpoint takes the spend",
            calls(300, 1200, "report", |_| {
                json!({"endpointTag": "report.weekly", "provider": "anthropic", "promptVersion": "report_v1",
                       "model": "claude-sonnet-4-5-20250929", "inputTokens": 9000, "outputTokens": 900})
            }),
            "endpoint_concentration:report.weekly",
        ),
        (
            "unknown model",
            calls(
                120,
                1200,
                "mystery",
                |_| json!({"provider": "selfhosted", "model": "mystery-13b"}),
            ),
            "unpriced_ratio",
        ),
        (
            "longer answers",
            calls(150, 1200, "verbose", |_| {
                json!({"endpointTag": "extract.invoice", "provider": "google", "model": "gemini-2.5-flash",
                       "promptVersion": "extract_v2", "inputTokens": 4200, "outputTokens": 1600})
            }),
            "tokens_per_request_rise:extract.invoice:output",
        ),
        (
            "prompts at the long-context tier",
            calls(30, 1200, "rag", |_| {
                json!({"endpointTag": "rag.answer", "provider": "anthropic", "model": "claude-sonnet-4-5-20250929",
                       "promptVersion": "rag_v1", "inputTokens": 190000, "outputTokens": 800})
            }),
            "long_context_cliff:rag.answer:claude-sonnet-4-5-20250929",
        ),
        (
            "cache broken by a deploy",
            calls(80, 600, "nocache", |_| {
                json!({"endpointTag": "support.reply", "model": "gpt-4o-mini-2024-07-18",
                       "promptVersion": "support_v10", "inputTokens": 1980, "cachedTokens": 0, "outputTokens": 286})
            }),
            "cache_hit_drop:support.reply:support_v10",
        ),
        (
            "leaked key: a burst of new users",
            calls(400, 50, "bot", |i| json!({"userId": format!("bot-{i}")})),
            "new_user_burst",
        ),
        (
            "one tenant's hour jumps",
            calls(
                400,
                50,
                "jump",
                |i| json!({"tenantId": "initech", "userId": format!("user-{:04}", i % 600)}),
            ),
            "spend_jump:tenantId:initech",
        ),
        (
            "one user's hour jumps",
            calls(400, 50, "user", |_| json!({"userId": "user-0042"})),
            "spend_jump:userId:user-0042",
        ),
    ];
    for (name, events, expected) in incidents {
        let s = setup().await;
        assert!(s.findings(END).await.is_empty(), "{name}: quiet before");
        s.ingest(events).await;
        let found = keys(&s.findings(END).await);
        assert!(
            found.contains(&expected.to_string()),
            "{name}: expected {expected} in {found:?}"
        );
    }
}

#[tokio::test]
async fn budget_thresholds_and_exceeded_become_findings() {
    let s = setup().await;
    let r = s
        .api
        .post(
            "/v1/budgets",
            &s.admin,
            &json!({"name": "demo day", "period": "day", "limitUsd": 0.05, "thresholds": [50],
                    "scope": {"dataMode": "demo", "endpointTag": "chat.assist"}}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let events: Vec<Value> = calls(10, 1, "now", |_| json!({}))
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e["timestamp"] = json!(at(now - 1000 * i as i64));
            e
        })
        .collect();
    s.ingest(events).await;
    let found = keys(&s.findings(&at(now)).await);
    let period = at(jiff::Timestamp::now().as_millisecond() / 86_400_000 * 86_400_000);
    let period = period.replace(".000", "");
    assert!(
        found.contains(&format!("budget:{id}:{period}:50")),
        "{found:?}"
    );
    assert!(
        found.contains(&format!("budget:{id}:{period}:exceeded")),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_firing_and_a_resolved_alert_arrive_signed_at_a_webhook() {
    let s = setup().await;
    let (inbox, url) = receiver("/hooks/burnrate").await;
    let r = s
        .api
        .post(
            "/v1/channels",
            &s.admin,
            &json!({"name": "ops", "type": "webhook", "url": url}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let listed = s.api.get("/v1/channels", &s.admin).await;
    assert!(
        !listed.body.to_string().contains(&secret),
        "listings redact the secret"
    );
    let bad = s
        .api
        .post(
            "/v1/channels",
            &s.admin,
            &json!({"name": "x", "type": "webhook", "url": "ftp://example.com"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["fields"][0]["field"], "url");

    // An unknown model in traffic stamped now: the unpriced rule fires at once.
    let now = jiff::Timestamp::now().as_millisecond();
    let events: Vec<Value> = calls(
        40,
        1,
        "live",
        |_| json!({"provider": "selfhosted", "model": "mystery-13b"}),
    )
    .into_iter()
    .enumerate()
    .map(|(i, mut e)| {
        e["timestamp"] = json!(at(now - 1000 * i as i64));
        e
    })
    .collect();
    s.ingest(events).await;
    let r = s
        .api
        .post("/v1/alerts/evaluate", &s.admin, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let received = inbox.messages();
    assert_eq!(received.len(), 1, "one alert, one message");
    let (headers, body) = &received[0];
    let now_s = jiff::Timestamp::now().as_second();
    burnrate::notify::verify(&secret, headers, body, now_s, 300).expect("signature verifies");
    let message: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(message["type"], "alert.firing");
    assert_eq!(message["data"]["alert"]["key"], "unpriced_ratio");
    assert_eq!(
        message["data"]["alert"]["drivers"][0]["value"],
        "mystery-13b"
    );

    // Evaluating again changes nothing: still firing, nobody re-notified.
    s.api
        .post("/v1/alerts/evaluate", &s.admin, &json!({}))
        .await;
    assert_eq!(inbox.len(), 1);
    // Muting the rule makes the finding go away: the alert resolves and says so.
    let r = s
        .api
        .put_json(
            "/v1/alert-rules",
            &s.admin,
            &json!({"rules": {"unpriced_ratio": {"mutedUntil": "2099-01-01T00:00:00Z"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.api
        .post("/v1/alerts/evaluate", &s.admin, &json!({}))
        .await;
    let received = inbox.messages();
    assert_eq!(received.len(), 2);
    let resolved: Value = serde_json::from_slice(&received[1].1).unwrap();
    assert_eq!(resolved["type"], "alert.resolved");
    let alerts = s.api.get("/v1/alerts", &s.admin).await;
    let alert = &alerts.body["alerts"][0];
    assert_eq!(alert["state"], "resolved");
    assert_eq!(alert["deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(alert["deliveries"][0]["delivered"], json!(true));
    let bad = s
        .api
        .put_json(
            "/v1/alert-rules",
            &s.admin,
            &json!({"rules": {"retry_storm": {"threshold": -1}}}),
        )
        .await;
    assert_eq!(
        bad.body["error"]["fields"][0]["field"],
        "rules.retry_storm.threshold"
    );
}
