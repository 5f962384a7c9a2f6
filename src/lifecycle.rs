//! Data lifecycle beyond backups: retention (prune raw events older than a workspace's
//! `rawRetentionDays`, the rollups keep their sums) and erasure (delete one tenant's or
//! user's events everywhere, leaving an audit record that does not identify them). The
//! server's background pass, `burnrate prune`, `burnrate erase` and `POST /v1/erasure`
//! all come through here; the store contract does the exact work.

use crate::money::Usd;
use crate::privacy::Slot;
use crate::settings::IngestSettings;
use crate::store::{
    Pricer, Removed, RepriceOutcome, RepriceScope, RepriceTarget, Result, Store, Subject,
    WorkspaceId,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// The control object kind of erasure audit records.
pub const ERASURE_KIND: &str = "erasure";

/// What takes an erased id's place in free text (alert messages and evidence, deploy
/// notes, ...).
pub const ERASED_MARKER: &str = "[erased]";

/// The control object kinds whose text may mention a tenant or user by id, searched
/// whole (every string and every key): alerts (title, text, evidence, drivers, key,
/// link), delivery records and the member alert covers (member keys). Deploy notes are
/// searched in every field's text (`redact_deploy_note`), budgets in their name only (`erase_from_objects` handles their
/// scope and overrides). Channels are not: they are the operator's configuration
/// (addresses, secrets), not derived from events.
const FREE_TEXT_KINDS: [&str; 3] = [
    crate::alert::engine::ALERT,
    crate::alert::engine::DELIVERY,
    crate::alert::members::COVER,
];

const DAY_MS: i64 = 86_400_000;

/// What a retention run did for one workspace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    pub workspace: String,
    pub retention_days: u32,
    /// Raw events exist from this UTC day on (RFC 3339), when anything was ever pruned.
    pub raw_from: Option<String>,
    /// Raw events (logical calls) this run deleted; their sums stay in the rollups.
    pub events: u64,
    /// Exact decimal text of their priced cost.
    pub cost_usd: String,
    pub unpriced: u64,
}

/// Prune `ws`'s raw events older than `days` whole UTC days before `now_ms`: everything
/// before the start of the UTC day `days` days ago.
pub async fn prune(store: &dyn Store, ws: WorkspaceId, days: u32, now_ms: i64) -> Result<Removed> {
    let before = now_ms - i64::from(days) * DAY_MS;
    store.prune_before(ws, before).await
}

/// Prune every workspace that has a retention setting (the server's daily pass and
/// `burnrate prune` without --days).
pub async fn prune_all(store: &dyn Store, now_ms: i64) -> Result<Vec<Pruned>> {
    let mut done = Vec::new();
    for workspace in store.workspaces().await? {
        let settings = crate::settings::load_stored(store, workspace.id).await?;
        let Some(days) = settings.raw_retention_days else {
            continue;
        };
        done.push(prune_one(store, workspace.id, &workspace.name, days, now_ms).await?);
    }
    Ok(done)
}

/// Prune one workspace and say what it did.
pub async fn prune_one(
    store: &dyn Store,
    ws: WorkspaceId,
    name: &str,
    days: u32,
    now_ms: i64,
) -> Result<Pruned> {
    let removed = prune(store, ws, days, now_ms).await?;
    let raw_from = store.raw_from(ws).await?.map(iso);
    Ok(Pruned {
        workspace: name.to_string(),
        retention_days: days,
        raw_from,
        events: removed.events,
        cost_usd: Usd(removed.cost_nanos).to_string(),
        unpriced: removed.unpriced,
    })
}

/// The audit record of one erasure: what and how much, when and by whom, never the id.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureRecord {
    /// The record's id (control object of kind `erasure`).
    pub id: i64,
    /// "tenant" or "user".
    pub subject: &'static str,
    pub events: u64,
    pub pruned_history_calls: u64,
    /// Exact decimal text of the erased calls' priced cost.
    pub cost_usd: String,
    pub unpriced: u64,
    /// Control objects that named the id and were edited or deleted (id mappings, plan
    /// assignments, revenue entries, budgets' per-member overrides and scopes), and
    /// those whose free text mentioned it, now `[erased]` (alerts, deliveries, member
    /// alert covers, deploy notes, budget names); each object counts once.
    pub objects_edited: u64,
    pub erased_at: String,
    /// Who asked: "cli" or "key <id>".
    pub by: String,
}

/// Erase `subject` (as the client sent it) from `ws`: the stored form is looked up with
/// the workspace's privacy rules (a raw e-mail finds its pseudonym; under `allow` the
/// raw value may be stored too, so both are erased), then an audit record is stored.
pub async fn erase(
    store: &dyn Store,
    settings: &IngestSettings,
    ws: WorkspaceId,
    subject: Subject,
    by: String,
    now_ms: i64,
) -> Result<ErasureRecord> {
    let stored = settings.privacy().lookup(subject.id(), Slot::Id);
    let mut forms = vec![subject.id().to_string()];
    if stored != subject.id() {
        forms.push(stored);
    }
    let kind = subject.kind();
    let mut total = Removed::default();
    let mut edited = BTreeSet::new();
    for id in forms {
        let form = match subject {
            Subject::Tenant(_) => Subject::Tenant(id),
            Subject::User(_) => Subject::User(id),
        };
        erase_from_objects(store, ws, &form, &mut edited).await?;
        erase_from_text(store, ws, form.id(), &mut edited).await?;
        let removed = store.erase(ws, form).await?;
        total.events += removed.events;
        total.pruned_history_calls += removed.pruned_history_calls;
        total.cost_nanos = total
            .cost_nanos
            .checked_add(removed.cost_nanos)
            .ok_or(crate::store::StoreError::SumOverflow)?;
        total.unpriced += removed.unpriced;
    }
    let mut record = ErasureRecord {
        id: 0,
        subject: kind,
        events: total.events,
        pruned_history_calls: total.pruned_history_calls,
        cost_usd: Usd(total.cost_nanos).to_string(),
        unpriced: total.unpriced,
        objects_edited: edited.len() as u64,
        erased_at: iso(now_ms),
        by,
    };
    let body = serde_json::to_value(&record)
        .map_err(|e| crate::store::StoreError::Database(e.to_string()))?;
    record.id = store.put_object(ws, ERASURE_KIND, None, body).await?;
    Ok(record)
}

/// Take the id of `subject` (its stored form) out of the workspace's control objects
/// that name it in a field; adds each object edited or deleted to `edited`:
/// - id mappings (`id_mapping`) of its dimension whose `from` or `to` is the id: deleted;
/// - plan assignments (`plan_assignments`, tenants): the id's lines removed;
/// - revenue entries (`revenue_entries`, tenants): the id's entries removed;
/// - budgets (`budget`): the id's per-member override removed; a budget whose scope
///   names the id (it counts only that person's spend) is deleted.
async fn erase_from_objects(
    store: &dyn Store,
    ws: WorkspaceId,
    subject: &Subject,
    edited: &mut BTreeSet<(&'static str, i64)>,
) -> Result<()> {
    let id = subject.id();
    let (dimension, scope_field) = match subject {
        Subject::Tenant(_) => ("tenantId", "tenantId"),
        Subject::User(_) => ("userId", "userId"),
    };
    for o in store.objects(Some(ws), crate::mapping::KIND).await? {
        let names = |f: &str| o.body.get(f).and_then(Value::as_str) == Some(id);
        let same_dimension = o.body.get("dimension").and_then(Value::as_str) == Some(dimension);
        if same_dimension && (names("from") || names("to")) {
            store.delete_object(ws, crate::mapping::KIND, o.id).await?;
            edited.insert((crate::mapping::KIND, o.id));
        }
    }
    if matches!(subject, Subject::Tenant(_)) {
        let kind = crate::budget::plans::PLAN_ASSIGNMENTS;
        for mut o in store.objects(Some(ws), kind).await? {
            let Some(lines) = o.body.get("assignments").and_then(Value::as_str) else {
                continue;
            };
            let kept: Vec<&str> = lines
                .lines()
                .filter(|l| l.split_once('\t').map(|(t, _)| t) != Some(id))
                .collect();
            if kept.len() != lines.lines().count() {
                let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
                o.body["assignments"] = Value::String(text);
                store.put_object(ws, kind, Some(o.id), o.body).await?;
                edited.insert((kind, o.id));
            }
        }
        let kind = crate::revenue::REVENUE_ENTRIES;
        for mut o in store.objects(Some(ws), kind).await? {
            let Some(entries) = o.body.get_mut("entries").and_then(Value::as_array_mut) else {
                continue;
            };
            let before = entries.len();
            entries.retain(|e| e.get("tenantId").and_then(Value::as_str) != Some(id));
            if entries.len() != before {
                store.put_object(ws, kind, Some(o.id), o.body).await?;
                edited.insert((kind, o.id));
            }
        }
    }
    let kind = crate::budget::service::BUDGET;
    for mut o in store.objects(Some(ws), kind).await? {
        let scoped = o
            .body
            .get("scope")
            .and_then(|s| s.get(scope_field))
            .and_then(Value::as_str)
            == Some(id);
        if scoped {
            store.delete_object(ws, kind, o.id).await?;
            edited.insert((kind, o.id));
            continue;
        }
        let overridden = o
            .body
            .get_mut("overrides")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove(id))
            .is_some();
        if overridden {
            store.put_object(ws, kind, Some(o.id), o.body).await?;
            edited.insert((kind, o.id));
        }
    }
    Ok(())
}

/// Replace every mention of `id` in the free text of the workspace's control objects
/// (`FREE_TEXT_KINDS` whole, deploy notes' texts, budgets' names) with `ERASED_MARKER`; adds each object
/// changed to `edited`. A link holds the id percent-encoded: that form is replaced too.
async fn erase_from_text(
    store: &dyn Store,
    ws: WorkspaceId,
    id: &str,
    edited: &mut BTreeSet<(&'static str, i64)>,
) -> Result<()> {
    let mut forms = vec![id.to_string()];
    let escaped = crate::alert::members::url_escape(id);
    if escaped != id {
        forms.push(escaped);
    }
    let scrub = |value: &mut Value| {
        let mut n = 0;
        for form in &forms {
            n += redact_json(value, form);
        }
        n
    };
    for kind in FREE_TEXT_KINDS {
        for mut o in store.objects(Some(ws), kind).await? {
            if scrub(&mut o.body) > 0 {
                store.put_object(ws, kind, Some(o.id), o.body).await?;
                edited.insert((kind, o.id));
            }
        }
    }
    let kind = crate::deploy::KIND;
    for mut o in store.objects(Some(ws), kind).await? {
        let n: usize = forms
            .iter()
            .map(|f| redact_deploy_note(&mut o.body, f))
            .sum();
        if n > 0 {
            store.put_object(ws, kind, Some(o.id), o.body).await?;
            edited.insert((kind, o.id));
        }
    }
    let kind = crate::budget::service::BUDGET;
    for mut o in store.objects(Some(ws), kind).await? {
        let Some(name) = o.body.get_mut("name") else {
            continue;
        };
        if scrub(name) > 0 {
            store.put_object(ws, kind, Some(o.id), o.body).await?;
            edited.insert((kind, o.id));
        }
    }
    Ok(())
}

/// Replace `id` with `ERASED_MARKER` in a deploy note's texts (its field names stay), each
/// cut to its longest allowed length should the marker make it longer, so the note still
/// reads (`deploy::parse`); returns how many mentions were replaced.
fn redact_deploy_note(body: &mut Value, id: &str) -> usize {
    use crate::deploy::{MAX_NAME_CHARS, MAX_NOTE_CHARS};
    let limits = [
        ("endpointTag", MAX_NAME_CHARS),
        ("promptVersion", MAX_NAME_CHARS),
        ("author", MAX_NAME_CHARS),
        ("note", MAX_NOTE_CHARS),
    ];
    let mut n = 0;
    for (field, max) in limits {
        let Some(Value::String(text)) = body.get_mut(field) else {
            continue;
        };
        let (new, k) = redact(text, id);
        if k > 0 {
            *text = new.chars().take(max).collect();
            n += k;
        }
    }
    n
}

/// Replace `id` with `ERASED_MARKER` in every string and object key of `value`;
/// returns how many mentions were replaced.
fn redact_json(value: &mut Value, id: &str) -> usize {
    match value {
        Value::String(text) => {
            let (new, n) = redact(text, id);
            if n > 0 {
                *text = new;
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|v| redact_json(v, id)).sum(),
        Value::Object(map) => {
            let mut n = 0;
            let old = std::mem::take(map);
            for (key, mut v) in old {
                let (key, k) = redact(&key, id);
                n += k + redact_json(&mut v, id);
                map.insert(key, v);
            }
            n
        }
        _ => 0,
    }
}

/// `text` with each mention of `id` replaced by `ERASED_MARKER`, and how many there
/// were. A mention stands on its own: the characters around it do not continue an id
/// (`u-1` is mentioned in "for u-1." and "key:u-1:x", not in "u-12" or "su-1"), so a
/// short id does not eat into other ids and words.
pub fn redact(text: &str, id: &str) -> (String, usize) {
    if id.is_empty() {
        return (text.to_string(), 0);
    }
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut rest = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find(id) {
        let start = from + found;
        let end = start + id.len();
        let before = text[..start].chars().next_back();
        let after = &text[end..];
        if !before.is_some_and(continues_id) && !follows_id(after) {
            out.push_str(&text[rest..start]);
            out.push_str(ERASED_MARKER);
            rest = end;
            n += 1;
            from = end;
        } else {
            // Look again one character further.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&text[rest..]);
    (out, n)
}

/// A character that can be part of an id: a letter, a digit, `_ - @ + .`.
fn continues_id(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '@' | '+' | '.')
}

/// Does the text after a match continue the id? A `.` does only when a letter or digit
/// follows it (the end of a sentence is not part of the id).
fn follows_id(after: &str) -> bool {
    let mut chars = after.chars();
    match chars.next() {
        None => false,
        Some('.') => chars.next().is_some_and(char::is_alphanumeric),
        Some(c) => continues_id(c),
    }
}

/// What a re-pricing did, as the CLI and the API show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Repriced {
    /// Calls that were unpriced and are priced now.
    pub repriced: u64,
    /// Exact decimal text of their cost (what totals and budgets grew by).
    pub cost_usd: String,
    /// Unpriced calls of the scope the current book still cannot price.
    pub still_unpriced: u64,
    pub repriced_at: String,
}

/// Price the unpriced calls of `scope` with `book` (the current book and overrides).
/// Priced calls are never touched. Returns the summary and the store's outcome (whose
/// commit and effects the server hands to the budget counters).
pub async fn reprice_unpriced(
    store: &dyn Store,
    book: std::sync::Arc<crate::price::PriceBook>,
    ws: WorkspaceId,
    mut scope: RepriceScope,
    now_ms: i64,
) -> Result<(Repriced, RepriceOutcome)> {
    scope.target = RepriceTarget::Unpriced;
    scope.dry_run = false;
    let outcome = store
        .reprice_unpriced(ws, scope, pricer(book), now_ms)
        .await?;
    let summary = Repriced {
        repriced: outcome.repriced,
        cost_usd: Usd(outcome.cost_nanos).to_string(),
        still_unpriced: outcome.still_unpriced,
        repriced_at: iso(now_ms),
    };
    Ok((summary, outcome))
}

/// The pricer of a re-pricing: the current book at each call's own timestamp.
fn pricer(book: std::sync::Arc<crate::price::PriceBook>) -> Pricer {
    std::sync::Arc::new(move |stored| {
        let event = stored.event().ok()?;
        let pricing = book.price(&event);
        pricing.cost.is_some().then_some(pricing)
    })
}

/// The control object kind of price correction audit records.
pub const CORRECTION_KIND: &str = "price_correction";

/// A deliberate correction of priced history (`prices reprice --entry ID`): what it
/// changed (or, as a dry run, would change). Confirmed, it is also the audit record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Correction {
    /// The audit record's id (control object of kind `price_correction`); None on a
    /// dry run, which stores nothing.
    pub id: Option<i64>,
    pub dry_run: bool,
    /// The price entry whose calls were priced again with the current book.
    pub entry: String,
    /// The window (RFC 3339; None = unbounded) and model the correction was limited to.
    pub from: Option<String>,
    pub to: Option<String>,
    pub model: Option<String>,
    /// Calls priced anew, and calls of the entry left as they were (the current book
    /// prices them the same, or cannot price them).
    pub repriced: u64,
    pub unchanged: u64,
    /// Exact decimal texts: the repriced calls' cost before and after, and after minus
    /// before (what totals and budgets moved by).
    pub cost_before_usd: String,
    pub cost_after_usd: String,
    pub difference_usd: String,
    /// When it was committed (or computed, for a dry run).
    pub at: String,
    /// Who asked: "cli" or "key <id>".
    pub by: String,
}

/// Price again, with `book`, the calls of `ws` priced with `entry` in `scope`'s window
/// (and model). Without `confirm` a dry run: counts and costs, nothing changed. With it,
/// one commit (every aggregate corrected; the outcome's effects are for the budget
/// counters) and an audit record of kind `price_correction`.
#[allow(clippy::too_many_arguments)]
pub async fn correct_entry(
    store: &dyn Store,
    book: std::sync::Arc<crate::price::PriceBook>,
    ws: WorkspaceId,
    mut scope: RepriceScope,
    entry: String,
    confirm: bool,
    by: String,
    now_ms: i64,
) -> Result<(Correction, RepriceOutcome)> {
    scope.target = RepriceTarget::Entry(entry.clone());
    scope.dry_run = !confirm;
    let bound = |ms: i64| (ms != i64::MIN && ms != i64::MAX).then(|| iso(ms));
    let (from, to, model) = (
        bound(scope.from_ms),
        bound(scope.to_ms),
        scope.model.clone(),
    );
    let outcome = store
        .reprice_unpriced(ws, scope, pricer(book), now_ms)
        .await?;
    let difference = outcome
        .cost_nanos
        .checked_sub(outcome.cost_before_nanos)
        .ok_or(crate::store::StoreError::SumOverflow)?;
    let mut record = Correction {
        id: None,
        dry_run: !confirm,
        entry,
        from,
        to,
        model,
        repriced: outcome.repriced,
        unchanged: outcome.unchanged,
        cost_before_usd: Usd(outcome.cost_before_nanos).to_string(),
        cost_after_usd: Usd(outcome.cost_nanos).to_string(),
        difference_usd: Usd(difference).to_string(),
        at: iso(now_ms),
        by,
    };
    if confirm {
        let body = serde_json::to_value(&record)
            .map_err(|e| crate::store::StoreError::Database(e.to_string()))?;
        record.id = Some(store.put_object(ws, CORRECTION_KIND, None, body).await?);
    }
    Ok((record, outcome))
}

/// The workspace's correction audit records, oldest first.
pub async fn corrections(store: &dyn Store, ws: WorkspaceId) -> Result<Vec<serde_json::Value>> {
    Ok(store
        .objects(Some(ws), CORRECTION_KIND)
        .await?
        .into_iter()
        .map(|o| {
            let mut body = o.body;
            body["id"] = serde_json::json!(o.id);
            body
        })
        .collect())
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_replaces_mentions_that_stand_on_their_own() {
        let cases = [
            ("after u-1 left", "after [erased] left", 1),
            ("for u-1.", "for [erased].", 1),
            (
                "budget:3:member:u-1:exceeded",
                "budget:3:member:[erased]:exceeded",
                1,
            ),
            (
                "'u-1', \"u-1\" (u-1)",
                "'[erased]', \"[erased]\" ([erased])",
                3,
            ),
            ("u-1", "[erased]", 1),
            // Other ids that contain it are not mentions of it.
            (
                "u-12 and su-1 and u-1.5 and u-1@x",
                "u-12 and su-1 and u-1.5 and u-1@x",
                0,
            ),
            ("u-12 then u-1", "u-12 then [erased]", 1),
            ("", "", 0),
        ];
        for (text, want, n) in cases {
            assert_eq!(redact(text, "u-1"), (want.to_string(), n), "{text}");
        }
        assert_eq!(redact("x", ""), ("x".to_string(), 0));
        // Multi-byte text around the id.
        assert_eq!(
            redact("é bob@example.com é", "bob@example.com"),
            ("é [erased] é".to_string(), 1)
        );
    }

    #[test]
    fn a_redacted_deploy_note_still_reads() {
        // A 500-character note (the most allowed) mentioning a 3-character id: the
        // 8-character marker would make it 505, so it is cut to 500.
        let note = format!("ab1 {}", "x".repeat(496));
        let mut body = json!({"note": note, "author": "ab1", "time": "2026-11-01T00:00:00Z"});
        assert_eq!(redact_deploy_note(&mut body, "ab1"), 2);
        let read = crate::deploy::parse(&body, i64::MAX / 2).expect("the note reads");
        assert_eq!(read.note, format!("[erased] {}", "x".repeat(491)));
        assert_eq!(read.note.chars().count(), 500);
        assert_eq!(read.author.as_deref(), Some("[erased]"));
        // A field name equal to the id is not touched.
        let mut body = json!({"note": "about the note"});
        assert_eq!(redact_deploy_note(&mut body, "note"), 1);
        assert_eq!(body, json!({"note": "about the [erased]"}));
    }

    #[test]
    fn redact_json_walks_strings_and_keys_but_not_numbers() {
        let mut body = json!({"text": "acme is over", "evidence": {"member": "acme",
            "acme": 5, "n": 7, "list": ["acme", "acme-corp"]}, "key": "b:1:member:acme"});
        assert_eq!(redact_json(&mut body, "acme"), 5);
        assert_eq!(
            body,
            json!({"text": "[erased] is over", "evidence": {"member": "[erased]",
                "[erased]": 5, "n": 7, "list": ["[erased]", "acme-corp"]},
                "key": "b:1:member:[erased]"})
        );
    }
}
