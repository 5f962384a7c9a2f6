//! Prometheus metrics of the running server (`GET /metrics`), exposed with
//! prometheus-client in the OpenMetrics text format. Counters live in memory since the
//! server started (Prometheus' `rate`/`increase` handle the reset of a restart). Spend is
//! summed exactly in nano-USD from the writer's commit effects (a replaced attempt's
//! difference included) and turned into USD once per scrape. Labels never hold tenants
//! or users (cardinality).

use crate::event::PricedEvent;
use crate::store::{SpendEffect, WorkspaceId, WriteResult};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// One series of the call metrics: workspace, environment, dataMode, provider, model,
/// endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallKey {
    workspace: WorkspaceId,
    environment: &'static str,
    data_mode: &'static str,
    provider: String,
    model: String,
    endpoint: String,
}

impl CallKey {
    fn labels(&self, workspace: &str) -> Labels {
        vec![
            ("workspace", workspace.to_string()),
            ("environment", self.environment.to_string()),
            ("data_mode", self.data_mode.to_string()),
            ("provider", self.provider.clone()),
            ("model", self.model.clone()),
            ("endpoint", self.endpoint.clone()),
        ]
    }
}

#[derive(Debug, Default, Clone)]
struct CallTally {
    /// New logical calls by status.
    requests: BTreeMap<&'static str, u64>,
    /// input, cached, cache_write, output, reasoning.
    tokens: [u64; 5],
    spend_nanos: i128,
    unpriced: i64,
}

const TOKEN_KINDS: [&str; 5] = ["input", "cached", "cache_write", "output", "reasoning"];

/// What the metrics keep of one ingested event.
pub struct Sample {
    key: CallKey,
    status: &'static str,
    tokens: [u64; 5],
    timestamp_ms: i64,
}

impl Sample {
    pub fn of(p: &PricedEvent) -> Sample {
        let e = &p.event;
        let t = &e.tokens;
        Sample {
            key: CallKey {
                workspace: WorkspaceId::default(),
                environment: e.environment.as_str(),
                data_mode: e.data_mode.as_str(),
                provider: e.provider.clone(),
                model: e.model.clone(),
                endpoint: e.endpoint_tag.clone(),
            },
            status: e.status.as_str(),
            tokens: [t.input, t.cached, t.cache_write, t.output, t.reasoning],
            timestamp_ms: e.timestamp_ms,
        }
    }
}

/// A budget's position for its gauges.
pub struct BudgetGauge {
    pub id: i64,
    pub name: String,
    /// Spent / limit (display ratio).
    pub used_ratio: f64,
    pub remaining_nanos: i64,
}

/// Upper bounds (seconds) of the guard's server-side histogram: fine from 50 us to
/// 10 ms so a p99 near its 1 ms target reads to within 100 us, then coarse to 100 ms.
pub const GUARD_BUCKETS: [f64; 24] = [
    0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009,
    0.001, 0.00125, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
];

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    calls: Mutex<HashMap<CallKey, CallTally>>,
    /// (workspace, outcome: accepted | duplicate | rejected) -> events.
    ingest: Mutex<HashMap<(WorkspaceId, &'static str), u64>>,
    /// (workspace, outcome: allow | budget_exceeded | rate_capped | ...) -> decisions.
    guard: Mutex<HashMap<(WorkspaceId, &'static str), u64>>,
    /// (workspace, outcome: pseudonymized | rejected) -> ids and tag values that looked
    /// like personal data.
    privacy: Mutex<HashMap<(WorkspaceId, &'static str), u64>>,
    /// Receipt time minus the event's timestamp, of accepted events (server-wide).
    lag: Histogram,
    /// Per route and method (server-wide).
    http: HistogramFamily,
    /// `POST /v1/guard` served (server-wide): see `observe_guard`.
    guard_latency: Histogram,
    /// Key checks by answer (server-wide): `keytable::Answer`.
    key_checks: Family<Labels, Counter>,
    /// That family's counters, made once: a request adds to one without a lookup.
    key_answers: [Counter; 3],
}

impl Default for Metrics {
    fn default() -> Metrics {
        let key_checks = Family::<Labels, Counter>::default();
        let key_answers = crate::keytable::Answer::ALL.map(|a| {
            key_checks
                .get_or_create(&vec![("answer", a.as_str().to_string())])
                .clone()
        });
        Metrics {
            calls: Mutex::default(),
            ingest: Mutex::default(),
            guard: Mutex::default(),
            privacy: Mutex::default(),
            // 1 s to ~9 days.
            lag: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            http: Family::new_with_constructor(latency_histogram),
            guard_latency: Histogram::new(GUARD_BUCKETS),
            key_checks,
            key_answers,
        }
    }
}

impl Metrics {
    /// The writer's effects of one commit: spend and unpriced calls, exact.
    fn apply_effects(&self, effects: &[SpendEffect]) {
        let mut calls = self.calls.lock().unwrap();
        for e in effects {
            let key = CallKey {
                workspace: e.workspace,
                environment: e.environment.as_str(),
                data_mode: e.data_mode.as_str(),
                provider: e.provider.clone(),
                model: e.model.clone(),
                endpoint: e.endpoint_tag.clone(),
            };
            let tally = calls.entry(key).or_default();
            tally.spend_nanos += i128::from(e.cost_delta);
            tally.unpriced += e.unpriced_delta;
        }
    }

    /// An ingest request's results: its new logical calls (requests, tokens), the
    /// outcome counts and the lag of what was stored. `samples` are the request's
    /// events (taken before they moved into the store), `results` the store's answer.
    pub fn record_ingest(
        &self,
        ws: WorkspaceId,
        samples: Vec<Sample>,
        results: &[WriteResult],
        rejected: usize,
        now_ms: i64,
    ) {
        let mut duplicates = 0;
        {
            let mut calls = self.calls.lock().unwrap();
            for (mut sample, result) in samples.into_iter().zip(results) {
                if matches!(result, WriteResult::Duplicate) {
                    duplicates += 1;
                    continue;
                }
                let lag_ms = (now_ms - sample.timestamp_ms).max(0);
                self.lag.observe(lag_ms as f64 / 1000.0);
                if matches!(result, WriteResult::Inserted) {
                    sample.key.workspace = ws;
                    let tally = calls.entry(sample.key).or_default();
                    *tally.requests.entry(sample.status).or_default() += 1;
                    for (sum, n) in tally.tokens.iter_mut().zip(sample.tokens) {
                        *sum = sum.saturating_add(n);
                    }
                }
            }
        }
        let accepted = results.len() - duplicates;
        let mut ingest = self.ingest.lock().unwrap();
        for (outcome, n) in [
            ("accepted", accepted),
            ("duplicate", duplicates),
            ("rejected", rejected),
        ] {
            *ingest.entry((ws, outcome)).or_default() += n as u64;
        }
    }

    /// Ids and tag values of an ingest request that looked like personal data.
    pub fn record_privacy(&self, ws: WorkspaceId, tally: crate::privacy::Tally) {
        let mut counts = self.privacy.lock().unwrap();
        for (outcome, n) in [
            ("pseudonymized", tally.pseudonymized),
            ("rejected", tally.rejected),
        ] {
            if n > 0 {
                *counts.entry((ws, outcome)).or_default() += n;
            }
        }
    }

    /// A workspace's ids and tag values pseudonymized and rejected since the start
    /// (what tracking quality shows).
    pub fn privacy_counts(&self, ws: WorkspaceId) -> crate::quality::PrivacyCounts {
        let counts = self.privacy.lock().unwrap();
        let get = |outcome| counts.get(&(ws, outcome)).copied().unwrap_or(0);
        crate::quality::PrivacyCounts {
            pseudonymized: get("pseudonymized"),
            rejected: get("rejected"),
        }
    }

    pub fn record_guard(&self, ws: WorkspaceId, reason: &'static str) {
        *self.guard.lock().unwrap().entry((ws, reason)).or_default() += 1;
    }

    /// One guard call's server-side time: from the first read of its bytes on the
    /// connection to its response handed back to the connection (`http::metrics::track`).
    pub fn observe_guard(&self, seconds: f64) {
        self.guard_latency.observe(seconds);
    }

    /// One request's key check, by where its answer came from.
    pub fn record_key_check(&self, answer: crate::keytable::Answer) {
        self.key_answers[answer as usize].inc();
    }

    pub fn observe_http(&self, route: &str, method: &str, seconds: f64) {
        self.http
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("method", method.to_string()),
            ])
            .observe(seconds);
    }

    /// The text a scrape gets: workspace `ws` (named `name`) and its budgets, plus the
    /// server-wide latency histograms.
    pub fn render(&self, ws: WorkspaceId, name: &str, budgets: &[BudgetGauge]) -> String {
        let mut registry = Registry::default();
        self.register_calls(&mut registry, ws, name);
        self.register_counts(&mut registry, ws, name);
        register_budgets(&mut registry, name, budgets);
        registry.register(
            "burnrate_ingest_lag_seconds",
            "Time from an accepted event's timestamp to its receipt",
            self.lag.clone(),
        );
        registry.register(
            "burnrate_http_request_duration_seconds",
            "HTTP request latency by route",
            self.http.clone(),
        );
        registry.register(
            "burnrate_guard_duration_seconds",
            "Server-side time of POST /v1/guard: from the first read of the request's bytes \
             on its connection to the response handed back to the connection (the kernel's \
             wake-up of the server before the read and the write of the answer are not in it)",
            self.guard_latency.clone(),
        );
        registry.register(
            "burnrate_key_checks",
            "API key checks by answer: memory (a live key of the key table), store (a key \
             the table lacked, asked of the store), refused (unknown, answered from memory \
             without asking: remembered unknown or over the store lookups' budget)",
            self.key_checks.clone(),
        );
        let mut text = String::new();
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }

    fn register_calls(&self, registry: &mut Registry, ws: WorkspaceId, name: &str) {
        let spend = Family::<Labels, Counter<f64, AtomicU64>>::default();
        let requests = Family::<Labels, Counter>::default();
        let tokens = Family::<Labels, Counter>::default();
        let unpriced = Family::<Labels, Counter>::default();
        for (key, tally) in self.calls.lock().unwrap().iter() {
            if key.workspace != ws {
                continue;
            }
            let labels = key.labels(name);
            spend.get_or_create(&labels).inc_by(usd(tally.spend_nanos));
            unpriced
                .get_or_create(&labels)
                .inc_by(tally.unpriced.max(0) as u64);
            for (status, n) in &tally.requests {
                let mut l = labels.clone();
                l.push(("status", status.to_string()));
                requests.get_or_create(&l).inc_by(*n);
            }
            for (kind, n) in TOKEN_KINDS.iter().zip(tally.tokens) {
                let mut l = labels.clone();
                l.push(("kind", kind.to_string()));
                tokens.get_or_create(&l).inc_by(n);
            }
        }
        registry.register(
            "burnrate_spend_usd",
            "Spend of the calls stored since the server started, USD",
            spend,
        );
        registry.register(
            "burnrate_requests",
            "Logical LLM calls stored since the server started",
            requests,
        );
        registry.register("burnrate_tokens", "Tokens by kind", tokens);
        registry.register(
            "burnrate_unpriced_requests",
            "Calls stored without a known cost",
            unpriced,
        );
    }

    fn register_counts(&self, registry: &mut Registry, ws: WorkspaceId, name: &str) {
        for (metric, help, source) in [
            (
                "burnrate_ingest_events",
                "Ingested events by outcome",
                &self.ingest,
            ),
            (
                "burnrate_guard_decisions",
                "Guard answers by outcome",
                &self.guard,
            ),
            (
                "burnrate_personal_ids",
                "Ids and tag values that looked like e-mail addresses or phone numbers, by outcome",
                &self.privacy,
            ),
        ] {
            let family = Family::<Labels, Counter>::default();
            for ((w, outcome), n) in source.lock().unwrap().iter() {
                if *w == ws {
                    family
                        .get_or_create(&vec![
                            ("workspace", name.to_string()),
                            ("outcome", outcome.to_string()),
                        ])
                        .inc_by(*n);
                }
            }
            registry.register(metric, help, family);
        }
    }
}

fn register_budgets(registry: &mut Registry, name: &str, budgets: &[BudgetGauge]) {
    let used = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let remaining = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for b in budgets {
        let labels = vec![
            ("workspace", name.to_string()),
            ("budget_id", b.id.to_string()),
            ("budget", b.name.clone()),
        ];
        used.get_or_create(&labels).set(b.used_ratio);
        remaining
            .get_or_create(&labels)
            .set(usd(i128::from(b.remaining_nanos)));
    }
    registry.register(
        "burnrate_budget_used_ratio",
        "Spent / limit of each budget's current period",
        used,
    );
    registry.register(
        "burnrate_budget_remaining_usd",
        "What is left of each budget's current period, USD",
        remaining,
    );
}

/// An exact nano-USD sum as the float a metric value is, through money's one display
/// conversion (once per scrape, never summed as a float).
fn usd(nanos: i128) -> f64 {
    crate::money::Usd(nanos.clamp(i64::MIN.into(), i64::MAX.into()) as i64).as_f64()
}

impl crate::ingest::SpendSink for Metrics {
    fn apply(&self, _seq: crate::store::CommitSeq, effects: &[SpendEffect]) {
        self.apply_effects(effects);
    }
}
