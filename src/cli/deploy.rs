//! `burnrate deploy note|list`: record a deploy note (endpoint, prompt version, author,
//! time) and list them, in the database file or through a running server (`--url`, an
//! ingest key for `note`), through the same checks as `POST /v1/deploys`.

use super::remote::RemoteArgs;
use super::workspace_id;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Record a short change note; charts mark it and explain and alerts quote it.
    Note(NoteArgs),
    /// The notes of a recent window, oldest first.
    List {
        /// How far back (15m, 24h, 7d, 4w).
        #[arg(long, default_value = "30d")]
        since: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Args)]
pub struct NoteArgs {
    /// The note itself (at most 500 characters).
    pub note: String,
    /// The endpoint it concerns (left out: every endpoint).
    #[arg(long)]
    pub endpoint_tag: Option<String>,
    /// The prompt version it put live.
    #[arg(long)]
    pub prompt_version: Option<String>,
    #[arg(long)]
    pub author: Option<String>,
    /// When it went live (RFC 3339; default now).
    #[arg(long)]
    pub time: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn deploy(db: &str, cmd: DeployCommand) -> anyhow::Result<()> {
    match cmd {
        DeployCommand::Note(args) => note(db, args).await,
        DeployCommand::List { since, remote } => list(db, &since, remote).await,
    }
}

async fn note(db: &str, args: NoteArgs) -> anyhow::Result<()> {
    let mut body = json!({"note": args.note});
    for (name, value) in [
        ("endpointTag", args.endpoint_tag),
        ("promptVersion", args.prompt_version),
        ("author", args.author),
        ("time", args.time),
    ] {
        if let Some(v) = value {
            body[name] = Value::String(v);
        }
    }
    let saved = if args.remote.url.is_some() {
        args.remote.post("/v1/deploys", &body).await?
    } else {
        let now = jiff::Timestamp::now().as_millisecond();
        let note = crate::deploy::parse(&body, now).map_err(|errors| {
            let reasons: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            anyhow::anyhow!("{}", reasons.join("; "))
        })?;
        let store = crate::store::open(db)?;
        let ws = workspace_id(store.as_ref(), &args.remote.workspace).await?;
        let saved = crate::deploy::save(store.as_ref(), ws, note).await;
        store.close().await;
        serde_json::to_value(saved?)?
    };
    println!(
        "deploy note {} recorded at {}",
        saved["id"],
        saved["time"].as_str().unwrap_or_default()
    );
    Ok(())
}

async fn list(db: &str, since: &str, remote: RemoteArgs) -> anyhow::Result<()> {
    let notes = if remote.url.is_some() {
        let params = [("since".to_string(), since.to_string())].into();
        remote.get("/v1/deploys", &params).await?["deploys"].clone()
    } else {
        let now = jiff::Timestamp::now().as_millisecond();
        let from =
            now - crate::window::parse_since(since).map_err(|e| anyhow::anyhow!("--since {e}"))?;
        let store = crate::store::open(db)?;
        let ws = workspace_id(store.as_ref(), &remote.workspace).await?;
        let notes = crate::deploy::list(store.as_ref(), ws, Some((from, now + 1))).await;
        store.close().await;
        serde_json::to_value(notes?)?
    };
    let mut table = super::table(&["time", "endpoint", "version", "author", "note"]);
    for n in notes.as_array().into_iter().flatten() {
        let text = |k: &str| n[k].as_str().unwrap_or("").to_string();
        table.add_row(vec![
            text("time"),
            text("endpointTag"),
            text("promptVersion"),
            text("author"),
            text("note"),
        ]);
    }
    println!("{table}");
    Ok(())
}
