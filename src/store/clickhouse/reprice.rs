//! Re-pricing on ClickHouse. Stored attempts are immutable rows resolved at read time
//! (the row of the largest `pick` per call), so a call is re-priced by storing a copy of
//! its winning row with the new price and `repriced` set, made as if stored one
//! microsecond before that row: `seq - 1`, hence `pick + 1` (the copy wins every read's
//! argMax over the row it copies, and an attempt of better rank still wins over both)
//! and `keep + 1` (the table's merge keeps the copy and drops the original). The hour
//! totals grow by the cost changes. The caller holds the node's write lock, as ingest.

use super::http::{quote, tsv_field};
use super::ingest::{check_hours, halves, stored_hour_totals};
use super::read::{stored_event, WINNER_COLUMNS};
use super::{num, schema, text, ClickhouseStore};
use crate::event::Pricing;
use crate::store::{
    repricing, Pricer, RepriceOutcome, RepriceScope, RepriceTarget, Result, WorkspaceId,
};
use std::collections::{BTreeMap, HashMap};

const HOUR_MS: i64 = 3_600_000;

/// Where `stored_event`'s columns end in a candidate row: then max pick, seq, keep.
const PICK: usize = 3 + WINNER_COLUMNS.len();

pub async fn reprice(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    scope: &RepriceScope,
    pricer: &Pricer,
    at_ms: i64,
) -> Result<RepriceOutcome> {
    let mut outcome = RepriceOutcome::default();
    let mut copies = Vec::new();
    let mut hours: BTreeMap<i64, [i128; 7]> = BTreeMap::new();
    for row in store.client.select(&candidates(store, ws, scope)).await? {
        let call = stored_event(&row)?;
        let old = call.cost_usd.map(|c| c.0);
        let Some((pricing, cost)) = repricing(pricer, &call, old) else {
            match old {
                None => outcome.still_unpriced += 1,
                Some(_) => outcome.unchanged += 1,
            }
            continue;
        };
        let ts: i64 = num(&row, 4)?;
        outcome.add(ws, ts, &call, old, cost)?;
        hours.entry(ts.div_euclid(HOUR_MS)).or_insert([0; 7])[0] +=
            i128::from(cost) - i128::from(old.unwrap_or(0));
        copies.push((
            copy(ws, &row, &pricing, cost, at_ms)?,
            ts.div_euclid(HOUR_MS),
        ));
    }
    if outcome.repriced == 0 || scope.dry_run {
        return Ok(outcome);
    }
    let stored = stored_hour_totals(store, ws, hours.keys().copied().collect()).await?;
    check_hours(&stored, &hours)?;
    outcome.seq = store.seq.next();
    // The totals first: should the copies fail to be stored, the write check is only
    // stricter than it needs to be, never looser.
    let totals: Vec<String> = hours
        .iter()
        .map(|(hour, sums)| {
            let mut fields = vec![ws.to_string(), hour.to_string()];
            for value in sums {
                let (hi, lo) = halves(*value);
                fields.push(hi.to_string());
                fields.push(lo.to_string());
            }
            fields.join("\t")
        })
        .collect();
    store
        .client
        .insert(&store.table(schema::HOUR_TOTALS.name), &totals)
        .await?;
    // The by-hour copy before `EVENTS`, as ingest writes (`schema::EVENTS_BY_HOUR`).
    let by_hour: Vec<String> = copies
        .iter()
        .map(|(row, hour)| format!("{row}\t{hour}"))
        .collect();
    store
        .client
        .insert(&store.table(schema::EVENTS_BY_HOUR.name), &by_hour)
        .await?;
    let rows: Vec<String> = copies.into_iter().map(|(row, _)| row).collect();
    store
        .client
        .insert(&store.table(schema::EVENTS.name), &rows)
        .await?;
    // The re-priced calls' hours read raw until resealed.
    super::cells::mark(store, ws, hours.keys().copied()).await?;
    Ok(outcome)
}

/// The calls of the scope's target as `stored_event` reads them, each followed by its
/// winning row's pick, seq and keep.
fn candidates(store: &ClickhouseStore, ws: WorkspaceId, scope: &RepriceScope) -> String {
    let winners: Vec<String> = WINNER_COLUMNS
        .iter()
        .map(|c| format!("argMax({c}, pick) AS c_{c}"))
        .collect();
    // Literals ClickHouse 18.16 reads as Int64 (i64::MIN is read as a float).
    let bound = |ms: i64| ms.clamp(-(1 << 62), 1 << 62);
    let mut conditions = vec![
        format!("c_ts >= {}", bound(scope.from_ms)),
        format!("c_ts < {}", bound(scope.to_ms)),
    ];
    conditions.push(match &scope.target {
        RepriceTarget::Unpriced => "c_priced = 0".to_string(),
        RepriceTarget::Entry(entry) => {
            format!("c_priced = 1 AND c_price_entry_id = {}", quote(entry))
        }
    });
    if let Some(model) = &scope.model {
        conditions.push(format!("c_model = {}", quote(model)));
    }
    format!(
        "SELECT * FROM (SELECT idless AS c_idless, id AS c_id, uniqExact(attempt) AS c_attempts,
             {}, max(pick) AS c_pick, argMax(seq, pick) AS c_seq, argMax(keep, pick) AS c_keep
           FROM {} WHERE ws = {ws} GROUP BY idless, id)
         WHERE {} ORDER BY c_ts, c_idless, c_id",
        winners.join(", "),
        store.table(schema::EVENTS.name),
        conditions.join(" AND ")
    )
}

/// The copy of a candidate's winning row with the new pricing, as a TabSeparated line
/// of `schema::EVENTS`' columns (which are ws, idless, id, attempt, pick, seq, keep,
/// then `WINNER_COLUMNS` after attempt in the same order).
fn copy(
    ws: WorkspaceId,
    row: &[String],
    pricing: &Pricing,
    cost: i64,
    at_ms: i64,
) -> Result<String> {
    let column: HashMap<&str, usize> = WINNER_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, 3 + i))
        .collect();
    let pick: u64 = num(row, PICK)?;
    let seq: u64 = num(row, PICK + 1)?;
    let keep: u64 = num(row, PICK + 2)?;
    let mut fields = vec![
        ws.to_string(),
        text(row, 0),
        tsv_field(&text(row, 1)),
        text(row, column["attempt"]),
        (pick + 1).to_string(),
        seq.saturating_sub(1).to_string(),
        keep.saturating_add(1).to_string(),
    ];
    // The call's own values, as stored.
    for name in &WINNER_COLUMNS[1..WINNER_COLUMNS.len() - 6] {
        fields.push(tsv_field(&text(row, column[name])));
    }
    let o = |v: &Option<String>| tsv_field(v.as_deref().unwrap_or(""));
    fields.extend([
        "1".to_string(),
        cost.to_string(),
        pricing.source.map_or("", |c| c.as_str()).to_string(),
        o(&pricing.price_entry_id),
        o(&pricing.price_book_version),
        at_ms.to_string(),
    ]);
    Ok(fields.join("\t"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy's columns line up with the table's: the six pricing columns come last in
    /// `WINNER_COLUMNS`, in the order `copy` writes them.
    #[test]
    fn the_copy_replaces_exactly_the_six_pricing_columns() {
        let n = WINNER_COLUMNS.len();
        assert_eq!(
            WINNER_COLUMNS[n - 6..],
            [
                "priced",
                "cost",
                "cost_source",
                "price_entry_id",
                "price_book_version",
                "repriced"
            ]
        );
        assert_eq!(WINNER_COLUMNS[0], "attempt");
    }
}
