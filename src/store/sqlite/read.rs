//! Read queries of the SQLite backend: the request explorer page, totals, unpriced models,
//! per-request values for the gate.

use super::access::{self, Access, Shape};
use super::costliest::{Candidates, Kind, Selection};
use super::ms_to_rfc3339;
use super::rollup::{commit_seq, Rollups, Totals, DAY_MS};
use super::schema::DimKind;
use crate::event::{CostSource, DataMode, Environment, Operation, ServiceTier, Status};
use crate::money::Usd;
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};

/// Dimension ids resolved to their text inline, so a page is one query.
pub(super) const EVENT_SELECT: &str = "
    SELECT e.id, e.external_request_id, e.idless, e.ts, e.received_at, e.attempt, e.attempts,
        (SELECT value FROM dims WHERE id = e.provider),
        (SELECT value FROM dims WHERE id = e.model),
        (SELECT value FROM dims WHERE id = e.endpoint),
        (SELECT value FROM dims WHERE id = e.prompt_version),
        (SELECT value FROM dims WHERE id = e.tenant),
        (SELECT value FROM dims WHERE id = e.user),
        e.input_tokens, e.cached_tokens, e.cache_write_tokens, e.output_tokens, e.reasoning_tokens,
        e.image_count, e.latency_ms, e.status,
        (SELECT value FROM dims WHERE id = e.error_code),
        e.data_mode, e.environment, e.operation, e.service_tier, e.usage_missing,
        e.cost_nanos, e.cost_source,
        (SELECT value FROM dims WHERE id = e.price_entry),
        (SELECT value FROM dims WHERE id = e.price_book),
        (SELECT tags FROM tag_sets WHERE tag_sets.id = e.tag_set), e.repriced_at
    FROM events e";

pub(super) fn stored_event(r: &rusqlite::Row) -> rusqlite::Result<(i64, i64, StoredEvent)> {
    let code = |i: usize| -> rusqlite::Result<u8> { r.get::<_, u8>(i) };
    // Token counts are stored as i64. One written before ingest had bounds may have
    // wrapped negative: its bits read as u64 are what the client sent, so the event
    // still lists (never an error that hides every event of the page).
    let tokens = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)? as u64) };
    let input = tokens(13)?;
    let output = tokens(16)?;
    let ts: i64 = r.get(3)?;
    let tags: Option<String> = r.get(31)?;
    let event = StoredEvent {
        external_request_id: r.get(1)?,
        idless: r.get(2)?,
        timestamp: ms_to_rfc3339(ts),
        received_at: ms_to_rfc3339(r.get(4)?),
        attempt: r.get(5)?,
        attempts: r.get(6)?,
        provider: r.get(7)?,
        model: r.get(8)?,
        endpoint_tag: r.get(9)?,
        prompt_version: r.get(10)?,
        tenant_id: r.get(11)?,
        user_id: r.get(12)?,
        input_tokens: input,
        cached_tokens: tokens(14)?,
        cache_write_tokens: tokens(15)?,
        output_tokens: output,
        reasoning_tokens: tokens(17)?,
        total_tokens: input.saturating_add(output),
        image_count: r.get(18)?,
        latency_ms: r.get(19)?,
        status: Status::from_code(code(20)?).map_or("error", Status::as_str),
        error_code: r.get(21)?,
        data_mode: DataMode::from_code(code(22)?).map_or("real", DataMode::as_str),
        environment: Environment::from_code(code(23)?).map_or("prod", Environment::as_str),
        operation: Operation::from_code(code(24)?).map_or("chat", Operation::as_str),
        service_tier: ServiceTier::from_code(code(25)?).map_or("standard", ServiceTier::as_str),
        usage_missing: r.get(26)?,
        cost_usd: r.get::<_, Option<i64>>(27)?.map(Usd),
        cost_source: r
            .get::<_, Option<u8>>(28)?
            .and_then(CostSource::from_code)
            .map(CostSource::as_str),
        price_entry_id: r.get(29)?,
        price_book_version: r.get(30)?,
        repriced_at: r.get::<_, Option<i64>>(32)?.map(ms_to_rfc3339),
        tags: tags
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
    };
    Ok((ts, r.get(0)?, event))
}

/// A page's cursor: the position (time, row) of its last row, newest first. Opaque to
/// callers (the contract says cursors are strings a client hands back unchanged), so
/// base64 of a versioned text rather than the row id in plain sight.
fn cursor_of(ts: i64, row: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{ts}:{row}"))
}

/// A costliest-first page's cursor: the cost, time and row of its last row.
fn cost_cursor_of(cost: i64, ts: i64, row: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v2:{cost}:{ts}:{row}"))
}

fn parse_cost_cursor(cursor: &str) -> Option<(i64, i64, i64)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.strip_prefix("v2:")?.split(':');
    let cost = parts.next()?.parse().ok()?;
    let ts = parts.next()?.parse().ok()?;
    let row = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((cost, ts, row))
}

fn parse_cursor(cursor: &str) -> Option<(i64, i64)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.strip_prefix("v1:")?.split(':');
    let ts = parts.next()?.parse().ok()?;
    let row = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((ts, row))
}

/// A page of stored calls. Most expensive first, the calls come from the costliest
/// lists the rollups keep (`costliest.rs`) when `lists` is given and they are exact for
/// the page; otherwise (and newest first) from one read of the window's rows.
pub fn events(
    c: &mut Connection,
    calls: &std::sync::RwLock<super::calls::CallIndex>,
    lists: Option<&Rollups>,
    workspace: WorkspaceId,
    q: &EventQuery,
) -> Result<EventPage> {
    if let Some(ext) = &q.external_request_id {
        // The call index names the candidate rows; the stored id decides.
        let rows: Vec<i64> = {
            let index = calls.read().unwrap_or_else(|e| e.into_inner());
            index.candidates(index.key(workspace, ext)).collect()
        };
        let sql = format!(
            "{EVENT_SELECT} WHERE e.id = ?1 AND e.workspace_id = ?2 AND e.external_request_id = ?3"
        );
        let mut stmt = c.prepare_cached(&sql)?;
        let mut events = Vec::new();
        for row in rows {
            let found = stmt
                .query_row(params![row, workspace, ext], stored_event)
                .optional()?;
            events.extend(found.map(|(_, _, e)| e));
        }
        return Ok(EventPage {
            events,
            next_cursor: None,
        });
    }
    if let (EventOrder::Costliest, Some(rollups)) = (q.order, lists) {
        if let Some(rows) = costliest_from_lists(c, rollups, workspace, q)? {
            return Ok(page_of(q, rows));
        }
    }
    let rows = match lists {
        Some(rollups) => access::with_access(
            c,
            rollups,
            |tx, totals| page_access(totals, tx, workspace, q),
            |tx, access| rows_of(tx, workspace, q, q.window, Rows::Reached(&access)),
        )?,
        None => rows_of(c, workspace, q, q.window, Rows::Reached(&Access::TimeIndex))?,
    };
    Ok(page_of(q, rows))
}

/// How a page of `q` reaches its rows (the time index when the totals are behind).
fn page_access(
    totals: Option<&Totals>,
    tx: &Connection,
    workspace: WorkspaceId,
    q: &EventQuery,
) -> Result<Access> {
    let Some(totals) = totals else {
        return Ok(Access::TimeIndex);
    };
    let no_filters = crate::query::Filters::default();
    let filters = q.filters.as_ref().unwrap_or(&no_filters);
    let shape = match q.order {
        EventOrder::Newest => Shape::Newest(q.limit),
        // No index orders rows by cost: every row of the window is read.
        EventOrder::Costliest => Shape::Whole,
    };
    let window = q.window.unwrap_or((i64::MIN, i64::MAX));
    access::choose(totals, tx, workspace, filters, window, shape)
}

/// Which rows a page read looks at: those its access reaches, or the named ones.
#[derive(Clone, Copy)]
pub(super) enum Rows<'a> {
    Reached(&'a Access),
    Named(&'a [i64]),
}

/// A stored call as a page reads it: (time, row, the call).
pub(super) type EventRow = (i64, i64, StoredEvent);

/// Up to `q.limit + 1` calls of `q` in `window` (and among `rows`, when given), in
/// `q`'s order, after its cursor.
pub(super) fn rows_of(
    c: &Connection,
    workspace: WorkspaceId,
    q: &EventQuery,
    window: Option<(i64, i64)>,
    rows: Rows,
) -> Result<Vec<EventRow>> {
    // Column names are unqualified so the aggregate query's filters apply as they are.
    let (mut filter, mut values, order) = match q.order {
        EventOrder::Newest => {
            let (before_ts, before_id) = match &q.cursor {
                Some(c) => parse_cursor(c).ok_or(StoreError::BadCursor)?,
                None => (i64::MAX, i64::MAX),
            };
            let values: Vec<rusqlite::types::Value> = vec![
                workspace.into(),
                before_ts.into(),
                before_ts.into(),
                before_id.into(),
            ];
            (
                String::from("workspace_id = ? AND (ts < ? OR (ts = ? AND e.id < ?))"),
                values,
                "e.ts DESC, e.id DESC",
            )
        }
        EventOrder::Costliest => {
            let (cost, ts, id) = match &q.cursor {
                Some(c) => parse_cost_cursor(c).ok_or(StoreError::BadCursor)?,
                None => (i64::MAX, i64::MAX, i64::MAX),
            };
            let values: Vec<rusqlite::types::Value> = vec![
                workspace.into(),
                cost.into(),
                cost.into(),
                ts.into(),
                ts.into(),
                id.into(),
            ];
            (
                String::from(
                    "workspace_id = ? AND cost_nanos IS NOT NULL AND (cost_nanos < ? \
                     OR (cost_nanos = ? AND (ts < ? OR (ts = ? AND e.id < ?))))",
                ),
                values,
                "e.cost_nanos DESC, e.ts DESC, e.id DESC",
            )
        }
    };
    if let Some((from, to)) = window {
        filter.push_str(" AND ts >= ? AND ts < ?");
        values.extend([from.into(), to.into()]);
    }
    if let Rows::Named(rows) = rows {
        // Row ids are integers from the lists, never text: inline, like the codes.
        let list: Vec<String> = rows.iter().map(i64::to_string).collect();
        filter.push_str(&format!(" AND e.id IN ({})", list.join(", ")));
    }
    if let Some(f) = &q.filters {
        super::aggregate::filter_sql(f, &mut filter, &mut values, Some(c));
    }
    values.push((q.limit as i64 + 1).into());
    // Named rows are looked up by their ids: no index (SQLite would otherwise pick the
    // time index and walk the whole window).
    let (table_hint, access) = match rows {
        Rows::Named(_) => ("NOT INDEXED", &Access::TimeIndex),
        Rows::Reached(Access::TimeIndex) => ("", &Access::TimeIndex),
        Rows::Reached(access) => ("NOT INDEXED", access),
    };
    let sql = format!(
        "{EVENT_SELECT} {table_hint} WHERE {}{filter} ORDER BY {order} LIMIT ?",
        access.condition()
    );
    let read = |stmt: &mut rusqlite::Statement| -> Result<Vec<EventRow>> {
        let rows = stmt
            .query_map(access.params(&values).as_slice(), stored_event)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    };
    // A statement naming rows is used once: not worth a place in the cache.
    match rows {
        Rows::Named(_) => read(&mut c.prepare(&sql)?),
        Rows::Reached(_) => read(&mut *c.prepare_cached(&sql)?),
    }
}

/// The page of `q` from its calls in order (up to `q.limit` of them, and a cursor when
/// there are more).
fn page_of(q: &EventQuery, rows: Vec<EventRow>) -> EventPage {
    let more = rows.len() > q.limit;
    let mut events = Vec::with_capacity(q.limit);
    let mut last = None;
    for (ts, id, event) in rows.into_iter().take(q.limit) {
        last = Some(match (q.order, event.cost_usd) {
            (EventOrder::Costliest, Some(cost)) => cost_cursor_of(cost.0, ts, id),
            _ => cursor_of(ts, id),
        });
        events.push(event);
    }
    EventPage {
        events,
        next_cursor: if more { last } else { None },
    }
}

/// How long a costliest-first read waits for the rollups to reach its snapshot before it
/// reads the window's rows instead (the fold is a commit behind for about a millisecond).
const LISTS_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Row ids fetched in one read while the candidates are taken costliest first.
const FETCH_CHUNK: usize = 64;

/// The calls of a costliest-first page from the costliest lists, exact: the lists'
/// candidates in the window and filters, then raw rows for each day whose floor is not
/// below the page's last cost. None when the rollups stay behind the file.
fn costliest_from_lists(
    c: &mut Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    q: &EventQuery,
) -> Result<Option<Vec<EventRow>>> {
    let days = match q.window {
        Some((from, to)) if from >= to => return Ok(None),
        Some((from, to)) => (from.div_euclid(DAY_MS), (to - 1).div_euclid(DAY_MS)),
        None => (i64::MIN, i64::MAX),
    };
    let no_filters = crate::query::Filters::default();
    let filters = q.filters.as_ref().unwrap_or(&no_filters);
    let (kind, names) = list_kind(filters);
    let codes = |codes: Vec<u8>| (!codes.is_empty()).then_some(codes);
    let environments = codes(filters.environment.iter().map(|e| e.code()).collect());
    let data_modes = codes(filters.data_mode.iter().map(|m| m.code()).collect());
    let started = std::time::Instant::now();
    loop {
        let tx = c.transaction()?;
        let totals = rollups.read();
        // The first read of the transaction: its snapshot starts while the totals
        // cannot change (as `aggregate::aggregate`).
        if commit_seq(&tx)? != totals.seq {
            drop(totals);
            drop(tx);
            if started.elapsed() > LISTS_WAIT {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        let values = match names {
            None => vec![0],
            Some((dim, names)) => access::dim_ids(&tx, dim, names)?,
        };
        let found = totals.costliest.candidates(&Selection {
            workspace,
            kind,
            values: &values,
            days,
            environments: environments.as_deref(),
            data_modes: data_modes.as_deref(),
        });
        // For the days read raw: a tenant's or user's rows (a list names rows of every
        // time, so it serves any run of days); a scan pays only for most of the table,
        // which a run of days rarely is.
        let access = match page_access(Some(&totals), &tx, workspace, q)? {
            Access::Scan => Access::TimeIndex,
            access => access,
        };
        drop(totals);
        return rows_of_candidates(&tx, workspace, q, found, &access).map(Some);
    }
}

/// The list a costliest read takes its candidates from: a tenant's, an endpoint's or a
/// model's when the filters name them (by name: a missing value has no list), else all
/// calls'. Every filter still applies to the candidates.
fn list_kind(f: &crate::query::Filters) -> (Kind, Option<(DimKind, &[String])>) {
    use crate::query::Dimension;
    let named = [
        (Dimension::TenantId, Kind::Tenant, DimKind::Tenant),
        (Dimension::EndpointTag, Kind::Endpoint, DimKind::Endpoint),
        (Dimension::Model, Kind::Model, DimKind::Model),
    ];
    for (dimension, kind, dim) in named {
        if let Some(values) = f.text.get(&dimension) {
            if !values.iter().any(|v| v == dimension.missing_label()) {
                return (kind, Some((dim, values)));
            }
        }
    }
    (Kind::All, None)
}

/// The rank of a call in a costliest-first list: (cost, time, row), highest first.
fn rank(row: &EventRow) -> (i64, i64, i64) {
    (row.2.cost_usd.map_or(i64::MIN, |c| c.0), row.0, row.1)
}

/// Up to `q.limit + 1` calls of `q`, costliest first: the candidates read costliest
/// first until no unread one can make the page, then each run of days whose lists let
/// go of a call that could (a floor at or above the page's last cost) read raw.
fn rows_of_candidates(
    tx: &Connection,
    workspace: WorkspaceId,
    q: &EventQuery,
    found: Candidates,
    access: &Access,
) -> Result<Vec<EventRow>> {
    let wanted = q.limit + 1;
    let mut rows: Vec<EventRow> = Vec::new();
    for chunk in found.calls.chunks(FETCH_CHUNK) {
        if rows.len() >= wanted && chunk[0].0 < rank(&rows[wanted - 1]).0 {
            break;
        }
        let ids: Vec<i64> = chunk.iter().map(|(_, row)| *row).collect();
        rows.extend(rows_of(tx, workspace, q, q.window, Rows::Named(&ids))?);
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(rank(r)));
        rows.truncate(wanted);
    }
    let last_cost = (rows.len() >= wanted).then(|| rank(&rows[wanted - 1]).0);
    let raw_days: Vec<i64> = found
        .floors
        .iter()
        .filter(|(_, floor)| last_cost.is_none_or(|cost| *floor >= cost))
        .map(|(day, _)| *day)
        .collect();
    let mut seen: std::collections::HashSet<i64> = rows.iter().map(|r| r.1).collect();
    for (first, last) in runs(&raw_days) {
        let (mut from, mut to) = (first * DAY_MS, (last + 1) * DAY_MS);
        if let Some((a, b)) = q.window {
            (from, to) = (from.max(a), to.min(b));
        }
        for row in rows_of(tx, workspace, q, Some((from, to)), Rows::Reached(access))? {
            if seen.insert(row.1) {
                rows.push(row);
            }
        }
    }
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(rank(r)));
    rows.truncate(wanted);
    Ok(rows)
}

/// Sorted day numbers as runs of consecutive days: (first, last).
fn runs(days: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &day in days {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == day => *last = day,
            _ => runs.push((day, day)),
        }
    }
    runs
}

pub fn unpriced_models(c: &mut Connection) -> Result<Vec<UnpricedModel>> {
    let mut stmt = c.prepare(
        "SELECT (SELECT value FROM dims WHERE id = e.provider), (SELECT value FROM dims WHERE id = e.model),
            COUNT(*), MAX(ts)
         FROM events e WHERE cost_nanos IS NULL GROUP BY e.provider, e.model ORDER BY COUNT(*) DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UnpricedModel {
            provider: r.get(0)?,
            model: r.get(1)?,
            events: r.get::<_, i64>(2)? as u64,
            last_seen: ms_to_rfc3339(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn freshness(c: &mut Connection, workspace: WorkspaceId) -> Result<Option<Freshness>> {
    // The newest event by time, through the (workspace_id, ts) index: ordering by rowid
    // instead walked the whole index (a second at 10M events). Lag is that event's.
    let row = c
        .prepare_cached(
            "SELECT ts, received_at FROM events WHERE workspace_id = ?1 ORDER BY ts DESC LIMIT 1",
        )?
        .query_row([workspace], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        });
    let (ts, received) = match row {
        Ok(v) => v,
        Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let newest: i64 = c
        .prepare_cached("SELECT MAX(ts) FROM events WHERE workspace_id = ?1")?
        .query_row([workspace], |r| r.get(0))?;
    Ok(Some(Freshness {
        newest_event_ms: newest,
        newest_received_ms: received,
        ingest_lag_ms: received - ts,
    }))
}

/// When each (endpoint, prompt version) was first and last seen, from the rollups once
/// they hold every commit the connection's snapshot sees (a version stored by an
/// acknowledged ingest is seen: the fold thread may still be adding it).
pub fn versions_seen(
    c: &mut Connection,
    rollups: &super::rollup::Rollups,
    behind: &dyn Fn(),
    workspace: WorkspaceId,
    f: &crate::query::Filters,
) -> Result<Vec<VersionSeen>> {
    let envs: Vec<i64> = f.environment.iter().map(|e| e.code() as i64).collect();
    let modes: Vec<i64> = f.data_mode.iter().map(|e| e.code() as i64).collect();
    let mut spans: std::collections::BTreeMap<(i64, i64), (i64, i64)> = Default::default();
    let (started, mut told) = (std::time::Instant::now(), false);
    let totals = loop {
        let tx = c.transaction()?;
        let totals = rollups.read();
        if super::rollup::commit_seq(&tx)? == totals.seq {
            break totals;
        }
        drop(totals);
        drop(tx);
        super::aggregate::wait_for_totals(started, &mut told, behind)?;
    };
    for ((ws, endpoint, version, env, mode), (first, last)) in &totals.seen {
        let kept = *ws == workspace
            && (envs.is_empty() || envs.contains(env))
            && (modes.is_empty() || modes.contains(mode));
        if kept {
            let span = spans
                .entry((*endpoint, *version))
                .or_insert((*first, *last));
            *span = (span.0.min(*first), span.1.max(*last));
        }
    }
    drop(totals);
    let mut name = c.prepare_cached("SELECT value FROM dims WHERE id = ?1")?;
    let mut text =
        |id: i64| -> Result<Option<String>> { Ok(name.query_row([id], |r| r.get(0)).optional()?) };
    let mut out = Vec::with_capacity(spans.len());
    for ((endpoint, version), (first_ms, last_ms)) in spans {
        out.push(VersionSeen {
            endpoint_tag: text(endpoint)?.unwrap_or_default(),
            prompt_version: text(version)?.unwrap_or_else(|| "unversioned".into()),
            first_ms,
            last_ms,
        });
    }
    Ok(out)
}

/// The index a query for one endpoint's prompt versions (named, or "unversioned")
/// should use. SQLite's planner, without statistics, prefers the time index and scans
/// the whole window: for an endpoint without versions, every call of the window.
fn version_index(q: &crate::query::Query) -> &'static str {
    use crate::query::Dimension;
    let named = |d: Dimension| {
        q.filters
            .text
            .get(&d)
            .is_some_and(|v| !v.iter().any(|x| x == d.missing_label()))
    };
    let versions = q.filters.text.contains_key(&Dimension::PromptVersion);
    if named(Dimension::EndpointTag) && versions {
        "INDEXED BY events_by_version"
    } else {
        ""
    }
}

/// The newest `limit` logical calls of the window that match the filters: newest first
/// through the (workspace_id, ts) index, so the cost is bounded by the rows read, not by
/// the window's size (a rare filter value still scans the window).
fn window_filter(
    c: &Connection,
    workspace: WorkspaceId,
    q: &crate::query::Query,
    limit: usize,
    access: &Access,
) -> (String, Vec<rusqlite::types::Value>) {
    let mut filter = format!(
        "{}workspace_id = ? AND ts >= ? AND ts < ?",
        access.condition()
    );
    let mut values: Vec<rusqlite::types::Value> =
        vec![workspace.into(), q.from_ms.into(), q.to_ms.into()];
    super::aggregate::filter_sql(&q.filters, &mut filter, &mut values, Some(c));
    values.push((limit as i64).into());
    (filter, values)
}

/// Run a read of the newest `limit` calls of `q` with the access the totals make
/// cheapest (the version index, when `version_index` names it, is cheaper still).
fn newest_read<T>(
    c: &mut Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    q: &crate::query::Query,
    limit: usize,
    read: impl FnOnce(&Connection, Access) -> Result<T>,
) -> Result<T> {
    let window = (q.from_ms, q.to_ms);
    access::with_access(
        c,
        rollups,
        |tx, totals| match totals {
            Some(totals) if version_index(q).is_empty() => access::choose(
                totals,
                tx,
                workspace,
                &q.filters,
                window,
                Shape::Newest(limit),
            ),
            _ => Ok(Access::TimeIndex),
        },
        read,
    )
}

/// Per group of `q`, the latencies of its newest `limit` calls, from one read of the
/// window's rows (a scan, or the rows its tenant or user lists name), when that costs
/// less than reading each group's `newest` rows apart (None: read them apart).
pub fn latencies_in_one_pass(
    c: &mut Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    q: &crate::query::Query,
    (limit, newest): (usize, u64),
) -> Result<Option<super::aggregate::GroupLatencies>> {
    let window = (q.from_ms, q.to_ms);
    let one_pass = |tx: &Connection, totals: Option<&Totals>| match totals {
        Some(totals) => access::for_one_pass(totals, tx, workspace, &q.filters, window, newest),
        None => Ok(None),
    };
    // `with_access` wants an access: the time index stands for "apart".
    access::with_access(
        c,
        rollups,
        |tx, totals| Ok(one_pass(tx, totals)?.unwrap_or(Access::TimeIndex)),
        |tx, access| match access {
            Access::TimeIndex => Ok(None),
            access => super::aggregate::newest_latencies_by_group(tx, workspace, q, limit, &access)
                .map(Some),
        },
    )
}

/// The table clause of a read of `q`'s newest calls by `access`.
fn newest_table(q: &crate::query::Query, access: &Access) -> &'static str {
    match access {
        Access::TimeIndex => version_index(q),
        _ => "NOT INDEXED",
    }
}

pub fn latencies(
    c: &mut Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    q: &crate::query::Query,
    limit: usize,
) -> Result<Vec<u32>> {
    newest_read(c, rollups, workspace, q, limit, |tx, access| {
        let (sql, values) = latencies_sql(tx, workspace, q, limit, &access);
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(access.params(&values).as_slice(), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

fn latencies_sql(
    c: &Connection,
    workspace: WorkspaceId,
    q: &crate::query::Query,
    limit: usize,
    access: &Access,
) -> (String, Vec<rusqlite::types::Value>) {
    let (filter, values) = window_filter(c, workspace, q, limit, access);
    let sql = format!(
        "SELECT latency_ms FROM events {index}
         WHERE {filter} AND latency_ms IS NOT NULL ORDER BY ts DESC LIMIT ?",
        index = newest_table(q, access)
    );
    (sql, values)
}

pub fn request_values(
    c: &mut Connection,
    rollups: &Rollups,
    workspace: WorkspaceId,
    q: &crate::query::Query,
    limit: usize,
) -> Result<Vec<RequestValues>> {
    newest_read(c, rollups, workspace, q, limit, |tx, access| {
        request_values_by(tx, workspace, q, limit, &access)
    })
}

fn request_values_by(
    c: &Connection,
    workspace: WorkspaceId,
    q: &crate::query::Query,
    limit: usize,
    access: &Access,
) -> Result<Vec<RequestValues>> {
    let (filter, values) = window_filter(c, workspace, q, limit, access);
    let sql = format!(
        "SELECT cost_nanos, input_tokens, output_tokens, latency_ms FROM events {index}
         WHERE {filter} ORDER BY ts DESC LIMIT ?",
        index = newest_table(q, access)
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(access.params(&values).as_slice(), |r| {
        Ok(RequestValues {
            cost: r.get::<_, Option<i64>>(0)?.map(Usd),
            input_tokens: r.get(1)?,
            output_tokens: r.get(2)?,
            latency_ms: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Dimension;
    use crate::store::sqlite::SqliteStore;
    use crate::store::EventStore;

    /// Store one call per (endpoint, version, latency); None: no prompt version.
    async fn stored(store: &SqliteStore, calls: &[(&str, Option<&str>, u32)], now: i64) {
        let lines: Vec<String> = calls
            .iter()
            .enumerate()
            .map(|(i, (endpoint, version, latency))| {
                let version = version.map_or(String::new(), |v| format!(r#","promptVersion":"{v}""#));
                format!(
                    r#"{{"externalRequestId":"{endpoint}-{latency}","timestamp":"{}","provider":"openai","model":"gpt-4o-mini","endpointTag":"{endpoint}"{version},"status":"success","inputTokens":10,"outputTokens":5,"latencyMs":{latency}}}"#,
                    jiff::Timestamp::from_millisecond(now - 60_000 - i as i64).unwrap()
                )
            })
            .collect();
        let items = lines.iter().map(|l| crate::ingest::parse_item(l)).collect();
        let book = crate::price::PriceBook::bundled().unwrap();
        let prepared = crate::ingest::prepare(items, &book, &Default::default(), now);
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        store.ingest(1, prepared.events).await.unwrap();
    }

    /// The newest latencies of one endpoint's calls without a prompt version come from
    /// the version index (one row per latency read), not from a scan of every call of
    /// the window (at 10M calls, an endpoint without versions made the versions report
    /// take a second per endpoint); and a version literally named "unversioned" is still
    /// read with them.
    #[tokio::test]
    async fn an_endpoints_unversioned_calls_are_read_through_the_version_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("versions.db")).unwrap();
        let now = jiff::Timestamp::now().as_millisecond();
        let calls = [
            ("plain", None, 10),
            ("plain", None, 20),
            ("plain", Some("v1"), 900),
            ("other", None, 700),
        ];
        stored(&store, &calls, now).await;
        let mut q = crate::query::QueryRequest::default().check(now).unwrap();
        q.filters
            .restrict(&Dimension::EndpointTag, &["plain".into()]);
        q.filters
            .restrict(&Dimension::PromptVersion, &["unversioned".into()]);
        let plan = |store: &SqliteStore, q: &crate::query::Query| {
            store
                .with_conn_inline(|c| {
                    let (sql, values) = latencies_sql(c, 1, q, 100, &Access::TimeIndex);
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
                        r.get::<_, String>(3)
                    })?;
                    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("; "))
                })
                .unwrap()
        };
        let read = plan(&store, &q);
        assert!(
            read.contains("events_by_version (workspace_id=? AND endpoint=? AND prompt_version=? AND ts>? AND ts<?)"),
            "{read}"
        );
        assert!(!read.contains("TEMP B-TREE"), "{read}");
        let mut got = store.latencies(1, q.clone(), 100).await.unwrap();
        got.sort_unstable();
        assert_eq!(got, vec![10, 20]);

        // A version named "unversioned" is one more call of the label.
        stored(&store, &[("plain", Some("unversioned"), 30)], now - 5_000).await;
        let mut got = store.latencies(1, q.clone(), 100).await.unwrap();
        got.sort_unstable();
        assert_eq!(got, vec![10, 20, 30]);
        // Still through the version index, not the window's calls.
        assert!(plan(&store, &q).contains("events_by_version"));
        store.close().await;
    }
}
