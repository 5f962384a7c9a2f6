//! Margin per tenant over a window: revenue (`crate::revenue`: plan prices, overrides,
//! one-offs) against AI cost (one aggregate grouped by tenant), the unprofitable first;
//! AI cost per active user per day; the month-end projection of each tenant's cost from
//! its own run rate. The API, the CLI, the tenant page and the margin alert read it.

use crate::budget::plans::{PlanHistory, PlanMap};
use crate::money::Usd;
use crate::query::{Bucket, Dimension, Measure, Query, Sums};
use crate::revenue::{self, Entry, Months};
use crate::store::{Result, Store, StoreError, WorkspaceId};
use serde::Serialize;
use std::collections::HashMap;

/// What the rest of the report needs about revenue: plan prices and entries.
pub struct RevenueBook {
    /// Each tenant's plan now.
    pub plans: std::sync::Arc<PlanMap>,
    /// Each tenant's plan changes: revenue accrues the price of the plan in force.
    pub history: std::sync::Arc<PlanHistory>,
    pub prices: HashMap<String, Usd>,
    pub entries: HashMap<String, Vec<Entry>>,
}

impl RevenueBook {
    /// The stored plan prices and entries, with the tenants' plans.
    pub async fn load(
        store: &dyn Store,
        ws: WorkspaceId,
        plans: std::sync::Arc<PlanMap>,
        history: std::sync::Arc<PlanHistory>,
    ) -> Result<RevenueBook> {
        let prices = revenue::prices(&store.objects(Some(ws), revenue::PLAN_DEFINITION).await?);
        let entries = revenue::fold(&store.objects(Some(ws), revenue::REVENUE_ENTRIES).await?);
        Ok(RevenueBook {
            plans,
            history,
            prices,
            entries,
        })
    }

    pub fn plan(&self, tenant: &str) -> Option<&str> {
        self.plans.get(tenant).map(|p| &**p)
    }

    /// A tenant's revenue over [from, to).
    pub fn revenue(&self, tenant: &str, from: i64, to: i64) -> Result<Usd> {
        self.revenue_in(tenant, &Months::new(from, to))
    }

    /// A tenant's revenue over the window of `months` (made once for many tenants).
    pub fn revenue_in(&self, tenant: &str, months: &Months) -> Result<Usd> {
        let changes = self
            .history
            .tenants
            .get(tenant)
            .map_or(&[][..], Vec::as_slice);
        let prices: Vec<(i64, Option<Usd>)> = changes
            .iter()
            .map(|(from, plan)| {
                (
                    *from,
                    plan.as_deref().and_then(|p| self.prices.get(p)).copied(),
                )
            })
            .collect();
        let entries = self.entries.get(tenant).map_or(&[][..], Vec::as_slice);
        revenue::revenue(&prices, entries, months).map_err(|_| StoreError::SumOverflow)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantMargin {
    pub tenant_id: String,
    pub plan: Option<String>,
    pub revenue_usd: Usd,
    /// The cost of the priced calls; `unpriced` calls have no known cost.
    pub cost_usd: Usd,
    pub unpriced: u64,
    pub requests: u64,
    pub margin_usd: Usd,
    /// AI cost as a percent of revenue; null without revenue.
    pub cost_share_pct: Option<f64>,
    /// Distinct (user, UTC day) pairs with calls (calls without a userId are no user).
    pub active_user_days: u64,
    pub cost_per_active_user_day_usd: Option<Usd>,
    /// The month the window ends in, carried to its end at the tenant's run rate (only
    /// while that month is running at the window's end).
    pub projected: Option<Projected>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Projected {
    pub month_start: String,
    pub month_end: String,
    pub cost_usd: Usd,
    pub revenue_usd: Usd,
    pub margin_usd: Usd,
    pub cost_share_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarginTotals {
    pub revenue_usd: Usd,
    pub cost_usd: Usd,
    pub unpriced: u64,
    pub margin_usd: Usd,
    pub cost_share_pct: Option<f64>,
    pub unprofitable: usize,
    pub active_user_days: u64,
    pub cost_per_active_user_day_usd: Option<Usd>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarginReport {
    pub from: String,
    pub to: String,
    pub totals: MarginTotals,
    /// Tenants with cost, a plan or revenue entries (in the tenant filter, if any).
    pub count: usize,
    pub offset: usize,
    pub next_offset: Option<usize>,
    /// The page: lowest margin (most unprofitable) first.
    pub tenants: Vec<TenantMargin>,
}

/// The margin of every tenant in `base`'s window (its filters narrow the cost; a
/// tenantId filter narrows the tenants), one page of them.
pub async fn margin(
    store: &dyn Store,
    ws: WorkspaceId,
    book: &RevenueBook,
    base: &Query,
    page: (usize, usize),
) -> Result<MarginReport> {
    let costs = tenant_costs(store, ws, base).await?;
    let tenants = tenants(book, base, &costs);
    // Each tenant's order key: only the page's tenants become full rows.
    let months = Months::new(base.from_ms, base.to_ms);
    let mut keys = Vec::with_capacity(tenants.len());
    let (mut revenue_total, mut unprofitable) = (Usd::ZERO, 0);
    for tenant in tenants {
        let cost = costs.rows.get(tenant).map_or(Usd::ZERO, |s| s.cost);
        let revenue = book.revenue_in(tenant, &months)?;
        let margin = minus(revenue, cost)?;
        revenue_total = plus(revenue_total, revenue)?;
        unprofitable += usize::from(margin.0 < 0);
        keys.push((margin, std::cmp::Reverse(cost), tenant));
    }
    // Unprofitable first: lowest margin, then the costlier, then by name.
    keys.sort_unstable();
    let count = keys.len();
    let (offset, limit) = page;
    let mut page_rows = Vec::with_capacity(limit.min(count));
    for (_, _, tenant) in keys.into_iter().skip(offset).take(limit) {
        let sums = costs.rows.get(tenant).copied().unwrap_or_default();
        page_rows.push(row(book, tenant, &sums, &months)?);
    }
    user_days(store, ws, base, &mut page_rows).await?;
    let days = match one_tenant_days(base, &page_rows) {
        Some(days) => days,
        None => workspace_user_days(store, ws, base).await?,
    };
    let totals = totals((revenue_total, unprofitable), &costs.total, days)?;
    project(store, ws, book, base, &costs, &mut page_rows).await?;
    Ok(MarginReport {
        from: super::rfc3339(base.from_ms),
        to: super::rfc3339(base.to_ms),
        totals,
        count,
        offset,
        next_offset: (offset + limit < count).then_some(offset + limit),
        tenants: page_rows,
    })
}

/// The tenants listed: those with cost, a plan or revenue entries; with a tenant filter
/// only its tenants (never every tenant on a plan), each once.
fn tenants<'a>(book: &'a RevenueBook, base: &'a Query, costs: &'a TenantCosts) -> Vec<&'a str> {
    let known = |t: &str| {
        costs.rows.contains_key(t) || book.history.knows(t) || book.entries.contains_key(t)
    };
    let mut all: Vec<&str> = match base.filters.text.get(&Dimension::TenantId) {
        Some(only) => only
            .iter()
            .map(String::as_str)
            .filter(|t| known(t))
            .collect(),
        None => {
            let with_cost = costs.rows.keys().map(String::as_str);
            let on_plans = book.history.tenants.keys().map(|t| &**t);
            let with_entries = book.entries.keys().map(String::as_str);
            with_cost.chain(on_plans).chain(with_entries).collect()
        }
    };
    all.sort_unstable();
    all.dedup();
    all
}

fn plus(a: Usd, b: Usd) -> Result<Usd> {
    a.0.checked_add(b.0).map(Usd).ok_or(StoreError::SumOverflow)
}

struct TenantCosts {
    rows: HashMap<String, Sums>,
    total: Sums,
}

async fn tenant_costs(store: &dyn Store, ws: WorkspaceId, base: &Query) -> Result<TenantCosts> {
    // Every tenant: the list is ordered by margin, not by cost, so no cost cut will do.
    let mut q = super::by_cost(base, vec![Dimension::TenantId], usize::MAX);
    q.measures = vec![Measure::CostUsd, Measure::Requests, Measure::Unpriced];
    let answer = store.aggregate(ws, q).await?;
    let total = answer.total();
    let rows = answer
        .rows
        .into_iter()
        .filter_map(|r| Some((r.group.into_iter().next()?, r.sums)))
        .collect();
    Ok(TenantCosts { rows, total })
}

fn row(book: &RevenueBook, tenant: &str, sums: &Sums, months: &Months) -> Result<TenantMargin> {
    let revenue = book.revenue_in(tenant, months)?;
    let cost = sums.cost;
    Ok(TenantMargin {
        tenant_id: tenant.to_string(),
        plan: book.plan(tenant).map(str::to_string),
        revenue_usd: revenue,
        cost_usd: cost,
        unpriced: sums.unpriced(),
        requests: sums.requests,
        margin_usd: minus(revenue, cost)?,
        cost_share_pct: revenue::cost_share_pct(cost, revenue),
        active_user_days: 0,
        cost_per_active_user_day_usd: None,
        projected: None,
    })
}

fn minus(a: Usd, b: Usd) -> Result<Usd> {
    a.0.checked_sub(b.0).map(Usd).ok_or(StoreError::SumOverflow)
}

fn per(cost: Usd, n: u64) -> Option<Usd> {
    (n > 0).then(|| Usd(cost.0 / n as i64))
}

/// The report's totals, with the window's active user-days `days`.
fn totals((revenue, unprofitable): (Usd, usize), cost: &Sums, days: u64) -> Result<MarginTotals> {
    Ok(MarginTotals {
        revenue_usd: revenue,
        cost_usd: cost.cost,
        unpriced: cost.unpriced(),
        margin_usd: minus(revenue, cost.cost)?,
        cost_share_pct: revenue::cost_share_pct(cost.cost, revenue),
        unprofitable,
        active_user_days: days,
        cost_per_active_user_day_usd: per(cost.cost, days),
    })
}

/// The query for (group, user) pairs per UTC day, the first `limit` of them as rows.
fn user_day_query(base: &Query, group_by: Vec<Dimension>, limit: usize) -> Query {
    Query {
        group_by,
        bucket: Some(Bucket::Day),
        measures: vec![Measure::Requests],
        order_by: Some(Measure::Requests),
        ascending: false,
        limit,
        ..base.clone()
    }
}

/// Distinct (user, day) pairs in the window; calls without a userId are no user: the
/// answer's groups, counted from one row and the cut (the others are never named:
/// naming a big tenant's 60k user-days took most of its margin's time), less the days
/// with calls without a user (their group is the missing-value label).
async fn workspace_user_days(store: &dyn Store, ws: WorkspaceId, base: &Query) -> Result<u64> {
    let answer = store
        .aggregate(ws, user_day_query(base, vec![Dimension::UserId], 1))
        .await?;
    let missing = Dimension::UserId.missing_label();
    let mut unnamed = user_day_query(base, Vec::new(), crate::query::MAX_LIMIT);
    unnamed
        .filters
        .restrict(&Dimension::UserId, &[missing.to_string()]);
    let unnamed_days = store.aggregate(ws, unnamed).await?.totals;
    let unnamed_days = unnamed_days.iter().filter(|r| r.sums.requests > 0).count();
    let groups = answer.rows.len() + answer.cut;
    Ok(groups.saturating_sub(unnamed_days) as u64)
}

/// With one tenant filtered and on the page (the tenant page), the window's active
/// user-days are that tenant's: counting them again over the same calls would read its
/// users a second time (half the report's time for a big tenant's week).
fn one_tenant_days(base: &Query, page: &[TenantMargin]) -> Option<u64> {
    let only = base.filters.text.get(&Dimension::TenantId)?;
    match (only.as_slice(), page) {
        ([tenant], [row]) if row.tenant_id == *tenant => Some(row.active_user_days),
        _ => None,
    }
}

/// Each page tenant's active user-days: its (user, day) pairs counted per tenant by the
/// store (`Query::count_by_first`, none named: a big tenant's week holds 60,000), less
/// each tenant's days with calls without a userId (their group is the missing label).
async fn user_days(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    page: &mut [TenantMargin],
) -> Result<()> {
    if page.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = page.iter().map(|r| r.tenant_id.clone()).collect();
    let counted = |group_by: Vec<Dimension>| {
        let mut q = user_day_query(base, group_by, 1);
        q.count_by_first = true;
        q.filters.restrict(&Dimension::TenantId, &ids);
        q
    };
    let pairs = counted(vec![Dimension::TenantId, Dimension::UserId]);
    let mut unnamed = counted(vec![Dimension::TenantId]);
    let missing = Dimension::UserId.missing_label().to_string();
    unnamed.filters.restrict(&Dimension::UserId, &[missing]);
    let (pairs, unnamed) =
        tokio::try_join!(store.aggregate(ws, pairs), store.aggregate(ws, unnamed))?;
    let unnamed: HashMap<String, u64> = unnamed.first_counts.into_iter().collect();
    let pairs: HashMap<String, u64> = pairs.first_counts.into_iter().collect();
    for r in page.iter_mut() {
        let count = |counts: &HashMap<String, u64>| counts.get(&r.tenant_id).copied().unwrap_or(0);
        let days = count(&pairs).saturating_sub(count(&unnamed));
        set_user_days(r, days);
    }
    Ok(())
}

/// A row's active user-days and its cost per active user-day.
fn set_user_days(row: &mut TenantMargin, days: u64) {
    row.active_user_days = days;
    row.cost_per_active_user_day_usd = per(row.cost_usd, days);
}

/// While the month of the window's end is running, each page tenant's cost of that
/// month so far carried to its end at the tenant's own run rate
/// (`budget::forecast::run_rate`), against the whole month's revenue.
async fn project(
    store: &dyn Store,
    ws: WorkspaceId,
    book: &RevenueBook,
    base: &Query,
    costs: &TenantCosts,
    page: &mut [TenantMargin],
) -> Result<()> {
    let (start, end) = crate::budget::period::Period::Month.bounds(base.to_ms - 1, "UTC");
    if base.to_ms >= end || base.to_ms <= start || page.is_empty() {
        return Ok(());
    }
    let month_costs = if base.from_ms == start {
        None
    } else {
        let mut q = Query {
            from_ms: start,
            ..base.clone()
        };
        let ids: Vec<String> = page.iter().map(|r| r.tenant_id.clone()).collect();
        q.filters.restrict(&Dimension::TenantId, &ids);
        Some(tenant_costs(store, ws, &q).await?)
    };
    let spent_of = |t: &str| {
        let rows = &month_costs.as_ref().unwrap_or(costs).rows;
        rows.get(t).map_or(0, |s| s.cost.0)
    };
    let month = Months::new(start, end);
    for r in page.iter_mut() {
        let spent = spent_of(&r.tenant_id);
        let forecast = crate::budget::forecast::run_rate(spent, start, end, base.to_ms, i64::MAX);
        let cost = Usd(forecast.total);
        let revenue = book.revenue_in(&r.tenant_id, &month)?;
        r.projected = Some(Projected {
            month_start: super::rfc3339(start),
            month_end: super::rfc3339(end),
            cost_usd: cost,
            revenue_usd: revenue,
            margin_usd: minus(revenue, cost)?,
            cost_share_pct: revenue::cost_share_pct(cost, revenue),
        });
    }
    Ok(())
}
