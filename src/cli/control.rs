//! `burnrate budgets ...` and `burnrate alerts ...`: the control objects, read and written
//! in the database directly (a running server picks changes up within seconds); the views
//! of live state (budget list and status, alert findings) can ask a server (--url).

use super::remote::RemoteArgs;
use crate::alert::engine::{AlertError, Alerts, ChannelRef};
use crate::budget::service::MEMBER_PAGE;
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
    /// Every budget with its current status. Guard reservations live in the server's
    /// memory: --url/--key reads them (GET /v1/budgets); the database alone has none.
    List(LiveOutput),
    /// One budget's status: spent, reserved (with --url), remaining, forecast, state.
    Status {
        id: i64,
        #[command(flatten)]
        output: LiveOutput,
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

/// Output of a command that can ask a running server for its live state.
#[derive(Args)]
pub struct LiveOutput {
    #[command(flatten)]
    pub remote: RemoteArgs,
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
    /// What the rules find now (or at --at), without storing or sending anything; with
    /// --url, as the server sees it (budget findings then count its reservations).
    Evaluate {
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        output: LiveOutput,
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
    /// Send a test message to a channel (its integer id, else its name) and show every
    /// attempt.
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
        crate::clock::system_clock(),
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
pub(super) fn invalid(what: &str, fields: &[crate::event::FieldError]) -> anyhow::Error {
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

/// Commands that show live state, answered by the server at --url (or BURNRATE_URL)
/// when one is given: its budget reservations exist only in its memory. None when the
/// command reads the database.
pub async fn from_server(command: &super::Command) -> Option<anyhow::Result<()>> {
    use super::Command;
    match command {
        Command::Budgets(BudgetCommand::List(out)) if out.remote.url.is_some() => {
            Some(remote_budgets(out, None).await)
        }
        Command::Budgets(BudgetCommand::Status { id, output }) if output.remote.url.is_some() => {
            Some(remote_budgets(output, Some(*id)).await)
        }
        Command::Alerts(AlertCommand::Evaluate { at, output }) if output.remote.url.is_some() => {
            Some(remote_findings(output, at.as_deref()).await)
        }
        _ => None,
    }
}

async fn remote_budgets(out: &LiveOutput, id: Option<i64>) -> anyhow::Result<()> {
    let none = Default::default();
    let Some(id) = id else {
        let answer = out.remote.get("/v1/budgets", &none).await?;
        if out.json {
            print(&answer);
        } else {
            print_budgets(answer["budgets"].as_array().map_or(&[], Vec::as_slice));
        }
        return Ok(());
    };
    let budget = out.remote.get(&format!("/v1/budgets/{id}"), &none).await?;
    let status = out
        .remote
        .get(&format!("/v1/budgets/{id}/status"), &none)
        .await?;
    if out.json {
        print(&status);
    } else {
        print_budgets(&[json!({"budget": budget, "status": status})]);
    }
    Ok(())
}

async fn remote_findings(out: &LiveOutput, at: Option<&str>) -> anyhow::Result<()> {
    let params = at
        .map(|t| ("at".to_string(), t.to_string()))
        .into_iter()
        .collect();
    let answer = out.remote.get("/v1/alerts/findings", &params).await?;
    print_findings(&answer, out.json);
    Ok(())
}

/// Said wherever budgets are read from the database: reservations are not in it.
const RESERVATIONS_NOT_SHOWN: &str =
    "reserved: not shown (guard reservations live in the running server's memory; \
     ask it with --url and --key, or BURNRATE_URL and BURNRATE_API_KEY)";

pub async fn budgets(store: Arc<dyn Store>, cmd: BudgetCommand) -> anyhow::Result<()> {
    let budgets = Budgets::start(store.clone(), 600_000, crate::clock::system_clock()).await?;
    match cmd {
        BudgetCommand::Create(args) => {
            let ws = super::workspace_id(store.as_ref(), &args.workspace).await?;
            let body = create_body(&args)?;
            let budget = budgets.save(ws, None, &body).await.map_err(budget_error)?;
            println!("budget {} created: {}", budget.id, budget.name);
        }
        BudgetCommand::List(out) => {
            let ws = super::workspace_id(store.as_ref(), &out.remote.workspace).await?;
            let mut rows = Vec::new();
            for b in budgets.list(ws).await? {
                let status = budgets.status(ws, &b, now(), MEMBER_PAGE).await?;
                rows.push(without_reservations(json!({"budget": b, "status": status})));
            }
            if out.json {
                print(&json!({ "budgets": rows }));
                eprintln!("{RESERVATIONS_NOT_SHOWN}");
            } else {
                print_budgets(&rows);
                println!("{RESERVATIONS_NOT_SHOWN}");
            }
        }
        BudgetCommand::Status { id, output } => {
            let ws = super::workspace_id(store.as_ref(), &output.remote.workspace).await?;
            let budget = budgets.get(ws, id).await?;
            let status = budgets.status(ws, &budget, now(), MEMBER_PAGE).await?;
            let row = without_reservations(json!({"budget": budget, "status": status}));
            if output.json {
                print(&row["status"]);
                eprintln!("{RESERVATIONS_NOT_SHOWN}");
            } else {
                print_budgets(&[row]);
                println!("{RESERVATIONS_NOT_SHOWN}");
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

/// A status read from the database knows no reservations: `reservedUsd` is null (not
/// 0), so neither the table nor a script reads "nothing reserved".
fn without_reservations(mut row: Value) -> Value {
    row["status"]["reservedUsd"] = Value::Null;
    row
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
            if s["reservedUsd"].is_null() {
                "not shown".into()
            } else {
                usd(&s["reservedUsd"])
            },
            usd(&s["remainingUsd"]),
            format!("{:.1}%", s["usedPct"].as_f64().unwrap_or(0.0)),
            s["state"].as_str().unwrap_or_default().to_string(),
            usd(&s["forecastUsd"]),
            s["projectedExhaustion"].as_str().unwrap_or("-").to_string(),
        ]);
    }
    println!("{table}");
    for r in rows {
        print_members(&r["budget"], &r["status"]["members"]);
    }
}

/// A budget for each member: how many members are over and near their own caps, and
/// the worst of them (the status's first page). The limit above is the default.
fn print_members(budget: &Value, members: &Value) {
    if members.is_null() {
        return;
    }
    let n = |k: &str| members[k].as_u64().unwrap_or(0);
    println!(
        "budget {} is per member: {} members, {} over their cap, {} near it",
        budget["id"],
        n("count"),
        n("over"),
        n("near")
    );
    for m in members["page"].as_array().into_iter().flatten() {
        let plan = m["plan"]
            .as_str()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        println!(
            "  {}{plan}: ${} of ${} ({:.1}%), {}",
            m["member"].as_str().unwrap_or_default(),
            m["spentUsd"],
            m["limitUsd"],
            m["usedPct"].as_f64().unwrap_or(0.0),
            m["state"].as_str().unwrap_or_default()
        );
    }
}

pub async fn alerts(store: Arc<dyn Store>, cmd: AlertCommand) -> anyhow::Result<()> {
    let budgets = Budgets::start(store.clone(), 600_000, crate::clock::system_clock()).await?;
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
                .findings(ws(output.remote.workspace).await?, &book, at)
                .await?;
            let answer = json!({"at": crate::report::rfc3339(at), "findings": findings});
            print_findings(&answer, output.json);
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
            let which = match channel.parse::<i64>() {
                Ok(id) => ChannelRef::Id(id),
                Err(_) => ChannelRef::Name(&channel),
            };
            let report = alerts.test_channel(ws(workspace).await?, which).await?;
            print(&json!(report));
            if !report.delivered {
                bail!("the test message was not delivered");
            }
        }
    }
    Ok(())
}

/// Findings as GET /v1/alerts/findings answers them: `{"at", "findings"}`.
fn print_findings(answer: &Value, as_json: bool) {
    let findings = answer["findings"].as_array().map_or(&[][..], Vec::as_slice);
    if as_json {
        print(answer);
    } else if findings.is_empty() {
        println!("no findings at {}", text(&answer["at"]));
    } else {
        for f in findings {
            println!(
                "[{}] {}\n  {}",
                text(&f["severity"]),
                text(&f["title"]),
                text(&f["text"])
            );
            for d in f["drivers"].as_array().into_iter().flatten() {
                println!(
                    "  - {} {} ({:.0}%): {}",
                    text(&d["dimension"]),
                    text(&d["value"]),
                    d["sharePct"].as_f64().unwrap_or(0.0),
                    text(&d["detail"])
                );
            }
        }
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
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
        "min change",
        "sigmas",
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
            r.min_usd.readable(),
            r.sigmas.to_string(),
            format!("{} min", r.window_minutes),
            format!("{} min", r.cooldown_minutes),
            r.muted_until_ms.map_or("-".into(), crate::report::rfc3339),
        ]);
    }
    println!("{table}");
}
