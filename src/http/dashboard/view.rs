//! What a dashboard URL says: the time range (a preset or from/to), the global filters
//! (the same parameter names as the JSON API) and a page's own parameters. Links are
//! built from it so every click keeps the view, and a URL can be shared as it is.

use crate::query::Query;
use std::collections::{BTreeMap, HashMap};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The global filters, in the order the filter bar and URLs show them.
pub const FILTERS: &[&str] = &[
    "environment",
    "dataMode",
    "provider",
    "model",
    "endpointTag",
    "tenantId",
    "userId",
    "promptVersion",
    "status",
];

pub const PRESETS: &[(&str, i64)] = &[("24h", DAY_MS), ("7d", 7 * DAY_MS), ("30d", 30 * DAY_MS)];
pub const DEFAULT_RANGE: &str = "7d";

#[derive(Debug, Clone, Default)]
pub struct View {
    /// A preset name when the range is relative to now.
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// (name, value) of the global filters that are set, canonical order, tags last.
    pub filters: Vec<(String, String)>,
    /// The page's own parameters (chart dimension, cursor, search...).
    pub own: BTreeMap<String, String>,
    /// Parameters that were not understood.
    pub errors: Vec<String>,
}

fn is_filter(name: &str) -> bool {
    FILTERS.contains(&name) || name.starts_with("tag:")
}

/// RFC 3339, or `2026-11-23 14:00` / `2026-11-23T14:00` / a date, read as UTC.
/// The date picker's calendar presets at `now` (UTC): (label, from, to), each an
/// absolute window the typed fields then show. Weeks start on Monday; "today" and the
/// current week and month end now.
pub fn calendar_presets(now_ms: i64) -> Vec<(&'static str, i64, i64)> {
    let day = now_ms.div_euclid(DAY_MS) * DAY_MS;
    // 1970-01-01 was a Thursday: Monday is 0.
    let week = day - (day.div_euclid(DAY_MS) + 3).rem_euclid(7) * DAY_MS;
    let month_start = |ms: i64| -> i64 {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().first_of_month())
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map_or(ms, |z| z.timestamp().as_millisecond())
    };
    let month = month_start(now_ms);
    let last_month = month_start(month - 1);
    vec![
        ("Last hour", now_ms - 3_600_000, now_ms),
        ("Today", day, now_ms),
        ("Yesterday", day - DAY_MS, day),
        ("This week", week, now_ms),
        ("Last week", week - 7 * DAY_MS, week),
        ("This month", month, now_ms),
        ("Last month", last_month, month),
        ("Last 90 days", now_ms - 90 * DAY_MS, now_ms),
    ]
}

pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim().replacen(' ', "T", 1);
    let text = text.as_str();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    let civil = text.parse::<jiff::civil::DateTime>().ok().or_else(|| {
        text.parse::<jiff::civil::Date>()
            .ok()
            .map(|d| d.at(0, 0, 0, 0))
    })?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

impl View {
    /// Read the URL's parameters; `own` names the page's own ones. Empty values (an
    /// empty form field) mean "not set".
    pub fn parse(params: &HashMap<String, String>, own: &[&str]) -> View {
        let mut view = View::default();
        let get = |n: &str| {
            params
                .get(n)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        view.from = get("from");
        view.to = get("to");
        view.range = get("range");
        if view.from.is_some() || view.to.is_some() {
            view.range = None;
        }
        for name in FILTERS {
            if let Some(v) = get(name) {
                view.filters.push((name.to_string(), v));
            }
        }
        let mut tags: Vec<(String, String)> = params
            .iter()
            .filter(|(k, v)| k.starts_with("tag:") && !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect();
        tags.sort();
        view.filters.extend(tags);
        for (name, value) in params {
            if own.contains(&name.as_str()) {
                if !value.trim().is_empty() {
                    view.own.insert(name.clone(), value.trim().to_string());
                }
            } else if !is_filter(name) && !matches!(name.as_str(), "from" | "to" | "range") {
                view.errors
                    .push(format!("{name} is not a parameter of this page"));
            }
        }
        view.errors.sort();
        view
    }

    /// When from or to was typed in another accepted form (`2026-01-10 14:00`), the same
    /// view with RFC 3339 times, so that the URL reads like the JSON API's.
    pub fn canonical(&self) -> Option<View> {
        let mut fixed = self.clone();
        let mut changed = false;
        for t in [&mut fixed.from, &mut fixed.to].into_iter().flatten() {
            if t.parse::<jiff::Timestamp>().is_err() {
                if let Some(ms) = parse_time(t) {
                    *t = crate::report::rfc3339(ms);
                    changed = true;
                }
            }
        }
        changed.then_some(fixed)
    }

    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn own(&self, name: &str) -> Option<&str> {
        self.own.get(name).map(String::as_str)
    }

    /// The preset in force when neither from nor to is given.
    pub fn preset(&self) -> Option<&str> {
        if self.from.is_some() || self.to.is_some() {
            return None;
        }
        Some(self.range.as_deref().unwrap_or(DEFAULT_RANGE))
    }

    /// The window and filters as the query layer checks them (defaults: environment
    /// prod, dataMode real), or the message of the first bad parameter.
    pub fn query(&self, now_ms: i64) -> Result<Query, String> {
        if let Some(e) = self.errors.first() {
            return Err(e.clone());
        }
        let mut params: HashMap<String, String> = HashMap::new();
        match self.preset() {
            Some(name) => {
                let len = PRESETS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, len)| *len)
                    .ok_or_else(|| "range must be one of 24h, 7d, 30d".to_string())?;
                params.insert("from".into(), crate::report::rfc3339(now_ms - len));
                params.insert("to".into(), crate::report::rfc3339(now_ms));
            }
            None => {
                for (name, value) in [("from", &self.from), ("to", &self.to)] {
                    if let Some(v) = value {
                        let ms = parse_time(v).ok_or_else(|| {
                            format!("{name} must be a date-time, e.g. 2026-01-31T00:00:00Z")
                        })?;
                        params.insert(name.into(), crate::report::rfc3339(ms));
                    }
                }
            }
        }
        for (name, value) in &self.filters {
            params.insert(name.clone(), value.clone());
        }
        super::super::api::base_query(&params, now_ms, &[]).map_err(|e| e.message)
    }

    /// The view's parameters in URL order: time, filters, then own (if `with_own`).
    pub fn pairs(&self, with_own: bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match (&self.range, &self.from, &self.to) {
            (Some(r), None, None) => out.push(("range".into(), r.clone())),
            _ => {
                if let Some(f) = &self.from {
                    out.push(("from".into(), f.clone()));
                }
                if let Some(t) = &self.to {
                    out.push(("to".into(), t.clone()));
                }
            }
        }
        out.extend(self.filters.iter().cloned());
        if with_own {
            out.extend(
                self.own
                    .iter()
                    // A new filter starts the list again: no cursor, no page.
                    .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "page"))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        out
    }

    /// A link to `path` keeping the time range and filters (and this page's own
    /// parameters when `with_own`), with `set` applied: a value replaces, None removes.
    /// Setting from/to drops the preset and the other way round.
    pub fn link(&self, path: &str, with_own: bool, set: &[(&str, Option<&str>)]) -> String {
        let mut pairs = self.pairs(with_own);
        let sets_window = set.iter().any(|(n, _)| matches!(*n, "from" | "to"));
        let sets_range = set.iter().any(|(n, _)| *n == "range");
        if sets_window {
            pairs.retain(|(n, _)| n != "range");
        }
        if sets_range {
            pairs.retain(|(n, _)| n != "from" && n != "to");
        }
        for (name, value) in set {
            match pairs.iter_mut().find(|(n, _)| n == name) {
                Some(pair) => match value {
                    Some(v) => pair.1 = v.to_string(),
                    None => pair.1.clear(),
                },
                None => {
                    if let Some(v) = value {
                        let time = |n: &str| matches!(n, "range" | "from" | "to");
                        let at = if time(name) {
                            pairs.iter().take_while(|(n, _)| time(n)).count()
                        } else {
                            pairs.len()
                        };
                        pairs.insert(at, (name.to_string(), v.to_string()));
                    }
                }
            }
        }
        pairs.retain(|(_, v)| !v.is_empty());
        if pairs.is_empty() {
            return path.to_string();
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("{path}?{}", query.join("&"))
    }

    /// Hidden form fields that keep the page's own parameters when the filter bar is
    /// submitted (not the cursor: new filters start at the first page).
    pub fn hidden_own(&self) -> Vec<(String, String)> {
        self.own
            .iter()
            // A new filter starts the list again: no cursor, no page.
            .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "page"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Percent-encode a query component (unreserved characters, and `:` `,` `/` which are
/// legal in a query and keep times and lists readable).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b':'
            | b','
            | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_presets_are_whole_utc_days_weeks_and_months() {
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        // A Wednesday afternoon in March.
        let now = at("2026-03-04T15:30:00Z");
        let p: std::collections::HashMap<&str, (i64, i64)> = calendar_presets(now)
            .into_iter()
            .map(|(l, f, t)| (l, (f, t)))
            .collect();
        assert_eq!(p["Last hour"], (at("2026-03-04T14:30:00Z"), now));
        assert_eq!(p["Today"], (at("2026-03-04T00:00:00Z"), now));
        assert_eq!(
            p["Yesterday"],
            (at("2026-03-03T00:00:00Z"), at("2026-03-04T00:00:00Z"))
        );
        assert_eq!(
            p["This week"],
            (at("2026-03-02T00:00:00Z"), now),
            "from Monday"
        );
        assert_eq!(
            p["Last week"],
            (at("2026-02-23T00:00:00Z"), at("2026-03-02T00:00:00Z"))
        );
        assert_eq!(p["This month"], (at("2026-03-01T00:00:00Z"), now));
        assert_eq!(
            p["Last month"],
            (at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z"))
        );
        assert_eq!(p["Last 90 days"], (at("2025-12-04T15:30:00Z"), now));
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn links_keep_the_view() {
        let v = View::parse(
            &params(&[
                ("range", "24h"),
                ("dataMode", "demo"),
                ("endpointTag", "a b&c"),
                ("provider", ""),
                ("by", "model"),
                ("cursor", "1.2"),
            ]),
            &["by", "cursor"],
        );
        assert!(v.errors.is_empty());
        assert_eq!(
            v.link("/endpoints", false, &[]),
            "/endpoints?range=24h&dataMode=demo&endpointTag=a%20b%26c"
        );
        assert_eq!(
            v.link("/", true, &[("endpointTag", None)]),
            "/?range=24h&dataMode=demo&by=model"
        );
        assert_eq!(
            v.link("/x", false, &[("from", Some("2026-01-01T00:00:00Z"))]),
            "/x?from=2026-01-01T00:00:00Z&dataMode=demo&endpointTag=a%20b%26c"
        );
    }

    /// The dashboard's filter URLs are checked by the same query layer as the API.
    #[test]
    fn a_filter_list_over_the_cap_is_reported_naming_the_parameter() {
        let now = 1_764_000_000_000;
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let ok = View::parse(&params(&[("tenantId", &list(1_000))]), &[]);
        assert!(ok.query(now).is_ok());
        let over = View::parse(&params(&[("tenantId", &list(1_001))]), &[]);
        let e = over.query(now).unwrap_err();
        assert!(e.starts_with("tenantId has 1001 values"), "{e}");
    }

    #[test]
    fn windows_and_errors() {
        let now = 1_764_000_000_000;
        let q = View::parse(&params(&[]), &[]).query(now).unwrap();
        assert_eq!(q.to_ms - q.from_ms, 7 * DAY_MS);
        let q = View::parse(
            &params(&[("from", "2026-11-23T14:00"), ("to", "2026-11-23")]),
            &[],
        )
        .query(now);
        assert!(q.unwrap_err().starts_with("from must not be after to"));
        let v = View::parse(
            &params(&[("from", "2026-11-23 14:00"), ("endpointTag", "x")]),
            &[],
        );
        assert_eq!(
            v.canonical().unwrap().link("/", false, &[]),
            "/?from=2026-11-23T14:00:00Z&endpointTag=x"
        );
        assert!(v.canonical().unwrap().canonical().is_none());
        let v = View::parse(&params(&[("colour", "red")]), &[]);
        assert!(v.query(now).unwrap_err().contains("colour"));
        let q = View::parse(&params(&[("range", "1y")]), &[]).query(now);
        assert!(q.is_err());
        let q = View::parse(&params(&[("dataMode", "nope")]), &[]).query(now);
        assert!(q.unwrap_err().contains("dataMode"));
    }
}
