//! `burnrate workspaces` and `burnrate keys`: create, list, pause, configure; keys
//! created (printed once), listed and revoked.

use super::args::{KeyCommand, WorkspaceCommand};
use super::{table, workspace_id};
use crate::auth;
use crate::store::{Scope, Store};
use anyhow::{bail, Context};

pub async fn workspaces(store: &dyn Store, cmd: WorkspaceCommand) -> anyhow::Result<()> {
    match cmd {
        WorkspaceCommand::Create { name } => {
            let w = store.create_workspace(name).await?;
            // The pseudonym secret is made with the workspace (older ones get theirs on
            // first use).
            crate::privacy::ensure_secret(store, w.id).await?;
            println!("created workspace {}", w.name);
        }
        WorkspaceCommand::List => {
            let mut table = table(&["name", "paused", "created"]);
            for w in store.workspaces().await? {
                table.add_row(vec![w.name, w.paused.to_string(), w.created_at]);
            }
            println!("{table}");
        }
        WorkspaceCommand::Pause { name } => {
            store.set_paused(name.clone(), true).await?;
            println!("ingest for workspace {name} is paused (clients get 402)");
        }
        WorkspaceCommand::Resume { name } => {
            store.set_paused(name.clone(), false).await?;
            println!("ingest for workspace {name} is resumed");
        }
        WorkspaceCommand::Configure {
            name,
            unknown_fields,
            require,
            require_none,
            pii_ids,
            pseudonymize_all_ids,
            raw_retention_days,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(mode) = unknown_fields {
                body.insert("unknownFields".into(), mode.into());
            }
            if !require.is_empty() || require_none {
                body.insert("requiredFields".into(), require.into());
            }
            if let Some(policy) = pii_ids {
                body.insert("piiIds".into(), policy.into());
            }
            if let Some(all) = pseudonymize_all_ids {
                body.insert("pseudonymizeAllIds".into(), all.into());
            }
            match raw_retention_days.as_deref() {
                None => {}
                Some("off") => {
                    body.insert("rawRetentionDays".into(), serde_json::Value::Null);
                }
                Some(days) => {
                    let days: u64 = days.parse().map_err(|_| {
                        anyhow::anyhow!(
                            "--raw-retention-days: `{days}` is not a number of days or off"
                        )
                    })?;
                    body.insert("rawRetentionDays".into(), days.into());
                }
            }
            configure(store, &name, serde_json::Value::Object(body)).await?
        }
        WorkspaceCommand::Show { name } => {
            let ws = workspace_id(store, &name).await?;
            let settings = crate::settings::load(store, ws).await?;
            println!("{}", serde_json::to_string_pretty(&settings)?);
        }
    }
    Ok(())
}

pub async fn keys(store: &dyn Store, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create {
            workspace,
            scope,
            name,
            json,
        } => {
            let scope = Scope::parse(&scope).context("scope")?;
            let key = auth::new_key();
            let record = store
                .create_key(
                    workspace,
                    scope,
                    auth::hash_key(&key),
                    auth::key_prefix(&key),
                    name,
                )
                .await?;
            if json {
                let mut v = serde_json::to_value(&record)?;
                v["key"] = serde_json::json!(key);
                println!("{v}");
            } else {
                println!("{key}");
            }
        }
        KeyCommand::List { workspace, json } => list_keys(store, workspace, json).await?,
        KeyCommand::Revoke { key } => {
            let n = store.revoke_key(key.clone()).await?;
            if n == 0 {
                bail!("no active key with id or prefix {key:?}");
            }
            println!("revoked {n} key(s)");
        }
    }
    Ok(())
}

/// Change a workspace's ingest settings through the same checks as the API's PUT.
async fn configure(store: &dyn Store, name: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let ws = workspace_id(store, name).await?;
    match crate::settings::update(store, ws, &body).await? {
        Ok(settings) => println!("{}", serde_json::to_string_pretty(&settings)?),
        Err(errors) => {
            let reasons: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            bail!("{}", reasons.join("; "))
        }
    }
    Ok(())
}

/// Every key (of one workspace) with its use of unknown fields; never the key itself.
async fn list_keys(store: &dyn Store, workspace: Option<String>, json: bool) -> anyhow::Result<()> {
    let keys = store.keys(workspace).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    let mut table = table(&[
        "id",
        "workspace",
        "prefix",
        "scope",
        "name",
        "created",
        "revoked",
        "unknown fields",
    ]);
    for k in keys {
        table.add_row(vec![
            k.id.to_string(),
            k.workspace,
            k.prefix,
            k.scope.as_str().into(),
            k.name.unwrap_or_default(),
            k.created_at,
            k.revoked_at.unwrap_or_default(),
            match k.last_unknown_field {
                Some(last) => format!("{} (last: {last})", k.unknown_fields),
                None => k.unknown_fields.to_string(),
            },
        ]);
    }
    println!("{table}");
    Ok(())
}
