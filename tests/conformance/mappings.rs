//! Id mappings (docs/mappings.md) on every backend: `store::open` wraps each in
//! `mapping::Mapped`, so with random mappings stored (merges into existing values,
//! renames to new ones, prefix rules, the missing-value label, chains, start hours inside
//! the data), random aggregate queries must answer exactly as the reference does over the
//! calls with their values rewritten, the event list must find the same calls, and the
//! cost changes of new commits must carry the mapped values. The rewrite is restated
//! here (the rule in force at the call's time: an exact `from`, else the longest prefix,
//! followed to the end of the chain), independently of the library's.

use super::gen::{self, pick, DAY, ENDPOINTS, HOUR, START, TENANTS, USERS};
use super::reference::{Effect, Reference};
use super::{load, Shared};
use burnrate::privacy::{PiiPolicy, Privacy};
use burnrate::query::{Answer, Dimension};
use burnrate::store::{EventQuery, WorkspaceId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// One accepted mapping as the test restates it.
#[derive(Debug, Clone)]
struct Rule {
    dim: Dimension,
    /// The value, or the prefix without its `*`.
    from: String,
    prefix: bool,
    to: String,
    start: Option<i64>,
}

fn resolve(rules: &[Rule], dim: &Dimension, value: &str, ts: i64) -> String {
    let mut v = value.to_string();
    for _ in 0..=rules.len() {
        let live: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.dim == *dim && r.start.is_none_or(|s| ts >= s))
            .collect();
        let next = live.iter().find(|r| !r.prefix && r.from == v).or_else(|| {
            live.iter()
                .filter(|r| r.prefix && v.starts_with(&r.from))
                .max_by_key(|r| r.from.len())
        });
        match next {
            Some(r) => v = r.to.clone(),
            None => break,
        }
    }
    v
}

/// A stored optional value rewritten: None stays None unless the label is mapped.
fn resolve_opt(rules: &[Rule], dim: &Dimension, value: Option<&str>, ts: i64) -> Option<String> {
    let label = value.unwrap_or("unknown");
    let to = resolve(rules, dim, label, ts);
    (value.is_some() || to != label).then_some(to)
}

/// A random mapping body: merges into pool values, renames to new ones, prefixes, the
/// missing-value label, a start hour inside the data half of the time.
fn random_mapping(rng: &mut StdRng) -> Value {
    let (dim, pool, prefix): (&str, &[&str], &str) = match rng.random_range(0..3) {
        0 => ("endpointTag", ENDPOINTS, "support"),
        1 => ("tenantId", TENANTS, "t"),
        _ => ("userId", USERS, "u"),
    };
    let from = if rng.random_bool(0.12) {
        format!("{prefix}*")
    } else if dim != "endpointTag" && rng.random_bool(0.15) {
        "unknown".to_string()
    } else {
        pick(rng, pool).to_string()
    };
    let to = if rng.random_bool(0.6) {
        pick(rng, pool).to_string()
    } else {
        format!("m{}", rng.random_range(1..4))
    };
    let mut body = json!({"dimension": dim, "from": from, "to": to});
    if rng.random_bool(0.5) {
        let at = START + rng.random_range(0..3 * DAY);
        body["effectiveFrom"] = json!(super::reference::iso(at));
    }
    body
}

/// Store random mappings in every workspace; those the checks refuse (cycles, a second
/// rule for a value, `to` equal to `from`) are left out, as a user's would be.
async fn add_mappings(
    store: &Shared,
    rng: &mut StdRng,
    workspaces: &[WorkspaceId],
) -> HashMap<WorkspaceId, Vec<Rule>> {
    let privacy = Privacy {
        policy: PiiPolicy::Allow,
        all_ids: false,
        secret: None,
    };
    let mut rules: HashMap<WorkspaceId, Vec<Rule>> = HashMap::new();
    for &ws in workspaces {
        for _ in 0..8 {
            let body = random_mapping(rng);
            let added = burnrate::mapping::add(store.as_ref(), ws, &body, &privacy)
                .await
                .unwrap();
            let Ok(m) = added else { continue };
            let start = m
                .effective_from
                .as_deref()
                .map(|t| t.parse::<jiff::Timestamp>().unwrap().as_millisecond());
            if let Some(s) = start {
                assert_eq!(s % HOUR, 0, "a start is the start of an hour");
            }
            rules.entry(ws).or_default().push(Rule {
                dim: m.dimension.clone(),
                prefix: m.from.ends_with('*'),
                from: m.from.trim_end_matches('*').to_string(),
                to: m.to,
                start,
            });
        }
    }
    rules
}

/// The reference's calls with endpointTag, tenantId and userId rewritten.
fn mapped(reference: &Reference, rules: &HashMap<WorkspaceId, Vec<Rule>>) -> Reference {
    let mut out = Reference::default();
    out.calls = reference.calls.clone();
    for c in out.calls.iter_mut() {
        let Some(rules) = rules.get(&c.workspace) else {
            continue;
        };
        let ts = c.event.timestamp_ms;
        let e = &mut c.event;
        e.endpoint_tag = resolve(rules, &Dimension::EndpointTag, &e.endpoint_tag, ts);
        e.tenant_id = resolve_opt(rules, &Dimension::TenantId, e.tenant_id.as_deref(), ts);
        e.user_id = resolve_opt(rules, &Dimension::UserId, e.user_id.as_deref(), ts);
    }
    out
}

pub async fn mapped_reads_match_the_reference_over_rewritten_calls(store: Shared, seed: u64) {
    let mut loaded = load(&store, seed, 1000).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x3a9);
    let rules = add_mappings(&store, &mut rng, &loaded.workspaces).await;
    let n_rules: usize = rules.values().map(Vec::len).sum();
    assert!(n_rules >= 10, "mappings accepted: {n_rules}");
    let expected_ref = mapped(&loaded.reference, &rules);

    // Aggregates: filters often name a mapping's target.
    let (mut rows, mut on_targets) = (0, 0);
    for i in 0..200 * super::scale() {
        let ws = *pick(&mut rng, &loaded.workspaces);
        let mut query = gen::query(&mut rng);
        if let Some(r) = rules.get(&ws).filter(|_| rng.random_bool(0.4)) {
            let r = pick(&mut rng, r);
            query.filters.text.insert(r.dim.clone(), vec![r.to.clone()]);
            on_targets += 1;
        }
        let expected = expected_ref.answer(ws, &query).unwrap();
        let got = store
            .aggregate(ws, query.clone())
            .await
            .unwrap_or_else(|e| panic!("query {i} {query:?}: {e}"));
        assert!(got.seen >= loaded.last_seq, "query {i} saw every commit");
        rows += expected.rows.len();
        assert_eq!(
            got,
            Answer {
                seen: got.seen,
                ..expected
            },
            "query {i} of workspace {ws}: {query:?}\nrules: {:?}",
            rules.get(&ws)
        );
    }
    assert!(rows > 600, "rows compared: {rows}");
    assert!(on_targets > 40, "queries on targets: {on_targets}");

    // The event list finds the calls that read as the filter's values.
    for i in 0..30 {
        let ws = *pick(&mut rng, &loaded.workspaces);
        let (window, mut filters) = gen::window_and_filters(&mut rng);
        if let Some(r) = rules.get(&ws) {
            let r = pick(&mut rng, r);
            filters.text.insert(r.dim.clone(), vec![r.to.clone()]);
        }
        let want = expected_ref
            .matching(ws, Some(window), Some(&filters))
            .count();
        let (mut got, mut cursor) = (0, None);
        loop {
            let page = store
                .events(
                    ws,
                    EventQuery {
                        window: Some(window),
                        filters: Some(filters.clone()),
                        cursor,
                        limit: 500,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            got += page.events.len();
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(
            got,
            want,
            "event list {i} of workspace {ws}: {filters:?}\nrules: {:?}",
            rules.get(&ws)
        );
        // Request values and latencies (the gate, percentiles) select the same calls.
        let query = burnrate::query::Query {
            from_ms: window.0,
            to_ms: window.1,
            filters: filters.clone(),
            group_by: Vec::new(),
            bucket: None,
            measures: Vec::new(),
            order_by: None,
            ascending: false,
            limit: 1,
            count_by_first: false,
        };
        let values = store
            .request_values(ws, query.clone(), 100_000)
            .await
            .unwrap();
        assert_eq!(values.len(), want, "request values {i}: {filters:?}");
        let timed = expected_ref
            .matching(ws, Some(window), Some(&filters))
            .filter(|c| c.event.latency_ms.is_some())
            .count();
        let latencies = store.latencies(ws, query.clone(), 100_000).await.unwrap();
        assert_eq!(latencies.len(), timed, "latencies {i}: {filters:?}");
        // Per mapped endpoint, every call (no limit cuts): the count and the p100 (the
        // largest latency) of the calls the rules put under each name.
        let mut per_endpoint: BTreeMap<Vec<String>, (u64, u32)> = BTreeMap::new();
        for c in expected_ref.matching(ws, Some(window), Some(&filters)) {
            if let Some(latency) = c.event.latency_ms {
                let group = vec![c.event.endpoint_tag.clone()];
                let entry = per_endpoint.entry(group).or_insert((0, 0));
                *entry = (entry.0 + 1, entry.1.max(latency));
            }
        }
        let grouped = burnrate::query::Query {
            group_by: vec![Dimension::EndpointTag],
            ..query
        };
        let got: BTreeMap<Vec<String>, (u64, u32)> = store
            .latency_percentiles(ws, grouped, 100_000, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.group, (g.calls, g.latency_ms)))
            .collect();
        assert_eq!(
            got, per_endpoint,
            "latency p100 per endpoint {i}: {filters:?}"
        );
    }

    // New commits report their cost changes under the mapped values.
    let more = gen::requests(seed ^ 0x77, &loaded.workspaces, 60);
    for (i, request) in more.into_iter().enumerate() {
        let ws = request.workspace;
        let at = loaded.request_times.len();
        let (_, effects) = loaded.reference.ingest(ws, &request.events, at);
        loaded.request_times.push((0, 0));
        let outcome = store.ingest(ws, request.events).await.unwrap();
        let ws_rules = rules.get(&ws).cloned().unwrap_or_default();
        let expected: Vec<Effect> = effects
            .into_iter()
            .map(|mut e| {
                let ts = e.ts_ms;
                e.endpoint_tag = resolve(&ws_rules, &Dimension::EndpointTag, &e.endpoint_tag, ts);
                e.tenant_id =
                    resolve_opt(&ws_rules, &Dimension::TenantId, e.tenant_id.as_deref(), ts);
                e
            })
            .collect();
        let got: Vec<Effect> = outcome.effects.iter().map(Effect::of).collect();
        assert_eq!(
            got, expected,
            "cost changes of request {i} after the mappings"
        );
    }
}
