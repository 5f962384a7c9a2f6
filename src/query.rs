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
                if !crate::validate::is_valid_tag_key(key) {
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
            Some(_) => crate::validate::tag_key_rule(),
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
}

/// The totals a group accumulates; every measure is derived from these exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub attempts: u64,
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

impl Sums {
    /// Fold another group's sums into this one (exact: sums add, first/last combine).
    pub fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.attempts += o.attempts;
        self.cost = Usd(self.cost.0 + o.cost.0);
        self.priced += o.priced;
        self.input += o.input;
        self.cached += o.cached;
        self.cache_write += o.cache_write;
        self.output += o.output;
        self.reasoning += o.reasoning;
        self.latency_sum += o.latency_sum;
        self.latency_count += o.latency_count;
        self.errors += o.errors;
        self.usage_missing += o.usage_missing;
        self.idless += o.idless;
    }
}

impl Sums {
    /// One measure's value as JSON: money exact, ratios as numbers, empty ratios null.
    pub fn value(&self, m: Measure) -> serde_json::Value {
        use serde_json::json;
        let ratio = |n: f64, d: u64| {
            if d == 0 {
                serde_json::Value::Null
            } else {
                json!(n / d as f64)
            }
        };
        match m {
            Measure::Requests => json!(self.requests),
            Measure::Attempts => json!(self.attempts),
            Measure::CostUsd => serde_json::to_value(self.cost).unwrap_or_default(),
            Measure::InputTokens => json!(self.input),
            Measure::OutputTokens => json!(self.output),
            Measure::CachedTokens => json!(self.cached),
            Measure::CacheWriteTokens => json!(self.cache_write),
            Measure::ReasoningTokens => json!(self.reasoning),
            // Over priced calls only, so unknown models do not dilute it toward 0.
            Measure::CostPerRequest => match self.priced {
                0 => serde_json::Value::Null,
                n => serde_json::to_value(Usd(self.cost.0 / n as i64)).unwrap_or_default(),
            },
            Measure::TokensPerRequest => ratio((self.input + self.output) as f64, self.requests),
            Measure::LatencyAvgMs => ratio(self.latency_sum as f64, self.latency_count),
            Measure::ErrorRate => ratio(self.errors as f64, self.requests),
            Measure::RetryRatio => ratio(
                self.attempts.saturating_sub(self.requests) as f64,
                self.requests,
            ),
            Measure::Unpriced => json!(self.requests - self.priced),
            Measure::CacheHitRate => ratio(self.cached as f64, self.input),
        }
    }

    /// Sort key for a measure (money in nanos, ratios as f64).
    pub fn sort_key(&self, m: Measure) -> f64 {
        match self.value(m) {
            serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0),
            _ => f64::NEG_INFINITY,
        }
    }
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
        })
    }
}

/// Sort and cut rows as the query asks; ties broken by group values for stable answers.
pub fn order_and_limit(query: &Query, rows: &mut Vec<Row>) {
    let key = query.order_by.unwrap_or(Measure::CostUsd);
    rows.sort_by(|a, b| {
        let (ka, kb) = (a.sums.sort_key(key), b.sums.sort_key(key));
        let by_measure = if query.ascending {
            ka.total_cmp(&kb)
        } else {
            kb.total_cmp(&ka)
        };
        a.bucket_ms
            .cmp(&b.bucket_ms)
            .then(by_measure)
            .then_with(|| a.group.cmp(&b.group))
    });
    rows.truncate(query.limit);
}

#[cfg(test)]
mod tests {
    use super::*;

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
