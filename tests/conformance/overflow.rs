//! Overflow (issue 10): a write whose sums would leave the stored range is refused
//! naming the event field and stores nothing of its request; a read whose sums leave
//! the range is `SumOverflow`, while narrower reads of the same data stay exact. The
//! events here carry values beyond ingest's per-call ceilings on purpose (a store
//! written before the ceilings, or many calls adding up).

use super::gen::{self, DAY, HOUR, START};
use super::reference::iso;
use super::Shared;
use burnrate::event::PricedEvent;
use burnrate::money::Usd;
use burnrate::price::PriceBook;
use burnrate::query::{Bucket, Dimension, Filters, Measure, Query};
use burnrate::store::{EventQuery, StoreError, WorkspaceId, WriteResult};
use serde_json::json;

/// Half of i64's range and one more: two of them overflow.
const HALF: i64 = i64::MAX / 2 + 1;

/// A priced call at `at` on `endpoint` for `user`.
fn call(book: &PriceBook, id: &str, at: i64, endpoint: &str, user: &str) -> PricedEvent {
    let text = json!({"externalRequestId": id, "timestamp": iso(at), "provider": "openai",
        "model": "gpt-4o", "endpointTag": endpoint, "userId": user, "tenantId": "t",
        "status": "success", "inputTokens": 10, "outputTokens": 1})
    .to_string();
    let mut events = gen::prepare(book, &[text]);
    events.pop().unwrap()
}

fn costing(mut p: PricedEvent, nanos: i64) -> PricedEvent {
    p.pricing.cost = Some(Usd(nanos));
    p
}

fn window(from_ms: i64, to_ms: i64, group_by: Vec<Dimension>, bucket: Option<Bucket>) -> Query {
    Query {
        from_ms,
        to_ms,
        filters: Filters::default(),
        group_by,
        bucket,
        measures: Measure::ALL.to_vec(),
        order_by: None,
        ascending: false,
        limit: 100,
        count_by_first: false,
    }
}

async fn ids(store: &Shared, ws: WorkspaceId) -> Vec<String> {
    let page = store
        .events(
            ws,
            EventQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut ids: Vec<String> = page
        .events
        .into_iter()
        .map(|e| e.external_request_id)
        .collect();
    ids.sort();
    ids
}

fn refused_naming(result: Result<burnrate::store::IngestOutcome, StoreError>, field: &str) {
    match result {
        Err(StoreError::WriteOverflow(f)) => assert_eq!(f, field),
        other => panic!("expected a refusal naming {field}: {other:?}"),
    }
}

/// Two calls of one hour, endpoint and user whose costs (then input tokens) add past
/// i64: the request is refused naming the field, and none of its calls is stored,
/// good ones included; what was stored before stays exact.
pub async fn a_write_whose_sum_would_overflow_is_refused_naming_the_field(
    store: Shared,
    _seed: u64,
) {
    let book = PriceBook::bundled().unwrap();
    let ws = store.workspace("default".into()).await.unwrap().unwrap().id;
    let at = START + HOUR;
    let huge = |id: &str| costing(call(&book, id, at, "e", "u"), HALF);
    let good = |id: &str| call(&book, id, at + 60_000, "other", "v");
    let all = window(START, START + DAY, vec![], None);

    refused_naming(
        store
            .ingest(ws, vec![good("g1"), huge("x1"), huge("x2")])
            .await,
        "costUsd",
    );
    assert_eq!(store.event_count().await.unwrap(), 0);
    assert!(ids(&store, ws).await.is_empty());
    assert!(store
        .aggregate(ws, all.clone())
        .await
        .unwrap()
        .totals
        .is_empty());

    let first = store.ingest(ws, vec![huge("x1")]).await.unwrap();
    assert_eq!(first.results, vec![WriteResult::Inserted]);
    refused_naming(
        store.ingest(ws, vec![good("g2"), huge("x2")]).await,
        "costUsd",
    );
    assert_eq!(ids(&store, ws).await, vec!["x1"]);
    let total = store.aggregate(ws, all.clone()).await.unwrap().total();
    assert_eq!((total.requests, total.cost), (1, Usd(HALF)));

    let tokens = |id: &str| {
        let mut p = call(&book, id, at, "e", "u");
        p.event.tokens.input = HALF as u64;
        p
    };
    refused_naming(
        store.ingest(ws, vec![tokens("y1"), tokens("y2")]).await,
        "inputTokens",
    );
    assert_eq!(store.event_count().await.unwrap(), 1);
    let total = store.aggregate(ws, all).await.unwrap().total();
    assert_eq!(
        (total.requests, total.cost, total.input),
        (1, Usd(HALF), 10)
    );
}

/// Calls stored on different days, each sum in range alone: a window holding one is
/// exact, a window holding those that add past the range is `SumOverflow` however it
/// is grouped or bucketed; listing them still works.
pub async fn a_read_whose_sums_overflow_is_sum_overflow(store: Shared, _seed: u64) {
    let book = PriceBook::bundled().unwrap();
    let ws = store.workspace("default".into()).await.unwrap().unwrap().id;
    let day = |d: i64| START + d * DAY + HOUR;
    store
        .ingest(
            ws,
            vec![costing(call(&book, "c0", day(0), "p", "u1"), HALF)],
        )
        .await
        .unwrap();
    store
        .ingest(
            ws,
            vec![costing(call(&book, "c1", day(1), "q", "u2"), HALF)],
        )
        .await
        .unwrap();
    let one = store
        .aggregate(ws, window(START, START + DAY, vec![], None))
        .await
        .unwrap();
    assert_eq!(one.total().cost, Usd(HALF));
    let both = |group_by, bucket| window(START, START + 2 * DAY, group_by, bucket);
    for query in [
        both(vec![], None),
        both(vec![Dimension::EndpointTag], None),
        both(vec![Dimension::UserId], Some(Bucket::Day)),
        both(vec![Dimension::Tag("team".into())], Some(Bucket::Hour)),
    ] {
        match store.aggregate(ws, query.clone()).await {
            Err(StoreError::SumOverflow) => {}
            other => panic!("{query:?}: {other:?}"),
        }
    }
    assert_eq!(ids(&store, ws).await, vec!["c0", "c1"]);

    // Input tokens of i64::MAX on five days: any three add past u64 as well.
    let tokens_ws = store.create_workspace("tokens".into()).await.unwrap().id;
    for d in -2..3 {
        let mut p = call(&book, &format!("t{d}"), day(d), "e", "u");
        p.event.tokens.input = i64::MAX as u64;
        store.ingest(tokens_ws, vec![p]).await.unwrap();
    }
    let one = store
        .aggregate(
            tokens_ws,
            window(day(0) - HOUR, day(1) - HOUR, vec![], None),
        )
        .await
        .unwrap();
    assert_eq!(one.total().input, i64::MAX as u64);
    for query in [
        window(START - 2 * DAY, START + 3 * DAY, vec![], None),
        window(
            START - 2 * DAY,
            START + 3 * DAY,
            vec![Dimension::Model],
            Some(Bucket::Day),
        ),
    ] {
        match store.aggregate(tokens_ws, query.clone()).await {
            Err(StoreError::SumOverflow) => {}
            other => panic!("{query:?}: {other:?}"),
        }
    }
}

/// A request split in parts (`ingest_parts`): the parts commit in order, each with its
/// own sequence and cost changes; a part that would overflow is refused alone, and the
/// parts before and after it are stored with their changes (what the budget counters
/// must hear even though the request as a whole failed).
pub async fn a_refused_part_leaves_the_other_parts_stored_with_their_changes(
    store: Shared,
    _seed: u64,
) {
    let book = PriceBook::bundled().unwrap();
    let ws = store.workspace("default".into()).await.unwrap().unwrap().id;
    let at = START + HOUR;
    let priced = |id: &str, nanos: i64| costing(call(&book, id, at, "e", "u"), nanos);
    let parts = vec![
        vec![priced("a", 1_000), priced("b", 2_000)],
        vec![priced("x1", HALF), priced("x2", HALF)],
        // "a" again: a duplicate only if the first part committed before this one.
        vec![priced("a", 1_000), priced("c", 4_000)],
    ];
    let mut results = store
        .ingest_parts(ws, parts, Default::default())
        .await
        .into_iter();
    let first = results.next().unwrap().unwrap();
    assert_eq!(
        first.results,
        [WriteResult::Inserted, WriteResult::Inserted]
    );
    let costs = |o: &burnrate::store::IngestOutcome| -> Vec<i64> {
        o.effects.iter().map(|e| e.cost_delta).collect()
    };
    assert_eq!(costs(&first), [1_000, 2_000]);
    refused_naming(results.next().unwrap(), "costUsd");
    let last = results.next().unwrap().unwrap();
    assert_eq!(
        last.results,
        [WriteResult::Duplicate, WriteResult::Inserted]
    );
    assert_eq!(costs(&last), [4_000]);
    assert!(
        first.seq > 0 && last.seq > first.seq,
        "{} then {}",
        first.seq,
        last.seq
    );
    assert!(results.next().is_none());
    assert_eq!(ids(&store, ws).await, ["a", "b", "c"]);
    let all = window(START, START + DAY, vec![], None);
    let total = store.aggregate(ws, all).await.unwrap().total();
    assert_eq!((total.requests, total.cost), (3, Usd(7_000)));
}
