//! The guard's server-side latency histogram (`burnrate_guard_duration_seconds` on
//! `/metrics`) through the real binary: it counts every guard call and nothing else, its
//! buckets are cumulative and fine around the 1 ms target, each call's server-side time
//! fits inside the client's, and it is timed from the first read of the request's bytes
//! (a slow body counts, an idle keep-alive gap before the request does not).

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const HISTOGRAM: &str = "burnrate_guard_duration_seconds";

/// The guard histogram's buckets and sum as the server exposes them now.
async fn scrape(api: &Api, read: &str) -> (Vec<(f64, u64)>, f64) {
    let text = api
        .http
        .get(format!("{}/metrics", api.url))
        .header("X-API-Key", read)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let buckets = burnrate_harness::histogram_buckets(&text, HISTOGRAM);
    let sum = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{HISTOGRAM}_sum ")))
        .unwrap_or_else(|| panic!("no {HISTOGRAM}_sum in {text}"))
        .parse()
        .unwrap();
    (buckets, sum)
}

/// Buckets are non-decreasing, end with `+Inf`, and the finite bounds step finely
/// (at most 250 us apart) from 50 us to 1.5 ms, so a p99 near 1 ms can be read.
fn assert_shape(buckets: &[(f64, u64)]) {
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    assert_eq!(buckets.last().unwrap().0, f64::INFINITY, "{buckets:?}");
    assert_eq!(buckets[0].0, 0.00005, "{buckets:?}");
    let fine: Vec<f64> = buckets
        .iter()
        .map(|b| b.0)
        .filter(|b| *b <= 0.0015)
        .collect();
    assert!(fine.len() >= 10, "{buckets:?}");
    assert!(
        fine.windows(2).all(|w| w[1] - w[0] <= 0.00025 + 1e-12),
        "{fine:?}"
    );
}

#[tokio::test]
async fn the_histogram_counts_each_guard_call_within_its_client_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let (before, _) = scrape(&api, &read).await;
    assert_shape(&before);
    assert_eq!(before.last().unwrap().1, 0, "no guard call yet: {before:?}");

    // Seven answered guard calls and one refused (a 400 is served too), timed at the
    // client; an ingest and a read in between are not guard calls.
    let mut client_seconds = Vec::new();
    for i in 0..8 {
        let body = match i {
            3 => json!({"tenantId": "acme"}),
            _ => {
                json!({"endpointTag": "support.reply", "tenantId": format!("t{i}"), "estimatedCostUsd": 0.01})
            }
        };
        let started = Instant::now();
        let r = api.post("/v1/guard", &ingest, &body).await;
        client_seconds.push(started.elapsed().as_secs_f64());
        assert_eq!(r.status, if i == 3 { 400 } else { 200 }, "{}", r.body);
        if i == 4 {
            let r = api
                .post("/v1/ingest/llm-request", &ingest, &event("e1"))
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
            assert_eq!(api.get("/v1/summary", &read).await.status, 200);
        }
    }

    let (after, sum) = scrape(&api, &read).await;
    assert_shape(&after);
    assert_eq!(after.last().unwrap().1, 8, "{after:?}");
    // Each call's server-side time is part of its client-side time: the sum is positive
    // and at most the client's, and every call is in a bucket no higher than the
    // smallest bound holding the slowest client time.
    let client_total: f64 = client_seconds.iter().sum();
    assert!(
        sum > 0.0 && sum <= client_total,
        "server {sum} s, client {client_total} s"
    );
    let slowest = client_seconds.iter().cloned().fold(0.0, f64::max);
    let holding = after.iter().find(|b| b.0 >= slowest).unwrap();
    assert_eq!(holding.1, 8, "slowest client call {slowest} s: {after:?}");
}

/// One HTTP/1.1 guard request written by hand on `stream`, its body `pause` after its
/// headers; returns once the whole answer has been read.
fn guard_by_hand(stream: &mut std::net::TcpStream, key: &str, pause: Duration) {
    let body = r#"{"endpointTag":"support.reply"}"#;
    let head = format!(
        "POST /v1/guard HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(pause);
    stream.write_all(body.as_bytes()).unwrap();
    // The answer is small and has a Content-Length: read until it is all here.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            assert!(head.starts_with("HTTP/1.1 200"), "{text}");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if rest.len() >= length {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_guard_call_is_timed_from_the_first_read_of_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let address = server.url.strip_prefix("http://").unwrap().to_string();
    let pause = Duration::from_millis(150);
    let by_hand = {
        let ingest = ingest.clone();
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.set_nodelay(true).unwrap();
            // A body arriving 150 ms after its headers: the server had the request's
            // first bytes for 150 ms, so the call took at least that.
            guard_by_hand(&mut stream, &ingest, pause);
            // 150 ms of an idle kept-alive connection, then a request sent whole: the
            // wait is before its first byte, so it is not the guard's time.
            std::thread::sleep(pause);
            guard_by_hand(&mut stream, &ingest, Duration::ZERO);
        })
    };
    by_hand.await.unwrap();
    let (buckets, sum) = scrape(&api, &read).await;
    assert_eq!(buckets.last().unwrap().1, 2, "{buckets:?}");
    // The slow one is past the last finite bound (100 ms), the other well under it.
    let last_finite = buckets[buckets.len() - 2];
    assert_eq!(last_finite, (0.1, 1), "{buckets:?}");
    // The 150 ms pause (less up to 5 ms: on a loaded machine the kernel may stamp the
    // head's arrival a little after the write returned); under twice it (the idle gap
    // would add another 150 ms).
    assert!((0.145..0.3).contains(&sum), "sum {sum} s");
}

/// Each thread of process `pid` as (name, nice value), from /proc.
#[cfg(target_os = "linux")]
fn threads(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the name (which may hold spaces) start at field 3; nice is 19.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        out.push((name.trim().to_string(), fields[16].parse().unwrap()));
    }
    out
}

/// The fold thread and the checkpointer run 10 nice levels below the runtime's workers
/// by default, and at the same level with `--background-nice 0`; the SQLite writer,
/// which every ingest answer waits for, keeps the workers' level either way.
#[cfg(target_os = "linux")]
#[test]
fn background_threads_run_nicer_than_the_workers() {
    for (extra, expected) in [(&[][..], 10), (&["--background-nice", "0"][..], 0)] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("b.db"), extra);
        let all = threads(server.pid());
        let nice_of = |name: &str| {
            all.iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no thread {name}: {all:?}"))
                .1
        };
        // Relative to the workers (this test may itself run under `nice`), at most 19.
        let workers = nice_of("tokio-rt-worker");
        for name in ["burnrate-fold", "burnrate-checkp"] {
            assert_eq!(
                nice_of(name),
                (workers + expected).min(19),
                "{extra:?}: {all:?}"
            );
        }
        assert_eq!(nice_of("burnrate-writer"), workers, "{extra:?}: {all:?}");
    }
}
