//! The flags of `burnrate-bench ...`; `run` runs them.

use burnrate::cli::profile::ProfileArgs;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Benchmarks of the real burnrate binary, measured from outside as a client sees it.
#[derive(Parser)]
#[command(name = "burnrate-bench", version)]
pub struct Bench {
    #[command(subcommand)]
    pub command: BenchCommand,
}

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
        /// Send the events sorted by timestamp (the small profile always is); by
        /// default the realistic profile's arrival order, with its late calls.
        #[arg(long)]
        time_ordered: bool,
        /// The servers' store (e.g. clickhouse://127.0.0.1:8123/bench, a database of its
        /// own); by default a fresh SQLite file in --dir.
        #[arg(long, conflicts_with = "url")]
        store: Option<String>,
        /// Servers started on the store; the clients spread over them.
        #[arg(long, default_value_t = 1, conflicts_with = "url")]
        nodes: usize,
        #[command(flatten)]
        profile: ProfileArgs,
        #[command(flatten)]
        baselines: Baselines,
    },
    /// Latency of every read API call and dashboard page over a store of demo events.
    Query(ReadBench),
    /// Guard latency at a fixed call rate while ingest runs at a fixed event rate.
    Guard {
        /// Guard calls per second (open loop).
        #[arg(long, default_value_t = 5_000)]
        rps: u64,
        /// Events per second ingested meanwhile, in batches of 500.
        #[arg(long, default_value_t = 20_000)]
        ingest_rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Members (tenants) of the per-tenant budget measured in process: its memory,
        /// load, decision and commit times.
        #[arg(long, default_value_t = 100_000)]
        members: usize,
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// Latency of GET /v1/explain (7 days against the 7 before, three dimensions) and of
    /// GET /v1/gate over the same store as `bench query`.
    Explain(ReadBench),
}

/// The store a read benchmark measures, and how often: shared by `bench query` and
/// `bench explain`, which read the same store.
#[derive(Args)]
pub struct ReadBench {
    /// Demo events in the store (generated once; an existing store is reused).
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Where the store lives (kept between runs: generating 10M events takes minutes).
    #[arg(long, default_value = "bench-data")]
    pub dir: PathBuf,
    /// Timed requests per call after 3 warm-up requests.
    #[arg(long, default_value_t = 40)]
    pub rounds: usize,
    /// Read this store instead of a SQLite file in --dir (e.g.
    /// clickhouse://127.0.0.1:8123/bench, a database of its own); it is filled once, and
    /// refilled when the marker in --dir for this store is missing.
    #[arg(long)]
    pub store: Option<String>,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub baselines: Baselines,
}

/// Run the same events through a baseline in the same run: for `bench ingest` a naive
/// Python script loading them into SQLite (bench/naive_sqlite.py), for `bench query` DuckDB
/// answering the same calls as GROUP BYs over the raw events (bench/duckdb_reads.py).
#[derive(Args, Clone)]
pub struct Baselines {
    #[arg(long)]
    pub baselines: bool,
    /// The Python that runs them (DuckDB's needs `pip install duckdb`).
    #[arg(long, default_value = "python3", env = "BURNRATE_BENCH_PYTHON")]
    pub python: String,
}
