//! What `burnrate prices import FILE` stores: the file's shape checked (a LiteLLM map, or
//! a price book / overrides file of docs/price-book-format.md), converted to a book, and
//! refused when it would add nothing (pure: the caller reads the file and stores).

use super::book::{BookFile, EPOCH, FORMAT};
use super::{litellm, Layer, PriceBook};
use serde_json::Value;

/// A book ready to store: `catalog` (a new catalogue version) or `overrides`.
#[derive(Debug)]
pub struct Prepared {
    pub kind: &'static str,
    pub book: BookFile,
}

const BOOK_KEYS: &[&str] = &[
    "format",
    "kind",
    "version",
    "source",
    "entries",
    "corrections",
    "aliases",
];
const SEE: &str = "see docs/price-book-format.md";

/// `file` names the file in messages and in a converted map's source; `now` names a
/// version left unnamed; a catalogue's undated entries take effect at `effective`.
pub fn prepare(
    value: Value,
    file: &str,
    now: jiff::Timestamp,
    effective: jiff::Timestamp,
) -> anyhow::Result<Prepared> {
    let Some(object) = value.as_object() else {
        anyhow::bail!("{file} is not a price file: expected a JSON object ({SEE})");
    };
    let stamp = now.strftime("%Y%m%dT%H%M%SZ");
    let (kind, mut book) = if object.contains_key("format") {
        book_file(value, file)?
    } else {
        litellm_map(&value, file, &format!("import-{stamp}"), now)?
    };
    if book.version.is_empty() {
        book.version = format!("{kind}-{stamp}");
    }
    if kind == "catalog" {
        // A new catalogue applies from its effective time on; history is never re-priced.
        // A past price (one with an end) keeps its own period.
        for e in &mut book.entries {
            if e.effective_from == EPOCH && e.effective_to.is_none() {
                e.effective_from = effective.to_string();
            }
        }
    }
    // Refuse a file with a bad entry before anything is stored.
    let layer = match kind {
        "overrides" => Layer::Override,
        _ => Layer::Catalog,
    };
    PriceBook::default()
        .add_file(&book, layer)
        .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    Ok(Prepared { kind, book })
}

/// Our own format: a book (catalogue) or an overrides file, with entries or aliases.
fn book_file(value: Value, file: &str) -> anyhow::Result<(&'static str, BookFile)> {
    let object = value.as_object().expect("checked by the caller");
    if let Some(key) = object.keys().find(|k| !BOOK_KEYS.contains(&k.as_str())) {
        anyhow::bail!(
            "{file}: {key:?} is not a field of a price book ({}; {SEE})",
            BOOK_KEYS.join(", ")
        );
    }
    if object["format"].as_u64() != Some(u64::from(FORMAT)) {
        anyhow::bail!("{file}: format must be {FORMAT} ({SEE})");
    }
    let kind = match object.get("kind").and_then(Value::as_str) {
        None if object.get("kind").is_none_or(Value::is_null) => "catalog",
        Some("catalog") => "catalog",
        Some("overrides") => "overrides",
        _ => anyhow::bail!("{file}: kind must be \"catalog\" or \"overrides\" ({SEE})"),
    };
    let book: BookFile = serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("{file} is not a valid price book: {e} ({SEE})"))?;
    if book.entries.is_empty() && book.aliases.is_empty() {
        anyhow::bail!("{file} has no entries and no aliases: nothing to import");
    }
    Ok((kind, book))
}

/// LiteLLM's map: model name -> model object with per-token costs.
fn litellm_map(
    value: &Value,
    file: &str,
    version: &str,
    now: jiff::Timestamp,
) -> anyhow::Result<(&'static str, BookFile)> {
    let object = value.as_object().expect("checked by the caller");
    if let Some((key, _)) = object.iter().find(|(_, v)| !v.is_object()) {
        anyhow::bail!(
            "{file} is not a price file: {key:?} is not a model object. A LiteLLM map holds \
             model objects (input_cost_per_token, ...); a price book or overrides file has \
             \"format\": {FORMAT} ({SEE})"
        );
    }
    let source =
        serde_json::json!({"name": "LiteLLM map", "file": file, "imported": now.to_string()});
    let converted = litellm::convert(value, version, source)?;
    if converted.book.entries.is_empty() {
        anyhow::bail!(
            "{file} has no model with token prices ({} keys without input_cost_per_token \
             and output_cost_per_token): nothing to import",
            converted.skipped
        );
    }
    Ok(("catalog", converted.book))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn try_prepare(v: Value) -> Result<Prepared, String> {
        let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        prepare(v, "f.json", now, now).map_err(|e| e.to_string())
    }

    #[test]
    fn any_json_object_is_not_a_price_file() {
        let e = try_prepare(json!({"foo": 1})).unwrap_err();
        assert!(e.contains("\"foo\" is not a model object"), "{e}");
        let e = try_prepare(json!([1])).unwrap_err();
        assert!(e.contains("expected a JSON object"), "{e}");
    }

    #[test]
    fn an_import_that_adds_nothing_is_refused() {
        let e = try_prepare(json!({})).unwrap_err();
        assert!(e.contains("nothing to import"), "{e}");
        let e = try_prepare(json!({"sample_spec": {"mode": "chat"}})).unwrap_err();
        assert!(e.contains("no model with token prices (1 keys"), "{e}");
        let e = try_prepare(json!({"format": 1, "kind": "overrides", "entries": []})).unwrap_err();
        assert!(e.contains("no entries and no aliases"), "{e}");
    }

    #[test]
    fn a_book_with_unknown_fields_or_format_is_refused_naming_them() {
        let e = try_prepare(json!({"format": 1, "entires": []})).unwrap_err();
        assert!(
            e.contains("\"entires\" is not a field of a price book"),
            "{e}"
        );
        let e = try_prepare(json!({"format": 2, "entries": []})).unwrap_err();
        assert!(e.contains("format must be 1"), "{e}");
        let e = try_prepare(json!({"format": 1, "kind": "override", "entries": []})).unwrap_err();
        assert!(e.contains("kind must be"), "{e}");
    }

    #[test]
    fn a_litellm_map_and_an_overrides_file_are_prepared() {
        let map = json!({"sample_spec": {"mode": "chat"}, "my-model": {
            "litellm_provider": "openai", "mode": "chat",
            "input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}});
        let p = try_prepare(map).unwrap();
        assert_eq!(p.kind, "catalog");
        assert_eq!(p.book.entries.len(), 1);
        assert_eq!(p.book.version, "import-20261101T000000Z");
        assert_eq!(p.book.entries[0].effective_from, "2026-11-01T00:00:00Z");
        let overrides = json!({"format": 1, "kind": "overrides", "entries": [
            {"provider": "acme", "model": "m1", "effectiveFrom": EPOCH, "mode": "chat",
             "usdPerMTok": [{"tier": "standard", "above": 0, "input": "1", "output": "2"}]}]});
        let p = try_prepare(overrides).unwrap();
        assert_eq!(p.kind, "overrides");
        assert_eq!(p.book.version, "overrides-20261101T000000Z");
        assert_eq!(p.book.entries[0].effective_from, EPOCH);
    }

    #[test]
    fn an_imported_catalogue_keeps_the_period_of_its_past_prices() {
        let book = json!({"format": 1, "entries": [
            {"provider": "openai", "model": "o3", "effectiveTo": "2025-06-10T00:00:00Z",
             "usdPerMTok": [{"tier": "standard", "input": "10", "output": "40"}]},
            {"provider": "openai", "model": "o3",
             "usdPerMTok": [{"tier": "standard", "input": "2", "output": "8"}]}]});
        let p = try_prepare(book).unwrap();
        let periods: Vec<(&str, Option<&str>)> = p
            .book
            .entries
            .iter()
            .map(|e| (e.effective_from.as_str(), e.effective_to.as_deref()))
            .collect();
        assert_eq!(
            periods,
            vec![
                (EPOCH, Some("2025-06-10T00:00:00Z")),
                ("2026-11-01T00:00:00Z", None)
            ]
        );
    }
}
