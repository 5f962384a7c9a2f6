//! The control store: workspaces, keys, control objects, price books, the first
//! start and the readiness probe.

use super::Shared;
use burnrate::store::{Scope, StoreError, StoredBook, StoredKey, StoredObject};
use serde_json::json;

/// A fresh store has `default`; a name is taken once; pausing goes by name and shows at
/// authentication.
pub async fn workspaces_are_created_once_and_paused_by_name(store: Shared, _seed: u64) {
    let all = store.workspaces().await.unwrap();
    let names: Vec<&str> = all.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, vec!["default"]);
    let alpha = store.create_workspace("alpha".into()).await.unwrap();
    assert_eq!((alpha.name.as_str(), alpha.paused), ("alpha", false));
    assert!(
        alpha.created_at.parse::<jiff::Timestamp>().is_ok(),
        "{}",
        alpha.created_at
    );
    match store.create_workspace("alpha".into()).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a second alpha: {other:?}"),
    }
    let beta = store.create_workspace("beta".into()).await.unwrap();
    let default = store.workspace("default".into()).await.unwrap().unwrap();
    assert!(default.id != alpha.id && alpha.id != beta.id && beta.id != default.id);
    let mut names: Vec<String> = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    names.sort();
    assert_eq!(names, vec!["alpha", "beta", "default"]);
    assert_eq!(
        store.workspace("alpha".into()).await.unwrap().unwrap().id,
        alpha.id
    );
    assert!(store.workspace("gamma".into()).await.unwrap().is_none());

    store
        .create_key(
            "alpha".into(),
            Scope::Read,
            "hash-alpha".into(),
            "br_alpha".into(),
            None,
        )
        .await
        .unwrap();
    store.set_paused("alpha".into(), true).await.unwrap();
    assert!(
        store
            .workspace("alpha".into())
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    assert!(
        !store
            .workspace("beta".into())
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    let info = store
        .authenticate("hash-alpha".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.workspace_id, info.workspace_paused), (alpha.id, true));
    store.set_paused("alpha".into(), false).await.unwrap();
    let info = store
        .authenticate("hash-alpha".into())
        .await
        .unwrap()
        .unwrap();
    assert!(!info.workspace_paused);
    match store.set_paused("gamma".into(), true).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("pausing a missing workspace: {other:?}"),
    }
}

/// Keys authenticate by their hash with their scope and workspace; listing shows them
/// in creation order; revoking by id or by prefix stops them at once and counts.
pub async fn keys_authenticate_by_hash_and_revoke_by_id_or_prefix(store: Shared, _seed: u64) {
    let default = store.workspace("default".into()).await.unwrap().unwrap();
    let other = store.create_workspace("other".into()).await.unwrap();
    let create = |ws: &str, scope, hash: &str, prefix: &str, name: Option<&str>| {
        let store = store.clone();
        let (ws, hash, prefix, name) = (
            ws.to_string(),
            hash.to_string(),
            prefix.to_string(),
            name.map(str::to_string),
        );
        async move { store.create_key(ws, scope, hash, prefix, name).await }
    };
    let ingest = create("default", Scope::Ingest, "h-ingest", "br_in", Some("ci"))
        .await
        .unwrap();
    let read = create("default", Scope::Read, "h-read", "br_shared", None)
        .await
        .unwrap();
    let admin = create("other", Scope::Admin, "h-admin", "br_shared", None)
        .await
        .unwrap();
    assert!(matches!(
        create("nowhere", Scope::Read, "h-x", "br_x", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        (
            ingest.workspace.as_str(),
            ingest.prefix.as_str(),
            ingest.scope,
            ingest.name.as_deref()
        ),
        ("default", "br_in", Scope::Ingest, Some("ci"))
    );
    assert_eq!(
        (ingest.revoked_at.as_deref(), ingest.unknown_fields),
        (None, 0)
    );
    for (hash, key, ws, scope) in [
        ("h-ingest", &ingest, default.id, Scope::Ingest),
        ("h-read", &read, default.id, Scope::Read),
        ("h-admin", &admin, other.id, Scope::Admin),
    ] {
        let info = store.authenticate(hash.into()).await.unwrap().unwrap();
        assert_eq!(
            (info.key_id, info.workspace_id, info.scope),
            (key.id, ws, scope),
            "{hash}"
        );
    }
    assert!(store
        .authenticate("h-unknown".into())
        .await
        .unwrap()
        .is_none());
    let ids =
        |keys: Vec<burnrate::store::KeyRecord>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.keys(None).await.unwrap()),
        vec![ingest.id, read.id, admin.id]
    );
    assert_eq!(
        ids(store.keys(Some("default".into())).await.unwrap()),
        vec![ingest.id, read.id]
    );
    assert_eq!(
        ids(store.keys(Some("other".into())).await.unwrap()),
        vec![admin.id]
    );

    assert_eq!(store.revoke_key(ingest.id.to_string()).await.unwrap(), 1);
    assert!(store
        .authenticate("h-ingest".into())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.revoke_key(ingest.id.to_string()).await.unwrap(),
        0,
        "already revoked"
    );
    assert!(store.authenticate("h-read".into()).await.unwrap().is_some());
    // A prefix names every live key that has it.
    assert_eq!(store.revoke_key("br_shared".into()).await.unwrap(), 2);
    assert!(store.authenticate("h-read".into()).await.unwrap().is_none());
    assert!(store
        .authenticate("h-admin".into())
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.revoke_key("br_nothing".into()).await.unwrap(), 0);
    let keys = store.keys(None).await.unwrap();
    assert_eq!(keys.len(), 3, "revoked keys stay listed");
    for k in keys {
        let at = k
            .revoked_at
            .unwrap_or_else(|| panic!("key {} not revoked", k.id));
        assert!(at.parse::<jiff::Timestamp>().is_ok(), "{at}");
    }
}

/// A server's key table loads `live_keys` and reloads it when `key_generation` moves:
/// every key created, copied or revoked and every pause or resume moves it, and
/// `live_keys` lists exactly the unrevoked keys by hash with their workspace's pause.
pub async fn live_keys_and_the_key_generation_follow_every_key_and_pause_change(
    store: Shared,
    _seed: u64,
) {
    // (hash, key id, workspace id, scope, paused) of the live keys made here.
    type Live = (String, i64, i64, Scope, bool);
    let live = || async {
        let mut keys: Vec<Live> = store
            .live_keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.key_hash.starts_with("lk-"))
            .map(|k| {
                let i = k.info;
                (
                    k.key_hash,
                    i.key_id,
                    i.workspace_id,
                    i.scope,
                    i.workspace_paused,
                )
            })
            .collect();
        keys.sort();
        keys
    };
    let generation = || async { store.key_generation().await.unwrap() };
    let default = store.workspace("default".into()).await.unwrap().unwrap().id;
    let other = store.create_workspace("lk-other".into()).await.unwrap().id;

    let g0 = generation().await;
    let a = store
        .create_key(
            "default".into(),
            Scope::Ingest,
            "lk-a".into(),
            "br_lka".into(),
            None,
        )
        .await
        .unwrap();
    let g1 = generation().await;
    assert_ne!(g1, g0, "a key created moves the generation");
    let b = store
        .create_key(
            "lk-other".into(),
            Scope::Read,
            "lk-b".into(),
            "br_lkb".into(),
            None,
        )
        .await
        .unwrap();
    let g2 = generation().await;
    assert_ne!(g2, g1, "a second key moves it again");
    assert_eq!(
        live().await,
        vec![
            ("lk-a".to_string(), a.id, default, Scope::Ingest, false),
            ("lk-b".to_string(), b.id, other, Scope::Read, false),
        ]
    );

    store.set_paused("lk-other".into(), true).await.unwrap();
    let g3 = generation().await;
    assert_ne!(g3, g2, "a pause moves the generation");
    assert_eq!(
        live().await[1],
        ("lk-b".to_string(), b.id, other, Scope::Read, true)
    );

    assert_eq!(store.revoke_key("br_lka".into()).await.unwrap(), 1);
    let g4 = generation().await;
    assert_ne!(g4, g3, "a revocation moves the generation");
    assert_eq!(
        live().await,
        vec![("lk-b".to_string(), b.id, other, Scope::Read, true)]
    );

    store.set_paused("lk-other".into(), false).await.unwrap();
    let g5 = generation().await;
    assert_ne!(g5, g4, "a resume moves the generation");
    let copied = StoredKey {
        workspace: "default".into(),
        key_hash: "lk-copied".into(),
        prefix: "br_lkc".into(),
        scope: Scope::Admin,
        name: None,
        created_ms: 1_700_000_000_000,
        revoked_ms: None,
    };
    assert!(store.copy_key(copied).await.unwrap());
    assert_ne!(generation().await, g5, "a copied key moves the generation");
    let keys = live().await;
    assert_eq!(
        keys.iter()
            .map(|k| (k.0.as_str(), k.2, k.3, k.4))
            .collect::<Vec<_>>(),
        vec![
            ("lk-b", other, Scope::Read, false),
            ("lk-copied", default, Scope::Admin, false)
        ]
    );
    // The copied key's id is the one authentication gives.
    let info = store
        .authenticate("lk-copied".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.key_id, keys[1].1);
}

/// Object ids run 1, 2, 3 per (workspace, kind), whatever else is created, and a
/// deleted id is never given again; replacing keeps the id; listing is oldest first.
pub async fn object_ids_count_per_workspace_and_kind_and_are_never_reused(
    store: Shared,
    _seed: u64,
) {
    let ws1 = store.workspace("default".into()).await.unwrap().unwrap().id;
    let ws2 = store.create_workspace("second".into()).await.unwrap().id;
    let put = |ws, kind: &'static str, id: Option<i64>, n: i64| {
        let store = store.clone();
        async move { store.put_object(ws, kind, id, json!({"n": n})).await }
    };
    assert_eq!(put(ws1, "budget", None, 1).await.unwrap(), 1);
    assert_eq!(put(ws1, "budget", None, 2).await.unwrap(), 2);
    assert_eq!(put(ws1, "channel", None, 3).await.unwrap(), 1);
    assert_eq!(put(ws2, "budget", None, 4).await.unwrap(), 1);
    assert!(store.delete_object(ws1, "budget", 2).await.unwrap());
    assert!(
        !store.delete_object(ws1, "budget", 2).await.unwrap(),
        "already deleted"
    );
    assert!(
        !store.delete_object(ws2, "channel", 1).await.unwrap(),
        "another workspace's"
    );
    assert_eq!(
        put(ws1, "budget", None, 5).await.unwrap(),
        3,
        "2 is never given again"
    );
    assert_eq!(put(ws1, "budget", Some(1), 6).await.unwrap(), 1);
    assert!(matches!(
        put(ws1, "budget", Some(2), 7).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        put(ws2, "channel", Some(1), 8).await,
        Err(StoreError::NotFound(_))
    ));
    let listed = |ws: Option<i64>, kind: &'static str| {
        let store = store.clone();
        async move {
            store
                .objects(ws, kind)
                .await
                .unwrap()
                .into_iter()
                .map(|o| {
                    (
                        o.workspace,
                        o.id,
                        o.body["n"].as_i64().unwrap(),
                        o.created_ms <= o.updated_ms,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(Some(ws1), "budget").await,
        vec![(ws1, 1, 6, true), (ws1, 3, 5, true)]
    );
    assert_eq!(listed(Some(ws1), "channel").await, vec![(ws1, 1, 3, true)]);
    let mut all = listed(None, "budget").await;
    all.sort();
    let mut expected = vec![(ws1, 1, 6, true), (ws1, 3, 5, true), (ws2, 1, 4, true)];
    expected.sort();
    assert_eq!(all, expected);
    assert!(listed(None, "alert").await.is_empty());
}

/// Books list in import order; removing a version removes each of its books; every
/// save or removal grows the generation servers reload on.
pub async fn price_books_keep_import_order_and_bump_the_generation(store: Shared, _seed: u64) {
    let book = |kind: &str, version: &str, body: &str| StoredBook {
        kind: kind.into(),
        version: version.into(),
        body: body.into(),
        imported_at_ms: None,
    };
    assert!(store.price_books().await.unwrap().is_empty());
    let mut generation = store.price_generation().await.unwrap();
    let before = super::now_ms();
    for b in [
        book("catalog", "2026-01", r#"{"a":1}"#),
        book("overrides", "local-1", r#"{"b":2}"#),
        book("catalog", "2026-01", r#"{"c":3}"#),
        book("catalog", "2026-02", r#"{"d":4}"#),
    ] {
        store.save_price_book(b).await.unwrap();
        let now = store.price_generation().await.unwrap();
        assert!(now > generation, "a save grows the generation");
        generation = now;
    }
    let after = super::now_ms();
    let listed = store.price_books().await.unwrap();
    let bodies: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|b| (b.kind.as_str(), b.version.as_str(), b.body.as_str()))
        .collect();
    assert_eq!(
        bodies,
        vec![
            ("catalog", "2026-01", r#"{"a":1}"#),
            ("overrides", "local-1", r#"{"b":2}"#),
            ("catalog", "2026-01", r#"{"c":3}"#),
            ("catalog", "2026-02", r#"{"d":4}"#),
        ]
    );
    for b in &listed {
        let at = b.imported_at_ms.expect("the store sets the import time");
        assert!(before <= at && at <= after, "{at}");
    }
    assert_eq!(store.remove_price_book("2026-01".into()).await.unwrap(), 2);
    let now = store.price_generation().await.unwrap();
    assert!(now > generation, "a removal grows the generation");
    let versions: Vec<String> = store
        .price_books()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.version)
        .collect();
    assert_eq!(versions, vec!["local-1", "2026-02"]);
    assert_eq!(store.remove_price_book("2025-12".into()).await.unwrap(), 0);
    assert!(store.price_generation().await.unwrap() >= now);
}

/// The first-start admin key is claimed once; a fresh store takes writes.
pub async fn first_start_is_claimed_once_and_a_fresh_store_is_writable(store: Shared, _seed: u64) {
    store.check_writable().await.unwrap();
    assert!(store.claim_first_start().await.unwrap());
    assert!(!store.claim_first_start().await.unwrap());
    assert!(!store.claim_first_start().await.unwrap());
    store.check_writable().await.unwrap();
}

/// What `burnrate migrate` copies: keys with their hashes, times and revocation (once per
/// hash); objects under their own ids and times (replacing one with that id), listed with
/// their kinds; later new objects of a copied kind get larger ids.
pub async fn copied_keys_and_objects_keep_their_hashes_ids_and_times(store: Shared, _seed: u64) {
    let ws = store.create_workspace("copied".into()).await.unwrap().id;
    let key = StoredKey {
        workspace: "copied".into(),
        key_hash: "hash-of-a-copied-key".into(),
        prefix: "br_copied1".into(),
        scope: Scope::Ingest,
        name: Some("from the old store".into()),
        created_ms: 1_700_000_000_000,
        revoked_ms: None,
    };
    let revoked = StoredKey {
        key_hash: "hash-of-a-revoked-key".into(),
        prefix: "br_copied2".into(),
        revoked_ms: Some(1_700_000_100_000),
        ..key.clone()
    };
    assert!(store.copy_key(key.clone()).await.unwrap());
    assert!(store.copy_key(revoked.clone()).await.unwrap());
    assert!(!store.copy_key(key.clone()).await.unwrap(), "once per hash");
    let info = store
        .authenticate(key.key_hash.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.workspace_id, info.scope), (ws, Scope::Ingest));
    assert!(store
        .authenticate(revoked.key_hash.clone())
        .await
        .unwrap()
        .is_none());
    let stored: Vec<StoredKey> = store
        .stored_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.workspace == "copied")
        .collect();
    assert_eq!(stored, vec![key, revoked]);

    let object = |id: i64, n: i64| StoredObject {
        id,
        workspace: ws,
        body: json!({"n": n}),
        created_ms: 1_700_000_000_000 + id,
        updated_ms: 1_700_000_500_000 + id,
    };
    store
        .copy_object("budget".into(), object(7, 1))
        .await
        .unwrap();
    store
        .copy_object("channel".into(), object(2, 2))
        .await
        .unwrap();
    store
        .copy_object("budget".into(), object(7, 3))
        .await
        .unwrap();
    let mut every: Vec<(String, i64, i64, i64, i64)> = store
        .every_object()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.object.workspace == ws)
        .map(|o| {
            let x = o.object;
            (
                o.kind,
                x.id,
                x.body["n"].as_i64().unwrap(),
                x.created_ms,
                x.updated_ms,
            )
        })
        .collect();
    every.sort();
    assert_eq!(
        every,
        vec![
            ("budget".into(), 7, 3, 1_700_000_000_007, 1_700_000_500_007),
            ("channel".into(), 2, 2, 1_700_000_000_002, 1_700_000_500_002),
        ]
    );
    let next = store
        .put_object(ws, "budget", None, json!({"n": 4}))
        .await
        .unwrap();
    assert_eq!(next, 8, "after the copied id");
}
