//! `Mapped`: a store whose reads apply the workspace's mappings. `store::open` wraps
//! every backend in it, so every stage (report, budgets, alerts, explain, margin, the
//! CLI) sees the same renamed groups. Writes pass through untouched; only the cost
//! changes a commit reports are mapped, so the budget counters count spend of an old
//! tenant under its new name, as their load through `aggregate` does.
//!
//! An aggregate touching a mapped dimension is read in pieces between the rules' start
//! hours (one set of rules in force in each piece): each piece's filters on a mapped
//! dimension become the stored values that read as the asked ones, its rows come back
//! whole (no limit), their group values are mapped and merged with checked adds, and
//! the query's order and limit are applied to the merged rows.

use super::{Rules, RulesCache, KIND};
use crate::query::{Answer, Dimension, Measure, Query, Row, Sums};
use crate::store::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A piece's rows come back whole: the limit applies after the merge.
const NO_LIMIT: usize = usize::MAX;
/// Reads of the pieces are repeated (at most this often) until all saw the same commit,
/// so `Answer::seen` is exact for the budget counters.
const SAME_COMMIT_TRIES: usize = 5;
/// Inner pages of the event list read for one page when most rows are filtered out.
const MAX_INNER_PAGES: usize = 20;

pub struct Mapped {
    inner: Arc<dyn Store>,
    cache: RulesCache,
}

impl Mapped {
    /// A newest-first read of at most `limit` values (`read` asks the inner store): as
    /// is when no mapping touches the query's filters, else piece by piece between the
    /// rules' start hours, newest piece first, each asked for what the limit still
    /// allows.
    async fn newest_first<T, F, Fut>(
        &self,
        workspace: WorkspaceId,
        query: Query,
        limit: usize,
        read: F,
    ) -> Result<Vec<T>>
    where
        F: Fn(Query, usize) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>>>,
    {
        let rules = self.rules(workspace).await?;
        if !rules.touches(&[], &query.filters) {
            return read(query, limit).await;
        }
        let mut out = Vec::new();
        for span in rules.segments(query.from_ms, query.to_ms).into_iter().rev() {
            if out.len() >= limit {
                break;
            }
            if let Some(piece) = self.piece(workspace, &rules, &query, span).await? {
                out.extend(read(piece, limit - out.len()).await?);
            }
        }
        Ok(out)
    }

    pub fn new(inner: Arc<dyn Store>) -> Mapped {
        Mapped {
            inner,
            cache: RulesCache::default(),
        }
    }

    async fn rules(&self, ws: WorkspaceId) -> Result<Arc<Rules>> {
        self.cache.get(self.inner.as_ref(), ws).await
    }

    fn forget(&self, ws: WorkspaceId) {
        self.cache.forget(ws);
    }

    /// The stored values of `dim` in `query`'s window and filters (its filter on `dim`
    /// left out).
    async fn stored_values(
        &self,
        ws: WorkspaceId,
        query: &Query,
        dim: &Dimension,
    ) -> Result<Vec<String>> {
        let mut filters = query.filters.clone();
        filters.text.remove(dim);
        let list = Query {
            filters,
            group_by: vec![dim.clone()],
            bucket: None,
            measures: vec![Measure::Requests],
            order_by: None,
            ascending: false,
            limit: NO_LIMIT,
            ..query.clone()
        };
        let answer = self.inner.aggregate(ws, list).await?;
        Ok(answer
            .rows
            .into_iter()
            .filter_map(|r| r.group.into_iter().next())
            .collect())
    }

    /// `query` over `[from, to)` in stored values: None when a filter selects nothing.
    async fn piece(
        &self,
        ws: WorkspaceId,
        rules: &Rules,
        query: &Query,
        (from, to): (i64, i64),
    ) -> Result<Option<Query>> {
        let mut piece = Query {
            from_ms: from,
            to_ms: to,
            limit: NO_LIMIT,
            ..query.clone()
        };
        for (dim, wanted) in &query.filters.text {
            if wanted.is_empty() || !rules.has(dim) {
                continue;
            }
            let known = if rules.has_prefix_rule(dim, from) {
                self.stored_values(ws, &piece, dim).await?
            } else {
                Vec::new()
            };
            let stored = rules.preimage(dim, wanted, &known, from);
            if stored.is_empty() {
                return Ok(None);
            }
            piece.filters.text.insert(dim.clone(), stored);
        }
        Ok(Some(piece))
    }

    /// Every piece's rows, mapped and merged, and the lowest and highest commit the
    /// pieces saw.
    async fn merged(
        &self,
        ws: WorkspaceId,
        rules: &Rules,
        query: &Query,
    ) -> Result<(Vec<Row>, u64, u64)> {
        let mut merged: BTreeMap<(Option<i64>, Vec<String>), Sums> = BTreeMap::new();
        let (mut low, mut high) = (u64::MAX, 0);
        for span in rules.segments(query.from_ms, query.to_ms) {
            let Some(piece) = self.piece(ws, rules, query, span).await? else {
                continue;
            };
            let answer = self.inner.aggregate(ws, piece).await?;
            (low, high) = (low.min(answer.seen), high.max(answer.seen));
            for row in answer.rows {
                let group = query
                    .group_by
                    .iter()
                    .zip(row.group)
                    .map(|(dim, value)| rules.resolve(dim, &value, span.0))
                    .collect();
                merged
                    .entry((row.bucket_ms, group))
                    .or_default()
                    .add(&row.sums)?;
            }
        }
        if high == 0 {
            // Every piece selected nothing: an empty window still says what it saw.
            let empty = Query {
                to_ms: query.from_ms,
                ..query.clone()
            };
            let seen = self.inner.aggregate(ws, empty).await?.seen;
            (low, high) = (seen, seen);
        }
        let rows = merged
            .into_iter()
            .map(|((bucket_ms, group), sums)| Row {
                group,
                bucket_ms,
                sums,
            })
            .collect();
        Ok((rows, low, high))
    }

    /// Map the dimensions of a commit's cost changes as reads map them (at each call's
    /// time). The commit is done: when the rules cannot be read the effects stay as
    /// stored (the counters' next spend refresh, which reads through the mappings,
    /// corrects them) rather than failing a request whose events are stored.
    async fn map_effects(&self, ws: WorkspaceId, effects: &mut [SpendEffect]) {
        if effects.is_empty() {
            return;
        }
        let rules = match self.rules(ws).await {
            Ok(rules) => rules,
            Err(e) => {
                tracing::warn!(error = %e, "id mappings unreadable; cost changes left unmapped");
                return;
            }
        };
        for e in effects.iter_mut() {
            rules.map_call(
                &mut e.endpoint_tag,
                &mut e.tenant_id,
                &mut e.user_id,
                e.ts_ms,
            );
        }
    }
}

/// Does a stored event read as one of the filter's values on every mapped dimension?
fn event_matches(rules: &Rules, filters: &crate::query::Filters, e: &StoredEvent) -> bool {
    let ts = e
        .timestamp
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or(0);
    filters.text.iter().all(|(dim, wanted)| {
        if wanted.is_empty() || !rules.has(dim) {
            return true;
        }
        let stored = match dim {
            Dimension::EndpointTag => Some(e.endpoint_tag.as_str()),
            Dimension::TenantId => e.tenant_id.as_deref(),
            Dimension::UserId => e.user_id.as_deref(),
            _ => return true,
        };
        let label = stored.unwrap_or(dim.missing_label());
        wanted.contains(&rules.resolve(dim, label, ts))
    })
}

#[async_trait]
impl EventStore for Mapped {
    async fn warm_up(&self) -> Result<()> {
        self.inner.warm_up().await
    }

    async fn ingest_counted(
        &self,
        workspace: WorkspaceId,
        events: Vec<crate::event::PricedEvent>,
        tally: FieldTally,
    ) -> Result<IngestOutcome> {
        let mut outcome = self.inner.ingest_counted(workspace, events, tally).await?;
        self.map_effects(workspace, &mut outcome.effects).await;
        Ok(outcome)
    }

    fn ingest_part_size(&self) -> Option<usize> {
        self.inner.ingest_part_size()
    }

    async fn ingest_parts(
        &self,
        workspace: WorkspaceId,
        parts: Vec<Vec<crate::event::PricedEvent>>,
        tally: FieldTally,
    ) -> Vec<Result<IngestOutcome>> {
        let mut outcomes = self.inner.ingest_parts(workspace, parts, tally).await;
        for outcome in outcomes.iter_mut().flatten() {
            self.map_effects(workspace, &mut outcome.effects).await;
        }
        outcomes
    }

    /// Filters on a mapped dimension select the events that read as the value: the
    /// store is asked for every candidate (all values when a prefix rule may apply) and
    /// each event is checked at its own time. Events are listed as stored. A page may
    /// hold fewer than `limit` events; `next_cursor` says whether more follow.
    async fn events(&self, workspace: WorkspaceId, query: EventQuery) -> Result<EventPage> {
        let Some(filters) = query.filters.clone() else {
            return self.inner.events(workspace, query).await;
        };
        let rules = self.rules(workspace).await?;
        if !rules.touches(&[], &filters) {
            return self.inner.events(workspace, query).await;
        }
        let mut wide = filters.clone();
        // With a prefix rule any stored value may qualify: the dimension is not filtered
        // in the store (the key removed: a store may read an empty list as "none").
        wide.text
            .retain(|dim, wanted| wanted.is_empty() || !rules.has_prefix_rule(dim, i64::MAX));
        for (dim, wanted) in wide.text.iter_mut() {
            if !wanted.is_empty() && rules.has(dim) {
                *wanted = rules.candidates(dim, wanted);
            }
        }
        let mut inner_query = EventQuery {
            filters: Some(wide),
            ..query
        };
        for _ in 0..MAX_INNER_PAGES {
            let page = self.inner.events(workspace, inner_query.clone()).await?;
            let events: Vec<StoredEvent> = page
                .events
                .into_iter()
                .filter(|e| event_matches(&rules, &filters, e))
                .collect();
            if !events.is_empty() || page.next_cursor.is_none() {
                return Ok(EventPage {
                    events,
                    next_cursor: page.next_cursor,
                });
            }
            inner_query.cursor = page.next_cursor;
        }
        Ok(EventPage {
            events: Vec::new(),
            next_cursor: inner_query.cursor,
        })
    }

    async fn aggregate(&self, workspace: WorkspaceId, query: Query) -> Result<Answer> {
        let rules = self.rules(workspace).await?;
        if !rules.touches(&query.group_by, &query.filters) {
            return self.inner.aggregate(workspace, query).await;
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let (rows, low, high) = self.merged(workspace, &rules, &query).await?;
            if low == high || tries == SAME_COMMIT_TRIES {
                let mut answer = crate::query::answer(&query, rows)?;
                answer.seen = high;
                return Ok(answer);
            }
        }
    }

    async fn unpriced_models(&self) -> Result<Vec<UnpricedModel>> {
        self.inner.unpriced_models().await
    }

    /// Endpoints as mapped at the newest sighting; a merged pair keeps the earliest
    /// first and the latest last sighting.
    async fn versions_seen(
        &self,
        workspace: WorkspaceId,
        filters: crate::query::Filters,
    ) -> Result<Vec<VersionSeen>> {
        let seen = self.inner.versions_seen(workspace, filters).await?;
        let rules = self.rules(workspace).await?;
        if !rules.has(&Dimension::EndpointTag) {
            return Ok(seen);
        }
        let mut merged: BTreeMap<(String, String), VersionSeen> = BTreeMap::new();
        for mut v in seen {
            v.endpoint_tag = rules.resolve(&Dimension::EndpointTag, &v.endpoint_tag, v.last_ms);
            let key = (v.endpoint_tag.clone(), v.prompt_version.clone());
            merged
                .entry(key)
                .and_modify(|m| {
                    m.first_ms = m.first_ms.min(v.first_ms);
                    m.last_ms = m.last_ms.max(v.last_ms);
                })
                .or_insert(v);
        }
        Ok(merged.into_values().collect())
    }

    /// The pieces newest first, each asked for what the limit still allows.
    async fn request_values(
        &self,
        workspace: WorkspaceId,
        query: Query,
        limit: usize,
    ) -> Result<Vec<RequestValues>> {
        self.newest_first(workspace, query, limit, |q, n| {
            self.inner.request_values(workspace, q, n)
        })
        .await
    }

    async fn latencies(
        &self,
        workspace: WorkspaceId,
        query: Query,
        limit: usize,
    ) -> Result<Vec<u32>> {
        self.newest_first(workspace, query, limit, |q, n| {
            self.inner.latencies(workspace, q, n)
        })
        .await
    }

    /// The inner store's one read when no mapping touches the groups or filters; else
    /// group by group (`latency_percentiles_by_group`) through this store's own mapped
    /// `aggregate` and `latencies`, so renamed groups merge before they are ranked.
    async fn latency_percentiles(
        &self,
        workspace: WorkspaceId,
        query: Query,
        limit: usize,
        percent: u32,
    ) -> Result<Vec<GroupLatency>> {
        let rules = self.rules(workspace).await?;
        if !rules.touches(&query.group_by, &query.filters) {
            return self
                .inner
                .latency_percentiles(workspace, query, limit, percent)
                .await;
        }
        latency_percentiles_by_group(self, workspace, query, limit, percent).await
    }

    async fn stored_ids(&self, workspace: WorkspaceId, ids: Vec<String>) -> Result<Vec<String>> {
        self.inner.stored_ids(workspace, ids).await
    }

    async fn freshness(&self, workspace: WorkspaceId) -> Result<Option<Freshness>> {
        self.inner.freshness(workspace).await
    }

    async fn event_count(&self) -> Result<u64> {
        self.inner.event_count().await
    }

    async fn check_writable(&self) -> Result<()> {
        self.inner.check_writable().await
    }

    async fn backup_to(&self, to: std::path::PathBuf) -> Result<u64> {
        self.inner.backup_to(to).await
    }

    async fn prune_before(&self, workspace: WorkspaceId, before_ms: i64) -> Result<Removed> {
        self.inner.prune_before(workspace, before_ms).await
    }
    async fn raw_from(&self, workspace: WorkspaceId) -> Result<Option<i64>> {
        self.inner.raw_from(workspace).await
    }
    /// Erases the stored value named (mappings do not widen an erasure: the caller
    /// names what was stored).
    async fn erase(&self, workspace: WorkspaceId, subject: Subject) -> Result<Removed> {
        self.inner.erase(workspace, subject).await
    }
    /// The commit's cost changes reach the budget counters under mapped names, as
    /// ingest's do.
    async fn reprice_unpriced(
        &self,
        workspace: WorkspaceId,
        scope: RepriceScope,
        pricer: Pricer,
        at_ms: i64,
    ) -> Result<RepriceOutcome> {
        let mut outcome = self
            .inner
            .reprice_unpriced(workspace, scope, pricer, at_ms)
            .await?;
        self.map_effects(workspace, &mut outcome.effects).await;
        Ok(outcome)
    }

    async fn seal(&self, now_ms: i64) -> Result<u64> {
        self.inner.seal(now_ms).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

#[async_trait]
impl ControlStore for Mapped {
    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>> {
        self.inner.authenticate(key_hash).await
    }
    async fn create_workspace(&self, name: String) -> Result<Workspace> {
        self.inner.create_workspace(name).await
    }
    async fn workspaces(&self) -> Result<Vec<Workspace>> {
        self.inner.workspaces().await
    }
    async fn workspace(&self, name: String) -> Result<Option<Workspace>> {
        self.inner.workspace(name).await
    }
    async fn set_paused(&self, name: String, paused: bool) -> Result<()> {
        self.inner.set_paused(name, paused).await
    }
    async fn create_key(
        &self,
        workspace: String,
        scope: Scope,
        key_hash: String,
        prefix: String,
        name: Option<String>,
    ) -> Result<KeyRecord> {
        self.inner
            .create_key(workspace, scope, key_hash, prefix, name)
            .await
    }
    async fn keys(&self, workspace: Option<String>) -> Result<Vec<KeyRecord>> {
        self.inner.keys(workspace).await
    }
    async fn revoke_key(&self, id_or_prefix: String) -> Result<usize> {
        self.inner.revoke_key(id_or_prefix).await
    }
    async fn live_keys(&self) -> Result<Vec<LiveKey>> {
        self.inner.live_keys().await
    }
    async fn key_generation(&self) -> Result<i64> {
        self.inner.key_generation().await
    }
    async fn claim_first_start(&self) -> Result<bool> {
        self.inner.claim_first_start().await
    }
    async fn price_books(&self) -> Result<Vec<StoredBook>> {
        self.inner.price_books().await
    }
    async fn save_price_book(&self, book: StoredBook) -> Result<()> {
        self.inner.save_price_book(book).await
    }
    async fn remove_price_book(&self, version: String) -> Result<usize> {
        self.inner.remove_price_book(version).await
    }
    async fn price_generation(&self) -> Result<i64> {
        self.inner.price_generation().await
    }
    /// A mapping written here applies to this store's next read.
    async fn put_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: Option<i64>,
        body: serde_json::Value,
    ) -> Result<i64> {
        let id = self.inner.put_object(workspace, kind, id, body).await;
        if kind == KIND {
            self.forget(workspace);
        }
        id
    }
    async fn objects(
        &self,
        workspace: Option<WorkspaceId>,
        kind: &'static str,
    ) -> Result<Vec<StoredObject>> {
        self.inner.objects(workspace, kind).await
    }
    async fn delete_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: i64,
    ) -> Result<bool> {
        let deleted = self.inner.delete_object(workspace, kind, id).await;
        if kind == KIND {
            self.forget(workspace);
        }
        deleted
    }
    async fn stored_keys(&self) -> Result<Vec<StoredKey>> {
        self.inner.stored_keys().await
    }
    async fn copy_key(&self, key: StoredKey) -> Result<bool> {
        self.inner.copy_key(key).await
    }
    async fn every_object(&self) -> Result<Vec<KindedObject>> {
        self.inner.every_object().await
    }
    /// A copied mapping applies to this store's next read.
    async fn copy_object(&self, kind: String, object: StoredObject) -> Result<()> {
        let workspace = object.workspace;
        let copied = self.inner.copy_object(kind.clone(), object).await;
        if kind == KIND {
            self.forget(workspace);
        }
        copied
    }
}
