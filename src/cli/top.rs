//! `burnrate top` (the report's top list as a table or JSON) and `burnrate query` (an
//! aggregate query from a file, answered as POST /v1/query answers it).

use super::args::TopArgs;
use super::{parse_since, workspace_id};
use crate::query::Dimension;
use crate::report::{TopKind, TopReport, TopRow};
use crate::store::Store;
use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use std::path::PathBuf;

fn pct_text(p: Option<f64>) -> String {
    p.map(|p| format!("{p:+.1}%")).unwrap_or_else(|| "-".into())
}

/// Dollars with the digits that matter: $12.34, $0.0533, $0.000405.
fn usd_text(u: Option<crate::money::Usd>) -> String {
    match u {
        Some(u) if u.0.abs() >= 1_000_000_000 => format!("${:.2}", u.as_f64()),
        Some(u) if u.0.abs() >= 10_000_000 => format!("${:.4}", u.as_f64()),
        Some(u) => format!("${:.6}", u.as_f64()),
        None => "-".into(),
    }
}

pub async fn top(store: &dyn Store, args: TopArgs) -> anyhow::Result<()> {
    let kind = TopKind::parse(&args.kind)
        .with_context(|| format!("{:?}: use one of {}", args.kind, TopKind::EXPECTED))?;
    let ws = workspace_id(store, &args.workspace).await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let request = crate::query::QueryRequest {
        from: Some(crate::report::rfc3339(now - parse_since(&args.since)?)),
        to: Some(crate::report::rfc3339(now)),
        filters: [
            ("environment".to_string(), serde_json::json!(args.env)),
            ("dataMode".to_string(), serde_json::json!(args.data_mode)),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let base = request.check(now).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = crate::report::top(store, ws, &base, kind, args.limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}", top_table(&report, kind));
    println!(
        "{} .. {} ({} {}): total {} over {} requests ({} vs the previous {}); {} unpriced",
        report.from,
        report.to,
        args.env,
        args.data_mode,
        report.total.money_text(),
        report.total.requests,
        pct_text(
            crate::report::Change::between(&report.total, &report.previous_total).cost_usd_pct
        ),
        args.since,
        report.total.unpriced
    );
    Ok(())
}

/// One row per group: its dimensions, then the nine measures, right-aligned.
fn top_table(report: &TopReport, kind: TopKind) -> Table {
    let dims = kind.dimensions();
    let mut header: Vec<String> = dims.iter().map(|d| d.name()).collect();
    header.extend(
        [
            "requests",
            "cost",
            "share",
            "cost/req",
            "Δ cost",
            "Δ cost/req",
            "tokens/req",
            "errors",
            "retries",
        ]
        .map(String::from),
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for row in &report.rows {
        t.add_row(top_cells(row, &dims));
    }
    for i in dims.len()..dims.len() + 9 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// A row's cells: its group's values in `dims`' order, then its measures; unpriced is a
/// state, not $0, so the money always comes with its unpriced calls.
fn top_cells(row: &TopRow, dims: &[Dimension]) -> Vec<String> {
    let mut cells: Vec<String> = dims
        .iter()
        .map(|d| {
            row.group
                .get(&d.name())
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let s = &row.stats;
    cells.extend([
        s.requests.to_string(),
        s.money_text(),
        row.share_pct
            .map(|p| format!("{p:.1}%"))
            .unwrap_or_else(|| "-".into()),
        usd_text(s.cost_per_request),
        pct_text(row.change.cost_usd_pct),
        pct_text(row.change.cost_per_request_pct),
        s.tokens_per_request
            .map(|t| format!("{t:.0}"))
            .unwrap_or_else(|| "-".into()),
        s.error_rate
            .map(|e| format!("{:.1}%", e * 100.0))
            .unwrap_or_else(|| "-".into()),
        s.retry_ratio
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "-".into()),
    ]);
    cells
}

pub async fn query_file(store: &dyn Store, file: &PathBuf, workspace: &str) -> anyhow::Result<()> {
    let ws = workspace_id(store, workspace).await?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let request: crate::query::QueryRequest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a query (see POST /v1/query)", file.display()))?;
    let query = request
        .check(jiff::Timestamp::now().as_millisecond())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = store.aggregate(ws, query.clone()).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::http::api::query_answer(&query, &answer))?
    );
    Ok(())
}
