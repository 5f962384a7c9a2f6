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
}

pub const FORMATS: &str = "burnrate, wrapper, litellm";

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "burnrate" => Some(Format::Burnrate),
            "wrapper" => Some(Format::Wrapper),
            "litellm" => Some(Format::Litellm),
            _ => None,
        }
    }

    /// The event text for one line; `Err` says why the line is not an object.
    pub fn convert(self, line: &str) -> Result<String, String> {
        if self == Format::Burnrate {
            return Ok(line.to_string());
        }
        let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(row) = value else {
            return Err("each line must be a JSON object".into());
        };
        let event = match self {
            Format::Wrapper => wrapper(&row),
            Format::Litellm => litellm(&row),
            Format::Burnrate => unreachable!("returned above"),
        };
        Ok(Value::Object(event).to_string())
    }
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
    let spend = row
        .get("spend")
        .filter(|v| crate::money::Usd::parse_rounded(&v.to_string()).is_ok_and(|u| u.nanos() > 0));
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
        serde_json::from_str(&format.convert(line).unwrap()).unwrap()
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
    fn a_line_that_is_not_an_object_is_an_error() {
        assert!(Format::Wrapper.convert("[1]").is_err());
        assert!(Format::Litellm.convert("{").is_err());
    }
}
