//! The generic webhook: a Standard Webhooks signed POST (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`) and the check a
//! receiver runs.

use super::channel::secret_key;
use super::{rfc3339, Notification, NotificationState, PreparedRequest};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub(super) fn prepare(url: &str, secret: &str, n: &Notification, now_ms: i64) -> PreparedRequest {
    let body = serde_json::json!({
        "type": event_type(n.state),
        "timestamp": rfc3339(n.at_ms),
        "data": n.payload,
    })
    .to_string()
    .into_bytes();
    // The attempt's time, not the alert's: receivers reject stale timestamps (replay).
    let timestamp = now_ms.div_euclid(1000);
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".to_string(), n.id.clone()),
        ("webhook-timestamp".to_string(), timestamp.to_string()),
    ];
    // A malformed secret is refused by `ChannelKind::check`; if one slips through, the
    // request goes unsigned and the receiver rejects it, which the attempt records.
    if let Ok(signature) = sign(secret, &n.id, timestamp, &body) {
        headers.push(("webhook-signature".to_string(), signature));
    }
    PreparedRequest {
        url: url.to_string(),
        headers,
        body,
    }
}

fn event_type(state: NotificationState) -> &'static str {
    match state {
        NotificationState::Firing => "alert.firing",
        NotificationState::Resolved => "alert.resolved",
        NotificationState::Test => "test",
        NotificationState::Digest => "alert.digest",
    }
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) where key is the base64
/// part of the `whsec_` secret, decoded. Err names what is wrong with the secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let mac = signed_content_mac(&secret_key(secret)?, id, timestamp, body);
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

fn signed_content_mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why a webhook failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid secret: {0}")]
    Secret(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not unix seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the tolerance")]
    TooOld,
    #[error("no matching signature")]
    NoMatch,
}

/// The receiver's check: the headers (names case-insensitive) and the raw body bytes
/// against the secret. Passes when `webhook-timestamp` is within `tolerance_s` of
/// `now_s` and any `v1,` entry of the space-separated `webhook-signature` matches,
/// compared in constant time.
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let key = secret_key(secret).map_err(VerifyError::Secret)?;
    let id = header(headers, "webhook-id")?;
    let timestamp: i64 = header(headers, "webhook-timestamp")?
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if (now_s - timestamp).abs() > tolerance_s {
        return Err(VerifyError::TooOld);
    }
    let mac = signed_content_mac(&key, id, timestamp, body);
    let matches = header(headers, "webhook-signature")?
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .ok_or(VerifyError::MissingHeader(name))
}
