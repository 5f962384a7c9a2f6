//! Erasure on ClickHouse: the calls whose winning attempt names the tenant or user (or
//! holds the id as the value of any tag) are
//! found (as reads resolve them), their hours' write-check totals are lowered by what
//! every one of their attempts added, and all their attempts are deleted with a
//! mutation (`ALTER TABLE ... DELETE`) on every shard's events table, waited for, so
//! the next read no longer counts them. Reads compute every aggregate from the stored
//! attempts, so they are exact once the rows are gone.
//!
//! The erased subject's share of retention's pruned history (`retention.rs`) goes too:
//! the pruned rows keep tenant and user together, so deleting the rows that name the id
//! takes exactly its calls out of every answer (tags are not kept there, as on the
//! embedded store).

use super::http::{quote, Client};
use super::ingest::{halves, id_lists};
use super::read::calls;
use super::{num, schema, text, ClickhouseStore};
use crate::store::{Removed, Result, StoreError, Subject, WorkspaceId};

/// How long a delete waits for its mutations without progress (no part of the table
/// rewritten) before it reports failure; and at most, progress or not.
const MUTATION_STALL: std::time::Duration = std::time::Duration::from_secs(120);
const MUTATION_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

pub async fn erase(store: &ClickhouseStore, ws: WorkspaceId, subject: &Subject) -> Result<Removed> {
    let column = match subject {
        Subject::Tenant(_) => "c_tenant",
        Subject::User(_) => "c_user",
    };
    // A prune that stopped while deleting is finished first: its calls are then only
    // in the pruned history, never counted twice.
    super::retention::resume(store, ws, 0).await?;
    // The calls that name the id as tenant (user) or as the value of any tag.
    let id = quote(subject.id());
    let chosen = format!(
        "{} WHERE {column} = {id} OR has(c_tag_values, {id})",
        calls(store, &format!("ws = {ws}"))
    );
    let rows = store
        .client
        .select(&format!(
            "SELECT c_idless, c_id, c_priced, c_cost FROM {chosen}"
        ))
        .await?;
    let mut removed = Removed::default();
    let mut ids: Vec<String> = Vec::with_capacity(rows.len());
    for row in &rows {
        removed.events += 1;
        if num::<u8>(row, 2)? == 1 {
            let cost: i64 = num(row, 3)?;
            removed.cost_nanos = removed
                .cost_nanos
                .checked_add(cost)
                .ok_or(StoreError::SumOverflow)?;
        } else {
            removed.unpriced += 1;
        }
        ids.push(text(row, 1));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for list in id_lists(&refs) {
        let scope = format!("ws = {ws} AND id IN ({list})");
        let hours = lower_hour_totals(store, ws, &scope).await?;
        // The by-hour copy first: a retried erasure finds its calls in `EVENTS`.
        delete_everywhere(store, schema::EVENTS_BY_HOUR.name, &scope).await?;
        delete_everywhere(store, schema::EVENTS.name, &scope).await?;
        // After the deletion is done: the erased calls' hours read raw until resealed.
        super::cells::mark(store, ws, hours).await?;
    }
    // The id as a sealed cell's tenant (user): those cells go, so the id is in no table.
    // Their hours were marked dirty above, so reads take them raw until resealed.
    let cell_column = match subject {
        Subject::Tenant(_) => "c_tenant",
        Subject::User(_) => "c_user",
    };
    delete_everywhere(
        store,
        schema::CELLS.name,
        &format!("ws = {ws} AND {cell_column} = {id}"),
    )
    .await?;
    let pruned = super::retention::erase_pruned(store, ws, cell_column, subject.id()).await?;
    removed.pruned_history_calls = pruned.pruned_history_calls;
    removed.unpriced += pruned.unpriced;
    removed.cost_nanos = removed
        .cost_nanos
        .checked_add(pruned.cost_nanos)
        .ok_or(StoreError::SumOverflow)?;
    merge_objects(store).await?;
    Ok(removed)
}

/// Merge the control objects' versions now (`OPTIMIZE ... FINAL` on every shard's
/// table): the versions an erasure replaced or deleted (`lifecycle::erase` edits the
/// objects that named the id first) no longer answer any query. Their parts' bytes go
/// when ClickHouse removes inactive parts (minutes).
async fn merge_objects(store: &ClickhouseStore) -> Result<()> {
    let table = match store.url.cluster {
        Some(_) => format!("{}_local", schema::OBJECTS.name),
        None => schema::OBJECTS.name.to_string(),
    };
    for host in &store.url.shards {
        let client = ClickhouseStore::client(&store.url, host)?;
        client
            .execute(&format!("OPTIMIZE TABLE {}.{table} FINAL", store.db))
            .await?;
    }
    Ok(())
}

/// Insert negative rows into the hour totals: what the attempts in `scope` added. An
/// attempt counts once, with its newest price: a re-priced copy (`reprice.rs`) added
/// only its cost change to the totals, so attempt and copy together added the copy.
/// Returns the attempts' hours.
async fn lower_hour_totals(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    scope: &str,
) -> Result<Vec<i64>> {
    let attempts = format!(
        "(SELECT argMax(ts, pick) AS ts, argMax(cost, pick) AS cost,
                 argMax(input, pick) AS input, argMax(cached, pick) AS cached,
                 argMax(cache_write, pick) AS cache_write, argMax(output, pick) AS output,
                 argMax(reasoning, pick) AS reasoning, argMax(latency, pick) AS latency
          FROM {} WHERE {scope} GROUP BY idless, id, attempt)",
        store.table(schema::EVENTS.name)
    );
    let sql = format!(
        "SELECT intDiv(ts, 3600000), sum(toInt64(cost)), sum(toInt64(input)),
                sum(toInt64(cached)), sum(toInt64(cache_write)), sum(toInt64(output)),
                sum(toInt64(reasoning)), sum(if(latency >= 0, latency, 0))
         FROM {attempts} GROUP BY intDiv(ts, 3600000)"
    );
    let mut lines = Vec::new();
    let mut hours = Vec::new();
    for row in store.client.select(&sql).await? {
        hours.push(num::<i64>(&row, 0)?);
        let mut fields = vec![ws.to_string(), text(&row, 0)];
        for m in 0..7 {
            let value: i128 = num(&row, 1 + m)?;
            let (hi, lo) = halves(-value);
            fields.push(hi.to_string());
            fields.push(lo.to_string());
        }
        lines.push(fields.join("\t"));
    }
    store
        .client
        .insert(&store.table(schema::HOUR_TOTALS.name), &lines)
        .await?;
    Ok(hours)
}

/// Delete the rows in `scope` from `table` on every shard and wait until the mutations
/// are done (erasure, retention and `cells::drop_superseded`).
pub(super) async fn delete_everywhere(
    store: &ClickhouseStore,
    table: &str,
    scope: &str,
) -> Result<()> {
    let table = match store.url.cluster {
        Some(_) => format!("{table}_local"),
        None => table.to_string(),
    };
    for host in &store.url.shards {
        let client = ClickhouseStore::client(&store.url, host)?;
        client
            .execute(&format!(
                "ALTER TABLE {}.{table} DELETE WHERE {scope}",
                store.db
            ))
            .await?;
        wait_for_mutations(&client, &store.db, &table).await?;
    }
    Ok(())
}

/// Wait until no mutation of `table` is pending. A mutation rewrites the table's parts
/// one by one in the server's background pool, shared with every merge: a busy server
/// can take minutes, so the wait goes on while parts are being rewritten and gives up
/// when none was for `MUTATION_STALL` (the mutation then continues in ClickHouse, and
/// the caller's retry waits for it again).
async fn wait_for_mutations(client: &Client, db: &str, table: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let mut progressed = started;
    let mut fewest_parts = u64::MAX;
    let sql = format!(
        "SELECT count(), sum(parts_to_do) FROM system.mutations
         WHERE database = {} AND table = {} AND is_done = 0",
        quote(db),
        quote(table)
    );
    loop {
        let rows = client.select(&sql).await?;
        let (pending, parts) = match rows.first() {
            Some(row) => (
                num::<u64>(row, 0)?,
                num(row, 1).map(|p: i64| p.max(0).unsigned_abs())?,
            ),
            None => (0, 0),
        };
        if pending == 0 {
            return Ok(());
        }
        if parts < fewest_parts {
            fewest_parts = parts;
            progressed = std::time::Instant::now();
        }
        if progressed.elapsed() > MUTATION_STALL || started.elapsed() > MUTATION_WAIT {
            return Err(StoreError::Unavailable(
                "a delete did not finish in time; it continues in ClickHouse".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
