//! A notification channel: where messages go and the secret that goes with it; its
//! checks (errors name the API field) and its redacted forms.

use crate::event::FieldError;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};

pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Standard Webhooks: a symmetric key of at least 24 bytes and at most 512 bits.
const SECRET_MIN_BYTES: usize = 24;
const SECRET_MAX_BYTES: usize = 64;
/// PagerDuty: "the 32 character Integration Key".
const ROUTING_KEY_LEN: usize = 32;
const REDACTED: &str = "[redacted]";

/// A named destination. JSON: `{"id", "name", "type": "webhook"|"slack"|"pagerduty", ...}`
/// with the kind's fields beside the tag. Serializing keeps the secrets (this is the
/// stored form); show [`Channel::redacted`] to people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// The integer id the API gives it (ids are integers everywhere, as budgets'); 0 in
    /// a stored body, where the row holds the id.
    #[serde(default)]
    pub id: i64,
    pub name: String,
    #[serde(flatten)]
    pub kind: ChannelKind,
    /// A daily or weekly summary at a local time (`DigestSchedule::from_json` checks
    /// it before it is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<super::DigestSchedule>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum ChannelKind {
    /// Standard Webhooks signed POST; `secret` is `whsec_` + base64 of the key.
    Webhook { url: String, secret: String },
    /// Slack incoming webhook; the URL is the secret.
    Slack { url: String },
    /// PagerDuty Events API v2.
    #[serde(rename = "pagerduty")]
    PagerDuty {
        routing_key: String,
        #[serde(default = "default_pagerduty_url")]
        url: String,
    },
}

fn default_pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_string()
}

impl ChannelKind {
    /// Every problem, each naming its JSON field, so the API can answer 400.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        match self {
            ChannelKind::Webhook { url, secret } => {
                check_url(url, &mut errors);
                if let Err(m) = secret_key(secret) {
                    errors.push(FieldError::new("secret", m));
                }
            }
            ChannelKind::Slack { url } => check_url(url, &mut errors),
            ChannelKind::PagerDuty { routing_key, url } => {
                check_url(url, &mut errors);
                check_routing_key(routing_key, &mut errors);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// PagerDuty pages people: a daily digest does not belong there.
    pub fn takes_digests(&self) -> bool {
        !matches!(self, ChannelKind::PagerDuty { .. })
    }

    /// The secret strings of this channel, scrubbed from any text we record.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match self {
            ChannelKind::Webhook { url, secret } => vec![secret, url],
            ChannelKind::Slack { url } => vec![url],
            ChannelKind::PagerDuty { routing_key, .. } => vec![routing_key],
        }
    }
}

impl Channel {
    /// The channel as shown to people (API listings, CLI): secrets replaced, the
    /// webhook URL kept without its query, the Slack URL reduced to its host.
    pub fn redacted(&self) -> Channel {
        let kind = match &self.kind {
            ChannelKind::Webhook { url, .. } => ChannelKind::Webhook {
                url: strip_query(url),
                secret: format!("{WEBHOOK_SECRET_PREFIX}{REDACTED}"),
            },
            ChannelKind::Slack { url } => ChannelKind::Slack {
                url: redact_url(url),
            },
            ChannelKind::PagerDuty { routing_key, url } => ChannelKind::PagerDuty {
                routing_key: last_four(routing_key),
                url: url.clone(),
            },
        };
        Channel {
            id: self.id,
            name: self.name.clone(),
            kind,
            digest: self.digest.clone(),
        }
    }
}

// Hand-written so that `{:?}` of a channel (in a log line or a test failure) never
// prints a secret.
impl std::fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelKind::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", &redact_url(url))
                .field("secret", &REDACTED)
                .finish(),
            ChannelKind::Slack { url } => f
                .debug_struct("Slack")
                .field("url", &redact_url(url))
                .finish(),
            ChannelKind::PagerDuty { url, .. } => f
                .debug_struct("PagerDuty")
                .field("routing_key", &REDACTED)
                .field("url", url)
                .finish(),
        }
    }
}

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_webhook_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key);
    format!("{WEBHOOK_SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The HMAC key inside a `whsec_` secret, or why the secret is malformed. The message
/// never quotes the secret.
pub(crate) fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let Some(encoded) = secret.strip_prefix(WEBHOOK_SECRET_PREFIX) else {
        return Err(format!("must start with {WEBHOOK_SECRET_PREFIX}"));
    };
    let key = BASE64
        .decode(encoded)
        .map_err(|_| format!("must be {WEBHOOK_SECRET_PREFIX} followed by base64"))?;
    if !(SECRET_MIN_BYTES..=SECRET_MAX_BYTES).contains(&key.len()) {
        return Err(format!(
            "key must be {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes, got {}",
            key.len()
        ));
    }
    Ok(key)
}

fn check_url(url: &str, errors: &mut Vec<FieldError>) {
    let ok = reqwest::Url::parse(url)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false);
    if !ok {
        errors.push(FieldError::new("url", "must be an http(s) URL with a host"));
    }
}

fn check_routing_key(key: &str, errors: &mut Vec<FieldError>) {
    let ok = key.len() == ROUTING_KEY_LEN && key.chars().all(|c| c.is_ascii_alphanumeric());
    if !ok {
        errors.push(FieldError::new(
            "routingKey",
            format!("must be the {ROUTING_KEY_LEN}-character integration key"),
        ));
    }
}

/// `https://hooks.slack.com/services/T0/B0/xyz` -> `https://hooks.slack.com/[redacted]`:
/// scheme and host only, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() == "/" && u.query().is_none() {
                ""
            } else {
                "/[redacted]"
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => REDACTED.to_string(),
    }
}

fn strip_query(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.query().is_some() {
                u.set_query(Some(REDACTED));
            }
            u.to_string()
        }
        Err(_) => REDACTED.to_string(),
    }
}

/// `...` and the last four characters: enough to tell keys apart.
fn last_four(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("...{tail}")
}
