//! Rollups: per-hour and per-day sums of events by fixed dimension sets, written in the
//! same transaction as the events so they can never disagree with them. Each commit's
//! changes are folded in memory first and upserted once per key.

use rusqlite::{params_from_iter, Transaction};
use std::collections::HashMap;

/// Why a commit's writes failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    /// A stored total would leave i64. SQLite's `x + y` would silently turn it into a
    /// float, so it is refused instead; the measure is named.
    #[error("the {0} total of a rollup cell would overflow")]
    Overflow(&'static str),
}

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// A family of rollups: the dimension columns it keeps (names of `events` columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub dims: &'static [&'static str],
}

/// Model/endpoint/version questions, tenants (also by endpoint), and users. Users are
/// kept without the endpoint: a user touches most endpoints, so with it the family would
/// hold nearly a row per event; "which users are behind this endpoint" reads raw events.
pub const FAMILIES: [Family; 3] = [
    Family {
        name: "main",
        dims: &[
            "environment",
            "data_mode",
            "status",
            "provider",
            "model",
            "endpoint",
            "prompt_version",
        ],
    },
    Family {
        name: "tenant",
        dims: &["environment", "data_mode", "endpoint", "tenant"],
    },
    Family {
        name: "user",
        dims: &["environment", "data_mode", "user"],
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub fn millis(self) -> i64 {
        match self {
            Grain::Hour => HOUR_MS,
            Grain::Day => DAY_MS,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
        }
    }
}

pub const GRAINS: [Grain; 2] = [Grain::Hour, Grain::Day];

pub fn table(family: &Family, grain: Grain) -> String {
    format!("rollup_{}_{}", family.name, grain.suffix())
}

/// The measure columns of a rollup row, in order; each is a plain sum.
pub const MEASURES: [&str; N_MEASURES] = [
    "requests",
    "attempts",
    "cost_nanos",
    "priced",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "latency_sum",
    "latency_count",
    "errors",
    "usage_missing",
    "idless",
];

pub const N_MEASURES: usize = 14;

/// The same measures computed from raw `events` rows, in the same order.
pub const RAW_MEASURES: [&str; N_MEASURES] = [
    "COUNT(*)",
    "SUM(attempts)",
    "COALESCE(SUM(cost_nanos), 0)",
    "COUNT(cost_nanos)",
    "SUM(input_tokens)",
    "SUM(cached_tokens)",
    "SUM(cache_write_tokens)",
    "SUM(output_tokens)",
    "SUM(reasoning_tokens)",
    "COALESCE(SUM(latency_ms), 0)",
    "COUNT(latency_ms)",
    "SUM(status != 0)",
    "SUM(usage_missing)",
    "SUM(idless)",
];

pub fn ddl() -> String {
    let mut sql = String::new();
    for family in &FAMILIES {
        for grain in GRAINS {
            let dims: Vec<String> = family
                .dims
                .iter()
                .map(|d| format!("{d} INTEGER NOT NULL"))
                .collect();
            let measures: Vec<String> = MEASURES
                .iter()
                .map(|m| format!("{m} INTEGER NOT NULL"))
                .collect();
            sql.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (workspace_id INTEGER NOT NULL, bucket INTEGER NOT NULL, {dims}, {measures},
                 PRIMARY KEY (workspace_id, bucket, {keys})) WITHOUT ROWID;\n",
                t = table(family, grain),
                dims = dims.join(", "),
                measures = measures.join(", "),
                keys = family.dims.join(", "),
            ));
        }
    }
    sql.push_str(
        "CREATE TABLE IF NOT EXISTS versions_seen (workspace_id INTEGER NOT NULL, endpoint INTEGER NOT NULL,
            prompt_version INTEGER NOT NULL, environment INTEGER NOT NULL, data_mode INTEGER NOT NULL,
            first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, endpoint, prompt_version, environment, data_mode)) WITHOUT ROWID;\n",
    );
    sql
}

/// Recompute every rollup from the events (after a schema change, or to verify).
pub fn rebuild(tx: &Transaction) -> rusqlite::Result<()> {
    for family in &FAMILIES {
        for grain in GRAINS {
            let t = table(family, grain);
            let dims: Vec<String> = family
                .dims
                .iter()
                .map(|d| format!("COALESCE({d}, 0)"))
                .collect();
            let groups: Vec<String> = (1..=family.dims.len() + 2).map(|i| i.to_string()).collect();
            tx.execute_batch(&format!(
                "DELETE FROM {t};
                 INSERT INTO {t} (workspace_id, bucket, {dim_names}, {measures})
                 SELECT workspace_id, (ts / {ms}) * {ms}, {dims}, {raw} FROM events GROUP BY {groups};",
                dim_names = family.dims.join(", "),
                measures = MEASURES.join(", "),
                ms = grain.millis(),
                dims = dims.join(", "),
                raw = RAW_MEASURES.join(", "),
                groups = groups.join(", "),
            ))?;
        }
    }
    tx.execute_batch(
        "DELETE FROM versions_seen;
         INSERT INTO versions_seen SELECT workspace_id, endpoint, COALESCE(prompt_version, 0), environment,
             data_mode, MIN(ts), MAX(ts) FROM events GROUP BY 1, 2, 3, 4, 5;",
    )
}

/// What one logical call contributes to the rollups: its dimension ids (0 = missing)
/// and its measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contribution {
    pub workspace: i64,
    pub ts: i64,
    pub environment: i64,
    pub data_mode: i64,
    pub status: i64,
    pub provider: i64,
    pub model: i64,
    pub endpoint: i64,
    pub prompt_version: i64,
    pub tenant: i64,
    pub user: i64,
    pub attempts: i64,
    pub cost_nanos: Option<i64>,
    pub input: i64,
    pub cached: i64,
    pub cache_write: i64,
    pub output: i64,
    pub reasoning: i64,
    pub latency_ms: Option<i64>,
    pub usage_missing: bool,
    pub idless: bool,
}

impl Contribution {
    fn dim(&self, column: &str) -> i64 {
        match column {
            "environment" => self.environment,
            "data_mode" => self.data_mode,
            "status" => self.status,
            "provider" => self.provider,
            "model" => self.model,
            "endpoint" => self.endpoint,
            "prompt_version" => self.prompt_version,
            "tenant" => self.tenant,
            "user" => self.user,
            _ => 0,
        }
    }

    fn measures(&self) -> [i64; N_MEASURES] {
        [
            1,
            self.attempts,
            self.cost_nanos.unwrap_or(0),
            self.cost_nanos.is_some() as i64,
            self.input,
            self.cached,
            self.cache_write,
            self.output,
            self.reasoning,
            self.latency_ms.unwrap_or(0),
            self.latency_ms.is_some() as i64,
            (self.status != 0) as i64,
            self.usage_missing as i64,
            self.idless as i64,
        ]
    }
}

/// (family index, grain, workspace, bucket start, dimension ids in family order).
type Key = (usize, Grain, i64, i64, [i64; 7]);

/// (workspace, endpoint, prompt version, environment, data mode) of `versions_seen`.
type VersionKey = (i64, i64, i64, i64, i64);

/// The rollup changes of one commit.
#[derive(Default)]
pub struct Pending {
    sums: HashMap<Key, [i64; N_MEASURES], foldhash::fast::RandomState>,
    seen: HashMap<VersionKey, (i64, i64), foldhash::fast::RandomState>,
}

impl Pending {
    /// Add (`sign` = 1) or take back (`sign` = -1) one call's contribution; checked, so
    /// a sum that would wrap fails the commit instead.
    pub fn apply(&mut self, c: &Contribution, sign: i64) -> Result<(), WriteError> {
        for (i, family) in FAMILIES.iter().enumerate() {
            let mut dims = [0i64; 7];
            for (slot, column) in dims.iter_mut().zip(family.dims) {
                *slot = c.dim(column);
            }
            for grain in GRAINS {
                let bucket = c.ts.div_euclid(grain.millis()) * grain.millis();
                let entry = self
                    .sums
                    .entry((i, grain, c.workspace, bucket, dims))
                    .or_insert([0; N_MEASURES]);
                for ((total, m), name) in entry.iter_mut().zip(c.measures()).zip(MEASURES) {
                    *total = m
                        .checked_mul(sign)
                        .and_then(|d| total.checked_add(d))
                        .ok_or(WriteError::Overflow(name))?;
                }
            }
        }
        if sign > 0 {
            let key = (
                c.workspace,
                c.endpoint,
                c.prompt_version,
                c.environment,
                c.data_mode,
            );
            let span = self.seen.entry(key).or_insert((c.ts, c.ts));
            *span = (span.0.min(c.ts), span.1.max(c.ts));
        }
        Ok(())
    }

    /// Upsert everything pending into the rollup tables of `tx`: one statement per key
    /// the commit touched, however many events it held.
    pub fn flush(&self, tx: &Transaction) -> Result<(), WriteError> {
        // Each table's statement text once per commit, not once per key.
        let sql: Vec<[String; 2]> = FAMILIES
            .iter()
            .map(|f| GRAINS.map(|g| upsert_sql(f, g)))
            .collect();
        for ((family_index, grain, workspace, bucket, dims), measures) in &self.sums {
            if measures.iter().all(|m| *m == 0) {
                continue;
            }
            let family = &FAMILIES[*family_index];
            let values = [*workspace, *bucket]
                .into_iter()
                .chain(dims.iter().copied().take(family.dims.len()))
                .chain(measures.iter().copied());
            // The upsert returns the index of the first measure that is no longer an
            // integer (SQLite turns an overflowing `x + y` into a float), or 0.
            let bad: i64 = tx
                .prepare_cached(&sql[*family_index][*grain as usize])? // GRAINS order
                .query_row(params_from_iter(values), |r| r.get(0))?;
            if bad > 0 {
                return Err(WriteError::Overflow(MEASURES[bad as usize - 1]));
            }
        }
        let mut seen = tx.prepare_cached(
            "INSERT INTO versions_seen VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT DO UPDATE SET first_ts = MIN(first_ts, excluded.first_ts), last_ts = MAX(last_ts, excluded.last_ts)",
        )?;
        for ((ws, endpoint, version, env, mode), (first, last)) in &self.seen {
            seen.execute([*ws, *endpoint, *version, *env, *mode, *first, *last])?;
        }
        Ok(())
    }
}

fn upsert_sql(family: &Family, grain: Grain) -> String {
    let columns: Vec<&str> = ["workspace_id", "bucket"]
        .into_iter()
        .chain(family.dims.iter().copied())
        .chain(MEASURES)
        .collect();
    let updates: Vec<String> = MEASURES
        .iter()
        .map(|m| format!("{m} = {m} + excluded.{m}"))
        .collect();
    let checks: Vec<String> = MEASURES
        .iter()
        .enumerate()
        .map(|(i, m)| format!("WHEN typeof({m}) != 'integer' THEN {}", i + 1))
        .collect();
    format!(
        "INSERT INTO {t} ({cols}) VALUES ({placeholders}) ON CONFLICT DO UPDATE SET {updates}
         RETURNING CASE {checks} ELSE 0 END",
        updates = updates.join(", "),
        checks = checks.join(" "),
        t = table(family, grain),
        cols = columns.join(", "),
        placeholders = vec!["?"; columns.len()].join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_whose_sum_would_wrap_fails_naming_the_measure() {
        let mut pending = Pending::default();
        let big = Contribution {
            cost_nanos: Some(i64::MAX - 1),
            ..Default::default()
        };
        pending.apply(&big, 1).unwrap();
        let err = pending.apply(&big, 1).unwrap_err();
        assert!(matches!(err, WriteError::Overflow("cost_nanos")), "{err}");
    }

    #[test]
    fn an_upsert_that_would_leave_i64_is_refused_not_stored_as_a_float() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&ddl()).unwrap();
        let tx = conn.transaction().unwrap();
        let near = Contribution {
            cost_nanos: Some(i64::MAX - 1),
            ..Default::default()
        };
        let mut first = Pending::default();
        first.apply(&near, 1).unwrap();
        first.flush(&tx).unwrap();
        let mut second = Pending::default();
        second
            .apply(
                &Contribution {
                    cost_nanos: Some(5),
                    ..Default::default()
                },
                1,
            )
            .unwrap();
        let err = second.flush(&tx).unwrap_err();
        assert!(matches!(err, WriteError::Overflow("cost_nanos")), "{err}");
    }
}
