//! Reconciliation's store side: saving imported bill days (replacing a provider's day
//! already stored) and the report of `/v1/reconciliation`, the dashboard page, `burnrate
//! reconcile show` and the `bill_mismatch` alert: each stored bill day in a window
//! against what burnrate attributed (two aggregates by day: per provider, per provider
//! and model).

use crate::money::Usd;
use crate::query::{Bucket, Dimension, Filters, Measure, Query, Row};
use crate::reconcile::{self, Attributed, BillDay, DayRow, BILL_DAY, DAY_MS};
use crate::store::{Result, Store, StoreError, WorkspaceId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    pub format: String,
    /// Provider days in the file.
    pub days: usize,
    /// Of them, days that replaced an earlier import.
    pub replaced: usize,
    pub billed_usd: Usd,
    /// Usage lines the book could not price.
    pub unpriced_lines: u64,
    pub from: String,
    pub to: String,
}

/// Store each bill day, replacing the stored object of the same provider and day.
pub async fn save(
    store: &dyn Store,
    ws: WorkspaceId,
    format: &str,
    days: Vec<BillDay>,
    now_ms: i64,
) -> Result<ImportSummary> {
    let stored = reconcile::fold(&store.objects(Some(ws), BILL_DAY).await?);
    let (mut replaced, mut billed, mut unpriced_lines) = (0, Usd::ZERO, 0);
    for day in &days {
        let (amount, missing) = day.billed().map_err(|_| StoreError::SumOverflow)?;
        billed = Usd(billed
            .0
            .checked_add(amount.0)
            .ok_or(StoreError::SumOverflow)?);
        unpriced_lines += missing;
        let id = stored
            .get(&(day.day.clone(), day.provider.clone()))
            .map(|(id, _)| *id);
        replaced += usize::from(id.is_some());
        store
            .put_object(ws, BILL_DAY, id, reconcile::body(day, now_ms))
            .await?;
    }
    Ok(ImportSummary {
        format: format.to_string(),
        days: days.len(),
        replaced,
        billed_usd: billed,
        unpriced_lines,
        from: days.iter().map(|d| d.day.clone()).min().unwrap_or_default(),
        to: days.iter().map(|d| d.day.clone()).max().unwrap_or_default(),
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub billed_usd: Usd,
    pub attributed_usd: Usd,
    pub difference_usd: Usd,
    pub coverage_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    pub from: String,
    pub to: String,
    pub totals: Totals,
    /// One row per provider and day with a bill, newest day first.
    pub days: Vec<DayRow>,
}

/// The UTC days [from, to) snapped outward to whole days.
pub fn whole_days(from_ms: i64, to_ms: i64) -> (i64, i64) {
    let from = from_ms.div_euclid(DAY_MS) * DAY_MS;
    let to = (to_ms + DAY_MS - 1).div_euclid(DAY_MS) * DAY_MS;
    (from, to.max(from + DAY_MS))
}

/// Every stored bill day in [from, to) (whole UTC days) against burnrate's attribution
/// under `filters`.
pub async fn reconciliation(
    store: &dyn Store,
    ws: WorkspaceId,
    from_ms: i64,
    to_ms: i64,
    filters: &Filters,
) -> Result<Reconciliation> {
    let (from, to) = whole_days(from_ms, to_ms);
    let bills: Vec<BillDay> = reconcile::fold(&store.objects(Some(ws), BILL_DAY).await?)
        .into_values()
        .map(|(_, d)| d)
        .filter(|d| (from..to).contains(&d.day_ms))
        .collect();
    let seen = attributed(store, ws, (from, to), filters, &bills).await?;
    let empty = Attributed::default();
    let mut days = Vec::with_capacity(bills.len());
    let (mut billed, mut attributed_total) = (0i64, 0i64);
    for bill in &bills {
        let got = seen
            .get(&(bill.day_ms, bill.provider.clone()))
            .unwrap_or(&empty);
        let row = reconcile::compare(bill, got).map_err(|_| StoreError::SumOverflow)?;
        billed = billed
            .checked_add(row.billed_usd.0)
            .ok_or(StoreError::SumOverflow)?;
        attributed_total = attributed_total
            .checked_add(row.attributed_usd.0)
            .ok_or(StoreError::SumOverflow)?;
        days.push(row);
    }
    days.sort_by(|a, b| b.day.cmp(&a.day).then(a.provider.cmp(&b.provider)));
    let difference = billed
        .checked_sub(attributed_total)
        .ok_or(StoreError::SumOverflow)?;
    Ok(Reconciliation {
        from: crate::report::rfc3339(from),
        to: crate::report::rfc3339(to),
        totals: Totals {
            billed_usd: Usd(billed),
            attributed_usd: Usd(attributed_total),
            difference_usd: Usd(difference),
            coverage_pct: crate::report::share_pct(Usd(attributed_total), Usd(billed)),
        },
        days,
    })
}

/// What burnrate attributed per (day start, provider) to the bills' providers.
async fn attributed(
    store: &dyn Store,
    ws: WorkspaceId,
    (from, to): (i64, i64),
    filters: &Filters,
    bills: &[BillDay],
) -> Result<BTreeMap<(i64, String), Attributed>> {
    let mut out: BTreeMap<(i64, String), Attributed> = BTreeMap::new();
    if bills.is_empty() {
        return Ok(out);
    }
    let mut providers: Vec<String> = bills.iter().map(|b| b.provider.clone()).collect();
    providers.sort();
    providers.dedup();
    let mut filters = filters.clone();
    filters.text.insert(Dimension::Provider, providers);
    let query = |group_by: Vec<Dimension>| Query {
        from_ms: from,
        to_ms: to,
        filters: filters.clone(),
        group_by,
        bucket: Some(Bucket::Day),
        measures: vec![Measure::CostUsd, Measure::Requests, Measure::Unpriced],
        order_by: Some(Measure::CostUsd),
        ascending: false,
        limit: crate::query::MAX_LIMIT,
        count_by_first: false,
    };
    let per_provider = store
        .aggregate(ws, query(vec![Dimension::Provider]))
        .await?;
    for row in per_provider.rows {
        if let Some(key) = key(&row) {
            out.entry(key).or_default().total = row.sums;
        }
    }
    let per_model = store
        .aggregate(ws, query(vec![Dimension::Provider, Dimension::Model]))
        .await?;
    let cut = per_model.cut > 0;
    for row in per_model.rows {
        if let (Some(key), Some(model)) = (key(&row), row.group.get(1)) {
            let slot = out.entry(key).or_default();
            slot.models.insert(model.clone(), row.sums);
        }
    }
    if cut {
        out.values_mut().for_each(|a| a.models_cut = true);
    }
    Ok(out)
}

fn key(row: &Row) -> Option<(i64, String)> {
    Some((row.bucket_ms?, row.group.first()?.clone()))
}

/// The attribution the reconciliation compares by default: every environment (the
/// provider bills them all), real traffic only.
pub fn default_filters() -> Filters {
    Filters {
        data_mode: vec![crate::event::DataMode::Real],
        ..Default::default()
    }
}

/// The default window: the 30 UTC days up to now.
const DEFAULT_DAYS: i64 = 30;

/// The window and filters of a reconciliation request, or the bad parameter and why.
pub fn params(
    params: &HashMap<String, String>,
    now_ms: i64,
) -> std::result::Result<(i64, i64, Filters), (String, String)> {
    let mut filters = default_filters();
    for name in params.keys() {
        if !matches!(name.as_str(), "from" | "to" | "environment" | "dataMode") {
            return Err((
                name.clone(),
                "is not a parameter of this endpoint; use from, to, environment, dataMode".into(),
            ));
        }
    }
    let time = |name: &str| -> std::result::Result<Option<i64>, (String, String)> {
        params
            .get(name)
            .map(|t| {
                crate::reconcile::day_ms(t)
                    .or_else(|| {
                        t.parse::<jiff::Timestamp>()
                            .ok()
                            .map(|t| t.as_millisecond())
                    })
                    .ok_or((
                        name.to_string(),
                        "must be a day YYYY-MM-DD or an RFC 3339 time".to_string(),
                    ))
            })
            .transpose()
    };
    let to = time("to")?.unwrap_or(now_ms);
    let from = time("from")?.unwrap_or(to - DEFAULT_DAYS * crate::reconcile::DAY_MS);
    if from >= to {
        return Err(("from".into(), "must be before to".into()));
    }
    if to - from > 400 * crate::reconcile::DAY_MS {
        return Err(("to".into(), "must be at most 400 days after from".into()));
    }
    if let Some(list) = params.get("environment") {
        filters.environment = list
            .split(',')
            .map(|v| crate::event::Environment::parse(v.trim()))
            .collect::<Option<Vec<_>>>()
            .ok_or((
                "environment".to_string(),
                format!("must be among {}", crate::event::Environment::expected()),
            ))?;
    }
    if let Some(list) = params.get("dataMode") {
        filters.data_mode = list
            .split(',')
            .map(|v| crate::event::DataMode::parse(v.trim()))
            .collect::<Option<Vec<_>>>()
            .ok_or((
                "dataMode".to_string(),
                format!("must be among {}", crate::event::DataMode::expected()),
            ))?;
    }
    Ok((from, to, filters))
}
