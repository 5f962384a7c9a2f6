//! Ingest: turn a request body (one event, a JSON array, or NDJSON) into validated,
//! priced events plus a reason for every rejected item (`prepare`), then store them and
//! keep the budget counters exact (`accept`). Shared by HTTP, `import` and the demo.

mod accept;

pub use accept::{Ingestor, Receipt, SpendSink};

use crate::event::{FieldError, PricedEvent, RawEvent};
use crate::price::PriceBook;
use crate::settings::IngestSettings;
use crate::store::FieldTally;
use crate::validate::check;
use serde::Serialize;
use serde_json::value::RawValue;

pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Why a whole body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    TooLarge(String),
}

/// One item of a batch that was not accepted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

/// Something the client should know about an accepted item (an unknown field, missing
/// usage).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Warning {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// A reply lists at most this many warnings (a 10,000-event batch of one client bug
/// would otherwise answer megabytes); the rest are counted in `warnings_omitted`.
pub const MAX_WARNINGS: usize = 1_000;

/// One parsed item: a raw event, or why it could not be read.
pub type Item<'a> = Result<RawEvent<'a>, Vec<FieldError>>;

fn body_error(message: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError::new("body", message)]
}

/// Parse one event from its JSON text (one NDJSON line, one array element).
pub fn parse_item(text: &str) -> Item<'_> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        return Err(body_error("each event must be a JSON object"));
    }
    serde_json::from_str::<RawEvent<'_>>(text).map_err(|e| body_error(format!("invalid JSON: {e}")))
}

fn utf8(body: &[u8]) -> Result<&str, BodyError> {
    std::str::from_utf8(body).map_err(|e| {
        BodyError::Malformed(format!(
            "body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// A single event body (`/v1/ingest/llm-request`).
pub fn parse_single(body: &[u8]) -> Result<Item<'_>, BodyError> {
    let text = utf8(body)?;
    if text.trim().is_empty() {
        return Err(BodyError::Malformed(
            "body is empty: send one event as a JSON object".into(),
        ));
    }
    // Syntax errors refuse the body; a well-formed non-object is an item error.
    serde_json::from_str::<&RawValue>(text)
        .map_err(|e| BodyError::Malformed(format!("invalid JSON: {e}")))?;
    Ok(parse_item(text))
}

/// A batch body: a JSON array, or NDJSON (one event per line).
pub fn parse_batch(body: &[u8], ndjson: bool) -> Result<Vec<Item<'_>>, BodyError> {
    let items = if ndjson {
        parse_ndjson(body)?
    } else {
        parse_array(body)?
    };
    if items.is_empty() {
        return Err(BodyError::Malformed(
            "batch is empty: send at least one event".into(),
        ));
    }
    if items.len() > MAX_BATCH_EVENTS {
        return Err(BodyError::TooLarge(format!(
            "batch has {} events; at most {MAX_BATCH_EVENTS} per request",
            items.len()
        )));
    }
    Ok(items)
}

fn parse_array(body: &[u8]) -> Result<Vec<Item<'_>>, BodyError> {
    let text = utf8(body)?;
    if !text.trim_start().starts_with('[') {
        return Err(BodyError::Malformed(
            "body must be a JSON array of events (or NDJSON with Content-Type: application/x-ndjson)".into(),
        ));
    }
    let raw: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| BodyError::Malformed(format!("invalid JSON: {e}")))?;
    if raw.len() > MAX_BATCH_EVENTS {
        return Err(BodyError::TooLarge(format!(
            "batch has {} events; at most {MAX_BATCH_EVENTS} per request",
            raw.len()
        )));
    }
    Ok(raw.into_iter().map(|r| parse_item(r.get())).collect())
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<Item<'_>>, BodyError> {
    let ends_with_newline = body.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    let last = lines.len() - 1;
    let mut items = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if items.len() == MAX_BATCH_EVENTS {
            return Err(BodyError::TooLarge(format!(
                "batch has more than {MAX_BATCH_EVENTS} events"
            )));
        }
        let item = match std::str::from_utf8(line) {
            Err(_) => Err(body_error("line is not valid UTF-8")),
            Ok(text) => match parse_item(text) {
                Err(_) if i == last && !ends_with_newline => {
                    Err(body_error("line is truncated: the body ends mid-line"))
                }
                other => other,
            },
        };
        items.push(item);
    }
    Ok(items)
}

/// Validated and priced events of a batch, with the batch index of each, and the rest.
pub struct Prepared {
    pub events: Vec<PricedEvent>,
    pub positions: Vec<usize>,
    pub rejected: Vec<Rejected>,
    pub warnings: Vec<Warning>,
    pub warnings_omitted: usize,
    /// The unknown fields of every readable item, accepted or not.
    pub unknown: FieldTally,
    /// Ids and tag values pseudonymized or rejected as personal data.
    pub privacy: crate::privacy::Tally,
}

/// Validate and price every item under the workspace's settings. Pure: the caller
/// passes the book, the settings and the clock.
pub fn prepare(
    items: Vec<Item<'_>>,
    book: &PriceBook,
    settings: &IngestSettings,
    now_ms: i64,
) -> Prepared {
    let mut prepared = Prepared {
        events: Vec::with_capacity(items.len()),
        positions: Vec::new(),
        rejected: Vec::new(),
        warnings: Vec::new(),
        warnings_omitted: 0,
        unknown: FieldTally::default(),
        privacy: crate::privacy::Tally::default(),
    };
    let privacy = settings.privacy();
    for (index, item) in items.into_iter().enumerate() {
        let checked = item.and_then(|raw| {
            if let Some(last) = raw.unknown.names.last() {
                prepared.unknown.unknown_fields += raw.unknown.count as u64;
                prepared.unknown.last_unknown = Some(last.clone());
            }
            check(&raw, now_ms, settings)
        });
        // Personal data is replaced (or refused) here, before pricing, dedupe and the
        // store: the one place every front door passes.
        let checked = checked.and_then(|mut checked| match privacy.apply(&mut checked.event) {
            Ok(n) => {
                prepared.privacy.pseudonymized += n;
                Ok(checked)
            }
            Err(errors) => {
                prepared.privacy.rejected += errors.len() as u64;
                Err(errors)
            }
        });
        match checked {
            Ok(checked) => {
                let pricing = book.price(&checked.event);
                prepared.events.push(PricedEvent {
                    event: checked.event,
                    pricing,
                    copied: None,
                });
                prepared.positions.push(index);
                prepared.warn(index, checked.warnings);
            }
            Err(errors) => prepared.rejected.push(Rejected { index, errors }),
        }
    }
    prepared
}

impl Prepared {
    fn warn(&mut self, index: usize, warnings: Vec<FieldError>) {
        for w in warnings {
            if self.warnings.len() < MAX_WARNINGS {
                self.warnings.push(Warning {
                    index,
                    field: w.field,
                    message: w.message,
                });
            } else {
                self.warnings_omitted += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policy: crate::privacy::PiiPolicy) -> IngestSettings {
        IngestSettings {
            pii_ids: policy,
            secret: Some(crate::privacy::Secret::random()),
            ..IngestSettings::default()
        }
    }

    const PERSONAL: &str = r#"{"status":"success","provider":"openai","model":"gpt-4o-mini","endpointTag":"chat","inputTokens":10,"outputTokens":5,"tenantId":"bob@example.com","userId":"+1 415 555 0100","tags":{"owner":"alice@example.co.uk","team":"search"}}"#;

    #[test]
    fn personal_ids_and_tag_values_are_pseudonymized_before_storage() {
        let settings = settings(crate::privacy::PiiPolicy::Pseudonymize);
        let items = parse_batch(PERSONAL.as_bytes(), true).unwrap();
        let prepared = prepare(
            items,
            &PriceBook::bundled().unwrap(),
            &settings,
            1_767_225_600_000,
        );
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        let e = &prepared.events[0].event;
        let secret = settings.secret.as_ref().unwrap();
        assert_eq!(
            e.tenant_id.as_deref(),
            Some(secret.pseudonym("bob@example.com").as_str())
        );
        assert_eq!(
            e.user_id.as_deref(),
            Some(secret.pseudonym("+14155550100").as_str())
        );
        assert_eq!(e.tags["owner"], secret.pseudonym("alice@example.co.uk"));
        assert_eq!(e.tags["team"], "search");
        assert_eq!(prepared.privacy.pseudonymized, 3);
    }

    #[test]
    fn policy_reject_refuses_the_event_naming_each_personal_field() {
        let settings = settings(crate::privacy::PiiPolicy::Reject);
        let items = parse_batch(PERSONAL.as_bytes(), true).unwrap();
        let prepared = prepare(
            items,
            &PriceBook::bundled().unwrap(),
            &settings,
            1_767_225_600_000,
        );
        assert!(prepared.events.is_empty());
        let fields: Vec<&str> = prepared.rejected[0]
            .errors
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, vec!["tenantId", "userId", "tags.owner"]);
        assert_eq!(prepared.privacy.rejected, 3);
    }

    #[test]
    fn ndjson_reports_a_truncated_last_line_and_keeps_the_rest() {
        let body = b"{\"provider\":\"openai\"}\n\n{\"provider\":\"op";
        let items = parse_batch(body, true).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].as_ref().unwrap_err()[0].message,
            "line is truncated: the body ends mid-line"
        );
    }

    #[test]
    fn ndjson_flags_invalid_utf8_per_line() {
        let body = b"{\"a\":1}\n\xff\xfe\n{\"b\":2}\n";
        let items = parse_batch(body, true).unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[1].is_err() && items[0].is_ok() && items[2].is_ok());
    }

    #[test]
    fn array_items_that_are_not_objects_are_item_errors() {
        let items = parse_batch(b"[{\"a\":1}, 5, \"x\"]", false).unwrap();
        assert!(items[0].is_ok() && items[1].is_err() && items[2].is_err());
    }

    #[test]
    fn whole_body_errors() {
        assert!(matches!(
            parse_batch(b"[]", false),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"[{\"a\":1}", false),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"{\"a\":1}", false),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"\xff[]", false),
            Err(BodyError::Malformed(_))
        ));
        let big = format!("[{}]", vec!["{}"; MAX_BATCH_EVENTS + 1].join(","));
        assert!(matches!(
            parse_batch(big.as_bytes(), false),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            parse_single(b"{\"a\":"),
            Err(BodyError::Malformed(_))
        ));
    }
}
