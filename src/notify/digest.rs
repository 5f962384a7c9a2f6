//! Digest mode: a period's notifications folded into one message, one line per alert;
//! the scheduled digest adds spend vs the period before, top movers, budgets at risk and
//! the alerts firing now (`summary_digest`).

use super::{rfc3339, Notification, NotificationState, Severity};
use crate::money::Usd;
use serde_json::json;
use std::collections::BTreeMap;

/// A half-open window `[start_ms, end_ms)`, usually one day in the workspace's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One alert across the period: how often it fired and where it ended.
struct Line<'a> {
    title: &'a str,
    severity: Severity,
    firings: usize,
    last: NotificationState,
    last_at: i64,
}

/// The digest of the firing and resolved notifications inside `period` (tests and older
/// digests are ignored). Pure: the id is derived from the period, so sending the same
/// digest twice is one message to an idempotent receiver. Severity is the worst among
/// alerts still firing at the end, else info. Set `link` on the result if wanted.
pub fn digest(notifications: &[Notification], period: Period) -> Notification {
    let lines = fold(notifications, period);
    let firing = lines
        .iter()
        .filter(|l| l.last == NotificationState::Firing)
        .count();
    let severity = lines
        .iter()
        .filter(|l| l.last == NotificationState::Firing)
        .map(|l| l.severity)
        .max()
        .unwrap_or(Severity::Info);
    let mut text = format!(
        "{} alerts between {} and {}: {firing} still firing, {} resolved.",
        lines.len(),
        rfc3339(period.start_ms),
        rfc3339(period.end_ms),
        lines.len() - firing
    );
    for l in &lines {
        text.push_str(&format!("\n- {}", describe(l)));
    }
    Notification {
        id: format!("digest_{}_{}", period.start_ms, period.end_ms),
        dedup_key: format!("burnrate-digest-{}", period.start_ms),
        state: NotificationState::Digest,
        severity,
        title: format!("burnrate digest: {} alerts, {firing} firing", lines.len()),
        payload: payload(&lines, period),
        text,
        drivers: Vec::new(),
        link: None,
        at_ms: period.end_ms,
    }
}

/// One line per dedup_key, worst severity first, then the most firings.
fn fold(notifications: &[Notification], period: Period) -> Vec<Line<'_>> {
    let mut by_key: BTreeMap<&str, Line> = BTreeMap::new();
    let in_period = |n: &&Notification| {
        matches!(
            n.state,
            NotificationState::Firing | NotificationState::Resolved
        ) && n.at_ms >= period.start_ms
            && n.at_ms < period.end_ms
    };
    for n in notifications.iter().filter(in_period) {
        let line = by_key.entry(&n.dedup_key).or_insert(Line {
            title: &n.title,
            severity: n.severity,
            firings: 0,
            last: n.state,
            last_at: i64::MIN,
        });
        if n.state == NotificationState::Firing {
            line.firings += 1;
            line.severity = line.severity.max(n.severity);
        }
        if n.at_ms >= line.last_at {
            line.last = n.state;
            line.last_at = n.at_ms;
        }
    }
    let mut lines: Vec<Line> = by_key.into_values().collect();
    lines.sort_by_key(|l| std::cmp::Reverse((l.severity, l.firings)));
    lines
}

fn describe(l: &Line) -> String {
    let end = match l.last {
        NotificationState::Firing => "still firing",
        _ => "resolved",
    };
    format!(
        "[{}] {}: fired {} time{}, {end}",
        l.severity.as_str(),
        l.title,
        l.firings,
        if l.firings == 1 { "" } else { "s" }
    )
}

fn payload(lines: &[Line], period: Period) -> serde_json::Value {
    let alerts: Vec<_> = lines
        .iter()
        .map(|l| {
            json!({
                "title": l.title,
                "severity": l.severity,
                "firings": l.firings,
                "state": l.last,
            })
        })
        .collect();
    json!({
        "period": {"start": rfc3339(period.start_ms), "end": rfc3339(period.end_ms)},
        "alerts": alerts,
    })
}

/// What a scheduled digest says besides the period's alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Spend of the period and of the period of the same length before it.
    pub spend: Usd,
    pub spend_before: Usd,
    /// The endpoints whose spend moved most, either way.
    pub movers: Vec<Mover>,
    /// One line per budget over a threshold or projected to run out.
    pub budgets_at_risk: Vec<String>,
    /// One line per tenant whose revenue of the period is below its AI cost (the most
    /// unprofitable first, at most five), and how many there are in all.
    pub unprofitable: Vec<String>,
    pub unprofitable_count: usize,
    /// Titles of the alerts firing now.
    pub firing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    pub endpoint: String,
    pub now: Usd,
    pub before: Usd,
}

/// The scheduled digest: spend vs the period before, top movers, budgets at risk and
/// firing alerts, then the period's alert lines of [`digest`]. Pure; money exact.
pub fn summary_digest(notifications: &[Notification], period: Period, s: &Summary) -> Notification {
    let mut n = digest(notifications, period);
    let change = |now: Usd, before: Usd| Usd(now.0.saturating_sub(before.0));
    let signed = |u: Usd| {
        if u.0 >= 0 {
            format!("+{}", u.readable())
        } else {
            u.readable()
        }
    };
    let total_change = change(s.spend, s.spend_before);
    let mut text = format!(
        "Spend {} vs {} the period before ({}).",
        s.spend.readable(),
        s.spend_before.readable(),
        signed(total_change)
    );
    let mut section = |name: &str, lines: Vec<String>| {
        text.push_str(&format!("\n{name}:"));
        if lines.is_empty() {
            text.push_str(" none");
        }
        for l in lines {
            text.push_str(&format!("\n- {l}"));
        }
    };
    let movers = s
        .movers
        .iter()
        .map(|m| {
            format!(
                "{}: {} -> {} ({})",
                m.endpoint,
                m.before.readable(),
                m.now.readable(),
                signed(change(m.now, m.before))
            )
        })
        .collect();
    section("Top movers", movers);
    section("Budgets at risk", s.budgets_at_risk.clone());
    let mut unprofitable = s.unprofitable.clone();
    if s.unprofitable_count > unprofitable.len() {
        unprofitable.push(format!(
            "and {} more",
            s.unprofitable_count - unprofitable.len()
        ));
    }
    section("Unprofitable tenants", unprofitable);
    section("Firing now", s.firing.clone());
    n.text = format!("{text}\n{}", n.text);
    n.title = format!(
        "burnrate digest: spend {} ({}), {} alerts firing",
        s.spend.readable(),
        signed(total_change),
        s.firing.len()
    );
    n.payload["spend"] =
        json!({"nowUsd": s.spend, "beforeUsd": s.spend_before, "changeUsd": total_change});
    n.payload["movers"] = json!(s
        .movers
        .iter()
        .map(
            |m| json!({"endpointTag": m.endpoint, "nowUsd": m.now, "beforeUsd": m.before,
                        "changeUsd": change(m.now, m.before)})
        )
        .collect::<Vec<_>>());
    n.payload["budgetsAtRisk"] = json!(s.budgets_at_risk);
    n.payload["unprofitable"] = json!({"tenants": s.unprofitable, "count": s.unprofitable_count});
    n.payload["firing"] = json!(s.firing);
    // The webhook sends the payload: it carries the message as people read it too.
    n.payload["title"] = json!(n.title);
    n.payload["text"] = json!(n.text);
    n
}
