//! Plans: which plan each tenant is on, for the per-plan limits of a budget for each
//! tenant (`planLimits`). Stored as control objects (kind `plan_assignments`), each a
//! batch of assignments (`{"assignments": {"acme": "pro", "old": null}}`, null taking a
//! tenant off its plan) applied in the order they were written: a CSV import of 100,000
//! tenants is one object, and a write never rewrites another's, so two processes setting
//! plans at once lose nothing. When batches pile up they are folded into one object that
//! records the last batch it covers (`upTo`) and sorts there. A batch holds its
//! assignments as one text of `tenant<TAB>plan` lines (an empty plan: off its plan;
//! neither contains a tab or a newline), not a JSON object: a store reads a 2 MB string
//! far faster than 100,000 JSON members (measured in `burnrate-bench guard`).

use crate::event::FieldError;
use crate::store::StoredObject;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub const PLAN_ASSIGNMENTS: &str = "plan_assignments";

/// Batches beyond this many are folded into one on the next write.
pub const FOLD_AFTER: usize = 16;

/// Tenant -> plan.
pub type PlanMap = HashMap<Box<str>, Box<str>>;

/// One assignment: a tenant and its plan (None: no plan, the budget's default applies).
pub type Assignment = (String, Option<String>);

/// Where a batch sorts: a folded batch where its last covered batch was.
fn order(o: &StoredObject) -> i64 {
    o.body.get("upTo").and_then(Value::as_i64).unwrap_or(o.id)
}

/// Every tenant's plan from the stored batches.
pub fn fold(objects: &[StoredObject]) -> PlanMap {
    let mut batches: Vec<&StoredObject> = objects.iter().collect();
    batches.sort_by_key(|o| (order(o), o.id));
    let mut plans = PlanMap::new();
    for batch in batches {
        let Some(lines) = batch.body.get("assignments").and_then(Value::as_str) else {
            continue;
        };
        for (tenant, plan) in lines.lines().filter_map(|l| l.split_once('\t')) {
            match plan.is_empty() {
                false => plans.insert(tenant.into(), plan.into()),
                true => plans.remove(tenant),
            };
        }
    }
    plans
}

/// The body of one batch.
pub fn batch(assignments: &[Assignment]) -> Value {
    let lines = assignments.iter().map(|(t, p)| (t.as_str(), p.as_deref()));
    body(lines, None)
}

fn body<'a>(lines: impl Iterator<Item = (&'a str, Option<&'a str>)>, up_to: Option<i64>) -> Value {
    let mut text = String::new();
    for (tenant, plan) in lines {
        text.push_str(tenant);
        text.push('\t');
        text.push_str(plan.unwrap_or(""));
        text.push('\n');
    }
    let mut body = Map::new();
    body.insert("assignments".into(), Value::String(text));
    if let Some(up_to) = up_to {
        body.insert("upTo".into(), Value::from(up_to));
    }
    Value::Object(body)
}

/// The body of the batch replacing `objects` (all of them folded), sorting after the
/// last of them.
pub fn folded(objects: &[StoredObject]) -> Value {
    let plans = fold(objects);
    let up_to = objects.iter().map(order).max().unwrap_or(0);
    body(plans.iter().map(|(t, p)| (&**t, Some(&**p))), Some(up_to))
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

/// `tenantId,plan` lines (the header first; an empty plan takes the tenant off its
/// plan). Every bad line is reported as `line N`, nothing is kept when one is bad.
pub fn parse_csv(text: &str) -> Result<Vec<Assignment>, Vec<FieldError>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| l.trim().replace(' ', ""));
    if header.as_deref() != Some("tenantId,plan") {
        return Err(vec![FieldError::new(
            "line 1",
            "must be the header tenantId,plan",
        )]);
    }
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (n, line) in lines {
        let field = format!("line {}", n + 1);
        let Some((tenant, plan)) = line.trim_end_matches('\r').rsplit_once(',') else {
            errors.push(FieldError::new(field, "must be tenantId,plan"));
            continue;
        };
        let (tenant, plan) = (unquote(tenant.trim()), unquote(plan.trim()));
        let (tenant, plan) = (tenant.as_str(), plan.as_str());
        let plan = (!plan.is_empty()).then(|| plan.to_string());
        let checked = check_tenant(&field, tenant)
            .and_then(|_| plan.as_deref().map_or(Ok(()), |p| check_plan(&field, p)));
        match checked {
            Ok(()) => out.push((tenant.to_string(), plan)),
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
