//! Alerts for the members of a budget for each value (`"*"` on tenantId, userId or
//! endpointTag): one alert per member crossing a threshold or its cap, at most
//! `PER_EVALUATION` new ones per budget and evaluation, the rest folded into one summary
//! ("and N more") so 5,000 tenants crossing at once send 11 messages, not 5,000.
//!
//! A member alert's key is `budget:{id}:{periodStart}:member:{member}:{mark}` (the mark:
//! the highest threshold reached, or `exceeded`), so a member is told once per period
//! and mark, and again when it climbs to a higher mark. A summary's key is
//! `budget:{id}:{periodStart}:members:{n}`. Which keys were told (alone or in a summary)
//! is kept per budget and period in one `member_alert_cover` object, so a member folded
//! into a summary is not alerted again on its own a minute later. Member alerts and
//! summaries resolve silently when their period ends: a new period is no news.
//!
//! `findings` is the rule (reads the live counters, no store read); `cap` is pure and
//! decides which findings go to the state machine; the engine keeps the cover objects.

use super::{Finding, RuleKind, Severity};
use crate::budget::{state_at, Budget, Each, MemberStatus, State};
use crate::money::Usd;
use crate::report::rfc3339;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// New member alerts per budget and evaluation; members beyond go into one summary.
pub const PER_EVALUATION: usize = 10;
/// Members a summary names in its text (its evidence names up to `SUMMARY_EVIDENCE`).
const SUMMARY_TEXT: usize = 10;
const SUMMARY_EVIDENCE: usize = 20;

/// Control object kind: the keys told for one budget's period.
pub const COVER: &str = "member_alert_cover";

const MEMBER_MARK: &str = ":member:";
const SUMMARY_MARK: &str = ":members:";

/// `budget:{id}:{periodStart}`: what a budget's member alerts of one period share.
pub fn group_of_budget(budget_id: i64, period_start_ms: i64) -> String {
    format!("budget:{budget_id}:{}", rfc3339(period_start_ms))
}

/// The group of a member alert's or a summary's key; None for any other key.
pub fn group_of_key(key: &str) -> Option<&str> {
    if !key.starts_with("budget:") {
        return None;
    }
    let at = key.find(MEMBER_MARK).or_else(|| key.find(SUMMARY_MARK))?;
    Some(&key[..at])
}

/// Whether the key is a member alert's or a summary's (they resolve silently).
pub fn is_member_key(key: &str) -> bool {
    group_of_key(key).is_some()
}

fn is_summary_key(key: &str) -> bool {
    group_of_key(key).is_some_and(|g| key[g.len()..].starts_with(SUMMARY_MARK))
}

fn noun(each: Each) -> &'static str {
    match each {
        Each::TenantId => "Tenant",
        Each::UserId => "User",
        Each::EndpointTag => "Endpoint",
    }
}

/// The highest mark a member reached: `exceeded`, else the highest threshold; None
/// under every threshold.
fn mark_of(budget: &Budget, m: &MemberStatus) -> Option<String> {
    let (state, threshold) = state_at(budget, Some(m.limit_usd.0), m.spent_usd.0);
    match state {
        State::Exceeded => Some("exceeded".into()),
        State::Warning => threshold.map(|t| format!("{t}")),
        State::Ok => None,
    }
}

/// One finding per member of `budget` at a threshold or over its cap this period, most
/// over first (the counters' order). `members` is every flagged member, unpaged.
pub fn findings(budget: &Budget, members: &[MemberStatus], now_ms: i64) -> Vec<Finding> {
    let Some(each) = budget.scope.each else {
        return Vec::new();
    };
    let (start, end) = budget.window(now_ms);
    let group = group_of_budget(budget.id, start);
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let Some(mark) = mark_of(budget, m) else {
            continue;
        };
        let who = match &m.plan {
            Some(plan) => format!("{} {} (plan {plan})", noun(each), m.member),
            None => format!("{} {}", noun(each), m.member),
        };
        let what = match mark.as_str() {
            "exceeded" => "is over its cap".to_string(),
            t => format!("reached {t}% of its cap"),
        };
        let link = match each {
            Each::TenantId => format!("/tenant?tenantId={}", url_escape(&m.member)),
            _ => format!("/budgets#budget-{}", budget.id),
        };
        out.push(Finding {
            rule: RuleKind::Budget,
            key: format!("{group}{MEMBER_MARK}{}:{mark}", m.member),
            severity: match mark.as_str() {
                "exceeded" => Severity::Critical,
                _ => Severity::Warning,
            },
            title: format!("{who} {what} in budget {}", budget.name),
            text: format!(
                "{who} {what} in budget {}: {} spent of {} per {}, {} reserved; the period resets at {}.",
                budget.name,
                m.spent_usd.readable(),
                m.limit_usd.readable(),
                budget.period.as_str(),
                m.reserved_usd.readable(),
                rfc3339(end),
            ),
            evidence: json!({
                "budget": budget.name, "budgetId": budget.id,
                "periodStart": rfc3339(start), "periodEnd": rfc3339(end),
                "dimension": each.field(), "member": m.member, "plan": m.plan,
                "mark": mark, "limitUsd": m.limit_usd, "spentUsd": m.spent_usd,
                "reservedUsd": m.reserved_usd, "usedPct": m.used_pct,
            }),
            drivers: Vec::new(),
            link,
        });
    }
    out
}

/// A member id in a dashboard link's query (ids may hold `&`, `#`, spaces). Erasure
/// looks for this form of an id in links too.
pub(crate) fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What the alerts already stored and the cover objects say about member alerts.
#[derive(Debug, Default)]
pub struct Told {
    /// Keys of firing alerts (member alerts and summaries).
    pub firing: HashSet<String>,
    /// Keys told this period, alone or in a summary (from the cover objects).
    pub covered: HashSet<String>,
    /// Firing summaries, to keep firing while their group has members flagged.
    pub summaries: Vec<Finding>,
    /// Summaries stored so far per group (firing or not): the next one's number.
    pub summary_count: HashMap<String, usize>,
}

/// The findings for the state machine, and the keys newly told per group (to add to
/// the group's cover object).
#[derive(Debug, Default)]
pub struct Capped {
    pub findings: Vec<Finding>,
    pub newly_told: BTreeMap<String, Vec<String>>,
}

/// Pass every other finding through; of member findings, those already firing (so they
/// stay firing), the first `per_evaluation` new ones of each group, and for the rest of
/// a group one summary; findings told before and not firing are dropped (told once).
/// Live summaries of a group with flagged members stay.
pub fn cap(findings: Vec<Finding>, told: &Told, per_evaluation: usize) -> Capped {
    let mut out = Capped::default();
    let mut fresh: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    let mut groups: HashSet<String> = HashSet::new();
    for f in findings {
        let Some(group) = group_of_key(&f.key).map(str::to_string) else {
            out.findings.push(f);
            continue;
        };
        groups.insert(group.clone());
        if told.firing.contains(&f.key) {
            out.findings.push(f);
        } else if !told.covered.contains(&f.key) {
            fresh.entry(group).or_default().push(f);
        }
    }
    for s in &told.summaries {
        if group_of_key(&s.key).is_some_and(|g| groups.contains(g)) {
            out.findings.push(s.clone());
        }
    }
    for (group, mut new) in fresh {
        let rest = new.split_off(new.len().min(per_evaluation));
        let keys = out.newly_told.entry(group.clone()).or_default();
        keys.extend(new.iter().chain(&rest).map(|f| f.key.clone()));
        out.findings.extend(new);
        if !rest.is_empty() {
            let n = told.summary_count.get(&group).copied().unwrap_or(0) + 1;
            out.findings.push(summary(&group, n, &rest));
        }
    }
    out
}

/// One alert standing for `rest` (member findings of one group, most over first).
fn summary(group: &str, n: usize, rest: &[Finding]) -> Finding {
    let first = &rest[0].evidence;
    let budget = first["budget"].as_str().unwrap_or_default();
    let mut marks: BTreeMap<String, usize> = BTreeMap::new();
    for f in rest {
        let mark = f.evidence["mark"].as_str().unwrap_or_default();
        *marks.entry(mark.to_string()).or_default() += 1;
    }
    let line = |f: &Finding| {
        let e = &f.evidence;
        let plan = e["plan"].as_str().map(|p| format!(" (plan {p})"));
        let money = |v: &Value| Usd::parse(&v.to_string()).map_or(String::new(), Usd::readable);
        format!(
            "- {}{}: {} of {} ({})",
            e["member"].as_str().unwrap_or_default(),
            plan.unwrap_or_default(),
            money(&e["spentUsd"]),
            money(&e["limitUsd"]),
            e["mark"].as_str().unwrap_or_default(),
        )
    };
    let mut text = format!(
        "Budget {budget}: {} more members crossed a threshold or their cap this period ({}):\n",
        rest.len(),
        marks
            .iter()
            .map(|(m, c)| format!("{c} {}", mark_words(m)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for f in rest.iter().take(SUMMARY_TEXT) {
        text.push_str(&line(f));
        text.push('\n');
    }
    if rest.len() > SUMMARY_TEXT {
        text.push_str(&format!(
            "and {} more on the Budgets page.",
            rest.len() - SUMMARY_TEXT
        ));
    }
    let listed: Vec<Value> = rest
        .iter()
        .take(SUMMARY_EVIDENCE)
        .map(|f| f.evidence.clone())
        .collect();
    let critical = marks.contains_key("exceeded");
    Finding {
        rule: RuleKind::Budget,
        key: format!("{group}{SUMMARY_MARK}{n}"),
        severity: if critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        title: format!("Budget {budget}: and {} more members", rest.len()),
        text: text.trim_end().to_string(),
        evidence: json!({
            "budget": budget, "budgetId": first["budgetId"],
            "periodStart": first["periodStart"], "periodEnd": first["periodEnd"],
            "dimension": first["dimension"], "count": rest.len(), "marks": marks,
            "members": listed,
        }),
        drivers: Vec::new(),
        link: format!("/budgets#budget-{}", first["budgetId"]),
    }
}

fn mark_words(mark: &str) -> String {
    match mark {
        "exceeded" => "over their cap".into(),
        t => format!("at {t}%"),
    }
}

/// The cover objects' body for a group: its keys, one a line, and when it can go.
pub fn cover_body(group: &str, period_end_ms: i64, keys: &[String]) -> Value {
    let mut text = String::new();
    for k in keys {
        text.push_str(k);
        text.push('\n');
    }
    json!({"group": group, "periodEndMs": period_end_ms, "keys": text})
}

/// The keys of a cover object's body.
pub fn cover_keys(body: &Value) -> Vec<String> {
    body["keys"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether a firing stored alert is a summary (kept firing by `cap`).
pub fn is_summary(f: &Finding) -> bool {
    is_summary_key(&f.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(group: &str, m: &str, mark: &str) -> Finding {
        Finding {
            rule: RuleKind::Budget,
            key: format!("{group}:member:{m}:{mark}"),
            severity: Severity::Warning,
            title: m.into(),
            text: String::new(),
            evidence: json!({"budget": "quota", "budgetId": 1, "member": m, "mark": mark,
                "plan": "free", "spentUsd": 2, "limitUsd": 1}),
            drivers: vec![],
            link: "/".into(),
        }
    }

    const G: &str = "budget:1:2026-03-01T00:00:00Z";

    #[test]
    fn keys_name_their_group() {
        assert_eq!(group_of_key(&format!("{G}:member:a:b:80")), Some(G));
        assert_eq!(group_of_key(&format!("{G}:members:2")), Some(G));
        assert_eq!(group_of_key("budget:1:2026-03-01T00:00:00Z:80"), None);
        assert_eq!(group_of_key("retry_storm:x:member:y"), None);
        assert!(is_summary_key(&format!("{G}:members:1")));
        assert!(!is_summary_key(&format!("{G}:member:members:1")));
    }

    #[test]
    fn thirty_new_members_make_ten_alerts_and_one_summary_of_twenty() {
        let findings: Vec<Finding> = (0..30)
            .map(|i| member(G, &format!("t{i:02}"), "exceeded"))
            .collect();
        let capped = cap(findings, &Told::default(), 10);
        assert_eq!(capped.findings.len(), 11);
        let summary = capped.findings.last().unwrap();
        assert_eq!(summary.key, format!("{G}:members:1"));
        assert_eq!(summary.evidence["count"], 20);
        assert_eq!(summary.severity, Severity::Critical);
        assert!(summary
            .text
            .contains("- t10 (plan free): $2.00 of $1.00 (exceeded)"));
        assert!(summary.text.ends_with("and 10 more on the Budgets page."));
        assert_eq!(capped.newly_told[G].len(), 30, "all thirty are told");
    }

    #[test]
    fn told_members_stay_quiet_firing_ones_stay_firing_summaries_stay_while_members_do() {
        let mut told = Told::default();
        told.firing.insert(format!("{G}:member:a:80"));
        told.covered.insert(format!("{G}:member:a:80"));
        told.covered.insert(format!("{G}:member:b:80"));
        let old = Finding {
            key: format!("{G}:members:1"),
            ..member(G, "x", "80")
        };
        told.summaries.push(old.clone());
        told.summary_count.insert(G.into(), 1);
        let findings = vec![
            member(G, "a", "80"),
            member(G, "b", "80"),
            member(G, "b", "exceeded"),
        ];
        let capped = cap(findings, &told, 10);
        let keys: Vec<&str> = capped.findings.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                format!("{G}:member:a:80"),
                format!("{G}:members:1"),
                format!("{G}:member:b:exceeded")
            ]
        );
        // A new period: the old group has no members flagged, its summary goes.
        let next = "budget:1:2026-04-01T00:00:00Z";
        let capped = cap(vec![member(next, "a", "80")], &told, 10);
        assert_eq!(capped.findings.len(), 1);
        assert_eq!(capped.findings[0].key, format!("{next}:member:a:80"));
    }

    #[test]
    fn other_findings_pass_untouched() {
        let other = Finding {
            key: "budget:2:2026-03-01T00:00:00Z:80".into(),
            ..member(G, "a", "80")
        };
        let capped = cap(vec![other.clone()], &Told::default(), 0);
        assert_eq!(capped.findings, vec![other]);
        assert!(capped.newly_told.is_empty());
    }
}
