//! Ingest and the aggregate query: dedupe outcomes per event, and random queries over
//! random events answered exactly as the reference answers them.

use super::gen::{self, pick, HOUR, START};
use super::reference::{iso, Effect, Reference};
use super::{load, workspaces, Loaded, Shared};
use burnrate::price::PriceBook;
use burnrate::query::{Answer, Dimension, Filters, Measure, Query};
use burnrate::store::{EventQuery, StoredEvent, WorkspaceId, WriteResult};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

/// A successful call of 100 input and 10 output tokens at START + `minutes`.
fn call(id: Option<&str>, attempt: u64, minutes: i64) -> Value {
    let mut e = json!({
        "attempt": attempt,
        "timestamp": iso(START + minutes * 60_000),
        "provider": "openai", "model": "gpt-4o-mini", "endpointTag": "e",
        "environment": "prod", "dataMode": "real", "tenantId": "t1",
        "status": "success", "inputTokens": 100, "outputTokens": 10,
    });
    if let Some(id) = id {
        e["externalRequestId"] = json!(id);
    }
    e
}

fn with(mut e: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

/// Everything of every environment and data mode around START.
fn everything(group_by: Vec<Dimension>) -> Query {
    Query {
        from_ms: START - HOUR,
        to_ms: START + 2 * HOUR,
        filters: Filters::default(),
        group_by,
        bucket: None,
        measures: Measure::ALL.to_vec(),
        order_by: Some(Measure::Requests),
        ascending: false,
        limit: 100,
        count_by_first: false,
    }
}

/// One stored call by id, as `events` lists it, `received_at` left out.
async fn stored(store: &Shared, ws: WorkspaceId, id: &str) -> StoredEvent {
    let page = store
        .events(
            ws,
            EventQuery {
                external_request_id: Some(id.into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1, "call {id}");
    let mut e = page.events[0].clone();
    e.received_at = String::new();
    e
}

/// The hand-written requests: (workspace, events, the outcome of each).
fn dedupe_requests(ws: &[WorkspaceId]) -> Vec<(WorkspaceId, Vec<Value>, Vec<WriteResult>)> {
    use WriteResult::*;
    let failed = json!({"status": "rate_limited", "usageMissing": true});
    vec![
        (
            ws[0],
            vec![
                with(call(Some("a"), 1, 0), failed.clone()),
                // The same attempt again, other content: a resend, ignored.
                with(call(Some("a"), 1, 0), json!({"inputTokens": 999})),
            ],
            vec![Inserted, Duplicate],
        ),
        (
            ws[0],
            vec![
                // Usage and success beat no usage: replaces, environment included.
                with(
                    call(Some("a"), 3, 2),
                    json!({"inputTokens": 300, "model": "gpt-4o", "tenantId": "t2", "environment": "staging"}),
                ),
                // A failure with usage ranks below a success with usage.
                with(
                    call(Some("a"), 2, 1),
                    json!({"status": "error", "inputTokens": 200}),
                ),
                // Equal rank: the lower attempt number wins, so 3 stays.
                with(call(Some("a"), 64, 3), json!({"inputTokens": 640})),
                call(Some("a"), 3, 2),
            ],
            vec![
                Attempt { replaced: true },
                Attempt { replaced: false },
                Attempt { replaced: false },
                Duplicate,
            ],
        ),
        (
            ws[0],
            vec![
                // Attempt 2 first, then attempt 1 arrives late and succeeds.
                with(
                    call(Some("b"), 2, 5),
                    json!({"status": "error", "inputTokens": 50}),
                ),
                with(call(Some("b"), 1, 4), json!({"inputTokens": 70})),
                // Id-less calls are never duplicates of each other.
                call(None, 1, 6),
                call(None, 1, 6),
            ],
            vec![Inserted, Attempt { replaced: true }, Inserted, Inserted],
        ),
        // The same id in another workspace is another call. Two equal attempts arriving
        // out of order: the lower attempt wins when it comes, as if they came in order.
        (
            ws[1],
            vec![
                call(Some("a"), 1, 0),
                with(call(Some("c"), 2, 7), json!({"inputTokens": 20})),
                with(call(Some("c"), 1, 8), json!({"inputTokens": 10})),
            ],
            vec![Inserted, Inserted, Attempt { replaced: true }],
        ),
    ]
}

/// Retries as attempt numbers, replacements, resends, id-less calls and one id in two
/// workspaces, by hand: each outcome, the call each id ends as, and the sums.
pub async fn retries_replacements_and_resends_follow_the_dedupe_rules(store: Shared, _seed: u64) {
    let book = PriceBook::bundled().unwrap();
    let ws = workspaces(&store).await;
    let requests = dedupe_requests(&ws);
    let mut reference = Reference::default();
    for (i, (workspace, texts, outcomes)) in requests.into_iter().enumerate() {
        let texts: Vec<String> = texts.iter().map(Value::to_string).collect();
        let events = gen::prepare(&book, &texts);
        let (expected, effects) = reference.ingest(workspace, &events, i);
        assert_eq!(expected, outcomes, "reference, request {i}");
        let got = store.ingest(workspace, events).await.unwrap();
        assert_eq!(got.results, outcomes, "request {i}");
        let changes: Vec<Effect> = got.effects.iter().map(Effect::of).collect();
        assert_eq!(changes, effects, "cost changes of request {i}");
    }
    let a = stored(&store, ws[0], "a").await;
    assert_eq!(
        (
            a.attempt,
            a.attempts,
            a.input_tokens,
            a.model.as_str(),
            a.tenant_id.as_deref()
        ),
        (3, 4, 300, "gpt-4o", Some("t2"))
    );
    assert_eq!((a.environment, a.status), ("staging", "success"));
    assert_eq!(a.timestamp, iso(START + 2 * 60_000));
    let b = stored(&store, ws[0], "b").await;
    assert_eq!((b.attempt, b.attempts, b.input_tokens), (1, 2, 70));
    let c = stored(&store, ws[1], "c").await;
    assert_eq!((c.attempt, c.attempts, c.input_tokens), (1, 2, 10));
    for (ws, id) in [(ws[0], "a"), (ws[0], "b"), (ws[1], "a"), (ws[1], "c")] {
        let call = reference
            .calls
            .iter()
            .find(|c| c.workspace == ws && c.id.as_deref() == Some(id))
            .unwrap();
        assert_eq!(
            format!("{:#?}", stored(&store, ws, id).await),
            format!("{:#?}", call.stored_event()),
            "call {id} of workspace {ws}"
        );
    }
    check_dedupe_sums(&store, &reference, &ws).await;
}

/// The replaced attempt's model, tenant and environment left every sum; the other
/// workspace holds its own call.
async fn check_dedupe_sums(store: &Shared, reference: &Reference, ws: &[WorkspaceId]) {
    let by = |d: Dimension| everything(vec![d]);
    let groups = |a: &Answer| -> Vec<(String, u64, u64)> {
        a.rows
            .iter()
            .map(|r| (r.group.join("/"), r.sums.requests, r.sums.attempts))
            .collect()
    };
    let s = |x: &str| x.to_string();
    for (query, expected) in [
        (
            by(Dimension::Model),
            vec![(s("gpt-4o-mini"), 3, 4), (s("gpt-4o"), 1, 4)],
        ),
        (
            by(Dimension::TenantId),
            vec![(s("t1"), 3, 4), (s("t2"), 1, 4)],
        ),
        (
            by(Dimension::Environment),
            vec![(s("prod"), 3, 4), (s("staging"), 1, 4)],
        ),
        (by(Dimension::Status), vec![(s("success"), 4, 8)]),
    ] {
        let got = store.aggregate(ws[0], query.clone()).await.unwrap();
        assert_eq!(groups(&got), expected, "{:?}", query.group_by);
        let expected = reference.answer(ws[0], &query).unwrap();
        assert_eq!(
            got,
            Answer {
                seen: got.seen,
                ..expected
            }
        );
        assert_eq!(got.total().idless, 2);
        // a, b and the two id-less calls.
        assert_eq!(got.total().input, 300 + 70 + 100 + 100);
    }
    let other = store.aggregate(ws[1], everything(vec![])).await.unwrap();
    assert_eq!((other.total().requests, other.total().input), (2, 100 + 10));
}

/// Random aggregate queries (group-by, buckets, filters with missing-value labels,
/// windows with partial hours and whole days, every order, small limits) over a random
/// scenario: each answer equals the reference's, rows, totals and cut.
pub async fn aggregates_match_the_reference(store: Shared, seed: u64) {
    let loaded = load(&store, seed, 2500).await;
    let seen = check_queries(&store, &loaded, seed, 400).await;
    // The queries must reach what they are meant to check.
    assert!(seen.rows > 1_500, "rows compared: {}", seen.rows);
    assert!(seen.cut > 30, "answers with cut rows: {}", seen.cut);
    assert!(seen.tags > 25, "queries on tags: {}", seen.tags);
    assert!(seen.empty < 250, "empty answers: {}", seen.empty);
}

/// What a run of random queries compared.
#[derive(Debug, Default)]
pub struct Compared {
    pub rows: usize,
    pub cut: usize,
    pub tags: usize,
    pub empty: usize,
}

/// Ask `n` random queries of the loaded scenario; each answer must equal the reference's.
pub async fn check_queries(store: &Shared, loaded: &Loaded, seed: u64, n: usize) -> Compared {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa99);
    let mut seen = Compared::default();
    for i in 0..n * super::scale() {
        let ws = *pick(&mut rng, &loaded.workspaces);
        let query = gen::query(&mut rng);
        let expected = loaded.reference.answer(ws, &query).unwrap();
        let got = store
            .aggregate(ws, query.clone())
            .await
            .unwrap_or_else(|e| panic!("query {i} {query:?}: {e}"));
        // Read-your-writes: the answer saw every acknowledged commit.
        assert!(
            got.seen >= loaded.last_seq,
            "query {i} saw commit {} of {}",
            got.seen,
            loaded.last_seq
        );
        let expected = Answer {
            seen: got.seen,
            ..expected
        };
        if got != expected {
            panic!(
                "query {i} of workspace {ws} differs:\n{}",
                difference(&query, &got, &expected)
            );
        }
        seen.rows += expected.rows.len();
        seen.cut += (expected.cut > 0) as usize;
        seen.empty += expected.totals.is_empty() as usize;
        seen.tags += query
            .group_by
            .iter()
            .chain(query.filters.text.keys())
            .any(|d| matches!(d, Dimension::Tag(_))) as usize
            + !query.filters.tags.is_empty() as usize;
    }
    seen
}

/// Where two answers differ, for the failure message.
fn difference(query: &Query, got: &Answer, expected: &Answer) -> String {
    let mut out = format!("query: {query:?}\n");
    if got.cut != expected.cut {
        out += &format!("cut: got {}, expected {}\n", got.cut, expected.cut);
    }
    if got.first_counts != expected.first_counts {
        out += &format!(
            "first_counts:\n  got      {:?}\n  expected {:?}\n",
            got.first_counts, expected.first_counts
        );
    }
    if got.totals != expected.totals {
        out += &format!(
            "totals:\n  got      {:?}\n  expected {:?}\n",
            got.totals, expected.totals
        );
    }
    out += &format!(
        "rows: got {}, expected {}\n",
        got.rows.len(),
        expected.rows.len()
    );
    let first = got
        .rows
        .iter()
        .zip(&expected.rows)
        .position(|(g, e)| g != e);
    if let Some(i) = first {
        out += &format!(
            "first differing row {i}:\n  got      {:?}\n  expected {:?}\n",
            got.rows[i], expected.rows[i]
        );
    }
    out
}

/// Sealing never changes an answer: part of a random scenario is stored and every hour
/// sealed, then the rest arrives (late attempts, retries and replacements of calls in
/// sealed hours), then the hours are sealed again; after each step random queries
/// answer as the reference does. A backend that seals (ClickHouse's cells) must reseal
/// the hours the late events changed and then find nothing left to seal, and answer the
/// same once the superseded generations are dropped; the embedded store seals nothing
/// (its rollups are always current).
pub async fn sealed_hours_answer_as_the_raw_events(store: Shared, seed: u64) {
    let workspaces = workspaces(&store).await;
    let mut requests = gen::requests(seed, &workspaces, 1500 * super::scale()).into_iter();
    let early = requests.len() * 6 / 10;
    let mut loaded = Loaded {
        reference: Reference::default(),
        workspaces,
        request_times: Vec::new(),
        last_seq: 0,
    };
    for request in requests.by_ref().take(early) {
        loaded.ingest(&store, request).await;
    }
    // Every hour of the scenario is past the sealing horizon.
    let later = gen::NOW + 10 * gen::DAY;
    let sealed = store.seal(later).await.unwrap();
    check_queries(&store, &loaded, seed, 150).await;
    super::reads::check_versions_seen(&store, &loaded).await;
    for request in requests {
        loaded.ingest(&store, request).await;
    }
    check_queries(&store, &loaded, seed ^ 1, 150).await;
    super::reads::check_versions_seen(&store, &loaded).await;
    if sealed > 0 {
        // The late events' hours are resealed once their marks are older than a seal's
        // start minus the clock-skew margin (5 s).
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    }
    let resealed = store.seal(later).await.unwrap();
    check_queries(&store, &loaded, seed ^ 2, 150).await;
    super::reads::check_versions_seen(&store, &loaded).await;
    if sealed > 0 {
        assert!(
            resealed > 0,
            "hours sealed {sealed}, resealed after late events {resealed}"
        );
        assert_eq!(store.seal(later).await.unwrap(), 0, "all hours are clean");
        check_queries(&store, &loaded, seed ^ 3, 150).await;
        super::reads::check_versions_seen(&store, &loaded).await;
        // A pass past the grace of superseded generations (ClickHouse drops the cells of
        // every generation below an hour's newest one 10 minutes after that one started):
        // the answers are the same without them.
        let past_grace = jiff::Timestamp::now().as_millisecond() + 11 * 60_000;
        assert_eq!(
            store.seal(past_grace).await.unwrap(),
            0,
            "all hours are clean"
        );
        check_queries(&store, &loaded, seed ^ 4, 150).await;
        super::reads::check_versions_seen(&store, &loaded).await;
    } else {
        assert_eq!(resealed, 0);
    }
}
