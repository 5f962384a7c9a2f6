//! SQLite's rollups across a schema change. That their answers are exact, for random
//! events and queries, is checked by the store conformance suite
//! (`tests/store_conformance.rs`) against a plain-Rust reference.

use burnrate::ingest;
use burnrate::price::PriceBook;
use burnrate::query::QueryRequest;
use burnrate::store::sqlite::SqliteStore;
use burnrate::store::EventStore;
use serde_json::json;

/// Regression: a rollup schema change must rebuild the tables in their new shape, not keep
/// an older table with other columns.
#[tokio::test]
async fn an_older_rollup_schema_is_replaced_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('rollups_version', '0');
             CREATE TABLE rollup_main_hour (workspace_id INTEGER, bucket INTEGER, requests INTEGER);
             CREATE TABLE rollup_user_hour (workspace_id INTEGER);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let book = PriceBook::bundled().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let text = json!({"externalRequestId": "r", "provider": "openai", "model": "gpt-4o", "endpointTag": "e", "status": "success", "inputTokens": 10}).to_string();
    let prepared = ingest::prepare(
        vec![ingest::parse_item(&text)],
        &book,
        &Default::default(),
        now,
    );
    store.ingest(1, prepared.events).await.unwrap();
    let query = serde_json::from_value::<QueryRequest>(json!({"groupBy": ["endpointTag"]}))
        .unwrap()
        .check(now + 1000)
        .unwrap();
    assert_eq!(
        store.aggregate(1, query).await.unwrap().rows[0]
            .sums
            .requests,
        1
    );
    store.close().await;
}
