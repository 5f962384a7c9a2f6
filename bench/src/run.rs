//! The benchmarks: each starts the real `burnrate` binary as a child process on loopback
//! (through the harness the end-to-end tests use) and measures it from outside, the way a
//! client sees it. Their data is the realistic demo profile unless `--profile small` asks
//! for the demo's story.

use crate::flags::{Baselines, BenchCommand};
use anyhow::{bail, Context};
use burnrate::cli::profile::ProfileArgs;
use burnrate::demo::profile::Profile;
use burnrate::demo::DemoConfig;
use burnrate_harness::Server;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
            time_ordered,
            store,
            nodes,
            profile,
            baselines,
        } => {
            let load = Load {
                events,
                batch,
                clients,
                time_ordered,
                profile: profile.resolve(DEFAULT_PROFILE)?,
            };
            let target = match url.zip(key) {
                Some(running) => Target::Running(running),
                None => Target::Start { store, nodes },
            };
            bench_ingest(load, rps, seconds, dir, target, baselines).await
        }
        BenchCommand::Query(b) => bench_query(&b).await,
        BenchCommand::Guard {
            rps,
            ingest_rate,
            seconds,
            members,
            profile,
        } => {
            let profile = profile.resolve(DEFAULT_PROFILE)?;
            bench_guard(rps, ingest_rate, seconds, members, profile).await
        }
        BenchCommand::Explain(b) => {
            bench_explain(b.events, &b.dir, b.rounds, &b.profile, b.store.as_deref()).await
        }
    }
}

const DEFAULT_PROFILE: &str = "realistic";

/// The baselines' scripts, carried in the binary so `--baselines` runs from anywhere.
const NAIVE_SQLITE: &str = include_str!("../naive_sqlite.py");
const DUCKDB_READS: &str = include_str!("../duckdb_reads.py");

/// Run a baseline script with `args` under `python`; it prints one JSON line.
fn run_baseline(python: &str, script: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {python}"))?;
    if !out.status.success() {
        bail!("the baseline script failed under {python} (DuckDB's needs `{python} -m pip install duckdb`)");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .last()
        .context("the baseline script printed nothing")?;
    Ok(serde_json::from_str(last)?)
}

/// The events of the request bodies as NDJSON, in the order they are sent.
fn write_ndjson(bodies: &[String], path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for body in bodies {
        let events: Vec<&serde_json::value::RawValue> = serde_json::from_str(body)?;
        for e in events {
            out.write_all(e.get().as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `events` demo calls over 30 days ending now, of a profile (`None`: the small demo).
fn demo_events(
    profile: Option<Profile>,
    events: u64,
    seed: u64,
) -> Box<dyn Iterator<Item = serde_json::Value> + Send> {
    let config = DemoConfig {
        days: 30,
        events,
        end_ms: jiff::Timestamp::now().as_millisecond(),
        seed,
        incidents: true,
    };
    burnrate::demo::profile::events(profile, config)
}

fn profile_label(profile: &Option<Profile>) -> String {
    match profile {
        None => "small demo profile".into(),
        Some(p) => format!(
            "realistic profile: {} tenants, {} users, {} endpoints, {} prompt versions, {} models, {:.0}% retries, {:.0}% late by up to {} h",
            p.tenants,
            p.users,
            p.endpoints,
            p.prompt_versions,
            p.models,
            p.retry_share * 100.0,
            p.late_share * 100.0,
            p.max_late_ms / 3_600_000
        ),
    }
}

/// The `burnrate` binary the benchmarks start: `BURNRATE_BIN`, else the one built beside
/// this binary (`cargo build --release` builds both into target/release).
fn burnrate_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("BURNRATE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let me = std::env::current_exe()?;
    let bin = me.with_file_name(format!("burnrate{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        bin.exists(),
        "no burnrate binary at {} (build it: cargo build --release, or set BURNRATE_BIN)",
        bin.display()
    );
    Ok(bin)
}

/// The real server over `db` on a free loopback port, its log (stderr) appended to a
/// file beside `db` (`<db>.node-N.log`, N counting the nodes this run started), so a
/// node that exits or errors during a run can be looked at afterwards.
fn start_server(db: &Path, extra: &[&str]) -> anyhow::Result<Server> {
    static NODES: AtomicUsize = AtomicUsize::new(0);
    let n = NODES.fetch_add(1, Ordering::Relaxed);
    let log = PathBuf::from(format!("{}.node-{n}.log", db.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    eprintln!("node {n} log: {}", log.display());
    Ok(Server::spawn(
        &burnrate_bin()?,
        db,
        extra,
        Stdio::from(file),
    )?)
}

/// The servers `bench ingest` measures.
enum Target {
    /// One already running: (URL, ingest key).
    Running((String, String)),
    /// `nodes` servers started on `store` (None: a fresh SQLite file).
    Start { store: Option<String>, nodes: usize },
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) ends with ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5); `fields` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// The ClickHouse server processes on this machine (what a ClickHouse store's CPU is).
fn clickhouse_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("clickhouse"))
        })
        .collect()
}

fn create_key(db: &Path, scope: &str) -> anyhow::Result<String> {
    create_key_with(db, &[], scope)
}

/// A key made by `burnrate [flags] keys create` (e.g. flags `--store URL`).
fn create_key_with(db: &Path, flags: &[&str], scope: &str) -> anyhow::Result<String> {
    let mut args = flags.to_vec();
    args.extend(["keys", "create", "--workspace", "default", "--scope", scope]);
    let out = burnrate_harness::cli(&burnrate_bin()?, db, &args)?;
    anyhow::ensure!(
        out.status.success(),
        "creating a key failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// What `bench ingest` sends: `events` demo calls in bodies of `batch` events.
struct Load {
    events: usize,
    batch: usize,
    clients: usize,
    time_ordered: bool,
    profile: Option<Profile>,
}

/// The load's request bodies and the size of its events as NDJSON. The small demo
/// draws times at random, so it is sorted by time as live traffic would be; the
/// realistic profile is already in arrival order.
fn ingest_bodies_of(load: &Load) -> (Vec<String>, usize, usize) {
    let mut events = demo_events(load.profile.clone(), load.events as u64, 1);
    if load.profile.is_none() || load.time_ordered {
        let mut all: Vec<serde_json::Value> = events.collect();
        all.sort_by_cached_key(|e| {
            e["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or(0, |t| t.as_millisecond())
        });
        events = Box::new(all.into_iter());
    }
    let (mut bodies, mut count, mut raw_bytes) = (Vec::new(), 0, 0);
    let mut chunk = Vec::with_capacity(load.batch);
    for e in events {
        count += 1;
        raw_bytes += e.to_string().len() + 1;
        chunk.push(e);
        if chunk.len() == load.batch {
            bodies.push(serde_json::to_string(&chunk).unwrap_or_default());
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        bodies.push(serde_json::to_string(&chunk).unwrap_or_default());
    }
    (bodies, count, raw_bytes)
}

async fn bench_ingest(
    load: Load,
    rps: u64,
    seconds: u64,
    dir: Option<PathBuf>,
    target: Target,
    baselines: Baselines,
) -> anyhow::Result<()> {
    let tmp = tempdir(dir)?;
    let db = tmp.join("bench.db");
    // The bench's own SQLite file, whose size is reported (None: another store).
    let mut store_label = Some("SQLite, synchronous=FULL".to_string());
    let (servers, urls, key) = match target {
        Target::Running((url, key)) => (Vec::new(), vec![url], key),
        Target::Start { store, nodes } => {
            let mut extra = vec!["--ingest-rate", "0"];
            if let Some(store) = &store {
                extra.extend(["--store", store.as_str()]);
                store_label = None;
                println!(
                    "store: {}",
                    burnrate::store::StoreUrl::parse(store)?.describe()
                );
            }
            let key = create_key_with(&db, &extra[2..], "ingest")?;
            let servers = (0..nodes.max(1))
                .map(|_| start_server(&db, &extra))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let urls = servers.iter().map(|s| s.url.clone()).collect();
            (servers, urls, key)
        }
    };
    let url = urls[0].clone();
    let now = jiff::Timestamp::now().as_millisecond();

    let (batch, clients) = (load.batch, load.clients);
    println!(
        "generating {} calls in batches of {batch} events ({}) ...",
        load.events,
        profile_label(&load.profile)
    );
    let (bodies, total_events, raw_bytes) = ingest_bodies_of(&load);
    let ndjson = tmp.join("events.ndjson");
    if baselines.baselines {
        write_ndjson(&bodies, &ndjson)?;
    }
    let bodies = Arc::new(bodies);
    let order = if load.profile.is_none() || load.time_ordered {
        "time order"
    } else {
        "arrival order"
    };

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    // Single events at `rps` for as long as the batch load runs (at most `seconds`).
    let loading = Arc::new(AtomicBool::new(true));
    let single = tokio::spawn(single_latency(
        client.clone(),
        url.clone(),
        key.clone(),
        rps,
        seconds,
        now,
        loading.clone(),
    ));
    let server_pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    let clickhouse = clickhouse_pids();
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>();
    let cpu_before = (
        cpu(&server_pids),
        cpu(&clickhouse),
        cpu_seconds(std::process::id()),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, bodies, next, url, key) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            urls[c % urls.len()].clone(),
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
    loading.store(false, Ordering::Relaxed);
    let cpu_used = (
        cpu(&server_pids) - cpu_before.0,
        cpu(&clickhouse) - cpu_before.1,
        cpu_seconds(std::process::id()) - cpu_before.2,
    );
    let latencies = single.await??;
    let db_bytes = file_size(&db) + file_size(&tmp.join("bench.db-wal"));
    let rss: Vec<f64> = server_pids.iter().map(|p| rss_mb(*p)).collect();
    for server in servers {
        server.stop()?;
    }
    let db_bytes_after = file_size(&db);
    let naive = if baselines.baselines {
        println!("the same events through the naive SQLite script ...");
        let naive_db = tmp.join("naive.db");
        let args = [
            ndjson.to_str().context("path")?,
            naive_db.to_str().context("path")?,
        ];
        Some(run_baseline(&baselines.python, NAIVE_SQLITE, &args)?)
    } else {
        None
    };

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!();
    println!("machine: {cores} cores");
    println!(
        "batched ingest: {total_events} events ({accepted} accepted) in {elapsed:.2}s = {:.0} events/s ({clients} clients over {} node(s), {batch} events/batch, {order}, {})",
        total_events as f64 / elapsed,
        urls.len(),
        store_label.as_deref().unwrap_or("the store above")
    );
    let millions = total_events as f64 / 1e6;
    println!(
        "CPU seconds per million events during the load: burnrate node(s) {:.1}, ClickHouse server(s) {:.1}, this benchmark's clients {:.1}",
        cpu_used.0 / millions,
        cpu_used.1 / millions,
        cpu_used.2 / millions
    );
    println!("data: {}", profile_label(&load.profile));
    if let Some(naive) = naive {
        let rate = naive["eventsPerSecond"].as_f64().unwrap_or(0.0);
        println!(
            "naive SQLite script, same events, same order: {rate:.0} events/s; burnrate is {:.2}x",
            total_events as f64 / elapsed / rate.max(1.0)
        );
    }
    for rss in rss {
        println!("server RSS after the load: {rss:.0} MB");
    }
    println!(
        "single event while the batch load ran: {} requests at {rps}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    let per_million = |b: u64| b as f64 / (total_events as f64 / 1e6) / 1e6;
    if store_label.is_none() {
        return Ok(());
    }
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
    client: reqwest::Client,
    url: String,
    key: String,
    rps: u64,
    seconds: u64,
    now: i64,
    running: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rps.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let count = rps * seconds;
    let mut tasks = Vec::with_capacity(count as usize);
    let ts = jiff::Timestamp::from_millisecond(now)?.to_string();
    for i in 0..count {
        ticker.tick().await;
        if !running.load(Ordering::Relaxed) {
            break;
        }
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

/// Where a run keeps its database: the `--dir` given (kept afterwards, for a look at the
/// file), else a fresh temporary directory removed when the run ends (a bench run writes
/// gigabytes; left behind, runs fill the disk).
enum BenchDir {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl std::ops::Deref for BenchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        match self {
            BenchDir::Kept(dir) => dir,
            BenchDir::Temporary(dir) => dir.path(),
        }
    }
}

fn tempdir(dir: Option<PathBuf>) -> anyhow::Result<BenchDir> {
    let Some(dir) = dir else {
        return Ok(BenchDir::Temporary(
            tempfile::Builder::new()
                .prefix("burnrate-bench-")
                .tempdir()?,
        ));
    };
    std::fs::create_dir_all(&dir)?;
    for f in ["bench.db", "bench.db-wal", "bench.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Ok(BenchDir::Kept(dir))
}

/// Fill `db` with demo events (30 days) through the normal CLI path; returns the size of
/// the same events as NDJSON, for comparing storage.
/// Write the demo's events to `ndjson` (`burnrate demo --out`), then load that file into
/// the store with `burnrate import`: the store and the baselines read the same events.
fn fill_store(
    db: &Path,
    store: &[&str],
    ndjson: &Path,
    events: u64,
    profile: &ProfileArgs,
) -> anyhow::Result<u64> {
    let resolved = profile.resolve(DEFAULT_PROFILE)?;
    // The small demo draws times at random: written in time order, as live traffic
    // would be. The realistic profile is written as it arrives, late calls included.
    let order: &[&str] = match resolved {
        None => &["--time-ordered"],
        Some(_) => &[],
    };
    let ndjson_text = ndjson.to_str().context("ndjson path")?;
    let run = |args: &[&str], what: &str| -> anyhow::Result<()> {
        let status = std::process::Command::new(burnrate_bin()?)
            .args(["--db", db.to_str().context("db path")?])
            .args(store)
            .args(args)
            .status()?;
        anyhow::ensure!(status.success(), "burnrate {what} failed");
        Ok(())
    };
    let demo = [
        "demo",
        "--events",
        &events.to_string(),
        "--seed",
        "42",
        "--out",
        ndjson_text,
    ];
    let profile_flags = profile.to_args(DEFAULT_PROFILE);
    let mut args: Vec<&str> = demo.to_vec();
    args.extend(order);
    args.extend(profile_flags.iter().map(String::as_str));
    run(&args, "demo --out")?;
    run(&["import", ndjson_text], "import")?;
    Ok(file_size(ndjson))
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The store of demo events that `bench query` and `bench explain` share: generated once
/// into `dir`, reused while a marker says it holds `events` of the same profile (and,
/// when `keep_ndjson`, the events file the baselines read is still there). Returns the
/// database and the size of the same events as NDJSON.
fn bench_store(
    events: u64,
    dir: &Path,
    profile: &ProfileArgs,
    keep_ndjson: bool,
    store: &[&str],
) -> anyhow::Result<(PathBuf, u64)> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join("query.db");
    let ndjson = dir.join("events.ndjson");
    let flags = profile.to_args(DEFAULT_PROFILE).join("_").replace("--", "");
    // A store other than the SQLite file has a marker of its own (its URL, made a name).
    let store_mark: String = store
        .last()
        .map(|url| {
            let plain: String = url
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("-{plain}")
        })
        .unwrap_or_default();
    let marker = dir.join(format!("filled-{events}-{flags}{store_mark}"));
    let ndjson_bytes = if marker.exists() && (!keep_ndjson || ndjson.exists()) {
        std::fs::read_to_string(&marker)?
            .trim()
            .parse()
            .unwrap_or(0)
    } else {
        for f in ["query.db", "query.db-wal", "query.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_file(&marker);
        println!(
            "generating {events} demo calls over 30 days, {} (once; kept in {}) ...",
            profile_label(&profile.resolve(DEFAULT_PROFILE)?),
            dir.display()
        );
        let started = Instant::now();
        let bytes = fill_store(&db, store, &ndjson, events, profile)?;
        if !keep_ndjson {
            std::fs::remove_file(&ndjson)?;
        }
        println!("  done in {:.0}s", started.elapsed().as_secs_f64());
        std::fs::write(&marker, bytes.to_string())?;
        bytes
    };
    Ok((db, ndjson_bytes))
}

async fn bench_query(b: &crate::flags::ReadBench) -> anyhow::Result<()> {
    let (events, dir, rounds, profile, baselines) = (
        b.events,
        b.dir.as_path(),
        b.rounds,
        &b.profile,
        &b.baselines,
    );
    let store: Vec<&str> = match &b.store {
        Some(url) => vec!["--store", url.as_str()],
        None => Vec::new(),
    };
    let (db, ndjson_bytes) = bench_store(events, dir, profile, baselines.baselines, &store)?;
    let key = create_key_with(&db, &store, "read")?;
    let server = start_server(&db, &store)?;
    if let Some(url) = &b.store {
        println!(
            "store: {}",
            burnrate::store::StoreUrl::parse(url)?.describe()
        );
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = client
        .post(format!("{}/login", server.url))
        .header("Origin", &server.url)
        .form(&[("key", key.as_str())])
        .send()
        .await?;
    let cookie = login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("burnrate_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .context("dashboard login gave no session cookie")?;
    let now = jiff::Timestamp::now();
    let days_ago = |d: i64| (now - jiff::SignedDuration::from_hours(24 * d)).to_string();
    let (week, month) = (days_ago(7), days_ago(30));
    let d = "dataMode=demo";
    let gets: Vec<(String, String)> = vec![
        ("summary 24h".into(), format!("/v1/summary?{d}")),
        ("top endpoints 24h".into(), format!("/v1/top/endpoints?{d}")),
        (
            "top endpoints 7d".into(),
            format!("/v1/top/endpoints?{d}&from={week}"),
        ),
        ("top tenants 24h".into(), format!("/v1/top/tenants?{d}")),
        (
            "top tenants 30d".into(),
            format!("/v1/top/tenants?{d}&from={month}"),
        ),
        ("top users 24h".into(), format!("/v1/top/users?{d}")),
        (
            "top users 7d".into(),
            format!("/v1/top/users?{d}&from={week}"),
        ),
        (
            "top prompt-versions 24h".into(),
            format!("/v1/top/prompt-versions?{d}"),
        ),
        (
            "top models 7d".into(),
            format!("/v1/top/models?{d}&from={week}"),
        ),
        (
            "timeseries hour by endpoint 24h".into(),
            format!("/v1/timeseries?{d}&bucket=hour&by=endpointTag"),
        ),
        (
            "timeseries day by model 30d".into(),
            format!("/v1/timeseries?{d}&bucket=day&by=model&from={month}"),
        ),
        (
            "prompt-versions 7d".into(),
            format!("/v1/prompt-versions?{d}&from={week}"),
        ),
        (
            "concentration tenants 24h".into(),
            format!("/v1/concentration?{d}&by=tenantId"),
        ),
        ("events page".into(), format!("/v1/events?{d}&limit=50")),
        ("page overview 24h".into(), format!("/?{d}&range=24h")),
        ("page overview 7d".into(), format!("/?{d}&range=7d")),
        (
            "page endpoints 7d".into(),
            format!("/endpoints?{d}&range=7d"),
        ),
        ("page tenants 7d".into(), format!("/tenants?{d}&range=7d")),
        (
            "page users 24h".into(),
            format!("/tenants?{d}&range=24h&dim=userId"),
        ),
        (
            "page users 7d".into(),
            format!("/tenants?{d}&range=7d&dim=userId"),
        ),
        ("page versions 7d".into(), format!("/versions?{d}&range=7d")),
        ("page models 7d".into(), format!("/models?{d}&range=7d")),
        ("page requests".into(), format!("/requests?{d}&range=24h")),
    ];
    let query_body = serde_json::json!({"from": week, "groupBy": ["model", "endpointTag"], "filters": {"dataMode": "demo"}, "measures": ["requests", "costUsd", "costPerRequest"]});
    println!("{:<34} {:>10} {:>10}", "call", "p50 ms", "p95 ms");
    let mut worst: (String, f64) = (String::new(), 0.0);
    let mut medians: Vec<(String, f64)> = Vec::new();
    let mut measure = |name: &str, mut times: Vec<Duration>| {
        times.sort();
        let (p50, p95) = (
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
        );
        println!("{name:<34} {p50:>10.2} {p95:>10.2}");
        medians.push((name.to_string(), p50));
        if p95 > worst.1 {
            worst = (name.to_string(), p95);
        }
    };
    'calls: for (name, path) in &gets {
        let mut times = Vec::with_capacity(rounds);
        for i in 0..rounds + 3 {
            let started = Instant::now();
            let sent = client
                .get(format!("{}{path}", server.url))
                .header("X-API-Key", &key)
                .header("Cookie", &cookie)
                .send()
                .await;
            // A call the server does not answer (its request timeout closes the
            // connection) is reported and skipped, so the other calls are still measured.
            let failed = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(_) if status.is_success() => None,
                        Ok(_) => Some(format!("HTTP {status}")),
                        Err(e) => Some(e.to_string()),
                    }
                }
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = failed {
                let secs = started.elapsed().as_secs_f64();
                println!("{name:<34} failed after {secs:.1} s: {error}");
                continue 'calls;
            }
            if i >= 3 {
                times.push(started.elapsed());
            }
        }
        measure(name, times);
    }
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds + 3 {
        let started = Instant::now();
        let resp = client
            .post(format!("{}/v1/query", server.url))
            .header("X-API-Key", &key)
            .json(&query_body)
            .send()
            .await?;
        resp.bytes().await?;
        if i >= 3 {
            times.push(started.elapsed());
        }
    }
    measure("query model x endpoint 7d", times);
    let rss = rss_mb(server.pid());
    server.stop()?;
    let db_bytes = file_size(&db) + file_size(&dir.join("query.db-wal"));
    println!();
    let label = profile_label(&profile.resolve(DEFAULT_PROFILE)?);
    match &b.store {
        // Another store's size is its server's business: not a file here.
        Some(_) => println!("store: {events} demo calls over 30 days ({label})"),
        None => println!(
            "store: {events} demo calls over 30 days ({label}); {:.0} MB on disk vs {:.0} MB as NDJSON ({:.0}%)",
            db_bytes as f64 / 1e6,
            ndjson_bytes as f64 / 1e6,
            db_bytes as f64 / ndjson_bytes.max(1) as f64 * 100.0
        ),
    }
    println!(
        "server RSS after the run: {rss:.0} MB; slowest p95: {} ({:.1} ms)",
        worst.0, worst.1
    );
    if baselines.baselines {
        compare_with_duckdb(&medians, &dir.join("events.ndjson"), now, rounds, baselines)?;
    }
    Ok(())
}

/// DuckDB's median for each call it has an equivalent of, beside burnrate's.
fn compare_with_duckdb(
    medians: &[(String, f64)],
    ndjson: &Path,
    now: jiff::Timestamp,
    rounds: usize,
    baselines: &Baselines,
) -> anyhow::Result<()> {
    println!("the same calls as DuckDB GROUP BYs over the same events (in memory) ...");
    let args = [
        ndjson.to_str().context("path")?,
        &now.as_millisecond().to_string(),
        &rounds.to_string(),
    ];
    let duck = run_baseline(&baselines.python, DUCKDB_READS, &args)?;
    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "call", "burnrate", "duckdb", "ratio"
    );
    for (name, ours) in medians {
        if let Some(theirs) = duck[name.as_str()].as_f64() {
            println!(
                "{name:<34} {ours:>10.2} {theirs:>10.2} {:>8.2}",
                ours / theirs.max(1e-6)
            );
        }
    }
    Ok(())
}

const GUARD_TENANTS: usize = 50;

/// A server with budgets for the profile's 50 biggest tenants, a budget for each tenant
/// (`"*"`), a workspace budget and a rate cap; the profile's events of the last day ingested at `ingest_rate` events/s in
/// the background, guard calls at `rps` (open loop), each reserving against its
/// tenant's budget. (The small demo names its tenants otherwise: with it only the
/// workspace budget sees the ingest.)
async fn bench_guard(
    rps: u64,
    ingest_rate: u64,
    seconds: u64,
    members: usize,
    profile: Option<Profile>,
) -> anyhow::Result<()> {
    guard_members_in_process(members);
    let tmp = tempdir(None)?;
    let db = tmp.join("bench.db");
    let key = create_key(&db, "admin")?;
    let server = start_server(&db, &["--ingest-rate", "0"])?;
    let url = server.url.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{url}{path}"))
            .header("X-API-Key", &key)
            .json(&body)
    };
    for t in 0..GUARD_TENANTS {
        post(
            "/v1/budgets",
            serde_json::json!({"name": guard_tenant(t), "period": "day", "limitUsd": 1000,
                "action": "block", "scope": {"tenantId": guard_tenant(t)}}),
        )
        .send()
        .await?
        .error_for_status()?;
    }
    post(
        "/v1/budgets",
        serde_json::json!({"name": "all", "period": "month", "limitUsd": 100000, "action": "block"}),
    )
    .send()
    .await?
    .error_for_status()?;
    let each: serde_json::Value = post("/v1/budgets", each_tenant_budget("each tenant"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let each_id = each["id"].as_i64().context("budget id")?;
    post(
        "/v1/rate-caps",
        serde_json::json!({"endpointTag": "bench.guard", "perTenant": true, "requestsPerMinute": 1000000}),
    )
    .send()
    .await?
    .error_for_status()?;

    let now = jiff::Timestamp::now().as_millisecond();
    let (decision_p50, decision_p99) = guard_decision_in_process(now);
    println!(
        "guard decision in process (51 budgets, a commit of 500 events applied every 25 ms meanwhile): p50 {:.1} us, p99 {:.1} us",
        decision_p50, decision_p99
    );
    let ingest_batches = ingest_bodies(ingest_rate * (seconds + 1), now, profile);
    let guard_bodies: Vec<String> = (0..rps * seconds)
        .map(|i| {
            serde_json::json!({
                "endpointTag": "bench.guard", "tenantId": guard_tenant(i as usize % GUARD_TENANTS),
                "estimatedCostUsd": 0.002, "externalRequestId": format!("guard-{now}-{i}")
            })
            .to_string()
        })
        .collect();
    let ingest = tokio::spawn(background_ingest(
        client.clone(),
        url.clone(),
        key.clone(),
        ingest_rate,
        ingest_batches,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("guard at {rps} calls/s for {seconds}s while ingesting {ingest_rate} events/s ...");
    let served_before = guard_histogram(&client, &url, &key).await?;
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rps.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // Bodies were made before the clock started: the client's work is not the server's.
    let mut tasks = Vec::new();
    for body in guard_bodies {
        ticker.tick().await;
        let req = client
            .post(format!("{url}/v1/guard"))
            .header("X-API-Key", &key)
            .header("Content-Type", "application/json")
            .body(body);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = req.send().await?;
            let v: serde_json::Value = resp.json().await?;
            anyhow::Ok((t.elapsed(), v["allow"] == serde_json::json!(true)))
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut allowed = 0;
    for t in tasks {
        let (latency, allow) = t.await??;
        latencies.push(latency);
        allowed += allow as usize;
    }
    let served = histogram_delta(&guard_histogram(&client, &url, &key).await?, &served_before);
    let (ingested, ingest_secs) = ingest.await??;
    // A changed definition is loaded again at once: the grouped read of every member.
    let t = Instant::now();
    client
        .put(format!("{url}/v1/budgets/{each_id}"))
        .header("X-API-Key", &key)
        .json(&each_tenant_budget("each tenant (renamed)"))
        .send()
        .await?
        .error_for_status()?;
    let reload_ms = t.elapsed().as_secs_f64() * 1e3;
    let status: serde_json::Value = client
        .get(format!("{url}/v1/budgets/{each_id}/status"))
        .header("X-API-Key", &key)
        .send()
        .await?
        .json()
        .await?;
    let rss = rss_mb(server.pid());
    server.stop()?;
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!(
        "guard: {} calls ({allowed} allowed), p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms (client-side, loopback HTTP)",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 0.999)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    let served_ms = |q: f64| histogram_quantile(&served, q) * 1e3;
    println!(
        "guard: {} calls, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms (server-side: burnrate_guard_duration_seconds over the run, from the first read of a request's bytes to its answer handed to the connection; interpolated in its buckets)",
        served.last().map_or(0, |b| b.1),
        served_ms(0.5),
        served_ms(0.99),
        served_ms(0.999),
    );
    println!(
        "ingest meanwhile: {ingested} events in {ingest_secs:.1}s = {:.0} events/s; server RSS {rss:.0} MB",
        ingested as f64 / ingest_secs
    );
    println!(
        "per-tenant budget: {} members; reloading it (PUT, one grouped read) took {reload_ms:.1} ms",
        status["members"]["count"]
    );
    Ok(())
}

/// The server's guard histogram from `GET /metrics`: (upper bound in seconds, calls at
/// or under it), cumulative, `+Inf` last.
async fn guard_histogram(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> anyhow::Result<Vec<(f64, u64)>> {
    let text = client
        .get(format!("{url}/metrics"))
        .header("X-API-Key", key)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let buckets = burnrate_harness::histogram_buckets(&text, "burnrate_guard_duration_seconds");
    anyhow::ensure!(!buckets.is_empty(), "/metrics has no guard histogram");
    Ok(buckets)
}

/// `after - before`, bucket by bucket (both from the same server, same bounds).
fn histogram_delta(after: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .zip(before)
        .map(|(a, b)| (a.0, a.1.saturating_sub(b.1)))
        .collect()
}

/// The `q` quantile of a cumulative histogram, interpolated linearly inside its bucket
/// as Prometheus' `histogram_quantile` does (the lowest bucket from 0; past the last
/// finite bound, that bound).
fn histogram_quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0, |b| b.1);
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return lower;
            }
            let inside = (count - below) as f64;
            return lower + (bound - lower) * (rank - below as f64) / inside.max(1.0);
        }
        (lower, below) = (bound, count);
    }
    lower
}

/// A $1,000-a-day blocking budget for each tenant, counting the demo traffic the
/// benchmark ingests.
fn each_tenant_budget(name: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "period": "day", "limitUsd": 1000, "action": "block",
        "scope": {"tenantId": "*", "dataMode": "demo"}})
}

/// One per-tenant budget with `members` members in the counters, as a load installs
/// them: the memory it takes (this process's RSS before and after), how long installing
/// the load takes, the guard's decision for random members while another thread applies
/// 500-event commits over random members, and those commits' time.
fn guard_members_in_process(members: usize) {
    use burnrate::budget::counters::{Counters, GuardRequest, MemberSpend};
    let now = jiff::Timestamp::now().as_millisecond();
    let mut body = each_tenant_budget("each");
    body["planLimits"] = serde_json::json!({"free": 1, "pro": 50, "enterprise": null});
    let budget = burnrate::budget::parse_budget(1, &body).expect("valid budget");
    let counters = Arc::new(Counters::new(600_000));
    counters.configure(1, vec![budget.clone()], vec![]);
    let before = rss_mb(std::process::id());
    // Every member on a plan (1% enterprise, 9% pro, the rest free), as one stored batch
    // is read back at a reload: JSON text parsed, then folded.
    let assignments: Vec<burnrate::budget::plans::Assignment> = (0..members)
        .map(|m| {
            let plan = match m % 100 {
                0 => "enterprise",
                1..=9 => "pro",
                _ => "free",
            };
            (format!("tenant-{m}"), Some(plan.to_string()), None)
        })
        .collect();
    let text = burnrate::budget::plans::batch(&assignments).to_string();
    drop(assignments);
    let t = Instant::now();
    let stored = burnrate::store::StoredObject {
        id: 1,
        workspace: 1,
        body: serde_json::from_str(&text).expect("plan batch"),
        created_ms: 0,
        updated_ms: 0,
    };
    let plans = burnrate::budget::plans::fold(&[stored], 0);
    let plans_ms = t.elapsed().as_secs_f64() * 1e3;
    let plans_kb = text.len() / 1024;
    drop(text);
    counters.set_plans(1, Arc::new(plans));
    let t = Instant::now();
    let spend: MemberSpend = (0..members)
        .map(|m| {
            (
                format!("tenant-{m}").into_boxed_str(),
                (1_000 * m as i64, 0),
            )
        })
        .collect();
    let ticket = counters.begin_load(1, budget.id, budget.window(now).0);
    counters.finish_member_load(ticket, (0, 0), spend, 1);
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let grown = rss_mb(std::process::id()) - before;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (counters, stop) = (counters.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut times = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let effects: Vec<_> = (0..500)
                    .map(|_| {
                        n += 1;
                        let tenant = format!("tenant-{}", rand::random_range(0..members));
                        bench_effect(now, format!("w-{n}"), tenant)
                    })
                    .collect();
                let t = Instant::now();
                counters.apply(2, &effects);
                times.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(25));
            }
            times
        })
    };
    let mut times = Vec::with_capacity(200_000);
    for i in 0..200_000u64 {
        let req = GuardRequest {
            endpoint_tag: "bench.guard".into(),
            tenant_id: Some(format!("tenant-{}", rand::random_range(0..members))),
            estimate: Some(2_000),
            external_request_id: Some(format!("g-{i}")),
            ..GuardRequest::default()
        };
        let t = Instant::now();
        std::hint::black_box(counters.guard(1, &req, now));
        times.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let mut commits = writer.join().unwrap_or_default();
    times.sort();
    commits.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "per-tenant budget in process, {members} members, each on a plan: +{grown:.1} MB RSS with the plan map ({:.0} bytes a member); the plan batch ({plans_kb} KB of JSON) parsed and folded in {plans_ms:.1} ms; load installed in {load_ms:.1} ms; guard decision p50 {:.1} us, p99 {:.1} us (200,000 calls, random members, 200,000 reservations held); a 500-event commit applied in p50 {:.0} us, p99 {:.0} us ({} commits)",
        grown * 1024.0 * 1024.0 / members.max(1) as f64,
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.99)),
        us(percentile(&commits, 0.5)),
        us(percentile(&commits, 0.99)),
        commits.len(),
    );
}

fn bench_effect(now: i64, id: String, tenant: String) -> burnrate::store::SpendEffect {
    burnrate::store::SpendEffect {
        workspace: 1,
        external_request_id: Some(id),
        ts_ms: now,
        environment: burnrate::event::Environment::Prod,
        data_mode: burnrate::event::DataMode::Real,
        endpoint_tag: "bench.ingest".into(),
        tenant_id: Some(tenant),
        user_id: None,
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        tags: Default::default(),
        cost_delta: 1_000,
        unpriced_delta: 0,
        new_call_cost: Some(1_000),
    }
}

/// The guard's decision alone (counters, no HTTP): 200,000 calls on this thread while
/// another thread applies 500-event commits, as the writer does at 20,000 events/s.
fn guard_decision_in_process(now: i64) -> (f64, f64) {
    use burnrate::budget::counters::{Counters, GuardRequest};
    use burnrate::store::SpendEffect;
    let counters = Arc::new(Counters::new(600_000));
    let budgets: Vec<burnrate::budget::Budget> = (0..=GUARD_TENANTS)
        .filter_map(|t| {
            let scope = if t < GUARD_TENANTS {
                serde_json::json!({"tenantId": format!("tenant-{t}")})
            } else {
                serde_json::json!({})
            };
            let body = serde_json::json!({"name": format!("b{t}"), "period": "day",
                "limitUsd": 1_000_000, "action": "block", "scope": scope});
            burnrate::budget::parse_budget(t as i64 + 1, &body).ok()
        })
        .collect();
    counters.configure(1, budgets.clone(), vec![]);
    for b in &budgets {
        counters.load(1, b.id, b.window(now).0, 0, 0);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (counters, stop) = (counters.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let effects: Vec<SpendEffect> = (0..500)
                    .map(|i| {
                        n += 1;
                        SpendEffect {
                            workspace: 1,
                            external_request_id: Some(format!("w-{n}")),
                            ts_ms: now,
                            environment: burnrate::event::Environment::Prod,
                            data_mode: burnrate::event::DataMode::Real,
                            endpoint_tag: "bench.ingest".into(),
                            tenant_id: Some(format!("tenant-{}", i % GUARD_TENANTS)),
                            user_id: None,
                            model: "gpt-4o-mini".into(),
                            provider: "openai".into(),
                            tags: Default::default(),
                            cost_delta: 1_000,
                            unpriced_delta: 0,
                            new_call_cost: Some(1_000),
                        }
                    })
                    .collect();
                counters.apply(1, &effects);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    let mut times = Vec::with_capacity(200_000);
    for i in 0..200_000u64 {
        let req = GuardRequest {
            endpoint_tag: "bench.guard".into(),
            tenant_id: Some(format!("tenant-{}", i as usize % GUARD_TENANTS)),
            estimate: Some(2_000),
            external_request_id: Some(format!("g-{i}")),
            ..GuardRequest::default()
        };
        let t = Instant::now();
        std::hint::black_box(counters.guard(1, &req, now));
        times.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(percentile(&times, 0.5)), us(percentile(&times, 0.99)))
}

/// The realistic profile's tenant of that rank (its 50 biggest carry about half the
/// traffic).
fn guard_tenant(rank: usize) -> String {
    burnrate::demo::profile::tenant_name(rank as u32)
}

const BATCH: u64 = 500;

/// `calls` demo calls of the last day ending at `now`, as JSON batches of 500 events.
fn ingest_bodies(calls: u64, now: i64, profile: Option<Profile>) -> Vec<String> {
    let config = DemoConfig {
        days: 1,
        events: calls,
        end_ms: now,
        seed: now as u64,
        incidents: true,
    };
    let mut events = burnrate::demo::profile::events(profile, config).peekable();
    let mut bodies = Vec::new();
    while events.peek().is_some() {
        let batch: Vec<serde_json::Value> = events.by_ref().take(BATCH as usize).collect();
        bodies.push(serde_json::to_string(&batch).unwrap_or_default());
    }
    bodies
}

/// Send the batches on a schedule of `rate` events/s; returns (events accepted, seconds).
async fn background_ingest(
    client: reqwest::Client,
    url: String,
    key: String,
    rate: u64,
    bodies: Vec<String>,
) -> anyhow::Result<(u64, f64)> {
    let mut ticker =
        tokio::time::interval(Duration::from_nanos(1_000_000_000 * BATCH / rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for body in bodies {
        ticker.tick().await;
        let req = client
            .post(format!("{url}/v1/ingest/batch"))
            .header("X-API-Key", &key)
            .header("Content-Type", "application/json")
            .body(body);
        tasks.push(tokio::spawn(async move {
            let v: serde_json::Value = req.send().await?.json().await?;
            anyhow::Ok(v["accepted"].as_u64().unwrap_or(0))
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await??;
    }
    Ok((accepted, started.elapsed().as_secs_f64()))
}
/// p50 and p95 of `rounds` timed GETs of `path` after 3 warm-up ones.
async fn time_get(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    path: &str,
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds + 3 {
        let started = Instant::now();
        let resp = client
            .get(format!("{url}{path}"))
            .header("X-API-Key", key)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        if i >= 3 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok((ms(percentile(&times, 0.5)), ms(percentile(&times, 0.95))))
}

/// The gate call: the small demo's costly deploy over a week, or the realistic busiest
/// endpoint's two newest versions over the 30 days (a newer version can be older than
/// a week, and its baseline then has no calls in the last one).
/// None when a profile's busiest endpoint has fewer than two versions.
fn gate_call(profile: &Option<Profile>) -> Option<(&'static str, String)> {
    let Some(profile) = profile else {
        return Some((
            "gate summarize.doc v4 vs v3, 7d",
            "/v1/gate?dataMode=demo&endpointTag=summarize.doc&candidate=summarize_v4&baseline=summarize_v3".to_string(),
        ));
    };
    let (endpoint, candidate, baseline) = burnrate::demo::profile::gate_example(profile)?;
    Some((
        "gate busiest endpoint's newest versions, 30d",
        format!("/v1/gate?dataMode=demo&since=30d&endpointTag={endpoint}&candidate={candidate}&baseline={baseline}"),
    ))
}

async fn bench_explain(
    events: u64,
    dir: &Path,
    rounds: usize,
    profile: &ProfileArgs,
    store: Option<&str>,
) -> anyhow::Result<()> {
    let store: Vec<&str> = match store {
        Some(url) => vec!["--store", url],
        None => Vec::new(),
    };
    let (db, _) = bench_store(events, dir, profile, false, &store)?;
    let key = create_key_with(&db, &store, "read")?;
    let server = start_server(&db, &store)?;
    let client = reqwest::Client::new();
    let now = jiff::Timestamp::now().as_millisecond();
    const HOUR: i64 = 3_600_000;
    const WEEK: i64 = 7 * 24 * HOUR;
    let t = burnrate::report::rfc3339;
    let d = "dataMode=demo&by=endpointTag,tenantId,promptVersion";
    let hour = now.div_euclid(HOUR) * HOUR;
    let calls = [
        (
            "explain 7d vs 7d, 3 dims (to = now)",
            format!("/v1/explain?{d}&from={}&to={}", t(now - WEEK), t(now)),
        ),
        (
            "explain 7d vs 7d, 3 dims (whole hours)",
            format!("/v1/explain?{d}&from={}&to={}", t(hour - WEEK), t(hour)),
        ),
        (
            "explain 7d vs 7d, 4 dims (default by)",
            format!(
                "/v1/explain?dataMode=demo&from={}&to={}",
                t(now - WEEK),
                t(now)
            ),
        ),
        (
            "explain 24h vs 24h, 3 dims",
            format!("/v1/explain?{d}&from={}&to={}", t(now - WEEK / 7), t(now)),
        ),
    ]
    .into_iter()
    .chain(gate_call(&profile.resolve(DEFAULT_PROFILE)?));
    println!("{:<42} {:>10} {:>10}", "call", "p50 ms", "p95 ms");
    for (name, path) in calls {
        let (p50, p95) = time_get(&client, &server.url, &key, &path, rounds).await?;
        println!("{name:<42} {p50:>10.2} {p95:>10.2}");
    }
    let rss = rss_mb(server.pid());
    server.stop()?;
    println!();
    println!(
        "store: {events} demo calls over 30 days ({}); server RSS after the run: {rss:.0} MB",
        profile_label(&profile.resolve(DEFAULT_PROFILE)?)
    );
    Ok(())
}
