//! `POST /v1/traces`: OTLP/HTTP trace export (protobuf or JSON, optionally gzip). Spans
//! with GenAI usage become events (`crate::otlp`) and take the JSON ingest's path
//! (`api::accept_prepared`); the rest are counted as skipped.

use super::api::{accept_prepared, ingest_key, off_reactor, read_body};
use super::error::ApiError;
use super::state::HttpState;
use crate::ingest::{self, MAX_BATCH_EVENTS, MAX_BODY_BYTES};
use crate::otlp::{self, proto};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::io::Read;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/x-protobuf or application/json (OTLP/HTTP)",
        )),
    }
}

fn gzipped(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => Ok(false),
        Some("gzip") => Ok(true),
        Some(_) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "Content-Encoding must be gzip or identity",
        )),
    }
}

/// The decompressed body, at most the ingest limit (a small gzip can expand to
/// gigabytes).
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::field("body", format!("invalid gzip: {e}")))?;
    if out.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "decompressed body is larger than {} MiB",
                MAX_BODY_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(out)
}

/// The spans of one export, mapped, validated and priced.
struct Mapped {
    prepared: ingest::Prepared,
    /// `traceId/spanId` of each event, by its index.
    spans: Vec<String>,
    skipped: usize,
}

fn prepare(
    bytes: &Bytes,
    encoding: Encoding,
    gzip: bool,
    settings: &crate::settings::IngestSettings,
    book: &crate::price::PriceBook,
    now: i64,
) -> Result<Mapped, ApiError> {
    let raw = if gzip { gunzip(bytes)? } else { bytes.to_vec() };
    let request = match encoding {
        Encoding::Protobuf => otlp::decode_protobuf(&raw),
        Encoding::Json => otlp::decode_json(&raw),
    }
    .map_err(|message| ApiError::field("body", message))?;
    let mapped = otlp::map_request(&request, &settings.otlp_attributes);
    if mapped.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "export has {} spans with usage; at most {MAX_BATCH_EVENTS} per request",
                mapped.events.len()
            ),
        ));
    }
    let texts: Vec<String> = mapped.events.iter().map(|e| e.event.to_string()).collect();
    let items = texts.iter().map(|t| ingest::parse_item(t)).collect();
    Ok(Mapped {
        prepared: ingest::prepare(items, book, settings, now),
        spans: mapped.events.into_iter().map(|e| e.span).collect(),
        skipped: mapped.skipped,
    })
}

pub async fn traces(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = ingest_key(&state, &headers).await?;
    let encoding = encoding(&headers)?;
    let gzip = gzipped(&headers)?;
    let bytes = read_body(&headers, body).await?;
    let now = state.now_ms();
    let book = state.prices();
    let settings = state.settings.with_secret(key.workspace_id).await?;
    let mapped = off_reactor(&state, move || {
        prepare(&bytes, encoding, gzip, &settings, &book, now)
    })
    .await?;
    let total = mapped.spans.len();
    let mut reply = if total == 0 {
        json!({"accepted": 0, "duplicates": 0, "rejected": [], "warnings": [],
               "budget": {"warning": [], "exceeded": []}})
    } else {
        accept_prepared(&state, &key, mapped.prepared, total, false)
            .await?
            .body()
    };
    reply["skipped"] = json!(mapped.skipped);
    name_spans(&mut reply, &mapped.spans);
    Ok(respond(encoding, reply))
}

/// Rejections and warnings name their span beside the index.
fn name_spans(reply: &mut Value, spans: &[String]) {
    for list in ["rejected", "warnings"] {
        if let Some(items) = reply[list].as_array_mut() {
            for item in items {
                let span = item["index"].as_u64().and_then(|i| spans.get(i as usize));
                item["span"] = json!(span);
            }
        }
    }
}

/// 200 in the request's encoding. Rejected spans are OTLP's partial success; spans
/// without usage are not an error and are only counted in the JSON reply.
fn respond(encoding: Encoding, mut reply: Value) -> Response {
    let rejected = reply["rejected"].as_array().map_or(0, Vec::len);
    let message = reply["rejected"][0]["errors"][0]
        .as_object()
        .map(|e| {
            format!(
                "{rejected} span(s) rejected; first: span {}: {}: {}",
                reply["rejected"][0]["span"].as_str().unwrap_or("?"),
                e["field"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
    match encoding {
        Encoding::Json => {
            if rejected > 0 {
                reply["partialSuccess"] =
                    json!({"rejectedSpans": rejected, "errorMessage": message});
            }
            (StatusCode::OK, axum::Json(reply)).into_response()
        }
        Encoding::Protobuf => {
            let response = proto::ExportTraceServiceResponse {
                partial_success: (rejected > 0).then_some(proto::ExportTracePartialSuccess {
                    rejected_spans: rejected as i64,
                    error_message: message,
                }),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                prost::Message::encode_to_vec(&response),
            )
                .into_response()
        }
    }
}
