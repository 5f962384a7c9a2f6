//! `burnrate bench ...`: benchmarks that start the real server as a child process on
//! loopback and measure it from outside, the way a client sees it.

use crate::demo::{DemoConfig, DemoGenerator};
use anyhow::{bail, Context};
use clap::Subcommand;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Batched ingest throughput and single-event latency against a fresh server.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Concurrent clients; enough of them keep the writer busy while others parse.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Single-event requests per second for the latency run.
        #[arg(long, default_value_t = 2_000)]
        rps: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Keep the database here instead of a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Measure a server that is already running (with --key) instead of starting one.
        #[arg(long, requires = "key")]
        url: Option<String>,
        #[arg(long)]
        key: Option<String>,
    },
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest {
            events,
            batch,
            clients,
            rps,
            seconds,
            dir,
            url,
            key,
        } => bench_ingest(events, batch, clients, rps, seconds, dir, url.zip(key)).await,
    }
}

/// A `burnrate serve` child process on a free loopback port.
pub struct ServerProcess {
    child: Child,
    pub url: String,
}

impl ServerProcess {
    pub fn start(db: &Path, extra: &[&str]) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .args([
                "--db",
                db.to_str().context("db path")?,
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(line) => {
                    if let Some(url) = line?.strip_prefix("listening on ") {
                        break url.to_string();
                    }
                }
                None => bail!("the server exited before listening"),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerProcess { child, url })
    }

    /// SIGTERM, then wait: the graceful path a real deployment takes.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait()?;
        Ok(())
    }
}

fn create_key(db: &Path, scope: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--db",
            db.to_str().context("db path")?,
            "keys",
            "create",
            "--scope",
            scope,
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

async fn bench_ingest(
    events: usize,
    batch: usize,
    clients: usize,
    rps: u64,
    seconds: u64,
    dir: Option<PathBuf>,
    target: Option<(String, String)>,
) -> anyhow::Result<()> {
    let tmp = tempdir(dir)?;
    let db = tmp.join("bench.db");
    let (server, url, key) = match target {
        Some((url, key)) => (None, url, key),
        None => {
            let key = create_key(&db, "ingest")?;
            let server = ServerProcess::start(&db, &["--ingest-rate", "0"])?;
            let url = server.url.clone();
            (Some(server), url, key)
        }
    };
    let now = jiff::Timestamp::now().as_millisecond();

    println!("generating {events} events in batches of {batch} ...");
    let generator = DemoGenerator::new(DemoConfig {
        days: 30,
        events: events as u64,
        end_ms: now,
        seed: 1,
    });
    let all: Vec<serde_json::Value> = generator.collect();
    let raw_bytes: usize = all.iter().map(|e| e.to_string().len() + 1).sum();
    let bodies: Arc<Vec<String>> = Arc::new(
        all.chunks(batch)
            .map(|c| serde_json::to_string(c).unwrap())
            .collect(),
    );
    let total_events = all.len();
    drop(all);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, bodies, next, url, key) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            url.clone(),
            key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let resp = client
                    .post(format!("{url}/v1/ingest/batch"))
                    .header("X-API-Key", &key)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if resp.status() != reqwest::StatusCode::ACCEPTED {
                    bail!("batch {i}: HTTP {}", resp.status());
                }
                let v: serde_json::Value = resp.json().await?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
            anyhow::Ok(accepted)
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let db_bytes = file_size(&db) + file_size(&tmp.join("bench.db-wal"));

    println!("single-event latency at {rps} requests/s for {seconds}s ...");
    let latencies = single_latency(&client, &url, &key, rps, seconds, now).await?;
    if let Some(server) = server {
        server.stop()?;
    }
    let db_bytes_after = file_size(&db);

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!();
    println!("machine: {cores} cores");
    println!(
        "batched ingest: {total_events} events ({accepted} accepted) in {elapsed:.2}s = {:.0} events/s ({clients} clients, {batch} events/batch, synchronous=FULL)",
        total_events as f64 / elapsed
    );
    println!(
        "single event: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    let per_million = |b: u64| b as f64 / (total_events as f64 / 1e6) / 1e6;
    println!(
        "database: {:.1} MB per million events after checkpoint ({:.1} MB incl. WAL during the run); raw NDJSON {:.1} MB per million",
        per_million(db_bytes_after),
        per_million(db_bytes),
        per_million(raw_bytes as u64)
    );
    Ok(())
}

/// Open-loop: requests are sent on schedule whether or not earlier ones finished, so a
/// slow server shows up as latency instead of hiding behind a slower send rate.
async fn single_latency(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    rps: u64,
    seconds: u64,
    now: i64,
) -> anyhow::Result<Vec<Duration>> {
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rps.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let count = rps * seconds;
    let mut tasks = Vec::with_capacity(count as usize);
    let ts = jiff::Timestamp::from_millisecond(now)?.to_string();
    for i in 0..count {
        ticker.tick().await;
        let body = serde_json::json!({
            "externalRequestId": format!("single-{now}-{i}"), "timestamp": ts, "provider": "openai",
            "model": "gpt-4o-mini", "endpointTag": "bench.single", "inputTokens": 1200,
            "cachedTokens": 200, "outputTokens": 300, "status": "success", "dataMode": "test"
        })
        .to_string();
        let (client, url, key) = (client.clone(), url.to_string(), key.to_string());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = client
                .post(format!("{url}/v1/ingest/llm-request"))
                .header("X-API-Key", key)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await?;
            let status = resp.status();
            resp.bytes().await?;
            if status != reqwest::StatusCode::ACCEPTED {
                bail!("single event: HTTP {status}");
            }
            anyhow::Ok(t.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for t in tasks {
        latencies.push(t.await??);
    }
    latencies.sort();
    Ok(latencies)
}

fn tempdir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("burnrate-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    for f in ["bench.db", "bench.db-wal", "bench.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Ok(dir)
}
