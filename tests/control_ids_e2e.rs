//! Ids of control objects through the real server: integers for every kind (channels
//! too), numbered per workspace and kind, and a database from before (one counter shared
//! by every kind) keeps its objects' ids after the migration.

mod common;

use common::{cli, key, Api, Server};
use serde_json::{json, Value};
use std::path::Path;

fn budget(name: &str) -> Value {
    json!({"name": name, "scope": {"tenantId": name}, "period": "month", "limitUsd": 10})
}

fn channel(name: &str) -> Value {
    json!({"name": name, "type": "webhook", "url": "http://127.0.0.1:9/hook"})
}

async fn created(api: &Api, admin: &str, path: &str, body: Value) -> i64 {
    let r = api.post(path, admin, &body).await;
    assert_eq!(r.status, 201, "{path}: {}", r.body);
    r.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{path}: the id is not an integer: {}", r.body))
}

fn ids(listing: &Value, list: &str, item: Option<&str>) -> Vec<i64> {
    listing[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| match item {
            Some(field) => o[field]["id"].as_i64().unwrap(),
            None => o["id"].as_i64().unwrap(),
        })
        .collect()
}

/// Rewrite the objects of a database into schema 1: one table numbered by one rowid for
/// every kind, in creation order (as the old code gave them out). Without the pseudonym
/// secret the server made at start: schema 1 predates secrets (the server makes one
/// again when it starts on the file).
fn downgrade_to_schema_1(db: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let rows: Vec<(i64, String, String, i64, i64)> = conn
        .prepare("SELECT workspace_id, kind, body, created_ms, updated_ms FROM objects WHERE kind != 'pseudonym_secret' ORDER BY created_ms")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute_batch(
        "DROP TABLE objects; DROP TABLE object_ids;
         CREATE TABLE objects (
             id INTEGER PRIMARY KEY,
             workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
             kind TEXT NOT NULL,
             body TEXT NOT NULL,
             created_ms INTEGER NOT NULL,
             updated_ms INTEGER NOT NULL
         );
         CREATE INDEX objects_by_kind ON objects (workspace_id, kind, id);
         UPDATE meta SET value = '1' WHERE key = 'schema_version';",
    )
    .unwrap();
    let mut old_ids = Vec::new();
    for (ws, kind, body, created, updated) in rows {
        conn.execute(
            "INSERT INTO objects (workspace_id, kind, body, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![ws, kind, body, created, updated],
        )
        .unwrap();
        old_ids.push((kind, conn.last_insert_rowid()));
    }
    old_ids
}

#[tokio::test]
async fn control_ids_are_integers_numbered_per_kind_and_survive_the_schema_migration() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let admin = key(&db, "default", "admin");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    // A channel created between two budgets does not take a budget id.
    assert_eq!(created(&api, &admin, "/v1/budgets", budget("a")).await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        created(&api, &admin, "/v1/channels", channel("ops")).await,
        1
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(created(&api, &admin, "/v1/budgets", budget("b")).await, 2);
    let listed = api.get("/v1/channels", &admin).await.body;
    assert_eq!(listed["channels"][0]["id"], json!(1), "{listed}");
    // Channel ids in paths are integers like budget ids: anything else is a 400 naming id.
    for path in ["/v1/channels/ch_1/test", "/v1/channels/1x/test"] {
        let r = api.post(path, &admin, &json!({})).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(common::blamed(&r.body["error"]["fields"]), ["id"]);
    }
    server.stop();

    // The same objects as the old schema numbered them: budget 1, channel 2, budget 3.
    let old = downgrade_to_schema_1(&db);
    assert_eq!(
        old,
        [
            ("budget".into(), 1),
            ("channel".into(), 2),
            ("budget".into(), 3)
        ]
    );
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let budgets = api.get("/v1/budgets", &admin).await.body;
    assert_eq!(
        ids(&budgets, "budgets", Some("budget")),
        [1, 3],
        "{budgets}"
    );
    let channels = api.get("/v1/channels", &admin).await.body;
    assert_eq!(ids(&channels, "channels", None), [2], "{channels}");
    assert_eq!(channels["channels"][0]["name"], "ops");
    let status = api.get("/v1/budgets/3/status", &admin).await;
    assert_eq!(status.status, 200, "{}", status.body);
    // Each kind continues after its own largest id; a kind never seen starts at 1.
    assert_eq!(created(&api, &admin, "/v1/budgets", budget("c")).await, 4);
    assert_eq!(
        created(&api, &admin, "/v1/channels", channel("eng")).await,
        3
    );
    let cap = json!({"endpointTag": "x", "requestsPerMinute": 60});
    assert_eq!(created(&api, &admin, "/v1/rate-caps", cap).await, 1);
    // Deleting by the kept id works, and an id is never given out twice.
    let r = api
        .http
        .delete(format!("{}/v1/channels/2", api.url))
        .header("X-API-Key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        created(&api, &admin, "/v1/channels", channel("pd")).await,
        4
    );
    let out = cli(&db, &["budgets", "list", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids(&listed, "budgets", Some("budget")), [1, 3, 4]);
    server.stop();
    // Opening again migrates nothing twice.
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    assert_eq!(created(&api, &admin, "/v1/budgets", budget("d")).await, 5);
}
