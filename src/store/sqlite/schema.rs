//! The SQLite schema and connection settings.

use rusqlite::Connection;

/// 4: a call's tags are a `tag_sets` id (`events.tag_set`), not inline JSON.
/// 3: `events` has no UNIQUE (workspace_id, external_request_id); the writer's call index
/// dedupes. 2: control objects are numbered per workspace and kind (`objects` keyed by
/// (workspace, kind, id), `object_ids` the sequences); 1 had one rowid for all kinds.
pub const SCHEMA_VERSION: i64 = 4;
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
-- Each distinct set of tags once (`tag_sets.rs`); `hash` finds a set without indexing
-- its text.
CREATE TABLE IF NOT EXISTS tag_sets (
    id INTEGER PRIMARY KEY,
    hash INTEGER NOT NULL,
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tag_sets_by_hash ON tag_sets (hash);
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
    tag_set INTEGER,
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

/// Schemas 1-3 -> 4: rebuild `events` without its UNIQUE constraint of schema 2 (SQLite
/// cannot drop a table constraint in place) and with each call's inline tags JSON moved
/// to `tag_sets`; rows keep their ids.
fn rebuild_events(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    let inline_tags: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('events') WHERE name = 'tags'",
        [],
        |r| r.get(0),
    )?;
    tx.execute_batch(&events_ddl("events_v4"))?;
    if inline_tags {
        intern_inline_tags(tx)?;
        tx.execute_batch(
            "INSERT INTO events_v4 SELECT id, workspace_id, external_request_id, idless, ts,
                 received_at, attempt, attempt_mask, attempts, provider, model, endpoint,
                 prompt_version, tenant, user, input_tokens, cached_tokens, cache_write_tokens,
                 output_tokens, reasoning_tokens, image_count, latency_ms, status, error_code,
                 data_mode, environment, operation, service_tier, usage_missing, cost_nanos,
                 cost_source, price_entry, price_book,
                 (SELECT id FROM temp.tag_set_ids t WHERE t.tags = events.tags), repriced_at
             FROM events;
             DROP TABLE temp.tag_set_ids;",
        )?;
    } else {
        tx.execute_batch("INSERT INTO events_v4 SELECT * FROM events;")?;
    }
    tx.execute_batch(
        "DROP TABLE events;
         ALTER TABLE events_v4 RENAME TO events;",
    )?;
    tx.execute_batch(EVENT_INDEXES)
}

/// Each distinct inline tags JSON of `events` as a tag set, and a temporary map from
/// the JSON to its id for the rebuild.
fn intern_inline_tags(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TEMP TABLE tag_set_ids (tags TEXT PRIMARY KEY, id INTEGER NOT NULL);",
    )?;
    let mut cache = super::tag_sets::TagSetCache::default();
    let mut distinct = tx.prepare("SELECT DISTINCT tags FROM events WHERE tags IS NOT NULL")?;
    let mut map = tx.prepare("INSERT INTO temp.tag_set_ids (tags, id) VALUES (?1, ?2)")?;
    let mut rows = distinct.query([])?;
    while let Some(row) = rows.next()? {
        let tags: String = row.get(0)?;
        let id = super::tag_sets::intern(tx, &mut cache, &tags)?;
        map.execute(rusqlite::params![tags, id])?;
    }
    Ok(())
}

/// Settings for every connection. synchronous=FULL: each commit is fsynced, so a 2xx
/// survives power loss; group commit keeps that affordable (one fsync per batch of
/// requests). NORMAL would risk the last commits on power loss.
///
/// Memory: each connection keeps its own page cache of `cache_mib` (the writer's
/// inserts reuse index pages; readers mostly scan the window's raw rows once, which the
/// OS's file cache serves), and the file is not memory-mapped: a mapping counts every
/// page a scan touched in the server's resident memory, per connection, which at 1M
/// calls was most of a 1 GB RSS. A sort or GROUP BY larger than the page cache spills
/// to temporary files (`temp_store = FILE`: the OS's file cache) instead of the heap:
/// SQLite allocates through glibc, which kept what the sorters of raw reads freed (at
/// 10M calls, after a run of raw reads, 821 of glibc's 826 MB were free and never given
/// back) and the spill did not make a raw GROUP BY of a week slower.
pub fn configure(conn: &Connection, cache_mib: u32) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -{};
         PRAGMA temp_store = FILE;
         PRAGMA mmap_size = 0;",
        cache_mib * 1024
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    // `rarray`: raw reads look up the rows a tenant's or user's list names (`access.rs`).
    rusqlite::vtab::array::load_module(conn)?;
    Ok(())
}

/// Page cache of the writer's connection, and of each reader's.
pub const WRITER_CACHE_MIB: u32 = 64;
pub const READER_CACHE_MIB: u32 = 8;
/// Page cache of the writer's connection while it builds the rollups and the call index
/// at open (one scan of every event: a cache would only keep the last pages read).
pub const BUILD_CACHE_MIB: u32 = 2;

/// Create the schema and the `default` workspace if they are missing; upgrade an older
/// file.
pub fn migrate(conn: &mut Connection, now_ms: i64) -> rusqlite::Result<()> {
    // An upgrade's rebuild and VACUUM use temporary tables as large as the events: on
    // disk, not in memory (at 10M calls, a 1.4 GB copy).
    let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0))?;
    conn.pragma_update(None, "temp_store", 1)?;
    let migrated = upgrade(conn, now_ms);
    conn.pragma_update(None, "temp_store", temp_store)?;
    migrated
}

/// `migrate` with the connection set for it.
fn upgrade(conn: &mut Connection, now_ms: i64) -> rusqlite::Result<()> {
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
            rebuild_events(&tx)?;
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
    // once (the file would otherwise stay the size of both tables). VACUUM builds its
    // copy as a temporary database (`temp_store` above).
    if rebuilt_events {
        conn.execute_batch("VACUUM;")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema-3 file: tags inline in `events`.
    fn schema_3_file() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(DDL).unwrap();
        let old = events_ddl("events").replace("tag_set INTEGER", "tags TEXT");
        conn.execute_batch(&old).unwrap();
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('schema_version', '3');
             INSERT INTO workspaces (name, paused, created_at) VALUES ('default', 0, 0);",
        )
        .unwrap();
        for (id, tags) in [
            ("a", Some(r#"{"plan":"free"}"#)),
            ("b", Some(r#"{"plan":"pro"}"#)),
            ("c", Some(r#"{"plan":"free"}"#)),
            ("d", None),
        ] {
            conn.execute(
                "INSERT INTO events (workspace_id, external_request_id, idless, ts, received_at,
                     attempt, attempt_mask, attempts, provider, model, endpoint, input_tokens,
                     cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                     image_count, status, data_mode, environment, operation, service_tier,
                     usage_missing, tags)
                 VALUES (1, ?1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?2)",
                rusqlite::params![id, tags],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn a_schema_3_file_keeps_every_calls_tags_as_a_shared_tag_set() {
        let mut conn = schema_3_file();
        migrate(&mut conn, 0).unwrap();
        let calls: Vec<(String, Option<String>)> = conn
            .prepare(
                "SELECT external_request_id, (SELECT tags FROM tag_sets WHERE id = tag_set)
                 FROM events ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let free = Some(r#"{"plan":"free"}"#.to_string());
        assert_eq!(
            calls,
            vec![
                ("a".into(), free.clone()),
                ("b".into(), Some(r#"{"plan":"pro"}"#.into())),
                ("c".into(), free),
                ("d".into(), None),
            ]
        );
        let (sets, version): (i64, String) = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM tag_sets),
                        (SELECT value FROM meta WHERE key = 'schema_version')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((sets, version.as_str()), (2, "4"));
        let inline: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'tags'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(inline, 0, "no inline tags column left");
    }
}
