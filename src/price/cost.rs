//! Cost of one event under one price entry. Pure arithmetic in femto-dollars, rounded
//! to nano-dollars once at the end.

use super::book::{PriceEntry, RateRow};
use crate::event::{ServiceTier, Tokens};
use crate::money::{Rate, Usd};
use serde::Serialize;

/// What each part of a request cost, for the request explorer. `total` is the rounded
/// exact sum, not the sum of the rounded parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostBreakdown {
    pub input: Usd,
    pub cached_input: Usd,
    pub cache_write: Usd,
    pub output: Usd,
    pub reasoning: Usd,
    pub images: Usd,
    pub request: Usd,
    pub total: Usd,
    /// The long-context band used (0 = base band).
    pub band_above: u64,
}

/// Why an event has no catalogue cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpriced {
    UnknownModel,
    NoRateForTier(ServiceTier),
}

/// The rates that apply to one request, fallbacks resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppliedRates {
    pub input: Rate,
    pub cached_input: Rate,
    pub cache_write: Rate,
    pub output: Rate,
    pub reasoning: Rate,
    pub band_above: u64,
}

/// Pick the row for the request's tier and input size (all input tokens count toward a
/// band: uncached, cache reads and cache writes, as every provider's long-context rule
/// reads), with the documented fallbacks:
/// a missing field comes from the standard row of the same band, then the standard base
/// row; missing cached/cache-write rates mean "no discount" (the input rate).
pub fn applied_rates(
    entry: &PriceEntry,
    tier: ServiceTier,
    input_tokens: u64,
) -> Result<AppliedRates, Unpriced> {
    let band = |t: ServiceTier| -> Option<&RateRow> {
        entry
            .rows
            .iter()
            .filter(|r| r.tier == t && (r.above == 0 || input_tokens > r.above))
            .max_by_key(|r| r.above)
    };
    // The band is decided by the standard rows (every provider documents its long-context
    // rule on the standard price); a tier that lists no rates for that band is unpriced
    // there, never billed at its base rate as if the prompt were short.
    let standard_band = band(ServiceTier::Standard).map_or(0, |r| r.above);
    let row = band(tier)
        .filter(|r| r.above == standard_band)
        .ok_or(Unpriced::NoRateForTier(tier))?;
    let same_band_standard = entry
        .rows
        .iter()
        .find(|r| r.tier == ServiceTier::Standard && r.above == row.above);
    let base = entry
        .rows
        .iter()
        .find(|r| r.tier == ServiceTier::Standard && r.above == 0);
    let pick = |f: fn(&RateRow) -> Option<Rate>| {
        f(row)
            .or_else(|| same_band_standard.and_then(f))
            .or_else(|| base.and_then(f))
    };
    // A tier row that gives no input/output of its own only inherits when it is the
    // standard tier; otherwise we would bill batch at full price without saying so.
    let (input, output) = if row.tier == ServiceTier::Standard {
        (pick(|r| r.input), pick(|r| r.output))
    } else {
        (row.input, row.output)
    };
    let (input, output) = match (input, output) {
        (Some(i), Some(o)) => (i, o),
        _ => return Err(Unpriced::NoRateForTier(tier)),
    };
    Ok(AppliedRates {
        input,
        cached_input: pick(|r| r.cached_input).unwrap_or(input),
        cache_write: pick(|r| r.cache_write).unwrap_or(input),
        output,
        reasoning: pick(|r| r.reasoning).unwrap_or(output),
        band_above: row.above,
    })
}

/// The cost of a request with these tokens under `entry`.
pub fn cost(
    entry: &PriceEntry,
    tier: ServiceTier,
    tokens: &Tokens,
    image_count: u32,
) -> Result<CostBreakdown, Unpriced> {
    let rates = applied_rates(entry, tier, tokens.input)?;
    // Validation guarantees the parts fit inside their wholes; saturate anyway.
    let uncached = tokens
        .input
        .saturating_sub(tokens.cached + tokens.cache_write);
    let plain_output = tokens.output.saturating_sub(tokens.reasoning);
    let nanos_to_femtos = |u: Usd| u.0 as i128 * 1_000_000;
    let parts = [
        rates.input.femtos_for(uncached),
        rates.cached_input.femtos_for(tokens.cached),
        rates.cache_write.femtos_for(tokens.cache_write),
        rates.output.femtos_for(plain_output),
        rates.reasoning.femtos_for(tokens.reasoning),
        entry
            .per_image
            .map_or(0, |p| nanos_to_femtos(p) * image_count as i128),
        entry.per_request.map_or(0, nanos_to_femtos),
    ];
    Ok(CostBreakdown {
        input: Usd::from_femtos(parts[0]),
        cached_input: Usd::from_femtos(parts[1]),
        cache_write: Usd::from_femtos(parts[2]),
        output: Usd::from_femtos(parts[3]),
        reasoning: Usd::from_femtos(parts[4]),
        images: Usd::from_femtos(parts[5]),
        request: Usd::from_femtos(parts[6]),
        total: Usd::from_femtos(parts.iter().sum()),
        band_above: rates.band_above,
    })
}
