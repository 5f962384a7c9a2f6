//! The embedded SQLite backend: one file, WAL, a group-commit writer thread for events
//! and a small pool of reader connections for everything else.

mod aggregate;
mod read;
mod rollup;
pub mod schema;
mod writer;

use super::*;
use crate::event::PricedEvent;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Ingest jobs that may wait for the writer; beyond this, ingest answers 429.
const WRITER_QUEUE: usize = 1024;

pub struct SqliteStore {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<writer::WriterJob>>>,
    listener: writer::Listener,
    /// In-memory rollups, changed only by the writer (after each commit).
    rollups: Arc<rollup::Rollups>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    readers: Mutex<Vec<Connection>>,
    /// Set when a write failed for lack of space or an I/O error; cleared by the next
    /// write that commits (an ingest or the readiness probe).
    write_failing: AtomicBool,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SqliteStore {
    /// The writer's queue, or Closed once `close` has run.
    fn writer(&self) -> Result<mpsc::Sender<writer::WriterJob>> {
        self.jobs.lock().unwrap().clone().ok_or(StoreError::Closed)
    }

    /// Open (creating if needed) the database at `path` and start its writer.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let mut conn = Connection::open(path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn, now_ms())?;
        let rollups = Arc::new(Self::build_rollups(&mut conn)?);
        // The writer keeps SQLite's auto-checkpoint, which is what lets the WAL restart from
        // the beginning; a background thread copies frames ahead of it so those checkpoints
        // find little left to do and a commit rarely waits on one.
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let listener = writer::Listener::default();
        let writer_listener = listener.clone();
        let writer_rollups = rollups.clone();
        let writer = std::thread::Builder::new()
            .name("burnrate-writer".into())
            .spawn(move || writer::run(conn, rx, writer_listener, writer_rollups))?;
        let checkpointer = Self::start_checkpointer(path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            jobs: Mutex::new(Some(tx)),
            listener,
            rollups,
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(Some(checkpointer)),
            readers: Mutex::new(Vec::new()),
            write_failing: AtomicBool::new(false),
        })
    }

    /// The rollups, summed from every event in the file (the start's cost, logged).
    fn build_rollups(conn: &mut Connection) -> anyhow::Result<rollup::Rollups> {
        let started = std::time::Instant::now();
        let totals = rollup::Totals::rebuild(conn)
            .map_err(|e| anyhow::anyhow!("summing the stored events failed: {e}"))?;
        let cells: Vec<String> = totals
            .cell_counts()
            .iter()
            .map(|(family, grain, n)| format!("{family}/{grain:?}={n}"))
            .collect();
        tracing::info!(
            seq = totals.seq,
            ms = started.elapsed().as_millis() as u64,
            cells = %cells.join(" "),
            "rollups built from the events"
        );
        Ok(rollup::Rollups::new(totals))
    }

    /// The last commit sequence the rollups include: every read through `aggregate`
    /// answers as of exactly this many commits (or a later one).
    pub fn commit_seq(&self) -> i64 {
        self.rollups.read().seq
    }

    /// Called by a read whose snapshot is ahead of the rollups for long: another process
    /// committed to the file. The writer rebuilds them between two commits.
    fn catch_up_later(&self) -> impl Fn() + Send + 'static {
        let sender = self.writer().ok();
        let rollups = self.rollups.clone();
        move || {
            if let Some(sender) = &sender {
                let rollups = rollups.clone();
                let job = Box::new(move |c: &mut Connection| writer::catch_up(c, &rollups));
                let _ = sender.try_send(writer::WriterJob::Read(job));
            }
        }
    }

    /// Keep track of whether writes work: a storage failure marks the store unwritable
    /// (so /readyz says not ready), a committed write marks it writable again.
    fn note_write<T>(&self, result: &Result<T>) {
        match result {
            Ok(_) => self.write_failing.store(false, Ordering::Relaxed),
            Err(StoreError::StorageFull(_)) => self.write_failing.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
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

    /// Every 250 ms copy committed WAL frames into the database (PASSIVE: never blocks the
    /// writer or readers).
    fn start_checkpointer(
        path: &Path,
    ) -> anyhow::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
        let conn = Connection::open(path)?;
        schema::configure(&conn)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("burnrate-checkpoint".into())
            .spawn(move || {
                // Logged when it starts and stops failing: on a full disk every round fails.
                let mut failing = false;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_millis(250))
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
        schema::configure(&conn)?;
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

    /// Run blocking SQL on a pooled connection off the async threads.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let mut conn = self.connection()?;
        let (result, conn) = tokio::task::spawn_blocking(move || {
            let result = f(&mut conn);
            (result, conn)
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?;
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

fn key_record(r: &rusqlite::Row) -> rusqlite::Result<KeyRecord> {
    let scope: String = r.get(3)?;
    Ok(KeyRecord {
        id: r.get(0)?,
        workspace: r.get(1)?,
        prefix: r.get(2)?,
        scope: Scope::parse(&scope).unwrap_or(Scope::Read),
        name: r.get(4)?,
        created_at: ms_to_rfc3339(r.get(5)?),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(ms_to_rfc3339),
        unknown_fields: r.get::<_, Option<i64>>(7)?.unwrap_or(0) as u64,
        last_unknown_field: r.get(8)?,
    })
}

const KEY_COLUMNS: &str = "k.id, w.name, k.prefix, k.scope, k.name, k.created_at, k.revoked_at,
    q.unknown_fields, q.last_unknown_field";
/// The key tables every key listing joins.
const KEY_TABLES: &str = "api_keys k JOIN workspaces w ON w.id = k.workspace_id
    LEFT JOIN key_quality q ON q.key_id = k.id";

#[async_trait]
impl Store for SqliteStore {
    async fn ingest_counted(
        &self,
        workspace: WorkspaceId,
        events: Vec<PricedEvent>,
        tally: FieldTally,
    ) -> Result<IngestOutcome> {
        if events.is_empty() && tally.unknown_fields == 0 {
            return Ok(IngestOutcome::default());
        }
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
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.note_write(&result);
        result
    }

    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>> {
        // One indexed lookup on a cached statement takes microseconds: run it right here.
        // Handing it to the blocking pool costs more than the query and, under load, puts
        // milliseconds of queueing on every guard call.
        self.with_conn_inline(move |c| {
            Ok(c.prepare_cached(
                "SELECT k.id, k.workspace_id, k.scope, w.paused FROM api_keys k
                 JOIN workspaces w ON w.id = k.workspace_id
                 WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
            )?
            .query_row([key_hash], |r| {
                let scope: String = r.get(2)?;
                Ok(KeyInfo {
                    key_id: r.get(0)?,
                    workspace_id: r.get(1)?,
                    scope: Scope::parse(&scope).unwrap_or(Scope::Read),
                    workspace_paused: r.get(3)?,
                })
            })
            .optional()?)
        })
    }

    async fn create_workspace(&self, name: String) -> Result<Workspace> {
        self.with_conn(move |c| {
            let now = now_ms();
            let n = c.execute(
                "INSERT OR IGNORE INTO workspaces (name, paused, created_at) VALUES (?1, 0, ?2)",
                params![name, now],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("workspace {name} exists")));
            }
            Ok(Workspace {
                id: c.last_insert_rowid(),
                name,
                paused: false,
                created_at: ms_to_rfc3339(now),
            })
        })
        .await
    }

    async fn workspaces(&self) -> Result<Vec<Workspace>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT id, name, paused, created_at FROM workspaces ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(Workspace {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    paused: r.get(2)?,
                    created_at: ms_to_rfc3339(r.get(3)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn workspace(&self, name: String) -> Result<Option<Workspace>> {
        Ok(self
            .workspaces()
            .await?
            .into_iter()
            .find(|w| w.name == name))
    }

    async fn set_paused(&self, name: String, paused: bool) -> Result<()> {
        self.with_conn(move |c| {
            let n = c.execute(
                "UPDATE workspaces SET paused = ?2 WHERE name = ?1",
                params![name, paused],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("workspace {name}")));
            }
            Ok(())
        })
        .await
    }

    async fn create_key(
        &self,
        workspace: String,
        scope: Scope,
        key_hash: String,
        prefix: String,
        name: Option<String>,
    ) -> Result<KeyRecord> {
        self.with_conn(move |c| {
            let ws: i64 = c
                .query_row(
                    "SELECT id FROM workspaces WHERE name = ?1",
                    [&workspace],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("workspace {workspace}")))?;
            c.execute(
                "INSERT INTO api_keys (workspace_id, key_hash, prefix, scope, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![ws, key_hash, prefix, scope.as_str(), name, now_ms()],
            )?;
            let id = c.last_insert_rowid();
            Ok(c.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM {KEY_TABLES} WHERE k.id = ?1"),
                [id],
                key_record,
            )?)
        })
        .await
    }

    async fn keys(&self, workspace: Option<String>) -> Result<Vec<KeyRecord>> {
        self.with_conn(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM {KEY_TABLES} WHERE ?1 IS NULL OR w.name = ?1 ORDER BY k.id"
            ))?;
            let rows = stmt.query_map([workspace], key_record)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn revoke_key(&self, id_or_prefix: String) -> Result<usize> {
        self.with_conn(move |c| {
            Ok(c.execute(
                "UPDATE api_keys SET revoked_at = ?2
                 WHERE revoked_at IS NULL AND (CAST(id AS TEXT) = ?1 OR prefix = ?1)",
                params![id_or_prefix, now_ms()],
            )?)
        })
        .await
    }

    async fn claim_first_start(&self) -> Result<bool> {
        self.with_conn(|c| {
            Ok(c.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('first_start_done', '1')",
                [],
            )? == 1)
        })
        .await
    }

    async fn events(&self, workspace: WorkspaceId, query: EventQuery) -> Result<EventPage> {
        self.with_conn(move |c| read::events(c, workspace, &query))
            .await
    }

    async fn aggregate(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
    ) -> Result<crate::query::Answer> {
        let (rollups, behind) = (self.rollups.clone(), self.catch_up_later());
        self.with_conn(move |c| aggregate::aggregate(c, workspace, &query, &rollups, &behind))
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
        let rollups = self.rollups.clone();
        self.with_conn(move |c| read::versions_seen(c, &rollups, workspace, &filters))
            .await
    }

    async fn request_values(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<RequestValues>> {
        self.with_conn(move |c| read::request_values(c, workspace, &query, limit))
            .await
    }

    async fn latencies(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<u32>> {
        self.with_conn(move |c| read::latencies(c, workspace, &query, limit))
            .await
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

    async fn price_books(&self) -> Result<Vec<StoredBook>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT kind, version, body, imported_at FROM price_books ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredBook {
                    kind: r.get(0)?,
                    version: r.get(1)?,
                    body: r.get(2)?,
                    imported_at_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn save_price_book(&self, book: StoredBook) -> Result<()> {
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO price_books (kind, version, body, imported_at) VALUES (?1, ?2, ?3, ?4)",
                params![book.kind, book.version, book.body, now_ms()],
            )?;
            tx.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'price_generation'",
                [],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_price_book(&self, version: String) -> Result<usize> {
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            let removed = tx.execute("DELETE FROM price_books WHERE version = ?1", [version])?;
            if removed > 0 {
                tx.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'price_generation'",
                    [],
                )?;
            }
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn price_generation(&self) -> Result<i64> {
        self.with_conn(|c| {
            let v: String = c.query_row(
                "SELECT value FROM meta WHERE key = 'price_generation'",
                [],
                |r| r.get(0),
            )?;
            Ok(v.parse().unwrap_or(0))
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
            .try_send(writer::WriterJob::Read(probe))
            .map_err(|_| StoreError::Busy)?;
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.note_write(&result);
        result
    }

    fn set_spend_listener(&self, listener: SpendListener) {
        *self.listener.lock().unwrap() = Some(listener);
    }

    async fn aggregate_between_commits(
        &self,
        workspace: WorkspaceId,
        queries: Vec<crate::query::Query>,
        then: BetweenCommits,
    ) -> Result<()> {
        let sender = self.writer()?;
        let (done, finished) = oneshot::channel();
        let rollups = self.rollups.clone();
        let read = Box::new(move |c: &mut Connection| {
            // On the writer's thread: nothing else would bring the rollups up to date.
            writer::catch_up(c, &rollups);
            let rows: Result<Vec<_>> = queries
                .iter()
                .map(|q| aggregate::aggregate(c, workspace, q, &rollups, &|| {}))
                .collect();
            then(rows);
            let _ = done.send(());
        });
        // Waits for room rather than failing: loads are rare and must happen.
        sender
            .send(writer::WriterJob::Read(read))
            .await
            .map_err(|_| StoreError::Closed)?;
        finished.await.map_err(|_| StoreError::Closed)
    }

    async fn put_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: Option<i64>,
        body: serde_json::Value,
    ) -> Result<i64> {
        self.with_conn(move |c| {
            let now = now_ms();
            let text = body.to_string();
            match id {
                None => {
                    // The next id of this workspace's kind, taken in the same transaction.
                    let tx = c.transaction()?;
                    let id: i64 = tx.query_row(
                        "INSERT INTO object_ids (workspace_id, kind, last_id) VALUES (?1, ?2, 1)
                         ON CONFLICT (workspace_id, kind) DO UPDATE SET last_id = last_id + 1
                         RETURNING last_id",
                        params![workspace, kind],
                        |r| r.get(0),
                    )?;
                    tx.execute(
                        "INSERT INTO objects (workspace_id, kind, id, body, created_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![workspace, kind, id, text, now],
                    )?;
                    tx.commit()?;
                    Ok(id)
                }
                Some(id) => {
                    let n = c.execute(
                        "UPDATE objects SET body = ?4, updated_ms = ?5
                         WHERE id = ?1 AND workspace_id = ?2 AND kind = ?3",
                        params![id, workspace, kind, text, now],
                    )?;
                    if n == 0 {
                        return Err(StoreError::NotFound(format!("{kind} {id}")));
                    }
                    Ok(id)
                }
            }
        })
        .await
    }

    async fn objects(
        &self,
        workspace: Option<WorkspaceId>,
        kind: &'static str,
    ) -> Result<Vec<StoredObject>> {
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, workspace_id, body, created_ms, updated_ms FROM objects
                 WHERE kind = ?1 AND (?2 IS NULL OR workspace_id = ?2) ORDER BY workspace_id, id",
            )?;
            let rows = stmt.query_map(params![kind, workspace], |r| {
                let body: String = r.get(2)?;
                Ok(StoredObject {
                    id: r.get(0)?,
                    workspace: r.get(1)?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    created_ms: r.get(3)?,
                    updated_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn delete_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: i64,
    ) -> Result<bool> {
        self.with_conn(move |c| {
            Ok(c.execute(
                "DELETE FROM objects WHERE id = ?1 AND workspace_id = ?2 AND kind = ?3",
                params![id, workspace, kind],
            )? == 1)
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
