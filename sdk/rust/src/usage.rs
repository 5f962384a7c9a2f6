//! Provider usage objects -> contract token counts, one function per provider shape.
//!
//! Every function takes the provider's JSON as the HTTP API returns it: either the whole
//! response (the usage is looked up under `usage`, or `usageMetadata` for Gemini) or the
//! usage object itself. Missing or null counters count as 0. A response without any
//! usage gives a [`Usage`] with `missing: true` (sent as `usageMissing`).
//!
//! Results always satisfy the contract: input includes cached and cache-write tokens,
//! output includes reasoning tokens, and `cost_usd` is rounded to nano-dollars.

use crate::event::{round_usd, Operation};
use serde_json::{Map, Value};

/// Token counts of one provider call, in the contract's terms.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// All input tokens, including cached and cache-write tokens.
    pub input_tokens: u64,
    /// Cache reads (part of `input_tokens`).
    pub cached_tokens: u64,
    /// Cache writes (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// All output tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Part of `output_tokens`.
    pub reasoning_tokens: u64,
    /// The exact cost when the provider reports it (OpenRouter `usage.cost`, xAI
    /// `cost_in_usd_ticks`), rounded to 9 decimals.
    pub cost_usd: Option<f64>,
    /// The operation the shape implies (`embeddings`), if any.
    pub operation: Option<Operation>,
    /// True when the provider returned no usage at all.
    pub missing: bool,
}

impl Usage {
    /// No usage reported (errors, streams cut off before any usage).
    pub fn missing() -> Usage {
        Usage {
            missing: true,
            ..Usage::default()
        }
    }

    /// Input + output.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    fn valid(mut self) -> Usage {
        self.cached_tokens = self.cached_tokens.min(self.input_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .min(self.input_tokens - self.cached_tokens);
        self.reasoning_tokens = self.reasoning_tokens.min(self.output_tokens);
        self
    }
}

/// The usage object: `v[key]` when `v` has that key (a whole response), else `v` itself.
fn usage_object<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    match v.get(key) {
        Some(inner) => inner.as_object(),
        None => v.as_object(),
    }
}

/// A non-negative counter; missing, null, negative or non-numeric count as 0.
fn count(m: &Map<String, Value>, key: &str) -> u64 {
    m.get(key).map_or(0, number)
}

fn number(v: &Value) -> u64 {
    if let Some(n) = v.as_u64() {
        n
    } else if let Some(f) = v.as_f64() {
        if f.is_finite() && f > 0.0 {
            f.min(u64::MAX as f64) as u64
        } else {
            0
        }
    } else if let Some(s) = v.as_str() {
        s.trim().parse().unwrap_or(0)
    } else {
        0
    }
}

fn nested(m: &Map<String, Value>, outer: &str, inner: &str) -> u64 {
    m.get(outer)
        .and_then(Value::as_object)
        .map_or(0, |o| count(o, inner))
}

fn openai_chat_usage(m: &Map<String, Value>) -> Usage {
    Usage {
        input_tokens: count(m, "prompt_tokens"),
        cached_tokens: nested(m, "prompt_tokens_details", "cached_tokens"),
        output_tokens: count(m, "completion_tokens"),
        reasoning_tokens: nested(m, "completion_tokens_details", "reasoning_tokens"),
        ..Usage::default()
    }
}

/// OpenAI Chat Completions (also Azure OpenAI, DeepSeek, Mistral and other
/// OpenAI-compatible APIs): input = `prompt_tokens`, cached =
/// `prompt_tokens_details.cached_tokens`, output = `completion_tokens`, reasoning =
/// `completion_tokens_details.reasoning_tokens`. For a stream, pass the final chunk
/// (the one with usage; request it with `stream_options.include_usage = true`) or use
/// [`openai_chat_stream`].
pub fn openai_chat(v: &Value) -> Usage {
    match usage_object(v, "usage") {
        Some(m) => openai_chat_usage(m).valid(),
        None => Usage::missing(),
    }
}

/// OpenAI Chat Completions stream: the usage of the last chunk that carries one.
pub fn openai_chat_stream(chunks: &[Value]) -> Usage {
    chunks
        .iter()
        .rev()
        .find(|c| {
            c.get("usage")
                .map_or(c.get("prompt_tokens").is_some(), Value::is_object)
        })
        .map_or_else(Usage::missing, openai_chat)
}

/// OpenAI Responses API: input = `input_tokens`, cached =
/// `input_tokens_details.cached_tokens`, output = `output_tokens`, reasoning =
/// `output_tokens_details.reasoning_tokens`. Also accepts a `response.completed`
/// stream event (`{"type": ..., "response": {"usage": ...}}`).
pub fn openai_responses(v: &Value) -> Usage {
    let v = match v.get("response") {
        Some(r) if r.is_object() => r,
        _ => v,
    };
    match usage_object(v, "usage") {
        Some(m) => Usage {
            input_tokens: count(m, "input_tokens"),
            cached_tokens: nested(m, "input_tokens_details", "cached_tokens"),
            output_tokens: count(m, "output_tokens"),
            reasoning_tokens: nested(m, "output_tokens_details", "reasoning_tokens"),
            operation: Some(Operation::Responses),
            ..Usage::default()
        }
        .valid(),
        None => Usage::missing(),
    }
}

/// OpenAI embeddings: input = `prompt_tokens`, output = 0, operation = embeddings.
pub fn openai_embeddings(v: &Value) -> Usage {
    let mut u = match usage_object(v, "usage") {
        Some(m) => Usage {
            input_tokens: count(m, "prompt_tokens"),
            ..Usage::default()
        },
        None => Usage::missing(),
    };
    u.operation = Some(Operation::Embeddings);
    u
}

fn anthropic_usage(m: &Map<String, Value>) -> Usage {
    let uncached = count(m, "input_tokens");
    let read = count(m, "cache_read_input_tokens");
    let write = count(m, "cache_creation_input_tokens");
    Usage {
        input_tokens: uncached.saturating_add(read).saturating_add(write),
        cached_tokens: read,
        cache_write_tokens: write,
        output_tokens: count(m, "output_tokens"),
        ..Usage::default()
    }
    .valid()
}

/// Anthropic Messages: input = `input_tokens` + `cache_read_input_tokens` +
/// `cache_creation_input_tokens`; cached = cache reads; cache write = cache creation;
/// output = `output_tokens`.
pub fn anthropic_messages(v: &Value) -> Usage {
    match usage_object(v, "usage") {
        Some(m) => anthropic_usage(m),
        None => Usage::missing(),
    }
}

/// Anthropic Messages stream. Pass, in order, the usage objects of
/// `message_start.message.usage` and of each `message_delta.usage` (or the events
/// themselves). The deltas are cumulative: non-null fields of later objects override
/// earlier ones.
pub fn anthropic_stream(parts: &[Value]) -> Usage {
    let mut merged = Map::new();
    let mut seen = false;
    for part in parts {
        let usage = if part.get("type").and_then(Value::as_str) == Some("message_start") {
            part.get("message").and_then(|m| m.get("usage"))
        } else {
            match part.get("usage") {
                Some(u) => Some(u),
                None if part.get("type").is_some() => None,
                None => Some(part),
            }
        };
        if let Some(m) = usage.and_then(Value::as_object) {
            seen = true;
            for (k, v) in m {
                if !v.is_null() {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if seen {
        anthropic_usage(&merged)
    } else {
        Usage::missing()
    }
}

/// Google Gemini `usageMetadata`: input = `promptTokenCount` (already includes cached
/// content), cached = `cachedContentTokenCount`, output = `candidatesTokenCount` +
/// `thoughtsTokenCount`, reasoning = `thoughtsTokenCount`.
pub fn gemini(v: &Value) -> Usage {
    match usage_object(v, "usageMetadata") {
        Some(m) => {
            let thoughts = count(m, "thoughtsTokenCount");
            Usage {
                input_tokens: count(m, "promptTokenCount"),
                cached_tokens: count(m, "cachedContentTokenCount"),
                output_tokens: count(m, "candidatesTokenCount").saturating_add(thoughts),
                reasoning_tokens: thoughts,
                ..Usage::default()
            }
            .valid()
        }
        None => Usage::missing(),
    }
}

/// AWS Bedrock Converse: input = `inputTokens` + `cacheReadInputTokens` +
/// `cacheWriteInputTokens`; cached = cache reads; cache write = cache writes; output =
/// `outputTokens`.
pub fn bedrock_converse(v: &Value) -> Usage {
    let m = match v.get("metadata") {
        Some(meta) if meta.get("usage").is_some() => usage_object(meta, "usage"),
        _ => usage_object(v, "usage"),
    };
    match m {
        Some(m) => {
            let read = count(m, "cacheReadInputTokens");
            let write = count(m, "cacheWriteInputTokens");
            Usage {
                input_tokens: count(m, "inputTokens")
                    .saturating_add(read)
                    .saturating_add(write),
                cached_tokens: read,
                cache_write_tokens: write,
                output_tokens: count(m, "outputTokens"),
                ..Usage::default()
            }
            .valid()
        }
        None => Usage::missing(),
    }
}

/// OpenRouter: the OpenAI chat shape plus `usage.cost` (USD) as `cost_usd`. A cost of 0
/// (free models) is a reported cost.
pub fn openrouter(v: &Value) -> Usage {
    match usage_object(v, "usage") {
        Some(m) => {
            let mut u = openai_chat_usage(m);
            u.cost_usd = m.get("cost").and_then(Value::as_f64).and_then(round_usd);
            u.valid()
        }
        None => Usage::missing(),
    }
}

/// xAI: the OpenAI chat shape. Some xAI models report `completion_tokens` without the
/// reasoning tokens: when reasoning > 0 and `total_tokens` = prompt + completion +
/// reasoning, output = completion + reasoning. `cost_in_usd_ticks` (1e-10 USD) becomes
/// `cost_usd`, rounded half-up to nano-dollars.
pub fn xai(v: &Value) -> Usage {
    let Some(m) = usage_object(v, "usage") else {
        return Usage::missing();
    };
    let mut u = openai_chat_usage(m);
    let total = m.get("total_tokens").filter(|t| !t.is_null()).map(number);
    if u.reasoning_tokens > 0
        && total
            == Some(
                u.input_tokens
                    .saturating_add(u.output_tokens)
                    .saturating_add(u.reasoning_tokens),
            )
    {
        u.output_tokens = u.output_tokens.saturating_add(u.reasoning_tokens);
    }
    u.cost_usd = m
        .get("cost_in_usd_ticks")
        .and_then(|t| {
            if let Some(n) = t.as_u64() {
                Some(n / 10 + u64::from(n % 10 >= 5))
            } else {
                t.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| (f / 10.0).round() as u64)
            }
        })
        .map(|nanos| nanos as f64 / 1e9);
    u.valid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_responses_and_missing_usage() {
        let resp = json!({"id": "c1", "model": "gpt-4o-mini",
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}});
        assert_eq!(openai_chat(&resp).input_tokens, 3);
        assert!(openai_chat(&json!({"id": "c1", "usage": null})).missing);
        assert!(openai_chat(&Value::Null).missing);
        let g = json!({"candidates": [], "usageMetadata": {"promptTokenCount": 4}});
        assert_eq!(gemini(&g).input_tokens, 4);
        let b = json!({"output": {}, "usage": {"inputTokens": 5, "outputTokens": 1}});
        assert_eq!(bedrock_converse(&b).input_tokens, 5);
        let bs = json!({"metadata": {"usage": {"inputTokens": 6, "outputTokens": 1}}});
        assert_eq!(bedrock_converse(&bs).input_tokens, 6);
        let e = openai_embeddings(&json!({"data": [], "usage": {"prompt_tokens": 8}}));
        assert_eq!(
            (e.input_tokens, e.operation),
            (8, Some(Operation::Embeddings))
        );
    }

    #[test]
    fn anthropic_stream_events_and_bad_counters() {
        let events = [
            json!({"type": "message_start", "message": {"usage":
                {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "content_block_delta", "delta": {"text": "hi"}}),
            json!({"type": "message_delta", "usage": {"output_tokens": 42}}),
        ];
        let u = anthropic_stream(&events);
        assert_eq!(
            (u.input_tokens, u.cached_tokens, u.output_tokens, u.missing),
            (15, 5, 42, false)
        );
        assert!(anthropic_stream(&[]).missing);
        let odd = openai_chat(&json!({"prompt_tokens": -3, "completion_tokens": "7",
            "prompt_tokens_details": {"cached_tokens": 9},
            "completion_tokens_details": {"reasoning_tokens": 99}}));
        assert_eq!(
            (
                odd.input_tokens,
                odd.cached_tokens,
                odd.output_tokens,
                odd.reasoning_tokens
            ),
            (0, 0, 7, 7)
        );
    }

    #[test]
    fn openai_stream_takes_the_last_usage_chunk() {
        let chunks = [
            json!({"choices": [{"delta": {"content": "a"}}], "usage": null}),
            json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 25}}),
        ];
        assert_eq!(openai_chat_stream(&chunks).output_tokens, 25);
        assert!(openai_chat_stream(&chunks[..1]).missing);
    }
}
