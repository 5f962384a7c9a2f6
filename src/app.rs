//! The running server's shared state: the store, the current price book (reloaded when
//! a book is imported, even by another process), the rate limiter and the clock.

use crate::clock::Clock;
use crate::price::{book::BookFile, Layer, PriceBook};
use crate::ratelimit::{RateConfig, RateLimiter};
use crate::store::{KeyInfo, Store, StoredBook};
use std::sync::{Arc, RwLock};

pub struct AppState {
    pub store: Arc<dyn Store>,
    prices: RwLock<Arc<PriceBook>>,
    price_generation: RwLock<i64>,
    pub limiter: RateLimiter,
    /// Parsing and pricing run on at most (cores - 1) threads at once, so the single
    /// writer thread always has a core: it is the serial step of ingest.
    pub cpu_permits: tokio::sync::Semaphore,
    /// Alert settings, evaluation, stored alerts, channels.
    pub alerts: crate::alert::engine::Alerts,
    /// Budgets, rate caps and the live spend counters behind the guard.
    pub budgets: Arc<crate::budget::service::Budgets>,
    /// Each workspace's ingest settings (unknown fields, required fields).
    pub settings: crate::settings::Settings,
    /// Where prepared events go: `ingest::accept` over this store, these counters and the
    /// metrics.
    pub ingest: crate::ingest::Ingestor,
    /// Each workspace's id mappings, for the guard (reads apply them in the store).
    pub mappings: crate::mapping::RulesCache,
    /// What `GET /metrics` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Every live API key, in memory: requests check their key here (`authenticate`).
    pub keys: crate::keytable::KeyTable,
    clock: Clock,
}

impl AppState {
    pub async fn new(
        store: Arc<dyn Store>,
        rate: RateConfig,
        reservation_ttl_ms: i64,
        public_url: String,
        clock: Clock,
    ) -> anyhow::Result<AppState> {
        let generation = store.price_generation().await?;
        let book = load_prices(store.as_ref()).await?;
        let budgets = crate::budget::service::Budgets::start(
            store.clone(),
            reservation_ttl_ms,
            clock.clone(),
        )
        .await?;
        // Every commit's cost changes feed the budget counters and the metrics' spend.
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let ingest = crate::ingest::Ingestor {
            store: store.clone(),
            counters: budgets.counters.clone(),
            sinks: vec![metrics.clone()],
        };
        let alerts = crate::alert::engine::Alerts::new(
            store.clone(),
            budgets.clone(),
            public_url,
            clock.clone(),
        );
        let settings = crate::settings::Settings::start(store.clone()).await?;
        let keys = crate::keytable::KeyTable::load(store.as_ref()).await?;
        Ok(AppState {
            keys,
            alerts,
            settings,
            budgets,
            metrics,
            mappings: crate::mapping::RulesCache::default(),
            ingest,
            store,
            prices: RwLock::new(Arc::new(book)),
            price_generation: RwLock::new(generation),
            limiter: RateLimiter::new(rate),
            cpu_permits: tokio::sync::Semaphore::new(parse_threads()),
            clock,
        })
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The live key with this hash: from the key table in memory; a key it lacks is
    /// asked of the store within `keytable`'s budget.
    pub async fn authenticate(
        &self,
        key_hash: String,
    ) -> Result<Option<KeyInfo>, crate::store::StoreError> {
        let (found, answer) = self
            .keys
            .authenticate(self.store.as_ref(), key_hash)
            .await?;
        self.metrics.record_key_check(answer);
        Ok(found)
    }

    pub fn prices(&self) -> Arc<PriceBook> {
        self.prices.read().unwrap().clone()
    }

    /// Reload the book if a price import happened since the last look.
    pub async fn refresh_prices(&self) -> anyhow::Result<bool> {
        let generation = self.store.price_generation().await?;
        if generation == *self.price_generation.read().unwrap() {
            return Ok(false);
        }
        let book = load_prices(self.store.as_ref()).await?;
        *self.prices.write().unwrap() = Arc::new(book);
        *self.price_generation.write().unwrap() = generation;
        tracing::info!(generation, "price book reloaded");
        Ok(true)
    }
}

fn parse_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// The bundled book plus every book stored in the database, in import order.
pub async fn load_prices(store: &dyn Store) -> anyhow::Result<PriceBook> {
    let mut book = PriceBook::bundled()?;
    for stored in store.price_books().await? {
        add_stored(&mut book, &stored)?;
    }
    Ok(book)
}

fn add_stored(book: &mut PriceBook, stored: &StoredBook) -> anyhow::Result<()> {
    let file: BookFile = serde_json::from_str(&stored.body)?;
    let layer = if stored.kind == "overrides" {
        Layer::Override
    } else {
        Layer::Catalog
    };
    book.add_file(&file, layer)?;
    Ok(())
}
