//! Files written by older versions open and keep working: schema 2's events (a unique
//! index on the text id) are rebuilt with dedupe keys, and dedupe still holds across the
//! upgrade.

use burnrate::ingest;
use burnrate::price::PriceBook;
use burnrate::store::sqlite::SqliteStore;
use burnrate::store::{Store, WriteResult};
use serde_json::json;

/// The events table as schema 2 created it.
const V2_EVENTS: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '2'), ('price_generation', '0'), ('rollups_version', '6');
CREATE TABLE events (
    id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL, external_request_id TEXT NOT NULL,
    idless INTEGER NOT NULL, ts INTEGER NOT NULL, received_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL, attempt_mask INTEGER NOT NULL, attempts INTEGER NOT NULL,
    provider INTEGER NOT NULL, model INTEGER NOT NULL, endpoint INTEGER NOT NULL,
    prompt_version INTEGER, tenant INTEGER, user INTEGER, input_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
    image_count INTEGER NOT NULL, latency_ms INTEGER, status INTEGER NOT NULL,
    error_code INTEGER, data_mode INTEGER NOT NULL, environment INTEGER NOT NULL,
    operation INTEGER NOT NULL, service_tier INTEGER NOT NULL, usage_missing INTEGER NOT NULL,
    cost_nanos INTEGER, cost_source INTEGER, price_entry INTEGER, price_book INTEGER, tags TEXT,
    UNIQUE (workspace_id, external_request_id)
);
CREATE INDEX events_by_time ON events (workspace_id, ts);
CREATE TABLE rollup_main_hour (workspace_id INTEGER, bucket INTEGER, requests INTEGER);
";

#[tokio::test]
async fn a_schema_2_file_gets_dedupe_keys_and_still_deduplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let now = jiff::Timestamp::now().as_millisecond();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(V2_EVENTS).unwrap();
        c.execute(
            "INSERT INTO events VALUES (7, 1, 'old-call', 0, ?1, ?1, 1, 1, 1, 1, 2, 3, NULL, NULL,
                NULL, 100, 0, 0, 10, 0, 0, 250, 0, NULL, 0, 0, 0, 0, 0, 5000, 0, NULL, NULL, NULL)",
            [now - 60_000],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let book = PriceBook::bundled().unwrap();
    let send = |id: &str, attempt: u8| {
        let text = json!({"externalRequestId": id, "attempt": attempt, "provider": "openai",
            "model": "gpt-4o", "endpointTag": "e", "status": "success", "inputTokens": 10})
        .to_string();
        ingest::prepare(
            vec![ingest::parse_item(&text)],
            &book,
            &Default::default(),
            now,
        )
        .events
    };
    let resend = store.ingest(1, send("old-call", 1)).await.unwrap();
    assert_eq!(resend.results, vec![WriteResult::Duplicate]);
    let retry = store.ingest(1, send("old-call", 2)).await.unwrap();
    assert!(
        matches!(retry.results[0], WriteResult::Attempt { .. }),
        "{retry:?}"
    );
    let new = store.ingest(1, send("new-call", 1)).await.unwrap();
    assert_eq!(new.results, vec![WriteResult::Inserted]);
    assert_eq!(store.event_count().await.unwrap(), 2);
    store.close().await;
    let c = rusqlite::Connection::open(&path).unwrap();
    let indexes: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        indexes,
        ["events_by_key", "events_by_time", "events_by_version"]
    );
    let (version, keyed): (String, i64) = c
        .query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'schema_version'),
                (SELECT COUNT(*) FROM events WHERE dedupe_key != 0)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version.as_str(), keyed), ("3", 2));
    let rollup_tables: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'rollup%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rollup_tables, 0);
}
