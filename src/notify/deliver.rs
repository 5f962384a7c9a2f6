//! Delivery: send a prepared request, retry network errors, 429 and 5xx with
//! exponential backoff and jitter (429 honours Retry-After), record every attempt.

use super::{prepare, Channel, ChannelKind, Notification, PreparedRequest};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, Instant};

/// How hard to try. Tests use tiny delays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it.
    pub base_ms: u64,
    /// Cap on one wait, Retry-After included.
    pub max_ms: u64,
    /// Limit on one attempt, connect to last body byte.
    pub timeout_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_ms: 500,
            max_ms: 30_000,
            timeout_ms: 10_000,
        }
    }
}

/// One try: when, the HTTP status if one came back, what went wrong (secrets removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryReport {
    pub attempts: Vec<Attempt>,
    pub delivered: bool,
}

/// What one attempt means for the next.
enum Verdict {
    Delivered,
    GiveUp,
    /// Retry, after the server's Retry-After if it sent one (ms).
    Retry(Option<u64>),
}

/// A client fit for notifications: no redirects (Standard Webhooks counts a 3xx as a
/// failure: the URL should be fixed, not followed).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("burnrate/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client without custom TLS settings builds")
}

/// Sends `n` to `channel` until it is accepted (2xx), refused (other status) or the
/// policy's attempts run out. `now_ms` is the clock (attempt times, webhook
/// timestamps); `sleep` waits between attempts (`tokio::time::sleep` in the server).
/// Each attempt is prepared afresh, so a webhook is re-signed with its own timestamp
/// and keeps its `webhook-id`.
pub async fn deliver<S, F>(
    client: &reqwest::Client,
    channel: &Channel,
    n: &Notification,
    policy: &RetryPolicy,
    now_ms: &(dyn Fn() -> i64 + Send + Sync),
    sleep: S,
) -> DeliveryReport
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    // At least one attempt, whatever the policy says.
    let max_attempts = policy.max_attempts.max(1);
    let mut attempts = Vec::new();
    for number in 1..=max_attempts {
        let at_ms = now_ms();
        let request = prepare(&channel.kind, n, at_ms);
        let started = Instant::now();
        let (status, error, verdict) = send_once(client, &request, policy, at_ms).await;
        attempts.push(Attempt {
            at_ms,
            status,
            error: error.map(|e| scrub(&e, &channel.kind)),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        match verdict {
            Verdict::Delivered => return report(attempts, true),
            Verdict::GiveUp => break,
            Verdict::Retry(_) if number == max_attempts => break,
            Verdict::Retry(after) => {
                let jitter = rand::rng().random::<f64>();
                sleep(Duration::from_millis(backoff_ms(
                    policy, number, after, jitter,
                )))
                .await;
            }
        }
    }
    report(attempts, false)
}

fn report(attempts: Vec<Attempt>, delivered: bool) -> DeliveryReport {
    DeliveryReport {
        attempts,
        delivered,
    }
}

async fn send_once(
    client: &reqwest::Client,
    request: &PreparedRequest,
    policy: &RetryPolicy,
    now_ms: i64,
) -> (Option<u16>, Option<String>, Verdict) {
    let mut builder = client
        .post(&request.url)
        .timeout(Duration::from_millis(policy.timeout_ms))
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) => return (None, Some(describe(e, policy)), Verdict::Retry(None)),
    };
    let status = response.status().as_u16();
    let after = retry_after_ms(response.headers(), now_ms);
    let verdict = verdict(status, after);
    let error = match verdict {
        Verdict::Delivered => None,
        _ => Some(http_error(status, &body_start(response).await)),
    };
    (Some(status), error, verdict)
}

/// "http 400: invalid_payload", or "http 500" when the body is empty.
fn http_error(status: u16, body: &str) -> String {
    if body.is_empty() {
        format!("http {status}")
    } else {
        format!("http {status}: {body}")
    }
}

fn verdict(status: u16, retry_after: Option<u64>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 | 500..=599 => Verdict::Retry(retry_after),
        _ => Verdict::GiveUp,
    }
}

/// The wait before retry `number + 1`: the server's Retry-After if given, else
/// base * 2^(number-1) with "equal jitter" (half fixed, half random, so retries of many
/// messages spread out but never collapse to zero); never more than `max_ms`.
/// `jitter` is in [0, 1).
pub(super) fn backoff_ms(
    policy: &RetryPolicy,
    number: u32,
    retry_after: Option<u64>,
    jitter: f64,
) -> u64 {
    if let Some(after) = retry_after {
        return after.min(policy.max_ms);
    }
    let exp = policy
        .base_ms
        .saturating_mul(1u64 << (number.saturating_sub(1)).min(32))
        .min(policy.max_ms);
    exp / 2 + ((exp - exp / 2) as f64 * jitter) as u64
}

/// Retry-After as delay-seconds or an HTTP date, in ms from `now_ms`.
pub(super) fn retry_after_ms(headers: &reqwest::header::HeaderMap, now_ms: i64) -> Option<u64> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    Some((at.as_millisecond() - now_ms).max(0) as u64)
}

/// The first bytes of an error response, which often say what was wrong
/// (Slack: "invalid_payload"; PagerDuty: a JSON list of errors). Read in chunks and
/// stopped early, so a huge body is never buffered.
async fn body_start(mut response: reqwest::Response) -> String {
    const MAX: usize = 200;
    let mut bytes = Vec::new();
    while bytes.len() < MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX);
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// A network error in words with its causes, without the URL (reqwest's Display
/// includes it, and a Slack URL is a secret).
fn describe(e: reqwest::Error, policy: &RetryPolicy) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", policy.timeout_ms);
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// `text` with every secret of the channel replaced: a belt to the braces of never
/// formatting a secret, since a receiver may echo what it got.
fn scrub(text: &str, kind: &ChannelKind) -> String {
    kind.secrets()
        .into_iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |t, s| t.replace(s, "[redacted]"))
}
