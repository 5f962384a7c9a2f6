//! The second price source: Pydantic's genai-prices, exported by
//! scripts/export-genai-prices.py. Converted to book entries (dated prices kept), merged
//! into the LiteLLM book where LiteLLM has no entry, and compared where both have one, so
//! the generator can write prices/DISAGREEMENTS.md. Pure: text in, entries out.

use super::book::{BookFile, EntryFile, RateRowFile, EPOCH};
use crate::money::Rate;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub version: String,
    pub providers: Vec<ExportProvider>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportProvider {
    pub id: String,
    #[serde(default)]
    pub pricing_urls: Vec<String>,
    pub models: Vec<ExportModel>,
}

#[derive(Debug, Deserialize)]
pub struct ExportModel {
    pub id: String,
    pub names: Vec<String>,
    pub prices: Vec<Period>,
}

/// One period of a model's price: from `startDate` (none = always) until the next one.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub start_date: Option<String>,
    pub input_mtok: Option<Price>,
    pub cache_read_mtok: Option<Price>,
    pub cache_write_mtok: Option<Price>,
    pub output_mtok: Option<Price>,
}

/// A flat price, or a base with rates for prompts over each tier's start.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Price {
    Flat(String),
    Tiered { base: String, tiers: Vec<Tier> },
}

#[derive(Debug, Deserialize)]
pub struct Tier {
    pub start: u64,
    pub price: String,
}

impl Price {
    /// The rate for a prompt in the band over `above` tokens (genai-prices applies a
    /// tier when the prompt's input tokens exceed its start, as `above` does).
    fn at(&self, above: u64) -> String {
        match self {
            Price::Flat(p) => p.clone(),
            Price::Tiered { base, tiers } => tiers
                .iter()
                .filter(|t| t.start <= above && above > 0)
                .max_by_key(|t| t.start)
                .map_or_else(|| base.clone(), |t| t.price.clone()),
        }
    }

    fn starts(&self) -> Vec<u64> {
        match self {
            Price::Flat(_) => Vec::new(),
            Price::Tiered { tiers, .. } => tiers.iter().map(|t| t.start).collect(),
        }
    }
}

/// genai-prices' provider ids mapped to the book's; its `google` also lists Claude on
/// Vertex AI, which the book files under `vertex`.
fn provider_name(id: &str, model: &str) -> String {
    match id {
        "google" if model.starts_with("claude") => "vertex".into(),
        "aws" => "bedrock".into(),
        "x-ai" => "xai".into(),
        "fireworks" => "fireworks_ai".into(),
        "together" => "together_ai".into(),
        "moonshotai" => "moonshot".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Entries for every exact name, one per dated period; the first model naming a
/// provider/model pair wins (later ones are counted as collisions).
pub fn convert(export: &Export) -> (Vec<EntryFile>, usize) {
    let mut out: BTreeMap<(String, String), Vec<EntryFile>> = BTreeMap::new();
    let mut collisions = 0;
    let source = format!("genai-prices {}", export.version);
    for provider in &export.providers {
        for model in &provider.models {
            let entries: Vec<(String, Vec<EntryFile>)> = model
                .names
                .iter()
                .map(|name| {
                    let p = provider_name(&provider.id, name);
                    let list = periods(&p, name, &model.prices, &source);
                    (p, list)
                })
                .collect();
            for (p, list) in entries {
                let Some(first) = list.first() else { continue };
                let key = (p, first.model.clone());
                if out.contains_key(&key) {
                    collisions += 1;
                    continue;
                }
                out.insert(key, list);
            }
        }
    }
    // A rate the book cannot hold exactly (more than 9 decimals per 1M) drops its entry.
    let entries = out
        .into_values()
        .flatten()
        .filter(|e| e.compile("check").is_ok())
        .collect();
    (entries, collisions)
}

/// One entry per period that has input and output prices, oldest first.
fn periods(provider: &str, model: &str, prices: &[Period], source: &str) -> Vec<EntryFile> {
    let mut list: Vec<EntryFile> = prices
        .iter()
        .filter_map(|period| {
            let rows = rows(period)?;
            Some(EntryFile {
                provider: provider.to_string(),
                model: model.to_string(),
                effective_from: period
                    .start_date
                    .as_ref()
                    .map_or_else(|| EPOCH.to_string(), |d| format!("{d}T00:00:00Z")),
                effective_to: None,
                mode: "chat".into(),
                usd_per_m_tok: rows,
                per_image_usd: None,
                per_request_usd: None,
                source: source.to_string(),
                checked: None,
                note: None,
            })
        })
        .collect();
    list.sort_by(|a, b| a.effective_from.cmp(&b.effective_from));
    list.dedup_by(|b, a| a.effective_from == b.effective_from);
    list
}

/// The standard rows of a period: the base band and one per tier start.
fn rows(period: &Period) -> Option<Vec<RateRowFile>> {
    let (input, output) = (period.input_mtok.as_ref()?, period.output_mtok.as_ref()?);
    let fields = [
        Some(input),
        period.cache_read_mtok.as_ref(),
        period.cache_write_mtok.as_ref(),
        Some(output),
    ];
    let mut bands: BTreeSet<u64> = fields.iter().flatten().flat_map(|p| p.starts()).collect();
    bands.insert(0);
    let rows = bands
        .into_iter()
        .map(|above| {
            let at = |p: Option<&Price>| p.map(|p| p.at(above));
            RateRowFile {
                tier: "standard".into(),
                above,
                at_least: None,
                input: at(fields[0]),
                cached_input: at(fields[1]),
                cache_write: at(fields[2]),
                output: at(fields[3]),
                reasoning: None,
            }
        })
        .collect();
    Some(rows)
}

/// One field on which the two sources disagree for a model both list.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    pub provider: String,
    pub model: String,
    pub field: &'static str,
    pub litellm: String,
    pub genai: String,
}

/// Add genai-prices' entries for the models LiteLLM lacks (tagged with their source),
/// and list where both list a model but differ: the base standard rates in force at
/// `at_ms`, and price changes only genai-prices records. Returns (added, disagreements).
pub fn merge(book: &mut BookFile, genai: Vec<EntryFile>, at_ms: i64) -> (usize, Vec<Disagreement>) {
    let mut by_key: BTreeMap<(String, String), Vec<EntryFile>> = BTreeMap::new();
    for e in genai {
        by_key
            .entry((e.provider.clone(), e.model.clone()))
            .or_default()
            .push(e);
    }
    let listed: BTreeSet<(String, String)> = book
        .entries
        .iter()
        .map(|e| (e.provider.clone(), e.model.clone()))
        .collect();
    let (mut added, mut disagreements) = (0, Vec::new());
    for (key, list) in by_key {
        if !listed.contains(&key) {
            added += list.len();
            book.entries.extend(list);
            continue;
        }
        let ours = book
            .entries
            .iter()
            .filter(|e| (&e.provider, &e.model) == (&key.0, &key.1))
            .collect::<Vec<_>>();
        disagreements.extend(compare(&key, &ours, &list, at_ms));
    }
    (added, disagreements)
}

/// The differences between the book's entries for one model and genai-prices' ones.
fn compare(
    key: &(String, String),
    ours: &[&EntryFile],
    theirs: &[EntryFile],
    at_ms: i64,
) -> Vec<Disagreement> {
    let mut out = Vec::new();
    let diff = |field: &'static str, litellm: String, genai: String| Disagreement {
        provider: key.0.clone(),
        model: key.1.clone(),
        field,
        litellm,
        genai,
    };
    if theirs.len() > 1 && ours.len() == 1 {
        let dates: Vec<&str> = theirs[1..]
            .iter()
            .map(|e| &e.effective_from[..10])
            .collect();
        out.push(diff(
            "history",
            "one price".into(),
            format!("price changes on {}", dates.join(", ")),
        ));
    }
    let (Some(a), Some(b)) = (
        in_force(ours.iter().copied(), at_ms),
        in_force(theirs.iter(), at_ms),
    ) else {
        return out;
    };
    let base = |e: &EntryFile| {
        e.usd_per_m_tok
            .iter()
            .find(|r| r.tier == "standard" && r.above == 0 && r.at_least.is_none())
            .cloned()
            .unwrap_or_default()
    };
    let (ra, rb) = (base(a), base(b));
    let fields: [(&'static str, &Option<String>, &Option<String>); 4] = [
        ("input", &ra.input, &rb.input),
        ("cachedInput", &ra.cached_input, &rb.cached_input),
        ("cacheWrite", &ra.cache_write, &rb.cache_write),
        ("output", &ra.output, &rb.output),
    ];
    for (field, x, y) in fields {
        // A rate one source leaves out is not a disagreement on the price.
        if let (Some(x), Some(y)) = (x, y) {
            if Rate::parse_per_mtok(x).ok() != Rate::parse_per_mtok(y).ok() {
                out.push(diff(field, x.clone(), y.clone()));
            }
        }
    }
    out
}

/// The entry of a list in force at `at_ms` (latest start not after it, not ended).
fn in_force<'a>(list: impl Iterator<Item = &'a EntryFile>, at_ms: i64) -> Option<&'a EntryFile> {
    let time = |t: &str| super::book::parse_time(t).unwrap_or(i64::MAX);
    list.filter(|e| {
        time(&e.effective_from) <= at_ms
            && e.effective_to.as_deref().is_none_or(|to| at_ms < time(to))
    })
    .max_by_key(|e| time(&e.effective_from))
}

/// prices/DISAGREEMENTS.md: every disagreement, which value the book took and why.
pub fn report(disagreements: &[Disagreement], book: &BookFile, at_ms: i64, title: &str) -> String {
    let mut text = format!(
        "# Where the price sources disagree\n\nGenerated by `burnrate prices generate` ({title}); do not edit. \
For each model both LiteLLM and genai-prices list, the fields whose standard base rates \
(USD per 1M tokens) differ at the snapshot date, and price changes only genai-prices records. \
The book takes a reviewed correction when there is one (prices/corrections.json, checked \
against the provider's page), otherwise LiteLLM, the primary source; genai-prices fills \
only the models LiteLLM lacks.\n\n| provider | model | field | LiteLLM | genai-prices | book took | why |\n|---|---|---|---|---|---|---|\n"
    );
    for d in disagreements {
        let ours = || {
            book.entries
                .iter()
                .filter(|e| e.provider == d.provider && e.model == d.model)
        };
        if d.field == "history" {
            // Dated corrections give the model more than one period.
            let dated = ours().count() > 1;
            let (took, why) = match ours().find(|e| e.source.starts_with("correction:")) {
                Some(e) if dated => (
                    "correction",
                    e.source.trim_start_matches("correction: ").to_string(),
                ),
                _ => ("LiteLLM (one price)", "change not reviewed yet".to_string()),
            };
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {took} | {why} |\n",
                d.provider, d.model, d.field, d.litellm, d.genai
            ));
            continue;
        }
        let corrected = in_force(
            book.entries
                .iter()
                .filter(|e| e.provider == d.provider && e.model == d.model),
            at_ms,
        )
        .filter(|e| e.source.starts_with("correction:"));
        let (took, why) = match corrected {
            Some(e) => (
                "correction",
                e.source.trim_start_matches("correction: ").to_string(),
            ),
            None => ("LiteLLM", "primary source; not reviewed yet".to_string()),
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {took} | {why} |\n",
            d.provider, d.model, d.field, d.litellm, d.genai
        ));
    }
    text.push_str(&format!("\n{} disagreements.\n", disagreements.len()));
    text
}
