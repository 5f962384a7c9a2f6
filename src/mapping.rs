//! Renames and merges of ids, applied at read time (docs/mappings.md): per workspace, a
//! mapping sends an endpointTag, tenantId or userId value (`from`, or every value with a
//! prefix: `svc:*`) to another (`to`), for events at or after `effectiveFrom` (truncated
//! to the hour) or for all history. Stored events are never rewritten: every read of the
//! store goes through `mapping::Mapped` (`read.rs`), which regroups old values under new
//! ones and widens filters on new values to the old ones. This file is pure: the rules,
//! their checks (no cycles, one rule per value) and the resolution of a value at a time.

mod read;

pub use read::Mapped;

use crate::event::FieldError;
use crate::privacy::{PiiPolicy, Privacy, Slot};
use crate::query::{Dimension, Filters};
use crate::store::{ControlStore, StoreError, WorkspaceId};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The control object kind of a mapping.
pub const KIND: &str = "id_mapping";
/// A mapped value, like an id of the event contract.
pub const MAX_VALUE_CHARS: usize = 128;
pub const MAX_NOTE_CHARS: usize = 500;
/// Mappings per workspace: each is looked at on every read of the dimension.
pub const MAX_MAPPINGS: usize = 1_000;
const HOUR_MS: i64 = 3_600_000;
const FIELDS: &[&str] = &["dimension", "from", "to", "effectiveFrom", "note"];
const DIMENSIONS: &str = "endpointTag, tenantId, userId";

/// One rule: `from` (or every value starting with `prefix`) reads as `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    pub id: i64,
    #[serde(serialize_with = "dimension_name")]
    pub dimension: Dimension,
    /// As written: a value, or a prefix followed by `*`.
    pub from: String,
    pub to: String,
    /// RFC 3339, the start of an hour; None: all history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip)]
    pub effective_from_ms: Option<i64>,
}

fn dimension_name<S: serde::Serializer>(d: &Dimension, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.name())
}

impl Mapping {
    /// The prefix of a prefix rule (`svc:*` -> `svc:`).
    pub fn prefix(&self) -> Option<&str> {
        self.from.strip_suffix('*')
    }

    fn active_at(&self, ts_ms: i64) -> bool {
        self.effective_from_ms.is_none_or(|from| ts_ms >= from)
    }

    fn matches(&self, value: &str) -> bool {
        match self.prefix() {
            Some(p) => value.starts_with(p),
            None => value == self.from,
        }
    }
}

/// Is `dim` one a mapping may name?
pub fn is_mappable(dim: &Dimension) -> bool {
    matches!(
        dim,
        Dimension::EndpointTag | Dimension::TenantId | Dimension::UserId
    )
}

fn text(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    field,
                    format!("must be 1 to {max} characters without control characters"),
                ));
                None
            } else {
                Some(s.clone())
            }
        }
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

/// The start of the hour holding `ms`: the rollups' grain, so a rule's start never
/// splits an hour (and reads of whole hours stay on the rollups).
fn hour_floor(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Check one mapping's JSON on its own (`PUT /v1/mappings`, `burnrate mappings add`):
/// every problem by field. `check_against` then checks it with the workspace's others.
pub fn parse(body: &Value) -> Result<Mapping, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.as_str(),
                format!("is not a mapping field; use {}", FIELDS.join(", ")),
            ));
        }
    }
    let dimension = match obj.get("dimension") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "dimension",
                format!("is required: one of {DIMENSIONS}"),
            ));
            None
        }
        Some(v) => match v.as_str().and_then(Dimension::parse) {
            Some(d) if is_mappable(&d) => Some(d),
            _ => {
                errors.push(FieldError::new(
                    "dimension",
                    format!("must be one of {DIMENSIONS}"),
                ));
                None
            }
        },
    };
    let from = text(obj, "from", MAX_VALUE_CHARS, &mut errors);
    let to = text(obj, "to", MAX_VALUE_CHARS, &mut errors);
    let note = text(obj, "note", MAX_NOTE_CHARS, &mut errors);
    for (field, value) in [("from", &from), ("to", &to)] {
        if value.is_none() && !errors.iter().any(|e| e.field == field) {
            errors.push(FieldError::new(field, "is required"));
        }
    }
    if from.as_deref() == Some("*") {
        errors.push(FieldError::new(
            "from",
            "`*` alone would map every value; a prefix rule needs a prefix (svc:*)",
        ));
    }
    if let Some(to) = &to {
        if to.ends_with('*') {
            errors.push(FieldError::new(
                "to",
                "must be one value; only from may end with * (a prefix)",
            ));
        } else if from.as_deref() == Some(to.as_str()) {
            errors.push(FieldError::new("to", "must differ from from"));
        }
    }
    let effective_from_ms = match obj.get("effectiveFrom") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.parse::<jiff::Timestamp>() {
            Ok(t) if t.as_millisecond() >= crate::validate::MIN_TIMESTAMP_MS => {
                Some(hour_floor(t.as_millisecond()))
            }
            _ => {
                errors.push(FieldError::new(
                    "effectiveFrom",
                    "must be an RFC 3339 date-time (2026-01-31T12:00:00Z), not before 2020",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                "effectiveFrom",
                "must be an RFC 3339 date-time string",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Mapping {
        id: 0,
        dimension: dimension.expect("checked above"),
        from: from.unwrap_or_default(),
        to: to.unwrap_or_default(),
        effective_from: effective_from_ms.map(rfc3339),
        note,
        effective_from_ms,
    })
}

/// Check `new` against the workspace's stored mappings: one rule per (dimension, from),
/// no cycle (a -> b with b -> a, or a prefix rule whose `to` it matches again), and at
/// most MAX_MAPPINGS. Chains (a -> b, b -> c) are fine: a reads as c.
pub fn check_against(existing: &[Mapping], new: &Mapping) -> Result<(), Vec<FieldError>> {
    if existing.len() >= MAX_MAPPINGS {
        return Err(vec![FieldError::new(
            "body",
            format!("this workspace has {MAX_MAPPINGS} mappings, the most it may hold; remove one first"),
        )]);
    }
    if let Some(same) = existing
        .iter()
        .find(|m| m.dimension == new.dimension && m.from == new.from)
    {
        return Err(vec![FieldError::new(
            "from",
            format!(
                "already has mapping {} ({} -> {}); remove it first",
                same.id, same.from, same.to
            ),
        )]);
    }
    let mut all: Vec<Mapping> = existing
        .iter()
        .filter(|m| m.dimension == new.dimension)
        .cloned()
        .collect();
    all.push(Mapping {
        id: -1,
        ..new.clone()
    });
    // Follow the chain from the new rule's `to` through every rule at any time: coming
    // back to a rule already passed is a cycle.
    let mut seen = BTreeSet::from([-1]);
    let mut value = new.to.clone();
    while let Some(next) = step(&all, &value, None) {
        if !seen.insert(next.id) {
            return Err(vec![FieldError::new(
                "to",
                format!(
                    "would make a cycle: {} leads back to {} through the existing mappings",
                    new.to, new.from
                ),
            )]);
        }
        value = next.to.clone();
    }
    Ok(())
}

/// The rule that applies to `value` (at `ts_ms`; None: at any time): an exact rule
/// first, else the longest prefix.
fn step<'a>(rules: &'a [Mapping], value: &str, ts_ms: Option<i64>) -> Option<&'a Mapping> {
    let live = |m: &&Mapping| ts_ms.is_none_or(|t| m.active_at(t)) && m.matches(value);
    rules
        .iter()
        .filter(live)
        .find(|m| m.prefix().is_none())
        .or_else(|| {
            rules
                .iter()
                .filter(live)
                .max_by_key(|m| m.prefix().map(str::len))
        })
}

/// A workspace's mappings, by dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    by_dim: BTreeMap<Dimension, Vec<Mapping>>,
}

impl Rules {
    pub fn new(mappings: Vec<Mapping>) -> Rules {
        let mut by_dim: BTreeMap<Dimension, Vec<Mapping>> = BTreeMap::new();
        for m in mappings {
            by_dim.entry(m.dimension.clone()).or_default().push(m);
        }
        Rules { by_dim }
    }

    pub fn is_empty(&self) -> bool {
        self.by_dim.is_empty()
    }

    pub fn has(&self, dim: &Dimension) -> bool {
        self.by_dim.contains_key(dim)
    }

    fn of(&self, dim: &Dimension) -> &[Mapping] {
        self.by_dim.get(dim).map(Vec::as_slice).unwrap_or_default()
    }

    /// What `value` of `dim` (a label as answers show it, so the missing-value label
    /// too) reads as at `ts_ms`: the end of its chain of rules in force then.
    pub fn resolve(&self, dim: &Dimension, value: &str, ts_ms: i64) -> String {
        let rules = self.of(dim);
        let mut value = value.to_string();
        // Writes refuse cycles; the bound only guards rows edited by hand.
        for _ in 0..=rules.len() {
            match step(rules, &value, Some(ts_ms)) {
                Some(m) => value = m.to.clone(),
                None => break,
            }
        }
        value
    }

    /// `resolve` for an optional stored value (None is the missing-value label): None
    /// stays None unless a rule maps the label.
    pub fn resolve_opt(&self, dim: &Dimension, value: Option<&str>, ts_ms: i64) -> Option<String> {
        let label = value.unwrap_or(dim.missing_label());
        let to = self.resolve(dim, label, ts_ms);
        (value.is_some() || to != label).then_some(to)
    }

    /// Map a call's endpointTag, tenantId and userId in place, as reads would at `ts_ms`:
    /// the commit effects the budget counters get, and the guard's request.
    pub fn map_call(
        &self,
        endpoint_tag: &mut String,
        tenant_id: &mut Option<String>,
        user_id: &mut Option<String>,
        ts_ms: i64,
    ) {
        if self.is_empty() {
            return;
        }
        *endpoint_tag = self.resolve(&Dimension::EndpointTag, endpoint_tag, ts_ms);
        *tenant_id = self.resolve_opt(&Dimension::TenantId, tenant_id.as_deref(), ts_ms);
        *user_id = self.resolve_opt(&Dimension::UserId, user_id.as_deref(), ts_ms);
    }

    /// Does a query grouping by `group_by` and filtering on `filters` meet a rule?
    pub fn touches(&self, group_by: &[Dimension], filters: &Filters) -> bool {
        group_by.iter().any(|d| self.has(d))
            || filters
                .text
                .iter()
                .any(|(d, values)| !values.is_empty() && self.has(d))
    }

    /// The times in `(from, to)` where the rules in force change: `[from, to)` is read
    /// in pieces between them, each under one set of rules.
    pub fn segments(&self, from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
        let starts: BTreeSet<i64> = self
            .by_dim
            .values()
            .flatten()
            .filter_map(|m| m.effective_from_ms)
            .filter(|&t| t > from_ms && t < to_ms)
            .collect();
        let mut cuts = vec![from_ms];
        cuts.extend(starts);
        cuts.push(to_ms);
        cuts.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Does `dim` have a prefix rule in force at `ts_ms` (so its stored values must be
    /// listed to know which ones a filter selects)?
    pub fn has_prefix_rule(&self, dim: &Dimension, ts_ms: i64) -> bool {
        self.of(dim)
            .iter()
            .any(|m| m.prefix().is_some() && m.active_at(ts_ms))
    }

    /// Every stored value that may read as one of `wanted` at some time (exact rules
    /// only: with a prefix rule the stored values must be listed): a superset, each event
    /// is then checked at its own time.
    pub fn candidates(&self, dim: &Dimension, wanted: &[String]) -> Vec<String> {
        let mut out = wanted.to_vec();
        for m in self.of(dim) {
            if m.prefix().is_none() && !out.contains(&m.from) {
                out.push(m.from.clone());
            }
        }
        out
    }

    /// The stored values of `dim` that read as one of `wanted` at `ts_ms`, among `wanted`
    /// themselves, the `from` of every exact rule and `known` (the stored values listed,
    /// needed when a prefix rule is in force).
    pub fn preimage(
        &self,
        dim: &Dimension,
        wanted: &[String],
        known: &[String],
        ts_ms: i64,
    ) -> Vec<String> {
        let candidates = wanted.iter().chain(known).map(String::as_str).chain(
            self.of(dim)
                .iter()
                .filter(|m| m.prefix().is_none())
                .map(|m| m.from.as_str()),
        );
        let mut out: Vec<String> = Vec::new();
        for c in candidates {
            if wanted.contains(&self.resolve(dim, c, ts_ms)) && !out.iter().any(|o| o == c) {
                out.push(c.to_string());
            }
        }
        out
    }
}

/// How long a workspace's rules are reused before they are read again: a mapping
/// written through the same cache applies at once; one written by another process (the
/// CLI against the same file, another node) within this. `get` reads again when a
/// request finds them older; the guard's `cached` never waits for that read: the
/// server's loop (`refresh_cached`) rereads them every `RULES_TTL`.
pub const RULES_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Each workspace's rules, read at most once per RULES_TTL (reads and the guard ask on
/// every request).
#[derive(Default)]
pub struct RulesCache {
    map: std::sync::Mutex<CachedRules>,
}

#[derive(Default)]
struct CachedRules {
    rules: std::collections::HashMap<WorkspaceId, (std::time::Instant, std::sync::Arc<Rules>)>,
    /// Grows at every `forget`: rules read before a write must not be stored after it.
    forgotten: u64,
}

impl RulesCache {
    pub async fn get<S: ControlStore + ?Sized>(
        &self,
        store: &S,
        ws: WorkspaceId,
    ) -> Result<std::sync::Arc<Rules>, StoreError> {
        if let Some((at, rules)) = self.map.lock().expect("rules cache").rules.get(&ws) {
            if at.elapsed() < RULES_TTL {
                return Ok(rules.clone());
            }
        }
        self.read(store, ws).await
    }

    /// The workspace's rules as last read, however old (`refresh_cached` keeps them
    /// fresh); read now only the first time (or after a write through this cache).
    pub async fn cached<S: ControlStore + ?Sized>(
        &self,
        store: &S,
        ws: WorkspaceId,
    ) -> Result<std::sync::Arc<Rules>, StoreError> {
        if let Some((_, rules)) = self.map.lock().expect("rules cache").rules.get(&ws) {
            return Ok(rules.clone());
        }
        self.read(store, ws).await
    }

    /// Read every cached workspace's rules again (the server's loop, off the requests'
    /// path); a workspace whose read fails keeps its rules until the next pass.
    pub async fn refresh_cached<S: ControlStore + ?Sized>(&self, store: &S) {
        let workspaces: Vec<WorkspaceId> = {
            let map = self.map.lock().expect("rules cache");
            map.rules.keys().copied().collect()
        };
        for ws in workspaces {
            if let Err(e) = self.read(store, ws).await {
                tracing::warn!(error = %e, "id mappings reread failed; the last read stays");
            }
        }
    }

    async fn read<S: ControlStore + ?Sized>(
        &self,
        store: &S,
        ws: WorkspaceId,
    ) -> Result<std::sync::Arc<Rules>, StoreError> {
        let forgotten = self.map.lock().expect("rules cache").forgotten;
        let fresh = std::sync::Arc::new(rules(store, ws).await?);
        let mut map = self.map.lock().expect("rules cache");
        if map.forgotten == forgotten {
            map.rules
                .insert(ws, (std::time::Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// Read the workspace's rules again on the next `get` (after a write).
    pub fn forget(&self, ws: WorkspaceId) {
        let mut map = self.map.lock().expect("rules cache");
        map.rules.remove(&ws);
        map.forgotten += 1;
    }
}

/// Every stored mapping of the workspace, oldest first (rows that no longer read are
/// left out).
pub async fn list<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
) -> Result<Vec<Mapping>, StoreError> {
    Ok(store
        .objects(Some(ws), KIND)
        .await?
        .into_iter()
        .filter_map(|o| parse(&o.body).ok().map(|m| Mapping { id: o.id, ..m }))
        .collect())
}

/// The workspace's rules for reads.
pub async fn rules<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
) -> Result<Rules, StoreError> {
    Ok(Rules::new(list(store, ws).await?))
}

/// Name a tenantId or userId mapping's values as ingest stores them: a value that looks
/// like an e-mail or a phone becomes its pseudonym (the raw value is never stored, here
/// either), under `reject` too (a lookup, as `Privacy::lookup`); under `allow` it stays.
/// A prefix is kept as written. Endpoint tags are never pseudonymized.
fn stored_names(mut m: Mapping, privacy: &Privacy) -> Result<Mapping, Vec<FieldError>> {
    if m.dimension == Dimension::EndpointTag {
        return Ok(m);
    }
    let privacy = Privacy {
        policy: match privacy.policy {
            PiiPolicy::Reject => PiiPolicy::Pseudonymize,
            other => other,
        },
        ..*privacy
    };
    let mut errors = Vec::new();
    if m.prefix().is_none() {
        privacy.map_in_place("from", &mut m.from, Slot::Id, &mut errors);
    }
    privacy.map_in_place("to", &mut m.to, Slot::Id, &mut errors);
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(errors)
    }
}

/// Check `body` against the workspace's mappings and store it: the mapping with its id,
/// or every field at fault. `privacy` (the workspace's, with its secret) names personal
/// values by their pseudonyms, as events store them.
pub async fn add<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
    body: &Value,
    privacy: &Privacy<'_>,
) -> Result<Result<Mapping, Vec<FieldError>>, StoreError> {
    let new = match parse(body).and_then(|m| stored_names(m, privacy)) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let existing = list(store, ws).await?;
    if let Err(e) = check_against(&existing, &new) {
        return Ok(Err(e));
    }
    let stored = json!({"dimension": new.dimension.name(), "from": new.from, "to": new.to,
                        "effectiveFrom": new.effective_from, "note": new.note});
    let id = store.put_object(ws, KIND, None, stored).await?;
    Ok(Ok(Mapping { id, ..new }))
}

/// Remove mapping `id`: false if there was none.
pub async fn remove<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
    id: i64,
) -> Result<bool, StoreError> {
    store.delete_object(ws, KIND, id).await
}

#[cfg(test)]
mod tests;
