//! The single writer: one thread owns the write connection, drains every queued ingest
//! job, writes them in one transaction with one fsync (group commit), then answers each
//! sender. A 2xx is only sent after that commit.

use super::calls::CallIndex;
use super::rollup::{Changes, Contribution, Rollups, Totals, WriteError, CONTRIBUTION_COLUMNS};
use super::schema::{self, DimKind};
use super::tag_sets::TAGS_OF_ROW;
use crate::dedupe::{self, Decision, IncomingAttempt, StoredCall};
use crate::event::{DataMode, Environment};
use crate::event::{PricedEvent, Status};
use crate::store::{
    CommitSeq, FieldTally, IngestOutcome, Result, SpendEffect, StoreError, WorkspaceId, WriteResult,
};
use rusqlite::{params, Connection, OptionalExtension, Statement, Transaction};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot};

pub struct IngestJob {
    pub workspace: WorkspaceId,
    pub events: Vec<PricedEvent>,
    pub received_at_ms: i64,
    pub tally: FieldTally,
    pub reply: oneshot::Sender<Result<IngestOutcome>>,
}

/// Work for the writer thread: ingest writes, or work that must run on the writer's own
/// connection between two commits (the readiness write probe, the rollups' catch-up).
pub enum WriterJob {
    Ingest(IngestJob),
    OnWriter(OnWriter),
    /// A control write (a key, a budget, a workspace's settings): runs before the next
    /// commit, ahead of queued ingest and without waiting for it. Run on another
    /// connection it waited for SQLite's write lock behind the writer's commits, which
    /// take it back within microseconds: under a batch load a budget's creation took
    /// up to 2.4 s (p90 0.55 s).
    Control(OnWriter),
    /// Build the rollups and the call index if not yet (any job does first): a read
    /// that needs them sends this and waits for them to be published.
    Build,
}

/// The rollups and the call index as the writer publishes them: None until its first
/// job, then what the build gave (an error is the build's cause, for every read).
pub type Published = Option<std::result::Result<Derived, String>>;

/// Work run on the writer's connection between two commits.
pub type OnWriter = Box<dyn FnOnce(&mut Connection) + Send>;

/// Most events written in one transaction; more waits for the next commit: one fsync
/// per thousands of events while nothing small waits (a single request larger than this
/// still commits whole).
const MAX_EVENTS_PER_COMMIT: usize = 2_000;

/// Requests come in parts of at most this many events (`EventStore::ingest_part_size`,
/// split by `ingest::accept`), and a commit ends after the part in progress when a small
/// request arrives: a single event under a batch load waits for one part (~250 events,
/// 1-3 ms) and its own commit, not for a commit of thousands. More than twice
/// `SMALL_JOB_EVENTS`, so every part of a split request is a big job and the parts
/// commit in order.
pub const PART_EVENTS: usize = 256;

/// Requests of at most this many events (single events, SDK flushes) go first into the
/// next commit, ahead of batches queued before them.
const SMALL_JOB_EVENTS: usize = 16;

/// Interned dimension strings, valid for committed rows only (cleared on rollback).
/// foldhash: this map is hit nine times per event on the single writer thread.
#[derive(Default)]
struct DimCache {
    /// Indexed by `DimKind as usize`.
    ids: [HashMap<Box<str>, i64, foldhash::fast::RandomState>; 10],
    tag_sets: super::tag_sets::TagSetCache,
}

/// What the writer keeps beside the connection: the rollups it folds commits into and
/// the index of stored calls it dedupes against (both shared with readers).
#[derive(Clone)]
pub struct Derived {
    pub rollups: Arc<Rollups>,
    pub calls: Arc<RwLock<CallIndex>>,
}

/// Jobs taken from the channel and not yet committed, and a job that must run on the
/// writer once everything queued before it is committed.
#[derive(Default)]
struct Queue {
    small: std::collections::VecDeque<IngestJob>,
    big: std::collections::VecDeque<IngestJob>,
    on_writer: Option<OnWriter>,
    /// Control writes, run before the next commit.
    control: std::collections::VecDeque<OnWriter>,
    /// Whether the last commit held small jobs only.
    small_alone: bool,
}

impl Queue {
    fn has_ingest(&self) -> bool {
        !self.small.is_empty() || !self.big.is_empty()
    }

    /// Take a job. Once a job for the writer waits, nothing after it is taken until
    /// everything before it is committed and it has run.
    fn take(&mut self, job: WriterJob) {
        match job {
            WriterJob::Ingest(job) if job.events.len() <= SMALL_JOB_EVENTS => {
                self.small.push_back(job)
            }
            WriterJob::Ingest(job) => self.big.push_back(job),
            WriterJob::OnWriter(run) => self.on_writer = Some(run),
            WriterJob::Control(run) => self.control.push_back(run),
            WriterJob::Build => {}
        }
    }

    /// The next commit: every small job first, alone (a few events commit in well under
    /// a millisecond, so a single event waits for the commit in progress and its own, not
    /// for a batch's); then batches in arrival order while they fit under the cap. Small
    /// jobs commit alone at most every other commit, so batches cannot starve.
    fn next_commit(&mut self) -> Vec<IngestJob> {
        let mut batch = Vec::new();
        let mut events = 0;
        while let Some(job) = self.small.pop_front() {
            events += job.events.len();
            batch.push(job);
            if events >= MAX_EVENTS_PER_COMMIT {
                break;
            }
        }
        if !batch.is_empty() && !self.small_alone {
            self.small_alone = true;
            return batch;
        }
        self.small_alone = false;
        let mut took_big = false;
        while let Some(job) = self.big.front() {
            if took_big && events + job.events.len() > MAX_EVENTS_PER_COMMIT {
                break;
            }
            events += job.events.len();
            took_big = true;
            batch.extend(self.big.pop_front());
        }
        batch
    }
}

pub fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<WriterJob>,
    publish: tokio::sync::watch::Sender<Published>,
) {
    let mut dims = DimCache::default();
    let dropper = start_dropper();
    let mut queue = Queue::default();
    let mut built: Option<Derived> = None;
    loop {
        if !queue.has_ingest() && queue.on_writer.is_none() {
            match jobs.blocking_recv() {
                Some(job) => queue.take(job),
                None => break,
            }
        }
        while queue.on_writer.is_none() {
            match jobs.try_recv() {
                Ok(job) => queue.take(job),
                Err(_) => break,
            }
        }
        // Control writes touch neither the rollups nor the call index: they need no
        // build, and go before every queued commit.
        while let Some(run) = queue.control.pop_front() {
            run(&mut conn);
        }
        let derived = match &built {
            Some(derived) => derived,
            None => match build(&mut conn) {
                Ok(derived) => {
                    publish.send_replace(Some(Ok(derived.clone())));
                    built.insert(derived)
                }
                Err(e) => {
                    // Nothing can be committed without them: every waiting job hears
                    // why, and the next job tries again.
                    let cause = store_error(e);
                    tracing::error!(error = %cause, "building the rollups and the call index failed");
                    publish.send_replace(Some(Err(cause.to_string())));
                    let waiting: Vec<IngestJob> =
                        queue.small.drain(..).chain(queue.big.drain(..)).collect();
                    for job in waiting {
                        let _ = job.reply.send(Err(cause.clone()));
                    }
                    queue.on_writer = None;
                    continue;
                }
            },
        };
        if !queue.has_ingest() {
            if let Some(run) = queue.on_writer.take() {
                run(&mut conn);
                // An erasure may have deleted dims rows: cached ids must be looked up
                // again (on-writer jobs are rare, the cache refills in one commit).
                dims = DimCache::default();
            }
            continue;
        }
        let mut batch = queue.next_commit();
        // A small request or a control write waiting ends the commit after its part.
        let mut small_waiting = || {
            while queue.on_writer.is_none() {
                match jobs.try_recv() {
                    Ok(job) => queue.take(job),
                    Err(_) => break,
                }
            }
            !queue.small.is_empty() || !queue.control.is_empty()
        };
        let result = commit(&mut conn, &mut dims, derived, &batch, &mut small_waiting);
        if let Ok((outcomes, _)) = &result {
            // The jobs after a small request arrived wait for the next commit but one,
            // at the head of the queue.
            for job in batch.split_off(outcomes.len()).into_iter().rev() {
                queue.big.push_front(job);
            }
        }
        match result {
            // One request's data (a total it would overflow, say) must not fail the
            // others it happened to share a commit with: each is retried alone, so only
            // the bad one is refused. Nothing was acknowledged, so nothing is lost.
            Err(e) if batch.len() > 1 => {
                dims = DimCache::default();
                let cause = store_error(e);
                tracing::warn!(error = %cause, jobs = batch.len(), "group commit failed; committing its requests one by one");
                for job in batch {
                    let alone = vec![job];
                    let result = commit(&mut conn, &mut dims, derived, &alone, &mut || false);
                    answer(alone, result, &mut dims, &dropper);
                }
            }
            result => answer(batch, result, &mut dims, &dropper),
        }
    }
    // Channel closed: every sender is gone; fold the WAL back before the file is closed.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "checkpoint at shutdown failed");
    }
}

/// The event field a rollup measure sums, to name it to the client.
fn event_field(measure: &str) -> &'static str {
    match measure {
        "cost_nanos" => "costUsd",
        "input_tokens" => "inputTokens",
        "cached_tokens" => "cachedTokens",
        "cache_write_tokens" => "cacheWriteTokens",
        "output_tokens" => "outputTokens",
        "reasoning_tokens" => "reasoningTokens",
        "latency_sum" => "latencyMs",
        _ => "body",
    }
}

/// What a failed write tells its senders: a short cause (never SQL text), storage
/// full as its own kind (503), an overflow naming the event field.
fn store_error(e: WriteError) -> StoreError {
    match e {
        WriteError::Overflow(measure) => {
            StoreError::WriteOverflow(event_field(measure).to_string())
        }
        WriteError::Db(e) => StoreError::from(&e),
        e @ WriteError::Missing(_) => StoreError::Database(e.to_string()),
    }
}

/// Per job its outcome; per stored (not duplicate) event its cost change, as (job index,
/// event index, change) when the budget counters listen.
type Committed =
    std::result::Result<(Vec<IngestOutcome>, Vec<(usize, usize, CostChange)>), WriteError>;

/// Dropping a batch (thousands of events, each with a few strings and a tag map) is
/// a good part of the writer's time: another thread does it.
fn start_dropper() -> std::sync::mpsc::Sender<Vec<Vec<PricedEvent>>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Vec<PricedEvent>>>();
    let spawned = std::thread::Builder::new()
        .name("burnrate-drop".into())
        .spawn(move || {
            crate::sched::background("burnrate-drop");
            for batch in rx {
                drop(batch);
            }
        });
    if let Err(e) = spawned {
        // Without the thread, batches are dropped where they are sent from.
        tracing::warn!(error = %e, "no thread to free ingested batches");
    }
    tx
}

/// Tell each sender how its commit went: its results, the commit's sequence and its
/// events' cost changes (which `ingest::accept` hands to the budget counters).
fn answer(
    mut batch: Vec<IngestJob>,
    result: Committed,
    dims: &mut DimCache,
    dropper: &std::sync::mpsc::Sender<Vec<Vec<PricedEvent>>>,
) {
    match result {
        Ok((mut outcomes, changes)) => {
            // The events are not needed after this: their strings move into the effects
            // instead of being copied.
            for (j, i, mut change) in changes {
                if let Some(retract) = change.retract.take() {
                    outcomes[j].effects.push(retract);
                }
                let job = &mut batch[j];
                let effect = spend_effect(job.workspace, &mut job.events[i], change);
                outcomes[j].effects.push(effect);
            }
            let mut events = Vec::with_capacity(batch.len());
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
                events.push(job.events);
            }
            let _ = dropper.send(events);
        }
        Err(e) => {
            // Nothing of this batch is acknowledged; ids handed out inside the
            // rolled-back transaction are gone, so forget them.
            *dims = DimCache::default();
            let error = store_error(e);
            match &error {
                StoreError::WriteOverflow(field) => {
                    tracing::warn!(field, "ingest refused: a stored total would overflow")
                }
                other => {
                    tracing::error!(error = %other, jobs = batch.len(), "ingest commit failed")
                }
            }
            for job in batch {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

/// Calls this commit stored, by key, until the commit makes them part of the index.
#[derive(Default)]
struct NewCalls {
    rows: HashMap<u64, Vec<i64>, foldhash::fast::RandomState>,
}

/// The call index as one commit sees it: the shared index plus its own new calls.
struct CommitCalls<'a> {
    index: &'a CallIndex,
    added: NewCalls,
}

impl CommitCalls<'_> {
    fn candidates(&self, key: u64) -> Vec<i64> {
        let added = self.added.rows.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        self.index
            .candidates(key)
            .chain(added.iter().copied())
            .collect()
    }
}

/// Take the write lock and make sure the rollups and the call index describe the file:
/// when another process (`burnrate import`) committed since this writer's last commit,
/// re-read what it wrote before deciding anything. Returns the file's sequence.
fn begin<'c>(
    conn: &'c mut Connection,
    dims: &mut DimCache,
    derived: &Derived,
) -> std::result::Result<(Transaction<'c>, i64), WriteError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let file_seq = super::rollup::commit_seq(&tx)?;
    if file_seq != derived.rollups.ahead_seq() {
        // Another process may have erased ids (deleting their dims rows).
        *dims = DimCache::default();
        let (totals, calls) = scan_events(&tx)?;
        derived.rollups.replace(totals);
        *derived.calls.write().unwrap_or_else(|e| e.into_inner()) = calls;
        tracing::debug!(
            seq = file_seq,
            "rollups and call index re-read (another process wrote to the file)"
        );
    }
    Ok((tx, file_seq))
}

/// One transaction for a batch of jobs, in order, ending early (after a job) when
/// `small_waiting` says a small request (or a control write) arrived; returns the outcome of each job
/// written (the first ones).
fn commit(
    conn: &mut Connection,
    dims: &mut DimCache,
    derived: &Derived,
    batch: &[IngestJob],
    small_waiting: &mut dyn FnMut() -> bool,
) -> Committed {
    let (tx, applied) = begin(conn, dims, derived)?;
    let index = derived.calls.read().unwrap_or_else(|e| e.into_inner());
    let mut calls = CommitCalls {
        index: &index,
        added: NewCalls::default(),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut changes = Vec::new();
    let mut pending = Changes::default();
    {
        // Prepared once per commit: the statement cache would hash the SQL per event.
        let mut insert = tx.prepare(INSERT_EVENT)?;
        for (j, job) in batch.iter().enumerate() {
            if j > 0 && small_waiting() {
                break;
            }
            let mut results = Vec::with_capacity(job.events.len());
            for (i, priced) in job.events.iter().enumerate() {
                let (ws, at) = (job.workspace, job.received_at_ms);
                let mut sinks = Sinks {
                    dims: &mut *dims,
                    calls: &mut calls,
                    rollups: &mut pending,
                };
                let (result, change) = write_event(&tx, &mut insert, &mut sinks, ws, at, priced)?;
                if result != WriteResult::Duplicate {
                    changes.push((j, i, change));
                }
                results.push(result);
            }
            outcomes.push(IngestOutcome {
                results,
                seq: 0,
                effects: Vec::new(),
            });
            count_unknown_fields(&tx, &job.tally, job.received_at_ms)?;
        }
    }
    // A total this commit would push past i64 refuses it before anything is stored.
    derived.rollups.admit(&pending)?;
    let seq: i64 = tx
        .prepare_cached(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'commit_seq'
             RETURNING CAST(value AS INTEGER)",
        )?
        .query_row([], |r| r.get(0))?;
    tx.commit()?;
    let added = calls.added;
    drop(index);
    let mut index = derived.calls.write().unwrap_or_else(|e| e.into_inner());
    for (key, rows) in added.rows {
        for row in rows {
            index.insert(key, row);
        }
    }
    drop(index);
    after_commit(conn, derived, pending, applied, seq);
    for outcome in &mut outcomes {
        outcome.seq = seq as CommitSeq;
    }
    Ok((outcomes, changes))
}

/// Hand a commit's changes to the rollups' fold thread. When the sequence jumped
/// (another process, such as `burnrate import`, committed events to the same file
/// since), rebuild them instead.
fn after_commit(
    conn: &mut Connection,
    derived: &Derived,
    changes: Changes,
    applied: i64,
    seq: i64,
) {
    if seq == applied + 1 {
        derived.rollups.hand_off(changes, seq);
        return;
    }
    catch_up(conn, derived);
}

/// Every event `tx` sees, summed into rollup totals and indexed by call. Read through a
/// small page cache: the writer's would be left full of pages no commit touches (64 MB
/// of the server's memory at 10M calls).
fn scan_events(tx: &Connection) -> std::result::Result<(Totals, CallIndex), WriteError> {
    let cache = |mib: u32| tx.pragma_update(None, "cache_size", -(i64::from(mib) * 1024));
    cache(schema::BUILD_CACHE_MIB)?;
    let scanned = Totals::sum(tx).and_then(|totals| Ok((totals, CallIndex::scan(tx)?)));
    cache(schema::WRITER_CACHE_MIB)?;
    scanned
}

/// The rollups and the index of the calls, from every event in the file in one read
/// transaction (the cost of the first event read or write, logged).
fn build(conn: &mut Connection) -> std::result::Result<Derived, WriteError> {
    let started = std::time::Instant::now();
    let tx = conn.transaction()?;
    let (totals, calls) = scan_events(&tx)?;
    drop(tx);
    let cells: Vec<String> = totals
        .cell_counts()
        .iter()
        .map(|(family, grain, n)| format!("{family}/{grain:?}={n}"))
        .collect();
    // Debug, never info: a CLI command's output must not depend on how long it took.
    tracing::debug!(
        seq = totals.seq,
        ms = started.elapsed().as_millis() as u64,
        cells = %cells.join(" "),
        cells_mb = totals.heap_bytes() / 1_000_000,
        costliest_mb = totals.costliest.heap_bytes() / 1_000_000,
        row_lists_mb = totals.row_lists.heap_bytes() / 1_000_000,
        calls = calls.len(),
        calls_mb = calls.heap_bytes() / 1_000_000,
        "rollups and call index built from the events"
    );
    Ok(Derived {
        rollups: Rollups::new(totals),
        calls: Arc::new(RwLock::new(calls)),
    })
}

/// Rebuild the rollups and the call index from the events when they are not at the
/// file's commit sequence (once every handed-off commit is folded).
pub fn catch_up(conn: &mut Connection, derived: &Derived) {
    derived.rollups.flush();
    let current = super::rollup::commit_seq(conn).ok();
    if current == Some(derived.rollups.read().seq) {
        return;
    }
    let started = std::time::Instant::now();
    let rebuilt = conn
        .transaction()
        .map_err(WriteError::from)
        .and_then(|tx| scan_events(&tx));
    match rebuilt {
        // Debug: an expected event (another process committed), and a CLI command's
        // output must not depend on whether a server wrote meanwhile.
        Ok((fresh, calls)) => {
            tracing::debug!(
                seq = fresh.seq,
                ms = started.elapsed().as_millis() as u64,
                "rollups rebuilt from the events (another process wrote to the file)"
            );
            derived.rollups.replace(fresh);
            *derived.calls.write().unwrap_or_else(|e| e.into_inner()) = calls;
        }
        Err(e) => tracing::error!(error = %store_error(e), "rebuilding the rollups failed"),
    }
}

/// Add a request's unknown fields to its key's count, with the events: as durable as
/// they are, and free for the (usual) request without any.
fn count_unknown_fields(tx: &Transaction, tally: &FieldTally, now_ms: i64) -> rusqlite::Result<()> {
    let Some(key_id) = tally.key_id.filter(|_| tally.unknown_fields > 0) else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT INTO key_quality (key_id, unknown_fields, last_unknown_field, last_unknown_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key_id) DO UPDATE SET unknown_fields = unknown_fields + excluded.unknown_fields,
             last_unknown_field = excluded.last_unknown_field, last_unknown_ms = excluded.last_unknown_ms",
    )?
    .execute(params![
        key_id,
        tally.unknown_fields.min(i64::MAX as u64) as i64,
        tally.last_unknown,
        now_ms
    ])?;
    Ok(())
}

/// How a write changed a call's cost: what it was before (None for a new call), the
/// environment and data mode of the stored call when an attempt did not replace it, and
/// for a replaced attempt the old attempt's cost to take back where it was counted.
struct CostChange {
    old_cost: Option<Option<i64>>,
    kept: Option<(i64, i64)>,
    replaced: bool,
    retract: Option<SpendEffect>,
}

/// The budget-relevant change of one write. A replaced attempt is two effects: the old
/// attempt's cost taken back under its own dimensions and time (`CostChange::retract`),
/// and the new attempt's whole cost under its own, so a retry that names another tenant
/// or lands in the next period moves the cost exactly.
fn spend_effect(workspace: WorkspaceId, p: &mut PricedEvent, change: CostChange) -> SpendEffect {
    let e = &mut p.event;
    let take = std::mem::take::<String>;
    let new_cost = p.pricing.cost.map(|c| c.nanos());
    let (cost_delta, unpriced_delta) = match (change.old_cost, change.replaced) {
        (None, _) => (new_cost.unwrap_or(0), new_cost.is_none() as i64),
        (Some(_), true) => (new_cost.unwrap_or(0), new_cost.is_none() as i64),
        (Some(_), false) => (0, 0),
    };
    let (environment, data_mode) = match change.kept {
        Some((env, dm)) => (
            Environment::from_code(env as u8).unwrap_or(e.environment),
            DataMode::from_code(dm as u8).unwrap_or(e.data_mode),
        ),
        None => (e.environment, e.data_mode),
    };
    SpendEffect {
        workspace,
        external_request_id: e.external_request_id.take(),
        ts_ms: e.timestamp_ms,
        environment,
        data_mode,
        endpoint_tag: take(&mut e.endpoint_tag),
        tenant_id: e.tenant_id.take(),
        user_id: e.user_id.take(),
        model: take(&mut e.model),
        provider: take(&mut e.provider),
        tags: std::mem::take(&mut e.tags),
        cost_delta,
        unpriced_delta,
        new_call_cost: new_cost.filter(|_| change.old_cost.is_none()),
    }
}

/// A new logical call (the writer checked the call index: the id is not taken).
const INSERT_EVENT: &str =
    "INSERT INTO events (workspace_id, external_request_id, idless, ts, received_at, attempt,
                attempt_mask, attempts, provider, model, endpoint, prompt_version, tenant, user,
                input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                image_count, latency_ms, status, error_code, data_mode, environment, operation,
                service_tier, usage_missing, cost_nanos, cost_source, price_entry, price_book, tag_set,
                repriced_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)";

fn intern(
    tx: &Transaction,
    dims: &mut DimCache,
    kind: DimKind,
    value: &str,
) -> rusqlite::Result<i64> {
    if let Some(id) = dims.ids[kind as usize].get(value) {
        return Ok(*id);
    }
    tx.prepare_cached("INSERT OR IGNORE INTO dims (kind, value) VALUES (?1, ?2)")?
        .execute(params![kind as u8, value])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM dims WHERE kind = ?1 AND value = ?2")?
        .query_row(params![kind as u8, value], |r| r.get(0))?;
    dims.ids[kind as usize].insert(value.into(), id);
    Ok(id)
}

fn intern_opt(
    tx: &Transaction,
    dims: &mut DimCache,
    kind: DimKind,
    value: Option<&str>,
) -> rusqlite::Result<Option<i64>> {
    value.map(|v| intern(tx, dims, kind, v)).transpose()
}

/// The columns that describe one attempt's usage and cost, in `events` order.
struct UsageColumns {
    attempt: u8,
    provider: i64,
    model: i64,
    endpoint: i64,
    prompt_version: Option<i64>,
    tenant: Option<i64>,
    user: Option<i64>,
    error_code: Option<i64>,
    price_entry: Option<i64>,
    price_book: Option<i64>,
    tag_set: Option<i64>,
}

fn usage_columns(
    tx: &Transaction,
    dims: &mut DimCache,
    p: &PricedEvent,
) -> rusqlite::Result<UsageColumns> {
    let e = &p.event;
    Ok(UsageColumns {
        attempt: e.attempt,
        provider: intern(tx, dims, DimKind::Provider, &e.provider)?,
        model: intern(tx, dims, DimKind::Model, &e.model)?,
        endpoint: intern(tx, dims, DimKind::Endpoint, &e.endpoint_tag)?,
        prompt_version: intern_opt(
            tx,
            dims,
            DimKind::PromptVersion,
            e.prompt_version.as_deref(),
        )?,
        tenant: intern_opt(tx, dims, DimKind::Tenant, e.tenant_id.as_deref())?,
        user: intern_opt(tx, dims, DimKind::User, e.user_id.as_deref())?,
        error_code: intern_opt(tx, dims, DimKind::ErrorCode, e.error_code.as_deref())?,
        price_entry: intern_opt(
            tx,
            dims,
            DimKind::PriceEntry,
            p.pricing.price_entry_id.as_deref(),
        )?,
        price_book: intern_opt(
            tx,
            dims,
            DimKind::PriceBook,
            p.pricing.price_book_version.as_deref(),
        )?,
        tag_set: tag_set(tx, dims, &e.tags)?,
    })
}

/// The id of a call's tag set (its tags as JSON, keys sorted by the map), None without
/// tags.
fn tag_set(
    tx: &Transaction,
    dims: &mut DimCache,
    tags: &std::collections::BTreeMap<String, String>,
) -> rusqlite::Result<Option<i64>> {
    if tags.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(tags).expect("a map of strings serializes");
    super::tag_sets::intern(tx, &mut dims.tag_sets, &json).map(Some)
}

/// What a call stored with these columns contributes to the rollups.
fn contribution(
    workspace: WorkspaceId,
    p: &PricedEvent,
    cols: &UsageColumns,
    attempts: i64,
    row: i64,
) -> Contribution {
    let e = &p.event;
    Contribution {
        workspace,
        ts: e.timestamp_ms,
        environment: e.environment.code() as i64,
        data_mode: e.data_mode.code() as i64,
        status: e.status.code() as i64,
        provider: cols.provider,
        model: cols.model,
        endpoint: cols.endpoint,
        prompt_version: cols.prompt_version.unwrap_or(0),
        tenant: cols.tenant.unwrap_or(0),
        user: cols.user.unwrap_or(0),
        attempts,
        cost_nanos: p.pricing.cost.map(|c| c.nanos()),
        input: e.tokens.input as i64,
        cached: e.tokens.cached as i64,
        cache_write: e.tokens.cache_write as i64,
        output: e.tokens.output as i64,
        reasoning: e.tokens.reasoning as i64,
        latency_ms: e.latency_ms.map(i64::from),
        usage_missing: e.usage_missing,
        idless: p.stored_id().is_none_or(|(_, idless)| idless),
        tag_set: cols.tag_set.unwrap_or(0),
        row,
    }
}

/// When a copied call was re-priced in the store it comes from (None for a new call).
fn repriced_at_ms(p: &PricedEvent) -> Option<i64> {
    p.copied.as_ref().and_then(|c| c.repriced_at_ms)
}

/// What one write reads and adds to besides the events table.
struct Sinks<'a, 'b> {
    dims: &'a mut DimCache,
    calls: &'a mut CommitCalls<'b>,
    rollups: &'a mut Changes,
}

fn write_event(
    tx: &Transaction,
    insert: &mut Statement,
    sinks: &mut Sinks,
    workspace: WorkspaceId,
    received_at_ms: i64,
    p: &PricedEvent,
) -> std::result::Result<(WriteResult, CostChange), WriteError> {
    let e = &p.event;
    let cols = usage_columns(tx, sinks.dims, p)?;
    // A new id-less call gets a fresh id and cannot be stored yet; every other call
    // (a client's id, or an id-less call copied with its assigned id) may be.
    let (ext_id, idless, known) = match p.stored_id() {
        Some((id, idless)) => (id.to_string(), idless, true),
        None => (
            format!("idless-{}", crate::auth::random_token(16)),
            true,
            false,
        ),
    };
    let received_at_ms = p
        .copied
        .as_ref()
        .map_or(received_at_ms, |c| c.received_at_ms);
    let key = sinks.calls.index.key(workspace, &ext_id);
    if known {
        for row in sinks.calls.candidates(key) {
            if let Some(stored) = stored_call(tx, row, workspace, &ext_id, idless)? {
                return merge_attempt(tx, sinks.rollups, &ext_id, stored, p, &cols);
            }
        }
    }
    insert.execute(params![
        workspace,
        ext_id,
        idless,
        e.timestamp_ms,
        received_at_ms,
        cols.attempt,
        dedupe::attempt_bit(e.attempt) as i64,
        cols.provider,
        cols.model,
        cols.endpoint,
        cols.prompt_version,
        cols.tenant,
        cols.user,
        e.tokens.input as i64,
        e.tokens.cached as i64,
        e.tokens.cache_write as i64,
        e.tokens.output as i64,
        e.tokens.reasoning as i64,
        e.image_count,
        e.latency_ms,
        e.status.code(),
        cols.error_code,
        e.data_mode.code(),
        e.environment.code(),
        e.operation.code(),
        e.service_tier.code(),
        e.usage_missing,
        p.pricing.cost.map(|c| c.nanos()),
        p.pricing.source.map(|s| s.code()),
        cols.price_entry,
        cols.price_book,
        cols.tag_set,
        repriced_at_ms(p),
    ])?;
    let row = tx.last_insert_rowid();
    sinks.calls.added.rows.entry(key).or_default().push(row);
    sinks
        .rollups
        .apply(&contribution(workspace, p, &cols, 1, row), 1);
    let change = CostChange {
        old_cost: None,
        kept: None,
        replaced: false,
        retract: None,
    };
    Ok((WriteResult::Inserted, change))
}

/// The effect that takes a replaced attempt's cost back under the dimensions and time
/// it was counted with (its dimension ids read back as the strings budgets match).
fn retraction(
    tx: &Transaction,
    ext_id: &str,
    old: &Contribution,
    tags: Option<String>,
) -> rusqlite::Result<SpendEffect> {
    let name = |id: i64| -> rusqlite::Result<Option<String>> {
        if id == 0 {
            return Ok(None);
        }
        tx.prepare_cached("SELECT value FROM dims WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()
    };
    Ok(SpendEffect {
        workspace: old.workspace,
        external_request_id: Some(ext_id.to_string()),
        ts_ms: old.ts,
        environment: Environment::from_code(old.environment as u8).unwrap_or(Environment::Prod),
        data_mode: DataMode::from_code(old.data_mode as u8).unwrap_or(DataMode::Real),
        endpoint_tag: name(old.endpoint)?.unwrap_or_default(),
        tenant_id: name(old.tenant)?,
        user_id: name(old.user)?,
        model: name(old.model)?.unwrap_or_default(),
        provider: name(old.provider)?.unwrap_or_default(),
        tags: tags
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        cost_delta: -old.cost_nanos.unwrap_or(0),
        unpriced_delta: -(old.cost_nanos.is_none() as i64),
        new_call_cost: None,
    })
}

/// A stored call as the dedupe decision and the rollups need it.
struct StoredRow {
    row_id: i64,
    mask: i64,
    usage_missing: bool,
    old: Contribution,
    tags: Option<String>,
    attempt: u8,
}

/// The call stored in row `row_id`, if that row is (workspace, ext_id): the call index
/// gives candidates by hash, the stored id decides.
fn stored_call(
    tx: &Transaction,
    row_id: i64,
    workspace: WorkspaceId,
    ext_id: &str,
    idless: bool,
) -> rusqlite::Result<Option<StoredRow>> {
    let sql = format!(
        "SELECT {CONTRIBUTION_COLUMNS}, attempt_mask, {TAGS_OF_ROW}, attempt FROM events
         WHERE id = ?1 AND workspace_id = ?2 AND external_request_id = ?3 AND idless = ?4"
    );
    tx.prepare_cached(&sql)?
        .query_row(params![row_id, workspace, ext_id, idless], |r| {
            let old = Contribution::from_row(r)?;
            Ok(StoredRow {
                row_id,
                mask: r.get(23)?,
                usage_missing: old.usage_missing,
                old,
                tags: r.get(24)?,
                attempt: r.get(25)?,
            })
        })
        .optional()
}

/// The id is taken: apply the dedupe decision to the stored call.
fn merge_attempt(
    tx: &Transaction,
    rollups: &mut Changes,
    ext_id: &str,
    stored_row: StoredRow,
    p: &PricedEvent,
    cols: &UsageColumns,
) -> std::result::Result<(WriteResult, CostChange), WriteError> {
    let e = &p.event;
    let StoredRow {
        row_id,
        mask,
        usage_missing,
        old,
        tags: old_tags,
        attempt: old_attempt,
    } = stored_row;
    let workspace = old.workspace;
    let status = old.status as u8;
    let stored = StoredCall {
        attempt_mask: mask as u64,
        attempt: old_attempt,
        has_usage: !usage_missing,
        success: status == Status::Success.code(),
    };
    let incoming = IncomingAttempt {
        attempt: e.attempt,
        has_usage: !e.usage_missing,
        success: e.status == Status::Success,
    };
    let mut change = CostChange {
        old_cost: Some(old.cost_nanos),
        kept: Some((old.environment, old.data_mode)),
        replaced: false,
        retract: None,
    };
    let (replace, new_mask) = match dedupe::decide(stored, incoming) {
        Decision::Duplicate => return Ok((WriteResult::Duplicate, change)),
        Decision::NewAttempt {
            replace,
            attempt_mask,
        } => (replace, attempt_mask),
    };
    let attempts = dedupe::attempt_count(new_mask);
    // The call's old contribution leaves the rollups; its new one enters.
    rollups.apply(&old, -1);
    if !replace {
        tx.prepare_cached("UPDATE events SET attempt_mask = ?2, attempts = ?3 WHERE id = ?1")?
            .execute(params![row_id, new_mask as i64, attempts])?;
        rollups.apply(
            &Contribution {
                attempts: attempts as i64,
                ..old
            },
            1,
        );
        return Ok((WriteResult::Attempt { replaced: false }, change));
    }
    change.retract = Some(retraction(tx, ext_id, &old, old_tags)?);
    // The winner describes the whole call, environment and data mode included.
    change.kept = None;
    rollups.apply(
        &contribution(workspace, p, cols, attempts as i64, row_id),
        1,
    );
    tx.prepare_cached(
        "UPDATE events SET attempt_mask = ?2, attempts = ?3, attempt = ?4, ts = ?5, provider = ?6,
            model = ?7, endpoint = ?8, prompt_version = ?9, tenant = ?10, user = ?11,
            input_tokens = ?12, cached_tokens = ?13, cache_write_tokens = ?14, output_tokens = ?15,
            reasoning_tokens = ?16, image_count = ?17, latency_ms = ?18, status = ?19,
            error_code = ?20, operation = ?21, service_tier = ?22, usage_missing = ?23,
            cost_nanos = ?24, cost_source = ?25, price_entry = ?26, price_book = ?27, tag_set = ?28,
            environment = ?29, data_mode = ?30, repriced_at = ?31
         WHERE id = ?1",
    )?
    .execute(params![
        row_id,
        new_mask as i64,
        attempts,
        cols.attempt,
        e.timestamp_ms,
        cols.provider,
        cols.model,
        cols.endpoint,
        cols.prompt_version,
        cols.tenant,
        cols.user,
        e.tokens.input as i64,
        e.tokens.cached as i64,
        e.tokens.cache_write as i64,
        e.tokens.output as i64,
        e.tokens.reasoning as i64,
        e.image_count,
        e.latency_ms,
        e.status.code(),
        cols.error_code,
        e.operation.code(),
        e.service_tier.code(),
        e.usage_missing,
        p.pricing.cost.map(|c| c.nanos()),
        p.pricing.source.map(|s| s.code()),
        cols.price_entry,
        cols.price_book,
        cols.tag_set,
        e.environment.code(),
        e.data_mode.code(),
        // The winner's price is its own: re-priced only when a copy says so.
        repriced_at_ms(p),
    ])?;
    change.replaced = true;
    Ok((WriteResult::Attempt { replaced: true }, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(events: usize) -> WriterJob {
        let body = serde_json::json!([{
            "externalRequestId": "q-1", "provider": "openai", "model": "gpt-4o-mini",
            "endpointTag": "queue", "inputTokens": 10, "outputTokens": 5, "status": "success"
        }])
        .to_string();
        let items = crate::ingest::parse_batch(body.as_bytes(), false).unwrap();
        let book = crate::price::PriceBook::bundled().unwrap();
        let settings = crate::settings::IngestSettings::default();
        let event = crate::ingest::prepare(items, &book, &settings, 0)
            .events
            .remove(0);
        WriterJob::Ingest(IngestJob {
            workspace: 1,
            events: vec![event; events],
            received_at_ms: 0,
            tally: FieldTally::default(),
            reply: oneshot::channel().0,
        })
    }

    fn ingest(job: WriterJob) -> IngestJob {
        match job {
            WriterJob::Ingest(job) => job,
            _ => unreachable!("job() makes ingest jobs"),
        }
    }

    #[test]
    fn a_commit_ends_after_the_job_in_progress_when_a_small_request_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("w.db")).unwrap();
        schema::configure(&conn, 2).unwrap();
        schema::migrate(&mut conn, 0).unwrap();
        let derived = build(&mut conn).unwrap();
        let mut dims = DimCache::default();
        let batch: Vec<IngestJob> = (0..3).map(|_| ingest(job(300))).collect();
        // Asked before every job but the first: a small request arrives after the first.
        let mut asked = 0;
        let mut arrives_after_one = || {
            asked += 1;
            true
        };
        let (outcomes, _) = commit(
            &mut conn,
            &mut dims,
            &derived,
            &batch,
            &mut arrives_after_one,
        )
        .unwrap();
        assert_eq!((outcomes.len(), asked), (1, 1));
        assert_eq!(outcomes[0].seq, 1);
        // Nothing arriving: the rest commit together, in the next commit.
        let (outcomes, _) =
            commit(&mut conn, &mut dims, &derived, &batch[1..], &mut || false).unwrap();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|o| o.seq == 2));
    }

    fn sizes(batch: &[IngestJob]) -> Vec<usize> {
        batch.iter().map(|j| j.events.len()).collect()
    }

    #[test]
    fn single_events_go_first_and_batches_fill_a_commit_up_to_the_cap() {
        let mut queue = Queue::default();
        for n in [1000, 1000, 1, 1000, 2, 5000] {
            queue.take(job(n));
        }
        // Small jobs commit alone, ahead of the batches queued before them.
        assert_eq!(sizes(&queue.next_commit()), [1, 2]);
        assert_eq!(sizes(&queue.next_commit()), [1000, 1000]);
        // Small jobs arriving meanwhile go first again, but not twice in a row alone:
        // batches waiting join them.
        queue.take(job(1));
        assert_eq!(sizes(&queue.next_commit()), [1]);
        queue.take(job(3));
        assert_eq!(sizes(&queue.next_commit()), [3, 1000]);
        // A request larger than the cap still commits whole, alone.
        assert_eq!(sizes(&queue.next_commit()), [5000]);
        assert!(!queue.has_ingest());
    }
}
