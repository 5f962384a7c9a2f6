//! burnrate: self-hosted LLM cost attribution and cost control.
//!
//! The modules follow the data flow (see ARCHITECTURE.md):
//! - `event`: the ingest contract: wire type and validated `Event`
//! - `validate`: raw event in, event or field errors out (pure)
//! - `dedupe`: what a retry or resend does to a stored logical call (pure)
//! - `price`: the price book and the cost of an event (pure)
//! - `ingest`: request bodies to validated, priced events (pure)
//! - `openapi`: the OpenAPI document of the JSON API, from the route table and the contract
//! - `export`: stored events as CSV or NDJSON lines (pure)
//! - `importers`: other tools' log lines (LiteLLM, a hand-made wrapper) as events (pure)
//! - `otlp`: OpenTelemetry GenAI spans (OTLP protobuf or JSON) to ingest events (pure)
//! - `query`: the one aggregate query type every reader uses (pure)
//! - `mapping`: renames and merges of ids (old -> new), applied to every read of the
//!   store (`mapping::Mapped`, which `store::open` wraps around every backend)
//! - `report`: top lists, time series, prompt versions, concentration (over `query`);
//!   `report::explain` reads what explain and the gate need
//! - `explain`: why spend changed between two windows, exact volume/cost split (pure)
//! - `gate`: candidate vs baseline prompt version with a bootstrap interval (pure)
//! - `revenue`: plan prices, revenue overrides and one-offs per tenant (pure)
//! - `budget`: budgets, live spend counters, the guard (pure parts and the service)
//! - `alert`: rules over the query layer, the alert state machine, the engine
//! - `notify`: alert messages rendered for webhook, Slack, PagerDuty; delivery with retries
//! - `store`: the `Store` trait and its SQLite backend (the only SQL)
//! - `app`, `http`: the server's state and its axum API (the only axum)
//! - `server`: the server's lifecycle (store, state, background loops, serve, shutdown)
//! - `lifecycle`: retention (prune old raw events, rollups kept) and erasure with an
//!   audit record
//! - `load`: bulk writes outside HTTP (`import`'s lines, demo traffic)
//! - `migrate`: copy a whole store into another (any backend to any other), resumable
//! - `cli`, `demo`: the command line (the only clap), demo traffic (the benchmarks are
//!   the `burnrate-bench` workspace member, outside the shipped library)
//! - `keytable`: the server's live API keys in memory, reloaded when the store's key
//!   generation moves (no request waits for a store read to check its key)
//! - `money`, `auth`, `ratelimit`: exact USD, API keys, per-key token buckets (shared by
//!   the live nodes)
//! - `metrics`: the server's Prometheus metrics (counters in memory, exact spend)
//! - `clock`: the services' source of "now" (the system's, or a test's)
//! - `window`: window lengths ("7d") for the CLI's --since and the API's since= (pure)

pub mod alert;
pub mod app;
pub mod auth;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod dedupe;
pub mod demo;
pub mod deploy;
pub mod event;
pub mod explain;
pub mod export;
pub mod gate;
pub mod http;
pub mod importers;
pub mod ingest;
pub mod keytable;
pub mod lifecycle;
pub mod load;
pub mod mapping;
pub mod metrics;
pub mod migrate;
pub mod money;
pub mod notify;
pub mod openapi;
pub mod otlp;
pub mod price;
pub mod privacy;
pub mod quality;
pub mod query;
pub mod ratelimit;
pub mod reconcile;
pub mod report;
pub mod revenue;
pub mod sched;
pub mod server;
pub mod settings;
pub mod store;
pub mod validate;
pub mod window;
