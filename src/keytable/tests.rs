//! The key table against a store double that counts what it is asked.

use super::*;
use crate::store::Scope;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Default)]
struct Fake {
    keys: Mutex<Vec<LiveKey>>,
    generation: AtomicI64,
    asked: AtomicU32,
    loads: AtomicU32,
    /// When set, `authenticate` reads the keys, then waits for a permit before answering.
    gate: Option<tokio::sync::Semaphore>,
}

impl Fake {
    fn with(hashes: &[&str]) -> Fake {
        let fake = Fake::default();
        for h in hashes {
            fake.create(h);
        }
        fake
    }

    fn create(&self, hash: &str) {
        let mut keys = self.keys.lock().unwrap();
        let id = keys.len() as i64 + 1;
        keys.push(LiveKey {
            key_hash: hash.to_string(),
            info: KeyInfo {
                key_id: id,
                workspace_id: 1,
                scope: Scope::Ingest,
                workspace_paused: false,
            },
        });
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn revoke(&self, hash: &str) {
        self.keys.lock().unwrap().retain(|k| k.key_hash != hash);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl KeySource for Fake {
    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let found = self
            .keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.key_hash == key_hash)
            .map(|k| k.info.clone());
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        Ok(found)
    }
    async fn live_keys(&self) -> Result<Vec<LiveKey>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(self.keys.lock().unwrap().clone())
    }
    async fn key_generation(&self) -> Result<i64> {
        Ok(self.generation.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn a_spray_of_unknown_keys_reaches_the_store_at_most_the_budget_a_second() {
    let fake = Fake::with(&["h-live"]);
    let table = KeyTable::load(&fake).await.unwrap();
    let start = Instant::now();
    for i in 0..1_000u32 {
        let (found, answer) = table
            .ask_store(&fake, format!("made-up-{i}"), start)
            .await
            .unwrap();
        assert!(found.is_none());
        let expected = match i < MISS_LOOKUPS_PER_SEC {
            true => Answer::Store,
            false => Answer::Refused,
        };
        assert_eq!(answer, expected, "made-up-{i}");
    }
    assert_eq!(fake.asked.load(Ordering::SeqCst), MISS_LOOKUPS_PER_SEC);
    // The live key never needs the store.
    assert_eq!(table.lookup("h-live").unwrap().key_id, 1);
    // The next second has a new budget.
    let later = start + Duration::from_secs(1);
    for i in 1_000..1_100 {
        table
            .ask_store(&fake, format!("made-up-{i}"), later)
            .await
            .unwrap();
    }
    assert_eq!(fake.asked.load(Ordering::SeqCst), 2 * MISS_LOOKUPS_PER_SEC);
}

#[tokio::test]
async fn an_unknown_hash_is_asked_once_within_the_miss_memory() {
    let fake = Fake::default();
    let table = KeyTable::load(&fake).await.unwrap();
    let start = Instant::now();
    for ms in [0, 10, 500, 999] {
        let at = start + Duration::from_millis(ms);
        let (found, answer) = table.ask_store(&fake, "typo".into(), at).await.unwrap();
        assert!(found.is_none());
        let expected = if ms == 0 {
            Answer::Store
        } else {
            Answer::Refused
        };
        assert_eq!(answer, expected, "at {ms} ms");
    }
    assert_eq!(fake.asked.load(Ordering::SeqCst), 1);
    table
        .ask_store(&fake, "typo".into(), start + MISS_MEMORY)
        .await
        .unwrap();
    assert_eq!(fake.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_key_created_after_the_load_is_asked_once_then_served_from_memory() {
    let fake = Fake::with(&["h-a"]);
    let table = KeyTable::load(&fake).await.unwrap();
    fake.create("h-b");
    for expected in [Answer::Store, Answer::Memory, Answer::Memory] {
        let (info, answer) = table.authenticate(&fake, "h-b".into()).await.unwrap();
        assert_eq!((info.unwrap().key_id, answer), (2, expected));
    }
    assert_eq!(fake.asked.load(Ordering::SeqCst), 1);
    assert_eq!(fake.loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refresh_reloads_when_the_generation_moves_and_drops_a_revoked_key() {
    let fake = Fake::with(&["h-a", "h-b"]);
    let table = KeyTable::load(&fake).await.unwrap();
    assert_eq!(table.len(), 2);
    assert!(!table.refresh(&fake).await.unwrap());
    assert_eq!(
        fake.loads.load(Ordering::SeqCst),
        1,
        "same generation: no reload"
    );
    fake.revoke("h-a");
    assert!(table.refresh(&fake).await.unwrap());
    assert_eq!(fake.loads.load(Ordering::SeqCst), 2);
    assert!(table.lookup("h-a").is_none());
    assert_eq!(table.lookup("h-b").unwrap().key_id, 2);
    // Revoked and unknown to the store: one lookup, then 401s from memory.
    for _ in 0..5 {
        assert!(table
            .authenticate(&fake, "h-a".into())
            .await
            .unwrap()
            .0
            .is_none());
    }
    assert_eq!(fake.asked.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lookup_begun_before_a_reload_does_not_bring_back_the_key_it_revoked() {
    let fake = Arc::new(Fake {
        gate: Some(tokio::sync::Semaphore::new(0)),
        ..Fake::with(&["h-a"])
    });
    let table = Arc::new(KeyTable::load(fake.as_ref()).await.unwrap());
    // "h-late" is created after the load: its lookup reads it live, then waits.
    fake.create("h-late");
    let ask = {
        let (fake, table) = (fake.clone(), table.clone());
        tokio::spawn(async move {
            table
                .authenticate(fake.as_ref(), "h-late".into())
                .await
                .unwrap()
                .0
        })
    };
    while fake.asked.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Revoked meanwhile, and the table reloaded without it.
    fake.revoke("h-late");
    assert!(table.refresh(fake.as_ref()).await.unwrap());
    fake.gate.as_ref().unwrap().add_permits(1);
    // That request was answered from the store's read before the revocation...
    assert!(ask.await.unwrap().is_some());
    // ...but the key does not come back into the reloaded table.
    assert!(table.lookup("h-late").is_none());
    assert_eq!(table.lookup("h-a").unwrap().key_id, 1);
}
