//! Notifications: one alert message, rendered for a channel (signed webhook, Slack,
//! PagerDuty) and delivered with retries, every attempt recorded.
//!
//! Flow: the alert engine builds a [`Notification`]; [`prepare`] turns it into the HTTP
//! request a [`ChannelKind`] expects (pure: time is an argument); [`deliver`] sends it,
//! re-preparing each attempt so a webhook signature carries the attempt's own timestamp.
//! [`digest`] folds a day's notifications into one message.
//!
//! Secrets (webhook signing secrets, Slack webhook URLs, PagerDuty routing keys) never
//! appear in `Debug` output, logs or attempt errors.

mod channel;
mod deliver;
mod digest;
mod pagerduty;
mod schedule;
mod slack;
mod webhook;

#[cfg(test)]
mod tests;

pub use channel::{
    new_webhook_secret, redact_url, Channel, ChannelKind, PAGERDUTY_EVENTS_URL,
    WEBHOOK_SECRET_PREFIX,
};
pub use deliver::{deliver, http_client, Attempt, DeliveryReport, RetryPolicy};
pub use digest::{digest, summary_digest, Mover, Period, Summary};
pub use schedule::{Cadence, DigestSchedule};
pub use webhook::{sign, verify, VerifyError};

use serde::{Deserialize, Serialize};

/// One message about one alert, independent of the channel it goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Unique per message and the same on every retry (the receiver's idempotency key;
    /// the `webhook-id` header). Must not contain '.', see [`new_notification_id`].
    pub id: String,
    /// The alert's dedupe key: PagerDuty correlates trigger and resolve with it.
    pub dedup_key: String,
    pub state: NotificationState,
    pub severity: Severity,
    pub title: String,
    /// Plain sentences with the evidence numbers.
    pub text: String,
    /// The top drivers of the change, largest share first.
    pub drivers: Vec<Driver>,
    /// Absolute URL of the dashboard view that explains the alert.
    pub link: Option<String>,
    /// The full alert JSON, sent as `data` by the generic webhook.
    pub payload: serde_json::Value,
    /// When the alert changed state (ms since the epoch).
    pub at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    Firing,
    Resolved,
    /// `burnrate alerts test CHANNEL`.
    Test,
    /// A summary of a period's alerts, see [`digest`].
    Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One driver of a change: `tenantId = acme` carried 62% of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    /// The API's dimension name: endpointTag, tenantId, promptVersion, model ...
    pub dimension: String,
    pub value: String,
    pub share_pct: f64,
    /// A short sentence with the driver's own numbers.
    pub detail: String,
}

/// The HTTP request a channel expects; always a POST of a JSON body.
#[derive(Clone, PartialEq)]
pub struct PreparedRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

// The URL (a Slack webhook URL is itself the secret) and the body (PagerDuty carries the
// routing key) stay out of Debug output.
impl std::fmt::Debug for PreparedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRequest")
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The request `channel` expects for `n`, as sent at `now_ms`. Pure.
pub fn prepare(channel: &ChannelKind, n: &Notification, now_ms: i64) -> PreparedRequest {
    match channel {
        ChannelKind::Webhook { url, secret } => webhook::prepare(url, secret, n, now_ms),
        ChannelKind::Slack { url } => json_post(url, slack::body(n)),
        ChannelKind::PagerDuty { routing_key, url } => {
            json_post(url, pagerduty::body(routing_key, n))
        }
    }
}

fn json_post(url: &str, body: serde_json::Value) -> PreparedRequest {
    PreparedRequest {
        url: url.to_string(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// A fresh message id: `msg_` and 16 random bytes in hex (no '.', as the signature
/// scheme requires).
pub fn new_notification_id() -> String {
    format!("msg_{}", crate::auth::random_token(16))
}

impl Notification {
    /// The message `burnrate alerts test CHANNEL` sends: info severity, its own dedupe
    /// key so it never touches a real alert.
    pub fn test(channel_name: &str, link: Option<String>, now_ms: i64) -> Notification {
        let id = new_notification_id();
        let text = format!(
            "This is a test message from burnrate to the channel \"{channel_name}\". \
             If you can read it, alerts will reach you here."
        );
        Notification {
            dedup_key: format!("burnrate-test-{id}"),
            id,
            state: NotificationState::Test,
            severity: Severity::Info,
            title: "burnrate test notification".into(),
            payload: serde_json::json!({ "channel": channel_name, "text": text }),
            text,
            drivers: Vec::new(),
            link,
            at_ms: now_ms,
        }
    }
}

/// RFC 3339 UTC time for a payload, e.g. `2023-11-14T22:13:20Z`.
fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `s` cut to at most `max` characters, ending in "..." when cut (API field limits are
/// in characters).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}
