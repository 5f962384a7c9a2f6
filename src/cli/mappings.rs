//! `burnrate mappings add|list|remove`: renames and merges of endpointTag, tenantId and
//! userId values (docs/mappings.md), in the database file or through a running server
//! (`--url`, an admin key to add), through the same checks as `/v1/mappings`.

use super::remote::RemoteArgs;
use super::workspace_id;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum MappingCommand {
    /// Read `from` as `to` (history and new events group together).
    Add(AddArgs),
    /// The workspace's mappings, oldest first.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Remove a mapping by id: reads group by the stored values again.
    Remove {
        id: i64,
        /// The workspace in the database file.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// endpointTag, tenantId or userId.
    pub dimension: String,
    /// The old value, or a prefix followed by * (svc:*); `unknown` maps missing values.
    pub from: String,
    /// The value it reads as.
    pub to: String,
    /// Map only events at or after this time (RFC 3339; truncated to the hour).
    #[arg(long)]
    pub effective_from: Option<String>,
    /// Why (a short note).
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn mappings(db: &str, cmd: MappingCommand) -> anyhow::Result<()> {
    match cmd {
        MappingCommand::Add(args) => add(db, args).await,
        MappingCommand::List { remote } => list(db, remote).await,
        MappingCommand::Remove { id, workspace } => remove(db, id, &workspace).await,
    }
}

fn reasons(errors: &[crate::event::FieldError]) -> anyhow::Error {
    let reasons: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    anyhow::anyhow!("{}", reasons.join("; "))
}

async fn add(db: &str, args: AddArgs) -> anyhow::Result<()> {
    let mut body = json!({"dimension": args.dimension, "from": args.from, "to": args.to});
    for (name, value) in [("effectiveFrom", args.effective_from), ("note", args.note)] {
        if let Some(v) = value {
            body[name] = Value::String(v);
        }
    }
    let saved = if args.remote.url.is_some() {
        args.remote.post("/v1/mappings", &body).await?
    } else {
        let store = crate::store::open(db)?;
        let ws = workspace_id(store.as_ref(), &args.remote.workspace).await;
        let saved = match ws {
            Ok(ws) => match crate::settings::load(store.as_ref(), ws).await {
                Ok(settings) => {
                    crate::mapping::add(store.as_ref(), ws, &body, &settings.privacy()).await
                }
                Err(e) => Err(e),
            },
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        store.close().await;
        serde_json::to_value(saved?.map_err(|e| reasons(&e))?)?
    };
    println!(
        "mapping {} added: {} {} -> {}",
        saved["id"],
        saved["dimension"].as_str().unwrap_or_default(),
        saved["from"].as_str().unwrap_or_default(),
        saved["to"].as_str().unwrap_or_default()
    );
    Ok(())
}

async fn list(db: &str, remote: RemoteArgs) -> anyhow::Result<()> {
    let mappings = if remote.url.is_some() {
        remote.get("/v1/mappings", &Default::default()).await?["mappings"].clone()
    } else {
        let store = crate::store::open(db)?;
        let ws = workspace_id(store.as_ref(), &remote.workspace).await?;
        let mappings = crate::mapping::list(store.as_ref(), ws).await;
        store.close().await;
        serde_json::to_value(mappings?)?
    };
    let mut table = super::table(&["id", "dimension", "from", "to", "effective from", "note"]);
    for m in mappings.as_array().into_iter().flatten() {
        let text = |k: &str| match &m[k] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        table.add_row(vec![
            text("id"),
            text("dimension"),
            text("from"),
            text("to"),
            text("effectiveFrom"),
            text("note"),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn remove(db: &str, id: i64, workspace: &str) -> anyhow::Result<()> {
    let store = crate::store::open(db)?;
    let ws = workspace_id(store.as_ref(), workspace).await?;
    let removed = crate::mapping::remove(store.as_ref(), ws, id).await;
    store.close().await;
    anyhow::ensure!(removed?, "no mapping {id} in workspace {workspace}");
    println!("mapping {id} removed");
    Ok(())
}
