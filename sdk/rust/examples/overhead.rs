//! The work `track()` adds to the caller's thread, in ns per call.
//!
//!     cargo run -p burnrate-client --release --example overhead
//!
//! Sends to BURNRATE_URL / BURNRATE_API_KEY when set, else to a built-in local sink
//! that answers 202 to everything. Prints the mean and percentiles of
//! (a) building an event from a provider usage object and tracking it, and
//! (b) track() alone with a prebuilt event.

use burnrate_client::{usage, Client, Event};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A minimal HTTP/1.1 sink on 127.0.0.1: answers `202 {}` with keep-alive.
fn sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}";
                    if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn report(name: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    let pct = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<44} mean {mean:>7.0} ns  p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns",
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
}

fn main() {
    let client = match (
        std::env::var("BURNRATE_URL"),
        std::env::var("BURNRATE_API_KEY"),
    ) {
        (Ok(_), Ok(_)) => Client::from_env(),
        _ => Client::new(sink(), "br_bench"),
    };
    let response = serde_json::json!({"id": "chatcmpl-1", "model": "gpt-4o-mini", "usage": {
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 192}}});
    let (rounds, per_round) = (200, 1_000);

    // warm-up
    for _ in 0..per_round {
        client.track(Event::new("openai", "gpt-4o-mini", "bench"));
    }
    client.flush_blocking(Duration::from_secs(10));

    let mut full = Vec::with_capacity(rounds * per_round);
    let mut bare = Vec::with_capacity(rounds * per_round);
    let started = Instant::now();
    for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            let e = Event::new("openai", "gpt-4o-mini", "support.reply")
                .tenant_id("acme")
                .latency(Duration::from_millis(830))
                .usage(usage::openai_chat(&response));
            client.track(e);
            full.push(t.elapsed().as_nanos() as u64);
        }
        let prebuilt: Vec<Event> = (0..per_round)
            .map(|_| Event::new("openai", "gpt-4o-mini", "support.reply"))
            .collect();
        for e in prebuilt {
            let t = Instant::now();
            client.track(e);
            bare.push(t.elapsed().as_nanos() as u64);
        }
        // let the worker keep up, as an app between LLM calls would
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall = started.elapsed();
    let flushed = client.flush_blocking(Duration::from_secs(10));
    report("Event::new + usage::openai_chat + track()", full);
    report("track() alone", bare);
    let s = client.stats();
    println!(
        "{} events in {wall:?}; flushed: {flushed}; sent {} dropped_queue_full {} dropped_after_retries {}",
        s.enqueued, s.sent, s.dropped_queue_full, s.dropped_after_retries
    );
}
