//! `burnrate budgets ...` and `burnrate alerts ...`: the control objects, read and written
//! in the database directly (a running server picks changes up within seconds).

use crate::alert::engine::{AlertError, Alerts};
use crate::budget::service::{BudgetError, Budgets, BUDGET};
use crate::store::Store;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum BudgetCommand {
    /// Create a budget from flags or from a JSON file (the body of POST /v1/budgets).
    Create(CreateBudget),
    /// Every budget with its current status.
    List(Output),
    /// One budget's status: spent, reserved, remaining, forecast, state.
    Status {
        id: i64,
        #[command(flatten)]
        output: Output,
    },
    Delete {
        id: i64,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

#[derive(Args)]
pub struct Output {
    #[arg(long, default_value = "default")]
    pub workspace: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CreateBudget {
    /// A JSON definition instead of the flags below.
    #[arg(long, conflicts_with_all = ["name", "period", "limit"])]
    file: Option<PathBuf>,
    #[arg(long)]
    name: Option<String>,
    /// hour, day, week or month.
    #[arg(long)]
    period: Option<String>,
    /// Limit in USD.
    #[arg(long)]
    limit: Option<String>,
    /// Scope as DIM=VALUE (endpointTag, tenantId, userId, model, provider, tag:KEY,
    /// environment, dataMode); repeatable.
    #[arg(long = "scope", value_name = "DIM=VALUE")]
    scope: Vec<String>,
    /// Warning thresholds in percent, e.g. 50,80,95.
    #[arg(long, value_delimiter = ',')]
    thresholds: Vec<f64>,
    /// notify or block.
    #[arg(long)]
    action: Option<String>,
    /// open or closed: what the guard answers while it cannot count exactly.
    #[arg(long)]
    fail_mode: Option<String>,
    #[arg(long)]
    timezone: Option<String>,
    #[arg(long, default_value = "default")]
    workspace: String,
}

#[derive(Subcommand)]
pub enum AlertCommand {
    /// Firing alerts, then history.
    List(Output),
    /// The rule settings of a workspace.
    Rules(Output),
    /// Apply a settings file: {"dataMode": "real", "rules": {"retry_storm": {"threshold": 4}}}.
    Configure {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// What the rules find now (or at --at), without storing or sending anything.
    Evaluate {
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Add a channel from a JSON file: {"name": "ops", "type": "webhook", "url": "..."}
    /// (slack: url; pagerduty: routingKey).
    AddChannel {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Channels (secrets redacted).
    Channels(Output),
    /// Send a test message to a channel (id or name) and show every attempt.
    Test {
        channel: String,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

fn services(store: &Arc<dyn Store>, budgets: Arc<Budgets>) -> Alerts {
    Alerts::new(
        store.clone(),
        budgets,
        "http://127.0.0.1:8080".into(),
        crate::app::system_clock(),
    )
}

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn budget_error(e: BudgetError) -> anyhow::Error {
    match e {
        BudgetError::Invalid(fields) => invalid("budget", &fields),
        BudgetError::Store(e) => e.into(),
    }
}

fn alert_error(what: &str, e: AlertError) -> anyhow::Error {
    match e {
        AlertError::Invalid(fields) => invalid(what, &fields),
        AlertError::Store(e) => e.into(),
    }
}

/// One line per field, as the API's 400 names them.
fn invalid(what: &str, fields: &[crate::event::FieldError]) -> anyhow::Error {
    let lines: Vec<String> = fields
        .iter()
        .map(|f| format!("  {}: {}", f.field, f.message))
        .collect();
    anyhow::anyhow!("invalid {what}:\n{}", lines.join("\n"))
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub async fn budgets(store: Arc<dyn Store>, cmd: BudgetCommand) -> anyhow::Result<()> {
    let budgets = Budgets::start(store.clone(), 600_000, crate::app::system_clock()).await?;
    match cmd {
        BudgetCommand::Create(args) => {
            let ws = super::workspace_id(store.as_ref(), &args.workspace).await?;
            let body = create_body(&args)?;
            let budget = budgets.save(ws, None, &body).await.map_err(budget_error)?;
            println!("budget {} created: {}", budget.id, budget.name);
        }
        BudgetCommand::List(out) => {
            let ws = super::workspace_id(store.as_ref(), &out.workspace).await?;
            let mut rows = Vec::new();
            for b in budgets.list(ws).await? {
                let status = budgets.status(ws, &b, now()).await?;
                rows.push(json!({"budget": b, "status": status}));
            }
            if out.json {
                print(&json!({ "budgets": rows }));
            } else {
                print_budgets(&rows);
            }
        }
        BudgetCommand::Status { id, output } => {
            let ws = super::workspace_id(store.as_ref(), &output.workspace).await?;
            let budget = budgets.get(ws, id).await?;
            let status = budgets.status(ws, &budget, now()).await?;
            if output.json {
                print(&json!(status));
            } else {
                print_budgets(&[json!({"budget": budget, "status": status})]);
            }
        }
        BudgetCommand::Delete { id, workspace } => {
            let ws = super::workspace_id(store.as_ref(), &workspace).await?;
            if !budgets.delete(ws, BUDGET, id).await? {
                bail!("no budget {id} in workspace {workspace:?}");
            }
            println!("budget {id} deleted");
        }
    }
    Ok(())
}

fn create_body(args: &CreateBudget) -> anyhow::Result<Value> {
    if let Some(file) = &args.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return Ok(serde_json::from_str(&text)?);
    }
    let mut scope = serde_json::Map::new();
    for pair in &args.scope {
        let Some((dim, value)) = pair.split_once('=') else {
            bail!("--scope {pair:?}: expected DIM=VALUE, e.g. tenantId=acme");
        };
        scope.insert(dim.to_string(), json!(value));
    }
    let mut body = json!({
        "name": args.name, "period": args.period, "scope": scope,
        "limitUsd": args.limit.as_deref().unwrap_or(""),
    });
    if !args.thresholds.is_empty() {
        body["thresholds"] = json!(args.thresholds);
    }
    let optional = [
        ("action", &args.action),
        ("failMode", &args.fail_mode),
        ("timezone", &args.timezone),
    ];
    for (field, value) in optional {
        if let Some(v) = value {
            body[field] = json!(v);
        }
    }
    Ok(body)
}

fn print_budgets(rows: &[Value]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id",
        "name",
        "period",
        "limit",
        "spent",
        "reserved",
        "remaining",
        "used",
        "state",
        "forecast",
        "runs out",
    ]);
    for r in rows {
        let (b, s) = (&r["budget"], &r["status"]);
        let usd = |v: &Value| format!("${}", v.as_f64().map_or("-".into(), |x| format!("{x:.2}")));
        table.add_row([
            b["id"].to_string(),
            b["name"].as_str().unwrap_or_default().to_string(),
            b["period"].as_str().unwrap_or_default().to_string(),
            usd(&b["limitUsd"]),
            usd(&s["spentUsd"]),
            usd(&s["reservedUsd"]),
            usd(&s["remainingUsd"]),
            format!("{:.1}%", s["usedPct"].as_f64().unwrap_or(0.0)),
            s["state"].as_str().unwrap_or_default().to_string(),
            usd(&s["forecastUsd"]),
            s["projectedExhaustion"].as_str().unwrap_or("-").to_string(),
        ]);
    }
    println!("{table}");
}

pub async fn alerts(store: Arc<dyn Store>, cmd: AlertCommand) -> anyhow::Result<()> {
    let budgets = Budgets::start(store.clone(), 600_000, crate::app::system_clock()).await?;
    let alerts = services(&store, budgets);
    let ws = |name: String| {
        let store = store.clone();
        async move { super::workspace_id(store.as_ref(), &name).await }
    };
    match cmd {
        AlertCommand::List(out) => {
            let list = alerts.alerts(ws(out.workspace).await?).await?;
            if out.json {
                print(&json!({ "alerts": list }));
            } else {
                print_alerts(&list);
            }
        }
        AlertCommand::Rules(out) => {
            let settings = alerts.settings(ws(out.workspace).await?).await?;
            if out.json {
                print(&settings.to_json());
            } else {
                print_rules(&settings);
            }
        }
        AlertCommand::Configure { file, workspace } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let change: Value = serde_json::from_str(&text)?;
            match alerts.change_settings(ws(workspace).await?, &change).await {
                Ok(settings) => print_rules(&settings),
                Err(e) => return Err(alert_error("settings", e)),
            }
        }
        AlertCommand::Evaluate { at, output } => {
            let at = match at {
                Some(t) => t
                    .parse::<jiff::Timestamp>()
                    .context("--at must be RFC 3339")?
                    .as_millisecond(),
                None => now(),
            };
            let book = crate::app::load_prices(store.as_ref()).await?;
            let findings = alerts
                .findings(ws(output.workspace).await?, &book, at)
                .await?;
            if output.json {
                print(&json!({ "findings": findings }));
            } else if findings.is_empty() {
                println!("no findings at {}", crate::report::rfc3339(at));
            } else {
                for f in findings {
                    println!("[{:?}] {}\n  {}", f.severity, f.title, f.text);
                    for d in f.drivers {
                        println!(
                            "  - {} {} ({:.0}%): {}",
                            d.dimension, d.value, d.share_pct, d.detail
                        );
                    }
                }
            }
        }
        AlertCommand::AddChannel { file, workspace } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body: Value = serde_json::from_str(&text)?;
            match alerts.add_channel(ws(workspace).await?, &body).await {
                Ok(channel) => {
                    println!("channel {} added", channel.id);
                    if let crate::notify::ChannelKind::Webhook { secret, .. } = &channel.kind {
                        println!("signing secret (shown once): {secret}");
                    }
                }
                Err(e) => return Err(alert_error("channel", e)),
            }
        }
        AlertCommand::Channels(out) => {
            let channels: Vec<_> = alerts
                .channels(ws(out.workspace).await?)
                .await?
                .iter()
                .map(|c| c.redacted())
                .collect();
            print(&json!({ "channels": channels }));
        }
        AlertCommand::Test { channel, workspace } => {
            let report = alerts.test_channel(ws(workspace).await?, &channel).await?;
            print(&json!(report));
            if !report.delivered {
                bail!("the test message was not delivered");
            }
        }
    }
    Ok(())
}

fn print_alerts(list: &[Value]) {
    if list.is_empty() {
        println!("no alerts");
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id",
        "state",
        "severity",
        "title",
        "fired",
        "resolved",
        "top driver",
    ]);
    for a in list {
        let driver = &a["drivers"][0];
        table.add_row([
            a["id"].to_string(),
            a["state"].as_str().unwrap_or_default().to_string(),
            a["severity"].as_str().unwrap_or_default().to_string(),
            a["title"].as_str().unwrap_or_default().to_string(),
            a["firedAt"].as_str().unwrap_or_default().to_string(),
            a["resolvedAt"].as_str().unwrap_or("-").to_string(),
            match driver["value"].as_str() {
                Some(v) => format!(
                    "{} {v} ({:.0}%)",
                    driver["dimension"].as_str().unwrap_or_default(),
                    driver["sharePct"].as_f64().unwrap_or(0.0)
                ),
                None => "-".into(),
            },
        ]);
    }
    println!("{table}");
}

fn print_rules(settings: &crate::alert::AlertSettings) {
    println!(
        "watching environment={} dataMode={}",
        settings.environment.as_str(),
        settings.data_mode.as_str()
    );
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "rule",
        "on",
        "threshold",
        "min calls",
        "window",
        "cooldown",
        "muted until",
    ]);
    for r in &settings.rules {
        table.add_row([
            r.kind.as_str().to_string(),
            if r.enabled { "yes" } else { "no" }.to_string(),
            format!("{} ({})", r.threshold, r.threshold_means),
            r.min_requests.to_string(),
            format!("{} min", r.window_minutes),
            format!("{} min", r.cooldown_minutes),
            r.muted_until_ms.map_or("-".into(), crate::report::rfc3339),
        ]);
    }
    println!("{table}");
}
