//! Retention and erasure on the SQLite store. Both run on the writer's connection
//! between two commits, change the file in one transaction that bumps `commit_seq`, and
//! then rebuild the in-memory rollups and call index from the file (`writer::catch_up`),
//! so every aggregate afterwards is exactly what the remaining events plus the pruned
//! history imply.
//!
//! Retention moves whole UTC days of raw events into `pruned_cells` (their sums per
//! hour and every rollup dimension, tenant and user included) and `pruned_versions`,
//! and records from when raw events exist (`raw_from`). Erasure deletes one tenant's or
//! user's raw events and pruned cells, and the id's `dims` row and the tag sets holding
//! it when nothing refers to them any more, with `secure_delete` on and the WAL
//! truncated after, so the id's bytes are not left in the file.

use super::rollup::{DAY_MS, HOUR_MS, MEASURES, PRUNED_DIMS, RAW_MEASURES};
use super::schema::DimKind;
use super::tag_sets;
use super::writer::{self, Derived};
use crate::store::{Removed, Result, Subject, WorkspaceId};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Bump the commit sequence inside `tx`: readers and other processes see a new commit
/// and the writer's rollups are rebuilt to it.
fn bump_seq(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'commit_seq'",
        [],
    )?;
    Ok(())
}

/// Calls, their cost and how many were unpriced, of the raw events `condition` selects
/// (`?1` the workspace, `?2` its parameter).
fn raw_removed(tx: &Transaction, condition: &str, ws: WorkspaceId, arg: i64) -> Result<Removed> {
    let (events, cost_nanos, unpriced): (i64, i64, i64) = tx.query_row(
        &format!(
            "SELECT COUNT(*), COALESCE(SUM(cost_nanos), 0), COUNT(*) - COUNT(cost_nanos)
             FROM events WHERE workspace_id = ?1 AND {condition}"
        ),
        params![ws, arg],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(Removed {
        events: events as u64,
        pruned_history_calls: 0,
        cost_nanos,
        unpriced: unpriced as u64,
    })
}

/// Move the raw events of `ws` before the UTC day of `before_ms` into the pruned
/// history, then rebuild the derived state.
pub fn prune(
    conn: &mut Connection,
    derived: &Derived,
    ws: WorkspaceId,
    before_ms: i64,
) -> Result<Removed> {
    let cutoff = before_ms.div_euclid(DAY_MS) * DAY_MS;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let removed = raw_removed(&tx, "ts < ?2", ws, cutoff)?;
    if removed.events == 0 {
        return Ok(removed);
    }
    tx.execute(
        &format!(
            "INSERT INTO pruned_cells ({PRUNED_DIMS}, {measures})
             SELECT workspace_id, (ts / {HOUR_MS}) * {HOUR_MS}, environment, data_mode, status,
                    provider, model, endpoint, COALESCE(prompt_version, 0),
                    COALESCE(tenant, 0), COALESCE(user, 0), {raw}
             FROM events WHERE workspace_id = ?1 AND ts < ?2
             GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11",
            measures = MEASURES.join(", "),
            raw = RAW_MEASURES.join(", "),
        ),
        params![ws, cutoff],
    )?;
    tx.execute(
        "INSERT INTO pruned_versions
             (workspace_id, endpoint, prompt_version, environment, data_mode, first_ms, last_ms)
         SELECT workspace_id, endpoint, COALESCE(prompt_version, 0), environment, data_mode,
                MIN(ts), MAX(ts)
         FROM events WHERE workspace_id = ?1 AND ts < ?2
         GROUP BY 1, 2, 3, 4, 5
         ON CONFLICT (workspace_id, endpoint, prompt_version, environment, data_mode)
         DO UPDATE SET first_ms = MIN(first_ms, excluded.first_ms),
                       last_ms = MAX(last_ms, excluded.last_ms)",
        params![ws, cutoff],
    )?;
    tx.execute(
        "DELETE FROM events WHERE workspace_id = ?1 AND ts < ?2",
        params![ws, cutoff],
    )?;
    tag_sets::collect_after_prune(&tx)?;
    tx.execute(
        "INSERT INTO raw_from (workspace_id, raw_from_ms) VALUES (?1, ?2)
         ON CONFLICT (workspace_id) DO UPDATE SET raw_from_ms = MAX(raw_from_ms, excluded.raw_from_ms)",
        params![ws, cutoff],
    )?;
    bump_seq(&tx)?;
    tx.commit()?;
    writer::catch_up(conn, derived);
    Ok(removed)
}

/// From when raw events of `ws` exist (None: never pruned).
pub fn raw_from(conn: &Connection, ws: WorkspaceId) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT raw_from_ms FROM raw_from WHERE workspace_id = ?1")?
        .query_row([ws], |r| r.get(0))
        .optional()?)
}

/// Delete every event of `subject` in `ws`, raw and pruned, then rebuild the derived
/// state. The id's dims row goes too when no workspace refers to it any more.
pub fn erase(
    conn: &mut Connection,
    derived: &Derived,
    ws: WorkspaceId,
    subject: &Subject,
) -> Result<Removed> {
    let (kind, column) = match subject {
        Subject::Tenant(_) => (DimKind::Tenant, "tenant"),
        Subject::User(_) => (DimKind::User, "user"),
    };
    // Deleted bytes are overwritten with zeros, not just unlinked.
    conn.pragma_update(None, "secure_delete", true)?;
    let result = erase_rows(conn, ws, kind, column, subject.id());
    conn.pragma_update(None, "secure_delete", false)?;
    let removed = result?;
    // The WAL holds the pages as they were before: fold it back and truncate it (best
    // effort: a reader in a long read keeps it until the next checkpoint).
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "checkpoint after an erasure failed");
    }
    writer::catch_up(conn, derived);
    Ok(removed)
}

fn erase_rows(
    conn: &mut Connection,
    ws: WorkspaceId,
    kind: DimKind,
    column: &str,
    id: &str,
) -> Result<Removed> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let dim: Option<i64> = tx
        .query_row(
            "SELECT id FROM dims WHERE kind = ?1 AND value = ?2",
            params![kind as i64, id],
            |r| r.get(0),
        )
        .optional()?;
    // The calls that name the id as tenant (user) or as the value of any tag. Tags are
    // not kept in the pruned history, so there only the tenant (user) column counts.
    // Dims ids are positive: -1 matches no row when the id was never stored as one.
    let dim_or_none = dim.unwrap_or(-1);
    let raw = format!("({column} = ?2 OR {})", tag_sets::has_value(3));
    let (events, cost_nanos, unpriced): (i64, i64, i64) = tx.query_row(
        &format!(
            "SELECT COUNT(*), COALESCE(SUM(cost_nanos), 0), COUNT(*) - COUNT(cost_nanos)
             FROM events WHERE workspace_id = ?1 AND {raw}"
        ),
        params![ws, dim_or_none, id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut removed = Removed {
        events: events as u64,
        pruned_history_calls: 0,
        cost_nanos,
        unpriced: unpriced as u64,
    };
    if events == 0 && dim.is_none() {
        // No call holds it; a tag set no call uses any more may still.
        tag_sets::forget_value(&tx, id)?;
        tx.commit()?;
        return Ok(removed);
    }
    let (calls, cost, unpriced): (i64, i64, i64) = tx.query_row(
        &format!(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(cost_nanos), 0),
                    COALESCE(SUM(requests - priced), 0)
             FROM pruned_cells WHERE workspace_id = ?1 AND {column} = ?2"
        ),
        params![ws, dim_or_none],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    removed.pruned_history_calls = calls as u64;
    removed.cost_nanos = removed
        .cost_nanos
        .checked_add(cost)
        .ok_or(crate::store::StoreError::SumOverflow)?;
    removed.unpriced += unpriced as u64;
    tx.execute(
        &format!("DELETE FROM events WHERE workspace_id = ?1 AND {raw}"),
        params![ws, dim_or_none, id],
    )?;
    if let Some(dim) = dim {
        tx.execute(
            &format!("DELETE FROM pruned_cells WHERE workspace_id = ?1 AND {column} = ?2"),
            params![ws, dim],
        )?;
        let still_used: bool = tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM events WHERE {column} = ?1)
                     OR EXISTS (SELECT 1 FROM pruned_cells WHERE {column} = ?1)"
            ),
            [dim],
            |r| r.get(0),
        )?;
        if !still_used {
            tx.execute("DELETE FROM dims WHERE id = ?1", [dim])?;
        }
    }
    tag_sets::forget_value(&tx, id)?;
    bump_seq(&tx)?;
    tx.commit()?;
    Ok(removed)
}
