//! `burnrate reconcile import FILE` (a provider's cost report: OpenAI Costs or Usage API
//! pages, Anthropic's cost report, or `date,provider,model,amountUsd` CSV) and `burnrate
//! reconcile show` (billed against attributed per day and provider): the same objects
//! and report as `/v1/reconciliation`.

use crate::reconcile::parse::{self, Format};
use crate::report::reconcile as report;
use crate::store::Store;
use clap::Subcommand;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ReconcileCommand {
    /// Import a provider's cost report; a provider's day imported again replaces the
    /// stored one (never counted twice). One bad line imports nothing.
    Import {
        file: PathBuf,
        /// openai-costs, openai-usage, anthropic-cost or csv (default: told from the file).
        #[arg(long)]
        format: Option<String>,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Billed against attributed per UTC day and provider, with the unattributed spend.
    Show {
        /// First day, YYYY-MM-DD or RFC 3339 (default: 30 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive), YYYY-MM-DD or RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Environments attributed (comma-separated; default all).
        #[arg(long)]
        env: Option<String>,
        #[arg(long = "data-mode", default_value = "real")]
        data_mode: String,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

pub async fn reconcile(store: Arc<dyn Store>, cmd: ReconcileCommand) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_millisecond();
    match cmd {
        ReconcileCommand::Import {
            file,
            format,
            workspace,
        } => {
            let ws = super::workspace_id(store.as_ref(), &workspace).await?;
            let text = std::fs::read_to_string(&file)?;
            let format = Format::named_or_sniffed(format.as_deref(), &text)
                .map_err(|m| anyhow::anyhow!("--format {m}"))?;
            let mut days =
                parse::parse(format, &text).map_err(|f| super::control::invalid("report", &f))?;
            let book = crate::app::load_prices(store.as_ref()).await?;
            crate::reconcile::price_usage(&mut days, &book);
            let s = report::save(store.as_ref(), ws, format.as_str(), days, now).await?;
            println!(
                "{} provider-days imported from {} ({} to {}; {} replaced an earlier import): {} billed",
                s.days,
                s.format,
                s.from,
                s.to,
                s.replaced,
                s.billed_usd.readable()
            );
            if s.unpriced_lines > 0 {
                println!(
                    "{} usage lines have no price in the book (their tokens are not in the billed amount)",
                    s.unpriced_lines
                );
            }
        }
        ReconcileCommand::Show {
            from,
            to,
            env,
            data_mode,
            json,
            workspace,
        } => {
            let ws = super::workspace_id(store.as_ref(), &workspace).await?;
            let mut params = HashMap::new();
            let flags = [
                ("from", from),
                ("to", to),
                ("environment", env),
                ("dataMode", Some(data_mode)),
            ];
            for (name, value) in flags {
                if let Some(v) = value {
                    params.insert(name.to_string(), v);
                }
            }
            let (from, to, filters) =
                report::params(&params, now).map_err(|(f, m)| anyhow::anyhow!("--{f} {m}"))?;
            let r = report::reconciliation(store.as_ref(), ws, from, to, &filters).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_table(&r);
            }
        }
    }
    Ok(())
}

fn print_table(r: &report::Reconciliation) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "Day",
        "Provider",
        "Billed",
        "Attributed",
        "Difference",
        "Coverage",
        "Not reported",
        "Price gaps",
        "Other",
        "Unpriced calls",
    ]);
    for d in &r.days {
        table.add_row([
            d.day.clone(),
            d.provider.clone(),
            d.billed_usd.readable(),
            d.attributed_usd.readable(),
            d.difference_usd.readable(),
            pct(d.coverage_pct),
            d.unattributed.not_reported_usd.readable(),
            d.unattributed.price_gap_usd.readable(),
            d.unattributed.other_usd.readable(),
            d.unpriced.to_string(),
        ]);
    }
    println!("{table}");
    println!(
        "{} to {}: billed {}, attributed {}, difference {} (coverage {})",
        r.from,
        r.to,
        r.totals.billed_usd.readable(),
        r.totals.attributed_usd.readable(),
        r.totals.difference_usd.readable(),
        pct(r.totals.coverage_pct)
    );
}

fn pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:.1}%"))
}
