//! `burnrate migrate --to URL`: open both stores, copy (`crate::migrate`), print what was
//! copied and whether both stores' totals agree.

use crate::query::Sums;
use crate::store::StoreUrl;
use std::io::IsTerminal;
use std::process::ExitCode;

pub async fn migrate(from: &str, to: &str, restart: bool) -> anyhow::Result<ExitCode> {
    let from_label = StoreUrl::parse(from)?.describe();
    let to_label = StoreUrl::parse(to)?.describe();
    anyhow::ensure!(from_label != to_label, "--to names the store being copied");
    let source = crate::store::open(from)?;
    let target = crate::store::open(to)?;
    eprintln!("copying {from_label} into {to_label}");
    let tty = std::io::stderr().is_terminal();
    let report = crate::migrate::migrate(
        source.as_ref(),
        &from_label,
        target.as_ref(),
        restart,
        |ws, n| match tty {
            // One line that counts up on a terminal; a line per page in a log.
            true => eprint!("\r  {ws}: {n} calls"),
            false => eprintln!("  {ws}: {n} calls"),
        },
    )
    .await;
    source.close().await;
    target.close().await;
    let report = report?;
    if tty {
        eprintln!();
    }
    println!(
        "copied {} price books, {} keys, {} control objects",
        report.books_added, report.keys_added, report.objects
    );
    let mut all_match = true;
    for ws in &report.workspaces {
        println!(
            "workspace {}: {} calls copied, {} already there; source {}; target {}",
            ws.name,
            ws.copied,
            ws.already_there,
            describe(&ws.source),
            describe(&ws.target)
        );
        if let Some(ms) = ws.raw_from_ms {
            let from = jiff::Timestamp::from_millisecond(ms)?;
            println!(
                "workspace {}: raw events before {from} were pruned (retention); their sums stay in the source only, both stores are compared from then",
                ws.name
            );
        }
        all_match &= ws.matches();
    }
    if all_match {
        println!("both stores hold the same calls and cost");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("the stores differ (see above): run the command again to continue the copy");
        Ok(ExitCode::FAILURE)
    }
}

fn describe(s: &Sums) -> String {
    format!(
        "{} calls, {} priced, {} USD, {} input + {} output tokens",
        s.requests, s.priced, s.cost, s.input, s.output
    )
}
