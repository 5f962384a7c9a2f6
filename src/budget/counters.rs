//! The live spend counters behind budgets and the guard. Kept exact by commit sequences:
//! ingest hands every commit's cost changes in with the commit's sequence (`apply`), and a
//! budget's spend is loaded as "everything up to sequence S" (`begin_load`, then
//! `finish_load` with the S the read saw), after which only effects past S count. A load
//! and the commits around it never overlap or leave a gap, whichever process wrote them.
//! The guard answers from here under one short lock, never from the store.

use super::plans::PlanMap;
use super::{state_at, Action, Budget, CallDims, FailMode, State};
use crate::event::{DataMode, Environment};
use crate::store::{CommitSeq, SpendEffect, WorkspaceId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Requests per minute per endpoint (and optionally per tenant), checked by the guard.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateCap {
    pub id: i64,
    pub endpoint_tag: String,
    /// When set, the cap holds for each tenant separately instead of the endpoint total.
    pub per_tenant: bool,
    pub requests_per_minute: u32,
}

/// The largest estimate a guard call may send: the same ceiling as one event's costUsd
/// (docs/event-contract.md). It keeps spent + reserved + estimate far from i64's range.
pub const MAX_ESTIMATE_USD: crate::money::Usd = crate::money::Usd(10_000 * 1_000_000_000);

/// What a guard call asks.
#[derive(Debug, Clone, Default)]
pub struct GuardRequest {
    pub environment: Option<Environment>,
    pub data_mode: Option<DataMode>,
    pub endpoint_tag: String,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub estimate: Option<i64>,
    pub external_request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetPosition {
    pub id: i64,
    pub name: String,
    pub action: Action,
    /// USD left in the period after spend and reservations (the guard contract's name).
    pub remaining: crate::money::Usd,
    pub state: State,
    /// Per-member budgets: the member this call counts against and its own limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<crate::money::Usd>,
    /// A budget for each tenant: the calling tenant's plan, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// Why a member's own cap blocked a call, for the app to act on and show its user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    pub budget_id: i64,
    /// The member dimension: tenantId, userId or endpointTag.
    pub dimension: &'static str,
    pub member: String,
    /// The member's plan (a budget for each tenant), if it has one.
    pub plan: Option<String>,
    pub limit_usd: crate::money::Usd,
    pub spent_usd: crate::money::Usd,
    /// When the period ends and the cap starts again (RFC 3339).
    pub resets_at: String,
    /// A sentence an app can show its user as is.
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardAnswer {
    pub allow: bool,
    /// ok | budget_exceeded | rate_capped | budgets_loading | tenant_/user_/endpoint_quota_exceeded
    pub reason: &'static str,
    pub budgets: Vec<BudgetPosition>,
    pub retry_after_seconds: Option<u64>,
    pub estimated_cost_usd: crate::money::Usd,
    /// client | endpoint_p95 | none
    pub estimate_source: &'static str,
    pub reserved: bool,
    /// Set when a member's cap (a per-member budget) blocked the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// A member of a per-member budget: one value of its `"*"` dimension.
pub type Member = Box<str>;

/// (spent, unpriced) of each member in one period.
pub type MemberSpend = HashMap<Member, (i64, u64)>;

/// Spend of one budget, per period start (the current period, and the next one when
/// events stamped a little ahead arrive before the clock rolls over).
#[derive(Debug, Clone)]
struct Live {
    budget: Arc<Budget>,
    /// False until the store's spend for the current period has been loaded.
    loaded: bool,
    /// The period start and commit sequence of the last load: effects of that period at
    /// or before the sequence are in the loaded total already.
    loaded_at: (i64, CommitSeq),
    spent: BTreeMap<i64, (i64, u64)>,
    /// Per-member budgets: each member's spend, by the same period starts as `spent`.
    members: BTreeMap<i64, MemberSpend>,
    reserved: i64,
    /// Per-member budgets: the reservations of each member holding some.
    member_reserved: HashMap<Member, i64>,
    window: Window,
    /// With several nodes on one store, a blocking budget's last load: what this node
    /// shares out (see `Counters::set_nodes`).
    share: Option<Share>,
}

/// What a load of a blocking budget read, when several nodes share the store: each
/// node's ceiling is that spend plus its part of what was left (`node_share`), for the
/// whole budget or each member.
#[derive(Debug, Clone)]
struct Share {
    period_start: i64,
    nodes: u64,
    total: i64,
    /// Per-member budgets: each member's spend as read.
    members: HashMap<Member, i64>,
}

impl Share {
    /// This node's ceiling for the budget (`member` None) or one member, of `limit`.
    fn ceiling(&self, member: Option<&str>, limit: i64) -> Option<i64> {
        let read = match member {
            Some(m) => self.members.get(m).copied().unwrap_or(0),
            None => self.total,
        };
        node_share(limit, read, self.nodes)
    }
}

/// The last period computed for a budget: calendar math in a time zone costs
/// microseconds, and the guard asks for it on every call.
#[derive(Debug, Clone, Copy, Default)]
struct Window(i64, i64);

impl Window {
    fn at(&mut self, budget: &Budget, at_ms: i64) -> (i64, i64) {
        if !(self.0..self.1).contains(&at_ms) {
            let (start, end) = budget.window(at_ms);
            *self = Window(start, end);
        }
        (self.0, self.1)
    }
}

impl Live {
    fn current(&mut self, now_ms: i64) -> (i64, u64) {
        let (start, _) = self.window.at(&self.budget, now_ms);
        self.spent.get(&start).copied().unwrap_or((0, 0))
    }

    /// The current period's spend of one member, or of the whole budget (None).
    fn current_of(&mut self, member: Option<&str>, now_ms: i64) -> (i64, u64) {
        let Some(member) = member else {
            return self.current(now_ms);
        };
        let (start, _) = self.window.at(&self.budget, now_ms);
        let spend = self.members.get(&start).and_then(|m| m.get(member));
        spend.copied().unwrap_or((0, 0))
    }

    fn reserved_of(&self, member: Option<&str>) -> i64 {
        match member {
            Some(m) => self.member_reserved.get(m).copied().unwrap_or(0),
            None => self.reserved,
        }
    }

    fn new(budget: Budget) -> Live {
        Live {
            budget: Arc::new(budget),
            loaded: false,
            loaded_at: (i64::MIN, 0),
            spent: BTreeMap::new(),
            members: BTreeMap::new(),
            reserved: 0,
            member_reserved: HashMap::new(),
            window: Window::default(),
            share: None,
        }
    }
}

struct Reservation {
    amount: i64,
    /// The budgets it was added to, each with the member it was added to.
    budgets: Vec<(i64, Option<Member>)>,
    expires_ms: i64,
}

/// A load in flight: the effects on its budget and period that arrive while the store is
/// read, kept so that those the read did not see can be added when it finishes.
struct PendingLoad {
    ticket: u64,
    budget_id: i64,
    period_start: i64,
    /// (sequence, member, cost, unpriced) of each effect since the load began.
    seen: Vec<(CommitSeq, Option<Member>, i64, i64)>,
}

/// Names one load between `begin_load` and `finish_load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadTicket {
    ws: WorkspaceId,
    id: u64,
}

#[derive(Default)]
struct Book {
    pending: Vec<PendingLoad>,
    budgets: Vec<Live>,
    caps: Vec<RateCap>,
    reservations: HashMap<String, Reservation>,
    /// Reservation ids by expiry (the TTL is one value, so this stays ordered).
    expiry: VecDeque<(i64, String)>,
    /// Recent priced call costs per endpoint, newest last, for estimates.
    recent: HashMap<String, VecDeque<i64>>,
    /// Rate-cap token buckets: (tokens, updated_ms) by cap id and tenant.
    buckets: HashMap<(i64, String), (f64, i64)>,
    /// Each tenant's plan, for the plan limits of budgets for each tenant.
    plans: Arc<PlanMap>,
}

/// The plan of a budget's member, when the budget's members are tenants.
fn plan_of<'p>(plans: &'p PlanMap, budget: &Budget, member: Option<&str>) -> Option<&'p str> {
    match budget.by_plan() {
        true => plans.get(member?).map(|p| &**p),
        false => None,
    }
}

const RECENT_COSTS: usize = 200;

/// When a node's share of a budget is used up: its loads come every 2 s.
const SHARE_RETRY_SECONDS: u64 = 2;

pub struct Counters {
    books: Mutex<HashMap<WorkspaceId, Book>>,
    reservation_ttl_ms: i64,
    next_ticket: std::sync::atomic::AtomicU64,
    /// How many server nodes share the store (1 unless told otherwise).
    nodes: std::sync::atomic::AtomicU64,
}

/// A node's ceiling for a blocking budget when `nodes` nodes share it: the spend read
/// from the store plus an equal part of what was left of the limit. Every node loads on
/// the same wall-clock tick, so the parts add up to at most the limit (docs/scale-out.md
/// has the bound); one node keeps no ceiling but the limit.
pub fn node_share(limit: i64, loaded_spend: i64, nodes: u64) -> Option<i64> {
    if nodes <= 1 {
        return None;
    }
    let left = limit.saturating_sub(loaded_spend).max(0);
    Some(loaded_spend.saturating_add(left / nodes as i64))
}

impl Counters {
    pub fn new(reservation_ttl_ms: i64) -> Counters {
        Counters {
            books: Mutex::new(HashMap::new()),
            reservation_ttl_ms,
            next_ticket: std::sync::atomic::AtomicU64::new(1),
            nodes: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// How many nodes (servers) share the store now: from the next load on, each
    /// blocking budget (each member of a per-member one) admits on this node only up to
    /// its share of what is left (`node_share`).
    pub fn set_nodes(&self, nodes: u64) {
        let nodes = nodes.max(1);
        self.nodes
            .store(nodes, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn nodes(&self) -> u64 {
        self.nodes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `budget`, with this very definition, is held and loaded (a `configure`
    /// with it keeps its counters and loads nothing).
    pub fn holds_loaded(&self, ws: WorkspaceId, budget: &Budget) -> bool {
        let books = self.books.lock().unwrap();
        books.get(&ws).is_some_and(|book| {
            book.budgets
                .iter()
                .any(|l| l.loaded && *l.budget == *budget)
        })
    }

    /// Replace a workspace's budgets and caps (after a change); budgets whose definition
    /// changed need a `load` before they count again.
    pub fn configure(&self, ws: WorkspaceId, budgets: Vec<Budget>, caps: Vec<RateCap>) {
        let mut books = self.books.lock().unwrap();
        let book = books.entry(ws).or_default();
        let mut old = std::mem::take(&mut book.budgets);
        // An unchanged budget keeps its counters, moved rather than copied: a per-member
        // budget holds one entry per member.
        book.budgets = budgets
            .into_iter()
            .map(|b| match old.iter().position(|l| *l.budget == b) {
                Some(same) => old.swap_remove(same),
                None => Live::new(b),
            })
            .collect();
        book.caps = caps;
    }

    /// Replace a workspace's tenant -> plan map.
    pub fn set_plans(&self, ws: WorkspaceId, plans: Arc<PlanMap>) {
        let mut books = self.books.lock().unwrap();
        books.entry(ws).or_default().plans = plans;
    }

    /// Start loading a budget's spend for the period starting at `period_start`: from
    /// now until `finish_load`, effects on it are also kept aside. Call before the read.
    pub fn begin_load(&self, ws: WorkspaceId, budget_id: i64, period_start: i64) -> LoadTicket {
        let id = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut books = self.books.lock().unwrap();
        books.entry(ws).or_default().pending.push(PendingLoad {
            ticket: id,
            budget_id,
            period_start,
            seen: Vec::new(),
        });
        LoadTicket { ws, id }
    }

    /// Finish a load with the spend the store read up to commit `seq`: the period's
    /// total becomes that plus every effect kept aside that came after `seq`.
    pub fn finish_load(&self, ticket: LoadTicket, spent: i64, unpriced: u64, seq: CommitSeq) {
        self.finish(ticket, (spent, unpriced), None, seq)
    }

    /// `finish_load` for a per-member budget: its total and each member's spend, read
    /// up to commit `seq` (one grouped query); kept-aside effects after `seq` are added
    /// to their members.
    pub fn finish_member_load(
        &self,
        ticket: LoadTicket,
        total: (i64, u64),
        members: MemberSpend,
        seq: CommitSeq,
    ) {
        self.finish(ticket, total, Some(members), seq)
    }

    fn finish(
        &self,
        ticket: LoadTicket,
        (spent, unpriced): (i64, u64),
        mut members: Option<MemberSpend>,
        seq: CommitSeq,
    ) {
        let mut books = self.books.lock().unwrap();
        let Some(book) = books.get_mut(&ticket.ws) else {
            return;
        };
        let Some(at) = book.pending.iter().position(|p| p.ticket == ticket.id) else {
            return;
        };
        let load = book.pending.swap_remove(at);
        let nodes = self.nodes();
        let mut share = Share {
            period_start: load.period_start,
            nodes,
            total: spent,
            members: HashMap::new(),
        };
        if let (Some(read), true) = (members.as_ref(), nodes > 1) {
            share.members = read.iter().map(|(m, s)| (m.clone(), s.0)).collect();
        }
        let (mut spent, mut unpriced) = (spent, unpriced);
        for (effect_seq, member, cost, unpriced_delta) in load.seen {
            if effect_seq > seq {
                spent = spent.saturating_add(cost);
                unpriced = unpriced.saturating_add_signed(unpriced_delta);
                if let (Some(members), Some(member)) = (members.as_mut(), member) {
                    add(members.entry(member).or_default(), cost, unpriced_delta);
                }
            }
        }
        let Some(live) = book
            .budgets
            .iter_mut()
            .find(|l| l.budget.id == load.budget_id)
        else {
            return;
        };
        live.spent.retain(|start, _| *start > load.period_start);
        live.spent.insert(load.period_start, (spent, unpriced));
        if live.budget.scope.each.is_some() {
            live.members.retain(|start, _| *start > load.period_start);
            let members = members.unwrap_or_default();
            live.members.insert(load.period_start, members);
        }
        live.loaded = true;
        live.loaded_at = (load.period_start, seq);
        live.share = (live.budget.action == Action::Block && nodes > 1).then_some(share);
    }

    /// Set a budget's spend outright, as read before any commit (where no read races
    /// commits: tests, benchmarks).
    pub fn load(
        &self,
        ws: WorkspaceId,
        budget_id: i64,
        period_start: i64,
        spent: i64,
        unpriced: u64,
    ) {
        let ticket = self.begin_load(ws, budget_id, period_start);
        self.finish_load(ticket, spent, unpriced, 0);
    }

    /// Forget a load whose read failed.
    pub fn abandon_load(&self, ticket: LoadTicket) {
        let mut books = self.books.lock().unwrap();
        if let Some(book) = books.get_mut(&ticket.ws) {
            book.pending.retain(|p| p.ticket != ticket.id);
        }
    }

    /// Seed the per-endpoint estimates (newest last).
    pub fn seed_recent(&self, ws: WorkspaceId, endpoint: &str, costs: Vec<i64>) {
        let mut books = self.books.lock().unwrap();
        let recent = books
            .entry(ws)
            .or_default()
            .recent
            .entry(endpoint.to_string());
        let ring = recent.or_default();
        ring.extend(costs);
        while ring.len() > RECENT_COSTS {
            ring.pop_front();
        }
    }

    /// The budgets of every workspace, to match calls against without the lock.
    fn snapshot(&self) -> Vec<(WorkspaceId, Arc<Budget>)> {
        let books = self.books.lock().unwrap();
        books
            .iter()
            .flat_map(|(ws, book)| book.budgets.iter().map(|l| (*ws, l.budget.clone())))
            .collect()
    }

    /// Fold in the effects one request's events had in commit `seq`; settles the
    /// reservations of the calls it stored. Which budget and period each effect counts
    /// against is worked out first, without the lock, so the guard never waits behind a
    /// large commit's matching.
    pub fn apply(&self, seq: CommitSeq, effects: &[SpendEffect]) {
        let budgets = self.snapshot();
        let mut windows = vec![Window::default(); budgets.len()];
        // (workspace, budget id, period start, member) -> (cost, unpriced)
        type Slot = (WorkspaceId, i64, i64, Option<Member>);
        let mut deltas: HashMap<Slot, (i64, i64)> = HashMap::new();
        for effect in effects {
            let dims = CallDims::of_effect(effect);
            for (i, (ws, budget)) in budgets.iter().enumerate() {
                if *ws != effect.workspace || !budget.scope.matches(&dims) {
                    continue;
                }
                let (start, _) = windows[i].at(budget, effect.ts_ms);
                let member = budget.scope.member(&dims).map(Member::from);
                let entry = deltas.entry((*ws, budget.id, start, member)).or_default();
                entry.0 = entry.0.saturating_add(effect.cost_delta);
                entry.1 = entry.1.saturating_add(effect.unpriced_delta);
            }
        }
        let mut books = self.books.lock().unwrap();
        for effect in effects {
            let book = books.entry(effect.workspace).or_default();
            if let Some(id) = &effect.external_request_id {
                book.release(id);
            }
            if let Some(cost) = effect.new_call_cost {
                let ring = book.recent.entry(effect.endpoint_tag.clone()).or_default();
                ring.push_back(cost);
                if ring.len() > RECENT_COSTS {
                    ring.pop_front();
                }
            }
        }
        for ((ws, id, start, member), (cost, unpriced)) in deltas {
            let Some(book) = books.get_mut(&ws) else {
                continue;
            };
            for load in book
                .pending
                .iter_mut()
                .filter(|p| p.budget_id == id && p.period_start == start)
            {
                load.seen.push((seq, member.clone(), cost, unpriced));
            }
            let Some(live) = book.budgets.iter_mut().find(|l| l.budget.id == id) else {
                continue;
            };
            // Only the current period and later ones are kept; older spend is history.
            if live.spent.keys().next().is_some_and(|first| start < *first) {
                continue;
            }
            // A load that saw this commit has it in its total already.
            let (loaded_start, loaded_seq) = live.loaded_at;
            if start == loaded_start && seq <= loaded_seq {
                continue;
            }
            // Saturating: spend too large to hold stays at the maximum, over every limit,
            // so a blocking budget stays closed rather than wrapping to a negative spend.
            add(live.spent.entry(start).or_default(), cost, unpriced);
            if let Some(member) = member {
                let members = live.members.entry(start).or_default();
                add(members.entry(member).or_default(), cost, unpriced);
            }
        }
    }

    /// The ids of the reservations held in `ws` (calls guarded here and not yet settled).
    pub fn reserved_ids(&self, ws: WorkspaceId) -> Vec<String> {
        let books = self.books.lock().unwrap();
        books
            .get(&ws)
            .map(|b| b.reservations.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Release the reservations of calls already stored (ingested through another node:
    /// this node saw no effect settle them). Their spend is in the store, so the next
    /// load counts it; kept, they would count twice until they lapse.
    pub fn settle_stored(&self, ws: WorkspaceId, stored: &[String]) {
        let mut books = self.books.lock().unwrap();
        if let Some(book) = books.get_mut(&ws) {
            for id in stored {
                book.release(id);
            }
        }
    }

    /// Spent, reserved and unpriced of a budget's current period; None if unknown.
    pub fn position(
        &self,
        ws: WorkspaceId,
        budget_id: i64,
        now_ms: i64,
    ) -> Option<(i64, i64, u64, bool)> {
        let mut books = self.books.lock().unwrap();
        let book = books.get_mut(&ws)?;
        book.expire(now_ms);
        let live = book.budgets.iter_mut().find(|l| l.budget.id == budget_id)?;
        live.prune(now_ms);
        let (spent, unpriced) = live.current(now_ms);
        Some((spent, live.reserved, unpriced, live.loaded))
    }

    /// Spent, reserved and unpriced of one member of a per-member budget this period.
    pub fn member_position(
        &self,
        ws: WorkspaceId,
        budget_id: i64,
        member: &str,
        now_ms: i64,
    ) -> Option<(i64, i64, u64)> {
        let mut books = self.books.lock().unwrap();
        let book = books.get_mut(&ws)?;
        book.expire(now_ms);
        let live = book.budgets.iter_mut().find(|l| l.budget.id == budget_id)?;
        live.prune(now_ms);
        let (spent, unpriced) = live.current_of(Some(member), now_ms);
        Some((spent, live.reserved_of(Some(member)), unpriced))
    }

    /// A per-member budget's members over and near their caps this period: counted in
    /// one pass, one page of them sorted most over first (share of their own limit,
    /// compared exactly), then by spend and name. None for other budgets.
    pub fn members(
        &self,
        ws: WorkspaceId,
        budget_id: i64,
        now_ms: i64,
        offset: usize,
        limit: usize,
    ) -> Option<super::Members> {
        let mut books = self.books.lock().unwrap();
        let book = books.get_mut(&ws)?;
        book.expire(now_ms);
        let live = book.budgets.iter_mut().find(|l| l.budget.id == budget_id)?;
        live.budget.scope.each?;
        live.prune(now_ms);
        let (start, _) = live.window.at(&live.budget, now_ms);
        let empty = MemberSpend::new();
        let spent = live.members.get(&start).unwrap_or(&empty);
        let reserved_only = live
            .member_reserved
            .keys()
            .filter(|m| !spent.contains_key(*m));
        let names = spent.keys().chain(reserved_only);
        let mut out = super::Members {
            offset,
            limit,
            ..Default::default()
        };
        // (member, limit, spent, reserved, state) of those at warning or over.
        let mut flagged = Vec::new();
        for member in names {
            out.count += 1;
            let plan = plan_of(&book.plans, &live.budget, Some(member));
            let Some(cap) = live.budget.member_limit(Some(member), plan) else {
                continue;
            };
            let used = spent.get(member).map_or(0, |s| s.0);
            let state = state_at(&live.budget, Some(cap), used).0;
            match state {
                State::Ok => continue,
                State::Warning => out.near += 1,
                State::Exceeded => out.over += 1,
            }
            let held = live.member_reserved.get(member).copied().unwrap_or(0);
            flagged.push((member, plan, cap, used, held, state));
        }
        // Most over first: spent/limit compared as spent_a * limit_b vs spent_b * limit_a.
        flagged.sort_by(|a, b| {
            let share = |x: &Flagged, y: &Flagged| {
                (x.3 as i128 * y.2 as i128).cmp(&(y.3 as i128 * x.2 as i128))
            };
            share(b, a).then(b.3.cmp(&a.3)).then(a.0.cmp(b.0))
        });
        if flagged.len() > offset.saturating_add(limit) {
            out.next_offset = Some(offset + limit);
        }
        out.page = flagged
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(
                |(member, plan, cap, used, held, state)| super::MemberStatus {
                    state,
                    ..super::MemberStatus::new(member, plan, cap, used, held)
                },
            )
            .collect();
        Some(out)
    }

    /// (index of the call, budget id, member) for every budget of `ws` each call counts
    /// against; matched outside the lock.
    pub fn matching<'a>(
        &self,
        ws: WorkspaceId,
        calls: impl Iterator<Item = CallDims<'a>>,
    ) -> Vec<(usize, Hit)> {
        let budgets: Vec<Arc<Budget>> = self
            .snapshot()
            .into_iter()
            .filter(|(w, _)| *w == ws)
            .map(|(_, b)| b)
            .collect();
        if budgets.is_empty() {
            return Vec::new();
        }
        let mut hits = Vec::new();
        for (i, call) in calls.enumerate() {
            for b in budgets.iter().filter(|b| b.scope.matches(&call)) {
                hits.push((i, (b.id, b.scope.member(&call).map(Member::from))));
            }
        }
        hits
    }

    /// Of these budgets (each with the member the calls touched, for a per-member
    /// budget), the ones at warning and the ones exceeded now; a per-member budget is
    /// named by the worst of its touched members.
    pub fn states(&self, ws: WorkspaceId, hits: &[Hit], now_ms: i64) -> (Vec<i64>, Vec<i64>) {
        let (mut warning, mut exceeded) = (Vec::new(), Vec::new());
        if hits.is_empty() {
            return (warning, exceeded);
        }
        let mut books = self.books.lock().unwrap();
        let Some(book) = books.get_mut(&ws) else {
            return (warning, exceeded);
        };
        let mut worst: BTreeMap<i64, State> = BTreeMap::new();
        for (id, member) in hits {
            let Some(live) = book.budgets.iter_mut().find(|l| l.budget.id == *id) else {
                continue;
            };
            let member = member.as_deref();
            let spent = live.current_of(member, now_ms).0;
            let plan = plan_of(&book.plans, &live.budget, member);
            let limit = live.budget.member_limit(member, plan);
            let state = state_at(&live.budget, limit, spent).0;
            let seen = worst.entry(*id).or_insert(State::Ok);
            if state_rank(state) > state_rank(*seen) {
                *seen = state;
            }
        }
        for (id, state) in worst {
            match state {
                State::Warning => warning.push(id),
                State::Exceeded => exceeded.push(id),
                State::Ok => {}
            }
        }
        (warning, exceeded)
    }

    /// May this call go ahead? Reserves its estimate when allowed and it carries an id.
    pub fn guard(&self, ws: WorkspaceId, req: &GuardRequest, now_ms: i64) -> GuardAnswer {
        let mut books = self.books.lock().unwrap();
        let book = books.entry(ws).or_default();
        book.expire(now_ms);
        let (estimate, estimate_source) = match req.estimate {
            Some(e) => (e, "client"),
            None => match book.p95(&req.endpoint_tag) {
                Some(e) => (e, "endpoint_p95"),
                None => (0, "none"),
            },
        };
        let dims = CallDims {
            environment: Some(req.environment.unwrap_or(Environment::Prod)),
            data_mode: Some(req.data_mode.unwrap_or(DataMode::Real)),
            endpoint_tag: Some(&req.endpoint_tag),
            tenant_id: req.tenant_id.as_deref(),
            user_id: req.user_id.as_deref(),
            model: req.model.as_deref(),
            provider: req.provider.as_deref(),
            tags: None,
        };
        let mut answer = GuardAnswer {
            allow: true,
            reason: "ok",
            budgets: Vec::new(),
            retry_after_seconds: None,
            estimated_cost_usd: crate::money::Usd(estimate),
            estimate_source,
            reserved: false,
            quota: None,
        };
        let mut matched: Vec<(i64, Option<&str>)> = Vec::new();
        for live in book.budgets.iter_mut() {
            if !live.budget.scope.matches(&dims) {
                continue;
            }
            let member = live.budget.scope.member(&dims);
            let plan = plan_of(&book.plans, &live.budget, member);
            // A member without a limit (a plan with none) is not capped by this budget.
            let Some(limit) = live.budget.member_limit(member, plan) else {
                continue;
            };
            live.prune(now_ms);
            matched.push((live.budget.id, member));
            let (spent, _) = live.current_of(member, now_ms);
            let reserved = live.reserved_of(member);
            let b = &live.budget;
            // Listed from its first load on (a fail-closed blocking one also while it
            // loads, refusing): before that its position is unknown, and a caller that
            // sees a budget listed can rely on its being enforced from then on (with
            // several nodes, on this node's share: `Budgets::reload`).
            let enforced =
                live.loaded || (b.action == Action::Block && b.fail_mode == FailMode::Closed);
            if enforced {
                answer.budgets.push(BudgetPosition {
                    id: b.id,
                    name: b.name.clone(),
                    action: b.action,
                    remaining: super::remaining(limit, spent, reserved),
                    state: state_at(b, Some(limit), spent).0,
                    member: member.map(str::to_string),
                    limit_usd: member.map(|_| crate::money::Usd(limit)),
                    plan: plan.map(str::to_string),
                });
            }
            if b.action != Action::Block || !answer.allow {
                continue;
            }
            if !live.loaded {
                if b.fail_mode == FailMode::Closed {
                    answer.allow = false;
                    answer.reason = "budgets_loading";
                    answer.retry_after_seconds = Some(1);
                }
                continue;
            }
            let (start, end) = live.window.at(b, now_ms);
            let share = live.share.as_ref().filter(|s| s.period_start == start);
            let share = share.and_then(|s| s.ceiling(member, limit));
            if fits(limit, &[spent, reserved, estimate])
                && share.is_some_and(|ceiling| !fits(ceiling, &[spent, reserved, estimate]))
            {
                // This node's share is used up, not the budget: the next load (every
                // node's, on the same tick) shares out what is left again.
                answer.allow = false;
                answer.reason = "budget_exceeded";
                answer.retry_after_seconds = Some(SHARE_RETRY_SECONDS);
                continue;
            }
            if !fits(limit, &[spent, reserved, estimate]) {
                answer.allow = false;
                answer.reason = "budget_exceeded";
                answer.retry_after_seconds = Some(((end - now_ms).max(0) as u64).div_ceil(1000));
                if let (Some(each), Some(member)) = (b.scope.each, member) {
                    answer.reason = each.quota_reason();
                    let mut quota = quota(b, each, member, limit, spent, end);
                    quota.plan = plan.map(str::to_string);
                    answer.quota = Some(quota);
                }
            }
        }
        if answer.allow {
            let (endpoint, tenant) = (&req.endpoint_tag, req.tenant_id.as_deref());
            if let Err(wait) = book.take_rate(endpoint, tenant, now_ms, self.nodes()) {
                answer.allow = false;
                answer.reason = "rate_capped";
                answer.retry_after_seconds = Some(wait);
            }
        }
        if answer.allow {
            if let Some(id) = &req.external_request_id {
                book.release(id);
                // A blocking budget was checked above, so its sum fits. A notify budget
                // whose reservations no longer fit an i64 does not record this one (it
                // only lowers its displayed remaining); the reservation lists only the
                // budgets it was added to, so releasing it is exact.
                let mut held = Vec::with_capacity(matched.len());
                for (id, member) in matched {
                    let Some(live) = book.budgets.iter_mut().find(|l| l.budget.id == id) else {
                        continue;
                    };
                    let (Some(total), Some(own)) = (
                        live.reserved.checked_add(estimate),
                        live.reserved_of(member).checked_add(estimate),
                    ) else {
                        continue;
                    };
                    live.reserved = total;
                    if let Some(member) = member {
                        live.member_reserved.insert(member.into(), own);
                    }
                    held.push((id, member.map(Member::from)));
                }
                let expires_ms = now_ms.saturating_add(self.reservation_ttl_ms);
                book.reservations.insert(
                    id.clone(),
                    Reservation {
                        amount: estimate,
                        budgets: held,
                        expires_ms,
                    },
                );
                book.expiry.push_back((expires_ms, id.clone()));
                answer.reserved = true;
            }
        }
        answer
    }
}

/// (member, plan, limit, spent, reserved, state) of a member at warning or over.
type Flagged<'a> = (&'a Member, Option<&'a str>, i64, i64, i64, State);

/// Which budget a call counts against, and for a per-member budget its member.
pub type Hit = (i64, Option<Member>);

fn add(entry: &mut (i64, u64), cost: i64, unpriced: i64) {
    // Saturating: spend too large to hold stays at the maximum, over every limit, so a
    // blocking budget stays closed rather than wrapping to a negative spend.
    entry.0 = entry.0.saturating_add(cost);
    entry.1 = entry.1.saturating_add_signed(unpriced);
}

fn state_rank(state: State) -> u8 {
    match state {
        State::Ok => 0,
        State::Warning => 1,
        State::Exceeded => 2,
    }
}

/// The blocked member's quota: what an app shows its user.
fn quota(b: &Budget, each: super::Each, member: &str, limit: i64, spent: i64, end: i64) -> Quota {
    let resets_at = crate::report::rfc3339(end);
    let (limit_usd, spent_usd) = (crate::money::Usd(limit), crate::money::Usd(spent));
    Quota {
        budget_id: b.id,
        dimension: each.field(),
        member: member.to_string(),
        plan: None,
        limit_usd,
        spent_usd,
        message: format!(
            "The AI usage limit of ${limit_usd} per {} has been reached. It resets at {resets_at}.",
            b.period.as_str()
        ),
        resets_at,
    }
}

/// Whether `parts` (spent, reserved, the estimate) add up to at most `limit`. A sum an
/// i64 cannot hold is over every limit: the guard fails closed, never wraps to allow.
fn fits(limit: i64, parts: &[i64]) -> bool {
    parts
        .iter()
        .try_fold(0i64, |sum, part| sum.checked_add(*part))
        .is_some_and(|total| total <= limit)
}

impl Live {
    /// Forget periods that ended before the current one.
    fn prune(&mut self, now_ms: i64) {
        let (start, _) = self.window.at(&self.budget, now_ms);
        self.spent.retain(|s, _| *s >= start);
        self.members.retain(|s, _| *s >= start);
    }
}

impl Book {
    fn release(&mut self, id: &str) {
        let Some(r) = self.reservations.remove(id) else {
            return;
        };
        for (budget_id, member) in r.budgets {
            let Some(live) = self.budgets.iter_mut().find(|l| l.budget.id == budget_id) else {
                continue;
            };
            // It was added to exactly these budgets, so this cannot underflow; saturate
            // anyway rather than wrap.
            live.reserved = live.reserved.saturating_sub(r.amount);
            let Some(member) = member else {
                continue;
            };
            if let Some(own) = live.member_reserved.get_mut(&member) {
                *own = own.saturating_sub(r.amount);
                // Only members holding reservations keep an entry.
                if *own <= 0 {
                    live.member_reserved.remove(&member);
                }
            }
        }
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now_ms {
                break;
            }
            let (at, id) = self.expiry.pop_front().unwrap();
            // A guard call that reused the id later has a later expiry: keep that one.
            if self
                .reservations
                .get(&id)
                .is_some_and(|r| r.expires_ms == at)
            {
                self.release(&id);
            }
        }
    }

    fn p95(&self, endpoint: &str) -> Option<i64> {
        let ring = self.recent.get(endpoint).filter(|r| !r.is_empty())?;
        let mut costs: Vec<i64> = ring.iter().copied().collect();
        costs.sort_unstable();
        let rank = (costs.len() * 95).div_ceil(100).max(1) - 1;
        Some(costs[rank])
    }

    /// Take one request from every cap on this endpoint; Err(seconds to wait) if any is
    /// empty (then none is taken).
    /// Take a token from every cap on `endpoint`. With `nodes` nodes sharing the store
    /// each holds its part of a cap, `max(1, requests_per_minute / nodes)`, so together
    /// they admit at most the cap (or one a minute per node when that is more).
    fn take_rate(
        &mut self,
        endpoint: &str,
        tenant: Option<&str>,
        now_ms: i64,
        nodes: u64,
    ) -> Result<(), u64> {
        let keys: Vec<((i64, String), f64)> = self
            .caps
            .iter()
            .filter(|c| c.endpoint_tag == endpoint)
            .map(|c| {
                let who = if c.per_tenant {
                    tenant.unwrap_or("")
                } else {
                    ""
                };
                let part = (c.requests_per_minute as f64 / nodes.max(1) as f64).max(1.0);
                ((c.id, who.to_string()), part)
            })
            .collect();
        let mut wait = 0u64;
        for (key, per_minute) in &keys {
            let (tokens, updated) = self
                .buckets
                .get(key)
                .copied()
                .unwrap_or((*per_minute, now_ms));
            let refill = (now_ms - updated).max(0) as f64 * per_minute / 60_000.0;
            let tokens = (tokens + refill).min(*per_minute);
            self.buckets.insert(key.clone(), (tokens, now_ms));
            if tokens < 1.0 {
                let seconds = ((1.0 - tokens) * 60.0 / per_minute).ceil().max(1.0) as u64;
                wait = wait.max(seconds);
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for (key, _) in keys {
            if let Some(bucket) = self.buckets.get_mut(&key) {
                bucket.0 -= 1.0;
            }
        }
        Ok(())
    }
}
