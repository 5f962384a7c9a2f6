//! Test harness: the real `burnrate` binary on port 0 with a temporary database.
#![allow(dead_code)]

pub mod webhook;

use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

pub const BIN: &str = env!("CARGO_BIN_EXE_burnrate");

/// The shared harness's server (`burnrate-harness`), started from this build's binary;
/// panics instead of returning errors, as tests want.
pub struct Server(burnrate_harness::Server);

impl std::ops::Deref for Server {
    type Target = burnrate_harness::Server;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Server {
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::spawn(db, extra, Stdio::null())
    }

    /// Like `start`, with the server's log (stderr) written to `log`.
    pub fn start_logged(db: &Path, extra: &[&str], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("create the log file");
        Server::spawn(db, extra, Stdio::from(file))
    }

    fn spawn(db: &Path, extra: &[&str], stderr: Stdio) -> Server {
        let bin = Path::new(BIN);
        Server(burnrate_harness::Server::spawn(bin, db, extra, stderr).expect("start burnrate"))
    }

    /// SIGKILL: no graceful shutdown, the harshest restart.
    pub fn kill(self) {
        self.0.kill().unwrap();
    }

    /// SIGTERM, then wait for the graceful shutdown.
    pub fn stop(self) {
        self.0.stop().unwrap();
    }
}

/// Run a CLI command against `db`; returns stdout, panics on failure.
pub fn cli(db: &Path, args: &[&str]) -> String {
    let out = burnrate_harness::cli(Path::new(BIN), db, args).unwrap();
    assert!(
        out.status.success(),
        "burnrate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn key(db: &Path, workspace: &str, scope: &str) -> String {
    cli(
        db,
        &["keys", "create", "--workspace", workspace, "--scope", scope],
    )
    .trim()
    .to_string()
}

pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
}

pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Api {
    pub fn new(server: &Server) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: server.url.clone(),
        }
    }

    pub async fn post_raw(
        &self,
        path: &str,
        key: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        reply(req.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.post_raw(
            path,
            Some(key),
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn put_json(&self, path: &str, key: &str, body: &Value) -> Reply {
        reply(
            self.http
                .put(format!("{}{path}", self.url))
                .header("X-API-Key", key)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        reply(
            self.http
                .get(format!("{}{path}", self.url))
                .header("X-API-Key", key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        retry_after,
        body,
    }
}

pub fn event(id: &str) -> Value {
    serde_json::json!({
        "externalRequestId": id, "provider": "openai", "model": "gpt-4o-mini",
        "endpointTag": "support.reply", "tenantId": "acme", "inputTokens": 1000,
        "cachedTokens": 400, "outputTokens": 200, "status": "success"
    })
}

/// The names of the fields a 4xx reply or a rejected item blames.
pub fn blamed(errors: &Value) -> Vec<String> {
    errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

/// A ClickHouse URL from the environment (`scripts/clickhouse.sh env`). Without it a
/// ClickHouse test skips, except under the README's test command, which sets
/// `BURNRATE_REQUIRE_CLICKHOUSE=1`: there a missing server fails instead of passing
/// silently.
pub fn clickhouse_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() && std::env::var_os("BURNRATE_REQUIRE_CLICKHOUSE").is_some() {
        panic!(
            "{var} is not set, but BURNRATE_REQUIRE_CLICKHOUSE is: the ClickHouse tests must run"
        );
    }
    url
}

/// A dashboard page's HTML from the server at `url`, logged in with `key` (its status
/// must be 200).
pub async fn dashboard_page(url: &str, key: &str, path: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{url}/login"))
        .form(&[("key", key), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303, "login");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = http
        .get(format!("{url}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200, "{path}");
    page.text().await.unwrap()
}

/// How long a key revoked, or a workspace paused, by the CLI may take to reach a running
/// server: the key table reads the store's key generation every 250 ms
/// (`keytable::CHECK_EVERY`) and reloads; the rest is slack for a loaded machine.
pub const KEY_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// Ask `check` every 20 ms until it holds; panics naming `what` after `KEY_BOUND`.
/// Returns how long it took.
pub async fn within_key_bound<F, Fut>(what: &str, check: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(KEY_BOUND, what, check).await
}

/// Ask `check` every 20 ms until it holds; panics naming `what` after `bound`.
/// Returns how long it took.
pub async fn within<F, Fut>(
    bound: std::time::Duration,
    what: &str,
    mut check: F,
) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
