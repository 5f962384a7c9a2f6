//! OpenTelemetry GenAI spans -> ingest events (`POST /v1/traces`). Pure: decodes an OTLP
//! trace export (protobuf or JSON) and maps every span that carries GenAI usage to one
//! event of the contract, as JSON, so it goes through exactly the validation, dedupe and
//! pricing of `/v1/ingest/*`. The attribute names it reads (the current GenAI semantic
//! conventions and the spellings of OpenLIT, OpenLLMetry and OpenInference) and the
//! token conversions are documented in docs/otlp.md.

pub mod proto;

use proto::{AnyValue, ExportTraceServiceRequest, KeyValue, Span, Value};
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;

/// Decode an `application/x-protobuf` export.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    prost::Message::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"))
}

/// Decode an `application/json` export (OTLP/JSON).
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON: {e}"))
}

/// Extra attribute names a workspace reads for an attribution field (`endpointTag`,
/// `promptVersion`, `tenantId`, `userId`), tried before the built-in ones.
pub type AttributeNames = BTreeMap<String, Vec<String>>;

/// One event made from a span, with the span it came from (for the reply).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// `traceId/spanId` in hex.
    pub span: String,
    /// The event in the contract's JSON form.
    pub event: Json,
}

#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    pub events: Vec<SpanEvent>,
    /// Spans without GenAI usage (HTTP spans, agent steps, ...), counted and left out.
    pub skipped: usize,
}

/// Every span of the export that carries usage, as an event.
pub fn map_request(request: &ExportTraceServiceRequest, names: &AttributeNames) -> Mapped {
    let mut mapped = Mapped::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            match map_span(span, Attrs(&span.attributes), Attrs(resource), names) {
                Some(event) => mapped.events.push(SpanEvent {
                    span: format!(
                        "{}/{}",
                        hex::encode(&span.trace_id),
                        hex::encode(&span.span_id)
                    ),
                    event,
                }),
                None => mapped.skipped += 1,
            }
        }
    }
    mapped
}

/// A span's or a resource's attributes.
#[derive(Clone, Copy)]
struct Attrs<'a>(&'a [KeyValue]);

impl<'a> Attrs<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v: &AnyValue| v.value.as_ref())
    }

    /// The first of `keys` present, as text (numbers and booleans as written).
    fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| match self.get(k)? {
            Value::StringValue(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            Value::DoubleValue(f) => Some(f.to_string()),
            Value::BoolValue(b) => Some(b.to_string()),
            _ => None,
        })
    }

    /// The first of `keys` present, as a count.
    fn count(&self, keys: &[&str]) -> Option<Count> {
        keys.iter().find_map(|k| self.get(k).map(Count::of))
    }
}

/// A token count as an attribute holds it: a clean integer, or anything else, which is
/// passed on as it is so that validation names the field.
#[derive(Debug, Clone, PartialEq)]
enum Count {
    Int(u64),
    Other(Json),
}

impl Count {
    fn of(value: &Value) -> Count {
        match value {
            Value::IntValue(i) if *i >= 0 => Count::Int(*i as u64),
            Value::IntValue(i) => Count::Other(json!(i)),
            // Some instrumentations record counts as doubles (12.0).
            Value::DoubleValue(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 1e18 => {
                Count::Int(*f as u64)
            }
            Value::DoubleValue(f) => Count::Other(json!(f)),
            Value::StringValue(s) => s
                .trim()
                .parse::<u64>()
                .map_or_else(|_| Count::Other(json!(s)), Count::Int),
            _ => Count::Other(json!("a non-numeric attribute")),
        }
    }

    fn int(&self) -> Option<u64> {
        match self {
            Count::Int(n) => Some(*n),
            Count::Other(_) => None,
        }
    }

    fn json(&self) -> Json {
        match self {
            Count::Int(n) => json!(n),
            Count::Other(v) => v.clone(),
        }
    }
}

const INPUT: &[&str] = &[
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
    "llm.token_count.prompt",
];
const OUTPUT: &[&str] = &[
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
    "llm.token_count.completion",
];
const TOTAL: &[&str] = &[
    "gen_ai.usage.total_tokens",
    "llm.usage.total_tokens",
    "llm.token_count.total",
];
/// Cache counts the current conventions (and OpenInference's prompt details) define as
/// a part of input tokens.
const CACHE_READ_INSIDE: &[&str] = &[
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt_details.cache_read",
];
const CACHE_WRITE_INSIDE: &[&str] = &[
    "gen_ai.usage.cache_creation.input_tokens",
    // The Anthropic Python SDK's own spans (2.x).
    "gen_ai.usage.cache_write.input_tokens",
    "llm.token_count.prompt_details.cache_write",
];
/// Older spellings (OpenLIT, OpenLLMetry) copied from the provider's usage object, next
/// to an input count that follows that provider's own convention.
const CACHE_READ_COPIED: &[&str] = &[
    "gen_ai.usage.cache_read_input_tokens",
    "llm.usage.cache_read_input_tokens",
];
const CACHE_WRITE_COPIED: &[&str] = &[
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.usage.cache_creation_input_tokens",
];
const REASONING: &[&str] = &[
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
];
/// OpenLIT's cost of the call.
const COST: &[&str] = &["gen_ai.usage.cost"];

const PROVIDER: &[&str] = &[
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.provider",
    "llm.system",
];
const MODEL: &[&str] = &[
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.request.model",
    "llm.model_name",
];

/// Providers whose own usage object counts input without cache reads and writes.
const CACHE_OUTSIDE_INPUT: &[&str] = &["anthropic", "bedrock"];

fn map_span(span: &Span, attrs: Attrs, resource: Attrs, names: &AttributeNames) -> Option<Json> {
    let input = attrs.count(INPUT);
    let output = attrs.count(OUTPUT);
    let cost = attrs.get(COST[0]).and_then(cost_usd);
    if input.is_none() && output.is_none() && cost.is_none() {
        return None;
    }
    let provider = attrs.text(PROVIDER).map(|p| provider_name(&p));
    let mut event = Map::new();
    event.insert(
        "externalRequestId".into(),
        json!(request_id(span, attrs, provider.as_deref())),
    );
    put(&mut event, "provider", provider.clone().map(Json::from));
    put(&mut event, "model", attrs.text(MODEL).map(Json::from));
    attribution(&mut event, attrs, resource, names);
    let usage = Usage::read(attrs, input, output);
    usage.write(&mut event, provider.as_deref().unwrap_or(""));
    put(&mut event, "costUsd", cost);
    status(&mut event, span, attrs);
    timing(&mut event, span);
    put(
        &mut event,
        "operation",
        attrs
            .text(&["gen_ai.operation.name"])
            .and_then(|o| operation(&o)),
    );
    Some(Json::Object(event))
}

/// The call's id: the trace and the provider's response id (`gen_ai.response.id`) when
/// the span has one, else the trace and span ids. Two instrumentations of one call
/// (OpenLIT's span around the Anthropic SDK's own span, both with usage) share the trace
/// and name the same response, so the second is a duplicate, never a second call; the
/// trace keeps a server that answers every call with the same id (a test double, a
/// proxy) from folding calls of different requests into one. An exporter's retry is a
/// duplicate either way.
fn request_id(span: &Span, attrs: Attrs, provider: Option<&str>) -> String {
    let trace = hex::encode(&span.trace_id);
    let response = attrs.text(&["gen_ai.response.id"]);
    match (response, provider) {
        (Some(id), Some(provider))
            if format!("otel-{trace}-{provider}-{id}").len() <= crate::validate::MAX_ID_LEN =>
        {
            format!("otel-{trace}-{provider}-{id}")
        }
        _ => format!("otel-{trace}-{}", hex::encode(&span.span_id)),
    }
}

fn put(event: &mut Map<String, Json>, field: &str, value: Option<Json>) {
    if let Some(v) = value {
        event.insert(field.into(), v);
    }
}

/// Semantic-convention provider names (and capitalized spellings) as the price book
/// knows them.
fn provider_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let mapped = match lower.as_str() {
        "aws.bedrock" | "aws_bedrock" => "bedrock",
        "gcp.vertex_ai" => "vertex",
        "gcp.gemini" | "gcp.gen_ai" => "google",
        "azure.ai.openai" | "az.ai.openai" | "azure.ai.inference" => "azure",
        "mistral_ai" => "mistral",
        "x_ai" => "xai",
        "ibm.watsonx.ai" => "watsonx",
        other => other,
    };
    mapped.to_string()
}

/// A positive cost attribute. OpenLIT records 0 for a model it has no price for: that
/// is an unknown cost, left to the price book, never $0.
fn cost_usd(value: &Value) -> Option<Json> {
    match value {
        Value::DoubleValue(f) if *f > 0.0 => Some(json!(f)),
        Value::IntValue(i) if *i > 0 => Some(json!(i)),
        Value::StringValue(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f > 0.0)
            .map(|f| json!(f)),
        _ => None,
    }
}

/// endpointTag, promptVersion, tenantId and userId: the workspace's own attribute names
/// first, then the built-in ones on the span, then on the resource.
fn attribution(
    event: &mut Map<String, Json>,
    attrs: Attrs,
    resource: Attrs,
    names: &AttributeNames,
) {
    let fields: [(&str, &[&str]); 4] = [
        ("endpointTag", &["burnrate.endpoint_tag"]),
        ("promptVersion", &["burnrate.prompt_version"]),
        ("tenantId", &["burnrate.tenant_id"]),
        ("userId", &["burnrate.user_id", "user.id", "enduser.id"]),
    ];
    for (field, builtin) in fields {
        let custom: Vec<&str> = names
            .get(field)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let found = attrs
            .text(&custom)
            .or_else(|| resource.text(&custom))
            .or_else(|| attrs.text(builtin))
            .or_else(|| resource.text(builtin))
            .or_else(|| {
                (field == "endpointTag")
                    .then(|| resource.text(&["service.name"]))
                    .flatten()
            });
        put(event, field, found.map(Json::from));
    }
    let environment = attrs
        .text(&["burnrate.environment"])
        .or_else(|| resource.text(&["burnrate.environment"]))
        .or_else(|| {
            resource
                .text(&["deployment.environment.name", "deployment.environment"])
                .and_then(|e| environment(&e))
        });
    put(event, "environment", environment.map(Json::from));
    let data_mode = attrs
        .text(&["burnrate.data_mode"])
        .or_else(|| resource.text(&["burnrate.data_mode"]));
    put(event, "dataMode", data_mode.map(Json::from));
}

/// Deployment environment names as the contract's three.
fn environment(name: &str) -> Option<String> {
    let e = match name.trim().to_ascii_lowercase().as_str() {
        "prod" | "production" => "prod",
        "staging" | "stage" => "staging",
        "dev" | "development" | "local" | "test" => "dev",
        _ => return None,
    };
    Some(e.to_string())
}

fn operation(name: &str) -> Option<Json> {
    let op = match name {
        "embeddings" | "embedding" => "embeddings",
        "chat" | "text_completion" | "generate_content" => "chat",
        _ => return None,
    };
    Some(json!(op))
}

/// The usage attributes of a span, before conversion.
#[derive(Debug, Default)]
struct Usage {
    input: Option<Count>,
    output: Option<Count>,
    total: Option<Count>,
    read: Option<Count>,
    write: Option<Count>,
    /// The input count is the provider's own: the cache counts came in a spelling
    /// copied from its usage object, or the span is OpenLIT's.
    copied: bool,
    reasoning: Option<Count>,
}

impl Usage {
    fn read(attrs: Attrs, input: Option<Count>, output: Option<Count>) -> Usage {
        let inside = (
            attrs.count(CACHE_READ_INSIDE),
            attrs.count(CACHE_WRITE_INSIDE),
        );
        let copied = (
            attrs.count(CACHE_READ_COPIED),
            attrs.count(CACHE_WRITE_COPIED),
        );
        let older = inside == (None, None) && copied != (None, None);
        let (read, write) = if older { copied } else { inside };
        // OpenLIT (the only one that writes a cost) copies the provider's input count
        // whatever spelling its cache counts have (1.45 writes the current ones).
        let is_copied = older || attrs.get(COST[0]).is_some();
        Usage {
            input,
            output,
            total: attrs.count(TOTAL),
            read,
            write,
            copied: is_copied,
            reasoning: attrs.count(REASONING),
        }
    }

    /// The contract's token fields. Counts that are not clean integers are passed on as
    /// sent (validation names them); clean ones are converted to our convention.
    fn write(&self, event: &mut Map<String, Json>, provider: &str) {
        let all = [
            &self.input,
            &self.output,
            &self.read,
            &self.write,
            &self.reasoning,
        ];
        let clean = all
            .iter()
            .all(|c| c.as_ref().is_none_or(|c| c.int().is_some()));
        let fields = if clean {
            let t = self.convert(provider);
            [t.input, t.output, t.read, t.write, t.reasoning].map(|n| Some(json!(n)))
        } else {
            all.map(|c| c.as_ref().map(Count::json))
        };
        let names = [
            "inputTokens",
            "outputTokens",
            "cachedTokens",
            "cacheWriteTokens",
            "reasoningTokens",
        ];
        for (name, value) in names.into_iter().zip(fields) {
            put(event, name, value);
        }
    }

    fn convert(&self, provider: &str) -> Tokens {
        let n = |c: &Option<Count>| c.as_ref().and_then(Count::int).unwrap_or(0);
        let mut t = Tokens {
            input: n(&self.input),
            output: n(&self.output),
            read: n(&self.read),
            write: n(&self.write),
            reasoning: n(&self.reasoning),
        };
        let total = self.total.as_ref().and_then(Count::int);
        let cache = t.read.saturating_add(t.write);
        // Cache tokens are outside input when the provider counts them so and the span
        // copied its usage, when the reported total says so, or when they could not
        // possibly be inside.
        let cache_outside = cache > 0
            && ((self.copied && CACHE_OUTSIDE_INPUT.contains(&provider))
                || total == Some(t.input.saturating_add(cache).saturating_add(t.output))
                || t.input < cache);
        if cache_outside {
            t.input = t.input.saturating_add(cache);
        }
        let reasoning_outside = t.reasoning > 0
            && (t.output < t.reasoning
                || total.is_some_and(|total| {
                    [n(&self.input), t.input]
                        .iter()
                        .any(|i| total == i.saturating_add(t.output).saturating_add(t.reasoning))
                }));
        if reasoning_outside {
            t.output = t.output.saturating_add(t.reasoning);
        }
        t
    }
}

/// Token counts in the contract's convention: cache inside input, reasoning inside output.
#[derive(Debug, PartialEq, Eq)]
struct Tokens {
    input: u64,
    output: u64,
    read: u64,
    write: u64,
    reasoning: u64,
}

/// `status` and `errorCode` from the span status and `error.type`.
fn status(event: &mut Map<String, Json>, span: &Span, attrs: Attrs) {
    let error_type = attrs.text(&["error.type"]);
    let failed = error_type.is_some()
        || span
            .status
            .as_ref()
            .is_some_and(|s| s.code == proto::STATUS_ERROR);
    let status = match error_type.as_deref().map(str::to_ascii_lowercase) {
        _ if !failed => "success",
        Some(t) if t.contains("timeout") => "timeout",
        Some(t) if t.contains("ratelimit") || t.contains("rate_limit") || t == "429" => {
            "rate_limited"
        }
        Some(t) if t.contains("cancel") => "cancelled",
        _ => "error",
    };
    event.insert("status".into(), json!(status));
    // The contract's 128-character limit; an exception class name is rarely longer.
    let code = error_type.map(|t| t.chars().take(128).collect::<String>());
    put(event, "errorCode", code.map(Json::from));
}

/// latencyMs from the span's duration; timestamp from its end.
fn timing(event: &mut Map<String, Json>, span: &Span) {
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    if start > 0 && end >= start {
        event.insert("latencyMs".into(), json!((end - start) / 1_000_000));
    }
    if end > 0 {
        if let Ok(t) = jiff::Timestamp::from_nanosecond(i128::from(end)) {
            event.insert("timestamp".into(), json!(t.to_string()));
        }
    }
}

#[cfg(test)]
mod tests;
