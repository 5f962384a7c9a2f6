//! One error type for the API, mapped to HTTP status in one place. Internal details are
//! logged, never sent to the client.

use crate::event::FieldError;
use crate::ingest::{BodyError, Rejected};
use crate::store::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<FieldError>,
    pub retry_after: Option<u64>,
    pub rejected: Vec<Rejected>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
            rejected: Vec::new(),
        }
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 400 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{field} {message}"),
        );
        e.fields.push(FieldError::new(field, message));
        e
    }

    /// An event with fields at fault: a 400 listing every one.
    pub fn invalid_event(fields: Vec<FieldError>) -> ApiError {
        ApiError::invalid_fields("invalid_event", fields)
    }

    /// A control request (budget, settings, guard ...) with fields at fault.
    pub fn invalid_request(fields: Vec<FieldError>) -> ApiError {
        ApiError::invalid_fields("invalid_request", fields)
    }

    fn invalid_fields(code: &'static str, fields: Vec<FieldError>) -> ApiError {
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("invalid fields: {}", names.join(", ")),
        );
        e.fields = fields;
        e
    }

    pub fn too_many(retry_after: u64, message: &str) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(retry_after);
        e
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m)
            }
            BodyError::Malformed(m) => {
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", m.clone());
                err.fields.push(FieldError::new("body", m));
                err
            }
        }
    }
}

/// Retry-After while the database cannot be written: space rarely returns within seconds.
const STORAGE_RETRY_SECS: u64 = 30;
/// Retry-After while the store's server cannot be reached (a restart takes seconds).
const UNAVAILABLE_RETRY_SECS: u64 = 5;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy => ApiError::too_many(1, "the server is busy writing; retry shortly"),
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            ),
            StoreError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            StoreError::Conflict(what) => ApiError::new(StatusCode::CONFLICT, "conflict", what),
            StoreError::BadCursor => {
                ApiError::field("cursor", "is not a cursor returned by this API")
            }
            StoreError::StorageFull(cause) => {
                tracing::error!(error = %cause, "database cannot be written");
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_full",
                    "the server cannot write to its database (disk full or failing); \
                     nothing of this request was stored: retry later",
                );
                e.retry_after = Some(STORAGE_RETRY_SECS);
                e
            }
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "store unavailable");
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!(
                        "the store is unavailable ({cause}); nothing of this request was \
                         acknowledged: retry shortly"
                    ),
                );
                e.retry_after = Some(UNAVAILABLE_RETRY_SECS);
                e
            }
            StoreError::WriteOverflow(field) => ApiError::field(
                &field,
                "would push a stored total (one hour's sum for these dimensions) past what can be held exactly; nothing of this request was stored",
            ),
            StoreError::SumOverflow => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sum_overflow",
                StoreError::SumOverflow.to_string(),
            ),
            StoreError::Database(detail) => {
                tracing::error!(error = %detail, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl From<crate::report::explain::ExplainError> for ApiError {
    fn from(e: crate::report::explain::ExplainError) -> Self {
        match e {
            crate::report::explain::ExplainError::Field { field, message } => {
                ApiError::field(&field, message)
            }
            crate::report::explain::ExplainError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body =
            json!({"error": {"code": self.code, "message": self.message, "fields": self.fields}});
        if !self.rejected.is_empty() {
            body["rejected"] = json!(self.rejected);
            body["accepted"] = json!(0);
            body["duplicates"] = json!(0);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
