//! Lifecycle calls of the contract: erasure (every backend) and retention (backends
//! that keep a pruned history; the others must refuse, never lose sums). After each,
//! answers are compared with the reference holding only what remains.

use super::aggregate::check_queries;
use super::gen::{self, pick, DAY, START};
use super::reference::Call;
use super::{load, Loaded, Shared};
use burnrate::store::{Removed, StoreError, Subject};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// What erasing `gone` calls must report, computed from the reference's calls.
fn expected_removed(calls: &[Call]) -> Removed {
    let mut removed = Removed::default();
    for c in calls {
        removed.events += 1;
        match c.pricing.cost {
            Some(cost) => removed.cost_nanos += cost.0,
            None => removed.unpriced += 1,
        }
    }
    removed
}

/// Erase `subject` from `ws` in the store and the reference; the store must report
/// exactly the reference's removed calls (raw events plus pruned history together).
async fn erase(store: &Shared, loaded: &mut Loaded, ws: i64, subject: Subject) {
    let id = subject.id().to_string();
    let is_tenant = matches!(subject, Subject::Tenant(_));
    // The calls naming the id as tenant (user) or as any tag's value.
    let gone = loaded.reference.remove(|c| {
        let value = match is_tenant {
            true => &c.event.tenant_id,
            false => &c.event.user_id,
        };
        let in_tags = c.event.tags.values().any(|v| *v == id);
        c.workspace == ws && (value.as_deref() == Some(id.as_str()) || in_tags)
    });
    assert!(!gone.is_empty(), "the scenario has calls of {id}");
    let got = store.erase(ws, subject).await.unwrap();
    let expected = expected_removed(&gone);
    assert_eq!(
        (
            got.events + got.pruned_history_calls,
            got.cost_nanos,
            got.unpriced
        ),
        (expected.events, expected.cost_nanos, expected.unpriced),
        "erasing {id}"
    );
}

/// Erase one tenant and one user of a workspace, and an id only tags carry: what they
/// removed is exactly their calls (as tenant, user or any tag's value), every answer afterwards equals the reference without them, and erasing again
/// removes nothing.
pub async fn erasure_takes_out_a_tenants_and_a_users_calls_exactly(store: Shared, seed: u64) {
    let mut loaded = load(&store, seed, 600).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 0xe7a5e);
    let ws = loaded.workspaces[0];
    let tenant = pick(&mut rng, gen::TENANTS).to_string();
    erase(&store, &mut loaded, ws, Subject::Tenant(tenant.clone())).await;
    let user = pick(&mut rng, gen::USERS).to_string();
    erase(&store, &mut loaded, ws, Subject::User(user)).await;
    // An id that only tags carry (no call has it as tenant): the calls tagged with it go.
    let tagged = pick(&mut rng, gen::TEAMS).to_string();
    erase(&store, &mut loaded, ws, Subject::Tenant(tagged)).await;
    check_queries(&store, &loaded, seed, 150).await;
    let again = store.erase(ws, Subject::Tenant(tenant)).await.unwrap();
    assert_eq!(again, Removed::default());
    // The other workspaces keep their calls of the same tenant.
    check_queries(&store, &loaded, seed ^ 1, 100).await;
}

/// Prune the first day of every workspace: the store reports the calls before it,
/// answers that need no raw event before `raw_from` are unchanged (the rollups keep
/// the pruned sums), the others say so. Hours sealed before the prune answer from what
/// remains after it, late calls of a pruned day (a new one, and a new attempt of a
/// pruned call, which is a new call: its stored attempts are gone) are raw events that
/// count beside the pruned history, and erasures afterwards take a tenant and a user out
/// of the pruned history too. A backend without pruned history refuses with Conflict.
pub async fn retention_keeps_what_the_rollups_answer_and_says_where_raw_events_end(
    store: Shared,
    seed: u64,
) {
    let mut loaded = load(&store, seed, 800).await;
    let later = gen::NOW + 10 * DAY;
    let sealed = store.seal(later).await.unwrap();
    // A store several nodes share prunes only rows committed at least its clock-skew
    // margin (5 s) ago: later ones stay raw until the next prune.
    if sealed > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    }
    // Mid-morning of the second day: the whole first day goes, the second stays.
    let before = START + DAY + 5 * gen::HOUR;
    let raw_from = before.div_euclid(DAY) * DAY;
    for &ws in &loaded.workspaces.clone() {
        let result = store.prune_before(ws, before).await;
        if let Err(StoreError::Conflict(why)) = &result {
            assert!(why.contains("retention"), "{why}");
            assert_eq!(store.raw_from(ws).await.unwrap(), None);
            return;
        }
        let removed = result.unwrap();
        let pruned: Vec<Call> = loaded
            .reference
            .matching(ws, Some((i64::MIN, raw_from)), None)
            .cloned()
            .collect();
        let expected = expected_removed(&pruned);
        assert_eq!(removed, expected, "workspace {ws}");
        assert_eq!(store.raw_from(ws).await.unwrap(), Some(raw_from));
        // Pruning the same range again finds nothing older.
        let again = store.prune_before(ws, before).await.unwrap();
        assert_eq!(again, Removed::default());
    }
    loaded.reference.forget_ids(|c| c.ts() < raw_from);
    let exact = check_pruned(&store, &loaded, seed, raw_from).await;
    assert!(exact > 100, "answers from the rollups alone: {exact}");
    let ws = loaded.workspaces[0];
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e7);
    let tenant = pick(&mut rng, gen::TENANTS).to_string();
    late_calls(&store, &mut loaded, ws, raw_from, &tenant).await;
    check_pruned(&store, &loaded, seed ^ 3, raw_from).await;
    if sealed > 0 {
        // The pruned hours were marked dirty: they are sealed again from what remains.
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        assert!(store.seal(later).await.unwrap() > 0);
        check_pruned(&store, &loaded, seed ^ 4, raw_from).await;
    }
    // A tenant's and a user's pruned history goes with their raw events.
    erase(&store, &mut loaded, ws, Subject::Tenant(tenant)).await;
    let user = pick(&mut rng, gen::USERS).to_string();
    erase(&store, &mut loaded, ws, Subject::User(user)).await;
    check_pruned(&store, &loaded, seed ^ 2, raw_from).await;
    let versions = store.versions_seen(ws, Default::default()).await.unwrap();
    assert!(
        versions.iter().any(|v| v.first_ms < raw_from),
        "the pruned calls' prompt versions are still seen: {versions:?}"
    );
}

/// Two late calls of `tenant` on the pruned day before `raw_from`: a new call, and a
/// new attempt of a pruned call (a new call too). Both are accepted as new calls.
async fn late_calls(store: &Shared, loaded: &mut Loaded, ws: i64, raw_from: i64, tenant: &str) {
    let pruned_id = loaded
        .reference
        .matching(ws, Some((i64::MIN, raw_from)), None)
        .find_map(|c| c.id.clone())
        .expect("a pruned call with an id");
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    let text = |id: &str, attempt: u8, ts: i64| {
        serde_json::json!({"externalRequestId": id, "attempt": attempt, "timestamp": at(ts),
            "provider": "openai", "model": "gpt-4o-mini", "endpointTag": "a",
            "tenantId": tenant, "userId": "late-user", "status": "success",
            "inputTokens": 1000, "outputTokens": 100, "latencyMs": 250})
        .to_string()
    };
    let book = burnrate::price::PriceBook::bundled().unwrap();
    let events = gen::prepare(
        &book,
        &[
            text("late-new-1", 1, raw_from - DAY + 2 * gen::HOUR + 17),
            text(&pruned_id, 9, raw_from - DAY + 3 * gen::HOUR + 5),
        ],
    );
    loaded
        .ingest(
            store,
            gen::Request {
                workspace: ws,
                events,
            },
        )
        .await;
}

/// Random queries after pruning: an answer that says nothing of pruned raw events must
/// equal the reference (which still holds the pruned calls); one that does must have
/// a window starting before `raw_from`. Returns how many answers were exact.
async fn check_pruned(store: &Shared, loaded: &Loaded, seed: u64, raw_from: i64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7e7);
    let mut exact = 0;
    for i in 0..300 {
        let ws = *pick(&mut rng, &loaded.workspaces);
        let query = gen::query(&mut rng);
        let got = store.aggregate(ws, query.clone()).await.unwrap();
        match got.raw_from_ms {
            Some(from) => {
                assert_eq!(from, raw_from, "query {i}");
                assert!(query.from_ms < raw_from, "query {i} {query:?}");
            }
            None => {
                let expected = loaded.reference.answer(ws, &query).unwrap();
                let expected = burnrate::query::Answer {
                    seen: got.seen,
                    ..expected
                };
                assert_eq!(got, expected, "query {i} {query:?}");
                exact += 1;
            }
        }
    }
    exact
}

/// A test pricer: mystery-model (unpriced by the bundled book) at 7 nano-USD per input
/// and 3 per output token; everything else stays unpriced.
fn mystery_cost(model: &str, input: u64, output: u64) -> Option<i64> {
    (model == "mystery-model").then(|| 7 * input as i64 + 3 * output as i64)
}

/// Re-price the unpriced calls of one workspace with a pricer that knows mystery-model:
/// exactly those calls become priced (the count, cost and cost changes as the reference
/// computes them), every answer then equals the reference with those costs, a second
/// run changes nothing. Every backend re-prices (ClickHouse with a re-priced copy of
/// the winning attempt).
pub async fn repricing_prices_exactly_the_unpriced_calls_it_can(store: Shared, seed: u64) {
    let mut loaded = load(&store, seed, 600).await;
    let ws = loaded.workspaces[0];
    let pricer: burnrate::store::Pricer = std::sync::Arc::new(|e| {
        let cost = mystery_cost(&e.model, e.input_tokens, e.output_tokens)?;
        Some(burnrate::event::Pricing {
            cost: Some(burnrate::money::Usd(cost)),
            source: Some(burnrate::event::CostSource::Catalog),
            price_entry_id: Some("test:mystery-model".into()),
            price_book_version: Some("test".into()),
        })
    });
    // Everything but the last day: the window must count.
    let scope = burnrate::store::RepriceScope {
        from_ms: i64::MIN,
        to_ms: START + 2 * DAY,
        model: None,
        target: burnrate::store::RepriceTarget::Unpriced,
        dry_run: false,
    };
    let outcome = store
        .reprice_unpriced(ws, scope.clone(), pricer.clone(), START + 5 * DAY)
        .await
        .unwrap();
    let (mut repriced, mut cost, mut still) = (0u64, 0i64, 0u64);
    for c in loaded.reference.calls.iter_mut() {
        let in_scope = c.workspace == ws && c.ts() < scope.to_ms && c.pricing.cost.is_none();
        if !in_scope {
            continue;
        }
        let e = &c.event;
        match mystery_cost(&e.model, e.tokens.input, e.tokens.output) {
            Some(nanos) => {
                repriced += 1;
                cost += nanos;
                c.pricing.cost = Some(burnrate::money::Usd(nanos));
            }
            None => still += 1,
        }
    }
    assert!(
        repriced > 5,
        "the scenario has unpriced mystery-model calls"
    );
    assert_eq!(
        (outcome.repriced, outcome.cost_nanos, outcome.still_unpriced),
        (repriced, cost, still)
    );
    assert_eq!(outcome.effects.len() as u64, repriced);
    let delta: i64 = outcome.effects.iter().map(|e| e.cost_delta).sum();
    let unpriced: i64 = outcome.effects.iter().map(|e| e.unpriced_delta).sum();
    assert_eq!((delta, unpriced), (cost, -(repriced as i64)));
    assert!(outcome.seq > loaded.last_seq);
    loaded.last_seq = outcome.seq;
    check_queries(&store, &loaded, seed, 150).await;
    let again = store
        .reprice_unpriced(ws, scope, pricer, START + 5 * DAY)
        .await
        .unwrap();
    assert_eq!((again.repriced, again.still_unpriced), (0, still));
}

/// A test correction: every call gets `a` nano-USD per input and `b` per output token
/// plus 1 (never 0, so a free call changes too), under entry `entry`.
fn corrector(a: i64, b: i64, entry: &'static str) -> burnrate::store::Pricer {
    std::sync::Arc::new(move |e| {
        Some(burnrate::event::Pricing {
            cost: Some(burnrate::money::Usd(
                a * e.input_tokens as i64 + b * e.output_tokens as i64 + 1,
            )),
            source: Some(burnrate::event::CostSource::Catalog),
            price_entry_id: Some(entry.into()),
            price_book_version: Some("test".into()),
        })
    })
}

/// Correct, in the reference, the calls of `ws` priced with `entry` before `to_ms`:
/// returns (calls changed, cost before, cost after).
fn correct_reference(
    loaded: &mut Loaded,
    ws: i64,
    entry: &str,
    to_ms: i64,
    (a, b, new_entry): (i64, i64, &str),
) -> (u64, i64, i64) {
    let (mut n, mut before, mut after) = (0, 0, 0);
    for c in loaded.reference.calls.iter_mut() {
        let hit = c.workspace == ws
            && c.ts() < to_ms
            && c.pricing.cost.is_some()
            && c.pricing.price_entry_id.as_deref() == Some(entry);
        if !hit {
            continue;
        }
        let e = &c.event;
        let cost = a * e.tokens.input as i64 + b * e.tokens.output as i64 + 1;
        n += 1;
        before += c.pricing.cost.unwrap().0;
        after += cost;
        c.pricing.cost = Some(burnrate::money::Usd(cost));
        c.pricing.price_entry_id = Some(new_entry.into());
        c.pricing.price_book_version = Some("test".into());
    }
    (n, before, after)
}

/// The deliberate correction of priced calls (target `Entry`): a dry run reports what
/// the commit then does and changes nothing; the commit re-prices exactly the calls of
/// the entry in the window (costs before and after, cost changes for the budgets as the
/// reference computes them); a correction of the corrected calls works again (on
/// ClickHouse a copy of a copy); every answer then equals the reference.
pub async fn correction_reprices_exactly_the_calls_of_one_entry(store: Shared, seed: u64) {
    use burnrate::store::{RepriceScope, RepriceTarget};
    let mut loaded = load(&store, seed, 600).await;
    let ws = loaded.workspaces[0];
    let to_ms = START + 2 * DAY;
    // The entry that priced the most calls of the window.
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for c in &loaded.reference.calls {
        if let (Some(entry), Some(_)) = (&c.pricing.price_entry_id, c.pricing.cost) {
            if c.workspace == ws && c.ts() < to_ms {
                *counts.entry(entry.clone()).or_default() += 1;
            }
        }
    }
    let (entry, _) = counts.into_iter().max_by_key(|(_, n)| *n).unwrap();
    let scope = |target: RepriceTarget, dry_run: bool| RepriceScope {
        from_ms: i64::MIN,
        to_ms,
        model: None,
        target,
        dry_run,
    };
    let first = corrector(11, 13, "test:corrected");
    let target = RepriceTarget::Entry(entry.clone());
    let dry = store
        .reprice_unpriced(
            ws,
            scope(target.clone(), true),
            first.clone(),
            START + 5 * DAY,
        )
        .await
        .unwrap();
    let done = store
        .reprice_unpriced(ws, scope(target, false), first, START + 5 * DAY)
        .await
        .unwrap();
    let (n, before, after) =
        correct_reference(&mut loaded, ws, &entry, to_ms, (11, 13, "test:corrected"));
    assert!(n > 5, "the scenario has calls priced with {entry}");
    for (outcome, what) in [(&dry, "dry run"), (&done, "commit")] {
        assert_eq!(
            (
                outcome.repriced,
                outcome.cost_before_nanos,
                outcome.cost_nanos,
                outcome.unchanged
            ),
            (n, before, after, 0),
            "{what}"
        );
        let delta: i64 = outcome.effects.iter().map(|e| e.cost_delta).sum();
        let unpriced: i64 = outcome.effects.iter().map(|e| e.unpriced_delta).sum();
        assert_eq!((delta, unpriced), (after - before, 0), "{what}");
    }
    assert_eq!(dry.seq, 0, "a dry run commits nothing");
    assert!(done.seq > loaded.last_seq);
    loaded.last_seq = done.seq;
    // The corrected calls again: a correction of a correction.
    let second = corrector(17, 2, "test:corrected-again");
    let again = store
        .reprice_unpriced(
            ws,
            scope(RepriceTarget::Entry("test:corrected".into()), false),
            second,
            START + 6 * DAY,
        )
        .await
        .unwrap();
    let (n2, before2, after2) = correct_reference(
        &mut loaded,
        ws,
        "test:corrected",
        to_ms,
        (17, 2, "test:corrected-again"),
    );
    assert_eq!(
        (again.repriced, again.cost_before_nanos, again.cost_nanos),
        (n2, before2, after2)
    );
    assert_eq!((n2, before2), (n, after));
    check_queries(&store, &loaded, seed, 150).await;
    // The same book again changes nothing: every call is priced as it is.
    let same = store
        .reprice_unpriced(
            ws,
            scope(RepriceTarget::Entry("test:corrected-again".into()), false),
            corrector(17, 2, "test:corrected-again"),
            START + 7 * DAY,
        )
        .await
        .unwrap();
    assert_eq!((same.repriced, same.unchanged, same.seq), (0, n, 0));
}

/// When a call was re-priced, as the store reads it back (ms).
fn repriced_ms(call: &burnrate::store::StoredEvent) -> Option<i64> {
    call.repriced_at
        .as_deref()
        .map(|t| t.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

/// `repricedAt` on every backend: a copied call (`burnrate migrate`) keeps the time the
/// first store re-priced it, with its price; a call re-priced here has the re-pricing's
/// time; and when a better attempt of a re-priced call arrives, the call carries that
/// attempt's own price and no `repricedAt`.
pub async fn repriced_at_is_kept_by_copies_and_dropped_by_a_better_attempt(
    store: Shared,
    _seed: u64,
) {
    let ws = store.create_workspace("repriced".into()).await.unwrap().id;
    let book = burnrate::price::PriceBook::bundled().unwrap();
    let text = |id: &str, attempt: u8, status: &str| {
        serde_json::json!({"externalRequestId": id, "attempt": attempt,
            "timestamp": "2026-01-05T00:10:00Z", "provider": "selfhosted",
            "model": "mystery-model", "endpointTag": "a", "status": status,
            "inputTokens": 1000, "outputTokens": 100})
        .to_string()
    };
    // A copied call, priced and re-priced in the store it comes from.
    let mut copied = gen::prepare(&book, &[text("copied-1", 1, "success")]);
    copied[0].pricing.cost = Some(burnrate::money::Usd(7_300));
    copied[0].copied = Some(burnrate::event::Copied {
        received_at_ms: START,
        idless_id: None,
        repriced_at_ms: Some(START + DAY + 123),
    });
    // A failed attempt with usage, stored unpriced (no price for mystery-model).
    let failed = gen::prepare(&book, &[text("fresh-1", 1, "error")]);
    assert_eq!(failed[0].pricing.cost, None);
    store.ingest(ws, copied).await.unwrap();
    store.ingest(ws, failed).await.unwrap();
    let pricer: burnrate::store::Pricer = std::sync::Arc::new(|e| {
        Some(burnrate::event::Pricing {
            cost: Some(burnrate::money::Usd(mystery_cost(
                &e.model,
                e.input_tokens,
                e.output_tokens,
            )?)),
            source: Some(burnrate::event::CostSource::Catalog),
            price_entry_id: Some("test:mystery-model".into()),
            price_book_version: Some("test".into()),
        })
    });
    let scope = burnrate::store::RepriceScope {
        from_ms: i64::MIN,
        to_ms: i64::MAX,
        model: None,
        target: burnrate::store::RepriceTarget::Unpriced,
        dry_run: false,
    };
    let at = START + 2 * DAY + 456;
    let outcome = store.reprice_unpriced(ws, scope, pricer, at).await.unwrap();
    assert_eq!(outcome.repriced, 1, "only fresh-1 was unpriced");
    let calls = |store: Shared| async move {
        let page = store
            .events(
                ws,
                burnrate::store::EventQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut calls = page.events;
        calls.sort_by(|a, b| a.external_request_id.cmp(&b.external_request_id));
        calls
    };
    let read = calls(store.clone()).await;
    // 7 nano-USD per input token and 3 per output token: 7,000 + 300.
    let got: Vec<_> = read
        .iter()
        .map(|c| {
            (
                c.external_request_id.as_str(),
                c.cost_usd.map(|u| u.0),
                repriced_ms(c),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("copied-1", Some(7_300), Some(START + DAY + 123)),
            ("fresh-1", Some(7_300), Some(at)),
        ]
    );
    // Attempt 2 succeeded: it wins (usage, then success) and was never re-priced.
    let better = gen::prepare(&book, &[text("fresh-1", 2, "success")]);
    store.ingest(ws, better).await.unwrap();
    let read = calls(store.clone()).await;
    let fresh = &read[1];
    assert_eq!(
        (fresh.attempt, fresh.cost_usd, repriced_ms(fresh)),
        (2, None, None),
        "{fresh:?}"
    );
}

/// Erasure in sealed hours: every hour sealed, then a tenant and a user erased; answers
/// equal the reference without their calls at once (the erased calls' hours read raw
/// until resealed) and after the hours are sealed again. A backend that seals must
/// reseal the erased calls' hours, and only after that find every hour clean.
pub async fn erasure_in_sealed_hours_is_exact(store: Shared, seed: u64) {
    let mut loaded = load(&store, seed, 600).await;
    let later = gen::NOW + 10 * DAY;
    let sealed = store.seal(later).await.unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5ea1);
    let ws = loaded.workspaces[0];
    let tenant = pick(&mut rng, gen::TENANTS).to_string();
    erase(&store, &mut loaded, ws, Subject::Tenant(tenant)).await;
    let user = pick(&mut rng, gen::USERS).to_string();
    erase(&store, &mut loaded, ws, Subject::User(user)).await;
    check_queries(&store, &loaded, seed, 150).await;
    if sealed == 0 {
        assert_eq!(store.seal(later).await.unwrap(), 0);
        return;
    }
    // Past the clock-skew margin (5 s) the erased calls' hours are sealed again.
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let resealed = store.seal(later).await.unwrap();
    assert!(resealed > 0 && resealed < sealed, "{resealed} of {sealed}");
    assert_eq!(store.seal(later).await.unwrap(), 0, "all hours are clean");
    check_queries(&store, &loaded, seed ^ 1, 150).await;
}
