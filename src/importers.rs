//! Importers for the logs of tools users leave (`burnrate import --format F`): each
//! turns one JSON line of the other tool's export into an event of the contract (JSON
//! text), which then takes `import`'s usual path (validation, dedupe, pricing, the
//! rejected-line report). Pure. The field maps are documented in docs/importers.md.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Our own contract, one event per line.
    Burnrate,
    /// The JSON log line of a hand-made wrapper (`{"event":"openai.request",...}`).
    Wrapper,
    /// LiteLLM's `LiteLLM_SpendLogs` rows exported as JSON lines.
    Litellm,
    /// Langfuse's observations export (JSONL): generations with usage and cost.
    Langfuse,
    /// Helicone's request export (`@helicone/export --format jsonl`, or the REST API's rows).
    Helicone,
}

pub const FORMATS: &str = "burnrate, wrapper, litellm, langfuse, helicone";

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "burnrate" => Some(Format::Burnrate),
            "wrapper" => Some(Format::Wrapper),
            "litellm" => Some(Format::Litellm),
            "langfuse" => Some(Format::Langfuse),
            "helicone" => Some(Format::Helicone),
            _ => None,
        }
    }

    /// The event text for one line, None for a line the format leaves out (a Langfuse
    /// observation that is not a generation: spans and events carry no usage); `Err`
    /// says why the line is not an object.
    pub fn convert(self, line: &str) -> Result<Option<String>, String> {
        if self == Format::Burnrate {
            return Ok(Some(line.to_string()));
        }
        let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(row) = value else {
            return Err("each line must be a JSON object".into());
        };
        let event = match self {
            Format::Wrapper => wrapper(&row),
            Format::Litellm => litellm(&row),
            Format::Langfuse => match langfuse(&row) {
                Some(event) => event,
                None => return Ok(None),
            },
            Format::Helicone => helicone(&row),
            Format::Burnrate => unreachable!("returned above"),
        };
        Ok(Some(Value::Object(event).to_string()))
    }
}

/// A tool's own cost of a call when it is above $0, read as exact decimal text (0 is
/// what these tools record for a model they cannot price: the book prices the call).
fn positive_cost(v: &Value) -> bool {
    crate::money::Usd::parse_rounded(&v.to_string()).is_ok_and(|u| u.nanos() > 0)
}

fn copy(event: &mut Map<String, Value>, field: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        event.insert(field.into(), v.clone());
    }
}

/// `{"event":"openai.request","request_id","feature","route","customer_id","model",
/// "prompt_tokens","completion_tokens","reasoning_tokens","cached_tokens","cost_usd",
/// "timestamp" (or "ts"),"latency_ms","error"}`. Its completion tokens exclude reasoning tokens.
fn wrapper(row: &Map<String, Value>) -> Map<String, Value> {
    let mut e = Map::new();
    let provider = row
        .get("provider")
        .and_then(Value::as_str)
        .or_else(|| row.get("event")?.as_str()?.split('.').next());
    copy(&mut e, "provider", provider.map(Value::from).as_ref());
    copy(&mut e, "externalRequestId", row.get("request_id"));
    copy(&mut e, "endpointTag", row.get("feature"));
    copy(&mut e, "tenantId", row.get("customer_id"));
    copy(&mut e, "userId", row.get("user_id"));
    copy(&mut e, "model", row.get("model"));
    copy(&mut e, "inputTokens", row.get("prompt_tokens"));
    copy(&mut e, "cachedTokens", row.get("cached_tokens"));
    copy(&mut e, "reasoningTokens", row.get("reasoning_tokens"));
    copy(&mut e, "costUsd", row.get("cost_usd"));
    copy(
        &mut e,
        "timestamp",
        row.get("timestamp").or_else(|| row.get("ts")),
    );
    copy(&mut e, "latencyMs", row.get("latency_ms"));
    let completion = row.get("completion_tokens");
    let reasoning = row.get("reasoning_tokens").and_then(Value::as_u64);
    let output = match (completion.and_then(Value::as_u64), reasoning) {
        (Some(c), Some(r)) => Some(json!(c.saturating_add(r))),
        _ => completion.cloned(),
    };
    copy(&mut e, "outputTokens", output.as_ref());
    if let Some(route) = row.get("route").and_then(Value::as_str) {
        e.insert("tags".into(), json!({ "route": route }));
    }
    let failed = row.get("error").is_some_and(|v| !v.is_null() && v != false);
    e.insert(
        "status".into(),
        json!(if failed { "error" } else { "success" }),
    );
    e
}

/// A `LiteLLM_SpendLogs` row: request_id, startTime, endTime, model, custom_llm_provider,
/// prompt_tokens, completion_tokens, spend, end_user, team_id, request_tags, status.
/// The endpoint is the first request tag (LiteLLM has no feature field; without a tag
/// the row is rejected naming endpointTag rather than guessed).
fn litellm(row: &Map<String, Value>) -> Map<String, Value> {
    let mut e = Map::new();
    copy(&mut e, "externalRequestId", row.get("request_id"));
    copy(
        &mut e,
        "timestamp",
        row.get("startTime").map(litellm_time).as_ref(),
    );
    copy(&mut e, "provider", row.get("custom_llm_provider"));
    copy(&mut e, "model", row.get("model"));
    copy(&mut e, "inputTokens", row.get("prompt_tokens"));
    copy(&mut e, "outputTokens", row.get("completion_tokens"));
    copy(&mut e, "userId", row.get("end_user").filter(|v| v != &""));
    // LiteLLM's own cost of the call; 0 is its value for a model it cannot price.
    let spend = row.get("spend").filter(|v| positive_cost(v));
    copy(&mut e, "costUsd", spend);
    let tags = row
        .get("request_tags")
        .map(litellm_tags)
        .unwrap_or_default();
    copy(
        &mut e,
        "endpointTag",
        tags.first().map(|t| json!(t)).as_ref(),
    );
    if let Some(team) = row
        .get("team_id")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        e.insert("tags".into(), json!({ "team": team }));
    }
    let status = match row.get("status").and_then(Value::as_str) {
        Some("failure") => "error",
        _ => "success",
    };
    e.insert("status".into(), json!(status));
    if let (Some(start), Some(end)) = (time_ms(row.get("startTime")), time_ms(row.get("endTime"))) {
        if end >= start {
            e.insert("latencyMs".into(), json!(end - start));
        }
    }
    e
}

/// A Langfuse observation (its public API's `ObservationsView`, which the UI's JSONL
/// export writes too): only `type: GENERATION` rows become events. Langfuse's usage
/// types are disjoint (`input` excludes `input_*` details such as cached tokens,
/// `output` excludes `output_*` such as reasoning; cost is the sum over types), so the
/// contract's totals are their sums.
fn langfuse(row: &Map<String, Value>) -> Option<Map<String, Value>> {
    if row.get("type").and_then(Value::as_str) != Some("GENERATION") {
        return None;
    }
    let mut e = Map::new();
    let meta = row.get("metadata").and_then(Value::as_object);
    let meta_field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| meta?.get(*n).filter(|v| v.is_string()))
    };
    copy(&mut e, "externalRequestId", row.get("id"));
    copy(&mut e, "timestamp", row.get("startTime"));
    copy(&mut e, "model", row.get("model"));
    let provider = meta_field(&["provider", "ls_provider"])
        .and_then(Value::as_str)
        .or_else(|| provider_of_model(row.get("model")?.as_str()?));
    copy(&mut e, "provider", provider.map(Value::from).as_ref());
    let endpoint = meta_field(&["endpointTag", "feature"]).or_else(|| row.get("name"));
    copy(&mut e, "endpointTag", endpoint);
    copy(&mut e, "tenantId", meta_field(&["tenantId", "tenant_id"]));
    copy(
        &mut e,
        "userId",
        row.get("userId")
            .or_else(|| meta_field(&["userId", "user_id"])),
    );
    let version = match (
        row.get("promptName").and_then(Value::as_str),
        row.get("promptVersion"),
    ) {
        (Some(name), Some(v)) if !v.is_null() => Some(json!(format!("{name}-v{v}"))),
        _ => row.get("version").cloned(),
    };
    copy(&mut e, "promptVersion", version.as_ref());
    langfuse_usage(row, &mut e);
    let cost = row
        .get("costDetails")
        .and_then(|c| c.get("total"))
        .or_else(|| row.get("calculatedTotalCost"))
        .filter(|v| positive_cost(v));
    copy(&mut e, "costUsd", cost);
    let failed = row.get("level").and_then(Value::as_str) == Some("ERROR");
    e.insert(
        "status".into(),
        json!(if failed { "error" } else { "success" }),
    );
    if let (Some(start), Some(end)) = (time_ms(row.get("startTime")), time_ms(row.get("endTime"))) {
        if end >= start {
            e.insert("latencyMs".into(), json!(end - start));
        }
    }
    Some(e)
}

/// `usageDetails` (else the older `usage`: input, output) as the contract's tokens.
fn langfuse_usage(row: &Map<String, Value>, e: &mut Map<String, Value>) {
    let details = row
        .get("usageDetails")
        .and_then(Value::as_object)
        .filter(|d| !d.is_empty())
        .or_else(|| row.get("usage").and_then(Value::as_object));
    let Some(d) = details else { return };
    let n = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
    let sum = |pred: &dyn Fn(&str) -> bool| -> u64 {
        d.iter()
            .filter(|(k, _)| pred(k))
            .filter_map(|(_, v)| v.as_u64())
            .sum()
    };
    let input = sum(&|k| k == "input" || k.starts_with("input_") || k.starts_with("cache_"));
    let output = sum(&|k| k == "output" || k.starts_with("output_"));
    let cached = n("input_cached_tokens") + n("input_cache_read") + n("cache_read_input_tokens");
    let written = n("input_cache_creation") + n("cache_creation_input_tokens");
    let reasoning = n("output_reasoning_tokens") + n("output_reasoning");
    e.insert("inputTokens".into(), json!(input));
    e.insert("outputTokens".into(), json!(output));
    for (field, v) in [
        ("cachedTokens", cached),
        ("cacheWriteTokens", written),
        ("reasoningTokens", reasoning),
    ] {
        if v > 0 {
            e.insert(field.into(), json!(v));
        }
    }
}

/// The provider of a model family whose name says it (Langfuse records no provider):
/// gpt-*, o1/o3/o4*, chatgpt-*, text-embedding-* (openai), claude-* (anthropic),
/// gemini-* (google), mistral-*/mixtral-* (mistral). Anything else: none, and the
/// line is rejected naming provider (set `metadata.provider` in Langfuse).
fn provider_of_model(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| m.starts_with(p));
    if starts(&["gpt-", "chatgpt-", "text-embedding-", "o1", "o3", "o4"]) {
        Some("openai")
    } else if starts(&["claude-"]) {
        Some("anthropic")
    } else if starts(&["gemini-"]) {
        Some("google")
    } else if starts(&["mistral-", "mixtral-"]) {
        Some("mistral")
    } else {
        None
    }
}

/// A Helicone request row (`HeliconeRequest` of its REST API, what `@helicone/export`
/// writes): tokens as the provider counted them (`prompt_tokens` excludes the cache for
/// Anthropic and Bedrock, as their APIs do), the feature from the custom property
/// `Helicone-Property-Feature` (`request_properties.Feature`), else the request path.
fn helicone(row: &Map<String, Value>) -> Map<String, Value> {
    let mut e = Map::new();
    copy(&mut e, "externalRequestId", row.get("request_id"));
    copy(
        &mut e,
        "timestamp",
        row.get("request_created_at").map(litellm_time).as_ref(),
    );
    let provider = row
        .get("provider")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    copy(
        &mut e,
        "provider",
        provider.as_ref().map(|p| json!(p)).as_ref(),
    );
    let model = ["model", "response_model", "request_model"]
        .iter()
        .find_map(|k| {
            row.get(*k)
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        });
    copy(&mut e, "model", model);
    let n = |k: &str| row.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (read, write) = (
        n("prompt_cache_read_tokens"),
        n("prompt_cache_write_tokens"),
    );
    let cache_outside = matches!(provider.as_deref(), Some("anthropic" | "bedrock"));
    let input = n("prompt_tokens") + if cache_outside { read + write } else { 0 };
    if row.get("prompt_tokens").is_some_and(|v| !v.is_null()) {
        e.insert("inputTokens".into(), json!(input));
    }
    copy(&mut e, "outputTokens", row.get("completion_tokens"));
    for (field, v) in [("cachedTokens", read), ("cacheWriteTokens", write)] {
        if v > 0 {
            e.insert(field.into(), json!(v));
        }
    }
    let props = row.get("request_properties").and_then(Value::as_object);
    let prop = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| props?.get(*n).filter(|v| v.is_string()))
    };
    let endpoint =
        prop(&["Feature", "feature", "Endpoint", "endpoint"]).or_else(|| row.get("request_path"));
    copy(&mut e, "endpointTag", endpoint);
    copy(
        &mut e,
        "tenantId",
        prop(&["Tenant", "tenant", "Customer", "customer"]),
    );
    copy(
        &mut e,
        "userId",
        row.get("request_user_id")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty())),
    );
    copy(
        &mut e,
        "promptVersion",
        row.get("prompt_version")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty())),
    );
    let cost = row
        .get("cost")
        .or_else(|| row.get("costUSD"))
        .filter(|v| positive_cost(v));
    copy(&mut e, "costUsd", cost);
    copy(&mut e, "latencyMs", row.get("delay_ms"));
    let ok = row
        .get("response_status")
        .and_then(Value::as_f64)
        .is_none_or(|s| (200.0..300.0).contains(&s));
    e.insert("status".into(), json!(if ok { "success" } else { "error" }));
    e
}

/// LiteLLM writes times without an offset (`2026-03-01 10:00:00.123`), in UTC.
fn litellm_time(v: &Value) -> Value {
    match v.as_str() {
        Some(t) if !t.ends_with('Z') && !t.contains('+') => {
            json!(format!("{}Z", t.replace(' ', "T")))
        }
        _ => v.clone(),
    }
}

fn time_ms(v: Option<&Value>) -> Option<i64> {
    let text = litellm_time(v?);
    let t: jiff::Timestamp = text.as_str()?.parse().ok()?;
    Some(t.as_millisecond())
}

/// `request_tags` is a JSON array, or the text of one in CSV-born exports.
fn litellm_tags(v: &Value) -> Vec<String> {
    let parsed;
    let list = match v {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            &parsed
        }
        other => other,
    };
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(format: Format, line: &str) -> Value {
        serde_json::from_str(&format.convert(line).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn a_wrapper_line_maps_feature_customer_route_and_adds_reasoning_to_output() {
        let line = r#"{"event":"openai.request","request_id":"req-9","feature":"support.reply","route":"/api/reply","customer_id":"acme","model":"o4-mini","prompt_tokens":2006,"completion_tokens":108,"reasoning_tokens":192,"cached_tokens":1920,"cost_usd":0.0012}"#;
        assert_eq!(
            convert(Format::Wrapper, line),
            json!({"provider": "openai", "externalRequestId": "req-9", "endpointTag": "support.reply",
                   "tenantId": "acme", "model": "o4-mini", "inputTokens": 2006, "cachedTokens": 1920,
                   "reasoningTokens": 192, "outputTokens": 300, "costUsd": 0.0012,
                   "tags": {"route": "/api/reply"}, "status": "success"})
        );
    }

    #[test]
    fn a_litellm_spend_log_row_maps_tags_times_and_spend() {
        let line = r#"{"request_id":"chatcmpl-1","call_type":"acompletion","api_key":"88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b","spend":0.00024,"total_tokens":1200,"prompt_tokens":1000,"completion_tokens":200,"startTime":"2026-03-01 10:00:00.000","endTime":"2026-03-01 10:00:00.840","model":"gpt-4o-mini","model_group":"gpt-4o-mini","custom_llm_provider":"openai","end_user":"","team_id":"search","request_tags":["search.rank"],"status":"success","metadata":{}}"#;
        assert_eq!(
            convert(Format::Litellm, line),
            json!({"externalRequestId": "chatcmpl-1", "timestamp": "2026-03-01T10:00:00.000Z",
                   "provider": "openai", "model": "gpt-4o-mini", "inputTokens": 1000,
                   "outputTokens": 200, "costUsd": 0.00024, "endpointTag": "search.rank",
                   "tags": {"team": "search"}, "status": "success", "latencyMs": 840})
        );
    }

    #[test]
    fn a_langfuse_generation_sums_its_disjoint_usage_types_and_names_its_prompt() {
        let line = r#"{"id":"gen-1","traceId":"t-1","type":"GENERATION","name":"support.reply","startTime":"2026-03-01T10:00:00.000Z","endTime":"2026-03-01T10:00:01.250Z","model":"gpt-4o-mini","usageDetails":{"input":600,"input_cached_tokens":400,"output":150,"output_reasoning_tokens":50,"total":1200},"costDetails":{"input":0.00009,"output":0.00012,"total":0.00021},"level":"DEFAULT","promptName":"reply","promptVersion":3,"metadata":{"tenantId":"acme"}}"#;
        assert_eq!(
            convert(Format::Langfuse, line),
            json!({"externalRequestId": "gen-1", "timestamp": "2026-03-01T10:00:00.000Z",
                   "model": "gpt-4o-mini", "provider": "openai", "endpointTag": "support.reply",
                   "tenantId": "acme", "promptVersion": "reply-v3", "inputTokens": 1000,
                   "outputTokens": 200, "cachedTokens": 400, "reasoningTokens": 50,
                   "costUsd": 0.00021, "status": "success", "latencyMs": 1250})
        );
        let span =
            r#"{"id":"s-1","type":"SPAN","name":"retrieve","startTime":"2026-03-01T10:00:00Z"}"#;
        assert_eq!(Format::Langfuse.convert(span), Ok(None));
    }

    #[test]
    fn a_helicone_row_adds_anthropic_cache_tokens_to_input_and_reads_its_properties() {
        let line = r#"{"request_id":"5c0e7c38-1111-4a4e-9f3a-2f1c7c0b9a01","request_created_at":"2026-03-01T10:00:00.000Z","request_path":"/v1/messages","request_user_id":"u-9","request_properties":{"Feature":"support.reply","Tenant":"acme"},"provider":"ANTHROPIC","model":"claude-3-5-haiku-20241022","delay_ms":910,"prompt_tokens":100,"prompt_cache_read_tokens":800,"prompt_cache_write_tokens":100,"completion_tokens":40,"cost":0,"response_status":200}"#;
        assert_eq!(
            convert(Format::Helicone, line),
            json!({"externalRequestId": "5c0e7c38-1111-4a4e-9f3a-2f1c7c0b9a01",
                   "timestamp": "2026-03-01T10:00:00.000Z", "provider": "anthropic",
                   "model": "claude-3-5-haiku-20241022", "inputTokens": 1000, "outputTokens": 40,
                   "cachedTokens": 800, "cacheWriteTokens": 100, "endpointTag": "support.reply",
                   "tenantId": "acme", "userId": "u-9", "latencyMs": 910, "status": "success"})
        );
    }

    #[test]
    fn a_line_that_is_not_an_object_is_an_error() {
        assert!(Format::Wrapper.convert("[1]").is_err());
        assert!(Format::Litellm.convert("{").is_err());
    }
}
