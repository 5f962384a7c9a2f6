//! The command line: flags in, library calls out. The only module that knows clap.

pub mod bench;
pub mod control;
pub mod explain;
pub mod profile;
pub mod remote;

use crate::app::{load_prices, system_clock, AppState};
use crate::auth;
use crate::ingest::{self, Item};
use crate::price::book::BookFile;
use crate::price::{self, litellm, Layer, PriceBook};
use crate::ratelimit::RateConfig;
use crate::store::sqlite::SqliteStore;
use crate::store::{Scope, Store, StoredBook, WorkspaceId};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "burnrate",
    version,
    about = "Self-hosted LLM cost attribution and cost control"
)]
pub struct Cli {
    /// The SQLite database file.
    #[arg(
        long,
        global = true,
        env = "BURNRATE_DB",
        default_value = "burnrate.db"
    )]
    pub db: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Import usage events from a JSONL file ("-" for stdin), through the same validation,
    /// dedupe and pricing as HTTP ingest.
    /// Exits 1 when any line was rejected (the accepted ones are stored) unless
    /// --allow-rejects.
    Import {
        file: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Exit 0 even when lines were rejected.
        #[arg(long)]
        allow_rejects: bool,
    },
    /// Write demo traffic (dataMode=demo) into the database.
    Demo(DemoArgs),
    /// Manage workspaces.
    #[command(subcommand)]
    Workspaces(WorkspaceCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeyCommand),
    /// Inspect and manage the price book.
    #[command(subcommand)]
    Prices(PriceCommand),
    /// Where the money goes: the top endpoints, tenants, users, prompt versions or models.
    Top(TopArgs),
    /// Why spend changed: this window against the one before (or a given baseline),
    /// split into volume and cost per request, with the drivers in words.
    Explain(explain::ExplainArgs),
    /// CI gate: is a candidate prompt version's cost (tokens, latency) per request within
    /// --max-increase-pct of the baseline's? Exit 0 pass, 1 fail, 2 not enough data,
    /// 3 could not run.
    Gate(explain::GateArgs),
    /// Run an aggregate query from a JSON file (the body of POST /v1/query).
    Query {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Budgets: create, list with status, delete.
    #[command(subcommand)]
    Budgets(control::BudgetCommand),
    /// Alerts: list, rule settings, evaluate, channels, test messages.
    #[command(subcommand)]
    Alerts(control::AlertCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Args)]
pub struct TopArgs {
    /// endpoints, tenants, users, prompt-versions or models.
    pub kind: String,
    /// The window ending now: 30m, 24h, 7d, 4w (at most 3 years).
    #[arg(long, default_value = "24h")]
    pub since: String,
    #[arg(long, default_value = "prod")]
    pub env: String,
    #[arg(long, default_value = "real")]
    pub data_mode: String,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, default_value = "default")]
    pub workspace: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, env = "BURNRATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Fill an empty database with demo traffic first.
    #[arg(long)]
    pub demo: bool,
    /// Ingest rate per key in events per second (0 = unlimited).
    #[arg(long, env = "BURNRATE_INGEST_RATE", default_value_t = 50_000.0)]
    pub ingest_rate: f64,
    /// Ingest burst per key in events.
    #[arg(long, env = "BURNRATE_INGEST_BURST", default_value_t = 100_000.0)]
    pub ingest_burst: f64,
    /// How long a guard reservation waits for its ingest event before it lapses.
    #[arg(long, env = "BURNRATE_RESERVATION_TTL_SECS", default_value_t = 600)]
    pub reservation_ttl_secs: u32,
    /// The dashboard's address as people reach it, for links in alert messages
    /// (default: http:// plus the listen address).
    #[arg(long, env = "BURNRATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Do not evaluate alert rules (they run every minute by default).
    #[arg(long)]
    pub no_alerts: bool,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "BURNRATE_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers (after connecting, or after the
    /// previous answer on a kept-alive connection).
    #[arg(long, env = "BURNRATE_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a connection may stay open with no bytes moving either way.
    #[arg(long, env = "BURNRATE_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
}

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Calls to generate (a retried call is two events).
    #[arg(long, default_value_t = 60_000)]
    pub events: u64,
    #[arg(long, default_value = "default")]
    pub workspace: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// End of the generated traffic (RFC 3339; default now). A fixed end makes the data
    /// set reproducible, as the golden tests need.
    #[arg(long, value_parser = parse_timestamp)]
    pub end: Option<jiff::Timestamp>,
    /// No spike, no costly prompt deploy, no unpriced model: ordinary traffic only (for
    /// the realistic profile: no unpriced model).
    #[arg(long)]
    pub clean: bool,
    #[command(flatten)]
    pub profile: profile::ProfileArgs,
    /// Write the events in timestamp order, as live traffic arrives (slower: they are
    /// sorted through one temporary file per day). The small profile's benchmark stores
    /// use it; the realistic profile is already in arrival order, late calls included.
    #[arg(long)]
    pub time_ordered: bool,
}

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    Create {
        name: String,
    },
    List,
    /// Refuse ingest for the workspace (402) until resumed.
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// Change a workspace's ingest settings (a running server applies them within 2 s).
    Configure {
        name: String,
        /// What ingest does with fields the event contract does not know: warn (store
        /// and say so in the reply) or reject (a 400 naming the field).
        #[arg(long, value_parser = ["warn", "reject"])]
        unknown_fields: Option<String>,
        /// An attribution field every event must carry (repeatable): tenantId, userId,
        /// promptVersion, endpointTag, externalRequestId.
        #[arg(long = "require", value_name = "FIELD")]
        require: Vec<String>,
        /// Require no field any more.
        #[arg(long, conflicts_with = "require")]
        require_none: bool,
    },
    /// Print a workspace's ingest settings as JSON.
    Show {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints only the key on stdout (--json for more).
    Create {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long, value_parser = ["ingest", "read", "admin"])]
        scope: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or prefix (br_xxxxxxxx); takes effect at once.
    Revoke { key: String },
}

#[derive(Subcommand)]
pub enum PriceCommand {
    List {
        #[arg(long)]
        provider: Option<String>,
    },
    /// Show how a model resolves and the rates in force.
    Show {
        model: String,
        #[arg(long)]
        provider: Option<String>,
    },
    /// Import a LiteLLM map (a new catalogue version) or an overrides file.
    Import {
        file: PathBuf,
        /// When the imported catalogue takes effect (RFC 3339; default now). Past events
        /// keep the price they were stored with.
        #[arg(long)]
        effective_from: Option<String>,
    },
    /// The stored price book versions (imports), oldest first, beside the bundled book.
    Versions,
    /// Remove an imported version (a mistaken import); events keep the price they were
    /// stored with, and a running server drops it within 2 s.
    RemoveVersion { version: String },
    /// Models seen in events that have no price.
    Check,
    /// Generate prices/book.json from a LiteLLM map and the reviewed corrections.
    Generate {
        #[arg(long)]
        litellm: PathBuf,
        #[arg(long, default_value = "prices/corrections.json")]
        corrections: PathBuf,
        #[arg(long, default_value = "prices/book.json")]
        out: PathBuf,
        #[arg(long)]
        package_version: String,
        #[arg(long)]
        snapshot_date: String,
    },
}

/// Run a command; the exit code is success unless the command has its own (the gate).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Prices(PriceCommand::Generate {
        litellm,
        corrections,
        out,
        package_version,
        snapshot_date,
    }) = &cli.command
    {
        generate_book(litellm, corrections, out, package_version, snapshot_date)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(result) = control::from_server(&cli.command).await {
        return result.map(|_| ExitCode::SUCCESS);
    }
    // These open the database themselves, or not at all when asking a server.
    match cli.command {
        Command::Bench(cmd) => return crate::bench::run(cmd).await.map(|_| ExitCode::SUCCESS),
        Command::Explain(args) => {
            return explain::explain(&cli.db, args)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        Command::Gate(args) => return Ok(explain::gate(&cli.db, args).await),
        _ => {}
    }
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&cli.db)
            .with_context(|| format!("opening database {}", cli.db.display()))?,
    );
    let result = match cli.command {
        Command::Serve(args) => serve(store.clone(), &cli.db, args).await,
        Command::Import {
            file,
            workspace,
            allow_rejects,
        } => import(store.as_ref(), &file, &workspace, allow_rejects).await,
        Command::Demo(args) => demo(store.as_ref(), &args).await.map(|_| ()),
        Command::Workspaces(cmd) => workspaces(store.as_ref(), cmd).await,
        Command::Keys(cmd) => keys(store.as_ref(), cmd).await,
        Command::Prices(cmd) => prices(store.as_ref(), cmd).await,
        Command::Top(args) => top(store.as_ref(), args).await,
        Command::Query { file, workspace } => query_file(store.as_ref(), &file, &workspace).await,
        Command::Budgets(cmd) => control::budgets(store.clone(), cmd).await,
        Command::Alerts(cmd) => control::alerts(store.clone(), cmd).await,
        Command::Bench(_) | Command::Explain(_) | Command::Gate(_) => {
            unreachable!("handled above")
        }
    };
    store.close().await;
    result.map(|_| ExitCode::SUCCESS)
}

/// The exit code of a command line clap refused: 0 for --help and --version, the gate's
/// "could not run" for the gate (2 would read as "not enough data"), else clap's 2.
pub fn usage_exit_code(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "gate") {
        return ExitCode::from(explain::GATE_ERROR);
    }
    ExitCode::from(2)
}

async fn workspace_id(store: &dyn Store, name: &str) -> anyhow::Result<WorkspaceId> {
    match store.workspace(name.to_string()).await? {
        Some(w) => Ok(w.id),
        None => {
            bail!("no workspace named {name:?}; create it with `burnrate workspaces create {name}`")
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
}

async fn serve(store: Arc<dyn Store>, db: &std::path::Path, args: ServeArgs) -> anyhow::Result<()> {
    if args.demo && store.event_count().await? == 0 {
        let args = DemoArgs {
            days: 30,
            events: 60_000,
            workspace: "default".into(),
            seed: 42,
            end: None,
            clean: false,
            time_ordered: false,
            profile: Default::default(),
        };
        demo(store.as_ref(), &args).await?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if store.claim_first_start().await? {
        let key = auth::new_key();
        store
            .create_key(
                "default".into(),
                Scope::Admin,
                auth::hash_key(&key),
                auth::key_prefix(&key),
                Some("first-start admin".into()),
            )
            .await?;
        print_first_start(db, &addr.to_string(), &key);
    }
    let rate = RateConfig {
        per_second: args.ingest_rate,
        burst: args.ingest_burst.max(args.ingest_rate),
    };
    let state = Arc::new(
        AppState::new(
            store.clone(),
            rate,
            args.reservation_ttl_secs as i64 * 1000,
            args.public_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}")),
            system_clock(),
        )
        .await?,
    );
    let reloader = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                if let Err(e) = state.refresh_prices().await {
                    tracing::warn!(error = %e, "price book reload failed");
                }
                if let Err(e) = state.budgets.reload_all().await {
                    tracing::warn!(error = %e, "budget reload failed");
                }
                if let Err(e) = state.settings.reload_all().await {
                    tracing::warn!(error = %e, "workspace settings reload failed");
                }
            }
        })
    };
    let evaluator = (!args.no_alerts).then(|| crate::alert::engine::Alerts::spawn(state.clone()));
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, db = %db.display(), "serving");
    let limits = crate::http::server::Limits {
        header_read_timeout: std::time::Duration::from_secs(args.header_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout_secs),
        max_connections: args.max_connections as usize,
    };
    crate::http::serve(listener, state, limits, shutdown_signal()).await?;
    reloader.abort();
    if let Some(evaluator) = evaluator {
        evaluator.abort();
    }
    tracing::info!("in-flight requests done; closing the store");
    Ok(())
}

fn print_first_start(db: &std::path::Path, addr: &str, key: &str) {
    let event = r#"{"externalRequestId":"hello-1","provider":"openai","model":"gpt-4o-mini","endpointTag":"hello.world","inputTokens":1200,"cachedTokens":200,"outputTokens":300,"status":"success"}"#;
    println!("new database {} with workspace \"default\"", db.display());
    println!("admin key (shown once, keep it safe): {key}");
    println!("post a first event:");
    println!("  curl -sS http://{addr}/v1/ingest/llm-request -H 'X-API-Key: {key}' -H 'Content-Type: application/json' -d '{event}'");
    println!("then see it priced:");
    println!("  curl -sS http://{addr}/v1/events -H 'X-API-Key: {key}'");
}

/// Validate, price and store items in chunks; shared by `import` and `demo`.
struct Loader<'a> {
    store: &'a dyn Store,
    workspace: WorkspaceId,
    book: PriceBook,
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    warnings: usize,
    settings: crate::settings::IngestSettings,
}

impl<'a> Loader<'a> {
    async fn new(store: &'a dyn Store, workspace: WorkspaceId) -> anyhow::Result<Loader<'a>> {
        Ok(Loader {
            store,
            workspace,
            book: load_prices(store).await?,
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            warnings: 0,
            settings: crate::settings::load(store, workspace).await?,
        })
    }

    /// Returns the rejected items' positions in `items` with their errors.
    async fn load(&mut self, items: Vec<Item<'_>>) -> anyhow::Result<Vec<ingest::Rejected>> {
        let now = jiff::Timestamp::now().as_millisecond();
        let prepared = ingest::prepare(items, &self.book, &self.settings, now);
        self.rejected += prepared.rejected.len();
        self.warnings += prepared.warnings.len() + prepared.warnings_omitted;
        let outcome = self.store.ingest(self.workspace, prepared.events).await?;
        self.accepted += outcome.accepted();
        self.duplicates += outcome.duplicates();
        Ok(prepared.rejected)
    }
}

const CHUNK: usize = 5_000;
/// Stands in for a line that is not UTF-8 (a NUL can never start a JSON event).
const INVALID_UTF8: &str = "\0invalid utf-8";

async fn import(
    store: &dyn Store,
    file: &str,
    workspace: &str,
    allow_rejects: bool,
) -> anyhow::Result<()> {
    let ws = workspace_id(store, workspace).await?;
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {file}"))?,
        ))
    };
    let mut loader = Loader::new(store, ws).await?;
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {human_pos} events read, {per_sec} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let started = std::time::Instant::now();
    // Lines of one chunk, kept as text: the parsed events borrow their strings.
    let mut lines_text: Vec<String> = Vec::with_capacity(CHUNK);
    let mut line_numbers = Vec::with_capacity(CHUNK);
    let mut rejected_lines = Vec::new();
    let mut lines = reader.split(b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line?;
        if !line.iter().all(u8::is_ascii_whitespace) {
            // Invalid UTF-8 stays visible as such: the item parser reports it.
            lines_text.push(String::from_utf8(line).unwrap_or_else(|_| INVALID_UTF8.to_string()));
            line_numbers.push(i + 1);
        }
        if lines_text.len() == CHUNK || lines.peek().is_none() {
            let items: Vec<Item> = lines_text
                .iter()
                .map(|text| match text.as_str() {
                    INVALID_UTF8 => Err(vec![crate::event::FieldError::new(
                        "body",
                        "line is not valid UTF-8",
                    )]),
                    text => ingest::parse_item(text),
                })
                .collect();
            for bad in loader.load(items).await? {
                let reasons: Vec<String> = bad
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                let line = line_numbers[bad.index];
                rejected_lines.push(line);
                progress.suspend(|| eprintln!("line {line}: {}", reasons.join("; ")));
            }
            progress.inc(line_numbers.len() as u64);
            line_numbers.clear();
            lines_text.clear();
        }
    }
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let total = loader.accepted + loader.duplicates + loader.rejected;
    println!(
        "read {total} events in {secs:.1}s ({:.0} events/s): {} accepted, {} duplicates, {} rejected, {} warnings",
        total as f64 / secs.max(1e-9),
        loader.accepted,
        loader.duplicates,
        loader.rejected,
        loader.warnings
    );
    if rejected_lines.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} of {total} events rejected (lines {}; reasons above); the accepted ones are stored, \
         and importing the fixed file again skips them as duplicates",
        rejected_lines.len(),
        line_list(&rejected_lines)
    );
    if allow_rejects {
        eprintln!("warning: {message}");
        return Ok(());
    }
    bail!("{message} (--allow-rejects to exit 0)")
}

/// "2, 5, 7" or "2, 5, 7, ... and 40 more".
fn line_list(lines: &[usize]) -> String {
    const SHOWN: usize = 20;
    let shown: Vec<String> = lines.iter().take(SHOWN).map(usize::to_string).collect();
    match lines.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{}, ... and {more} more", shown.join(", ")),
        _ => shown.join(", "),
    }
}

async fn demo(store: &dyn Store, args: &DemoArgs) -> anyhow::Result<usize> {
    use crate::demo::DemoConfig;
    let profile = args.profile.resolve("small")?;
    let ws = workspace_id(store, &args.workspace).await?;
    let config = DemoConfig {
        days: args.days,
        events: args.events,
        end_ms: args
            .end
            .unwrap_or_else(jiff::Timestamp::now)
            .as_millisecond(),
        seed: args.seed,
        incidents: !args.clean,
    };
    // Only the small profile tells the spike's story.
    let spike = profile.is_none().then(|| config.spike_window());
    let generator = crate::demo::profile::events(profile, config);
    let mut loader = Loader::new(store, ws).await?;
    let progress = indicatif::ProgressBar::new(args.events);
    let spill = std::env::temp_dir().join(format!("burnrate-demo-{}", std::process::id()));
    let mut texts: Box<dyn Iterator<Item = String>> = if args.time_ordered {
        Box::new(in_time_order(generator, spill.clone())?)
    } else {
        Box::new(generator.map(|v| v.to_string()))
    };
    loop {
        let batch: Vec<String> = texts.by_ref().take(CHUNK).collect();
        if batch.is_empty() {
            break;
        }
        let chunk: Vec<Item> = batch.iter().map(|t| ingest::parse_item(t)).collect();
        progress.inc(chunk.len() as u64);
        loader.load(chunk).await?;
    }
    let _ = std::fs::remove_dir_all(&spill);
    progress.finish_and_clear();
    let fmt = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let spike = spike
        .map(|(from, to)| format!("; cost spike {} .. {}", fmt(from), fmt(to)))
        .unwrap_or_default();
    println!(
        "demo: {} events written to workspace {:?} (dataMode=demo, {} days){spike}",
        loader.accepted, args.workspace, args.days,
    );
    Ok(loader.accepted)
}

/// The demo's events in timestamp order, as a live app writes them (the generator draws
/// times at random). Spilled to one file per UTC day, each sorted in memory when read.
fn in_time_order(
    events: impl Iterator<Item = serde_json::Value>,
    dir: std::path::PathBuf,
) -> anyhow::Result<impl Iterator<Item = String>> {
    use std::io::{BufRead, Write};
    std::fs::create_dir_all(&dir)?;
    let mut files: std::collections::BTreeMap<i64, std::io::BufWriter<std::fs::File>> =
        Default::default();
    for e in events {
        let ms = e["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_millisecond());
        let day = ms.div_euclid(86_400_000);
        let file = match files.entry(day) {
            std::collections::btree_map::Entry::Occupied(f) => f.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let file = std::fs::File::create(dir.join(format!("{day}.tsv")))?;
                slot.insert(std::io::BufWriter::new(file))
            }
        };
        writeln!(file, "{ms}\t{e}")?;
    }
    let days: Vec<i64> = files.keys().copied().collect();
    for (_, mut file) in files {
        file.flush()?;
    }
    Ok(days.into_iter().flat_map(move |day| {
        let path = dir.join(format!("{day}.tsv"));
        let file = std::fs::File::open(&path).map(std::io::BufReader::new);
        let mut lines: Vec<(i64, String)> = file
            .map(|f| {
                f.lines()
                    .map_while(Result::ok)
                    .filter_map(|l| {
                        let (ms, json) = l.split_once('\t')?;
                        Some((ms.parse().ok()?, json.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        // Stable: the attempts of one call keep their order.
        lines.sort_by_key(|(ms, _)| *ms);
        lines.into_iter().map(|(_, json)| json)
    }))
}

async fn workspaces(store: &dyn Store, cmd: WorkspaceCommand) -> anyhow::Result<()> {
    match cmd {
        WorkspaceCommand::Create { name } => {
            let w = store.create_workspace(name).await?;
            println!("created workspace {}", w.name);
        }
        WorkspaceCommand::List => {
            let mut table = table(&["name", "paused", "created"]);
            for w in store.workspaces().await? {
                table.add_row(vec![w.name, w.paused.to_string(), w.created_at]);
            }
            println!("{table}");
        }
        WorkspaceCommand::Pause { name } => {
            store.set_paused(name.clone(), true).await?;
            println!("ingest for workspace {name} is paused (clients get 402)");
        }
        WorkspaceCommand::Resume { name } => {
            store.set_paused(name.clone(), false).await?;
            println!("ingest for workspace {name} is resumed");
        }
        WorkspaceCommand::Configure {
            name,
            unknown_fields,
            require,
            require_none,
        } => {
            let ws = workspace_id(store, &name).await?;
            let mut body = serde_json::Map::new();
            if let Some(mode) = unknown_fields {
                body.insert("unknownFields".into(), mode.into());
            }
            if !require.is_empty() || require_none {
                body.insert("requiredFields".into(), require.into());
            }
            let body = serde_json::Value::Object(body);
            match crate::settings::update(store, ws, &body).await? {
                Ok(settings) => println!("{}", serde_json::to_string_pretty(&settings)?),
                Err(errors) => {
                    let reasons: Vec<String> = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect();
                    bail!("{}", reasons.join("; "))
                }
            }
        }
        WorkspaceCommand::Show { name } => {
            let ws = workspace_id(store, &name).await?;
            let settings = crate::settings::load(store, ws).await?;
            println!("{}", serde_json::to_string_pretty(&settings)?);
        }
    }
    Ok(())
}

async fn keys(store: &dyn Store, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create {
            workspace,
            scope,
            name,
            json,
        } => {
            let scope = Scope::parse(&scope).context("scope")?;
            let key = auth::new_key();
            let record = store
                .create_key(
                    workspace,
                    scope,
                    auth::hash_key(&key),
                    auth::key_prefix(&key),
                    name,
                )
                .await?;
            if json {
                let mut v = serde_json::to_value(&record)?;
                v["key"] = serde_json::json!(key);
                println!("{v}");
            } else {
                println!("{key}");
            }
        }
        KeyCommand::List { workspace, json } => {
            let keys = store.keys(workspace).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
                return Ok(());
            }
            let mut table = table(&[
                "id",
                "workspace",
                "prefix",
                "scope",
                "name",
                "created",
                "revoked",
                "unknown fields",
            ]);
            for k in keys {
                table.add_row(vec![
                    k.id.to_string(),
                    k.workspace,
                    k.prefix,
                    k.scope.as_str().into(),
                    k.name.unwrap_or_default(),
                    k.created_at,
                    k.revoked_at.unwrap_or_default(),
                    match k.last_unknown_field {
                        Some(last) => format!("{} (last: {last})", k.unknown_fields),
                        None => k.unknown_fields.to_string(),
                    },
                ]);
            }
            println!("{table}");
        }
        KeyCommand::Revoke { key } => {
            let n = store.revoke_key(key.clone()).await?;
            if n == 0 {
                bail!("no active key with id or prefix {key:?}");
            }
            println!("revoked {n} key(s)");
        }
    }
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

fn rate_text(r: Option<crate::money::Rate>) -> String {
    r.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
}

async fn prices(store: &dyn Store, cmd: PriceCommand) -> anyhow::Result<()> {
    let book = load_prices(store).await?;
    let now = jiff::Timestamp::now().as_millisecond();
    match cmd {
        PriceCommand::List { provider } => {
            let mut table = table(&[
                "provider",
                "model",
                "input $/M",
                "cached $/M",
                "cache write $/M",
                "output $/M",
                "bands",
                "tiers",
            ]);
            for c in 3..=5 {
                if let Some(col) = table.column_mut(c) {
                    col.set_cell_alignment(CellAlignment::Right);
                }
            }
            let mut count = 0;
            for key in book.keys() {
                if provider.as_deref().is_some_and(|p| p != key.provider) {
                    continue;
                }
                let Some((entry, _)) = book.lookup(&key.provider, &key.model, now) else {
                    continue;
                };
                let base = entry
                    .rows
                    .iter()
                    .find(|r| r.tier == crate::event::ServiceTier::Standard && r.above == 0);
                let Some(base) = base else { continue };
                let mut bands: Vec<String> = entry
                    .rows
                    .iter()
                    .filter(|r| r.above > 0)
                    .map(|r| format!(">{}k", r.above / 1000))
                    .collect();
                bands.dedup();
                let mut tiers: Vec<&str> = entry
                    .rows
                    .iter()
                    .map(|r| r.tier.as_str())
                    .filter(|t| *t != "standard")
                    .collect();
                tiers.dedup();
                table.add_row(vec![
                    key.provider.clone(),
                    key.model.clone(),
                    rate_text(base.input),
                    rate_text(base.cached_input),
                    rate_text(base.cache_write),
                    rate_text(base.output),
                    bands.join(" "),
                    tiers.join(" "),
                ]);
                count += 1;
            }
            println!("{table}");
            println!(
                "{count} models; book versions: {}",
                book.versions().join(", ")
            );
        }
        PriceCommand::Show { model, provider } => {
            show_price(&book, provider.as_deref(), &model, now)?
        }
        PriceCommand::Import {
            file,
            effective_from,
        } => import_prices(store, &file, effective_from).await?,
        PriceCommand::Versions => price_versions(store, &book).await?,
        PriceCommand::RemoveVersion { version } => remove_price_version(store, &version).await?,
        PriceCommand::Check => {
            let unpriced = store.unpriced_models().await?;
            if unpriced.is_empty() {
                println!("every event has a price");
                return Ok(());
            }
            let mut table = table(&["provider", "model", "unpriced events", "last seen", "why"]);
            for m in &unpriced {
                let why = match book.lookup(&m.provider, &m.model, now) {
                    Some(_) => "no rate for the event's service tier",
                    None => "unknown model",
                };
                table.add_row(vec![
                    m.provider.clone(),
                    m.model.clone(),
                    m.events.to_string(),
                    m.last_seen.clone(),
                    why.into(),
                ]);
            }
            println!("{table}");
            println!("add prices with `burnrate prices import overrides.json` (see docs/price-book-format.md); stored events keep cost null until re-sent");
        }
        PriceCommand::Generate { .. } => unreachable!("handled in run"),
    }
    Ok(())
}

fn show_price(
    book: &PriceBook,
    provider: Option<&str>,
    model: &str,
    now: i64,
) -> anyhow::Result<()> {
    let providers: Vec<String> = match provider {
        Some(p) => vec![p.to_string()],
        None => {
            let mut ps: Vec<String> = book
                .keys()
                .iter()
                .filter(|k| k.model == model.to_ascii_lowercase())
                .map(|k| k.provider.clone())
                .collect();
            ps.dedup();
            if ps.is_empty() {
                ps = price::model_candidates("openai", model)
                    .iter()
                    .map(|(k, _)| k.provider.clone())
                    .take(1)
                    .collect();
            }
            ps
        }
    };
    for p in providers {
        let Some((entry, how)) = book.lookup(&p, model, now) else {
            println!("{p}/{model}: no price (unknown model: cost stays null, counted as unpriced)");
            continue;
        };
        println!(
            "{p}/{model} -> {}/{} ({})",
            how.key.provider, how.key.model, how.rule
        );
        println!(
            "  entry {}  mode {}  source {}",
            entry.id, entry.mode, entry.source
        );
        let mut table = table(&[
            "tier",
            "input above",
            "input $/M",
            "cached $/M",
            "cache write $/M",
            "output $/M",
            "reasoning $/M",
        ]);
        for r in &entry.rows {
            table.add_row(vec![
                r.tier.as_str().to_string(),
                r.above.to_string(),
                rate_text(r.input),
                rate_text(r.cached_input),
                rate_text(r.cache_write),
                rate_text(r.output),
                rate_text(r.reasoning),
            ]);
        }
        println!("{table}");
        if let Some(img) = entry.per_image {
            println!("  per image: ${img}");
        }
        for (layer, e) in book.history(&how.key) {
            let from = jiff::Timestamp::from_millisecond(e.effective_from_ms)
                .map(|t| t.to_string())
                .unwrap_or_default();
            println!(
                "  version {} ({:?}) effective from {from}",
                e.book_version, layer
            );
        }
    }
    Ok(())
}

async fn import_prices(
    store: &dyn Store,
    file: &PathBuf,
    effective_from: Option<String>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let now = jiff::Timestamp::now();
    let effective = match effective_from {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .context("--effective-from must be RFC 3339")?,
        None => now,
    };
    let price::import::Prepared { kind, book } =
        price::import::prepare(value, &file.display().to_string(), now, effective)?;
    let entries = book.entries.len();
    store
        .save_price_book(StoredBook {
            kind: kind.into(),
            version: book.version.clone(),
            body: serde_json::to_string(&book)?,
            imported_at_ms: None,
        })
        .await?;
    println!("imported {entries} {kind} entries as version {} (a running server picks them up within 2 s; undo with `burnrate prices remove-version {}`)", book.version, book.version);
    Ok(())
}

async fn price_versions(store: &dyn Store, book: &PriceBook) -> anyhow::Result<()> {
    let bundled: BookFile = serde_json::from_str(price::BUNDLED_BOOK)?;
    let mut table = table(&["kind", "version", "entries", "aliases", "imported at"]);
    table.add_row(vec![
        "catalog (bundled)".into(),
        bundled.version.clone(),
        bundled.entries.len().to_string(),
        bundled.aliases.len().to_string(),
        "-".into(),
    ]);
    for stored in store.price_books().await? {
        let file: Option<BookFile> = serde_json::from_str(&stored.body).ok();
        let count = |n: Option<usize>| n.map_or("?".into(), |n| n.to_string());
        table.add_row(vec![
            stored.kind,
            stored.version,
            count(file.as_ref().map(|f| f.entries.len())),
            count(file.as_ref().map(|f| f.aliases.len())),
            stored
                .imported_at_ms
                .map_or("-".into(), crate::report::rfc3339),
        ]);
    }
    println!("{table}");
    println!("in force, newest last: {}", book.versions().join(", "));
    Ok(())
}

async fn remove_price_version(store: &dyn Store, version: &str) -> anyhow::Result<()> {
    let bundled: BookFile = serde_json::from_str(price::BUNDLED_BOOK)?;
    if version == bundled.version {
        bail!("{version} is the bundled book, built into the binary: it cannot be removed (overrides win over it)");
    }
    let removed = store.remove_price_book(version.to_string()).await?;
    if removed == 0 {
        let stored: Vec<String> = store
            .price_books()
            .await?
            .into_iter()
            .map(|b| b.version)
            .collect();
        bail!(
            "no imported price book version {version:?}; stored: {}",
            if stored.is_empty() {
                "none".to_string()
            } else {
                stored.join(", ")
            }
        );
    }
    println!("removed version {version} ({removed} import(s)); stored events keep the price they were stored with, a running server drops it within 2 s");
    Ok(())
}

fn generate_book(
    litellm_path: &PathBuf,
    corrections: &PathBuf,
    out: &PathBuf,
    package_version: &str,
    snapshot_date: &str,
) -> anyhow::Result<()> {
    let map: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(litellm_path)?)?;
    let fixes: BookFile = serde_json::from_str(&std::fs::read_to_string(corrections)?)
        .with_context(|| format!("parsing {}", corrections.display()))?;
    let version = format!("litellm-{package_version}+{snapshot_date}");
    let source = serde_json::json!({
        "name": "LiteLLM model_prices_and_context_window.json",
        "package": "litellm", "packageVersion": package_version, "snapshotDate": snapshot_date,
        "license": "MIT (see prices/LICENSE.litellm)", "corrections": corrections.display().to_string(),
    });
    let mut converted = litellm::convert(&map, &version, source)?;
    let (replaced, added) = litellm::apply_corrections(&mut converted.book, &fixes);
    // The generated book must load; fail here rather than at the next build.
    let mut check = PriceBook::default();
    check
        .add_file(&converted.book, Layer::Catalog)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut text = String::from("{\n");
    text.push_str(&format!(
        "\"format\": {},\n\"kind\": \"catalog\",\n\"version\": {},\n",
        price::book::FORMAT,
        serde_json::to_string(&version)?
    ));
    text.push_str(&format!(
        "\"source\": {},\n\"aliases\": {},\n\"entries\": [\n",
        serde_json::to_string(&converted.book.source)?,
        serde_json::to_string(&converted.book.aliases)?
    ));
    // One entry per line: a price change shows as a one-line diff.
    let lines: Vec<String> = converted
        .book
        .entries
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    text.push_str(&lines.join(",\n"));
    text.push_str("\n]\n}\n");
    std::fs::write(out, text)?;
    println!(
        "wrote {} entries to {} (version {version}); {} LiteLLM keys skipped (no token prices), {} collisions, corrections: {replaced} replaced, {added} added",
        converted.book.entries.len(),
        out.display(),
        converted.skipped,
        converted.collisions.len()
    );
    for c in converted.collisions.iter().take(20) {
        eprintln!("collision (first key kept): {c}");
    }
    Ok(())
}

/// --since as milliseconds: "30m", "24h", "7d", "4w" (see `window::parse_since`).
fn parse_since(text: &str) -> anyhow::Result<i64> {
    crate::window::parse_since(text).map_err(|e| anyhow::anyhow!("--since {e}"))
}

fn pct_text(p: Option<f64>) -> String {
    p.map(|p| format!("{p:+.1}%")).unwrap_or_else(|| "-".into())
}

/// Dollars with the digits that matter: $12.34, $0.0533, $0.000405.
fn usd_text(u: Option<crate::money::Usd>) -> String {
    match u {
        Some(u) if u.0.abs() >= 1_000_000_000 => format!("${:.2}", u.as_f64()),
        Some(u) if u.0.abs() >= 10_000_000 => format!("${:.4}", u.as_f64()),
        Some(u) => format!("${:.6}", u.as_f64()),
        None => "-".into(),
    }
}

async fn top(store: &dyn Store, args: TopArgs) -> anyhow::Result<()> {
    use crate::report::TopKind;
    let kind = TopKind::parse(&args.kind)
        .with_context(|| format!("{:?}: use one of {}", args.kind, TopKind::EXPECTED))?;
    let ws = workspace_id(store, &args.workspace).await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let request = crate::query::QueryRequest {
        from: Some(crate::report::rfc3339(now - parse_since(&args.since)?)),
        to: Some(crate::report::rfc3339(now)),
        filters: [
            ("environment".to_string(), serde_json::json!(args.env)),
            ("dataMode".to_string(), serde_json::json!(args.data_mode)),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let base = request.check(now).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = crate::report::top(store, ws, &base, kind, args.limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let dims = kind.dimensions();
    let mut header: Vec<String> = dims.iter().map(|d| d.name()).collect();
    header.extend(
        [
            "requests",
            "cost",
            "share",
            "cost/req",
            "Δ cost",
            "Δ cost/req",
            "tokens/req",
            "errors",
            "retries",
        ]
        .map(String::from),
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for row in &report.rows {
        let mut cells: Vec<String> = dims
            .iter()
            .map(|d| {
                row.group
                    .get(&d.name())
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let s = &row.stats;
        cells.extend([
            s.requests.to_string(),
            // Unpriced is a state, not $0: the money always with its unpriced calls.
            s.money_text(),
            row.share_pct
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(|| "-".into()),
            usd_text(s.cost_per_request),
            pct_text(row.change.cost_usd_pct),
            pct_text(row.change.cost_per_request_pct),
            s.tokens_per_request
                .map(|t| format!("{t:.0}"))
                .unwrap_or_else(|| "-".into()),
            s.error_rate
                .map(|e| format!("{:.1}%", e * 100.0))
                .unwrap_or_else(|| "-".into()),
            s.retry_ratio
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "-".into()),
        ]);
        t.add_row(cells);
    }
    for i in dims.len()..dims.len() + 9 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("{t}");
    println!(
        "{} .. {} ({} {}): total {} over {} requests ({} vs the previous {}); {} unpriced",
        report.from,
        report.to,
        args.env,
        args.data_mode,
        report.total.money_text(),
        report.total.requests,
        pct_text(
            crate::report::Change::between(&report.total, &report.previous_total).cost_usd_pct
        ),
        args.since,
        report.total.unpriced
    );
    Ok(())
}

async fn query_file(store: &dyn Store, file: &PathBuf, workspace: &str) -> anyhow::Result<()> {
    let ws = workspace_id(store, workspace).await?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let request: crate::query::QueryRequest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a query (see POST /v1/query)", file.display()))?;
    let query = request
        .check(jiff::Timestamp::now().as_millisecond())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = store.aggregate(ws, query.clone()).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::http::api::query_answer(&query, &answer))?
    );
    Ok(())
}

fn parse_timestamp(s: &str) -> Result<jiff::Timestamp, String> {
    s.parse()
        .map_err(|e| format!("expected an RFC 3339 time like 2026-01-15T00:00:00Z: {e}"))
}
