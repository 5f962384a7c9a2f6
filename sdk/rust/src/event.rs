//! The event contract: one [`Event`] per logical LLM call attempt, camelCase JSON.

use crate::usage::Usage;
use crate::util::{new_request_id, rfc3339};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Contract limits (the server's validator refuses longer values).
pub(crate) const MAX_ID_LEN: usize = 128;
pub(crate) const MAX_PROVIDER_LEN: usize = 64;
pub(crate) const MAX_TAGS: usize = 10;
pub(crate) const MAX_TAG_KEY_LEN: usize = 64;
pub(crate) const MAX_TAG_VALUE_LEN: usize = 128;
pub(crate) const MAX_ATTEMPT: u32 = 64;

/// Outcome of the provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Success,
    Error,
    Timeout,
    RateLimited,
    Cancelled,
}

/// `real` (default on the server), `test` or `demo` data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataMode {
    Real,
    Test,
    Demo,
}

/// Deployment environment (`prod` is the server's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Prod,
    Staging,
    Dev,
}

/// Kind of call (`chat` is the server's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Chat,
    Responses,
    Embeddings,
    Image,
    Audio,
}

/// Provider service tier (`standard` is the server's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTier {
    Standard,
    Batch,
    Flex,
    Priority,
}

impl DataMode {
    /// Parse the wire name (`real`, `test`, `demo`).
    pub fn parse(s: &str) -> Option<DataMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "real" => Some(DataMode::Real),
            "test" => Some(DataMode::Test),
            "demo" => Some(DataMode::Demo),
            _ => None,
        }
    }
}

impl Environment {
    /// Parse the wire name (`prod`, `staging`, `dev`).
    pub fn parse(s: &str) -> Option<Environment> {
        match s.trim().to_ascii_lowercase().as_str() {
            "prod" => Some(Environment::Prod),
            "staging" => Some(Environment::Staging),
            "dev" => Some(Environment::Dev),
            _ => None,
        }
    }
}

/// One attempt of one logical LLM call, as the server's contract wants it.
///
/// Build it with [`Event::new`] (a fresh `externalRequestId`, attempt 1, timestamp now,
/// status success) and the chained setters, then hand it to
/// [`Client::track`](crate::Client::track). Optional fields left `None` are not sent.
/// Strings that break the contract's limits are trimmed, and inconsistent token sums
/// are clamped, on the background worker, never on the caller's thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Stable across the retries of one logical call.
    pub external_request_id: String,
    /// 1 for the first try; each retry of the same call is +1.
    pub attempt: u32,
    /// When the call started (sent as RFC 3339 UTC with milliseconds).
    #[serde(serialize_with = "ser_time")]
    pub timestamp: SystemTime,
    pub provider: String,
    pub model: String,
    /// The feature making the call, e.g. `support.reply`.
    pub endpoint_tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Prefer [`pseudonymize`](crate::pseudonymize)d ids: never send raw user ids you
    /// would not want in a cost database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// All input tokens, including cached and cache-write tokens.
    pub input_tokens: u64,
    /// Cache reads (part of `input_tokens`).
    pub cached_tokens: u64,
    /// Cache writes (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// All output tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Reasoning tokens (part of `output_tokens`).
    pub reasoning_tokens: u64,
    /// Optional; when sent it must equal input + output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_count: Option<u64>,
    /// Wall time of the provider call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_mode: Option<DataMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    /// True when the provider returned no usage (errors, streams cut off).
    #[serde(skip_serializing_if = "is_false")]
    pub usage_missing: bool,
    /// Only when the provider reports the exact cost (OpenRouter, xAI). Rounded to
    /// nano-dollars (9 decimals) before sending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// At most 10 keys.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

impl Event {
    /// A successful first attempt of a new logical call, started now, with no usage yet.
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        endpoint_tag: impl Into<String>,
    ) -> Event {
        Event {
            external_request_id: new_request_id(),
            attempt: 1,
            timestamp: SystemTime::now(),
            provider: provider.into(),
            model: model.into(),
            endpoint_tag: endpoint_tag.into(),
            prompt_version: None,
            tenant_id: None,
            user_id: None,
            input_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            total_tokens: None,
            image_count: None,
            latency_ms: None,
            status: Status::Success,
            error_code: None,
            data_mode: None,
            environment: None,
            operation: None,
            service_tier: None,
            usage_missing: false,
            cost_usd: None,
            tags: BTreeMap::new(),
        }
    }

    /// A failed attempt without usage (`usageMissing: true`), e.g. a 429 or 500 from the
    /// provider: `Event::failed("openai", "gpt-4o-mini", "chat", Status::RateLimited, "429")`.
    pub fn failed(
        provider: impl Into<String>,
        model: impl Into<String>,
        endpoint_tag: impl Into<String>,
        status: Status,
        error_code: impl Into<String>,
    ) -> Event {
        let mut e = Event::new(provider, model, endpoint_tag);
        e.status = status;
        e.error_code = Some(error_code.into());
        e.usage_missing = true;
        e
    }

    /// The next attempt of the same logical call: same id, attempt + 1, timestamp now,
    /// usage, cost, status and error cleared.
    pub fn retry(&self) -> Event {
        let mut e = self.clone();
        e.attempt = self.attempt.saturating_add(1);
        e.timestamp = SystemTime::now();
        e.status = Status::Success;
        e.error_code = None;
        e.latency_ms = None;
        e.usage_missing = false;
        e.cost_usd = None;
        e.total_tokens = None;
        e.input_tokens = 0;
        e.cached_tokens = 0;
        e.cache_write_tokens = 0;
        e.output_tokens = 0;
        e.reasoning_tokens = 0;
        e
    }

    /// Apply a mapped provider usage: the token counts, `cost_usd` when the provider
    /// reported one, `usage_missing` when it had none, and the operation the shape implies
    /// (embeddings) unless one was set already.
    pub fn usage(mut self, u: Usage) -> Event {
        self.input_tokens = u.input_tokens;
        self.cached_tokens = u.cached_tokens;
        self.cache_write_tokens = u.cache_write_tokens;
        self.output_tokens = u.output_tokens;
        self.reasoning_tokens = u.reasoning_tokens;
        if u.cost_usd.is_some() {
            self.cost_usd = u.cost_usd;
        }
        if u.missing {
            self.usage_missing = true;
        }
        if self.operation.is_none() {
            self.operation = u.operation;
        }
        self
    }

    /// Keep the id of a logical call you identify yourself (at most 128 characters).
    pub fn external_request_id(mut self, id: impl Into<String>) -> Event {
        self.external_request_id = id.into();
        self
    }

    /// The retry number of the logical call (1 = first try, at most 64).
    pub fn attempt(mut self, attempt: u32) -> Event {
        self.attempt = attempt;
        self
    }

    /// When the call started (default: when the event was built).
    pub fn started_at(mut self, t: SystemTime) -> Event {
        self.timestamp = t;
        self
    }

    pub fn latency(mut self, d: Duration) -> Event {
        self.latency_ms = Some(d.as_millis().min(u64::MAX as u128) as u64);
        self
    }

    pub fn status(mut self, status: Status) -> Event {
        self.status = status;
        self
    }

    /// Sets `error_code` (e.g. the HTTP status or provider error type).
    pub fn error_code(mut self, code: impl Into<String>) -> Event {
        self.error_code = Some(code.into());
        self
    }

    pub fn usage_missing(mut self, missing: bool) -> Event {
        self.usage_missing = missing;
        self
    }

    pub fn prompt_version(mut self, v: impl Into<String>) -> Event {
        self.prompt_version = Some(v.into());
        self
    }

    pub fn tenant_id(mut self, v: impl Into<String>) -> Event {
        self.tenant_id = Some(v.into());
        self
    }

    /// Use [`pseudonymize`](crate::pseudonymize) for real user ids.
    pub fn user_id(mut self, v: impl Into<String>) -> Event {
        self.user_id = Some(v.into());
        self
    }

    pub fn operation(mut self, op: Operation) -> Event {
        self.operation = Some(op);
        self
    }

    pub fn service_tier(mut self, tier: ServiceTier) -> Event {
        self.service_tier = Some(tier);
        self
    }

    pub fn environment(mut self, env: Environment) -> Event {
        self.environment = Some(env);
        self
    }

    pub fn data_mode(mut self, mode: DataMode) -> Event {
        self.data_mode = Some(mode);
        self
    }

    /// The exact cost the provider reported (USD).
    pub fn cost_usd(mut self, usd: f64) -> Event {
        self.cost_usd = Some(usd);
        self
    }

    pub fn image_count(mut self, n: u64) -> Event {
        self.image_count = Some(n);
        self
    }

    /// Add one tag (at most 10 are sent).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Event {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Make the event valid per the contract, so a provider's odd counters or an
    /// over-long string never cost the whole event. Runs on the worker.
    pub(crate) fn finalize(&mut self, env: Option<Environment>, mode: Option<DataMode>) {
        fix_required(&mut self.external_request_id, MAX_ID_LEN, None);
        if self.external_request_id.is_empty() {
            self.external_request_id = new_request_id();
        }
        fix_required(&mut self.provider, MAX_PROVIDER_LEN, Some("unknown"));
        self.provider.make_ascii_lowercase();
        fix_required(&mut self.model, MAX_ID_LEN, Some("unknown"));
        fix_required(&mut self.endpoint_tag, MAX_ID_LEN, Some("untagged"));
        for opt in [
            &mut self.prompt_version,
            &mut self.tenant_id,
            &mut self.user_id,
            &mut self.error_code,
        ] {
            if let Some(s) = opt {
                fix_required(s, MAX_ID_LEN, None);
                if s.is_empty() {
                    *opt = None;
                }
            }
        }
        self.attempt = self.attempt.clamp(1, MAX_ATTEMPT);
        // Input includes cached and cache-write tokens; output includes reasoning.
        let floor = self.cached_tokens.saturating_add(self.cache_write_tokens);
        if self.input_tokens < floor {
            self.input_tokens = floor;
        }
        if self.output_tokens < self.reasoning_tokens {
            self.output_tokens = self.reasoning_tokens;
        }
        if let Some(t) = self.total_tokens {
            if t != self.input_tokens.saturating_add(self.output_tokens) {
                self.total_tokens = None;
            }
        }
        self.cost_usd = self.cost_usd.and_then(round_usd);
        if self.environment.is_none() {
            self.environment = env;
        }
        if self.data_mode.is_none() {
            self.data_mode = mode;
        }
        if !self.tags.is_empty() {
            let tags = std::mem::take(&mut self.tags);
            for (mut k, mut v) in tags {
                if self.tags.len() >= MAX_TAGS {
                    break;
                }
                fix_required(&mut k, MAX_TAG_KEY_LEN, None);
                if k.is_empty() {
                    continue;
                }
                // The server accepts tag keys of `A-Z a-z 0-9 _ . -` only and rejects
                // the whole event otherwise.
                if !k.chars().all(is_tag_key_char) {
                    k = k
                        .chars()
                        .map(|c| if is_tag_key_char(c) { c } else { '_' })
                        .collect();
                }
                truncate_chars(&mut v, MAX_TAG_VALUE_LEN);
                self.tags.insert(k, v);
            }
        }
    }
}

/// Round a USD amount to nano-dollars (the server refuses more than 9 decimals).
/// Negative, NaN and infinite amounts are dropped.
pub(crate) fn round_usd(usd: f64) -> Option<f64> {
    if !usd.is_finite() || usd < 0.0 {
        return None;
    }
    Some((usd * 1e9).round() / 1e9)
}

/// Trim, replace control characters, cut to `max` characters; empty -> `default`.
fn is_tag_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn fix_required(s: &mut String, max: usize, default: Option<&str>) {
    if s.chars().any(char::is_control) {
        *s = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
    }
    let trimmed = s.trim();
    if trimmed.len() != s.len() {
        *s = trimmed.to_string();
    }
    truncate_chars(s, max);
    let trimmed = s.trim_end();
    if trimmed.len() != s.len() {
        *s = trimmed.to_string();
    }
    if s.is_empty() {
        if let Some(d) = default {
            *s = d.to_string();
        }
    }
}

fn truncate_chars(s: &mut String, max: usize) {
    if s.len() > max {
        if let Some((i, _)) = s.char_indices().nth(max) {
            s.truncate(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_camel_case_and_skips_none() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        let e = Event::new("openai", "gpt-4o-mini", "support.reply")
            .external_request_id("r1")
            .started_at(t)
            .tenant_id("acme")
            .tag("team", "growth");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({
                "externalRequestId": "r1", "attempt": 1,
                "timestamp": "2025-11-24T16:00:00.123Z",
                "provider": "openai", "model": "gpt-4o-mini", "endpointTag": "support.reply",
                "tenantId": "acme", "inputTokens": 0, "cachedTokens": 0,
                "cacheWriteTokens": 0, "outputTokens": 0, "reasoningTokens": 0,
                "status": "success", "tags": {"team": "growth"}
            })
        );
        let f = Event::failed("openai", "m", "x", Status::RateLimited, "429");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["status"], "rate_limited");
        assert_eq!(v["usageMissing"], true);
        assert_eq!(v["errorCode"], "429");
    }

    #[test]
    fn retry_keeps_the_id_and_counts_up() {
        let e = Event::failed("openai", "m", "x", Status::Error, "500");
        let r = e.retry();
        assert_eq!(r.external_request_id, e.external_request_id);
        assert_eq!(
            (r.attempt, r.status, r.usage_missing),
            (2, Status::Success, false)
        );
        assert_eq!(r.error_code, None);
    }

    #[test]
    fn finalize_makes_events_valid() {
        let mut e = Event::new("  OpenAI ", "", "a\nb")
            .attempt(99)
            .tenant_id("   ")
            .cost_usd(0.00001585040001)
            .usage(Usage {
                input_tokens: 5,
                cached_tokens: 4,
                cache_write_tokens: 3,
                output_tokens: 1,
                reasoning_tokens: 2,
                ..Usage::default()
            });
        e.user_id = Some("x".repeat(300));
        for i in 0..12 {
            e.tags.insert(format!("k{i:02}"), "v".repeat(200));
        }
        e.finalize(Some(Environment::Staging), None);
        assert_eq!(e.provider, "openai");
        assert_eq!(e.model, "unknown");
        assert_eq!(e.endpoint_tag, "a b");
        assert_eq!(e.attempt, 64);
        assert_eq!(e.tenant_id, None);
        assert_eq!(e.user_id.as_ref().unwrap().len(), 128);
        assert_eq!((e.input_tokens, e.output_tokens), (7, 2));
        assert_eq!(e.cost_usd, Some(0.00001585));
        assert_eq!(e.tags.len(), 10);
        assert!(e.tags.values().all(|v| v.len() == 128));
        assert_eq!(e.environment, Some(Environment::Staging));
        assert_eq!(e.data_mode, None);
        let mut n = Event::new("p", "m", "x").cost_usd(f64::NAN);
        n.finalize(None, Some(DataMode::Test));
        assert_eq!((n.cost_usd, n.data_mode), (None, Some(DataMode::Test)));
    }

    #[test]
    fn rounding_to_nano_dollars() {
        assert_eq!(round_usd(0.00012345), Some(0.00012345));
        assert_eq!(round_usd(0.0000158504), Some(0.00001585));
        assert_eq!(round_usd(-1.0), None);
        // The shortest text of a rounded amount never has more than 9 decimals.
        for nanos in [1u64, 7, 15850, 123_456_789, 999_999_999, 1_000_000_001] {
            let f = round_usd(nanos as f64 / 1e9).unwrap();
            let text = serde_json::Number::from_f64(f).unwrap().to_string();
            let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
            let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i64
                - exp.parse::<i64>().unwrap();
            assert!(decimals <= 9, "{text}");
            let back: f64 = text.parse().unwrap();
            assert_eq!((back * 1e9).round() as u64, nanos, "{text}");
        }
    }

    #[test]
    fn tag_keys_outside_the_servers_charset_become_underscores() {
        let mut e = Event::new("p", "m", "x")
            .tag("team name", "a")
            .tag("région/zone", "b")
            .tag("ok_key-1.x", "c");
        e.finalize(None, None);
        let tags: Vec<(&str, &str)> = e
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("ok_key-1.x", "c"),
                ("r_gion_zone", "b"),
                ("team_name", "a")
            ]
        );
    }
}
