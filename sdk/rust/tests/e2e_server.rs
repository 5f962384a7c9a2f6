//! End-to-end: the real `burnrate` binary on port 0 with a temporary database; events
//! tracked with this crate are read back through `GET /v1/events`.
//!
//! The binary is target/debug/burnrate at the repository root (built by the root crate), or
//! `BURNRATE_BIN`. When it is missing the tests fail and say so.

use burnrate_client::{pseudonymize, usage, Client, Event, GuardRequest, Status};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    let path = std::env::var_os("BURNRATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/burnrate")
        });
    assert!(
        path.is_file(),
        "the burnrate server binary is missing at {}: build it with `cargo build -p burnrate` \
         in the repository root, or point BURNRATE_BIN at it",
        path.display()
    );
    path
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "burnrate-client-e2e-{}-{}",
            std::process::id(),
            burnrate_client::new_request_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .args(["--db", db.to_str().unwrap()])
        .output()
        .expect("run burnrate");
    assert!(
        out.status.success(),
        "burnrate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn key(db: &Path, scope: &str) -> String {
    let k = cli(
        db,
        &["keys", "create", "--workspace", "default", "--scope", scope],
    );
    k.trim().to_string()
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(db: &Path) -> Server {
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                db.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start burnrate serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("burnrate serve exited before printing `listening on`")
                .unwrap();
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn stored(url: &str, read_key: &str, id: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/events?externalRequestId={id}"))
        .header("X-API-Key", read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    let events = body["events"].as_array().expect("events").clone();
    assert_eq!(events.len(), 1, "one stored event for {id}: {body}");
    events[0].clone()
}

/// Wait until ingest answers as a paused (402) or live workspace's would: a pause made
/// with the CLI reaches a running server within 250 ms (its key table), not at once.
/// Probes with an empty batch, which stores nothing (400 when live).
async fn wait_ingest_paused(url: &str, ingest_key: &str, paused: bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = reqwest::Client::new()
            .post(format!("{url}/v1/ingest/batch"))
            .header("X-API-Key", ingest_key)
            .header("Content-Type", "application/json")
            .body("[]")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if (status == 402) == paused {
            return;
        }
        assert!(Instant::now() < deadline, "ingest still answers {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-12)
}

#[tokio::test]
async fn tracked_events_are_stored_priced_and_retries_count_once() {
    let dir = TempDir::new();
    let db = dir.0.join("b.db");
    let (ingest, read) = (key(&db, "ingest"), key(&db, "read"));
    let server = Server::start(&db);
    let client = Client::builder()
        .url(&server.url)
        .api_key(&ingest)
        .flush_interval(Duration::from_millis(50))
        .build();

    // 1) a plain call: 1000 input (400 cached), 200 output on gpt-4o-mini
    let plain_resp = json!({"model": "gpt-4o-mini", "usage": {
        "prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
        "prompt_tokens_details": {"cached_tokens": 400}}});
    let plain = Event::new("openai", "gpt-4o-mini", "support.reply")
        .tenant_id("acme")
        .user_id(pseudonymize("secret", "user-42"))
        .prompt_version("support_v9")
        .tag("team", "growth")
        .latency(Duration::from_millis(830))
        .usage(usage::openai_chat(&plain_resp));
    let plain_id = plain.external_request_id.clone();
    client.track(plain);

    // 2) a logical call that got a 429, then succeeded on attempt 2 (same id)
    let first = Event::failed(
        "openai",
        "gpt-4o-mini",
        "support.reply",
        Status::RateLimited,
        "429",
    );
    let retry_id = first.external_request_id.clone();
    let second = first.retry().usage(usage::openai_chat(&json!({
        "prompt_tokens": 2006, "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 192}})));
    assert_eq!(second.attempt, 2);
    client.track(first);
    client.track(second);

    // 3) OpenRouter reports the exact cost: the server keeps the client's cost
    let routed = Event::new("openrouter", "openai/gpt-4o-mini", "search.summarize").usage(
        usage::openrouter(
            &json!({"usage": {"prompt_tokens": 194, "completion_tokens": 2,
            "cost": 0.00012345}}),
        ),
    );
    let routed_id = routed.external_request_id.clone();
    client.track(routed);

    // 4) our own id, embeddings
    let emb = Event::new("openai", "text-embedding-3-small", "search.index")
        .external_request_id("my-own-id-1")
        .usage(usage::openai_embeddings(
            &json!({"usage": {"prompt_tokens": 1536}}),
        ));
    client.track(emb);

    assert!(
        client.flush().await,
        "flush timed out: {:?}",
        client.stats()
    );
    let s = client.stats();
    assert_eq!(
        (s.enqueued, s.sent, s.rejected, s.queued),
        (5, 5, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.dropped_after_retries + s.dropped_queue_full, 0);

    // 1000 uncached-or-not: 600 x $0.15/M + 400 x $0.075/M + 200 x $0.60/M = $0.00024
    let e = stored(&server.url, &read, &plain_id).await;
    assert_eq!(
        (&e["inputTokens"], &e["cachedTokens"], &e["outputTokens"]),
        (&json!(1000), &json!(400), &json!(200)),
        "{e}"
    );
    assert!(close(&e["costUsd"], 0.00024), "{e}");
    assert_eq!(e["costSource"], "catalog");
    assert_eq!(
        (&e["attempts"], &e["tenantId"]),
        (&json!(1), &json!("acme"))
    );
    assert_eq!(e["promptVersion"], "support_v9");
    assert_eq!(e["latencyMs"], 830);
    assert!(e["userId"].as_str().unwrap().starts_with("ps_"));

    // attempt 2 wins: 86 x 0.15 + 1920 x 0.075 + 300 x 0.60 = 336.9 $/M = $0.0003369
    let e = stored(&server.url, &read, &retry_id).await;
    assert_eq!(
        (&e["attempts"], &e["attempt"], &e["status"]),
        (&json!(2), &json!(2), &json!("success")),
        "{e}"
    );
    assert_eq!(
        (
            &e["inputTokens"],
            &e["cachedTokens"],
            &e["outputTokens"],
            &e["reasoningTokens"]
        ),
        (&json!(2006), &json!(1920), &json!(300), &json!(192)),
        "{e}"
    );
    assert!(close(&e["costUsd"], 0.0003369), "{e}");

    let e = stored(&server.url, &read, &routed_id).await;
    assert!(close(&e["costUsd"], 0.00012345), "{e}");
    assert_eq!(e["costSource"], "client");

    let e = stored(&server.url, &read, "my-own-id-1").await;
    assert_eq!(
        (&e["operation"], &e["inputTokens"]),
        (&json!("embeddings"), &json!(1536))
    );

    // Resending the same attempt is a duplicate, not a second call.
    client.track(
        Event::new("openai", "gpt-4o-mini", "support.reply")
            .external_request_id("my-own-id-1")
            .usage(usage::openai_embeddings(&json!({"prompt_tokens": 1536}))),
    );
    assert!(client.flush().await);
    assert_eq!(client.stats().duplicates, 1, "{:?}", client.stats());

    // /v1/guard: the server answers; with no budget the call is allowed.
    let d = client
        .guard(GuardRequest::new("support.reply").model("gpt-4o-mini"))
        .await
        .expect("the server answers /v1/guard");
    assert!(d.allow, "{d:?}");
    assert_eq!(d.reason.as_deref(), Some("ok"));
    assert!(d.budgets.is_empty());
}

#[tokio::test]
async fn paused_workspace_pauses_sending_then_delivers() {
    let dir = TempDir::new();
    let db = dir.0.join("b.db");
    let (ingest, read) = (key(&db, "ingest"), key(&db, "read"));
    let server = Server::start(&db);
    cli(&db, &["workspaces", "pause", "default"]);
    wait_ingest_paused(&server.url, &ingest, true).await;
    let client = Client::builder()
        .url(&server.url)
        .api_key(&ingest)
        .flush_interval(Duration::from_millis(20))
        .pause_on_402(Duration::from_millis(300))
        .log_to_stderr(false)
        .build();
    let ev = Event::new("openai", "gpt-4o-mini", "support.reply").usage(usage::openai_chat(
        &json!({"prompt_tokens": 10, "completion_tokens": 5}),
    ));
    let id = ev.external_request_id.clone();
    client.track(ev);
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.stats().paused_responses == 0 {
        assert!(
            Instant::now() < deadline,
            "no 402 seen: {:?}",
            client.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = client.stats();
    assert!(s.paused, "{s:?}");
    assert_eq!(s.sent, 0);
    assert!(s.last_error.unwrap().contains("402"));

    cli(&db, &["workspaces", "resume", "default"]);
    wait_ingest_paused(&server.url, &ingest, false).await;
    assert!(client.flush().await, "{:?}", client.stats());
    let s = client.stats();
    assert_eq!(
        (s.sent, s.paused, s.dropped_after_retries),
        (1, false, 0),
        "{s:?}"
    );
    let e = stored(&server.url, &read, &id).await;
    assert_eq!(e["inputTokens"], 10);
}

#[tokio::test]
async fn a_wrong_key_drops_and_counts() {
    let dir = TempDir::new();
    let db = dir.0.join("b.db");
    let _ = key(&db, "read");
    let server = Server::start(&db);
    let client = Client::builder()
        .url(&server.url)
        .api_key("br_not_a_key")
        .log_to_stderr(false)
        .build();
    client.track(Event::new("openai", "gpt-4o-mini", "x"));
    assert!(client.flush().await);
    let s = client.stats();
    assert_eq!((s.sent, s.dropped_unauthorized), (0, 1), "{s:?}");
    assert!(!s.last_error.unwrap().contains("br_not_a_key"));
}
