//! Exports of stored events as CSV or NDJSON (`GET /v1/events?format=csv|ndjson`): one
//! line per event, money as exact decimal text. Pure: the HTTP layer streams the store's
//! pages through these, so an export of any size holds one page in memory. The aggregate
//! reads (`/v1/top/{kind}`, `/v1/timeseries`, `/v1/query`) answer `format=csv|ndjson`
//! through one `Table` of typed cells: the JSON answer's rows, one line each.

use crate::budget::{Budget, Members, Status};
use crate::explain::{Explanation, Pair};
use crate::money::Usd;
use crate::query::{Answer, Query, Sums};
use crate::reconcile::DayRow;
use crate::report::{Stats, Timeseries, TopReport, VersionComparison, VersionStats};
use crate::store::StoredEvent;
use std::borrow::Cow;

/// The export formats of `/v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "csv" => Some(Format::Csv),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    /// What comes before the first event (the CSV header line).
    pub fn head(self) -> String {
        match self {
            Format::Csv => format!("{}\r\n", EVENT_COLUMNS.join(",")),
            Format::Ndjson => String::new(),
        }
    }

    pub fn line(self, e: &StoredEvent) -> String {
        match self {
            Format::Csv => csv_row(e),
            Format::Ndjson => {
                let mut line = serde_json::to_string(e).expect("an event serializes");
                line.push('\n');
                line
            }
        }
    }
}

/// The CSV columns, named as the JSON fields.
pub const EVENT_COLUMNS: &[&str] = &[
    "externalRequestId",
    "timestamp",
    "receivedAt",
    "provider",
    "model",
    "endpointTag",
    "promptVersion",
    "tenantId",
    "userId",
    "inputTokens",
    "cachedTokens",
    "cacheWriteTokens",
    "outputTokens",
    "reasoningTokens",
    "totalTokens",
    "imageCount",
    "latencyMs",
    "status",
    "errorCode",
    "dataMode",
    "environment",
    "operation",
    "serviceTier",
    "usageMissing",
    "attempt",
    "attempts",
    "costUsd",
    "costSource",
    "priceEntryId",
    "priceBookVersion",
    "idless",
    "tags",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

/// One RFC 4180 record, CRLF-terminated. An unpriced call's cost is empty (never 0).
fn csv_row(e: &StoredEvent) -> String {
    let tags = if e.tags.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(e.tags.clone()).to_string()
    };
    let cells: [String; 32] = [
        e.external_request_id.clone(),
        e.timestamp.clone(),
        e.received_at.clone(),
        e.provider.clone(),
        e.model.clone(),
        e.endpoint_tag.clone(),
        opt(&e.prompt_version),
        opt(&e.tenant_id),
        opt(&e.user_id),
        e.input_tokens.to_string(),
        e.cached_tokens.to_string(),
        e.cache_write_tokens.to_string(),
        e.output_tokens.to_string(),
        e.reasoning_tokens.to_string(),
        e.total_tokens.to_string(),
        e.image_count.to_string(),
        opt(&e.latency_ms),
        e.status.to_string(),
        opt(&e.error_code),
        e.data_mode.to_string(),
        e.environment.to_string(),
        e.operation.to_string(),
        e.service_tier.to_string(),
        e.usage_missing.to_string(),
        e.attempt.to_string(),
        e.attempts.to_string(),
        opt(&e.cost_usd),
        opt(&e.cost_source),
        opt(&e.price_entry_id),
        opt(&e.price_book_version),
        e.idless.to_string(),
        tags,
    ];
    let mut row = cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
    row.push_str("\r\n");
    row
}

/// A cell quoted when it holds a comma, a quote or a line break (quotes doubled).
fn quote(cell: &str) -> Cow<'_, str> {
    if cell.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", cell.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The answer formats of the aggregate reads: JSON (the default), CSV or NDJSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Json,
    Csv,
    Ndjson,
}

impl TableFormat {
    /// The `format` parameter; None (a 400 naming `format`) for anything else.
    pub fn parse(text: Option<&str>) -> Option<TableFormat> {
        match text {
            None | Some("json") => Some(TableFormat::Json),
            Some("csv") => Some(TableFormat::Csv),
            Some("ndjson") => Some(TableFormat::Ndjson),
            Some(_) => None,
        }
    }
}

/// One cell of a table: what it is decides how CSV and NDJSON write it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Unknown (an unpriced cost, a ratio of nothing): an empty CSV cell, NDJSON null.
    Null,
    Text(String),
    /// A count, ratio or flag: written as the JSON answer writes it.
    Json(serde_json::Value),
    /// Money: exact decimal text in both formats (an NDJSON string, so that no JSON
    /// parser rounds it through a float).
    Money(Usd),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn money(v: Option<Usd>) -> Cell {
        v.map_or(Cell::Null, Cell::Money)
    }

    pub fn number(v: Option<f64>) -> Cell {
        v.map_or(Cell::Null, |v| Cell::Json(serde_json::Value::from(v)))
    }

    /// A count or an id (any integer type).
    pub fn int(v: impl Into<serde_json::Value>) -> Cell {
        Cell::Json(v.into())
    }

    pub fn flag(v: bool) -> Cell {
        Cell::Json(v.into())
    }

    /// A list in one cell: its JSON text in CSV, the array in NDJSON.
    pub fn list(v: &[String]) -> Cell {
        Cell::Json(v.into())
    }

    /// A value of the JSON answer: null stays unknown, a string stays text.
    pub fn of_json(v: serde_json::Value) -> Cell {
        match v {
            serde_json::Value::Null => Cell::Null,
            serde_json::Value::String(s) => Cell::Text(s),
            other => Cell::Json(other),
        }
    }

    /// The text of the cell in CSV.
    pub fn csv_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Json(v) => v.to_string(),
            Cell::Money(u) => u.to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Text(s) => serde_json::Value::String(s.clone()),
            Cell::Json(v) => v.clone(),
            Cell::Money(u) => serde_json::Value::String(u.to_string()),
        }
    }
}

/// Rows of cells under named columns: what an aggregate answer becomes as CSV or NDJSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// RFC 4180: a header line, then one CRLF-terminated record per row.
    pub fn to_csv(&self) -> String {
        let mut out = record(&self.columns);
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(Cell::csv_text).collect();
            out.push_str(&record(&cells));
        }
        out
    }

    /// One JSON object per row, keyed by the CSV column names in column order.
    pub fn to_ndjson(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            let fields: Vec<String> = self
                .columns
                .iter()
                .zip(row)
                .map(|(name, cell)| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(name.clone()),
                        cell.json()
                    )
                })
                .collect();
            out.push('{');
            out.push_str(&fields.join(","));
            out.push_str("}\n");
        }
        out
    }

    /// The cells as CSV text (for comparisons).
    pub fn texts(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(Cell::csv_text).collect())
            .collect()
    }
}

fn record(cells: &[String]) -> String {
    let mut line = cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

const STATS_COLUMNS: &[&str] = &[
    "requests",
    "costUsd",
    "costPerRequest",
    "tokensPerRequest",
    "inputTokensPerRequest",
    "outputTokensPerRequest",
    "errorRate",
    "retryRatio",
    "cacheHitRate",
    "unpriced",
    "latencyAvgMs",
];

fn stats_cells(s: &Stats) -> Vec<Cell> {
    vec![
        Cell::int(s.requests),
        Cell::money(s.cost_usd),
        Cell::money(s.cost_per_request),
        Cell::number(s.tokens_per_request),
        Cell::number(s.input_tokens_per_request),
        Cell::number(s.output_tokens_per_request),
        Cell::number(s.error_rate),
        Cell::number(s.retry_ratio),
        Cell::number(s.cache_hit_rate),
        Cell::int(s.unpriced),
        Cell::number(s.latency_avg_ms),
    ]
}

/// `/v1/top/{kind}`: one line per row of `rows`, named as the JSON fields; the group's
/// dimensions first, the previous window's stats as `previous.<field>`, the changes as
/// `change.<field>`.
pub fn top_table(dimensions: &[String], report: &TopReport) -> Table {
    let mut columns: Vec<String> = dimensions.to_vec();
    columns.extend(STATS_COLUMNS.iter().map(|c| c.to_string()));
    columns.push("sharePct".into());
    columns.extend(STATS_COLUMNS.iter().map(|c| format!("previous.{c}")));
    for c in [
        "requestsPct",
        "costUsdPct",
        "costPerRequestPct",
        "tokensPerRequestPct",
    ] {
        columns.push(format!("change.{c}"));
    }
    let rows = report
        .rows
        .iter()
        .map(|r| {
            let mut cells: Vec<Cell> = dimensions
                .iter()
                .map(|d| Cell::of_json(r.group.get(d).cloned().unwrap_or_default()))
                .collect();
            cells.extend(stats_cells(&r.stats));
            cells.push(Cell::number(r.share_pct));
            cells.extend(stats_cells(&r.previous));
            let c = &r.change;
            cells.extend([
                Cell::number(c.requests_pct),
                Cell::number(c.cost_usd_pct),
                Cell::number(c.cost_per_request_pct),
                Cell::number(c.tokens_per_request_pct),
            ]);
            cells
        })
        .collect();
    Table { columns, rows }
}

/// `/v1/timeseries`: one line per (bucket, series), buckets in order, the series in the
/// JSON answer's order within each bucket. The column of the series is named as `by`
/// (`series` when the answer is not split).
pub fn timeseries_table(t: &Timeseries) -> Table {
    let key = t.by.clone().unwrap_or_else(|| "series".into());
    let columns = vec!["bucket".into(), key, "costUsd".into(), "requests".into()];
    let mut rows = Vec::new();
    for (i, bucket) in t.buckets.iter().enumerate() {
        for s in &t.series {
            rows.push(vec![
                Cell::text(bucket),
                Cell::text(&s.key),
                Cell::Money(s.cost_usd[i]),
                Cell::int(s.requests[i]),
            ]);
        }
    }
    Table { columns, rows }
}

/// `/v1/query`: one line per row of `rows` (not the totals): the group's dimensions, the
/// bucket when bucketed, then each measure as in the JSON answer (`unpriced` joins
/// `costUsd`).
pub fn query_table(query: &Query, answer: &Answer) -> Table {
    use crate::query::Measure;
    let mut measures = query.measures.clone();
    if measures.contains(&Measure::CostUsd) && !measures.contains(&Measure::Unpriced) {
        measures.push(Measure::Unpriced);
    }
    let mut columns: Vec<String> = query.group_by.iter().map(|d| d.name()).collect();
    if query.bucket.is_some() {
        columns.push("bucket".into());
    }
    columns.extend(measures.iter().map(|m| m.name().to_string()));
    let rows = answer
        .rows
        .iter()
        .map(|row| {
            let mut cells: Vec<Cell> = row.group.iter().map(Cell::text).collect();
            if query.bucket.is_some() {
                cells.push(
                    row.bucket_ms
                        .map_or(Cell::Null, |ms| Cell::Text(crate::report::rfc3339(ms))),
                );
            }
            cells.extend(measures.iter().map(|m| measure_cell(&row.sums, *m)));
            cells
        })
        .collect();
    Table { columns, rows }
}

/// A measure's cell: money from the exact sums, the rest as the JSON answer writes it.
fn measure_cell(sums: &Sums, m: crate::query::Measure) -> Cell {
    use crate::query::Measure;
    match m {
        Measure::CostUsd => Cell::money(sums.cost_usd()),
        Measure::CostPerRequest => Cell::money(sums.cost_per_request()),
        _ => Cell::of_json(sums.value(m)),
    }
}

/// A pair's two sides as `<name>.baseline`, `<name>.current` columns.
fn pair_columns(columns: &mut Vec<String>, names: &[&str]) {
    for n in names {
        columns.push(format!("{n}.baseline"));
        columns.push(format!("{n}.current"));
    }
}

fn pair_cells<T: Copy>(p: &Pair<T>, cell: impl Fn(T) -> Cell) -> [Cell; 2] {
    [cell(p.baseline), cell(p.current)]
}

/// A value's serde name (an enum such as a driver's kind or a budget's state).
fn name_of<T: serde::Serialize>(v: &T) -> Cell {
    Cell::of_json(serde_json::to_value(v).unwrap_or_default())
}

fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|c| c.to_string()).collect()
}

/// The tables of `/v1/explain` (`table=`), each one list of the JSON answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainTable {
    /// `drivers`: the ranked findings.
    Drivers,
    /// `dimensions[].groups[]`: one line per (dimension, group).
    Dimensions,
    /// `endpoints[]`: one line per endpoint, its cause flattened.
    Endpoints,
    /// `endpoints[].promptVersions[]` and `.models[]`: one line per (endpoint, kind, value).
    Mix,
}

impl ExplainTable {
    pub const EXPECTED: &'static str = "drivers, dimensions, endpoints, mix";

    /// The `table` parameter (`drivers` when absent).
    pub fn parse(text: Option<&str>) -> Option<ExplainTable> {
        match text {
            None | Some("drivers") => Some(ExplainTable::Drivers),
            Some("dimensions") => Some(ExplainTable::Dimensions),
            Some("endpoints") => Some(ExplainTable::Endpoints),
            Some("mix") => Some(ExplainTable::Mix),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExplainTable::Drivers => "drivers",
            ExplainTable::Dimensions => "dimensions",
            ExplainTable::Endpoints => "endpoints",
            ExplainTable::Mix => "mix",
        }
    }
}

/// One table of an explanation, named as the JSON fields (pairs as `.baseline` and
/// `.current`).
pub fn explain_table(which: ExplainTable, e: &Explanation) -> Table {
    match which {
        ExplainTable::Drivers => drivers_table(e),
        ExplainTable::Dimensions => dimensions_table(e),
        ExplainTable::Endpoints => endpoints_table(e),
        ExplainTable::Mix => mix_table(e),
    }
}

fn drivers_table(e: &Explanation) -> Table {
    let columns = columns(&[
        "kind",
        "dimension",
        "value",
        "endpointTag",
        "contributionUsd",
        "contributionPct",
        "sentence",
    ]);
    let rows = e
        .drivers
        .iter()
        .map(|d| {
            vec![
                name_of(&d.kind),
                Cell::text(&d.dimension),
                Cell::text(&d.value),
                d.endpoint_tag.as_ref().map_or(Cell::Null, Cell::text),
                Cell::Money(d.contribution_usd),
                Cell::number(d.contribution_pct),
                Cell::text(&d.sentence),
            ]
        })
        .collect();
    Table { columns, rows }
}

fn dimensions_table(e: &Explanation) -> Table {
    let mut cols = columns(&["dimension", "value", "presence"]);
    pair_columns(
        &mut cols,
        &["requests", "costUsd", "unpriced", "costPerRequest"],
    );
    cols.extend(columns(&[
        "changeUsd",
        "volumeUsd",
        "costPerRequestUsd",
        "shareOfChangePct",
        "requestsChangePct",
        "costPerRequestChangePct",
    ]));
    let mut rows = Vec::new();
    for d in &e.dimensions {
        for g in &d.groups {
            let mut row = vec![
                Cell::text(&d.dimension),
                Cell::text(&g.value),
                name_of(&g.presence),
            ];
            row.extend(pair_cells(&g.requests, Cell::int));
            row.extend(pair_cells(&g.cost_usd, Cell::money));
            row.extend(pair_cells(&g.unpriced, Cell::int));
            row.extend(pair_cells(&g.cost_per_request, Cell::money));
            row.extend([
                Cell::Money(g.change_usd),
                Cell::Money(g.split.volume_usd),
                Cell::Money(g.split.cost_per_request_usd),
                Cell::number(g.share_of_change_pct),
                Cell::number(g.requests_change_pct),
                Cell::number(g.cost_per_request_change_pct),
            ]);
            rows.push(row);
        }
    }
    Table {
        columns: cols,
        rows,
    }
}

fn endpoints_table(e: &Explanation) -> Table {
    let mut cols = columns(&["endpointTag", "changeUsd", "volumeUsd", "costPerRequestUsd"]);
    pair_columns(
        &mut cols,
        &[
            "requests",
            "costPerRequest",
            "retryRatio",
            "errorShare",
            "cacheHitRate",
            "inputTokensPerRequest",
            "outputTokensPerRequest",
        ],
    );
    cols.extend(columns(&["cause.kind", "cause.dimension", "cause.value"]));
    let rows = e
        .endpoints
        .iter()
        .map(|f| {
            let mut row = vec![
                Cell::text(&f.endpoint_tag),
                Cell::Money(f.change_usd),
                Cell::Money(f.split.volume_usd),
                Cell::Money(f.split.cost_per_request_usd),
            ];
            row.extend(pair_cells(&f.requests, Cell::int));
            row.extend(pair_cells(&f.cost_per_request, Cell::money));
            for p in [
                &f.retry_ratio,
                &f.error_share,
                &f.cache_hit_rate,
                &f.input_tokens_per_request,
                &f.output_tokens_per_request,
            ] {
                row.extend(pair_cells(p, Cell::number));
            }
            match &f.cause {
                Some(c) => row.extend([
                    name_of(&c.kind),
                    Cell::text(&c.dimension),
                    Cell::text(&c.value),
                ]),
                None => row.extend([Cell::Null, Cell::Null, Cell::Null]),
            }
            row
        })
        .collect();
    Table {
        columns: cols,
        rows,
    }
}

fn mix_table(e: &Explanation) -> Table {
    let mut cols = columns(&["endpointTag", "dimension", "value"]);
    pair_columns(&mut cols, &["requests", "share", "costPerRequest"]);
    cols.extend(columns(&["firstSeen", "newInWindow"]));
    let mut rows = Vec::new();
    for f in &e.endpoints {
        let lists = [("promptVersion", &f.prompt_versions), ("model", &f.models)];
        for (dimension, list) in lists {
            for m in list.iter() {
                let mut row = vec![
                    Cell::text(&f.endpoint_tag),
                    Cell::text(dimension),
                    Cell::text(&m.value),
                ];
                row.extend(pair_cells(&m.requests, Cell::int));
                row.extend(pair_cells(&m.share, Cell::number));
                row.extend(pair_cells(&m.cost_per_request, Cell::money));
                row.push(m.first_seen.as_ref().map_or(Cell::Null, Cell::text));
                row.push(Cell::flag(m.new_in_window));
                rows.push(row);
            }
        }
    }
    Table {
        columns: cols,
        rows,
    }
}

/// The tables of `/v1/budgets` (`table=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetTable {
    /// One line per budget: its definition's headline and its status.
    Budgets,
    /// One line per member over or near its cap (per-member budgets' pages).
    Members,
}

impl BudgetTable {
    pub const EXPECTED: &'static str = "budgets, members";

    /// The `table` parameter (`budgets` when absent).
    pub fn parse(text: Option<&str>) -> Option<BudgetTable> {
        match text {
            None | Some("budgets") => Some(BudgetTable::Budgets),
            Some("members") => Some(BudgetTable::Members),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BudgetTable::Budgets => "budgets",
            BudgetTable::Members => "members",
        }
    }
}

/// One table of the budget list: each entry is a budget and its status.
pub fn budget_table(which: BudgetTable, list: &[(Budget, Status)]) -> Table {
    match which {
        BudgetTable::Budgets => budgets_table(list),
        BudgetTable::Members => members_table(list),
    }
}

fn budgets_table(list: &[(Budget, Status)]) -> Table {
    let columns = columns(&[
        "budgetId",
        "name",
        "scope",
        "period",
        "action",
        "periodStart",
        "periodEnd",
        "limitUsd",
        "spentUsd",
        "reservedUsd",
        "remainingUsd",
        "usedPct",
        "state",
        "thresholdReached",
        "forecastUsd",
        "projectedExhaustion",
        "unpricedRequests",
        "members.count",
        "members.over",
        "members.near",
    ]);
    let rows = list
        .iter()
        .map(|(b, s)| {
            // Through a Value: keys sorted, as the scope reads in any JSON tool.
            let scope = serde_json::to_value(&b.scope)
                .unwrap_or_default()
                .to_string();
            let members = |f: fn(&Members) -> usize| {
                s.members.as_ref().map_or(Cell::Null, |m| Cell::int(f(m)))
            };
            vec![
                Cell::int(s.budget_id),
                Cell::text(&s.name),
                Cell::Text(scope),
                name_of(&b.period),
                name_of(&b.action),
                Cell::text(&s.period_start),
                Cell::text(&s.period_end),
                Cell::Money(s.limit_usd),
                Cell::Money(s.spent_usd),
                Cell::Money(s.reserved_usd),
                Cell::Money(s.remaining_usd),
                Cell::number(Some(s.used_pct)),
                name_of(&s.state),
                Cell::number(s.threshold_reached),
                Cell::Money(s.forecast_usd),
                s.projected_exhaustion
                    .as_ref()
                    .map_or(Cell::Null, Cell::text),
                Cell::int(s.unpriced_requests),
                members(|m| m.count),
                members(|m| m.over),
                members(|m| m.near),
            ]
        })
        .collect();
    Table { columns, rows }
}

fn members_table(list: &[(Budget, Status)]) -> Table {
    let columns = columns(&[
        "budgetId",
        "budgetName",
        "member",
        "plan",
        "limitUsd",
        "spentUsd",
        "reservedUsd",
        "usedPct",
        "state",
    ]);
    let mut rows = Vec::new();
    for (_, s) in list {
        for m in s.members.iter().flat_map(|m| &m.page) {
            rows.push(vec![
                Cell::int(s.budget_id),
                Cell::text(&s.name),
                Cell::text(&m.member),
                m.plan.as_ref().map_or(Cell::Null, Cell::text),
                Cell::Money(m.limit_usd),
                Cell::Money(m.spent_usd),
                Cell::Money(m.reserved_usd),
                Cell::number(Some(m.used_pct)),
                name_of(&m.state),
            ]);
        }
    }
    Table { columns, rows }
}

/// The tables of `/v1/prompt-versions` (`table=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionTable {
    /// One line per endpoint: its current version against its baseline.
    Comparisons,
    /// One line per (endpoint, version seen in the window).
    Versions,
}

impl VersionTable {
    pub const EXPECTED: &'static str = "comparisons, versions";

    /// The `table` parameter (`comparisons` when absent).
    pub fn parse(text: Option<&str>) -> Option<VersionTable> {
        match text {
            None | Some("comparisons") => Some(VersionTable::Comparisons),
            Some("versions") => Some(VersionTable::Versions),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VersionTable::Comparisons => "comparisons",
            VersionTable::Versions => "versions",
        }
    }
}

const VERSION_COLUMNS: &[&str] = &["promptVersion", "latencyP95Ms", "firstSeen", "lastSeen"];

fn version_columns(prefix: &str) -> Vec<String> {
    VERSION_COLUMNS
        .iter()
        .take(2)
        .chain(STATS_COLUMNS)
        .chain(&VERSION_COLUMNS[2..])
        .map(|c| format!("{prefix}{c}"))
        .collect()
}

fn version_cells(v: Option<&VersionStats>) -> Vec<Cell> {
    let Some(v) = v else {
        return vec![Cell::Null; VERSION_COLUMNS.len() + STATS_COLUMNS.len()];
    };
    let mut cells = vec![
        Cell::text(&v.prompt_version),
        v.latency_p95_ms.map_or(Cell::Null, Cell::int),
    ];
    cells.extend(stats_cells(&v.stats));
    cells.extend([Cell::text(&v.first_seen), Cell::text(&v.last_seen)]);
    cells
}

const DELTA_COLUMNS: &[&str] = &[
    "costPerRequestPct",
    "inputTokensPerRequestPct",
    "outputTokensPerRequestPct",
    "cacheHitRatePct",
    "errorRatePct",
    "latencyAvgMsPct",
    "latencyP95MsPct",
];

/// One table of the prompt-version comparison, named as the JSON fields (`current.`,
/// `baseline.` and `delta.` prefixes on a comparison's line).
pub fn version_table(which: VersionTable, list: &[VersionComparison]) -> Table {
    let mut columns = vec!["endpointTag".to_string()];
    let mut rows = Vec::new();
    match which {
        VersionTable::Comparisons => {
            columns.extend(version_columns("current."));
            columns.extend(version_columns("baseline."));
            columns.extend(DELTA_COLUMNS.iter().map(|c| format!("delta.{c}")));
            for c in list {
                let mut row = vec![Cell::text(&c.endpoint_tag)];
                row.extend(version_cells(Some(&c.current)));
                row.extend(version_cells(c.baseline.as_ref()));
                match &c.delta {
                    Some(d) => row.extend([
                        Cell::number(d.cost_per_request_pct),
                        Cell::number(d.input_tokens_per_request_pct),
                        Cell::number(d.output_tokens_per_request_pct),
                        Cell::number(d.cache_hit_rate_pct),
                        Cell::number(d.error_rate_pct),
                        Cell::number(d.latency_avg_ms_pct),
                        Cell::number(d.latency_p95_ms_pct),
                    ]),
                    None => row.extend(vec![Cell::Null; DELTA_COLUMNS.len()]),
                }
                rows.push(row);
            }
        }
        VersionTable::Versions => {
            columns.extend(version_columns(""));
            for c in list {
                for v in &c.versions {
                    let mut row = vec![Cell::text(&c.endpoint_tag)];
                    row.extend(version_cells(Some(v)));
                    rows.push(row);
                }
            }
        }
    }
    Table { columns, rows }
}

/// The tables of `/v1/reconciliation` (`table=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillTable {
    /// One line per billed day and provider.
    Days,
    /// One line per (day, provider, model) of reports split by model.
    Models,
}

impl BillTable {
    pub const EXPECTED: &'static str = "days, models";

    /// The `table` parameter (`days` when absent).
    pub fn parse(text: Option<&str>) -> Option<BillTable> {
        match text {
            None | Some("days") => Some(BillTable::Days),
            Some("models") => Some(BillTable::Models),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BillTable::Days => "days",
            BillTable::Models => "models",
        }
    }
}

/// One table of the bill against the attribution, named as the JSON fields.
pub fn bill_table(which: BillTable, days: &[DayRow]) -> Table {
    match which {
        BillTable::Days => {
            let columns = columns(&[
                "day",
                "provider",
                "source",
                "billedUsd",
                "unpricedBillLines",
                "attributedUsd",
                "differenceUsd",
                "coveragePct",
                "requests",
                "unpriced",
                "unpricedModels",
                "unattributed.notReportedUsd",
                "unattributed.priceGapUsd",
                "unattributed.otherUsd",
                "unattributed.overAttributedUsd",
                "modelsCut",
            ]);
            let rows = days
                .iter()
                .map(|d| {
                    let u = &d.unattributed;
                    vec![
                        Cell::text(&d.day),
                        Cell::text(&d.provider),
                        Cell::text(&d.source),
                        Cell::Money(d.billed_usd),
                        Cell::int(d.unpriced_bill_lines),
                        Cell::Money(d.attributed_usd),
                        Cell::Money(d.difference_usd),
                        Cell::number(d.coverage_pct),
                        Cell::int(d.requests),
                        Cell::int(d.unpriced),
                        Cell::list(&d.unpriced_models),
                        Cell::Money(u.not_reported_usd),
                        Cell::Money(u.price_gap_usd),
                        Cell::Money(u.other_usd),
                        Cell::Money(u.over_attributed_usd),
                        Cell::flag(d.models_cut),
                    ]
                })
                .collect();
            Table { columns, rows }
        }
        BillTable::Models => {
            let columns = columns(&[
                "day",
                "provider",
                "model",
                "billedUsd",
                "attributedUsd",
                "differenceUsd",
                "coveragePct",
                "requests",
                "unpriced",
            ]);
            let mut rows = Vec::new();
            for d in days {
                for m in &d.models {
                    rows.push(vec![
                        Cell::text(&d.day),
                        Cell::text(&d.provider),
                        m.model.as_ref().map_or(Cell::Null, Cell::text),
                        Cell::Money(m.billed_usd),
                        Cell::Money(m.attributed_usd),
                        Cell::Money(m.difference_usd),
                        Cell::number(m.coverage_pct),
                        Cell::int(m.requests),
                        Cell::int(m.unpriced),
                    ]);
                }
            }
            Table { columns, rows }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Usd;

    fn stored() -> StoredEvent {
        StoredEvent {
            external_request_id: "r-1".into(),
            idless: false,
            timestamp: "2026-03-01T10:00:00Z".into(),
            received_at: "2026-03-01T10:00:01Z".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            endpoint_tag: "support, \"reply\"".into(),
            prompt_version: None,
            tenant_id: Some("acme".into()),
            user_id: None,
            input_tokens: 1000,
            cached_tokens: 400,
            cache_write_tokens: 0,
            output_tokens: 200,
            reasoning_tokens: 0,
            total_tokens: 1200,
            image_count: 0,
            latency_ms: Some(840),
            status: "success",
            error_code: None,
            data_mode: "real",
            environment: "prod",
            operation: "chat",
            service_tier: "standard",
            usage_missing: false,
            tags: serde_json::Map::new(),
            attempt: 1,
            attempts: 1,
            cost_usd: Some(Usd(240_001)),
            cost_source: Some("catalog"),
            price_entry_id: None,
            price_book_version: None,
            repriced_at: None,
        }
    }

    #[test]
    fn csv_rows_quote_what_needs_it_and_write_money_as_exact_decimals() {
        let row = Format::Csv.line(&stored());
        assert!(row.starts_with("r-1,2026-03-01T10:00:00Z,2026-03-01T10:00:01Z,openai,gpt-4o-mini,\"support, \"\"reply\"\"\",,acme,,1000,400,0,200,0,1200,0,840,success,"), "{row}");
        assert!(
            row.contains(",1,1,0.000240001,catalog,,,false,\r\n"),
            "{row}"
        );
        assert_eq!(
            Format::Csv.head().trim_end().split(',').count(),
            EVENT_COLUMNS.len()
        );
        let mut unpriced = stored();
        unpriced.cost_usd = None;
        unpriced.cost_source = None;
        assert!(Format::Csv.line(&unpriced).contains(",1,1,,,,,false,"));
    }

    #[test]
    fn ndjson_lines_are_the_json_events() {
        let line = Format::Ndjson.line(&stored());
        assert!(line.ends_with("}\n"));
        assert!(line.contains("\"costUsd\":0.000240001"), "{line}");
    }

    #[test]
    fn tables_write_a_header_then_one_quoted_record_per_row() {
        let table = Table {
            columns: vec!["endpointTag".into(), "costUsd".into(), "requests".into()],
            rows: vec![
                vec![
                    Cell::text("a,b"),
                    Cell::Money(Usd(1_500_000_001)),
                    Cell::int(3u64),
                ],
                vec![Cell::text("say \"hi\""), Cell::Null, Cell::int(0u64)],
            ],
        };
        assert_eq!(
            table.to_csv(),
            "endpointTag,costUsd,requests\r\n\"a,b\",1.500000001,3\r\n\"say \"\"hi\"\"\",,0\r\n"
        );
        assert_eq!(TableFormat::parse(None), Some(TableFormat::Json));
        assert_eq!(TableFormat::parse(Some("csv")), Some(TableFormat::Csv));
        assert_eq!(
            TableFormat::parse(Some("ndjson")),
            Some(TableFormat::Ndjson)
        );
        assert_eq!(TableFormat::parse(Some("CSV")), None);
    }

    #[test]
    fn ndjson_tables_write_money_as_exact_strings_and_unknown_as_null() {
        let table = Table {
            columns: vec!["endpointTag".into(), "costUsd".into(), "share".into()],
            rows: vec![
                vec![
                    Cell::text("a\"b"),
                    Cell::Money(Usd(1_500_000_001)),
                    Cell::number(Some(0.5)),
                ],
                vec![Cell::text("c"), Cell::money(None), Cell::number(None)],
            ],
        };
        assert_eq!(
            table.to_ndjson(),
            "{\"endpointTag\":\"a\\\"b\",\"costUsd\":\"1.500000001\",\"share\":0.5}\n\
             {\"endpointTag\":\"c\",\"costUsd\":null,\"share\":null}\n"
        );
    }

    #[test]
    fn timeseries_tables_have_one_line_per_bucket_and_series() {
        let t = Timeseries {
            bucket: crate::query::Bucket::Day,
            by: Some("model".into()),
            buckets: vec!["2026-03-01T00:00:00Z".into(), "2026-03-02T00:00:00Z".into()],
            series: vec![
                crate::report::Series {
                    key: "m1".into(),
                    cost_usd: vec![Usd(10), Usd(0)],
                    requests: vec![1, 0],
                },
                crate::report::Series {
                    key: "other".into(),
                    cost_usd: vec![Usd(2_000_000_000), Usd(3)],
                    requests: vec![4, 1],
                },
            ],
            total: crate::report::Series {
                key: "total".into(),
                cost_usd: vec![Usd(2_000_000_010), Usd(3)],
                requests: vec![5, 1],
            },
        };
        let table = timeseries_table(&t);
        assert_eq!(table.columns, ["bucket", "model", "costUsd", "requests"]);
        assert_eq!(
            table.texts(),
            [
                ["2026-03-01T00:00:00Z", "m1", "0.00000001", "1"],
                ["2026-03-01T00:00:00Z", "other", "2", "4"],
                ["2026-03-02T00:00:00Z", "m1", "0", "0"],
                ["2026-03-02T00:00:00Z", "other", "0.000000003", "1"],
            ]
        );
    }
}
