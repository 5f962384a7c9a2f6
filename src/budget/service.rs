//! Budgets and rate caps as the server runs them: stored definitions, the live counters
//! loaded from the store and kept exact by the writer, and each budget's status.

use super::counters::{Counters, GuardAnswer, GuardRequest, MemberSpend, RateCap};
use super::period::Period;
use super::plans::{self, Assignment, PlanHistory, PlanMap, PLAN_ASSIGNMENTS};
use super::Each;
use super::{parse_budget, status, Action, Budget, SpendInput, Status};
use crate::event::FieldError;
use crate::privacy::Slot;
use crate::query::{Bucket, Measure};
use crate::revenue;
use crate::store::{Store, StoreError, WorkspaceId};
use serde_json::Value;
use std::sync::Arc;

pub const BUDGET: &str = "budget";
pub const RATE_CAP: &str = "rate_cap";
/// The page of members a status shows unless asked otherwise (offset, limit).
pub const MEMBER_PAGE: (usize, usize) = (0, 10);
/// The most members one status page lists.
pub const MAX_MEMBER_PAGE: usize = 1_000;

/// Counts the live nodes sharing the store (`server::nodes::Registration::live`).
pub type NodeCount = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, StoreError>> + Send>>
        + Send
        + Sync,
>;

pub struct Budgets {
    store: Arc<dyn Store>,
    pub counters: Arc<Counters>,
    /// Set by a server: asked before a blocking budget is loaded outside the reload tick
    /// (which counts the nodes itself just before), see `reload`.
    node_count: std::sync::OnceLock<NodeCount>,
    clock: crate::clock::Clock,
    /// Each workspace's plan map with the (id, updated) of the batches it was folded
    /// from: a reload folds again only when they changed.
    plan_cache: std::sync::Mutex<std::collections::HashMap<WorkspaceId, PlanCache>>,
}

/// A workspace's plans as last folded: the (id, updated) of the batches they come from,
/// the history, and the map of the plans in force over [valid.0, valid.1) (None: until
/// a change comes).
struct PlanCache {
    batches: Vec<(i64, i64)>,
    history: Arc<PlanHistory>,
    map: Option<Arc<PlanMap>>,
    valid: (i64, Option<i64>),
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("invalid budget")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Budgets {
    /// Load every workspace's budgets. From then on ingest (`ingest::accept`) hands each
    /// commit's effects to `counters`.
    pub async fn start(
        store: Arc<dyn Store>,
        reservation_ttl_ms: i64,
        clock: crate::clock::Clock,
    ) -> anyhow::Result<Arc<Budgets>> {
        let counters = Arc::new(Counters::new(reservation_ttl_ms));
        let budgets = Arc::new(Budgets {
            store,
            counters,
            node_count: std::sync::OnceLock::new(),
            clock,
            plan_cache: Default::default(),
        });
        for ws in budgets.store.workspaces().await? {
            budgets.reload(ws.id).await?;
        }
        Ok(budgets)
    }

    pub async fn list(&self, ws: WorkspaceId) -> Result<Vec<Budget>, StoreError> {
        let objects = self.store.objects(Some(ws), BUDGET).await?;
        Ok(objects
            .iter()
            .filter_map(|o| parse_budget(o.id, &o.body).ok())
            .collect())
    }

    pub async fn rate_caps(&self, ws: WorkspaceId) -> Result<Vec<RateCap>, StoreError> {
        let objects = self.store.objects(Some(ws), RATE_CAP).await?;
        Ok(objects
            .iter()
            .filter_map(|o| parse_rate_cap(o.id, &o.body).ok())
            .collect())
    }

    pub async fn get(&self, ws: WorkspaceId, id: i64) -> Result<Budget, StoreError> {
        self.list(ws)
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("budget {id}")))
    }

    /// Create (`id` None) or replace a budget from its JSON definition.
    pub async fn save(
        &self,
        ws: WorkspaceId,
        id: Option<i64>,
        body: &Value,
    ) -> Result<Budget, BudgetError> {
        let mut budget = parse_budget(id.unwrap_or(0), body).map_err(BudgetError::Invalid)?;
        // A scope naming a person is stored as ingest stores the person: by pseudonym;
        // so are the members an override names.
        let member_ids = matches!(budget.scope.each, Some(Each::TenantId | Each::UserId));
        let override_ids = budget.overrides.keys().filter(|_| member_ids);
        let mut settings = self
            .id_settings(ws, override_ids.map(String::as_str))
            .await?;
        if budget.scope.needs_secret(&settings.privacy()) {
            let secret = crate::privacy::ensure_secret(self.store.as_ref(), ws).await?;
            settings.secret = Some(secret);
        }
        budget
            .scope
            .pseudonymize(&settings.privacy())
            .map_err(BudgetError::Invalid)?;
        if member_ids {
            let keys = std::mem::take(&mut budget.overrides);
            let mapped = map_ids(&settings, "overrides", keys.into_iter())?;
            budget.overrides = mapped.into_iter().collect();
        }
        let mut stored = serde_json::to_value(&budget).expect("budget serializes");
        // The id is the row's; the body is the definition as `parse_budget` reads it.
        if let Some(o) = stored.as_object_mut() {
            o.remove("id");
            // As decimal text: a JSON number is read back through f64, which turns a
            // limit with more than ~15 digits into another amount (or one too large to
            // parse, and the budget would vanish from the list).
            o.insert(
                "limitUsd".into(),
                Value::String(budget.limit_usd.to_string()),
            );
            if !budget.plan_limits.is_empty() {
                let limits = budget.plan_limits.iter().map(|(p, usd)| {
                    let text = usd.map_or(Value::Null, |u| Value::String(u.to_string()));
                    (p.clone(), text)
                });
                o.insert("planLimits".into(), Value::Object(limits.collect()));
            }
            if !budget.overrides.is_empty() {
                let overrides = budget.overrides.iter();
                let text = overrides.map(|(m, usd)| (m.clone(), Value::String(usd.to_string())));
                o.insert("overrides".into(), Value::Object(text.collect()));
            }
        }
        let id = self.store.put_object(ws, BUDGET, id, stored).await?;
        self.reload(ws).await?;
        Ok(Budget { id, ..budget })
    }

    pub async fn save_rate_cap(
        &self,
        ws: WorkspaceId,
        body: &Value,
    ) -> Result<RateCap, BudgetError> {
        let cap = parse_rate_cap(0, body).map_err(BudgetError::Invalid)?;
        let mut stored = serde_json::to_value(&cap).expect("cap serializes");
        stored.as_object_mut().map(|o| o.remove("id"));
        let id = self.store.put_object(ws, RATE_CAP, None, stored).await?;
        self.reload(ws).await?;
        Ok(RateCap { id, ..cap })
    }

    pub async fn delete(
        &self,
        ws: WorkspaceId,
        kind: &'static str,
        id: i64,
    ) -> Result<bool, StoreError> {
        let deleted = self.store.delete_object(ws, kind, id).await?;
        self.reload(ws).await?;
        Ok(deleted)
    }

    /// Reload every workspace: picks up budgets changed by the CLI (another process).
    pub async fn reload_all(&self) -> Result<(), StoreError> {
        for ws in self.store.workspaces().await? {
            self.reload(ws.id).await?;
        }
        Ok(())
    }

    /// Hand the counters the current definitions and load the spend of budgets that are
    /// new or changed (exactly: see `load`).
    pub async fn reload(&self, ws: WorkspaceId) -> Result<(), StoreError> {
        let budgets = self.list(ws).await?;
        let caps = self.rate_caps(ws).await?;
        if budgets.iter().any(Budget::by_plan) {
            let plans = self.plan_map(ws).await?;
            self.counters.set_plans(ws, plans);
        }
        let loads_blocking = budgets
            .iter()
            .any(|b| b.action == Action::Block && !self.counters.holds_loaded(ws, b));
        if loads_blocking {
            // Before `configure`: the count's read does not lengthen the time a new
            // budget waits for its load.
            self.refresh_node_count().await?;
        }
        self.counters.configure(ws, budgets.clone(), caps);
        let now = (self.clock)();
        for budget in budgets {
            if self
                .counters
                .position(ws, budget.id, now)
                .is_some_and(|p| p.3)
            {
                continue;
            }
            self.load(ws, &budget, now).await?;
        }
        Ok(())
    }

    /// Have `count` asked for the live nodes before each load of a blocking budget
    /// outside the reload tick (a server sets it once, after joining the nodes).
    pub fn count_nodes_with(&self, count: NodeCount) {
        let _ = self.node_count.set(count);
    }

    /// Count the live nodes now, so the load that follows shares out by the current
    /// count: without it a budget created through a node that has not yet counted a node
    /// that joined since its last tick is shared out as if this node were alone (it
    /// may then admit the whole headroom, as the other node admits its own share).
    async fn refresh_node_count(&self) -> Result<(), StoreError> {
        if let Some(count) = self.node_count.get() {
            let live = count().await?;
            self.counters.set_nodes(live);
        }
        Ok(())
    }

    /// Load a budget's spend in its current period: the store's total up to the commit
    /// its read saw, plus the effects after that commit (see `Counters::begin_load`).
    /// A per-member budget loads every member's spend with the same single read, grouped
    /// by its member dimension.
    async fn load(&self, ws: WorkspaceId, budget: &Budget, now: i64) -> Result<(), StoreError> {
        let (start, end) = budget.window(now);
        let member_query = budget.member_query(start, end);
        let mut query = member_query.unwrap_or_else(|| budget.spend_query(start, end));
        query.measures = vec![Measure::CostUsd, Measure::Requests, Measure::Unpriced];
        let per_member = budget.scope.each.is_some();
        let ticket = self.counters.begin_load(ws, budget.id, start);
        match self.store.aggregate(ws, query).await {
            Ok(answer) => {
                let sums = answer.total();
                let total = (sums.cost.nanos(), sums.unpriced());
                let seen = answer.seen;
                if per_member {
                    let mut members = MemberSpend::with_capacity(answer.rows.len());
                    for row in answer.rows {
                        let Some(member) = row.group.into_iter().next() else {
                            continue;
                        };
                        // Summed, not set: a value equal to the missing-value label
                        // groups with the calls that have none, as effects count them.
                        let spend = members.entry(member.into_boxed_str()).or_default();
                        spend.0 = spend.0.saturating_add(row.sums.cost.nanos());
                        spend.1 = spend.1.saturating_add(row.sums.unpriced());
                    }
                    self.counters
                        .finish_member_load(ticket, total, members, seen);
                } else {
                    self.counters.finish_load(ticket, total.0, total.1, seen);
                }
                Ok(())
            }
            Err(e) => {
                self.counters.abandon_load(ticket);
                Err(e)
            }
        }
    }

    /// Reload the spend of every budget from the store: what other processes (a CLI
    /// import, another node) committed reaches the counters this way.
    pub async fn refresh_spend(&self) -> Result<(), StoreError> {
        let now = (self.clock)();
        for ws in self.store.workspaces().await? {
            if self.counters.nodes() > 1 {
                // Before the loads: a call another node stored is then counted once, in
                // the loaded spend, not also as this node's reservation.
                let held = self.counters.reserved_ids(ws.id);
                if !held.is_empty() {
                    let stored = self.store.stored_ids(ws.id, held).await?;
                    self.counters.settle_stored(ws.id, &stored);
                }
            }
            for budget in self.list(ws.id).await? {
                self.load(ws.id, &budget, now).await?;
            }
        }
        Ok(())
    }

    pub async fn status(
        &self,
        ws: WorkspaceId,
        budget: &Budget,
        now: i64,
        page: (usize, usize),
    ) -> Result<Status, StoreError> {
        let (spent, reserved, unpriced, _) = self
            .counters
            .position(ws, budget.id, now)
            .unwrap_or_default();
        let trailing_days = match budget.period {
            Period::Month => self.trailing_days(ws, budget, now).await?,
            _ => None,
        };
        let input = SpendInput {
            spent,
            reserved,
            unpriced,
            trailing_days,
        };
        let mut status = status(budget, &input, now);
        status.members = self.counters.members(ws, budget.id, now, page.0, page.1);
        if let Some(members) = &status.members {
            // The limit is each member's: the budget's own state is its members' worst,
            // and the total has no exhaustion of its own.
            status.state = match (members.over, members.near) {
                (0, 0) => super::State::Ok,
                (0, _) => super::State::Warning,
                _ => super::State::Exceeded,
            };
            status.threshold_reached = None;
            status.projected_exhaustion = None;
        }
        Ok(status)
    }

    /// Spend per day (in the budget's zone) of the 7 full days before today; None when
    /// the data does not reach back that far (a young install projects by run rate).
    async fn trailing_days(
        &self,
        ws: WorkspaceId,
        budget: &Budget,
        now: i64,
    ) -> Result<Option<[i64; 7]>, StoreError> {
        let tz = budget.timezone.as_str();
        let (today, _) = Period::Day.bounds(now, tz);
        let mut starts = [0i64; 8];
        starts[7] = today;
        for i in (0..7).rev() {
            starts[i] = Period::Day.bounds(starts[i + 1] - 1, tz).0;
        }
        let mut query = budget.spend_query(starts[0], today);
        query.bucket = Some(Bucket::Hour);
        query.limit = crate::query::MAX_LIMIT;
        let rows = self.store.aggregate(ws, query).await?.totals;
        let Some(first) = rows
            .iter()
            .filter(|r| r.sums.requests > 0)
            .filter_map(|r| r.bucket_ms)
            .min()
        else {
            return Ok(None);
        };
        if first >= starts[1] {
            return Ok(None);
        }
        let mut days = [0i64; 7];
        for row in rows {
            let at = row.bucket_ms.unwrap_or(0);
            if let Some(i) = (0..7).find(|i| at >= starts[*i] && at < starts[i + 1]) {
                days[i] = days[i].saturating_add(row.sums.cost.nanos());
            }
        }
        Ok(Some(days))
    }

    /// Every tenant's plan in `ws`.
    pub async fn plans(&self, ws: WorkspaceId) -> Result<Arc<PlanMap>, StoreError> {
        self.plan_map(ws).await
    }

    /// One tenant's plan, the tenant named as given (looked up as ingest stores it).
    pub async fn plan_of(
        &self,
        ws: WorkspaceId,
        tenant: &str,
    ) -> Result<Option<String>, BudgetError> {
        let settings = self.id_settings(ws, [tenant]).await?;
        let stored = settings.privacy().lookup(tenant, Slot::Id);
        Ok(self
            .plan_map(ws)
            .await?
            .get(stored.as_str())
            .map(|p| p.to_string()))
    }

    /// The workspace's settings, with its pseudonym secret (made if need be) when one of
    /// `ids` (tenant or user ids) would be pseudonymized.
    async fn id_settings<'a>(
        &self,
        ws: WorkspaceId,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<crate::settings::IngestSettings, BudgetError> {
        let mut settings = crate::settings::load_stored(self.store.as_ref(), ws).await?;
        if ids
            .into_iter()
            .any(|id| settings.privacy().needs_secret(id, Slot::Id))
        {
            settings.secret = Some(crate::privacy::ensure_secret(self.store.as_ref(), ws).await?);
        }
        Ok(settings)
    }

    /// The plan map now (each tenant's plan in force), folded again only when its stored
    /// batches changed, and made again from the history when a dated change comes due.
    async fn plan_map(&self, ws: WorkspaceId) -> Result<Arc<PlanMap>, StoreError> {
        let now = (self.clock)();
        let history = self.plan_history(ws).await?;
        let mut cache = self.plan_cache.lock().unwrap();
        let Some(entry) = cache.get_mut(&ws) else {
            return Ok(Arc::new(history.map_at(now).0));
        };
        let (from, until) = entry.valid;
        if !(from <= now && until.is_none_or(|u| now < u)) || entry.map.is_none() {
            let (map, next) = history.map_at(now);
            entry.map = Some(Arc::new(map));
            entry.valid = (now, next);
        }
        Ok(entry.map.clone().expect("made above"))
    }

    /// Every tenant's plan changes, folded again only when the stored batches changed.
    pub async fn plan_history(&self, ws: WorkspaceId) -> Result<Arc<PlanHistory>, StoreError> {
        let batches = self.store.objects(Some(ws), PLAN_ASSIGNMENTS).await?;
        let seen: Vec<(i64, i64)> = batches.iter().map(|o| (o.id, o.updated_ms)).collect();
        if let Some(entry) = self.plan_cache.lock().unwrap().get(&ws) {
            if entry.batches == seen {
                return Ok(entry.history.clone());
            }
        }
        let history = Arc::new(plans::history(&batches));
        let mut cache = self.plan_cache.lock().unwrap();
        cache.insert(
            ws,
            PlanCache {
                batches: seen,
                history: history.clone(),
                map: None,
                valid: (i64::MIN, None),
            },
        );
        Ok(history)
    }

    /// One tenant's plan changes (the tenant named as given, looked up as ingest stores
    /// it): (effective from, plan), oldest first; `plans::ALWAYS` for since always.
    pub async fn tenant_history(
        &self,
        ws: WorkspaceId,
        tenant: &str,
    ) -> Result<(String, Vec<(i64, Option<String>)>), BudgetError> {
        let stored = self.stored_tenant(ws, tenant).await?;
        let history = self.plan_history(ws).await?;
        let changes = history
            .tenants
            .get(stored.as_str())
            .map_or_else(Vec::new, |c| {
                c.iter()
                    .map(|(from, plan)| (*from, plan.as_deref().map(str::to_string)))
                    .collect()
            });
        Ok((stored, changes))
    }

    /// Put tenants on plans (None: off their plan) as one stored batch, then fold the
    /// batches into one when there are many. Checked whole first: a bad name stores
    /// nothing.
    pub async fn assign_plans(
        &self,
        ws: WorkspaceId,
        assignments: &[Assignment],
    ) -> Result<usize, BudgetError> {
        let mut errors = Vec::new();
        for (i, (tenant, plan, _)) in assignments.iter().enumerate() {
            let field = format!("assignments[{i}]");
            let plan_ok = plan
                .as_deref()
                .map_or(Ok(()), |p| plans::check_plan(&field, p));
            if let Err(e) = plans::check_tenant(&field, tenant).and(plan_ok) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(BudgetError::Invalid(errors));
        }
        if assignments.is_empty() {
            return Ok(0);
        }
        // Tenants as ingest stores them, so a plan finds a pseudonymized tenant.
        let settings = self
            .id_settings(ws, assignments.iter().map(|(t, _, _)| t.as_str()))
            .await?;
        let pairs = assignments
            .iter()
            .map(|(t, p, f)| (t.clone(), (p.clone(), *f)));
        let mapped = map_ids(&settings, "tenantId", pairs)?;
        // Without a date: a tenant's first plan is its plan since always (there is no
        // history to contradict); a change to a tenant that has one takes effect now.
        let now = (self.clock)();
        let history = self.plan_history(ws).await?;
        let assignments: Vec<Assignment> = mapped
            .into_iter()
            .map(|(t, (p, from))| {
                let from = from.or_else(|| history.knows(&t).then_some(now));
                (t, p, from)
            })
            .collect();
        let body = plans::batch(&assignments);
        self.store
            .put_object(ws, PLAN_ASSIGNMENTS, None, body)
            .await?;
        let batches = self.store.objects(Some(ws), PLAN_ASSIGNMENTS).await?;
        if batches.len() > plans::FOLD_AFTER {
            // Written before the folded batches go: a reader meanwhile sees both, and
            // the fold sorts where its last batch did, so the answer is the same.
            let folded = plans::folded(&batches);
            self.store
                .put_object(ws, PLAN_ASSIGNMENTS, None, folded)
                .await?;
            for batch in &batches {
                self.store
                    .delete_object(ws, PLAN_ASSIGNMENTS, batch.id)
                    .await?;
            }
        }
        self.reload(ws).await?;
        Ok(assignments.len())
    }

    /// Set a plan's monthly price (the plan named as `check_plan` allows).
    pub async fn define_plan(
        &self,
        ws: WorkspaceId,
        plan: &str,
        price: crate::money::Usd,
    ) -> Result<(), BudgetError> {
        plans::check_plan("plan", plan).map_err(|e| BudgetError::Invalid(vec![e]))?;
        let existing = self
            .store
            .objects(Some(ws), revenue::PLAN_DEFINITION)
            .await?;
        let same = existing
            .iter()
            .filter(|o| o.body.get("name").and_then(Value::as_str) == Some(plan))
            .map(|o| o.id)
            .max();
        let body = revenue::definition_body(plan, price);
        self.store
            .put_object(ws, revenue::PLAN_DEFINITION, same, body)
            .await?;
        Ok(())
    }

    /// Store revenue entries as one batch, their tenants as ingest stores them.
    pub async fn add_revenue(
        &self,
        ws: WorkspaceId,
        entries: Vec<revenue::Entry>,
    ) -> Result<usize, BudgetError> {
        let ids: Vec<String> = entries.iter().map(|e| e.tenant_id.clone()).collect();
        let settings = self.id_settings(ws, ids.iter().map(String::as_str)).await?;
        let pairs = entries.into_iter().map(|e| (e.tenant_id.clone(), e));
        let mapped = map_ids(&settings, "tenantId", pairs)?;
        let entries: Vec<revenue::Entry> = mapped
            .into_iter()
            .map(|(tenant_id, e)| revenue::Entry { tenant_id, ..e })
            .collect();
        let body = revenue::batch_body(&entries);
        self.store
            .put_object(ws, revenue::REVENUE_ENTRIES, None, body)
            .await?;
        Ok(entries.len())
    }

    /// A tenant id as given, looked up as ingest stores it (its pseudonym when personal).
    pub async fn stored_tenant(
        &self,
        ws: WorkspaceId,
        tenant: &str,
    ) -> Result<String, BudgetError> {
        let settings = self.id_settings(ws, [tenant]).await?;
        Ok(settings.privacy().lookup(tenant, Slot::Id))
    }

    /// The caps on one tenant (its stored id) this period: each budget for each tenant
    /// (its own cap: override, plan limit or the default; None: no limit) and each budget
    /// naming it alone.
    pub async fn tenant_caps(
        &self,
        ws: WorkspaceId,
        tenant: &str,
        now: i64,
    ) -> Result<Vec<TenantCap>, StoreError> {
        let plan = self.plan_map(ws).await?.get(tenant).map(|p| p.to_string());
        let mut out = Vec::new();
        for budget in self.list(ws).await? {
            let (spent, reserved, limit) = if budget.by_plan() {
                let (spent, reserved, _) = self
                    .counters
                    .member_position(ws, budget.id, tenant, now)
                    .unwrap_or_default();
                (
                    spent,
                    reserved,
                    budget.member_limit(Some(tenant), plan.as_deref()),
                )
            } else if budget.scope.tenant_id.as_deref() == Some(tenant) {
                let status = self.status(ws, &budget, now, MEMBER_PAGE).await?;
                (
                    status.spent_usd.0,
                    status.reserved_usd.0,
                    Some(budget.limit_usd.0),
                )
            } else {
                continue;
            };
            let (state, _) = super::state_at(&budget, limit, spent);
            let (period_start, period_end) = budget.window(now);
            out.push(TenantCap {
                budget_id: budget.id,
                name: budget.name.clone(),
                per_tenant: budget.by_plan(),
                plan: plan.clone().filter(|_| budget.by_plan()),
                limit_usd: limit.map(crate::money::Usd),
                spent_usd: crate::money::Usd(spent),
                reserved_usd: crate::money::Usd(reserved),
                state,
                action: budget.action,
                period_start: crate::report::rfc3339(period_start),
                period_end: crate::report::rfc3339(period_end),
            });
        }
        Ok(out)
    }

    pub fn guard(&self, ws: WorkspaceId, req: &GuardRequest, now: i64) -> GuardAnswer {
        self.counters.guard(ws, req, now)
    }
}

pub fn parse_rate_cap(id: i64, body: &Value) -> Result<RateCap, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    for key in obj.keys() {
        if !["endpointTag", "perTenant", "requestsPerMinute"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.as_str(),
                "is not a rate cap field; use endpointTag, perTenant, requestsPerMinute",
            ));
        }
    }
    let endpoint_tag = obj
        .get("endpointTag")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if endpoint_tag.is_empty() {
        errors.push(FieldError::new("endpointTag", "is required"));
    }
    let per_tenant = match obj.get("perTenant") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new("perTenant", "must be true or false"));
            false
        }
    };
    let rpm = obj.get("requestsPerMinute").and_then(Value::as_u64);
    if !rpm.is_some_and(|r| (1..=1_000_000).contains(&r)) {
        errors.push(FieldError::new(
            "requestsPerMinute",
            "is required: an integer from 1 to 1000000",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(RateCap {
        id,
        endpoint_tag: endpoint_tag.to_string(),
        per_tenant,
        requests_per_minute: rpm.unwrap_or(1) as u32,
    })
}

/// Each (id, value) with the id as ingest stores it (a pseudonym for a personal one), or
/// every refused one under `field` (the error never quotes the id).
fn map_ids<V>(
    settings: &crate::settings::IngestSettings,
    field: &str,
    pairs: impl Iterator<Item = (String, V)>,
) -> Result<Vec<(String, V)>, BudgetError> {
    let privacy = settings.privacy();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (mut id, value) in pairs {
        privacy.map_in_place(field, &mut id, Slot::Id, &mut errors);
        out.push((id, value));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(BudgetError::Invalid(errors))
    }
}

/// One cap on a tenant this period (`Budgets::tenant_caps`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantCap {
    pub budget_id: i64,
    pub name: String,
    /// A budget for each tenant (else a budget naming this tenant).
    pub per_tenant: bool,
    pub plan: Option<String>,
    /// None: the tenant's plan has no limit.
    pub limit_usd: Option<crate::money::Usd>,
    pub spent_usd: crate::money::Usd,
    pub reserved_usd: crate::money::Usd,
    pub state: super::State,
    pub action: super::Action,
    pub period_start: String,
    pub period_end: String,
}
