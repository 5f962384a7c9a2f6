//! The server's lifecycle: open the store, fill an empty one with the demo when asked,
//! claim the first start (an admin key), build the shared state (prices, budgets and
//! their counters, alerts, settings), start the background loops, serve until shutdown,
//! then stop the loops and close the store. `run` is what `burnrate serve` calls; `start`
//! runs the same server in-process (port 0 in tests) and hands back its address.

mod background;
pub mod nodes;

use crate::app::AppState;
use crate::auth;
use crate::clock::{system_clock, Clock};
use crate::http::server::Limits;
use crate::load::{self, DemoRun};
use crate::ratelimit::RateConfig;
use crate::store::{Scope, Store};
use anyhow::Context;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Everything the server needs to know, as the command line (or a test) decided it.
pub struct Config {
    /// The store's URL (`store::open`).
    pub store: String,
    /// Address to bind, e.g. 127.0.0.1:8080 (port 0: any free port).
    pub listen: String,
    /// Fill an empty database with demo traffic first.
    pub demo: bool,
    /// Ingest rate and burst per key.
    pub rate: RateConfig,
    /// How long a guard reservation waits for its ingest event before it lapses.
    pub reservation_ttl_ms: i64,
    /// The dashboard's address as people reach it, for links in alert messages
    /// (`None`: http:// plus the bound address).
    pub public_url: Option<String>,
    /// Evaluate the alert rules every minute.
    pub alerts: bool,
    /// Seal closed hours every minute (`EventStore::seal`).
    pub seal: bool,
    /// Nice levels background threads run below the request-serving ones (`sched`).
    pub background_nice: i32,
    /// Connection limits and timeouts of the accept loop.
    pub limits: Limits,
}

impl Config {
    /// A server embedded in another program (tests, tools) on the store at `store`: any
    /// free loopback port, no demo, no ingest rate limit, no minute alert loop (the
    /// embedding program evaluates when it chooses) and no sealing loop (it may call
    /// `EventStore::seal`), the default connection limits.
    pub fn embedded(store: String) -> Config {
        Config {
            store,
            listen: "127.0.0.1:0".into(),
            demo: false,
            rate: RateConfig {
                per_second: 0.0,
                burst: 0.0,
            },
            reservation_ttl_ms: 600_000,
            public_url: None,
            alerts: false,
            seal: false,
            background_nice: crate::sched::DEFAULT_NICE,
            limits: Limits {
                header_read_timeout: std::time::Duration::from_secs(10),
                idle_timeout: std::time::Duration::from_secs(60),
                max_connections: 16,
            },
        }
    }
}

/// Serve until `shutdown` resolves, then let in-flight requests end and close the store.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Ready::prepare(config, system_clock())
        .await?
        .serve(shutdown)
        .await
}

/// A server started in-process by `start`.
pub struct Running {
    /// The address it listens on (the port chosen when the config said 0).
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Shut down as on SIGTERM and wait until the store is closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.done.await.context("the server task panicked")?
    }
}

/// Start the server on a task of the current runtime; it serves once this returns.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with_clock(config, system_clock()).await
}

/// `start` with the services reading "now" from `clock` (tests freeze or step time).
pub async fn start_with_clock(config: Config, clock: Clock) -> anyhow::Result<Running> {
    let ready = Ready::prepare(config, clock).await?;
    let addr = ready.addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(ready.serve(async {
        let _ = stopped.await;
    }));
    Ok(Running { addr, stop, done })
}

/// Resolves on Ctrl-C or SIGTERM: the shutdown `burnrate serve` waits for.
pub async fn shutdown_signal() {
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

/// A server with its store open, its state built and its socket bound: what is left is
/// to serve.
struct Ready {
    store: Arc<dyn Store>,
    state: Arc<AppState>,
    listener: TcpListener,
    addr: SocketAddr,
    store_url: String,
    alerts: bool,
    seal: bool,
    limits: Limits,
    /// This server among the nodes sharing the store.
    node: Arc<nodes::Registration>,
}

impl Ready {
    /// Open the store and get everything ready; on failure the store is closed again.
    async fn prepare(config: Config, clock: Clock) -> anyhow::Result<Ready> {
        // Before the store starts its threads.
        crate::sched::set_background_nice(config.background_nice);
        let store = crate::store::open(&config.store)?;
        match Ready::prepare_on(store.clone(), config, clock).await {
            Ok(ready) => Ok(ready),
            Err(e) => {
                store.close().await;
                Err(e)
            }
        }
    }

    async fn prepare_on(
        store: Arc<dyn Store>,
        config: Config,
        clock: Clock,
    ) -> anyhow::Result<Ready> {
        store.warm_up().await?;
        if config.demo && store.event_count().await? == 0 {
            let now = jiff::Timestamp::now().as_millisecond();
            load::demo(store.clone(), DemoRun::serve_default(now)).await?;
        }
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        claim_first_start(store.as_ref(), &config.store, addr).await?;
        let public_url = config
            .public_url
            .unwrap_or_else(|| format!("http://{addr}"));
        let state = AppState::new(
            store.clone(),
            config.rate,
            config.reservation_ttl_ms,
            public_url,
            clock,
        )
        .await?;
        // Join the nodes before serving: with others live, the budgets are loaded again
        // with this node's share of each blocking budget.
        let node = Arc::new(nodes::Registration::join(store.as_ref()).await?);
        let live = node.beat(store.as_ref(), wall_ms()).await?;
        // Every later load of a blocking budget (one created or changed through this
        // node, or through the CLI) counts the live nodes first: a node that joined since
        // this node's last tick gets its share from that load on.
        let (counting_store, counting_node) = (store.clone(), node.clone());
        state.budgets.count_nodes_with(Arc::new(move || {
            let (store, node) = (counting_store.clone(), counting_node.clone());
            Box::pin(async move { node.live(store.as_ref(), wall_ms()).await })
        }));
        state.budgets.counters.set_nodes(live);
        state.limiter.set_nodes(live);
        if live > 1 {
            state.budgets.refresh_spend().await?;
        }
        Ok(Ready {
            store,
            node,
            state: Arc::new(state),
            listener,
            addr,
            store_url: config.store,
            alerts: config.alerts,
            seal: config.seal,
            limits: config.limits,
        })
    }

    /// Serve until `shutdown`, stop the background loops, close the store.
    async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.store.clone();
        let node = self.node.clone();
        let state = self.state.clone();
        let result = self.serve_until(shutdown).await;
        if let Err(e) = state.alerts.release_leases().await {
            tracing::warn!(error = %e, "releasing the alert leases failed");
        }
        if let Err(e) = node.leave(store.as_ref()).await {
            tracing::warn!(error = %e, "leaving the node registry failed");
        }
        store.close().await;
        result
    }

    async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let reloader = background::reload_every_2s(self.state.clone(), self.node.clone());
        let refresher = background::refresh_keys_and_rules(self.state.clone());
        let evaluator = self
            .alerts
            .then(|| background::evaluate_alerts_every_minute(self.state.clone()));
        let pruner = background::prune_every_hour(self.state.clone());
        let sealer = self
            .seal
            .then(|| background::seal_every_minute(self.state.clone(), self.node.clone()));
        println!("listening on http://{}", self.addr);
        std::io::stdout().flush()?;
        tracing::info!(addr = %self.addr, store = %self.store_url, "serving");
        let served = crate::http::serve(self.listener, self.state, self.limits, shutdown).await;
        reloader.abort();
        refresher.abort();
        pruner.abort();
        if let Some(sealer) = sealer {
            sealer.abort();
        }
        if let Some(evaluator) = evaluator {
            evaluator.abort();
        }
        served?;
        tracing::info!("in-flight requests done; closing the store");
        Ok(())
    }
}

fn wall_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// On a new database: create the first admin key and print it once, with a first
/// event to post.
async fn claim_first_start(
    store: &dyn Store,
    store_url: &str,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    if !store.claim_first_start().await? {
        return Ok(());
    }
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
    print_first_start(store_url, &addr.to_string(), &key);
    Ok(())
}

fn print_first_start(store_url: &str, addr: &str, key: &str) {
    let event = r#"{"externalRequestId":"hello-1","provider":"openai","model":"gpt-4o-mini","endpointTag":"hello.world","inputTokens":1200,"cachedTokens":200,"outputTokens":300,"status":"success"}"#;
    println!("new store {store_url} with workspace \"default\"");
    println!("admin key (shown once, keep it safe): {key}");
    println!("post a first event:");
    println!("  curl -sS http://{addr}/v1/ingest/llm-request -H 'X-API-Key: {key}' -H 'Content-Type: application/json' -d '{event}'");
    println!("then see it priced:");
    println!("  curl -sS http://{addr}/v1/events -H 'X-API-Key: {key}'");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn config(db: PathBuf) -> Config {
        Config::embedded(format!("sqlite://{}", db.display()))
    }

    #[tokio::test]
    async fn starts_in_process_on_port_0_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(config(dir.path().join("b.db"))).await.unwrap();
        assert_ne!(running.addr.port(), 0);
        let health = reqwest::get(format!("http://{}/healthz", running.addr))
            .await
            .unwrap();
        assert!(health.status().is_success());
        let addr = running.addr;
        running.stop().await.unwrap();
        assert!(reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err());
    }
}
