//! The rules' checks and resolution, by hand-worked cases.

use super::*;

const T: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn rule(id: i64, dim: &str, from: &str, to: &str, effective: Option<i64>) -> Mapping {
    let mut body = json!({"dimension": dim, "from": from, "to": to});
    if let Some(ms) = effective {
        body["effectiveFrom"] = json!(rfc3339(ms));
    }
    Mapping {
        id,
        ..parse(&body).unwrap()
    }
}

#[test]
fn chains_resolve_to_their_end_and_exact_rules_beat_prefixes() {
    let rules = Rules::new(vec![
        rule(1, "tenantId", "a", "b", None),
        rule(2, "tenantId", "b", "c", None),
        rule(3, "userId", "svc:*", "service-accounts", None),
        rule(4, "userId", "svc:human-*", "people", None),
        rule(5, "userId", "svc:special", "special", None),
        rule(6, "userId", "unknown", "anonymous", None),
    ]);
    let t = &Dimension::TenantId;
    let u = &Dimension::UserId;
    assert_eq!(rules.resolve(t, "a", T), "c");
    assert_eq!(rules.resolve(t, "b", T), "c");
    assert_eq!(rules.resolve(t, "z", T), "z");
    assert_eq!(rules.resolve(u, "svc:etl", T), "service-accounts");
    assert_eq!(rules.resolve(u, "svc:human-ann", T), "people");
    assert_eq!(rules.resolve(u, "svc:special", T), "special");
    assert_eq!(rules.resolve_opt(u, None, T).as_deref(), Some("anonymous"));
    assert_eq!(rules.resolve_opt(t, None, T), None);
    // A filter on c selects everything that reads as c.
    let mut pre = rules.preimage(t, &["c".into()], &[], T);
    pre.sort();
    assert_eq!(pre, vec!["a", "b", "c"]);
    // A filter on a value mapped away selects nothing.
    assert!(rules.preimage(t, &["a".into()], &[], T).is_empty());
    let known: Vec<String> = ["svc:etl", "svc:human-ann", "bob"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        rules.preimage(u, &["service-accounts".into()], &known, T),
        vec!["service-accounts", "svc:etl"],
        "a value stored as the bucket's name reads as it too"
    );
}

#[test]
fn effective_from_is_truncated_to_the_hour_and_splits_the_window() {
    let r = rule(
        1,
        "tenantId",
        "old",
        "new",
        Some(T + 3 * HOUR_MS + 25 * 60_000),
    );
    assert_eq!(r.effective_from_ms, Some(T + 3 * HOUR_MS));
    assert_eq!(r.effective_from.as_deref(), Some("2026-01-01T03:00:00Z"));
    let rules = Rules::new(vec![r]);
    let t = &Dimension::TenantId;
    assert_eq!(rules.resolve(t, "old", T + 3 * HOUR_MS - 1), "old");
    assert_eq!(rules.resolve(t, "old", T + 3 * HOUR_MS), "new");
    assert_eq!(
        rules.segments(T, T + 5 * HOUR_MS),
        vec![(T, T + 3 * HOUR_MS), (T + 3 * HOUR_MS, T + 5 * HOUR_MS)]
    );
    // A start outside the window does not split it.
    assert_eq!(
        rules.segments(T + 4 * HOUR_MS, T + 5 * HOUR_MS),
        vec![(T + 4 * HOUR_MS, T + 5 * HOUR_MS)]
    );
}

#[test]
fn cycles_and_second_rules_for_one_value_are_refused_by_field() {
    let existing = vec![
        rule(1, "tenantId", "a", "b", None),
        rule(2, "tenantId", "b", "c", Some(T)),
    ];
    let field = |m: Mapping| check_against(&existing, &m).unwrap_err()[0].field.clone();
    assert_eq!(field(rule(0, "tenantId", "c", "a", None)), "to");
    assert_eq!(field(rule(0, "tenantId", "a", "z", None)), "from");
    assert_eq!(field(rule(0, "userId", "bot-*", "bot-all", None)), "to");
    // The same values in another dimension, and a longer chain, are fine.
    assert!(check_against(&existing, &rule(0, "userId", "c", "a", None)).is_ok());
    assert!(check_against(&existing, &rule(0, "tenantId", "c", "d", None)).is_ok());
}

#[test]
fn every_bad_field_is_named() {
    let fields = |body: Value| -> Vec<String> {
        parse(&body)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    };
    assert_eq!(fields(json!({})), vec!["dimension", "from", "to"]);
    assert_eq!(
        fields(json!({"dimension": "tag:team", "from": "*", "to": "a*", "effectiveFrom": 5})),
        vec!["dimension", "from", "to", "effectiveFrom"]
    );
    assert_eq!(
        fields(json!({"dimension": "userId", "from": "a", "to": "a"})),
        vec!["to"]
    );
    assert_eq!(fields(json!([])), vec!["body"]);
}

/// The guard's `cached` rules: read once, then served as they are (no store read) until
/// the server's loop rereads them (`refresh_cached`), or a write through the cache
/// forgets them.
#[tokio::test]
async fn cached_rules_are_served_until_refreshed_or_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rules.db").display());
    let store = crate::store::open(&url).unwrap();
    let ws = store.workspace("default".into()).await.unwrap().unwrap().id;
    let privacy = Privacy {
        policy: PiiPolicy::Allow,
        all_ids: false,
        secret: None,
    };
    let tenant = |rules: &Rules, id: &str| rules.resolve(&Dimension::TenantId, id, T);
    let cache = RulesCache::default();
    assert_eq!(
        tenant(&cache.cached(store.as_ref(), ws).await.unwrap(), "a"),
        "a"
    );
    // Written by "another process": not through this cache.
    let body = json!({"dimension": "tenantId", "from": "a", "to": "b"});
    add(store.as_ref(), ws, &body, &privacy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tenant(&cache.cached(store.as_ref(), ws).await.unwrap(), "a"),
        "a",
        "served as last read, without reading"
    );
    cache.refresh_cached(store.as_ref()).await;
    assert_eq!(
        tenant(&cache.cached(store.as_ref(), ws).await.unwrap(), "a"),
        "b"
    );
    // A write through the server forgets them: the next call reads the new rules.
    let body = json!({"dimension": "tenantId", "from": "c", "to": "d"});
    add(store.as_ref(), ws, &body, &privacy)
        .await
        .unwrap()
        .unwrap();
    cache.forget(ws);
    assert_eq!(
        tenant(&cache.cached(store.as_ref(), ws).await.unwrap(), "c"),
        "d"
    );
    store.close().await;
}
