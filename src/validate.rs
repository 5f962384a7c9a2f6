//! Validation: a `RawEvent` in, an `Event` or every field error out. Pure: the caller
//! passes the clock.

use crate::event::*;
use crate::money::Usd;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

pub const MAX_ID_LEN: usize = 128;
pub const MAX_MODEL_LEN: usize = 128;
pub const MAX_PROVIDER_LEN: usize = 64;
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_KEY_LEN: usize = 64;
pub const MAX_TAG_VALUE_LEN: usize = 128;
pub const MAX_ATTEMPT: u64 = 64;
/// Events stamped further ahead than this are refused: a skewed clock would otherwise
/// put spend into the future where no budget period sees it.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

/// Validate one raw event. `now_ms` is the receive time (ms since the epoch).
pub fn validate(raw: &RawEvent, now_ms: i64) -> Result<Event, Vec<FieldError>> {
    let mut v = Validator { errors: Vec::new() };
    let before_tokens = v.errors.len();
    let tokens = Tokens {
        input: v.count("inputTokens", &raw.input_tokens),
        cached: v.count("cachedTokens", &raw.cached_tokens),
        cache_write: v.count("cacheWriteTokens", &raw.cache_write_tokens),
        output: v.count("outputTokens", &raw.output_tokens),
        reasoning: v.count("reasoningTokens", &raw.reasoning_tokens),
    };
    let tokens_readable = v.errors.len() == before_tokens;
    let event = Event {
        external_request_id: v.text("externalRequestId", &raw.external_request_id, MAX_ID_LEN),
        attempt: v.attempt(&raw.attempt),
        timestamp_ms: v.timestamp(&raw.timestamp, now_ms),
        provider: v
            .required_text("provider", &raw.provider, MAX_PROVIDER_LEN)
            .to_ascii_lowercase(),
        model: v.required_text("model", &raw.model, MAX_MODEL_LEN),
        endpoint_tag: v.required_text("endpointTag", &raw.endpoint_tag, MAX_ID_LEN),
        prompt_version: v.text("promptVersion", &raw.prompt_version, MAX_ID_LEN),
        tenant_id: v.text("tenantId", &raw.tenant_id, MAX_ID_LEN),
        user_id: v.text("userId", &raw.user_id, MAX_ID_LEN),
        tokens,
        image_count: v.count("imageCount", &raw.image_count).min(u32::MAX as u64) as u32,
        latency_ms: v
            .optional_count("latencyMs", &raw.latency_ms)
            .map(|n| n.min(u32::MAX as u64) as u32),
        status: v
            .required_choice("status", &raw.status, Status::parse, Status::expected)
            .unwrap_or(Status::Success),
        error_code: v.text("errorCode", &raw.error_code, MAX_ID_LEN),
        data_mode: v
            .choice(
                "dataMode",
                &raw.data_mode,
                DataMode::parse,
                DataMode::expected,
            )
            .unwrap_or(DataMode::Real),
        environment: v
            .choice(
                "environment",
                &raw.environment,
                Environment::parse,
                Environment::expected,
            )
            .unwrap_or(Environment::Prod),
        operation: v
            .choice(
                "operation",
                &raw.operation,
                Operation::parse,
                Operation::expected,
            )
            .unwrap_or(Operation::Chat),
        service_tier: v
            .choice(
                "serviceTier",
                &raw.service_tier,
                ServiceTier::parse,
                ServiceTier::expected,
            )
            .unwrap_or(ServiceTier::Standard),
        usage_missing: v.flag("usageMissing", &raw.usage_missing),
        client_cost: v.cost(&raw.cost_usd),
        tags: v.tags(&raw.tags),
    };
    // Sums are only meaningful when every count could be read.
    if tokens_readable {
        v.check_token_sums(&tokens, &raw.total_tokens);
    }
    if v.errors.is_empty() {
        Ok(event)
    } else {
        Err(v.errors)
    }
}

struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// An optional string: absent, null or empty means "not given".
    fn text(&mut self, field: &str, value: &Option<Field>, max_len: usize) -> Option<String> {
        match value {
            None | Some(Field::Null) => None,
            Some(Field::Str(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    None
                } else if s.chars().count() > max_len {
                    self.fail(field, format!("must be at most {max_len} characters"));
                    None
                } else if s.chars().any(char::is_control) {
                    self.fail(field, "must not contain control characters");
                    None
                } else {
                    Some(s.to_string())
                }
            }
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    fn required_text(&mut self, field: &str, value: &Option<Field>, max_len: usize) -> String {
        let before = self.errors.len();
        match self.text(field, value, max_len) {
            Some(s) => s,
            None => {
                if self.errors.len() == before {
                    self.fail(field, "is required");
                }
                String::new()
            }
        }
    }

    fn optional_count(&mut self, field: &str, value: &Option<Field>) -> Option<u64> {
        match value {
            None | Some(Field::Null) => None,
            Some(Field::UInt(n)) => Some(*n),
            Some(_) => {
                self.fail(field, "must be a non-negative integer");
                None
            }
        }
    }

    fn count(&mut self, field: &str, value: &Option<Field>) -> u64 {
        self.optional_count(field, value).unwrap_or(0)
    }

    fn attempt(&mut self, value: &Option<Field>) -> u8 {
        match self.optional_count("attempt", value) {
            None => 1,
            Some(n) if (1..=MAX_ATTEMPT).contains(&n) => n as u8,
            Some(_) => {
                self.fail("attempt", format!("must be between 1 and {MAX_ATTEMPT}"));
                1
            }
        }
    }

    fn timestamp(&mut self, value: &Option<Field>, now_ms: i64) -> i64 {
        let text = match value {
            None | Some(Field::Null) => return now_ms,
            Some(Field::Str(s)) => s,
            Some(_) => {
                self.fail("timestamp", "must be an RFC 3339 string");
                return now_ms;
            }
        };
        match text.parse::<jiff::Timestamp>() {
            Ok(ts) => {
                let ms = ts.as_millisecond();
                if ms > now_ms + MAX_FUTURE_MS {
                    self.fail("timestamp", "is more than 5 minutes in the future");
                }
                ms
            }
            Err(_) => {
                self.fail(
                    "timestamp",
                    "must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z",
                );
                now_ms
            }
        }
    }

    fn choice<T>(
        &mut self,
        field: &str,
        value: &Option<Field>,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Option<T> {
        match value {
            None | Some(Field::Null) => None,
            Some(Field::Str(s)) => {
                let parsed = parse(s.trim());
                if parsed.is_none() {
                    self.fail(field, format!("must be one of: {}", expected()));
                }
                parsed
            }
            Some(_) => {
                self.fail(field, format!("must be one of: {}", expected()));
                None
            }
        }
    }

    fn required_choice<T>(
        &mut self,
        field: &str,
        value: &Option<Field>,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Option<T> {
        if matches!(value, None | Some(Field::Null)) {
            self.fail(field, format!("is required (one of: {})", expected()));
            return None;
        }
        self.choice(field, value, parse, expected)
    }

    fn flag(&mut self, field: &str, value: &Option<Field>) -> bool {
        match value {
            None | Some(Field::Null) => false,
            Some(Field::Bool(b)) => *b,
            Some(_) => {
                self.fail(field, "must be true or false");
                false
            }
        }
    }

    fn cost(&mut self, value: &Option<Field>) -> Option<Usd> {
        // The shortest text that reads back as the same number, so 0.00123 is 0.00123.
        let text: Cow<str> = match value {
            None | Some(Field::Null) => return None,
            Some(Field::UInt(n)) => Cow::Owned(n.to_string()),
            Some(Field::Float(f)) if *f >= 0.0 && f.is_finite() => Cow::Owned(
                serde_json::Number::from_f64(*f)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            _ => Cow::Borrowed(""),
        };
        match Usd::parse_rounded(&text) {
            Ok(usd) => Some(usd),
            Err(crate::money::ParseMoneyError::NotADecimal) => {
                self.fail("costUsd", "must be a non-negative number (USD)");
                None
            }
            Err(e) => {
                self.fail("costUsd", format!("{e}"));
                None
            }
        }
    }

    fn tags(&mut self, value: &Option<Value>) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        let map = match value {
            None | Some(Value::Null) => return tags,
            Some(Value::Object(map)) => map,
            Some(_) => {
                self.fail("tags", "must be an object of string values");
                return tags;
            }
        };
        if map.len() > MAX_TAGS {
            self.fail("tags", format!("must have at most {MAX_TAGS} keys"));
            return tags;
        }
        for (key, value) in map {
            let field = format!(
                "tags.{}",
                key.chars().take(MAX_TAG_KEY_LEN).collect::<String>()
            );
            if key.is_empty() || key.chars().count() > MAX_TAG_KEY_LEN {
                self.fail(
                    &field,
                    format!("tag keys must be 1 to {MAX_TAG_KEY_LEN} characters"),
                );
                continue;
            }
            match value {
                Value::String(s) if s.chars().count() <= MAX_TAG_VALUE_LEN => {
                    tags.insert(key.clone(), s.clone());
                }
                Value::String(_) => self.fail(
                    &field,
                    format!("must be at most {MAX_TAG_VALUE_LEN} characters"),
                ),
                _ => self.fail(&field, "must be a string"),
            }
        }
        tags
    }

    fn check_token_sums(&mut self, t: &Tokens, total: &Option<Field>) {
        if t.cached.saturating_add(t.cache_write) > t.input {
            self.fail(
                "cachedTokens",
                "cachedTokens + cacheWriteTokens must not exceed inputTokens (input includes cached and cache-write tokens)",
            );
        }
        if t.reasoning > t.output {
            self.fail(
                "reasoningTokens",
                "must not exceed outputTokens (output includes reasoning tokens)",
            );
        }
        if let Some(total) = self.optional_count("totalTokens", total) {
            if total != t.input.saturating_add(t.output) {
                self.fail("totalTokens", "must equal inputTokens + outputTokens");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_000_000_000;

    /// Events borrow from their JSON text; a test's text may live for the whole run.
    fn raw(v: Value) -> RawEvent<'static> {
        serde_json::from_str(Box::leak(v.to_string().into_boxed_str())).unwrap()
    }

    fn base() -> Value {
        json!({"externalRequestId": "r1", "provider": "OpenAI", "model": "gpt-4o-mini",
               "endpointTag": "support.reply", "inputTokens": 100, "cachedTokens": 40,
               "outputTokens": 50, "reasoningTokens": 10, "status": "success"})
    }

    fn fields(v: Value) -> Vec<String> {
        validate(&raw(v), NOW)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn accepts_a_valid_event_with_defaults() {
        let e = validate(&raw(base()), NOW).unwrap();
        assert_eq!(e.provider, "openai");
        assert_eq!(e.attempt, 1);
        assert_eq!(e.timestamp_ms, NOW);
        assert_eq!(e.data_mode, DataMode::Real);
        assert_eq!(e.environment, Environment::Prod);
        assert_eq!(
            e.tokens,
            Tokens {
                input: 100,
                cached: 40,
                cache_write: 0,
                output: 50,
                reasoning: 10
            }
        );
    }

    #[test]
    fn names_every_missing_required_field() {
        assert_eq!(
            fields(json!({})),
            vec!["provider", "model", "endpointTag", "status"]
        );
    }

    #[test]
    fn rejects_wrong_types_and_negative_or_fractional_tokens() {
        let mut v = base();
        v["inputTokens"] = json!(-1);
        v["outputTokens"] = json!(1.5);
        v["model"] = json!(42);
        assert_eq!(fields(v), vec!["inputTokens", "outputTokens", "model"]);
    }

    #[test]
    fn rejects_token_parts_larger_than_their_whole() {
        let mut v = base();
        v["cachedTokens"] = json!(80);
        v["cacheWriteTokens"] = json!(30);
        v["reasoningTokens"] = json!(51);
        v["totalTokens"] = json!(149);
        assert_eq!(
            fields(v),
            vec!["cachedTokens", "reasoningTokens", "totalTokens"]
        );
        let mut ok = base();
        ok["totalTokens"] = json!(150);
        assert!(validate(&raw(ok), NOW).is_ok());
    }

    #[test]
    fn rejects_unknown_vocabulary() {
        let mut v = base();
        v["status"] = json!("ok");
        v["dataMode"] = json!("prod");
        v["environment"] = json!("production");
        v["serviceTier"] = json!("turbo");
        assert_eq!(
            fields(v),
            vec!["status", "dataMode", "environment", "serviceTier"]
        );
    }

    #[test]
    fn rejects_long_strings_future_timestamps_and_too_many_tags() {
        let mut v = base();
        v["endpointTag"] = json!("x".repeat(129));
        v["timestamp"] = json!("2099-01-01T00:00:00Z");
        v["tags"] = json!((0..11)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect::<serde_json::Map<_, _>>());
        assert_eq!(fields(v), vec!["timestamp", "endpointTag", "tags"]);
    }

    #[test]
    fn accepts_a_timestamp_within_the_skew_allowance() {
        let mut v = base();
        let soon = jiff::Timestamp::from_millisecond(NOW + 4 * 60 * 1000).unwrap();
        v["timestamp"] = json!(soon.to_string());
        assert_eq!(validate(&raw(v), NOW).unwrap().timestamp_ms, NOW + 240_000);
    }

    #[test]
    fn attempt_is_bounded() {
        let mut v = base();
        v["attempt"] = json!(0);
        assert_eq!(fields(v.clone()), vec!["attempt"]);
        v["attempt"] = json!(65);
        assert_eq!(fields(v.clone()), vec!["attempt"]);
        v["attempt"] = json!(3);
        assert_eq!(validate(&raw(v), NOW).unwrap().attempt, 3);
    }

    #[test]
    fn client_cost_is_exact() {
        let mut v = base();
        v["costUsd"] = json!(0.00123);
        assert_eq!(
            validate(&raw(v), NOW).unwrap().client_cost,
            Some(Usd(1_230_000))
        );
    }
}
