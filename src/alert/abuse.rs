//! The abuse rules (seed 002: bots, leaked keys, unknown-user bursts), read like the
//! others through the aggregate query layer with seasonal baselines (`baseline`: the same
//! window on earlier comparable days, median and MAD):
//! - `new_user_burst`: the spend of new users (no calls in the 7 UTC days before the
//!   window's day) and of calls without a userId, far above what such users usually
//!   spend at this hour;
//! - `spend_jump`: one tenant or user whose spend in the window jumps over its own usual
//!   spend at this hour.
//!
//! Both read top lists (the window's biggest users or tenants by cost) and then only
//! those groups in other windows. `new_user_burst` tells new users from returning ones
//! with a `SeenIndex` (users by day over the 22 days before today, one aggregate, kept
//! for the hour), so an evaluation reads no look-back history. `spend_jump` stops after
//! one query when nothing in the window is worth `minUsd`.

use super::baseline::{comparable, Baseline, DAYS};
use super::rules::{
    baseline, drivers, evidence_window, link, same_window_earlier, scoped, share_pct, total, usd,
    Context, DAY_MS,
};
use super::{Finding, RuleSettings, Severity};
use crate::money::Usd;
use crate::notify::Driver;
use crate::query::{Bucket, Dimension, Measure, Query, Row, Sums, MAX_LIMIT};
use crate::report::by_cost;
use crate::store::{Result, WorkspaceId};
use serde_json::json;
use std::sync::Arc;

/// How many of a window's biggest tenants (and users) `spend_jump` looks at: a jump worth
/// `minUsd` is among the biggest spenders of its hour unless a hundred others each spent
/// more.
const JUMP_TOP: usize = 100;

/// Findings of `spend_jump` per dimension and evaluation, the largest jumps (above their
/// usual spend) first.
const JUMP_FINDINGS: usize = 5;

/// Days looked back to tell a new user from a returning one.
const SEEN_DAYS: i64 = 7;

/// The spend of new and unknown users in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Newcomers {
    /// Their calls and cost together.
    pub sums: Sums,
    /// How many distinct new users (the calls without a userId are not counted here).
    pub users: usize,
    /// The calls without a userId.
    pub unknown: Sums,
    /// The biggest of them by cost (the unknown bucket under its label), at most three.
    pub top: Vec<(String, Sums)>,
}

/// Of the window's users by cost (`rows`), those absent from `seen` (the same users in
/// the look-back) plus the missing-user bucket (`missing`, always counted: a call that
/// names no user is as unaccountable as a new one). Pure, for the tests.
pub fn newcomers(rows: &[Row], seen: &[Row], missing: &str) -> Result<Newcomers> {
    let mut out = Newcomers::default();
    let mut top: Vec<(String, Sums)> = Vec::new();
    // Up to 10,000 users on each side: a set, not a scan per user.
    let seen: std::collections::HashSet<&str> = seen.iter().map(|s| s.group[0].as_str()).collect();
    for row in rows {
        let user = &row.group[0];
        let is_missing = user == missing;
        if !is_missing && seen.contains(user.as_str()) {
            continue;
        }
        out.sums.add(&row.sums)?;
        if is_missing {
            out.unknown = row.sums;
        } else {
            out.users += 1;
        }
        top.push((user.clone(), row.sums));
    }
    top.sort_by_key(|t| std::cmp::Reverse(t.1.cost.0));
    top.truncate(3);
    out.top = top;
    Ok(out)
}

/// UTC days the seen-users index covers before its day: a window up to `DAYS` back
/// (one more when the hour's window starts yesterday) and its `SEEN_DAYS` look-back
/// (22 bits of a u32).
const INDEX_DAYS: i64 = DAYS + 1 + SEEN_DAYS;

/// An index older than this is brought up to date (its last `REREAD_DAYS` read again):
/// late events (up to 2 days late) reach it within the hour.
const INDEX_MAX_AGE_MS: i64 = 3_600_000;

/// Which users had calls on each of the `INDEX_DAYS` UTC days before `day` (bit k: day
/// `day - (k + 1)`), for the rule's filters: made with one aggregate (users by day)
/// and kept by the engine, so an evaluation tells new users from returning ones without
/// reading any history (one look-back query per window before: 0.8 s of CPU an
/// evaluation at 200,000 users, debug build; docs/alerts.md has the numbers). About 60
/// bytes a user (estimated from the layout).
#[derive(Debug)]
pub struct SeenIndex {
    day: i64,
    built_ms: i64,
    filters: String,
    users: std::collections::HashMap<Box<str>, u32>,
}

impl SeenIndex {
    /// Whether `user` had calls in the `SEEN_DAYS` days before `window_day` (a UTC day
    /// start at most `DAYS` before the index's day).
    pub fn seen_before(&self, user: &str, window_day: i64) -> bool {
        let back = (self.day - window_day).div_euclid(DAY_MS);
        let mask = 0x7f_u32.checked_shl(back as u32).unwrap_or(0);
        self.users.get(user).is_some_and(|days| days & mask != 0)
    }

    /// Build from (user, day start) pairs with calls.
    pub fn from_days<'a>(
        day: i64,
        built_ms: i64,
        filters: String,
        pairs: impl Iterator<Item = (&'a str, i64)>,
    ) -> SeenIndex {
        let empty = SeenIndex {
            day,
            built_ms,
            filters,
            users: Default::default(),
        };
        empty.with_days(built_ms, pairs)
    }

    /// This index with the (user, day start) pairs added, made at `built_ms`.
    fn with_days<'a>(mut self, built_ms: i64, pairs: impl Iterator<Item = (&'a str, i64)>) -> Self {
        for (user, at) in pairs {
            let k = (self.day - at).div_euclid(DAY_MS) - 1;
            if (0..INDEX_DAYS).contains(&k) {
                *self.users.entry(user.into()).or_default() |= 1 << k;
            }
        }
        self.built_ms = built_ms;
        self
    }

    /// A copy for `day`, `shift` days after this one's, with its `forget` most recent
    /// days cleared (to be read again: late calls land there) and the days older than
    /// the index holds dropped.
    fn shifted(&self, day: i64, shift: i64, forget: i64) -> SeenIndex {
        let keep = ((1u64 << INDEX_DAYS) - 1) as u32 & !((1u32 << forget) - 1);
        let users = self
            .users
            .iter()
            .filter_map(|(u, days)| {
                let moved = (((*days as u64) << shift) as u32) & keep;
                (moved != 0).then(|| (u.clone(), moved))
            })
            .collect();
        SeenIndex {
            day,
            built_ms: self.built_ms,
            filters: self.filters.clone(),
            users,
        }
    }
}

/// The index per workspace, kept by the alert engine across evaluations.
#[derive(Default)]
pub struct SeenCache(std::sync::Mutex<std::collections::HashMap<WorkspaceId, Arc<SeenIndex>>>);

/// Days re-read when an index is brought up to date: calls arrive up to 2 days late,
/// and the day that just ended.
const REREAD_DAYS: i64 = 3;

/// The index for `ctx.now`'s day and `q`'s filters: the cached one while it is fresh;
/// else the cached one shifted to today with only its last `REREAD_DAYS` days read
/// again; else made whole with one aggregate over `INDEX_DAYS` days.
async fn seen_index(ctx: &Context<'_>, q: &Query) -> Result<Arc<SeenIndex>> {
    let day = ctx.now.div_euclid(DAY_MS) * DAY_MS;
    let filters = format!("{:?}", q.filters);
    let cached = ctx
        .seen
        .and_then(|c| c.0.lock().unwrap().get(&ctx.ws).cloned())
        .filter(|ix| ix.filters == filters && ix.day <= day && ix.built_ms <= ctx.now);
    if let Some(ix) = &cached {
        if ix.day == day && ctx.now - ix.built_ms < INDEX_MAX_AGE_MS {
            return Ok(ix.clone());
        }
    }
    let shift = cached.as_ref().map(|ix| (day - ix.day) / DAY_MS);
    let (ix, reread) = match (cached, shift) {
        (Some(ix), Some(shift)) if shift + REREAD_DAYS < INDEX_DAYS => {
            (ix.shifted(day, shift, REREAD_DAYS), REREAD_DAYS)
        }
        _ => (
            SeenIndex::from_days(day, 0, filters, std::iter::empty()),
            INDEX_DAYS,
        ),
    };
    let by_day = Query {
        from_ms: day - reread * DAY_MS,
        to_ms: day,
        filters: q.filters.clone(),
        group_by: vec![Dimension::UserId],
        bucket: Some(Bucket::Day),
        measures: vec![Measure::Requests],
        order_by: None,
        ascending: false,
        limit: usize::MAX,
        count_by_first: false,
    };
    let rows = ctx.store.aggregate(ctx.ws, by_day).await?.rows;
    let missing = Dimension::UserId.missing_label();
    let pairs = rows
        .iter()
        .filter(|r| r.group[0] != missing && r.sums.requests > 0)
        .filter_map(|r| Some((r.group[0].as_str(), r.bucket_ms?)));
    let ix = Arc::new(ix.with_days(ctx.now, pairs));
    if let Some(cache) = ctx.seen {
        cache.0.lock().unwrap().insert(ctx.ws, ix.clone());
    }
    Ok(ix)
}

/// The newcomers of `q`'s window: its users by cost (the top `MAX_LIMIT`), less those
/// with calls in the `SEEN_DAYS` whole UTC days before the window's day (`seen`).
async fn newcomers_in(ctx: &Context<'_>, q: &Query, seen: &SeenIndex) -> Result<Newcomers> {
    let users = by_cost(q, vec![Dimension::UserId], MAX_LIMIT);
    let rows = ctx.store.aggregate(ctx.ws, users).await?.rows;
    let missing = Dimension::UserId.missing_label();
    let day = q.from_ms.div_euclid(DAY_MS) * DAY_MS;
    let returning: Vec<Row> = rows
        .iter()
        .filter(|r| r.group[0] != missing && seen.seen_before(&r.group[0], day))
        .cloned()
        .collect();
    newcomers(&rows, &returning, missing)
}

/// How many times the usual `now` is, for the text and evidence (None when the usual is
/// nothing).
fn times(now_nanos: i64, expected_nanos: i64) -> Option<f64> {
    (expected_nanos > 0).then(|| now_nanos as f64 / expected_nanos as f64)
}

/// `now >= threshold x expected`, exactly: the threshold in thousandths, amounts in i128.
/// A usual of nothing is always exceeded (the `sigmas` and `minUsd` tests still decide).
fn at_least_times(now_nanos: i64, expected_nanos: i64, threshold: f64) -> bool {
    let milli = (threshold * 1000.0).round() as i128;
    now_nanos as i128 * 1000 >= milli * expected_nanos.max(0) as i128
}

/// A jump: at least `threshold` times the usual (or the usual was nothing), at least
/// `minUsd` above it and beyond `sigmas` robust deviations of the comparable days.
fn jumped(rule: &RuleSettings, now: &Sums, usual: &Baseline) -> bool {
    now.requests >= rule.min_requests
        && at_least_times(now.cost.0, usual.expected, rule.threshold)
        && usual.unusually_high(now.cost.0, rule.sigmas, rule.min_usd.0)
}

fn usual_evidence(rule: &RuleSettings, usual: &Baseline) -> serde_json::Value {
    json!({
        "days": usual.samples, "medianUsd": Usd(usual.expected),
        "medianAbsoluteDeviationUsd": Usd(usual.mad), "sigmas": rule.sigmas,
        "minUsd": rule.min_usd, "threshold": rule.threshold,
    })
}

fn times_text(now_nanos: i64, expected_nanos: i64) -> String {
    match times(now_nanos, expected_nanos) {
        Some(t) => format!("{t:.1}x the usual"),
        None => "against none usually".into(),
    }
}

/// Rule 12: new and unknown users take spend far above what they usually take at this
/// hour (a leaked key, a bot signing up accounts, an integration that dropped userId).
pub async fn new_user_burst(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let q = super::rules::window(ctx, rule);
    let seen = seen_index(ctx, &q).await?;
    let now = newcomers_in(ctx, &q, &seen).await?;
    if now.sums.requests < rule.min_requests || now.sums.cost < rule.min_usd {
        return Ok(Vec::new());
    }
    // The same window on each earlier day with traffic (totals: cheap rollup reads),
    // then the newcomers of the comparable ones only (the costly part).
    let shifted = |back: i64| Query {
        from_ms: q.from_ms - back * DAY_MS,
        to_ms: q.to_ms - back * DAY_MS,
        ..q.clone()
    };
    let mut totals: Vec<(i64, i64)> = Vec::new();
    for back in 1..=DAYS {
        let all = total(ctx, &shifted(back)).await?;
        if all.requests > 0 {
            totals.push((back, all.cost.0));
        }
    }
    let backs: Vec<i64> = totals.iter().map(|t| t.0).collect();
    let days = comparable(ctx.now, &backs);
    let mut history: Vec<(i64, i64, i64)> = Vec::new();
    for (back, all) in totals.into_iter().filter(|t| days.contains(&t.0)) {
        let then = newcomers_in(ctx, &shifted(back), &seen).await?;
        history.push((back, then.sums.cost.0, all));
    }
    let samples: Vec<i64> = history.iter().map(|h| h.1).collect();
    let Some(usual) = Baseline::of(&samples) else {
        return Ok(Vec::new());
    };
    if !jumped(rule, &now.sums, &usual) {
        return Ok(Vec::new());
    }
    let all_now = total(ctx, &q).await?;
    let share_now = share_pct(now.sums.cost.0.into(), all_now.cost.0.max(1).into());
    // The usual share: the comparable days' newcomer spend over their whole spend.
    let (usual_new, usual_all) = history.iter().fold((0i128, 0i128), |(n, a), h| {
        (n + h.1 as i128, a + h.2 as i128)
    });
    let usual_share = share_pct(usual_new, usual_all.max(1));
    let mut evidence = evidence_window(&q, &baseline(&q));
    evidence["spendUsd"] = json!(now.sums.cost);
    evidence["requests"] = json!(now.sums.requests);
    evidence["newUsers"] = json!(now.users);
    evidence["unknownUser"] =
        json!({"requests": now.unknown.requests, "spendUsd": now.unknown.cost});
    evidence["sharePct"] = json!({"now": share_now, "usual": usual_share});
    evidence["expectedUsd"] = json!(Usd(usual.expected));
    evidence["times"] = json!(times(now.sums.cost.0, usual.expected));
    evidence["usual"] = usual_evidence(rule, &usual);
    let drivers = now
        .top
        .iter()
        .map(|(user, sums)| Driver {
            dimension: "userId".into(),
            value: user.clone(),
            share_pct: (share_pct(sums.cost.0.into(), now.sums.cost.0.max(1).into()) * 10.0)
                .round()
                / 10.0,
            detail: if *user == Dimension::UserId.missing_label() {
                format!(
                    "{} in {} calls without a userId",
                    usd(sums.cost.0),
                    sums.requests
                )
            } else {
                format!(
                    "{} in {} calls, no calls in the {SEEN_DAYS} days before",
                    usd(sums.cost.0),
                    sums.requests
                )
            },
        })
        .collect();
    Ok(vec![Finding {
        rule: rule.kind,
        key: rule.kind.as_str().to_string(),
        severity: Severity::Critical,
        title: format!(
            "New or unknown users spent {} in {} min",
            usd(now.sums.cost.0),
            rule.window_minutes
        ),
        text: format!(
            "{} new users (no calls in the {SEEN_DAYS} UTC days before today) and {} calls without a userId spent {} in the last {} min, {share_now:.0}% of spend ({usual_share:.0}% usually), {}: {} at this time on {} earlier comparable days (median, deviation {}). A leaked key or a bot?",
            now.users,
            now.unknown.requests,
            usd(now.sums.cost.0),
            rule.window_minutes,
            times_text(now.sums.cost.0, usual.expected),
            usd(usual.expected),
            usual.samples,
            usd(usual.mad),
        ),
        evidence,
        drivers,
        link: link("/requests", &q, &[]),
    }])
}

/// Rule 13: one tenant or user whose spend in the window jumps over its own usual spend
/// at this hour (same window on earlier comparable days). Only the window's biggest
/// spenders worth `minUsd` are looked at (a jump of less is not material).
pub async fn spend_jump(ctx: &Context<'_>, rule: &RuleSettings) -> Result<Vec<Finding>> {
    let q = super::rules::window(ctx, rule);
    let b = baseline(&q);
    let mut out = Vec::new();
    for dim in [Dimension::TenantId, Dimension::UserId] {
        let top = by_cost(&q, vec![dim.clone()], JUMP_TOP);
        let rows: Vec<Row> = ctx
            .store
            .aggregate(ctx.ws, top)
            .await?
            .rows
            .into_iter()
            .filter(|r| {
                r.group[0] != dim.missing_label()
                    && r.sums.cost >= rule.min_usd
                    && r.sums.requests >= rule.min_requests
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let history = same_window_earlier(ctx, &q, dim.clone(), &rows).await?;
        let backs: Vec<i64> = history.iter().map(|h| h.0).collect();
        let days = comparable(ctx.now, &backs);
        let mut jumps: Vec<(i128, &Row, Baseline)> = Vec::new();
        for row in &rows {
            let value = &row.group[0];
            let samples: Vec<i64> = history
                .iter()
                .filter(|h| days.contains(&h.0))
                .map(|h| {
                    h.2.iter()
                        .find(|r| &r.group[0] == value)
                        .map_or(0, |r| r.sums.cost.0)
                })
                .collect();
            let Some(usual) = Baseline::of(&samples) else {
                continue;
            };
            if !jumped(rule, &row.sums, &usual) {
                continue;
            }
            jumps.push((row.sums.cost.0 as i128 - usual.expected as i128, row, usual));
        }
        // The largest jumps only: many accounts jumping at once (one bot behind them)
        // is one story, and each finding reads its drivers.
        jumps.sort_by_key(|j| std::cmp::Reverse(j.0));
        for (_, row, usual) in jumps.into_iter().take(JUMP_FINDINGS) {
            out.push(jump_finding(ctx, rule, &q, &b, &dim, row, &usual).await?);
        }
    }
    Ok(out)
}

async fn jump_finding(
    ctx: &Context<'_>,
    rule: &RuleSettings,
    q: &Query,
    b: &Query,
    dim: &Dimension,
    row: &Row,
    usual: &Baseline,
) -> Result<Finding> {
    let value = &row.group[0];
    let name = dim.name();
    let what = if *dim == Dimension::TenantId {
        "tenant"
    } else {
        "user"
    };
    let mut evidence = evidence_window(q, b);
    evidence[name.as_str()] = json!(value);
    evidence["spendUsd"] = json!(row.sums.cost);
    evidence["requests"] = json!(row.sums.requests);
    evidence["expectedUsd"] = json!(Usd(usual.expected));
    evidence["times"] = json!(times(row.sums.cost.0, usual.expected));
    evidence["usual"] = usual_evidence(rule, usual);
    let (nq, bq) = (scoped(q, dim.clone(), value), scoped(b, dim.clone(), value));
    let page = if *dim == Dimension::TenantId {
        "/tenant"
    } else {
        "/requests"
    };
    Ok(Finding {
        rule: rule.kind,
        key: format!("{}:{name}:{value}", rule.kind.as_str()),
        severity: Severity::Warning,
        title: format!(
            "Spend jump of {what} {value}: {}",
            times_text(row.sums.cost.0, usual.expected)
        ),
        text: format!(
            "{what} {value} spent {} in the last {} min ({} calls) vs {} usual at this time (median of the same window on {} earlier comparable days, deviation {}): {}.",
            usd(row.sums.cost.0),
            rule.window_minutes,
            row.sums.requests,
            usd(usual.expected),
            usual.samples,
            usd(usual.mad),
            times_text(row.sums.cost.0, usual.expected),
        ),
        evidence,
        drivers: drivers(ctx, &nq, &bq).await?,
        link: link(page, q, &[(name.as_str(), value)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, requests: u64, cost: i64) -> Row {
        Row {
            group: vec![user.to_string()],
            bucket_ms: None,
            sums: Sums {
                requests,
                cost: Usd(cost),
                ..Default::default()
            },
        }
    }

    #[test]
    fn newcomers_are_the_users_not_seen_before_plus_the_calls_without_a_user() {
        let rows = [
            row("alice", 10, 5_000),
            row("bot-1", 3, 7_000),
            row("unknown", 2, 1_000),
            row("bot-2", 1, 500),
        ];
        let seen = [row("alice", 400, 90_000)];
        let n = newcomers(&rows, &seen, "unknown").unwrap();
        // bot-1 + unknown + bot-2, by hand.
        assert_eq!(n.sums.requests, 3 + 2 + 1);
        assert_eq!(n.sums.cost, Usd(7_000 + 1_000 + 500));
        assert_eq!(n.users, 2);
        assert_eq!(n.unknown.requests, 2);
        let order: Vec<&str> = n.top.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(order, ["bot-1", "unknown", "bot-2"]);
        // A user named like the missing bucket is never taken for a returning one.
        let n = newcomers(&rows, &[row("unknown", 1, 1)], "unknown").unwrap();
        assert_eq!(n.unknown.requests, 2);
    }

    #[test]
    fn the_seen_index_tells_who_called_in_the_seven_days_before_each_window_day() {
        let day = 100 * DAY_MS;
        let d = |back: i64| day - back * DAY_MS;
        // alice: 1 day before the index's day; bob: 8 days before; carol: today only
        // (not in the index: the index holds the days before); dave: 22 days before.
        let pairs = [
            ("alice", d(1)),
            ("bob", d(8)),
            ("carol", d(0)),
            ("dave", d(22)),
        ];
        let ix = SeenIndex::from_days(day, 0, String::new(), pairs.into_iter());
        // A window today looks at days 1..=7 back.
        assert!(ix.seen_before("alice", d(0)));
        assert!(!ix.seen_before("bob", d(0)));
        assert!(!ix.seen_before("carol", d(0)));
        // A window 1 day back looks at days 2..=8 back: bob, not alice.
        assert!(!ix.seen_before("alice", d(1)));
        assert!(ix.seen_before("bob", d(1)));
        // 15 days back looks at 16..=22: dave, the last day kept; nobody past it.
        assert!(ix.seen_before("dave", d(15)));
        assert!(!ix.seen_before("dave", d(14)));
        let far = SeenIndex::from_days(day, 0, String::new(), [("eve", d(23))].into_iter());
        assert!(far.users.is_empty());
        assert!(!ix.seen_before("bob", d(14)));
        assert!(ix.seen_before("bob", d(7)));
    }

    #[test]
    fn a_shifted_index_equals_one_built_whole_on_the_later_day() {
        let day = 100 * DAY_MS;
        let pairs = |base: i64| {
            [("a", 1), ("b", 3), ("c", 6), ("d", 20), ("e", 22)]
                .map(|(u, back)| (u, base - back * DAY_MS))
        };
        let old = SeenIndex::from_days(day, 0, String::new(), pairs(day).into_iter());
        // Two days later: the days 1..=3 before the new day are read again.
        let later = day + 2 * DAY_MS;
        // What the store holds then: the calls before, and two more (f's arrived late).
        let mut all: Vec<(&str, i64)> = pairs(day).into();
        all.extend([("a", later - DAY_MS), ("f", later - 3 * DAY_MS)]);
        let reread = all
            .iter()
            .copied()
            .filter(|(_, at)| *at >= later - REREAD_DAYS * DAY_MS);
        let shifted = old.shifted(later, 2, REREAD_DAYS).with_days(7, reread);
        // The whole build (d's call is then 22 days back, the last day kept; e's 24).
        let whole = SeenIndex::from_days(later, 7, String::new(), all.into_iter());
        assert_eq!(shifted.users, whole.users);
        assert!(!shifted.users.contains_key("e"));
        assert!(shifted.users.contains_key("d"));
    }

    #[test]
    fn a_jump_needs_the_times_the_dollars_and_the_deviations() {
        let rule = super::super::RuleKind::SpendJump.defaults();
        let sums = |requests, dollars: f64| Sums {
            requests,
            cost: Usd((dollars * 1e9) as i64),
            ..Default::default()
        };
        // Usually $1.00-$1.60 at this hour: median 1.30, MAD 0.20.
        let usual =
            Baseline::of(&[1_000, 1_600, 1_200, 1_400, 1_100, 1_500, 1_300].map(|c| c * 1_000_000))
                .unwrap();
        // $4.00: 3.1x, $2.70 above (over $2), beyond 4 x 1.4826 x 0.2 = 1.19.
        assert!(jumped(&rule, &sums(50, 4.0), &usual));
        // $3.80 is 2.9x: under 3x.
        assert!(!jumped(&rule, &sums(50, 3.8), &usual));
        // Too few calls.
        assert!(!jumped(&rule, &sums(5, 40.0), &usual));
        // From nothing usually: $2.50 is a jump, $1.50 is not material.
        let none = Baseline::of(&[0, 0, 0, 0]).unwrap();
        assert!(jumped(&rule, &sums(20, 2.5), &none));
        assert!(!jumped(&rule, &sums(20, 1.5), &none));
    }
}
