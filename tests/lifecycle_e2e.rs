//! Backup and restore through the real binary: a backup taken while the server runs and
//! takes writes is one consistent moment, and a restored store answers like the original.

mod common;

use common::{cli, event, key, Api, Server, BIN};
use serde_json::{json, Value};
use std::path::Path;

/// The totals and rows of `top tenants` over 60 days (real data).
fn tenants(db: &Path) -> (Value, Value) {
    let args = ["top", "tenants", "--since", "60d", "--json"];
    let json: Value = serde_json::from_str(&cli(db, &args)).unwrap();
    (json["total"].clone(), json["rows"].clone())
}

fn requests(db: &Path) -> u64 {
    tenants(db).0["requests"].as_u64().unwrap()
}

fn failing(db: &Path, args: &[&str]) -> String {
    let out = burnrate_harness::cli(Path::new(BIN), db, args).unwrap();
    assert!(!out.status.success(), "burnrate {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// 100 calls of one batch, `round` apart from the others.
fn batch(round: usize) -> Value {
    let calls: Vec<Value> = (0..100)
        .map(|i| {
            let mut e = event(&format!("r{round}-{i}"));
            e["tenantId"] = json!(format!("tenant-{}", i % 7));
            e
        })
        .collect();
    Value::Array(calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_ingesting_restores_to_a_store_that_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (orig, copy, restored) = (
        dir.path().join("orig.db"),
        dir.path().join("copy.db"),
        dir.path().join("restored.db"),
    );
    let (ingest, read) = (
        key(&orig, "default", "ingest"),
        key(&orig, "default", "read"),
    );
    let server = Server::start(&orig, &[]);
    let api = Api::new(&server);
    for round in 0..5 {
        let reply = api.post("/v1/ingest/batch", &ingest, &batch(round)).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    // Backup while batches keep arriving.
    let writer = {
        let (api, ingest) = (Api::new(&server), ingest.clone());
        tokio::spawn(async move {
            for round in 5..40 {
                let reply = api.post("/v1/ingest/batch", &ingest, &batch(round)).await;
                assert_eq!(reply.status, 202, "{}", reply.body);
            }
        })
    };
    let said = cli(&orig, &["backup", copy.to_str().unwrap()]);
    assert!(said.starts_with("backup written to"), "{said}");
    writer.await.unwrap();
    server.stop();
    // One consistent moment: whole batches only, at least those acknowledged before.
    let in_copy = requests(&copy);
    assert!((500..=4_000).contains(&in_copy), "{in_copy}");
    assert_eq!(
        in_copy % 100,
        0,
        "a backup holds whole commits, never part of a batch"
    );
    assert_eq!(requests(&orig), 4_000);

    // Restore: the store answers like the original did at the backup's moment.
    let said = cli(&restored, &["restore", copy.to_str().unwrap()]);
    assert!(said.starts_with("restored"), "{said}");
    assert_eq!(tenants(&restored), tenants(&copy));
    // Keys come along: the read key works against a server on the restored store.
    let server = Server::start(&restored, &[]);
    let api = Api::new(&server);
    let page = api.get("/v1/events?limit=1", &read).await;
    assert_eq!(page.status, 200, "{}", page.body);
    server.stop();

    // Never overwrite by accident.
    let err = failing(&orig, &["backup", copy.to_str().unwrap()]);
    assert!(err.contains("never overwrites"), "{err}");
    let err = failing(&restored, &["restore", copy.to_str().unwrap()]);
    assert!(err.contains("--replace"), "{err}");
    cli(&restored, &["restore", "--replace", orig.to_str().unwrap()]);
    assert_eq!(requests(&restored), 4_000);
    // Not a store at all: refused before anything is touched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let err = failing(
        &dir.path().join("new.db"),
        &["restore", junk.to_str().unwrap()],
    );
    assert!(
        err.contains("not a database") || err.contains("integrity"),
        "{err}"
    );
}
