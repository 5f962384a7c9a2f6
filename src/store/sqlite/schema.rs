//! The SQLite schema and connection settings.

use rusqlite::Connection;

/// 3: `events` has no UNIQUE (workspace_id, external_request_id); the writer's call index
/// dedupes. 2: control objects are numbered per workspace and kind (`objects` keyed by
/// (workspace, kind, id), `object_ids` the sequences); 1 had one rowid for all kinds.
pub const SCHEMA_VERSION: i64 = 3;
/// 7: rollups live in memory (rebuilt from the events at open); a file of an older
/// version has rollup tables, dropped once.
const ROLLUPS_VERSION: &str = "7";

/// Dictionary kinds: repeated strings are stored once in `dims` and referenced by id,
/// which keeps rows small and GROUP BY on integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DimKind {
    Provider = 1,
    Model = 2,
    Endpoint = 3,
    PromptVersion = 4,
    Tenant = 5,
    User = 6,
    ErrorCode = 7,
    PriceEntry = 8,
    PriceBook = 9,
}

pub const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workspaces (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS dims (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (kind, value)
);
-- The last id given to each (workspace, kind) of control object: a budget's ids run
-- 1, 2, 3 whatever channels or alerts are created between, and are never reused.
CREATE TABLE IF NOT EXISTS object_ids (
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    kind TEXT NOT NULL,
    last_id INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, kind)
);
-- Per API key: how many unknown event fields it sent (misspellings such as tenantID),
-- and the last one; counted by the writer with the events.
CREATE TABLE IF NOT EXISTS key_quality (
    key_id INTEGER PRIMARY KEY,
    unknown_fields INTEGER NOT NULL,
    last_unknown_field TEXT,
    last_unknown_ms INTEGER
);
-- Retention's pruned history: the sums of raw events deleted by retention, per hour and
-- every rollup dimension (0 = missing), in rollup::MEASURES order. Tenant and user are
-- kept so an erasure can take a person's share out exactly. Added into the in-memory
-- rollups at open; several rows may share a key (a late event pruned by a later pass).
CREATE TABLE IF NOT EXISTS pruned_cells (
    workspace_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    environment INTEGER NOT NULL,
    data_mode INTEGER NOT NULL,
    status INTEGER NOT NULL,
    provider INTEGER NOT NULL,
    model INTEGER NOT NULL,
    endpoint INTEGER NOT NULL,
    prompt_version INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    user INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL,
    priced INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    latency_sum INTEGER NOT NULL,
    latency_count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    usage_missing INTEGER NOT NULL,
    idless INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pruned_by_tenant ON pruned_cells (workspace_id, tenant);
CREATE INDEX IF NOT EXISTS pruned_by_user ON pruned_cells (workspace_id, user);
-- When each prompt version of the pruned events was first and last seen.
CREATE TABLE IF NOT EXISTS pruned_versions (
    workspace_id INTEGER NOT NULL,
    endpoint INTEGER NOT NULL,
    prompt_version INTEGER NOT NULL,
    environment INTEGER NOT NULL,
    data_mode INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, endpoint, prompt_version, environment, data_mode)
);
-- Per workspace, from when raw events exist (the end of the pruned range, a UTC day).
CREATE TABLE IF NOT EXISTS raw_from (
    workspace_id INTEGER PRIMARY KEY,
    raw_from_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS price_books (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    body TEXT NOT NULL,
    imported_at INTEGER NOT NULL
);
"#;

/// One row per logical call (workspace, externalRequestId). Times in ms since the epoch,
/// money in integer nano-USD, strings as dims ids. Which row holds a call is the writer's
/// in-memory call index (`calls.rs`), not a UNIQUE index: see there for why.
fn events_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL,
    external_request_id TEXT NOT NULL,
    idless INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    attempt_mask INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    provider INTEGER NOT NULL,
    model INTEGER NOT NULL,
    endpoint INTEGER NOT NULL,
    prompt_version INTEGER,
    tenant INTEGER,
    user INTEGER,
    input_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    image_count INTEGER NOT NULL,
    latency_ms INTEGER,
    status INTEGER NOT NULL,
    error_code INTEGER,
    data_mode INTEGER NOT NULL,
    environment INTEGER NOT NULL,
    operation INTEGER NOT NULL,
    service_tier INTEGER NOT NULL,
    usage_missing INTEGER NOT NULL,
    cost_nanos INTEGER,
    cost_source INTEGER,
    price_entry INTEGER,
    price_book INTEGER,
    tags TEXT,
    repriced_at INTEGER
);"
    )
}

/// The events' indexes (after the table, and again after a table rebuild).
const EVENT_INDEXES: &str =
    "CREATE INDEX IF NOT EXISTS events_by_time ON events (workspace_id, ts);
-- One endpoint's prompt version in a window, newest first, with its latency and the
-- default filters in the index: p95 latency and the gate read it without a window scan.
CREATE INDEX IF NOT EXISTS events_by_version
    ON events (workspace_id, endpoint, prompt_version, ts, environment, data_mode, latency_ms);";

/// Control objects (budgets, rate caps, channels, alerts, ...): JSON bodies with an id
/// per workspace and kind.
fn objects_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
            kind TEXT NOT NULL,
            id INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, kind, id)
        );"
    )
}

/// Schema 1 -> 2: rebuild `objects` keyed per kind; every object keeps its id, and each
/// (workspace, kind) sequence continues after its largest id.
fn number_objects_per_kind(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(&objects_ddl("objects_v2"))?;
    tx.execute_batch(
        "INSERT INTO objects_v2 (workspace_id, kind, id, body, created_ms, updated_ms)
             SELECT workspace_id, kind, id, body, created_ms, updated_ms FROM objects;
         DROP TABLE objects;
         ALTER TABLE objects_v2 RENAME TO objects;
         INSERT OR REPLACE INTO object_ids (workspace_id, kind, last_id)
             SELECT workspace_id, kind, MAX(id) FROM objects GROUP BY workspace_id, kind;",
    )
}

/// Schema 2 -> 3: rebuild `events` without its UNIQUE constraint (SQLite cannot drop a
/// table constraint in place); rows keep their ids.
fn drop_unique_call_index(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(&events_ddl("events_v3"))?;
    tx.execute_batch(
        "INSERT INTO events_v3 SELECT * FROM events;
         DROP TABLE events;
         ALTER TABLE events_v3 RENAME TO events;",
    )?;
    tx.execute_batch(EVENT_INDEXES)
}

/// Settings for every connection. synchronous=FULL: each commit is fsynced, so a 2xx
/// survives power loss; group commit keeps that affordable (one fsync per batch of
/// requests). NORMAL would risk the last commits on power loss.
///
/// Memory: each connection keeps its own page cache of `cache_mib` (the writer's
/// inserts reuse index pages; readers mostly scan the window's raw rows once, which the
/// OS's file cache serves), and the file is not memory-mapped: a mapping counts every
/// page a scan touched in the server's resident memory, per connection, which at 1M
/// calls was most of a 1 GB RSS.
pub fn configure(conn: &Connection, cache_mib: u32) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -{};
         PRAGMA temp_store = MEMORY;
         PRAGMA mmap_size = 0;",
        cache_mib * 1024
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Page cache of the writer's connection, and of each reader's.
pub const WRITER_CACHE_MIB: u32 = 64;
pub const READER_CACHE_MIB: u32 = 8;
/// Page cache of the writer's connection while it builds the rollups and the call index
/// at open (one scan of every event: a cache would only keep the last pages read).
pub const BUILD_CACHE_MIB: u32 = 2;

/// Create the schema and the `default` workspace if they are missing.
pub fn migrate(conn: &mut Connection, now_ms: i64) -> rusqlite::Result<()> {
    // IMMEDIATE: a second process opening an old file waits here, then finds it migrated
    // (a deferred transaction could read version 1 beside the first and fail to upgrade).
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(DDL)?;
    tx.execute_batch(&events_ddl("events"))?;
    tx.execute_batch(EVENT_INDEXES)?;
    tx.execute_batch(&objects_ddl("objects"))?;
    let version: Option<i64> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .and_then(|v| v.parse().ok());
    // When an unpriced call was priced later (`prices reprice`): the last column of
    // `events_ddl`, added to older files first (so a rebuild's `SELECT *` lines up).
    let has_repriced: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('events') WHERE name = 'repriced_at'",
        [],
        |r| r.get(0),
    )?;
    if !has_repriced {
        tx.execute_batch("ALTER TABLE events ADD COLUMN repriced_at INTEGER;")?;
    }
    let mut rebuilt_events = false;
    match version {
        None => {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('price_generation', '0')",
                [SCHEMA_VERSION.to_string()],
            )?;
        }
        Some(old) if old < SCHEMA_VERSION => {
            if old < 2 {
                number_objects_per_kind(&tx)?;
            }
            drop_unique_call_index(&tx)?;
            rebuilt_events = true;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                [SCHEMA_VERSION.to_string()],
            )?;
        }
        Some(_) => {}
    }
    tx.execute(
        "INSERT OR IGNORE INTO workspaces (name, paused, created_at) VALUES ('default', 0, ?1)",
        [now_ms],
    )?;
    // Bumped by every ingest commit: which commits an answer includes.
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('commit_seq', '0')",
        [],
    )?;
    // Rollups are derived from the events and kept in memory: drop the tables of older
    // versions.
    let rollups: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'rollups_version'",
            [],
            |r| r.get(0),
        )
        .ok();
    if rollups.as_deref() != Some(ROLLUPS_VERSION) {
        let old_tables: Vec<String> = tx
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND (name LIKE 'rollup\\_%' ESCAPE '\\' OR name = 'versions_seen')")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for table in old_tables {
            tx.execute_batch(&format!("DROP TABLE \"{table}\";"))?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollups_version', ?1)",
            [ROLLUPS_VERSION],
        )?;
    }
    tx.commit()?;
    // The rebuilt table left the old one's pages free inside the file: give them back
    // once (the file would otherwise stay the size of both tables).
    if rebuilt_events {
        conn.execute_batch("VACUUM;")?;
    }
    Ok(())
}
