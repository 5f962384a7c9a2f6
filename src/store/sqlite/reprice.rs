//! Re-pricing the unpriced on the SQLite store: on the writer's connection, in one
//! transaction that bumps `commit_seq`, every unpriced call of the scope is offered to
//! the pricer; those it prices get their cost, source, entry, book and `repriced_at`
//! (only rows still unpriced: `cost_nanos IS NULL` in the UPDATE too), then the rollups
//! are rebuilt from the file. Each priced call yields its cost change for the budgets.

use super::read::{stored_event, EVENT_SELECT};
use super::schema::DimKind;
use super::writer::{self, Derived};
use crate::event::{DataMode, Environment, Pricing};
use crate::store::{
    Pricer, RepriceOutcome, RepriceScope, Result, SpendEffect, StoreError, StoredEvent, WorkspaceId,
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
    let candidates = unpriced(&tx, ws, scope)?;
    let mut outcome = RepriceOutcome::default();
    for (row, ts, stored) in candidates {
        let Some(pricing) = pricer(&stored).filter(|p| p.cost.is_some()) else {
            outcome.still_unpriced += 1;
            continue;
        };
        let cost = pricing.cost.map_or(0, |c| c.0);
        if write(&tx, row, &pricing, at_ms)? {
            outcome.repriced += 1;
            outcome.cost_nanos = outcome
                .cost_nanos
                .checked_add(cost)
                .ok_or(StoreError::SumOverflow)?;
            outcome.effects.push(effect(ws, ts, &stored, cost));
        }
    }
    if outcome.repriced == 0 {
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

/// The unpriced calls of the scope: (row id, time, the call as listed).
fn unpriced(
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
    let sql = format!(
        "{EVENT_SELECT} WHERE e.workspace_id = ?1 AND e.ts >= ?2 AND e.ts < ?3
             AND e.cost_nanos IS NULL AND (?4 IS NULL OR e.model = ?4)
         ORDER BY e.ts, e.id"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt
        .query_map(params![ws, scope.from_ms, scope.to_ms, model], |r| {
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

/// Store the pricing on a still unpriced row; false when it was priced meanwhile.
fn write(tx: &Transaction, row: i64, pricing: &Pricing, at_ms: i64) -> rusqlite::Result<bool> {
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
         WHERE id = ?1 AND cost_nanos IS NULL",
        params![
            row,
            pricing.cost.map(|c| c.0),
            pricing.source.map(|s| s.code()),
            entry,
            book,
            at_ms
        ],
    )?;
    Ok(changed == 1)
}

/// The cost change of one call that became priced: +cost, one unpriced call fewer.
fn effect(ws: WorkspaceId, ts: i64, e: &StoredEvent, cost: i64) -> SpendEffect {
    SpendEffect {
        workspace: ws,
        external_request_id: (!e.idless).then(|| e.external_request_id.clone()),
        ts_ms: ts,
        environment: Environment::parse(e.environment).unwrap_or(Environment::Prod),
        data_mode: DataMode::parse(e.data_mode).unwrap_or(DataMode::Real),
        endpoint_tag: e.endpoint_tag.clone(),
        tenant_id: e.tenant_id.clone(),
        user_id: e.user_id.clone(),
        model: e.model.clone(),
        provider: e.provider.clone(),
        tags: e
            .tags
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        cost_delta: cost,
        unpriced_delta: -1,
        new_call_cost: None,
    }
}
