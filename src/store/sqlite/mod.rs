//! The embedded SQLite backend: one file, WAL, a group-commit writer thread for events
//! and a small pool of reader connections for everything else.

mod access;
mod aggregate;
mod calls;
mod control;
mod costliest;
mod lifecycle;
mod read;
mod reprice;
mod retention;
mod rollup;
mod row_lists;
pub mod schema;
mod tag_sets;
mod writer;

use super::*;
use crate::event::PricedEvent;
use rollup::Rollups;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Ingest jobs that may wait for the writer; beyond this, ingest answers 429.
const WRITER_QUEUE: usize = 1024;

pub use lifecycle::restore;

pub struct SqliteStore {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<writer::WriterJob>>>,
    /// In-memory rollups and call index, changed only by the writer (after each commit);
    /// None until the writer built them (`derived`).
    derived: tokio::sync::watch::Receiver<writer::Published>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    readers: Mutex<Vec<Connection>>,
    /// Set when a write failed for lack of space or an I/O error; cleared by the next
    /// write that commits (an ingest or the readiness probe).
    write_failing: AtomicBool,
    /// Top lists' first passes, kept while their buckets do not change.
    first_passes: Arc<aggregate::FirstPasses>,
}

/// How often the checkpoint thread copies the WAL into the file, and the WAL size (in
/// 4 KiB pages) at which the writer checkpoints itself when that thread falls behind.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SqliteStore {
    /// The writer's queue, or Closed once `close` has run.
    fn writer(&self) -> Result<mpsc::Sender<writer::WriterJob>> {
        self.jobs.lock().unwrap().clone().ok_or(StoreError::Closed)
    }

    /// Open (creating if needed) the database at `path` and start its writer. The
    /// rollups and the call index are not built here but before the writer's first job
    /// (`derived`): a command that only touches control data (`keys create` beside a
    /// server, say) never waits for the scan of every event, about a minute at 10M.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let mut conn = Connection::open(path)?;
        schema::configure(&conn, schema::WRITER_CACHE_MIB)?;
        schema::migrate(&mut conn, now_ms())?;
        // Checkpoints run on a thread of their own (copying the WAL's frames into the file
        // took 8% of the writer's time when SQLite's auto-checkpoint ran them inside its
        // commits); the writer's auto-checkpoint stays as a backstop at a larger size.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let (publish, derived) = tokio::sync::watch::channel(None);
        let writer = std::thread::Builder::new()
            .name("burnrate-writer".into())
            // The writer keeps the workers' priority, unlike the other background
            // threads: every acknowledgement waits for it, and at nice +10 it lost the
            // CPU to the threads serving requests and to the clients, so a single
            // event's p99 under a batch load was 50-90 ms, not 29 (ARCHITECTURE.md,
            // "The guard's latency"). Its name comes from the Builder.
            .spawn(move || writer::run(conn, rx, publish))?;
        let checkpointer = Self::start_checkpointer(path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            jobs: Mutex::new(Some(tx)),
            derived,
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(Some(checkpointer)),
            readers: Mutex::new(Vec::new()),
            write_failing: AtomicBool::new(false),
            first_passes: Arc::default(),
        })
    }

    /// The rollups and the call index, once the writer built them: a read that needs
    /// them before then asks the writer to build them now and waits. After a failed
    /// build it asks again and waits for that answer.
    async fn derived(&self) -> Result<writer::Derived> {
        let mut built = self.derived.clone();
        let (ready, failed) = match &*built.borrow_and_update() {
            Some(Ok(_)) => (true, false),
            Some(Err(_)) => (false, true),
            None => (false, false),
        };
        if !ready {
            self.writer()?
                .send(writer::WriterJob::Build)
                .await
                .map_err(|_| StoreError::Closed)?;
            if failed {
                built.changed().await.map_err(|_| StoreError::Closed)?;
            }
        }
        let built = built
            .wait_for(Option::is_some)
            .await
            .map_err(|_| StoreError::Closed)?;
        match built.as_ref() {
            Some(Ok(derived)) => Ok(derived.clone()),
            Some(Err(e)) => Err(StoreError::Database(e.clone())),
            None => Err(StoreError::Closed),
        }
    }

    /// The last commit sequence the rollups include: every read through `aggregate`
    /// answers as of exactly this many commits (or a later one).
    pub async fn commit_seq(&self) -> Result<i64> {
        Ok(self.derived().await?.rollups.read().seq)
    }

    /// The old days of `workspace` whose hourly cells are complete (`rollup::Pin`), for
    /// tests and the benchmark's figures.
    pub async fn pinned_days(&self, workspace: WorkspaceId) -> Result<Vec<i64>> {
        let days = self.derived().await?.rollups.read().ready_pins(workspace);
        Ok(days.into_iter().filter(|d| *d != i64::MIN).collect())
    }

    /// Called by a read whose snapshot is ahead of the rollups for long: another process
    /// committed to the file. The writer rebuilds them between two commits.
    fn catch_up_later(&self, derived: &writer::Derived) -> impl Fn() + Send + 'static {
        let sender = self.writer().ok();
        let derived = derived.clone();
        move || {
            if let Some(sender) = &sender {
                let derived = derived.clone();
                let job = Box::new(move |c: &mut Connection| writer::catch_up(c, &derived));
                let _ = sender.try_send(writer::WriterJob::OnWriter(job));
            }
        }
    }

    /// Called by a read with each old day of `workspace` it would rather have read by
    /// hour: builds the day's pin (`aggregate::pin_day`) on a background thread of its
    /// own, one build per day at a time. A failed build leaves reads as they were.
    fn pin_later(&self, rollups: &Arc<Rollups>, workspace: WorkspaceId) -> impl Fn(i64) + Send {
        let (path, rollups) = (self.path.clone(), rollups.clone());
        move |day| {
            let Some(claim) = rollups.claim_pin(workspace, day) else {
                return;
            };
            let (path, rollups) = (path.clone(), rollups.clone());
            let build = move || {
                crate::sched::background("burnrate-pin");
                let _claim = claim;
                let built = Connection::open(&path)
                    .map_err(StoreError::from)
                    .and_then(|mut c| {
                        schema::configure(&c, schema::READER_CACHE_MIB)?;
                        aggregate::pin_day(&mut c, &rollups, workspace, day)
                    });
                if let Err(e) = built {
                    tracing::warn!(error = %e, "building an old day's hourly cells failed; its reads stay raw");
                }
            };
            let spawned = std::thread::Builder::new()
                .name("burnrate-pin".into())
                .spawn(build);
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a thread for an old day's hourly cells");
            }
        }
    }

    /// Run `f` on the writer's connection between two commits and wait for its answer.
    async fn on_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &writer::Derived) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let derived = self.derived().await?;
        let sender = self.writer()?;
        let (done, answer) = oneshot::channel();
        let job = Box::new(move |c: &mut Connection| {
            let _ = done.send(f(c, &derived));
        });
        sender
            .send(writer::WriterJob::OnWriter(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.note_write(&result);
        result
    }

    /// Keep track of whether writes work: a storage failure marks the store unwritable
    /// (so /readyz says not ready), a committed write marks it writable again.
    /// Hand one request (or part) to the writer; the receiver hears its commit.
    fn queue_ingest(
        &self,
        workspace: WorkspaceId,
        events: Vec<PricedEvent>,
        tally: FieldTally,
    ) -> Result<oneshot::Receiver<Result<IngestOutcome>>> {
        let sender = self.writer()?;
        let (reply, answer) = oneshot::channel();
        let job = writer::IngestJob {
            workspace,
            events,
            received_at_ms: now_ms(),
            tally,
            reply,
        };
        sender
            .try_send(writer::WriterJob::Ingest(job))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Busy,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        Ok(answer)
    }

    async fn hear_ingest(
        &self,
        answer: oneshot::Receiver<Result<IngestOutcome>>,
    ) -> Result<IngestOutcome> {
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.note_write(&result);
        result
    }

    fn note_write<T>(&self, result: &Result<T>) {
        match result {
            Ok(_) => self.write_failing.store(false, Ordering::Relaxed),
            Err(StoreError::StorageFull(_)) => self.write_failing.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
    }

    /// A page of calls read from the window's rows only, never the costliest lists: the
    /// reference for tests.
    pub async fn events_raw(&self, workspace: WorkspaceId, query: EventQuery) -> Result<EventPage> {
        let calls = self.derived().await?.calls;
        self.with_conn(move |c| read::events(c, &calls, None, workspace, &query))
            .await
    }

    /// Answer a query from raw events only, never rollups: the reference for tests.
    pub async fn aggregate_raw(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
    ) -> Result<crate::query::Answer> {
        self.with_conn(move |c| aggregate::aggregate_raw(c, workspace, &query))
            .await
    }

    /// Every 50 ms copy committed WAL frames into the database (PASSIVE: never blocks the
    /// writer or readers). A complete checkpoint lets the writer's next commit start the
    /// WAL from its beginning again.
    fn start_checkpointer(
        path: &Path,
    ) -> anyhow::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
        let conn = Connection::open(path)?;
        schema::configure(&conn, 2)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("burnrate-checkpoint".into())
            .spawn(move || {
                crate::sched::background("burnrate-checkpoint");
                // Logged when it starts and stops failing: on a full disk every round fails.
                let mut failing = false;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %StoreError::from(&e), "checkpoint failed");
                        }
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!("checkpoint works again");
                        }
                        _ => {}
                    }
                }
            })?;
        Ok((stop, handle))
    }

    fn connection(&self) -> Result<Connection> {
        if let Some(conn) = self.readers.lock().unwrap().pop() {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path)?;
        schema::configure(&conn, schema::READER_CACHE_MIB)?;
        Ok(conn)
    }

    /// Run a query of a few microseconds on a pooled connection on the calling thread.
    fn with_conn_inline<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.connection()?;
        let result = f(&mut conn);
        if matches!(result, Err(StoreError::StorageFull(_))) {
            self.note_write(&result);
        }
        let mut pool = self.readers.lock().unwrap();
        if pool.len() < 8 {
            pool.push(conn);
        }
        result
    }

    /// Run a control write: on the writer's connection, between two commits and ahead
    /// of queued ingest, once the writer runs (it commits back to back under a load,
    /// and another connection waiting for SQLite's write lock got it only between two
    /// of them, after up to seconds); on a pooled connection before that (a command
    /// that never ingests, a store whose rollups are not built yet).
    async fn with_write_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        if !matches!(&*self.derived.borrow(), Some(Ok(_))) {
            return self.with_conn(f).await;
        }
        let (done, answer) = oneshot::channel();
        let job = Box::new(move |c: &mut Connection| {
            let _ = done.send(f(c));
        });
        self.writer()?
            .send(writer::WriterJob::Control(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        if matches!(result, Err(StoreError::StorageFull(_))) {
            self.note_write(&result);
        }
        result
    }

    /// Run blocking SQL on a pooled connection off the async threads. A caller that
    /// goes away (a client that hung up, a timed-out request) stops the SQL at its next
    /// progress check: a read nobody waits for must not keep a core busy.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let mut conn = self.connection()?;
        let abandoned = StopOnDrop::default();
        let stop = abandoned.0.clone();
        let (result, conn) = tokio::task::spawn_blocking(move || {
            conn.progress_handler(PROGRESS_STEPS, Some(move || stop.load(Ordering::Relaxed)));
            let result = f(&mut conn);
            conn.progress_handler(0, None::<fn() -> bool>);
            (result, conn)
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?;
        drop(abandoned);
        // Other writes (keys, objects, price books) run here: a failure from lack of
        // space counts, a success does not (most of these are reads).
        if matches!(result, Err(StoreError::StorageFull(_))) {
            self.note_write(&result);
        }
        let mut pool = self.readers.lock().unwrap();
        if pool.len() < 8 {
            pool.push(conn);
        }
        result
    }
}

/// SQLite virtual machine steps between two checks of whether a read's caller is gone
/// (about a millisecond of work; the check is one atomic load).
const PROGRESS_STEPS: std::ffi::c_int = 100_000;

/// Set when dropped: a read's caller went away before its answer (`with_conn`).
#[derive(Default)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How many pooled connections one read may use at once: one per core, at most four.
fn read_lanes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::from(&e)
    }
}

impl From<&rusqlite::Error> for StoreError {
    fn from(e: &rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
        let cause = short_cause(e);
        match e.sqlite_error_code() {
            Some(DiskFull | SystemIoFailure) => StoreError::StorageFull(cause),
            _ => StoreError::Database(cause),
        }
    }
}

/// Longest cause kept from a database error.
const MAX_CAUSE_LEN: usize = 200;

/// What went wrong, without the statement: rusqlite's text for an error in a statement
/// includes the whole SQL (400 KB for a query with 40,000 filter values), and neither
/// logs nor answers carry SQL.
fn short_cause(e: &rusqlite::Error) -> String {
    let mut text = match e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    if text.len() > MAX_CAUSE_LEN {
        let mut end = MAX_CAUSE_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Free space a store needs before it counts as writable again after a full disk.
const PROBE_BYTES: usize = 1 << 20;

/// Whether PROBE_BYTES can be written (and synced) next to the database; the scratch
/// file is removed either way.
fn room_for_a_batch(scratch: &Path) -> Result<()> {
    use std::io::Write;
    let written = std::fs::File::create(scratch).and_then(|mut file| {
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..PROBE_BYTES / chunk.len() {
            file.write_all(&chunk)?;
        }
        file.sync_all()
    });
    let _ = std::fs::remove_file(scratch);
    written.map_err(|e| StoreError::StorageFull(format!("no room for a write: {e}")))
}

fn ms_to_rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn warm_up(&self) -> Result<()> {
        self.derived().await.map(|_| ())
    }

    async fn ingest_counted(
        &self,
        workspace: WorkspaceId,
        events: Vec<PricedEvent>,
        tally: FieldTally,
    ) -> Result<IngestOutcome> {
        if events.is_empty() && tally.unknown_fields == 0 {
            return Ok(IngestOutcome::default());
        }
        let answer = self.queue_ingest(workspace, events, tally)?;
        self.hear_ingest(answer).await
    }

    fn ingest_part_size(&self) -> Option<usize> {
        Some(writer::PART_EVENTS)
    }

    async fn ingest_parts(
        &self,
        workspace: WorkspaceId,
        parts: Vec<Vec<PricedEvent>>,
        tally: FieldTally,
    ) -> Vec<Result<IngestOutcome>> {
        // Every part is queued before any is awaited: in order, and free to share a
        // commit with the others.
        let mut tally = Some(tally);
        let mut queued = Vec::with_capacity(parts.len());
        for part in parts {
            let tally = tally.take().unwrap_or_default();
            let answer = match queued.last() {
                Some(Err(e)) => Err(StoreError::clone(e)),
                _ => self.queue_ingest(workspace, part, tally),
            };
            queued.push(answer);
        }
        let mut outcomes = Vec::with_capacity(queued.len());
        for answer in queued {
            outcomes.push(match answer {
                Ok(answer) => self.hear_ingest(answer).await,
                Err(e) => Err(e),
            });
        }
        outcomes
    }

    async fn events(&self, workspace: WorkspaceId, query: EventQuery) -> Result<EventPage> {
        let derived = self.derived().await?;
        let (calls, rollups) = (derived.calls, derived.rollups);
        self.with_conn(move |c| read::events(c, &calls, Some(&rollups), workspace, &query))
            .await
    }

    async fn aggregate(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
    ) -> Result<crate::query::Answer> {
        let derived = self.derived().await?;
        let (rollups, behind) = (derived.rollups.clone(), self.catch_up_later(&derived));
        let pin = self.pin_later(&derived.rollups, workspace);
        let passes = self.first_passes.clone();
        self.with_conn(move |c| {
            let read = aggregate::Read {
                rollups: &rollups,
                passes: &passes,
                behind: &behind,
                pin: &pin,
            };
            aggregate::aggregate(c, workspace, &query, read)
        })
        .await
    }

    async fn unpriced_models(&self) -> Result<Vec<UnpricedModel>> {
        self.with_conn(read::unpriced_models).await
    }

    async fn versions_seen(
        &self,
        workspace: WorkspaceId,
        filters: crate::query::Filters,
    ) -> Result<Vec<VersionSeen>> {
        let derived = self.derived().await?;
        let (rollups, behind) = (derived.rollups.clone(), self.catch_up_later(&derived));
        self.with_conn(move |c| read::versions_seen(c, &rollups, &behind, workspace, &filters))
            .await
    }

    async fn request_values(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<RequestValues>> {
        let rollups = self.derived().await?.rollups;
        self.with_conn(move |c| read::request_values(c, &rollups, workspace, &query, limit))
            .await
    }

    async fn latencies(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<u32>> {
        let rollups = self.derived().await?.rollups;
        self.with_conn(move |c| read::latencies(c, &rollups, workspace, &query, limit))
            .await
    }

    /// The groups' latencies read on up to `READ_LANES` connections at once (each
    /// group is an index range; one at a time a versions report with a few dozen
    /// versions spent ~60 ms at 10M events on one core of two).
    async fn latency_percentiles(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
        percent: u32,
    ) -> Result<Vec<GroupLatency>> {
        let groups = latency_groups(self, workspace, query.clone()).await?;
        let rollups = self.derived().await?.rollups;
        // The rows the groups' reads apart would want.
        let newest: u64 = groups.iter().map(|g| g.calls.min(limit as u64)).sum();
        let one_pass = {
            let rollups = rollups.clone();
            self.with_conn(move |c| {
                read::latencies_in_one_pass(c, &rollups, workspace, &query, (limit, newest))
            })
            .await?
        };
        if let Some(groups) = one_pass {
            let mut out: Vec<GroupLatency> = groups
                .into_iter()
                .filter_map(|(group, latencies)| group_latency(group, latencies, percent))
                .collect();
            out.sort_by(|a, b| a.group.cmp(&b.group));
            return Ok(out);
        }
        let lanes = read_lanes().min(groups.len()).max(1);
        let per_lane = groups.len().div_ceil(lanes);
        let mut groups = groups.into_iter();
        let reads = (0..lanes).map(|_| {
            let lane: Vec<_> = groups.by_ref().take(per_lane).collect();
            let rollups = rollups.clone();
            self.with_conn(move |c| {
                let mut out = Vec::with_capacity(lane.len());
                for LatencyGroup { group, query, .. } in lane {
                    let latencies = read::latencies(c, &rollups, workspace, &query, limit)?;
                    out.extend(group_latency(group, latencies, percent));
                }
                Ok(out)
            })
        });
        let lanes = futures_util::future::try_join_all(reads).await?;
        Ok(lanes.into_iter().flatten().collect())
    }

    async fn freshness(&self, workspace: WorkspaceId) -> Result<Option<Freshness>> {
        self.with_conn(move |c| read::freshness(c, workspace)).await
    }

    async fn event_count(&self) -> Result<u64> {
        self.with_conn(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
    }

    async fn check_writable(&self) -> Result<()> {
        if !self.write_failing.load(Ordering::Relaxed) {
            return Ok(());
        }
        let sender = self.writer()?;
        // SQLite alone would say yes too early: a one-row write fits in WAL pages a failed
        // batch left behind while the disk is still full. So first room for a batch.
        let scratch = self.path.with_extension("space-probe");
        tokio::task::spawn_blocking(move || room_for_a_batch(&scratch))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
            .inspect_err(|_| self.write_failing.store(true, Ordering::Relaxed))?;
        let (done, answer) = oneshot::channel();
        // On the writer's connection, between two commits: a one-row write that must
        // find room in the WAL like any ingest.
        let probe = Box::new(move |c: &mut Connection| {
            let result = c
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('write_probe', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [now_ms().to_string()],
                )
                .map(|_| ())
                .map_err(StoreError::from);
            let _ = done.send(result);
        });
        sender
            .try_send(writer::WriterJob::OnWriter(probe))
            .map_err(|_| StoreError::Busy)?;
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.note_write(&result);
        result
    }

    async fn backup_to(&self, to: std::path::PathBuf) -> Result<u64> {
        let from = self.path.clone();
        tokio::task::spawn_blocking(move || lifecycle::backup(&from, &to))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
    }

    async fn prune_before(&self, workspace: WorkspaceId, before_ms: i64) -> Result<Removed> {
        self.on_writer(move |c, derived| retention::prune(c, derived, workspace, before_ms))
            .await
    }

    async fn raw_from(&self, workspace: WorkspaceId) -> Result<Option<i64>> {
        self.with_conn(move |c| retention::raw_from(c, workspace))
            .await
    }

    async fn erase(&self, workspace: WorkspaceId, subject: Subject) -> Result<Removed> {
        self.on_writer(move |c, derived| retention::erase(c, derived, workspace, &subject))
            .await
    }

    /// Nothing to seal: the totals are always whole. Instead, the old days that a week
    /// or a month of users ending now (and the windows before them) would read raw are
    /// pinned ahead (`aggregate::days_to_warm`), off the reads' path.
    async fn seal(&self, now_ms: i64) -> Result<u64> {
        let derived = self.derived().await?;
        let workspaces: Vec<WorkspaceId> =
            derived.rollups.read().newest_hour.keys().copied().collect();
        for workspace in workspaces {
            let days = aggregate::days_to_warm(&derived.rollups.read(), workspace, now_ms);
            if !days.is_empty() {
                tracing::debug!(
                    workspace,
                    days = days.len(),
                    "pinning old days ahead of reads"
                );
            }
            days.into_iter()
                .for_each(self.pin_later(&derived.rollups, workspace));
        }
        Ok(0)
    }

    async fn reprice_unpriced(
        &self,
        workspace: WorkspaceId,
        scope: RepriceScope,
        pricer: Pricer,
        at_ms: i64,
    ) -> Result<RepriceOutcome> {
        self.on_writer(move |c, derived| {
            reprice::reprice(c, derived, workspace, &scope, &pricer, at_ms)
        })
        .await
    }

    async fn close(&self) {
        let checkpointer = self.checkpointer.lock().unwrap().take();
        if let Some((stop, handle)) = checkpointer {
            drop(stop);
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        // Dropping the last sender ends the writer loop after it drains the queue.
        self.jobs.lock().unwrap().take();
        let handle = self.writer.lock().unwrap().take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.readers.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(store: &SqliteStore) -> bool {
        store.derived.borrow().is_some()
    }

    /// Reopened over stored events, the store builds its rollups and call index only
    /// when an event read or write needs them: control commands (keys, workspaces) on a
    /// big store answer at once, and the built state answers as it did before.
    #[tokio::test]
    async fn control_work_never_builds_the_rollups_and_the_first_event_read_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lazy.db");
        let now = now_ms();
        let store = SqliteStore::open(&path).unwrap();
        let lines: Vec<String> = (0..3)
            .map(|i| {
                format!(
                    r#"{{"externalRequestId":"c{i}","timestamp":"{}","provider":"openai","model":"gpt-4o-mini","endpointTag":"chat","status":"success","inputTokens":1000,"outputTokens":100}}"#,
                    jiff::Timestamp::from_millisecond(now - 60_000).unwrap()
                )
            })
            .collect();
        let items = lines.iter().map(|l| crate::ingest::parse_item(l)).collect();
        let book = crate::price::PriceBook::bundled().unwrap();
        let prepared = crate::ingest::prepare(items, &book, &Default::default(), now);
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        let stored = store.ingest(1, prepared.events).await.unwrap();
        assert_eq!(stored.results.len(), 3, "{stored:?}");
        store.close().await;

        let store = SqliteStore::open(&path).unwrap();
        let ws = store.create_workspace("other".into()).await.unwrap();
        store
            .create_key(
                ws.name.clone(),
                Scope::Ingest,
                "h".repeat(64),
                "br_x".into(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(store.keys(None).await.unwrap().len(), 1);
        assert!(!built(&store), "control work built the rollups");
        let query = crate::query::QueryRequest::default().check(now).unwrap();
        let answer = store.aggregate(1, query).await.unwrap();
        assert!(built(&store));
        assert_eq!(answer.totals[0].sums.requests, 3);
        assert_eq!(store.commit_seq().await.unwrap(), 1);
        store.close().await;
    }

    /// A read whose caller went away (a timed-out or hung-up request) stops: its SQL is
    /// interrupted within milliseconds instead of running on for as long as it takes.
    #[tokio::test]
    async fn a_read_nobody_waits_for_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("stop.db")).unwrap();
        let (ended, end) = std::sync::mpsc::channel();
        let forever = store.with_conn(move |c| {
            let started = std::time::Instant::now();
            // Counts to 10^12: hours of work.
            let counted = c.query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000000)
                 SELECT COUNT(*) FROM n",
                [],
                |r| r.get::<_, i64>(0),
            );
            let _ = ended.send((counted.is_err(), started.elapsed()));
            Ok(())
        });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(200), forever).await;
        assert!(waited.is_err(), "the read answered");
        let (failed, took) = end
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        assert!(failed, "the SQL ran to its end");
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
        // The next read on the pool is not interrupted.
        let one = store
            .with_conn(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(one, 1);
        store.close().await;
    }

    /// A control write made while ingest requests wait for the writer commits before
    /// them: between two commits on the writer, not after SQLite's lock came free (the
    /// writer takes it back within microseconds, and a budget's creation under a batch
    /// load took up to 2.4 s). Each queued request is a commit of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_control_write_goes_before_queued_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("control.db")).unwrap();
        store.commit_seq().await.unwrap();
        let book = crate::price::PriceBook::bundled().unwrap();
        let now = now_ms();
        let request = |r: usize| {
            let lines: Vec<String> = (0..writer::PART_EVENTS * 8)
                .map(|i| {
                    format!(
                        r#"{{"externalRequestId":"r{r}-{i}","provider":"openai","model":"gpt-4o-mini","endpointTag":"chat","userId":"u{i}","status":"success","inputTokens":1000,"outputTokens":100}}"#
                    )
                })
                .collect();
            let items = lines.iter().map(|l| crate::ingest::parse_item(l)).collect();
            crate::ingest::prepare(items, &book, &Default::default(), now).events
        };
        let requests: Vec<_> = (0..12).map(request).collect();
        let queued: Vec<_> = requests
            .into_iter()
            .map(|events| {
                store
                    .queue_ingest(1, events, FieldTally::default())
                    .unwrap()
            })
            .collect();
        let id = store
            .put_object(1, "deploy_note", None, serde_json::json!({"note": "n"}))
            .await
            .unwrap();
        assert_eq!(id, 1);
        // Which requests had committed when the write was answered, read at once.
        let early: Vec<_> = queued
            .into_iter()
            .map(|mut answer| answer.try_recv().map_err(|_| answer))
            .collect();
        let answered = early.iter().filter(|a| a.is_ok()).count();
        for answer in early {
            let outcome = match answer {
                Ok(outcome) => outcome,
                Err(answer) => answer.await.unwrap(),
            };
            assert_eq!(outcome.unwrap().results.len(), writer::PART_EVENTS * 8);
        }
        // The commit in progress when the write arrived, maybe one more: never all 12.
        assert!(answered <= 3, "{answered} of 12 requests committed first");
        store.close().await;
    }

    /// rusqlite's text for a bad statement is "{msg} in {sql} at offset N": the old
    /// mapping put the whole SQL (400 KB for 40,000 filter values) into the log.
    #[test]
    fn database_errors_carry_a_short_cause_without_sql() {
        let conn = Connection::open_in_memory().unwrap();
        let values = vec!["?"; 40_000].join(", ");
        let sql = format!("SELECT count(*) FROM no_such_table WHERE tenant IN ({values})");
        let e = conn.prepare(&sql).map(|_| ()).unwrap_err();
        assert!(
            e.to_string().contains("no_such_table WHERE"),
            "rusqlite's own text has it"
        );
        let StoreError::Database(cause) = StoreError::from(&e) else {
            panic!("not a database error: {e}");
        };
        assert!(
            !cause.contains("SELECT") && !cause.contains("WHERE"),
            "{cause}"
        );
        assert!(
            cause.len() <= MAX_CAUSE_LEN + '…'.len_utf8(),
            "{}",
            cause.len()
        );
        assert!(
            cause.contains("no_such_table") || cause.contains("variables"),
            "{cause}"
        );
    }

    #[test]
    fn a_full_disk_is_storage_full_not_a_database_error() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        assert!(matches!(
            StoreError::from(&full),
            StoreError::StorageFull(_)
        ));
        let io = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_WRITE),
            None,
        );
        assert!(matches!(StoreError::from(&io), StoreError::StorageFull(_)));
    }
}
