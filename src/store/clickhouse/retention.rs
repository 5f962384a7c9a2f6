//! Retention on ClickHouse: `prune_before` moves whole UTC days of a workspace's calls
//! into the pruned history (`schema::PRUNED`: per hour the sums by every dimension,
//! tenant and user together; `schema::PRUNED_VERSIONS`) and deletes their raw attempts
//! with a mutation on every shard, as the embedded store does with `pruned_cells`.
//! The sealed cells stay a cache of the raw attempts: the pruned hours are marked
//! dirty after the delete and resealed from what remains (late attempts).
//!
//! Exactness (docs/scale-out.md, "Retention"):
//! - Which calls a prune takes is fixed from rows committed before its start minus
//!   `cells::SKEW_MS` (`before_seq`, the same margin the seals trust): a call whose
//!   winning attempt is before the cutoff day and all of whose rows are that old. Its
//!   sums are read over those rows only, and the delete takes exactly those rows, so an
//!   attempt stored meanwhile (on any node) stays raw and is a new call, as a late
//!   attempt of a pruned call is on the embedded store.
//! - A prune is a record in `PRUNES` (one per run, newest state kept): claimed, then
//!   deleting (its pruned rows stored, its delete condition recorded), then done. While
//!   it is deleting, reads add its pruned rows and leave the rows its delete takes out
//!   of the raw attempts (`Prunes::raw_scope`), so an answer is the same before, during
//!   and after the mutation; a prune that stopped while deleting is finished by the next
//!   prune or erasure of its workspace, or by a seal an hour later.
//! - Two nodes never prune one workspace at once: a run goes on only when its claim is
//!   the only live one (`alone`); a lost claim answers Conflict.

use super::http::{parse_array, quote, quote_array, tsv_field};
use super::lifecycle::delete_everywhere;
use super::read::{self, Groups};
use super::{cells, num, schema, text, ClickhouseStore};
use crate::query::{Dimension, Query};
use crate::store::{Removed, Result, StoreError, WorkspaceId};
use std::collections::BTreeSet;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = cells::HOUR_MS;
/// A claim of a run that never finished stops blocking its workspace after this, and a
/// deleting run this old is finished by the seal pass (it died).
const LEASE_MS: i64 = 3_600_000;

const CLAIMED: u8 = 0;
const DELETING: u8 = 1;
const DONE: u8 = 2;
const DROPPED: u8 = 3;

/// A prune whose delete is running (or stopped half way): what it takes out.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleting {
    gen: u64,
    started_ms: i64,
    cutoff: i64,
    before_seq: u64,
    /// Calls with rows before the cutoff that stay: their time is after it, or a row
    /// is newer than `before_seq`.
    keep: Vec<String>,
    /// Pruned calls with a row from the cutoff on (a retry across midnight).
    straddle: Vec<String>,
}

/// A workspace's prunes as reads need them.
#[derive(Debug, Clone, Default)]
pub struct Prunes {
    /// Generations of the finished prunes that took calls.
    done: Vec<u64>,
    deleting: Vec<Deleting>,
    /// From when raw events exist: the latest cutoff of a finished prune that took calls.
    pub raw_from: Option<i64>,
    /// Live claims (runs) that have not reached deleting.
    claimed: Vec<u64>,
}

impl Prunes {
    /// The generations whose pruned rows count.
    fn gens(&self) -> Vec<u64> {
        let mut gens = self.done.clone();
        gens.extend(self.deleting.iter().map(|d| d.gen));
        gens
    }

    /// The end of the pruned history reads add (deleting prunes included).
    fn history_end(&self) -> Option<i64> {
        self.deleting
            .iter()
            .map(|d| d.cutoff)
            .chain(self.raw_from)
            .max()
    }

    /// The condition on stored rows of `ws` that reads of raw attempts use: every row
    /// but those a deleting prune takes out (counted in its pruned rows already).
    pub fn raw_scope(&self, ws: WorkspaceId) -> String {
        let mut scope = format!("ws = {ws}");
        for d in &self.deleting {
            scope.push_str(&format!(" AND NOT ({})", deleted_rows(d)));
        }
        scope
    }

    /// `trusted` hours without those a deleting prune takes calls from: their cells may
    /// still count the pruned calls.
    pub fn untouched(&self, trusted: Vec<(i64, u64)>) -> Vec<(i64, u64)> {
        match self.deleting.iter().map(|d| d.cutoff).max() {
            Some(cutoff) => {
                let first = cutoff.div_euclid(HOUR_MS);
                trusted.into_iter().filter(|(h, _)| *h >= first).collect()
            }
            None => trusted,
        }
    }
}

/// The rows of a prune's calls: all their rows as old as `before_seq`, before the
/// cutoff unless kept, and the straddling calls' rows after it.
fn deleted_rows(d: &Deleting) -> String {
    format!(
        "(seq <= {} AND ((ts < {} AND {}) OR {}))",
        d.before_seq,
        d.cutoff,
        not_in("id", &d.keep),
        is_in("id", &d.straddle)
    )
}

fn is_in(column: &str, ids: &[String]) -> String {
    match ids.is_empty() {
        true => "0".into(),
        false => format!(
            "{column} IN ({})",
            ids.iter().map(|i| quote(i)).collect::<Vec<_>>().join(",")
        ),
    }
}

fn not_in(column: &str, ids: &[String]) -> String {
    match ids.is_empty() {
        true => "1".into(),
        false => format!("NOT {}", is_in(column, ids)),
    }
}

/// A workspace's prune records, newest state of each.
pub async fn state(store: &ClickhouseStore, ws: WorkspaceId) -> Result<Prunes> {
    let sql = format!(
        "SELECT gen, max(state), argMax(started_ms, state), argMax(cutoff, state),
                argMax(before_seq, state), argMax(calls, state), argMax(keep, state),
                argMax(straddle, state)
         FROM {} WHERE ws = {ws} GROUP BY gen ORDER BY gen",
        store.table(schema::PRUNES.name)
    );
    let mut prunes = Prunes::default();
    let now = super::now_ms();
    for row in store.client.select(&sql).await? {
        let gen: u64 = num(&row, 0)?;
        let started_ms: i64 = num(&row, 2)?;
        let cutoff: i64 = num(&row, 3)?;
        match num::<u8>(&row, 1)? {
            CLAIMED if started_ms > now - LEASE_MS => prunes.claimed.push(gen),
            DELETING => {
                let list = |i: usize| {
                    parse_array(&text(&row, i)).ok_or_else(|| {
                        StoreError::Database("clickhouse: a prune's id list is unreadable".into())
                    })
                };
                prunes.deleting.push(Deleting {
                    gen,
                    started_ms,
                    cutoff,
                    before_seq: num(&row, 4)?,
                    keep: list(6)?,
                    straddle: list(7)?,
                });
            }
            DONE if num::<u64>(&row, 5)? > 0 => {
                prunes.done.push(gen);
                prunes.raw_from = prunes.raw_from.max(Some(cutoff));
            }
            _ => {}
        }
    }
    Ok(prunes)
}

/// Store a prune record in `state`.
async fn record(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    run: &Deleting,
    state: u8,
    calls: u64,
) -> Result<()> {
    // Only a deleting record needs the lists; the others drop them (ids of calls).
    let (keep, straddle) = match state {
        DELETING => (&run.keep[..], &run.straddle[..]),
        _ => (&[][..], &[][..]),
    };
    let line = [
        ws.to_string(),
        run.gen.to_string(),
        state.to_string(),
        run.started_ms.to_string(),
        run.cutoff.to_string(),
        run.before_seq.to_string(),
        calls.to_string(),
        tsv_field(&quote_array(keep.iter().map(String::as_str))),
        tsv_field(&quote_array(straddle.iter().map(String::as_str))),
    ]
    .join("\t");
    store
        .client
        .insert(&store.table(schema::PRUNES.name), &[line])
        .await
}

/// A run's generation: its start (ms) shifted left 20 bits, plus 20 random bits.
fn new_gen(started_ms: i64) -> u64 {
    ((started_ms.max(0) as u64) << 20) | rand::random_range(0..1u64 << 20)
}

/// Prune the calls of `ws` before the UTC day of `before_ms` (see the module's text).
pub async fn prune(store: &ClickhouseStore, ws: WorkspaceId, before_ms: i64) -> Result<Removed> {
    resume(store, ws, 0).await?;
    let started_ms = super::now_ms();
    let mut run = Deleting {
        gen: new_gen(started_ms),
        started_ms,
        cutoff: before_ms.div_euclid(DAY_MS) * DAY_MS,
        before_seq: ((started_ms - cells::SKEW_MS).max(0) as u64) * 1000,
        keep: Vec::new(),
        straddle: Vec::new(),
    };
    // Most passes find nothing older: one count, and no record.
    let older = format!(
        "SELECT count() FROM {} WHERE ws = {ws} AND ts < {} AND seq <= {}",
        store.table(schema::EVENTS.name),
        run.cutoff,
        run.before_seq
    );
    let rows = store.client.select(&older).await?;
    if rows.first().map_or(Ok(0), |r| num::<u64>(r, 0))? == 0 {
        return Ok(Removed::default());
    }
    record(store, ws, &run, CLAIMED, 0).await?;
    let live = state(store, ws).await?;
    let alone = live.deleting.is_empty() && live.claimed == [run.gen];
    if !alone {
        record(store, ws, &run, DROPPED, 0).await?;
        return Err(StoreError::Conflict(
            "another node is pruning this workspace's raw events now (retention); try again in a minute".into(),
        ));
    }
    match take(store, ws, &mut run).await {
        Ok(Some(removed)) => {
            finish(store, ws, &run, removed.events).await?;
            Ok(removed)
        }
        Ok(None) => {
            record(store, ws, &run, DROPPED, 0).await?;
            Ok(Removed::default())
        }
        Err(e) => {
            // Its pruned rows (if any) are never read: the run never reached deleting.
            if let Err(again) = record(store, ws, &run, DROPPED, 0).await {
                tracing::warn!(error = %again, "recording a failed prune failed");
            }
            Err(e)
        }
    }
}

/// Find the run's calls, store their sums as its pruned rows and record it deleting;
/// None when there is nothing to prune.
async fn take(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    run: &mut Deleting,
) -> Result<Option<Removed>> {
    let (cutoff, before_seq) = (run.cutoff, run.before_seq);
    let events = store.table(schema::EVENTS.name);
    let local = read::local_table(store, schema::EVENTS.name);
    // The calls with an old row that stay, or that go but have a row after the cutoff.
    let lists = format!(
        "SELECT id, w_ts < {cutoff} AND m_seq <= {before_seq} FROM
           (SELECT id, argMax(ts, pick) AS w_ts, max(seq) AS m_seq, max(ts) AS m_ts
            FROM {events} WHERE ws = {ws} AND (idless, id) IN
              (SELECT idless, id FROM {local} WHERE ws = {ws} AND ts < {cutoff} AND seq <= {before_seq})
            GROUP BY idless, id)
         WHERE NOT (w_ts < {cutoff} AND m_seq <= {before_seq}) OR m_ts >= {cutoff}"
    );
    for row in store.client.select(&lists).await? {
        match num::<u8>(&row, 1)? {
            1 => run.straddle.push(text(&row, 0)),
            _ => run.keep.push(text(&row, 0)),
        }
    }
    // The pruned calls, resolved from their rows as old as `before_seq`.
    let calls = format!(
        "{} WHERE c_ts < {cutoff} AND {}",
        read::calls_having(
            store,
            &format!("ws = {ws} AND seq <= {before_seq}"),
            &format!("ts < {cutoff}")
        ),
        not_in("c_id", &run.keep)
    );
    let sql = format!(
        "SELECT count(), countIf(c_priced = 0),
                sum(intDiv(if(c_priced = 1, c_cost, 0), 4294967296)),
                sum(if(c_priced = 1, c_cost, 0) % 4294967296)
         FROM {calls}"
    );
    let rows = store.client.select(&sql).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let events_pruned: u64 = num(row, 0)?;
    if events_pruned == 0 {
        return Ok(None);
    }
    let cost = (num::<i128>(row, 2)? << 32) + num::<i128>(row, 3)?;
    let removed = Removed {
        events: events_pruned,
        pruned_history_calls: 0,
        cost_nanos: i64::try_from(cost).map_err(|_| StoreError::SumOverflow)?,
        unpriced: num(row, 1)?,
    };
    let gen = run.gen;
    store
        .client
        .insert_select(&format!(
            "INSERT INTO {} SELECT {ws}, intDiv(c_ts, {HOUR_MS}) AS h, {gen}, c_environment,
                    c_data_mode, c_status, c_provider, c_model, c_endpoint, c_prompt_version,
                    c_tenant, c_user, {}
             FROM {calls}
             GROUP BY h, c_environment, c_data_mode, c_status, c_provider, c_model,
                      c_endpoint, c_prompt_version, c_tenant, c_user",
            store.table(schema::PRUNED.name),
            read::sum_columns()
        ))
        .await?;
    store
        .client
        .insert_select(&format!(
            "INSERT INTO {} SELECT {ws}, {gen}, c_endpoint, c_prompt_version, c_environment,
                    c_data_mode, min(c_ts), max(c_ts)
             FROM {calls}
             GROUP BY c_endpoint, c_prompt_version, c_environment, c_data_mode",
            store.table(schema::PRUNED_VERSIONS.name)
        ))
        .await?;
    // From here reads count the pruned rows and leave the rows the delete takes.
    record(store, ws, run, DELETING, events_pruned).await?;
    Ok(Some(removed))
}

/// Delete a deleting run's rows on every shard, mark their hours dirty (their cells
/// counted the pruned calls) and record it done.
async fn finish(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    run: &Deleting,
    calls: u64,
) -> Result<()> {
    let rows = format!("ws = {ws} AND {}", deleted_rows(run));
    let hours_sql = format!(
        "SELECT DISTINCT intDiv(ts, {HOUR_MS}) FROM {} WHERE {rows}",
        store.table(schema::EVENTS.name)
    );
    let pruned_sql = format!(
        "SELECT DISTINCT hour FROM {} WHERE ws = {ws} AND gen = {}",
        store.table(schema::PRUNED.name),
        run.gen
    );
    let mut hours = BTreeSet::new();
    for sql in [hours_sql, pruned_sql] {
        for row in store.client.select(&sql).await? {
            hours.insert(num::<i64>(&row, 0)?);
        }
    }
    // The by-hour copy first: a resumed run finds its rows in `EVENTS`.
    delete_everywhere(store, schema::EVENTS_BY_HOUR.name, &rows).await?;
    delete_everywhere(store, schema::EVENTS.name, &rows).await?;
    cells::mark(store, ws, hours).await?;
    let calls = match calls {
        0 => pruned_calls(store, ws, run.gen).await?,
        n => n,
    };
    record(store, ws, run, DONE, calls).await
}

/// How many calls a run's pruned rows hold (at least 1: a deleting run took some).
async fn pruned_calls(store: &ClickhouseStore, ws: WorkspaceId, gen: u64) -> Result<u64> {
    let sql = format!(
        "SELECT sum(requests) FROM {} WHERE ws = {ws} AND gen = {gen}",
        store.table(schema::PRUNED.name)
    );
    let rows = store.client.select(&sql).await?;
    Ok(rows.first().map_or(Ok(0), |r| num::<u64>(r, 0))?.max(1))
}

/// Finish the deleting runs of `ws` started at least `age_ms` ago (0: every one).
pub async fn resume(store: &ClickhouseStore, ws: WorkspaceId, age_ms: i64) -> Result<()> {
    let now = super::now_ms();
    for run in state(store, ws).await?.deleting {
        if run.started_ms <= now - age_ms {
            finish(store, ws, &run, 0).await?;
        }
    }
    Ok(())
}

/// Finish every workspace's deleting runs that died (older than the lease): the seal
/// pass calls it.
pub async fn resume_stale(store: &ClickhouseStore) -> Result<()> {
    let sql = format!(
        "SELECT ws FROM {} GROUP BY ws, gen HAVING max(state) = {DELETING}",
        store.table(schema::PRUNES.name)
    );
    let workspaces: BTreeSet<WorkspaceId> = store
        .client
        .select(&sql)
        .await?
        .iter()
        .map(|r| num(r, 0))
        .collect::<Result<_>>()?;
    for ws in workspaces {
        resume(store, ws, LEASE_MS).await?;
    }
    Ok(())
}

/// Whether the pruned history answers `q`'s dimensions: every one but tags.
fn answers(q: &Query) -> bool {
    q.filters.tags.is_empty() && !q.group_by.iter().any(|d| matches!(d, Dimension::Tag(_)))
}

/// Add the pruned history's sums of the whole hours of `q`'s window before the end of
/// the pruned range to `groups`. Returns the pruned range's end when part of the window
/// before it could not be answered from the pruned history (partial hours, tags): that
/// part counts only the raw events that remain.
pub async fn add_pruned(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    q: &Query,
    prunes: &Prunes,
    groups: &mut Groups,
) -> Result<Option<i64>> {
    let Some(end_ms) = prunes.history_end() else {
        return Ok(None);
    };
    if q.from_ms >= end_ms.min(q.to_ms) {
        return Ok(None);
    }
    let (first, end, complete) = pruned_hours(q.from_ms, q.to_ms, end_ms);
    let whole = answers(q) && first < end;
    if whole {
        let gens: Vec<String> = prunes.gens().iter().map(u64::to_string).collect();
        let mut conditions = vec![
            format!("ws = {ws}"),
            format!("gen IN ({})", gens.join(",")),
            format!("hour >= {first} AND hour < {end}"),
        ];
        conditions.extend(read::filter_conditions(&q.filters));
        let sql = read::grouped(
            q,
            &format!("hour * {HOUR_MS}"),
            cells::CELL_SUMS,
            &store.table(schema::PRUNED.name),
            &conditions,
        );
        read::add_groups(store, q, &sql, groups).await?;
    }
    Ok((!(whole && complete)).then_some(prunes.raw_from.unwrap_or(end_ms)))
}

/// The whole hours `[first, end)` of the window `[from, to)` before `end_ms` (the pruned
/// range's end), and whether they are all of the window's part before it.
fn pruned_hours(from: i64, to: i64, end_ms: i64) -> (i64, i64, bool) {
    let pre_end = to.min(end_ms);
    let first = from.div_euclid(HOUR_MS) + (from.rem_euclid(HOUR_MS) > 0) as i64;
    let end = pre_end.div_euclid(HOUR_MS);
    let complete = first * HOUR_MS == from && end * HOUR_MS == pre_end;
    (first, end, complete)
}

/// The pruned versions' first and last times of `ws` (endpoint, version label, first,
/// last), filtered by environment and data mode as `versions_seen` is.
pub async fn versions(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    prunes: &Prunes,
    conditions: &[String],
) -> Result<Vec<(String, String, i64, i64)>> {
    let gens = prunes.gens();
    if gens.is_empty() {
        return Ok(Vec::new());
    }
    let gens: Vec<String> = gens.iter().map(u64::to_string).collect();
    let mut all = vec![format!("ws = {ws}"), format!("gen IN ({})", gens.join(","))];
    all.extend(conditions.iter().cloned());
    let sql = format!(
        "SELECT c_endpoint, {} AS version, min(first_ms), max(last_ms) FROM {} WHERE {}
         GROUP BY c_endpoint, version",
        read::version_label(),
        store.table(schema::PRUNED_VERSIONS.name),
        all.join(" AND ")
    );
    store
        .client
        .select(&sql)
        .await?
        .iter()
        .map(|r| Ok((text(r, 0), text(r, 1), num(r, 2)?, num(r, 3)?)))
        .collect()
}

/// Erasure's share of the pruned history: the calls, cost and unpriced calls of the
/// finished prunes' rows naming the id as tenant (`c_tenant`) or user (`c_user`), then
/// those rows deleted from every generation on every shard. The hour totals keep what
/// the pruned attempts added: a write-check bound, only ever above the stored sums.
pub async fn erase_pruned(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    column: &str,
    id: &str,
) -> Result<Removed> {
    let prunes = state(store, ws).await?;
    let rows = format!("ws = {ws} AND {column} = {}", quote(id));
    let mut removed = Removed::default();
    let gens = prunes.gens();
    if !gens.is_empty() {
        let gens: Vec<String> = gens.iter().map(u64::to_string).collect();
        let sql = format!(
            "SELECT sum(requests), sum(requests - priced), sum(cost_hi), sum(cost_lo)
             FROM {} WHERE {rows} AND gen IN ({})",
            store.table(schema::PRUNED.name),
            gens.join(",")
        );
        if let Some(row) = store.client.select(&sql).await?.first() {
            let cost = (num::<i128>(row, 2)? << 32) + num::<i128>(row, 3)?;
            removed.pruned_history_calls = num(row, 0)?;
            removed.unpriced = num(row, 1)?;
            removed.cost_nanos = i64::try_from(cost).map_err(|_| StoreError::SumOverflow)?;
        }
    }
    let exists = format!(
        "SELECT count() FROM {} WHERE {rows}",
        store.table(schema::PRUNED.name)
    );
    let any = store.client.select(&exists).await?;
    if any.first().map_or(Ok(0), |r| num::<u64>(r, 0))? > 0 {
        delete_everywhere(store, schema::PRUNED.name, &rows).await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deleting(cutoff: i64) -> Deleting {
        Deleting {
            gen: 7,
            started_ms: 0,
            cutoff,
            before_seq: 99,
            keep: vec!["k'1".into()],
            straddle: Vec::new(),
        }
    }

    /// A run that stopped after storing its pruned rows (deleting, its raw rows still
    /// there): reads answer as before it; the next prune finishes it (raw rows gone,
    /// `raw_from` set, answers still the same) and then finds nothing more. Runs on the
    /// ClickHouse of `BURNRATE_CH_URL` (scripts/clickhouse.sh env), skipped without.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_that_stopped_while_deleting_reads_the_same_and_the_next_prune_finishes_it() {
        use crate::store::{ControlStore, EventStore};
        let Ok(url) = std::env::var("BURNRATE_CH_URL") else {
            eprintln!("BURNRATE_CH_URL is not set: skipped");
            return;
        };
        let db = format!("unit_resume_{}", std::process::id());
        let rest = url.replace("{db}", &db);
        let url =
            super::super::ClickhouseUrl::parse(rest.trim_start_matches("clickhouse://")).unwrap();
        let store = ClickhouseStore::open(&url).unwrap();
        let now = super::super::now_ms();
        let texts: Vec<String> = (0..30)
            .map(|i| {
                let ts = jiff::Timestamp::from_millisecond(now - 20 * DAY_MS + i * 7 * HOUR_MS)
                    .unwrap();
                serde_json::json!({"externalRequestId": format!("r-{i}"), "timestamp": ts.to_string(),
                    "provider": "openai", "model": "gpt-4o-mini", "endpointTag": "a", "status": "success",
                    "tenantId": format!("t{}", i % 3), "inputTokens": 100 + i, "outputTokens": 10,
                    "costUsd": 0.001 * (i + 1) as f64})
                .to_string()
            })
            .collect();
        let items = texts.iter().map(|t| crate::ingest::parse_item(t)).collect();
        let book = crate::price::PriceBook::bundled().unwrap();
        let prepared = crate::ingest::prepare(items, &book, &Default::default(), now);
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        let events = prepared.events;
        let ws = store.workspace("default".into()).await.unwrap().unwrap().id;
        store.ingest(ws, events).await.unwrap();
        let query = Query {
            from_ms: (now - 30 * DAY_MS).div_euclid(DAY_MS) * DAY_MS,
            to_ms: now,
            filters: Default::default(),
            group_by: vec![Dimension::TenantId],
            bucket: Some(crate::query::Bucket::Day),
            measures: crate::query::Measure::ALL.to_vec(),
            order_by: None,
            ascending: false,
            limit: 100,
            count_by_first: false,
        };
        let before = store.aggregate(ws, query.clone()).await.unwrap();
        // 0.001 * (1 + ... + 30) = $0.465 over 30 calls.
        assert_eq!(before.total().requests, 30);
        assert_eq!(before.total().cost.0, 465_000_000);
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        let started_ms = super::super::now_ms();
        let mut run = Deleting {
            gen: new_gen(started_ms),
            started_ms,
            cutoff: (now - 10 * DAY_MS).div_euclid(DAY_MS) * DAY_MS,
            before_seq: ((started_ms - cells::SKEW_MS) as u64) * 1000,
            keep: Vec::new(),
            straddle: Vec::new(),
        };
        let removed = take(&store, ws, &mut run).await.unwrap().unwrap();
        assert_eq!((removed.events, removed.cost_nanos), (30, 465_000_000));
        let same = |a: &crate::query::Answer, b: &crate::query::Answer| {
            assert_eq!((&a.rows, &a.totals), (&b.rows, &b.totals));
        };
        same(&store.aggregate(ws, query.clone()).await.unwrap(), &before);
        assert_eq!(store.raw_from(ws).await.unwrap(), None, "not done yet");
        // The next prune finishes the stopped run first, then finds nothing older.
        let next = store.prune_before(ws, now - 10 * DAY_MS).await.unwrap();
        assert_eq!(next, Removed::default());
        assert_eq!(store.raw_from(ws).await.unwrap(), Some(run.cutoff));
        assert_eq!(read::event_count(&store).await.unwrap(), 0);
        same(&store.aggregate(ws, query).await.unwrap(), &before);
        let _ = store
            .client
            .execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await;
    }

    #[test]
    fn the_pruned_history_answers_the_whole_hours_before_raw_from() {
        const H: i64 = HOUR_MS;
        let raw_from = 48 * H;
        // Whole hours to the end of the pruned range: complete.
        assert_eq!(pruned_hours(10 * H, 60 * H, raw_from), (10, 48, true));
        assert_eq!(pruned_hours(10 * H, 20 * H, raw_from), (10, 20, true));
        // A partial first or last hour before raw_from is read raw: not complete.
        assert_eq!(pruned_hours(10 * H + 1, 60 * H, raw_from), (11, 48, false));
        assert_eq!(pruned_hours(10 * H, 20 * H - 5, raw_from), (10, 19, false));
        // Inside one hour: no whole hour.
        assert_eq!(
            pruned_hours(10 * H + 1, 10 * H + 9, raw_from),
            (11, 10, false)
        );
        // Negative times round toward minus infinity.
        assert_eq!(pruned_hours(-H - 1, 0, raw_from), (-1, 0, false));
    }

    #[test]
    fn a_deleting_prune_takes_its_rows_out_of_raw_reads_and_its_hours_out_of_cells() {
        let d = deleting(2 * DAY_MS);
        assert_eq!(
            deleted_rows(&d),
            format!(
                r"(seq <= 99 AND ((ts < {} AND NOT id IN ('k\'1')) OR 0))",
                2 * DAY_MS
            )
        );
        let prunes = Prunes {
            deleting: vec![d],
            ..Prunes::default()
        };
        assert!(prunes
            .raw_scope(3)
            .starts_with("ws = 3 AND NOT ((seq <= 99"));
        let first = 2 * DAY_MS / HOUR_MS;
        let trusted = vec![(first - 1, 5), (first, 5), (first + 1, 6)];
        assert_eq!(prunes.untouched(trusted), vec![(first, 5), (first + 1, 6)]);
        assert_eq!(prunes.history_end(), Some(2 * DAY_MS));
        assert_eq!(Prunes::default().raw_scope(3), "ws = 3");
        assert_eq!(is_in("id", &[]), "0");
        assert_eq!(not_in("id", &[]), "1");
    }
}
