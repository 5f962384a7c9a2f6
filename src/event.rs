//! The event contract (ingest v1): the wire shape a client sends and the validated
//! `Event` the rest of the program works with.

use crate::money::Usd;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What a client sent, one field per contract field, each kept as raw JSON so that
/// validation can name every wrong field instead of stopping at the first type error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEvent {
    pub external_request_id: Option<Value>,
    pub attempt: Option<Value>,
    pub timestamp: Option<Value>,
    pub provider: Option<Value>,
    pub model: Option<Value>,
    pub endpoint_tag: Option<Value>,
    pub prompt_version: Option<Value>,
    pub tenant_id: Option<Value>,
    pub user_id: Option<Value>,
    pub input_tokens: Option<Value>,
    pub cached_tokens: Option<Value>,
    pub cache_write_tokens: Option<Value>,
    pub output_tokens: Option<Value>,
    pub reasoning_tokens: Option<Value>,
    pub total_tokens: Option<Value>,
    pub image_count: Option<Value>,
    pub latency_ms: Option<Value>,
    pub status: Option<Value>,
    pub error_code: Option<Value>,
    pub data_mode: Option<Value>,
    pub environment: Option<Value>,
    pub operation: Option<Value>,
    pub service_tier: Option<Value>,
    pub usage_missing: Option<Value>,
    pub cost_usd: Option<Value>,
    pub tags: Option<Value>,
}

/// Declares a small closed vocabulary with its wire names, stored as a u8 code.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            pub fn from_code(code: u8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// The allowed values, for error messages.
            pub fn expected() -> String {
                [$($text),+].join(", ")
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

vocabulary!(Status {
    Success = 0 => "success",
    Error = 1 => "error",
    Timeout = 2 => "timeout",
    RateLimited = 3 => "rate_limited",
    Cancelled = 4 => "cancelled",
});

impl Default for Status {
    fn default() -> Self {
        Status::Success
    }
}

vocabulary!(DataMode { Real = 0 => "real", Test = 1 => "test", Demo = 2 => "demo" });

vocabulary!(Environment { Prod = 0 => "prod", Staging = 1 => "staging", Dev = 2 => "dev" });

vocabulary!(Operation {
    Chat = 0 => "chat",
    Responses = 1 => "responses",
    Embeddings = 2 => "embeddings",
    Image = 3 => "image",
    Audio = 4 => "audio",
});

vocabulary!(ServiceTier {
    Standard = 0 => "standard",
    Batch = 1 => "batch",
    Flex = 2 => "flex",
    Priority = 3 => "priority",
});

vocabulary!(
    /// Where an event's cost came from.
    CostSource { Catalog = 1 => "catalog", Client = 2 => "client" }
);

/// Token counts in the contract's conventions: cached and cache-write tokens are part of
/// input, reasoning tokens are part of output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub input: u64,
    pub cached: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// A validated usage event, ready to be priced and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// None when the client sent none: the store assigns one and the event is "id-less".
    pub external_request_id: Option<String>,
    pub attempt: u8,
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    pub provider: String,
    /// The model as sent (trimmed); pricing normalizes it separately.
    pub model: String,
    pub endpoint_tag: String,
    pub prompt_version: Option<String>,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub tokens: Tokens,
    pub image_count: u32,
    pub latency_ms: Option<u32>,
    pub status: Status,
    pub error_code: Option<String>,
    pub data_mode: DataMode,
    pub environment: Environment,
    pub operation: Operation,
    pub service_tier: ServiceTier,
    pub usage_missing: bool,
    /// Cost the provider reported to the client (OpenRouter, xAI), if any.
    pub client_cost: Option<Usd>,
    pub tags: BTreeMap<String, String>,
}

/// The outcome of pricing one event, stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    /// None = unpriced (unknown model or missing rate): never silently zero.
    pub cost: Option<Usd>,
    pub source: Option<CostSource>,
    pub price_entry_id: Option<String>,
    pub price_book_version: Option<String>,
}

/// An event with its price, the unit the store writes.
#[derive(Debug, Clone)]
pub struct PricedEvent {
    pub event: Event,
    pub pricing: Pricing,
}

/// One field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}
