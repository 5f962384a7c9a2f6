//! The client: a bounded queue filled by `track()`, and one background worker that sends
//! batches to `/v1/ingest/batch`.
//!
//! The worker is a tokio task on a small current-thread runtime that the client owns, on
//! its own thread (`burnrate-client`). So the client works the same from sync code and
//! from any async runtime (multi- or current-thread), never competes with the app's
//! tasks, and its final flush does not depend on the app's runtime still running when
//! the client is dropped.

use crate::error::Error;
use crate::event::{DataMode, Environment, Event};
use crate::guard::{parse_guard_response, GuardDecision, GuardRequest};
use crate::util::parse_retry_after;
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch, Notify};

const USER_AGENT: &str = concat!("burnrate-rust/", env!("CARGO_PKG_VERSION"));

/// Delivery counters, a snapshot from [`Client::stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Events accepted into the queue.
    pub enqueued: u64,
    /// Events the server accepted (new ones; see `duplicates`).
    pub sent: u64,
    /// Events the server already had (a resend of the same id and attempt).
    pub duplicates: u64,
    /// Events the server refused as invalid (listed in a 202 answer, or a whole batch
    /// refused with a 4xx other than 401/402/403/413/429).
    pub rejected: u64,
    /// Events dropped by `track()` because the queue was full (the newest is dropped).
    pub dropped_queue_full: u64,
    /// Events dropped after network errors, timeouts, 5xx or 429 outlasted the retries,
    /// or that could not be sent before shutdown.
    pub dropped_after_retries: u64,
    /// Events dropped because the server refused the API key (401/403).
    pub dropped_unauthorized: u64,
    /// Events not queued because the client has no URL/key or is disabled.
    pub dropped_disabled: u64,
    /// Events in the queue or being sent.
    pub queued: u64,
    /// POSTs answered with 2xx.
    pub batches_sent: u64,
    /// Failed POST attempts (network error, timeout, 5xx).
    pub send_errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 402 answers (workspace paused).
    pub paused_responses: u64,
    /// Sending is paused after a 402.
    pub paused: bool,
    /// The last delivery problem, for humans (never contains the API key).
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    enqueued: AtomicU64,
    sent: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_after_retries: AtomicU64,
    dropped_unauthorized: AtomicU64,
    dropped_disabled: AtomicU64,
    batches_sent: AtomicU64,
    send_errors: AtomicU64,
    rate_limited: AtomicU64,
    paused_responses: AtomicU64,
}

/// State shared by the client handles and the worker.
struct Shared {
    c: Counters,
    /// Events the worker finished with (sent, refused or dropped); flush waits on it.
    handled: watch::Sender<u64>,
    /// Wakes the worker early: a full batch is queued, a flush waits, or shutdown.
    wake: Notify,
    /// Cuts the worker's sleeps short at shutdown.
    closing: Notify,
    closed: AtomicBool,
    shutdown_deadline: OnceLock<Instant>,
    flushers: AtomicUsize,
    paused: AtomicBool,
    logged_pause: AtomicBool,
    logged_auth: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            c: Counters::default(),
            handled: watch::channel(0).0,
            wake: Notify::new(),
            closing: Notify::new(),
            closed: AtomicBool::new(false),
            shutdown_deadline: OnceLock::new(),
            flushers: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            logged_pause: AtomicBool::new(false),
            logged_auth: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    fn set_error(&self, msg: String) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(msg);
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    environment: Option<Environment>,
    data_mode: Option<DataMode>,
    batch_size: usize,
    flush_interval: Duration,
    queue_size: usize,
    timeout: Duration,
    max_send_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    max_rate_limited_retries: u32,
    pause: Duration,
    flush_timeout: Duration,
    shutdown_timeout: Duration,
    log_to_stderr: bool,
}

/// Configuration of a [`Client`]. Defaults: batch 100 events, flush interval 1 s, queue
/// 10,000 events, request timeout 600 ms, 4 send attempts per batch, flush timeout 5 s,
/// shutdown timeout 2 s, pause 30 s after a 402 without `Retry-After`.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: Option<String>,
    api_key: Option<String>,
    enabled: bool,
    cfg: Config,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            url: None,
            api_key: None,
            enabled: true,
            cfg: Config {
                environment: None,
                data_mode: None,
                batch_size: 100,
                flush_interval: Duration::from_secs(1),
                queue_size: 10_000,
                timeout: Duration::from_millis(600),
                max_send_attempts: 4,
                backoff_base: Duration::from_millis(250),
                backoff_max: Duration::from_secs(8),
                max_retry_after: Duration::from_secs(60),
                max_rate_limited_retries: 10,
                pause: Duration::from_secs(30),
                flush_timeout: Duration::from_secs(5),
                shutdown_timeout: Duration::from_secs(2),
                log_to_stderr: true,
            },
        }
    }
}

impl ClientBuilder {
    /// An empty builder (no URL or key: the client would do nothing).
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// From the environment: `BURNRATE_URL`, `BURNRATE_API_KEY` (the old name
    /// `BURNRATE_KEY` still works, with a deprecation note on stderr),
    /// `BURNRATE_ENVIRONMENT` (prod, staging, dev), `BURNRATE_DATA_MODE` (real, test, demo)
    /// and `BURNRATE_DISABLED=1`. Unknown values are ignored.
    pub fn from_env() -> ClientBuilder {
        ClientBuilder::from_vars(
            |k| std::env::var(k).ok(),
            |note| eprintln!("burnrate: {note}"),
        )
    }

    /// `from_env` over any variable lookup; `warn` receives deprecation notes.
    fn from_vars(
        lookup: impl Fn(&str) -> Option<String>,
        warn: impl FnOnce(&str),
    ) -> ClientBuilder {
        let var = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut b = ClientBuilder::new();
        b.url = var("BURNRATE_URL");
        b.api_key = var("BURNRATE_API_KEY").or_else(|| {
            let old = var("BURNRATE_KEY")?;
            warn("BURNRATE_KEY is deprecated; set BURNRATE_API_KEY instead");
            Some(old)
        });
        b.cfg.environment = var("BURNRATE_ENVIRONMENT").and_then(|v| Environment::parse(&v));
        b.cfg.data_mode = var("BURNRATE_DATA_MODE").and_then(|v| DataMode::parse(&v));
        if let Some(v) = var("BURNRATE_DISABLED") {
            b.enabled = !matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes");
        }
        b
    }

    /// Server base URL, e.g. `http://burnrate:8080`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// An ingest-scope key (sent as `X-API-Key`, never logged).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Default `environment` for events that set none.
    pub fn environment(mut self, env: Environment) -> Self {
        self.cfg.environment = Some(env);
        self
    }

    /// Default `dataMode` for events that set none.
    pub fn data_mode(mut self, mode: DataMode) -> Self {
        self.cfg.data_mode = Some(mode);
        self
    }

    /// Events per POST (1..=10,000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.cfg.batch_size = n.clamp(1, 10_000);
        self
    }

    /// The longest an event waits in the queue before the worker sends it.
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.cfg.flush_interval = d.max(Duration::from_millis(1));
        self
    }

    /// Bound of the in-memory queue, in events.
    pub fn queue_size(mut self, n: usize) -> Self {
        self.cfg.queue_size = n.max(1);
        self
    }

    /// Per-request timeout of sends and `guard()` (default 600 ms).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.cfg.timeout = d;
        self
    }

    /// Attempts per batch on network errors, timeouts and 5xx before it is dropped.
    pub fn max_send_attempts(mut self, n: u32) -> Self {
        self.cfg.max_send_attempts = n.max(1);
        self
    }

    /// Base and cap of the jittered exponential backoff between send attempts.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.cfg.backoff_base = base;
        self.cfg.backoff_max = max.max(base);
        self
    }

    /// How long sending pauses after a 402 that has no `Retry-After` (default 30 s).
    pub fn pause_on_402(mut self, d: Duration) -> Self {
        self.cfg.pause = d;
        self
    }

    /// Default bound of [`Client::flush`] (5 s).
    pub fn flush_timeout(mut self, d: Duration) -> Self {
        self.cfg.flush_timeout = d;
        self
    }

    /// How long dropping the last handle may block to send what is queued (2 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.cfg.shutdown_timeout = d;
        self
    }

    /// Print the one-line notices (402 pause, refused key) to stderr (default true).
    pub fn log_to_stderr(mut self, on: bool) -> Self {
        self.cfg.log_to_stderr = on;
        self
    }

    /// `false` makes every call a no-op (`track()` only counts `dropped_disabled`).
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Start the client. Never fails: without a usable URL and key, or if the worker
    /// cannot start, the client is disabled (see [`Stats::last_error`]).
    pub fn build(self) -> Client {
        let shared = Arc::new(Shared::new());
        let cfg = Arc::new(self.cfg);
        let mut inner = Inner {
            tx: None,
            shared: shared.clone(),
            cfg: cfg.clone(),
            remote: None,
            done: Mutex::new(None),
        };
        if !self.enabled {
            return Client {
                inner: Arc::new(inner),
            };
        }
        match start(self.url, self.api_key, cfg, shared.clone()) {
            Ok((tx, remote, done)) => {
                inner.tx = Some(tx);
                inner.remote = Some(remote);
                inner.done = Mutex::new(Some(done));
            }
            Err(e) => shared.set_error(e),
        }
        Client {
            inner: Arc::new(inner),
        }
    }
}

/// What the worker and `guard()` need to talk to the server.
#[derive(Clone)]
struct Remote {
    rt: tokio::runtime::Handle,
    http: reqwest::Client,
    base: String,
    api_key: String,
}

type Started = (mpsc::Sender<Event>, Remote, std::sync::mpsc::Receiver<()>);

fn start(
    url: Option<String>,
    api_key: Option<String>,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
) -> Result<Started, String> {
    let url = url.ok_or("no URL configured (BURNRATE_URL)")?;
    let api_key = api_key.ok_or("no API key configured (BURNRATE_API_KEY)")?;
    let base = url.trim().trim_end_matches('/').to_string();
    match reqwest::Url::parse(&base) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => return Err("invalid URL: must be http(s)://host[:port]".into()),
    }
    let http = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("burnrate-client")
        .build()
        .map_err(|e| format!("cannot start the worker runtime: {e}"))?;
    let remote = Remote {
        rt: rt.handle().clone(),
        http,
        base,
        api_key,
    };
    let (tx, rx) = mpsc::channel(cfg.queue_size);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = Worker {
        remote: remote.clone(),
        cfg,
        shared,
    };
    // Dropped without waiting, wherever it is dropped: a plain `Runtime` drop panics
    // inside an async context (should the thread fail to start there).
    let rt = RtGuard(Some(rt));
    std::thread::Builder::new()
        .name("burnrate-client".into())
        .spawn(move || {
            if let Some(rt) = &rt.0 {
                rt.block_on(worker.run(rx));
            }
            let _ = done_tx.send(());
            drop(rt);
        })
        .map_err(|e| format!("cannot start the worker thread: {e}"))?;
    Ok((tx, remote, done_rx))
}

struct RtGuard(Option<tokio::runtime::Runtime>);

impl Drop for RtGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A handle to the burnrate client. Cheap to clone; all clones share one queue and one
/// worker. Dropping the last clone flushes what is queued (bounded by the shutdown
/// timeout) and stops the worker.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<mpsc::Sender<Event>>,
    shared: Arc<Shared>,
    cfg: Arc<Config>,
    remote: Option<Remote>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.remote.as_ref().map(|r| &r.base))
            .field("enabled", &self.inner.tx.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client sending to `url` (e.g. `http://burnrate:8080`) with an ingest key.
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Client {
        ClientBuilder::new().url(url).api_key(api_key).build()
    }

    /// A client configured from `BURNRATE_URL` and `BURNRATE_API_KEY` (see
    /// [`ClientBuilder::from_env`]); disabled if they are missing.
    pub fn from_env() -> Client {
        ClientBuilder::from_env().build()
    }

    /// A builder with the defaults, to set the URL, key and the delivery knobs.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// True when events are actually sent somewhere.
    pub fn is_enabled(&self) -> bool {
        self.inner.tx.is_some()
    }

    /// Queue one event. Never blocks, never fails, never panics: when the queue is full
    /// the event (the newest) is dropped and counted in `dropped_queue_full`.
    pub fn track(&self, event: Event) {
        let c = &self.inner.shared.c;
        let Some(tx) = &self.inner.tx else {
            c.dropped_disabled.fetch_add(1, Relaxed);
            return;
        };
        match tx.try_send(event) {
            Ok(()) => {
                c.enqueued.fetch_add(1, SeqCst);
                // Wake the worker early once a full batch waits.
                if tx.max_capacity() - tx.capacity() >= self.inner.cfg.batch_size {
                    self.inner.shared.wake.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.dropped_queue_full.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                c.dropped_after_retries.fetch_add(1, Relaxed);
            }
        }
    }

    /// Send everything queued so far; resolves when it is handled (sent, refused or
    /// dropped: true) or after the flush timeout (5 s by default: false). Works from
    /// any async runtime (the wait runs on the client's own runtime).
    pub async fn flush(&self) -> bool {
        self.flush_timeout(self.inner.cfg.flush_timeout).await
    }

    /// [`flush`](Client::flush) with an explicit bound.
    pub async fn flush_timeout(&self, timeout: Duration) -> bool {
        match &self.inner.remote {
            None => true,
            Some(remote) => remote
                .rt
                .spawn(self.flush_future(timeout))
                .await
                .unwrap_or(false),
        }
    }

    /// [`flush`](Client::flush) for sync code: blocks the calling thread up to `timeout`.
    /// Do not call it from inside an async task (use `flush().await` there).
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        let Some(remote) = &self.inner.remote else {
            return true;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let wait = self.flush_future(timeout);
        remote.rt.spawn(async move {
            let _ = tx.send(wait.await);
        });
        rx.recv_timeout(timeout + Duration::from_millis(100))
            .unwrap_or(false)
    }

    fn flush_future(&self, timeout: Duration) -> impl std::future::Future<Output = bool> + Send {
        let shared = self.inner.shared.clone();
        let target = shared.c.enqueued.load(SeqCst);
        async move {
            let mut handled = shared.handled.subscribe();
            if *handled.borrow() >= target {
                return true;
            }
            shared.flushers.fetch_add(1, SeqCst);
            shared.wake.notify_one();
            let ok = matches!(
                tokio::time::timeout(timeout, handled.wait_for(|h| *h >= target)).await,
                Ok(Ok(_))
            );
            shared.flushers.fetch_sub(1, SeqCst);
            ok
        }
    }

    /// Delivery counters.
    pub fn stats(&self) -> Stats {
        let s = &self.inner.shared;
        let c = &s.c;
        let enqueued = c.enqueued.load(SeqCst);
        let handled = *s.handled.borrow();
        Stats {
            enqueued,
            sent: c.sent.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Relaxed),
            dropped_after_retries: c.dropped_after_retries.load(Relaxed),
            dropped_unauthorized: c.dropped_unauthorized.load(Relaxed),
            dropped_disabled: c.dropped_disabled.load(Relaxed),
            queued: enqueued.saturating_sub(handled),
            batches_sent: c.batches_sent.load(Relaxed),
            send_errors: c.send_errors.load(Relaxed),
            rate_limited: c.rate_limited.load(Relaxed),
            paused_responses: c.paused_responses.load(Relaxed),
            paused: s.paused.load(Relaxed),
            last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// Ask the server (`POST /v1/guard`) whether a call fits the budgets. A denial is
    /// `Ok` with `allow == false`; `Err` means the server could not be asked (down,
    /// timeout, unknown answer): decide yourself whether to fail open or closed.
    pub async fn guard(&self, request: GuardRequest) -> Result<GuardDecision, Error> {
        let remote = self.inner.remote.clone().ok_or(Error::NotConfigured)?;
        let rt = remote.rt.clone();
        rt.spawn(guard_request(remote, request))
            .await
            .map_err(|_| Error::Shutdown)?
    }

    /// [`guard`](Client::guard) for sync code (blocks up to the request timeout).
    pub fn guard_blocking(&self, request: GuardRequest) -> Result<GuardDecision, Error> {
        let remote = self.inner.remote.clone().ok_or(Error::NotConfigured)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        remote.rt.clone().spawn(async move {
            let _ = tx.send(guard_request(remote, request).await);
        });
        rx.recv_timeout(self.inner.cfg.timeout + Duration::from_secs(1))
            .map_err(|_| Error::Http("timed out".into()))?
    }
}

async fn guard_request(remote: Remote, request: GuardRequest) -> Result<GuardDecision, Error> {
    let resp = remote
        .http
        .post(format!("{}/v1/guard", remote.base))
        .header("X-API-Key", &remote.api_key)
        .json(&request)
        .send()
        .await
        .map_err(|e| Error::Http(describe(&e)))?;
    let status = resp.status().as_u16();
    let retry_after = header(&resp, "retry-after");
    let body = resp.bytes().await.map_err(|e| Error::Http(describe(&e)))?;
    parse_guard_response(status, retry_after.as_deref(), &body)
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A short description of a request error (no headers, so never the API key).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    if e.is_connect() {
        return "connection failed".into();
    }
    // The innermost cause says the most ("connection reset", "invalid HTTP version").
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl Drop for Inner {
    /// The last handle is gone: send what is queued, bounded by the shutdown timeout.
    /// This blocks the dropping thread for at most that long (also inside an async
    /// runtime, where it never panics, unlike `block_on`/`block_in_place`).
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let s = &self.shared;
        let _ = s
            .shutdown_deadline
            .set(Instant::now() + self.cfg.shutdown_timeout);
        s.closed.store(true, SeqCst);
        s.closing.notify_waiters();
        s.wake.notify_one();
        drop(tx);
        if let Some(done) = self.done.lock().ok().and_then(|mut d| d.take()) {
            let _ = done.recv_timeout(self.cfg.shutdown_timeout + Duration::from_millis(200));
        }
    }
}

struct Worker {
    remote: Remote,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
}

enum Sent {
    Done,
    TooLarge,
}

impl Worker {
    fn closed(&self) -> bool {
        self.shared.closed.load(SeqCst)
    }

    fn past_shutdown_deadline(&self) -> bool {
        self.shared
            .shutdown_deadline
            .get()
            .is_some_and(|d| Instant::now() >= *d)
    }

    /// Wait for the interval or an early wake-up, then send everything queued, in
    /// batches; until every handle is dropped and the queue is drained.
    async fn run(self, mut rx: mpsc::Receiver<Event>) {
        let mut disconnected = false;
        while !disconnected {
            let mut first = None;
            if self.closed() {
                // Shutting down: drain until the last handle's sender is gone.
                match rx.recv().await {
                    Some(e) => first = Some(e),
                    None => break,
                }
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(self.cfg.flush_interval) => {}
                    _ = self.shared.wake.notified() => {}
                }
            }
            loop {
                let mut batch = Vec::with_capacity(self.cfg.batch_size.min(1024));
                batch.extend(first.take());
                while batch.len() < self.cfg.batch_size {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
                if batch.is_empty() {
                    break;
                }
                let n = batch.len() as u64;
                self.deliver(batch).await;
                self.shared.handled.send_modify(|h| *h += n);
            }
        }
    }

    async fn deliver(&self, mut events: Vec<Event>) {
        for e in &mut events {
            e.finalize(self.cfg.environment, self.cfg.data_mode);
        }
        // 413: split in halves until the server takes them.
        let mut stack = vec![events];
        while let Some(mut chunk) = stack.pop() {
            if let Sent::TooLarge = self.send(&chunk).await {
                let right = chunk.split_off(chunk.len() / 2);
                stack.push(right);
                stack.push(chunk);
            }
        }
    }

    /// Sleep, cut short at shutdown.
    async fn sleep(&self, d: Duration) {
        let closing = self.shared.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.closed() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = closing => {}
        }
    }

    fn drop_batch(&self, n: u64, why: String) {
        self.shared.c.dropped_after_retries.fetch_add(n, Relaxed);
        self.shared.set_error(why);
    }

    fn notice(&self, flag: &AtomicBool, msg: &str) {
        if self.cfg.log_to_stderr && !flag.swap(true, Relaxed) {
            eprintln!("{msg}");
        }
    }

    async fn send(&self, events: &[Event]) -> Sent {
        let c = &self.shared.c;
        let n = events.len() as u64;
        let body = match serde_json::to_vec(events) {
            Ok(b) => b,
            Err(e) => {
                c.rejected.fetch_add(n, Relaxed);
                self.shared.set_error(format!("cannot encode events: {e}"));
                return Sent::Done;
            }
        };
        let url = format!("{}/v1/ingest/batch", self.remote.base);
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        let mut paused_until: Option<Instant> = None;
        loop {
            if let Some(until) = paused_until {
                let now = Instant::now();
                if now < until {
                    if self.closed() {
                        self.drop_batch(n, "workspace paused (HTTP 402) at shutdown".into());
                        return Sent::Done;
                    }
                    self.sleep(until - now).await;
                    continue;
                }
            }
            if self.past_shutdown_deadline() {
                self.drop_batch(n, "shutdown timeout reached".into());
                return Sent::Done;
            }
            let result = self
                .remote
                .http
                .post(&url)
                .header("X-API-Key", &self.remote.api_key)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let (status, retry_after, answer) = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = header(&resp, "retry-after")
                        .and_then(|v| parse_retry_after(&v, SystemTime::now()));
                    // A 2xx whose body cannot be read still means the batch arrived.
                    let answer = resp.bytes().await.ok();
                    (status, retry_after, answer)
                }
                Err(e) => (0, None, Some(describe(&e).into_bytes().into())),
            };
            match status {
                200..=299 => {
                    self.accepted(n, answer.as_deref().unwrap_or_default());
                    self.shared.paused.store(false, Relaxed);
                    self.shared.logged_pause.store(false, Relaxed);
                    return Sent::Done;
                }
                429 => {
                    c.rate_limited.fetch_add(1, Relaxed);
                    rate_limited += 1;
                    if rate_limited > self.cfg.max_rate_limited_retries || self.closed() {
                        self.drop_batch(n, "rate limited (HTTP 429)".into());
                        return Sent::Done;
                    }
                    let wait = retry_after
                        .unwrap_or(Duration::from_secs(1))
                        .min(self.cfg.max_retry_after);
                    self.sleep(wait).await;
                }
                402 => {
                    c.paused_responses.fetch_add(1, Relaxed);
                    self.shared.paused.store(true, Relaxed);
                    self.shared
                        .set_error("workspace paused (HTTP 402); sending is paused".into());
                    self.notice(
                        &self.shared.logged_pause,
                        "burnrate: the workspace is paused (HTTP 402); sending is paused and \
                         events stay queued (bounded) until ingest accepts them again",
                    );
                    let pause = retry_after
                        .unwrap_or(self.cfg.pause)
                        .min(Duration::from_secs(3600));
                    paused_until = Some(Instant::now() + pause);
                }
                401 | 403 => {
                    c.dropped_unauthorized.fetch_add(n, Relaxed);
                    self.shared
                        .set_error(format!("ingest refused the API key (HTTP {status})"));
                    self.notice(
                        &self.shared.logged_auth,
                        &format!(
                            "burnrate: ingest refused the API key (HTTP {status}); events are dropped"
                        ),
                    );
                    return Sent::Done;
                }
                413 if n > 1 => return Sent::TooLarge,
                400..=499 => {
                    c.rejected.fetch_add(n, Relaxed);
                    self.shared
                        .set_error(format!("ingest refused a batch of {n} (HTTP {status})"));
                    return Sent::Done;
                }
                _ => {
                    // network error, timeout, 5xx: jittered exponential backoff, then drop
                    c.send_errors.fetch_add(1, Relaxed);
                    failures += 1;
                    let why = if status == 0 {
                        String::from_utf8_lossy(answer.as_deref().unwrap_or_default()).into_owned()
                    } else {
                        format!("HTTP {status}")
                    };
                    if failures >= self.cfg.max_send_attempts || self.closed() {
                        self.drop_batch(
                            n,
                            format!(
                                "could not deliver {n} events after {failures} attempts: {why}"
                            ),
                        );
                        return Sent::Done;
                    }
                    self.shared.set_error(format!("send failed: {why}"));
                    let cap = self
                        .cfg
                        .backoff_base
                        .saturating_mul(1 << failures.min(16))
                        .min(self.cfg.backoff_max);
                    let jittered = rand::rng().random_range(0.5..=1.0) * cap.as_secs_f64();
                    self.sleep(Duration::from_secs_f64(jittered)).await;
                }
            }
        }
    }

    /// A 202: count accepted, duplicates and per-event rejections.
    fn accepted(&self, n: u64, body: &[u8]) {
        let c = &self.shared.c;
        c.batches_sent.fetch_add(1, Relaxed);
        let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let accepted = answer.get("accepted").and_then(|v| v.as_u64());
        let duplicates = answer
            .get("duplicates")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let rejected = answer.get("rejected").and_then(|v| v.as_array());
        let rejected_n = rejected.map_or(0, |r| r.len() as u64);
        c.sent.fetch_add(
            accepted.unwrap_or(n.saturating_sub(rejected_n + duplicates)),
            Relaxed,
        );
        c.duplicates.fetch_add(duplicates, Relaxed);
        if let Some(first) = rejected.and_then(|r| r.first()) {
            c.rejected.fetch_add(rejected_n, Relaxed);
            let fields: Vec<String> = first
                .get("errors")
                .and_then(|e| e.as_array())
                .map(|errs| {
                    errs.iter()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e.get("field").and_then(|f| f.as_str()).unwrap_or("?"),
                                e.get("message").and_then(|m| m.as_str()).unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.shared.set_error(format!(
                "ingest rejected {rejected_n} events (first: {})",
                fields.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn from(vars: &[(&str, &str)], notes: &RefCell<Vec<String>>) -> ClientBuilder {
        ClientBuilder::from_vars(
            |k| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            },
            |note| notes.borrow_mut().push(note.to_string()),
        )
    }

    #[test]
    fn old_burnrate_key_env_var_still_works_with_a_deprecation_note() {
        let notes = RefCell::new(Vec::new());
        let b = from(
            &[("BURNRATE_URL", "http://x:1"), ("BURNRATE_KEY", "old-key")],
            &notes,
        );
        assert_eq!(b.api_key.as_deref(), Some("old-key"));
        assert_eq!(b.url.as_deref(), Some("http://x:1"));
        assert_eq!(
            *notes.borrow(),
            vec!["BURNRATE_KEY is deprecated; set BURNRATE_API_KEY instead"]
        );
    }

    #[test]
    fn burnrate_api_key_wins_over_the_old_name_without_a_note() {
        let notes = RefCell::new(Vec::new());
        let b = from(
            &[("BURNRATE_API_KEY", "new-key"), ("BURNRATE_KEY", "old-key")],
            &notes,
        );
        assert_eq!(b.api_key.as_deref(), Some("new-key"));
        assert!(notes.borrow().is_empty());
    }
}
