//! `POST /v1/guard`: ask the server, before a call, whether it fits the budgets.

use crate::error::Error;
use crate::event::Environment;
use crate::util::parse_retry_after;
use serde::{Deserialize, Deserializer, Serialize};
use std::time::{Duration, SystemTime};

/// What the call is about to be; only `endpoint_tag` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GuardRequest {
    pub endpoint_tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Pseudonymize it first ([`pseudonymize`](crate::pseudonymize)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
}

impl GuardRequest {
    pub fn new(endpoint_tag: impl Into<String>) -> GuardRequest {
        GuardRequest {
            endpoint_tag: endpoint_tag.into(),
            ..GuardRequest::default()
        }
    }

    pub fn tenant_id(mut self, v: impl Into<String>) -> GuardRequest {
        self.tenant_id = Some(v.into());
        self
    }

    pub fn user_id(mut self, v: impl Into<String>) -> GuardRequest {
        self.user_id = Some(v.into());
        self
    }

    pub fn provider(mut self, v: impl Into<String>) -> GuardRequest {
        self.provider = Some(v.into());
        self
    }

    pub fn model(mut self, v: impl Into<String>) -> GuardRequest {
        self.model = Some(v.into());
        self
    }

    pub fn estimated_cost_usd(mut self, usd: f64) -> GuardRequest {
        self.estimated_cost_usd = Some(usd);
        self
    }

    pub fn external_request_id(mut self, v: impl Into<String>) -> GuardRequest {
        self.external_request_id = Some(v.into());
        self
    }
}

/// The state of one budget the call falls under.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// USD left in the current period (`None` if the server does not say).
    #[serde(default)]
    pub remaining: Option<f64>,
    /// The server's word for the budget's state, e.g. `ok`, `warning`, `exceeded`.
    #[serde(default)]
    pub state: String,
}

/// The server's answer: `{allow, reason, budgets: [{id, remaining, state}], retryAfterSeconds}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardDecision {
    #[serde(alias = "allowed")]
    pub allow: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub budgets: Vec<BudgetStatus>,
    /// When a denied call may be tried again (from the body, else the `Retry-After`
    /// header).
    #[serde(default)]
    pub retry_after_seconds: Option<f64>,
}

impl GuardDecision {
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(1e9)))
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "budget id must be a string, got {other}"
        ))),
    }
}

/// Map an HTTP answer of `/v1/guard` to a decision. 2xx carries the decision; a 402 or
/// 429 whose body is a decision is a denial; anything else is an error for the caller to
/// handle (fail open or closed as it sees fit).
pub fn parse_guard_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<GuardDecision, Error> {
    let parsed = serde_json::from_slice::<GuardDecision>(body);
    let mut decision = match (status, parsed) {
        (200..=299, Ok(d)) => d,
        (200..=299, Err(e)) => return Err(Error::InvalidResponse(e.to_string())),
        (402 | 429, Ok(d)) if !d.allow => d,
        (status, _) => return Err(Error::Status(status)),
    };
    if decision.retry_after_seconds.is_none() {
        decision.retry_after_seconds = retry_after
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .map(|d| d.as_secs_f64());
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allow_with_budgets() {
        let body = json!({"allow": true, "reason": null, "budgets": [
            {"id": "b_1", "remaining": 12.5, "state": "ok"},
            {"id": 7, "remaining": null, "state": "warning", "extra": 1}
        ]})
        .to_string();
        let d = parse_guard_response(200, None, body.as_bytes()).unwrap();
        assert!(d.allow);
        assert_eq!(d.budgets.len(), 2);
        assert_eq!(
            d.budgets[0],
            BudgetStatus {
                id: "b_1".into(),
                remaining: Some(12.5),
                state: "ok".into()
            }
        );
        assert_eq!(
            (d.budgets[1].id.as_str(), d.budgets[1].remaining),
            ("7", None)
        );
        assert_eq!(d.retry_after(), None);
    }

    #[test]
    fn denial_in_200_402_and_429() {
        let body = json!({"allow": false, "reason": "budget exceeded",
            "budgets": [{"id": "b", "remaining": 0, "state": "exceeded"}],
            "retryAfterSeconds": 3600})
        .to_string();
        for status in [200, 402, 429] {
            let d = parse_guard_response(status, None, body.as_bytes()).unwrap();
            assert!(!d.allow);
            assert_eq!(d.reason.as_deref(), Some("budget exceeded"));
            assert_eq!(d.retry_after(), Some(Duration::from_secs(3600)));
        }
        // the header fills in when the body has no retryAfterSeconds
        let d = parse_guard_response(429, Some("30"), br#"{"allowed": false}"#).unwrap();
        assert_eq!((d.allow, d.retry_after_seconds), (false, Some(30.0)));
        assert!(d.budgets.is_empty());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_guard_response(200, None, b"not json"),
            Err(Error::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_guard_response(200, None, br#"{"reason": "x"}"#),
            Err(Error::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_guard_response(404, None, b"Not Found"),
            Err(Error::Status(404))
        ));
        assert!(matches!(
            parse_guard_response(402, None, br#"{"allow": true}"#),
            Err(Error::Status(402))
        ));
        assert!(matches!(
            parse_guard_response(500, None, br#"{"allow": false}"#),
            Err(Error::Status(500))
        ));
    }

    #[test]
    fn request_is_camel_case() {
        let r = GuardRequest::new("support.reply")
            .tenant_id("acme")
            .model("gpt-4o-mini")
            .estimated_cost_usd(0.01);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"endpointTag": "support.reply", "tenantId": "acme",
                   "model": "gpt-4o-mini", "estimatedCostUsd": 0.01})
        );
    }
}
