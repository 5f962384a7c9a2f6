//! Delivery rules against a tiny misbehaving HTTP/1.1 server (hand-written responses on a
//! tokio TcpListener): slow, 429 with Retry-After, 402, 500, 413, down. track() stays
//! fast, the counters move as the rules say, nothing panics.

use burnrate_client::{Client, ClientBuilder, Error, Event, GuardRequest};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    path: String,
    events: usize,
    body: Value,
}

/// What the fake server answers.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: "{}".into(),
            delay: Duration::ZERO,
        }
    }

    /// What burnrate answers to a good batch of `n`.
    fn accepted(n: usize) -> Reply {
        Reply {
            body: json!({"accepted": n, "duplicates": 0, "rejected": []}).to_string(),
            ..Reply::status(202)
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }

    fn body(mut self, body: Value) -> Reply {
        self.body = body.to_string();
        self
    }

    fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(usize, &Seen) -> Reply + Send + Sync>;

/// The fake server, on its own thread and runtime so sync and async tests can use it.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn start(handler: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Fake {
        let handler: Handler = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                // Stops with the test process; bounded by the test's own request count.
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    let (handler, seen) = (handler.clone(), seen2.clone());
                    tokio::spawn(async move {
                        let _ = serve_conn(sock, handler, seen).await;
                    });
                }
            });
        });
        let addr = rx.recv().unwrap();
        Fake {
            url: format!("http://{addr}"),
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn events(&self) -> usize {
        self.seen().iter().map(|s| s.events).sum()
    }
}

async fn serve_conn(
    sock: tokio::net::TcpStream,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(sock);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let s = Seen {
            at: Instant::now(),
            path,
            events: body.as_array().map_or(0, Vec::len),
            body,
        };
        let index = {
            let mut all = seen.lock().unwrap();
            all.push(s.clone());
            all.len() - 1
        };
        let reply = handler(index, &s);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        reader.get_mut().write_all(out.as_bytes()).await?;
    }
}

fn event(i: usize) -> Event {
    Event::new("openai", "gpt-4o-mini", "support.reply").external_request_id(format!("e{i}"))
}

fn builder(url: &str) -> ClientBuilder {
    Client::builder()
        .url(url)
        .api_key("br_test_key")
        // Long: in most tests only flush() (or a full batch) makes the worker send, so
        // the batches are deterministic.
        .flush_interval(Duration::from_secs(60))
        .log_to_stderr(false)
}

/// Poll `cond` up to `limit`.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_stays_fast_when_the_server_hangs() {
    let fake = Fake::start(|_, s| Reply::accepted(s.events).after(Duration::from_secs(2)));
    let client = builder(&fake.url)
        .shutdown_timeout(Duration::from_millis(500))
        .build();
    let start = Instant::now();
    for i in 0..10_000 {
        client.track(event(i));
    }
    let took = start.elapsed();
    println!("10,000 x (Event::new + track) with a hanging server: {took:?}");
    assert!(
        took < Duration::from_millis(500),
        "track() too slow: {took:?}"
    );
    let s = client.stats();
    assert_eq!(s.enqueued + s.dropped_queue_full, 10_000, "{s:?}");
    // The 600 ms timeout fires and counts as a send error.
    assert!(
        eventually(Duration::from_secs(3), || client.stats().send_errors >= 1).await,
        "{:?}",
        client.stats()
    );
    assert!(client.stats().last_error.unwrap().contains("timeout"));
    // A flush cannot finish against a hanging server, but is bounded.
    let t = Instant::now();
    assert!(!client.flush_timeout(Duration::from_millis(200)).await);
    assert!(t.elapsed() < Duration::from_secs(1));
    // Dropping the client is bounded by the shutdown timeout.
    let t = Instant::now();
    drop(client);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "drop took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_full_queue_drops_the_newest_and_counts() {
    // 402 forever with a long pause: the worker holds one batch, the queue fills up.
    let fake = Fake::start(|_, _| Reply::status(402).header("Retry-After", "60"));
    let client = builder(&fake.url)
        .flush_interval(Duration::from_millis(20))
        .queue_size(50)
        .batch_size(10)
        .shutdown_timeout(Duration::from_millis(200))
        .build();
    client.track(event(0));
    assert!(eventually(Duration::from_secs(3), || client.stats().paused).await);
    let start = Instant::now();
    for i in 1..1_000 {
        client.track(event(i));
    }
    assert!(start.elapsed() < Duration::from_millis(200));
    let s = client.stats();
    assert_eq!((s.enqueued, s.dropped_queue_full), (51, 949), "{s:?}");
    assert_eq!(s.paused_responses, 1, "no resend while paused: {s:?}");
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn rate_limited_waits_for_retry_after() {
    let fake = Fake::start(|i, s| {
        if i == 0 {
            Reply::status(429).header("Retry-After", "1")
        } else {
            Reply::accepted(s.events)
        }
    });
    let client = builder(&fake.url).build();
    for i in 0..3 {
        client.track(event(i));
    }
    assert!(client.flush().await, "{:?}", client.stats());
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].events, seen[1].events), (3, 3));
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(950), "resent after {gap:?}");
    let s = client.stats();
    assert_eq!(
        (s.rate_limited, s.sent, s.dropped_after_retries),
        (1, 3, 0),
        "{s:?}"
    );
}

#[tokio::test]
async fn payment_required_pauses_then_resumes() {
    let fake = Fake::start(|i, s| {
        if i == 0 {
            Reply::status(402).body(json!({"error": "workspace_paused"}))
        } else {
            Reply::accepted(s.events)
        }
    });
    let client = builder(&fake.url)
        .pause_on_402(Duration::from_millis(300))
        .build();
    client.track(event(1));
    assert!(client.flush().await, "{:?}", client.stats());
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(290));
    let s = client.stats();
    assert_eq!(
        (s.paused_responses, s.sent, s.paused),
        (1, 1, false),
        "{s:?}"
    );
}

#[tokio::test]
async fn server_errors_back_off_then_drop_and_count() {
    let fake = Fake::start(|_, _| Reply::status(500));
    let client = builder(&fake.url)
        .max_send_attempts(3)
        .backoff(Duration::from_millis(40), Duration::from_millis(200))
        .build();
    for i in 0..5 {
        client.track(event(i));
    }
    assert!(client.flush().await);
    let s = client.stats();
    assert_eq!(
        (s.send_errors, s.dropped_after_retries, s.sent, s.queued),
        (3, 5, 0, 0),
        "{s:?}"
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    // jittered exponential backoff: [40, 80] ms then [80, 160] ms
    let (g1, g2) = (seen[1].at - seen[0].at, seen[2].at - seen[1].at);
    assert!(
        g1 >= Duration::from_millis(40) && g2 >= Duration::from_millis(80),
        "{g1:?} {g2:?}"
    );
    assert!(s.last_error.unwrap().contains("HTTP 500"));
}

#[tokio::test]
async fn transient_errors_recover() {
    let fake = Fake::start(|i, s| match i {
        0 => Reply::status(503),
        1 => Reply::status(500),
        _ => Reply::accepted(s.events),
    });
    let client = builder(&fake.url)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build();
    client.track(event(1));
    client.track(event(2));
    assert!(client.flush().await);
    let s = client.stats();
    assert_eq!(
        (s.send_errors, s.sent, s.dropped_after_retries),
        (2, 2, 0),
        "{s:?}"
    );
}

#[tokio::test]
async fn server_down_drops_after_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = builder(&format!("http://127.0.0.1:{port}"))
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .build();
    let start = Instant::now();
    for i in 0..100 {
        client.track(event(i));
    }
    assert!(start.elapsed() < Duration::from_millis(100));
    assert!(client.flush().await);
    let s = client.stats();
    assert_eq!(
        (s.dropped_after_retries, s.send_errors, s.sent),
        (100, 4, 0),
        "{s:?}"
    );
}

#[tokio::test]
async fn batches_respect_the_size_and_413_splits() {
    let fake = Fake::start(|_, s| {
        if s.events > 4 {
            Reply::status(413)
        } else {
            Reply::accepted(s.events)
        }
    });
    let client = builder(&fake.url).batch_size(10).build();
    for i in 0..25 {
        client.track(event(i));
    }
    assert!(client.flush().await);
    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.events <= 10));
    let delivered: usize = seen
        .iter()
        .filter(|s| s.events <= 4)
        .map(|s| s.events)
        .sum();
    assert_eq!(delivered, 25);
    let mut ids: Vec<String> = seen
        .iter()
        .filter(|s| s.events <= 4)
        .flat_map(|s| s.body.as_array().unwrap().clone())
        .map(|e| e["externalRequestId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25, "every event once");
    let s = client.stats();
    assert_eq!((s.sent, s.rejected), (25, 0), "{s:?}");
}

#[tokio::test]
async fn per_event_rejections_and_duplicates_are_counted() {
    let fake = Fake::start(|_, _| {
        Reply::status(202).body(json!({"accepted": 1, "duplicates": 1, "rejected": [
            {"index": 2, "errors": [{"field": "model", "message": "is required"}]}]}))
    });
    let client = builder(&fake.url).build();
    for i in 0..3 {
        client.track(event(i));
    }
    assert!(client.flush().await);
    let s = client.stats();
    assert_eq!((s.sent, s.duplicates, s.rejected), (1, 1, 1), "{s:?}");
    assert!(s.last_error.unwrap().contains("model: is required"));
}

#[tokio::test]
async fn events_on_the_wire_follow_the_contract() {
    let fake = Fake::start(|_, s| Reply::accepted(s.events));
    let client = builder(&fake.url)
        .environment(burnrate_client::Environment::Staging)
        .build();
    client.track(
        Event::new("OpenAI", "gpt-4o-mini", "support.reply")
            .external_request_id("wire-1")
            .usage(burnrate_client::usage::openai_chat(
                &json!({"prompt_tokens": 3, "completion_tokens": 2}),
            )),
    );
    assert!(client.flush().await);
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/v1/ingest/batch");
    let e = &seen[0].body[0];
    assert_eq!(e["externalRequestId"], "wire-1");
    assert_eq!(e["provider"], "openai");
    assert_eq!(e["environment"], "staging");
    assert_eq!(
        (&e["inputTokens"], &e["outputTokens"]),
        (&json!(3), &json!(2))
    );
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(e.get("dataMode").is_none() && e.get("costUsd").is_none());
}

#[tokio::test]
async fn dropping_the_client_sends_what_is_queued() {
    let fake = Fake::start(|_, s| Reply::accepted(s.events));
    let client = builder(&fake.url).build();
    for i in 0..7 {
        client.track(event(i));
    }
    let clone = client.clone();
    drop(client); // not the last handle: nothing happens yet
    assert_eq!(fake.events(), 0);
    let t = Instant::now();
    drop(clone);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.events(), 7);
}

#[test]
fn works_from_sync_code_without_a_runtime() {
    let fake = Fake::start(|_, s| Reply::accepted(s.events));
    let client = builder(&fake.url).build();
    for i in 0..3 {
        client.track(event(i));
    }
    assert!(client.flush_blocking(Duration::from_secs(5)));
    assert_eq!(client.stats().sent, 3);
    assert_eq!(fake.events(), 3);
}

#[test]
fn without_configuration_everything_is_a_no_op() {
    let client = Client::builder().build();
    assert!(!client.is_enabled());
    client.track(event(0));
    assert!(client.flush_blocking(Duration::from_millis(10)));
    let s = client.stats();
    assert_eq!((s.dropped_disabled, s.enqueued), (1, 0));
    assert!(s.last_error.unwrap().contains("URL"));
    assert_eq!(
        client.guard_blocking(GuardRequest::new("x")),
        Err(Error::NotConfigured)
    );
    let bad = Client::new("not a url", "k");
    assert!(!bad.is_enabled());
}

#[tokio::test]
async fn guard_answers_denials_and_errors() {
    let fake = Fake::start(|i, s| {
        assert_eq!(s.path, "/v1/guard");
        match i {
            0 => Reply::status(200).body(json!({"allow": true, "reason": null,
                "budgets": [{"id": "bud_1", "remaining": 4.25, "state": "ok"}]})),
            1 => Reply::status(429)
                .header("Retry-After", "120")
                .body(json!({"allow": false, "reason": "monthly budget exceeded",
                    "budgets": [{"id": "bud_1", "remaining": 0, "state": "exceeded"}]})),
            2 => Reply::status(500),
            _ => Reply::status(200).after(Duration::from_secs(2)),
        }
    });
    let client = builder(&fake.url).build();
    let req = GuardRequest::new("support.reply").tenant_id("acme");
    let d = client.guard(req.clone()).await.unwrap();
    assert!(d.allow);
    assert_eq!(d.budgets[0].remaining, Some(4.25));
    assert_eq!(
        fake.seen()[0].body,
        json!({"endpointTag": "support.reply", "tenantId": "acme"})
    );
    let d = client.guard(req.clone()).await.unwrap();
    assert!(!d.allow);
    assert_eq!(d.reason.as_deref(), Some("monthly budget exceeded"));
    assert_eq!(d.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(client.guard(req.clone()).await, Err(Error::Status(500)));
    let t = Instant::now();
    assert!(matches!(client.guard(req).await, Err(Error::Http(_))));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}
