//! `GET /metrics` scraped by a real Prometheus server (Debian's `prometheus`, installed
//! by scripts/test.sh) and queried through its HTTP API; plus the exposition itself.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two gpt-4o-mini calls of 1,000 input (400 cached) and 200 output tokens:
/// 2 x (600 x $0.15/M + 400 x $0.075/M + 200 x $0.60/M) = 2 x $0.00024.
const SPEND: f64 = 0.00048;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(dir: &std::path::Path, target: &str, key: &str) -> (Prometheus, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: burnrate\n    \
             authorization:\n      credentials: {key}\n    static_configs:\n      \
             - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus (Debian package `prometheus`; scripts/test.sh installs it)");
    (Prometheus(child), format!("http://{address}"))
}

/// The value of an instant query, once Prometheus has one.
async fn query(http: &reqwest::Client, prometheus: &str, promql: &str) -> Option<String> {
    let reply: Value = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    reply["data"]["result"][0]["value"][1]
        .as_str()
        .map(String::from)
}

#[tokio::test]
async fn prometheus_scrapes_the_spend_and_a_query_returns_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let r = api
        .post(
            "/v1/ingest/batch",
            &ingest,
            &json!([event("m1"), event("m2")]),
        )
        .await;
    assert_eq!(r.body["accepted"], json!(2), "{}", r.body);
    let target = server.url.trim_start_matches("http://").to_string();
    let (_prometheus, url) = start_prometheus(dir.path(), &target, &read);
    let http = reqwest::Client::new();
    let spend = r#"sum(burnrate_spend_usd_total{workspace="default",provider="openai",model="gpt-4o-mini",endpoint="support.reply",environment="prod",data_mode="real"})"#;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = None;
    while Instant::now() < deadline && got.is_none() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        got = query(&http, &url, spend).await;
    }
    let got: f64 = got
        .expect("Prometheus never had the spend series")
        .parse()
        .unwrap();
    assert!((got - SPEND).abs() < 1e-12, "{got}");
    let requests = query(
        &http,
        &url,
        r#"sum(burnrate_requests_total{status="success"})"#,
    )
    .await;
    assert_eq!(requests.as_deref(), Some("2"));
    let accepted = query(
        &http,
        &url,
        r#"burnrate_ingest_events_total{outcome="accepted"}"#,
    )
    .await;
    assert_eq!(accepted.as_deref(), Some("2"));
}

#[tokio::test]
async fn metrics_need_a_read_key_and_show_only_its_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    cli(&db, &["workspaces", "create", "other"]);
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let (other_ingest, admin) = (key(&db, "other", "ingest"), key(&db, "default", "admin"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let budget = json!({"name": "acme daily", "scope": {"tenantId": "acme"}, "period": "day",
        "timezone": "UTC", "limitUsd": 0.001});
    let r = api.post("/v1/budgets", &admin, &budget).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].clone();
    api.post("/v1/ingest/llm-request", &ingest, &event("a"))
        .await;
    let mut secret = event("b");
    secret["endpointTag"] = json!("other.secret");
    api.post("/v1/ingest/llm-request", &other_ingest, &secret)
        .await;
    let resp = api
        .http
        .get(format!("{}/metrics", api.url))
        .header("Authorization", format!("Bearer {read}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(r#"burnrate_requests_total{workspace="default",environment="prod",data_mode="real",provider="openai",model="gpt-4o-mini",endpoint="support.reply",status="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"burnrate_tokens_total{workspace="default",environment="prod",data_mode="real",provider="openai",model="gpt-4o-mini",endpoint="support.reply",kind="cached"} 400"#),
        "{text}"
    );
    assert!(!text.contains("other.secret"), "{text}");
    // $0.00024 of $0.001 spent.
    let labels = format!(r#"{{workspace="default",budget_id="{id}",budget="acme daily"}}"#);
    assert!(
        text.contains(&format!("burnrate_budget_used_ratio{labels} 0.24")),
        "{text}"
    );
    assert!(
        text.contains(&format!("burnrate_budget_remaining_usd{labels} 0.00076")),
        "{text}"
    );
    assert!(text.contains(r#"burnrate_http_request_duration_seconds_count{route="/v1/ingest/llm-request",method="POST"} 2"#), "{text}");
    assert!(text.ends_with("# EOF\n"));
    let r = api.get("/metrics", &ingest).await;
    assert_eq!(r.status, 403);
}
