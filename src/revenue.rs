//! Revenue per tenant (pure): each plan's monthly price (control objects of kind
//! `plan_definition`), dated entries per tenant (kind `revenue_entries`, written in
//! batches so a CSV import is one object): an `override` sets the tenant's monthly revenue
//! from its date on (null: back to its plan's price), a `oneOff` adds an amount on its
//! date (negative for a credit). Monthly amounts accrue evenly over each UTC month, so a
//! window gets the part of each month it covers; money is integer nano-USD throughout.

use crate::budget::period::Period;
use crate::event::FieldError;
use crate::money::Usd;
use crate::store::StoredObject;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub const PLAN_DEFINITION: &str = "plan_definition";
pub const REVENUE_ENTRIES: &str = "revenue_entries";
/// The largest amount of one price or entry: $1 billion keeps any sum of a tenant's
/// months far inside i64 nano-USD.
pub const MAX_AMOUNT: Usd = Usd(1_000_000_000 * 1_000_000_000);
/// Entries in one request or CSV import.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    Override,
    OneOff,
}

impl EntryKind {
    fn parse(s: &str) -> Option<EntryKind> {
        match s {
            "override" => Some(EntryKind::Override),
            "oneOff" => Some(EntryKind::OneOff),
            _ => None,
        }
    }
}

/// One dated revenue entry of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// `YYYY-MM-DD` (UTC day).
    pub date: String,
    /// None only for an override: back to the plan's price.
    pub amount_usd: Option<Usd>,
    #[serde(skip)]
    pub date_ms: i64,
}

/// A plan's monthly price from a definition body `{"priceUsd": 50}`.
pub fn parse_price(body: &Value) -> Result<Usd, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors: Vec<FieldError> = obj
        .keys()
        .filter(|k| !matches!(k.as_str(), "priceUsd" | "name"))
        .map(|k| FieldError::new(k.as_str(), "is not a plan field; use priceUsd"))
        .collect();
    let price = amount(obj.get("priceUsd"), false).map_err(|m| FieldError::new("priceUsd", m));
    match price {
        Ok(Some(p)) if errors.is_empty() => Ok(p),
        Ok(None) => {
            errors.push(FieldError::new("priceUsd", "is required"));
            Err(errors)
        }
        Ok(Some(_)) => Err(errors),
        Err(e) => {
            errors.push(e);
            Err(errors)
        }
    }
}

/// The stored body of a plan definition (the price as decimal text: never through f64).
pub fn definition_body(plan: &str, price: Usd) -> Value {
    json!({"name": plan, "priceUsd": price.to_string()})
}

/// Every plan's price; when a plan was defined twice (two writers at once), the newest.
pub fn prices(objects: &[StoredObject]) -> HashMap<String, Usd> {
    let mut sorted: Vec<&StoredObject> = objects.iter().collect();
    sorted.sort_by_key(|o| o.id);
    let mut out = HashMap::new();
    for o in sorted {
        let name = o.body.get("name").and_then(Value::as_str);
        if let (Some(name), Ok(price)) = (name, parse_price(&o.body)) {
            out.insert(name.to_string(), price);
        }
    }
    out
}

/// An amount in USD from a JSON number or decimal text (the number's own text, so 0.1
/// stays exactly 0.1), at most `MAX_AMOUNT`; negative only when `signed`. Absent or
/// null is None.
fn amount(value: Option<&Value>, signed: bool) -> Result<Option<Usd>, String> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err("must be an amount in USD (a number or decimal text)".into()),
    };
    parse_amount(&text, signed).map(Some)
}

fn parse_amount(text: &str, signed: bool) -> Result<Usd, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) if signed => (true, rest),
        Some(_) => return Err("must not be negative".into()),
        None => (false, text),
    };
    let usd = Usd::parse(digits).map_err(|e| match e {
        crate::money::ParseMoneyError::NotADecimal => {
            "must be an amount in USD (a decimal number)".to_string()
        }
        other => other.to_string(),
    })?;
    if usd > MAX_AMOUNT {
        return Err("must be at most 1000000000 USD".into());
    }
    Ok(Usd(if negative { -usd.0 } else { usd.0 }))
}

/// A `YYYY-MM-DD` day as its UTC start.
fn parse_date(text: &str) -> Option<i64> {
    let date: jiff::civil::Date = text.parse().ok()?;
    let ms = date
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_millisecond();
    (ms >= crate::validate::MIN_TIMESTAMP_MS && date.year() <= 2100).then_some(ms)
}

/// A `YYYY-MM` month as its UTC start.
pub fn parse_month(text: &str) -> Option<i64> {
    let (year, month) = text.split_once('-')?;
    let ok = year.len() == 4 && month.len() == 2;
    ok.then(|| parse_date(&format!("{year}-{month}-01")))?
}

/// One entry from its JSON object; errors name `{field_prefix}.{field}`.
pub fn parse_entry(prefix: &str, value: &Value) -> Result<Entry, Vec<FieldError>> {
    let field = |name: &str| format!("{prefix}{name}");
    let Some(obj) = value.as_object() else {
        return Err(vec![FieldError::new(
            prefix.trim_end_matches('.'),
            "must be an object",
        )]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !matches!(key.as_str(), "tenantId" | "type" | "date" | "amountUsd") {
            errors.push(FieldError::new(
                field(key),
                "is not a revenue entry field; use tenantId, type, date, amountUsd",
            ));
        }
    }
    let text = |name: &str| obj.get(name).and_then(Value::as_str).unwrap_or_default();
    entry_from(
        [text("tenantId"), text("type"), text("date")],
        obj.get("amountUsd"),
        &field,
        errors,
    )
}

/// An entry from its parts, every problem collected.
fn entry_from(
    [tenant, kind, date]: [&str; 3],
    amount_value: Option<&Value>,
    field: &dyn Fn(&str) -> String,
    mut errors: Vec<FieldError>,
) -> Result<Entry, Vec<FieldError>> {
    if let Err(e) = crate::budget::plans::check_tenant(&field("tenantId"), tenant) {
        errors.push(e);
    }
    let kind = EntryKind::parse(kind);
    if kind.is_none() {
        errors.push(FieldError::new(field("type"), "must be override or oneOff"));
    }
    let date_ms = parse_date(date);
    if date_ms.is_none() {
        errors.push(FieldError::new(
            field("date"),
            "must be a day YYYY-MM-DD from 2020-01-01 to 2100-12-31",
        ));
    }
    let signed = kind == Some(EntryKind::OneOff);
    let amount_usd = match amount(amount_value, signed) {
        Ok(None) if signed => {
            errors.push(FieldError::new(
                field("amountUsd"),
                "is required for oneOff",
            ));
            None
        }
        Ok(a) => a,
        Err(m) => {
            errors.push(FieldError::new(field("amountUsd"), m));
            None
        }
    };
    match (errors.is_empty(), kind, date_ms) {
        (true, Some(kind), Some(date_ms)) => Ok(Entry {
            tenant_id: tenant.to_string(),
            kind,
            date: date.to_string(),
            amount_usd,
            date_ms,
        }),
        _ => Err(errors),
    }
}

/// `{"entries": [...]}`: every entry, or every error (nothing is kept when one is bad).
pub fn parse_entries(body: &Value) -> Result<Vec<Entry>, Vec<FieldError>> {
    let items = match body.as_object().map(|o| (o.len(), o.get("entries"))) {
        Some((1, Some(Value::Array(items)))) if !items.is_empty() => items,
        _ => {
            return Err(vec![FieldError::new(
                "entries",
                "is required, alone: a non-empty array of {tenantId, type, date, amountUsd}",
            )])
        }
    };
    if items.len() > MAX_ENTRIES {
        return Err(vec![FieldError::new(
            "entries",
            format!("holds more than {MAX_ENTRIES} entries; send them in parts"),
        )]);
    }
    collect(
        items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_entry(&format!("entries[{i}]."), v)),
    )
}

fn collect(
    results: impl Iterator<Item = Result<Entry, Vec<FieldError>>>,
) -> Result<Vec<Entry>, Vec<FieldError>> {
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(e) => out.push(e),
            Err(e) => errors.extend(e),
        }
    }
    match errors.is_empty() {
        true => Ok(out),
        false => Err(errors),
    }
}

/// `tenantId,type,date,amountUsd` lines, the header first (an empty amount on an
/// override: back to the plan's price). Bad lines are reported as `line N`.
pub fn parse_csv(text: &str) -> Result<Vec<Entry>, Vec<FieldError>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| l.trim().replace(' ', ""));
    if header.as_deref() != Some("tenantId,type,date,amountUsd") {
        return Err(vec![FieldError::new(
            "line 1",
            "must be the header tenantId,type,date,amountUsd",
        )]);
    }
    let rows: Vec<_> = lines.collect();
    if rows.len() > MAX_ENTRIES {
        return Err(vec![FieldError::new(
            "body",
            format!("holds more than {MAX_ENTRIES} lines; import them in parts"),
        )]);
    }
    collect(rows.into_iter().map(|(n, line)| csv_line(n + 1, line)))
}

fn csv_line(n: usize, line: &str) -> Result<Entry, Vec<FieldError>> {
    let at = format!("line {n}");
    // The tenant may hold commas (quoted); the three last fields never do.
    let mut parts = line.trim_end_matches('\r').rsplitn(4, ',');
    let (Some(amount), Some(date), Some(kind), Some(tenant)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(vec![FieldError::new(
            at,
            "must be tenantId,type,date,amountUsd",
        )]);
    };
    let tenant = unquote(tenant.trim());
    let amount = amount.trim();
    let amount = (!amount.is_empty()).then(|| Value::String(amount.to_string()));
    let field = |name: &str| format!("{at} {name}");
    entry_from(
        [tenant.as_str(), kind.trim(), date.trim()],
        amount.as_ref(),
        &field,
        Vec::new(),
    )
}

fn unquote(field: &str) -> String {
    match field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => field.to_string(),
    }
}

/// The stored body of one batch of entries.
pub fn batch_body(entries: &[Entry]) -> Value {
    let items: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::to_value(e).expect("entry serializes"))
        .collect();
    let mut body = Map::new();
    body.insert("entries".into(), Value::Array(items));
    Value::Object(body)
}

/// Every tenant's entries, by date; entries of one date in the order written (the later
/// override of a day wins).
pub fn fold(objects: &[StoredObject]) -> HashMap<String, Vec<Entry>> {
    let mut batches: Vec<&StoredObject> = objects.iter().collect();
    batches.sort_by_key(|o| o.id);
    let mut out: HashMap<String, Vec<Entry>> = HashMap::new();
    for batch in batches {
        let Some(items) = batch.body.get("entries").and_then(Value::as_array) else {
            continue;
        };
        for entry in items.iter().filter_map(|v| parse_entry("", v).ok()) {
            out.entry(entry.tenant_id.clone()).or_default().push(entry);
        }
    }
    for entries in out.values_mut() {
        entries.sort_by_key(|e| e.date_ms); // stable: same-day entries keep their order
    }
    out
}

/// A sum of revenue left the range of i64 nano-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a revenue sum exceeds the largest amount burnrate holds")]
pub struct RevenueOverflow;

/// The UTC months a window [from, to) covers: each covered piece with its month's length.
/// Computed once per window, then used for every tenant.
pub struct Months {
    pub from: i64,
    pub to: i64,
    /// (piece start, piece end, length of its month), in order.
    pieces: Vec<(i64, i64, i64)>,
}

impl Months {
    pub fn new(from: i64, to: i64) -> Months {
        let mut pieces = Vec::new();
        let mut cursor = from;
        while cursor < to {
            let (month_start, month_end) = Period::Month.bounds(cursor, "UTC");
            let piece_end = month_end.min(to);
            pieces.push((cursor, piece_end, month_end - month_start));
            cursor = piece_end;
        }
        Months { from, to, pieces }
    }
}

/// A tenant's revenue over the window of `months`: its monthly amount (the price of the
/// plan in force, or the override in force) accrued evenly over each UTC month, plus the
/// one-offs dated in the window. `plan_prices` are the (from, monthly price) steps of the
/// tenant's plan history in time order (None: no plan, or a plan without a price), so a
/// plan changed mid-month earns each price for the part of the month it was in force.
/// Each span of a month is rounded half-up to a nano-USD once; a whole month is exact.
pub fn revenue(
    plan_prices: &[(i64, Option<Usd>)],
    entries: &[Entry],
    months: &Months,
) -> Result<Usd, RevenueOverflow> {
    // (from, override) steps: Some(amount) beats the plan's price, None goes back to it.
    let mut overrides: Vec<(i64, Option<Usd>)> = Vec::new();
    let mut total: i128 = 0;
    for e in entries {
        match e.kind {
            EntryKind::Override => overrides.push((e.date_ms, e.amount_usd)),
            EntryKind::OneOff if (months.from..months.to).contains(&e.date_ms) => {
                total += e.amount_usd.unwrap_or(Usd::ZERO).0 as i128;
            }
            EntryKind::OneOff => {}
        }
    }
    let in_force = |steps: &[(i64, Option<Usd>)], at: i64| {
        steps.iter().rev().find(|s| s.0 <= at).and_then(|s| s.1)
    };
    let changes: Vec<i64> = {
        let mut all: Vec<i64> = overrides.iter().chain(plan_prices).map(|s| s.0).collect();
        all.sort_unstable();
        all
    };
    for &(piece_start, piece_end, month_len) in &months.pieces {
        let month_len = month_len as i128;
        // The spans inside the piece between changes: each at its own monthly amount.
        let mut at = piece_start;
        while at < piece_end {
            let rate = in_force(&overrides, at)
                .or_else(|| in_force(plan_prices, at))
                .unwrap_or(Usd::ZERO);
            let next = changes
                .iter()
                .copied()
                .find(|d| *d > at)
                .map_or(piece_end, |d| d.min(piece_end));
            let part = rate.0 as i128 * (next - at) as i128;
            total += (part + month_len / 2).div_euclid(month_len);
            at = next;
        }
    }
    i64::try_from(total).map(Usd).map_err(|_| RevenueOverflow)
}

/// AI cost as a percent of revenue, for display (the sums are exact); None without
/// revenue. The one share ratio of the reports (`report::share_pct`).
pub fn cost_share_pct(cost: Usd, revenue: Usd) -> Option<f64> {
    crate::report::share_pct(cost, revenue)
}

/// Whether `cost` passes `pct` percent of `revenue`, compared in integers (the percent
/// to a tenth): `cost x 1000 > revenue x pct x 10`.
pub fn passes_share(cost: Usd, revenue: Usd, pct: f64) -> bool {
    let tenths = (pct * 10.0).round() as i128;
    revenue.0 > 0 && cost.0 as i128 * 1000 > revenue.0 as i128 * tenths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(day: &str) -> i64 {
        parse_date(day).unwrap()
    }

    fn entry(kind: EntryKind, date: &str, usd: Option<i64>) -> Entry {
        Entry {
            tenant_id: "t".into(),
            kind,
            date: date.into(),
            amount_usd: usd.map(|d| Usd(d * 1_000_000_000)),
            date_ms: ms(date),
        }
    }

    #[test]
    fn a_whole_month_is_the_plan_price_exactly() {
        let price = &[(i64::MIN, Some(Usd(49_990_000_000)))];
        let r = revenue(price, &[], &Months::new(ms("2026-11-01"), ms("2026-12-01"))).unwrap();
        assert_eq!(r, Usd(49_990_000_000));
        // Half of a 30-day month.
        let half = revenue(price, &[], &Months::new(ms("2026-11-01"), ms("2026-11-16"))).unwrap();
        assert_eq!(half, Usd(24_995_000_000));
    }

    #[test]
    fn an_override_mid_month_splits_the_month_and_a_one_off_adds_on_its_day() {
        let entries = vec![
            entry(EntryKind::Override, "2026-11-16", Some(90)),
            entry(EntryKind::OneOff, "2026-11-20", Some(-5)),
            entry(EntryKind::OneOff, "2026-12-01", Some(100)),
        ];
        let price = &[(i64::MIN, Some(Usd(30_000_000_000)))];
        let r = revenue(
            price,
            &entries,
            &Months::new(ms("2026-11-01"), ms("2026-12-01")),
        )
        .unwrap();
        // 15 days at $30/month + 15 days at $90/month - $5.
        assert_eq!(r, Usd(15_000_000_000 + 45_000_000_000 - 5_000_000_000));
        let back = [entry(EntryKind::Override, "2026-11-01", None)];
        let r = revenue(
            price,
            &back,
            &Months::new(ms("2026-11-01"), ms("2026-12-01")),
        )
        .unwrap();
        assert_eq!(r, Usd(30_000_000_000), "a null override is the plan price");
    }

    #[test]
    fn a_plan_changed_mid_month_earns_each_price_for_its_days() {
        // $10/month until 21 Nov, $40/month from then, in a 30-day month: 20 days of
        // $10 ($6.666666667, rounded half-up) and 10 days of $40 ($13.333333333).
        let steps = [
            (i64::MIN, Some(Usd(10_000_000_000))),
            (ms("2026-11-21"), Some(Usd(40_000_000_000))),
        ];
        let nov = Months::new(ms("2026-11-01"), ms("2026-12-01"));
        let r = revenue(&steps, &[], &nov).unwrap();
        assert_eq!(r, Usd(6_666_666_667 + 13_333_333_333));
        // An override in force beats either plan's price; off its plan, nothing.
        let over = [entry(EntryKind::Override, "2026-11-11", Some(60))];
        let r = revenue(&steps, &over, &nov).unwrap();
        // 10 days of $10 ($3.333333333), then 20 days at the $60 override ($40).
        assert_eq!(r, Usd(3_333_333_333 + 40_000_000_000));
        let off = [
            (i64::MIN, Some(Usd(30_000_000_000))),
            (ms("2026-11-16"), None),
        ];
        assert_eq!(revenue(&off, &[], &nov).unwrap(), Usd(15_000_000_000));
    }

    #[test]
    fn bad_entries_name_their_fields() {
        let body = json!({"entries": [
            {"tenantId": "", "type": "refund", "date": "2026-13-01", "amountUsd": "x"},
            {"tenantId": "a", "type": "override", "date": "2026-11-01", "amountUsd": -3},
            {"tenantId": "a", "type": "oneOff", "date": "2026-11-01", "extra": 1}
        ]});
        let fields: Vec<String> = parse_entries(&body)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "entries[0].tenantId",
                "entries[0].type",
                "entries[0].date",
                "entries[0].amountUsd",
                "entries[1].amountUsd",
                "entries[2].extra",
                "entries[2].amountUsd"
            ]
        );
        let csv = "tenantId,type,date,amountUsd\nacme,oneOff,2026-11-02,12.5\nx,bad,2026-11-01,1\n";
        let errors = parse_csv(csv).unwrap_err();
        assert_eq!(errors[0].field, "line 3 type");
    }

    #[test]
    fn the_share_test_is_exact_at_the_threshold() {
        let (cost, revenue) = (Usd(30_000_000_000), Usd(100_000_000_000));
        assert!(
            !passes_share(cost, revenue, 30.0),
            "exactly 30% does not pass"
        );
        assert!(passes_share(Usd(cost.0 + 1), revenue, 30.0));
        assert!(!passes_share(cost, Usd::ZERO, 30.0), "no revenue: no share");
    }
}
