//! The conformance suite's parts: the generator (`gen`), the reference (`reference`),
//! and the tests, each written once against the `Store` contract (`aggregate`, `reads`,
//! `control`, `overflow`, `durability`). `tests/store_conformance.rs` runs every test on every backend.

pub mod aggregate;
pub mod control;
pub mod durability;
pub mod gen;
pub mod lifecycle;
pub mod mappings;
pub mod overflow;
pub mod reads;
pub mod reference;

use burnrate::store::{CommitSeq, Store, WorkspaceId, WriteResult};
use reference::Reference;
use std::sync::Arc;

pub type Shared = Arc<dyn Store>;

/// How many times the default numbers of calls and queries to run:
/// `BURNRATE_CONFORMANCE_SCALE` (default 1), for longer runs than CI's.
pub fn scale() -> usize {
    std::env::var("BURNRATE_CONFORMANCE_SCALE")
        .ok()
        .map(|s| {
            s.parse()
                .expect("BURNRATE_CONFORMANCE_SCALE is a whole number")
        })
        .unwrap_or(1)
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The workspaces random scenarios spread over: `default` (every store has it) and two
/// created for the test.
pub async fn workspaces(store: &Shared) -> Vec<WorkspaceId> {
    let default = store
        .workspace("default".into())
        .await
        .unwrap()
        .expect("a store opens with the default workspace");
    let mut ids = vec![default.id];
    for name in ["conformance-b", "conformance-c"] {
        ids.push(store.create_workspace(name.into()).await.unwrap().id);
    }
    ids
}

/// A random scenario written to the store, and what it must hold.
pub struct Loaded {
    pub reference: Reference,
    pub workspaces: Vec<WorkspaceId>,
    /// Each request's [start, end] on the wall clock (ms): where receive times fall.
    pub request_times: Vec<(i64, i64)>,
    /// The largest commit sequence an acknowledged request returned.
    pub last_seq: CommitSeq,
}

impl Loaded {
    /// When the store may say a call was received: between the start of the request that
    /// inserted it and the end of the last one that changed it.
    pub fn received_bounds(&self, call: &reference::Call) -> (i64, i64) {
        (
            self.request_times[call.first_request].0,
            self.request_times[call.last_request].1,
        )
    }
}

/// Ingest a random scenario of about `calls` logical calls request by request, checking
/// each request's dedupe outcome (Inserted / Attempt / Duplicate per event) against the
/// reference.
pub async fn load(store: &Shared, seed: u64, calls: usize) -> Loaded {
    let workspaces = workspaces(store).await;
    let mut loaded = Loaded {
        reference: Reference::default(),
        workspaces,
        request_times: Vec::new(),
        last_seq: 0,
    };
    for request in gen::requests(seed, &loaded.workspaces, calls * scale()) {
        loaded.ingest(store, request).await;
    }
    loaded
}

impl Loaded {
    /// Write one request to the store and the reference; their outcomes must agree.
    pub async fn ingest(&mut self, store: &Shared, request: gen::Request) {
        let i = self.request_times.len();
        let (expected, effects) = self.reference.ingest(request.workspace, &request.events, i);
        let start = now_ms();
        let outcome = store
            .ingest(request.workspace, request.events)
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        self.request_times.push((start, now_ms()));
        assert_eq!(outcome.results, expected, "dedupe outcomes of request {i}");
        let got: Vec<reference::Effect> =
            outcome.effects.iter().map(reference::Effect::of).collect();
        assert_eq!(got, effects, "cost changes of request {i}");
        // Each commit that changed something comes after every earlier one.
        if expected.iter().any(|r| *r != WriteResult::Duplicate) {
            assert!(
                outcome.seq > self.last_seq,
                "request {i}: commit {} after {}",
                outcome.seq,
                self.last_seq
            );
        }
        self.last_seq = self.last_seq.max(outcome.seq);
    }
}

/// Check a newest-first list against the reference's groups of equal times: the list
/// holds the newest `limit` items, each group whole except the last one the limit
/// reaches, whose items may be any of that group's (ties have no order).
pub fn check_newest_first<T: Ord + Clone + std::fmt::Debug>(
    got: &[T],
    groups: &[Vec<T>],
    limit: usize,
    what: &str,
) {
    let total: usize = groups.iter().map(Vec::len).sum();
    assert_eq!(got.len(), total.min(limit), "{what}: how many");
    let mut at = 0;
    for group in groups {
        if at >= got.len() {
            break;
        }
        let take = group.len().min(got.len() - at);
        let mut part = got[at..at + take].to_vec();
        part.sort();
        let mut whole = group.clone();
        whole.sort();
        if take == group.len() {
            assert_eq!(part, whole, "{what}: items {at}..{}", at + take);
        } else {
            for item in &part {
                let i = whole
                    .iter()
                    .position(|w| w == item)
                    .unwrap_or_else(|| panic!("{what}: {item:?} is not among the newest"));
                whole.remove(i);
            }
        }
        at += take;
    }
}
