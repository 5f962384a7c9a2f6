//! The price book file format (format 1, see docs/price-book-format.md) and its
//! compiled in-memory form. Money in files is decimal text; in memory it is integers.

use crate::event::ServiceTier;
use crate::money::{Rate, Usd};
use serde::{Deserialize, Serialize};

pub const FORMAT: u32 = 1;
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// One rate row as written in a file: USD per 1M tokens as decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateRowFile {
    pub tier: String,
    /// The band applies to prompts of more than `above` input tokens ...
    #[serde(default)]
    pub above: u64,
    /// ... or, for a provider that bills the band from the prompt that *reaches* N
    /// tokens (xAI), of at least `atLeast` tokens. At most one of the two is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u64>,
    pub input: Option<String>,
    pub cached_input: Option<String>,
    pub cache_write: Option<String>,
    pub output: Option<String>,
    pub reasoning: Option<String>,
}

/// One entry as written in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryFile {
    pub provider: String,
    pub model: String,
    #[serde(default = "epoch")]
    pub effective_from: String,
    /// When a price stopped applying (exclusive); none = still in force unless a later
    /// entry of the same model replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    #[serde(default = "chat")]
    pub mode: String,
    pub usd_per_m_tok: Vec<RateRowFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_image_usd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_usd: Option<String>,
    #[serde(default)]
    pub source: String,
    /// Only in corrections: when a person read the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn epoch() -> String {
    EPOCH.to_string()
}

fn chat() -> String {
    "chat".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelKey {
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasFile {
    pub provider: String,
    pub model: String,
    pub target: ModelKey,
    /// A dated alias (an undated name that pointed to one snapshot for a while) applies
    /// from `effectiveFrom` (inclusive) to `effectiveTo` (exclusive); undated = always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
}

/// The bundled/imported book, and also the corrections and overrides files (which use
/// `corrections` or `entries` for their list).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookFile {
    pub format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<serde_json::Value>,
    #[serde(default, alias = "corrections")]
    pub entries: Vec<EntryFile>,
    #[serde(default)]
    pub aliases: Vec<AliasFile>,
}

/// A rate row in memory. `None` fields fall back as documented in the format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateRow {
    pub tier: ServiceTier,
    /// The row applies when the prompt has more than `above` input tokens (an `atLeast: N`
    /// row is compiled to `above: N - 1`, the same rule in integers).
    pub above: u64,
    pub input: Option<Rate>,
    pub cached_input: Option<Rate>,
    pub cache_write: Option<Rate>,
    pub output: Option<Rate>,
    pub reasoning: Option<Rate>,
}

/// A compiled price entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceEntry {
    /// Stable id stored with every event priced by this entry.
    pub id: String,
    pub book_version: String,
    pub provider: String,
    pub model: String,
    pub effective_from_ms: i64,
    /// Exclusive end, when the entry has one.
    pub effective_to_ms: Option<i64>,
    pub mode: String,
    pub rows: Vec<RateRow>,
    pub per_image: Option<Usd>,
    pub per_request: Option<Usd>,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{provider}/{model}: {field} {message}")]
pub struct EntryError {
    pub provider: String,
    pub model: String,
    pub field: String,
    pub message: String,
}

impl EntryFile {
    /// Check and compile one entry of book `version`.
    pub fn compile(&self, version: &str) -> Result<PriceEntry, EntryError> {
        let err = |field: &str, message: String| EntryError {
            provider: self.provider.clone(),
            model: self.model.clone(),
            field: field.to_string(),
            message,
        };
        let effective_from_ms =
            parse_time(&self.effective_from).map_err(|m| err("effectiveFrom", m))?;
        let effective_to_ms = self
            .effective_to
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|m| err("effectiveTo", m))?;
        if effective_to_ms.is_some_and(|to| to <= effective_from_ms) {
            return Err(err("effectiveTo", "must be after effectiveFrom".into()));
        }
        let rate = |field: &str, text: &Option<String>| -> Result<Option<Rate>, EntryError> {
            text.as_deref()
                .map(|t| Rate::parse_per_mtok(t).map_err(|e| err(field, e.to_string())))
                .transpose()
        };
        let mut rows = Vec::with_capacity(self.usd_per_m_tok.len());
        for row in &self.usd_per_m_tok {
            let tier = ServiceTier::parse(&row.tier).ok_or_else(|| {
                err(
                    "tier",
                    format!("must be one of: {}", ServiceTier::expected()),
                )
            })?;
            let above = match (row.above, row.at_least) {
                (above, None) => above,
                (0, Some(n)) if n > 0 => n - 1,
                _ => {
                    return Err(err(
                        "atLeast",
                        "is a positive token count, and excludes above".into(),
                    ))
                }
            };
            rows.push(RateRow {
                tier,
                above,
                input: rate("input", &row.input)?,
                cached_input: rate("cachedInput", &row.cached_input)?,
                cache_write: rate("cacheWrite", &row.cache_write)?,
                output: rate("output", &row.output)?,
                reasoning: rate("reasoning", &row.reasoning)?,
            });
        }
        let base = rows
            .iter()
            .find(|r| r.tier == ServiceTier::Standard && r.above == 0)
            .ok_or_else(|| err("usdPerMTok", "needs a standard row with above 0".into()))?;
        if base.input.is_none() || base.output.is_none() {
            return Err(err(
                "usdPerMTok",
                "the standard base row needs input and output".into(),
            ));
        }
        let usd = |field: &str, text: &Option<String>| -> Result<Option<Usd>, EntryError> {
            text.as_deref()
                .map(|t| Usd::parse(t).map_err(|e| err(field, e.to_string())))
                .transpose()
        };
        let provider = self.provider.to_ascii_lowercase();
        let model = self.model.to_ascii_lowercase();
        let dated = if self.effective_from == EPOCH {
            String::new()
        } else {
            format!("@{}", &self.effective_from)
        };
        Ok(PriceEntry {
            id: format!("{version}:{provider}/{model}{dated}"),
            book_version: version.to_string(),
            provider,
            model,
            effective_from_ms,
            effective_to_ms,
            mode: self.mode.clone(),
            rows,
            per_image: usd("perImageUsd", &self.per_image_usd)?,
            per_request: usd("perRequestUsd", &self.per_request_usd)?,
            source: self.source.clone(),
        })
    }
}

/// Milliseconds since the epoch of an RFC 3339 time, or why not.
pub fn parse_time(text: &str) -> Result<i64, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("is not RFC 3339: {e}"))
}

impl RateRowFile {
    /// A row from compiled rates, for writing a book.
    pub fn from_rates(tier: ServiceTier, above: u64, rates: [Option<Rate>; 5]) -> RateRowFile {
        let text = |r: Option<Rate>| r.map(|r| r.to_string());
        RateRowFile {
            tier: tier.as_str().to_string(),
            above,
            at_least: None,
            input: text(rates[0]),
            cached_input: text(rates[1]),
            cache_write: text(rates[2]),
            output: text(rates[3]),
            reasoning: text(rates[4]),
        }
    }
}
