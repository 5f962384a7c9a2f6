//! The event contract (ingest v1): the wire shape a client sends and the validated
//! `Event` the rest of the program works with.

use crate::money::Usd;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One field as a client sent it: any JSON scalar, strings borrowed from the body when
/// they need no unescaping. Validation decides what is acceptable.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Null,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An array or object where a scalar belongs.
    Nested,
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Field<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Field<'a>, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Field<'a>, E> {
                Ok(Field::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Field<'a>, E> {
                Ok(Field::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Field<'a>, E> {
                Ok(Field::UInt(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Field<'a>, E> {
                Ok(if v >= 0 {
                    Field::UInt(v as u64)
                } else {
                    Field::Int(v)
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Field<'a>, E> {
                Ok(Field::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Field<'a>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Field::Nested)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Field<'a>, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Field::Nested)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// What a client sent, one field per contract field, each kept loosely typed so that
/// validation can name every wrong field instead of stopping at the first type error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEvent<'a> {
    #[serde(borrow)]
    pub external_request_id: Option<Field<'a>>,
    pub attempt: Option<Field<'a>>,
    #[serde(borrow)]
    pub timestamp: Option<Field<'a>>,
    #[serde(borrow)]
    pub provider: Option<Field<'a>>,
    #[serde(borrow)]
    pub model: Option<Field<'a>>,
    #[serde(borrow)]
    pub endpoint_tag: Option<Field<'a>>,
    #[serde(borrow)]
    pub prompt_version: Option<Field<'a>>,
    #[serde(borrow)]
    pub tenant_id: Option<Field<'a>>,
    #[serde(borrow)]
    pub user_id: Option<Field<'a>>,
    pub input_tokens: Option<Field<'a>>,
    pub cached_tokens: Option<Field<'a>>,
    pub cache_write_tokens: Option<Field<'a>>,
    pub output_tokens: Option<Field<'a>>,
    pub reasoning_tokens: Option<Field<'a>>,
    pub total_tokens: Option<Field<'a>>,
    pub image_count: Option<Field<'a>>,
    pub latency_ms: Option<Field<'a>>,
    #[serde(borrow)]
    pub status: Option<Field<'a>>,
    #[serde(borrow)]
    pub error_code: Option<Field<'a>>,
    #[serde(borrow)]
    pub data_mode: Option<Field<'a>>,
    #[serde(borrow)]
    pub environment: Option<Field<'a>>,
    #[serde(borrow)]
    pub operation: Option<Field<'a>>,
    #[serde(borrow)]
    pub service_tier: Option<Field<'a>>,
    pub usage_missing: Option<Field<'a>>,
    pub cost_usd: Option<Field<'a>>,
    pub tags: Option<Value>,
    /// Top-level fields the contract does not know (typos such as `tenantID`).
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// The names of the unknown top-level fields of one event: the first
/// `Unknown::MAX_NAMED` (each cut to 64 characters) and how many there were.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub names: Vec<String>,
    pub count: usize,
}

impl Unknown {
    /// An event may carry thousands of stray keys; a reply names at most this many.
    pub const MAX_NAMED: usize = 10;
}

impl<'de> Deserialize<'de> for Unknown {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Unknown;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the remaining fields of an event")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Unknown, A::Error> {
                let mut unknown = Unknown::default();
                while let Some(name) = map.next_key::<Cow<'de, str>>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    unknown.count += 1;
                    if unknown.names.len() < Unknown::MAX_NAMED {
                        unknown.names.push(name.chars().take(64).collect());
                    }
                }
                Ok(unknown)
            }
        }
        d.deserialize_map(V)
    }
}

/// Tag keys: at most this long (the rule below).
pub const MAX_TAG_KEY_LEN: usize = 64;
/// The characters a tag key may use, as the docs and error messages say it.
pub const TAG_KEY_CHARSET: &str = "A-Z a-z 0-9 _ . -";

/// Is `key` a tag key ingest accepts and queries can name: 1 to 64 characters from
/// `TAG_KEY_CHARSET`. One definition for both sides, so a stored key can always be
/// queried and a queried key can never break the store's JSON path.
pub fn is_valid_tag_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_TAG_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// What an invalid tag key is told.
pub fn tag_key_rule() -> String {
    format!("tag keys must be 1 to {MAX_TAG_KEY_LEN} characters from {TAG_KEY_CHARSET}")
}

/// The contract's top-level field names, for unknown-field suggestions.
pub const FIELD_NAMES: &[&str] = &[
    "externalRequestId",
    "attempt",
    "timestamp",
    "provider",
    "model",
    "endpointTag",
    "promptVersion",
    "tenantId",
    "userId",
    "inputTokens",
    "cachedTokens",
    "cacheWriteTokens",
    "outputTokens",
    "reasoningTokens",
    "totalTokens",
    "imageCount",
    "latencyMs",
    "status",
    "errorCode",
    "dataMode",
    "environment",
    "operation",
    "serviceTier",
    "usageMissing",
    "costUsd",
    "tags",
];

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
    /// Set only when a stored call is copied from another store (`burnrate migrate`):
    /// what the first store recorded, kept so the copy is the same call.
    pub copied: Option<Copied>,
}

/// What a copied call keeps of the store it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// When the first store received the call (ms).
    pub received_at_ms: i64,
    /// An id-less call's id as the first store assigned it: the copy keeps it, so copying
    /// the call again (a resumed migration) finds it instead of storing a second call.
    pub idless_id: Option<String>,
    /// When the first store re-priced the call (ms), if it did: the copy keeps the marker
    /// with the price, so `GET /v1/events` shows the same `repricedAt` on both stores.
    pub repriced_at_ms: Option<i64>,
}

impl PricedEvent {
    /// The id the call is stored under and whether the store assigned it (id-less):
    /// the client's id, else a copied call's assigned id, else None (assign a new one).
    pub fn stored_id(&self) -> Option<(&str, bool)> {
        match (&self.event.external_request_id, &self.copied) {
            (Some(id), _) => Some((id, false)),
            (
                None,
                Some(Copied {
                    idless_id: Some(id),
                    ..
                }),
            ) => Some((id, true)),
            (None, _) => None,
        }
    }
}

/// One field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
