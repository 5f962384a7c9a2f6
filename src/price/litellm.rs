//! Convert LiteLLM's model_prices_and_context_window.json into our book format, and
//! apply the reviewed corrections. Pure: text in, book out.

use super::book::{BookFile, EntryFile, RateRowFile, EPOCH, FORMAT};
use crate::event::ServiceTier;
use crate::money::{Rate, Usd};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// LiteLLM's `litellm_provider` names mapped to ours; `vertex_ai-*` all become vertex.
fn provider_name(litellm_provider: &str) -> String {
    match litellm_provider {
        "text-completion-openai" => "openai".into(),
        "gemini" => "google".into(),
        "bedrock_converse" => "bedrock".into(),
        p if p.starts_with("vertex_ai") => "vertex".into(),
        p => p.to_ascii_lowercase(),
    }
}

/// The per-token fields we read, in the order of a rate row: input, cached input,
/// cache write, output, reasoning.
const RATE_FIELDS: [&str; 5] = [
    "input_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_token",
    "output_cost_per_reasoning_token",
];

fn mode_name(mode: Option<&str>) -> &'static str {
    match mode {
        Some("chat") | Some("completion") | Some("responses") | None => "chat",
        Some("embedding") => "embedding",
        Some("image_generation") | Some("image_edit") => "image",
        Some(m) if m.starts_with("audio") => "audio",
        Some(_) => "other",
    }
}

/// `_above_200k_tokens_batches` -> (200000, batch); `` -> (0, standard); None when the
/// suffix is something we do not price (1-hour cache writes, audio, ...).
fn parse_suffix(suffix: &str) -> Option<(u64, ServiceTier)> {
    let mut rest = suffix;
    let mut above = 0;
    if let Some(r) = rest.strip_prefix("_above_") {
        let (num, r) = r.split_once("k_tokens")?;
        above = num.parse::<u64>().ok()? * 1000;
        rest = r;
    }
    let tier = match rest {
        "" => ServiceTier::Standard,
        "_batches" => ServiceTier::Batch,
        "_flex" => ServiceTier::Flex,
        "_priority" => ServiceTier::Priority,
        _ => return None,
    };
    Some((above, tier))
}

/// Convert one LiteLLM entry, or None when it has no token prices we can use.
fn convert_entry(key: &str, spec: &Map<String, Value>) -> Option<EntryFile> {
    let litellm_provider = spec.get("litellm_provider")?.as_str()?;
    let provider = provider_name(litellm_provider);
    let lower = key.to_ascii_lowercase();
    // Keys carry a routing prefix ("gemini/", "xai/", "openrouter/"); the model id does not.
    let model = match lower.split_once('/') {
        Some((prefix, rest)) if prefix == litellm_provider || provider_name(prefix) == provider => {
            rest.to_string()
        }
        _ => lower,
    };
    let mut rows: BTreeMap<(u8, u64), [Option<Rate>; 5]> = BTreeMap::new();
    for (field, value) in spec {
        let Some((slot, suffix)) = RATE_FIELDS
            .iter()
            .enumerate()
            .find_map(|(i, f)| field.strip_prefix(f).map(|s| (i, s)))
        else {
            continue;
        };
        let Some((above, tier)) = parse_suffix(suffix) else {
            continue;
        };
        let Some(rate) = value
            .as_number()
            .and_then(|n| Rate::parse_per_token_rounded(&n.to_string()).ok())
        else {
            continue;
        };
        rows.entry((tier.code(), above)).or_default()[slot] = Some(rate);
    }
    let base = rows.get(&(ServiceTier::Standard.code(), 0))?;
    if base[0].is_none() || base[3].is_none() {
        return None;
    }
    let usd = |field: &str| {
        spec.get(field)
            .and_then(Value::as_number)
            .and_then(|n| Usd::parse(&n.to_string()).ok())
            .map(|u| u.to_string())
    };
    let usd_per_m_tok = rows
        .into_iter()
        .map(|((tier, above), rates)| {
            let row = RateRowFile::from_rates(ServiceTier::from_code(tier).unwrap(), above, rates);
            band_from_reach(&provider, row)
        })
        .collect();
    Some(EntryFile {
        provider,
        model,
        effective_from: EPOCH.to_string(),
        effective_to: None,
        mode: mode_name(spec.get("mode").and_then(Value::as_str)).to_string(),
        usd_per_m_tok,
        per_image_usd: usd("output_cost_per_image"),
        per_request_usd: usd("input_cost_per_request"),
        source: "litellm".to_string(),
        checked: None,
        note: None,
    })
}

/// LiteLLM names every long-context band `_above_Nk_tokens`, but providers differ on
/// whether a prompt of exactly N tokens is in it. xAI bills the higher rate from the
/// prompt that reaches N ("≥200K", https://docs.x.ai/developers/models/grok-4.20-0309),
/// so its bands become `atLeast`; Anthropic, Google and OpenAI bill prompts over N.
fn band_from_reach(provider: &str, mut row: RateRowFile) -> RateRowFile {
    if provider == "xai" && row.above > 0 {
        row.at_least = Some(row.above);
        row.above = 0;
    }
    row
}

/// Conversion result: the book and what was skipped or collided, for the generator log.
pub struct Converted {
    pub book: BookFile,
    pub skipped: usize,
    pub collisions: Vec<String>,
}

/// Convert a whole LiteLLM map. When two keys map to the same provider/model, the first
/// in key order wins and the collision is reported (never silently merged).
pub fn convert(map: &Value, version: &str, source: Value) -> anyhow::Result<Converted> {
    let object = map
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("a LiteLLM map is a JSON object"))?;
    let mut by_key: BTreeMap<(String, String), EntryFile> = BTreeMap::new();
    let mut skipped = 0;
    let mut collisions = Vec::new();
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    for key in keys {
        let Some(entry) = object[key]
            .as_object()
            .and_then(|spec| convert_entry(key, spec))
        else {
            skipped += 1;
            continue;
        };
        let id = (entry.provider.clone(), entry.model.clone());
        if by_key.contains_key(&id) {
            collisions.push(format!("{key} -> {}/{}", id.0, id.1));
            continue;
        }
        by_key.insert(id, entry);
    }
    let book = BookFile {
        format: FORMAT,
        kind: Some("catalog".into()),
        version: version.to_string(),
        source: Some(source),
        entries: by_key.into_values().collect(),
        aliases: Vec::new(),
    };
    Ok(Converted {
        book,
        skipped,
        collisions,
    })
}

/// Apply reviewed corrections. A correction with `effectiveTo` is a past price: it is
/// added, and the generated (undated) entry of the same model then starts where the
/// latest past price ends, so history and today's price both hold. Every other
/// correction replaces the entry with the same provider, model and effectiveFrom, or is
/// added. Returns how many replaced and how many were added.
pub fn apply_corrections(book: &mut BookFile, corrections: &BookFile) -> (usize, usize) {
    let (mut replaced, mut added) = (0, 0);
    let (past, current): (Vec<&EntryFile>, Vec<&EntryFile>) = corrections
        .entries
        .iter()
        .partition(|e| e.effective_to.is_some());
    for fix in past {
        let fix = reviewed(fix);
        let end = fix
            .effective_to
            .clone()
            .expect("partitioned on effectiveTo");
        for generated in book.entries.iter_mut().filter(|e| {
            e.provider == fix.provider
                && e.model == fix.model
                && e.effective_to.is_none()
                && !e.source.starts_with("correction:")
                && starts_before(&e.effective_from, &end)
        }) {
            generated.effective_from = end.clone();
        }
        book.entries.push(fix);
        added += 1;
    }
    for fix in current {
        let fix = reviewed(fix);
        let same = |e: &EntryFile| {
            e.provider == fix.provider
                && e.model == fix.model
                && e.effective_from == fix.effective_from
                && e.effective_to.is_none()
        };
        match book.entries.iter_mut().find(|e| same(e)) {
            Some(slot) => {
                *slot = fix;
                replaced += 1;
            }
            None => {
                book.entries.push(fix);
                added += 1;
            }
        }
    }
    book.entries.sort_by(|a, b| {
        (&a.provider, &a.model, &a.effective_from).cmp(&(&b.provider, &b.model, &b.effective_from))
    });
    book.aliases.extend(corrections.aliases.iter().cloned());
    (replaced, added)
}

/// A correction as the book carries it: lowercase names, source naming the review.
fn reviewed(fix: &EntryFile) -> EntryFile {
    let mut fix = fix.clone();
    fix.provider = fix.provider.to_ascii_lowercase();
    fix.model = fix.model.to_ascii_lowercase();
    fix.source = format!(
        "correction: {} (checked {})",
        fix.source,
        fix.checked.as_deref().unwrap_or("?")
    );
    fix
}

/// Whether RFC 3339 time `a` is before `b` (an unreadable time counts as not before:
/// compiling the book reports it).
fn starts_before(a: &str, b: &str) -> bool {
    match (super::book::parse_time(a), super::book::parse_time(b)) {
        (Ok(a), Ok(b)) => a < b,
        _ => false,
    }
}
