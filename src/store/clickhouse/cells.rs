//! Sealed hourly cells: per workspace, hour and family (`main`, `tenant`, `user`) the
//! 14 sums of `query::Sums` of the calls whose time is in that hour, so a read of many
//! days takes whole hours from pre-summed cells and resolves raw attempts only for the
//! window's edges and the hours that are not sealed or not clean (docs/scale-out.md,
//! "Sealed hourly cells").
//!
//! Exactness:
//! - A seal has a generation `gen` (its start time in ms, shifted left 20 bits, plus
//!   20 random bits: two sealers never share one). It inserts its cells, tagged with
//!   `gen`, and only then one `sealed` row (workspace, hour, gen) per hour. A read uses
//!   the cells of the newest generation of a `sealed` row only: a seal that failed half
//!   way is never read, and a reseal replaces the old cells without subtracting them.
//! - Every write that can change an hour's calls (ingest, re-pricing, erasure) marks the
//!   hour dirty *after* its rows are stored: (workspace, hour, time of the mark). A
//!   sealed hour is trusted only when no mark is newer than its seal's start minus
//!   `SKEW_MS`: a write the sealer did not see finished after the seal started, so its
//!   mark is newer (see `ingest::ingest_parts` for the calls' other hours).
//! - Untrusted, unsealed and partial hours of a window are read raw (`read::calls_in`
//!   over those time ranges), as are queries the families cannot answer (tags, or
//!   dimensions of two families).

use super::http::quote;
use super::{num, schema, ClickhouseStore};
use crate::query::{Dimension, Query};
use crate::store::{Result, WorkspaceId};
use std::collections::{BTreeMap, BTreeSet};

pub const HOUR_MS: i64 = 3_600_000;
/// Hours whose end is at least this far in the past are sealed; the newer ones are read
/// raw. Late attempts (the realistic profile sends some up to 48 h late) mark their
/// hours dirty, which are read raw until resealed. Exactness never depends on it (a
/// write the sealer did not see marks its hour after the seal started, so the seal is
/// not trusted); it only sets how much of a window's newest part every read resolves
/// raw: the hour in progress and at most these minutes of the one before (it was 3 h:
/// every read resolved about 3 h of calls). The 5 minutes let the writes of an hour
/// that just ended land before its first seal, so that seal is usually the last.
pub const HORIZON_MS: i64 = 5 * 60_000;
/// How much older than a seal's start every dirty mark of its hour must be for the seal
/// to be trusted: covers the clocks of two nodes disagreeing (assumed within 1.5 s, as
/// NTP keeps them within milliseconds) and a commit that took up to `SLOW_COMMIT` between
/// its read of the stored attempts and its insert (`ingest::ingest_parts`).
pub const SKEW_MS: i64 = 5_000;
/// A commit that took longer than this from its read to its insert reads its calls'
/// stored attempts again after the insert and marks their hours too: an attempt stored
/// by another node meanwhile may have been the winner a seal counted.
pub const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_secs(2);
/// At most this many hours are sealed by one statement (bounds its time: one resolve of
/// the hours' calls).
const BATCH_HOURS: usize = 12;
/// A generation's low bits: random, so two sealers starting in one millisecond differ.
const GEN_BITS: u32 = 20;

/// The columns of a cell, in `schema::CELLS` order; the dimension columns carry the
/// names `read::label` and the filters use on resolved calls.
const CELL_COLUMNS: &str = "ws, family, hour, gen, c_environment, c_data_mode, c_status,
    c_provider, c_model, c_endpoint, c_prompt_version, c_tenant, c_user,
    requests, attempts, cost_hi, cost_lo, priced, input_hi, input_lo, cached_hi, cached_lo,
    cache_write_hi, cache_write_lo, output_hi, output_lo, reasoning_hi, reasoning_lo,
    latency_hi, latency_lo, latency_count, errors, usage_missing, idless";

/// The sums a read takes from cells, in `read::sum_columns` order.
pub const CELL_SUMS: &str = "sum(requests), sum(attempts), sum(cost_hi), sum(cost_lo),
    sum(priced), sum(input_hi), sum(input_lo), sum(cached_hi), sum(cached_lo),
    sum(cache_write_hi), sum(cache_write_lo), sum(output_hi), sum(output_lo),
    sum(reasoning_hi), sum(reasoning_lo), sum(latency_hi), sum(latency_lo),
    sum(latency_count), sum(errors), sum(usage_missing), sum(idless)";

/// The families and the dimensions each keeps (environment and data mode in all).
const FAMILIES: [(&str, &[Dimension]); 3] = [
    (
        "main",
        &[
            Dimension::Environment,
            Dimension::DataMode,
            Dimension::Status,
            Dimension::Provider,
            Dimension::Model,
            Dimension::EndpointTag,
            Dimension::PromptVersion,
        ],
    ),
    (
        "tenant",
        &[
            Dimension::Environment,
            Dimension::DataMode,
            Dimension::TenantId,
        ],
    ),
    (
        "user",
        &[
            Dimension::Environment,
            Dimension::DataMode,
            Dimension::UserId,
        ],
    ),
];

/// The family whose cells answer `q` (every dimension it groups or filters by kept),
/// or None (tags, or dimensions of two families): then the whole window is read raw.
pub fn family(q: &Query) -> Option<&'static str> {
    if !q.filters.tags.is_empty() {
        return None;
    }
    let mut needed: Vec<&Dimension> = q.group_by.iter().chain(q.filters.text.keys()).collect();
    if !q.filters.status.is_empty() {
        needed.push(&Dimension::Status);
    }
    FAMILIES
        .iter()
        .find(|(_, dims)| needed.iter().all(|d| dims.contains(d)))
        .map(|(name, _)| *name)
}

/// A seal generation's start time (ms).
fn start_ms(gen: u64) -> i64 {
    (gen >> GEN_BITS) as i64
}

fn new_gen() -> u64 {
    let ms = super::now_ms().max(0) as u64;
    (ms << GEN_BITS) | rand::random_range(0..1u64 << GEN_BITS)
}

/// Mark the hours dirty (now, after the caller's rows are stored).
pub async fn mark(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    hours: impl IntoIterator<Item = i64>,
) -> Result<()> {
    let hours: BTreeSet<i64> = hours.into_iter().collect();
    let at = super::now_ms();
    let rows: Vec<String> = hours.iter().map(|h| format!("{ws}\t{h}\t{at}")).collect();
    store
        .client
        .insert(&store.table(schema::DIRTY.name), &rows)
        .await
}

/// The hours of `[first, end)` (hour numbers) whose newest seal is trusted, with that
/// seal's generation, in hour order.
pub async fn trusted(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    first: i64,
    end: i64,
) -> Result<Vec<(i64, u64)>> {
    if first >= end {
        return Ok(Vec::new());
    }
    let newest = |table: &str, column: &str| {
        format!(
            "SELECT hour, max({column}) FROM {} WHERE ws = {ws} AND hour >= {first} AND hour < {end} GROUP BY hour",
            store.table(table)
        )
    };
    let (sealed_sql, dirty_sql) = (
        newest(schema::SEALED.name, "gen"),
        newest(schema::DIRTY.name, "at"),
    );
    let (sealed, dirty) = tokio::try_join!(
        store.client.select(&sealed_sql),
        store.client.select(&dirty_sql),
    )?;
    let dirty = by_hour::<i64>(&dirty)?;
    let mut out = Vec::new();
    for (hour, gen) in by_hour::<u64>(&sealed)? {
        if clean(dirty.get(&hour).copied(), gen) {
            out.push((hour, gen));
        }
    }
    Ok(capped(out))
}

/// At most this many runs of hours (consecutive, one generation) are read from cells:
/// their condition and the raw ranges between them stay far below ClickHouse's 256 KiB
/// statement limit (about 50 bytes a run, twice 45 a range).
const MAX_RUNS: usize = 1_000;

/// `trusted` (in hour order) cut after its first `MAX_RUNS` runs; the hours after the
/// cut read raw (one range), which is exact, only slower.
fn capped(trusted: Vec<(i64, u64)>) -> Vec<(i64, u64)> {
    let mut runs = 0;
    let mut previous: Option<(i64, u64)> = None;
    let mut keep = trusted.len();
    for (i, &(hour, gen)) in trusted.iter().enumerate() {
        if previous != Some((hour - 1, gen)) {
            runs += 1;
            if runs > MAX_RUNS {
                keep = i;
                break;
            }
        }
        previous = Some((hour, gen));
    }
    let mut trusted = trusted;
    trusted.truncate(keep);
    trusted
}

/// Whether a seal of generation `gen` is trusted given its hour's newest dirty mark.
fn clean(dirty_at: Option<i64>, gen: u64) -> bool {
    dirty_at.is_none_or(|at| at <= start_ms(gen) - SKEW_MS)
}

fn by_hour<T: std::str::FromStr>(rows: &[Vec<String>]) -> Result<BTreeMap<i64, T>> {
    rows.iter()
        .map(|r| Ok((num::<i64>(r, 0)?, num::<T>(r, 1)?)))
        .collect()
}

/// `[from, to)` minus the trusted hours: the time ranges read raw, in order, adjacent
/// ones merged.
pub fn raw_ranges(from: i64, to: i64, trusted: &[(i64, u64)]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut at = from;
    for &(hour, _) in trusted {
        let (start, end) = (hour * HOUR_MS, (hour + 1) * HOUR_MS);
        if start > at {
            out.push((at, start.min(to)));
        }
        at = at.max(end);
    }
    if at < to {
        out.push((at, to));
    }
    out.retain(|(a, b)| a < b);
    out
}

/// `column` in any of the ranges (`[a, b)` each); no range matches nothing.
pub fn in_ranges(column: &str, ranges: &[(i64, i64)]) -> String {
    if ranges.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|(a, b)| format!("({column} >= {a} AND {column} < {b})"))
        .collect();
    format!("({})", parts.join(" OR "))
}

/// The condition on cells: each trusted hour with its generation, consecutive hours of
/// one generation as one range (a batch of a seal shares one).
pub fn trusted_condition(trusted: &[(i64, u64)]) -> String {
    let mut runs: Vec<(i64, i64, u64)> = Vec::new();
    for &(hour, gen) in trusted {
        match runs.last_mut() {
            Some((_, end, g)) if *end == hour && *g == gen => *end += 1,
            _ => runs.push((hour, hour + 1, gen)),
        }
    }
    let parts: Vec<String> = runs
        .iter()
        .map(|(a, b, g)| format!("(gen = {g} AND hour >= {a} AND hour < {b})"))
        .collect();
    format!("({})", parts.join(" OR "))
}

/// The cells table's rows of `family` in workspace `ws`, as a condition.
pub fn scope(ws: WorkspaceId, family: &str) -> String {
    format!("ws = {ws} AND family = {}", quote(family))
}

/// Seal every hour before the horizon (`now_ms` minus `HORIZON_MS`) that has stored
/// attempts or a dirty mark and no trusted seal: resolve its calls and store their
/// cells, then its `sealed` row. Returns how many hours were sealed.
pub async fn seal(store: &ClickhouseStore, now_ms: i64) -> Result<u64> {
    let horizon = (now_ms - HORIZON_MS).div_euclid(HOUR_MS);
    let before = |table: &str, column: &str| {
        format!(
            "SELECT ws, hour, max({column}) FROM {} WHERE hour >= 0 AND hour < {horizon} GROUP BY ws, hour",
            store.table(table)
        )
    };
    // The newest generation whose versions were sealed, per hour (the marker rows).
    let versions = format!(
        "SELECT ws, hour, max(gen) FROM {} WHERE c_environment = '' AND hour >= 0
         AND hour < {horizon} GROUP BY ws, hour",
        store.table(schema::CELL_VERSIONS.name)
    );
    let sql = [
        before(schema::HOUR_TOTALS.name, "1"),
        before(schema::SEALED.name, "gen"),
        before(schema::DIRTY.name, "at"),
    ];
    let (stored, sealed, dirty, versions) = tokio::try_join!(
        store.client.select(&sql[0]),
        store.client.select(&sql[1]),
        store.client.select(&sql[2]),
        store.client.select(&versions),
    )?;
    let key = |r: &Vec<String>| -> Result<(WorkspaceId, i64)> { Ok((num(r, 0)?, num(r, 1)?)) };
    let mut newest_seal = BTreeMap::new();
    for r in &sealed {
        newest_seal.insert(key(r)?, num::<u64>(r, 2)?);
    }
    let mut newest_mark = BTreeMap::new();
    for r in &dirty {
        newest_mark.insert(key(r)?, num::<i64>(r, 2)?);
    }
    let mut versions_gen = BTreeMap::new();
    for r in &versions {
        versions_gen.insert(key(r)?, num::<u64>(r, 2)?);
    }
    let mut wanted: BTreeMap<WorkspaceId, Vec<i64>> = BTreeMap::new();
    let candidates: BTreeSet<(WorkspaceId, i64)> = stored
        .iter()
        .chain(&dirty)
        .map(key)
        .collect::<Result<_>>()?;
    for (ws, hour) in candidates {
        // An hour sealed without its versions (by a node older than `cell_versions`) is
        // sealed again, once, so `versions_seen` stops reading it raw.
        let trusted = newest_seal.get(&(ws, hour)).is_some_and(|gen| {
            clean(newest_mark.get(&(ws, hour)).copied(), *gen)
                && versions_gen.get(&(ws, hour)) == Some(gen)
        });
        if !trusted {
            wanted.entry(ws).or_default().push(hour);
        }
    }
    let mut sealed = 0;
    for (ws, hours) in wanted {
        for batch in hours.chunks(BATCH_HOURS) {
            seal_hours(store, ws, batch).await?;
            sealed += batch.len() as u64;
        }
    }
    Ok(sealed)
}

/// Seal `hours` of `ws` under one new generation.
async fn seal_hours(store: &ClickhouseStore, ws: WorkspaceId, hours: &[i64]) -> Result<()> {
    // The generation (its start) is taken before anything is read.
    let gen = new_gen();
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for &h in hours {
        match ranges.last_mut() {
            Some((_, end)) if *end == h * HOUR_MS => *end += HOUR_MS,
            _ => ranges.push((h * HOUR_MS, (h + 1) * HOUR_MS)),
        }
    }
    let mut columns = super::read::SUM_INPUTS.to_vec();
    columns.extend([
        "environment",
        "data_mode",
        "provider",
        "model",
        "endpoint",
        "prompt_version",
        "tenant",
        "user",
    ]);
    let calls = super::read::calls_having_with(
        store,
        &format!("ws = {ws}"),
        &in_ranges("ts", &ranges),
        &columns,
    );
    let only = |family: &str, column: &str| format!("if(f = {}, {column}, '')", quote(family));
    let sql = format!(
        "INSERT INTO {} ({CELL_COLUMNS})
         SELECT {ws}, f, intDiv(c_ts, {HOUR_MS}) AS h, {gen}, c_environment, c_data_mode,
                {} AS d_status, {} AS d_provider, {} AS d_model, {} AS d_endpoint,
                {} AS d_version, {} AS d_tenant, {} AS d_user, {}
         FROM (SELECT *, arrayJoin(['main', 'tenant', 'user']) AS f FROM {calls} WHERE {})
         GROUP BY f, h, c_environment, c_data_mode, d_status, d_provider, d_model,
                  d_endpoint, d_version, d_tenant, d_user",
        store.table(schema::CELLS.name),
        only("main", "c_status"),
        only("main", "c_provider"),
        only("main", "c_model"),
        only("main", "c_endpoint"),
        only("main", "c_prompt_version"),
        only("tenant", "c_tenant"),
        only("user", "c_user"),
        super::read::sum_columns(),
        in_ranges("c_ts", &ranges),
    );
    store.client.insert_select(&sql).await?;
    seal_versions(store, ws, gen, hours, &ranges).await?;
    name_spanning(store, ws, &ranges).await?;
    let rows: Vec<String> = hours.iter().map(|h| format!("{ws}\t{h}\t{gen}")).collect();
    store
        .client
        .insert(&store.table(schema::SEALED.name), &rows)
        .await
}

/// Name in `SPANNING` every call with an attempt in `ranges` whose attempts lie in more
/// than one hour. Ingest names those it sees; this finds the ones it cannot: two
/// attempts of a call stored by two nodes at the same moment in different hours, each
/// unseen by the other's read. Until then a raw read of one of those hours may count
/// such a call in each (`read::calls_in_hours` reads the hours next to its own, so
/// only attempts two or more hours apart, stored at the same moment, wait for this).
async fn name_spanning(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    ranges: &[(i64, i64)],
) -> Result<()> {
    let local = super::read::local_table(store, schema::EVENTS.name);
    let sql = format!(
        "INSERT INTO {} SELECT ws, idless, id, arrayJoin(hours) FROM
           (SELECT ws, idless, id, groupUniqArray(intDiv(ts, {HOUR_MS})) AS hours FROM {}
            WHERE ws = {ws} AND (idless, id) IN
              (SELECT idless, id FROM {local} WHERE ws = {ws} AND {})
            GROUP BY ws, idless, id HAVING length(hours) > 1)",
        store.table(schema::SPANNING.name),
        store.table(schema::EVENTS.name),
        in_ranges("ts", ranges)
    );
    store.client.insert_select(&sql).await
}

/// The first and last times per (endpoint, prompt version, environment, data mode) of
/// the calls in `ranges` (the whole `hours`), per hour, under generation `gen`: what
/// `read::versions_seen` takes for a trusted hour instead of resolving its calls. Then
/// one row per hour with an empty environment (no call has one), which says the hour's
/// versions were sealed: an hour sealed without it (by a node older than this table, or
/// a seal that failed between the two inserts) is read raw (`versions_sealed`).
async fn seal_versions(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    gen: u64,
    hours: &[i64],
    ranges: &[(i64, i64)],
) -> Result<()> {
    let calls = super::read::calls_having_with(
        store,
        &format!("ws = {ws}"),
        &in_ranges("ts", ranges),
        &[
            "ts",
            "endpoint",
            "prompt_version",
            "environment",
            "data_mode",
        ],
    );
    let sql = format!(
        "INSERT INTO {} (ws, hour, gen, c_endpoint, c_prompt_version, c_environment,
                         c_data_mode, first_ms, last_ms)
         SELECT {ws}, intDiv(c_ts, {HOUR_MS}) AS h, {gen}, c_endpoint, c_prompt_version,
                c_environment, c_data_mode, min(c_ts), max(c_ts)
         FROM {calls} WHERE {}
         GROUP BY h, c_endpoint, c_prompt_version, c_environment, c_data_mode",
        store.table(schema::CELL_VERSIONS.name),
        in_ranges("c_ts", ranges),
    );
    store.client.insert_select(&sql).await?;
    let sentinels: Vec<String> = hours
        .iter()
        .map(|h| format!("{ws}\t{h}\t{gen}\t\t\t\t\t0\t0"))
        .collect();
    store
        .client
        .insert(&store.table(schema::CELL_VERSIONS.name), &sentinels)
        .await
}

/// `trusted` (hour, generation) pairs narrowed to those whose seal stored the hour's
/// versions (its empty-environment row in `cell_versions`, see `seal_versions`).
pub async fn versions_sealed(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    trusted: Vec<(i64, u64)>,
) -> Result<Vec<(i64, u64)>> {
    if trusted.is_empty() {
        return Ok(trusted);
    }
    let sql = format!(
        "SELECT DISTINCT hour, gen FROM {} WHERE ws = {ws} AND c_environment = '' AND {}",
        store.table(schema::CELL_VERSIONS.name),
        trusted_condition(&trusted)
    );
    let sealed: BTreeSet<(i64, u64)> = store
        .client
        .select(&sql)
        .await?
        .iter()
        .map(|r| Ok((num(r, 0)?, num(r, 1)?)))
        .collect::<Result<_>>()?;
    Ok(trusted
        .into_iter()
        .filter(|pair| sealed.contains(pair))
        .collect())
}

/// How long after a generation N started the generations of its hour below N may be
/// dropped. A read picks an hour's newest sealed generation (`trusted`) and then sums
/// its cells in its next statement; a read that picked G just before N's `sealed` row
/// landed may still sum G's cells. N's row lands within two statements of N's start
/// (each at most the client's 30 s timeout), the read's cells statement starts within
/// one more, and a running SELECT keeps the parts it reads even when a delete rewrites
/// them; 10 minutes covers that many times over, plus clocks of two nodes disagreeing.
pub const SUPERSEDED_GRACE_MS: i64 = 10 * 60_000;
/// At most this many hours per delete statement (about 60 bytes each: far below the
/// 256 KiB statement limit).
const DROP_BATCH: usize = 1_000;

/// The hours with generations to drop: (workspace, hour, newest sealed generation N) for
/// every hour whose N started at least `SUPERSEDED_GRACE_MS` before `now_ms` and that
/// still holds cells or `sealed` rows of a generation below N. Cells of a generation
/// that never got its `sealed` row (a seal that failed half way) go too once a newer
/// generation is sealed; with no newer seal they stay (never read, and a late `sealed`
/// row of theirs would then be the newest one).
fn superseded(
    sealed: &[Vec<String>],
    cells_oldest: &[Vec<String>],
    now_ms: i64,
) -> Result<Vec<(WorkspaceId, i64, u64)>> {
    let mut oldest: BTreeMap<(WorkspaceId, i64), u64> = BTreeMap::new();
    for r in cells_oldest {
        oldest.insert((num(r, 0)?, num(r, 1)?), num(r, 2)?);
    }
    let mut out = Vec::new();
    for r in sealed {
        let (ws, hour, newest, oldest_sealed): (WorkspaceId, i64, u64, u64) =
            (num(r, 0)?, num(r, 1)?, num(r, 2)?, num(r, 3)?);
        let oldest_cell = oldest.get(&(ws, hour)).copied().unwrap_or(newest);
        let stale = oldest_sealed.min(oldest_cell) < newest;
        if stale && start_ms(newest) <= now_ms - SUPERSEDED_GRACE_MS {
            out.push((ws, hour, newest));
        }
    }
    Ok(out)
}

/// Drop superseded generations (run by the sealing node after each seal): delete the
/// cells and `sealed` rows of every generation below an hour's newest sealed one, once
/// that one started `SUPERSEDED_GRACE_MS` ago, in batches of `DROP_BATCH` hours, each a
/// mutation on every shard listed in the URL, waited for. Only generations strictly
/// below the newest sealed one go, so what a read picks now is never touched. Returns
/// how many hours were cleaned.
pub async fn drop_superseded(store: &ClickhouseStore, now_ms: i64) -> Result<u64> {
    let sealed_sql = format!(
        "SELECT ws, hour, max(gen), min(gen) FROM {} GROUP BY ws, hour",
        store.table(schema::SEALED.name)
    );
    let cells_sql = format!(
        "SELECT ws, hour, min(gen) FROM {} GROUP BY ws, hour",
        store.table(schema::CELLS.name)
    );
    let (sealed, cells_oldest) = tokio::try_join!(
        store.client.select(&sealed_sql),
        store.client.select(&cells_sql),
    )?;
    let hours = superseded(&sealed, &cells_oldest, now_ms)?;
    for batch in hours.chunks(DROP_BATCH) {
        let condition = below_newest(batch);
        for table in [
            schema::CELLS.name,
            schema::CELL_VERSIONS.name,
            schema::SEALED.name,
        ] {
            super::lifecycle::delete_everywhere(store, table, &condition).await?;
        }
    }
    Ok(hours.len() as u64)
}

/// The rows of generations below each hour's newest: `(ws, hour, newest)` each.
fn below_newest(hours: &[(WorkspaceId, i64, u64)]) -> String {
    let parts: Vec<String> = hours
        .iter()
        .map(|(ws, hour, newest)| format!("(ws = {ws} AND hour = {hour} AND gen < {newest})"))
        .collect();
    format!("({})", parts.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Bucket, Filters, Measure};

    fn query(group_by: Vec<Dimension>, filters: Filters) -> Query {
        Query {
            from_ms: 0,
            to_ms: 1,
            filters,
            group_by,
            bucket: Some(Bucket::Day),
            measures: Measure::ALL.to_vec(),
            order_by: None,
            ascending: false,
            limit: 10,
            count_by_first: false,
        }
    }

    #[test]
    fn a_family_answers_only_queries_on_its_own_dimensions() {
        let none = Filters::default();
        assert_eq!(family(&query(vec![], none.clone())), Some("main"));
        let by = |d: Vec<Dimension>| family(&query(d, Filters::default()));
        assert_eq!(
            by(vec![Dimension::Model, Dimension::PromptVersion]),
            Some("main")
        );
        assert_eq!(by(vec![Dimension::TenantId]), Some("tenant"));
        assert_eq!(
            by(vec![Dimension::UserId, Dimension::Environment]),
            Some("user")
        );
        assert_eq!(by(vec![Dimension::TenantId, Dimension::UserId]), None);
        assert_eq!(by(vec![Dimension::Tag("team".into())]), None);
        // A status filter is kept by `main` only; a tag filter by none.
        let status = Filters {
            status: vec![crate::event::Status::Success],
            ..Filters::default()
        };
        assert_eq!(family(&query(vec![Dimension::TenantId], status)), None);
        let mut tags = Filters::default();
        tags.tags.insert("team".into(), vec!["a".into()]);
        assert_eq!(family(&query(vec![], tags)), None);
    }

    #[test]
    fn raw_ranges_are_the_window_minus_trusted_hours() {
        const H: i64 = HOUR_MS;
        // Window 00:30 .. 05:15; hours 1, 2 and 4 trusted.
        let trusted = [(1, 7), (2, 7), (4, 9)];
        assert_eq!(
            raw_ranges(H / 2, 5 * H + H / 4, &trusted),
            vec![(H / 2, H), (3 * H, 4 * H), (5 * H, 5 * H + H / 4)]
        );
        // Nothing trusted: the whole window; all of it trusted: nothing.
        assert_eq!(raw_ranges(10, 20, &[]), vec![(10, 20)]);
        assert_eq!(raw_ranges(H, 3 * H, &[(1, 1), (2, 1)]), vec![]);
        assert_eq!(
            trusted_condition(&trusted),
            "((gen = 7 AND hour >= 1 AND hour < 3) OR (gen = 9 AND hour >= 4 AND hour < 5))"
        );
        assert_eq!(in_ranges("ts", &[]), "0");
    }

    #[test]
    fn a_window_reads_at_most_max_runs_runs_of_hours_from_cells() {
        // Every other hour trusted, each its own run: cut after MAX_RUNS of them.
        let sparse: Vec<(i64, u64)> = (0..3 * MAX_RUNS as i64).map(|i| (2 * i, 1)).collect();
        let kept = capped(sparse.clone());
        assert_eq!(kept, sparse[..MAX_RUNS].to_vec());
        // One long run (one generation, consecutive hours) is kept whole, and a change of
        // generation starts a run.
        let dense: Vec<(i64, u64)> = (0..5_000).map(|h| (h, 7)).collect();
        assert_eq!(capped(dense.clone()), dense);
        let gens: Vec<(i64, u64)> = (0..2 * MAX_RUNS as i64).map(|h| (h, h as u64)).collect();
        assert_eq!(capped(gens.clone()), gens[..MAX_RUNS].to_vec());
    }

    #[test]
    fn a_seal_is_trusted_only_when_every_mark_is_older_than_its_start_minus_the_skew() {
        let gen = (1_000_000u64 << GEN_BITS) | 12345;
        assert_eq!(start_ms(gen), 1_000_000);
        assert!(clean(None, gen));
        assert!(clean(Some(1_000_000 - SKEW_MS), gen));
        assert!(!clean(Some(1_000_000 - SKEW_MS + 1), gen));
        assert!(!clean(Some(2_000_000), gen));
    }

    #[test]
    fn only_generations_below_a_newest_seal_older_than_the_grace_are_dropped() {
        let gen_at = |ms: i64, low: u64| ((ms as u64) << GEN_BITS) | low;
        let now = 100 * 60_000;
        let old = gen_at(now - SUPERSEDED_GRACE_MS, 1);
        let recent = gen_at(now - SUPERSEDED_GRACE_MS + 1, 2);
        let older = gen_at(1_000, 3);
        let row = |v: &[String]| v.to_vec();
        let s = |x: i64| x.to_string();
        let sealed = vec![
            // ws 1 hour 10: resealed by `old` (old enough): the `older` rows go.
            row(&[s(1), s(10), old.to_string(), older.to_string()]),
            // ws 1 hour 11: resealed by `recent`: kept for now.
            row(&[s(1), s(11), recent.to_string(), older.to_string()]),
            // ws 2 hour 10: one sealed row, but cells of a failed older seal remain.
            row(&[s(2), s(10), old.to_string(), old.to_string()]),
            // ws 2 hour 12: sealed once, nothing older anywhere.
            row(&[s(2), s(12), old.to_string(), old.to_string()]),
        ];
        let cells = vec![
            row(&[s(1), s(10), older.to_string()]),
            row(&[s(1), s(11), older.to_string()]),
            row(&[s(2), s(10), older.to_string()]),
            row(&[s(2), s(12), old.to_string()]),
        ];
        let dropped = superseded(&sealed, &cells, now).unwrap();
        assert_eq!(dropped, vec![(1, 10, old), (2, 10, old)]);
        assert_eq!(
            below_newest(&dropped),
            format!("((ws = 1 AND hour = 10 AND gen < {old}) OR (ws = 2 AND hour = 10 AND gen < {old}))")
        );
    }
}
