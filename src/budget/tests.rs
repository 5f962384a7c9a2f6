//! Budgets at frozen times: validation, thresholds, forecasts, the counters and the guard.

use super::counters::{Counters, GuardRequest, RateCap};
use super::*;
use crate::store::SpendEffect;
use serde_json::json;

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn budget(body: serde_json::Value) -> Budget {
    parse_budget(1, &body).expect("valid budget")
}

fn usd(s: &str) -> i64 {
    Usd::parse(s).unwrap().nanos()
}

fn effect(tenant: &str, at: &str, cost: &str, id: Option<&str>) -> SpendEffect {
    SpendEffect {
        workspace: 1,
        external_request_id: id.map(str::to_string),
        ts_ms: ms(at),
        environment: Environment::Prod,
        data_mode: DataMode::Real,
        endpoint_tag: "support.reply".into(),
        tenant_id: Some(tenant.into()),
        user_id: None,
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        tags: Default::default(),
        cost_delta: usd(cost),
        unpriced_delta: 0,
        new_call_cost: Some(usd(cost)),
    }
}

fn guard_req(tenant: &str, estimate: Option<&str>, id: Option<&str>) -> GuardRequest {
    GuardRequest {
        endpoint_tag: "support.reply".into(),
        tenant_id: Some(tenant.into()),
        estimate: estimate.map(usd),
        external_request_id: id.map(str::to_string),
        ..GuardRequest::default()
    }
}

/// Counters holding one loaded budget (nothing spent yet at `start`).
fn live(b: &Budget, now: i64) -> Counters {
    let counters = Counters::new(600_000);
    counters.configure(1, vec![b.clone()], vec![]);
    counters.load(1, b.id, b.window(now).0, 0, 0);
    counters
}

#[test]
fn bad_definitions_name_their_fields() {
    let cases = [
        (
            json!({"name": "a", "period": "day", "limitUsd": -5}),
            "limitUsd",
        ),
        (
            json!({"name": "a", "period": "daily", "limitUsd": 5}),
            "period",
        ),
        (
            json!({"name": "a", "period": "day", "limitUsd": 5, "scope": {"team": "x"}}),
            "scope.team",
        ),
        (
            json!({"name": "a", "period": "day", "limitUsd": 5, "thresholds": [50, 120]}),
            "thresholds[1]",
        ),
        (
            json!({"name": "a", "period": "day", "limitUsd": 5, "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (
            json!({"name": "a", "period": "day", "limitUsd": 5, "action": "stop"}),
            "action",
        ),
        (json!({"period": "day", "limitUsd": 5}), "name"),
    ];
    for (body, field) in cases {
        let errors = parse_budget(0, &body).unwrap_err();
        assert!(
            errors.iter().any(|e| e.field == field),
            "{body} should name {field}: {errors:?}"
        );
    }
}

#[test]
fn a_definition_reads_back_from_its_own_json() {
    let b = budget(json!({
        "name": "alpha monthly", "period": "month", "limitUsd": "500.10",
        "scope": {"tenantId": "alpha", "tag:team": "search", "dataMode": "test"},
        "thresholds": [95, 50, 80], "action": "block", "failMode": "closed",
        "timezone": "Europe/Berlin"
    }));
    assert_eq!(b.limit_usd.nanos(), 500_100_000_000);
    assert_eq!(b.thresholds, vec![50.0, 80.0, 95.0]);
    assert_eq!(b.scope.data_mode, DataMode::Test);
    let mut stored = serde_json::to_value(&b).unwrap();
    stored.as_object_mut().unwrap().remove("id");
    assert_eq!(parse_budget(1, &stored).unwrap(), b);
}

#[test]
fn thresholds_give_warning_then_exceeded() {
    let b = budget(json!({"name": "d", "period": "day", "limitUsd": 10, "thresholds": [50, 80]}));
    assert_eq!(state_of(&b, usd("4.99")), (State::Ok, None));
    assert_eq!(state_of(&b, usd("5")), (State::Warning, Some(50.0)));
    assert_eq!(state_of(&b, usd("8.5")), (State::Warning, Some(80.0)));
    assert_eq!(state_of(&b, usd("10")).0, State::Exceeded);
}

#[test]
fn run_rate_forecast_and_exhaustion_time() {
    let b = budget(json!({"name": "d", "period": "day", "limitUsd": 10}));
    // $3 in the first 6 hours: $12 by midnight, the $10 reached at 20:00.
    let input = SpendInput {
        spent: usd("3"),
        ..SpendInput::default()
    };
    let s = status(&b, &input, ms("2026-03-18T06:00:00Z"));
    assert_eq!(s.forecast_usd, Usd(usd("12")));
    assert_eq!(s.forecast_method, "run_rate");
    assert_eq!(
        s.projected_exhaustion.as_deref(),
        Some("2026-03-18T20:00:00Z")
    );
    assert_eq!(s.remaining_usd, Usd(usd("7")));
    assert_eq!(s.state, State::Ok);
}

#[test]
fn monthly_forecast_follows_the_weekdays_of_the_last_week() {
    let b = budget(json!({"name": "m", "period": "month", "limitUsd": 1000}));
    // Monday 2026-03-30 00:00: two days left in March (Mon, Tue). Last week's Monday
    // cost $10 and Tuesday $20; weekends $1.
    let trailing = [
        usd("10"),
        usd("20"),
        usd("5"),
        usd("5"),
        usd("5"),
        usd("1"),
        usd("1"),
    ];
    let input = SpendInput {
        spent: usd("300"),
        trailing_days: Some(trailing),
        ..SpendInput::default()
    };
    let s = status(&b, &input, ms("2026-03-30T00:00:00Z"));
    assert_eq!(s.forecast_method, "weekday_trailing_7d");
    assert_eq!(s.forecast_usd, Usd(usd("330")));
    assert_eq!(s.projected_exhaustion, None);
    // With $985 spent, Monday's $10 ends at $995 and Tuesday reaches $1000 at 06:00.
    let input = SpendInput {
        spent: usd("985"),
        trailing_days: Some(trailing),
        ..SpendInput::default()
    };
    let s = status(&b, &input, ms("2026-03-30T00:00:00Z"));
    assert_eq!(
        s.projected_exhaustion.as_deref(),
        Some("2026-03-31T06:00:00Z")
    );
}

#[test]
fn spend_counts_only_in_scope_and_resets_when_the_period_rolls_over() {
    let b = budget(
        json!({"name": "d", "period": "day", "limitUsd": 10, "scope": {"tenantId": "alpha"}}),
    );
    let c = live(&b, ms("2026-03-18T10:00:00Z"));
    c.apply(
        1,
        &[
            effect("alpha", "2026-03-18T10:00:00Z", "4", None),
            effect("beta", "2026-03-18T10:00:01Z", "100", None),
            effect("alpha", "2026-03-18T23:59:59Z", "1", None),
            effect("alpha", "2026-03-19T00:00:30Z", "2", None), // stamped just past midnight
        ],
    );
    let spent = |at: &str| c.position(1, 1, ms(at)).unwrap().0;
    assert_eq!(spent("2026-03-18T23:00:00Z"), usd("5"));
    assert_eq!(
        spent("2026-03-19T00:01:00Z"),
        usd("2"),
        "the new day starts afresh"
    );
}

#[test]
fn a_blocking_budget_denies_what_would_pass_the_limit_and_settles_reservations() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(
        json!({"name": "cap", "period": "day", "limitUsd": 1, "action": "block",
        "scope": {"tenantId": "alpha"}}),
    );
    let c = live(&b, now);
    c.apply(1, &[effect("alpha", "2026-03-18T09:00:00Z", "0.5", None)]);
    let a = c.guard(1, &guard_req("alpha", Some("0.3"), Some("r1")), now);
    assert!(a.allow && a.reserved);
    assert_eq!(a.budgets[0].remaining, Usd(usd("0.5")));
    // 0.5 spent + 0.3 reserved + 0.3 > 1: denied until the period ends (14 h).
    let denied = c.guard(1, &guard_req("alpha", Some("0.3"), Some("r2")), now);
    assert!(!denied.allow);
    assert_eq!(denied.reason, "budget_exceeded");
    assert_eq!(denied.retry_after_seconds, Some(14 * 3600));
    // Other tenants are not in scope.
    assert!(c.guard(1, &guard_req("beta", Some("5"), None), now).allow);
    // The call costs 0.1, not 0.3: settling frees the difference.
    c.apply(
        1,
        &[effect("alpha", "2026-03-18T10:00:01Z", "0.1", Some("r1"))],
    );
    assert_eq!(c.position(1, 1, now).unwrap().1, 0, "reservation settled");
    assert!(
        c.guard(1, &guard_req("alpha", Some("0.3"), Some("r2")), now)
            .allow
    );
}

#[test]
fn unsettled_reservations_lapse_after_their_ttl() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(json!({"name": "cap", "period": "day", "limitUsd": 1, "action": "block"}));
    let c = live(&b, now);
    assert!(
        c.guard(1, &guard_req("a", Some("0.9"), Some("r1")), now)
            .allow
    );
    assert!(
        !c.guard(1, &guard_req("a", Some("0.2"), Some("r2")), now + 1000)
            .allow
    );
    let later = now + 600_000;
    assert!(
        c.guard(1, &guard_req("a", Some("0.2"), Some("r2")), later)
            .allow
    );
    assert_eq!(c.position(1, 1, later).unwrap().1, usd("0.2"));
}

#[test]
fn without_an_estimate_the_guard_uses_the_endpoint_p95() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(json!({"name": "cap", "period": "day", "limitUsd": 100, "action": "block"}));
    let c = live(&b, now);
    let costs: Vec<SpendEffect> = (1..=100)
        .map(|i| effect("a", "2026-03-18T09:00:00Z", &format!("0.{i:03}"), None))
        .collect();
    c.apply(1, &costs);
    let a = c.guard(1, &guard_req("a", None, None), now);
    assert_eq!(a.estimate_source, "endpoint_p95");
    assert_eq!(a.estimated_cost_usd, Usd(usd("0.095")));
}

#[test]
fn a_fail_closed_budget_denies_until_its_spend_is_loaded() {
    let now = ms("2026-03-18T10:00:00Z");
    let closed = budget(
        json!({"name": "c", "period": "day", "limitUsd": 1, "action": "block", "failMode": "closed"}),
    );
    let c = Counters::new(600_000);
    c.configure(1, vec![closed.clone()], vec![]);
    let a = c.guard(1, &guard_req("a", Some("0.01"), None), now);
    assert_eq!((a.allow, a.reason), (false, "budgets_loading"));
    let open = Budget {
        fail_mode: FailMode::Open,
        ..closed
    };
    c.configure(1, vec![open], vec![]);
    assert!(c.guard(1, &guard_req("a", Some("0.01"), None), now).allow);
}

#[test]
fn rate_caps_deny_past_the_requests_per_minute() {
    let now = ms("2026-03-18T10:00:00Z");
    let c = Counters::new(600_000);
    let cap = RateCap {
        id: 7,
        endpoint_tag: "support.reply".into(),
        per_tenant: true,
        requests_per_minute: 3,
    };
    c.configure(1, vec![], vec![cap]);
    for _ in 0..3 {
        assert!(c.guard(1, &guard_req("a", None, None), now).allow);
    }
    let denied = c.guard(1, &guard_req("a", None, None), now);
    assert_eq!((denied.allow, denied.reason), (false, "rate_capped"));
    assert_eq!(
        denied.retry_after_seconds,
        Some(20),
        "one request per 20 s refills"
    );
    assert!(
        c.guard(1, &guard_req("b", None, None), now).allow,
        "per tenant"
    );
    assert!(c.guard(1, &guard_req("a", None, None), now + 20_000).allow);
}

/// spent + reserved + estimate and `reserved += estimate` were unchecked i64: a sum past
/// i64::MAX wrapped negative and a blocking budget allowed every later call. A sum that
/// cannot be held now denies (fails closed), and spend saturates instead of wrapping.
#[test]
fn counter_overflow_fails_closed() {
    let now = ms("2026-03-18T10:00:00Z");
    let max = "9223372036.854775807"; // i64::MAX nano-USD, the largest limitUsd
    let b = budget(json!({"name": "cap", "period": "day", "limitUsd": max, "action": "block"}));

    // Reservations: the first fills the limit exactly, the next one's sum overflows.
    let c = live(&b, now);
    let first = c.guard(1, &guard_req("a", Some("9223372036"), Some("r1")), now);
    assert!(first.allow && first.reserved);
    let next = c.guard(1, &guard_req("a", Some("1"), Some("r2")), now);
    assert_eq!((next.allow, next.reason), (false, "budget_exceeded"));
    assert!(!next.reserved);
    assert_eq!(next.budgets[0].remaining, Usd(usd("0.854775807")));
    assert_eq!(c.position(1, 1, now).unwrap().1, usd("9223372036"));

    // Spend: two huge costs saturate at the maximum instead of wrapping negative.
    let c = live(&b, now);
    let mut huge = effect("a", "2026-03-18T09:00:00Z", "0", None);
    huge.cost_delta = i64::MAX - 10;
    c.apply(1, &[huge.clone(), huge.clone()]);
    c.apply(1, &[huge]);
    assert_eq!(c.position(1, 1, now).unwrap().0, i64::MAX);
    let denied = c.guard(1, &guard_req("a", Some("0.000000001"), None), now);
    assert_eq!((denied.allow, denied.reason), (false, "budget_exceeded"));
    assert_eq!(denied.budgets[0].remaining, Usd::ZERO);
    assert_eq!(denied.budgets[0].state, State::Exceeded);
    let status = super::status(
        &b,
        &SpendInput {
            spent: i64::MAX,
            reserved: i64::MAX,
            ..SpendInput::default()
        },
        now,
    );
    assert_eq!(status.remaining_usd, Usd::ZERO);
    assert!(
        status.forecast_usd.nanos() > 0,
        "the forecast saturates too"
    );
}

/// A notify budget never denies, so its reservations can pile up: one that no longer
/// fits is not recorded, and releasing every reservation returns exactly to zero.
#[test]
fn notify_budget_reservations_that_cannot_be_held_are_skipped_exactly() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(json!({"name": "n", "period": "day", "limitUsd": 1, "action": "notify"}));
    let c = live(&b, now);
    let mut big = guard_req("a", None, Some("r1"));
    big.estimate = Some(i64::MAX - 1);
    assert!(c.guard(1, &big, now).allow);
    let second = c.guard(1, &guard_req("a", Some("5"), Some("r2")), now);
    assert!(second.allow, "a notify budget never blocks");
    assert_eq!(c.position(1, 1, now).unwrap().1, i64::MAX - 1);
    c.apply(1, &[effect("a", "2026-03-18T10:00:01Z", "0.1", Some("r2"))]);
    assert_eq!(c.position(1, 1, now).unwrap().1, i64::MAX - 1);
    c.apply(1, &[effect("a", "2026-03-18T10:00:02Z", "0.1", Some("r1"))]);
    assert_eq!(c.position(1, 1, now).unwrap().1, 0);
}

/// A budget for tenant alpha's day, configured but not loaded yet.
fn unloaded() -> (Counters, Budget, i64) {
    let b = budget(json!({"name": "cap", "period": "day", "limitUsd": 100,
        "scope": {"tenantId": "alpha"}}));
    let counters = Counters::new(600_000);
    counters.configure(1, vec![b.clone()], vec![]);
    (counters, b, ms("2026-03-18T10:00:00Z"))
}

#[test]
fn a_commit_the_load_saw_is_not_counted_twice() {
    let (c, b, now) = unloaded();
    let ticket = c.begin_load(1, b.id, b.window(now).0);
    // Commit 5 lands while the store is read, and the read sees it: its $1 is in the
    // loaded total already.
    c.apply(5, &[effect("alpha", "2026-03-18T09:00:00Z", "1", None)]);
    c.finish_load(ticket, usd("1"), 0, 5);
    assert_eq!(c.position(1, b.id, now).unwrap().0, usd("1"));
}

#[test]
fn a_commit_after_the_loads_snapshot_is_added_to_it() {
    let (c, b, now) = unloaded();
    let ticket = c.begin_load(1, b.id, b.window(now).0);
    // The read saw up to commit 5 ($1); commit 6 ($2) arrived during the read.
    c.apply(6, &[effect("alpha", "2026-03-18T09:00:00Z", "2", None)]);
    c.finish_load(ticket, usd("1"), 0, 5);
    assert_eq!(c.position(1, b.id, now).unwrap().0, usd("3"));
    // A late effect of a commit the load included (seq 5) is skipped, a later one counts.
    c.apply(5, &[effect("alpha", "2026-03-18T09:30:00Z", "7", None)]);
    assert_eq!(c.position(1, b.id, now).unwrap().0, usd("3"));
    c.apply(7, &[effect("alpha", "2026-03-18T09:40:00Z", "0.5", None)]);
    assert_eq!(c.position(1, b.id, now).unwrap().0, usd("3.5"));
}

#[test]
fn an_abandoned_load_keeps_nothing_aside() {
    let (c, b, now) = unloaded();
    let ticket = c.begin_load(1, b.id, b.window(now).0);
    c.abandon_load(ticket);
    c.apply(3, &[effect("alpha", "2026-03-18T09:00:00Z", "2", None)]);
    // Finishing an abandoned ticket changes nothing: the budget is still unloaded.
    c.finish_load(ticket, usd("9"), 0, 1);
    let (spent, _, _, loaded) = c.position(1, b.id, now).unwrap();
    assert_eq!((spent, loaded), (usd("2"), false));
}

#[test]
fn a_star_scope_is_a_budget_for_each_member_and_reads_back() {
    let b = budget(json!({"name": "each", "period": "month", "limitUsd": 1,
        "scope": {"tenantId": "*", "endpointTag": "support.reply"},
        "overrides": {"acme": "500"}}));
    assert_eq!(b.scope.each, Some(Each::TenantId));
    assert_eq!(b.scope.tenant_id, None, "not a tenant literally named *");
    assert_eq!(b.overrides["acme"].nanos(), usd("500"));
    let mut stored = serde_json::to_value(&b).unwrap();
    assert_eq!(stored["scope"]["tenantId"], "*");
    stored.as_object_mut().unwrap().remove("id");
    assert_eq!(parse_budget(1, &stored).unwrap(), b);
    let user =
        budget(json!({"name": "u", "period": "day", "limitUsd": 1, "scope": {"userId": "*"}}));
    assert_eq!(user.scope.each, Some(Each::UserId));
}

#[test]
fn wildcards_other_than_one_whole_star_are_refused_naming_the_field() {
    let cases = [
        (json!({"tenantId": "acme*"}), None, "scope.tenantId"),
        (json!({"model": "*"}), None, "scope.model"),
        (
            json!({"tenantId": "*", "userId": "*"}),
            None,
            "scope.userId",
        ),
        (
            json!({"tenantId": "acme"}),
            Some(json!({"x": 1})),
            "overrides",
        ),
        (
            json!({"tenantId": "*"}),
            Some(json!({"x": 0})),
            "overrides.x",
        ),
        (json!({"tenantId": "*"}), Some(json!([1])), "overrides"),
    ];
    for (scope, overrides, field) in cases {
        let mut body = json!({"name": "e", "period": "day", "limitUsd": 1, "scope": scope});
        if let Some(o) = overrides {
            body["overrides"] = o;
        }
        let errors = parse_budget(1, &body).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec![field], "{body}");
    }
}

/// A loaded $1-a-day budget for each tenant (acme has $5).
fn per_tenant(now: i64) -> (Counters, Budget) {
    let b = budget(
        json!({"name": "each", "period": "day", "limitUsd": 1, "action": "block",
        "scope": {"tenantId": "*"}, "overrides": {"acme": 5}}),
    );
    let c = Counters::new(600_000);
    c.configure(1, vec![b.clone()], vec![]);
    let ticket = c.begin_load(1, b.id, b.window(now).0);
    c.finish_member_load(ticket, (0, 0), Default::default(), 0);
    (c, b)
}

#[test]
fn each_tenant_is_capped_separately_including_one_first_seen_later() {
    let now = ms("2026-03-18T10:00:00Z");
    let (c, b) = per_tenant(now);
    c.apply(1, &[effect("alpha", "2026-03-18T09:00:00Z", "1", None)]);
    let alpha = c.guard(1, &guard_req("alpha", Some("0.01"), None), now);
    assert!(!alpha.allow);
    assert_eq!(alpha.reason, "tenant_quota_exceeded");
    let quota = alpha.quota.unwrap();
    assert_eq!(
        (quota.member.as_str(), quota.dimension),
        ("alpha", "tenantId")
    );
    assert_eq!(quota.resets_at, "2026-03-19T00:00:00Z");
    assert_eq!(quota.limit_usd.nanos(), usd("1"));
    let beta = c.guard(1, &guard_req("beta", Some("0.99"), None), now);
    assert!(beta.allow, "beta has spent nothing");
    assert_eq!(beta.budgets[0].remaining.nanos(), usd("1"));
    // A tenant nobody configured, first seen now, has the same cap of its own.
    c.apply(2, &[effect("newco", "2026-03-18T09:30:00Z", "0.6", None)]);
    let newco = c.guard(1, &guard_req("newco", Some("0.5"), None), now);
    assert_eq!(
        (newco.allow, newco.reason),
        (false, "tenant_quota_exceeded")
    );
    // The override: acme has $5.
    c.apply(3, &[effect("acme", "2026-03-18T09:40:00Z", "4", None)]);
    assert!(c.guard(1, &guard_req("acme", Some("1"), None), now).allow);
    assert!(
        !c.guard(1, &guard_req("acme", Some("1.01"), None), now)
            .allow
    );
    assert_eq!(
        c.position(1, b.id, now).unwrap().0,
        usd("5.6"),
        "the budget's total"
    );
}

#[test]
fn a_member_load_adds_only_the_effects_after_its_sequence_to_their_members() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(json!({"name": "each", "period": "day", "limitUsd": 10,
        "scope": {"tenantId": "*"}}));
    let c = Counters::new(600_000);
    c.configure(1, vec![b.clone()], vec![]);
    let ticket = c.begin_load(1, b.id, b.window(now).0);
    // Commit 5 (alpha $1) is in the read; commit 6 (beta $2, alpha $0.5) is not.
    c.apply(5, &[effect("alpha", "2026-03-18T09:00:00Z", "1", None)]);
    c.apply(
        6,
        &[
            effect("beta", "2026-03-18T09:00:00Z", "2", None),
            effect("alpha", "2026-03-18T09:10:00Z", "0.5", None),
        ],
    );
    let read = [("alpha".into(), (usd("1"), 0))].into_iter().collect();
    c.finish_member_load(ticket, (usd("1"), 0), read, 5);
    let spent = |m: &str| c.member_position(1, b.id, m, now).unwrap().0;
    assert_eq!((spent("alpha"), spent("beta")), (usd("1.5"), usd("2")));
    assert_eq!(c.position(1, b.id, now).unwrap().0, usd("3.5"));
    // A late effect of a commit the load saw is skipped; a later one counts once.
    c.apply(5, &[effect("beta", "2026-03-18T09:20:00Z", "7", None)]);
    c.apply(7, &[effect("beta", "2026-03-18T09:30:00Z", "0.25", None)]);
    assert_eq!(spent("beta"), usd("2.25"));
    // A replacing retry under another tenant: taken back from alpha, booked to gamma.
    let mut back = effect("alpha", "2026-03-18T09:10:00Z", "0", None);
    back.cost_delta = -usd("0.5");
    back.new_call_cost = None;
    c.apply(
        8,
        &[back, effect("gamma", "2026-03-18T09:10:00Z", "0.5", None)],
    );
    assert_eq!((spent("alpha"), spent("gamma")), (usd("1"), usd("0.5")));
}

#[test]
fn reservations_are_held_per_member_and_released_by_the_call() {
    let now = ms("2026-03-18T10:00:00Z");
    let (c, b) = per_tenant(now);
    assert!(
        c.guard(1, &guard_req("alpha", Some("0.8"), Some("r1")), now)
            .allow
    );
    assert!(
        !c.guard(1, &guard_req("alpha", Some("0.3"), Some("r2")), now)
            .allow
    );
    assert!(
        c.guard(1, &guard_req("beta", Some("0.3"), Some("r3")), now)
            .allow
    );
    assert_eq!(
        c.member_position(1, b.id, "alpha", now).unwrap().1,
        usd("0.8")
    );
    c.apply(
        1,
        &[effect("alpha", "2026-03-18T09:00:00Z", "0.7", Some("r1"))],
    );
    assert_eq!(
        c.member_position(1, b.id, "alpha", now).unwrap(),
        (usd("0.7"), 0, 0)
    );
    assert_eq!(
        c.member_position(1, b.id, "beta", now).unwrap().1,
        usd("0.3")
    );
}

#[test]
fn ingest_states_name_a_per_member_budget_by_its_touched_members() {
    let now = ms("2026-03-18T10:00:00Z");
    let (c, b) = per_tenant(now);
    c.apply(1, &[effect("alpha", "2026-03-18T09:00:00Z", "1", None)]);
    c.apply(1, &[effect("beta", "2026-03-18T09:00:00Z", "0.9", None)]);
    let hit = |m: &str| (b.id, Some(m.into()));
    assert_eq!(c.states(1, &[hit("gamma")], now), (vec![], vec![]));
    assert_eq!(c.states(1, &[hit("beta")], now), (vec![b.id], vec![]));
    assert_eq!(
        c.states(1, &[hit("beta"), hit("alpha")], now),
        (vec![], vec![b.id])
    );
}

#[test]
fn member_status_pages_the_over_and_near_members_most_over_first() {
    let now = ms("2026-03-18T10:00:00Z");
    let (c, b) = per_tenant(now);
    let spend = [
        ("alpha", "1"),
        ("beta", "0.9"),
        ("gamma", "0.5"),
        ("acme", "5"),
        ("delta", "2"),
    ];
    for (n, (tenant, cost)) in spend.into_iter().enumerate() {
        c.apply(
            n as u64 + 1,
            &[effect(tenant, "2026-03-18T09:00:00Z", cost, None)],
        );
    }
    let first = c.members(1, b.id, now, 0, 2).unwrap();
    assert_eq!((first.count, first.over, first.near), (5, 3, 1));
    let names = |m: &Members| m.page.iter().map(|p| p.member.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), vec!["delta", "acme"]);
    assert_eq!(first.page[0].state, State::Exceeded);
    assert_eq!(first.page[0].used_pct, 200.0);
    assert_eq!(first.page[1].limit_usd.nanos(), usd("5"));
    assert_eq!(first.next_offset, Some(2));
    let second = c.members(1, b.id, now, 2, 2).unwrap();
    assert_eq!(names(&second), vec!["alpha", "beta"]);
    assert_eq!(second.page[1].state, State::Warning);
    assert_eq!(second.next_offset, None);
}

fn stored(id: i64, body: serde_json::Value) -> crate::store::StoredObject {
    crate::store::StoredObject {
        id,
        workspace: 1,
        body,
        created_ms: 0,
        updated_ms: 0,
    }
}

#[test]
fn plan_batches_apply_in_written_order_and_a_fold_sorts_where_its_last_batch_did() {
    let batch = |rows: &[(&str, Option<&str>)]| {
        let rows: Vec<plans::Assignment> = rows
            .iter()
            .map(|(t, p)| (t.to_string(), p.map(str::to_string), None))
            .collect();
        plans::batch(&rows)
    };
    let a = stored(1, batch(&[("acme", Some("pro")), ("beta", Some("free"))]));
    let b = stored(2, batch(&[("acme", Some("enterprise")), ("beta", None)]));
    let c = stored(3, batch(&[("gamma", Some("free"))]));
    assert_eq!(b.body["assignments"], "acme\tenterprise\nbeta\t\n");
    let map = plans::fold(&[c.clone(), b.clone(), a.clone()], 0);
    assert_eq!(map.get("acme").map(|p| &**p), Some("enterprise"));
    assert_eq!(map.get("beta"), None, "null takes beta off its plan");
    // Batches 1 and 2 folded into object 9 while batch 3 was written: 3 still wins
    // over what the fold holds, because the fold sorts at 2, not at 9.
    let late = stored(3, batch(&[("acme", Some("free"))]));
    let fold = stored(9, plans::folded(&[a, b]));
    assert_eq!(fold.body["upTo"], 2);
    let map = plans::fold(&[fold, late], 0);
    assert_eq!(map.get("acme").map(|p| &**p), Some("free"));
}

#[test]
fn a_plans_csv_reads_assignments_and_names_every_bad_line() {
    let rows = plans::parse_csv("tenantId,plan\nacme,pro\n\"a,b\",free\nold,\n").unwrap();
    assert_eq!(
        rows,
        vec![
            ("acme".to_string(), Some("pro".to_string()), None),
            ("a,b".to_string(), Some("free".to_string()), None),
            ("old".to_string(), None, None),
        ]
    );
    let errors = plans::parse_csv("tenantId,plan\nacme\nx,pro plan\n").unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["line 2", "line 3"]);
    let errors = plans::parse_csv("tenant,plan\nacme,pro\n").unwrap_err();
    assert_eq!(errors[0].field, "line 1");
}

#[test]
fn an_override_beats_the_plan_limit_which_beats_the_default() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(
        json!({"name": "each", "period": "month", "limitUsd": 10, "action": "block",
        "scope": {"tenantId": "*"}, "overrides": {"acme": 500},
        "planLimits": {"free": 1, "pro": 50, "enterprise": null}}),
    );
    assert_eq!(b.member_limit(Some("acme"), Some("free")), Some(usd("500")));
    assert_eq!(b.member_limit(Some("x"), Some("pro")), Some(usd("50")));
    assert_eq!(b.member_limit(Some("x"), Some("enterprise")), None);
    assert_eq!(b.member_limit(Some("x"), Some("unlisted")), Some(usd("10")));
    assert_eq!(b.member_limit(Some("x"), None), Some(usd("10")));
    let c = Counters::new(600_000);
    c.configure(1, vec![b.clone()], vec![]);
    let plans: plans::PlanMap = [
        ("f".into(), "free".into()),
        ("e".into(), "enterprise".into()),
    ]
    .into_iter()
    .collect();
    c.set_plans(1, std::sync::Arc::new(plans));
    let ticket = c.begin_load(1, b.id, b.window(now).0);
    c.finish_member_load(ticket, (0, 0), Default::default(), 0);
    let free = c.guard(1, &guard_req("f", Some("2"), None), now);
    assert_eq!((free.allow, free.reason), (false, "tenant_quota_exceeded"));
    assert_eq!(free.quota.unwrap().plan.as_deref(), Some("free"));
    let enterprise = c.guard(1, &guard_req("e", Some("9000"), None), now);
    assert!(
        enterprise.allow && enterprise.budgets.is_empty(),
        "no limit on enterprise"
    );
    assert!(c.guard(1, &guard_req("none", Some("10"), None), now).allow);
    assert!(
        !c.guard(1, &guard_req("none", Some("10.01"), None), now)
            .allow
    );
}

#[test]
fn plan_limits_need_a_budget_for_each_tenant() {
    let errors = parse_budget(
        1,
        &json!({"name": "u", "period": "day", "limitUsd": 1, "scope": {"userId": "*"},
                "planLimits": {"free": 1}}),
    )
    .unwrap_err();
    assert_eq!(errors[0].field, "planLimits");
    let errors = parse_budget(
        1,
        &json!({"name": "t", "period": "day", "limitUsd": 1, "scope": {"tenantId": "*"},
                "planLimits": {"free": -1, "bad plan": 1}}),
    )
    .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["planLimits.bad plan", "planLimits.free"]);
}

#[test]
fn with_two_nodes_a_blocking_budget_admits_only_this_nodes_share_of_what_is_left() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(
        json!({"name": "cap", "period": "day", "limitUsd": 10, "action": "block",
        "scope": {"tenantId": "alpha"}}),
    );
    let c = Counters::new(600_000);
    c.set_nodes(2);
    c.configure(1, vec![b.clone()], vec![]);
    // $4 spent by anyone when loaded: this node may take half of the $6 left.
    c.load(1, b.id, b.window(now).0, usd("4"), 0);
    for i in 0..6 {
        let id = format!("r{i}");
        assert!(
            c.guard(1, &guard_req("alpha", Some("0.5"), Some(&id)), now)
                .allow,
            "{i}"
        );
    }
    let denied = c.guard(1, &guard_req("alpha", Some("0.5"), Some("r6")), now);
    assert!(!denied.allow);
    assert_eq!(denied.reason, "budget_exceeded");
    assert_eq!(
        denied.retry_after_seconds,
        Some(2),
        "the next load shares out again"
    );
    // The next load sees the other node's $3 too: nothing left to share.
    c.load(1, b.id, b.window(now).0, usd("10"), 0);
    let denied = c.guard(1, &guard_req("alpha", Some("0.5"), Some("r7")), now);
    assert_eq!(
        denied.retry_after_seconds,
        Some(14 * 3600),
        "the budget itself is spent"
    );
    // Alone again, all that is left is this node's: $4 spent and its $3 reserved.
    c.set_nodes(1);
    c.load(1, b.id, b.window(now).0, usd("4"), 0);
    for i in 10..16 {
        let id = format!("r{i}");
        assert!(
            c.guard(1, &guard_req("alpha", Some("0.5"), Some(&id)), now)
                .allow,
            "{i}"
        );
    }
    let denied = c.guard(1, &guard_req("alpha", Some("0.5"), Some("r16")), now);
    assert_eq!(denied.retry_after_seconds, Some(14 * 3600));
}

#[test]
fn with_two_nodes_each_member_of_a_per_member_budget_gets_this_nodes_share() {
    let now = ms("2026-03-18T10:00:00Z");
    let b = budget(
        json!({"name": "each", "period": "day", "limitUsd": 1, "action": "block",
        "scope": {"tenantId": "*"}}),
    );
    let c = Counters::new(600_000);
    c.set_nodes(2);
    c.configure(1, vec![b.clone()], vec![]);
    let ticket = c.begin_load(1, b.id, b.window(now).0);
    let members = [("alpha".into(), (usd("0.4"), 0))].into_iter().collect();
    c.finish_member_load(ticket, (usd("0.4"), 0), members, 0);
    // alpha read $0.40 of its $1: this node may take half of the $0.60 left.
    let admitted = |tenant: &str| {
        (0..10)
            .take_while(|i| {
                let id = format!("{tenant}-{i}");
                c.guard(1, &guard_req(tenant, Some("0.1"), Some(&id)), now)
                    .allow
            })
            .count()
    };
    assert_eq!(admitted("alpha"), 3);
    let denied = c.guard(1, &guard_req("alpha", Some("0.1"), Some("x")), now);
    assert_eq!(
        denied.retry_after_seconds,
        Some(2),
        "this node's share, not the cap"
    );
    // beta had spent nothing: half of its own $1.
    assert_eq!(admitted("beta"), 5);
}

#[test]
fn with_two_nodes_a_rate_cap_admits_half_its_requests_per_minute_on_each() {
    let now = ms("2026-03-18T10:00:00Z");
    let c = Counters::new(600_000);
    c.set_nodes(2);
    let cap = RateCap {
        id: 7,
        endpoint_tag: "support.reply".into(),
        per_tenant: false,
        requests_per_minute: 10,
    };
    c.configure(1, vec![], vec![cap]);
    let admitted = (0..20)
        .filter(|_| c.guard(1, &guard_req("a", None, None), now).allow)
        .count();
    assert_eq!(admitted, 5);
    // A cap smaller than the nodes still lets one a minute through on each.
    let c = Counters::new(600_000);
    c.set_nodes(3);
    let cap = RateCap {
        id: 8,
        endpoint_tag: "support.reply".into(),
        per_tenant: false,
        requests_per_minute: 1,
    };
    c.configure(1, vec![], vec![cap]);
    assert!(c.guard(1, &guard_req("a", None, None), now).allow);
    assert!(!c.guard(1, &guard_req("a", None, None), now).allow);
}

#[test]
fn a_budget_is_listed_by_the_guard_only_once_it_is_enforced() {
    let now = ms("2026-03-18T10:00:00Z");
    let open = budget(
        json!({"name": "open", "period": "day", "limitUsd": 10, "action": "block",
        "scope": {"tenantId": "alpha"}}),
    );
    let mut closed = budget(
        json!({"name": "closed", "period": "day", "limitUsd": 10, "action": "block",
        "failMode": "closed", "scope": {"tenantId": "alpha"}}),
    );
    closed.id = open.id + 1;
    let c = Counters::new(600_000);
    c.configure(1, vec![open.clone(), closed.clone()], vec![]);
    assert!(!c.holds_loaded(1, &open));
    // Loading: the fail-open budget is not listed (its spend is unknown), the
    // fail-closed one is, refusing.
    let answer = c.guard(1, &guard_req("alpha", Some("0.5"), None), now);
    let listed: Vec<i64> = answer.budgets.iter().map(|b| b.id).collect();
    assert_eq!(listed, vec![closed.id]);
    assert_eq!(answer.reason, "budgets_loading");
    c.load(1, open.id, open.window(now).0, 0, 0);
    c.load(1, closed.id, closed.window(now).0, 0, 0);
    assert!(c.holds_loaded(1, &open));
    let answer = c.guard(1, &guard_req("alpha", Some("0.5"), None), now);
    let listed: Vec<i64> = answer.budgets.iter().map(|b| b.id).collect();
    assert_eq!(listed, vec![open.id, closed.id]);
    assert!(answer.allow);
}

/// A node that has not yet counted a node that joined (its last tick saw itself alone)
/// creates a blocking budget: the load counts the nodes first, so this node admits only
/// its half of the $10 ($5: ten $0.50 calls), not the whole budget.
#[tokio::test]
async fn a_blocking_budget_loaded_between_ticks_is_shared_by_the_nodes_counted_at_its_load() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("share.db").display());
    let store = crate::store::open(&url).unwrap();
    let ws = store.workspace("default".into()).await.unwrap().unwrap().id;
    let now = jiff::Timestamp::now().as_millisecond();
    let clock: crate::clock::Clock = std::sync::Arc::new(move || now);
    let budgets = service::Budgets::start(store.clone(), 600_000, clock)
        .await
        .unwrap();
    assert_eq!(budgets.counters.nodes(), 1, "alone at its last tick");
    budgets.count_nodes_with(std::sync::Arc::new(|| Box::pin(async { Ok(2) })));
    let body = json!({"name": "cap", "period": "month", "limitUsd": 10, "action": "block",
                      "scope": {"tenantId": "alpha"}});
    budgets.save(ws, None, &body).await.unwrap();
    assert_eq!(budgets.counters.nodes(), 2);
    for i in 0..10 {
        let id = format!("r{i}");
        let answer = budgets
            .counters
            .guard(ws, &guard_req("alpha", Some("0.5"), Some(&id)), now);
        assert!(answer.allow, "{i}: {}", answer.reason);
    }
    let denied = budgets
        .counters
        .guard(ws, &guard_req("alpha", Some("0.5"), Some("r10")), now);
    assert!(!denied.allow);
    assert_eq!(
        (denied.reason, denied.retry_after_seconds),
        ("budget_exceeded", Some(2)),
        "this node's share, not the budget, is used up"
    );
    store.close().await;
}
