//! A store opened again holds everything it acknowledged, events and control data,
//! and dedupes against it: what a restart (or another node on the same data) sees.

use super::aggregate::check_queries;
use super::gen;
use super::reads::{all_pages, check_listing};
use super::{load, Shared};
use burnrate::store::{EventQuery, Scope, StoredBook};
use serde_json::json;

/// A random scenario and some control data, written, closed and opened again: every
/// answer as before, the event count, keys, objects, books and first start kept; the
/// same requests sent again dedupe against what was stored; ids continue.
pub async fn a_reopened_store_answers_as_before(
    store: Shared,
    seed: u64,
    reopen: &dyn Fn() -> Shared,
) {
    let mut loaded = load(&store, seed, 800).await;
    let ws = loaded.workspaces[0];
    let key = store
        .create_key(
            "default".into(),
            Scope::Read,
            "h-durable".into(),
            "br_durable".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .put_object(ws, "budget", None, json!({"n": 1}))
            .await
            .unwrap(),
        1
    );
    store
        .save_price_book(StoredBook {
            kind: "overrides".into(),
            version: "local-1".into(),
            body: "{}".into(),
            imported_at_ms: None,
        })
        .await
        .unwrap();
    assert!(store.claim_first_start().await.unwrap());
    let generation = store.price_generation().await.unwrap();
    store.close().await;
    drop(store);

    let store = reopen();
    assert_eq!(
        store.event_count().await.unwrap(),
        loaded.reference.calls.len() as u64
    );
    for &w in &loaded.workspaces {
        let got = all_pages(
            &store,
            w,
            EventQuery {
                limit: 500,
                ..Default::default()
            },
        )
        .await;
        let expected = loaded.reference.matching(w, None, None).collect();
        check_listing(&loaded, &got, expected, &format!("reopened, workspace {w}"));
    }
    check_queries(&store, &loaded, seed, 60).await;
    let info = store
        .authenticate("h-durable".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.key_id, key.id);
    let names: Vec<String> = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let books = store.price_books().await.unwrap();
    assert_eq!((books.len(), books[0].version.as_str()), (1, "local-1"));
    assert_eq!(store.price_generation().await.unwrap(), generation);
    assert!(!store.claim_first_start().await.unwrap());
    assert_eq!(
        store
            .put_object(ws, "budget", None, json!({"n": 2}))
            .await
            .unwrap(),
        2
    );

    // The first requests again: every attempt with an id is a duplicate now.
    let again: Vec<gen::Request> = gen::requests(seed, &loaded.workspaces, 800 * super::scale())
        .into_iter()
        .take(20)
        .collect();
    for request in again {
        loaded.ingest(&store, request).await;
    }
    check_queries(&store, &loaded, seed ^ 1, 60).await;
    store.close().await;
}
