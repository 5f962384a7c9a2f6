//! The store conformance suite: every store test is written once against the `Store`
//! contract (in `tests/conformance/`) and run against every backend, its answers
//! compared with a reference computed in plain Rust from the same events.
//!
//! Backends: `sqlite` always, plus each store URL in `BURNRATE_CONFORMANCE_STORES`
//! (comma-separated, `{db}` where a fresh database's name goes). `backends()` is the
//! one list and `open_at` the one way a test gets a store, through `store::open(url)`:
//! a backend that `store::open` knows joins by being listed.
//!
//! Randomness: each test's RNG seed derives from `BURNRATE_CONFORMANCE_SEED` (default
//! below) and the test's name; a failing test prints the backend and the seed to rerun
//! with. `BURNRATE_CONFORMANCE_SCALE=N` runs N times the calls and queries.

mod conformance;

use burnrate::store::Store;
use std::path::Path;
use std::sync::Arc;

/// The base seed when `BURNRATE_CONFORMANCE_SEED` is not set.
const DEFAULT_SEED: u64 = 20_261_202;

/// Every backend the suite runs on.
fn backends() -> Vec<String> {
    let mut kinds = vec!["sqlite".to_string()];
    if let Ok(listed) = std::env::var("BURNRATE_CONFORMANCE_STORES") {
        kinds.extend(
            listed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    kinds
}

/// A fresh, empty store of one backend, and where it lives (to open it again).
struct Backend {
    kind: String,
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

/// Open the store of `kind` kept at `dir`, creating it when new, through
/// `store::open(url)`: `sqlite` is a file there; a listed URL names its database with
/// `{db}`, which becomes the directory's name (a fresh store per test).
fn open_at(kind: &str, dir: &Path) -> Arc<dyn Store> {
    let url = match kind {
        "sqlite" => format!("sqlite://{}", dir.join("conformance.db").display()),
        url => {
            assert!(
                url.contains("{db}"),
                "{url}: name the database {{db}} so each test gets a fresh one"
            );
            let name = dir
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(['.', '-'], "_");
            url.replace("{db}", &format!("conformance_{name}"))
        }
    };
    burnrate::store::open(&url).unwrap_or_else(|e| panic!("opening {url}: {e:#}"))
}

/// Open an empty store of `kind` in a new place.
fn open_backend(kind: &str) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(kind, dir.path());
    Backend {
        kind: kind.to_string(),
        dir,
        store,
    }
}

fn base_seed() -> u64 {
    match std::env::var("BURNRATE_CONFORMANCE_SEED") {
        Ok(s) => s.parse().expect("BURNRATE_CONFORMANCE_SEED is a u64"),
        Err(_) => DEFAULT_SEED,
    }
}

/// A test's own seed: the base seed mixed with its name (FNV-1a), so tests differ.
fn seed(base: u64, test: &str) -> u64 {
    test.bytes().fold(base ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Says on a failing test (while it unwinds) which backend and seed failed.
struct OnFailure<'a> {
    kind: &'a str,
    test: &'a str,
    base: u64,
}

impl Drop for OnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "conformance test {} failed on backend {}; base seed {} (rerun with BURNRATE_CONFORMANCE_SEED={})",
                self.test, self.kind, self.base, self.base
            );
        }
    }
}

/// Instantiate each test function for every backend: `module::test` becomes the test
/// `test`, run on a fresh store of each backend in turn.
macro_rules! conformance_tests {
    ($($module:ident :: $test:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            for kind in backends() {
                let base = base_seed();
                let _report = OnFailure { kind: &kind, test: stringify!($test), base };
                let backend = open_backend(&kind);
                let store = backend.store.clone();
                conformance::$module::$test(store, seed(base, stringify!($test))).await;
                backend.store.close().await;
            }
        }
    )*};
}

conformance_tests! {
    aggregate::retries_replacements_and_resends_follow_the_dedupe_rules,
    aggregate::aggregates_match_the_reference,
    aggregate::sealed_hours_answer_as_the_raw_events,
    mappings::mapped_reads_match_the_reference_over_rewritten_calls,
    reads::events_pages_list_every_stored_call_once_newest_first,
    reads::costliest_pages_list_every_priced_call_once_by_cost,
    reads::pages_stay_exact_while_calls_arrive,
    reads::request_values_and_latencies_are_the_newest_matching_calls,
    reads::latency_percentiles_are_the_nearest_rank_of_each_groups_newest_calls,
    reads::versions_seen_lie_between_the_stored_calls_and_every_attempt,
    reads::freshness_event_count_and_unpriced_models_follow_the_calls,
    reads::window_reads_place_a_call_at_its_winning_attempt,
    reads::unknown_fields_are_tallied_per_key,
    reads::concurrent_resends_of_one_attempt_count_once,
    reads::stored_ids_are_the_asked_ids_with_a_stored_call,
    control::workspaces_are_created_once_and_paused_by_name,
    control::keys_authenticate_by_hash_and_revoke_by_id_or_prefix,
    control::live_keys_and_the_key_generation_follow_every_key_and_pause_change,
    control::object_ids_count_per_workspace_and_kind_and_are_never_reused,
    control::price_books_keep_import_order_and_bump_the_generation,
    control::first_start_is_claimed_once_and_a_fresh_store_is_writable,
    control::copied_keys_and_objects_keep_their_hashes_ids_and_times,
    overflow::a_write_whose_sum_would_overflow_is_refused_naming_the_field,
    overflow::a_read_whose_sums_overflow_is_sum_overflow,
    overflow::a_refused_part_leaves_the_other_parts_stored_with_their_changes,
    lifecycle::erasure_takes_out_a_tenants_and_a_users_calls_exactly,
    lifecycle::erasure_in_sealed_hours_is_exact,
    lifecycle::retention_keeps_what_the_rollups_answer_and_says_where_raw_events_end,
    lifecycle::repricing_prices_exactly_the_unpriced_calls_it_can,
    lifecycle::correction_reprices_exactly_the_calls_of_one_entry,
    lifecycle::repriced_at_is_kept_by_copies_and_dropped_by_a_better_attempt,
}

/// Like `conformance_tests`, for tests that also open the same store again (after
/// closing it): each gets a function that does.
macro_rules! reopening_tests {
    ($($module:ident :: $test:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            for kind in backends() {
                let base = base_seed();
                let _report = OnFailure { kind: &kind, test: stringify!($test), base };
                let backend = open_backend(&kind);
                let reopen = || open_at(&backend.kind, backend.dir.path());
                let seed = seed(base, stringify!($test));
                conformance::$module::$test(backend.store.clone(), seed, &reopen).await;
            }
        }
    )*};
}

reopening_tests! {
    durability::a_reopened_store_answers_as_before,
}
