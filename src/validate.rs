//! Validation: a `RawEvent` in, an `Event` or every field error out. Pure: the caller
//! passes the clock.

use crate::event::*;
use crate::money::Usd;
use crate::settings::{IngestSettings, UnknownFields};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

pub const MAX_ID_LEN: usize = 128;
pub const MAX_MODEL_LEN: usize = 128;
pub const MAX_PROVIDER_LEN: usize = 64;
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_VALUE_LEN: usize = 128;
pub const MAX_ATTEMPT: u64 = 64;
/// Events stamped further ahead than this are refused: a skewed clock would otherwise
/// put spend into the future where no budget period sees it.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
/// The earliest accepted timestamp, 2020-01-01T00:00:00Z: older is a client bug (a zero
/// or seconds-as-ms clock), never real LLM traffic.
pub const MIN_TIMESTAMP_MS: i64 = 1_577_836_800_000;
/// Per-call ceilings (docs/event-contract.md). They keep every stored sum far from
/// i64 overflow: a billion calls at the token ceiling still fit.
pub const MAX_TOKENS: u64 = 10_000_000_000;
/// USD per call, for `costUsd` and the guard's `estimatedCostUsd`.
pub const MAX_COST_USD: Usd = Usd(10_000 * 1_000_000_000);
pub const MAX_LATENCY_MS: u64 = 86_400_000;
pub const MAX_IMAGE_COUNT: u64 = 10_000;
/// `n` with thousands separators, for limits in messages.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A valid event and what the client should hear about it (unknown fields, missing
/// usage), each as a field and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub event: Event,
    pub warnings: Vec<FieldError>,
}

/// Validate one raw event under the default workspace settings.
pub fn validate(raw: &RawEvent, now_ms: i64) -> Result<Event, Vec<FieldError>> {
    check(raw, now_ms, &IngestSettings::default()).map(|c| c.event)
}

/// Validate one raw event under a workspace's settings. `now_ms` is the receive time
/// (ms since the epoch).
pub fn check(
    raw: &RawEvent,
    now_ms: i64,
    settings: &IngestSettings,
) -> Result<Checked, Vec<FieldError>> {
    let mut v = Validator { errors: Vec::new() };
    let mut warnings = Vec::new();
    for name in &raw.unknown.names {
        let message = match suggest(name) {
            Some(known) => format!("unknown field; did you mean {known}?"),
            None => "unknown field; ignored".to_string(),
        };
        match settings.unknown_fields {
            UnknownFields::Warn => warnings.push(FieldError::new(name, message)),
            UnknownFields::Reject => v.fail(name, message),
        }
    }
    let before_tokens = v.errors.len();
    let tokens = Tokens {
        input: v.tokens("inputTokens", &raw.input_tokens),
        cached: v.tokens("cachedTokens", &raw.cached_tokens),
        cache_write: v.tokens("cacheWriteTokens", &raw.cache_write_tokens),
        output: v.tokens("outputTokens", &raw.output_tokens),
        reasoning: v.tokens("reasoningTokens", &raw.reasoning_tokens),
    };
    let tokens_readable = v.errors.len() == before_tokens;
    let success = matches!(&raw.status, Some(Field::Str(s)) if Status::parse(s.trim()) == Some(Status::Success));
    // A success with no usage at all is not a free call: its usage is missing and its
    // cost unknown, unless the client says which (usageMissing given) or sends a cost.
    let usage_unreported = success && !reports_usage(raw) && !given(&raw.usage_missing);
    if usage_unreported {
        warnings.push(FieldError::new(
            "usage",
            "status is success but no token count, imageCount or costUsd was sent: stored as usageMissing, unpriced",
        ));
    }
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
        // The ceilings fit u32, so these conversions never clamp.
        image_count: v
            .bounded("imageCount", &raw.image_count, MAX_IMAGE_COUNT)
            .unwrap_or(0) as u32,
        latency_ms: v
            .bounded("latencyMs", &raw.latency_ms, MAX_LATENCY_MS)
            .map(|n| n as u32),
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
        usage_missing: v.flag("usageMissing", &raw.usage_missing) || usage_unreported,
        client_cost: v.cost(&raw.cost_usd),
        tags: v.tags(&raw.tags),
    };
    for field in &settings.required_fields {
        let missing = match field.as_str() {
            "tenantId" => event.tenant_id.is_none(),
            "userId" => event.user_id.is_none(),
            "promptVersion" => event.prompt_version.is_none(),
            "externalRequestId" => event.external_request_id.is_none(),
            // endpointTag is always required.
            _ => false,
        };
        let already_blamed = v.errors.iter().any(|e| &e.field == field);
        if missing && !already_blamed {
            v.fail(
                field,
                "is required by this workspace's settings (requiredFields)",
            );
        }
    }
    let total = v.bounded("totalTokens", &raw.total_tokens, MAX_TOKENS);
    // Sums are only meaningful when every count could be read.
    if tokens_readable {
        v.check_token_sums(&tokens, total);
    }
    if v.errors.is_empty() {
        Ok(Checked { event, warnings })
    } else {
        Err(v.errors)
    }
}

fn given(field: &Option<Field>) -> bool {
    !matches!(field, None | Some(Field::Null))
}

/// Did the client report any usage: a token count, an image count or a cost (zero
/// counts: explicit zeros stay zeros).
fn reports_usage(raw: &RawEvent) -> bool {
    [
        &raw.input_tokens,
        &raw.output_tokens,
        &raw.cached_tokens,
        &raw.cache_write_tokens,
        &raw.reasoning_tokens,
        &raw.total_tokens,
        &raw.image_count,
        &raw.cost_usd,
    ]
    .into_iter()
    .any(given)
}

/// Widely used names of other APIs for contract fields, which no edit distance finds.
const ALIASES: &[(&str, &str)] = &[
    ("prompttokens", "inputTokens"),
    ("completiontokens", "outputTokens"),
    ("cost", "costUsd"),
    ("latency", "latencyMs"),
    ("requestid", "externalRequestId"),
    ("tenant", "tenantId"),
    ("user", "userId"),
    ("endpoint", "endpointTag"),
    ("env", "environment"),
];

/// The contract field a misspelled name most likely meant: the same letters ignoring
/// case, `_` and `-` (`input_tokens`, `tenantID`), an alias, or within two edits.
pub fn suggest(name: &str) -> Option<&'static str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = norm(name);
    if let Some(known) = FIELD_NAMES.iter().find(|f| norm(f) == wanted) {
        return Some(known);
    }
    if let Some((_, known)) = ALIASES.iter().find(|(alias, _)| *alias == wanted) {
        return Some(known);
    }
    FIELD_NAMES
        .iter()
        .map(|f| (strsim::levenshtein(&norm(f), &wanted), *f))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, f)| f)
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

    /// An optional count of at most `max`.
    fn bounded(&mut self, field: &str, value: &Option<Field>, max: u64) -> Option<u64> {
        match self.optional_count(field, value) {
            Some(n) if n > max => {
                self.fail(field, format!("must be at most {}", grouped(max)));
                None
            }
            n => n,
        }
    }

    fn tokens(&mut self, field: &str, value: &Option<Field>) -> u64 {
        self.bounded(field, value, MAX_TOKENS).unwrap_or(0)
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
                } else if ms < MIN_TIMESTAMP_MS {
                    self.fail("timestamp", "must not be before 2020-01-01T00:00:00Z");
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
            Ok(usd) if usd > MAX_COST_USD => {
                self.fail("costUsd", "must be at most 10000 (USD per call)");
                None
            }
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
            if !is_valid_tag_key(key) {
                // A key that cannot be named safely (control characters, too long) is
                // blamed on `tags` as a whole.
                let nameable = key.chars().count() <= MAX_TAG_KEY_LEN
                    && !key.is_empty()
                    && !key.chars().any(char::is_control);
                let field = if nameable {
                    format!("tags.{key}")
                } else {
                    "tags".to_string()
                };
                self.fail(&field, tag_key_rule());
                continue;
            }
            let field = format!("tags.{key}");
            match value {
                Value::String(s) if s.chars().count() > MAX_TAG_VALUE_LEN => self.fail(
                    &field,
                    format!("must be at most {MAX_TAG_VALUE_LEN} characters"),
                ),
                Value::String(s) if s.chars().any(char::is_control) => {
                    self.fail(&field, "must not contain control characters")
                }
                Value::String(s) => {
                    tags.insert(key.clone(), s.clone());
                }
                _ => self.fail(&field, "must be a string"),
            }
        }
        tags
    }

    fn check_token_sums(&mut self, t: &Tokens, total: Option<u64>) {
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
        if let Some(total) = total {
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

    #[test]
    fn input_tokens_beyond_ten_billion_are_rejected_naming_the_field() {
        let mut v = base();
        v["inputTokens"] = json!(u64::MAX);
        v["outputTokens"] = json!(MAX_TOKENS + 1);
        v["totalTokens"] = json!(9_223_372_036_854_775_808u64);
        assert_eq!(
            fields(v),
            vec!["inputTokens", "outputTokens", "totalTokens"]
        );
        let errors = validate(&raw(json!({"inputTokens": MAX_TOKENS + 1})), NOW).unwrap_err();
        assert_eq!(errors[0].message, "must be at most 10,000,000,000");
        let mut ok = base();
        ok["inputTokens"] = json!(MAX_TOKENS);
        ok["cachedTokens"] = json!(MAX_TOKENS);
        ok["outputTokens"] = json!(0);
        ok["reasoningTokens"] = json!(0);
        ok["totalTokens"] = json!(MAX_TOKENS);
        assert_eq!(validate(&raw(ok), NOW).unwrap().tokens.input, MAX_TOKENS);
    }

    #[test]
    fn cost_latency_and_images_have_ceilings_instead_of_silent_clamps() {
        let mut v = base();
        v["costUsd"] = json!(9_223_372_036u64);
        v["latencyMs"] = json!(u64::from(u32::MAX) + 5);
        v["imageCount"] = json!(MAX_IMAGE_COUNT + 1);
        assert_eq!(fields(v), vec!["imageCount", "latencyMs", "costUsd"]);
        let mut v = base();
        v["costUsd"] = json!(10_000.000_000_001);
        assert_eq!(fields(v), vec!["costUsd"]);
        let mut ok = base();
        ok["costUsd"] = json!(10_000);
        ok["latencyMs"] = json!(MAX_LATENCY_MS);
        ok["imageCount"] = json!(MAX_IMAGE_COUNT);
        let e = validate(&raw(ok), NOW).unwrap();
        assert_eq!(e.client_cost, Some(MAX_COST_USD));
        assert_eq!(e.latency_ms, Some(86_400_000));
        assert_eq!(e.image_count, 10_000);
    }

    #[test]
    fn timestamps_before_2020_are_rejected() {
        let mut v = base();
        v["timestamp"] = json!("2019-12-31T23:59:59.999Z");
        assert_eq!(fields(v.clone()), vec!["timestamp"]);
        v["timestamp"] = json!("1970-01-01T00:00:00Z");
        assert_eq!(fields(v.clone()), vec!["timestamp"]);
        v["timestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(
            validate(&raw(v), NOW).unwrap().timestamp_ms,
            MIN_TIMESTAMP_MS
        );
    }

    #[test]
    fn tag_keys_outside_the_charset_are_rejected_naming_the_key() {
        let mut v = base();
        v["tags"] = json!({"team": "a", "bad\\": "b", "nul\u{0}": "c", "sp ace": "d",
                           "ok.key-1_x": "e", "ctl": "x\u{7}"});
        let errors = validate(&raw(v), NOW).unwrap_err();
        let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, vec!["tags.bad\\", "tags.ctl", "tags", "tags.sp ace"]);
        assert!(errors[0].message.contains("A-Z a-z 0-9 _ . -"));
        assert!(is_valid_tag_key("ok.key-1_x"));
        assert!(is_valid_tag_key(&"k".repeat(64)));
        for bad in ["", "a\"b", "é", "a b", "a\\", &"k".repeat(65)] {
            assert!(!is_valid_tag_key(bad), "{bad:?}");
        }
    }

    fn no_usage() -> Value {
        json!({"externalRequestId": "r1", "provider": "openai", "model": "gpt-4o-mini",
               "endpointTag": "support.reply", "status": "success"})
    }

    #[test]
    fn a_success_without_usage_is_usage_missing_with_a_warning() {
        let c = check(&raw(no_usage()), NOW, &IngestSettings::default()).unwrap();
        assert!(c.event.usage_missing);
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.warnings[0].field, "usage");
        // Explicit zeros stay zeros; so do a cost, images, or a client that says so.
        for (field, value) in [
            ("inputTokens", json!(0)),
            ("totalTokens", json!(0)),
            ("imageCount", json!(0)),
            ("costUsd", json!(0)),
            ("usageMissing", json!(false)),
        ] {
            let mut v = no_usage();
            v[field] = value;
            let c = check(&raw(v), NOW, &IngestSettings::default()).unwrap();
            assert!(!c.event.usage_missing, "{field}");
            assert!(c.warnings.is_empty(), "{field}");
        }
        // A failed call without usage is not a missing usage.
        let mut v = no_usage();
        v["status"] = json!("error");
        assert!(!validate(&raw(v), NOW).unwrap().usage_missing);
    }

    #[test]
    fn misspelled_fields_are_warned_with_the_closest_name() {
        let mut v = base();
        v["tenantID"] = json!("acme");
        v["promptversion"] = json!("v2");
        v["input_tokens"] = json!(5);
        v["colour"] = json!("red");
        let c = check(&raw(v), NOW, &IngestSettings::default()).unwrap();
        let said: Vec<(&str, &str)> = c
            .warnings
            .iter()
            .map(|w| (w.field.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(
            said,
            vec![
                ("colour", "unknown field; ignored"),
                ("input_tokens", "unknown field; did you mean inputTokens?"),
                (
                    "promptversion",
                    "unknown field; did you mean promptVersion?"
                ),
                ("tenantID", "unknown field; did you mean tenantId?"),
            ]
        );
        assert_eq!(c.event.tenant_id, None);
        assert_eq!(suggest("completion_tokens"), Some("outputTokens"));
        assert_eq!(suggest("endpointTga"), Some("endpointTag"));
        assert_eq!(suggest("latencyMillis"), None);
    }

    #[test]
    fn a_workspace_may_reject_unknown_fields_and_require_attribution() {
        let strict = IngestSettings::default()
            .updated(&json!({"unknownFields": "reject", "requiredFields": ["tenantId", "promptVersion"]}))
            .unwrap();
        let mut v = base();
        v["tenantID"] = json!("acme");
        let errors = check(&raw(v), NOW, &strict).unwrap_err();
        let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, vec!["tenantID", "promptVersion", "tenantId"]);
        assert_eq!(errors[0].message, "unknown field; did you mean tenantId?");
        let mut ok = base();
        ok["tenantId"] = json!("acme");
        ok["promptVersion"] = json!("v1");
        assert!(check(&raw(ok), NOW, &strict).unwrap().warnings.is_empty());
    }
}
