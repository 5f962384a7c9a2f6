//! Asking a running server instead of reading the database: `--url` and `--key` (or
//! BURNRATE_URL and BURNRATE_API_KEY), for the commands whose answer lives in the
//! server's memory (budget reservations) or that a CI job runs far from the file.

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use std::collections::HashMap;

/// The old name of BURNRATE_API_KEY, still read (with a note) so scripts keep working.
const OLD_KEY_VAR: &str = "BURNRATE_KEY";

#[derive(Args)]
pub struct RemoteArgs {
    /// Ask a running server (e.g. http://127.0.0.1:8080) instead of reading --db.
    #[arg(long, env = "BURNRATE_URL")]
    pub url: Option<String>,
    /// A read key for --url (BURNRATE_KEY, the old name, is still read).
    #[arg(long, env = "BURNRATE_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The workspace when reading --db (a key already names its workspace).
    #[arg(long, default_value = "default")]
    pub workspace: String,
}

impl RemoteArgs {
    /// The key for --url: the flag, BURNRATE_API_KEY, else the deprecated BURNRATE_KEY.
    fn key(&self) -> anyhow::Result<String> {
        if let Some(key) = &self.key {
            return Ok(key.clone());
        }
        match std::env::var(OLD_KEY_VAR) {
            Ok(key) if !key.is_empty() => {
                eprintln!("note: {OLD_KEY_VAR} is deprecated; set BURNRATE_API_KEY instead");
                Ok(key)
            }
            _ => bail!("--url needs --key (or BURNRATE_API_KEY): a read key"),
        }
    }

    /// POST `body` to `path` on the server at --url; a 4xx/5xx becomes its message with
    /// the fields it names.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = self.url.as_deref().context("no --url")?;
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", url.trim_end_matches('/')))
            .json(body)
            .header("X-API-Key", self.key()?)
            .send()
            .await
            .with_context(|| format!("asking {url}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("{url} did not answer JSON"))?;
        if !status.is_success() {
            let fields: Vec<String> = body["error"]["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f["field"].as_str().unwrap_or(""),
                        f["message"].as_str().unwrap_or("")
                    )
                })
                .collect();
            bail!(
                "{}{}",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("request failed"),
                if fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", fields.join("; "))
                }
            );
        }
        Ok(body)
    }

    /// GET `path` with `params` from the server at --url; a 4xx/5xx becomes its message.
    pub async fn get(&self, path: &str, params: &HashMap<String, String>) -> anyhow::Result<Value> {
        let url = self.url.as_deref().context("no --url")?;
        let key = self.key()?;
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", url.trim_end_matches('/')))
            .query(params)
            .header("X-API-Key", key)
            .send()
            .await
            .with_context(|| format!("asking {url}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("{url} did not answer JSON"))?;
        if !status.is_success() {
            bail!(
                "{}",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("request failed")
            );
        }
        Ok(body)
    }
}
