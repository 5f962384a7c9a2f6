//! The aggregate query: the in-memory rollups for the whole hours/days of a window, raw
//! events (one GROUP BY in SQL) for the partial edges and for what no rollup family
//! holds; exact integer sums. The raw-only path is the reference the tests compare with.

use super::access::{self, Access, Shape};
use super::rollup::{
    commit_seq, Cell, Contribution, DimIds, Family, Grain, Rollups, Totals, CONTRIBUTION_COLUMNS,
    DAY_MS, FAMILIES, HOUR_MS, MAX_PINS, N_MEASURES, RAW_MEASURES, TAG_FAMILY,
};
use super::schema::DimKind;
use crate::event::{DataMode, Environment, Status};
use crate::query::{Answer, Dimension, Fraction, Measure, Query, Row, Sums};
use crate::store::{Result, StoreError, WorkspaceId};
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap};

/// The dims kind behind a text dimension.
fn dim_kind(d: &Dimension) -> Option<DimKind> {
    match d {
        Dimension::EndpointTag => Some(DimKind::Endpoint),
        Dimension::PromptVersion => Some(DimKind::PromptVersion),
        Dimension::TenantId => Some(DimKind::Tenant),
        Dimension::UserId => Some(DimKind::User),
        Dimension::Provider => Some(DimKind::Provider),
        Dimension::Model => Some(DimKind::Model),
        _ => None,
    }
}

fn column(d: &Dimension) -> &'static str {
    match d {
        Dimension::EndpointTag => "endpoint",
        Dimension::PromptVersion => "prompt_version",
        Dimension::TenantId => "tenant",
        Dimension::UserId => "user",
        Dimension::Provider => "provider",
        Dimension::Model => "model",
        Dimension::Environment => "environment",
        Dimension::DataMode => "data_mode",
        Dimension::Status => "status",
        Dimension::Tag(_) => "tag_set",
    }
}

/// JSON path of a tag key, quoted so dots and spaces in keys stay one label.
fn tag_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('"', "\\\""))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Where one part of a query's window is read from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Raw,
    Rollup(usize, Grain),
    /// Raw events taken away from a daily or hourly cell (the part of its day or hour
    /// before the window).
    RawMinus,
}

/// What the totals know that decides a query's parts: where the family's hourly cells
/// start, from when raw events exist, and that no call is newer than `newest_ms`.
#[derive(Debug, Clone, Copy)]
struct Reach {
    hours_from: i64,
    raw_from: i64,
    newest_ms: i64,
    /// Older days whose every hourly cell the family holds (`rollup::Pin`; i64::MIN pads).
    pinned: [i64; MAX_PINS],
}

impl Reach {
    /// Nothing known: every part that needs knowledge reads raw events.
    const NONE: Reach = Reach {
        hours_from: i64::MIN,
        raw_from: i64::MIN,
        newest_ms: i64::MAX,
        pinned: [i64::MIN; MAX_PINS],
    };
}

/// The rollup family that holds every dimension the query groups or filters by, if any
/// (tags: the tag family's tag set).
fn choose_family(query: &Query) -> Option<usize> {
    let f = &query.filters;
    let mut needed: Vec<&str> = query
        .group_by
        .iter()
        .chain(f.text.keys())
        .map(column)
        .collect();
    for (column, filtered) in [
        ("environment", !f.environment.is_empty()),
        ("data_mode", !f.data_mode.is_empty()),
        ("status", !f.status.is_empty()),
        ("tag_set", !f.tags.is_empty()),
    ] {
        if filtered {
            needed.push(column);
        }
    }
    FAMILIES
        .iter()
        .position(|family| needed.iter().all(|c| family.dims.contains(c)))
}

/// Split [from, to) into exact parts: daily rollups for whole UTC days (unless the
/// answer is bucketed by hour), cells and raw events for the edges around them
/// (`edge_parts`). A window across a midnight (a "last 24 hours") has edges on both
/// sides of it even without whole days, so each edge may read its day's cell.
fn plan(query: &Query, family: Option<usize>, reach: Reach) -> Vec<(Source, i64, i64)> {
    let (from, to) = (query.from_ms, query.to_ms);
    let Some(index) = family else {
        return vec![(Source::Raw, from, to)];
    };
    let hourly = query.bucket == Some(crate::query::Bucket::Hour);
    let (d0, d1) = (ceil(from, DAY_MS), floor(to, DAY_MS));
    // In time order: the groups of a bucketed answer are found fastest that way.
    if !hourly && d0 <= d1 {
        let mut parts = edge_parts(index, from, d0, reach, Some(d0 - DAY_MS));
        parts.push((Source::Rollup(index, Grain::Day), d0, d1));
        parts.extend(edge_parts(index, d1, to, reach, Some(d1)));
        merged(parts)
    } else {
        edge_parts(index, from, to, reach, None)
    }
}

/// `parts` without empty ones, cells first, then raw events added, then taken away (each
/// in time order), and adjacent reads of one source as one.
fn merged(mut parts: Vec<(Source, i64, i64)>) -> Vec<(Source, i64, i64)> {
    let rank = |s: &Source| match s {
        Source::Rollup(..) => 0,
        Source::Raw => 1,
        Source::RawMinus => 2,
    };
    parts.retain(|(_, a, b)| a < b);
    // A stable sort: each kind keeps its time order.
    parts.sort_by_key(|(s, _, _)| rank(s));
    let mut out: Vec<(Source, i64, i64)> = Vec::with_capacity(parts.len());
    for (source, a, b) in parts {
        match out.last_mut() {
            Some((last, _, end)) if *end == a && *last == source => *end = b,
            _ => out.push((source, a, b)),
        }
    }
    out
}

fn ceil(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step }
}

fn floor(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

/// Milliseconds of raw events a plan reads (added or taken away): what its time grows
/// with, since an hour of raw events is an hour of calls.
fn raw_span(parts: &[(Source, i64, i64)]) -> i64 {
    parts
        .iter()
        .filter(|(s, _, _)| matches!(s, Source::Raw | Source::RawMinus))
        .map(|(_, a, b)| b - a)
        .sum()
}

/// The exact reading of [a, b) (shorter than a day, or a window without whole days) that
/// reads the fewest raw milliseconds (the daily cell where it ties with hourly cells):
/// all raw; hourly cells with their partial hours
/// raw or as a whole cell minus the raw minutes outside [a, b); or, for an edge inside
/// the day starting at `day` (beside a midnight of the window), that daily cell minus
/// the raw part of the day outside [a, b). So a partial hour costs at most half an
/// hour of raw events, a partial day without hourly cells at most half a day. A cell
/// minus raw events needs those raw events (from `raw_from` on); the newest partial
/// hour or day reads as its whole cell when no call is newer than `b`.
fn edge_parts(
    index: usize,
    a: i64,
    b: i64,
    reach: Reach,
    day: Option<i64>,
) -> Vec<(Source, i64, i64)> {
    if a >= b {
        return Vec::new();
    }
    let mut best = vec![(Source::Raw, a, b)];
    // Hourly cells from the first hour that has one (every hour of a pinned day has
    // one); raw events before it.
    let hours_from = match day {
        Some(day) if reach.pinned.contains(&day) => reach.hours_from.min(day),
        _ => reach.hours_from,
    };
    let mut by_hours = false;
    if hours_from < b {
        let cells_from = ceil(hours_from.max(floor(a, HOUR_MS)), HOUR_MS);
        let start = cells_from.max(a);
        let mut hours = vec![(Source::Raw, a, start)];
        hours.extend(cell_parts(index, Grain::Hour, start, b, reach));
        by_hours = raw_span(&hours) < raw_span(&best);
        if by_hours {
            best = hours;
        }
    }
    if let Some(day) = day.filter(|day| *day >= reach.raw_from) {
        let daily = cell_parts(index, Grain::Day, a.max(day), b.min(day + DAY_MS), reach);
        // On a tie with hourly cells the daily cell wins: it holds each group once
        // where they hold it once an hour (today so far, for a window ending now: one
        // bucket of ~80k users instead of 15 of ~12k each at 10M calls a month).
        let (daily_raw, best_raw) = (raw_span(&daily), raw_span(&best));
        if daily_raw < best_raw || (by_hours && daily_raw == best_raw) {
            best = daily;
        }
    }
    merged(best)
}

/// [a, b) from cells of `grain`, every cell it touches existing: whole cells inside; a
/// partial first cell raw, or its cell minus the raw events before `a` when those are
/// fewer; a partial last cell likewise (or whole when nothing is newer than `b`). When
/// `a` and `b` share a cell, raw, or the cell minus both outer pieces.
fn cell_parts(index: usize, grain: Grain, a: i64, b: i64, reach: Reach) -> Vec<(Source, i64, i64)> {
    let step = match grain {
        Grain::Hour => HOUR_MS,
        Grain::Day => DAY_MS,
    };
    let cell = Source::Rollup(index, grain);
    let (ca, cb) = (floor(a, step), ceil(b, step));
    // The raw events after `b` in its cell: none when no call is newer than `b`.
    let after = if reach.newest_ms < b { 0 } else { cb - b };
    // A cell minus raw events only where they were not pruned (cells keep pruned sums).
    let (minus_start, minus_end) = (ca >= reach.raw_from, b >= reach.raw_from);
    if ceil(a, step) > floor(b, step) {
        // One cell holds [a, b) and neither end is on its border.
        return if minus_start && (a - ca) + after < b - a {
            vec![
                (cell, ca, cb),
                (Source::RawMinus, ca, a),
                (Source::RawMinus, b, b + after),
            ]
        } else {
            vec![(Source::Raw, a, b)]
        };
    }
    let (a_up, b_down) = (ceil(a, step), floor(b, step));
    let mut parts = if minus_start && a - ca < a_up - a {
        vec![(cell, ca, a_up), (Source::RawMinus, ca, a)]
    } else {
        vec![(Source::Raw, a, a_up)]
    };
    parts.push((cell, a_up, b_down));
    parts.extend(if (after == 0 || minus_end) && after < b - b_down {
        vec![(cell, b_down, cb), (Source::RawMinus, b, b + after)]
    } else {
        vec![(Source::Raw, b_down, b)]
    });
    merged(parts)
}

/// SQL and parameters for one raw part of the query, [from, to) of `events`.
fn build(
    workspace: WorkspaceId,
    query: &Query,
    (from, to): (i64, i64),
    access: &Access,
) -> (String, Vec<SqlValue>) {
    let (table, time) = (access.table(), "ts");
    let measures = RAW_MEASURES;
    let mut params: Vec<SqlValue> = vec![workspace.into(), from.into(), to.into()];
    let mut select = Vec::new();
    if let Some(bucket) = query.bucket {
        select.push(format!("({time} / {0}) * {0}", bucket.millis()));
    }
    select.extend(group_columns(query));
    let group_count = select.len();
    let mut filter = format!(
        "{}workspace_id = ? AND {time} >= ? AND {time} < ?",
        access.condition()
    );
    filter_sql(&query.filters, &mut filter, &mut params, None);
    let groups: Vec<String> = (1..=group_count).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {select}{comma}{measures} FROM {table} WHERE {filter}{group}",
        select = select.join(", "),
        comma = if select.is_empty() { "" } else { ", " },
        measures = measures.join(", "),
        group = if groups.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", groups.join(", "))
        },
    );
    (sql, params)
}

/// Append the dimension filters to a WHERE clause (columns of `events`, unqualified).
/// With a connection, a filter on only a dimension's missing label ("unversioned") that
/// no stored value spells out compares with `IS NULL`: an index can answer it (an
/// endpoint's calls without a prompt version, newest first) where the general form
/// reads every call of the window.
pub(super) fn filter_sql(
    f: &crate::query::Filters,
    filter: &mut String,
    params: &mut Vec<SqlValue>,
    c: Option<&Connection>,
) {
    let codes = |column: &str, codes: Vec<u8>, filter: &mut String| {
        if !codes.is_empty() {
            let list: Vec<String> = codes.iter().map(u8::to_string).collect();
            filter.push_str(&format!(" AND {column} IN ({})", list.join(", ")));
        }
    };
    codes(
        "environment",
        f.environment.iter().map(|e| e.code()).collect(),
        filter,
    );
    codes(
        "data_mode",
        f.data_mode.iter().map(|e| e.code()).collect(),
        filter,
    );
    codes(
        "status",
        f.status.iter().map(|e| e.code()).collect(),
        filter,
    );
    for (d, values) in &f.text {
        let Some(kind) = dim_kind(d) else { continue };
        // A missing value filters as its label ("unknown", "unversioned").
        let wants_missing = values.iter().any(|v| v == d.missing_label());
        // Events store a missing value as NULL, never 0 (dims ids start at 1).
        let only_missing = values.len() == 1
            && wants_missing
            && c.is_some_and(|c| !spelled_out(c, kind, d.missing_label()));
        if only_missing {
            filter.push_str(&format!(" AND {} IS NULL", column(d)));
            continue;
        }
        // One named value compares with `=`: an equality on an index column lets a read
        // ordered by time walk the index in order (`IN` over a subquery makes SQLite sort
        // every matching row first, e.g. a prompt version's newest latencies).
        let one_named = values.len() == 1 && !wants_missing;
        filter.push_str(&if one_named {
            format!(
                " AND {col} = (SELECT id FROM dims WHERE kind = {kind} AND value = ?)",
                col = column(d),
                kind = kind as u8,
            )
        } else {
            format!(
                " AND ({col} IN (SELECT id FROM dims WHERE kind = {kind} AND value IN ({ph})){missing})",
                col = column(d),
                kind = kind as u8,
                ph = placeholders(values.len()),
                missing = if wants_missing { format!(" OR COALESCE({}, 0) = 0", column(d)) } else { String::new() },
            )
        });
        params.extend(values.iter().map(|v| SqlValue::from(v.clone())));
    }
    for (key, values) in &f.tags {
        // As for text dimensions, "unknown" selects the calls without the tag (what
        // grouping by the tag labels them).
        let wants_missing = values
            .iter()
            .any(|v| v == Dimension::Tag(key.clone()).missing_label());
        // The sets that match, found once (an uncorrelated subquery): each row then only
        // tests its set id.
        filter.push_str(&format!(
            " AND (tag_set IN (SELECT id FROM tag_sets WHERE json_extract(tags, ?) IN ({})){})",
            placeholders(values.len()),
            if wants_missing {
                " OR tag_set IS NULL
                  OR tag_set IN (SELECT id FROM tag_sets WHERE json_extract(tags, ?) IS NULL)"
            } else {
                ""
            }
        ));
        params.push(tag_path(key).into());
        params.extend(values.iter().map(|v| SqlValue::from(v.clone())));
        if wants_missing {
            params.push(tag_path(key).into());
        }
    }
}

/// Whether a stored value of `kind` is literally `label` (a prompt version named
/// "unversioned"): then a filter on the label also means it. Unknown (an error) counts
/// as yes, which keeps the general form.
fn spelled_out(c: &Connection, kind: DimKind, label: &str) -> bool {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM dims WHERE kind = ?1 AND value = ?2)",
        (kind as u8, label),
        |r| r.get(0),
    )
    .unwrap_or(true)
}

/// A group column's value while parts are merged: a dims id or code (0 = missing), or
/// the text of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GroupValue {
    Id(i64),
    Text(Option<String>),
}

/// Groups while parts are merged: (bucket start, group values) -> sums. foldhash: a
/// day of users is tens of thousands of groups, hashed once per part.
type Merged = HashMap<GroupKey, Sums, foldhash::fast::RandomState>;
/// (bucket start, group values; slots past the query's group-by hold `no_group`'s).
type GroupKey = (Option<i64>, [GroupValue; 3]);

/// A group key's values before they are filled in.
fn no_group() -> [GroupValue; 3] {
    std::array::from_fn(|_| GroupValue::Id(0))
}

/// Longest a read waits for the rollups to catch up with the events it sees.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// After this long behind, `behind` is called (the events came from another process).
const BEHIND_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// What an aggregate reads besides the file, and whom it tells what it found.
pub struct Read<'a> {
    pub rollups: &'a Rollups,
    pub passes: &'a FirstPasses,
    /// Called when the totals are behind the file (another process wrote).
    pub behind: &'a dyn Fn(),
    /// Called with a day whose pin the read would have used.
    pub pin: &'a dyn Fn(i64),
}

/// Answer `query` from the rollups where they are exact for it, raw events elsewhere.
/// The rollup part and the raw part come from the same commit: the read snapshot's
/// `commit_seq` must equal the rollups' `seq` (the writer applies a commit's changes
/// right after it commits, so a read that sees the next commit first waits for it).
/// Top lists' first passes come from `passes` when their buckets did not change.
/// `behind` is called once when the rollups stay behind (commits by another process);
/// `pin` with each old day whose raw events the answer read for longer than an hour
/// and whose hourly cells would have spared that (`pin_day` builds them, off this read).
pub fn aggregate(
    c: &mut Connection,
    workspace: WorkspaceId,
    query: &Query,
    read_with: Read,
) -> Result<Answer> {
    let Read {
        rollups,
        passes,
        behind,
        pin,
    } = read_with;
    let family = choose_family(query);
    if plan(query, family, Reach::NONE)
        .iter()
        .all(|(source, _, _)| *source == Source::Raw)
    {
        return aggregate_all_raw(c, rollups, workspace, query);
    }
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        let tx = c.transaction()?;
        let totals = rollups.read();
        // The first read of the transaction: its snapshot starts here, while the totals
        // cannot change.
        let seq = commit_seq(&tx)?;
        if seq == totals.seq {
            // Only a tag read needs the workspace's tag sets (up to MAX_TAG_SETS ids).
            let tag_sets = match family {
                Some(TAG_FAMILY) => totals.tag_sets(workspace),
                _ => Some(Vec::new()),
            };
            if tag_sets.is_none() {
                // Too many tag sets for cells: the raw events answer.
                drop(totals);
                drop(tx);
                return aggregate_all_raw(c, rollups, workspace, query);
            }
            let raw_from = totals.raw_from(workspace);
            let reach = reach_of(&totals, workspace, family);
            let parts = plan(query, family, reach);
            let raw_parts = raw_parts(&totals, &tx, workspace, query, &parts)?;
            let lanes = super::read_lanes();
            let read = CellRead::new(&tx, &totals, workspace, query, &parts, tag_sets)?;
            let mut to_pin = family.map_or(Vec::new(), |f| days_to_pin(f, query, &parts, reach));
            to_pin.retain(|day| !totals.is_pinned(workspace, *day));
            let mut answer = match read {
                Some(read) if read.is_top_list(query) => {
                    // Both passes need the raw parts' rows: read before the totals go.
                    let mut raw = Vec::new();
                    read_raw_parts(
                        &tx,
                        workspace,
                        query,
                        &raw_parts,
                        &mut |b, ids, cell, sign| {
                            raw.push((b, ids, *cell, sign));
                            Ok(())
                        },
                    )?;
                    let answer = top_from_totals(&tx, &read, query, &raw, lanes, passes)?;
                    drop(read);
                    drop(totals);
                    answer
                }
                read => {
                    let mut groups = match &read {
                        Some(read) => from_totals(read, query, lanes)?,
                        None => CellGroups::new(query),
                    };
                    drop(read);
                    drop(totals);
                    // The raw parts add into the same groups: a query the rollups answer
                    // groups by ids only (no tags), so a raw row's group is a cell's.
                    read_raw_parts(
                        &tx,
                        workspace,
                        query,
                        &raw_parts,
                        &mut |b, ids, cell, sign| groups.add((b, ids), cell, sign),
                    )?;
                    finish_cells(&tx, query, groups.into_sums()?)?
                }
            };
            // The answer says which commit it saw (the budget counters' watermark).
            answer.seen = seq as u64;
            let mut raw_starts: Vec<i64> = parts
                .iter()
                .filter(|(source, _, _)| matches!(source, Source::Raw | Source::RawMinus))
                .map(|(_, a, _)| *a)
                .collect();
            if family == Some(TAG_FAMILY) {
                // Tag cells hold no pruned history (it keeps no tags).
                raw_starts.push(query.from_ms);
            }
            answer.raw_from_ms = pruned_raw(raw_from, raw_starts);
            to_pin.into_iter().for_each(pin);
            return Ok(answer);
        }
        drop(totals);
        drop(tx);
        wait_for_totals(started, &mut told, behind)?;
    }
}

/// How far `workspace`'s totals reach for a read of `family`.
fn reach_of(totals: &Totals, workspace: WorkspaceId, family: Option<usize>) -> Reach {
    Reach {
        hours_from: family.map_or(i64::MAX, |f| totals.hours_from(f, workspace)),
        raw_from: totals.raw_from(workspace).unwrap_or(i64::MIN),
        newest_ms: totals.newest_ms(workspace),
        pinned: totals.ready_pins(workspace),
    }
}

/// The days the dashboard's week and month of users (and the windows before them),
/// ending at `now_ms`, would ask to pin and that are not pinned yet: pinned ahead
/// (`SqliteStore::seal`, every minute), the first such read after a start or a
/// midnight does not pay half a day of raw events (400-800 ms at 10M calls a month)
/// while its pin builds.
pub fn days_to_warm(totals: &Totals, workspace: WorkspaceId, now_ms: i64) -> Vec<i64> {
    let family = FAMILIES
        .iter()
        .position(|f| f.name == "user")
        .expect("a user family");
    let mut days = Vec::new();
    if !totals.newest_hour.contains_key(&workspace) {
        return days;
    }
    let reach = reach_of(totals, workspace, Some(family));
    for length in [7 * DAY_MS, 30 * DAY_MS] {
        for back in [0, length] {
            let query = Query {
                from_ms: now_ms - back - length,
                to_ms: now_ms - back,
                filters: Default::default(),
                group_by: vec![Dimension::UserId],
                bucket: None,
                measures: Vec::new(),
                order_by: None,
                ascending: false,
                limit: 1,
                count_by_first: false,
            };
            let parts = plan(&query, Some(family), reach);
            for day in days_to_pin(family, &query, &parts, reach) {
                if !days.contains(&day) && !totals.is_pinned(workspace, day) {
                    days.push(day);
                }
            }
        }
    }
    days
}

/// The old days (before `family`'s recent hours, raw events kept) of which `parts`
/// read more than an hour of raw events within the day: with the day's hourly cells
/// (a pin) that read is at most half an hour. Only the days of a window's edges beside
/// one of its midnights, where `plan` uses a pin.
fn days_to_pin(
    family: usize,
    query: &Query,
    parts: &[(Source, i64, i64)],
    reach: Reach,
) -> Vec<i64> {
    let (d0, d1) = (ceil(query.from_ms, DAY_MS), floor(query.to_ms, DAY_MS));
    // As `plan`: edges with a day of their own where the window crosses a midnight.
    let day_edges = query.bucket != Some(crate::query::Bucket::Hour) && d0 <= d1;
    if FAMILIES[family].recent_hours.is_none() || !day_edges {
        return Vec::new();
    }
    let edge_days = [d0 - DAY_MS, d1];
    let mut days: Vec<i64> = parts
        .iter()
        .filter(|(s, a, b)| matches!(s, Source::Raw | Source::RawMinus) && b - a > HOUR_MS)
        .map(|(_, a, b)| (floor(*a, DAY_MS), floor(b - 1, DAY_MS)))
        .filter(|(day, last)| {
            day == last
                && edge_days.contains(day)
                && day + DAY_MS <= reach.hours_from
                && *day >= reach.raw_from
        })
        .map(|(day, _)| day)
        .collect();
    days.dedup();
    days
}

/// Longest a pin's build waits for the rollups to reach its snapshot's commit before
/// it gives up (a later read asks again).
const PIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Build a pin (`rollup::Pin`) of `day`: open it at the commit this connection's
/// snapshot sees (which the rollups then include: from there on every commit's
/// changes to the day's hours are kept), read the day's raw events by hour for each
/// family with recent hours from that snapshot, and add them. Nothing happens when the
/// day is pinned already or the rollups do not reach the snapshot within `PIN_WAIT`.
pub fn pin_day(
    c: &mut Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    day: i64,
) -> Result<()> {
    let started = std::time::Instant::now();
    let (tx, (id, ends)) = loop {
        let tx = c.transaction()?;
        let opened = {
            let mut totals = rollups.write();
            // The snapshot starts here, while the totals cannot change.
            let now = std::time::Instant::now();
            (commit_seq(&tx)? == totals.seq).then(|| {
                let ends = fill_ends(&totals, workspace, day);
                totals.open_pin(workspace, day, now).map(|id| (id, ends))
            })
        };
        match opened {
            Some(Some(pin)) => break (tx, pin),
            Some(None) => return Ok(()),
            None if started.elapsed() > PIN_WAIT => return Ok(()),
            None => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    };
    match hourly_cells(&tx, rollups, workspace, (day, id), &ends) {
        // The pin gave way (or the totals were rebuilt) while it was read.
        Err(StoreError::Closed) => return Ok(()),
        other => other?,
    }
    drop(tx);
    fill(rollups, workspace, id, &[], true)?;
    Ok(())
}

/// Where each family's hourly cells of a pinned `day` are to be filled up to: the
/// hours from `Totals::hours_from` on are kept already (families keep different numbers
/// of recent hours), and from the pin's opening on the folds keep every hour of the day.
/// So each family is filled up to the earlier of the day's end and its `hours_from` at
/// the opening (a family without recent hours, or with the whole day kept: nothing).
fn fill_ends(totals: &Totals, workspace: WorkspaceId, day: i64) -> [i64; FAMILIES.len()] {
    std::array::from_fn(|i| match FAMILIES[i].recent_hours {
        Some(_) => (day + DAY_MS).min(totals.hours_from(i, workspace)),
        None => day,
    })
}

/// Add the hourly cells of `day` of every family with recent hours to pin `id` (each up
/// to its end in `ends`), from the day's calls as the snapshot of `tx` sees them: each
/// call's contribution, as the fold adds it (so a pinned hour holds what the fold would
/// have kept). The calls come in time order (the time index), so one hour's cells are
/// summed at a time.
fn hourly_cells(
    tx: &Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    (day, id): (i64, u64),
    ends: &[i64; FAMILIES.len()],
) -> Result<()> {
    let families: Vec<usize> = (0..FAMILIES.len()).filter(|i| ends[*i] > day).collect();
    let mut hour_cells: HashMap<(usize, DimIds), Cell, foldhash::fast::RandomState> =
        HashMap::default();
    let mut hour = day;
    let flush = |hour: i64, cells: &mut HashMap<(usize, DimIds), Cell, _>| -> Result<()> {
        let drained: Vec<(usize, i64, DimIds, Cell)> = std::mem::take(cells)
            .into_iter()
            .map(|((family, dims), cell)| (family, hour, dims, cell))
            .collect();
        for chunk in drained.chunks(PIN_CHUNK) {
            if !fill(rollups, workspace, id, chunk, false)? {
                return Err(StoreError::Closed);
            }
        }
        Ok(())
    };
    let mut stmt = tx.prepare(&format!(
        "SELECT {CONTRIBUTION_COLUMNS} FROM events
         WHERE workspace_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts"
    ))?;
    let mut rows = stmt.query((workspace, day, day + DAY_MS))?;
    while let Some(row) = rows.next()? {
        let call = Contribution::from_row(row)?;
        let call_hour = call.ts.div_euclid(HOUR_MS) * HOUR_MS;
        if call_hour != hour {
            flush(hour, &mut hour_cells)?;
            hour = call_hour;
        }
        let measures = call.measures();
        for &family in families.iter().filter(|f| call.ts < ends[**f]) {
            let dims = call.dims(&FAMILIES[family]).map_err(write_error)?;
            let cell = hour_cells.entry((family, dims)).or_insert([0; N_MEASURES]);
            super::rollup::add_cell(cell, &measures, 1).map_err(write_error)?;
        }
    }
    flush(hour, &mut hour_cells)
}

/// A rollup write that failed (a sum out of range) while a pin was built.
fn write_error(e: super::rollup::WriteError) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Cells a pin's build adds under one write lock: reads wait for it, so a few thousand
/// at a time (a day of users at 10M calls a month is ~300k cells).
const PIN_CHUNK: usize = 4096;

/// Add `cells` to pin `id` (`Totals::fill_pin`): false when the pin is gone.
fn fill(
    rollups: &Rollups,
    workspace: WorkspaceId,
    id: u64,
    cells: &[(usize, i64, DimIds, Cell)],
    done: bool,
) -> Result<bool> {
    let filled = rollups.write().fill_pin(workspace, id, cells, done);
    filled.map_err(write_error)
}

/// A read whose snapshot is ahead of the totals waits a millisecond for the fold thread;
/// past `BEHIND_AFTER` it calls `behind` once (another process committed: the writer
/// rebuilds them), past `CATCH_UP_WAIT` it fails.
pub(super) fn wait_for_totals(
    started: std::time::Instant,
    told: &mut bool,
    behind: &dyn Fn(),
) -> Result<()> {
    let waited = started.elapsed();
    if waited > BEHIND_AFTER && !*told {
        behind();
        *told = true;
    }
    if waited > CATCH_UP_WAIT {
        return Err(StoreError::Database(
            "the rollups did not catch up with the events".into(),
        ));
    }
    std::thread::sleep(std::time::Duration::from_millis(1));
    Ok(())
}

/// A part of a window read from raw events, with its access.
type RawPart = ((Source, i64, i64), Access);

/// Per group (labelled), its latencies.
pub(super) type GroupLatencies = Vec<(Vec<String>, Vec<u32>)>;

/// The parts of `parts` read from raw events, each with its access.
fn raw_parts(
    totals: &Totals,
    tx: &Connection,
    workspace: WorkspaceId,
    query: &Query,
    parts: &[(Source, i64, i64)],
) -> Result<Vec<RawPart>> {
    let raw =
        |(source, _, _): &&(Source, i64, i64)| matches!(source, Source::Raw | Source::RawMinus);
    parts
        .iter()
        .filter(raw)
        .map(|part @ (_, from, to)| {
            let access = access::choose(
                totals,
                tx,
                workspace,
                &query.filters,
                (*from, *to),
                Shape::Whole,
            )?;
            Ok((*part, access))
        })
        .collect()
}

/// Answer `query`, which no rollup holds, from raw events, by the access the totals
/// make cheapest.
fn aggregate_all_raw(
    c: &mut Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    query: &Query,
) -> Result<Answer> {
    let window = (query.from_ms, query.to_ms);
    access::with_access(
        c,
        rollups,
        |tx, totals| match totals {
            Some(totals) => {
                access::choose(totals, tx, workspace, &query.filters, window, Shape::Whole)
            }
            None => Ok(Access::TimeIndex),
        },
        |tx, access| raw_answer(tx, workspace, query, &access),
    )
}

/// Answer `query` from raw events only, through the time index (the reference the
/// property test compares with).
pub fn aggregate_raw(c: &mut Connection, workspace: WorkspaceId, query: &Query) -> Result<Answer> {
    // One read transaction: the sums and the commit sequence come from one snapshot.
    let tx = c.transaction()?;
    raw_answer(&tx, workspace, query, &Access::TimeIndex)
}

/// `query`'s answer from the raw events `tx` sees, reached by `access`.
pub(super) fn raw_answer(
    tx: &Connection,
    workspace: WorkspaceId,
    query: &Query,
    access: &Access,
) -> Result<Answer> {
    let seq = commit_seq(tx)?;
    let mut merged = Merged::default();
    read_raw(
        tx,
        workspace,
        query,
        ((query.from_ms, query.to_ms), access),
        1,
        Tags::ByValue,
        &mut |bucket, group, cell, _| {
            merged
                .entry((bucket, group))
                .or_default()
                .add(&sums_of_cell(cell)?)?;
            Ok(())
        },
    )?;
    let groups: Vec<(GroupKey, Sums)> = merged.into_iter().collect();
    let mut answer = finish(tx, query, groups, |values| values)?;
    answer.seen = seq as u64;
    let raw_from = super::retention::raw_from(tx, workspace)?;
    answer.raw_from_ms = pruned_raw(raw_from, [query.from_ms]);
    Ok(answer)
}

/// `raw_from` when a part read from raw events starts before it (retention pruned
/// some of what that part would have counted).
fn pruned_raw(raw_from: Option<i64>, raw_starts: impl IntoIterator<Item = i64>) -> Option<i64> {
    let from = raw_from?;
    raw_starts
        .into_iter()
        .any(|start| start < from)
        .then_some(from)
}

/// A raw part's row as the rollups' groups take it: (bucket start, group ids, sums,
/// sign).
type RawRow = (Option<i64>, [u32; 3], Cell, i64);

/// Where `read_raw_parts` sends each row (the parts of `RawRow`).
type RawPartSink<'a> = dyn FnMut(Option<i64>, [u32; 3], &Cell, i64) -> Result<()> + 'a;

/// The raw parts of a plan, grouped by ids (as cells are), to `add`: the parts to add
/// first, then those to take away (so every group holds its whole daily cell before a
/// part leaves it).
fn read_raw_parts(
    c: &Connection,
    workspace: WorkspaceId,
    query: &Query,
    parts: &[RawPart],
    add: &mut RawPartSink,
) -> Result<()> {
    for (wanted, sign) in [(Source::Raw, 1), (Source::RawMinus, -1)] {
        for ((source, from, to), access) in parts {
            if *source == wanted {
                read_raw(
                    c,
                    workspace,
                    query,
                    ((*from, *to), access),
                    sign,
                    Tags::ById,
                    &mut |b, group, cell, sign| add(b, cell_ids(group)?, cell, sign),
                )?;
            }
        }
    }
    Ok(())
}

/// Where a raw read's rows go: (bucket start, group values, sums, sign).
type RawRowSink<'a> = dyn FnMut(Option<i64>, [GroupValue; 3], &Cell, i64) -> Result<()> + 'a;

/// How a raw read groups by a tag: by tag set id (as the tag family's cells, named
/// after the parts are summed) or by the tag's value.
#[derive(Clone, Copy, PartialEq)]
enum Tags {
    ById,
    ByValue,
}

/// The GROUP BY over raw events in [from, to): each row's (bucket, group, sums) goes to
/// `add` with `sign` (1: add it, -1: take it away).
fn read_raw(
    c: &Connection,
    workspace: WorkspaceId,
    query: &Query,
    (window, access): ((i64, i64), &Access),
    sign: i64,
    tags: Tags,
    add: &mut RawRowSink,
) -> Result<()> {
    let (sql, params) = build(workspace, query, window, access);
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt
        .query(access.params(&params).as_slice())
        .map_err(overflow_or)?;
    let bucketed = query.bucket.is_some() as usize;
    let n = bucketed + query.group_by.len();
    let mut tag_sets = TagSetValues::default();
    while let Some(r) = rows.next().map_err(overflow_or)? {
        let bucket_ms = if bucketed == 1 {
            Some(r.get::<_, i64>(0)?)
        } else {
            None
        };
        let group = group_of(c, r, query, bucketed, (tags, &mut tag_sets))?;
        add(bucket_ms, group, &cell_of(r, n)?, sign)?;
    }
    Ok(())
}

/// The group of a raw row whose group columns (as `group_columns` selects them) start
/// at column `first`.
fn group_of(
    c: &Connection,
    r: &rusqlite::Row,
    query: &Query,
    first: usize,
    (tags, tag_sets): (Tags, &mut TagSetValues),
) -> Result<[GroupValue; 3]> {
    let mut group = no_group();
    for (i, (d, g)) in query.group_by.iter().zip(group.iter_mut()).enumerate() {
        *g = match d {
            Dimension::Tag(_) if tags == Tags::ById => {
                GroupValue::Id(r.get::<_, Option<i64>>(first + i)?.unwrap_or(0))
            }
            Dimension::Tag(key) => GroupValue::Text(tag_sets.value(c, r.get(first + i)?, key)?),
            _ => GroupValue::Id(r.get(first + i)?),
        };
    }
    Ok(group)
}

/// The columns a raw read selects for `query`'s groups.
fn group_columns(query: &Query) -> Vec<String> {
    query
        .group_by
        .iter()
        .map(|d| match d {
            // By set: `read_raw` names each set's value of the key.
            Dimension::Tag(_) => "tag_set".to_string(),
            other => format!("COALESCE({}, 0)", column(other)),
        })
        .collect()
}

/// Per group of `query` (labelled), the latencies of its newest `limit` calls that
/// have one, newest first, from one read of the rows `access` reaches: for a listed
/// read, where a read per group would look every listed row up once per group.
pub(super) fn newest_latencies_by_group(
    c: &Connection,
    workspace: WorkspaceId,
    query: &Query,
    limit: usize,
    access: &Access,
) -> Result<GroupLatencies> {
    let mut params: Vec<SqlValue> =
        vec![workspace.into(), query.from_ms.into(), query.to_ms.into()];
    let mut filter = format!(
        "{}workspace_id = ? AND ts >= ? AND ts < ? AND latency_ms IS NOT NULL",
        access.condition()
    );
    filter_sql(&query.filters, &mut filter, &mut params, Some(c));
    let mut select = vec!["ts".to_string(), "latency_ms".to_string()];
    select.extend(group_columns(query));
    let sql = format!(
        "SELECT {} FROM {} WHERE {filter}",
        select.join(", "),
        access.table()
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(access.params(&params).as_slice())?;
    let mut groups: HashMap<[GroupValue; 3], Vec<(i64, u32)>> = HashMap::new();
    let mut tag_sets = TagSetValues::default();
    while let Some(r) = rows.next()? {
        let group = group_of(c, r, query, 2, (Tags::ByValue, &mut tag_sets))?;
        groups
            .entry(group)
            .or_default()
            .push((r.get(0)?, r.get(1)?));
    }
    let names = dim_names(c, groups.keys().flatten())?;
    Ok(groups
        .into_iter()
        .map(|(group, mut calls)| {
            calls.sort_unstable_by(|a, b| b.cmp(a));
            let latencies = calls.into_iter().take(limit).map(|(_, l)| l).collect();
            let labels = group
                .into_iter()
                .zip(&query.group_by)
                .map(|(g, d)| label(d, g, &names))
                .collect();
            (labels, latencies)
        })
        .collect())
}

/// The tags of the sets one raw read met, read from `tag_sets` once each.
#[derive(Default)]
struct TagSetValues {
    sets: HashMap<i64, std::collections::BTreeMap<String, String>>,
}

impl TagSetValues {
    /// The value of tag `key` in set `id` (None: the set lacks it, or the call has no
    /// tags).
    fn value(&mut self, c: &Connection, id: Option<i64>, key: &str) -> Result<Option<String>> {
        let Some(id) = id.filter(|id| *id != 0) else {
            return Ok(None);
        };
        let tags = match self.sets.entry(id) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                let json: String = c
                    .prepare_cached("SELECT tags FROM tag_sets WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))?;
                new.insert(serde_json::from_str(&json).map_err(|e| {
                    StoreError::Database(format!(
                        "tag set {id} is not a JSON object of strings: {e}"
                    ))
                })?)
            }
        };
        Ok(tags.get(key).cloned())
    }
}

/// A group of ids as a cell's (dims ids and codes fit in 32 bits).
fn cell_ids(group: [GroupValue; 3]) -> Result<[u32; 3]> {
    let mut ids = [0u32; 3];
    for (id, value) in ids.iter_mut().zip(group) {
        *id = match value {
            GroupValue::Id(id) => u32::try_from(id).map_err(|_| StoreError::SumOverflow)?,
            GroupValue::Text(_) => unreachable!("raw parts beside cells group tags by set id"),
        };
    }
    Ok(ids)
}

/// Ids a filter lets through; looked up once per rollup cell.
type IdSet = std::collections::HashSet<u32, foldhash::fast::RandomState>;

/// The ids a filter lets through for one family column (None: no filter on it). A
/// missing value filters as its label ("unknown", "unversioned"), id 0.
fn allowed_ids(
    c: &Connection,
    f: &crate::query::Filters,
    column_name: &str,
) -> Result<Option<IdSet>> {
    let codes =
        |codes: Vec<u8>| (!codes.is_empty()).then(|| codes.into_iter().map(u32::from).collect());
    match column_name {
        "environment" => return Ok(codes(f.environment.iter().map(|e| e.code()).collect())),
        "data_mode" => return Ok(codes(f.data_mode.iter().map(|e| e.code()).collect())),
        "status" => return Ok(codes(f.status.iter().map(|e| e.code()).collect())),
        _ => {}
    }
    let Some((d, values)) = f.text.iter().find(|(d, _)| column(d) == column_name) else {
        return Ok(None);
    };
    let Some(kind) = dim_kind(d) else {
        return Ok(None);
    };
    let mut ids = IdSet::default();
    if values.iter().any(|v| v == d.missing_label()) {
        ids.insert(0);
    }
    let sql = format!(
        "SELECT id FROM dims WHERE kind = {} AND value IN ({})",
        kind as u8,
        placeholders(values.len())
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(r) = rows.next()? {
        if let Ok(id) = u32::try_from(r.get::<_, i64>(0)?) {
            ids.insert(id);
        }
    }
    Ok(Some(ids))
}

/// The tag sets (of `sets`, the workspace's) whose tags pass every tag filter (None:
/// no tag filter). Set 0 is the calls without tags.
fn tag_sets_allowed(
    c: &Connection,
    f: &crate::query::Filters,
    sets: &[u32],
) -> Result<Option<IdSet>> {
    if f.tags.is_empty() {
        return Ok(None);
    }
    let mut names = TagSetValues::default();
    let mut ids = IdSet::default();
    for &id in sets.iter().chain(&[0]) {
        let mut passes = true;
        for (key, values) in &f.tags {
            let value = names.value(c, Some(i64::from(id)), key)?;
            let label = Dimension::Tag(key.clone()).missing_label();
            passes &= values
                .iter()
                .any(|v| value.as_deref().map_or(v == label, |value| v == value));
        }
        if passes {
            ids.insert(id);
        }
    }
    Ok(Some(ids))
}

/// A read of the rollups: the family it sums, what each of the family's columns lets
/// through, where the grouped dimensions sit in a cell's ids, and every bucket the
/// plan's rollup parts read, in time order.
struct CellRead<'a> {
    totals: &'a Totals,
    workspace: WorkspaceId,
    family: &'static Family,
    allowed: Vec<Option<Allowed>>,
    slots: Vec<usize>,
    buckets: Vec<CellBucket>,
    /// The cells of all the buckets.
    cells: usize,
}

/// (family index, grain, bucket start, cells in the bucket).
type CellBucket = (usize, Grain, i64, usize);

impl<'a> CellRead<'a> {
    /// None when no family answers `query` (then every part is raw).
    fn new(
        c: &Connection,
        totals: &'a Totals,
        workspace: WorkspaceId,
        query: &Query,
        parts: &[(Source, i64, i64)],
        tag_sets: Option<Vec<u32>>,
    ) -> Result<Option<CellRead<'a>>> {
        let Some(index) = choose_family(query) else {
            return Ok(None);
        };
        let family = &FAMILIES[index];
        let mut allowed = Vec::with_capacity(family.dims.len());
        for name in family.dims {
            let ids = match *name {
                "tag_set" => {
                    tag_sets_allowed(c, &query.filters, tag_sets.as_deref().unwrap_or(&[]))?
                }
                _ => allowed_ids(c, &query.filters, name)?,
            };
            allowed.push(ids.map(Allowed::new));
        }
        // choose_family found every grouped dimension in the family.
        let slots = query
            .group_by
            .iter()
            .filter_map(|d| family.dims.iter().position(|c| *c == column(d)))
            .collect();
        let mut buckets = Vec::new();
        for (source, from, to) in parts {
            if let Source::Rollup(f, grain) = *source {
                let sizes = totals.cells[f][grain as usize].sizes_in(workspace, (*from, *to));
                buckets.extend(sizes.map(|(start, n)| (f, grain, start, n)));
            }
        }
        let cells = buckets.iter().map(|b| b.3).sum();
        Ok(Some(CellRead {
            totals,
            workspace,
            family,
            allowed,
            slots,
            buckets,
            cells,
        }))
    }

    /// A cell's group ids (unused slots 0).
    fn group_of(&self, dims: &DimIds) -> [u32; 3] {
        let mut group = [0u32; 3];
        for (g, slot) in group.iter_mut().zip(&self.slots) {
            *g = dims[*slot];
        }
        group
    }

    /// Every cell of `buckets` that `allowed` lets through, decoded one after the other.
    fn each_in(
        &self,
        buckets: &[CellBucket],
        allowed: &[Option<Allowed>],
        mut f: impl FnMut(i64, &DimIds, &Cell) -> Result<()>,
    ) -> Result<()> {
        let keep = |dims: &DimIds| {
            allowed
                .iter()
                .zip(dims)
                .all(|(a, id)| a.as_ref().is_none_or(|ids| ids.contains(*id)))
        };
        let runs = runs(self.family, allowed);
        for &(family, grain, start, _) in buckets {
            let cells = &self.totals.cells[family][grain as usize];
            let bucket = (start, start + 1);
            match &runs {
                Some((runs, len)) => {
                    cells.each_in_runs(self.workspace, bucket, (runs, *len), keep, &mut f)?
                }
                None => cells.each_in(self.workspace, bucket, keep, &mut f)?,
            }
        }
        Ok(())
    }

    /// The cells of `combos` in every bucket, looked up.
    fn each_of(
        &self,
        combos: &[DimIds],
        mut f: impl FnMut(i64, &DimIds, &Cell) -> Result<()>,
    ) -> Result<()> {
        for &(family, grain, start, _) in &self.buckets {
            let cells = &self.totals.cells[family][grain as usize];
            cells.each_of(self.workspace, (start, start + 1), combos, &mut f)?;
        }
        Ok(())
    }

    /// The combinations to look up instead of decoding every cell (`few_cells`).
    fn lookups(&self, allowed: &[Option<Allowed>]) -> Option<Vec<DimIds>> {
        few_cells(self.family, allowed, self.buckets.len(), self.cells)
    }

    /// `sum` of the buckets, in lanes of consecutive buckets on as many threads when
    /// there are many cells (a week of users: ~900k at 10M calls a month; decoding the
    /// packed cells is most of such a read), the lanes' results merged in order.
    fn in_lanes<T: Send>(
        &self,
        buckets: &[CellBucket],
        most_lanes: usize,
        sum: impl Fn(&[CellBucket]) -> Result<T> + Sync,
        merge: impl Fn(&mut T, T) -> Result<()>,
    ) -> Result<T> {
        let cells: usize = buckets.iter().map(|b| b.3).sum();
        let lanes = most_lanes
            .min(cells / CELLS_PER_LANE)
            .min(buckets.len())
            .max(1);
        if lanes == 1 {
            return sum(buckets);
        }
        let mut chunks = Vec::with_capacity(lanes);
        let (mut begin, mut so_far) = (0, 0);
        for (i, b) in buckets.iter().enumerate() {
            so_far += b.3;
            if so_far * lanes >= cells * (chunks.len() + 1) || i + 1 == buckets.len() {
                chunks.push(&buckets[begin..=i]);
                begin = i + 1;
            }
        }
        let sum = &sum;
        std::thread::scope(|scope| {
            let others: Vec<_> = chunks[1..]
                .iter()
                .map(|chunk| {
                    std::thread::Builder::new()
                        .name("burnrate-sum".into())
                        .spawn_scoped(scope, move || sum(chunk))
                })
                .collect();
            let mut out = sum(chunks[0])?;
            for (other, chunk) in others.into_iter().zip(&chunks[1..]) {
                let other = match other {
                    Ok(lane) => lane
                        .join()
                        .map_err(|_| StoreError::Database("summing cells failed".into()))??,
                    // No thread to be had (a process at its limit): this one sums it.
                    Err(_) => sum(chunk)?,
                };
                merge(&mut out, other)?;
            }
            Ok(out)
        })
    }

    /// Whether `query` is a short top list of one dimension over so many cells that
    /// summing whole groups costs more than two passes (`top_from_totals`).
    fn is_top_list(&self, query: &Query) -> bool {
        let one_id = matches!(query.group_by.as_slice(), [d] if !matches!(d, Dimension::Tag(_)));
        one_id
            && query.bucket.is_none()
            && !query.count_by_first
            && query.limit <= TOP_LIST_MOST_ROWS
            && self.cells >= TOP_LIST_CELLS
            && self.lookups(&self.allowed).is_none()
    }
}

/// Sum the rollup parts of the plan, filtered and grouped as asked.
fn from_totals(read: &CellRead, query: &Query, most_lanes: usize) -> Result<CellGroups> {
    let add_cell = |out: &mut CellGroups, start: i64, dims: &DimIds, cell: &Cell| {
        let bucket = query
            .bucket
            .map(|b| start.div_euclid(b.millis()) * b.millis());
        out.add((bucket, read.group_of(dims)), cell, 1)
    };
    // A filter on a few tenants or users (the previous window of a top list, a
    // tenant's page) looks their cells up instead of decoding every cell of the window.
    if let Some(combos) = read.lookups(&read.allowed) {
        let mut out = CellGroups::new(query);
        read.each_of(&combos, |start, dims, cell| {
            add_cell(&mut out, start, dims, cell)
        })?;
        return Ok(out);
    }
    let sum = |buckets: &[CellBucket]| -> Result<CellGroups> {
        let mut out = CellGroups::new(query);
        // Sized once: growing a table of 100,000 groups copies and faults in its pages
        // again at every doubling.
        let cells: usize = buckets.iter().map(|b| b.3).sum();
        out.groups.reserve(cells.min(1 << 22));
        read.each_in(buckets, &read.allowed, |start, dims, cell| {
            add_cell(&mut out, start, dims, cell)
        })?;
        Ok(out)
    };
    read.in_lanes(&read.buckets, most_lanes, sum, CellGroups::merge)
}

/// A short top list of one dimension over many cells (a week of users), in two passes.
/// The first sums, per group, only the measures that order it (`OrderSums`, 32 bytes a
/// group instead of ~150) and every cell into the total; the second looks up the whole
/// sums of the groups that can make the cut (`query::contenders_by_key`). The answer is
/// `from_totals`' answer: the same groups make the cut, and the total is the same (a
/// group whose requests come to 0 holds no sums at all: its raw parts take away exactly
/// what its cells added).
fn top_from_totals(
    c: &Connection,
    read: &CellRead,
    query: &Query,
    raw: &[RawRow],
    most_lanes: usize,
    passes: &FirstPasses,
) -> Result<Answer> {
    let measure = query.order_by.unwrap_or(Measure::CostUsd);
    let fields = order_fields(measure);
    let slot = read.slots[0];
    let mut order = first_pass(read, fields, most_lanes, passes)?;
    for (_, ids, cell, sign) in raw {
        order.add_signed(ids[0], cell, *sign)?;
    }
    // The groups with requests, by the key they are ordered by.
    let key_of = |sums: &[i64; 3]| -> Result<Option<Fraction>> {
        let mut only = Sums::default();
        for (field, value) in fields.iter().zip(sums) {
            only.set_measure(*field, i128::from(*value))?;
        }
        Ok(only.sort_key(measure))
    };
    let counted = || order.groups.iter().filter(|(_, sums)| sums[0] > 0);
    let keys: Vec<Option<Fraction>> = counted()
        .map(|(_, sums)| key_of(sums))
        .collect::<Result<_>>()?;
    let cut = crate::query::cut_key(query, keys.iter().copied());
    let chosen: IdSet = counted()
        .zip(&keys)
        .filter(|(_, key)| crate::query::reaches(query, **key, cut))
        .map(|((id, _), _)| *id)
        .collect();
    // The second pass: the chosen groups' whole sums.
    let mut groups = CellGroups::new(query);
    let mut allowed = read.allowed.clone();
    allowed[slot] = Some(Allowed::new(chosen.clone()));
    let mut add = |_, dims: &DimIds, cell: &Cell| groups.add((None, read.group_of(dims)), cell, 1);
    match read.lookups(&allowed) {
        Some(combos) => read.each_of(&combos, &mut add)?,
        None => read.each_in(&read.buckets, &allowed, &mut add)?,
    }
    for (_, group, cell, sign) in raw.iter().filter(|r| chosen.contains(&r.1[0])) {
        groups.add((None, *group), cell, *sign)?;
    }
    let mut answer = finish_cells(c, query, groups.into_sums()?)?;
    answer.totals = match keys.is_empty() {
        true => Vec::new(),
        false => vec![Row {
            group: Vec::new(),
            bucket_ms: None,
            sums: sums_of_cell(&order.total)?,
        }],
    };
    answer.cut = keys.len().saturating_sub(query.limit);
    Ok(answer)
}

/// The first pass of a top list over every bucket of the read: its settled buckets (those
/// that start `SETTLING_MS` or more before the workspace's newest call) and its recent
/// ones, each summed once and kept in `passes` until one of its buckets changes, then
/// added together. Why two parts: late calls keep changing the last day or two, and
/// with them a key of every bucket; the settled part of a week (and all of the week
/// before it, which a top list's page compares with) stays.
fn first_pass(
    read: &CellRead,
    fields: &'static [usize],
    most_lanes: usize,
    passes: &FirstPasses,
) -> Result<OrderSums> {
    let settled_before = read
        .totals
        .newest_ms(read.workspace)
        .saturating_sub(SETTLING_MS);
    let settled = read.buckets.partition_point(|b| b.2 < settled_before);
    let (old, new) = read.buckets.split_at(settled);
    let mut order: Option<OrderSums> = None;
    for part in [old, new].into_iter().filter(|part| !part.is_empty()) {
        let key = PassKey::of(read, part, fields);
        let sums = match passes.get(&key) {
            Some(sums) => sums,
            None => {
                let mut sums = order_sums(read, part, fields, most_lanes)?;
                sums.groups.shrink_to_fit();
                let sums = std::sync::Arc::new(sums);
                passes.keep(key, sums.clone());
                sums
            }
        };
        match &mut order {
            None => order = Some((*sums).clone()),
            Some(order) => order.merge_from(&sums)?,
        }
    }
    Ok(order.unwrap_or_else(|| OrderSums::new(fields)))
}

/// How long before a workspace's newest call a bucket must start to count as settled
/// (`first_pass`): most late calls (retries, resends, a client's backlog) arrive within
/// it.
const SETTLING_MS: i64 = 2 * DAY_MS;

/// First passes of top lists kept for the next read of the same buckets, as long as
/// none of them changed: the dashboard's top lists of users and tenants sum up to a
/// million cells per window, and the week before the one shown (its comparison), or the
/// settled days of the week shown, change rarely. Exact: a kept pass is found only by
/// the generations of the buckets it summed (`Cells::generation`), which change with
/// every change of a bucket's sums; the least recently used go first beyond
/// `FIRST_PASS_BYTES`.
#[derive(Default)]
pub struct FirstPasses {
    kept: std::sync::Mutex<std::collections::VecDeque<(PassKey, std::sync::Arc<OrderSums>)>>,
}

/// Memory the kept first passes may take (a week of 190k users is ~7 MB).
const FIRST_PASS_BYTES: usize = 32 << 20;

impl FirstPasses {
    fn get(&self, key: &PassKey) -> Option<std::sync::Arc<OrderSums>> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let at = kept.iter().position(|(k, _)| k == key)?;
        let hit = kept.remove(at)?;
        let sums = hit.1.clone();
        kept.push_back(hit);
        Some(sums)
    }

    fn keep(&self, key: PassKey, sums: std::sync::Arc<OrderSums>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(k, _)| *k != key);
        kept.push_back((key, sums));
        while kept.iter().map(|(_, s)| s.heap_bytes()).sum::<usize>() > FIRST_PASS_BYTES {
            kept.pop_front();
        }
    }
}

/// What a first pass was summed from: the read's workspace, grouped slot, filters and
/// ordering measures, and each bucket with its generation.
#[derive(PartialEq)]
struct PassKey {
    workspace: WorkspaceId,
    family: &'static str,
    slot: usize,
    fields: &'static [usize],
    allowed: Vec<Option<Vec<u32>>>,
    /// (family, grain, start, generation) per bucket.
    buckets: Vec<(usize, Grain, i64, u64)>,
}

impl PassKey {
    fn of(read: &CellRead, buckets: &[CellBucket], fields: &'static [usize]) -> PassKey {
        let allowed = read
            .allowed
            .iter()
            .map(|a| {
                a.as_ref().map(|a| {
                    let mut ids = a.ids();
                    ids.sort_unstable();
                    ids
                })
            })
            .collect();
        let buckets = buckets
            .iter()
            .map(|&(family, grain, start, _)| {
                let cells = &read.totals.cells[family][grain as usize];
                (
                    family,
                    grain,
                    start,
                    cells.generation(read.workspace, start),
                )
            })
            .collect();
        PassKey {
            workspace: read.workspace,
            family: read.family.name,
            slot: read.slots[0],
            fields,
            allowed,
            buckets,
        }
    }
}

/// The first pass of a top list over `buckets`: every cell into `OrderSums`.
fn order_sums(
    read: &CellRead,
    buckets: &[CellBucket],
    fields: &'static [usize],
    most_lanes: usize,
) -> Result<OrderSums> {
    let slot = read.slots[0];
    let sum = |buckets: &[CellBucket]| -> Result<OrderSums> {
        let mut out = OrderSums::new(fields);
        // Sized once (see `from_totals`); pages untouched cost nothing.
        out.groups
            .reserve(buckets.iter().map(|b| b.3).sum::<usize>().min(1 << 22));
        read.each_in(buckets, &read.allowed, |_, dims, cell| {
            out.add(dims[slot], cell)
        })?;
        Ok(out)
    };
    read.in_lanes(buckets, most_lanes, sum, OrderSums::merge)
}

/// A top list reads in two passes (`top_from_totals`) from this many cells on...
const TOP_LIST_CELLS: usize = 50_000;
/// ...when it shows at most this many rows (the dashboard's pages show 100).
const TOP_LIST_MOST_ROWS: usize = 1_000;

/// The measures (indices in `MEASURES`) `Sums::sort_key` reads to order groups by `m`,
/// requests first (a group with no requests is in no answer).
fn order_fields(m: Measure) -> &'static [usize] {
    match m {
        Measure::Requests => &[0],
        Measure::Attempts | Measure::RetryRatio => &[0, 1],
        Measure::CostUsd | Measure::CostPerRequest => &[0, 2, 3],
        Measure::Unpriced => &[0, 3],
        Measure::InputTokens => &[0, 4],
        Measure::CachedTokens => &[0, 5],
        Measure::CacheWriteTokens => &[0, 6],
        Measure::OutputTokens => &[0, 7],
        Measure::ReasoningTokens => &[0, 8],
        Measure::TokensPerRequest => &[0, 4, 7],
        Measure::LatencyAvgMs => &[0, 9, 10],
        Measure::ErrorRate => &[0, 11],
        Measure::CacheHitRate => &[0, 4, 5],
    }
}

/// Per group id, the sums of the measures that order it (`order_fields`, at most 3),
/// and the total of every cell added: the first pass of a top list.
#[derive(Clone)]
struct OrderSums {
    fields: &'static [usize],
    /// Per group id: 1 + its index in `groups` (0: not met yet).
    first: Vec<u32>,
    groups: Vec<(u32, [i64; 3])>,
    total: Cell,
}

impl OrderSums {
    fn new(fields: &'static [usize]) -> OrderSums {
        OrderSums {
            fields,
            first: Vec::new(),
            groups: Vec::new(),
            total: [0; N_MEASURES],
        }
    }

    /// Add `cell` to group `id` and the total.
    fn add(&mut self, id: u32, cell: &Cell) -> Result<()> {
        for (t, m) in self.total.iter_mut().zip(cell) {
            *t = t.checked_add(*m).ok_or(StoreError::SumOverflow)?;
        }
        let fields = self.fields;
        let sums = self.group(id)?;
        for (s, field) in sums.iter_mut().zip(fields) {
            *s = s.checked_add(cell[*field]).ok_or(StoreError::SumOverflow)?;
        }
        Ok(())
    }

    /// Add `cell` (`sign` 1) or take it away (-1): a raw part's row.
    fn add_signed(&mut self, id: u32, cell: &Cell, sign: i64) -> Result<()> {
        let mut signed = [0; N_MEASURES];
        for (s, m) in signed.iter_mut().zip(cell) {
            *s = m.checked_mul(sign).ok_or(StoreError::SumOverflow)?;
        }
        self.add(id, &signed)
    }

    /// Add every group and the total of `other` (the same read's, over other buckets).
    fn merge(&mut self, other: OrderSums) -> Result<()> {
        self.merge_from(&other)
    }

    fn merge_from(&mut self, other: &OrderSums) -> Result<()> {
        for (t, m) in self.total.iter_mut().zip(other.total) {
            *t = t.checked_add(m).ok_or(StoreError::SumOverflow)?;
        }
        for (id, theirs) in &other.groups {
            for (s, m) in self.group(*id)?.iter_mut().zip(theirs) {
                *s = s.checked_add(*m).ok_or(StoreError::SumOverflow)?;
            }
        }
        Ok(())
    }

    /// About how many bytes it holds on the heap.
    fn heap_bytes(&self) -> usize {
        self.first.capacity() * std::mem::size_of::<u32>()
            + self.groups.capacity() * std::mem::size_of::<(u32, [i64; 3])>()
    }

    /// Group `id`'s sums, added when missing.
    fn group(&mut self, id: u32) -> Result<&mut [i64; 3]> {
        let index = id as usize;
        if index >= self.first.len() {
            self.first.resize((index + 1).next_power_of_two(), 0);
        }
        if self.first[index] == 0 {
            self.groups.push((id, [0; 3]));
            self.first[index] =
                u32::try_from(self.groups.len()).map_err(|_| StoreError::SumOverflow)?;
        }
        Ok(&mut self.groups[self.first[index] as usize - 1].1)
    }
}

/// Every cell id combination a read's filters allow, when each dimension of the family
/// is filtered or a closed vocabulary and a lookup per combination and bucket costs
/// less than decoding the buckets' cells (a lookup binary-searches a bucket's marks and
/// walks up to 16 cells: about what decoding `CELLS_PER_LOOKUP` cells costs).
fn few_cells(
    family: &Family,
    allowed: &[Option<Allowed>],
    buckets: usize,
    cells: usize,
) -> Option<Vec<DimIds>> {
    // At least a few dozen lookups per bucket: they cost microseconds in any case.
    let most = (cells / CELLS_PER_LOOKUP).max(MIN_LOOKUPS) / buckets.max(1);
    let mut combos: Vec<DimIds> = vec![DimIds::default()];
    for (slot, (name, allowed)) in family.dims.iter().zip(allowed).enumerate() {
        // A closed vocabulary's cells hold only its codes.
        let ids: Vec<u32> = match (allowed, *name) {
            (Some(Allowed::Few(ids)), _) => ids.clone(),
            (Some(Allowed::Many(ids)), _) if ids.len() <= most => ids.iter().copied().collect(),
            (Some(Allowed::Many(_)), _) => return None,
            (None, name) => closed_vocabulary(name)?,
        };
        if combos.len() * ids.len() > most {
            return None;
        }
        combos = with_each(&combos, slot, &ids);
    }
    combos.sort_unstable();
    Some(combos)
}

/// The leading ids of every cell a read keeps, when the family's first dimensions are
/// each filtered or a closed vocabulary, at least one filtered: (the combinations,
/// sorted, and how many dimensions they name). A bucket's cells are sorted by their ids,
/// so each combination's cells are one run (`Cells::each_in_runs`): a read of a tenant's
/// users decodes that tenant's cells, not the cells of every user.
fn runs(family: &Family, allowed: &[Option<Allowed>]) -> Option<(Vec<DimIds>, usize)> {
    let mut combos: Vec<DimIds> = vec![DimIds::default()];
    let (mut len, mut filtered) = (0, false);
    for (slot, (name, allowed)) in family.dims.iter().zip(allowed).enumerate() {
        let ids: Vec<u32> = match (allowed, *name) {
            (Some(allowed), _) => allowed.ids(),
            (None, name) => match closed_vocabulary(name) {
                Some(ids) => ids,
                None => break,
            },
        };
        if combos.len() * ids.len() > MOST_RUNS {
            break;
        }
        combos = with_each(&combos, slot, &ids);
        filtered |= allowed.is_some();
        len = slot + 1;
    }
    combos.sort_unstable();
    filtered.then_some((combos, len))
}

/// Every id a cell can hold in a dimension of a closed vocabulary (None: an open one).
fn closed_vocabulary(name: &str) -> Option<Vec<u32>> {
    match name {
        "environment" => Some(Environment::ALL.iter().map(|e| e.code().into()).collect()),
        "data_mode" => Some(DataMode::ALL.iter().map(|e| e.code().into()).collect()),
        "status" => Some(Status::ALL.iter().map(|e| e.code().into()).collect()),
        _ => None,
    }
}

/// Each of `combos` with each of `ids` in `slot`.
fn with_each(combos: &[DimIds], slot: usize, ids: &[u32]) -> Vec<DimIds> {
    combos
        .iter()
        .flat_map(|combo| {
            ids.iter().map(move |id| {
                let mut combo = *combo;
                combo[slot] = *id;
                combo
            })
        })
        .collect()
}

/// The most runs a read seeks per bucket (a seek is a binary search of the bucket's
/// marks); beyond, the cells are decoded one after the other.
const MOST_RUNS: usize = 256;

/// See `few_cells`.
const CELLS_PER_LOOKUP: usize = 64;
const MIN_LOOKUPS: usize = 64;

/// The fewest cells worth a lane of their own (a thread costs tens of microseconds).
const CELLS_PER_LANE: usize = 100_000;

/// The ids a filter lets through: a few (an environment, a data mode, a tenant) are
/// compared one by one, which beats hashing when every cell of a read asks.
#[derive(Clone)]
enum Allowed {
    Few(Vec<u32>),
    Many(IdSet),
}

impl Allowed {
    fn new(ids: IdSet) -> Allowed {
        if ids.len() <= 8 {
            Allowed::Few(ids.into_iter().collect())
        } else {
            Allowed::Many(ids)
        }
    }

    fn contains(&self, id: u32) -> bool {
        match self {
            Allowed::Few(ids) => ids.contains(&id),
            Allowed::Many(ids) => ids.contains(&id),
        }
    }

    fn ids(&self) -> Vec<u32> {
        match self {
            Allowed::Few(ids) => ids.clone(),
            Allowed::Many(ids) => ids.iter().copied().collect(),
        }
    }
}

/// Rollup cells, and the raw rows of the window's edges, summed per (bucket start,
/// group ids) while the parts are read: one table for the whole answer. With one
/// group dimension, groups are found through a table indexed by the group's id, so the
/// common case (a top list over a window: tens of thousands of users, each summed from
/// a cell per day) hashes nothing; the groups of one id in several buckets are told
/// apart by a scan, newest first, unless the bucket is later than every bucket of the
/// id (a new group: the parts come in time order, so nearly always when a bucket is
/// new; scanning 30 days of a user's groups to learn that took most of a month of
/// users by day). Keys of two or three dimensions go through a hash map.
struct CellGroups {
    by_id: bool,
    /// Per group id (one dimension): 1 + the index in `groups` of its newest group.
    first: Vec<u32>,
    /// Per group id: the latest bucket of its groups (`bucket_order`; i64::MIN: none).
    latest: Vec<i64>,
    /// Per key (several dimensions): 1 + its index in `groups`.
    index: HashMap<CellKey, u32, foldhash::fast::RandomState>,
    /// Each group's key, its sums, and (one dimension) 1 + the index of the previous
    /// group of the same id (0: none).
    groups: Vec<(CellKey, Cell, u32)>,
}

/// (bucket start, group ids; unused slots 0).
type CellKey = (Option<i64>, [u32; 3]);

impl CellGroups {
    fn new(query: &Query) -> CellGroups {
        CellGroups {
            by_id: query.group_by.len() <= 1,
            first: Vec::new(),
            latest: Vec::new(),
            index: HashMap::default(),
            groups: Vec::new(),
        }
    }

    /// Add `cell` (`sign` 1) or take it away (-1) from `key`'s group.
    fn add(&mut self, key: CellKey, cell: &Cell, sign: i64) -> Result<()> {
        let at = if self.by_id {
            self.find_by_id(key)?
        } else {
            let next = self.groups.len() as u32 + 1;
            let at = *self.index.entry(key).or_insert(next);
            if at == next {
                self.groups.push((key, [0; N_MEASURES], 0));
            }
            at
        };
        let total = &mut self.groups[at as usize - 1].1;
        for (t, m) in total.iter_mut().zip(cell) {
            let m = m.checked_mul(sign).ok_or(StoreError::SumOverflow)?;
            *t = t.checked_add(m).ok_or(StoreError::SumOverflow)?;
        }
        Ok(())
    }

    /// Add every group of `other` (the same query's, over other buckets).
    fn merge(&mut self, other: CellGroups) -> Result<()> {
        for (key, cell, _) in other.groups {
            self.add(key, &cell, 1)?;
        }
        Ok(())
    }

    /// Each group's key and sums (a negative sum is refused as an overflow).
    fn into_sums(self) -> Result<Vec<(CellKey, Sums)>> {
        self.groups
            .into_iter()
            .map(|(key, cell, _)| Ok((key, sums_of_cell(&cell)?)))
            .collect()
    }

    /// 1 + the index of `key`'s group, which is added when missing.
    fn find_by_id(&mut self, key: CellKey) -> Result<u32> {
        let id = key.1[0] as usize;
        if id >= self.first.len() {
            let len = (id + 1).next_power_of_two();
            self.first.resize(len, 0);
            self.latest.resize(len, i64::MIN);
        }
        let bucket = bucket_order(key.0);
        if bucket <= self.latest[id] {
            let mut at = self.first[id];
            while at != 0 {
                let (k, _, previous) = &self.groups[at as usize - 1];
                if *k == key {
                    return Ok(at);
                }
                at = *previous;
            }
        }
        self.groups.push((key, [0; N_MEASURES], self.first[id]));
        let at = u32::try_from(self.groups.len()).map_err(|_| StoreError::SumOverflow)?;
        self.first[id] = at;
        self.latest[id] = self.latest[id].max(bucket);
        Ok(at)
    }
}

/// A bucket start as a number that orders as the buckets do, above i64::MIN (no
/// bucket: one group per id).
fn bucket_order(bucket: Option<i64>) -> i64 {
    bucket.unwrap_or(i64::MIN + 1)
}

/// `finish` for groups of ids (cells and raw parts beside them); a tag's groups, by tag
/// set, are named by the tag's value and merged first (sets sharing a value are one
/// group).
fn finish_cells(c: &Connection, query: &Query, groups: Vec<(CellKey, Sums)>) -> Result<Answer> {
    let as_values = |ids: [u32; 3]| ids.map(|id| GroupValue::Id(i64::from(id)));
    if !query
        .group_by
        .iter()
        .any(|d| matches!(d, Dimension::Tag(_)))
    {
        return finish(c, query, groups, as_values);
    }
    let mut names = TagSetValues::default();
    let mut merged = Merged::default();
    for ((bucket, ids), sums) in groups {
        let mut values = as_values(ids);
        for (d, value) in query.group_by.iter().zip(values.iter_mut()) {
            if let (Dimension::Tag(key), GroupValue::Id(id)) = (d, &*value) {
                *value = GroupValue::Text(names.value(c, Some(*id), key)?);
            }
        }
        merged.entry((bucket, values)).or_default().add(&sums)?;
    }
    finish(c, query, merged.into_iter().collect(), |values| values)
}

/// Fold rollup groups into `merged`. A negative sum can only come from values stored out
/// of range: refused as an overflow, as for raw sums.
/// Total every group, then name only the groups that can make the cut (a week of
/// 200,000 users has tens of thousands of groups; a top-50 answer names about 50) and cut
/// the answer to the query's order and limit.
/// `values` gives a kept group's values from its key (ids or values).
fn finish<K: Clone>(
    c: &Connection,
    query: &Query,
    groups: Vec<((Option<i64>, K), Sums)>,
    values: impl Fn(K) -> [GroupValue; 3],
) -> Result<Answer> {
    let groups: Vec<((Option<i64>, K), Sums)> = groups
        .into_iter()
        .filter(|(_, sums)| sums.requests > 0)
        .collect();
    let first_counts =
        count_by_first(c, query, groups.iter().map(|((_, k), _)| values(k.clone())))?;
    let keys: Vec<(Option<i64>, &Sums)> = groups.iter().map(|((b, _), s)| (*b, s)).collect();
    let totals = crate::query::bucket_totals(keys.iter().copied())?;
    let mut kept = crate::query::contenders(query, &keys);
    kept.sort_unstable();
    let count = groups.len();
    let kept: Vec<(Option<i64>, [GroupValue; 3], Sums)> = groups
        .into_iter()
        .enumerate()
        .filter(|(i, _)| kept.binary_search(i).is_ok())
        .map(|(_, ((bucket_ms, key), sums))| (bucket_ms, values(key), sums))
        .collect();
    let names = dim_names(c, kept.iter().flat_map(|(_, group, _)| group.iter()))?;
    let out: Vec<Row> = kept
        .into_iter()
        .map(|(bucket_ms, group, sums)| Row {
            bucket_ms,
            sums,
            group: group
                .into_iter()
                .zip(&query.group_by)
                .map(|(g, d)| label(d, g, &names))
                .collect(),
        })
        .collect();
    let mut answer = crate::query::answer(query, out)?;
    answer.totals = totals;
    answer.cut = count.saturating_sub(query.limit);
    answer.first_counts = first_counts;
    Ok(answer)
}

/// `Answer::first_counts` of the groups whose values are `groups`: counted by the
/// first value's id, and only those ids named (a tenant's 60,000 user-days are counted,
/// never named).
fn count_by_first(
    c: &Connection,
    query: &Query,
    groups: impl Iterator<Item = [GroupValue; 3]>,
) -> Result<Vec<(String, u64)>> {
    let Some(first) = query.group_by.first().filter(|_| query.count_by_first) else {
        return Ok(Vec::new());
    };
    let mut by_value: HashMap<GroupValue, u64> = HashMap::new();
    for [value, ..] in groups {
        *by_value.entry(value).or_default() += 1;
    }
    let names = dim_names(c, by_value.keys())?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (value, n) in by_value {
        // Two values may share a label (a stored value spelling the missing label).
        *counts.entry(label(first, value, &names)).or_default() += n;
    }
    Ok(counts.into_iter().collect())
}

/// The measure columns from `n` on, in `MEASURES` order.
fn cell_of(r: &rusqlite::Row, n: usize) -> Result<Cell> {
    let mut cell = [0i64; N_MEASURES];
    for (i, value) in cell.iter_mut().enumerate() {
        *value = r.get::<_, Option<i64>>(n + i)?.unwrap_or(0);
    }
    Ok(cell)
}

/// The 14 measure sums in `MEASURES` order as `Sums`. A negative sum can only come from
/// values stored out of range (a token count that wrapped before ingest had bounds): it
/// is refused as an overflow rather than shown as a wrapped number.
fn sums_of_cell(cell: &[i64; N_MEASURES]) -> Result<Sums> {
    Ok(Sums::from_measures(cell.map(i128::from))?)
}

/// SQLite's SUM() raises "integer overflow" past i64: that is the sum being too large
/// for this window, not a broken database.
fn overflow_or(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("integer overflow") => {
            StoreError::SumOverflow
        }
        _ => e.into(),
    }
}

/// The text a group shows: vocabulary names for codes, dims text for ids, the missing
/// label for absent values.
fn label(d: &Dimension, g: GroupValue, names: &HashMap<i64, String>) -> String {
    match (d, g) {
        (Dimension::Environment, GroupValue::Id(c)) => Environment::from_code(c as u8)
            .map_or("prod", Environment::as_str)
            .into(),
        (Dimension::DataMode, GroupValue::Id(c)) => DataMode::from_code(c as u8)
            .map_or("real", DataMode::as_str)
            .into(),
        (Dimension::Status, GroupValue::Id(c)) => Status::from_code(c as u8)
            .map_or("error", Status::as_str)
            .into(),
        (_, GroupValue::Text(Some(t))) => t,
        (_, GroupValue::Id(id)) if id != 0 => names.get(&id).cloned().unwrap_or_default(),
        _ => d.missing_label().to_string(),
    }
}

/// Text of every dims id the rows reference, in one query.
fn dim_names<'a>(
    c: &Connection,
    values: impl Iterator<Item = &'a GroupValue>,
) -> Result<HashMap<i64, String>> {
    let mut ids: Vec<i64> = values
        .filter_map(|g| match g {
            GroupValue::Id(id) if *id != 0 => Some(*id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut names = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT id, value FROM dims WHERE id IN ({})",
            placeholders(chunk.len())
        );
        let mut stmt = c.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(chunk))?;
        while let Some(r) = rows.next()? {
            names.insert(r.get(0)?, r.get(1)?);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::super::rollup::{Changes, Contribution};
    use super::*;

    fn window(from_ms: i64, to_ms: i64) -> Query {
        Query {
            from_ms,
            to_ms,
            filters: Default::default(),
            group_by: vec![Dimension::TenantId],
            bucket: None,
            measures: vec![],
            order_by: None,
            ascending: false,
            limit: 10,
            count_by_first: false,
        }
    }

    /// Totals holding `calls`, folded as one commit.
    fn folded(calls: impl Iterator<Item = Contribution>) -> std::sync::Arc<Rollups> {
        let rollups = Rollups::new(Totals::default());
        let mut changes = Changes::default();
        for call in calls {
            changes.apply(&call, 1);
        }
        rollups.admit(&changes).unwrap();
        rollups.hand_off(changes, 1);
        rollups.flush();
        rollups
    }

    /// A read of many cells summed in lanes (one per core) answers as in one: every
    /// group's sums equal, whichever lane held its buckets.
    #[test]
    fn cells_summed_in_lanes_give_the_sums_of_one_lane() {
        let (days, users) = (5, 50_000);
        let calls = (0..days).flat_map(|day| {
            (0..users).map(move |user| Contribution {
                workspace: 1,
                ts: day * DAY_MS + (user % 24) * HOUR_MS,
                data_mode: (user % 3),
                user: 1 + (user * 7 + day) % users,
                attempts: 1,
                cost_nanos: (user % 5 != 0).then_some(user * 1_000 + day),
                input: user + day,
                output: 3,
                latency_ms: Some(day + 1),
                ..Default::default()
            })
        });
        let rollups = folded(calls);
        let totals = rollups.read();
        let conn = Connection::open_in_memory().unwrap();
        let mut query = window(0, days * DAY_MS);
        query.group_by = vec![Dimension::UserId];
        let parts = [(Source::Rollup(2, Grain::Day), 0, days * DAY_MS)];
        let read = CellRead::new(&conn, &totals, 1, &query, &parts, None)
            .unwrap()
            .unwrap();
        let sums = |lanes| {
            let groups = from_totals(&read, &query, lanes).unwrap();
            let mut sums = groups.into_sums().unwrap();
            sums.sort_by_key(|(key, _)| *key);
            sums
        };
        let (one, four) = (sums(1), sums(4));
        assert_eq!(one.len(), users as usize);
        assert_eq!(
            one.iter().map(|(_, s)| s.requests).sum::<u64>(),
            (days * users) as u64
        );
        assert_eq!(one, four);
        // A top list's first pass in lanes: the same sums, and the same answer, as in one.
        let order = |lanes| {
            let fields = order_fields(Measure::CostUsd);
            let mut order = order_sums(&read, &read.buckets, fields, lanes).unwrap();
            order.groups.sort_unstable();
            (order.groups, order.total)
        };
        let (one, four) = (order(1), order(4));
        assert_eq!(one.0.len(), users as usize);
        assert!(
            one == four,
            "lanes changed a group's or the total's first-pass sums"
        );
        let conn = named_users(users);
        query.limit = 10;
        let top = |lanes| {
            top_from_totals(&conn, &read, &query, &[], lanes, &FirstPasses::default()).unwrap()
        };
        let (one, four) = (top(1), top(4));
        assert_eq!(one.rows.len(), 10);
        assert_eq!(
            (one.rows, one.totals, one.cut),
            (four.rows, four.totals, four.cut)
        );
    }

    /// An in-memory `dims` table naming users 1..=`users`, out of id order (ties in a
    /// top list are broken by name).
    fn named_users(users: i64) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE dims (id INTEGER PRIMARY KEY, kind INTEGER, value TEXT)")
            .unwrap();
        let tx = conn.transaction().unwrap();
        for id in 1..=users {
            let name = format!("u{}", (id * 7_919) % 100_000);
            tx.execute("INSERT INTO dims VALUES (?1, 1, ?2)", (id, name))
                .unwrap();
        }
        tx.commit().unwrap();
        conn
    }

    /// A top list read in two passes (`top_from_totals`) answers as whole groups do:
    /// the same rows in the same order, the same totals and cut, for every order
    /// measure in both directions, with raw parts that add to groups and one that takes
    /// a group's whole sums away (it leaves the answer).
    #[test]
    fn a_top_list_in_two_passes_answers_as_whole_groups() {
        let (days, users) = (3, 3_000);
        let calls = (0..days).flat_map(|day| {
            (0..users).map(move |user| Contribution {
                workspace: 1,
                ts: day * DAY_MS + (user % 24) * HOUR_MS,
                user: 1 + (user * 7 + day) % users,
                status: i64::from(user % 11 == 0),
                attempts: 1 + (user % 4 == 0) as i64,
                // Ties on cost (user % 97), unpriced users, and one of a kind.
                cost_nanos: (user % 5 != 0).then_some((user % 97) * 1_000 + day),
                input: user % 13 + day,
                cached: user % 7,
                cache_write: user % 3,
                output: 3 + user % 17,
                reasoning: user % 2,
                latency_ms: (user % 9 != 0).then_some(user % 300 + day),
                ..Default::default()
            })
        });
        let rollups = folded(calls);
        let totals = rollups.read();
        let conn = named_users(users);
        let parts = [(Source::Rollup(2, Grain::Day), 0, days * DAY_MS)];
        let mut query = window(0, days * DAY_MS);
        query.group_by = vec![Dimension::UserId];
        let read = CellRead::new(&conn, &totals, 1, &query, &parts, None)
            .unwrap()
            .unwrap();
        let whole = from_totals(&read, &query, 1).unwrap();
        let mut raw: Vec<RawRow> = (1..40u32)
            .map(|user| {
                let mut cell = [0; N_MEASURES];
                (cell[0], cell[1], cell[2], cell[3]) = (1, 1, i64::from(user) * 3_000, 1);
                (None, [user * 61 % 3_000 + 1, 0, 0], cell, 1)
            })
            .collect();
        let gone = whole.groups[17];
        raw.push((None, gone.0 .1, gone.1, -1));
        for measure in Measure::ALL {
            for (ascending, limit) in [(false, 1), (false, 10), (true, 10), (false, 2_999)] {
                query.order_by = Some(*measure);
                query.ascending = ascending;
                query.limit = limit;
                let mut groups = from_totals(&read, &query, 1).unwrap();
                for (b, ids, cell, sign) in &raw {
                    groups.add((*b, *ids), cell, *sign).unwrap();
                }
                let expected = finish_cells(&conn, &query, groups.into_sums().unwrap()).unwrap();
                let passes = FirstPasses::default();
                let got = top_from_totals(&conn, &read, &query, &raw, 1, &passes).unwrap();
                let what = format!("{measure:?} ascending {ascending} limit {limit}");
                assert_eq!(got.rows, expected.rows, "{what}");
                assert_eq!(got.totals, expected.totals, "{what}");
                assert_eq!(got.cut, expected.cut, "{what}");
                assert!(got
                    .rows
                    .iter()
                    .all(|r| r.group[0] != format!("u{}", (gone.0 .1[0] * 7_919) % 100_000)));
            }
        }
        assert_eq!(whole.groups.len(), users as usize);
    }

    /// A kept first pass answers only while none of its buckets changed: a top list read
    /// again after a commit that moves one user into the lead (in a settled day, and in
    /// a recent one) answers as a read that keeps nothing, and unchanged reads reuse it.
    #[test]
    fn a_kept_first_pass_gives_way_to_any_change_of_its_buckets() {
        let (days, users) = (6, 3_000);
        let call = |day: i64, user: i64, cost: i64| Contribution {
            workspace: 1,
            ts: day * DAY_MS + (user % 24) * HOUR_MS,
            user,
            attempts: 1,
            cost_nanos: Some(cost),
            input: 10,
            output: 3,
            ..Default::default()
        };
        let calls = (0..days).flat_map(|day| (1..=users).map(move |u| call(day, u, u * 1_000)));
        let rollups = folded(calls);
        let conn = named_users(users);
        let mut query = window(0, days * DAY_MS);
        query.group_by = vec![Dimension::UserId];
        query.limit = 5;
        let parts = [(Source::Rollup(2, Grain::Day), 0, days * DAY_MS)];
        let passes = FirstPasses::default();
        let answers = |rollups: &Rollups| {
            let totals = rollups.read();
            let read = CellRead::new(&conn, &totals, 1, &query, &parts, None)
                .unwrap()
                .unwrap();
            let kept = top_from_totals(&conn, &read, &query, &[], 1, &passes).unwrap();
            let fresh =
                top_from_totals(&conn, &read, &query, &[], 1, &FirstPasses::default()).unwrap();
            (kept, fresh)
        };
        let (kept, fresh) = answers(&rollups);
        assert_eq!(kept.rows, fresh.rows);
        assert_eq!(
            kept.rows[0].group,
            vec![format!("u{}", (users * 7_919) % 100_000)]
        );
        // Two parts (settled days, and the last two) are kept.
        assert_eq!(passes.kept.lock().unwrap().len(), 2);
        let (again, _) = answers(&rollups);
        assert_eq!(again.rows, kept.rows);
        assert_eq!(passes.kept.lock().unwrap().len(), 2);
        for (seq, day) in [(2, 0), (3, days - 1)] {
            let mut changes = Changes::default();
            changes.apply(&call(day, 7 + seq, 1_000_000_000), 1);
            rollups.admit(&changes).unwrap();
            rollups.hand_off(changes, seq);
            rollups.flush();
            let (kept, fresh) = answers(&rollups);
            assert_eq!(kept.rows, fresh.rows, "after a change of day {day}");
            assert_eq!(kept.totals, fresh.totals, "after a change of day {day}");
            let lead = format!("u{}", ((7 + seq) * 7_919) % 100_000);
            assert_eq!(
                kept.rows[0].group,
                vec![lead],
                "after a change of day {day}"
            );
        }
    }

    /// The measures `order_fields` names are all a group's sort key reads: a group's
    /// key from only those sums is its key from all of them, for every measure (a
    /// missing field would order every group as tied, and the second pass would look
    /// up every group).
    #[test]
    fn a_groups_order_needs_only_its_order_fields() {
        let cells: Vec<Cell> = (0..200i64)
            .map(|i| std::array::from_fn(|m| (i * 7 + m as i64 * 13) % (5 + m as i64) * (i % 3)))
            .collect();
        for measure in Measure::ALL {
            let fields = order_fields(*measure);
            for cell in &cells {
                let mut only = [0; N_MEASURES];
                for field in fields {
                    only[*field] = cell[*field];
                }
                let whole = sums_of_cell(cell).unwrap().sort_key(*measure);
                assert_eq!(
                    sums_of_cell(&only).unwrap().sort_key(*measure),
                    whole,
                    "{measure:?} {cell:?}"
                );
            }
        }
    }

    /// The days pinned ahead are where a week and a month of users ending now, and the
    /// windows before them, start and end: one day each, all four before the recent
    /// hours; none when the windows start at midnight (no partial day).
    #[test]
    fn the_days_warmed_ahead_are_the_edges_of_the_dashboards_user_windows() {
        let rollups = folded((0..70 * 24).map(|hour| Contribution {
            workspace: 1,
            ts: hour * HOUR_MS,
            user: 1 + hour % 5,
            attempts: 1,
            ..Default::default()
        }));
        let totals = rollups.read();
        let now = 70 * DAY_MS - HOUR_MS - 26 * 60_000;
        let mut days = days_to_warm(&totals, 1, now);
        days.sort_unstable();
        let day_of = |t: i64| floor(t, DAY_MS);
        let expected: Vec<i64> = [60, 30, 14, 7]
            .map(|back| day_of(now - back * DAY_MS))
            .to_vec();
        assert_eq!(days, expected);
        assert!(
            days_to_warm(&totals, 2, now).is_empty(),
            "no calls, nothing to pin"
        );
        assert!(
            days_to_warm(&totals, 1, 69 * DAY_MS).is_empty(),
            "windows from midnight"
        );
    }

    /// The partial hours of a window inside one day: each reads as its cell minus the
    /// raw minutes outside the window when those are fewer than the minutes inside it
    /// (and where raw events were not pruned), the newest as its whole cell when no call
    /// is newer than the window's end.
    #[test]
    fn partial_hours_read_from_cells_where_that_is_exact_and_cheaper() {
        let (day, m) = (10 * DAY_MS, 60_000);
        let main = Some(0);
        let known = |newest_ms| Reach {
            hours_from: i64::MIN,
            raw_from: i64::MIN,
            newest_ms,
            ..Reach::NONE
        };
        let (h10, h11, h14, h15) = (
            day + 10 * HOUR_MS,
            day + 11 * HOUR_MS,
            day + 14 * HOUR_MS,
            day + 15 * HOUR_MS,
        );
        let q = window(h10 + 20 * m, h14 + 40 * m);
        // Nothing newer than the end: the last hour is its whole cell.
        assert_eq!(
            plan(&q, main, known(h14 + 39 * m)),
            vec![
                (Source::Rollup(0, Grain::Hour), h10, h15),
                (Source::RawMinus, h10, h10 + 20 * m),
            ]
        );
        // A call at the end itself (or later): the last hour's 20 minutes after the
        // window are fewer than its 40 inside.
        assert_eq!(
            plan(&q, main, known(h14 + 40 * m)),
            vec![
                (Source::Rollup(0, Grain::Hour), h10, h15),
                (Source::RawMinus, h10, h10 + 20 * m),
                (Source::RawMinus, h14 + 40 * m, h15),
            ]
        );
        // Starting at :40 and ending at :10, the minutes inside are the fewer: raw.
        let late_start = window(h10 + 40 * m, h14 + 10 * m);
        assert_eq!(
            plan(&late_start, main, known(i64::MAX)),
            vec![
                (Source::Rollup(0, Grain::Hour), h11, h14),
                (Source::Raw, h10 + 40 * m, h11),
                (Source::Raw, h14, h14 + 10 * m),
            ]
        );
        // Raw events of the first hour pruned: no cell minus raw there.
        let pruned = Reach {
            raw_from: h11,
            ..known(i64::MAX)
        };
        assert_eq!(
            plan(&q, main, pruned),
            vec![
                (Source::Rollup(0, Grain::Hour), h11, h15),
                (Source::Raw, h10 + 20 * m, h11),
                (Source::RawMinus, h14 + 40 * m, h15),
            ]
        );
    }

    #[test]
    fn a_last_24_hours_reads_today_so_far_as_one_daily_cell() {
        let (today, m) = (10 * DAY_MS, 60_000);
        let reach = |newest_ms| Reach {
            hours_from: i64::MIN,
            raw_from: i64::MIN,
            newest_ms,
            ..Reach::NONE
        };
        let now = today + 14 * HOUR_MS + 40 * m;
        let last_24_hours = window(now - DAY_MS, now);
        // Yesterday from 14:40: 20 raw minutes, then by hour; today's 14 hours and 40
        // minutes as today's cell (nothing is newer than now), not 15 hourly cells.
        assert_eq!(
            plan(&last_24_hours, Some(0), reach(now - m)),
            vec![
                (Source::Rollup(0, Grain::Hour), now - DAY_MS + 20 * m, today),
                (Source::Rollup(0, Grain::Day), today, today + DAY_MS),
                (Source::Raw, now - DAY_MS, now - DAY_MS + 20 * m),
            ]
        );
        // The window before it ends at a call: its end day's cell would take away 9
        // hours and 20 minutes of raw events, that day's hours 20 minutes.
        let before = window(now - 2 * DAY_MS, now - DAY_MS);
        let parts = plan(&before, Some(0), reach(now));
        assert!(parts
            .iter()
            .all(|(source, _, _)| *source != Source::Rollup(0, Grain::Day)));
        // By hour, the answer needs hours: never a daily cell.
        let mut by_hour = last_24_hours.clone();
        by_hour.bucket = Some(crate::query::Bucket::Hour);
        let parts = plan(&by_hour, Some(0), reach(now - m));
        assert!(parts
            .iter()
            .all(|(source, _, _)| *source != Source::Rollup(0, Grain::Day)));
    }

    /// How many times each moment is counted by a plan: +1 inside a cell part (a cell
    /// counts its whole hour or day) or a raw part, -1 inside a raw part taken away.
    fn coverage(parts: &[(Source, i64, i64)], t: i64) -> i64 {
        parts
            .iter()
            .filter(|(_, a, b)| *a <= t && t < *b)
            .map(|(s, _, _)| if *s == Source::RawMinus { -1 } else { 1 })
            .sum()
    }

    /// Random windows, families with and without old hourly cells, pruned raw events
    /// and a newest call anywhere: every plan counts each moment of the window once and
    /// no moment outside it where a call can be, uses cells only where they exist and
    /// takes raw events away only where they were kept; with hourly cells everywhere
    /// it reads at most half an hour of raw events per edge of the window, with daily
    /// cells only at most half a day.
    #[test]
    fn every_plan_counts_each_moment_of_its_window_once_and_reads_little_raw() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let m = 60_000;
        let base = 100 * DAY_MS;
        for case in 0..3000 {
            let from = base + rng.random_range(0..5 * DAY_MS / m) * m + rng.random_range(0..m);
            let to = from + rng.random_range(1..4 * DAY_MS / m) * m + rng.random_range(0..m);
            let hourly = rng.random_bool(0.2);
            let mut q = window(from, to);
            q.bucket = hourly.then_some(crate::query::Bucket::Hour);
            let any = |rng: &mut rand::rngs::StdRng, none: i64| {
                if rng.random_bool(0.5) {
                    none
                } else {
                    base + rng.random_range(0..10 * DAY_MS / HOUR_MS) * HOUR_MS
                }
            };
            let hours_from = any(&mut rng, i64::MIN);
            let raw_from = floor(any(&mut rng, i64::MIN).max(base - DAY_MS), DAY_MS);
            let raw_from = if raw_from == base - DAY_MS {
                i64::MIN
            } else {
                raw_from
            };
            let newest_ms = if rng.random_bool(0.5) {
                i64::MAX
            } else {
                to + rng.random_range(-HOUR_MS..HOUR_MS)
            };
            let reach = Reach {
                hours_from: hours_from.max(raw_from),
                raw_from,
                newest_ms,
                ..Reach::NONE
            };
            let parts = plan(&q, Some(1), reach);
            let ctx = format!("case {case}: {q:?} {reach:?} -> {parts:?}");
            for (source, a, b) in &parts {
                assert!(a < b, "{ctx}");
                match source {
                    Source::Rollup(_, Grain::Hour) => {
                        assert!(*a % HOUR_MS == 0 && *b % HOUR_MS == 0, "{ctx}");
                        assert!(*a >= reach.hours_from, "{ctx}");
                    }
                    Source::Rollup(_, Grain::Day) => {
                        assert!(*a % DAY_MS == 0 && *b % DAY_MS == 0 && !hourly, "{ctx}");
                    }
                    Source::RawMinus => assert!(*a >= raw_from, "{ctx}"),
                    Source::Raw => {}
                }
            }
            let edges = [from, to];
            let mut moments: Vec<i64> = (floor(from, DAY_MS) - DAY_MS..ceil(to, DAY_MS) + DAY_MS)
                .step_by(m as usize / 2)
                .collect();
            let borders = parts.iter().flat_map(|(_, a, b)| [*a, *b]);
            moments.extend(
                edges
                    .into_iter()
                    .chain(borders)
                    .flat_map(|t| [t - 1, t, t + 1]),
            );
            for t in moments {
                let want = i64::from(from <= t && t < to);
                if t <= newest_ms || want == 1 {
                    assert_eq!(coverage(&parts, t), want, "at {t}: {ctx}");
                }
            }
            if raw_from == i64::MIN && newest_ms == i64::MAX {
                let limit = if reach.hours_from == i64::MIN {
                    HOUR_MS
                } else if !hourly && ceil(from, DAY_MS) < floor(to, DAY_MS) && hours_from > to {
                    DAY_MS
                } else {
                    continue;
                };
                assert!(raw_span(&parts) <= limit, "{ctx}");
            }
        }
    }

    /// A window starting late on day 1 and ending after day 3: day 1's cell minus its raw
    /// hours before the window is the cheaper read, but only where raw events exist; a
    /// pruned day 1 reads its remaining raw rows (and the answer says so).
    #[test]
    fn a_day_cell_minus_raw_events_is_used_only_where_raw_events_exist() {
        let (d1, d2, d4) = (10 * DAY_MS, 11 * DAY_MS, 13 * DAY_MS);
        let q = window(d1 + 6 * HOUR_MS, d4);
        let tenant = Some(1);
        let days_only = |raw_from| Reach {
            hours_from: i64::MAX,
            raw_from,
            newest_ms: i64::MAX,
            ..Reach::NONE
        };
        let unpruned = plan(&q, tenant, days_only(i64::MIN));
        assert!(unpruned.contains(&(Source::RawMinus, d1, d1 + 6 * HOUR_MS)));
        let pruned = plan(&q, tenant, days_only(d2));
        assert!(pruned.iter().all(|(s, _, _)| *s != Source::RawMinus));
        assert!(pruned.contains(&(Source::Raw, d1 + 6 * HOUR_MS, d2)));
        let starts = pruned
            .iter()
            .filter(|(s, _, _)| matches!(s, Source::Raw | Source::RawMinus))
            .map(|(_, a, _)| *a);
        assert_eq!(pruned_raw(Some(d2), starts), Some(d2));
        // A window inside the raw range says nothing.
        let recent = plan(&window(d2, d4), tenant, days_only(d2));
        let starts = recent
            .iter()
            .filter(|(s, _, _)| *s == Source::Raw)
            .map(|(_, a, _)| *a);
        assert_eq!(pruned_raw(Some(d2), starts), None);
    }
}
