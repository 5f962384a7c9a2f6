//! `burnrate migrate`: copy a whole store into another (the embedded file into a
//! ClickHouse cluster, or any backend into any other) through the store contract, so a
//! team that outgrows one machine keeps its history, keys, budgets and settings.
//!
//! Exact: every stored call is written with its price as stored (never re-priced), its
//! receive time and, for an id-less call, its assigned id (`event::Copied`). Resumable:
//! after each page of calls the target records how far the copy of that workspace got
//! (a control object of kind `migration`); a copy that stops is continued by running the
//! command again, and a page written twice is harmless, since every copied call has an id
//! the target dedupes on. At the end both stores' totals per workspace are compared.
//! A re-priced call keeps its price and when it was re-priced (`repricedAt`). Not
//! copied: the pruned history of retention (sums without calls).

use crate::event::{Copied, CostSource, PricedEvent, Pricing, Status, Tokens};
use crate::query::{Filters, Query, Sums};
use crate::store::{EventQuery, Store, StoredEvent, StoredObject, WorkspaceId, WriteResult};
use anyhow::{anyhow, Context};
use serde_json::json;
use std::collections::BTreeMap;

/// The calls copied per page (one read of the source, one ingest into the target).
const PAGE: usize = 1_000;

/// Where a workspace's copy stands, kept in the target.
pub const PROGRESS_KIND: &str = "migration";

/// Object kinds a store keeps about its own running servers (live nodes, the alert
/// lease) and this command's progress: meaningless in another store, never copied.
const NOT_COPIED: [&str; 3] = ["node", "alert_lease", PROGRESS_KIND];

/// What a migration did, per part.
#[derive(Debug, Default)]
pub struct Report {
    pub workspaces: Vec<WorkspaceReport>,
    pub keys_added: usize,
    pub objects: usize,
    pub books_added: usize,
}

/// One workspace's calls: copied by this run, and both stores' totals afterwards.
#[derive(Debug)]
pub struct WorkspaceReport {
    pub name: String,
    pub copied: u64,
    pub already_there: u64,
    /// Where the source's raw calls start when retention pruned older days (their sums
    /// stay in the source and are not copied); the totals are compared from there.
    pub raw_from_ms: Option<i64>,
    pub source: Sums,
    pub target: Sums,
}

impl WorkspaceReport {
    /// The totals the copy must make equal: calls, attempts, priced calls, cost, tokens,
    /// latency, errors, usage-less and id-less calls.
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// Copy everything of `from` (described as `from_label`, a URL without password) into
/// `to`. `restart` ignores recorded progress and copies every call again (those already
/// there count as duplicates). `page_done` is told each workspace's calls so far.
pub async fn migrate(
    from: &dyn Store,
    from_label: &str,
    to: &dyn Store,
    restart: bool,
    mut page_done: impl FnMut(&str, u64),
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let ids = copy_workspaces(from, to).await?;
    report.books_added = copy_price_books(from, to).await?;
    for key in from.stored_keys().await? {
        report.keys_added += to.copy_key(key).await? as usize;
    }
    report.objects = copy_objects(from, to, &ids).await?;
    for (name, (source_ws, target_ws)) in &ids {
        let (copied, already_there) =
            copy_calls(from, *source_ws, to, *target_ws, from_label, restart, |n| {
                page_done(name, n)
            })
            .await
            .with_context(|| format!("copying the calls of workspace {name}"))?;
        // Retention keeps only the sums of pruned days, which no call carries: the copy
        // holds the raw calls, and both stores are compared from where they start.
        let raw_from = from.raw_from(*source_ws).await?;
        report.workspaces.push(WorkspaceReport {
            name: name.clone(),
            copied,
            already_there,
            raw_from_ms: raw_from,
            source: totals(from, *source_ws, raw_from).await?,
            target: totals(to, *target_ws, raw_from).await?,
        });
    }
    Ok(report)
}

/// Every workspace of `from` in `to` (created when missing, paused alike): name ->
/// (source id, target id).
async fn copy_workspaces(
    from: &dyn Store,
    to: &dyn Store,
) -> anyhow::Result<BTreeMap<String, (WorkspaceId, WorkspaceId)>> {
    let mut ids = BTreeMap::new();
    for ws in from.workspaces().await? {
        let target = match to.workspace(ws.name.clone()).await? {
            Some(t) => t,
            None => to.create_workspace(ws.name.clone()).await?,
        };
        if target.paused != ws.paused {
            to.set_paused(ws.name.clone(), ws.paused).await?;
        }
        ids.insert(ws.name, (ws.id, target.id));
    }
    Ok(ids)
}

/// Every stored price book the target lacks (same kind, version and body), with its
/// import time.
async fn copy_price_books(from: &dyn Store, to: &dyn Store) -> anyhow::Result<usize> {
    let there = to.price_books().await?;
    let mut added = 0;
    for book in from.price_books().await? {
        let same = |b: &&crate::store::StoredBook| {
            b.kind == book.kind && b.version == book.version && b.body == book.body
        };
        if !there.iter().any(|b| same(&b)) {
            to.save_price_book(book).await?;
            added += 1;
        }
    }
    Ok(added)
}

/// Every control object (budgets, plans, channels, alerts, settings, pseudonym secrets,
/// ...) under its own id and times, in the target's workspace of the same name.
async fn copy_objects(
    from: &dyn Store,
    to: &dyn Store,
    ids: &BTreeMap<String, (WorkspaceId, WorkspaceId)>,
) -> anyhow::Result<usize> {
    let mut copied = 0;
    for kinded in from.every_object().await? {
        if NOT_COPIED.contains(&kinded.kind.as_str()) {
            continue;
        }
        let target_ws = ids
            .values()
            .find(|(source, _)| *source == kinded.object.workspace)
            .map(|(_, target)| *target)
            .ok_or_else(|| anyhow!("an object of kind {} has no workspace", kinded.kind))?;
        let object = StoredObject {
            workspace: target_ws,
            ..kinded.object
        };
        to.copy_object(kinded.kind, object).await?;
        copied += 1;
    }
    Ok(copied)
}

/// The progress object of this source in the target workspace, if any: (its id, the
/// cursor to continue from, done).
async fn progress(
    to: &dyn Store,
    ws: WorkspaceId,
    from_label: &str,
) -> anyhow::Result<Option<(i64, Option<String>, bool)>> {
    let found = to.objects(Some(ws), PROGRESS_KIND).await?;
    Ok(found
        .into_iter()
        .find(|o| o.body["source"] == from_label)
        .map(|o| {
            let cursor = o.body["cursor"].as_str().map(str::to_string);
            (o.id, cursor, o.body["done"] == true)
        }))
}

/// Copy one workspace's calls page by page, newest first, continuing where a previous
/// run stopped unless `restart`. Returns (calls new to the target, calls it had).
async fn copy_calls(
    from: &dyn Store,
    source_ws: WorkspaceId,
    to: &dyn Store,
    target_ws: WorkspaceId,
    from_label: &str,
    restart: bool,
    mut page_done: impl FnMut(u64),
) -> anyhow::Result<(u64, u64)> {
    let recorded = progress(to, target_ws, from_label).await?;
    let (mut cursor, done) = match (&recorded, restart) {
        (Some((_, cursor, done)), false) => (cursor.clone(), *done),
        _ => (None, false),
    };
    let mut progress_id = recorded.map(|(id, _, _)| id);
    let (mut copied, mut already_there) = (0u64, 0u64);
    if done {
        return Ok((0, 0));
    }
    loop {
        let query = EventQuery {
            cursor: cursor.clone(),
            limit: PAGE,
            ..EventQuery::default()
        };
        let page = from.events(source_ws, query).await?;
        let mut events = Vec::with_capacity(page.events.len());
        let mut calls = Vec::with_capacity(page.events.len());
        for stored in &page.events {
            calls.push(events.len());
            events.extend(with_attempts(copied_call(stored)?, stored.attempts));
        }
        if !events.is_empty() {
            let outcome = to.ingest(target_ws, events).await?;
            for i in calls {
                match outcome.results[i] {
                    WriteResult::Duplicate => already_there += 1,
                    _ => copied += 1,
                }
            }
        }
        cursor = page.next_cursor;
        let body = json!({"source": from_label, "cursor": cursor, "done": cursor.is_none(),
            "copiedCalls": copied});
        progress_id = Some(
            to.put_object(target_ws, PROGRESS_KIND, progress_id, body)
                .await?,
        );
        page_done(copied + already_there);
        if cursor.is_none() {
            return Ok((copied, already_there));
        }
    }
}

/// A stored call as the event to write into another store: its values, its price as
/// stored, its receive time and (id-less) its assigned id.
pub fn copied_call(s: &StoredEvent) -> anyhow::Result<PricedEvent> {
    let event = s
        .event()
        .map_err(|e| anyhow!("a stored call cannot be read back: {e}"))?;
    let source = match s.cost_source {
        Some(text) => Some(
            CostSource::parse(text)
                .ok_or_else(|| anyhow!("a stored call has an unknown costSource `{text}`"))?,
        ),
        None => None,
    };
    Ok(PricedEvent {
        event,
        pricing: Pricing {
            cost: s.cost_usd,
            source,
            price_entry_id: s.price_entry_id.clone(),
            price_book_version: s.price_book_version.clone(),
        },
        copied: Some(Copied {
            received_at_ms: ms(&s.received_at)?,
            idless_id: s.idless.then(|| s.external_request_id.clone()),
            repriced_at_ms: s.repriced_at.as_deref().map(ms).transpose()?,
        }),
    })
}

/// The call's winning attempt and, when the first store saw `attempts` of them, one
/// placeholder per other attempt, so the copy counts its attempts (the retry ratio)
/// alike. Only the winner's usage and price were stored; a placeholder has none (no
/// usage, an error), so it ranks below the winner and never changes the call. It takes
/// an attempt number after the winner's (before it only past attempt 64).
fn with_attempts(winner: PricedEvent, attempts: u32) -> Vec<PricedEvent> {
    let max = crate::validate::MAX_ATTEMPT as u8;
    let others = (winner.event.attempt + 1..=max).chain((1..winner.event.attempt).rev());
    let placeholders: Vec<PricedEvent> = others
        .take(attempts.saturating_sub(1) as usize)
        .map(|attempt| {
            let mut p = winner.clone();
            let e = &mut p.event;
            e.attempt = attempt;
            e.tokens = Tokens::default();
            e.image_count = 0;
            e.usage_missing = true;
            e.status = Status::Error;
            e.error_code = None;
            e.latency_ms = None;
            // A placeholder was never re-priced (it never wins the call anyway).
            if let Some(c) = &mut p.copied {
                c.repriced_at_ms = None;
            }
            p.pricing = Pricing {
                cost: None,
                source: None,
                price_entry_id: None,
                price_book_version: None,
            };
            p
        })
        .collect();
    std::iter::once(winner).chain(placeholders).collect()
}

fn ms(text: &str) -> anyhow::Result<i64> {
    let ts: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("a stored time `{text}` is not RFC 3339"))?;
    Ok(ts.as_millisecond())
}

/// Everything a workspace holds from `from` (None: all time), summed: the store's own
/// answer, every environment and data mode.
async fn totals(store: &dyn Store, ws: WorkspaceId, from: Option<i64>) -> anyhow::Result<Sums> {
    // From the first time ingest accepts to the end of tomorrow (UTC days: whole days
    // read from the rollups).
    const DAY_MS: i64 = 86_400_000;
    let now = jiff::Timestamp::now().as_millisecond();
    let tomorrow = (now + crate::validate::MAX_FUTURE_MS) / DAY_MS + 1;
    let query = Query {
        from_ms: from.unwrap_or(crate::validate::MIN_TIMESTAMP_MS),
        to_ms: tomorrow * DAY_MS,
        filters: Filters::default(),
        group_by: Vec::new(),
        bucket: None,
        measures: vec![crate::query::Measure::Requests],
        order_by: None,
        ascending: false,
        limit: 1,
        count_by_first: false,
    };
    Ok(store.aggregate(ws, query).await?.total())
}
