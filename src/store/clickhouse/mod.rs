//! The ClickHouse backend: stateless burnrate nodes over one ClickHouse server or
//! cluster, through its HTTP interface (`reqwest`). Events are stored one row per
//! attempt and resolved into calls at read time; control data lives in ClickHouse too.
//!
//! What is exact where (docs/scale-out.md): on one node, ingest decides each event's
//! outcome (Inserted / Attempt / Duplicate) and cost changes from the call's stored
//! attempts read under the node's write lock, so racing requests on one node never
//! double count. Two nodes racing on one call may both store an attempt: the stored
//! data stays right (reads pick one winner per call and count distinct attempts), but
//! both replies may say Inserted and both report cost changes; the budget counters
//! re-converge from reads at the next reload (2 s with several nodes).

mod cells;
mod control;
mod http;
mod ingest;
mod lifecycle;
mod read;
mod reprice;
mod retention;
mod schema;

use super::*;
use crate::event::PricedEvent;
use http::Client;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A parsed `clickhouse://[user[:password]@]host:port/database[?cluster=NAME&shards=...]`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickhouseUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    /// `host:port` of the HTTP interface this node talks to.
    pub host: String,
    pub database: String,
    pub cluster: Option<String>,
    /// HTTP `host:port` of one node per shard, where the local tables are created at open
    /// (without a Keeper there is no ON CLUSTER); defaults to `host` alone.
    pub shards: Vec<String>,
}

impl std::fmt::Debug for ClickhouseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.write_str(&self.describe())
    }
}

/// Names that go into SQL as identifiers: database and cluster.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(['/', '@', '?']) && port.parse::<u16>().is_ok()
    })
}

impl ClickhouseUrl {
    /// The part after `clickhouse://`.
    pub fn parse(rest: &str) -> anyhow::Result<ClickhouseUrl> {
        let example = "clickhouse://[user[:password]@]host:port/database[?cluster=NAME]";
        let (main, params) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, location) = match main.rsplit_once('@') {
            Some((auth, location)) => (Some(auth), location),
            None => (None, main),
        };
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(a.to_string()), None),
            },
        };
        let (host, database) = location
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("a ClickHouse store URL names a database: {example}"))?;
        anyhow::ensure!(
            is_host_port(host),
            "`{host}` is not host:port; use {example}"
        );
        anyhow::ensure!(
            is_identifier(database),
            "the database name must be letters, digits and _ (not starting with a digit); use {example}"
        );
        let mut url = ClickhouseUrl {
            user,
            password,
            host: host.to_string(),
            database: database.to_string(),
            cluster: None,
            shards: vec![host.to_string()],
        };
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cluster", name)) => {
                    anyhow::ensure!(
                        is_identifier(name),
                        "the cluster name must be letters, digits and _"
                    );
                    url.cluster = Some(name.to_string());
                }
                Some(("shards", list)) => {
                    url.shards = list.split(';').map(str::to_string).collect();
                    if let Some(bad) = url.shards.iter().find(|s| !is_host_port(s)) {
                        anyhow::bail!("shards: `{bad}` is not host:port");
                    }
                }
                _ => anyhow::bail!(
                    "unknown ClickHouse store URL parameter `{pair}`; use cluster=NAME (and shards=host:port;host:port)"
                ),
            }
        }
        anyhow::ensure!(
            url.cluster.is_some() || url.shards == [url.host.clone()],
            "shards= needs cluster=NAME"
        );
        Ok(url)
    }

    /// The URL for logs and errors: the user but never the password.
    pub fn describe(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let cluster = self
            .cluster
            .as_ref()
            .map(|c| format!("?cluster={c}"))
            .unwrap_or_default();
        format!(
            "clickhouse://{user}{}/{}{cluster}",
            self.host, self.database
        )
    }
}

/// Commit sequences of this node: the wall clock in microseconds, strictly increasing,
/// never below what the store already holds (read at open). Across nodes they order
/// commits as well as the clocks agree; an answer's `seen` is this node's newest commit.
struct Sequencer {
    last: Mutex<u64>,
}

impl Sequencer {
    fn next(&self) -> u64 {
        let now = jiff::Timestamp::now().as_microsecond().max(0) as u64;
        let mut last = self.last.lock().unwrap();
        *last = (*last + 1).max(now);
        *last
    }

    fn last(&self) -> u64 {
        *self.last.lock().unwrap()
    }
}

#[derive(Clone)]
pub struct ClickhouseStore {
    client: Client,
    db: String,
    seq: Arc<Sequencer>,
    /// Held for writing by each commit (read its calls' attempts, decide, insert) and for
    /// reading by each read, so on this node an answer holds every acknowledged commit
    /// up to its `seen` and none in flight.
    lock: Arc<tokio::sync::RwLock<()>>,
    /// Ingest requests waiting for the next commit (group commit, as the SQLite writer).
    queue: Arc<Mutex<Queue>>,
    /// Where it was opened: an erasure's mutation runs on every shard's local table.
    url: ClickhouseUrl,
}

/// One ingest request waiting to be committed.
struct Job {
    workspace: WorkspaceId,
    events: Vec<PricedEvent>,
    tally: FieldTally,
    reply: tokio::sync::oneshot::Sender<Result<IngestOutcome>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A committer task is draining `jobs`.
    committing: bool,
}

/// The most events one commit takes (the rest wait for the next): bounds the size of its
/// statements and of a failed commit's retry one request at a time.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

impl ClickhouseStore {
    /// Queue the request for the next commit and wait for its outcome. Every request
    /// that arrives while a commit runs joins the next one, so concurrent requests cost
    /// one read and one insert per table together, not each (each is several round
    /// trips, milliseconds apiece). The committer is a task of its own: a request that
    /// is cancelled never stops a commit that carries other requests.
    async fn ingest_queued(
        &self,
        workspace: WorkspaceId,
        events: Vec<PricedEvent>,
        tally: FieldTally,
    ) -> Result<IngestOutcome> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().unwrap();
            queue.jobs.push(Job {
                workspace,
                events,
                tally,
                reply,
            });
            !std::mem::replace(&mut queue.committing, true)
        };
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.commit_queued().await });
        }
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::Database(
                "clickhouse: the commit stopped".into(),
            ))
        })
    }

    /// Commit queued requests until none is left.
    async fn commit_queued(&self) {
        loop {
            let jobs = {
                let mut queue = self.queue.lock().unwrap();
                if queue.jobs.is_empty() {
                    queue.committing = false;
                    return;
                }
                let mut events = 0;
                let take = queue
                    .jobs
                    .iter()
                    .take_while(|j| {
                        events += j.events.len();
                        events <= MAX_EVENTS_PER_COMMIT
                    })
                    .count()
                    .max(1);
                queue.jobs.drain(..take).collect::<Vec<_>>()
            };
            let _write = self.lock.write().await;
            self.commit(jobs).await;
        }
    }

    /// One commit per workspace of `jobs` (in arrival order); when a commit of several
    /// requests fails, each is committed alone, so one bad request (an hour past i64)
    /// gets its own error and the others are stored.
    async fn commit(&self, jobs: Vec<Job>) {
        let mut by_workspace: BTreeMap<WorkspaceId, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            by_workspace.entry(job.workspace).or_default().push(job);
        }
        for (ws, jobs) in by_workspace {
            let parts: Vec<ingest::Part> = jobs
                .iter()
                .map(|j| ingest::Part {
                    events: &j.events,
                    tally: &j.tally,
                })
                .collect();
            match ingest::ingest_parts(self, ws, &parts).await {
                Ok(outcomes) => {
                    for (job, outcome) in jobs.into_iter().zip(outcomes) {
                        let _ = job.reply.send(Ok(outcome));
                    }
                }
                Err(e) if jobs.len() == 1 => {
                    let _ = jobs.into_iter().next().map(|j| j.reply.send(Err(e)));
                }
                Err(_) => {
                    for job in jobs {
                        let part = ingest::Part {
                            events: &job.events,
                            tally: &job.tally,
                        };
                        let outcome = ingest::ingest_parts(self, ws, &[part])
                            .await
                            .map(|mut o| o.remove(0));
                        let _ = job.reply.send(outcome);
                    }
                }
            }
        }
    }
}

impl ClickhouseStore {
    /// Connect, create the database and tables on every listed shard (idempotent), make
    /// sure the `default` workspace exists and pick up the newest commit sequence.
    pub fn open(url: &ClickhouseUrl) -> anyhow::Result<ClickhouseStore> {
        let url = url.clone();
        // `open` is synchronous and may be called on a runtime's thread: set up on a
        // thread of our own with its own small runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(Self::setup(&url))?;
            let client = Self::client(&url, &url.host)?;
            Ok(ClickhouseStore {
                client,
                db: url.database.clone(),
                seq: Arc::new(Sequencer {
                    last: Mutex::new(rt.block_on(Self::newest_seq(&url))?),
                }),
                lock: Arc::new(tokio::sync::RwLock::new(())),
                queue: Arc::default(),
                url,
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("opening the ClickHouse store panicked"))?
    }

    fn client(url: &ClickhouseUrl, host: &str) -> Result<Client> {
        Client::new(
            host,
            url.user.clone(),
            url.password.clone(),
            url.cluster.is_some(),
        )
    }

    async fn setup(url: &ClickhouseUrl) -> anyhow::Result<()> {
        let db = &url.database;
        for host in &url.shards {
            let client = Self::client(url, host)?;
            client
                .execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
                .await
                .map_err(|e| anyhow::anyhow!("{host}: {e}"))?;
            for table in schema::ALL {
                for statement in schema::create(db, table, url.cluster.as_deref()) {
                    client
                        .execute(&statement)
                        .await
                        .map_err(|e| anyhow::anyhow!("{host}: creating {}: {e}", table.name))?;
                }
            }
            Self::upgrade(&client, db, url.cluster.is_some())
                .await
                .map_err(|e| anyhow::anyhow!("{host}: upgrading the tables: {e}"))?;
            Self::ensure_by_hour(&client, db, url.cluster.as_deref())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("{host}: making {}: {e}", schema::EVENTS_BY_HOUR.name)
                })?;
        }
        let client = Self::client(url, &url.host)?;
        control::ensure_default_workspace(&client, db).await?;
        Ok(())
    }

    /// Add the columns of `schema::UPGRADES` a table of this server lacks (its local and
    /// Distributed tables in cluster mode).
    async fn upgrade(client: &Client, db: &str, cluster: bool) -> Result<()> {
        for (table, column, kind) in schema::UPGRADES {
            let mut names = vec![table.name.to_string()];
            if cluster {
                names.push(format!("{}_local", table.name));
            }
            for name in names {
                let rows = client
                    .select(&format!(
                        "SELECT count() FROM system.columns WHERE database = {} AND table = {} AND name = {}",
                        http::quote(db),
                        http::quote(&name),
                        http::quote(column)
                    ))
                    .await?;
                if rows.first().map_or(Ok(0), |r| num::<u64>(r, 0))? == 0 {
                    client
                        .execute(&format!(
                            "ALTER TABLE {db}.{name} ADD COLUMN {column} {kind}"
                        ))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// How long the fill of `EVENTS_BY_HOUR` at an upgrade may take (10M events: 17 s
    /// on 2 cores).
    const FILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

    /// Make this server's `EVENTS_BY_HOUR` (its shard-local table in cluster mode) if it
    /// has none, filled from its `EVENTS` rows, and `SPANNING` with the calls among them
    /// whose attempts lie in more than one hour. The copy is filled under the name
    /// `<copy>_filling` and renamed when whole, so a node stopped while filling leaves no
    /// partial copy (the next open drops it and fills again). Of two nodes upgrading at
    /// once, one may drop the other's fill; that node's open then fails and a restart
    /// finds the copy made. Every node must run this version before any writes again:
    /// an older node writes `EVENTS` only (docs/scale-out.md, upgrades).
    async fn ensure_by_hour(client: &Client, db: &str, cluster: Option<&str>) -> Result<()> {
        let table = &schema::EVENTS_BY_HOUR;
        let local = |name: &str| match cluster {
            Some(_) => format!("{name}_local"),
            None => name.to_string(),
        };
        let by_hour = local(table.name);
        let exists = || async {
            let rows = client
                .select(&format!(
                    "SELECT count() FROM system.tables WHERE database = {} AND name = {}",
                    http::quote(db),
                    http::quote(&by_hour)
                ))
                .await?;
            Ok::<bool, StoreError>(rows.first().map_or(Ok(0), |r| num::<u64>(r, 0))? > 0)
        };
        if !exists().await? {
            // One name for every node's fill: a fill a stopped node left is dropped here
            // (as is, rarely, one another node is running: its rename then fails and
            // its open reports it).
            let filling = format!("{by_hour}_filling");
            let events = local(schema::EVENTS.name);
            client
                .execute(&format!("DROP TABLE IF EXISTS {db}.{filling}"))
                .await?;
            client
                .execute(&schema::create_local_as(db, table, &filling))
                .await?;
            let names = schema::column_names(&schema::EVENTS).join(", ");
            client
                .insert_select_within(
                    &format!(
                        "INSERT INTO {db}.{filling} SELECT {names}, intDiv(ts, {})
                     FROM {db}.{events}",
                        cells::HOUR_MS
                    ),
                    Self::FILL_TIMEOUT,
                )
                .await?;
            client
                .insert_select_within(
                    &format!(
                        "INSERT INTO {db}.{} SELECT ws, idless, id, arrayJoin(hours) FROM
                       (SELECT ws, idless, id, groupUniqArray(intDiv(ts, {})) AS hours
                        FROM {db}.{events} GROUP BY ws, idless, id HAVING length(hours) > 1)",
                        local(schema::SPANNING.name),
                        cells::HOUR_MS
                    ),
                    Self::FILL_TIMEOUT,
                )
                .await?;
            let renamed = client
                .execute(&format!("RENAME TABLE {db}.{filling} TO {db}.{by_hour}"))
                .await;
            if let Err(e) = renamed {
                client
                    .execute(&format!("DROP TABLE IF EXISTS {db}.{filling}"))
                    .await?;
                // Another node's copy was renamed first, or this one failed.
                if !exists().await? {
                    return Err(e);
                }
            }
        }
        if let Some(cluster) = cluster {
            for statement in schema::create(db, table, Some(cluster)) {
                client.execute(&statement).await?;
            }
        }
        Ok(())
    }

    async fn newest_seq(url: &ClickhouseUrl) -> anyhow::Result<u64> {
        let client = Self::client(url, &url.host)?;
        let db = &url.database;
        let rows = client
            .select(&format!("SELECT max(seq) FROM {db}.events"))
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// `db.table` as statements name it.
    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.db)
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn ms_to_rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A field of an answer row as a number; a malformed one is a database error.
fn num<T: std::str::FromStr>(row: &[String], i: usize) -> Result<T> {
    row.get(i)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Database(format!("clickhouse: unexpected value in column {i}")))
}

fn text(row: &[String], i: usize) -> String {
    row.get(i).cloned().unwrap_or_default()
}

/// '' is how a missing optional text is stored.
fn optional(row: &[String], i: usize) -> Option<String> {
    row.get(i).filter(|s| !s.is_empty()).cloned()
}

#[async_trait]
impl EventStore for ClickhouseStore {
    async fn ingest_counted(
        &self,
        workspace: WorkspaceId,
        events: Vec<PricedEvent>,
        tally: FieldTally,
    ) -> Result<IngestOutcome> {
        self.ingest_queued(workspace, events, tally).await
    }

    async fn events(&self, workspace: WorkspaceId, query: EventQuery) -> Result<EventPage> {
        let _read = self.lock.read().await;
        read::events(self, workspace, query).await
    }

    async fn aggregate(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
    ) -> Result<crate::query::Answer> {
        let _read = self.lock.read().await;
        let seen = self.seq.last();
        let mut answer = read::aggregate(self, workspace, &query).await?;
        answer.seen = seen;
        Ok(answer)
    }

    async fn unpriced_models(&self) -> Result<Vec<UnpricedModel>> {
        read::unpriced_models(self).await
    }

    async fn versions_seen(
        &self,
        workspace: WorkspaceId,
        filters: crate::query::Filters,
    ) -> Result<Vec<VersionSeen>> {
        read::versions_seen(self, workspace, &filters).await
    }

    async fn request_values(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<RequestValues>> {
        let _read = self.lock.read().await;
        read::request_values(self, workspace, &query, limit).await
    }

    async fn latencies(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<u32>> {
        let _read = self.lock.read().await;
        read::latencies(self, workspace, &query, limit).await
    }

    async fn latency_percentiles(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
        percent: u32,
    ) -> Result<Vec<GroupLatency>> {
        let _read = self.lock.read().await;
        read::latency_percentiles(self, workspace, &query, limit, percent).await
    }

    async fn stored_ids(&self, workspace: WorkspaceId, ids: Vec<String>) -> Result<Vec<String>> {
        ingest::stored_ids(self, workspace, &ids).await
    }

    async fn freshness(&self, workspace: WorkspaceId) -> Result<Option<Freshness>> {
        let _read = self.lock.read().await;
        read::freshness(self, workspace).await
    }

    async fn event_count(&self) -> Result<u64> {
        let _read = self.lock.read().await;
        read::event_count(self).await
    }

    async fn check_writable(&self) -> Result<()> {
        self.client.select("SELECT 1").await.map(|_| ())
    }

    async fn backup_to(&self, _to: std::path::PathBuf) -> Result<u64> {
        Err(StoreError::Conflict(
            "a ClickHouse store is backed up with ClickHouse's own tools (BACKUP, clickhouse-backup); burnrate backup copies the embedded store".into(),
        ))
    }

    async fn prune_before(&self, workspace: WorkspaceId, before_ms: i64) -> Result<Removed> {
        let _write = self.lock.write().await;
        retention::prune(self, workspace, before_ms).await
    }

    async fn raw_from(&self, workspace: WorkspaceId) -> Result<Option<i64>> {
        Ok(retention::state(self, workspace).await?.raw_from)
    }

    async fn erase(&self, workspace: WorkspaceId, subject: Subject) -> Result<Removed> {
        let _write = self.lock.write().await;
        lifecycle::erase(self, workspace, &subject).await
    }

    async fn reprice_unpriced(
        &self,
        workspace: WorkspaceId,
        scope: RepriceScope,
        pricer: Pricer,
        at_ms: i64,
    ) -> Result<RepriceOutcome> {
        let _write = self.lock.write().await;
        reprice::reprice(self, workspace, &scope, &pricer, at_ms).await
    }

    async fn seal(&self, now_ms: i64) -> Result<u64> {
        // A prune that died while deleting is finished here (an hour later).
        retention::resume_stale(self).await?;
        let sealed = cells::seal(self, now_ms).await?;
        let dropped = cells::drop_superseded(self, now_ms).await?;
        if dropped > 0 {
            tracing::info!(hours = dropped, "dropped superseded cell generations");
        }
        Ok(sealed)
    }

    async fn close(&self) {}
}

#[async_trait]
impl ControlStore for ClickhouseStore {
    /// Two reads: a server asks only for a key its key table (`keytable`) lacks, at a
    /// bounded rate; the CLI once per command.
    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>> {
        control::authenticate(self, &key_hash).await
    }
    async fn create_workspace(&self, name: String) -> Result<Workspace> {
        // Not under the write lock: the name's claim waits (control::claim_first).
        control::create_workspace(self, &name).await
    }
    async fn workspaces(&self) -> Result<Vec<Workspace>> {
        control::workspaces(self).await
    }
    async fn workspace(&self, name: String) -> Result<Option<Workspace>> {
        Ok(control::workspaces(self)
            .await?
            .into_iter()
            .find(|w| w.name == name))
    }
    async fn set_paused(&self, name: String, paused: bool) -> Result<()> {
        let _write = self.lock.write().await;
        control::set_paused(self, &name, paused).await
    }
    async fn create_key(
        &self,
        workspace: String,
        scope: Scope,
        key_hash: String,
        prefix: String,
        name: Option<String>,
    ) -> Result<KeyRecord> {
        let _write = self.lock.write().await;
        control::create_key(self, &workspace, scope, key_hash, prefix, name).await
    }
    async fn keys(&self, workspace: Option<String>) -> Result<Vec<KeyRecord>> {
        control::keys(self, workspace.as_deref()).await
    }
    async fn revoke_key(&self, id_or_prefix: String) -> Result<usize> {
        let _write = self.lock.write().await;
        control::revoke_key(self, &id_or_prefix).await
    }
    async fn live_keys(&self) -> Result<Vec<LiveKey>> {
        control::live_keys(self).await
    }
    async fn key_generation(&self) -> Result<i64> {
        control::key_generation(self).await
    }
    async fn claim_first_start(&self) -> Result<bool> {
        control::claim(self, "first_start").await
    }
    async fn price_books(&self) -> Result<Vec<StoredBook>> {
        control::price_books(self).await
    }
    async fn save_price_book(&self, book: StoredBook) -> Result<()> {
        let _write = self.lock.write().await;
        control::save_price_book(self, book).await
    }
    async fn remove_price_book(&self, version: String) -> Result<usize> {
        let _write = self.lock.write().await;
        control::remove_price_book(self, &version).await
    }
    async fn price_generation(&self) -> Result<i64> {
        control::price_generation(self).await
    }
    async fn put_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: Option<i64>,
        body: serde_json::Value,
    ) -> Result<i64> {
        let _write = self.lock.write().await;
        control::put_object(self, workspace, kind, id, body).await
    }
    async fn objects(
        &self,
        workspace: Option<WorkspaceId>,
        kind: &'static str,
    ) -> Result<Vec<StoredObject>> {
        control::objects(self, workspace, kind).await
    }
    async fn delete_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: i64,
    ) -> Result<bool> {
        let _write = self.lock.write().await;
        control::delete_object(self, workspace, kind, id).await
    }
    async fn stored_keys(&self) -> Result<Vec<StoredKey>> {
        control::stored_keys(self).await
    }
    async fn copy_key(&self, key: StoredKey) -> Result<bool> {
        let _write = self.lock.write().await;
        control::copy_key(self, key).await
    }
    async fn every_object(&self) -> Result<Vec<KindedObject>> {
        control::every_object(self).await
    }
    async fn copy_object(&self, kind: String, object: StoredObject) -> Result<()> {
        let _write = self.lock.write().await;
        control::copy_object(self, kind, object).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_credentials_host_database_and_cluster() {
        let u = ClickhouseUrl::parse("ann:s3cret@ch1:8123/burnrate?cluster=prod").unwrap();
        assert_eq!(
            (
                u.user.as_deref(),
                u.password.as_deref(),
                u.host.as_str(),
                u.database.as_str(),
                u.cluster.as_deref()
            ),
            (
                Some("ann"),
                Some("s3cret"),
                "ch1:8123",
                "burnrate",
                Some("prod")
            )
        );
        assert_eq!(u.shards, vec!["ch1:8123"]);
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(
            u.describe(),
            "clickhouse://ann@ch1:8123/burnrate?cluster=prod"
        );
        let u = ClickhouseUrl::parse("h:1/db?cluster=c&shards=h:1;g:2").unwrap();
        assert_eq!(u.shards, vec!["h:1", "g:2"]);
    }

    #[test]
    fn bad_clickhouse_urls_are_refused_naming_the_part() {
        for (url, says) in [
            ("h:8123", "names a database"),
            ("h/db", "is not host:port"),
            ("h:8123/db;drop", "database name"),
            ("h:8123/db?cluster=a b", "cluster name"),
            ("h:8123/db?user=x", "unknown ClickHouse store URL parameter"),
            ("h:8123/db?cluster=c&shards=nope", "not host:port"),
        ] {
            let e = ClickhouseUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
