//! Two `burnrate serve` nodes over one two-shard ClickHouse cluster (docs/scale-out.md):
//! retries of one call split across the nodes and resends sent to both at once count
//! once; a read right after a 2xx sees the event on that node, and on the other within
//! 2 s; a key revoked through one node is refused by the other; a budget set through one
//! node holds on the other, also with 50 racing clients; alerts are sent once; a key's
//! ingest rate limit and a rate cap hold for both nodes together.
//!
//! Runs when `BURNRATE_CH_CLUSTER_URL` names the cluster's store URL with `{db}` and
//! `shards=` (scripts/test.sh sets it from scripts/clickhouse.sh); without it each test
//! says so and passes.

mod common;

use common::{cli, clickhouse_url, Api, Server};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Two nodes on one fresh database of the cluster: node A talks to the first shard's
/// server, node B to the second's; both URLs list both shards.
struct Nodes {
    a: Server,
    b: Server,
    api_a: Api,
    api_b: Api,
    store_a: String,
    /// Where the CLI's --db points (never used: --store wins).
    db: PathBuf,
    _dir: tempfile::TempDir,
}

/// The cluster URL for a fresh database, and the same URL pointing at the second shard.
fn cluster_stores(name: &str) -> Option<(String, String)> {
    let url = clickhouse_url("BURNRATE_CH_CLUSTER_URL")?;
    let db = format!("nodes_{name}_{}", std::process::id());
    let a = url.replace("{db}", &db);
    let shards = a.split("shards=").nth(1)?.split('&').next()?.to_string();
    let first = shards.split(';').next()?.to_string();
    let second = shards.split(';').nth(1)?.to_string();
    let b = a.replacen(&format!("//{first}/"), &format!("//{second}/"), 1);
    assert_ne!(a, b, "the cluster URL names two shards");
    Some((a, b))
}

impl Nodes {
    fn start(name: &str, extra: &[&str]) -> Option<Nodes> {
        let Some((store_a, store_b)) = cluster_stores(name) else {
            eprintln!("BURNRATE_CH_CLUSTER_URL is not set (scripts/clickhouse.sh env): skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("unused.db");
        let mut args_a = vec!["--store", store_a.as_str()];
        args_a.extend_from_slice(extra);
        let a = Server::start(&db, &args_a);
        let mut args_b = vec!["--store", store_b.as_str()];
        args_b.extend_from_slice(extra);
        let b = Server::start(&db, &args_b);
        let (api_a, api_b) = (Api::new(&a), Api::new(&b));
        Some(Nodes {
            a,
            b,
            api_a,
            api_b,
            store_a,
            db,
            _dir: dir,
        })
    }

    /// A CLI command on the shared store (through node A's URL).
    fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["--store", self.store_a.as_str()];
        all.extend_from_slice(args);
        cli(&self.db, &all).trim().to_string()
    }

    fn key(&self, scope: &str) -> String {
        self.cli(&["keys", "create", "--workspace", "default", "--scope", scope])
    }

    fn stop(self) {
        self.a.stop();
        self.b.stop();
    }
}

/// A call that costs exactly `cost` USD (reported by the client for a model with no price).
fn call(id: &str, cost: &str) -> Value {
    json!({
        "externalRequestId": id, "provider": "selfhosted", "model": "node-model",
        "endpointTag": "support.reply", "tenantId": "acme", "inputTokens": 100,
        "outputTokens": 10, "status": "success", "costUsd": cost.parse::<f64>().unwrap()
    })
}

/// (requests, cost in USD as the API writes it) of the last 24 hours, through one node.
async fn totals(api: &Api, read: &str) -> (u64, Value) {
    let r = api.get("/v1/top/endpoints?since=24h", read).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let total = &r.body["total"];
    (
        total["requests"].as_u64().unwrap(),
        total["costUsd"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_split_across_two_nodes_and_resends_to_both_at_once_count_once() {
    let Some(n) = Nodes::start("retries", &[]) else {
        return;
    };
    let (ingest, read) = (n.key("ingest"), n.key("read"));
    let mut expected_nanos = 0i64;
    for i in 0..20 {
        // Attempt 1 failed (no usage) through A, attempt 2 succeeded through B, sent at
        // the same moment: one call with attempt 2's cost.
        let id = format!("split-{i}");
        let cost = format!("0.{:03}", i + 1);
        let mut failed = call(&id, "0.5");
        failed["status"] = json!("error");
        failed["usageMissing"] = json!(true);
        for k in ["inputTokens", "outputTokens", "costUsd"] {
            failed.as_object_mut().unwrap().remove(k);
        }
        let mut retry = call(&id, &cost);
        retry["attempt"] = json!(2);
        let (ra, rb) = tokio::join!(
            n.api_a.post("/v1/ingest/llm-request", &ingest, &failed),
            n.api_b.post("/v1/ingest/llm-request", &ingest, &retry)
        );
        assert_eq!(
            (ra.status, rb.status),
            (202, 202),
            "{} {}",
            ra.body,
            rb.body
        );
        // The same resend to both nodes at once: one call.
        let resend = call(&format!("resend-{i}"), &cost);
        let (ra, rb) = tokio::join!(
            n.api_a.post("/v1/ingest/llm-request", &ingest, &resend),
            n.api_b.post("/v1/ingest/llm-request", &ingest, &resend)
        );
        assert_eq!(
            (ra.status, rb.status),
            (202, 202),
            "{} {}",
            ra.body,
            rb.body
        );
        expected_nanos += 2 * (i + 1) * 1_000_000;
    }
    let expected_usd = json!(expected_nanos as f64 / 1e9);
    let (a, b) = tokio::join!(totals(&n.api_a, &read), totals(&n.api_b, &read));
    assert_eq!(a, (40, expected_usd.clone()), "through node A");
    assert_eq!(b, a, "node B answers as node A");
    // Each split call counts both attempts and carries attempt 2's cost.
    let page = n
        .api_b
        .get("/v1/events?externalRequestId=split-7", &read)
        .await;
    let events = page.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", page.body);
    assert_eq!(
        (
            &events[0]["attempts"],
            &events[0]["attempt"],
            &events[0]["costUsd"]
        ),
        (&json!(2), &json!(2), &json!(0.008))
    );
    n.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_a_2xx_sees_the_event_on_that_node_and_on_the_other_within_2s() {
    let Some(n) = Nodes::start("ryw", &[]) else {
        return;
    };
    let (ingest, read) = (n.key("ingest"), n.key("read"));
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let (acking, other) = match i % 2 {
            0 => (&n.api_a, &n.api_b),
            _ => (&n.api_b, &n.api_a),
        };
        let id = format!("ryw-{i}");
        let r = acking
            .post("/v1/ingest/llm-request", &ingest, &call(&id, "0.01"))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let acked = Instant::now();
        let path = format!("/v1/events?externalRequestId={id}");
        let mine = acking.get(&path, &read).await;
        assert_eq!(mine.body["events"].as_array().unwrap().len(), 1, "{id}");
        loop {
            let theirs = other.get(&path, &read).await;
            if theirs.body["events"].as_array().unwrap().len() == 1 {
                break;
            }
            assert!(acked.elapsed() < Duration::from_secs(2), "{id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest = slowest.max(acked.elapsed());
        let (a, b) = tokio::join!(totals(&n.api_a, &read), totals(&n.api_b, &read));
        assert_eq!(a.0, i + 1, "totals through A after {id}");
        assert_eq!(b.0, i + 1, "totals through B after {id}");
    }
    eprintln!("slowest read on the other node: {slowest:?}");
    n.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_through_one_node_is_refused_by_the_other_within_5s() {
    let Some(n) = Nodes::start("revoke", &[]) else {
        return;
    };
    let ingest = n.key("ingest");
    for api in [&n.api_a, &n.api_b] {
        let r = api
            .post("/v1/ingest/llm-request", &ingest, &call("k1", "0.01"))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let prefix: String = ingest.chars().take(11).collect();
    n.cli(&["keys", "revoke", &prefix]);
    let revoked = Instant::now();
    for api in [&n.api_b, &n.api_a] {
        loop {
            let r = api
                .post("/v1/ingest/llm-request", &ingest, &call("k2", "0.01"))
                .await;
            if r.status == 401 {
                assert!(r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("revoked"));
                break;
            }
            assert_eq!(r.status, 202, "{}", r.body);
            assert!(revoked.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    n.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_creating_objects_at_the_same_moment_never_share_an_id() {
    let Some(n) = Nodes::start("ids", &[]) else {
        return;
    };
    let admin = n.key("admin");
    let mut creates = Vec::new();
    for i in 0..16 {
        let url = if i % 2 == 0 {
            &n.api_a.url
        } else {
            &n.api_b.url
        };
        let api = Api {
            http: reqwest::Client::new(),
            url: url.clone(),
        };
        let admin = admin.clone();
        creates.push(tokio::spawn(async move {
            let body = json!({"name": format!("b{i}"), "period": "day", "limitUsd": 100 + i});
            let r = api.post("/v1/budgets", &admin, &body).await;
            assert_eq!(r.status, 201, "{}", r.body);
            r.body["id"].as_i64().unwrap()
        }));
    }
    let mut ids = Vec::new();
    for c in creates {
        ids.push(c.await.unwrap());
    }
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "every budget got its own id: {ids:?}");
    let listed = n.api_b.get("/v1/budgets", &admin).await;
    let names: std::collections::BTreeSet<&str> = listed.body["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["budget"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 16, "{}", listed.body);
    n.stop();
}

/// Ask `api`'s guard about one call of `estimate` USD for tenant acme.
async fn guard(api: &Api, key: &str, id: &str, estimate: f64) -> Value {
    let r = api
        .post(
            "/v1/guard",
            key,
            &json!({"endpointTag": "support.reply", "tenantId": "acme",
                    "estimatedCostUsd": estimate, "externalRequestId": id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_set_through_one_node_blocks_on_the_other() {
    let Some(n) = Nodes::start("budget", &[]) else {
        return;
    };
    let (admin, ingest) = (n.key("admin"), n.key("ingest"));
    let created = n
        .api_a
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "cap", "period": "month", "limitUsd": 1, "action": "block"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let r = n
        .api_a
        .post("/v1/ingest/llm-request", &ingest, &call("big", "1.5"))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["budget"]["exceeded"], json!([id]), "{}", r.body);
    // Node B loads the budget and the spend node A took within one reload (2 s).
    let spent = Instant::now();
    loop {
        let answer = guard(&n.api_b, &ingest, "next", 0.01).await;
        if answer["allow"] == json!(false) {
            assert_eq!(answer["reason"], "budget_exceeded", "{answer}");
            break;
        }
        assert!(spent.elapsed() < Duration::from_secs(5), "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("node B blocked {:?} after node A's spend", spent.elapsed());
    let r = n
        .api_b
        .post("/v1/ingest/llm-request", &ingest, &call("small", "0.01"))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["budget"]["exceeded"], json!([id]), "{}", r.body);
    n.stop();
}

/// 50 clients, half on each node, each asking the guard for a $0.50 call and spending
/// it until refused, on one $10 blocking budget: each node admits only its share of what
/// is left, so together they stay within the bound of docs/scale-out.md (here, where
/// estimates equal costs and both nodes reload on the same tick: one call's worth).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_racing_over_two_nodes_overshoot_a_ten_dollar_budget_by_at_most_the_bound() {
    let Some(n) = Nodes::start("race", &[]) else {
        return;
    };
    let (admin, ingest) = (n.key("admin"), n.key("ingest"));
    // No wait for a reload tick: node A started alone and has not counted node B yet
    // (its next tick is up to 2 s away, later on a loaded machine), so the budget's load
    // must count the nodes itself; a node sharing out by its startup count admits the
    // whole headroom (a CI run on a busy machine saw $17).
    let created = n
        .api_a
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "acme cap", "scope": {"tenantId": "acme"}, "period": "month",
                    "limitUsd": 10, "action": "block"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    // Node B lists the budget from its first load on (within one reload tick): from
    // then on it enforces its share.
    let listed = Instant::now();
    while guard(&n.api_b, &ingest, "probe", 0.0).await["budgets"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            listed.elapsed() < Duration::from_secs(5),
            "node B loads the budget"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut clients = Vec::new();
    for c in 0..50 {
        let url = if c % 2 == 0 {
            &n.api_a.url
        } else {
            &n.api_b.url
        };
        let api = Api {
            http: reqwest::Client::new(),
            url: url.clone(),
        };
        let ingest = ingest.clone();
        clients.push(tokio::spawn(async move {
            let mut allowed = 0u32;
            for k in 0.. {
                let rid = format!("c{c}-{k}");
                let answer = guard(&api, &ingest, &rid, 0.5).await;
                if answer["allow"] != json!(true) {
                    assert_eq!(answer["reason"], "budget_exceeded", "{answer}");
                    break;
                }
                allowed += 1;
                let r = api
                    .post("/v1/ingest/llm-request", &ingest, &call(&rid, "0.5"))
                    .await;
                assert_eq!(r.status, 202, "{}", r.body);
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for c in clients {
        allowed += c.await.unwrap();
    }
    let (_, read) = (admin.clone(), n.key("read"));
    let (requests, cost) = totals(&n.api_a, &read).await;
    let spent = cost.as_f64().unwrap();
    eprintln!("admitted {allowed} calls, spent ${spent} of $10");
    assert_eq!(requests, allowed as u64);
    assert!(spent <= 10.5, "overshoot past one call: ${spent}");
    assert!(spent >= 5.0, "at least one node's share was used: ${spent}");
    // Both nodes converge on the store's spend and refuse.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for api in [&n.api_a, &n.api_b] {
        let status = api.get(&format!("/v1/budgets/{id}/status"), &admin).await;
        assert_eq!(
            status.body["spentUsd"].as_f64(),
            Some(spent),
            "{}",
            status.body
        );
    }
    n.stop();
}

/// A local webhook receiver: the bodies it got, and its URL.
async fn receiver() -> (Arc<Mutex<Vec<Value>>>, String) {
    let inbox: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = inbox.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let inbox = keep.clone();
        async move {
            inbox
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (inbox, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_evaluating_at_once_fire_and_notify_an_alert_once() {
    let Some(n) = Nodes::start("alerts", &[]) else {
        return;
    };
    let admin = n.key("admin");
    let (inbox, url) = receiver().await;
    let r = n
        .api_a
        .post(
            "/v1/channels",
            &admin,
            &json!({"name": "ops", "type": "webhook", "url": url}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Calls of a model no price book knows, stamped now: the unpriced rule fires.
    let now = jiff::Timestamp::now().as_millisecond();
    let events: Vec<Value> = (0..60)
        .map(|i| {
            let mut e = call(&format!("u{i}"), "0");
            e.as_object_mut().unwrap().remove("costUsd");
            e["model"] = json!("mystery-13b");
            e["timestamp"] = json!(jiff::Timestamp::from_millisecond(now - 1000 * i)
                .unwrap()
                .to_string());
            e
        })
        .collect();
    let r = n
        .api_a
        .post("/v1/ingest/batch", &admin, &json!(events))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let findings = n.api_b.get("/v1/alerts/findings", &admin).await;
    assert!(
        findings.body.to_string().contains("unpriced_ratio"),
        "{}",
        findings.body
    );
    // Both nodes evaluate at the same moment, three times over (their minute loops
    // run too): one alert, one message.
    let empty = json!({});
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            n.api_a.post("/v1/alerts/evaluate", &admin, &empty),
            n.api_b.post("/v1/alerts/evaluate", &admin, &empty)
        );
        assert_eq!((a.status, b.status), (200, 200), "{} {}", a.body, b.body);
        // The node holding the lease fires, then refreshes; the other evaluates nothing.
        let changed = [&a, &b].map(|r| r.body["transitions"].as_u64().unwrap());
        assert!(changed.contains(&0), "both nodes evaluated: {changed:?}");
    }
    let alerts = n.api_b.get("/v1/alerts", &admin).await;
    let unpriced: Vec<&Value> = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["key"] == "unpriced_ratio")
        .collect();
    assert_eq!(unpriced.len(), 1, "{}", alerts.body);
    assert_eq!(unpriced[0]["deliveries"].as_array().unwrap().len(), 1);
    let got = inbox.lock().unwrap().clone();
    let firing: Vec<&Value> = got
        .iter()
        .filter(|m| m["type"] == "alert.firing" && m["data"]["alert"]["key"] == "unpriced_ratio")
        .collect();
    assert_eq!(firing.len(), 1, "{got:?}");
    n.stop();
}

/// Calls guarded on node A and ingested through node B (a load balancer sends them
/// anywhere): node A never sees their ingest, so it settles their reservations from the
/// store at each reload. Kept until they lapsed (10 min), they counted twice (as A's
/// reservations and in the loaded spend) and the budget closed at half its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_guarded_on_one_node_and_ingested_through_the_other_settle_their_reservations() {
    let Some(n) = Nodes::start("settle", &[]) else {
        return;
    };
    let (admin, ingest, read) = (n.key("admin"), n.key("ingest"), n.key("read"));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let created = n
        .api_a
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "cap", "scope": {"tenantId": "acme"}, "period": "month",
                    "limitUsd": 10, "action": "block"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mut short_waits = 0;
    for k in 0.. {
        let rid = format!("x{k}");
        let answer = guard(&n.api_a, &ingest, &rid, 0.5).await;
        if answer["allow"] != json!(true) {
            // This node's share is used up: the next reload shares out what is left.
            if answer["retryAfterSeconds"] == json!(2) && short_waits < 8 {
                short_waits += 1;
                tokio::time::sleep(Duration::from_millis(2_300)).await;
                continue;
            }
            break;
        }
        let r = n
            .api_b
            .post("/v1/ingest/llm-request", &ingest, &call(&rid, "0.5"))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let (_, cost) = totals(&n.api_a, &read).await;
    let spent = cost.as_f64().unwrap();
    eprintln!("spent ${spent} of $10 after {short_waits} waits for a reload");
    assert!((9.0..=10.0).contains(&spent), "spent ${spent}");
    n.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_cap_holds_across_two_nodes_not_once_per_node() {
    let Some(n) = Nodes::start("rate", &[]) else {
        return;
    };
    let (admin, ingest) = (n.key("admin"), n.key("ingest"));
    // Each node counts the other from its first reload tick on (2 s).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let r = n
        .api_a
        .post(
            "/v1/rate-caps",
            &admin,
            &json!({"endpointTag": "support.reply", "requestsPerMinute": 10}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Node B loads the cap at its next reload (2 s).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut allowed = 0;
    for i in 0..40 {
        let api = if i % 2 == 0 { &n.api_a } else { &n.api_b };
        let answer = guard(api, &ingest, &format!("r{i}"), 0.0).await;
        if answer["allow"] == json!(true) {
            allowed += 1;
        } else {
            assert_eq!(answer["reason"], "rate_capped", "{answer}");
        }
    }
    assert_eq!(allowed, 10, "each node holds half of the 10 a minute");
    n.stop();
}

/// The ingest rate limit of a key holds for the cluster, not per node: started with
/// `--ingest-rate 4 --ingest-burst 20`, each of the two live nodes holds 2 events a
/// second and a burst of 10, so over T seconds one key sending through both gets at
/// most 20 + 4 T events in (a limit per node would let 40 + 8 T through). Both nodes
/// admit their burst, the refused get 429 with Retry-After, and every admitted event is
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ingest_rate_limit_of_a_key_holds_across_two_nodes() {
    let extra = ["--ingest-rate", "4", "--ingest-burst", "20"];
    let Some(n) = Nodes::start("ingestrate", &extra) else {
        return;
    };
    let (ingest, read) = (n.key("ingest"), n.key("read"));
    // Each node counts the other from its first reload tick on (2 s).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // Four clients per node send one event at a time for 3 s.
    let apis = [&n.api_a, &n.api_b].map(|api| {
        Arc::new(Api {
            http: api.http.clone(),
            url: api.url.clone(),
        })
    });
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..8 {
        let (api, ingest) = (apis[c % 2].clone(), ingest.clone());
        clients.push(tokio::spawn(async move {
            let (mut admitted, mut refused) = (0u64, 0u64);
            while started.elapsed() < Duration::from_secs(3) {
                let id = format!("rate-{c}-{}", admitted + refused);
                let r = api
                    .post("/v1/ingest/llm-request", &ingest, &call(&id, "0.001"))
                    .await;
                if r.status < 300 {
                    admitted += 1;
                } else {
                    assert_eq!(r.status, 429, "{}", r.body);
                    assert!(r.retry_after.is_some(), "{}", r.body);
                    refused += 1;
                }
            }
            (c % 2, admitted, refused)
        }));
    }
    let (mut admitted, mut refused) = ([0u64; 2], [0u64; 2]);
    for client in clients {
        let (node, a, r) = client.await.unwrap();
        admitted[node] += a;
        refused[node] += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = admitted[0] + admitted[1];
    let bound = (20.0 + 4.0 * elapsed).floor() as u64;
    assert!(
        total <= bound,
        "{total} events admitted in {elapsed:.2} s, bound {bound} ({admitted:?} per node)"
    );
    assert!(
        admitted.iter().all(|&a| a >= 10) && refused.iter().all(|&r| r > 0),
        "each node admits its burst of 10, then refuses: {admitted:?} admitted, {refused:?} refused"
    );
    // Nothing admitted is lost: every node reads them all within 2 s.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(totals(&n.api_b, &read).await.0, total);
    n.stop();
}

/// Two stores on one cluster database, opened in this process through each shard's
/// server (as two nodes open it), creating the same workspace names at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_creating_one_workspace_name_at_once_create_it_once() {
    let Some((url_a, url_b)) = cluster_stores("wsname") else {
        eprintln!("BURNRATE_CH_CLUSTER_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    let a = burnrate::store::open(&url_a).unwrap();
    let b = burnrate::store::open(&url_b).unwrap();
    for name in ["team-a", "team-b", "team-c", "team-d"] {
        let (ra, rb) = tokio::join!(
            a.create_workspace(name.to_string()),
            b.create_workspace(name.to_string())
        );
        let created = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 1, "{name}: {ra:?} {rb:?}");
        let refused = if ra.is_ok() { rb } else { ra };
        assert!(refused.unwrap_err().to_string().contains("exists"));
        let listed = b.workspaces().await.unwrap();
        assert_eq!(listed.iter().filter(|w| w.name == name).count(), 1);
    }
}
