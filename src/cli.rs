//! The command line: flags in, library calls out. The only module that knows clap.
//! `args` holds the flags; each command family has its file (`import`: import and demo,
//! `keys`: keys and workspaces, `prices`, `top`: top and query, `explain`: explain and
//! the gate, `doctor`: tracking quality, `control`: budgets and alerts, `margin`: margin
//! and revenue, `reconcile`: the provider's bill, `config`: the
//! burnrate.toml flags file); `serve` is
//! `server::run`.

pub mod args;
pub mod config;
pub mod control;
pub mod deploy;
pub mod doctor;
pub mod explain;
pub mod export;
pub mod import;
pub mod keys;
pub mod mappings;
pub mod margin;
pub mod migrate;
pub mod plans;
pub mod prices;
pub mod profile;
pub mod reconcile;
pub mod remote;
pub mod top;

pub use args::{Cli, Command};
pub use config::parse_args;

use crate::load::workspace_id;
use crate::store::Store;
use args::PriceCommand;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::process::ExitCode;
use std::sync::Arc;

/// Run a command; the exit code is success unless the command has its own (the gate).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Prices(PriceCommand::Generate {
        litellm,
        genai_prices,
        corrections,
        out,
        package_version,
        snapshot_date,
    }) = &cli.command
    {
        let sources = prices::Sources {
            litellm,
            genai_prices: genai_prices.as_ref(),
            corrections,
        };
        prices::generate_book(sources, out, package_version, snapshot_date)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Config(config::ConfigCommand::Example) = &cli.command {
        print!("{}", config::example());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(result) = control::from_server(&cli.command).await {
        return result.map(|_| ExitCode::SUCCESS);
    }
    let url = cli.store_url();
    // These open the store themselves, or not at all when asking a server.
    match cli.command {
        Command::Explain(args) => {
            return explain::explain(&url, args)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        Command::Gate(args) => return Ok(explain::gate(&url, args).await),
        Command::Deploy(cmd) => return deploy::deploy(&url, cmd).await.map(|_| ExitCode::SUCCESS),
        Command::Mappings(cmd) => {
            return mappings::mappings(&url, cmd)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        Command::Doctor(args) => {
            return doctor::doctor(&url, args).await.map(|_| ExitCode::SUCCESS)
        }
        Command::Restore { file, replace } => {
            let bytes = crate::store::restore(&url, &file, replace)?;
            println!("restored {} ({bytes} bytes) into {url}", file.display());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Migrate { from, to, restart } => {
            let from = from.unwrap_or(url);
            return migrate::migrate(&from, &to, restart).await;
        }
        Command::Demo(args) if args.out.is_some() => {
            return import::demo_to_file(args).map(|_| ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let config = args.into_config(url);
            return crate::server::run(config, crate::server::shutdown_signal())
                .await
                .map(|_| ExitCode::SUCCESS);
        }
        _ => {}
    }
    let store: Arc<dyn Store> = crate::store::open(&url)?;
    let result = match cli.command {
        Command::Import {
            file,
            workspace,
            format,
            allow_rejects,
        } => import::import(store.clone(), &file, &workspace, &format, allow_rejects).await,
        Command::Export {
            format,
            workspace,
            since,
        } => export::export(store.as_ref(), &workspace, &format, since.as_deref()).await,
        Command::Demo(args) => import::demo(store.clone(), args).await,
        Command::Backup { file } => backup(store.as_ref(), file).await,
        Command::Prune { workspace, days } => prune(store.as_ref(), workspace, days).await,
        Command::Erase {
            workspace,
            tenant,
            user,
        } => erase(store.as_ref(), &workspace, tenant, user).await,
        Command::Workspaces(cmd) => keys::workspaces(store.as_ref(), cmd).await,
        Command::Keys(cmd) => keys::keys(store.as_ref(), cmd).await,
        Command::Prices(cmd) => prices::prices(store.as_ref(), cmd).await,
        Command::Top(args) => top::top(store.as_ref(), args).await,
        Command::Query { file, workspace } => {
            top::query_file(store.as_ref(), &file, &workspace).await
        }
        Command::Budgets(cmd) => control::budgets(store.clone(), cmd).await,
        Command::Alerts(cmd) => control::alerts(store.clone(), cmd).await,
        Command::Plans(cmd) => plans::plans(store.clone(), cmd).await,
        Command::Margin(args) => margin::margin(store.clone(), args).await,
        Command::Revenue(cmd) => margin::revenue(store.clone(), cmd).await,
        Command::Reconcile(cmd) => reconcile::reconcile(store.clone(), cmd).await,
        Command::Serve(_)
        | Command::Explain(_)
        | Command::Gate(_)
        | Command::Restore { .. }
        | Command::Migrate { .. }
        | Command::Deploy(_)
        | Command::Mappings(_)
        | Command::Doctor(_)
        | Command::Config(_) => {
            unreachable!("handled above")
        }
    };
    store.close().await;
    result.map(|_| ExitCode::SUCCESS)
}

/// `burnrate backup FILE`: the store as of now, into a new file.
async fn backup(store: &dyn Store, file: std::path::PathBuf) -> anyhow::Result<()> {
    let bytes = store.backup_to(file.clone()).await?;
    println!("backup written to {} ({bytes} bytes)", file.display());
    Ok(())
}

/// `burnrate prune`: one workspace (its setting or --days) or every workspace with a
/// retention setting; prints what each run removed as JSON lines.
async fn prune(
    store: &dyn Store,
    workspace: Option<String>,
    days: Option<u32>,
) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_millisecond();
    let done = match workspace {
        None => crate::lifecycle::prune_all(store, now).await?,
        Some(name) => {
            let ws = workspace_id(store, &name).await?;
            let setting = crate::settings::load_stored(store, ws)
                .await?
                .raw_retention_days;
            let Some(days) = days.or(setting) else {
                anyhow::bail!(
                    "workspace {name} has no rawRetentionDays: pass --days N or set it with `burnrate workspaces configure {name} --raw-retention-days N`"
                );
            };
            anyhow::ensure!(
                crate::settings::RETENTION_DAYS.contains(&u64::from(days)),
                "--days must be from {} to {}",
                crate::settings::RETENTION_DAYS.start(),
                crate::settings::RETENTION_DAYS.end()
            );
            vec![crate::lifecycle::prune_one(store, ws, &name, days, now).await?]
        }
    };
    if done.is_empty() {
        println!("no workspace has a retention setting (rawRetentionDays); nothing pruned");
    }
    for pruned in done {
        println!("{}", serde_json::to_string(&pruned)?);
    }
    Ok(())
}

/// `burnrate erase --tenant T | --user U`: prints the audit record (without the id).
async fn erase(
    store: &dyn Store,
    workspace: &str,
    tenant: Option<String>,
    user: Option<String>,
) -> anyhow::Result<()> {
    let subject = match (tenant, user) {
        (Some(t), None) => crate::store::Subject::Tenant(t),
        (None, Some(u)) => crate::store::Subject::User(u),
        _ => anyhow::bail!("pass exactly one of --tenant or --user"),
    };
    anyhow::ensure!(!subject.id().is_empty(), "the id to erase is empty");
    let ws = workspace_id(store, workspace).await?;
    let settings = crate::settings::load(store, ws).await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let record = crate::lifecycle::erase(store, &settings, ws, subject, "cli".into(), now).await?;
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}

/// The exit code of a command line clap refused: 0 for --help and --version, the gate's
/// "could not run" for the gate (2 would read as "not enough data"), else clap's 2.
pub fn usage_exit_code(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "gate") {
        return ExitCode::from(explain::GATE_ERROR);
    }
    ExitCode::from(2)
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

/// --since as milliseconds: "30m", "24h", "7d", "4w" (see `window::parse_since`).
fn parse_since(text: &str) -> anyhow::Result<i64> {
    crate::window::parse_since(text).map_err(|e| anyhow::anyhow!("--since {e}"))
}
