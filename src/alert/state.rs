//! The alert state machine, pure: findings of one evaluation against the alerts already
//! known give the transitions to make. An alert fires when its finding first appears,
//! stays firing (evidence refreshed, nobody re-notified) while it keeps appearing, and
//! resolves when it stops. After a resolve the same key stays quiet for the rule's
//! cooldown; budget alerts never fire twice (their key holds the period).

use super::{Finding, RuleKind};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// What the state machine needs to know of a stored alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub id: i64,
    pub key: String,
    pub rule: RuleKind,
    pub state: AlertState,
    pub resolved_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fire(Finding),
    Refresh { id: i64, finding: Finding },
    Resolve { id: i64 },
}

pub fn step(
    known: &[Known],
    findings: Vec<Finding>,
    now_ms: i64,
    cooldown_ms: impl Fn(RuleKind) -> i64,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for finding in &findings {
        let same: Vec<&Known> = known.iter().filter(|k| k.key == finding.key).collect();
        if let Some(firing) = same.iter().find(|k| k.state == AlertState::Firing) {
            out.push(Transition::Refresh {
                id: firing.id,
                finding: finding.clone(),
            });
            continue;
        }
        let quiet = same.iter().any(|k| {
            finding.rule == RuleKind::Budget
                || k.resolved_at_ms
                    .is_some_and(|at| now_ms - at < cooldown_ms(finding.rule))
        });
        if !quiet
            && !out
                .iter()
                .any(|t| matches!(t, Transition::Fire(f) if f.key == finding.key))
        {
            out.push(Transition::Fire(finding.clone()));
        }
    }
    for k in known.iter().filter(|k| k.state == AlertState::Firing) {
        if !findings.iter().any(|f| f.key == k.key) {
            out.push(Transition::Resolve { id: k.id });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    fn finding(rule: RuleKind, key: &str) -> Finding {
        Finding {
            rule,
            key: key.into(),
            severity: Severity::Warning,
            title: key.into(),
            text: String::new(),
            evidence: serde_json::Value::Null,
            drivers: vec![],
            link: "/".into(),
        }
    }

    /// Apply transitions the way the engine stores them.
    fn apply(known: &mut Vec<Known>, transitions: &[Transition], now: i64) {
        for t in transitions {
            match t {
                Transition::Fire(f) => known.push(Known {
                    id: known.len() as i64 + 1,
                    key: f.key.clone(),
                    rule: f.rule,
                    state: AlertState::Firing,
                    resolved_at_ms: None,
                }),
                Transition::Refresh { .. } => {}
                Transition::Resolve { id } => {
                    let k = known.iter_mut().find(|k| k.id == *id).unwrap();
                    k.state = AlertState::Resolved;
                    k.resolved_at_ms = Some(now);
                }
            }
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn fires_once_stays_firing_resolves_then_respects_the_cooldown() {
        let cooldown = |_| 5 * MIN;
        let spike = || vec![finding(RuleKind::HourlySpendSpike, "spike:*")];
        let mut known = Vec::new();
        let mut fired = 0;
        let mut run = |known: &mut Vec<Known>, findings: Vec<Finding>, minute: i64| {
            let t = step(known, findings, minute * MIN, cooldown);
            fired += t
                .iter()
                .filter(|t| matches!(t, Transition::Fire(_)))
                .count();
            apply(known, &t, minute * MIN);
            t
        };
        assert!(matches!(
            run(&mut known, spike(), 0)[..],
            [Transition::Fire(_)]
        ));
        assert!(matches!(
            run(&mut known, spike(), 1)[..],
            [Transition::Refresh { id: 1, .. }]
        ));
        assert_eq!(
            run(&mut known, vec![], 2),
            vec![Transition::Resolve { id: 1 }]
        );
        assert!(
            run(&mut known, spike(), 4).is_empty(),
            "2 min after resolve: cooling down"
        );
        assert!(run(&mut known, vec![], 5).is_empty());
        assert!(
            matches!(run(&mut known, spike(), 7)[..], [Transition::Fire(_)]),
            "5 min later it may fire again"
        );
        assert_eq!(fired, 2);
        assert_eq!(known.len(), 2, "history keeps the first alert");
    }

    #[test]
    fn a_budget_threshold_fires_once_per_period_however_it_flaps() {
        let key = "budget:1:2026-03-01T00:00:00Z:80";
        let mut known = Vec::new();
        let t = step(&known, vec![finding(RuleKind::Budget, key)], 0, |_| 0);
        apply(&mut known, &t, 0);
        let t = step(&known, vec![], MIN, |_| 0);
        apply(&mut known, &t, MIN);
        let t = step(
            &known,
            vec![finding(RuleKind::Budget, key)],
            60 * MIN,
            |_| 0,
        );
        assert!(t.is_empty(), "same period, same threshold: no second alert");
        let next = "budget:1:2026-04-01T00:00:00Z:80";
        let t = step(
            &known,
            vec![finding(RuleKind::Budget, next)],
            61 * MIN,
            |_| 0,
        );
        assert!(
            matches!(t[..], [Transition::Fire(_)]),
            "a new period fires anew"
        );
    }

    #[test]
    fn independent_keys_fire_and_resolve_independently() {
        let a = finding(RuleKind::RetryStorm, "retry_storm:a");
        let b = finding(RuleKind::RetryStorm, "retry_storm:b");
        let mut known = Vec::new();
        let t = step(&known, vec![a.clone(), b.clone()], 0, |_| MIN);
        assert_eq!(t.len(), 2);
        apply(&mut known, &t, 0);
        let t = step(&known, vec![b], MIN, |_| MIN);
        assert!(t.contains(&Transition::Resolve { id: 1 }));
        assert!(matches!(t[0], Transition::Refresh { id: 2, .. }));
    }
}
