//! The few OTLP trace messages ingest reads (opentelemetry-proto's
//! `collector/trace/v1` and `trace/v1`), declared by hand for prost, and their OTLP/JSON
//! form (lowerCamelCase names, trace and span ids as hex, 64-bit integers as strings or
//! numbers, enums as integers). Fields burnrate does not read are left out: prost skips
//! unknown fields, and serde ignores unknown JSON keys.

use serde::{Deserialize, Deserializer};

/// `ExportTraceServiceRequest`: the body of `POST /v1/traces`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    #[serde(deserialize_with = "hex_id")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(deserialize_with = "hex_id")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(fixed64, tag = "7")]
    #[serde(deserialize_with = "u64_text")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    #[serde(deserialize_with = "u64_text")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// The span's status: `code` 0 unset, 1 ok, 2 error.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

pub const STATUS_ERROR: i32 = 2;

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// An attribute value. In OTLP/JSON the oneof is an object with one key
/// (`{"intValue": "42"}`), which is serde's external tagging; an empty object is no value.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(transparent)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    #[serde(deserialize_with = "one_value")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Value {
    #[prost(string, tag = "1")]
    StringValue(String),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    #[serde(deserialize_with = "i64_text")]
    IntValue(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    ArrayValue(ArrayValue),
    #[prost(message, tag = "6")]
    KvlistValue(KeyValueList),
    #[prost(bytes, tag = "7")]
    #[serde(deserialize_with = "base64_bytes")]
    BytesValue(Vec<u8>),
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `ExportTraceServiceResponse`: what a protobuf client is answered.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `{}` (no value) or `{"stringValue": ...}`: at most one key.
fn one_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    let map = std::collections::BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    if map.is_empty() {
        return Ok(None);
    }
    let object = serde_json::Value::Object(map.into_iter().collect());
    Value::deserialize(object)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A 64-bit integer as OTLP/JSON writes it: a decimal string, or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Integer {
    Text(String),
    Unsigned(u64),
    Signed(i64),
}

impl Integer {
    fn value<T: TryFrom<i128>, E: serde::de::Error>(self) -> Result<T, E> {
        let n = match self {
            Integer::Unsigned(n) => i128::from(n),
            Integer::Signed(n) => i128::from(n),
            Integer::Text(t) => t
                .parse::<i128>()
                .map_err(|_| E::custom(format!("{t:?} is not an integer")))?,
        };
        T::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
    }
}

fn u64_text<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Integer::deserialize(d)?.value()
}

fn i64_text<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Integer::deserialize(d)?.value()
}

/// Trace and span ids are hex in OTLP/JSON (not base64 as in protobuf's JSON mapping).
fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    hex::decode(&text).map_err(|_| serde::de::Error::custom("an id must be hex"))
}

/// Bytes attribute values are base64 in OTLP/JSON.
fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    use base64::Engine;
    let text = String::deserialize(d)?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| serde::de::Error::custom("bytesValue must be base64"))
}
