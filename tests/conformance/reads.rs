//! The event store's other reads: the event list and its pages, request values,
//! latencies, versions seen, freshness, the event count, unpriced models, the
//! unknown-field tally per key; and resends racing each other.

use super::gen::{self, pick, START};
use super::reference::{iso, Call};
use super::{check_newest_first, load, now_ms, workspaces, Loaded, Shared};
use burnrate::event::{DataMode, Environment};
use burnrate::price::PriceBook;
use burnrate::query::{Dimension, Filters, Measure, Query};
use burnrate::store::{
    EventOrder, EventQuery, FieldTally, Scope, StoreError, StoredEvent, WorkspaceId, WriteResult,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// Read every page of a listing; checks each page's size and that only the last one
/// has no cursor. Cursors are passed back as the opaque strings they are.
pub async fn all_pages(store: &Shared, ws: WorkspaceId, base: EventQuery) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut cursor = None;
    for page_no in 0.. {
        let page = store
            .events(
                ws,
                EventQuery {
                    cursor: cursor.clone(),
                    ..base.clone()
                },
            )
            .await
            .unwrap();
        assert!(
            page.events.len() <= base.limit,
            "page {page_no} is over the limit"
        );
        out.extend(page.events.iter().cloned());
        match page.next_cursor {
            Some(next) => {
                assert_eq!(
                    page.events.len(),
                    base.limit,
                    "page {page_no} is short but has a cursor"
                );
                cursor = Some(next);
            }
            None => break,
        }
    }
    out
}

/// The listed calls are exactly the reference's, each once, newest first, with every
/// field as stored; receive times fall within the requests that wrote them.
pub fn check_listing(loaded: &Loaded, got: &[StoredEvent], expected: Vec<&Call>, what: &str) {
    for pair in got.windows(2) {
        assert!(
            ms(&pair[0].timestamp) >= ms(&pair[1].timestamp),
            "{what}: not newest first: {} before {}",
            pair[0].timestamp,
            pair[1].timestamp
        );
    }
    assert_eq!(got.len(), expected.len(), "{what}: how many calls");
    // Calls with an id by id; id-less ones by content (the store names them).
    let mut by_id: BTreeMap<String, &StoredEvent> = BTreeMap::new();
    let mut idless: Vec<String> = Vec::new();
    for e in got {
        if e.idless {
            assert!(
                !e.external_request_id.is_empty(),
                "{what}: an id-less call has a name"
            );
            let mut blank = e.clone();
            (blank.external_request_id, blank.received_at) = (String::new(), String::new());
            idless.push(format!("{blank:#?}"));
        } else {
            assert!(
                by_id.insert(e.external_request_id.clone(), e).is_none(),
                "{what}: {} twice",
                e.external_request_id
            );
        }
    }
    let mut idless_expected = Vec::new();
    for call in expected {
        let want = call.stored_event();
        let Some(id) = &call.id else {
            idless_expected.push(format!("{want:#?}"));
            continue;
        };
        let e = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{what}: call {id} is missing"));
        let received = ms(&e.received_at);
        let (from, to) = loaded.received_bounds(call);
        assert!(
            from <= received && received <= to,
            "{what}: {id} received at {}",
            e.received_at
        );
        let mut blank = (*e).clone();
        blank.received_at = String::new();
        assert_eq!(
            format!("{blank:#?}"),
            format!("{want:#?}"),
            "{what}: call {id}"
        );
    }
    idless.sort();
    idless_expected.sort();
    assert_eq!(idless, idless_expected, "{what}: id-less calls");
}

/// Every page of every listing, whole or windowed and filtered, in pages of random
/// sizes: each stored call exactly once, newest first, as stored; lookups by id; a
/// cursor the store never gave is an error.
pub async fn events_pages_list_every_stored_call_once_newest_first(store: Shared, seed: u64) {
    let loaded = load(&store, seed, 1200).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 0xe1);
    for &ws in &loaded.workspaces {
        let limit = rng.random_range(20..120);
        let got = all_pages(
            &store,
            ws,
            EventQuery {
                limit,
                ..Default::default()
            },
        )
        .await;
        let expected = loaded.reference.matching(ws, None, None).collect();
        check_listing(
            &loaded,
            &got,
            expected,
            &format!("workspace {ws}, pages of {limit}"),
        );
    }
    for i in 0..super::scale() * 25 {
        let ws = *pick(&mut rng, &loaded.workspaces);
        let (window, filters) = gen::window_and_filters(&mut rng);
        let limit = rng.random_range(1..40);
        let base = EventQuery {
            window: Some(window),
            filters: Some(filters.clone()),
            limit,
            ..Default::default()
        };
        let got = all_pages(&store, ws, base).await;
        let expected = loaded
            .reference
            .matching(ws, Some(window), Some(&filters))
            .collect();
        check_listing(
            &loaded,
            &got,
            expected,
            &format!("listing {i}: {window:?} {filters:?}"),
        );
    }
    // Lookup by id: the call of that workspace only.
    for call in loaded
        .reference
        .calls
        .iter()
        .filter(|c| c.id.is_some())
        .take(40)
    {
        for &ws in &loaded.workspaces {
            let page = store
                .events(
                    ws,
                    EventQuery {
                        external_request_id: call.id.clone(),
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let expected: Vec<&Call> = loaded
                .reference
                .matching(ws, None, None)
                .filter(|c| c.id == call.id)
                .collect();
            check_listing(&loaded, &page.events, expected, "lookup by id");
            assert_eq!(page.next_cursor, None);
        }
    }
    let bad = EventQuery {
        cursor: Some("not a cursor this store gave".into()),
        limit: 10,
        ..Default::default()
    };
    match store.events(loaded.workspaces[0], bad).await {
        Err(StoreError::BadCursor) => {}
        other => panic!("a cursor the store never gave: {other:?}"),
    }
}

fn query_of(window: (i64, i64), filters: Filters) -> Query {
    Query {
        from_ms: window.0,
        to_ms: window.1,
        filters,
        group_by: Vec::new(),
        bucket: None,
        measures: vec![Measure::Requests],
        order_by: None,
        ascending: false,
        limit: 1,
        count_by_first: false,
    }
}

/// The newest `limit` matching calls' values (and latencies, calls without one left
/// out), for random windows, filters and limits; ties in time may come in any order.
pub async fn request_values_and_latencies_are_the_newest_matching_calls(store: Shared, seed: u64) {
    let loaded = load(&store, seed, 1500).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7a1);
    let (mut compared, mut named) = (0, 0);
    for i in 0..super::scale() * 80 {
        let ws = *pick(&mut rng, &loaded.workspaces);
        let (window, mut filters) = gen::window_and_filters(&mut rng);
        if i % 4 == 0 {
            // One endpoint's named prompt version: the gate's read (SQLite answers it
            // through another index).
            let named = |pool: &[&str], rng: &mut StdRng| vec![pick(rng, pool).to_string()];
            filters
                .text
                .insert(Dimension::EndpointTag, named(gen::ENDPOINTS, &mut rng));
            filters
                .text
                .insert(Dimension::PromptVersion, named(gen::VERSIONS, &mut rng));
        }
        let limit = if rng.random_bool(0.5) {
            rng.random_range(1..60)
        } else {
            100_000
        };
        let groups = loaded
            .reference
            .newest_first(ws, Some(window), Some(&filters));
        let values: Vec<Vec<_>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|c| {
                        let v = c.request_values();
                        (v.cost, v.input_tokens, v.output_tokens, v.latency_ms)
                    })
                    .collect()
            })
            .collect();
        let got: Vec<_> = store
            .request_values(ws, query_of(window, filters.clone()), limit)
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.cost, v.input_tokens, v.output_tokens, v.latency_ms))
            .collect();
        check_newest_first(&got, &values, limit, &format!("request values {i}"));
        compared += got.len();
        if i % 4 == 0 {
            named += got.len();
        }
        let latencies: Vec<Vec<u32>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .filter_map(|c| c.event.latency_ms)
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        let got = store
            .latencies(ws, query_of(window, filters), limit)
            .await
            .unwrap();
        check_newest_first(&got, &latencies, limit, &format!("latencies {i}"));
    }
    assert!(compared > 400, "values compared: {compared}");
    assert!(named > 10, "values of named versions compared: {named}");
}

/// The nearest-rank `percent` of `values` (plain: sort, take rank ceil(n * p / 100)).
fn plain_rank(mut values: Vec<u32>, percent: u32) -> u32 {
    values.sort();
    values[(values.len() * percent as usize).div_ceil(100) - 1]
}

/// The smallest and largest percentile the newest `limit` of `by_time` (groups of one
/// time, newest first) can give: where the limit cuts through a group of one time, the
/// calls taken from it are not pinned, so the bounds take its smallest or its largest
/// latencies (a nearest rank grows with every value). Equal when nothing is cut.
fn percentile_bounds(by_time: &[Vec<u32>], limit: usize, percent: u32) -> (u32, u32) {
    let (mut low, mut high) = (Vec::new(), Vec::new());
    for group in by_time {
        let take = group.len().min(limit - low.len());
        let mut sorted = group.clone();
        sorted.sort();
        low.extend(&sorted[..take]);
        high.extend(&sorted[sorted.len() - take..]);
        if low.len() == limit {
            break;
        }
    }
    (plain_rank(low, percent), plain_rank(high, percent))
}

/// One grouped latency read: per group (0-2 dimensions, tags included), the
/// nearest-rank percentile of its newest `limit` matching calls' latencies, against
/// the reference ranked in plain Rust; groups without a latency are absent.
pub async fn latency_percentiles_are_the_nearest_rank_of_each_groups_newest_calls(
    store: Shared,
    seed: u64,
) {
    let loaded = load(&store, seed, 1500).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x95);
    let dims = [
        vec![],
        vec![Dimension::EndpointTag, Dimension::PromptVersion],
        vec![Dimension::TenantId],
        vec![Dimension::Model, Dimension::UserId],
        vec![Dimension::Tag("team".into())],
        vec![Dimension::Status],
    ];
    let (mut groups_compared, mut exact_cut) = (0, 0);
    for i in 0..super::scale() * 40 {
        let ws = *pick(&mut rng, &loaded.workspaces);
        let (window, filters) = gen::window_and_filters(&mut rng);
        let group_by = dims[i % dims.len()].clone();
        let limit = match rng.random_range(0..3) {
            0 => rng.random_range(1..8),
            1 => rng.random_range(8..60),
            _ => 100_000,
        };
        let percent = *pick(&mut rng, &[50u32, 95, 99, 100, 1]);
        let mut expected: BTreeMap<Vec<String>, Vec<Vec<u32>>> = BTreeMap::new();
        for by_time in loaded
            .reference
            .newest_first(ws, Some(window), Some(&filters))
        {
            let mut at_time: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
            for c in by_time {
                if let Some(latency) = c.event.latency_ms {
                    let labels = group_by
                        .iter()
                        .map(|d| super::reference::label(&c.event, d))
                        .collect();
                    at_time.entry(labels).or_default().push(latency);
                }
            }
            for (labels, values) in at_time {
                expected.entry(labels).or_default().push(values);
            }
        }
        let mut query = query_of(window, filters.clone());
        query.group_by = group_by.clone();
        let got = store
            .latency_percentiles(ws, query, limit, percent)
            .await
            .unwrap();
        let what = format!("{i}: by {group_by:?}, limit {limit}, p{percent}, {filters:?}");
        let got_groups: Vec<&Vec<String>> = got.iter().map(|g| &g.group).collect();
        let expected_groups: Vec<&Vec<String>> = expected.keys().collect();
        assert_eq!(got_groups, expected_groups, "{what}: groups");
        for g in &got {
            let by_time = &expected[&g.group];
            let total: usize = by_time.iter().map(Vec::len).sum();
            assert_eq!(
                g.calls,
                total.min(limit) as u64,
                "{what} {:?}: calls",
                g.group
            );
            let (low, high) = percentile_bounds(by_time, limit, percent);
            assert!(
                low <= g.latency_ms && g.latency_ms <= high,
                "{what} {:?}: {} not in {low}..={high}",
                g.group,
                g.latency_ms
            );
            groups_compared += 1;
            exact_cut += (low == high && total > limit) as usize;
        }
    }
    assert!(groups_compared > 100, "groups compared: {groups_compared}");
    assert!(
        exact_cut > 10,
        "groups cut by the limit exactly: {exact_cut}"
    );
}

/// First and last seen per (endpoint, prompt version) in the given environments and
/// data modes: at least the span of the calls as stored, at most that of every
/// attempt accepted (whether a replaced attempt's time counts is not pinned).
pub async fn versions_seen_lie_between_the_stored_calls_and_every_attempt(
    store: Shared,
    seed: u64,
) {
    let loaded = load(&store, seed, 1500).await;
    let exact = check_versions_seen(&store, &loaded).await;
    assert!(exact > 30, "spans equal to the stored calls': {exact}");
}

/// `versions_seen` of every workspace in four scopes against the reference's spans (see
/// the test above); returns how many spans equal the stored calls' exactly.
pub async fn check_versions_seen(store: &Shared, loaded: &Loaded) -> usize {
    let scopes = [
        Filters::default(),
        Filters {
            environment: vec![Environment::Prod],
            data_mode: vec![DataMode::Real],
            ..Default::default()
        },
        Filters {
            environment: vec![Environment::Staging, Environment::Dev],
            ..Default::default()
        },
        Filters {
            data_mode: vec![DataMode::Test],
            ..Default::default()
        },
    ];
    let mut exact = 0;
    for &ws in &loaded.workspaces {
        for filters in &scopes {
            let spans = loaded.reference.versions_seen(ws, filters);
            let got = store.versions_seen(ws, filters.clone()).await.unwrap();
            let mut keys: Vec<(String, String)> = Vec::new();
            for v in &got {
                let key = (v.endpoint_tag.clone(), v.prompt_version.clone());
                let what = format!("workspace {ws} {filters:?} {key:?}");
                let ever = spans
                    .ever
                    .get(&key)
                    .unwrap_or_else(|| panic!("{what}: never seen"));
                assert!(
                    ever.0 <= v.first_ms && v.last_ms <= ever.1,
                    "{what}: {v:?} outside {ever:?}"
                );
                if let Some(now) = spans.now.get(&key) {
                    assert!(
                        v.first_ms <= now.0 && now.1 <= v.last_ms,
                        "{what}: {v:?} inside {now:?}"
                    );
                    exact += (*now == (v.first_ms, v.last_ms)) as usize;
                }
                keys.push(key);
            }
            keys.sort();
            let before = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), before, "workspace {ws}: a version listed twice");
            for key in spans.now.keys() {
                assert!(
                    keys.contains(key),
                    "workspace {ws} {filters:?}: {key:?} missing"
                );
            }
        }
    }
    exact
}

/// The event count over all workspaces, unpriced calls per model (most first), and
/// each workspace's newest event time; then freshness on a workspace written by hand.
pub async fn freshness_event_count_and_unpriced_models_follow_the_calls(store: Shared, seed: u64) {
    assert_eq!(store.event_count().await.unwrap(), 0);
    assert!(store.unpriced_models().await.unwrap().is_empty());
    let loaded = load(&store, seed, 1000).await;
    let reference = &loaded.reference;
    assert_eq!(
        store.event_count().await.unwrap(),
        reference.calls.len() as u64
    );
    let got = store.unpriced_models().await.unwrap();
    for pair in got.windows(2) {
        assert!(
            pair[0].events >= pair[1].events,
            "most unpriced calls first"
        );
    }
    let mut got: Vec<String> = got.iter().map(|m| format!("{m:?}")).collect();
    got.sort();
    let expected: Vec<String> = reference
        .unpriced_models()
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    assert!(expected.len() >= 2, "{expected:?}");
    assert_eq!(got, expected);
    let (first_start, last_end) = (loaded.request_times[0].0, now_ms());
    for &ws in &loaded.workspaces {
        let newest = reference
            .matching(ws, None, None)
            .map(Call::ts)
            .max()
            .unwrap();
        let f = store.freshness(ws).await.unwrap().unwrap();
        assert_eq!(f.newest_event_ms, newest, "workspace {ws}");
        assert!(first_start <= f.newest_received_ms && f.newest_received_ms <= last_end);
    }

    // A workspace of its own: nothing, then two calls, the newer one written last.
    let ws = store.create_workspace("fresh".into()).await.unwrap().id;
    assert!(store.freshness(ws).await.unwrap().is_none());
    let book = PriceBook::bundled().unwrap();
    let at = |minutes: i64, id: &str| {
        json!({"externalRequestId": id, "timestamp": iso(START + minutes * 60_000),
               "provider": "openai", "model": "gpt-4o", "endpointTag": "e",
               "status": "success", "inputTokens": 1})
        .to_string()
    };
    store
        .ingest(ws, gen::prepare(&book, &[at(10, "old")]))
        .await
        .unwrap();
    let before = now_ms();
    store
        .ingest(ws, gen::prepare(&book, &[at(90, "new")]))
        .await
        .unwrap();
    let after = now_ms();
    let f = store.freshness(ws).await.unwrap().unwrap();
    assert_eq!(f.newest_event_ms, START + 90 * 60_000);
    assert!(
        before <= f.newest_received_ms && f.newest_received_ms <= after,
        "{f:?}"
    );
    assert_eq!(f.ingest_lag_ms, f.newest_received_ms - f.newest_event_ms);
    assert_eq!(
        store.event_count().await.unwrap(),
        reference.calls.len() as u64 + 2
    );
}

/// Unknown fields counted per key with the events, and the last one named; a request
/// without a key or without unknown fields changes nothing.
pub async fn unknown_fields_are_tallied_per_key(store: Shared, _seed: u64) {
    let ws = workspaces(&store).await[0];
    let typo = store
        .create_key(
            "default".into(),
            Scope::Ingest,
            "hash-typo".into(),
            "br_typo".into(),
            None,
        )
        .await
        .unwrap();
    let clean = store
        .create_key(
            "default".into(),
            Scope::Ingest,
            "hash-clean".into(),
            "br_clean".into(),
            None,
        )
        .await
        .unwrap();
    let book = PriceBook::bundled().unwrap();
    let event = |id: &str| {
        json!({"externalRequestId": id, "timestamp": iso(START), "provider": "openai",
               "model": "gpt-4o", "endpointTag": "e", "status": "success", "inputTokens": 1})
        .to_string()
    };
    let tally = |key: Option<i64>, n: u64, last: Option<&str>| FieldTally {
        key_id: key,
        unknown_fields: n,
        last_unknown: last.map(str::to_string),
    };
    let outcome = store
        .ingest_counted(
            ws,
            gen::prepare(&book, &[event("k1")]),
            tally(Some(typo.id), 3, Some("tenantID")),
        )
        .await
        .unwrap();
    assert_eq!(outcome.results, vec![WriteResult::Inserted]);
    // A request whose events were all rejected still counts its unknown fields.
    store
        .ingest_counted(
            ws,
            Vec::new(),
            tally(Some(typo.id), 2, Some("promptversion")),
        )
        .await
        .unwrap();
    store
        .ingest_counted(
            ws,
            gen::prepare(&book, &[event("k2")]),
            tally(None, 4, Some("userID")),
        )
        .await
        .unwrap();
    store
        .ingest_counted(
            ws,
            gen::prepare(&book, &[event("k3")]),
            tally(Some(clean.id), 0, None),
        )
        .await
        .unwrap();
    let keys = store.keys(None).await.unwrap();
    let of = |id: i64| keys.iter().find(|k| k.id == id).unwrap();
    assert_eq!(
        (
            of(typo.id).unknown_fields,
            of(typo.id).last_unknown_field.as_deref()
        ),
        (5, Some("promptversion"))
    );
    assert_eq!(
        (
            of(clean.id).unknown_fields,
            of(clean.id).last_unknown_field.as_deref()
        ),
        (0, None)
    );
    assert_eq!(store.event_count().await.unwrap(), 3);
}

/// Several clients send the same (id, attempt) at once: exactly one is inserted; racing
/// new attempts of one call all count, and the call ends as its lowest equal attempt.
pub async fn concurrent_resends_of_one_attempt_count_once(store: Shared, _seed: u64) {
    let ws = workspaces(&store).await[0];
    let book = std::sync::Arc::new(PriceBook::bundled().unwrap());
    let event = |id: &str, attempt: u64| {
        json!({"externalRequestId": id, "attempt": attempt, "timestamp": iso(START),
               "provider": "openai", "model": "gpt-4o", "endpointTag": "e",
               "status": "success", "inputTokens": 10 * attempt})
        .to_string()
    };
    let mut tasks = Vec::new();
    for client in 0..8u64 {
        let (store, book) = (store.clone(), book.clone());
        let texts = [
            event("same", 1),
            event(&format!("own-{client}"), 1),
            event("racing", client + 1),
        ];
        tasks.push(tokio::spawn(async move {
            store
                .ingest(ws, gen::prepare(&book, &texts))
                .await
                .unwrap()
                .results
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let inserted = outcomes
        .iter()
        .filter(|r| r[0] == WriteResult::Inserted)
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|r| r[0] == WriteResult::Duplicate)
        .count();
    assert_eq!((inserted, duplicates), (1, 7), "{outcomes:?}");
    assert!(outcomes.iter().all(|r| r[1] == WriteResult::Inserted));
    let racing_inserted = outcomes
        .iter()
        .filter(|r| r[2] == WriteResult::Inserted)
        .count();
    assert_eq!(racing_inserted, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|r| matches!(r[2], WriteResult::Inserted | WriteResult::Attempt { .. })));
    assert_eq!(store.event_count().await.unwrap(), 1 + 8 + 1);
    let page = store
        .events(
            ws,
            EventQuery {
                external_request_id: Some("racing".into()),
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Equal ranks: attempt 1 describes the call whatever order the race gave.
    let racing = &page.events[0];
    assert_eq!(
        (racing.attempts, racing.attempt, racing.input_tokens),
        (8, 1, 10)
    );
}

/// Paging while calls arrive, newer and older than the position reached: every call
/// stored before the first page is listed exactly once, none twice, newest first. A
/// cursor is a position in the order, not an offset.
pub async fn pages_stay_exact_while_calls_arrive(store: Shared, seed: u64) {
    let mut loaded = load(&store, seed, 500).await;
    let ws = loaded.workspaces[0];
    let book = PriceBook::bundled().unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9a6e);
    let before: Vec<Option<String>> = loaded
        .reference
        .matching(ws, None, None)
        .map(|c| c.id.clone())
        .collect();
    let mut listed: Vec<StoredEvent> = Vec::new();
    let mut cursor = None;
    let mut arrived = 0;
    loop {
        let query = EventQuery {
            cursor: cursor.clone(),
            limit: 15,
            ..Default::default()
        };
        let page = store.events(ws, query).await.unwrap();
        listed.extend(page.events);
        let Some(next) = page.next_cursor else { break };
        cursor = Some(next);
        let texts: Vec<String> = (0..3)
            .map(|_| {
                arrived += 1;
                let at = START + rng.random_range(0..3 * gen::DAY);
                json!({"externalRequestId": format!("late-{arrived}"), "timestamp": iso(at),
                       "provider": "openai", "model": "gpt-4o", "endpointTag": "e",
                       "status": "success", "inputTokens": 5})
                .to_string()
            })
            .collect();
        let events = gen::prepare(&book, &texts);
        loaded
            .ingest(
                &store,
                gen::Request {
                    workspace: ws,
                    events,
                },
            )
            .await;
    }
    assert!(arrived > 15, "calls arrived while paging: {arrived}");
    for pair in listed.windows(2) {
        assert!(
            ms(&pair[0].timestamp) >= ms(&pair[1].timestamp),
            "newest first"
        );
    }
    let mut ids: Vec<&str> = listed
        .iter()
        .filter(|e| !e.idless)
        .map(|e| e.external_request_id.as_str())
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a call listed twice");
    for id in before.iter().flatten() {
        assert!(ids.binary_search(&id.as_str()).is_ok(), "{id} was skipped");
    }
    let idless_before = before.iter().filter(|id| id.is_none()).count();
    assert_eq!(listed.iter().filter(|e| e.idless).count(), idless_before);
}

/// `stored_ids` names exactly the asked ids that have a stored call in the workspace
/// (how a node settles reservations of calls ingested through another node).
pub async fn stored_ids_are_the_asked_ids_with_a_stored_call(store: Shared, _seed: u64) {
    let all = workspaces(&store).await;
    let (ws, other) = (all[0], all[1]);
    let book = PriceBook::bundled().unwrap();
    let event = |id: &str| {
        json!({"externalRequestId": id, "timestamp": iso(START), "provider": "openai",
               "model": "gpt-4o", "endpointTag": "e", "status": "success",
               "inputTokens": 10})
        .to_string()
    };
    store
        .ingest(ws, gen::prepare(&book, &[event("a"), event("b'quote")]))
        .await
        .unwrap();
    store
        .ingest(other, gen::prepare(&book, &[event("c")]))
        .await
        .unwrap();
    let asked = ["a", "b'quote", "c", "never"].map(String::from).to_vec();
    let mut stored = store.stored_ids(ws, asked).await.unwrap();
    stored.sort();
    assert_eq!(stored, vec!["a".to_string(), "b'quote".to_string()]);
    assert!(store.stored_ids(ws, Vec::new()).await.unwrap().is_empty());
}

/// The costliest-first listing: every priced call of the listing exactly once (unpriced
/// ones, whose cost is unknown, left out), by cost, ties newest first, over pages of
/// random sizes; its cursors are the store's own.
pub async fn costliest_pages_list_every_priced_call_once_by_cost(store: Shared, seed: u64) {
    let loaded = load(&store, seed, 800).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc0);
    type Listing = (WorkspaceId, Option<(i64, i64)>, Option<Filters>);
    let mut listings: Vec<Listing> = loaded
        .workspaces
        .iter()
        .map(|ws| (*ws, None, None))
        .collect();
    for _ in 0..super::scale() * 10 {
        let (window, filters) = gen::window_and_filters(&mut rng);
        listings.push((
            *pick(&mut rng, &loaded.workspaces),
            Some(window),
            Some(filters),
        ));
    }
    for (i, (ws, window, filters)) in listings.into_iter().enumerate() {
        let limit = rng.random_range(1..60);
        let base = EventQuery {
            window,
            filters: filters.clone(),
            limit,
            order: EventOrder::Costliest,
            ..Default::default()
        };
        let got = all_pages(&store, ws, base).await;
        let what = format!("costliest listing {i} (pages of {limit}): {window:?} {filters:?}");
        for pair in got.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (ca, cb) = (a.cost_usd.expect("priced"), b.cost_usd.expect("priced"));
            assert!(
                ca > cb || (ca == cb && ms(&a.timestamp) >= ms(&b.timestamp)),
                "{what}: {} ({ca}) before {} ({cb})",
                a.external_request_id,
                b.external_request_id
            );
        }
        let expected: Vec<&Call> = loaded
            .reference
            .matching(ws, window, filters.as_ref())
            .filter(|c| c.stored_event().cost_usd.is_some())
            .collect();
        // The same calls as the reference's priced ones, compared field by field in
        // the newest-first order `check_listing` reads.
        let mut newest_first = got.clone();
        newest_first.sort_by_key(|e| std::cmp::Reverse(ms(&e.timestamp)));
        check_listing(&loaded, &newest_first, expected, &what);
    }
    // A newest-first cursor is not a costliest-first one.
    let newest = store
        .events(
            loaded.workspaces[0],
            EventQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if let Some(cursor) = newest.next_cursor {
        let mixed = EventQuery {
            cursor: Some(cursor),
            limit: 1,
            order: EventOrder::Costliest,
            ..Default::default()
        };
        match store.events(loaded.workspaces[0], mixed).await {
            Err(StoreError::BadCursor) => {}
            other => panic!("a newest-first cursor in a costliest listing: {other:?}"),
        }
    }
}

/// Calls whose attempts straddle a window's edge count where their winning attempt's
/// time is, not where a losing attempt's is: a window read (aggregate, listing, request
/// values, latencies) that narrows to the calls with an attempt in the window must still
/// resolve each call from all its attempts. Freshness names the newest call's time even
/// when the newest stored attempt lost to an attempt days older.
pub async fn window_reads_place_a_call_at_its_winning_attempt(store: Shared, _seed: u64) {
    let book = PriceBook::bundled().unwrap();
    let minute = 60_000;
    let event = |id: &str, attempt: u64, minutes: i64, won: Option<(u64, u64)>| {
        let mut e = json!({"externalRequestId": id, "attempt": attempt,
            "timestamp": iso(START + minutes * minute), "provider": "openai",
            "model": "gpt-4o", "endpointTag": "e"});
        match won {
            // A success with usage and a latency: it wins over every failure.
            Some((input, latency)) => {
                e["status"] = json!("success");
                e["inputTokens"] = json!(input);
                e["latencyMs"] = json!(latency);
            }
            None => {
                e["status"] = json!("error");
                e["usageMissing"] = json!(true);
            }
        }
        e.to_string()
    };
    let ws = store.create_workspace("straddle".into()).await.unwrap().id;
    // The window is the tenth hour after START: [START + 9 h, START + 10 h).
    let (from, to) = (START + 9 * 60 * minute, START + 10 * 60 * minute);
    let texts = [
        // Lost at + 8:50 (before the window), won at + 9:10 (in it).
        event("won-inside", 1, 9 * 60 - 10, None),
        event("won-inside", 2, 10 * 60 - 50, Some((100, 50))),
        // Lost at + 9:30 (in the window), won at + 10:20 (after it).
        event("won-after", 1, 10 * 60 - 30, None),
        event("won-after", 2, 11 * 60 - 40, Some((7, 90))),
        event("single", 1, 10 * 60 - 20, Some((1000, 70))),
    ];
    store.ingest(ws, gen::prepare(&book, &texts)).await.unwrap();
    let sums = |from_ms: i64, to_ms: i64| {
        let store = store.clone();
        async move {
            let q = window_query(from_ms, to_ms);
            let t = store.aggregate(ws, q).await.unwrap().total();
            (t.requests, t.attempts, t.input)
        }
    };
    // By hand: won-inside (2 attempts, 100 in) and single (1, 1000) in the window.
    assert_eq!(sums(from, to).await, (2, 3, 1100));
    // won-after belongs to the next hour with both its attempts.
    assert_eq!(sums(to, to + 60 * minute).await, (1, 2, 7));
    // The hour before holds nothing: won-inside's losing attempt is not a call there.
    assert_eq!(sums(from - 60 * minute, from).await, (0, 0, 0));
    let listed = all_pages(
        &store,
        ws,
        EventQuery {
            window: Some((from, to)),
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    let ids: Vec<(&str, u32)> = listed
        .iter()
        .map(|e| (e.external_request_id.as_str(), e.attempts))
        .collect();
    assert_eq!(ids, [("single", 1), ("won-inside", 2)]);
    let values = store
        .request_values(ws, window_query(from, to), 10)
        .await
        .unwrap();
    let inputs: Vec<u64> = values.iter().map(|v| v.input_tokens).collect();
    assert_eq!(inputs, [1000, 100]);
    let latencies = store
        .latencies(ws, window_query(from, to), 10)
        .await
        .unwrap();
    assert_eq!(latencies, [70, 50]);

    // Freshness: the newest stored attempt (three days on) lost to an attempt at + 2:00;
    // the newest call's time is that attempt's. The older call is written first, so
    // the newest receive time is the newest call's alone.
    let ws = store.create_workspace("stale".into()).await.unwrap().id;
    let older = [event("older", 1, 60, Some((5, 10)))];
    store.ingest(ws, gen::prepare(&book, &older)).await.unwrap();
    let newest = [
        event("newest", 1, 2 * 60, Some((5, 10))),
        event("newest", 2, 3 * 24 * 60, None),
    ];
    store
        .ingest(ws, gen::prepare(&book, &newest))
        .await
        .unwrap();
    let f = store.freshness(ws).await.unwrap().unwrap();
    assert_eq!(f.newest_event_ms, START + 2 * 60 * minute);
    assert_eq!(f.ingest_lag_ms, f.newest_received_ms - f.newest_event_ms);
}

/// Every measure of everything in `[from_ms, to_ms)`, no groups.
fn window_query(from_ms: i64, to_ms: i64) -> Query {
    Query {
        from_ms,
        to_ms,
        filters: Filters::default(),
        group_by: Vec::new(),
        bucket: None,
        measures: Measure::ALL.to_vec(),
        order_by: None,
        ascending: false,
        limit: 10,
        count_by_first: false,
    }
}
