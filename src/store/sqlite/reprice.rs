//! Re-pricing on the SQLite store: on the writer's connection, in one transaction that
//! bumps `commit_seq`, every call of the scope's target (unpriced, or priced with one
//! entry) is offered to the pricer; those it prices anew get their cost, source, entry,
//! book and `repriced_at` (only rows still as read: the UPDATE repeats the target's
//! condition), then the rollups are rebuilt from the file. Each changed call yields its
//! cost change for the budgets. A dry run rolls the transaction back.

use super::read::{stored_event, EVENT_SELECT};
use super::schema::DimKind;
use super::writer::{self, Derived};
use crate::event::Pricing;
use crate::store::{
    repricing, Pricer, RepriceOutcome, RepriceScope, RepriceTarget, Result, StoredEvent,
    WorkspaceId,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

pub fn reprice(
    conn: &mut Connection,
    derived: &Derived,
    ws: WorkspaceId,
    scope: &RepriceScope,
    pricer: &Pricer,
    at_ms: i64,
) -> Result<RepriceOutcome> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let candidates = candidates(&tx, ws, scope)?;
    let mut outcome = RepriceOutcome::default();
    for (row, ts, stored) in candidates {
        let old = stored.cost_usd.map(|c| c.0);
        let Some((pricing, cost)) = repricing(pricer, &stored, old) else {
            match old {
                None => outcome.still_unpriced += 1,
                Some(_) => outcome.unchanged += 1,
            }
            continue;
        };
        if scope.dry_run || write(&tx, row, old, &pricing, at_ms)? {
            outcome.add(ws, ts, &stored, old, cost)?;
        }
    }
    if outcome.repriced == 0 || scope.dry_run {
        // Dropping the transaction rolls it back: a dry run changes nothing.
        return Ok(outcome);
    }
    let seq: i64 = tx.query_row(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'commit_seq'
         RETURNING CAST(value AS INTEGER)",
        [],
        |r| r.get(0),
    )?;
    tx.commit()?;
    outcome.seq = seq as u64;
    writer::catch_up(conn, derived);
    Ok(outcome)
}

/// The calls of the scope's target: (row id, time, the call as listed).
fn candidates(
    tx: &Transaction,
    ws: WorkspaceId,
    scope: &RepriceScope,
) -> Result<Vec<(i64, i64, StoredEvent)>> {
    let model: Option<i64> = match &scope.model {
        None => None,
        Some(name) => {
            let id = tx
                .query_row(
                    "SELECT id FROM dims WHERE kind = ?1 AND value = ?2",
                    params![DimKind::Model as i64, name],
                    |r| r.get(0),
                )
                .optional()?;
            // A model never stored has no calls to price.
            let Some(id) = id else {
                return Ok(Vec::new());
            };
            Some(id)
        }
    };
    // Unpriced: no cost. Entry: priced with that entry (?5; an entry never stored has
    // no calls).
    let entry: Option<i64> = match &scope.target {
        RepriceTarget::Unpriced => None,
        RepriceTarget::Entry(name) => {
            let id = tx
                .query_row(
                    "SELECT id FROM dims WHERE kind = ?1 AND value = ?2",
                    params![DimKind::PriceEntry as i64, name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(Vec::new());
            };
            Some(id)
        }
    };
    let sql = format!(
        "{EVENT_SELECT} WHERE e.workspace_id = ?1 AND e.ts >= ?2 AND e.ts < ?3
             AND (?4 IS NULL OR e.model = ?4)
             AND CASE WHEN ?5 IS NULL THEN e.cost_nanos IS NULL
                      ELSE e.cost_nanos IS NOT NULL AND e.price_entry = ?5 END
         ORDER BY e.ts, e.id"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt
        .query_map(params![ws, scope.from_ms, scope.to_ms, model, entry], |r| {
            let (ts, row, event) = stored_event(r)?;
            Ok((row, ts, event))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The id of a dims string, inserted when new.
fn dim(tx: &Transaction, kind: DimKind, value: &str) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO dims (kind, value) VALUES (?1, ?2)",
        params![kind as i64, value],
    )?;
    tx.query_row(
        "SELECT id FROM dims WHERE kind = ?1 AND value = ?2",
        params![kind as i64, value],
        |r| r.get(0),
    )
}

/// Store the pricing on a row whose cost is still `old`; false when it changed meanwhile.
fn write(
    tx: &Transaction,
    row: i64,
    old: Option<i64>,
    pricing: &Pricing,
    at_ms: i64,
) -> rusqlite::Result<bool> {
    let entry = match &pricing.price_entry_id {
        Some(e) => Some(dim(tx, DimKind::PriceEntry, e)?),
        None => None,
    };
    let book = match &pricing.price_book_version {
        Some(b) => Some(dim(tx, DimKind::PriceBook, b)?),
        None => None,
    };
    let changed = tx.execute(
        "UPDATE events SET cost_nanos = ?2, cost_source = ?3, price_entry = ?4, price_book = ?5,
             repriced_at = ?6
         WHERE id = ?1 AND cost_nanos IS ?7",
        params![
            row,
            pricing.cost.map(|c| c.0),
            pricing.source.map(|s| s.code()),
            entry,
            book,
            at_ms,
            old
        ],
    )?;
    Ok(changed == 1)
}
