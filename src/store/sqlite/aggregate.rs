//! The aggregate query over raw events: one GROUP BY in SQL, exact integer sums.
//! (Rollup tables will answer the same `Query` faster; this path stays the reference.)

use super::schema::DimKind;
use crate::event::{DataMode, Environment, Status};
use crate::money::Usd;
use crate::query::{Dimension, Query, Row, Sums};
use crate::store::{Result, WorkspaceId};
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use std::collections::HashMap;

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
        Dimension::Tag(_) => "tags",
    }
}

/// JSON path of a tag key, quoted so dots and spaces in keys stay one label.
fn tag_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('"', "\\\""))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Build the SQL and its parameters for `query` in `workspace`.
fn build(workspace: WorkspaceId, query: &Query) -> (String, Vec<SqlValue>) {
    // Placeholders are positional: SELECT's come first, then WHERE's.
    let mut select_params: Vec<SqlValue> = Vec::new();
    let mut params: Vec<SqlValue> =
        vec![workspace.into(), query.from_ms.into(), query.to_ms.into()];
    let mut select = Vec::new();
    if let Some(bucket) = query.bucket {
        select.push(format!("(ts / {0}) * {0}", bucket.millis()));
    }
    for d in &query.group_by {
        match d {
            Dimension::Tag(key) => {
                select.push("json_extract(tags, ?)".to_string());
                select_params.push(tag_path(key).into());
            }
            other => select.push(column(other).to_string()),
        }
    }
    let group_count = select.len();
    let mut filter = String::from("workspace_id = ? AND ts >= ? AND ts < ?");
    filter_sql(&query.filters, &mut filter, &mut params);
    let groups: Vec<String> = (1..=group_count).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {select}{comma}COUNT(*), SUM(attempts), COALESCE(SUM(cost_nanos), 0), COUNT(cost_nanos),
            SUM(input_tokens), SUM(cached_tokens), SUM(cache_write_tokens), SUM(output_tokens),
            SUM(reasoning_tokens), COALESCE(SUM(latency_ms), 0), COUNT(latency_ms), SUM(status != 0),
            MIN(ts), MAX(ts)
         FROM events WHERE {filter}{group}",
        select = select.join(", "),
        comma = if select.is_empty() { "" } else { ", " },
        group = if groups.is_empty() { String::new() } else { format!(" GROUP BY {}", groups.join(", ")) },
    );
    select_params.extend(params);
    (sql, select_params)
}

/// Append the dimension filters to a WHERE clause (columns of `events`, unqualified).
pub(super) fn filter_sql(
    f: &crate::query::Filters,
    filter: &mut String,
    params: &mut Vec<SqlValue>,
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
        filter.push_str(&format!(
            " AND ({col} IN (SELECT id FROM dims WHERE kind = {kind} AND value IN ({ph})){missing})",
            col = column(d),
            kind = kind as u8,
            ph = placeholders(values.len()),
            missing = if wants_missing { format!(" OR {} IS NULL", column(d)) } else { String::new() },
        ));
        params.extend(values.iter().map(|v| SqlValue::from(v.clone())));
    }
    for (key, values) in &f.tags {
        filter.push_str(&format!(
            " AND json_extract(tags, ?) IN ({})",
            placeholders(values.len())
        ));
        params.push(tag_path(key).into());
        params.extend(values.iter().map(|v| SqlValue::from(v.clone())));
    }
}

/// A group column's raw value before ids are turned into text.
enum GroupValue {
    DimId(Option<i64>),
    Text(String),
}

pub fn aggregate(c: &mut Connection, workspace: WorkspaceId, query: &Query) -> Result<Vec<Row>> {
    let (sql, params) = build(workspace, query);
    let mut stmt = c.prepare(&sql)?;
    let bucketed = query.bucket.is_some() as usize;
    let n = bucketed + query.group_by.len();
    let mut raw_rows: Vec<(Option<i64>, Vec<GroupValue>, Sums)> = Vec::new();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    while let Some(r) = rows.next()? {
        let bucket_ms = if bucketed == 1 {
            Some(r.get::<_, i64>(0)?)
        } else {
            None
        };
        let mut group = Vec::with_capacity(query.group_by.len());
        for (i, d) in query.group_by.iter().enumerate() {
            let idx = bucketed + i;
            group.push(match d {
                Dimension::Environment => GroupValue::Text(
                    Environment::from_code(r.get(idx)?)
                        .map_or("prod", Environment::as_str)
                        .into(),
                ),
                Dimension::DataMode => GroupValue::Text(
                    DataMode::from_code(r.get(idx)?)
                        .map_or("real", DataMode::as_str)
                        .into(),
                ),
                Dimension::Status => GroupValue::Text(
                    Status::from_code(r.get(idx)?)
                        .map_or("error", Status::as_str)
                        .into(),
                ),
                Dimension::Tag(_) => GroupValue::Text(
                    r.get::<_, Option<String>>(idx)?
                        .unwrap_or_else(|| d.missing_label().into()),
                ),
                _ => GroupValue::DimId(r.get(idx)?),
            });
        }
        let u = |i: usize| -> rusqlite::Result<u64> {
            Ok(r.get::<_, Option<i64>>(n + i)?.unwrap_or(0) as u64)
        };
        let sums = Sums {
            requests: u(0)?,
            attempts: u(1)?,
            cost: Usd(r.get(n + 2)?),
            priced: u(3)?,
            input: u(4)?,
            cached: u(5)?,
            cache_write: u(6)?,
            output: u(7)?,
            reasoning: u(8)?,
            latency_sum: u(9)?,
            latency_count: u(10)?,
            errors: u(11)?,
            first_ms: r.get::<_, Option<i64>>(n + 12)?.unwrap_or(0),
            last_ms: r.get::<_, Option<i64>>(n + 13)?.unwrap_or(0),
        };
        if sums.requests > 0 {
            raw_rows.push((bucket_ms, group, sums));
        }
    }
    let names = dim_names(c, &raw_rows)?;
    let mut out: Vec<Row> = raw_rows
        .into_iter()
        .map(|(bucket_ms, group, sums)| Row {
            bucket_ms,
            sums,
            group: group
                .into_iter()
                .zip(&query.group_by)
                .map(|(g, d)| match g {
                    GroupValue::Text(t) => t,
                    GroupValue::DimId(Some(id)) => names.get(&id).cloned().unwrap_or_default(),
                    GroupValue::DimId(None) => d.missing_label().to_string(),
                })
                .collect(),
        })
        .collect();
    crate::query::order_and_limit(query, &mut out);
    Ok(out)
}

/// Text of every dims id the rows reference, in one query.
fn dim_names(
    c: &Connection,
    rows: &[(Option<i64>, Vec<GroupValue>, Sums)],
) -> Result<HashMap<i64, String>> {
    let mut ids: Vec<i64> = rows
        .iter()
        .flat_map(|(_, g, _)| g.iter())
        .filter_map(|g| match g {
            GroupValue::DimId(Some(id)) => Some(*id),
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
