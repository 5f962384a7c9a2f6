//! The store contract: what a backend must do, split in two. The event store takes
//! ingest commits (each with a commit sequence and its cost changes) and answers the
//! reads; the control store keeps workspaces, keys, control objects and price books.
//! `open(url)` is the only way code gets a store; only `store/<backend>/` holds SQL.

pub mod clickhouse;
mod open;
pub mod sqlite;

pub use open::{open, restore, StoreUrl};

use crate::event::{DataMode, Environment, PricedEvent};
use crate::money::Usd;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;

pub type WorkspaceId = i64;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The writer's queue is full: back-pressure, the client should retry shortly.
    #[error("store is busy")]
    Busy,
    #[error("store is closed")]
    Closed,
    #[error("not found: {0}")]
    NotFound(String),
    /// A cursor this store did not hand out (cursors are opaque to callers).
    #[error("not a cursor of this store")]
    BadCursor,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be written: its disk is full or failing (SQLITE_FULL or an I/O
    /// error). Nothing of the write was kept; writes work again once space returns.
    #[error("storage full or failing: {0}")]
    StorageFull(String),
    /// The store's database server cannot be reached, did not answer in time or is
    /// overloaded (a ClickHouse server down or restarting): nothing of the request was
    /// acknowledged, and a retry shortly may succeed. The text is a short cause.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Any other database failure; the text is a short cause, never SQL.
    #[error("database error: {0}")]
    Database(String),
    /// The request's events would push a stored total past i64 (nothing of the
    /// request is stored); the event field whose sum it is.
    #[error("{0} would overflow a stored total")]
    WriteOverflow(String),
    /// A sum of the window left the range burnrate holds (see `query::SumOverflow`).
    #[error("{}", crate::query::SumOverflow)]
    SumOverflow,
}

impl From<crate::query::SumOverflow> for StoreError {
    fn from(_: crate::query::SumOverflow) -> Self {
        StoreError::SumOverflow
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Read,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Admin keys may do everything; ingest and read keys only their own thing.
    pub fn allows(self, needed: Scope) -> bool {
        self == needed || self == Scope::Admin
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub paused: bool,
    pub created_at: String,
}

/// A key as the server sees it at authentication.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key_id: i64,
    pub workspace_id: WorkspaceId,
    pub scope: Scope,
    pub workspace_paused: bool,
}

/// A key not revoked, with its hash: what a server's key table (`keytable`) holds, so
/// that no request waits for the store to check its key.
#[derive(Debug, Clone)]
pub struct LiveKey {
    pub key_hash: String,
    pub info: KeyInfo,
}

/// A key as listed: never the key itself, only its public prefix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub id: i64,
    pub workspace: String,
    pub prefix: String,
    pub scope: Scope,
    pub name: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// Unknown event fields this key has sent (typos of contract fields), and the last.
    pub unknown_fields: u64,
    pub last_unknown_field: Option<String>,
}

/// What an ingest write did, per event in input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    /// A new logical call.
    Inserted,
    /// A new attempt of a stored call (`replaced`: it now carries this attempt's usage).
    Attempt { replaced: bool },
    /// The same (id, attempt) again.
    Duplicate,
}

/// The position of a commit in a store's history: every ingest commit gets a larger one
/// than all before it, and every read says which commits it saw (`Answer::seen`). The
/// budget counters load "spend up to S" and apply only effects after S, so a load and the
/// commits around it never overlap or leave a gap, in one process or several.
pub type CommitSeq = u64;

#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    pub results: Vec<WriteResult>,
    /// The commit of this request (one that brought only duplicates commits too); 0 when
    /// nothing reached the store.
    pub seq: CommitSeq,
    /// The cost changes of this request's events, for the budget counters.
    pub effects: Vec<SpendEffect>,
}

impl IngestOutcome {
    pub fn accepted(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !matches!(r, WriteResult::Duplicate))
            .count()
    }

    pub fn duplicates(&self) -> usize {
        self.results.len() - self.accepted()
    }
}

/// One committed change of a stored call's cost, as ingest reports it to the budget
/// counters.
#[derive(Debug, Clone)]
pub struct SpendEffect {
    pub workspace: WorkspaceId,
    pub external_request_id: Option<String>,
    pub ts_ms: i64,
    pub environment: Environment,
    pub data_mode: DataMode,
    pub endpoint_tag: String,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub model: String,
    pub provider: String,
    pub tags: BTreeMap<String, String>,
    /// Change of the call's cost in nano-USD (a replaced attempt can lower it).
    pub cost_delta: i64,
    /// +1 when the call became unpriced, -1 when it stopped being unpriced.
    pub unpriced_delta: i64,
    /// The call's cost now, for the per-endpoint estimate (new calls only).
    pub new_call_cost: Option<i64>,
}

/// A control object (budget, rate cap, alert rule, channel, alert) stored as JSON.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub id: i64,
    pub workspace: WorkspaceId,
    pub body: serde_json::Value,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A key as stored, its hash included: what `burnrate migrate` copies so that every key
/// keeps working on the new store. Nothing else reads a hash back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub workspace: String,
    pub key_hash: String,
    pub prefix: String,
    pub scope: Scope,
    pub name: Option<String>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A control object with its kind (`ControlStore::every_object`).
#[derive(Debug, Clone)]
pub struct KindedObject {
    pub kind: String,
    pub object: StoredObject,
}

/// A stored logical call as read back.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub external_request_id: String,
    pub idless: bool,
    pub timestamp: String,
    pub received_at: String,
    pub provider: String,
    pub model: String,
    pub endpoint_tag: String,
    pub prompt_version: Option<String>,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
    pub image_count: u32,
    pub latency_ms: Option<u32>,
    pub status: &'static str,
    pub error_code: Option<String>,
    pub data_mode: &'static str,
    pub environment: &'static str,
    pub operation: &'static str,
    pub service_tier: &'static str,
    pub usage_missing: bool,
    pub tags: serde_json::Map<String, serde_json::Value>,
    /// The attempt whose usage the call carries.
    pub attempt: u8,
    pub attempts: u32,
    pub cost_usd: Option<Usd>,
    pub cost_source: Option<&'static str>,
    pub price_entry_id: Option<String>,
    pub price_book_version: Option<String>,
    /// When an unpriced call was priced later (`prices reprice`); None when priced at
    /// ingest or still unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repriced_at: Option<String>,
}

impl StoredEvent {
    /// The event this call was stored from, as far as a store keeps it: the winning
    /// attempt's values, without a client-reported cost (the price is stored beside it).
    /// Err names a stored value that no longer reads. Used to price a stored call again
    /// and to copy it into another store.
    pub fn event(&self) -> std::result::Result<crate::event::Event, String> {
        use crate::event::*;
        let unknown = |what: &str, text: &str| format!("unknown {what} `{text}`");
        let timestamp_ms = self
            .timestamp
            .parse::<jiff::Timestamp>()
            .map_err(|_| unknown("timestamp", &self.timestamp))?
            .as_millisecond();
        Ok(Event {
            external_request_id: (!self.idless).then(|| self.external_request_id.clone()),
            attempt: self.attempt,
            timestamp_ms,
            provider: self.provider.clone(),
            model: self.model.clone(),
            endpoint_tag: self.endpoint_tag.clone(),
            prompt_version: self.prompt_version.clone(),
            tenant_id: self.tenant_id.clone(),
            user_id: self.user_id.clone(),
            tokens: Tokens {
                input: self.input_tokens,
                cached: self.cached_tokens,
                cache_write: self.cache_write_tokens,
                output: self.output_tokens,
                reasoning: self.reasoning_tokens,
            },
            image_count: self.image_count,
            latency_ms: self.latency_ms,
            status: Status::parse(self.status).ok_or_else(|| unknown("status", self.status))?,
            error_code: self.error_code.clone(),
            data_mode: DataMode::parse(self.data_mode)
                .ok_or_else(|| unknown("dataMode", self.data_mode))?,
            environment: Environment::parse(self.environment)
                .ok_or_else(|| unknown("environment", self.environment))?,
            operation: Operation::parse(self.operation)
                .ok_or_else(|| unknown("operation", self.operation))?,
            service_tier: ServiceTier::parse(self.service_tier)
                .ok_or_else(|| unknown("serviceTier", self.service_tier))?,
            usage_missing: self.usage_missing,
            client_cost: None,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(v) => Ok((k.clone(), v.to_string())),
                    None => Err(format!("tag `{k}` is not text")),
                })
                .collect::<std::result::Result<_, String>>()?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub external_request_id: Option<String>,
    /// Time window and dimension filters of the aggregate query (None = no filter).
    pub window: Option<(i64, i64)>,
    pub filters: Option<crate::query::Filters>,
    /// Opaque position from a previous page (of the same order).
    pub cursor: Option<String>,
    pub limit: usize,
    pub order: EventOrder,
}

/// How a list of events is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventOrder {
    /// Newest first (time, then the store's own tie-break).
    #[default]
    Newest,
    /// Most expensive first (then newest first); only priced calls, whose cost is known:
    /// an unpriced call's cost is missing, never ranked as $0.
    Costliest,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSeen {
    pub endpoint_tag: String,
    /// "unversioned" when events carried none.
    pub prompt_version: String,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// One logical call's values for per-request statistics (the promptVersion gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestValues {
    /// None = unpriced.
    pub cost: Option<Usd>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: Option<u32>,
}

/// One group's latency percentile (`EventStore::latency_percentiles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLatency {
    /// The group's labels in the query's `group_by` order, as `aggregate` shows them.
    pub group: Vec<String>,
    /// How many latencies it was taken from: the group's newest calls, at most the limit.
    pub calls: u64,
    pub latency_ms: u32,
}

/// The nearest-rank `percent` (1..=100, clamped) of `values`: the value at rank
/// ceil(n * percent / 100) in ascending order. None when there are none.
pub fn nearest_rank(values: &mut [u32], percent: u32) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    let rank = (values.len() * percent.clamp(1, 100) as usize).div_ceil(100) - 1;
    Some(*values.select_nth_unstable(rank).1)
}

/// `EventStore::latency_percentiles` read group by group: the groups from `aggregate`,
/// then each one's newest latencies through `latencies`, ranked here. `Mapped` falls
/// back to it when a mapping renames a grouped or filtered dimension.
pub async fn latency_percentiles_by_group<S: EventStore + ?Sized>(
    store: &S,
    workspace: WorkspaceId,
    query: crate::query::Query,
    limit: usize,
    percent: u32,
) -> Result<Vec<GroupLatency>> {
    let mut out = Vec::new();
    for LatencyGroup { group, query, .. } in latency_groups(store, workspace, query).await? {
        let latencies = store.latencies(workspace, query, limit).await?;
        out.extend(group_latency(group, latencies, percent));
    }
    Ok(out)
}

/// A group of a latency read: its labels, the query narrowed to it, and its calls in
/// the window.
pub struct LatencyGroup {
    pub group: Vec<String>,
    pub query: crate::query::Query,
    pub calls: u64,
}

/// The groups of `query.group_by` with calls in its window (from `aggregate`, sorted by
/// group), each with the query narrowed to that group and not grouped: what
/// `latency_percentiles` reads one `latencies` of per group.
pub async fn latency_groups<S: EventStore + ?Sized>(
    store: &S,
    workspace: WorkspaceId,
    query: crate::query::Query,
) -> Result<Vec<LatencyGroup>> {
    let groups = crate::query::Query {
        bucket: None,
        limit: usize::MAX,
        ..query.clone()
    };
    let mut rows = store.aggregate(workspace, groups).await?.rows;
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut q = query.clone();
            for (d, value) in query.group_by.iter().zip(&row.group) {
                q.filters.restrict(d, std::slice::from_ref(value));
            }
            q.group_by = Vec::new();
            LatencyGroup {
                group: row.group,
                query: q,
                calls: row.sums.requests,
            }
        })
        .collect())
}

/// A group's percentile from its newest latencies; None when it has none.
pub fn group_latency(
    group: Vec<String>,
    mut latencies: Vec<u32>,
    percent: u32,
) -> Option<GroupLatency> {
    let latency_ms = nearest_rank(&mut latencies, percent)?;
    Some(GroupLatency {
        group,
        calls: latencies.len() as u64,
        latency_ms,
    })
}

/// How current the data is: the dashboard's freshness line.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Freshness {
    pub newest_event_ms: i64,
    pub newest_received_ms: i64,
    /// Receive time minus event time of the most recently received event.
    pub ingest_lag_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpricedModel {
    pub provider: String,
    pub model: String,
    pub events: u64,
    pub last_seen: String,
}

/// A price book stored in the database (imported catalogue or local overrides).
#[derive(Debug, Clone)]
pub struct StoredBook {
    pub kind: String,
    pub version: String,
    pub body: String,
    /// When it was stored (ms); None for a book not yet saved (the store sets it).
    pub imported_at_ms: Option<i64>,
}

/// The unknown top-level fields of one ingest request, counted per API key (what a
/// tracking-quality view shows: which key sends misspelled fields, and the last one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldTally {
    pub key_id: Option<i64>,
    pub unknown_fields: u64,
    pub last_unknown: Option<String>,
}

/// Whose events an erasure removes: a tenantId or a userId as stored (already mapped
/// through the workspace's privacy rules by the caller, so a raw e-mail finds its
/// pseudonym).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Tenant(String),
    User(String),
}

impl Subject {
    /// "tenant" or "user": what an audit record may keep (never the id).
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Tenant(_) => "tenant",
            Subject::User(_) => "user",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Subject::Tenant(id) | Subject::User(id) => id,
        }
    }
}

/// What a lifecycle change (retention or erasure) removed, exactly: logical calls, their
/// priced cost and how many were unpriced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// Raw events (logical calls) deleted.
    pub events: u64,
    /// Calls taken out of the pruned history (erasure only: their raw rows were
    /// already pruned by retention, their sums were kept until now).
    pub pruned_history_calls: u64,
    /// Their cost in nano-USD (priced calls only).
    pub cost_nanos: i64,
    /// How many of them (raw and pruned history) were unpriced.
    pub unpriced: u64,
}

/// Which calls a re-pricing looks at: a time window, optionally one model (as the client
/// sent it), and which of them (the unpriced, or those priced with one price entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepriceScope {
    pub from_ms: i64,
    pub to_ms: i64,
    pub model: Option<String>,
    pub target: RepriceTarget,
    /// Compute the outcome (counts, costs before and after, effects) and change nothing.
    pub dry_run: bool,
}

/// The calls a re-pricing may change: priced history is never re-priced implicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepriceTarget {
    /// Unpriced calls that the current book prices now (`prices reprice --unpriced`).
    Unpriced,
    /// Calls priced with this price entry id, priced again with the current book: the
    /// deliberate correction (`prices reprice --entry ID --confirm`).
    Entry(String),
}

/// Prices one stored call with the current book and overrides: Some(pricing with a
/// cost) when it can be priced now, None when it cannot.
pub type Pricer =
    std::sync::Arc<dyn Fn(&StoredEvent) -> Option<crate::event::Pricing> + Send + Sync>;

/// What a re-pricing did (or, dry, would do): the commit, the calls it priced anew (their
/// cost before and after), the calls of the target it left as they were, and the cost
/// changes for the budget counters.
#[derive(Debug, Clone, Default)]
pub struct RepriceOutcome {
    /// 0 when nothing changed or on a dry run.
    pub seq: CommitSeq,
    pub repriced: u64,
    /// Their cost after, in nano-USD.
    pub cost_nanos: i64,
    /// Their cost before (0 for calls that were unpriced).
    pub cost_before_nanos: i64,
    /// Unpriced calls of the scope the book still cannot price (target `Unpriced`).
    pub still_unpriced: u64,
    /// Calls of the entry the book cannot price now or prices the same (target `Entry`).
    pub unchanged: u64,
    pub effects: Vec<SpendEffect>,
}

impl RepriceOutcome {
    /// Count one call that gets `new` nano-USD instead of `old` (None = unpriced), with
    /// its cost change for the budgets.
    pub fn add(
        &mut self,
        ws: WorkspaceId,
        ts_ms: i64,
        call: &StoredEvent,
        old: Option<i64>,
        new: i64,
    ) -> Result<()> {
        let before = old.unwrap_or(0);
        self.repriced += 1;
        self.cost_nanos = self
            .cost_nanos
            .checked_add(new)
            .ok_or(StoreError::SumOverflow)?;
        self.cost_before_nanos = self
            .cost_before_nanos
            .checked_add(before)
            .ok_or(StoreError::SumOverflow)?;
        let delta = new.checked_sub(before).ok_or(StoreError::SumOverflow)?;
        self.effects.push(SpendEffect {
            workspace: ws,
            external_request_id: (!call.idless).then(|| call.external_request_id.clone()),
            ts_ms,
            environment: Environment::parse(call.environment).unwrap_or(Environment::Prod),
            data_mode: DataMode::parse(call.data_mode).unwrap_or(DataMode::Real),
            endpoint_tag: call.endpoint_tag.clone(),
            tenant_id: call.tenant_id.clone(),
            user_id: call.user_id.clone(),
            model: call.model.clone(),
            provider: call.provider.clone(),
            tags: call
                .tags
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            cost_delta: delta,
            unpriced_delta: if old.is_none() { -1 } else { 0 },
            new_call_cost: None,
        });
        Ok(())
    }
}

/// The pricing a re-pricing gives `call` (priced now with `old` nano-USD, None =
/// unpriced): None when the book cannot price it or prices it as it is (same cost and
/// entry), so it is left alone.
pub fn repricing(
    pricer: &Pricer,
    call: &StoredEvent,
    old: Option<i64>,
) -> Option<(crate::event::Pricing, i64)> {
    let pricing = pricer(call)?;
    let new = pricing.cost?.0;
    let same = old == Some(new) && pricing.price_entry_id == call.price_entry_id;
    (!same).then_some((pricing, new))
}

/// What a backend does with events: store them (deduped, with a commit sequence) and
/// answer every read of them.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Get ready for event reads and writes now: a backend that builds in-memory state
    /// from its data on first need (the embedded store's rollups and call index) builds
    /// it here. The server calls this before it listens, so no request waits for it.
    async fn warm_up(&self) -> Result<()> {
        Ok(())
    }

    /// Write validated, priced events for one workspace durably; one result per event.
    async fn ingest(
        &self,
        workspace: WorkspaceId,
        events: Vec<PricedEvent>,
    ) -> Result<IngestOutcome> {
        self.ingest_counted(workspace, events, FieldTally::default())
            .await
    }

    /// `ingest`, adding the request's unknown-field tally to its key's count in the same
    /// commit as the events. The outcome carries the commit's sequence and the cost
    /// changes of this request's events.
    async fn ingest_counted(
        &self,
        workspace: WorkspaceId,
        events: Vec<PricedEvent>,
        tally: FieldTally,
    ) -> Result<IngestOutcome>;

    /// At most how many events one commit should take from a request, or None for any
    /// number. A backend whose commits are serial (the embedded store's one writer) says
    /// how big a part a small request may have to wait behind; `ingest::accept` splits
    /// bigger requests into parts of about this size (`ingest_parts`).
    fn ingest_part_size(&self) -> Option<usize> {
        None
    }

    /// Write a request split into parts, each its own `ingest_counted` (the tally goes
    /// with the first), queued in order: a later part never commits before an earlier
    /// one. One result per part; a part can fail while the parts before it are stored
    /// (their outcomes still carry the cost changes the budget counters must hear).
    async fn ingest_parts(
        &self,
        workspace: WorkspaceId,
        parts: Vec<Vec<PricedEvent>>,
        tally: FieldTally,
    ) -> Vec<Result<IngestOutcome>> {
        let mut tally = Some(tally);
        let mut outcomes = Vec::with_capacity(parts.len());
        for part in parts {
            let tally = tally.take().unwrap_or_default();
            outcomes.push(self.ingest_counted(workspace, part, tally).await);
        }
        outcomes
    }

    async fn events(&self, workspace: WorkspaceId, query: EventQuery) -> Result<EventPage>;
    /// Answer one aggregate query (the only way stages read events in bulk): the rows
    /// its limit keeps, the exact totals of all groups, and the commit sequence it saw.
    async fn aggregate(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
    ) -> Result<crate::query::Answer>;
    async fn unpriced_models(&self) -> Result<Vec<UnpricedModel>>;
    /// When each (endpoint, prompt version) was first and last seen, over all time, in the
    /// given environments and data modes.
    async fn versions_seen(
        &self,
        workspace: WorkspaceId,
        filters: crate::query::Filters,
    ) -> Result<Vec<VersionSeen>>;
    /// Per-request values of the logical calls in the query's window that match its
    /// filters (group-by, bucket and order are ignored), newest first, at most `limit`.
    async fn request_values(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<RequestValues>>;
    /// The latencies of the newest `limit` calls in the window matching the filters (calls
    /// without a latency are left out): what percentiles are computed from.
    async fn latencies(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
    ) -> Result<Vec<u32>>;
    /// Per group of `query.group_by` (labels as `aggregate` shows them; no group-by is
    /// one group): the nearest-rank `percent` (`nearest_rank`) of the latencies of the
    /// group's newest `limit` calls in the window matching the filters, calls without a
    /// latency left out; groups without any are absent; sorted by group. Which calls of
    /// one time at the limit's edge are taken is not pinned (as in `latencies`). One
    /// read for every group of a report instead of one `latencies` read per group.
    async fn latency_percentiles(
        &self,
        workspace: WorkspaceId,
        query: crate::query::Query,
        limit: usize,
        percent: u32,
    ) -> Result<Vec<GroupLatency>> {
        latency_percentiles_by_group(self, workspace, query, limit, percent).await
    }
    /// Which of `ids` (externalRequestIds) have a stored call in `workspace`: how a node
    /// settles the guard reservations of calls ingested through another node. The
    /// default asks `events` once per id; a backend several nodes share answers in one
    /// read.
    async fn stored_ids(&self, workspace: WorkspaceId, ids: Vec<String>) -> Result<Vec<String>> {
        let mut stored = Vec::new();
        for id in ids {
            let query = EventQuery {
                external_request_id: Some(id.clone()),
                limit: 1,
                ..EventQuery::default()
            };
            if !self.events(workspace, query).await?.events.is_empty() {
                stored.push(id);
            }
        }
        Ok(stored)
    }
    /// The newest event time and the newest receive time in a workspace (ms), if any.
    async fn freshness(&self, workspace: WorkspaceId) -> Result<Option<Freshness>>;
    async fn event_count(&self) -> Result<u64>;
    /// Ok when the store takes writes. After a write failed for lack of space (or an
    /// I/O error) a small probe write tells whether it works again, so readiness
    /// recovers by itself once space returns.
    async fn check_writable(&self) -> Result<()>;
    /// Copy the whole store (events and control data) to a new file at `to`, as of one
    /// moment, while it keeps taking writes; returns the copy's size in bytes. Backends
    /// whose engine has its own backup path say so instead.
    async fn backup_to(&self, to: std::path::PathBuf) -> Result<u64>;
    /// Retention: delete a workspace's raw events older than the UTC day that contains
    /// `before_ms` (whole days only), keeping their sums in the pruned history so every
    /// aggregate the rollups answer stays exact. Returns what was deleted (0 when
    /// nothing was older). A backend that cannot keep pruned history refuses
    /// (`Conflict`) rather than lose sums. A backend several nodes share may leave the
    /// calls written in its last few seconds raw until the next prune (ClickHouse: 5 s,
    /// its clock-skew margin), and answers `Conflict` while another node prunes the
    /// same workspace. A later attempt of a pruned call is a new call.
    async fn prune_before(&self, workspace: WorkspaceId, before_ms: i64) -> Result<Removed>;
    /// From when a workspace's raw events exist: the end of the pruned range (a UTC day
    /// start), None when nothing was ever pruned. Raw reads before it count only what
    /// remains (answers say so in `Answer::raw_from_ms`).
    async fn raw_from(&self, workspace: WorkspaceId) -> Result<Option<i64>>;
    /// Erasure: delete every event of one tenant or user of a workspace, raw and in the
    /// pruned history, and every raw event holding the id as the value of any tag (the
    /// pruned history keeps no tags), so every aggregate afterwards is what the
    /// remaining events imply.
    /// The id itself is removed from the store where nothing else refers to it.
    async fn erase(&self, workspace: WorkspaceId, subject: Subject) -> Result<Removed>;
    /// Re-pricing: give the workspace's calls of `scope` (its target: the unpriced, or
    /// those priced with one entry) the pricing `pricer` finds now, in one commit,
    /// recording when (`repricedAt`) and the entry used, with every aggregate adjusted
    /// exactly; no other call is touched. A dry run only computes the outcome.
    async fn reprice_unpriced(
        &self,
        workspace: WorkspaceId,
        scope: RepriceScope,
        pricer: Pricer,
        at_ms: i64,
    ) -> Result<RepriceOutcome>;
    /// Seal the closed hours before `now_ms` minus a horizon whose reads a backend
    /// pre-sums (ClickHouse's sealed hourly cells, docs/scale-out.md), and reseal those
    /// a later write changed; returns how many hours were sealed. Answers never depend on
    /// it, only their speed. A backend whose reads need no sealing answers 0 (SQLite
    /// pins the old days the dashboard's user lists would read raw instead).
    async fn seal(&self, _now_ms: i64) -> Result<u64> {
        Ok(0)
    }
    /// Finish queued writes and release the store.
    async fn close(&self);
}

/// What a backend keeps besides events: workspaces, API keys, control objects (budgets,
/// rate caps, alert rules, channels, alerts, settings) and price books.
#[async_trait]
pub trait ControlStore: Send + Sync {
    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>>;
    async fn create_workspace(&self, name: String) -> Result<Workspace>;
    async fn workspaces(&self) -> Result<Vec<Workspace>>;
    async fn workspace(&self, name: String) -> Result<Option<Workspace>>;
    async fn set_paused(&self, name: String, paused: bool) -> Result<()>;
    async fn create_key(
        &self,
        workspace: String,
        scope: Scope,
        key_hash: String,
        prefix: String,
        name: Option<String>,
    ) -> Result<KeyRecord>;
    async fn keys(&self, workspace: Option<String>) -> Result<Vec<KeyRecord>>;
    /// Revoke by id or prefix; returns how many keys were revoked.
    async fn revoke_key(&self, id_or_prefix: String) -> Result<usize>;
    /// Every key not revoked, with its hash and its workspace's pause, oldest first.
    async fn live_keys(&self) -> Result<Vec<LiveKey>>;
    /// Moves whenever a key is created, copied or revoked or a workspace is paused or
    /// resumed, by any process or node: a server reloads `live_keys` when it moves. One
    /// cheap read, asked every `keytable::CHECK_EVERY`.
    async fn key_generation(&self) -> Result<i64>;
    /// Record once that the first-start admin key was issued; false if it already was.
    async fn claim_first_start(&self) -> Result<bool>;

    async fn price_books(&self) -> Result<Vec<StoredBook>>;
    async fn save_price_book(&self, book: StoredBook) -> Result<()>;
    /// Remove every stored book of `version` (a mistaken import); returns how many. Bumps
    /// the price generation, so servers reload without it.
    async fn remove_price_book(&self, version: String) -> Result<usize>;
    /// Grows whenever a price book is saved, so servers can reload.
    async fn price_generation(&self) -> Result<i64>;

    /// Insert (`id` None) or replace a control object of `kind`; returns its id.
    async fn put_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: Option<i64>,
        body: serde_json::Value,
    ) -> Result<i64>;
    /// Objects of `kind`, of one workspace or all, oldest first.
    async fn objects(
        &self,
        workspace: Option<WorkspaceId>,
        kind: &'static str,
    ) -> Result<Vec<StoredObject>>;
    /// False if there was no such object.
    async fn delete_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: i64,
    ) -> Result<bool>;

    // Copying a whole store (`burnrate migrate`): what the calls above cannot give or
    // take as it was stored (key hashes, object ids and times).

    /// Every key with its hash, oldest first.
    async fn stored_keys(&self) -> Result<Vec<StoredKey>>;
    /// Store a copied key as it was (hash, prefix, times, revocation) in its workspace
    /// (by name, which must exist); nothing when a key with that hash is stored already.
    /// True when it was added.
    async fn copy_key(&self, key: StoredKey) -> Result<bool>;
    /// Every control object of every kind and workspace.
    async fn every_object(&self) -> Result<Vec<KindedObject>>;
    /// Store a copied object under its own id and times (`object.workspace` is this
    /// store's id of its workspace), replacing one with that id; objects created later
    /// in its workspace and kind get larger ids.
    async fn copy_object(&self, kind: String, object: StoredObject) -> Result<()>;
}

/// A whole backend: both halves. Code that needs only one half takes that trait.
pub trait Store: EventStore + ControlStore {}

impl<T: EventStore + ControlStore> Store for T {}
