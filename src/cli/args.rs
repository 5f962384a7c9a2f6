//! The command line's flags: every command and its arguments as clap reads them, and
//! what the server's and the demo's flags mean for the library (`server::Config`,
//! `load::DemoRun`).

use super::{control, explain, profile};
use crate::load::DemoRun;
use crate::ratelimit::RateConfig;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "burnrate",
    version,
    about = "Self-hosted LLM cost attribution and cost control"
)]
pub struct Cli {
    /// The SQLite database file (short for `--store sqlite://PATH`).
    #[arg(
        long,
        global = true,
        env = "BURNRATE_DB",
        default_value = "burnrate.db"
    )]
    pub db: PathBuf,
    /// The store as a URL: `sqlite:///path/to/burnrate.db`, or
    /// `clickhouse://[user[:password]@]host:port/database[?cluster=NAME]` (docs/scale-out.md).
    /// Wins over --db.
    #[arg(long, global = true, env = "BURNRATE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// A burnrate.toml holding any flag of any command (`burnrate config example`);
    /// flags and environment variables win over it.
    #[arg(long, global = true, env = "BURNRATE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The store every command opens: --store, else the --db file.
    pub fn store_url(&self) -> String {
        match &self.store {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.db.display()),
        }
    }
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
        /// What the lines are: burnrate (our events), wrapper (a hand-made wrapper's JSON
        /// log line), litellm (LiteLLM_SpendLogs rows as JSON lines), langfuse (Langfuse
        /// observations, JSONL), helicone (Helicone requests, JSONL). See docs/importers.md.
        #[arg(long, default_value = "burnrate")]
        format: String,
        /// Exit 0 even when lines were rejected.
        #[arg(long)]
        allow_rejects: bool,
    },
    /// Write every stored event (or those of the last --since) as CSV or NDJSON to
    /// stdout; money as exact decimal text.
    Export {
        /// csv or ndjson.
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Only events of this last window (15m, 24h, 7d, 4w).
        #[arg(long)]
        since: Option<String>,
    },
    /// Write demo traffic (dataMode=demo) into the database.
    Demo(DemoArgs),
    /// Copy the whole store to a new file as of one moment, while a server keeps
    /// running on it (SQLite's online backup).
    Backup {
        /// The backup file to create (never overwritten).
        file: std::path::PathBuf,
    },
    /// Copy this store (or --from) into another: events, workspaces, keys, budgets and
    /// every other setting, price books. Resumable: run it again to continue.
    Migrate {
        /// The store to copy from (default: this command's --store / --db).
        #[arg(long)]
        from: Option<String>,
        /// The store to copy into, e.g. clickhouse://host:8123/burnrate.
        #[arg(long)]
        to: String,
        /// Copy every call again instead of continuing where the last run stopped
        /// (calls already there are counted once).
        #[arg(long)]
        restart: bool,
    },
    /// Retention: delete raw events older than the workspace's rawRetentionDays (or
    /// --days) whole UTC days; the rollups keep their sums, so old windows' totals stay.
    /// Without --workspace, every workspace that has a retention setting.
    Prune {
        #[arg(long)]
        workspace: Option<String>,
        /// Days of raw events to keep (7 to 3650); needs --workspace.
        #[arg(long, requires = "workspace")]
        days: Option<u32>,
    },
    /// Erasure: delete every event of one tenant or user (raw events and pruned
    /// history), rollups corrected exactly; an audit record (kind erasure) keeps counts,
    /// cost, time and who, never the id. A raw e-mail finds its pseudonym.
    Erase {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        tenant: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    /// Put a backup in place of the store (stop any server using the store first).
    Restore {
        /// A file written by `burnrate backup`.
        file: std::path::PathBuf,
        /// Overwrite an existing store.
        #[arg(long)]
        replace: bool,
    },
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
    /// Plans: which plan each tenant is on (per-plan limits of a budget for each tenant).
    #[command(subcommand)]
    Plans(super::plans::PlanCommand),
    /// Revenue, AI cost and margin per tenant for a month, unprofitable first, with
    /// cost per active user-day and month-end projections.
    Margin(super::margin::MarginArgs),
    /// Revenue: plan prices, revenue overrides and one-off amounts (CSV import).
    #[command(subcommand)]
    Revenue(super::margin::RevenueCommand),
    /// The config file: `example` prints every flag of every command as a commented
    /// burnrate.toml.
    #[command(subcommand)]
    Config(super::config::ConfigCommand),
    /// Reconciliation with the provider's bill: import its cost reports, show billed
    /// against attributed per day and provider.
    #[command(subcommand)]
    Reconcile(super::reconcile::ReconcileCommand),
    /// Id mappings: renames and merges of endpointTag, tenantId and userId, applied
    /// when reading (`add`, `list`, `remove`).
    #[command(subcommand)]
    Mappings(super::mappings::MappingCommand),
    /// Deploy notes: record one (`note`), list them.
    #[command(subcommand)]
    Deploy(super::deploy::DeployCommand),
    /// Tracking quality: shares of events with an externalRequestId, tenantId,
    /// promptVersion, usage and a price; unknown fields; endpointTag naming lint; score.
    Doctor(super::doctor::DoctorArgs),
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
    /// Ingest rate per key in events per second (0 = unlimited), for all the nodes
    /// serving one store together: each of N live nodes holds max(1, rate / N).
    #[arg(long, env = "BURNRATE_INGEST_RATE", default_value_t = 50_000.0)]
    pub ingest_rate: f64,
    /// Ingest burst per key in events (shared by the live nodes like the rate).
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
    /// Do not seal closed hours (a ClickHouse store's pre-summed hourly cells, made every
    /// minute by default: docs/scale-out.md) nor, on SQLite, pin ahead the old days a
    /// week or a month of users reads by hour. Answers stay the same, some reads slower.
    #[arg(long, env = "BURNRATE_NO_SEAL")]
    pub no_seal: bool,
    /// Nice levels the background threads (ingest parsing, the SQLite writer, the
    /// rollups' fold, the checkpointer) run below the threads serving requests, so the
    /// guard answers quickly while ingest keeps the cores busy; 0 keeps one priority.
    #[arg(long, env = "BURNRATE_BACKGROUND_NICE", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(0..=19))]
    pub background_nice: u8,
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
    /// Write the events to this NDJSON file instead of a store (the same events, in the
    /// same order, a store would get): sample data for `burnrate import`, other tools
    /// and the benchmarks' baselines.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
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
        /// tenantId, userId and tag values that look like e-mail addresses or phone
        /// numbers: pseudonymize (store a keyed pseudonym, the default), reject (a 400
        /// naming the field) or allow (store as sent).
        #[arg(long, value_parser = ["pseudonymize", "reject", "allow"])]
        pii_ids: Option<String>,
        /// Pseudonymize every tenantId and userId, personal-looking or not.
        #[arg(long, value_name = "true|false")]
        pseudonymize_all_ids: Option<bool>,
        /// Retention: keep raw events this many whole UTC days (7 to 3650), or `off`
        /// to keep every event; older ones are pruned daily, their sums kept.
        #[arg(long, value_name = "DAYS|off")]
        raw_retention_days: Option<String>,
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
    /// Revoke a key by id or prefix (br_xxxxxxxx); a running server refuses it within
    /// 250 ms.
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
    /// Price the events that were stored unpriced with the current book and overrides
    /// (after adding a price or an override), exactly: totals and budgets move by the
    /// new costs; each event records repricedAt and the entry used. Priced events are
    /// never re-priced implicitly: `--entry ID` corrects the events priced with one
    /// entry (a dry run; `--confirm` commits it and keeps an audit record).
    Reprice {
        /// Re-price the unpriced events (priced history is never re-priced implicitly).
        #[arg(long, required_unless_present = "entry", conflicts_with = "entry")]
        unpriced: bool,
        /// Correct the priced events: price again, with the current book, the events
        /// priced with this price entry id (a dry run unless --confirm).
        #[arg(long)]
        entry: Option<String>,
        /// Commit the correction (--entry): without it nothing changes and the counts and
        /// costs before and after are shown.
        #[arg(long)]
        confirm: bool,
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Only events of this model (as sent).
        #[arg(long)]
        model: Option<String>,
    },
    /// The workspace's price corrections (audit records of `reprice --entry --confirm`).
    Corrections {
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Generate prices/book.json from a LiteLLM map, genai-prices and the reviewed corrections.
    Generate {
        #[arg(long)]
        litellm: PathBuf,
        /// genai-prices exported by scripts/export-genai-prices.py: fills the models LiteLLM
        /// lacks, and DISAGREEMENTS.md (beside --out) lists where the two differ.
        #[arg(long)]
        genai_prices: Option<PathBuf>,
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

impl ServeArgs {
    /// The server's settings as these flags decide them.
    pub fn into_config(self, store: String) -> crate::server::Config {
        crate::server::Config {
            store,
            listen: self.listen,
            demo: self.demo,
            rate: RateConfig {
                per_second: self.ingest_rate,
                burst: self.ingest_burst.max(self.ingest_rate),
            },
            reservation_ttl_ms: self.reservation_ttl_secs as i64 * 1000,
            public_url: self.public_url,
            alerts: !self.no_alerts,
            seal: !self.no_seal,
            background_nice: self.background_nice.into(),
            limits: crate::http::server::Limits {
                header_read_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
                idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
                max_connections: self.max_connections as usize,
            },
        }
    }
}

impl DemoArgs {
    /// The demo traffic these flags describe (an invalid profile is refused here).
    pub fn into_run(self) -> anyhow::Result<DemoRun> {
        let profile = self.profile.resolve("small")?;
        Ok(DemoRun {
            workspace: self.workspace,
            config: crate::demo::DemoConfig {
                days: self.days,
                events: self.events,
                end_ms: self
                    .end
                    .unwrap_or_else(jiff::Timestamp::now)
                    .as_millisecond(),
                seed: self.seed,
                incidents: !self.clean,
            },
            profile,
            time_ordered: self.time_ordered,
        })
    }
}

fn parse_timestamp(s: &str) -> Result<jiff::Timestamp, String> {
    s.parse()
        .map_err(|e| format!("expected an RFC 3339 time like 2026-01-15T00:00:00Z: {e}"))
}
