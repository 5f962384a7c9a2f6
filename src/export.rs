//! Exports of stored events as CSV or NDJSON (`GET /v1/events?format=csv|ndjson`): one
//! line per event, money as exact decimal text. Pure: the HTTP layer streams the store's
//! pages through these, so an export of any size holds one page in memory.

use crate::store::StoredEvent;
use std::borrow::Cow;

/// The export formats of `/v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "csv" => Some(Format::Csv),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    /// What comes before the first event (the CSV header line).
    pub fn head(self) -> String {
        match self {
            Format::Csv => format!("{}\r\n", EVENT_COLUMNS.join(",")),
            Format::Ndjson => String::new(),
        }
    }

    pub fn line(self, e: &StoredEvent) -> String {
        match self {
            Format::Csv => csv_row(e),
            Format::Ndjson => {
                let mut line = serde_json::to_string(e).expect("an event serializes");
                line.push('\n');
                line
            }
        }
    }
}

/// The CSV columns, named as the JSON fields.
pub const EVENT_COLUMNS: &[&str] = &[
    "externalRequestId",
    "timestamp",
    "receivedAt",
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
    "attempt",
    "attempts",
    "costUsd",
    "costSource",
    "priceEntryId",
    "priceBookVersion",
    "idless",
    "tags",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

/// One RFC 4180 record, CRLF-terminated. An unpriced call's cost is empty (never 0).
fn csv_row(e: &StoredEvent) -> String {
    let tags = if e.tags.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(e.tags.clone()).to_string()
    };
    let cells: [String; 32] = [
        e.external_request_id.clone(),
        e.timestamp.clone(),
        e.received_at.clone(),
        e.provider.clone(),
        e.model.clone(),
        e.endpoint_tag.clone(),
        opt(&e.prompt_version),
        opt(&e.tenant_id),
        opt(&e.user_id),
        e.input_tokens.to_string(),
        e.cached_tokens.to_string(),
        e.cache_write_tokens.to_string(),
        e.output_tokens.to_string(),
        e.reasoning_tokens.to_string(),
        e.total_tokens.to_string(),
        e.image_count.to_string(),
        opt(&e.latency_ms),
        e.status.to_string(),
        opt(&e.error_code),
        e.data_mode.to_string(),
        e.environment.to_string(),
        e.operation.to_string(),
        e.service_tier.to_string(),
        e.usage_missing.to_string(),
        e.attempt.to_string(),
        e.attempts.to_string(),
        opt(&e.cost_usd),
        opt(&e.cost_source),
        opt(&e.price_entry_id),
        opt(&e.price_book_version),
        e.idless.to_string(),
        tags,
    ];
    let mut row = cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
    row.push_str("\r\n");
    row
}

/// A cell quoted when it holds a comma, a quote or a line break (quotes doubled).
fn quote(cell: &str) -> Cow<'_, str> {
    if cell.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", cell.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Usd;

    fn stored() -> StoredEvent {
        StoredEvent {
            external_request_id: "r-1".into(),
            idless: false,
            timestamp: "2026-03-01T10:00:00Z".into(),
            received_at: "2026-03-01T10:00:01Z".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            endpoint_tag: "support, \"reply\"".into(),
            prompt_version: None,
            tenant_id: Some("acme".into()),
            user_id: None,
            input_tokens: 1000,
            cached_tokens: 400,
            cache_write_tokens: 0,
            output_tokens: 200,
            reasoning_tokens: 0,
            total_tokens: 1200,
            image_count: 0,
            latency_ms: Some(840),
            status: "success",
            error_code: None,
            data_mode: "real",
            environment: "prod",
            operation: "chat",
            service_tier: "standard",
            usage_missing: false,
            tags: serde_json::Map::new(),
            attempt: 1,
            attempts: 1,
            cost_usd: Some(Usd(240_001)),
            cost_source: Some("catalog"),
            price_entry_id: None,
            price_book_version: None,
            repriced_at: None,
        }
    }

    #[test]
    fn csv_rows_quote_what_needs_it_and_write_money_as_exact_decimals() {
        let row = Format::Csv.line(&stored());
        assert!(row.starts_with("r-1,2026-03-01T10:00:00Z,2026-03-01T10:00:01Z,openai,gpt-4o-mini,\"support, \"\"reply\"\"\",,acme,,1000,400,0,200,0,1200,0,840,success,"), "{row}");
        assert!(
            row.contains(",1,1,0.000240001,catalog,,,false,\r\n"),
            "{row}"
        );
        assert_eq!(
            Format::Csv.head().trim_end().split(',').count(),
            EVENT_COLUMNS.len()
        );
        let mut unpriced = stored();
        unpriced.cost_usd = None;
        unpriced.cost_source = None;
        assert!(Format::Csv.line(&unpriced).contains(",1,1,,,,,false,"));
    }

    #[test]
    fn ndjson_lines_are_the_json_events() {
        let line = Format::Ndjson.line(&stored());
        assert!(line.ends_with("}\n"));
        assert!(line.contains("\"costUsd\":0.000240001"), "{line}");
    }
}
