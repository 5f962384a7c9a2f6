//! `burnrate margin` (revenue, AI cost and margin per tenant, unprofitable first) and
//! `burnrate revenue` (plan prices, revenue overrides and one-offs): the same store
//! objects and report as `/v1/margin`, `/v1/plans/definitions` and `/v1/revenue`.

use crate::budget::service::{BudgetError, Budgets};
use crate::report::margin::{self, MarginReport, RevenueBook};
use crate::store::Store;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct MarginArgs {
    /// The UTC month YYYY-MM (default: this month so far).
    #[arg(long)]
    pub month: Option<String>,
    /// "Now" for a running month (RFC 3339); default the current time.
    #[arg(long)]
    pub at: Option<String>,
    #[arg(long, default_value = "prod")]
    pub env: String,
    #[arg(long = "data-mode", default_value = "real")]
    pub data_mode: String,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "default")]
    pub workspace: String,
}

#[derive(Subcommand)]
pub enum RevenueCommand {
    /// Every plan's monthly price.
    Prices {
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Set a plan's monthly price in USD.
    Price {
        plan: String,
        price_usd: String,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Import `tenantId,type,date,amountUsd` lines (header first; type override or
    /// oneOff; an empty amount on an override: back to the plan's price). One bad line
    /// imports nothing.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

pub async fn revenue(store: Arc<dyn Store>, cmd: RevenueCommand) -> anyhow::Result<()> {
    let budgets = Budgets::start(store.clone(), 600_000, crate::clock::system_clock()).await?;
    match cmd {
        RevenueCommand::Prices { workspace } => {
            let ws = super::workspace_id(store.as_ref(), &workspace).await?;
            let objects = store
                .objects(Some(ws), crate::revenue::PLAN_DEFINITION)
                .await?;
            let mut prices: Vec<_> = crate::revenue::prices(&objects).into_iter().collect();
            prices.sort();
            for (plan, price) in prices {
                println!("{plan}\t{} per month", price.readable());
            }
        }
        RevenueCommand::Price {
            plan,
            price_usd,
            workspace,
        } => {
            let ws = super::workspace_id(store.as_ref(), &workspace).await?;
            let body = serde_json::json!({ "priceUsd": price_usd });
            let price = crate::revenue::parse_price(&body)
                .map_err(|f| super::control::invalid("price", &f))?;
            budgets
                .define_plan(ws, &plan, price)
                .await
                .map_err(|e| cli_error("plan", e))?;
            println!("{plan}: {} per month", price.readable());
        }
        RevenueCommand::Import { file, workspace } => {
            let ws = super::workspace_id(store.as_ref(), &workspace).await?;
            let text = std::fs::read_to_string(&file)?;
            let entries = crate::revenue::parse_csv(&text)
                .map_err(|f| super::control::invalid("revenue file", &f))?;
            let n = budgets
                .add_revenue(ws, entries)
                .await
                .map_err(|e| cli_error("revenue entry", e))?;
            println!("{n} revenue entries added");
        }
    }
    Ok(())
}

fn cli_error(what: &str, e: BudgetError) -> anyhow::Error {
    match e {
        BudgetError::Invalid(fields) => super::control::invalid(what, &fields),
        BudgetError::Store(e) => e.into(),
    }
}

pub async fn margin(store: Arc<dyn Store>, args: MarginArgs) -> anyhow::Result<()> {
    let ws = super::workspace_id(store.as_ref(), &args.workspace).await?;
    let now = match &args.at {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|_| anyhow::anyhow!("--at must be an RFC 3339 time"))?
            .as_millisecond(),
        None => jiff::Timestamp::now().as_millisecond(),
    };
    let start = match &args.month {
        Some(m) => crate::revenue::parse_month(m)
            .ok_or_else(|| anyhow::anyhow!("--month must be YYYY-MM from 2020-01 to 2100-12"))?,
        None => now,
    };
    let (start, end) = crate::budget::period::Period::Month.bounds(start, "UTC");
    anyhow::ensure!(start <= now, "--month is in the future");
    let request = crate::query::QueryRequest {
        from: Some(crate::report::rfc3339(start)),
        to: Some(crate::report::rfc3339(end.min(now))),
        filters: [
            ("environment".to_string(), serde_json::json!(args.env)),
            ("dataMode".to_string(), serde_json::json!(args.data_mode)),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let base = request.check(now).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        (1..=1000).contains(&args.limit),
        "--limit must be from 1 to 1000"
    );
    let budgets = Budgets::start(store.clone(), 600_000, crate::clock::system_clock()).await?;
    let book = RevenueBook::load(
        store.as_ref(),
        ws,
        budgets.plans(ws).await?,
        budgets.plan_history(ws).await?,
    )
    .await?;
    let report =
        margin::margin(store.as_ref(), ws, &book, &base, (args.offset, args.limit)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(report: &MarginReport) {
    let mut t = super::table(&[
        "tenant",
        "plan",
        "revenue",
        "AI cost",
        "margin",
        "cost/revenue",
        "cost/user-day",
        "projected month cost",
    ]);
    for r in &report.tenants {
        t.add_row(vec![
            r.tenant_id.clone(),
            r.plan.clone().unwrap_or_else(|| "-".into()),
            r.revenue_usd.readable(),
            crate::money::with_unpriced(Some(r.cost_usd), r.unpriced),
            r.margin_usd.readable(),
            pct(r.cost_share_pct),
            r.cost_per_active_user_day_usd
                .map_or("-".into(), |u| u.readable()),
            r.projected
                .as_ref()
                .map_or("-".into(), |p| p.cost_usd.readable()),
        ]);
    }
    println!("{t}");
    let totals = &report.totals;
    println!(
        "{} .. {}: revenue {}, AI cost {} ({} of revenue), margin {}; {} of {} tenants unprofitable; {} per active user-day",
        report.from,
        report.to,
        totals.revenue_usd.readable(),
        crate::money::with_unpriced(Some(totals.cost_usd), totals.unpriced),
        pct(totals.cost_share_pct),
        totals.margin_usd.readable(),
        totals.unprofitable,
        report.count,
        totals
            .cost_per_active_user_day_usd
            .map_or("-".into(), |u| u.readable()),
    );
    if let Some(next) = report.next_offset {
        println!("more: --offset {next}");
    }
}

fn pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:.1}%"))
}
