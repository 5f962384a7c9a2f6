//! Plans: which plan each tenant is on, and since when, for the per-plan limits of a
//! budget for each tenant (`planLimits`) and the plan prices revenue accrues. Stored as
//! control objects (kind `plan_assignments`), each a batch of assignments applied in
//! the order they were written: a CSV import of 100,000 tenants is one object, and a
//! write never rewrites another's, so two processes setting plans at once lose nothing.
//! When batches pile up they are folded into one object that records the last batch it
//! covers (`upTo`) and sorts there. A batch holds its assignments as one text of
//! `tenant<TAB>plan<TAB>effectiveFromMs` lines (an empty plan: off its plan from then;
//! an empty or absent time: since always; none contains a tab or a newline), not a JSON
//! object: a store reads a 2 MB string far faster than 100,000 JSON members (measured
//! in `burnrate-bench guard`).
//!
//! History: each tenant's assignments by `effectiveFrom`; the plan in force at a time is
//! the one of the latest change at or before it (two at the same time: the later
//! written). A budget's cap for the current period is the plan in force now, for the
//! whole period (docs/margin.md#plan-history says why); revenue accrues each plan's
//! price over the time it was in force.

use crate::event::FieldError;
use crate::store::StoredObject;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub const PLAN_ASSIGNMENTS: &str = "plan_assignments";

/// Batches beyond this many are folded into one on the next write.
pub const FOLD_AFTER: usize = 16;

/// Tenant -> plan (at one time).
pub type PlanMap = HashMap<Box<str>, Box<str>>;

/// One assignment: a tenant, its plan (None: no plan, the budget's default applies) and
/// when it takes effect (None: since always).
pub type Assignment = (String, Option<String>, Option<i64>);

/// "Since always": the time of an assignment without one.
pub const ALWAYS: i64 = i64::MIN;

/// One tenant's plan changes: (effective from, plan; None: off its plan), by time, one
/// entry per time.
pub type Changes = Vec<(i64, Option<Box<str>>)>;

/// Every tenant's plan changes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlanHistory {
    pub tenants: HashMap<Box<str>, Changes>,
}

impl PlanHistory {
    /// Apply one change in written order: a change at a time already listed replaces it.
    fn apply(&mut self, tenant: &str, plan: Option<&str>, from: i64) {
        let changes = self.tenants.entry(tenant.into()).or_default();
        let plan = plan.map(Box::from);
        match changes.binary_search_by_key(&from, |c| c.0) {
            Ok(i) => changes[i].1 = plan,
            Err(i) => changes.insert(i, (from, plan)),
        }
    }

    /// A tenant's plan in force at `at_ms`.
    pub fn at(&self, tenant: &str, at_ms: i64) -> Option<&str> {
        let changes = self.tenants.get(tenant)?;
        plan_at(changes, at_ms)
    }

    /// Every tenant's plan in force at `at_ms`, and the time of the next change after it
    /// (when the map must be made again).
    pub fn map_at(&self, at_ms: i64) -> (PlanMap, Option<i64>) {
        let mut map = PlanMap::with_capacity(self.tenants.len());
        let mut next: Option<i64> = None;
        for (tenant, changes) in &self.tenants {
            if let Some(plan) = plan_at(changes, at_ms) {
                map.insert(tenant.clone(), plan.into());
            }
            if let Some(c) = changes.iter().find(|c| c.0 > at_ms) {
                next = Some(next.map_or(c.0, |n| n.min(c.0)));
            }
        }
        (map, next)
    }

    /// Whether the tenant has any assignment.
    pub fn knows(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }
}

fn plan_at(changes: &[(i64, Option<Box<str>>)], at_ms: i64) -> Option<&str> {
    let i = changes.partition_point(|c| c.0 <= at_ms);
    changes[..i].last()?.1.as_deref()
}

/// Where a batch sorts: a folded batch where its last covered batch was.
fn order(o: &StoredObject) -> i64 {
    o.body.get("upTo").and_then(Value::as_i64).unwrap_or(o.id)
}

/// Every tenant's plan history from the stored batches.
pub fn history(objects: &[StoredObject]) -> PlanHistory {
    let mut batches: Vec<&StoredObject> = objects.iter().collect();
    batches.sort_by_key(|o| (order(o), o.id));
    let mut out = PlanHistory::default();
    for batch in batches {
        let Some(lines) = batch.body.get("assignments").and_then(Value::as_str) else {
            continue;
        };
        for line in lines.lines() {
            let mut parts = line.split('\t');
            let (Some(tenant), Some(plan)) = (parts.next(), parts.next()) else {
                continue;
            };
            let from = parts.next().and_then(|f| f.parse().ok()).unwrap_or(ALWAYS);
            out.apply(tenant, (!plan.is_empty()).then_some(plan), from);
        }
    }
    // A change to the plan already in force changes nothing (a nightly re-import of the
    // same CSV): dropped, so folds keep one entry per real change.
    for changes in out.tenants.values_mut() {
        changes.dedup_by(|later, earlier| later.1 == earlier.1);
    }
    out
}

/// Every tenant's plan at `at_ms` from the stored batches.
pub fn fold(objects: &[StoredObject], at_ms: i64) -> PlanMap {
    history(objects).map_at(at_ms).0
}

/// The body of one batch.
pub fn batch(assignments: &[Assignment]) -> Value {
    let lines = assignments
        .iter()
        .map(|(t, p, from)| (t.as_str(), p.as_deref(), from.unwrap_or(ALWAYS)));
    body(lines, None)
}

fn body<'a>(
    lines: impl Iterator<Item = (&'a str, Option<&'a str>, i64)>,
    up_to: Option<i64>,
) -> Value {
    let mut text = String::new();
    for (tenant, plan, from) in lines {
        text.push_str(tenant);
        text.push('\t');
        text.push_str(plan.unwrap_or(""));
        if from != ALWAYS {
            text.push('\t');
            text.push_str(&from.to_string());
        }
        text.push('\n');
    }
    let mut body = Map::new();
    body.insert("assignments".into(), Value::String(text));
    if let Some(up_to) = up_to {
        body.insert("upTo".into(), Value::from(up_to));
    }
    Value::Object(body)
}

/// The body of the batch replacing `objects` (all of them folded, every tenant's whole
/// history kept), sorting after the last of them.
pub fn folded(objects: &[StoredObject]) -> Value {
    let history = history(objects);
    let up_to = objects.iter().map(order).max().unwrap_or(0);
    let lines = history.tenants.iter().flat_map(|(t, changes)| {
        changes
            .iter()
            .map(move |(from, plan)| (&**t, plan.as_deref(), *from))
    });
    body(lines, Some(up_to))
}

/// A plan name: 1 to 64 characters from `A-Z a-z 0-9 _ . -`.
pub fn check_plan(field: &str, plan: &str) -> Result<(), FieldError> {
    let ok = (1..=64).contains(&plan.len())
        && plan
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    match ok {
        true => Ok(()),
        false => Err(FieldError::new(
            field,
            "must be a plan name: 1 to 64 characters from A-Z a-z 0-9 _ . -",
        )),
    }
}

/// A tenant id as events carry it: 1 to 256 characters.
pub fn check_tenant(field: &str, tenant: &str) -> Result<(), FieldError> {
    match !tenant.is_empty() && tenant.len() <= 256 && !tenant.chars().any(char::is_control) {
        true => Ok(()),
        false => Err(FieldError::new(
            field,
            "must be a tenantId: 1 to 256 characters, no control characters",
        )),
    }
}

/// When an assignment takes effect: an RFC 3339 time or a UTC day `YYYY-MM-DD`, from
/// 2020 to 2100.
pub fn parse_effective_from(field: &str, text: &str) -> Result<i64, FieldError> {
    let text = text.trim();
    let at = match text.parse::<jiff::Timestamp>() {
        Ok(t) => Some(t.as_millisecond()),
        Err(_) => text
            .parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp().as_millisecond()),
    };
    let latest = 4_133_980_800_000; // 2101-01-01T00:00:00Z
    match at.filter(|ms| (crate::validate::MIN_TIMESTAMP_MS..latest).contains(ms)) {
        Some(ms) => Ok(ms),
        None => Err(FieldError::new(
            field,
            "must be an RFC 3339 time or a day YYYY-MM-DD (UTC), from 2020 to 2100",
        )),
    }
}

/// `tenantId,plan` lines, or `tenantId,plan,effectiveFrom` (the header first; an empty
/// plan takes the tenant off its plan; an empty effectiveFrom: as if none was given).
/// Every bad line is reported as `line N`, nothing is kept when one is bad.
pub fn parse_csv(text: &str) -> Result<Vec<Assignment>, Vec<FieldError>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| l.trim().replace(' ', ""));
    let dated = match header.as_deref() {
        Some("tenantId,plan") => false,
        Some("tenantId,plan,effectiveFrom") => true,
        _ => {
            return Err(vec![FieldError::new(
                "line 1",
                "must be the header tenantId,plan or tenantId,plan,effectiveFrom",
            )])
        }
    };
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (n, line) in lines {
        let field = format!("line {}", n + 1);
        let line = line.trim_end_matches('\r');
        // The tenant may hold commas (quoted); the fields after it never do.
        let (rest, from) = match dated {
            true => match line.rsplit_once(',') {
                Some((rest, from)) => (rest, Some(from.trim())),
                None => (line, None),
            },
            false => (line, Some("")),
        };
        let (Some((tenant, plan)), Some(from)) = (rest.rsplit_once(','), from) else {
            let shape = if dated {
                "tenantId,plan,effectiveFrom"
            } else {
                "tenantId,plan"
            };
            errors.push(FieldError::new(field, format!("must be {shape}")));
            continue;
        };
        let (tenant, plan) = (unquote(tenant.trim()), unquote(plan.trim()));
        let (tenant, plan) = (tenant.as_str(), plan.as_str());
        let plan = (!plan.is_empty()).then(|| plan.to_string());
        let from = match from.is_empty() {
            true => Ok(None),
            false => parse_effective_from(&field, from).map(Some),
        };
        let checked = check_tenant(&field, tenant)
            .and_then(|_| plan.as_deref().map_or(Ok(()), |p| check_plan(&field, p)))
            .and(from);
        match checked {
            Ok(from) => out.push((tenant.to_string(), plan, from)),
            Err(e) => errors.push(e),
        }
    }
    match errors.is_empty() {
        true => Ok(out),
        false => Err(errors),
    }
}

/// A CSV field without its surrounding quotes (`"a ""b"""` is `a "b"`).
fn unquote(field: &str) -> String {
    match field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => field.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: i64, body: Value) -> StoredObject {
        StoredObject {
            id,
            workspace: 1,
            body,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    fn day(text: &str) -> i64 {
        parse_effective_from("t", text).unwrap()
    }

    #[test]
    fn the_plan_in_force_is_the_latest_change_at_or_before_the_time() {
        let a = |t: &str, p: Option<&str>, from: Option<&str>| {
            (t.to_string(), p.map(str::to_string), from.map(day))
        };
        let batches = [
            object(1, batch(&[a("acme", Some("free"), None)])),
            object(2, batch(&[a("acme", Some("pro"), Some("2026-03-15"))])),
            object(3, batch(&[a("acme", None, Some("2026-05-01"))])),
            // Written later, dated earlier: slots in between.
            object(4, batch(&[a("acme", Some("team"), Some("2026-04-01"))])),
        ];
        let h = history(&batches);
        assert_eq!(h.at("acme", day("2026-01-01")), Some("free"));
        assert_eq!(h.at("acme", day("2026-03-15") - 1), Some("free"));
        assert_eq!(h.at("acme", day("2026-03-15")), Some("pro"));
        assert_eq!(h.at("acme", day("2026-04-02")), Some("team"));
        assert_eq!(h.at("acme", day("2026-05-01")), None);
        let (map, next) = h.map_at(day("2026-03-20"));
        assert_eq!(map.get("acme").map(|p| &**p), Some("pro"));
        assert_eq!(next, Some(day("2026-04-01")));
        // Folding keeps the whole history.
        let folded = history(&[object(9, folded(&batches))]);
        assert_eq!(folded, h);
    }

    #[test]
    fn the_same_time_twice_keeps_the_later_written_and_old_lines_are_since_always() {
        let old = object(1, json_lines("acme\tfree\nbeta\tpro\n"));
        let again = object(2, json_lines("acme\tpro\n"));
        let h = history(&[again, old]);
        assert_eq!(h.at("acme", 0), Some("pro"));
        assert_eq!(h.tenants["acme"].len(), 1);
        assert_eq!(h.at("beta", i64::MIN), Some("pro"));
    }

    #[test]
    fn setting_the_plan_in_force_again_adds_no_change() {
        let batches = [
            object(1, json_lines("acme\tfree\n")),
            object(2, json_lines("acme\tfree\t1000\n")),
            object(3, json_lines("acme\tpro\t2000\n")),
            object(4, json_lines("acme\tpro\t3000\n")),
        ];
        let h = history(&batches);
        assert_eq!(
            h.tenants["acme"],
            vec![(ALWAYS, Some("free".into())), (2000, Some("pro".into()))]
        );
    }

    fn json_lines(text: &str) -> Value {
        serde_json::json!({ "assignments": text })
    }

    #[test]
    fn a_csv_may_date_each_line() {
        let csv = "tenantId,plan,effectiveFrom\nacme,pro,2026-03-15\n\"a,b\",free,\nx,pro,soon\n";
        let errors = parse_csv(csv).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "line 4");
        let csv = "tenantId,plan,effectiveFrom\nacme,pro,2026-03-15T12:00:00Z\n\"a,b\",free,\n";
        let rows = parse_csv(csv).unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    "acme".into(),
                    Some("pro".into()),
                    Some(day("2026-03-15") + 43_200_000)
                ),
                ("a,b".into(), Some("free".into()), None),
            ]
        );
    }
}
