//! Unit tests: signing against fixed vectors, payload shapes against the documented
//! fields, channel checks, redaction, backoff, digest.

use super::deliver::{backoff_ms, retry_after_ms};
use super::*;
use serde_json::{json, Value};

/// 32 bytes 0x00..0x1f, base64: a fixed key for the vectors below.
const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const ROUTING_KEY: &str = "R0123456789abcdef0123456789abcde";
const SLACK_URL: &str = "https://hooks.slack.com/services/T00000000/B00000000/XXXXsecretXXXX";

fn alert(state: NotificationState) -> Notification {
    Notification {
        id: "msg_burnrate_0001".into(),
        dedup_key: "hourly_spend:endpoint=support.reply".into(),
        state,
        severity: Severity::Critical,
        title: "Hourly spend 4.2x its baseline on support.reply".into(),
        text: "support.reply spent $84.10 in the hour to 14:00 UTC, 4.2x its 7-day hourly \
               average of $20.02 (1,204 requests)."
            .into(),
        drivers: vec![
            Driver {
                dimension: "tenantId".into(),
                value: "acme".into(),
                share_pct: 62.0,
                detail: "$52.14 from 740 requests".into(),
            },
            Driver {
                dimension: "promptVersion".into(),
                value: "v7".into(),
                share_pct: 31.5,
                detail: "cost/request $0.071 vs $0.034 on v6".into(),
            },
        ],
        link: Some("https://burnrate.example.com/endpoints/support.reply?window=24h".into()),
        payload: json!({"rule": "hourly_spend"}),
        at_ms: 1_700_000_000_000,
    }
}

fn body_json(req: &PreparedRequest) -> Value {
    serde_json::from_slice(&req.body).expect("body is JSON")
}

fn header<'a>(req: &'a PreparedRequest, name: &str) -> &'a str {
    &req.headers.iter().find(|(k, _)| k == name).unwrap().1
}

// --- signing ---------------------------------------------------------------------

#[test]
fn sign_matches_the_standard_webhooks_reference_vector() {
    // The vector of the Standard Webhooks reference libraries, recomputed with
    // python3: base64.b64encode(hmac.new(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    //   b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}',
    //   hashlib.sha256).digest())
    let sig = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        br#"{"test": 2432232314}"#,
    )
    .unwrap();
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

#[test]
fn webhook_request_has_standard_headers_and_a_known_signature() {
    let req = prepare(
        &ChannelKind::Webhook {
            url: "https://hooks.example.com/burnrate".into(),
            secret: SECRET.into(),
        },
        &alert(NotificationState::Firing),
        1_700_000_000_999,
    );
    let body = r#"{"data":{"rule":"hourly_spend"},"timestamp":"2023-11-14T22:13:20Z","type":"alert.firing"}"#;
    assert_eq!(std::str::from_utf8(&req.body).unwrap(), body);
    assert_eq!(header(&req, "webhook-id"), "msg_burnrate_0001");
    assert_eq!(header(&req, "webhook-timestamp"), "1700000000");
    // python3: key = bytes(range(32)); base64.b64encode(hmac.new(key,
    //   b"msg_burnrate_0001.1700000000." + body, hashlib.sha256).digest())
    assert_eq!(
        header(&req, "webhook-signature"),
        "v1,OBcHOZArqpevmPJJfft0DHlEbFFIhU0F/SAXZqfbWDA="
    );
    assert_eq!(header(&req, "content-type"), "application/json");
}

#[test]
fn webhook_event_types_follow_the_state() {
    let kind = ChannelKind::Webhook {
        url: "https://h.example.com/".into(),
        secret: SECRET.into(),
    };
    for (state, expected) in [
        (NotificationState::Firing, "alert.firing"),
        (NotificationState::Resolved, "alert.resolved"),
        (NotificationState::Test, "test"),
        (NotificationState::Digest, "alert.digest"),
    ] {
        let body = body_json(&prepare(&kind, &alert(state), 0));
        assert_eq!(body["type"], expected);
        assert_eq!(body["data"], json!({"rule": "hourly_spend"}));
    }
}

fn signed(now_s: i64) -> (Vec<(String, String)>, Vec<u8>) {
    let kind = ChannelKind::Webhook {
        url: "https://h.example.com/".into(),
        secret: SECRET.into(),
    };
    let req = prepare(&kind, &alert(NotificationState::Firing), now_s * 1000);
    (req.headers, req.body)
}

#[test]
fn verify_accepts_a_fresh_signed_request() {
    let (headers, body) = signed(1_700_000_000);
    assert_eq!(verify(SECRET, &headers, &body, 1_700_000_100, 300), Ok(()));
}

#[test]
fn verify_rejects_tampering_age_wrong_secret_and_missing_headers() {
    let (headers, body) = signed(1_700_000_000);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        verify(SECRET, &headers, &tampered, 1_700_000_000, 300),
        Err(VerifyError::NoMatch)
    );
    assert_eq!(
        verify(SECRET, &headers, &body, 1_700_000_301, 300),
        Err(VerifyError::TooOld)
    );
    let other = new_webhook_secret();
    assert_eq!(
        verify(&other, &headers, &body, 1_700_000_000, 300),
        Err(VerifyError::NoMatch)
    );
    let without_id: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k != "webhook-id")
        .cloned()
        .collect();
    assert_eq!(
        verify(SECRET, &without_id, &body, 1_700_000_000, 300),
        Err(VerifyError::MissingHeader("webhook-id"))
    );
}

#[test]
fn verify_accepts_any_matching_entry_and_any_header_case() {
    let (headers, body) = signed(1_700_000_000);
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "webhook-signature" {
                format!("v1,AAAA v1a,bm90aGluZw== {v}")
            } else {
                v
            };
            (k.to_uppercase(), v)
        })
        .collect();
    assert_eq!(verify(SECRET, &headers, &body, 1_700_000_000, 300), Ok(()));
}

// --- channels ---------------------------------------------------------------------

fn fields(kind: ChannelKind) -> Vec<String> {
    kind.check()
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn check_names_the_bad_field() {
    let webhook = |url: &str, secret: &str| ChannelKind::Webhook {
        url: url.into(),
        secret: secret.into(),
    };
    assert_eq!(fields(webhook("ftp://h.example.com/x", SECRET)), ["url"]);
    assert_eq!(fields(webhook("not a url", SECRET)), ["url"]);
    assert_eq!(fields(webhook("https://h.example.com/", "abc")), ["secret"]);
    // 8 bytes: below the 24 the spec requires.
    assert_eq!(
        fields(webhook("https://h.example.com/", "whsec_AAECAwQFBgc=")),
        ["secret"]
    );
    assert_eq!(
        fields(webhook("https://h.example.com/", "whsec_***")),
        ["secret"]
    );
    assert_eq!(
        fields(ChannelKind::Slack {
            url: "javascript:alert(1)".into()
        }),
        ["url"]
    );
    assert_eq!(
        fields(ChannelKind::PagerDuty {
            routing_key: "short".into(),
            url: "mailto:x@example.com".into()
        }),
        ["url", "routingKey"]
    );
}

#[test]
fn check_error_messages_never_quote_the_secret() {
    // base64 of "short-secret" (12 bytes, under 24), and a secret that is not base64.
    for secret in ["whsec_c2hvcnQtc2VjcmV0", "whsec_s3cr3t!value"] {
        let errors = ChannelKind::Webhook {
            url: "https://h.example.com/".into(),
            secret: secret.into(),
        }
        .check()
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "secret");
        let message = &errors[0].message;
        assert!(!message.contains(&secret[6..]), "{message}");
    }
}

#[test]
fn valid_channels_and_generated_secrets_pass() {
    let secret = new_webhook_secret();
    assert!(secret.starts_with("whsec_"));
    assert_ne!(secret, new_webhook_secret());
    let kinds = [
        ChannelKind::Webhook {
            url: "http://127.0.0.1:9000/hook".into(),
            secret,
        },
        ChannelKind::Slack {
            url: SLACK_URL.into(),
        },
        ChannelKind::PagerDuty {
            routing_key: ROUTING_KEY.into(),
            url: PAGERDUTY_EVENTS_URL.into(),
        },
    ];
    for kind in kinds {
        assert_eq!(kind.check(), Ok(()), "{kind:?}");
    }
}

#[test]
fn channel_json_is_tagged_by_type_with_camel_case_fields() {
    let channel: Channel = serde_json::from_value(json!({
        "id": 1, "name": "on-call", "type": "pagerduty", "routingKey": ROUTING_KEY,
    }))
    .unwrap();
    assert_eq!(
        channel.kind,
        ChannelKind::PagerDuty {
            routing_key: ROUTING_KEY.into(),
            url: PAGERDUTY_EVENTS_URL.into()
        }
    );
    let back = serde_json::to_value(&channel).unwrap();
    assert_eq!(
        back,
        json!({"id": 1, "name": "on-call", "type": "pagerduty",
               "routingKey": ROUTING_KEY, "url": PAGERDUTY_EVENTS_URL})
    );
    let slack: Channel =
        serde_json::from_value(json!({"name": "n", "type": "slack", "url": SLACK_URL})).unwrap();
    assert_eq!(
        slack.kind,
        ChannelKind::Slack {
            url: SLACK_URL.into()
        }
    );
    assert!(
        serde_json::from_value::<Channel>(json!({"id": "c", "name": "n", "type": "email"}))
            .is_err()
    );
}

fn channels() -> Vec<Channel> {
    let kinds = [
        ChannelKind::Webhook {
            url: "https://h.example.com/in?token=querytoken123".into(),
            secret: SECRET.into(),
        },
        ChannelKind::Slack {
            url: SLACK_URL.into(),
        },
        ChannelKind::PagerDuty {
            routing_key: ROUTING_KEY.into(),
            url: PAGERDUTY_EVENTS_URL.into(),
        },
    ];
    kinds
        .into_iter()
        .map(|kind| Channel {
            id: 1,
            name: "n".into(),
            kind,
            digest: None,
        })
        .collect()
}

const SECRET_PARTS: [&str; 4] = [
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    "XXXXsecretXXXX",
    ROUTING_KEY,
    "querytoken123",
];

#[test]
fn debug_of_a_channel_never_prints_a_secret() {
    for channel in channels() {
        let debug = format!("{channel:?} {channel:#?}");
        for secret in SECRET_PARTS {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
    let debug = format!("{:?}", channels()[1]);
    assert!(
        debug.contains("https://hooks.slack.com/[redacted]"),
        "{debug}"
    );
}

#[test]
fn redacted_channel_json_has_no_secret_but_keeps_what_tells_channels_apart() {
    for channel in channels() {
        let json = serde_json::to_string(&channel.redacted()).unwrap();
        for secret in SECRET_PARTS {
            assert!(!json.contains(secret), "{json}");
        }
    }
    let shown = channels()[2].redacted();
    assert!(
        matches!(shown.kind, ChannelKind::PagerDuty { ref routing_key, .. } if routing_key == "...bcde")
    );
    let shown = channels()[0].redacted();
    assert!(
        matches!(shown.kind, ChannelKind::Webhook { ref url, .. } if url == "https://h.example.com/in?[redacted]")
    );
}

#[test]
fn debug_of_a_prepared_request_hides_the_url_and_body() {
    let slack = ChannelKind::Slack {
        url: SLACK_URL.into(),
    };
    let pd = ChannelKind::PagerDuty {
        routing_key: ROUTING_KEY.into(),
        url: PAGERDUTY_EVENTS_URL.into(),
    };
    for kind in [slack, pd] {
        let debug = format!("{:?}", prepare(&kind, &alert(NotificationState::Firing), 0));
        for secret in SECRET_PARTS {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}

// --- Slack ------------------------------------------------------------------------

fn slack(n: &Notification) -> Value {
    body_json(&prepare(
        &ChannelKind::Slack {
            url: SLACK_URL.into(),
        },
        n,
        0,
    ))
}

/// The documented incoming-webhook shape: `text` (string) and `blocks` (at most 50),
/// header plain_text <= 150 characters, section text <= 3000.
fn assert_slack_shape(body: &Value) {
    assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()));
    let blocks = body["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for block in blocks {
        let text = &block["text"];
        let len = text["text"].as_str().unwrap().chars().count();
        match block["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(text["type"], "plain_text");
                assert!(len <= 150);
            }
            "section" => {
                assert_eq!(text["type"], "mrkdwn");
                assert!(len <= 3000);
            }
            other => panic!("unexpected block type {other}"),
        }
    }
}

#[test]
fn slack_firing_message_has_the_drivers_and_the_link() {
    let body = slack(&alert(NotificationState::Firing));
    assert_slack_shape(&body);
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(
        blocks[0]["text"]["text"],
        "Firing (critical): Hourly spend 4.2x its baseline on support.reply"
    );
    assert!(blocks[1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("4.2x its 7-day hourly average of $20.02"));
    assert_eq!(
        blocks[2]["text"]["text"],
        "*Top drivers*\n\
         • *tenantId* `acme`: 62.0% of the change. $52.14 from 740 requests\n\
         • *promptVersion* `v7`: 31.5% of the change. cost/request $0.071 vs $0.034 on v6"
    );
    assert_eq!(
        blocks[3]["text"]["text"],
        "<https://burnrate.example.com/endpoints/support.reply?window=24h|Open the view in burnrate>"
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("Firing (critical): Hourly spend 4.2x"),
        "{text}"
    );
    assert!(text.contains("<https://burnrate.example.com/endpoints/support.reply?window=24h|"));
}

#[test]
fn slack_resolved_message_says_resolved() {
    let body = slack(&alert(NotificationState::Resolved));
    assert_slack_shape(&body);
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "Resolved: Hourly spend 4.2x its baseline on support.reply"
    );
    assert!(body["text"].as_str().unwrap().starts_with("Resolved: "));
}

#[test]
fn slack_escapes_markup_and_keeps_limits_on_long_text() {
    let mut n = alert(NotificationState::Firing);
    n.title = "x".repeat(400);
    n.text = format!("<!channel> tenant a&b {}", "y".repeat(5000));
    n.link = None;
    let body = slack(&n);
    assert_slack_shape(&body);
    let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.starts_with("&lt;!channel&gt; tenant a&amp;b"),
        "{section}"
    );
    assert!(section.ends_with("..."));
    assert_eq!(body["blocks"].as_array().unwrap().len(), 3);
}

// --- PagerDuty --------------------------------------------------------------------

fn pagerduty(n: &Notification) -> Value {
    body_json(&prepare(
        &ChannelKind::PagerDuty {
            routing_key: ROUTING_KEY.into(),
            url: PAGERDUTY_EVENTS_URL.into(),
        },
        n,
        0,
    ))
}

/// The documented Events API v2 alert event: required routing_key, event_action,
/// payload.summary (<= 1024), payload.source, payload.severity; links as {href, text}.
fn assert_pagerduty_trigger_shape(body: &Value) {
    assert_eq!(body["routing_key"], ROUTING_KEY);
    assert_eq!(body["event_action"], "trigger");
    assert!(body["dedup_key"].as_str().unwrap().len() <= 255);
    let payload = &body["payload"];
    let summary = payload["summary"].as_str().unwrap();
    assert!(!summary.is_empty() && summary.chars().count() <= 1024);
    assert_eq!(payload["source"], "burnrate");
    let severity = payload["severity"].as_str().unwrap();
    assert!(["critical", "error", "warning", "info"].contains(&severity));
    payload["timestamp"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .expect("timestamp is ISO 8601");
    assert!(payload["custom_details"].is_object());
    for link in body["links"].as_array().into_iter().flatten() {
        assert!(link["href"].as_str().unwrap().starts_with("https://"));
        assert!(link["text"].is_string());
    }
}

#[test]
fn pagerduty_trigger_carries_severity_evidence_and_link() {
    let body = pagerduty(&alert(NotificationState::Firing));
    assert_pagerduty_trigger_shape(&body);
    assert_eq!(body["dedup_key"], "hourly_spend:endpoint=support.reply");
    assert_eq!(body["payload"]["severity"], "critical");
    assert_eq!(body["payload"]["timestamp"], "2023-11-14T22:13:20Z");
    let details = &body["payload"]["custom_details"];
    assert_eq!(details["drivers"][0]["value"], "acme");
    assert_eq!(details["drivers"][0]["sharePct"], 62.0);
    assert_eq!(details["evidence"], json!({"rule": "hourly_spend"}));
    assert_eq!(
        body["links"][0]["href"],
        "https://burnrate.example.com/endpoints/support.reply?window=24h"
    );
}

#[test]
fn pagerduty_summary_is_cut_to_1024_characters() {
    let mut n = alert(NotificationState::Firing);
    n.text = "é".repeat(5000);
    n.severity = Severity::Warning;
    let body = pagerduty(&n);
    assert_pagerduty_trigger_shape(&body);
    assert_eq!(
        body["payload"]["summary"].as_str().unwrap().chars().count(),
        1024
    );
    assert_eq!(body["payload"]["severity"], "warning");
}

#[test]
fn pagerduty_resolve_sends_only_the_required_fields() {
    let body = pagerduty(&alert(NotificationState::Resolved));
    assert_eq!(
        body,
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve",
               "dedup_key": "hourly_spend:endpoint=support.reply"})
    );
}

#[test]
fn pagerduty_long_dedup_key_is_hashed_the_same_for_trigger_and_resolve() {
    let mut n = alert(NotificationState::Firing);
    n.dedup_key = "k".repeat(300);
    let trigger = pagerduty(&n);
    n.state = NotificationState::Resolved;
    let resolve = pagerduty(&n);
    assert_eq!(trigger["dedup_key"].as_str().unwrap().len(), 64);
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
}

#[test]
fn test_notification_is_info_with_its_own_dedup_key() {
    let n = Notification::test("on-call", None, 1_700_000_000_000);
    assert_eq!(n.state, NotificationState::Test);
    assert!(n.id.starts_with("msg_") && !n.id.contains('.'));
    assert!(n.dedup_key.starts_with("burnrate-test-"));
    let body = pagerduty(&n);
    assert_pagerduty_trigger_shape(&body);
    assert_eq!(body["payload"]["severity"], "info");
    assert_eq!(
        body["payload"]["summary"],
        "[test] burnrate test notification"
    );
    assert!(body.get("links").is_none());
}

// --- retry timing -----------------------------------------------------------------

#[test]
fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
    let p = RetryPolicy::default();
    assert_eq!(backoff_ms(&p, 1, None, 0.0), 250);
    assert_eq!(backoff_ms(&p, 1, None, 0.999), 499);
    assert_eq!(backoff_ms(&p, 2, None, 0.0), 500);
    assert_eq!(backoff_ms(&p, 4, None, 0.5), 3000);
    assert_eq!(backoff_ms(&p, 20, None, 0.0), 15_000);
    assert_eq!(backoff_ms(&p, 20, None, 0.999), 29_985);
    assert_eq!(backoff_ms(&p, 200, None, 1.0), 30_000);
}

#[test]
fn retry_after_wins_up_to_the_cap() {
    let p = RetryPolicy::default();
    assert_eq!(backoff_ms(&p, 1, Some(2_000), 0.9), 2_000);
    assert_eq!(backoff_ms(&p, 1, Some(3_600_000), 0.9), 30_000);
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("retry-after", "7".parse().unwrap());
    assert_eq!(retry_after_ms(&headers, 0), Some(7_000));
    // 2023-11-14T22:13:20Z is 1_700_000_000 s.
    headers.insert(
        "retry-after",
        "Tue, 14 Nov 2023 22:13:30 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after_ms(&headers, 1_700_000_000_000), Some(10_000));
    headers.insert("retry-after", "soon".parse().unwrap());
    assert_eq!(retry_after_ms(&headers, 0), None);
}

// --- digest -----------------------------------------------------------------------

#[test]
fn digest_folds_a_day_into_one_line_per_alert() {
    const DAY: i64 = 86_400_000;
    let start = 1_699_920_000_000; // 2023-11-14T00:00:00Z
    let at = |dedup: &str, state, severity, offset| {
        let mut n = alert(state);
        n.dedup_key = dedup.into();
        n.title = format!("alert {dedup}");
        n.severity = severity;
        n.at_ms = start + offset;
        n
    };
    use NotificationState::*;
    let ns = vec![
        at("spend", Firing, Severity::Warning, 1_000),
        at("spend", Resolved, Severity::Warning, 2_000),
        at("spend", Firing, Severity::Critical, 3_000),
        at("tokens", Firing, Severity::Warning, 4_000),
        at("tokens", Resolved, Severity::Warning, 5_000),
        at("test", Test, Severity::Info, 6_000),
        at("yesterday", Firing, Severity::Critical, -1),
        at("tomorrow", Firing, Severity::Critical, DAY),
    ];
    let d = digest(
        &ns,
        Period {
            start_ms: start,
            end_ms: start + DAY,
        },
    );
    assert_eq!(d.state, Digest);
    assert_eq!(d.severity, Severity::Critical);
    assert_eq!(d.title, "burnrate digest: 2 alerts, 1 firing");
    assert_eq!(
        d.text,
        "2 alerts between 2023-11-14T00:00:00Z and 2023-11-15T00:00:00Z: 1 still firing, 1 resolved.\n\
         - [critical] alert spend: fired 2 times, still firing\n\
         - [warning] alert tokens: fired 1 time, resolved"
    );
    assert_eq!(d.id, "digest_1699920000000_1700006400000");
    assert_eq!(d.payload["alerts"][1]["state"], "resolved");
    let empty = digest(
        &[],
        Period {
            start_ms: start,
            end_ms: start + DAY,
        },
    );
    assert_eq!(empty.severity, Severity::Info);
    assert_eq!(empty.title, "burnrate digest: 0 alerts, 0 firing");
}

#[test]
fn pagerduty_takes_no_digests() {
    let [webhook, slack, pd] = &channels()[..] else {
        unreachable!()
    };
    assert!(webhook.kind.takes_digests() && slack.kind.takes_digests());
    assert!(!pd.kind.takes_digests());
}
