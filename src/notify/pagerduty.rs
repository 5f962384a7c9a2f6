//! The PagerDuty Events API v2 body: `trigger` with the evidence in `custom_details`,
//! `resolve` with only what PagerDuty requires, both keyed by the alert's dedup_key.

use super::{rfc3339, truncate, Notification, NotificationState};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Events API v2 limits: summary 1024 characters, dedup_key 255.
const SUMMARY_MAX: usize = 1024;
const DEDUP_KEY_MAX: usize = 255;

pub(super) fn body(routing_key: &str, n: &Notification) -> Value {
    let dedup_key = dedup_key(&n.dedup_key);
    if n.state == NotificationState::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "burnrate",
        "payload": {
            "summary": truncate(&summary(n), SUMMARY_MAX),
            "source": "burnrate",
            "severity": n.severity.as_str(),
            "timestamp": rfc3339(n.at_ms),
            "custom_details": {
                "text": n.text,
                "drivers": n.drivers,
                "evidence": n.payload,
            },
        },
    });
    if let Some(link) = &n.link {
        event["links"] = json!([{"href": link, "text": "Open the view in burnrate"}]);
        event["client_url"] = json!(link);
    }
    event
}

fn summary(n: &Notification) -> String {
    match n.state {
        NotificationState::Test => format!("[test] {}", n.title),
        _ => format!("{}: {}", n.title, n.text),
    }
}

/// A key over PagerDuty's limit becomes its SHA-256 hex: still stable, so the resolve
/// finds the trigger.
fn dedup_key(key: &str) -> String {
    if key.len() <= DEDUP_KEY_MAX {
        key.to_string()
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}
