//! Alerts: fourteen built-in rules evaluated every minute over the aggregate query layer,
//! each finding carrying its evidence and top drivers; a pure state machine turns
//! findings into firing and resolved alerts with a cooldown; `engine` stores them and
//! sends them through `notify`.

pub mod abuse;
pub mod baseline;
pub mod digests;
pub mod engine;
pub mod members;
pub mod rules;
pub mod state;

use crate::event::{DataMode, Environment, FieldError};
use crate::money::Usd;

/// Robust standard deviations a change must exceed to be unlikely under its baseline.
pub const DEFAULT_SIGMAS: f64 = 4.0;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    CostPerRequestDrift,
    TokensPerRequestRise,
    HourlySpendSpike,
    EndpointConcentration,
    TenantConcentration,
    RetryStorm,
    UnpricedRatio,
    LongContextCliff,
    CacheHitDrop,
    Budget,
    TenantCostOverRevenue,
    BillMismatch,
    NewUserBurst,
    SpendJump,
}

impl RuleKind {
    pub const ALL: [RuleKind; 14] = [
        RuleKind::CostPerRequestDrift,
        RuleKind::TokensPerRequestRise,
        RuleKind::HourlySpendSpike,
        RuleKind::EndpointConcentration,
        RuleKind::TenantConcentration,
        RuleKind::RetryStorm,
        RuleKind::UnpricedRatio,
        RuleKind::LongContextCliff,
        RuleKind::CacheHitDrop,
        RuleKind::Budget,
        RuleKind::TenantCostOverRevenue,
        RuleKind::BillMismatch,
        RuleKind::NewUserBurst,
        RuleKind::SpendJump,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::CostPerRequestDrift => "cost_per_request_drift",
            RuleKind::TokensPerRequestRise => "tokens_per_request_rise",
            RuleKind::HourlySpendSpike => "hourly_spend_spike",
            RuleKind::EndpointConcentration => "endpoint_concentration",
            RuleKind::TenantConcentration => "tenant_concentration",
            RuleKind::RetryStorm => "retry_storm",
            RuleKind::UnpricedRatio => "unpriced_ratio",
            RuleKind::LongContextCliff => "long_context_cliff",
            RuleKind::CacheHitDrop => "cache_hit_drop",
            RuleKind::Budget => "budget",
            RuleKind::TenantCostOverRevenue => "tenant_cost_over_revenue",
            RuleKind::BillMismatch => "bill_mismatch",
            RuleKind::NewUserBurst => "new_user_burst",
            RuleKind::SpendJump => "spend_jump",
        }
    }

    pub fn parse(s: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Defaults chosen to stay quiet on ordinary traffic (tested on 30 days of clean
    /// demo data) and to fire on the incidents each rule is for.
    pub fn defaults(self) -> RuleSettings {
        let (threshold, min_requests, window_minutes, what) = match self {
            RuleKind::CostPerRequestDrift => (30.0, 50, 7 * 1440, "% rise of cost/request, new promptVersion vs the previous one"),
            RuleKind::TokensPerRequestRise => (50.0, 100, 1440, "% rise of input or output tokens/request vs the 7 days before"),
            RuleKind::HourlySpendSpike => (3.0, 20, 60, "times the usual spend of this hour (median of the same hour on earlier weekdays, or weekend days)"),
            RuleKind::EndpointConcentration => (20.0, 100, 1440, "percentage points of spend share gained by one endpoint vs the 7 days before"),
            RuleKind::TenantConcentration => (20.0, 100, 1440, "percentage points of spend share gained by one tenant vs the 7 days before"),
            RuleKind::RetryStorm => (3.0, 50, 60, "times the 7-day retry ratio or error share (and at least 10%)"),
            RuleKind::UnpricedRatio => (1.0, 20, 1440, "% of calls with no price (unknown model)"),
            RuleKind::LongContextCliff => (90.0, 20, 1440, "% of a model's long-context price threshold reached by the average prompt"),
            RuleKind::CacheHitDrop => (15.0, 50, 7 * 1440, "percentage points of cache hit rate lost, new promptVersion vs the previous one"),
            RuleKind::TenantCostOverRevenue => (30.0, 20, 1440, "% of a tenant's revenue this month so far taken by its AI cost (the window is the UTC month to date; tenants without revenue are on the margin list, not alerted)"),
            RuleKind::BillMismatch => (3.0, 0, 7 * 1440, "% by which a day's attributed spend differs from the provider's bill (each billed day in the window; bills come from burnrate reconcile import)"),
            RuleKind::NewUserBurst => (3.0, 20, 60, "times the usual spend of new users (no calls in the 7 UTC days before today) and calls without a userId at this hour (median of the same hour on earlier comparable days)"),
            RuleKind::SpendJump => (3.0, 10, 60, "times the usual spend of one tenant or user at this hour (median of the same hour on earlier comparable days)"),
            RuleKind::Budget => (100.0, 0, 60, "(not used: each budget has its own thresholds) budget thresholds, exceeded, projected exhaustion before the period ends"),
        };
        // Materiality: a rule that compares with a baseline fires only on a change worth
        // this much money in its window (an hour's spike of $0.07 is noise, not news).
        let min_usd = match self {
            RuleKind::HourlySpendSpike => Usd(1_000_000_000),
            RuleKind::EndpointConcentration | RuleKind::TenantConcentration => Usd(2_000_000_000),
            RuleKind::TokensPerRequestRise => Usd(100_000_000),
            RuleKind::NewUserBurst | RuleKind::SpendJump => Usd(2_000_000_000),
            _ => Usd(0),
        };
        RuleSettings {
            kind: self,
            enabled: true,
            threshold,
            min_requests,
            window_minutes,
            min_usd,
            sigmas: DEFAULT_SIGMAS,
            cooldown_minutes: 5,
            muted_until_ms: None,
            threshold_means: what,
        }
    }
}

/// One rule's settings in a workspace (the defaults, changed by the API, CLI or a file).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSettings {
    pub kind: RuleKind,
    pub enabled: bool,
    pub threshold: f64,
    /// No finding on fewer calls than this in the window (no alert on 3 requests).
    pub min_requests: u64,
    pub window_minutes: u64,
    /// No finding on a change worth less than this in the window (spend above the
    /// expected, or the cost of the change); 0 where a rule has no money change.
    pub min_usd: Usd,
    /// A change must also be beyond this many robust standard deviations of its
    /// baseline's own history (spend spike: same hour on comparable days; retry storm:
    /// the binomial spread of the error and retry counts).
    pub sigmas: f64,
    /// After a resolve, the same alert does not fire again for this long.
    pub cooldown_minutes: u64,
    pub muted_until_ms: Option<i64>,
    #[serde(skip_serializing)]
    pub threshold_means: &'static str,
}

impl RuleSettings {
    pub fn muted(&self, now_ms: i64) -> bool {
        self.muted_until_ms.is_some_and(|t| t > now_ms)
    }

    /// Apply a change (`{"enabled": false, "threshold": 40, "mutedUntil": "..."}`).
    pub fn apply(&mut self, change: &Value) -> Result<(), Vec<FieldError>> {
        let Some(obj) = change.as_object() else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        let mut errors = Vec::new();
        for (key, value) in obj {
            if let Err(message) = self.set(key, value) {
                errors.push(FieldError::new(key.as_str(), message));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let positive = |v: &Value| v.as_f64().filter(|x| *x > 0.0 && x.is_finite());
        let count = |v: &Value| v.as_u64();
        match key {
            "enabled" => self.enabled = value.as_bool().ok_or("must be true or false")?,
            "threshold" => self.threshold = positive(value).ok_or("must be a number above 0")?,
            "minRequests" => self.min_requests = count(value).ok_or("must be an integer >= 0")?,
            "windowMinutes" => {
                self.window_minutes = count(value)
                    .filter(|m| (1..=90 * 1440).contains(m))
                    .ok_or("must be an integer from 1 to 129600")?
            }
            "minUsd" => {
                self.min_usd = value
                    .as_number()
                    .and_then(|n| Usd::parse(&n.to_string()).ok())
                    .filter(|u| u.0 >= 0)
                    .ok_or("must be a dollar amount >= 0")?
            }
            "sigmas" => {
                self.sigmas = value
                    .as_f64()
                    .filter(|x| (0.0..=100.0).contains(x))
                    .ok_or("must be a number from 0 to 100")?
            }
            "cooldownMinutes" => {
                self.cooldown_minutes = count(value).ok_or("must be an integer >= 0")?
            }
            "mutedUntil" => {
                self.muted_until_ms = match value {
                    Value::Null => None,
                    Value::String(s) => Some(
                        s.parse::<jiff::Timestamp>()
                            .map_err(|_| "must be an RFC 3339 time or null")?
                            .as_millisecond(),
                    ),
                    _ => return Err("must be an RFC 3339 time or null".into()),
                }
            }
            "kind" | "thresholdMeans" => {}
            _ => {
                return Err(
                    "is not a rule setting; use enabled, threshold, minRequests, \
                            windowMinutes, minUsd, sigmas, cooldownMinutes, mutedUntil"
                        .into(),
                )
            }
        }
        Ok(())
    }
}

/// The rules of a workspace and the traffic they watch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSettings {
    pub environment: Environment,
    pub data_mode: DataMode,
    pub rules: Vec<RuleSettings>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            environment: Environment::Prod,
            data_mode: DataMode::Real,
            rules: RuleKind::ALL.iter().map(|k| k.defaults()).collect(),
        }
    }
}

impl RuleSettings {
    /// The spend-spike test, the one rule behind the hourly_spend_spike alert and the
    /// Overview's spike marker: spend over at least `min_requests` calls that is at
    /// least `threshold` times what was expected. How many times, or None (no spike on
    /// a handful of calls, nor against an expectation of nothing). `cost_nanos` and
    /// `expected_nanos` may both be multiplied by the same factor (the alert's expected
    /// spend is a fraction of its baseline's: it passes both sides times the baseline's
    /// length, so no division rounds money); only the ratio is a float.
    pub fn spike_times(
        &self,
        requests: u64,
        cost_nanos: i128,
        expected_nanos: i128,
    ) -> Option<f64> {
        if requests < self.min_requests || expected_nanos <= 0 {
            return None;
        }
        let times = cost_nanos as f64 / expected_nanos as f64;
        (times >= self.threshold).then_some(times)
    }
}

impl AlertSettings {
    pub fn rule(&self, kind: RuleKind) -> &RuleSettings {
        self.rules
            .iter()
            .find(|r| r.kind == kind)
            .expect("every kind has settings")
    }

    /// Read stored or uploaded settings: `{"environment": .., "dataMode": .., "rules":
    /// {"retry_storm": {"threshold": 4}, ...}}`; anything absent keeps its default.
    pub fn from_json(value: &Value) -> Result<AlertSettings, Vec<FieldError>> {
        let mut settings = AlertSettings::default();
        let empty = Map::new();
        let obj = value.as_object().unwrap_or(&empty);
        let mut errors = Vec::new();
        for (key, v) in obj {
            match key.as_str() {
                "environment" => match v.as_str().and_then(Environment::parse) {
                    Some(e) => settings.environment = e,
                    None => errors.push(FieldError::new(
                        "environment",
                        "must be prod, staging or dev",
                    )),
                },
                "dataMode" => match v.as_str().and_then(DataMode::parse) {
                    Some(d) => settings.data_mode = d,
                    None => errors.push(FieldError::new("dataMode", "must be real, test or demo")),
                },
                "rules" => settings.apply_rules(v, &mut errors),
                other => errors.push(FieldError::new(
                    other,
                    "is not an alert setting; use environment, dataMode, rules",
                )),
            }
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }

    fn apply_rules(&mut self, rules: &Value, errors: &mut Vec<FieldError>) {
        let Some(rules) = rules.as_object() else {
            errors.push(FieldError::new(
                "rules",
                "must be an object keyed by rule kind",
            ));
            return;
        };
        for (name, change) in rules {
            let Some(kind) = RuleKind::parse(name) else {
                let kinds: Vec<&str> = RuleKind::ALL.iter().map(|k| k.as_str()).collect();
                errors.push(FieldError::new(
                    format!("rules.{name}"),
                    format!("unknown rule; use one of {}", kinds.join(", ")),
                ));
                continue;
            };
            let rule = self
                .rules
                .iter_mut()
                .find(|r| r.kind == kind)
                .expect("all kinds");
            if let Err(fields) = rule.apply(change) {
                errors.extend(
                    fields
                        .into_iter()
                        .map(|f| FieldError::new(format!("rules.{name}.{}", f.field), f.message)),
                );
            }
        }
    }

    /// The stored form: only what differs from the defaults is worth keeping, but
    /// keeping all of it is simpler and shows the user the whole picture.
    pub fn to_json(&self) -> Value {
        let rules: Map<String, Value> = self
            .rules
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.remove("kind");
                    o.remove("mutedUntilMs");
                    o.insert(
                        "mutedUntil".into(),
                        r.muted_until_ms
                            .map(|t| Value::String(crate::report::rfc3339(t)))
                            .unwrap_or(Value::Null),
                    );
                }
                (r.kind.as_str().to_string(), v)
            })
            .collect();
        serde_json::json!({
            "environment": self.environment.as_str(),
            "dataMode": self.data_mode.as_str(),
            "rules": rules,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

/// One thing a rule found at one evaluation; its `key` identifies the alert it belongs
/// to across evaluations (rule, scope and, where it matters, period).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: RuleKind,
    pub key: String,
    pub severity: Severity,
    pub title: String,
    pub text: String,
    /// The numbers, the window and the baseline.
    pub evidence: Value,
    pub drivers: Vec<crate::notify::Driver>,
    /// Dashboard path (with query) of the view that explains it.
    pub link: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn min_usd_and_sigmas_are_rule_settings_checked_by_name() {
        let s = AlertSettings::from_json(&json!({"rules": {"hourly_spend_spike":
            {"minUsd": 2.5, "sigmas": 3}}}))
        .unwrap();
        let spike = s.rule(RuleKind::HourlySpendSpike);
        assert_eq!(spike.min_usd, Usd(2_500_000_000));
        assert_eq!(spike.sigmas, 3.0);
        // The stored form reads back the same.
        assert_eq!(AlertSettings::from_json(&s.to_json()).unwrap(), s);
        let e = AlertSettings::from_json(&json!({"rules": {"retry_storm":
            {"minUsd": -1, "sigmas": "many"}}}))
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["rules.retry_storm.minUsd", "rules.retry_storm.sigmas"]
        );
    }

    #[test]
    fn the_spend_spike_needs_a_dollar_of_change_by_default() {
        let d = RuleKind::HourlySpendSpike.defaults();
        assert_eq!((d.min_usd, d.sigmas), (Usd(1_000_000_000), 4.0));
    }
}
