//! The server's table of live API keys, in memory: every request's key is checked here,
//! so no request waits for a store read to be let in (the guard's latency,
//! ARCHITECTURE.md). A background loop asks the store's `key_generation` every
//! `CHECK_EVERY` and reloads the table when it moved, and anyway every `RELOAD_EVERY`: a
//! key revoked or a workspace paused by the CLI (another process on the same file) or by
//! another node is refused within `CHECK_EVERY` plus one reload.
//!
//! A key the table lacks (created since the last reload) is asked of the store, but at
//! most `MISS_LOOKUPS_PER_SEC` times a second over all requests, and a hash the store did
//! not know is not asked again for `MISS_MEMORY`: a client spraying made-up keys gets
//! its 401s from memory and never reaches the store per request. While that budget is
//! spent, a new key works from the next reload on (within `CHECK_EVERY`).

use crate::store::{ControlStore, KeyInfo, LiveKey, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often the store's key generation is read (one cheap read).
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// The table is reloaded at least this often even when the generation did not move: a
/// hand edit of the database, or a backend's generation missing a change, is picked up.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Store lookups of keys the table lacks, over all requests, per second.
pub const MISS_LOOKUPS_PER_SEC: u32 = 20;
/// How long a hash the store did not know is answered 401 without asking again.
pub const MISS_MEMORY: Duration = Duration::from_secs(1);
/// Unknown hashes remembered at most (a spray of distinct keys must not grow memory).
const MISS_MEMORY_MAX: usize = 10_000;

/// Where a key check's answer came from (`GET /metrics`: `burnrate_key_checks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A live key found in the table.
    Memory = 0,
    /// A key the table lacked, asked of the store (found or not).
    Store = 1,
    /// Unknown and not asked: remembered as unknown, or the lookups' budget was spent.
    Refused = 2,
}

impl Answer {
    pub const ALL: [Answer; 3] = [Answer::Memory, Answer::Store, Answer::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Memory => "memory",
            Answer::Store => "store",
            Answer::Refused => "refused",
        }
    }
}

/// What the table reads: the three key calls of `ControlStore` (every store has them;
/// tests count them).
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>>;
    async fn live_keys(&self) -> Result<Vec<LiveKey>>;
    async fn key_generation(&self) -> Result<i64>;
}

#[async_trait]
impl<T: ControlStore + ?Sized> KeySource for T {
    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>> {
        ControlStore::authenticate(self, key_hash).await
    }
    async fn live_keys(&self) -> Result<Vec<LiveKey>> {
        ControlStore::live_keys(self).await
    }
    async fn key_generation(&self) -> Result<i64> {
        ControlStore::key_generation(self).await
    }
}

/// The keys by hash, with a count of the reloads that built it.
#[derive(Default)]
struct Table {
    /// Grows at every reload: a store lookup begun under one table must not add its
    /// answer to a later one (the reload may have left that key out as revoked).
    epoch: u64,
    keys: HashMap<String, KeyInfo>,
}

/// When the table was loaded and from which generation.
struct Loaded {
    generation: i64,
    at: Instant,
}

/// The store lookups spent in the current second, and the hashes found unknown.
struct Misses {
    second: Instant,
    asked: u32,
    unknown: HashMap<String, Instant>,
}

pub struct KeyTable {
    table: RwLock<Table>,
    loaded: Mutex<Loaded>,
    misses: Mutex<Misses>,
}

impl KeyTable {
    /// Every live key of the store now.
    pub async fn load<S: KeySource + ?Sized>(store: &S) -> Result<KeyTable> {
        let now = Instant::now();
        let keys = KeyTable {
            table: RwLock::default(),
            loaded: Mutex::new(Loaded {
                generation: 0,
                at: now,
            }),
            misses: Mutex::new(Misses {
                second: now,
                asked: 0,
                unknown: HashMap::new(),
            }),
        };
        let generation = store.key_generation().await?;
        keys.replace(store.live_keys().await?, generation, now);
        Ok(keys)
    }

    /// The key with this hash, from memory only.
    pub fn lookup(&self, key_hash: &str) -> Option<KeyInfo> {
        self.table.read().unwrap().keys.get(key_hash).cloned()
    }

    /// The key with this hash: from memory, else (within the miss budget) from the store;
    /// with where the answer came from.
    pub async fn authenticate<S: KeySource + ?Sized>(
        &self,
        store: &S,
        key_hash: String,
    ) -> Result<(Option<KeyInfo>, Answer)> {
        if let Some(info) = self.lookup(&key_hash) {
            return Ok((Some(info), Answer::Memory));
        }
        self.ask_store(store, key_hash, Instant::now()).await
    }

    async fn ask_store<S: KeySource + ?Sized>(
        &self,
        store: &S,
        key_hash: String,
        now: Instant,
    ) -> Result<(Option<KeyInfo>, Answer)> {
        if !self.may_ask(&key_hash, now) {
            return Ok((None, Answer::Refused));
        }
        let epoch = self.table.read().unwrap().epoch;
        let found = store.authenticate(key_hash.clone()).await?;
        match &found {
            Some(info) => {
                let mut table = self.table.write().unwrap();
                if table.epoch == epoch {
                    table.keys.insert(key_hash, info.clone());
                }
            }
            None => {
                let mut misses = self.misses.lock().unwrap();
                if misses.unknown.len() >= MISS_MEMORY_MAX {
                    misses
                        .unknown
                        .retain(|_, at| now.duration_since(*at) < MISS_MEMORY);
                }
                if misses.unknown.len() < MISS_MEMORY_MAX {
                    misses.unknown.insert(key_hash, now);
                }
            }
        }
        Ok((found, Answer::Store))
    }

    /// Whether a key the table lacks may be asked of the store now (spends the budget).
    fn may_ask(&self, key_hash: &str, now: Instant) -> bool {
        let mut misses = self.misses.lock().unwrap();
        if let Some(at) = misses.unknown.get(key_hash) {
            if now.duration_since(*at) < MISS_MEMORY {
                return false;
            }
        }
        if now.duration_since(misses.second) >= Duration::from_secs(1) {
            misses.second = now;
            misses.asked = 0;
        }
        if misses.asked >= MISS_LOOKUPS_PER_SEC {
            return false;
        }
        misses.asked += 1;
        true
    }

    /// Reload the table if the store's key generation moved, or `RELOAD_EVERY` passed;
    /// true when it reloaded. On an error the table stays as it was.
    pub async fn refresh<S: KeySource + ?Sized>(&self, store: &S) -> Result<bool> {
        let now = Instant::now();
        // The generation is read before the keys: a change between the two reads moves
        // the generation past the one recorded, so the next check reloads again.
        let generation = store.key_generation().await?;
        {
            let loaded = self.loaded.lock().unwrap();
            if loaded.generation == generation && now.duration_since(loaded.at) < RELOAD_EVERY {
                return Ok(false);
            }
        }
        self.replace(store.live_keys().await?, generation, now);
        Ok(true)
    }

    fn replace(&self, live: Vec<LiveKey>, generation: i64, now: Instant) {
        let keys: HashMap<String, KeyInfo> =
            live.into_iter().map(|k| (k.key_hash, k.info)).collect();
        {
            let mut table = self.table.write().unwrap();
            table.epoch += 1;
            table.keys = keys;
        }
        *self.loaded.lock().unwrap() = Loaded {
            generation,
            at: now,
        };
        // A hash found unknown before may be a key created since: ask again.
        self.misses.lock().unwrap().unknown.clear();
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.table.read().unwrap().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
