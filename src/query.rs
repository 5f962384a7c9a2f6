//! The one aggregate query: time range, filters on every dimension, group-by of up to
//! three dimensions, an optional hour/day bucket, measures, order and limit. The
//! dashboard, JSON API, CLI, budgets, alerts and explain all ask through it; only the
//! store turns it into SQL. Pure: parsing and checking only.

use crate::event::{DataMode, Environment, Status};
use crate::money::Usd;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_GROUP_BY: usize = 3;
pub const MAX_LIMIT: usize = 10_000;
/// Values in one filter list, and in all of a query's filters. Each value is one SQL
/// parameter: the caps keep a query far below SQLite's 32,766 and its plan small.
pub const MAX_FILTER_VALUES: usize = 1_000;
pub const MAX_QUERY_FILTER_VALUES: usize = 5_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    EndpointTag,
    PromptVersion,
    TenantId,
    UserId,
    Provider,
    Model,
    Environment,
    DataMode,
    Status,
    /// `tag:<key>`: an extra dimension from the event's tags.
    Tag(String),
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "endpointTag" => Dimension::EndpointTag,
            "promptVersion" => Dimension::PromptVersion,
            "tenantId" => Dimension::TenantId,
            "userId" => Dimension::UserId,
            "provider" => Dimension::Provider,
            "model" => Dimension::Model,
            "environment" => Dimension::Environment,
            "dataMode" => Dimension::DataMode,
            "status" => Dimension::Status,
            other => {
                // The ingest rule: a key outside it was never stored, and the store's
                // JSON path is only built from keys of this charset.
                let key = other.strip_prefix("tag:")?;
                if !crate::event::is_valid_tag_key(key) {
                    return None;
                }
                Dimension::Tag(key.to_string())
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Dimension::EndpointTag => "endpointTag".into(),
            Dimension::PromptVersion => "promptVersion".into(),
            Dimension::TenantId => "tenantId".into(),
            Dimension::UserId => "userId".into(),
            Dimension::Provider => "provider".into(),
            Dimension::Model => "model".into(),
            Dimension::Environment => "environment".into(),
            Dimension::DataMode => "dataMode".into(),
            Dimension::Status => "status".into(),
            Dimension::Tag(k) => format!("tag:{k}"),
        }
    }

    /// What a missing value groups as (docs/event-contract.md).
    pub fn missing_label(&self) -> &'static str {
        match self {
            Dimension::PromptVersion => "unversioned",
            _ => "unknown",
        }
    }

    /// Why `s` is not a dimension: a `tag:` with a key outside the tag key rule says
    /// the rule; anything else is `unknown` followed by the list of dimensions.
    pub fn problem(s: &str, unknown: &str) -> String {
        match s.strip_prefix("tag:") {
            Some(_) => crate::event::tag_key_rule(),
            None => format!("{unknown}; use one of: {}", Dimension::EXPECTED),
        }
    }

    pub const EXPECTED: &'static str =
        "endpointTag, promptVersion, tenantId, userId, provider, model, environment, dataMode, status, tag:<key>";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Measure {
    Requests,
    Attempts,
    CostUsd,
    InputTokens,
    OutputTokens,
    CachedTokens,
    CacheWriteTokens,
    ReasoningTokens,
    CostPerRequest,
    TokensPerRequest,
    LatencyAvgMs,
    ErrorRate,
    RetryRatio,
    Unpriced,
    CacheHitRate,
}

impl Measure {
    pub const ALL: &'static [Measure] = &[
        Measure::Requests,
        Measure::Attempts,
        Measure::CostUsd,
        Measure::InputTokens,
        Measure::OutputTokens,
        Measure::CachedTokens,
        Measure::CacheWriteTokens,
        Measure::ReasoningTokens,
        Measure::CostPerRequest,
        Measure::TokensPerRequest,
        Measure::LatencyAvgMs,
        Measure::ErrorRate,
        Measure::RetryRatio,
        Measure::Unpriced,
        Measure::CacheHitRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Measure::Requests => "requests",
            Measure::Attempts => "attempts",
            Measure::CostUsd => "costUsd",
            Measure::InputTokens => "inputTokens",
            Measure::OutputTokens => "outputTokens",
            Measure::CachedTokens => "cachedTokens",
            Measure::CacheWriteTokens => "cacheWriteTokens",
            Measure::ReasoningTokens => "reasoningTokens",
            Measure::CostPerRequest => "costPerRequest",
            Measure::TokensPerRequest => "tokensPerRequest",
            Measure::LatencyAvgMs => "latencyAvgMs",
            Measure::ErrorRate => "errorRate",
            Measure::RetryRatio => "retryRatio",
            Measure::Unpriced => "unpriced",
            Measure::CacheHitRate => "cacheHitRate",
        }
    }

    pub fn parse(s: &str) -> Option<Measure> {
        Measure::ALL.iter().copied().find(|m| m.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn millis(self) -> i64 {
        match self {
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }
}

/// Filters: each set is "any of these values"; an empty set does not filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filters {
    pub environment: Vec<Environment>,
    pub data_mode: Vec<DataMode>,
    pub status: Vec<Status>,
    /// Text dimensions (endpointTag, promptVersion, tenantId, userId, provider, model).
    pub text: BTreeMap<Dimension, Vec<String>>,
    pub tags: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub from_ms: i64,
    pub to_ms: i64,
    pub filters: Filters,
    pub group_by: Vec<Dimension>,
    pub bucket: Option<Bucket>,
    pub measures: Vec<Measure>,
    /// Sort by this measure, descending unless `ascending`.
    pub order_by: Option<Measure>,
    pub ascending: bool,
    pub limit: usize,
    /// Also count the groups (bucket and group, those the limit cut included) per
    /// label of the first group-by dimension (`Answer::first_counts`): each tenant's
    /// (user, day) pairs, counted without naming them.
    pub count_by_first: bool,
}

/// The totals a group accumulates; every measure is derived from these exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub attempts: u64,
    /// Cost of the priced calls (`priced` of them); unpriced calls have no cost.
    pub cost: Usd,
    pub priced: u64,
    pub input: u64,
    pub cached: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
    pub latency_sum: u64,
    pub latency_count: u64,
    pub errors: u64,
    pub usage_missing: u64,
    pub idless: u64,
}

/// A sum left the range burnrate holds (i64 money, u64 counts), or a stored value was
/// out of range (written before ingest had bounds). Shown as a 422 naming the cause on
/// the request that met it; never a wrapped number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sums of this window exceed the largest sum burnrate can hold (or it holds values stored out of range before ingest had bounds); narrow the window")]
pub struct SumOverflow;

impl Sums {
    /// The 14 measure sums in the stores' order (requests, attempts, cost, priced,
    /// input, cached, cache write, output, reasoning, latency sum and count, errors,
    /// usage missing, id-less), each checked into range: money non-negative i64, counts
    /// u64.
    pub fn from_measures(m: [i128; 14]) -> Result<Sums, SumOverflow> {
        let mut sums = Sums::default();
        for (i, value) in m.into_iter().enumerate() {
            sums.set_measure(i, value)?;
        }
        Ok(sums)
    }

    /// Set the measure at `index` in `from_measures`' order, checked into range.
    pub fn set_measure(&mut self, index: usize, value: i128) -> Result<(), SumOverflow> {
        let count = u64::try_from(value).map_err(|_| SumOverflow);
        match index {
            0 => self.requests = count?,
            1 => self.attempts = count?,
            2 => {
                let cost = i64::try_from(value).ok().filter(|c| *c >= 0);
                self.cost = Usd(cost.ok_or(SumOverflow)?);
            }
            3 => self.priced = count?,
            4 => self.input = count?,
            5 => self.cached = count?,
            6 => self.cache_write = count?,
            7 => self.output = count?,
            8 => self.reasoning = count?,
            9 => self.latency_sum = count?,
            10 => self.latency_count = count?,
            11 => self.errors = count?,
            12 => self.usage_missing = count?,
            13 => self.idless = count?,
            _ => return Err(SumOverflow),
        }
        Ok(())
    }

    /// Fold another group's sums into this one, checked: an overflow is an error, never a
    /// wrapped total.
    pub fn add(&mut self, o: &Sums) -> Result<(), SumOverflow> {
        *self = Sums::combine(self, o, u64::checked_add, i64::checked_add)?;
        Ok(())
    }

    /// The sums of `a` not in `b` (`b` a part of `a`: the groups a limit kept), checked.
    pub fn minus(a: &Sums, b: &Sums) -> Result<Sums, SumOverflow> {
        Sums::combine(a, b, u64::checked_sub, i64::checked_sub)
    }

    /// Every field of `a` and `b` through one checked operation (add or subtract).
    fn combine(
        a: &Sums,
        b: &Sums,
        count: fn(u64, u64) -> Option<u64>,
        money: fn(i64, i64) -> Option<i64>,
    ) -> Result<Sums, SumOverflow> {
        let u = |x: u64, y: u64| count(x, y).ok_or(SumOverflow);
        Ok(Sums {
            requests: u(a.requests, b.requests)?,
            attempts: u(a.attempts, b.attempts)?,
            cost: Usd(money(a.cost.0, b.cost.0).ok_or(SumOverflow)?),
            priced: u(a.priced, b.priced)?,
            input: u(a.input, b.input)?,
            cached: u(a.cached, b.cached)?,
            cache_write: u(a.cache_write, b.cache_write)?,
            output: u(a.output, b.output)?,
            reasoning: u(a.reasoning, b.reasoning)?,
            latency_sum: u(a.latency_sum, b.latency_sum)?,
            latency_count: u(a.latency_count, b.latency_count)?,
            errors: u(a.errors, b.errors)?,
            usage_missing: u(a.usage_missing, b.usage_missing)?,
            idless: u(a.idless, b.idless)?,
        })
    }

    /// The sum of many groups' sums, checked.
    pub fn total<'a>(all: impl IntoIterator<Item = &'a Sums>) -> Result<Sums, SumOverflow> {
        let mut total = Sums::default();
        for s in all {
            total.add(s)?;
        }
        Ok(total)
    }

    /// Calls with no price (unknown model, no rate for the tier).
    pub fn unpriced(&self) -> u64 {
        self.requests.saturating_sub(self.priced)
    }

    /// The group's money: the cost of its priced calls, or None when it has calls and
    /// none of them is priced (unknown is not $0). Always shown with `unpriced()`.
    pub fn cost_usd(&self) -> Option<Usd> {
        (self.priced > 0 || self.requests == 0).then_some(self.cost)
    }

    /// Cost per request, the one definition every view uses: the cost of the priced
    /// calls over the number of priced calls (what a call costs where its cost is known;
    /// unpriced calls would pull it toward $0). None without priced calls.
    pub fn cost_per_request(&self) -> Option<Usd> {
        match self.priced {
            0 => None,
            n => Some(Usd(self.cost.0 / n as i64)),
        }
    }

    /// Input plus output tokens over all calls.
    pub fn tokens_per_request(&self) -> Option<f64> {
        ratio(self.input as f64 + self.output as f64, self.requests)
    }
}

fn ratio(n: f64, d: u64) -> Option<f64> {
    (d != 0).then(|| n / d as f64)
}

impl Sums {
    /// One measure's value as JSON: money exact, ratios as numbers, empty ratios null,
    /// and a cost null when every call of the group is unpriced.
    pub fn value(&self, m: Measure) -> serde_json::Value {
        use serde_json::json;
        let opt = |v: Option<f64>| v.map_or(serde_json::Value::Null, |v| json!(v));
        let usd = |u: Option<Usd>| u.map_or(serde_json::Value::Null, |u| json!(u));
        match m {
            Measure::Requests => json!(self.requests),
            Measure::Attempts => json!(self.attempts),
            Measure::CostUsd => usd(self.cost_usd()),
            Measure::InputTokens => json!(self.input),
            Measure::OutputTokens => json!(self.output),
            Measure::CachedTokens => json!(self.cached),
            Measure::CacheWriteTokens => json!(self.cache_write),
            Measure::ReasoningTokens => json!(self.reasoning),
            Measure::CostPerRequest => usd(self.cost_per_request()),
            Measure::TokensPerRequest => opt(self.tokens_per_request()),
            Measure::LatencyAvgMs => opt(ratio(self.latency_sum as f64, self.latency_count)),
            Measure::ErrorRate => opt(ratio(self.errors as f64, self.requests)),
            Measure::RetryRatio => opt(ratio(
                self.attempts.saturating_sub(self.requests) as f64,
                self.requests,
            )),
            Measure::Unpriced => json!(self.unpriced()),
            Measure::CacheHitRate => opt(ratio(self.cached as f64, self.input)),
        }
    }

    /// Sort key for a measure: its exact value as a fraction (numerator, denominator >
    /// 0), so money and cost/request sort without rounding. None where `value` is null
    /// (a cost with every call unpriced, a ratio over nothing): it sorts below any value.
    pub fn sort_key(&self, m: Measure) -> Option<Fraction> {
        let whole = |n: u64| Some((n as i128, 1));
        let ratio = |n: u64, d: u64| (d != 0).then_some((n as i128, d));
        match m {
            Measure::Requests => whole(self.requests),
            Measure::Attempts => whole(self.attempts),
            Measure::CostUsd => self.cost_usd().map(|c| (c.0 as i128, 1)),
            Measure::InputTokens => whole(self.input),
            Measure::OutputTokens => whole(self.output),
            Measure::CachedTokens => whole(self.cached),
            Measure::CacheWriteTokens => whole(self.cache_write),
            Measure::ReasoningTokens => whole(self.reasoning),
            // Exact: `cost_per_request` shows this quotient rounded down to a nano-USD.
            Measure::CostPerRequest => {
                (self.priced != 0).then_some((self.cost.0 as i128, self.priced))
            }
            Measure::TokensPerRequest => (self.requests != 0)
                .then_some((self.input as i128 + self.output as i128, self.requests)),
            Measure::LatencyAvgMs => ratio(self.latency_sum, self.latency_count),
            Measure::ErrorRate => ratio(self.errors, self.requests),
            Measure::RetryRatio => {
                ratio(self.attempts.saturating_sub(self.requests), self.requests)
            }
            Measure::Unpriced => whole(self.unpriced()),
            Measure::CacheHitRate => ratio(self.cached, self.input),
        }
    }
}

/// An exact value: numerator / denominator (> 0).
pub type Fraction = (i128, u64);

/// Order two sort keys exactly, an empty key below every value. Whole parts first, then
/// the remainders cross-multiplied: each remainder is below its denominator (< 2^64), so
/// the products stay below 2^128 and nothing is rounded or overflows.
pub fn cmp_sort_keys(a: Option<Fraction>, b: Option<Fraction>) -> std::cmp::Ordering {
    let (Some((na, da)), Some((nb, db))) = (a, b) else {
        return a.is_some().cmp(&b.is_some());
    };
    // Whole numbers (costs, counts): no division needed, and 128-bit division is slow.
    if da == db {
        return na.cmp(&nb);
    }
    let (da, db) = (da as i128, db as i128);
    let (ra, rb) = (na.rem_euclid(da) as u128, nb.rem_euclid(db) as u128);
    na.div_euclid(da)
        .cmp(&nb.div_euclid(db))
        .then_with(|| (ra * db as u128).cmp(&(rb * da as u128)))
}

/// One answer row: the group's values (missing ones as their label), bucket start, sums.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub group: Vec<String>,
    pub bucket_ms: Option<i64>,
    pub sums: Sums,
}

/// The wire form of a query (POST /v1/query), checked into `Query`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryRequest {
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub filters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub group_by: Vec<String>,
    pub bucket: Option<String>,
    #[serde(default)]
    pub measures: Vec<String>,
    pub order_by: Option<String>,
    pub order: Option<String>,
    pub limit: Option<serde_json::Value>,
}

/// A query error naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct QueryError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> QueryError {
    QueryError {
        field: field.into(),
        message: message.into(),
    }
}

fn parse_time(field: &str, v: &Option<String>) -> Result<Option<i64>, QueryError> {
    v.as_deref()
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| {
                    err(
                        field,
                        "must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z",
                    )
                })
        })
        .transpose()
}

/// Filter values: a string or an array of at most MAX_FILTER_VALUES strings.
fn filter_values(field: &str, v: &serde_json::Value) -> Result<Vec<String>, QueryError> {
    match v {
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(items) if items.len() > MAX_FILTER_VALUES => Err(err(
            field,
            format!(
                "has {} values; a filter takes at most {MAX_FILTER_VALUES}",
                items.len()
            ),
        )),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(field, "values must be strings"))
            })
            .collect(),
        _ => Err(err(field, "must be a string or an array of strings")),
    }
}

fn vocabulary<T>(
    field: &str,
    values: Vec<String>,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<Vec<T>, QueryError> {
    values
        .iter()
        .map(|v| parse(v).ok_or_else(|| err(field, format!("must be one of: {}", expected()))))
        .collect()
}

impl QueryRequest {
    /// Check every part; defaults: last 24 h before `now_ms`, environment prod, dataMode
    /// real (test and demo traffic never mix into real numbers unless asked for).
    pub fn check(&self, now_ms: i64) -> Result<Query, QueryError> {
        let to_ms = parse_time("to", &self.to)?.unwrap_or(now_ms);
        let from_ms = parse_time("from", &self.from)?.unwrap_or(to_ms - 86_400_000);
        if from_ms > to_ms {
            return Err(err("from", "must not be after to"));
        }
        let mut filters = Filters {
            environment: vec![Environment::Prod],
            data_mode: vec![DataMode::Real],
            ..Default::default()
        };
        let mut total = 0;
        for (name, value) in &self.filters {
            let field = format!("filters.{name}");
            let values = filter_values(&field, value)?;
            total += values.len();
            if total > MAX_QUERY_FILTER_VALUES {
                return Err(err(
                    "filters",
                    format!(
                        "hold more than {MAX_QUERY_FILTER_VALUES} values in all; narrow the query"
                    ),
                ));
            }
            match name.as_str() {
                "environment" => {
                    filters.environment =
                        vocabulary(&field, values, Environment::parse, Environment::expected)?
                }
                "dataMode" => {
                    filters.data_mode =
                        vocabulary(&field, values, DataMode::parse, DataMode::expected)?
                }
                "status" => {
                    filters.status = vocabulary(&field, values, Status::parse, Status::expected)?
                }
                other => match Dimension::parse(other) {
                    Some(Dimension::Tag(key)) => {
                        filters.tags.insert(key, values);
                    }
                    Some(
                        d @ (Dimension::EndpointTag
                        | Dimension::PromptVersion
                        | Dimension::TenantId
                        | Dimension::UserId
                        | Dimension::Provider
                        | Dimension::Model),
                    ) => {
                        filters.text.insert(d, values);
                    }
                    _ => return Err(err(&field, Dimension::problem(other, "is not a dimension"))),
                },
            }
        }
        if self.group_by.len() > MAX_GROUP_BY {
            return Err(err(
                "groupBy",
                format!("takes at most {MAX_GROUP_BY} dimensions"),
            ));
        }
        let group_by = self
            .group_by
            .iter()
            .map(|d| {
                Dimension::parse(d).ok_or_else(|| {
                    err(
                        "groupBy",
                        Dimension::problem(d, &format!("unknown dimension {d:?}")),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bucket = match self.bucket.as_deref() {
            None => None,
            Some("hour") => Some(Bucket::Hour),
            Some("day") => Some(Bucket::Day),
            Some(_) => return Err(err("bucket", "must be hour or day")),
        };
        let measure = |field: &str, m: &str| {
            Measure::parse(m).ok_or_else(|| {
                let names: Vec<&str> = Measure::ALL.iter().map(|m| m.name()).collect();
                err(
                    field,
                    format!("unknown measure {m:?}; use one of: {}", names.join(", ")),
                )
            })
        };
        let mut measures = self
            .measures
            .iter()
            .map(|m| measure("measures", m))
            .collect::<Result<Vec<_>, _>>()?;
        if measures.is_empty() {
            measures = vec![Measure::Requests, Measure::CostUsd];
        }
        let order_by = self
            .order_by
            .as_deref()
            .map(|m| measure("orderBy", m))
            .transpose()?;
        let ascending = match self.order.as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(_) => return Err(err("order", "must be asc or desc")),
        };
        let limit = match &self.limit {
            None => 100,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
                _ => {
                    return Err(err(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
        };
        Ok(Query {
            from_ms,
            to_ms,
            filters,
            group_by,
            bucket,
            measures,
            order_by,
            ascending,
            limit,
            count_by_first: false,
        })
    }
}

/// An aggregate's answer: the rows the query's order and limit kept, and the exact
/// totals of every group, cut ones included, so that a total, a share or a concentration
/// never comes from a cut list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub rows: Vec<Row>,
    /// The sums of all groups: one row per bucket in bucket order (bucket None when the
    /// query has none), group empty. Empty when nothing matched.
    pub totals: Vec<Row>,
    /// How many groups the limit cut off.
    pub cut: usize,
    /// With `Query::count_by_first`: the number of groups per label of the first
    /// group-by dimension, in label order; otherwise empty.
    pub first_counts: Vec<(String, u64)>,
    /// The last commit this answer includes (`store::CommitSeq`); 0 when not known.
    pub seen: u64,
    /// Set when part of the window had to be read from raw events before the time raw
    /// events exist from (retention pruned them; the rollups keep their sums): that part
    /// counts only the events that remain. The time raw events exist from (ms).
    pub raw_from_ms: Option<i64>,
}

impl Answer {
    /// The sums of everything that matched (all buckets, all groups).
    pub fn total(&self) -> Sums {
        // Cannot overflow: `answer` checked the sum of these same buckets.
        Sums::total(self.totals.iter().map(|r| &r.sums)).unwrap_or_default()
    }
}

/// Each bucket's total of every group (checked, and the grand total too).
pub fn bucket_totals<'a>(
    rows: impl Iterator<Item = (Option<i64>, &'a Sums)>,
) -> Result<Vec<Row>, SumOverflow> {
    let mut per_bucket: BTreeMap<Option<i64>, Sums> = BTreeMap::new();
    for (bucket_ms, sums) in rows {
        per_bucket.entry(bucket_ms).or_default().add(sums)?;
    }
    Sums::total(per_bucket.values())?;
    Ok(per_bucket
        .into_iter()
        .map(|(bucket_ms, sums)| Row {
            group: Vec::new(),
            bucket_ms,
            sums,
        })
        .collect())
}

/// Which rows (bucket, sums) can be among an answer's first `limit` before their group
/// labels are known: the first `limit` by bucket and measure, and every row tied with the
/// last of those (labels break such ties). A store with many groups names only these.
pub fn contenders(query: &Query, rows: &[(Option<i64>, &Sums)]) -> Vec<usize> {
    if rows.len() <= query.limit {
        return (0..rows.len()).collect();
    }
    let key = query.order_by.unwrap_or(Measure::CostUsd);
    let mut keyed: Vec<(Option<i64>, Option<Fraction>, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, (bucket, sums))| (*bucket, sums.sort_key(key), i))
        .collect();
    let order = |a: &(Option<i64>, Option<Fraction>, usize),
                 b: &(Option<i64>, Option<Fraction>, usize)| {
        let by_measure = if query.ascending {
            cmp_sort_keys(a.1, b.1)
        } else {
            cmp_sort_keys(b.1, a.1)
        };
        a.0.cmp(&b.0).then(by_measure)
    };
    let Some(last) = query.limit.checked_sub(1) else {
        return Vec::new();
    };
    // Only the row at the cut needs its place; no full sort.
    let (_, &mut last, _) = keyed.select_nth_unstable_by(last, order);
    keyed
        .iter()
        .filter(|k| order(k, &last) != std::cmp::Ordering::Greater)
        .map(|k| k.2)
        .collect()
}

/// The sort key of the `limit`-th row in the query's order among rows of one bucket
/// given by their keys, or None when there are at most `limit` rows (all make the cut):
/// with `reaches`, `contenders` without holding every key (a heap of `limit` keys).
pub fn cut_key(
    query: &Query,
    keys: impl Iterator<Item = Option<Fraction>>,
) -> Option<Option<Fraction>> {
    /// A key ordered worst first (the heap's top is the worst key kept).
    struct Worst(Option<Fraction>, bool);
    impl Ord for Worst {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            let order = cmp_sort_keys(self.0, other.0);
            if self.1 {
                order
            } else {
                order.reverse()
            }
        }
    }
    impl PartialOrd for Worst {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl PartialEq for Worst {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other).is_eq()
        }
    }
    impl Eq for Worst {}
    let mut best = std::collections::BinaryHeap::with_capacity(query.limit.min(4096) + 1);
    let mut more = false;
    for key in keys {
        let key = Worst(key, query.ascending);
        if best.len() == query.limit {
            more = true;
            // Most keys of a long list are no better than the worst one kept.
            match best.peek_mut() {
                Some(mut worst) if key < *worst => *worst = key,
                _ => continue,
            }
        } else {
            best.push(key);
        }
    }
    more.then(|| best.peek().and_then(|w| w.0))
}

/// Whether a row of one bucket with sort key `key` is among the contenders of a cut at
/// `cut` (`cut_key`): in the first `limit`, or tied with the last of them.
pub fn reaches(query: &Query, key: Option<Fraction>, cut: Option<Option<Fraction>>) -> bool {
    let Some(cut) = cut else {
        return query.limit > 0;
    };
    let order = cmp_sort_keys(key, cut);
    query.limit > 0
        && if query.ascending {
            order.is_le()
        } else {
            order.is_ge()
        }
}

/// Total every bucket's groups (checked), then sort and cut the rows as the query asks;
/// ties broken by group values for stable answers.
pub fn answer(query: &Query, rows: Vec<Row>) -> Result<Answer, SumOverflow> {
    let totals = bucket_totals(rows.iter().map(|r| (r.bucket_ms, &r.sums)))?;
    let first_counts = first_counts(query, rows.iter().filter_map(|r| r.group.first()));
    let key = query.order_by.unwrap_or(Measure::CostUsd);
    // Each row's sort key computed once, outside the comparisons.
    let mut keyed: Vec<(Option<Fraction>, Row)> = rows
        .into_iter()
        .map(|r| (r.sums.sort_key(key), r))
        .collect();
    keyed.sort_by(|(ka, a), (kb, b)| {
        let by_measure = if query.ascending {
            cmp_sort_keys(*ka, *kb)
        } else {
            cmp_sort_keys(*kb, *ka)
        };
        a.bucket_ms
            .cmp(&b.bucket_ms)
            .then(by_measure)
            .then_with(|| a.group.cmp(&b.group))
    });
    let cut = keyed.len().saturating_sub(query.limit);
    let rows = keyed
        .into_iter()
        .take(query.limit)
        .map(|(_, r)| r)
        .collect();
    Ok(Answer {
        rows,
        totals,
        cut,
        first_counts,
        seen: 0,
        raw_from_ms: None,
    })
}

/// `Answer::first_counts` of groups whose first labels are `firsts` (one per group):
/// empty unless the query asks for it.
pub fn first_counts<'a>(
    query: &Query,
    firsts: impl Iterator<Item = &'a String>,
) -> Vec<(String, u64)> {
    if !query.count_by_first {
        return Vec::new();
    }
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for first in firsts {
        *counts.entry(first).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect()
}

impl Filters {
    /// Narrow to the groups whose `dim` value is one of `values` (labels as an answer
    /// shows them; a missing-value label selects the calls without one).
    pub fn restrict(&mut self, dim: &Dimension, values: &[String]) {
        fn parsed<T>(values: &[String], parse: fn(&str) -> Option<T>) -> Vec<T> {
            values.iter().filter_map(|v| parse(v)).collect()
        }
        match dim {
            Dimension::Environment => self.environment = parsed(values, Environment::parse),
            Dimension::DataMode => self.data_mode = parsed(values, DataMode::parse),
            Dimension::Status => self.status = parsed(values, Status::parse),
            Dimension::Tag(key) => {
                self.tags.insert(key.clone(), values.to_vec());
            }
            text => {
                self.text.insert(text.clone(), values.to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_are_the_first_rows_by_measure_and_every_tie_at_the_cut() {
        let sums = |cost: i64| Sums {
            requests: 1,
            priced: 1,
            cost: Usd(cost),
            ..Default::default()
        };
        let all = [sums(3), sums(5), sums(1), sums(3), sums(3)];
        let rows: Vec<(Option<i64>, &Sums)> = all.iter().map(|s| (None, s)).collect();
        let query = |limit: usize| Query {
            from_ms: 0,
            to_ms: 1,
            filters: Filters::default(),
            group_by: Vec::new(),
            bucket: None,
            measures: Vec::new(),
            order_by: None,
            ascending: false,
            limit,
            count_by_first: false,
        };
        let mut two = contenders(&query(2), &rows);
        two.sort_unstable();
        // $5, then the three rows tied at $3 (their labels decide which one is second).
        assert_eq!(two, [0, 1, 3, 4]);
        assert_eq!(contenders(&query(1), &rows), [1]);
        assert!(contenders(&query(0), &rows).is_empty());
        assert_eq!(contenders(&query(9), &rows).len(), 5);
        // Ties on both sides of the cut in any input order are all kept.
        let many: Vec<Sums> = [1, 3, 3, 9, 3, 0, 3, 3, 7, 3].map(sums).to_vec();
        let rows: Vec<(Option<i64>, &Sums)> = many.iter().map(|s| (None, s)).collect();
        let mut three = contenders(&query(3), &rows);
        three.sort_unstable();
        assert_eq!(three, [1, 2, 3, 4, 6, 7, 8, 9]);
    }

    #[test]
    fn sort_keys_compare_exactly() {
        use std::cmp::Ordering::*;
        let key = |n: i128, d: u64| Some((n, d));
        // Costs past 2^53 nanos, one nano apart: equal as f64, not equal as money.
        assert_eq!(
            cmp_sort_keys(key((1 << 60) + 1, 1), key(1 << 60, 1)),
            Greater
        );
        // Cost/request 1/3 nano vs 333,333,333 / 1e9: the same nano when rounded down.
        assert_eq!(
            cmp_sort_keys(key(1, 3), key(333_333_333, 1_000_000_000)),
            Greater
        );
        assert_eq!(cmp_sort_keys(key(2, 4), key(1, 2)), Equal);
        assert_eq!(cmp_sort_keys(key(-1, 2), key(0, 7)), Less);
        // Denominators near u64::MAX: the cross products must not overflow.
        assert_eq!(
            cmp_sort_keys(key(i64::MAX as i128, u64::MAX), key(1, 2)),
            Less
        );
        assert_eq!(cmp_sort_keys(None, key(0, 1)), Less);
        assert_eq!(cmp_sort_keys(None, None), Equal);
    }

    fn check(v: serde_json::Value) -> Result<Query, QueryError> {
        serde_json::from_value::<QueryRequest>(v)
            .unwrap()
            .check(1_764_000_000_000)
    }

    #[test]
    fn defaults_are_last_24h_prod_real() {
        let q = check(serde_json::json!({})).unwrap();
        assert_eq!(q.to_ms - q.from_ms, 86_400_000);
        assert_eq!(q.filters.environment, vec![Environment::Prod]);
        assert_eq!(q.filters.data_mode, vec![DataMode::Real]);
        assert_eq!(q.measures, vec![Measure::Requests, Measure::CostUsd]);
        assert_eq!(q.limit, 100);
    }

    #[test]
    fn bad_input_names_the_field() {
        let field = |v| check(v).unwrap_err().field;
        assert_eq!(field(serde_json::json!({"groupBy": ["team"]})), "groupBy");
        assert_eq!(
            field(serde_json::json!({"groupBy": ["model", "provider", "status", "tenantId"]})),
            "groupBy"
        );
        assert_eq!(
            field(
                serde_json::json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
            ),
            "from"
        );
        assert_eq!(field(serde_json::json!({"limit": 0})), "limit");
        assert_eq!(field(serde_json::json!({"limit": 10001})), "limit");
        assert_eq!(field(serde_json::json!({"limit": "ten"})), "limit");
        assert_eq!(
            field(serde_json::json!({"filters": {"tenantId": 5}})),
            "filters.tenantId"
        );
        assert_eq!(
            field(serde_json::json!({"filters": {"environment": "production"}})),
            "filters.environment"
        );
        assert_eq!(
            field(serde_json::json!({"filters": {"colour": "red"}})),
            "filters.colour"
        );
        assert_eq!(
            field(serde_json::json!({"measures": ["profit"]})),
            "measures"
        );
        assert_eq!(field(serde_json::json!({"bucket": "week"})), "bucket");
    }

    /// 40,000 values in one filter reached SQLite as 40,000 parameters: a 500 "too many
    /// SQL variables" and the whole statement in the log.
    #[test]
    fn filter_list_over_the_cap_is_an_error_naming_the_field() {
        let values = |n: usize| -> Vec<String> { (0..n).map(|i| format!("t{i}")).collect() };
        let q = check(serde_json::json!({"filters": {"tenantId": values(1_000)}})).unwrap();
        assert_eq!(q.filters.text[&Dimension::TenantId].len(), 1_000);
        let e = check(serde_json::json!({"filters": {"tenantId": values(1_001)}})).unwrap_err();
        assert_eq!(e.field, "filters.tenantId");
        assert!(e.message.contains("at most 1000"), "{}", e.message);
        let e = check(serde_json::json!({"filters": {"tag:team": values(40_000)}})).unwrap_err();
        assert_eq!(e.field, "filters.tag:team");
        // Six full lists: each is allowed, together they pass the query's cap.
        let mut filters = serde_json::Map::new();
        for d in ["tenantId", "userId", "model", "provider", "endpointTag"] {
            filters.insert(d.into(), serde_json::json!(values(1_000)));
        }
        assert!(check(serde_json::json!({ "filters": filters.clone() })).is_ok());
        filters.insert("promptVersion".into(), serde_json::json!(values(1)));
        let e = check(serde_json::json!({ "filters": filters })).unwrap_err();
        assert_eq!(e.field, "filters");
    }

    #[test]
    fn tag_keys_outside_the_ingest_charset_are_refused_naming_the_field() {
        for bad in ["tag:a\\", "tag:a\u{0}b", "tag:", "tag:a\"b", "tag:é"] {
            assert_eq!(Dimension::parse(bad), None, "{bad:?}");
            let e = check(serde_json::json!({"groupBy": [bad]})).unwrap_err();
            assert_eq!(e.field, "groupBy");
            assert!(e.message.contains("A-Z a-z 0-9 _ . -"), "{}", e.message);
            let e = check(serde_json::json!({"filters": {bad: ["x"]}})).unwrap_err();
            assert_eq!(e.field, format!("filters.{bad}"));
        }
        assert_eq!(
            Dimension::parse("tag:team.a-b_1"),
            Some(Dimension::Tag("team.a-b_1".into()))
        );
    }

    #[test]
    fn an_answer_totals_every_group_before_the_limit_cuts() {
        let q = check(serde_json::json!({"groupBy": ["tenantId"], "limit": 2})).unwrap();
        let row = |t: &str, bucket: Option<i64>, cost: i64| Row {
            group: vec![t.into()],
            bucket_ms: bucket,
            sums: Sums {
                requests: 1,
                priced: 1,
                cost: Usd(cost),
                ..Default::default()
            },
        };
        let a = answer(
            &q,
            (1..=5).map(|i| row(&format!("t{i}"), None, i)).collect(),
        )
        .unwrap();
        assert_eq!(a.rows.len(), 2);
        assert_eq!(a.rows[0].group, vec!["t5"]);
        assert_eq!(a.cut, 3);
        assert_eq!((a.total().requests, a.total().cost), (5, Usd(15)));
        // Bucketed: one total per bucket, whatever the limit kept.
        let rows = vec![
            row("a", Some(0), 1),
            row("b", Some(0), 2),
            row("a", Some(3_600_000), 4),
        ];
        let a = answer(&q, rows).unwrap();
        let totals: Vec<(Option<i64>, i64)> = a
            .totals
            .iter()
            .map(|r| (r.bucket_ms, r.sums.cost.0))
            .collect();
        assert_eq!(totals, vec![(Some(0), 3), (Some(3_600_000), 4)]);
        assert_eq!(a.cut, 1);
    }

    #[test]
    fn sums_that_overflow_are_an_error_never_a_wrap() {
        let big = Sums {
            cost: Usd(i64::MAX - 1),
            input: u64::MAX - 1,
            ..Default::default()
        };
        let mut s = big;
        assert_eq!(s.add(&big), Err(SumOverflow));
        assert_eq!(Sums::total([&big, &big]), Err(SumOverflow));
        assert_eq!(Sums::minus(&Sums::default(), &big), Err(SumOverflow));
        let q = check(serde_json::json!({"groupBy": ["tenantId"]})).unwrap();
        let row = |t: &str| Row {
            group: vec![t.into()],
            bucket_ms: None,
            sums: big,
        };
        assert_eq!(answer(&q, vec![row("a"), row("b")]), Err(SumOverflow));
    }

    #[test]
    fn tags_are_dimensions_and_filters() {
        let q = check(
            serde_json::json!({"groupBy": ["tag:team"], "filters": {"tag:region": ["eu", "us"]}}),
        )
        .unwrap();
        assert_eq!(q.group_by, vec![Dimension::Tag("team".into())]);
        assert_eq!(q.filters.tags["region"], vec!["eu", "us"]);
    }

    #[test]
    fn derived_measures_come_from_exact_sums() {
        let s = Sums {
            requests: 4,
            attempts: 6,
            cost: Usd(1_000),
            priced: 2,
            input: 100,
            cached: 25,
            output: 50,
            errors: 1,
            ..Default::default()
        };
        assert_eq!(
            s.value(Measure::CostPerRequest),
            serde_json::json!(0.0000005)
        );
        assert_eq!(s.value(Measure::RetryRatio), serde_json::json!(0.5));
        assert_eq!(s.value(Measure::CacheHitRate), serde_json::json!(0.25));
        assert_eq!(s.value(Measure::Unpriced), serde_json::json!(2));
        assert_eq!(
            Sums::default().value(Measure::ErrorRate),
            serde_json::Value::Null
        );
    }
}
