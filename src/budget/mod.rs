//! Budgets: what a budget is (scope, calendar period, limit, thresholds, action), its
//! validation, and its status and forecast. Pure: every function takes `now` and the
//! spend it needs; the live counters are in `counters`.

pub mod counters;
pub mod period;
pub mod plans;
pub mod service;

use crate::event::{DataMode, Environment, FieldError};
use crate::money::Usd;
use crate::privacy::{Privacy, Slot};
use crate::query::{Dimension, Filters, Query};
use period::Period;
use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Warn (ingest response, alerts) but let calls through.
    Notify,
    /// The guard denies calls that would take spend past the limit.
    Block,
}

/// What the guard answers for this budget when it cannot count exactly (the counters are
/// still loading after a start, or the store failed while loading them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    Open,
    Closed,
}

/// The events a budget counts. Absent fields match everything; environment and dataMode
/// default to prod/real so test traffic never spends a real budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub environment: Environment,
    pub data_mode: DataMode,
    pub endpoint_tag: Option<String>,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `"*"` on this dimension (tenantId, userId or endpointTag): the budget holds for
    /// each of its values separately (each a *member*), and does not filter on it.
    pub each: Option<Each>,
}

/// The dimension whose every value is a member of a per-member budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Each {
    TenantId,
    UserId,
    EndpointTag,
}

impl Each {
    pub const ALL: [Each; 3] = [Each::TenantId, Each::UserId, Each::EndpointTag];

    /// Its scope field name.
    pub fn field(self) -> &'static str {
        match self {
            Each::TenantId => "tenantId",
            Each::UserId => "userId",
            Each::EndpointTag => "endpointTag",
        }
    }

    pub fn dimension(self) -> Dimension {
        match self {
            Each::TenantId => Dimension::TenantId,
            Each::UserId => Dimension::UserId,
            Each::EndpointTag => Dimension::EndpointTag,
        }
    }

    /// The guard's machine-readable reason when a member's cap blocks a call.
    pub fn quota_reason(self) -> &'static str {
        match self {
            Each::TenantId => "tenant_quota_exceeded",
            Each::UserId => "user_quota_exceeded",
            Each::EndpointTag => "endpoint_quota_exceeded",
        }
    }
}

/// Written in the same shape `parse_scope` reads: `{"tenantId": "...", "tag:team": "..."}`.
impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = BTreeMap::new();
        map.insert(
            "environment".to_string(),
            self.environment.as_str().to_string(),
        );
        map.insert("dataMode".to_string(), self.data_mode.as_str().to_string());
        let pairs = [
            ("endpointTag", &self.endpoint_tag),
            ("tenantId", &self.tenant_id),
            ("userId", &self.user_id),
            ("model", &self.model),
            ("provider", &self.provider),
        ];
        for (key, value) in pairs {
            if let Some(v) = value {
                map.insert(key.to_string(), v.clone());
            }
        }
        for (k, v) in &self.tags {
            map.insert(format!("tag:{k}"), v.clone());
        }
        if let Some(each) = self.each {
            map.insert(each.field().to_string(), "*".to_string());
        }
        map.serialize(s)
    }
}

/// A tenantId and userId (a budget scope's, a guard request's) mapped as ingest maps
/// them; errors name `{prefix}tenantId` / `{prefix}userId`.
pub fn pseudonymize_ids(
    privacy: &Privacy,
    prefix: &str,
    tenant_id: &mut Option<String>,
    user_id: &mut Option<String>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    for (name, value) in [("tenantId", tenant_id), ("userId", user_id)] {
        if let Some(v) = value.as_mut() {
            privacy.map_in_place(&format!("{prefix}{name}"), v, Slot::Id, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The dimensions of one call, as budgets and the guard see it.
#[derive(Debug, Clone, Default)]
pub struct CallDims<'a> {
    pub environment: Option<Environment>,
    pub data_mode: Option<DataMode>,
    pub endpoint_tag: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub tags: Option<&'a BTreeMap<String, String>>,
}

impl<'a> CallDims<'a> {
    /// The call behind a committed cost change.
    pub fn of_effect(e: &'a crate::store::SpendEffect) -> CallDims<'a> {
        CallDims {
            environment: Some(e.environment),
            data_mode: Some(e.data_mode),
            endpoint_tag: Some(&e.endpoint_tag),
            tenant_id: e.tenant_id.as_deref(),
            user_id: e.user_id.as_deref(),
            model: Some(&e.model),
            provider: Some(&e.provider),
            tags: Some(&e.tags),
        }
    }

    pub fn of_event(e: &'a crate::event::Event) -> CallDims<'a> {
        CallDims {
            environment: Some(e.environment),
            data_mode: Some(e.data_mode),
            endpoint_tag: Some(&e.endpoint_tag),
            tenant_id: e.tenant_id.as_deref(),
            user_id: e.user_id.as_deref(),
            model: Some(&e.model),
            provider: Some(&e.provider),
            tags: Some(&e.tags),
        }
    }
}

impl Scope {
    /// Does a call with these dimensions count against this scope? A guard call that does
    /// not name a dimension the scope restricts is not in the scope.
    pub fn matches(&self, c: &CallDims) -> bool {
        let text = |want: &Option<String>, got: Option<&str>| match want {
            None => true,
            Some(w) => got == Some(w.as_str()),
        };
        c.environment.is_none_or(|e| e == self.environment)
            && c.data_mode.is_none_or(|d| d == self.data_mode)
            && text(&self.endpoint_tag, c.endpoint_tag)
            && text(&self.tenant_id, c.tenant_id)
            && text(&self.user_id, c.user_id)
            && text(&self.model, c.model)
            && text(&self.provider, c.provider)
            && self
                .tags
                .iter()
                .all(|(k, v)| c.tags.and_then(|t| t.get(k)) == Some(v))
    }

    /// Which member of a per-member budget a call counts against: its value of the
    /// `"*"` dimension, or the missing-value label (`unknown`) when it has none, as the
    /// store groups it, so a load and the later effects agree. None for other budgets.
    pub fn member<'a>(&self, c: &CallDims<'a>) -> Option<&'a str> {
        let each = self.each?;
        let value = match each {
            Each::TenantId => c.tenant_id,
            Each::UserId => c.user_id,
            Each::EndpointTag => c.endpoint_tag,
        };
        Some(value.unwrap_or(each.dimension().missing_label()))
    }

    /// Does any of its tenantId, userId or tag values need the pseudonym secret?
    pub fn needs_secret(&self, privacy: &Privacy) -> bool {
        let ids = [&self.tenant_id, &self.user_id].into_iter().flatten();
        ids.into_iter().any(|v| privacy.needs_secret(v, Slot::Id))
            || self
                .tags
                .values()
                .any(|v| privacy.needs_secret(v, Slot::TagValue))
    }

    /// Replace a personal tenantId, userId or tag value by its pseudonym (or refuse it),
    /// as ingest does: a budget scoped to "bob@example.com" counts his pseudonymized calls.
    pub fn pseudonymize(&mut self, privacy: &Privacy) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Err(e) = pseudonymize_ids(privacy, "scope.", &mut self.tenant_id, &mut self.user_id)
        {
            errors.extend(e);
        }
        for (key, value) in self.tags.iter_mut() {
            privacy.map_in_place(
                &format!("scope.tag:{key}"),
                value,
                Slot::TagValue,
                &mut errors,
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The same scope as aggregate-query filters (to load spend from the store).
    pub fn filters(&self) -> Filters {
        let mut f = Filters {
            environment: vec![self.environment],
            data_mode: vec![self.data_mode],
            ..Filters::default()
        };
        let pairs = [
            (Dimension::EndpointTag, &self.endpoint_tag),
            (Dimension::TenantId, &self.tenant_id),
            (Dimension::UserId, &self.user_id),
            (Dimension::Model, &self.model),
            (Dimension::Provider, &self.provider),
        ];
        for (dim, value) in pairs {
            if let Some(v) = value {
                f.text.insert(dim, vec![v.clone()]);
            }
        }
        for (k, v) in &self.tags {
            f.tags.insert(k.clone(), vec![v.clone()]);
        }
        f
    }
}

/// Stored as its own JSON (`serde_json::to_value`), read back with `parse_budget`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub period: Period,
    /// IANA time zone the calendar periods are aligned to.
    pub timezone: String,
    pub limit_usd: Usd,
    /// Percentages of the limit, ascending, each in (0, 100].
    pub thresholds: Vec<f64>,
    pub action: Action,
    pub fail_mode: FailMode,
    /// Per-member budgets only: a member's own limit instead of the default.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, Usd>,
    /// A budget for each tenant only: the limit of each plan's tenants (None: no limit),
    /// for tenants without an override; tenants without a plan get `limit_usd`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub plan_limits: BTreeMap<String, Option<Usd>>,
}

impl Budget {
    /// The limit of one member on `plan`: its override, else its plan's limit, else the
    /// default; for a budget without members, its limit. None = no limit.
    pub fn member_limit(&self, member: Option<&str>, plan: Option<&str>) -> Option<i64> {
        if let Some(own) = member.and_then(|m| self.overrides.get(m)) {
            return Some(own.nanos());
        }
        match plan.and_then(|p| self.plan_limits.get(p)) {
            Some(limit) => limit.map(Usd::nanos),
            None => Some(self.limit_usd.nanos()),
        }
    }

    /// Whether this budget's members are tenants, whose plans set their limits.
    pub fn by_plan(&self) -> bool {
        self.scope.each == Some(Each::TenantId)
    }

    /// Spend at `now` is inside this window.
    pub fn window(&self, now_ms: i64) -> (i64, i64) {
        self.period.bounds(now_ms, &self.timezone)
    }

    /// The aggregate query for this budget's spend in [from, to).
    pub fn spend_query(&self, from_ms: i64, to_ms: i64) -> Query {
        Query {
            from_ms,
            to_ms,
            filters: self.scope.filters(),
            group_by: Vec::new(),
            bucket: None,
            measures: vec![crate::query::Measure::CostUsd],
            order_by: None,
            ascending: false,
            limit: 1,
            count_by_first: false,
        }
    }

    /// The aggregate query for each member's spend in [from, to): one group per member
    /// (None for a budget without members).
    pub fn member_query(&self, from_ms: i64, to_ms: i64) -> Option<Query> {
        let each = self.scope.each?;
        Some(Query {
            group_by: vec![each.dimension()],
            limit: usize::MAX,
            ..self.spend_query(from_ms, to_ms)
        })
    }
}

const BUDGET_FIELDS: &[&str] = &[
    "name",
    "scope",
    "period",
    "timezone",
    "limitUsd",
    "thresholds",
    "action",
    "failMode",
    "overrides",
    "planLimits",
];

const SCOPE_FIELDS: &str =
    "environment, dataMode, endpointTag, tenantId, userId, model, provider, tag:<key>";

/// Read a budget definition (the body of POST/PUT /v1/budgets); every problem is reported
/// with the field it is about.
pub fn parse_budget(id: i64, body: &Value) -> Result<Budget, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    for key in obj.keys() {
        if !BUDGET_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.as_str(),
                format!("is not a budget field; use {}", BUDGET_FIELDS.join(", ")),
            ));
        }
    }
    let name = match obj.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 200 => n.to_string(),
        _ => {
            errors.push(FieldError::new("name", "is required: 1 to 200 characters"));
            String::new()
        }
    };
    let scope = parse_scope(obj.get("scope"), &mut errors);
    let overrides = parse_overrides(obj.get("overrides"), scope.each, &mut errors);
    let plan_limits = parse_plan_limits(obj.get("planLimits"), scope.each, &mut errors);
    let period = match obj.get("period").and_then(Value::as_str) {
        Some(p) => Period::parse(p).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "period",
                format!("unknown period {p:?}; use hour, day, week or month"),
            ));
            Period::Day
        }),
        None => {
            errors.push(FieldError::new(
                "period",
                "is required: hour, day, week or month",
            ));
            Period::Day
        }
    };
    let timezone = match obj.get("timezone") {
        None | Some(Value::Null) => "UTC".to_string(),
        Some(Value::String(tz)) if jiff::tz::TimeZone::get(tz).is_ok() => tz.clone(),
        Some(other) => {
            errors.push(FieldError::new(
                "timezone",
                format!("unknown time zone {other}; use an IANA name like Europe/Berlin"),
            ));
            "UTC".to_string()
        }
    };
    let limit_usd = parse_limit(obj.get("limitUsd"), &mut errors);
    let thresholds = parse_thresholds(obj.get("thresholds"), &mut errors);
    let action = parse_choice(
        obj,
        "action",
        Action::Notify,
        &mut errors,
        "notify or block",
    );
    let fail_mode = parse_choice(
        obj,
        "failMode",
        FailMode::Open,
        &mut errors,
        "open or closed",
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Budget {
        id,
        name,
        scope,
        period,
        timezone,
        limit_usd,
        thresholds,
        action,
        fail_mode,
        overrides,
        plan_limits,
    })
}

/// `{"free": 1, "pro": 50, "enterprise": null}`: a limit per plan (null: none); only on
/// a budget for each tenant.
fn parse_plan_limits(
    value: Option<&Value>,
    each: Option<Each>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, Option<Usd>> {
    let mut out = BTreeMap::new();
    let shape = "must be an object of plan -> limitUsd (or null for no limit)";
    let Some(obj) = optional_object(value, "planLimits", shape, errors) else {
        return out;
    };
    if each != Some(Each::TenantId) && !obj.is_empty() {
        errors.push(FieldError::new(
            "planLimits",
            "needs a budget for each tenant: a scope with tenantId \"*\"",
        ));
        return out;
    }
    for (plan, limit) in obj {
        let field = format!("planLimits.{plan}");
        if let Err(e) = plans::check_plan(&field, plan) {
            errors.push(e);
            continue;
        }
        if limit.is_null() {
            out.insert(plan.clone(), None);
            continue;
        }
        let mut own = Vec::new();
        let usd = parse_limit(Some(limit), &mut own);
        if own.is_empty() {
            out.insert(plan.clone(), Some(usd));
        } else {
            errors.push(FieldError::new(
                field,
                "must be a positive amount in USD with at most 9 decimals, or null for no limit",
            ));
        }
    }
    out
}

/// An optional JSON object field: None when absent or null, or (with an error naming
/// `field`) when it is not an object.
fn optional_object<'a>(
    value: Option<&'a Value>,
    field: &str,
    shape: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a serde_json::Map<String, Value>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(obj)) => Some(obj),
        Some(_) => {
            errors.push(FieldError::new(field, shape));
            None
        }
    }
}

/// `{"acme": 500, ...}`: members with their own limit; only on a per-member budget.
fn parse_overrides(
    value: Option<&Value>,
    each: Option<Each>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, Usd> {
    let mut out = BTreeMap::new();
    let shape = "must be an object of member -> limitUsd";
    let Some(obj) = optional_object(value, "overrides", shape, errors) else {
        return out;
    };
    if each.is_none() && !obj.is_empty() {
        errors.push(FieldError::new(
            "overrides",
            "needs a per-member budget: a scope with tenantId, userId or endpointTag \"*\"",
        ));
        return out;
    }
    for (member, limit) in obj {
        let field = format!("overrides.{member}");
        if member.is_empty() || member.len() > 256 {
            errors.push(FieldError::new(field, "member must be 1 to 256 characters"));
            continue;
        }
        let mut own = Vec::new();
        let usd = parse_limit(Some(limit), &mut own);
        if own.is_empty() {
            out.insert(member.clone(), usd);
        } else {
            errors.push(FieldError::new(
                field,
                "must be a positive amount in USD with at most 9 decimals",
            ));
        }
    }
    out
}

fn parse_choice<T: serde::de::DeserializeOwned>(
    obj: &Map<String, Value>,
    field: &str,
    default: T,
    errors: &mut Vec<FieldError>,
    expected: &str,
) -> T {
    match obj.get(field) {
        None | Some(Value::Null) => default,
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|_| {
            errors.push(FieldError::new(field, format!("must be {expected}")));
            default
        }),
    }
}

fn parse_limit(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Usd {
    let parsed = match value {
        // The number's own text, so 0.1 stays exactly 0.1.
        Some(Value::Number(n)) => Usd::parse(&n.to_string()).ok(),
        Some(Value::String(s)) => Usd::parse(s).ok(),
        _ => None,
    };
    match parsed {
        Some(usd) if usd.nanos() > 0 => usd,
        Some(_) => {
            errors.push(FieldError::new("limitUsd", "must be greater than 0"));
            Usd(0)
        }
        None if value.and_then(Value::as_f64).is_some_and(|v| v <= 0.0) => {
            errors.push(FieldError::new("limitUsd", "must be greater than 0"));
            Usd(0)
        }
        None => {
            errors.push(FieldError::new(
                "limitUsd",
                "is required: a positive amount in USD with at most 9 decimals",
            ));
            Usd(0)
        }
    }
}

fn parse_thresholds(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Vec<f64> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return vec![80.0];
    };
    let Some(items) = value.as_array() else {
        errors.push(FieldError::new(
            "thresholds",
            "must be an array of percentages",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_f64() {
            Some(p) if p > 0.0 && p <= 100.0 => out.push(p),
            _ => errors.push(FieldError::new(
                format!("thresholds[{i}]"),
                "must be a percentage above 0 and at most 100",
            )),
        }
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

fn parse_scope(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Scope {
    let mut scope = Scope {
        environment: Environment::Prod,
        data_mode: DataMode::Real,
        endpoint_tag: None,
        tenant_id: None,
        user_id: None,
        model: None,
        provider: None,
        tags: BTreeMap::new(),
        each: None,
    };
    let obj = match value {
        None | Some(Value::Null) => return scope,
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            errors.push(FieldError::new("scope", "must be an object"));
            return scope;
        }
    };
    for (key, value) in obj {
        let field = format!("scope.{key}");
        let Some(text) = value.as_str().filter(|s| !s.is_empty() && s.len() <= 256) else {
            errors.push(FieldError::new(field, "must be a non-empty string"));
            continue;
        };
        let text = text.to_string();
        if text.contains('*') {
            // "*" alone on a member dimension: a budget for each value. Anything else
            // would be a value literally containing '*', a budget that never matches.
            let each = Each::ALL.into_iter().find(|e| e.field() == key);
            match each {
                Some(each) if text == "*" && scope.each.is_none() => scope.each = Some(each),
                Some(_) if text == "*" => errors.push(FieldError::new(
                    field,
                    "only one scope dimension may be \"*\" (a budget for each value of one dimension)",
                )),
                _ => errors.push(FieldError::new(
                    field,
                    "a wildcard is only the whole value \"*\", on tenantId, userId or endpointTag (a budget for each value)",
                )),
            }
            continue;
        }
        match key.as_str() {
            "environment" => match Environment::parse(&text) {
                Some(e) => scope.environment = e,
                None => errors.push(FieldError::new(field, "must be prod, staging or dev")),
            },
            "dataMode" => match DataMode::parse(&text) {
                Some(d) => scope.data_mode = d,
                None => errors.push(FieldError::new(field, "must be real, test or demo")),
            },
            "endpointTag" => scope.endpoint_tag = Some(text),
            "tenantId" => scope.tenant_id = Some(text),
            "userId" => scope.user_id = Some(text),
            "model" => scope.model = Some(text),
            "provider" => scope.provider = Some(text),
            other => match other.strip_prefix("tag:") {
                Some(tag) if crate::event::is_valid_tag_key(tag) => {
                    scope.tags.insert(tag.to_string(), text);
                }
                Some(_) => errors.push(FieldError::new(field, crate::event::tag_key_rule())),
                None => errors.push(FieldError::new(
                    field,
                    format!("unknown scope dimension; use {SCOPE_FIELDS}"),
                )),
            },
        }
    }
    scope
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Warning,
    Exceeded,
}

/// A budget's position in its current period.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub budget_id: i64,
    pub name: String,
    pub period_start: String,
    pub period_end: String,
    pub limit_usd: Usd,
    pub spent_usd: Usd,
    pub reserved_usd: Usd,
    pub remaining_usd: Usd,
    /// Spent as a percentage of the limit.
    pub used_pct: f64,
    pub state: State,
    /// The highest threshold reached this period, if any.
    pub threshold_reached: Option<f64>,
    pub forecast_usd: Usd,
    pub forecast_method: &'static str,
    /// When spend is projected to reach the limit inside this period, if it will.
    pub projected_exhaustion: Option<String>,
    /// Calls in scope this period whose model has no price (not in `spentUsd`).
    pub unpriced_requests: u64,
    /// A per-member budget: its members over and near their caps (one page of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Members>,
}

/// The members of a per-member budget at warning or over their caps: how many there
/// are in all, and one page of them, most over first (by share of their own limit).
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Members {
    /// Members with spend or reservations this period.
    pub count: usize,
    /// Members at or over their limit.
    pub over: usize,
    /// Members past a threshold but under their limit.
    pub near: usize,
    pub offset: usize,
    pub limit: usize,
    pub page: Vec<MemberStatus>,
    /// The offset of the next page, if there is one.
    pub next_offset: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub member: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    pub limit_usd: Usd,
    pub spent_usd: Usd,
    pub reserved_usd: Usd,
    pub used_pct: f64,
    pub state: State,
}

impl MemberStatus {
    pub fn new(member: &str, plan: Option<&str>, limit: i64, spent: i64, reserved: i64) -> Self {
        let used_pct = spent as f64 * 100.0 / limit as f64;
        MemberStatus {
            member: member.to_string(),
            plan: plan.map(str::to_string),
            limit_usd: Usd(limit),
            spent_usd: Usd(spent),
            reserved_usd: Usd(reserved),
            used_pct,
            state: State::Ok,
        }
    }
}

/// Spend of the current period plus what the forecast needs.
#[derive(Debug, Clone, Default)]
pub struct SpendInput {
    pub spent: i64,
    pub reserved: i64,
    pub unpriced: u64,
    /// Spend per day of the trailing 7 full days before today, oldest first (months only).
    pub trailing_days: Option<[i64; 7]>,
}

pub fn state_of(budget: &Budget, spent: i64) -> (State, Option<f64>) {
    state_at(budget, Some(budget.limit_usd.nanos()), spent)
}

/// The state of `spent` against `limit` (None = no limit: always ok) and the budget's
/// thresholds.
pub fn state_at(budget: &Budget, limit: Option<i64>, spent: i64) -> (State, Option<f64>) {
    let Some(limit) = limit else {
        return (State::Ok, None);
    };
    if spent >= limit {
        return (State::Exceeded, budget.thresholds.last().copied());
    }
    let used = spent as f64 * 100.0 / limit as f64;
    let reached = budget
        .thresholds
        .iter()
        .rev()
        .find(|t| used >= **t)
        .copied();
    match reached {
        Some(t) => (State::Warning, Some(t)),
        None => (State::Ok, None),
    }
}

/// What is left of `limit` after spend and reservations, never below 0. Computed in i128
/// (three i64s cannot overflow it), then bounded to the i64 range.
pub fn remaining(limit: i64, spent: i64, reserved: i64) -> Usd {
    let left = limit as i128 - spent as i128 - reserved as i128;
    Usd(left.clamp(0, i64::MAX as i128) as i64)
}

pub fn status(budget: &Budget, input: &SpendInput, now_ms: i64) -> Status {
    let (start, end) = budget.window(now_ms);
    let limit = budget.limit_usd.nanos();
    let (state, threshold_reached) = state_of(budget, input.spent);
    let forecast = forecast::project(budget, input, start, end, now_ms);
    Status {
        budget_id: budget.id,
        name: budget.name.clone(),
        period_start: crate::report::rfc3339(start),
        period_end: crate::report::rfc3339(end),
        limit_usd: budget.limit_usd,
        spent_usd: Usd(input.spent),
        reserved_usd: Usd(input.reserved),
        remaining_usd: remaining(limit, input.spent, input.reserved),
        used_pct: input.spent as f64 * 100.0 / limit as f64,
        state,
        threshold_reached,
        forecast_usd: Usd(forecast.total),
        forecast_method: forecast.method,
        projected_exhaustion: forecast.exhaustion_ms.map(crate::report::rfc3339),
        unpriced_requests: input.unpriced,
        members: None,
    }
}

pub mod forecast;

#[cfg(test)]
mod tests;
