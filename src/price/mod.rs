//! Pricing: find the price entry in force for an event's provider, model and time, and
//! compute its cost. Pure: no IO, no clock; the book is loaded by the caller.

pub mod book;
pub mod cost;
pub mod genai;
pub mod import;
pub mod litellm;

use crate::event::{CostSource, Event, Pricing};
use book::{AliasFile, BookFile, EntryError, ModelKey, PriceEntry};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use cost::{cost, CostBreakdown, Unpriced};

/// The book generated from LiteLLM's map plus reviewed corrections, built into the binary.
pub const BUNDLED_BOOK: &str = include_str!("../../prices/book.json");

/// Which layer an entry comes from. Overrides win over the catalogue at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    Catalog,
    Override,
}

#[derive(Debug, Clone)]
struct Candidate {
    layer: Layer,
    /// Load order: among entries with the same effective time, the later book wins.
    seq: usize,
    entry: Arc<PriceEntry>,
}

/// All known prices, every version of every entry, ready for lookups.
#[derive(Debug, Default)]
pub struct PriceBook {
    entries: HashMap<ModelKey, Vec<Candidate>>,
    /// Per name, its aliases in load order (a later one wins where windows overlap).
    aliases: HashMap<ModelKey, Vec<Alias>>,
    versions: Vec<String>,
    loaded: usize,
    /// Client provider -> client model -> the candidate keys that exist in this book, in
    /// rule order. Saves the string rewrites on every event; which entry is in force is
    /// still decided per event time.
    resolved: RwLock<HashMap<String, HashMap<String, CandidateKeys>>>,
}

/// An alias compiled: the window (ms, end exclusive) in which `from` means `target`.
#[derive(Debug, Clone)]
struct Alias {
    from_ms: i64,
    to_ms: Option<i64>,
    target: ModelKey,
}

impl Alias {
    fn covers(&self, at_ms: i64) -> bool {
        self.from_ms <= at_ms && self.to_ms.is_none_or(|to| at_ms < to)
    }
}

/// Keys to try for one client model name, each with the rule that produced it.
type CandidateKeys = Arc<Vec<(ModelKey, &'static str)>>;

/// Distinct client model names remembered per book; past this, lookups are not cached
/// (a client sending random model names cannot grow memory without bound).
const RESOLVED_CACHE_LIMIT: usize = 10_000;

/// How a model name was resolved to a price entry, for `prices show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub key: ModelKey,
    pub rule: &'static str,
}

impl PriceBook {
    /// The bundled book alone.
    pub fn bundled() -> Result<PriceBook, anyhow::Error> {
        let mut book = PriceBook::default();
        book.add_file(&serde_json::from_str(BUNDLED_BOOK)?, Layer::Catalog)?;
        Ok(book)
    }

    /// Add a book, corrections or overrides file as one layer version.
    pub fn add_file(&mut self, file: &BookFile, layer: Layer) -> Result<(), EntryError> {
        let version = if file.version.is_empty() {
            "unversioned"
        } else {
            &file.version
        };
        let compiled: Vec<PriceEntry> = file
            .entries
            .iter()
            .map(|e| e.compile(version))
            .collect::<Result<_, _>>()?;
        self.loaded += 1;
        for entry in compiled {
            let key = ModelKey {
                provider: entry.provider.clone(),
                model: entry.model.clone(),
            };
            self.entries.entry(key).or_default().push(Candidate {
                layer,
                seq: self.loaded,
                entry: Arc::new(entry),
            });
        }
        let aliases: Vec<(ModelKey, Alias)> = file
            .aliases
            .iter()
            .map(compile_alias)
            .collect::<Result<_, _>>()?;
        for (from, alias) in aliases {
            self.aliases.entry(from).or_default().push(alias);
        }
        self.versions.push(version.to_string());
        self.resolved.write().unwrap().clear();
        Ok(())
    }

    pub fn versions(&self) -> &[String] {
        &self.versions
    }

    /// Every key with at least one entry, sorted.
    pub fn keys(&self) -> Vec<&ModelKey> {
        let mut keys: Vec<_> = self.entries.keys().collect();
        keys.sort();
        keys
    }

    /// All versions of one key's entries, oldest first.
    pub fn history(&self, key: &ModelKey) -> Vec<(Layer, Arc<PriceEntry>)> {
        let mut list: Vec<_> = self.entries.get(key).into_iter().flatten().collect();
        list.sort_by_key(|c| (c.layer, c.entry.effective_from_ms, c.seq));
        list.into_iter()
            .map(|c| (c.layer, c.entry.clone()))
            .collect()
    }

    /// The entry in force at `at_ms` for one exact key: the latest start not after
    /// `at_ms`, among the entries whose end (if any) is after it.
    fn in_force(&self, key: &ModelKey, at_ms: i64) -> Option<&Arc<PriceEntry>> {
        let candidates = self.entries.get(key)?;
        let best_of = |layer: Layer| {
            candidates
                .iter()
                .filter(|c| {
                    c.layer == layer
                        && c.entry.effective_from_ms <= at_ms
                        && c.entry.effective_to_ms.is_none_or(|to| at_ms < to)
                })
                .max_by_key(|c| (c.entry.effective_from_ms, c.seq))
        };
        best_of(Layer::Override)
            .or_else(|| best_of(Layer::Catalog))
            .map(|c| &c.entry)
    }

    /// Resolve a provider/model pair as a client sent it to the entry in force at `at_ms`.
    /// Matching is explicit, never fuzzy: see `model_candidates`.
    pub fn lookup(
        &self,
        provider: &str,
        model: &str,
        at_ms: i64,
    ) -> Option<(Arc<PriceEntry>, Resolution)> {
        self.existing_candidates(provider, model)
            .iter()
            .find_map(|(key, rule)| {
                let key = self.alias_at(key, at_ms).unwrap_or(key);
                self.in_force(key, at_ms).map(|e| {
                    (
                        e.clone(),
                        Resolution {
                            key: key.clone(),
                            rule,
                        },
                    )
                })
            })
    }

    /// Where an alias of `key` in force at `at_ms` points (the last loaded one wins).
    fn alias_at(&self, key: &ModelKey, at_ms: i64) -> Option<&ModelKey> {
        self.aliases
            .get(key)?
            .iter()
            .rev()
            .find(|a| a.covers(at_ms))
            .map(|a| &a.target)
    }

    /// The candidate keys that have entries or aliases, from the cache if seen; which
    /// alias applies depends on the event's time, so aliases are followed per lookup.
    fn existing_candidates(
        &self,
        provider: &str,
        model: &str,
    ) -> Arc<Vec<(ModelKey, &'static str)>> {
        if let Some(hit) = self
            .resolved
            .read()
            .unwrap()
            .get(provider)
            .and_then(|m| m.get(model))
        {
            return hit.clone();
        }
        let found: Arc<Vec<_>> = Arc::new(
            model_candidates(provider, model)
                .into_iter()
                .filter(|(key, rule)| {
                    (self.entries.contains_key(key) || self.aliases.contains_key(key))
                        && (*rule != REGION_RULE || !self.has_region_premium(key))
                })
                .collect(),
        );
        let mut cache = self.resolved.write().unwrap();
        if cache.values().map(HashMap::len).sum::<usize>() < RESOLVED_CACHE_LIMIT {
            cache
                .entry(provider.to_string())
                .or_default()
                .insert(model.to_string(), found.clone());
        }
        found
    }

    /// Price one validated event: client-reported cost wins, then the catalogue; an
    /// unknown model or a missing tier rate leaves the cost null (unpriced), never 0.
    pub fn price(&self, event: &Event) -> Pricing {
        if let Some(cost) = event.client_cost {
            return Pricing {
                cost: Some(cost),
                source: Some(CostSource::Client),
                price_entry_id: None,
                price_book_version: None,
            };
        }
        let unpriced = Pricing {
            cost: None,
            source: None,
            price_entry_id: None,
            price_book_version: None,
        };
        // A success whose usage is unknown has an unknown cost: never the $0 its zero
        // counts would price to. A failed call without usage is taken as unbilled, as
        // providers do not bill most failures (and SDKs mark them usageMissing).
        if event.usage_missing && event.status == crate::event::Status::Success {
            return unpriced;
        }
        let Some((entry, _)) = self.lookup(&event.provider, &event.model, event.timestamp_ms)
        else {
            return unpriced;
        };
        match cost(&entry, event.service_tier, &event.tokens, event.image_count) {
            Ok(breakdown) => Pricing {
                cost: Some(breakdown.total),
                source: Some(CostSource::Catalog),
                price_entry_id: Some(entry.id.clone()),
                price_book_version: Some(entry.book_version.clone()),
            },
            Err(_) => Pricing {
                price_entry_id: Some(entry.id.clone()),
                ..unpriced
            },
        }
    }

    /// Whether any region profile of this Bedrock model (`us.`, `eu.`, `global.`, ...)
    /// is listed at a base price other than the model's own: then an unlisted profile's
    /// price is unknown (Claude 4.5+ regional profiles cost 10% more than global ones), and
    /// falling back to the unprefixed model would bill it at a different price silently.
    fn has_region_premium(&self, base: &ModelKey) -> bool {
        let base_rate = |key: &ModelKey| {
            let latest = self.history(key).pop()?.1;
            latest
                .rows
                .iter()
                .find(|r| r.tier == crate::event::ServiceTier::Standard && r.above == 0)
                .map(|r| (r.input, r.output))
        };
        let own = base_rate(base);
        BEDROCK_REGION_PREFIXES.iter().any(|prefix| {
            let profile = ModelKey {
                provider: base.provider.clone(),
                model: format!("{prefix}{}", base.model),
            };
            self.entries.contains_key(&profile) && base_rate(&profile) != own
        })
    }

    /// For an unpriced dated id (`gpt-4o-2031-01-01`), the undated model the book prices
    /// at `at_ms`, to suggest in `prices check`; never used to price an event.
    pub fn undated_base(&self, provider: &str, model: &str, at_ms: i64) -> Option<Resolution> {
        if self.lookup(provider, model, at_ms).is_some() {
            return None;
        }
        model_candidates(provider, model)
            .into_iter()
            .find_map(|(key, _)| {
                let undated = strip_date_suffix(&key.model)?;
                self.lookup(&key.provider, undated, at_ms)
            })
            .map(|(_, how)| how)
    }

    /// An entry by its id (for the explorer's cost breakdown).
    pub fn entry_by_id(&self, id: &str) -> Option<Arc<PriceEntry>> {
        self.entries
            .values()
            .flatten()
            .find(|c| c.entry.id == id)
            .map(|c| c.entry.clone())
    }
}

/// Check and compile one alias of a file: its name, target and window.
fn compile_alias(alias: &AliasFile) -> Result<(ModelKey, Alias), EntryError> {
    let err = |field: &str, message: String| EntryError {
        provider: alias.provider.clone(),
        model: alias.model.clone(),
        field: field.to_string(),
        message,
    };
    let time = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(book::parse_time)
            .transpose()
            .map_err(|m| err(field, m))
    };
    let from_ms = time("effectiveFrom", &alias.effective_from)?.unwrap_or(i64::MIN);
    let to_ms = time("effectiveTo", &alias.effective_to)?;
    if to_ms.is_some_and(|to| to <= from_ms) {
        return Err(err("effectiveTo", "must be after effectiveFrom".into()));
    }
    let from = ModelKey {
        provider: alias.provider.to_ascii_lowercase(),
        model: alias.model.to_ascii_lowercase(),
    };
    let target = ModelKey {
        provider: alias.target.provider.to_ascii_lowercase(),
        model: alias.target.model.to_ascii_lowercase(),
    };
    Ok((
        from,
        Alias {
            from_ms,
            to_ms,
            target,
        },
    ))
}

/// Provider names clients use for the same platform, mapped to the book's names.
fn canonical_provider(provider: &str) -> &str {
    match provider {
        "gemini" | "google-ai" | "google_ai" | "googleai" | "google-genai" => "google",
        "vertex_ai" | "vertexai" | "google-vertex" | "vertex-ai" => "vertex",
        "aws" | "aws-bedrock" | "aws_bedrock" | "amazon-bedrock" | "bedrock_converse" => "bedrock",
        "azure_openai" | "azure-openai" | "azureopenai" => "azure",
        "x-ai" | "x.ai" | "grok" => "xai",
        "mistralai" => "mistral",
        other => other,
    }
}

/// The rule that prices an unlisted Bedrock region profile as its unprefixed model.
const REGION_RULE: &str = "bedrock region profile";

/// Region prefixes of Bedrock cross-region inference profiles (us.anthropic.claude-...).
const BEDROCK_REGION_PREFIXES: &[&str] = &[
    "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.", "in.",
];

/// The exact keys tried for a client's provider/model, in order, each with the rule that
/// produced it. Every rule is a fixed rewrite; nothing here guesses by similarity.
pub fn model_candidates(provider: &str, model: &str) -> Vec<(ModelKey, &'static str)> {
    let provider = canonical_provider(&provider.trim().to_ascii_lowercase()).to_string();
    let model = model.trim().to_ascii_lowercase();
    let key = |p: &str, m: &str| ModelKey {
        provider: p.to_string(),
        model: m.to_string(),
    };
    let mut out = vec![(key(&provider, &model), "exact")];

    // "openai/gpt-4o", "models/gemini-2.5-pro": a provider prefix on the model name.
    if let Some((prefix, rest)) = model.split_once('/') {
        let prefix_provider = canonical_provider(prefix);
        if prefix_provider == provider || prefix == "models" {
            out.push((key(&provider, rest), "provider prefix"));
        } else if provider != "openrouter" && is_known_provider(prefix_provider) {
            out.push((key(prefix_provider, rest), "provider prefix"));
        }
    }
    if provider == "bedrock" {
        for prefix in BEDROCK_REGION_PREFIXES {
            if let Some(rest) = model.strip_prefix(prefix) {
                out.push((key(&provider, rest), REGION_RULE));
            }
        }
    }
    // A dated snapshot the book does not list is not priced as its undated model: a new
    // snapshot can come at a new price. `PriceBook::undated_base` names it for `prices check`.
    out
}

fn is_known_provider(p: &str) -> bool {
    matches!(
        p,
        "openai"
            | "anthropic"
            | "google"
            | "vertex"
            | "mistral"
            | "deepseek"
            | "xai"
            | "bedrock"
            | "azure"
            | "cohere"
            | "groq"
            | "together_ai"
            | "fireworks_ai"
            | "perplexity"
    )
}

/// `name-2024-07-18` or `name-20240718` -> `name`.
fn strip_date_suffix(model: &str) -> Option<&str> {
    let bytes = model.as_bytes();
    let is_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if bytes.len() > 11 && bytes[bytes.len() - 11] == b'-' {
        let tail = &bytes[bytes.len() - 10..];
        if is_digits(&tail[..4])
            && tail[4] == b'-'
            && is_digits(&tail[5..7])
            && tail[7] == b'-'
            && is_digits(&tail[8..])
        {
            return Some(&model[..model.len() - 11]);
        }
    }
    if bytes.len() > 9 && bytes[bytes.len() - 9] == b'-' && is_digits(&bytes[bytes.len() - 8..]) {
        let year = &model[model.len() - 8..model.len() - 4];
        if year.starts_with("20") {
            return Some(&model[..model.len() - 9]);
        }
    }
    None
}

#[cfg(test)]
mod tests;
