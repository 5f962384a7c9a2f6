//! The provider reports `burnrate reconcile import` reads, each into bill days (pure):
//! OpenAI's Costs API pages (`amount.value` in USD), OpenAI's Usage API completions pages
//! (token counts, priced afterwards by `price_usage`), Anthropic's cost report (amounts
//! in cents as decimal text) and a generic CSV `date,provider,model,amountUsd`.
//! Amounts are read from their own text (serde's RawValue), never through f64.

use super::{BillDay, BillLine, UsageTokens};
use crate::event::FieldError;
use crate::money::Usd;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The largest amount of one line: $1 billion keeps any day's sum far inside i64.
pub const MAX_LINE_USD: Usd = Usd(1_000_000_000 * 1_000_000_000);
/// Lines in one file.
pub const MAX_LINES: usize = 200_000;
const DAY_S: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenaiCosts,
    OpenaiUsage,
    AnthropicCost,
    Csv,
}

impl Format {
    pub const EXPECTED: &'static str = "openai-costs, openai-usage, anthropic-cost, csv";

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "openai-costs" => Format::OpenaiCosts,
            "openai-usage" => Format::OpenaiUsage,
            "anthropic-cost" => Format::AnthropicCost,
            "csv" => Format::Csv,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::OpenaiCosts => "openai-costs",
            Format::OpenaiUsage => "openai-usage",
            Format::AnthropicCost => "anthropic-cost",
            Format::Csv => "csv",
        }
    }

    /// The format named, else sniffed from the text.
    pub fn named_or_sniffed(named: Option<&str>, text: &str) -> Result<Format, String> {
        match named {
            Some(name) => {
                Format::parse(name).ok_or_else(|| format!("must be one of: {}", Format::EXPECTED))
            }
            None => Format::sniff(text).ok_or_else(|| {
                format!(
                    "could not be told from the file (no organization.costs.result, organization.usage.completions.result or starting_at); name it: {}",
                    Format::EXPECTED
                )
            }),
        }
    }

    /// The format of a file from its text: CSV unless it is JSON; a JSON report by its
    /// first result's `object` (OpenAI) or its buckets' `starting_at` (Anthropic).
    pub fn sniff(text: &str) -> Option<Format> {
        let t = text.trim_start();
        if !(t.starts_with('{') || t.starts_with('[')) {
            return Some(Format::Csv);
        }
        if t.contains("\"organization.costs.result\"") {
            Some(Format::OpenaiCosts)
        } else if t.contains("\"organization.usage.completions.result\"") {
            Some(Format::OpenaiUsage)
        } else if t.contains("\"starting_at\"") {
            Some(Format::AnthropicCost)
        } else {
            None
        }
    }
}

/// Every bill day of a file in `format`, or every problem found (nothing is kept when
/// one is bad), each naming its place (`data[0].results[1].amount.currency`, `line 3
/// amountUsd`).
pub fn parse(format: Format, text: &str) -> Result<Vec<BillDay>, Vec<FieldError>> {
    let mut days = Days::default();
    match format {
        Format::Csv => csv(text, &mut days)?,
        Format::OpenaiCosts | Format::OpenaiUsage | Format::AnthropicCost => {
            let (pages, many) = pages(text)?;
            for (p, page) in pages.iter().enumerate() {
                // A place in the file: `data[0]...`, or `[1].data[0]...` in an array of pages.
                let at = |rest: &str| match (many, rest.strip_prefix('.').unwrap_or(rest)) {
                    (false, "") => "body".to_string(),
                    (false, rest) => rest.to_string(),
                    (true, "") => format!("[{p}]"),
                    (true, rest) => format!("[{p}].{rest}"),
                };
                let found = match format {
                    Format::OpenaiCosts => openai_costs(page, &at, &mut days),
                    Format::OpenaiUsage => openai_usage(page, &at, &mut days),
                    _ => anthropic(page, &at, &mut days),
                };
                if let Err(e) = found {
                    days.errors.extend(e);
                }
            }
        }
    }
    days.finish(format)
}

#[derive(Default)]
struct Days {
    by_key: BTreeMap<(String, String), Vec<BillLine>>,
    lines: usize,
    errors: Vec<FieldError>,
}

impl Days {
    fn add(&mut self, provider: &str, day: String, line: BillLine) {
        self.lines += 1;
        self.by_key
            .entry((provider.to_string(), day))
            .or_default()
            .push(line);
    }

    fn finish(self, format: Format) -> Result<Vec<BillDay>, Vec<FieldError>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        if self.lines > MAX_LINES {
            return Err(vec![FieldError::new(
                "body",
                format!("holds more than {MAX_LINES} lines; import it in parts"),
            )]);
        }
        if self.by_key.is_empty() {
            return Err(vec![FieldError::new(
                "body",
                "holds no cost lines (an empty report would read as $0 billed)",
            )]);
        }
        Ok(self
            .by_key
            .into_iter()
            .map(|((provider, day), lines)| BillDay {
                day_ms: super::day_ms(&day).expect("days are checked when read"),
                provider,
                day,
                source: format.as_str().to_string(),
                lines,
            })
            .collect())
    }
}

/// A report file is one page object or a JSON array of pages (several pages saved
/// together).
fn pages(text: &str) -> Result<(Vec<Box<RawValue>>, bool), Vec<FieldError>> {
    let bad = |e: serde_json::Error| vec![FieldError::new("body", format!("is not JSON: {e}"))];
    if text.trim_start().starts_with('[') {
        Ok((serde_json::from_str(text).map_err(bad)?, true))
    } else {
        Ok((vec![serde_json::from_str(text).map_err(bad)?], false))
    }
}

#[derive(Deserialize)]
struct Page<B> {
    data: Vec<B>,
}

#[derive(Deserialize)]
struct OpenaiBucket {
    start_time: i64,
    end_time: i64,
    results: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct OpenaiCost {
    object: String,
    amount: OpenaiAmount,
    #[serde(default)]
    line_item: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

#[derive(Deserialize)]
struct OpenaiAmount {
    value: Box<RawValue>,
    currency: String,
}

#[derive(Deserialize)]
struct OpenaiUsage {
    object: String,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_cached_tokens: u64,
    #[serde(default)]
    num_model_requests: u64,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    batch: Option<bool>,
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

#[derive(Deserialize)]
struct AnthropicBucket {
    starting_at: String,
    ending_at: String,
    results: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct AnthropicCost {
    amount: String,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    cost_type: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    workspace_id: Option<String>,
}

fn read<'a, T: Deserialize<'a>>(raw: &'a RawValue, at: &str) -> Result<T, Vec<FieldError>> {
    serde_json::from_str(raw.get()).map_err(|e| vec![FieldError::new(at, strip_position(&e))])
}

/// serde's message without its "at line 1 column 80" (positions inside one result are
/// not the file's lines; the field path names the place).
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The UTC day of a bucket [start, end) in seconds; a bucket must lie within one day.
fn bucket_day(start_s: i64, end_s: i64) -> Result<String, String> {
    if end_s <= start_s || start_s.div_euclid(DAY_S) != (end_s - 1).div_euclid(DAY_S) {
        return Err(
            "must end after start_time within the same UTC day (use bucket_width=1d, 1h or 1m)"
                .into(),
        );
    }
    super::day_text(start_s * 1000).ok_or_else(|| "is outside 2020-01-01 to 2100-12-31".into())
}

/// Each result of an OpenAI organization report page (Costs or Usage API: the same
/// buckets of a day with `results`), read as `T` and handed to `line` with its UTC day
/// and its place in the file; every problem is collected with its place.
fn each_openai_result<T: for<'a> Deserialize<'a>>(
    page: &RawValue,
    at: &dyn Fn(&str) -> String,
    mut line: impl FnMut(T, &str, String) -> Result<(), FieldError>,
) -> Result<(), Vec<FieldError>> {
    let page: Page<OpenaiBucket> = read(page, &at(""))?;
    let mut errors = Vec::new();
    for (b, bucket) in page.data.iter().enumerate() {
        let here = |rest: &str| at(&format!("data[{b}]{rest}"));
        let day = match bucket_day(bucket.start_time, bucket.end_time) {
            Ok(d) => d,
            Err(m) => {
                errors.push(FieldError::new(here(".end_time"), m));
                continue;
            }
        };
        for (r, raw) in bucket.results.iter().enumerate() {
            let place = here(&format!(".results[{r}]"));
            match read::<T>(raw, &place) {
                Ok(result) => errors.extend(line(result, &place, day.clone()).err()),
                Err(e) => errors.extend(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn openai_costs(
    page: &RawValue,
    at: &dyn Fn(&str) -> String,
    days: &mut Days,
) -> Result<(), Vec<FieldError>> {
    each_openai_result(page, at, |cost: OpenaiCost, place, day| {
        if cost.object != "organization.costs.result" {
            return Err(FieldError::new(
                format!("{place}.object"),
                "must be organization.costs.result (this is not a Costs API page)",
            ));
        }
        if !cost.amount.currency.eq_ignore_ascii_case("usd") {
            return Err(FieldError::new(
                format!("{place}.amount.currency"),
                "must be usd (burnrate reconciles USD bills)",
            ));
        }
        match amount(cost.amount.value.get().trim_matches('"'), false) {
            Ok(usd) => days.add(
                "openai",
                day,
                BillLine {
                    model: None,
                    item: cost.line_item,
                    project: cost.project_id,
                    amount_usd: Some(usd),
                    tokens: None,
                },
            ),
            Err(m) => return Err(FieldError::new(format!("{place}.amount.value"), m)),
        }
        Ok(())
    })
}

fn openai_usage(
    page: &RawValue,
    at: &dyn Fn(&str) -> String,
    days: &mut Days,
) -> Result<(), Vec<FieldError>> {
    each_openai_result(page, at, |usage: OpenaiUsage, place, day| {
        if usage.object != "organization.usage.completions.result" {
            return Err(FieldError::new(
                format!("{place}.object"),
                "must be organization.usage.completions.result (completions usage only)",
            ));
        }
        if usage.input_cached_tokens > usage.input_tokens {
            return Err(FieldError::new(
                format!("{place}.input_cached_tokens"),
                "must not exceed input_tokens (cached tokens are part of the input)",
            ));
        }
        let tier = match (usage.batch, usage.service_tier.as_deref()) {
            (Some(true), _) => "batch",
            (_, Some(t @ ("flex" | "priority"))) => t,
            _ => "standard",
        };
        days.add(
            "openai",
            day,
            BillLine {
                model: usage.model.filter(|m| !m.is_empty()),
                item: None,
                project: usage.project_id,
                amount_usd: None,
                tokens: Some(UsageTokens {
                    input: usage.input_tokens,
                    cached: usage.input_cached_tokens,
                    output: usage.output_tokens,
                    requests: usage.num_model_requests,
                    tier: tier.to_string(),
                }),
            },
        );
        Ok(())
    })
}

fn anthropic(
    page: &RawValue,
    at: &dyn Fn(&str) -> String,
    days: &mut Days,
) -> Result<(), Vec<FieldError>> {
    let page: Page<AnthropicBucket> = read(page, &at(""))?;
    let mut errors = Vec::new();
    for (b, bucket) in page.data.iter().enumerate() {
        let here = |rest: &str| at(&format!("data[{b}]{rest}"));
        let times = (
            bucket.starting_at.parse::<jiff::Timestamp>(),
            bucket.ending_at.parse::<jiff::Timestamp>(),
        );
        let (Ok(start), Ok(end)) = times else {
            errors.push(FieldError::new(
                here(".starting_at"),
                "starting_at and ending_at must be RFC 3339 times",
            ));
            continue;
        };
        let day = match bucket_day(start.as_second(), end.as_second()) {
            Ok(d) => d,
            Err(m) => {
                errors.push(FieldError::new(here(".ending_at"), m));
                continue;
            }
        };
        for (r, raw) in bucket.results.iter().enumerate() {
            let place = here(&format!(".results[{r}]"));
            let cost: AnthropicCost = match read(raw, &place) {
                Ok(c) => c,
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            };
            if cost
                .currency
                .as_deref()
                .is_some_and(|c| !c.eq_ignore_ascii_case("usd"))
            {
                errors.push(FieldError::new(
                    format!("{place}.currency"),
                    "must be USD (burnrate reconciles USD bills)",
                ));
                continue;
            }
            let usd = match Usd::parse_cents_rounded(&cost.amount) {
                Ok(u) if u.0.unsigned_abs() <= MAX_LINE_USD.0 as u64 => u,
                Ok(_) => {
                    errors.push(FieldError::new(
                        format!("{place}.amount"),
                        "must be at most 1000000000 USD",
                    ));
                    continue;
                }
                Err(_) => {
                    errors.push(FieldError::new(
                        format!("{place}.amount"),
                        "must be an amount in cents as decimal text, e.g. \"123.45\"",
                    ));
                    continue;
                }
            };
            // The line's name: its description, else its cost and token types.
            let item = cost.description.or_else(|| {
                let parts: Vec<&str> = [cost.cost_type.as_deref(), cost.token_type.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            });
            days.add(
                "anthropic",
                day.clone(),
                BillLine {
                    model: cost.model.filter(|m| !m.is_empty()),
                    item,
                    project: cost.workspace_id,
                    amount_usd: Some(usd),
                    tokens: None,
                },
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A USD amount from decimal text (negative only when `unsigned` is false: credits).
fn amount(text: &str, unsigned: bool) -> Result<Usd, String> {
    if unsigned && text.starts_with('-') {
        return Err("must not be negative".into());
    }
    let usd = Usd::parse_signed_rounded(text)
        .map_err(|_| "must be an amount in USD (a decimal number)".to_string())?;
    if usd.0.unsigned_abs() > MAX_LINE_USD.0 as u64 {
        return Err("must be at most 1000000000 USD".into());
    }
    Ok(usd)
}

/// `date,provider,model,amountUsd`, the header first; an empty model is a line the
/// report did not split by model. Problems are named `line N field`.
fn csv(text: &str, days: &mut Days) -> Result<(), Vec<FieldError>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| l.trim().replace(' ', ""));
    if header.as_deref() != Some("date,provider,model,amountUsd") {
        return Err(vec![FieldError::new(
            "line 1",
            "must be the header date,provider,model,amountUsd",
        )]);
    }
    for (n, line) in lines {
        let at = format!("line {}", n + 1);
        let fields: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        let [date, provider, model, usd] = fields[..] else {
            days.errors.push(FieldError::new(
                at,
                "must be date,provider,model,amountUsd (4 fields; model may be empty)",
            ));
            continue;
        };
        let (date, provider, model) = (date.trim(), provider.trim(), model.trim());
        if super::day_ms(date).is_none() {
            days.errors.push(FieldError::new(
                format!("{at} date"),
                "must be a day YYYY-MM-DD from 2020-01-01 to 2100-12-31",
            ));
        }
        if provider.is_empty() || provider.len() > 64 {
            days.errors.push(FieldError::new(
                format!("{at} provider"),
                "must be the provider's name as events send it (1-64 characters)",
            ));
        }
        let usd = match amount(usd.trim(), false) {
            Ok(u) => Some(u),
            Err(m) => {
                days.errors
                    .push(FieldError::new(format!("{at} amountUsd"), m));
                None
            }
        };
        if let (Some(usd), Some(_)) = (usd, super::day_ms(date)) {
            if !provider.is_empty() && provider.len() <= 64 {
                days.add(
                    &provider.to_ascii_lowercase(),
                    date.to_string(),
                    BillLine {
                        model: (!model.is_empty()).then(|| model.to_string()),
                        item: None,
                        project: None,
                        amount_usd: Some(usd),
                        tokens: None,
                    },
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_cents_are_exact_and_openai_values_keep_their_text() {
        let a = r#"{"data":[{"starting_at":"2026-11-02T00:00:00Z","ending_at":"2026-11-03T00:00:00Z",
            "results":[{"amount":"123.456789","currency":"USD","model":"claude-sonnet-4-5","cost_type":"tokens"}]}],
            "has_more":false,"next_page":null}"#;
        let days = parse(Format::AnthropicCost, a).unwrap();
        // 123.456789 cents = $1.23456789.
        assert_eq!(days[0].lines[0].amount_usd, Some(Usd(1_234_567_890)));
        assert_eq!(days[0].day, "2026-11-02");
        let o = r#"{"object":"page","data":[{"object":"bucket","start_time":1793577600,"end_time":1793664000,
            "results":[{"object":"organization.costs.result","amount":{"value":0.1000000001,"currency":"usd"},"line_item":null,"project_id":null}]}]}"#;
        let days = parse(Format::OpenaiCosts, o).unwrap();
        // 0.1000000001 rounds half-up to the nano: 100000000.1 nanos -> 100000000.
        assert_eq!(days[0].lines[0].amount_usd, Some(Usd(100_000_000)));
    }

    #[test]
    fn problems_name_their_place() {
        let o = r#"{"data":[{"start_time":1793577600,"end_time":1793750400,"results":[]},
            {"start_time":1793577600,"end_time":1793664000,"results":[
              {"object":"organization.costs.result","amount":{"value":"x","currency":"usd"}},
              {"object":"organization.costs.result","amount":{"value":1,"currency":"eur"}},
              {"object":"organization.costs.result"}]}]}"#;
        let fields: Vec<String> = parse(Format::OpenaiCosts, o)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "data[0].end_time",
                "data[1].results[0].amount.value",
                "data[1].results[1].amount.currency",
                "data[1].results[2]"
            ]
        );
        let csv =
            "date,provider,model,amountUsd\n2026-11-02,openai,,1.5\n2026-13-01,openai,gpt-4o,x\n";
        let fields: Vec<String> = parse(Format::Csv, csv)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["line 3 date", "line 3 amountUsd"]);
    }
}
