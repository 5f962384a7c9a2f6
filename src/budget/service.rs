//! Budgets and rate caps as the server runs them: stored definitions, the live counters
//! loaded from the store and kept exact by the writer, and each budget's status.

use super::counters::{Counters, GuardAnswer, GuardRequest, RateCap};
use super::period::Period;
use super::{parse_budget, status, Budget, SpendInput, Status};
use crate::event::FieldError;
use crate::query::{Bucket, Measure};
use crate::store::{Store, StoreError, WorkspaceId};
use serde_json::Value;
use std::sync::Arc;

pub const BUDGET: &str = "budget";
pub const RATE_CAP: &str = "rate_cap";

pub struct Budgets {
    store: Arc<dyn Store>,
    pub counters: Arc<Counters>,
    clock: crate::clock::Clock,
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
            clock,
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
        // A scope naming a person is stored as ingest stores the person: by pseudonym.
        // The workspace's secret is fetched (or made) only when a value needs it.
        let mut settings = crate::settings::load_stored(self.store.as_ref(), ws).await?;
        if budget.scope.needs_secret(&settings.privacy()) {
            let secret = crate::privacy::ensure_secret(self.store.as_ref(), ws).await?;
            settings.secret = Some(secret);
        }
        budget
            .scope
            .pseudonymize(&settings.privacy())
            .map_err(BudgetError::Invalid)?;
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

    /// Load a budget's spend in its current period: the store's total up to the commit
    /// its read saw, plus the effects after that commit (see `Counters::begin_load`).
    async fn load(&self, ws: WorkspaceId, budget: &Budget, now: i64) -> Result<(), StoreError> {
        let (start, end) = budget.window(now);
        let mut query = budget.spend_query(start, end);
        query.measures = vec![Measure::CostUsd, Measure::Requests, Measure::Unpriced];
        let ticket = self.counters.begin_load(ws, budget.id, start);
        match self.store.aggregate(ws, query).await {
            Ok(answer) => {
                let sums = answer.total();
                let seen = answer.seen;
                self.counters
                    .finish_load(ticket, sums.cost.nanos(), sums.unpriced(), seen);
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
        Ok(status(budget, &input, now))
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
