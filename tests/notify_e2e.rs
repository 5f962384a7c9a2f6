//! Notifications end to end: a real HTTP receiver on 127.0.0.1 gets what `deliver`
//! sends; it checks webhook signatures, answers from a script (500, 429, 400 ...) and
//! records every request.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use burnrate::notify::{
    deliver, http_client, new_webhook_secret, verify, Channel, ChannelKind, DeliveryReport, Driver,
    Notification, NotificationState, RetryPolicy, Severity,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUTING_KEY: &str = "R0123456789abcdef0123456789abcde";
const SLACK_PATH: &str = "/services/T00000000/B00000000/XXXXsecretXXXX";

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
    body: String,
    delay_ms: u64,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        retry_after: None,
        body: String::new(),
        delay_ms: 0,
    }
}

/// What the receiver got.
#[derive(Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

#[derive(Clone)]
struct Receiver {
    script: Arc<Vec<Reply>>,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Serves on 127.0.0.1:0; request i gets script[i], later ones the last reply.
    async fn start(script: Vec<Reply>) -> (Receiver, String) {
        let receiver = Receiver {
            script: Arc::new(script),
            log: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, base)
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

async fn answer(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let n = {
        let mut log = r.log.lock().unwrap();
        log.push(Received {
            path: uri.path().to_string(),
            headers,
            body: body.to_vec(),
        });
        log.len()
    };
    let reply = r.script[(n - 1).min(r.script.len() - 1)].clone();
    tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(after) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Tiny delays so retries take milliseconds.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_ms: 1,
        max_ms: 50,
        timeout_ms: 2_000,
    }
}

fn alert(state: NotificationState) -> Notification {
    Notification {
        id: "msg_e2e_0001".into(),
        dedup_key: "hourly_spend:endpoint=support.reply".into(),
        state,
        severity: Severity::Critical,
        title: "Hourly spend 4.2x its baseline on support.reply".into(),
        text: "support.reply spent $84.10 in the hour to 14:00 UTC, 4.2x its 7-day hourly \
               average of $20.02."
            .into(),
        drivers: vec![Driver {
            dimension: "tenantId".into(),
            value: "acme".into(),
            share_pct: 62.0,
            detail: "$52.14 from 740 requests".into(),
        }],
        link: Some("https://burnrate.example.com/endpoints/support.reply".into()),
        payload: json!({"rule": "hourly_spend", "current": 84.10, "baseline": 20.02}),
        at_ms: 1_700_000_000_000,
    }
}

fn channel(kind: ChannelKind) -> Channel {
    Channel {
        id: 1,
        name: "test".into(),
        kind,
        digest: None,
    }
}

/// Delivers with the real clock and sleep; returns the report and the waits asked for.
async fn send(
    channel: &Channel,
    n: &Notification,
    policy: &RetryPolicy,
) -> (DeliveryReport, Vec<Duration>) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let sleep = |d: Duration| {
        waits.lock().unwrap().push(d);
        tokio::time::sleep(d)
    };
    let report = deliver(&http_client(), channel, n, policy, &now_ms, sleep).await;
    let waits = waits.lock().unwrap().clone();
    (report, waits)
}

fn statuses(report: &DeliveryReport) -> Vec<Option<u16>> {
    report.attempts.iter().map(|a| a.status).collect()
}

#[tokio::test]
async fn signed_webhook_reaches_the_receiver_and_the_signature_verifies() {
    let (receiver, base) = Receiver::start(vec![reply(204)]).await;
    let secret = new_webhook_secret();
    let hook = channel(ChannelKind::Webhook {
        url: format!("{base}/hooks/burnrate"),
        secret: secret.clone(),
    });
    let (report, waits) = send(&hook, &alert(NotificationState::Firing), &policy()).await;
    assert!(report.delivered);
    assert_eq!(statuses(&report), [Some(204)]);
    assert_eq!(report.attempts[0].error, None);
    assert!(waits.is_empty());

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/hooks/burnrate");
    let now_s = now_ms() / 1000;
    assert_eq!(
        verify(&secret, &got[0].headers, &got[0].body, now_s, 300),
        Ok(())
    );
    let body = got[0].json();
    assert_eq!(body["type"], "alert.firing");
    assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(body["data"]["baseline"], 20.02);
}

#[tokio::test]
async fn two_500s_then_200_is_three_attempts_with_one_id_each_signed_afresh() {
    let (receiver, base) = Receiver::start(vec![reply(500), reply(500), reply(200)]).await;
    let secret = new_webhook_secret();
    let hook = channel(ChannelKind::Webhook {
        url: format!("{base}/in"),
        secret: secret.clone(),
    });
    let (report, waits) = send(&hook, &alert(NotificationState::Firing), &policy()).await;
    assert!(report.delivered);
    assert_eq!(statuses(&report), [Some(500), Some(500), Some(200)]);
    assert_eq!(report.attempts[0].error.as_deref(), Some("http 500"));
    // Backoff 1 ms then 2 ms, each with equal jitter: [0.5, 1) and [1, 2) -> whole ms.
    assert_eq!(waits.len(), 2);
    assert!(waits[0] <= Duration::from_millis(1) && waits[1] <= Duration::from_millis(2));

    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let now_s = now_ms() / 1000;
    for request in &got {
        let id = &request
            .headers
            .iter()
            .find(|(k, _)| k == "webhook-id")
            .unwrap()
            .1;
        assert_eq!(id, "msg_e2e_0001");
        assert_eq!(
            verify(&secret, &request.headers, &request.body, now_s, 300),
            Ok(())
        );
    }
}

#[tokio::test]
async fn a_400_is_not_retried_and_its_reason_is_recorded() {
    let mut bad = reply(400);
    bad.body = "invalid_payload".into();
    let (receiver, base) = Receiver::start(vec![bad, reply(200)]).await;
    let slack = channel(ChannelKind::Slack {
        url: format!("{base}{SLACK_PATH}"),
    });
    let (report, waits) = send(&slack, &alert(NotificationState::Firing), &policy()).await;
    assert!(!report.delivered);
    assert_eq!(statuses(&report), [Some(400)]);
    assert_eq!(
        report.attempts[0].error.as_deref(),
        Some("http 400: invalid_payload")
    );
    assert!(waits.is_empty());
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_up_to_the_cap() {
    let mut slow_down = reply(429);
    slow_down.retry_after = Some("3600");
    let (_receiver, base) = Receiver::start(vec![slow_down, reply(202)]).await;
    let pd = channel(ChannelKind::PagerDuty {
        routing_key: ROUTING_KEY.into(),
        url: format!("{base}/v2/enqueue"),
    });
    let (report, waits) = send(&pd, &alert(NotificationState::Firing), &policy()).await;
    assert!(report.delivered);
    assert_eq!(statuses(&report), [Some(429), Some(202)]);
    // An hour asked, the policy's 50 ms cap waited.
    assert_eq!(waits, [Duration::from_millis(50)]);
}

#[tokio::test]
async fn attempts_stop_at_the_policy_limit() {
    let (receiver, base) = Receiver::start(vec![reply(503)]).await;
    let slack = channel(ChannelKind::Slack {
        url: format!("{base}{SLACK_PATH}"),
    });
    let policy = RetryPolicy {
        max_attempts: 3,
        ..policy()
    };
    let (report, waits) = send(&slack, &alert(NotificationState::Firing), &policy).await;
    assert!(!report.delivered);
    assert_eq!(statuses(&report), [Some(503); 3]);
    assert_eq!(waits.len(), 2);
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn network_errors_are_retried_and_recorded_without_the_secret_url() {
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let slack = channel(ChannelKind::Slack {
        url: format!("http://{addr}{SLACK_PATH}"),
    });
    let policy = RetryPolicy {
        max_attempts: 2,
        ..policy()
    };
    let (report, waits) = send(&slack, &alert(NotificationState::Firing), &policy).await;
    assert!(!report.delivered);
    assert_eq!(statuses(&report), [None, None]);
    assert_eq!(waits.len(), 1);
    for attempt in &report.attempts {
        let error = attempt.error.as_deref().unwrap();
        assert!(error.contains("error sending request"), "{error}");
        assert!(
            !error.contains("XXXXsecretXXXX") && !error.contains("/services/"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let mut slow = reply(200);
    slow.delay_ms = 1_000;
    let (_receiver, base) = Receiver::start(vec![slow]).await;
    let slack = channel(ChannelKind::Slack {
        url: format!("{base}{SLACK_PATH}"),
    });
    let policy = RetryPolicy {
        max_attempts: 1,
        timeout_ms: 100,
        ..policy()
    };
    let (report, _) = send(&slack, &alert(NotificationState::Firing), &policy).await;
    assert!(!report.delivered);
    assert_eq!(report.attempts[0].status, None);
    assert_eq!(
        report.attempts[0].error.as_deref(),
        Some("timed out after 100 ms")
    );
    assert!(report.attempts[0].duration_ms >= 100);
}

#[tokio::test]
async fn an_error_body_echoing_the_routing_key_is_scrubbed() {
    let mut bad = reply(400);
    bad.body =
        format!(r#"{{"status":"invalid event","message":"unknown routing_key {ROUTING_KEY}"}}"#);
    let (_receiver, base) = Receiver::start(vec![bad]).await;
    let pd = channel(ChannelKind::PagerDuty {
        routing_key: ROUTING_KEY.into(),
        url: format!("{base}/v2/enqueue"),
    });
    let (report, _) = send(&pd, &alert(NotificationState::Firing), &policy()).await;
    let error = report.attempts[0].error.as_deref().unwrap();
    assert_eq!(
        error,
        r#"http 400: {"status":"invalid event","message":"unknown routing_key [redacted]"}"#
    );
    let stored = serde_json::to_string(&report).unwrap();
    assert!(!stored.contains(ROUTING_KEY));
    assert!(stored.contains(r#""durationMs""#) && stored.contains(r#""atMs""#));
}

#[tokio::test]
async fn slack_message_posted_to_the_receiver_has_the_documented_shape() {
    let (receiver, base) = Receiver::start(vec![reply(200)]).await;
    let slack = channel(ChannelKind::Slack {
        url: format!("{base}{SLACK_PATH}"),
    });
    for state in [NotificationState::Firing, NotificationState::Resolved] {
        let (report, _) = send(&slack, &alert(state), &policy()).await;
        assert!(report.delivered);
    }
    let got = receiver.received();
    assert_eq!(got[0].path, SLACK_PATH);
    let content_type = &got[0]
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .unwrap()
        .1;
    assert_eq!(content_type, "application/json");
    let firing = got[0].json();
    assert!(firing["text"]
        .as_str()
        .unwrap()
        .starts_with("Firing (critical): "));
    let blocks = firing["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["header", "section", "section", "section"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[2]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("*tenantId* `acme`: 62.0%"));
    assert_eq!(
        blocks[3]["text"]["text"],
        "<https://burnrate.example.com/endpoints/support.reply|Open the view in burnrate>"
    );
    let resolved = got[1].json();
    assert_eq!(
        resolved["blocks"][0]["text"]["text"],
        "Resolved: Hourly spend 4.2x its baseline on support.reply"
    );
}

#[tokio::test]
async fn pagerduty_trigger_and_resolve_posted_to_the_receiver_have_the_documented_shape() {
    let mut accepted = reply(202);
    accepted.body = r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#.into();
    let (receiver, base) = Receiver::start(vec![accepted]).await;
    let pd = channel(ChannelKind::PagerDuty {
        routing_key: ROUTING_KEY.into(),
        url: format!("{base}/v2/enqueue"),
    });
    for state in [NotificationState::Firing, NotificationState::Resolved] {
        let (report, _) = send(&pd, &alert(state), &policy()).await;
        assert!(report.delivered);
        assert_eq!(statuses(&report), [Some(202)]);
    }
    let got = receiver.received();
    assert_eq!(got[0].path, "/v2/enqueue");
    let trigger = got[0].json();
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "hourly_spend:endpoint=support.reply");
    let payload = &trigger["payload"];
    assert!(payload["summary"].as_str().unwrap().chars().count() <= 1024);
    assert_eq!(payload["source"], "burnrate");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        payload["custom_details"]["drivers"][0]["dimension"],
        "tenantId"
    );
    assert_eq!(payload["custom_details"]["evidence"]["current"], 84.10);
    assert_eq!(
        trigger["links"],
        json!([{"href": "https://burnrate.example.com/endpoints/support.reply",
                "text": "Open the view in burnrate"}])
    );
    assert_eq!(
        got[1].json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve",
               "dedup_key": "hourly_spend:endpoint=support.reply"})
    );
}

#[tokio::test]
async fn the_test_message_reaches_a_webhook() {
    let (receiver, base) = Receiver::start(vec![reply(200)]).await;
    let secret = new_webhook_secret();
    let hook = channel(ChannelKind::Webhook {
        url: format!("{base}/in"),
        secret: secret.clone(),
    });
    let n = Notification::test("ops-webhook", None, now_ms());
    let (report, _) = send(&hook, &n, &policy()).await;
    assert!(report.delivered);
    let got = receiver.received();
    assert_eq!(
        verify(&secret, &got[0].headers, &got[0].body, now_ms() / 1000, 300),
        Ok(())
    );
    assert_eq!(got[0].json()["type"], "test");
    assert_eq!(got[0].json()["data"]["channel"], "ops-webhook");
}

/// The server delivers from spawned tasks, so the future must be Send.
#[test]
fn deliver_can_be_spawned() {
    fn assert_send<T: Send>(_: T) {}
    let client = http_client();
    let slack = channel(ChannelKind::Slack {
        url: "http://127.0.0.1:9/".into(),
    });
    let n = alert(NotificationState::Firing);
    let policy = policy();
    assert_send(deliver(
        &client,
        &slack,
        &n,
        &policy,
        &now_ms,
        tokio::time::sleep,
    ));
}
