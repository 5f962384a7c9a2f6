//! How a raw read reaches the `events` rows of its window: through the time index
//! (`events_by_time`), by a scan of the whole table, or by looking up the rows its
//! tenant or user filter's lists name (`row_lists.rs`). SQLite's planner has no
//! statistics of the spread of times or of a user's rows, and picks the time index for
//! every window; the rollups know both, so the choice is made here.
//!
//! Measured at 10M realistic calls over 30 days (SQLite 3.40-3.50, 2 cores, the file in
//! the OS cache): the time index costs about 0.5 us per row of the window (each row is
//! one lookup of the table's B-tree, in time order), a scan about 0.15 us per row of
//! the table (pages in order), a listed row about 4 us (a lookup, pages out of order).
//! So a month's raw GROUP BY (every row) took 4.9 s through the index and 2.4 s as a
//! scan, a month of one user's 745 calls 4.4 s through the index and 3 ms by its list.

use super::rollup::{Rollups, Totals};
use super::row_lists::Of;
use super::schema::DimKind;
use crate::query::{Dimension, Filters};
use crate::store::{Result, WorkspaceId};
use rusqlite::types::{ToSql, Value};
use rusqlite::{params, Connection, OptionalExtension};

/// Cost of a row, in hundredths of a microsecond (the ratios matter, see above).
const INDEX_ROW: u64 = 50;
const SCAN_ROW: u64 = 15;
const LISTED_ROW: u64 = 400;

/// How long a read waits for the rollups to reach its snapshot before it chooses
/// without them (the fold is a commit behind for about a millisecond).
const TOTALS_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// The way one raw read reaches its rows.
#[derive(Debug, Clone)]
pub enum Access {
    TimeIndex,
    Scan,
    /// The rows named (ascending): a superset of the rows the read's filters match.
    Rows(rusqlite::vtab::array::Array),
}

/// What the read does with the rows of its window.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Every matching row (a GROUP BY, a costliest-first sort).
    Whole,
    /// The newest this many matching rows, newest first: the time index stops early.
    Newest(usize),
}

impl Access {
    /// The table as the read's FROM names it. A scan and a lookup by row id use no
    /// index (SQLite would otherwise walk the time index; `NOT INDEXED` still lets it
    /// look rows up by id).
    pub fn table(&self) -> &'static str {
        match self {
            Access::TimeIndex => "events",
            Access::Scan | Access::Rows(_) => "events NOT INDEXED",
        }
    }

    /// The condition the WHERE clause starts with (its parameter, when any, is the
    /// statement's first: see `params`).
    pub fn condition(&self) -> &'static str {
        match self {
            Access::Rows(_) => "id IN rarray(?) AND ",
            _ => "",
        }
    }

    /// The statement's parameters: the rows first when named, then `values`.
    pub fn params<'a>(&'a self, values: &'a [Value]) -> Vec<&'a dyn ToSql> {
        let rows = match self {
            Access::Rows(rows) => Some(rows as &dyn ToSql),
            _ => None,
        };
        rows.into_iter()
            .chain(values.iter().map(|v| v as &dyn ToSql))
            .collect()
    }
}

/// The cheapest access for a read of `workspace`'s rows in [from, to) with `filters`,
/// from what `totals` know (they must include every commit the read's snapshot sees, or
/// a list could miss a row).
pub fn choose(
    totals: &Totals,
    c: &Connection,
    workspace: WorkspaceId,
    filters: &Filters,
    (from, to): (i64, i64),
    shape: Shape,
) -> Result<Access> {
    let lists = &totals.row_lists;
    let window = lists.in_window(workspace, from, to);
    let listed = listed_filter(totals, c, workspace, filters)?;
    let walked = match (shape, &listed) {
        (Shape::Whole, _) => window,
        // The index walks back until it has the newest `n` of the filter's rows: about
        // n divided by the share of the workspace's rows the filter keeps.
        (Shape::Newest(n), Some((_, _, count))) => {
            let all = lists.in_window(workspace, i64::MIN, i64::MAX).max(1);
            window.min((n as u64 + 1).saturating_mul(all) / (*count).max(1))
        }
        (Shape::Newest(_), None) => return Ok(Access::TimeIndex),
    };
    let mut best = (INDEX_ROW.saturating_mul(walked), None);
    if let Shape::Whole = shape {
        let scan = SCAN_ROW.saturating_mul(lists.table_rows());
        if scan < best.0 {
            best = (scan, Some(Access::Scan));
        }
    }
    if let Some((of, ids, count)) = listed {
        if LISTED_ROW.saturating_mul(count) < best.0 {
            best = (0, Some(listed_rows(totals, workspace, of, &ids)));
        }
    }
    Ok(best.1.unwrap_or(Access::TimeIndex))
}

/// The access for one read of every row of `filters` in `window` (grouped afterwards)
/// when that costs less than reading each group's newest rows apart through an index,
/// which walks about `newest` (the groups' rows wanted, summed) divided by the share of
/// the workspace's rows the filters keep: known for a tenant or user filter, else taken
/// as all (the walks then stop early). None: read the groups apart.
pub fn for_one_pass(
    totals: &Totals,
    c: &Connection,
    workspace: WorkspaceId,
    filters: &Filters,
    (from, to): (i64, i64),
    newest: u64,
) -> Result<Option<Access>> {
    let lists = &totals.row_lists;
    let listed = listed_filter(totals, c, workspace, filters)?;
    let walked = match &listed {
        Some((_, _, count)) => {
            let all = lists.in_window(workspace, i64::MIN, i64::MAX);
            newest.saturating_mul(all) / (*count).max(1)
        }
        None => newest,
    };
    let apart = INDEX_ROW.saturating_mul(walked.min(lists.in_window(workspace, from, to)));
    let scan = SCAN_ROW.saturating_mul(lists.table_rows());
    if let Some((of, ids, count)) = listed {
        let cost = LISTED_ROW.saturating_mul(count);
        if cost <= scan && cost < apart {
            return Ok(Some(listed_rows(totals, workspace, of, &ids)));
        }
    }
    Ok((scan < apart).then_some(Access::Scan))
}

/// The rows the lists of `ids` name, as an access.
fn listed_rows(totals: &Totals, workspace: WorkspaceId, of: Of, ids: &[u32]) -> Access {
    let rows = totals.row_lists.rows_of(workspace, of, ids);
    Access::Rows(std::rc::Rc::new(
        rows.into_iter().map(Value::Integer).collect(),
    ))
}

/// The tenant or user filter with the shortest lists, when the filters name tenants or
/// users (a missing value, "unknown", has no list): (which, the values' ids, how many
/// rows their lists name).
fn listed_filter(
    totals: &Totals,
    c: &Connection,
    workspace: WorkspaceId,
    filters: &Filters,
) -> Result<Option<(Of, Vec<u32>, u64)>> {
    let mut best: Option<(Of, Vec<u32>, u64)> = None;
    for (dimension, of, kind) in [
        (Dimension::TenantId, Of::Tenant, DimKind::Tenant),
        (Dimension::UserId, Of::User, DimKind::User),
    ] {
        let Some(values) = filters.text.get(&dimension) else {
            continue;
        };
        if values.iter().any(|v| v == dimension.missing_label()) {
            continue;
        }
        let ids = dim_ids(c, kind, values)?;
        let count = totals.row_lists.listed(workspace, of, &ids);
        if best.as_ref().is_none_or(|(_, _, n)| count < *n) {
            best = Some((of, ids, count));
        }
    }
    Ok(best)
}

/// The dims ids of `names` of kind `dim` (names never stored have none).
pub fn dim_ids(c: &Connection, dim: DimKind, names: &[String]) -> Result<Vec<u32>> {
    let mut stmt = c.prepare_cached("SELECT id FROM dims WHERE kind = ?1 AND value = ?2")?;
    let mut ids = Vec::new();
    for name in names {
        let id: Option<i64> = stmt
            .query_row(params![dim as u8, name], |r| r.get(0))
            .optional()?;
        ids.extend(id.and_then(|id| u32::try_from(id).ok()));
    }
    Ok(ids)
}

/// Run `read` in a read transaction on `c`, with the access `choose` picks under totals
/// of the transaction's own commit. When the rollups stay behind the file (another
/// process wrote), `choose` gets None and the read goes on without them.
pub fn with_access<T>(
    c: &mut Connection,
    rollups: &Rollups,
    choose: impl Fn(&Connection, Option<&Totals>) -> Result<Access>,
    read: impl FnOnce(&Connection, Access) -> Result<T>,
) -> Result<T> {
    let started = std::time::Instant::now();
    loop {
        let tx = c.transaction()?;
        let totals = rollups.read();
        // The first read of the transaction: its snapshot starts here, while the totals
        // cannot change.
        let current = super::rollup::commit_seq(&tx)? == totals.seq;
        if current || started.elapsed() > TOTALS_WAIT {
            let access = choose(&tx, current.then_some(&*totals))?;
            drop(totals);
            return read(&tx, access);
        }
        drop(totals);
        drop(tx);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Query, QueryRequest};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{EventOrder, EventQuery, EventStore};

    const HOUR: i64 = 3_600_000;

    /// 2,400 calls over 3 days: 6 tenants and 40 users (skewed, some calls without
    /// either), 3 endpoints, tags; every 12th call first fails and is then replaced by a
    /// retry under another user and tenant, so lists name rows that left them.
    async fn stored(store: &SqliteStore, now: i64) {
        let (mut lines, mut retries) = (Vec::new(), Vec::new());
        for i in 0..2_400i64 {
            let user = match i % 7 {
                0 => String::new(),
                _ => format!(r#","userId":"u{}""#, (i % 13) * (i % 3 + 1)),
            };
            let tenant = match i % 11 {
                0 => String::new(),
                _ => format!(r#","tenantId":"t{}""#, i % 6),
            };
            let ts =
                jiff::Timestamp::from_millisecond(now - 1 - (i * 7_919_777) % (72 * HOUR)).unwrap();
            let common = format!(
                r#""externalRequestId":"c{i}","timestamp":"{ts}","provider":"openai","model":"gpt-4o-mini","endpointTag":"e{}","tags":{{"team":"k{}"}}"#,
                i % 3,
                i % 4
            );
            if i % 12 == 5 {
                lines.push(format!(
                    r#"{{{common}{user}{tenant},"attempt":1,"status":"error","inputTokens":0,"outputTokens":0}}"#
                ));
                retries.push(format!(
                    r#"{{{common},"userId":"u{}","tenantId":"t{}","attempt":2,"status":"success","inputTokens":{},"outputTokens":7,"latencyMs":{}}}"#,
                    (i + 3) % 40,
                    (i + 1) % 6,
                    100 + i,
                    i % 900
                ));
            } else {
                lines.push(format!(
                    r#"{{{common}{user}{tenant},"status":"success","inputTokens":{},"outputTokens":5,"latencyMs":{}}}"#,
                    10 + i % 50,
                    (i * 37) % 1000
                ));
            }
        }
        // The retries in a later commit: their rows are older than the lists' last.
        let book = crate::price::PriceBook::bundled().unwrap();
        for lines in [lines, retries] {
            let items = lines.iter().map(|l| crate::ingest::parse_item(l)).collect();
            let prepared = crate::ingest::prepare(items, &book, &Default::default(), now);
            assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
            store.ingest(1, prepared.events).await.unwrap();
        }
    }

    /// Every access `choose` could return for `filters` in `window`: the time index, a
    /// scan, and the rows of each tenant or user filter.
    fn every_access(totals: &Totals, c: &Connection, filters: &Filters) -> Vec<Access> {
        let mut all = vec![Access::TimeIndex, Access::Scan];
        for (dimension, of, kind) in [
            (Dimension::TenantId, Of::Tenant, DimKind::Tenant),
            (Dimension::UserId, Of::User, DimKind::User),
        ] {
            if let Some(values) = filters.text.get(&dimension) {
                let ids = dim_ids(c, kind, values).unwrap();
                let rows = totals.row_lists.rows_of(1, of, &ids);
                let rows: Vec<Value> = rows.into_iter().map(Value::Integer).collect();
                all.push(Access::Rows(std::rc::Rc::new(rows)));
            }
        }
        all
    }

    fn query(
        now: i64,
        since_hours: i64,
        filters: &[(Dimension, &[&str])],
        by: Vec<Dimension>,
    ) -> Query {
        let mut q = QueryRequest::default().check(now).unwrap();
        (q.from_ms, q.to_ms) = (now - since_hours * HOUR, now);
        for (d, values) in filters {
            let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            q.filters.restrict(d, &values);
        }
        q.group_by = by;
        q.limit = 1_000;
        q
    }

    /// Each access gives the same aggregates, pages and latencies as the time index, on
    /// calls whose retries moved them to another user and tenant.
    #[tokio::test]
    async fn every_access_reads_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("access.db")).unwrap();
        let now = jiff::Timestamp::now().as_millisecond();
        stored(&store, now).await;
        let rollups = store.derived().await.unwrap().rollups;
        // Every commit in the totals (the fold runs after the acknowledgement).
        rollups.flush();
        // u8 and t0 hold retried calls (i = 5 mod 12 and mod 40): rows added out of order.
        let filter_sets: Vec<Vec<(Dimension, &[&str])>> = vec![
            vec![(Dimension::UserId, &["u8"])],
            vec![(Dimension::TenantId, &["t0"])],
            vec![(Dimension::UserId, &["u3"])],
            vec![(Dimension::UserId, &["u1", "u17", "nobody"])],
            vec![(Dimension::TenantId, &["t2"])],
            vec![
                (Dimension::TenantId, &["t4"]),
                (Dimension::UserId, &["u8", "u9"]),
            ],
            vec![
                (Dimension::UserId, &["u4"]),
                (Dimension::EndpointTag, &["e1"]),
            ],
        ];
        let groupings = [
            vec![],
            vec![Dimension::EndpointTag],
            vec![Dimension::UserId, Dimension::TenantId],
            vec![Dimension::Tag("team".into())],
        ];
        let mut compared = 0;
        for filters in &filter_sets {
            for hours in [80, 30, 2] {
                for by in &groupings {
                    let q = query(now, hours, filters, by.clone());
                    store
                        .with_conn_inline(|c| {
                            let tx = c.transaction()?;
                            let totals = rollups.read();
                            assert_eq!(super::super::rollup::commit_seq(&tx)?, totals.seq);
                            let accesses = every_access(&totals, &tx, &q.filters);
                            drop(totals);
                            let answers: Vec<_> = accesses
                                .iter()
                                .map(|a| {
                                    super::super::aggregate::raw_answer(&tx, 1, &q, a).unwrap()
                                })
                                .collect();
                            assert!(!answers[0].rows.is_empty() || hours == 2, "{q:?}");
                            for (a, answer) in accesses.iter().zip(&answers) {
                                assert_eq!(answer, &answers[0], "{} {q:?}", a.table());
                            }
                            let latencies: Vec<_> = accesses
                                .iter()
                                .map(|a| {
                                    let mut l = super::super::aggregate::newest_latencies_by_group(
                                        &tx, 1, &q, 3, a,
                                    )
                                    .unwrap();
                                    l.sort();
                                    l
                                })
                                .collect();
                            for l in &latencies {
                                assert_eq!(l, &latencies[0], "{q:?}");
                            }
                            compared += answers.len();
                            Ok(())
                        })
                        .unwrap();
                }
                for order in [EventOrder::Newest, EventOrder::Costliest] {
                    let q = EventQuery {
                        window: Some((now - hours * HOUR, now)),
                        filters: Some(query(now, hours, filters, vec![]).filters),
                        order,
                        limit: 25,
                        ..Default::default()
                    };
                    store
                        .with_conn_inline(|c| {
                            let tx = c.transaction()?;
                            let totals = rollups.read();
                            let accesses = every_access(&totals, &tx, q.filters.as_ref().unwrap());
                            drop(totals);
                            let pages: Vec<Vec<i64>> = accesses
                                .iter()
                                .map(|a| {
                                    let rows = super::super::read::rows_of(
                                        &tx,
                                        1,
                                        &q,
                                        q.window,
                                        super::super::read::Rows::Reached(a),
                                    )
                                    .unwrap();
                                    rows.into_iter().map(|r| r.1).collect()
                                })
                                .collect();
                            for p in &pages {
                                assert_eq!(p, &pages[0], "{q:?}");
                            }
                            Ok(())
                        })
                        .unwrap();
                }
            }
        }
        assert!(compared > 150, "{compared}");

        // Grouped latencies: in one pass where that is cheaper (a rare user's rows, most
        // of the table), the same as each group read apart.
        let mut one_passes = 0;
        for filters in &filter_sets {
            for hours in [80, 2] {
                for by in [
                    vec![Dimension::EndpointTag],
                    vec![Dimension::Tag("team".into())],
                ] {
                    for limit in [2, 20, 1_000] {
                        let q = query(now, hours, filters, by.clone());
                        let got = store
                            .latency_percentiles(1, q.clone(), limit, 50)
                            .await
                            .unwrap();
                        let apart = crate::store::latency_percentiles_by_group(
                            &store,
                            1,
                            q.clone(),
                            limit,
                            50,
                        )
                        .await
                        .unwrap();
                        assert_eq!(got, apart, "{q:?} limit {limit}");
                        let newest = got.iter().map(|g| g.calls).sum();
                        let one_pass = store
                            .with_conn_inline(|c| {
                                super::super::read::latencies_in_one_pass(
                                    c,
                                    &rollups,
                                    1,
                                    &q,
                                    (limit, newest),
                                )
                            })
                            .unwrap();
                        one_passes += one_pass.is_some() as usize;
                    }
                }
            }
        }
        assert!(one_passes >= 8, "{one_passes}");

        // What `choose` picks: a user's rows, a scan of most of the table, the time
        // index for a short window.
        let picked = |hours: i64, filters: &[(Dimension, &[&str])]| {
            let q = query(now, hours, filters, vec![]);
            store
                .with_conn_inline(|c| {
                    let totals = rollups.read();
                    choose(
                        &totals,
                        c,
                        1,
                        &q.filters,
                        (q.from_ms, q.to_ms),
                        Shape::Whole,
                    )
                })
                .unwrap()
        };
        assert!(matches!(
            picked(80, &[(Dimension::UserId, &["u36"])]),
            Access::Rows(_)
        ));
        assert!(matches!(picked(80, &[]), Access::Scan));
        assert!(matches!(picked(1, &[]), Access::TimeIndex));
        store.close().await;
    }
}
