//! The server's key table (`keytable`) against the real binary and a real SQLite file:
//! keys made and revoked by the CLI (another process) while the server runs, and a
//! spray of made-up keys that must not reach the store per request.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `keytable::MISS_LOOKUPS_PER_SEC`: store lookups of unknown keys per second.
const LOOKUPS_PER_SEC: u64 = 20;

async fn guard_status(api: &Api, key: &str) -> u16 {
    api.post("/v1/guard", key, &json!({"endpointTag": "chat.reply"}))
        .await
        .status
}

/// `burnrate_key_checks_total{answer="..."}` from `GET /metrics`.
async fn key_checks(api: &Api, read: &str, answer: &str) -> u64 {
    let text = api.get("/metrics", read).await.body;
    let text = text.as_str().expect("metrics are text");
    let prefix = format!("burnrate_key_checks_total{{answer=\"{answer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn keys_made_by_the_cli_work_at_once_and_revoked_ones_are_refused_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);

    // Made while the server runs: the table lacks it, so its first call asks the store.
    let ingest = key(&db, "default", "ingest");
    assert_eq!(guard_status(&api, &ingest).await, 200);
    assert_eq!(key_checks(&api, &read, "store").await, 1);
    // From then on it is answered from memory (the read key too: it was loaded at start).
    for _ in 0..5 {
        assert_eq!(guard_status(&api, &ingest).await, 200);
    }
    assert_eq!(key_checks(&api, &read, "store").await, 1);

    // Revoked by the CLI: refused within the bound, on the guard and everywhere else.
    cli(&db, &["keys", "revoke", &ingest[..11]]);
    let took = within_key_bound("the revoked key refused by the guard", || async {
        guard_status(&api, &ingest).await == 401
    })
    .await;
    eprintln!("revocation by the CLI refused after {took:?}");
    let r = api
        .post("/v1/ingest/llm-request", &ingest, &event("after-revoke"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(api.get("/v1/summary", &read).await.status, 200);
}

#[tokio::test]
async fn a_spray_of_made_up_keys_is_refused_from_memory_and_a_new_key_still_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let api = Arc::new(Api::new(&server));

    // Eight clients send made-up keys as fast as they can until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sprayed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (api, stop, sprayed) = (api.clone(), stop.clone(), sprayed.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let made_up = format!("br_{t}x{i:061}");
                assert_eq!(guard_status(&api, &made_up).await, 401);
                sprayed.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    // Let the spray spend the store lookups' budget, then make a key mid-spray: it gets
    // in at once if budget is left, else from the next reload (within the bound).
    while sprayed.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ingest = key(&db, "default", "ingest");
    let took = within_key_bound("a key made during the spray", || async {
        guard_status(&api, &ingest).await == 200
    })
    .await;
    eprintln!("a key made mid-spray got in after {took:?}");
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let sprayed = sprayed.load(Ordering::Relaxed);

    // At most the budget per started second asked the store (each second's window
    // opens at its first miss: at most ceil(seconds) + 1 windows in the run); the new
    // key's own lookup is among them.
    let asked = key_checks(&api, &read, "store").await;
    let refused = key_checks(&api, &read, "refused").await;
    let windows = seconds.ceil() as u64 + 1;
    eprintln!("{sprayed} made-up keys in {seconds:.1} s: {asked} asked the store, {refused} refused from memory");
    assert!(
        asked <= LOOKUPS_PER_SEC * windows,
        "{asked} store lookups in {seconds:.1} s"
    );
    assert!(
        sprayed > 2 * LOOKUPS_PER_SEC * windows,
        "the spray must outrun the budget to test it: {sprayed} in {seconds:.1} s"
    );
    // Every made-up key was answered 401: by the store's lookup or from memory.
    assert!(
        asked + refused >= sprayed,
        "{asked} + {refused} < {sprayed}"
    );
}
