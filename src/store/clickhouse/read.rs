//! Reads: every read goes through `calls`, the stored attempts resolved into calls (per
//! (workspace, call): every column of the row with the largest `pick`, and the number of
//! distinct attempts), then filters, groups and sums in SQL. A read of a time window
//! resolves its calls from the window's hours of the by-hour copy (`calls_in_hours`),
//! so its cost follows the window, not the whole history. Sums come back as 32-bit
//! halves and are put together and range-checked in Rust, so a sum past i64 / u64 is
//! `SumOverflow`, never a wrapped number.

use super::http::{parse_array, quote};
use super::{cells, ms_to_rfc3339, num, optional, retention, schema, text, ClickhouseStore};
use crate::event::{CostSource, DataMode, Environment, Operation, ServiceTier, Status};
use crate::money::Usd;
use crate::query::{Answer, Dimension, Filters, Query, Row, Sums};
use crate::store::{
    EventOrder, EventPage, EventQuery, Freshness, GroupLatency, RequestValues, Result, StoreError,
    StoredEvent, UnpricedModel, VersionSeen, WorkspaceId,
};
use std::collections::BTreeMap;

/// The columns a call takes from its winning attempt.
pub(super) const WINNER_COLUMNS: [&str; 31] = [
    "attempt",
    "ts",
    "received",
    "provider",
    "model",
    "endpoint",
    "prompt_version",
    "tenant",
    "user",
    "input",
    "cached",
    "cache_write",
    "output",
    "reasoning",
    "image_count",
    "latency",
    "status",
    "error_code",
    "data_mode",
    "environment",
    "operation",
    "service_tier",
    "usage_missing",
    "tag_keys",
    "tag_values",
    "priced",
    "cost",
    "cost_source",
    "price_entry_id",
    "price_book_version",
    "repriced",
];

/// The calls whose attempts match `scope` (a condition on stored rows that holds for
/// every attempt of a call or for none: workspace, id), as a subquery with `c_` columns.
pub(super) fn calls(store: &ClickhouseStore, scope: &str) -> String {
    let mut all = vec!["attempts"];
    all.extend(WINNER_COLUMNS);
    calls_with(store, scope, &all)
}

/// `calls` resolving only `columns` (names of `WINNER_COLUMNS`, or `attempts` for the
/// number of distinct attempts) besides the key (`c_ws`, `c_idless`, `c_id`): every
/// `argMax` resolved costs a pass over the rows, so a read asks only for what it uses.
pub(super) fn calls_with(store: &ClickhouseStore, scope: &str, columns: &[&str]) -> String {
    calls_from(&store.table(schema::EVENTS.name), scope, columns)
}

/// `calls_with` over `table` (`EVENTS` or its by-hour copy).
fn calls_from(table: &str, scope: &str, columns: &[&str]) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let resolved: Vec<String> = columns
        .iter()
        .filter(|c| seen.insert(**c))
        .map(|c| match *c {
            "attempts" => "uniqExact(attempt) AS c_attempts".to_string(),
            c => format!("argMax({c}, pick) AS c_{c}"),
        })
        .collect();
    let mut select = vec!["ws AS c_ws", "idless AS c_idless", "id AS c_id"]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    select.extend(resolved);
    format!(
        "(SELECT {} FROM {table} WHERE {scope} GROUP BY ws, idless, id)",
        select.join(", "),
    )
}

/// What a resolved call's sums (`sum_columns`) and its window condition read.
pub(super) const SUM_INPUTS: [&str; 12] = [
    "attempts",
    "ts",
    "priced",
    "cost",
    "input",
    "cached",
    "cache_write",
    "output",
    "reasoning",
    "latency",
    "status",
    "usage_missing",
];

/// The resolved columns a dimension's label (`label`) reads.
fn dimension_columns(d: &Dimension) -> &'static [&'static str] {
    match d {
        Dimension::EndpointTag => &["endpoint"],
        Dimension::Provider => &["provider"],
        Dimension::Model => &["model"],
        Dimension::Environment => &["environment"],
        Dimension::DataMode => &["data_mode"],
        Dimension::Status => &["status"],
        Dimension::PromptVersion => &["prompt_version"],
        Dimension::TenantId => &["tenant"],
        Dimension::UserId => &["user"],
        Dimension::Tag(_) => &["tag_keys", "tag_values"],
    }
}

/// `base` plus every column grouping by `group_by` and filtering by `f` reads.
pub(super) fn columns_for(
    base: &[&'static str],
    group_by: &[Dimension],
    f: &Filters,
) -> Vec<&'static str> {
    let mut out = base.to_vec();
    for d in group_by.iter().chain(f.text.keys()) {
        out.extend(dimension_columns(d));
    }
    if !f.tags.is_empty() {
        out.extend(["tag_keys", "tag_values"]);
    }
    if !f.environment.is_empty() {
        out.push("environment");
    }
    if !f.data_mode.is_empty() {
        out.push("data_mode");
    }
    if !f.status.is_empty() {
        out.push("status");
    }
    out
}

/// `calls` narrowed to those whose time can be in `window` (`[from, to)`), read by hour
/// (`calls_in_hours`; the caller keeps the calls whose `c_ts` is in the window), or
/// every call of the scope without a window.
fn calls_in(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    scope: &str,
    window: Option<(i64, i64)>,
    columns: &[&str],
) -> String {
    match window {
        Some(window) => calls_in_hours(store, ws, scope, &[window], columns),
        None => calls_with(store, scope, columns),
    }
}

/// `calls` narrowed to the calls with at least one stored row meeting `row` (a
/// condition on one attempt's columns), every row of them resolved (see `calls_in`).
pub(super) fn calls_having(store: &ClickhouseStore, scope: &str, row: &str) -> String {
    let mut all = vec!["attempts"];
    all.extend(WINNER_COLUMNS);
    calls_having_with(store, scope, row, &all)
}

/// `calls_having` resolving only `columns` (see `calls_with`).
pub(super) fn calls_having_with(
    store: &ClickhouseStore,
    scope: &str,
    row: &str,
    columns: &[&str],
) -> String {
    let local = local_table(store, schema::EVENTS.name);
    calls_with(
        store,
        &format!(
            "{scope} AND (idless, id) IN (SELECT idless, id FROM {local}
              WHERE {scope} AND {row})"
        ),
        columns,
    )
}

/// The calls whose time (their winning attempt's) can be in `ranges` (`[from, to)` in
/// ms), each resolved from all its rows, read from the by-hour copy
/// (`schema::EVENTS_BY_HOUR`): the rows of the ranges' hours, not every row of the
/// workspace. The caller keeps the calls whose `c_ts` is in the ranges.
///
/// Exact: it reads every row in the ranges' hours, in the hour before and after each
/// range, and in every hour `SPANNING` names for a call named in the ranges' hours.
/// A call whose time is in the ranges has its winning row in their hours, so all its
/// rows are read: they lie in that one hour, or in the hour next to it (two attempts
/// two nodes stored at the same moment, before a seal named the call), or in hours
/// `SPANNING` names (ingest names a call it sees split, the seal the others). It is
/// resolved as from all its rows and kept. A call read only in part (rows of the hours
/// around the ranges, or of another call's spanning hours) resolves to one of the rows
/// read; none of those lies in the ranges (a row there would make the call one of the
/// above), so the caller drops it. `scope` holds for every row of a call or for none.
pub(super) fn calls_in_hours(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    scope: &str,
    ranges: &[(i64, i64)],
    columns: &[&str],
) -> String {
    let spanning = local_table(store, schema::SPANNING.name);
    let read = format!(
        "({} OR hour IN (SELECT hour FROM {spanning} WHERE ws = {ws} AND (idless, id) IN
           (SELECT idless, id FROM {spanning} WHERE ws = {ws} AND {})))",
        hour_ranges(ranges, 1),
        hour_ranges(ranges, 0),
    );
    calls_from(
        &store.table(schema::EVENTS_BY_HOUR.name),
        &format!("{scope} AND {read}"),
        columns,
    )
}

/// A table as a subquery inside a read of a Distributed table names it: the shard's own
/// table on a cluster (every row of a call is on one shard), the table otherwise.
pub(super) fn local_table(store: &ClickhouseStore, name: &str) -> String {
    match store.url.cluster {
        Some(_) => store.table(&format!("{name}_local")),
        None => store.table(name),
    }
}

/// A condition on `hour`: the hours of `ranges` (ms, `[from, to)`), widened by `more`
/// hours on each side.
fn hour_ranges(ranges: &[(i64, i64)], more: i64) -> String {
    // Literals ClickHouse 18.16 reads as Int64 (i64::MIN is read as a float).
    let bound = |hour: i64| hour.clamp(-(1 << 50), 1 << 50);
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(from, to)| {
            let first = from.div_euclid(cells::HOUR_MS).saturating_sub(more);
            let last = to
                .saturating_sub(1)
                .div_euclid(cells::HOUR_MS)
                .saturating_add(more);
            format!("(hour >= {} AND hour <= {})", bound(first), bound(last))
        })
        .collect();
    match parts.is_empty() {
        true => "0".to_string(),
        false => format!("({})", parts.join(" OR ")),
    }
}

/// What a group shows for a call: its value, or the dimension's missing label.
fn label(d: &Dimension) -> String {
    let or_missing =
        |column: &str| format!("if({column} = '', {}, {column})", quote(d.missing_label()));
    match d {
        Dimension::EndpointTag => "c_endpoint".into(),
        Dimension::Provider => "c_provider".into(),
        Dimension::Model => "c_model".into(),
        Dimension::Environment => "c_environment".into(),
        Dimension::DataMode => "c_data_mode".into(),
        Dimension::Status => "c_status".into(),
        Dimension::PromptVersion => or_missing("c_prompt_version"),
        Dimension::TenantId => or_missing("c_tenant"),
        Dimension::UserId => or_missing("c_user"),
        Dimension::Tag(key) => format!(
            "if(has(c_tag_keys, {k}), c_tag_values[indexOf(c_tag_keys, {k})], {})",
            quote(d.missing_label()),
            k = quote(key)
        ),
    }
}

/// `expr IN (...)`; an empty list matches nothing (as the reference's `any` over it).
fn one_of<'a>(expr: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let list: Vec<String> = values.into_iter().map(quote).collect();
    if list.is_empty() {
        return "0".into();
    }
    format!("{expr} IN ({})", list.join(","))
}

/// The conditions of environment and data mode (empty lists do not filter).
fn scope_conditions(f: &Filters) -> Vec<String> {
    let mut out = Vec::new();
    if !f.environment.is_empty() {
        out.push(one_of(
            "c_environment",
            f.environment.iter().map(|e| e.as_str()),
        ));
    }
    if !f.data_mode.is_empty() {
        out.push(one_of(
            "c_data_mode",
            f.data_mode.iter().map(|e| e.as_str()),
        ));
    }
    out
}

/// Every filter's condition on the calls.
pub(super) fn filter_conditions(f: &Filters) -> Vec<String> {
    let mut out = scope_conditions(f);
    if !f.status.is_empty() {
        out.push(one_of("c_status", f.status.iter().map(|e| e.as_str())));
    }
    for (d, values) in &f.text {
        out.push(one_of(&label(d), values.iter().map(String::as_str)));
    }
    for (key, values) in &f.tags {
        out.push(one_of(
            &label(&Dimension::Tag(key.clone())),
            values.iter().map(String::as_str),
        ));
    }
    out
}

fn window_conditions(window: Option<(i64, i64)>, filters: Option<&Filters>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((from, to)) = window {
        out.push(format!("c_ts >= {from} AND c_ts < {to}"));
    }
    if let Some(f) = filters {
        out.extend(filter_conditions(f));
    }
    out
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// `sum(expr)` in two halves: the high and low 32 bits of each value.
fn halves(expr: &str) -> String {
    format!("sum(intDiv({expr}, 4294967296)), sum(({expr}) % 4294967296)")
}

/// The sums a group accumulates, in `sums_of`'s order.
pub(super) fn sum_columns() -> String {
    [
        "count()".to_string(),
        "sum(c_attempts)".into(),
        halves("if(c_priced = 1, c_cost, 0)"),
        "sum(c_priced)".into(),
        halves("c_input"),
        halves("c_cached"),
        halves("c_cache_write"),
        halves("c_output"),
        halves("c_reasoning"),
        halves("if(c_latency >= 0, c_latency, 0)"),
        "sum(c_latency >= 0)".into(),
        "sum(c_status != 'success')".into(),
        "sum(c_usage_missing)".into(),
        "sum(c_idless)".into(),
    ]
    .join(", ")
}

/// The 14 sums of one answer row from column `at` on (`sum_columns` order), each
/// 64-bit one put together from its halves, not yet checked into range.
type Wide = [i128; 14];

fn wide_of(row: &[String], at: usize) -> Result<Wide> {
    let count = |i: usize| -> Result<i128> { num(row, at + i) };
    let whole = |i: usize| -> Result<i128> {
        let hi: i128 = num(row, at + i)?;
        let lo: i128 = num(row, at + i + 1)?;
        Ok((hi << 32) + lo)
    };
    Ok([
        count(0)?,
        count(1)?,
        whole(2)?,
        count(4)?,
        whole(5)?,
        whole(7)?,
        whole(9)?,
        whole(11)?,
        whole(13)?,
        whole(15)?,
        count(17)?,
        count(18)?,
        count(19)?,
        count(20)?,
    ])
}

/// Wide sums checked into range: a sum past i64 / u64 is `SumOverflow`.
fn sums_from(w: &Wide) -> Result<Sums> {
    Ok(Sums::from_measures(*w)?)
}

/// An aggregate's rows before they are checked: (bucket, group) to wide sums.
pub(super) type Groups = BTreeMap<(Option<i64>, Vec<String>), Wide>;

/// Add the rows of `sql` (bucket if asked, the group's labels, then the sums) to
/// `groups`; a group read twice (from cells and raw) is summed.
pub(super) async fn add_groups(
    store: &ClickhouseStore,
    q: &Query,
    sql: &str,
    groups: &mut Groups,
) -> Result<()> {
    for row in store.client.select(sql).await? {
        let bucket_ms = match q.bucket {
            Some(_) => Some(num::<i64>(&row, 0)?),
            None => None,
        };
        let first = bucket_ms.is_some() as usize;
        let group: Vec<String> = (0..q.group_by.len())
            .map(|i| text(&row, first + i))
            .collect();
        let wide = wide_of(&row, first + group.len())?;
        let sums = groups.entry((bucket_ms, group)).or_insert([0; 14]);
        for (s, w) in sums.iter_mut().zip(wide) {
            *s += w;
        }
    }
    Ok(())
}

/// `add_groups` of `sql` when there is one.
async fn add_groups_of(
    store: &ClickhouseStore,
    q: &Query,
    sql: Option<String>,
    groups: &mut Groups,
) -> Result<()> {
    match sql {
        Some(sql) => add_groups(store, q, &sql, groups).await,
        None => Ok(()),
    }
}

/// `SELECT keys, sums FROM source WHERE conditions GROUP BY keys` for `q`; `time` is
/// the expression of a row's time in ms (for the bucket).
pub(super) fn grouped(
    q: &Query,
    time: &str,
    sums: &str,
    source: &str,
    conditions: &[String],
) -> String {
    let mut keys: Vec<String> = Vec::new();
    if let Some(b) = q.bucket {
        keys.push(format!("intDiv({time}, {ms}) * {ms}", ms = b.millis()));
    }
    keys.extend(q.group_by.iter().map(label));
    let mut select = keys.clone();
    select.push(sums.to_string());
    let group = if keys.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", keys.join(", "))
    };
    format!(
        "SELECT {} FROM {source}{}{group}",
        select.join(", "),
        where_clause(conditions)
    )
}

/// An aggregate: the window's whole hours that have trusted sealed cells of a family
/// that answers the query are read from the cells; the rest of the window (its edges,
/// unsealed and dirty hours) and every query no family answers, from resolved calls.
pub async fn aggregate(store: &ClickhouseStore, ws: WorkspaceId, q: &Query) -> Result<Answer> {
    let family = cells::family(q);
    let trusted = async {
        match family {
            // Cells hold hours from 0 on (negative times are never sealed).
            Some(_) => {
                let first = q.from_ms.max(0).div_euclid(cells::HOUR_MS)
                    + (q.from_ms.max(0).rem_euclid(cells::HOUR_MS) > 0) as i64;
                let end = q.to_ms.div_euclid(cells::HOUR_MS);
                cells::trusted(store, ws, first, end).await
            }
            None => Ok(Vec::new()),
        }
    };
    // Retention's pruned history answers the whole hours before the pruned range's end;
    // raw reads leave out the rows a running prune is deleting (`retention.rs`).
    let (prunes, trusted) = tokio::try_join!(retention::state(store, ws), trusted)?;
    let trusted = prunes.untouched(trusted);
    let scope = prunes.raw_scope(ws);
    let mut raw_conditions = Vec::new();
    let columns = columns_for(&SUM_INPUTS, &q.group_by, &q.filters);
    let mut cells_sql = None;
    let source = match family.filter(|_| !trusted.is_empty()) {
        Some(family) => {
            let mut conditions = vec![cells::scope(ws, family), cells::trusted_condition(&trusted)];
            conditions.extend(filter_conditions(&q.filters));
            cells_sql = Some(grouped(
                q,
                &format!("hour * {}", cells::HOUR_MS),
                cells::CELL_SUMS,
                &store.table(schema::CELLS.name),
                &conditions,
            ));
            // The rest of the window is little (edges, recent and dirty hours): always
            // narrowed to the calls with an attempt in it.
            let ranges = cells::raw_ranges(q.from_ms, q.to_ms, &trusted);
            (!ranges.is_empty()).then(|| {
                raw_conditions.push(cells::in_ranges("c_ts", &ranges));
                calls_in_hours(store, ws, &scope, &ranges, &columns)
            })
        }
        None => {
            raw_conditions.extend(window_conditions(Some((q.from_ms, q.to_ms)), None));
            Some(calls_in(
                store,
                ws,
                &scope,
                Some((q.from_ms, q.to_ms)),
                &columns,
            ))
        }
    };
    let raw_sql = source.map(|source| {
        raw_conditions.extend(filter_conditions(&q.filters));
        grouped(q, "c_ts", &sum_columns(), &source, &raw_conditions)
    });
    // The pruned history, the cells and the raw part are independent statements: sent
    // at once, each into its own group table, then added together.
    let (mut groups, mut from_cells, mut from_raw) = (Groups::new(), Groups::new(), Groups::new());
    let (raw_from_ms, (), ()) = tokio::try_join!(
        retention::add_pruned(store, ws, q, &prunes, &mut groups),
        add_groups_of(store, q, cells_sql, &mut from_cells),
        add_groups_of(store, q, raw_sql, &mut from_raw),
    )?;
    for (key, wide) in from_cells.into_iter().chain(from_raw) {
        let sums = groups.entry(key).or_insert([0; 14]);
        for (s, w) in sums.iter_mut().zip(wide) {
            *s += w;
        }
    }
    let mut rows = Vec::new();
    for ((bucket_ms, group), wide) in groups {
        let sums = sums_from(&wide)?;
        // Without a GROUP BY an empty window still answers one row of zeros.
        if sums.requests > 0 {
            rows.push(Row {
                group,
                bucket_ms,
                sums,
            });
        }
    }
    let mut answer = crate::query::answer(q, rows)?;
    answer.raw_from_ms = raw_from_ms;
    Ok(answer)
}

/// What a cursor holds: the position (time, id-less, id) of the last call listed.
fn cursor_of(e: &StoredEvent, ts: i64) -> String {
    format!(
        "c1.{ts}.{}.{}",
        e.idless as u8,
        hex::encode(e.external_request_id.as_bytes())
    )
}

fn parse_cursor(cursor: &str) -> Result<(i64, u8, String)> {
    let mut parts = cursor
        .strip_prefix("c1.")
        .ok_or(StoreError::BadCursor)?
        .split('.');
    let ts = parts.next().and_then(|t| t.parse().ok());
    let idless = parts
        .next()
        .and_then(|t| t.parse::<u8>().ok())
        .filter(|i| *i <= 1);
    let id = parts
        .next()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match (ts, idless, id, parts.next()) {
        (Some(ts), Some(idless), Some(id), None) => Ok((ts, idless, id)),
        _ => Err(StoreError::BadCursor),
    }
}

/// Calls after (time, idless, id) in newest-first order.
fn after_time(ts: i64, idless: u8, id: &str) -> String {
    format!(
        "(c_ts < {ts} OR (c_ts = {ts} AND (c_idless < {idless} OR (c_idless = {idless} AND c_id < {}))))",
        quote(id)
    )
}

/// A costliest-first cursor: `k<cost>.` before the newest-first cursor of the same row.
fn parse_cost_cursor(cursor: &str) -> Result<(i64, i64, u8, String)> {
    let (cost, rest) = cursor
        .strip_prefix('k')
        .and_then(|c| c.split_once('.'))
        .ok_or(StoreError::BadCursor)?;
    let cost = cost.parse().map_err(|_| StoreError::BadCursor)?;
    let (ts, idless, id) = parse_cursor(rest)?;
    Ok((cost, ts, idless, id))
}

pub async fn events(store: &ClickhouseStore, ws: WorkspaceId, q: EventQuery) -> Result<EventPage> {
    let scope = match &q.external_request_id {
        Some(id) => format!("ws = {ws} AND idless = 0 AND id = {}", quote(id)),
        None => format!("ws = {ws}"),
    };
    let mut conditions = window_conditions(q.window, q.filters.as_ref());
    let order = match q.order {
        EventOrder::Newest => {
            if let Some(cursor) = &q.cursor {
                let (ts, idless, id) = parse_cursor(cursor)?;
                conditions.push(after_time(ts, idless, &id));
            }
            "c_ts DESC, c_idless DESC, c_id DESC"
        }
        EventOrder::Costliest => {
            // Only priced calls: an unpriced call's cost is unknown, never $0.
            conditions.push("c_priced = 1".into());
            if let Some(cursor) = &q.cursor {
                let (cost, ts, idless, id) = parse_cost_cursor(cursor)?;
                conditions.push(format!(
                    "(c_cost < {cost} OR (c_cost = {cost} AND {}))",
                    after_time(ts, idless, &id)
                ));
            }
            "c_cost DESC, c_ts DESC, c_idless DESC, c_id DESC"
        }
    };
    let columns: Vec<String> = WINNER_COLUMNS.iter().map(|c| format!("c_{c}")).collect();
    let mut resolved = vec!["attempts"];
    resolved.extend(WINNER_COLUMNS);
    let sql = format!(
        "SELECT c_idless, c_id, c_attempts, {} FROM {}{} ORDER BY {order} LIMIT {}",
        columns.join(", "),
        calls_in(store, ws, &scope, q.window, &resolved),
        where_clause(&conditions),
        q.limit + 1
    );
    let rows = store.client.select(&sql).await?;
    let mut events = Vec::with_capacity(rows.len());
    let mut last_ts = 0;
    for row in rows.iter().take(q.limit) {
        last_ts = num(row, 4)?;
        events.push(stored_event(row)?);
    }
    let next_cursor = match (rows.len() > q.limit, events.last()) {
        (true, Some(last)) => Some(match (q.order, last.cost_usd) {
            (EventOrder::Costliest, Some(cost)) => {
                format!("k{}.{}", cost.0, cursor_of(last, last_ts))
            }
            _ => cursor_of(last, last_ts),
        }),
        _ => None,
    };
    Ok(EventPage {
        events,
        next_cursor,
    })
}

/// A vocabulary value read back; an unknown one is a database error.
fn vocab<T>(row: &[String], i: usize, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(&text(row, i))
        .ok_or_else(|| StoreError::Database(format!("clickhouse: unknown value in column {i}")))
}

/// A listed call from `events`' columns: idless, id, attempts, then `WINNER_COLUMNS`.
pub(super) fn stored_event(row: &[String]) -> Result<StoredEvent> {
    let c = |name: &str| 3 + WINNER_COLUMNS.iter().position(|w| *w == name).unwrap_or(0);
    let array = |name: &str| {
        parse_array(&text(row, c(name))).ok_or_else(|| {
            StoreError::Database("clickhouse: a stored tag list is unreadable".into())
        })
    };
    let tags = array("tag_keys")?
        .into_iter()
        .zip(array("tag_values")?)
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let input: u64 = num(row, c("input"))?;
    let output: u64 = num(row, c("output"))?;
    let latency: i64 = num(row, c("latency"))?;
    let cost_source = text(row, c("cost_source"));
    Ok(StoredEvent {
        external_request_id: text(row, 1),
        idless: num::<u8>(row, 0)? == 1,
        timestamp: ms_to_rfc3339(num(row, c("ts"))?),
        received_at: ms_to_rfc3339(num(row, c("received"))?),
        provider: text(row, c("provider")),
        model: text(row, c("model")),
        endpoint_tag: text(row, c("endpoint")),
        prompt_version: optional(row, c("prompt_version")),
        tenant_id: optional(row, c("tenant")),
        user_id: optional(row, c("user")),
        input_tokens: input,
        cached_tokens: num(row, c("cached"))?,
        cache_write_tokens: num(row, c("cache_write"))?,
        output_tokens: output,
        reasoning_tokens: num(row, c("reasoning"))?,
        total_tokens: input.saturating_add(output),
        image_count: num(row, c("image_count"))?,
        latency_ms: u32::try_from(latency).ok(),
        status: vocab(row, c("status"), Status::parse)?.as_str(),
        error_code: optional(row, c("error_code")),
        data_mode: vocab(row, c("data_mode"), DataMode::parse)?.as_str(),
        environment: vocab(row, c("environment"), Environment::parse)?.as_str(),
        operation: vocab(row, c("operation"), Operation::parse)?.as_str(),
        service_tier: vocab(row, c("service_tier"), ServiceTier::parse)?.as_str(),
        usage_missing: num::<u8>(row, c("usage_missing"))? == 1,
        tags,
        attempt: num(row, c("attempt"))?,
        attempts: num(row, 2)?,
        cost_usd: (num::<u8>(row, c("priced"))? == 1)
            .then(|| num(row, c("cost")).map(Usd))
            .transpose()?,
        cost_source: match cost_source.as_str() {
            "" => None,
            s => Some(vocab(&[s.to_string()], 0, CostSource::parse)?.as_str()),
        },
        price_entry_id: optional(row, c("price_entry_id")),
        price_book_version: optional(row, c("price_book_version")),
        repriced_at: Some(num::<i64>(row, c("repriced"))?)
            .filter(|ms| *ms > 0)
            .map(ms_to_rfc3339),
    })
}

/// The newest `limit` calls of the query's window and filters: `columns` of each.
async fn newest(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    q: &Query,
    limit: usize,
    resolved: &[&'static str],
    columns: &str,
    extra: Option<&str>,
) -> Result<Vec<Vec<String>>> {
    let mut conditions = window_conditions(Some((q.from_ms, q.to_ms)), Some(&q.filters));
    conditions.extend(extra.map(str::to_string));
    let sql = format!(
        "SELECT {columns} FROM {}{} ORDER BY c_ts DESC LIMIT {limit}",
        calls_in(
            store,
            ws,
            &format!("ws = {ws}"),
            Some((q.from_ms, q.to_ms)),
            &columns_for(resolved, &[], &q.filters)
        ),
        where_clause(&conditions)
    );
    store.client.select(&sql).await
}

pub async fn request_values(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    q: &Query,
    limit: usize,
) -> Result<Vec<RequestValues>> {
    let rows = newest(
        store,
        ws,
        q,
        limit,
        &["ts", "priced", "cost", "input", "output", "latency"],
        "c_priced, c_cost, c_input, c_output, c_latency",
        None,
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RequestValues {
                cost: (num::<u8>(row, 0)? == 1)
                    .then(|| num(row, 1).map(Usd))
                    .transpose()?,
                input_tokens: num(row, 2)?,
                output_tokens: num(row, 3)?,
                latency_ms: u32::try_from(num::<i64>(row, 4)?).ok(),
            })
        })
        .collect()
}

pub async fn latencies(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    q: &Query,
    limit: usize,
) -> Result<Vec<u32>> {
    let rows = newest(
        store,
        ws,
        q,
        limit,
        &["ts", "latency"],
        "c_latency",
        Some("c_latency >= 0"),
    )
    .await?;
    rows.iter().map(|row| num(row, 0)).collect()
}

/// `EventStore::latency_percentiles` in one statement: the window's matching calls
/// with a latency, newest first, the first `limit` of each group kept (`LIMIT n BY`),
/// then per group the sorted latencies' element at the nearest rank
/// ceil(n * percent / 100), the rule `store::nearest_rank` states.
pub async fn latency_percentiles(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    q: &Query,
    limit: usize,
    percent: u32,
) -> Result<Vec<GroupLatency>> {
    let percent = percent.clamp(1, 100);
    let keys: Vec<String> = (0..q.group_by.len()).map(|i| format!("g{i}")).collect();
    let mut select: Vec<String> = q
        .group_by
        .iter()
        .zip(&keys)
        .map(|(d, k)| format!("{} AS {k}", label(d)))
        .collect();
    select.push("c_latency AS l".into());
    let mut conditions = window_conditions(Some((q.from_ms, q.to_ms)), Some(&q.filters));
    conditions.push("c_latency >= 0".into());
    let by = match keys.is_empty() {
        true => String::new(),
        false => format!(" BY {}", keys.join(", ")),
    };
    let group = match keys.is_empty() {
        true => String::new(),
        false => format!(" GROUP BY {}", keys.join(", ")),
    };
    let mut outer = keys.clone();
    outer.push(format!(
        "count(), arrayElement(arraySort(groupArray(l)), intDiv(count() * {percent} + 99, 100))"
    ));
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM {}{} ORDER BY c_ts DESC LIMIT {limit}{by}){group}",
        outer.join(", "),
        select.join(", "),
        calls_in(
            store,
            ws,
            &format!("ws = {ws}"),
            Some((q.from_ms, q.to_ms)),
            &columns_for(&["ts", "latency"], &q.group_by, &q.filters)
        ),
        where_clause(&conditions),
    );
    let n = keys.len();
    let mut out = Vec::new();
    for row in store.client.select(&sql).await? {
        let calls: u64 = num(&row, n)?;
        if calls > 0 {
            out.push(GroupLatency {
                group: (0..n).map(|i| text(&row, i)).collect(),
                calls,
                latency_ms: num(&row, n + 1)?,
            });
        }
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}

/// How a call's prompt version is labelled (missing: "unversioned").
pub(super) fn version_label() -> String {
    label(&Dimension::PromptVersion)
}

/// The bounds of "all time" for `versions_seen`: far past any millisecond an event can
/// carry (RFC 3339 years 0000-9999) and far from i64's ends, so they print as plain
/// literals.
const ALL_TIME: (i64, i64) = (-(1 << 62), 1 << 62);

/// First and last times per (endpoint, version) of the calls, and of retention's pruned
/// calls (their versions are kept with the pruned history). The trusted sealed hours
/// answer from `cell_versions` (their min and max per hour), every other hour from its
/// resolved calls, as `aggregate` splits a window: each call's time is in exactly one
/// hour, so the two parts together see every call once.
pub async fn versions_seen(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    f: &Filters,
) -> Result<Vec<VersionSeen>> {
    let (prunes, trusted) = tokio::try_join!(
        retention::state(store, ws),
        cells::trusted(store, ws, 0, ALL_TIME.1.div_euclid(cells::HOUR_MS))
    )?;
    let trusted = cells::versions_sealed(store, ws, prunes.untouched(trusted)).await?;
    let mut parts = Vec::new();
    if !trusted.is_empty() {
        // The empty environment is each hour's marker row (`cells::seal_versions`).
        let mut conditions = vec![
            format!("ws = {ws}"),
            "c_environment != ''".to_string(),
            cells::trusted_condition(&trusted),
        ];
        conditions.extend(scope_conditions(f));
        parts.push(format!(
            "SELECT c_endpoint, {} AS version, min(first_ms), max(last_ms) FROM {}{}
             GROUP BY c_endpoint, version",
            version_label(),
            store.table(schema::CELL_VERSIONS.name),
            where_clause(&conditions)
        ));
    }
    let ranges = cells::raw_ranges(ALL_TIME.0, ALL_TIME.1, &trusted);
    if !ranges.is_empty() {
        let mut conditions = vec![cells::in_ranges("c_ts", &ranges)];
        conditions.extend(scope_conditions(f));
        let calls = calls_in_hours(
            store,
            ws,
            &prunes.raw_scope(ws),
            &ranges,
            &[
                "ts",
                "endpoint",
                "prompt_version",
                "environment",
                "data_mode",
            ],
        );
        parts.push(format!(
            "SELECT c_endpoint, {} AS version, min(c_ts), max(c_ts) FROM {calls}{}
             GROUP BY c_endpoint, version",
            version_label(),
            where_clause(&conditions)
        ));
    }
    let mut seen: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut add = |key: (String, String), first: i64, last: i64| {
        let span = seen.entry(key).or_insert((first, last));
        *span = (span.0.min(first), span.1.max(last));
    };
    // One statement: the cells' part and the raw part as one UNION ALL.
    if !parts.is_empty() {
        for row in store.client.select(&parts.join(" UNION ALL ")).await? {
            add((text(&row, 0), text(&row, 1)), num(&row, 2)?, num(&row, 3)?);
        }
    }
    for (endpoint, version, first, last) in
        retention::versions(store, ws, &prunes, &scope_conditions(f)).await?
    {
        add((endpoint, version), first, last);
    }
    Ok(seen
        .into_iter()
        .map(
            |((endpoint_tag, prompt_version), (first_ms, last_ms))| VersionSeen {
                endpoint_tag,
                prompt_version,
                first_ms,
                last_ms,
            },
        )
        .collect())
}

/// How far back from the newest stored time (and receive time) `freshness` looks first.
const FRESH_LOOKBACK_MS: i64 = 24 * 3_600_000;
/// ... and at most how many of the newest stored rows (by time, and by receive time).
const FRESH_ROWS: usize = 10_000;

pub async fn freshness(store: &ClickhouseStore, ws: WorkspaceId) -> Result<Option<Freshness>> {
    // The newest stored attempt's time and receive time bound the answer from above:
    // every call's time and receive time are its winner's, one of its stored rows.
    // With them, sampled quantiles of the stored times and receive times: the lookback
    // starts at the later of the day before the newest and the quantile above which
    // about `FRESH_ROWS` rows lie, so it holds few rows even when every row is recent
    // (a whole history imported or migrated in a minute). Any start at most the newest
    // value is exact (below); the quantiles, one pass over two columns, only keep the
    // resolve small (an exact 10,000th newest value sorted 10M rows: 633 ms, against
    // 106 ms). The sample is random, so the lookback differs from read to read; the
    // answer does not (among calls received at the same moment, the lag is the newest
    // one's, whichever calls were resolved).
    let levels = [0.9, 0.99, 0.999, 0.9999];
    let quantiles = |column: &str| {
        format!(
            "quantiles({})({column})",
            levels.map(|l| l.to_string()).join(", ")
        )
    };
    let sql = format!(
        "SELECT count(), max(ts), max(received), {}, {} FROM {} WHERE ws = {ws}",
        quantiles("ts"),
        quantiles("received"),
        store.table(schema::EVENTS.name),
    );
    let rows = store.client.select(&sql).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let count: u64 = num(row, 0)?;
    if count == 0 {
        return Ok(None);
    }
    // The first level with at most about FRESH_ROWS rows above it.
    let level = levels
        .iter()
        .position(|l| (1.0 - l) * count as f64 <= FRESH_ROWS as f64)
        .unwrap_or(levels.len() - 1);
    let above = |column: usize| -> Result<i64> {
        // A numeric array: `[1796203301231.8,1796395698163.62,...]`.
        let values = text(row, column);
        let value: f64 = values
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .nth(level)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Database("clickhouse: bad quantiles".into()))?;
        Ok(value as i64)
    };
    let (newest_ts, newest_received): (i64, i64) = (num(row, 1)?, num(row, 2)?);
    let (since_ts, since_received) = (
        newest_ts
            .saturating_sub(FRESH_LOOKBACK_MS)
            .max(above(3)?)
            .min(newest_ts),
        newest_received
            .saturating_sub(FRESH_LOOKBACK_MS)
            .max(above(4)?)
            .min(newest_received),
    );
    // Exact for any `since_ts` and `since_received` at most the newest stored time and
    // receive time: a call whose time is at least `since_ts` has its winning row there, so it
    // is among the calls resolved here, and every call left out has an earlier time;
    // the same holds for receive times. Resolved by id (`calls_having_with`), not by
    // hour: the rows received last may lie in many hours (a backfill, late events),
    // and the set of their calls is small. Only when no resolved call's own time (or
    // receive time) is that recent (every recent attempt lost to an older winner) is
    // the whole workspace resolved.
    let narrowed = format!(
        "SELECT countIf(c_ts >= {since_ts}), maxIf(c_ts, c_ts >= {since_ts}),
                countIf(c_received >= {since_received}),
                maxIf(c_received, c_received >= {since_received}),
                argMaxIf(c_ts, (c_received, c_ts), c_received >= {since_received}) FROM {}",
        calls_having_with(
            store,
            &format!("ws = {ws}"),
            &format!("(ts >= {since_ts} OR received >= {since_received})"),
            &["ts", "received"]
        )
    );
    let rows = store.client.select(&narrowed).await?;
    if let Some(row) = rows.first() {
        if num::<u64>(row, 0)? > 0 && num::<u64>(row, 2)? > 0 {
            let newest_received_ms: i64 = num(row, 3)?;
            return Ok(Some(Freshness {
                newest_event_ms: num(row, 1)?,
                newest_received_ms,
                ingest_lag_ms: newest_received_ms - num::<i64>(row, 4)?,
            }));
        }
    }
    freshness_of_all(store, ws).await
}

/// `freshness` from every call of the workspace.
async fn freshness_of_all(store: &ClickhouseStore, ws: WorkspaceId) -> Result<Option<Freshness>> {
    let sql = format!(
        "SELECT count(), max(c_ts), max(c_received), argMax(c_ts, (c_received, c_ts)) FROM {}",
        calls_with(store, &format!("ws = {ws}"), &["ts", "received"])
    );
    let rows = store.client.select(&sql).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    if num::<u64>(row, 0)? == 0 {
        return Ok(None);
    }
    let newest_received_ms: i64 = num(row, 2)?;
    Ok(Some(Freshness {
        newest_event_ms: num(row, 1)?,
        newest_received_ms,
        ingest_lag_ms: newest_received_ms - num::<i64>(row, 3)?,
    }))
}

pub async fn event_count(store: &ClickhouseStore) -> Result<u64> {
    let sql = format!(
        "SELECT count() FROM (SELECT 1 FROM {} GROUP BY ws, idless, id)",
        store.table(schema::EVENTS.name)
    );
    let rows = store.client.select(&sql).await?;
    rows.first().map_or(Ok(0), |row| num(row, 0))
}

pub async fn unpriced_models(store: &ClickhouseStore) -> Result<Vec<UnpricedModel>> {
    let sql = format!(
        "SELECT c_provider, c_model, count() AS calls, max(c_ts) FROM {} WHERE c_priced = 0
         GROUP BY c_provider, c_model ORDER BY calls DESC, c_provider, c_model",
        calls_with(store, "1", &["provider", "model", "priced", "ts"])
    );
    let rows = store.client.select(&sql).await?;
    rows.iter()
        .map(|row| {
            Ok(UnpricedModel {
                provider: text(row, 0),
                model: text(row, 1),
                events: num(row, 2)?,
                last_seen: ms_to_rfc3339(num(row, 3)?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_bad_cursors() {
        let cursor = format!("c1.1700000000000.0.{}", hex::encode("a.b'c"));
        assert_eq!(
            parse_cursor(&cursor).unwrap(),
            (1_700_000_000_000, 0, "a.b'c".to_string())
        );
        for bad in [
            "",
            "not a cursor this store gave",
            "c1.x.0.61",
            "c1.1.2.61",
            "c1.1.0.zz",
            "c1.1.0.61.9",
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(StoreError::BadCursor)),
                "{bad}"
            );
        }
    }

    #[test]
    fn filter_values_are_quoted_and_an_empty_list_matches_nothing() {
        assert_eq!(one_of("c_model", ["a'b"]), r"c_model IN ('a\'b')");
        assert_eq!(one_of("c_model", []), "0");
        assert_eq!(
            label(&Dimension::Tag("team".into())),
            "if(has(c_tag_keys, 'team'), c_tag_values[indexOf(c_tag_keys, 'team')], 'unknown')"
        );
    }
}
