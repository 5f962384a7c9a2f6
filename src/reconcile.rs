//! Reconciliation with the provider's bill (pure): the provider's own cost reports are
//! read (`parse`) into bill days, one per provider and UTC day, stored as control
//! objects of kind `bill_day` (a new import of a provider's day replaces the stored
//! one, so importing a report twice never counts it twice), and compared with what
//! burnrate attributed that day (`compare`): billed, attributed, difference, coverage,
//! and the unattributed spend split into calls never reported, price gaps and the rest.
//! The store's side (saving, the aggregate per day) is `report::reconcile`.

pub mod parse;

use crate::money::Usd;
use crate::price::PriceBook;
use crate::query::Sums;
use crate::store::StoredObject;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const BILL_DAY: &str = "bill_day";
pub const DAY_MS: i64 = 86_400_000;

/// One line of a provider's report: an amount (or, from a usage report, token counts
/// priced by the book: `amountUsd` null when the book has no price for them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillLine {
    pub model: Option<String>,
    /// The report's own name for the line (OpenAI `line_item`, Anthropic `description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// OpenAI `project_id`, Anthropic `workspace_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Stored as decimal text: a JSON number in a stored body would pass through f64.
    #[serde(with = "usd_text")]
    pub amount_usd: Option<Usd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<UsageTokens>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTokens {
    /// Input tokens, cached ones included (OpenAI's convention, and burnrate's).
    pub input: u64,
    pub cached: u64,
    pub output: u64,
    pub requests: u64,
    /// standard, batch, flex or priority.
    pub tier: String,
}

/// What a provider billed on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillDay {
    pub provider: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    #[serde(skip)]
    pub day_ms: i64,
    /// The format it was read from (`openai-costs`, ...).
    pub source: String,
    pub lines: Vec<BillLine>,
}

impl BillDay {
    /// The day's billed total and how many lines have no amount (unpriced usage).
    pub fn billed(&self) -> Result<(Usd, u64), crate::query::SumOverflow> {
        let mut total = Usd::ZERO;
        let mut missing = 0;
        for line in &self.lines {
            match line.amount_usd {
                Some(a) => total = plus(total, a)?,
                None => missing += 1,
            }
        }
        Ok((total, missing))
    }

    /// Whether the report split this day by model (every line names one).
    pub fn has_models(&self) -> bool {
        self.lines.iter().any(|l| l.model.is_some())
    }
}

/// An optional amount as decimal text (`"0.06"`, `"-1.5"`) in stored bodies.
mod usd_text {
    use crate::money::Usd;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Usd>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(u) => s.serialize_str(&u.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Usd>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| Usd::parse_signed_rounded(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

fn plus(a: Usd, b: Usd) -> Result<Usd, crate::query::SumOverflow> {
    a.0.checked_add(b.0)
        .map(Usd)
        .ok_or(crate::query::SumOverflow)
}

fn minus(a: Usd, b: Usd) -> Result<Usd, crate::query::SumOverflow> {
    a.0.checked_sub(b.0)
        .map(Usd)
        .ok_or(crate::query::SumOverflow)
}

/// A `YYYY-MM-DD` day as its UTC start, from 2020-01-01 to 2100-12-31.
pub fn day_ms(text: &str) -> Option<i64> {
    if text.len() != 10 {
        return None;
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    let ms = date
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_millisecond();
    (ms >= crate::validate::MIN_TIMESTAMP_MS && date.year() <= 2100).then_some(ms)
}

/// The UTC day holding `ms`, as `YYYY-MM-DD` (None outside 2020 to 2100).
pub fn day_text(ms: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    let text = ts.strftime("%Y-%m-%d").to_string();
    day_ms(&text).map(|_| text)
}

/// Price a usage report's token lines with the book at each day (the entry in force
/// then): a line the book cannot price keeps `amountUsd` null and is counted as such.
pub fn price_usage(days: &mut [BillDay], book: &PriceBook) {
    for day in days.iter_mut() {
        for line in day.lines.iter_mut() {
            let (Some(tokens), Some(model)) = (&line.tokens, &line.model) else {
                continue;
            };
            let Some((entry, _)) = book.lookup(&day.provider, model, day.day_ms) else {
                continue;
            };
            let tier = crate::event::ServiceTier::parse(&tokens.tier)
                .unwrap_or(crate::event::ServiceTier::Standard);
            let counts = crate::event::Tokens {
                input: tokens.input,
                cached: tokens.cached,
                cache_write: 0,
                output: tokens.output,
                reasoning: 0,
            };
            if let Ok(breakdown) = crate::price::cost::cost(&entry, tier, &counts, 0) {
                line.amount_usd = Some(breakdown.total);
            }
        }
    }
}

/// The stored body of a bill day.
pub fn body(day: &BillDay, imported_ms: i64) -> serde_json::Value {
    let mut v = serde_json::to_value(day).expect("a bill day serializes");
    v["importedAt"] = serde_json::json!(crate::report::rfc3339(imported_ms));
    v
}

/// A stored bill day back (None if unreadable: written by a later version).
pub fn from_stored(o: &StoredObject) -> Option<BillDay> {
    let mut day: BillDay = serde_json::from_value(o.body.clone()).ok()?;
    day.day_ms = day_ms(&day.day)?;
    Some(day)
}

/// The stored bill days by (day, provider); where two writers stored the same day at
/// once, the newest object wins (the import replaces, never adds).
pub fn fold(objects: &[StoredObject]) -> BTreeMap<(String, String), (i64, BillDay)> {
    let mut out: BTreeMap<(String, String), (i64, BillDay)> = BTreeMap::new();
    let mut sorted: Vec<&StoredObject> = objects.iter().collect();
    sorted.sort_by_key(|o| o.id);
    for o in sorted {
        if let Some(day) = from_stored(o) {
            out.insert((day.day.clone(), day.provider.clone()), (o.id, day));
        }
    }
    out
}

/// What burnrate attributed on one day to one provider, by model.
#[derive(Debug, Clone, Default)]
pub struct Attributed {
    pub total: Sums,
    pub models: BTreeMap<String, Sums>,
    /// The model split was cut by the query's row limit (the totals are whole).
    pub models_cut: bool,
}

/// The part of a difference each cause explains (only positive gaps: burnrate below the
/// bill); `overAttributedUsd` is where burnrate counted more than billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unattributed {
    /// Billed where burnrate saw no call at all (calls the app never reported).
    pub not_reported_usd: Usd,
    /// Billed where burnrate saw calls but could not price some of them (unknown
    /// models, price gaps).
    pub price_gap_usd: Usd,
    /// The rest: calls seen and priced, yet billed for more (missed calls, price or
    /// token differences, charges burnrate does not price).
    pub other_usd: Usd,
    pub over_attributed_usd: Usd,
}

impl Unattributed {
    /// Add one group's gap (`billed - attributed`) under its cause.
    fn add(&mut self, gap: Usd, sums: &Sums) -> Result<(), crate::query::SumOverflow> {
        let slot = if gap.0 < 0 {
            self.over_attributed_usd = plus(self.over_attributed_usd, Usd(-gap.0))?;
            return Ok(());
        } else if sums.requests == 0 {
            &mut self.not_reported_usd
        } else if sums.unpriced() > 0 {
            &mut self.price_gap_usd
        } else {
            &mut self.other_usd
        };
        *slot = plus(*slot, gap)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelRow {
    /// Null: lines of the bill without a model (web search, code execution, ...).
    pub model: Option<String>,
    pub billed_usd: Usd,
    pub attributed_usd: Usd,
    pub difference_usd: Usd,
    pub coverage_pct: Option<f64>,
    pub requests: u64,
    pub unpriced: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayRow {
    pub day: String,
    pub provider: String,
    pub source: String,
    pub billed_usd: Usd,
    /// Usage lines of the bill the book could not price (their tokens are not in
    /// `billedUsd`).
    pub unpriced_bill_lines: u64,
    pub attributed_usd: Usd,
    /// Billed minus attributed: positive when burnrate saw less than the bill.
    pub difference_usd: Usd,
    /// Attributed as a percent of billed (display only; the sums are exact); null
    /// when nothing was billed.
    pub coverage_pct: Option<f64>,
    pub requests: u64,
    pub unpriced: u64,
    /// Models with calls burnrate could not price that day.
    pub unpriced_models: Vec<String>,
    pub unattributed: Unattributed,
    /// Per model, when the report splits the day by model (else empty).
    pub models: Vec<ModelRow>,
    pub models_cut: bool,
}

/// One bill day against what burnrate attributed to its provider that day.
pub fn compare(bill: &BillDay, seen: &Attributed) -> Result<DayRow, crate::query::SumOverflow> {
    let (billed, unpriced_lines) = bill.billed()?;
    let attributed = seen.total.cost;
    let difference = minus(billed, attributed)?;
    let mut unattributed = Unattributed::default();
    let mut models = Vec::new();
    if bill.has_models() {
        let mut billed_by: BTreeMap<Option<String>, Usd> = BTreeMap::new();
        for line in &bill.lines {
            let slot = billed_by.entry(line.model.clone()).or_default();
            *slot = plus(*slot, line.amount_usd.unwrap_or_default())?;
        }
        let names: BTreeSet<Option<String>> = billed_by
            .keys()
            .cloned()
            .chain(seen.models.keys().map(|m| Some(m.clone())))
            .collect();
        for name in names {
            let empty = Sums::default();
            let sums = name
                .as_ref()
                .and_then(|m| seen.models.get(m))
                .unwrap_or(&empty);
            let billed = billed_by.get(&name).copied().unwrap_or_default();
            let gap = minus(billed, sums.cost)?;
            unattributed.add(gap, sums)?;
            models.push(ModelRow {
                model: name,
                billed_usd: billed,
                attributed_usd: sums.cost,
                difference_usd: gap,
                coverage_pct: crate::report::share_pct(sums.cost, billed),
                requests: sums.requests,
                unpriced: sums.unpriced(),
            });
        }
        // The largest gap first.
        models.sort_by_key(|m| std::cmp::Reverse(m.difference_usd.0.unsigned_abs()));
    } else {
        unattributed.add(difference, &seen.total)?;
    }
    Ok(DayRow {
        day: bill.day.clone(),
        provider: bill.provider.clone(),
        source: bill.source.clone(),
        billed_usd: billed,
        unpriced_bill_lines: unpriced_lines,
        attributed_usd: attributed,
        difference_usd: difference,
        coverage_pct: crate::report::share_pct(attributed, billed),
        requests: seen.total.requests,
        unpriced: seen.total.unpriced(),
        unpriced_models: seen
            .models
            .iter()
            .filter(|(_, s)| s.unpriced() > 0)
            .map(|(m, _)| m.clone())
            .collect(),
        unattributed,
        models,
        models_cut: seen.models_cut,
    })
}

/// Whether attributed spend differs from billed by more than `pct` percent of billed,
/// compared in integers (the percent to a tenth): `|billed - attributed| x 1000 >
/// billed x pct x 10`. Nothing billed: no mismatch to measure.
pub fn mismatch(billed: Usd, attributed: Usd, pct: f64) -> bool {
    let tenths = (pct * 10.0).round() as i128;
    let gap = (billed.0 as i128 - attributed.0 as i128).abs();
    billed.0 > 0 && gap * 1000 > billed.0 as i128 * tenths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(requests: u64, priced: u64, cost: i64) -> Sums {
        Sums {
            requests,
            priced,
            cost: Usd(cost),
            ..Default::default()
        }
    }

    fn line(model: Option<&str>, nanos: i64) -> BillLine {
        BillLine {
            model: model.map(str::to_string),
            item: None,
            project: None,
            amount_usd: Some(Usd(nanos)),
            tokens: None,
        }
    }

    #[test]
    fn the_gap_splits_by_cause_and_the_parts_add_up_to_the_difference() {
        let bill = BillDay {
            provider: "openai".into(),
            day: "2026-11-02".into(),
            day_ms: day_ms("2026-11-02").unwrap(),
            source: "csv".into(),
            lines: vec![
                line(Some("gpt-4o"), 10_000_000_000), // $10, seen $9.50 all priced
                line(Some("gpt-4o-mini"), 2_000_000_000), // $2, never seen
                line(Some("ft:custom"), 3_000_000_000), // $3, seen, 4 unpriced of 5
                line(None, 500_000_000),              // $0.50, no model
            ],
        };
        let mut seen = Attributed::default();
        seen.models
            .insert("gpt-4o".into(), sums(100, 100, 9_500_000_000));
        seen.models
            .insert("ft:custom".into(), sums(5, 1, 600_000_000));
        seen.models.insert("o3".into(), sums(2, 2, 250_000_000)); // not billed
        seen.total = Sums::total(seen.models.values()).unwrap();
        let row = compare(&bill, &seen).unwrap();
        assert_eq!(row.billed_usd, Usd(15_500_000_000));
        assert_eq!(row.attributed_usd, Usd(10_350_000_000));
        assert_eq!(row.difference_usd, Usd(5_150_000_000));
        let u = row.unattributed;
        assert_eq!(u.not_reported_usd, Usd(2_500_000_000)); // mini + no-model line
        assert_eq!(u.price_gap_usd, Usd(2_400_000_000)); // 3 - 0.6
        assert_eq!(u.other_usd, Usd(500_000_000)); // 10 - 9.5
        assert_eq!(u.over_attributed_usd, Usd(250_000_000)); // o3
        let parts =
            u.not_reported_usd.0 + u.price_gap_usd.0 + u.other_usd.0 - u.over_attributed_usd.0;
        assert_eq!(parts, row.difference_usd.0);
        assert_eq!(row.unpriced_models, ["ft:custom"]);
        assert_eq!(row.models[0].model.as_deref(), Some("ft:custom"));
    }

    #[test]
    fn the_mismatch_test_is_exact_at_the_threshold() {
        let billed = Usd(100_000_000_000);
        assert!(!mismatch(billed, Usd(97_000_000_000), 3.0), "exactly 3%");
        assert!(mismatch(billed, Usd(96_999_999_999), 3.0));
        assert!(mismatch(billed, Usd(103_000_000_001), 3.0), "over, too");
        assert!(!mismatch(Usd::ZERO, Usd(5), 3.0));
    }
}
