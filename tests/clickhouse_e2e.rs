//! `burnrate serve --store clickhouse://...` end to end: keys made by the CLI on the same
//! ClickHouse store, events ingested over HTTP (a retry and a resend among them), then
//! the top endpoints as the API and the terminal show them.
//!
//! Runs when `BURNRATE_CH_URL` names a ClickHouse store URL with `{db}` (scripts/test.sh
//! sets it from scripts/clickhouse.sh); without it the test says so and passes.

mod common;

use common::{cli, clickhouse_url, event, Api, Server};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A fresh database on the test's ClickHouse, or None when none is configured.
fn clickhouse_store(name: &str) -> Option<String> {
    let url = clickhouse_url("BURNRATE_CH_URL")?;
    let db = format!("e2e_{name}_{}", std::process::id());
    Some(url.replace("{db}", &db))
}

#[tokio::test]
async fn serve_on_clickhouse_ingests_dedupes_and_answers_top_endpoints() {
    let Some(store) = clickhouse_store("top") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // --db names a file that must stay unused: --store wins.
    let db = dir.path().join("unused.db");
    let on_store = |args: &[&str]| store_cli(&db, &store, args);
    let ingest = store_key(&db, &store, "ingest");
    let read = store_key(&db, &store, "read");
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);

    let mut failed = event("r1");
    failed["status"] = json!("error");
    failed["usageMissing"] = json!(true);
    for key in ["inputTokens", "cachedTokens", "outputTokens"] {
        failed.as_object_mut().unwrap().remove(key);
    }
    let mut retry = event("r1");
    retry["attempt"] = json!(2);
    let mut other = event("o1");
    other["endpointTag"] = json!("search");
    let batch = json!([failed, retry, other, event("s2"), event("s2")]);
    let r = api.post("/v1/ingest/batch", &ingest, &batch).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        (r.body["accepted"].as_u64(), r.body["duplicates"].as_u64()),
        (Some(4), Some(1)),
        "{}",
        r.body
    );

    let top = api.get("/v1/top/endpoints", &read).await;
    assert_eq!(top.status, 200, "{}", top.body);
    let rows: Vec<(String, u64)> = top.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"]["endpointTag"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    // r1 (two attempts, one call) and s2 (a resend) on support.reply; o1 on search.
    assert_eq!(
        rows,
        vec![("support.reply".to_string(), 2), ("search".to_string(), 1)]
    );
    let terminal: Value = serde_json::from_str(&on_store(&["top", "endpoints", "--json"])).unwrap();
    assert_eq!(terminal["rows"], top.body["rows"]);
    assert!(!db.exists(), "the SQLite file was not used");
    server.stop();
}

/// A batch whose ids, quoted in one statement, pass ClickHouse's 256 KiB statement limit
/// (3,000 ids of 128 characters): all stored, and sent again all duplicates.
#[tokio::test]
async fn a_batch_of_long_ids_beyond_one_statement_is_stored_and_deduped() {
    let Some(store) = clickhouse_store("long_ids") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let ingest = store_key(&db, &store, "ingest");
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);
    let batch: Vec<Value> = (0..3_000).map(|i| event(&format!("{i:0>128}"))).collect();
    let batch = Value::Array(batch);
    let r = api.post("/v1/ingest/batch", &ingest, &batch).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["accepted"].as_u64(), Some(3_000), "{}", r.body);
    let again = api.post("/v1/ingest/batch", &ingest, &batch).await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(
        (
            again.body["accepted"].as_u64(),
            again.body["duplicates"].as_u64()
        ),
        (Some(0), Some(3_000)),
        "{}",
        again.body
    );
    server.stop();
}

/// A TCP proxy in front of the ClickHouse server: taken down and brought back on the
/// same port, it is ClickHouse going away and returning as the node sees it.
struct Proxy {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            upstream: upstream.to_string(),
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Refuse connections and cut the open ones.
    fn down(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn up(&self) {
        let addr = format!("127.0.0.1:{}", self.port);
        let listener = loop {
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }
}

/// ClickHouse going away mid-run: ingest answers 503 with Retry-After naming the store
/// as unavailable, and once it is back every acknowledged event is there and the
/// refused ones go in on retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_answers_503_while_clickhouse_is_down_and_loses_nothing_acknowledged() {
    let Some(direct) = clickhouse_store("down") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    let host = direct
        .strip_prefix("clickhouse://")
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let proxy = Proxy::start(&host).await;
    let store = direct.replacen(&host, &format!("127.0.0.1:{}", proxy.port), 1);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let ingest = store_key(&db, &direct, "ingest");
    let read = store_key(&db, &direct, "read");
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for i in 0..12 {
        if i == 6 {
            proxy.down();
        }
        let id = format!("d{i}");
        let r = api
            .post("/v1/ingest/llm-request", &ingest, &event(&id))
            .await;
        match r.status {
            202 => acked.push(id),
            503 => {
                assert_eq!(r.body["error"]["code"], "store_unavailable", "{}", r.body);
                let message = r.body["error"]["message"].as_str().unwrap();
                assert!(message.contains("store is unavailable"), "{message}");
                assert_eq!(r.retry_after.as_deref(), Some("5"));
                refused.push(id);
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!(acked.len(), 6, "acknowledged before the outage");
    assert_eq!(refused.len(), 6, "refused during the outage");
    proxy.up().await;
    for id in &refused {
        let r = api
            .post("/v1/ingest/llm-request", &ingest, &event(id))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    for id in acked.iter().chain(&refused) {
        let page = api
            .get(&format!("/v1/events?externalRequestId={id}"), &read)
            .await;
        assert_eq!(page.body["events"].as_array().unwrap().len(), 1, "{id}");
    }
    let top = api.get("/v1/top/endpoints?since=24h", &read).await;
    assert_eq!(top.body["total"]["requests"], json!(12), "{}", top.body);
    server.stop();
}

/// One number a ClickHouse query answers, over its HTTP interface at `store`'s host.
async fn clickhouse_count(store: &str, sql: &str) -> u64 {
    let host = store
        .trim_start_matches("clickhouse://")
        .split('/')
        .next()
        .unwrap();
    let text = reqwest::Client::new()
        .post(format!("http://{host}/"))
        .body(sql.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: {text}"))
}

/// Erasure on a ClickHouse store through the real server: the calls naming the tenant
/// (as tenant or as a tag's value) go, the control objects naming it are edited (a
/// mapping, a budget override), free text mentioning it reads `[erased]` (a budget
/// alert's evidence and its member cover, a deploy note), and afterwards no row of the
/// events or objects tables holds the id (checked with the same queries that find it
/// before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_on_clickhouse_leaves_the_id_in_no_table() {
    let Some(store) = clickhouse_store("erase") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    const ERASED: &str = "erase-me-ch-q9";
    let db_name = store.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let key = |scope: &str| store_key(&db, &store, scope);
    let (ingest, admin) = (key("ingest"), key("admin"));
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);
    let with = |id: &str, tenant: &str, tags: Value, cost: f64| {
        let mut e = event(id);
        e["tenantId"] = json!(tenant);
        e["tags"] = tags;
        e["costUsd"] = json!(cost);
        e
    };
    let calls = json!([
        with("e1", ERASED, json!({"team": "x"}), 1.0),
        with("e2", "keeper", json!({"customer": ERASED}), 0.5),
        with("e3", "keeper", json!({"team": "x"}), 0.25),
        // Two days old: sealed into hourly cells (by tenant, by user) before the erasure.
        with("e4", ERASED, json!({"team": "x"}), 2.0),
    ]);
    let mut calls = calls;
    let two_days_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    calls[3]["timestamp"] = json!(two_days_ago.to_string());
    let reply = api.post("/v1/ingest/batch", &ingest, &calls).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    for (path, body) in [
        (
            "/v1/mappings",
            json!({"dimension": "tenantId", "from": "old-q9", "to": ERASED}),
        ),
        (
            "/v1/budgets",
            json!({"name": "each", "scope": {"tenantId": "*"}, "period": "month",
                   "limitUsd": 10, "action": "notify", "overrides": {ERASED: 0.5, "keeper": 6}}),
        ),
    ] {
        let r = api.post(path, &admin, &body).await;
        assert!(r.status == 200 || r.status == 201, "{path}: {}", r.body);
    }
    // The tenant's $1.00 is over its $0.50 override: a member alert names it.
    let r = api.post("/v1/alerts/evaluate", &admin, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let alerts = api.get("/v1/alerts", &admin).await;
    let alert = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["evidence"]["member"] == json!(ERASED))
        .unwrap_or_else(|| panic!("{}", alerts.body))
        .clone();
    let note = api
        .post(
            "/v1/deploys",
            &ingest,
            &json!({"note": format!("hotfix for {ERASED} after the outage")}),
        )
        .await;
    assert_eq!(note.status, 201, "{}", note.body);
    let in_events = format!(
        "SELECT count() FROM {db_name}.events WHERE tenant = '{ERASED}' OR user = '{ERASED}' OR has(tag_values, '{ERASED}')"
    );
    // Objects, not their versions: the server's alert pass may store a second version
    // of the alert before the count.
    let in_objects = format!(
        "SELECT uniqExact(kind, id) FROM {db_name}.objects WHERE position(body, '{ERASED}') > 0"
    );
    assert_eq!(clickhouse_count(&store, &in_events).await, 3);
    // The mapping, the budget, the alert, its member cover and the deploy note.
    assert_eq!(clickhouse_count(&store, &in_objects).await, 5);
    // Seal the closed hours (as a server's minute loop does): e4's hour gets cells, one
    // of them naming the tenant.
    let sealing = burnrate::store::open(&store).unwrap();
    assert!(
        sealing
            .seal(jiff::Timestamp::now().as_millisecond())
            .await
            .unwrap()
            >= 1
    );
    let in_cells = format!(
        "SELECT count() FROM {db_name}.cells WHERE c_tenant = '{ERASED}' OR c_user = '{ERASED}'"
    );
    assert_eq!(clickhouse_count(&store, &in_cells).await, 1);

    let erased = api
        .post("/v1/erasure", &admin, &json!({"tenantId": ERASED}))
        .await;
    assert_eq!(erased.status, 201, "{}", erased.body);
    assert_eq!(
        (
            &erased.body["events"],
            &erased.body["costUsd"],
            &erased.body["objectsEdited"]
        ),
        (&json!(3), &json!("3.5"), &json!(5)),
        "{}",
        erased.body
    );
    assert_eq!(clickhouse_count(&store, &in_events).await, 0);
    assert_eq!(clickhouse_count(&store, &in_objects).await, 0);
    assert_eq!(clickhouse_count(&store, &in_cells).await, 0);
    // The free text reads the marker where the id stood, the rest as it was.
    let notes = api.get("/v1/deploys?since=1d", &admin).await;
    assert_eq!(
        notes.body["deploys"][0]["note"],
        json!("hotfix for [erased] after the outage"),
        "{}",
        notes.body
    );
    let alerts = api.get("/v1/alerts", &admin).await;
    let after = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == alert["id"])
        .unwrap_or_else(|| panic!("{}", alerts.body));
    assert_eq!(
        (&after["evidence"]["member"], &after["evidence"]["spentUsd"]),
        (&json!("[erased]"), &alert["evidence"]["spentUsd"]),
        "{after}"
    );
    // What did not name the id stays: keeper's call e3 and override.
    let kept = format!("SELECT count() FROM {db_name}.events WHERE tenant = 'keeper'");
    assert_eq!(clickhouse_count(&store, &kept).await, 1);
    let budgets = api.get("/v1/budgets", &admin).await;
    assert!(
        budgets.body.to_string().contains("keeper"),
        "{}",
        budgets.body
    );
    server.stop();
}

/// Run a ClickHouse statement that answers nothing, over its HTTP interface.
async fn clickhouse_exec(store: &str, sql: &str) {
    let host = store
        .trim_start_matches("clickhouse://")
        .split('/')
        .next()
        .unwrap();
    let reply = reqwest::Client::new()
        .post(format!("http://{host}/"))
        .body(sql.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        reply.status().is_success(),
        "{sql}: {}",
        reply.text().await.unwrap()
    );
}

/// Re-pricing on ClickHouse through the real server: an unpriced call (a failed first
/// attempt) is priced by an override ($1 / $2 per 1M tokens, by hand: 1M input = $1.00)
/// with its repricedAt; then a successful second attempt (2M input, 1M output = $4.00)
/// still wins over it, and totals and a budget's spent are exactly the second attempt's
/// cost (the first's re-priced cost is taken back, not its original unpriced state); a
/// merge then keeps the re-priced copy, not the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repriced_call_on_clickhouse_survives_merges_and_a_better_attempt_still_wins() {
    let Some(store) = clickhouse_store("reprice") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    let db_name = store.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let on_store = |args: &[&str]| store_cli(&db, &store, args);
    let key = |scope: &str| store_key(&db, &store, scope);
    let (ingest, read, admin) = (key("ingest"), key("read"), key("admin"));
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);
    let budget = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "acme", "scope": {"tenantId": "acme"}, "period": "month",
                    "limitUsd": 100, "action": "notify"}),
        )
        .await;
    assert_eq!(budget.status, 201, "{}", budget.body);
    let status = format!("/v1/budgets/{}/status", budget.body["id"]);
    let attempt = |n: u8, status: &str, input: u64, output: u64| {
        json!({"externalRequestId": "r1", "attempt": n, "provider": "selfhosted",
               "model": "acme-llm-7b", "endpointTag": "classify", "tenantId": "acme",
               "inputTokens": input, "outputTokens": output, "status": status})
    };
    let reply = api
        .post(
            "/v1/ingest/batch",
            &ingest,
            &json!([attempt(1, "error", 1_000_000, 0)]),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let totals = || async {
        let top = api.get("/v1/top/models?since=1d", &read).await;
        (
            top.body["total"]["costUsd"].clone(),
            top.body["total"]["unpriced"].clone(),
        )
    };
    assert_eq!(totals().await, (Value::Null, json!(1)));

    let overrides = dir.path().join("overrides.json");
    std::fs::write(
        &overrides,
        json!({"format": 1, "kind": "overrides", "corrections": [
            {"provider": "selfhosted", "model": "acme-llm-7b",
             "effectiveFrom": "2026-01-01T00:00:00Z", "mode": "chat",
             "usdPerMTok": [{"tier": "standard", "above": 0, "input": "1", "output": "2"}]}]})
        .to_string(),
    )
    .unwrap();
    on_store(&["prices", "import", overrides.to_str().unwrap()]);
    let mut summary = Value::Null;
    for _ in 0..50 {
        let r = api
            .post("/v1/prices/reprice", &admin, &json!({"unpriced": true}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        summary = r.body;
        if summary["repriced"] != json!(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        (&summary["repriced"], &summary["costUsd"]),
        (&json!(1), &json!("1")),
        "{summary}"
    );
    let r1 = api.get("/v1/events?externalRequestId=r1", &read).await;
    let r1 = &r1.body["events"][0];
    assert_eq!(
        (&r1["costUsd"], &r1["repricedAt"]),
        (&json!(1), &summary["repricedAt"]),
        "{r1}"
    );
    assert_eq!(totals().await, (json!(1), json!(0)));
    assert_eq!(api.get(&status, &admin).await.body["spentUsd"], json!(1));

    // The better attempt wins: 2M x $1 + 1M x $2 = $4.00, and only that is spent.
    let reply = api
        .post(
            "/v1/ingest/batch",
            &ingest,
            &json!([attempt(2, "success", 2_000_000, 1_000_000)]),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let r1 = api.get("/v1/events?externalRequestId=r1", &read).await;
    let r1 = &r1.body["events"][0];
    assert_eq!(
        (&r1["attempt"], &r1["attempts"], &r1["costUsd"]),
        (&json!(2), &json!(2), &json!(4)),
        "{r1}"
    );
    assert!(r1.get("repricedAt").is_none(), "{r1}");
    assert_eq!(totals().await, (json!(4), json!(0)));
    assert_eq!(api.get(&status, &admin).await.body["spentUsd"], json!(4));
    // A merge keeps the re-priced copy of attempt 1 (keep + 1), not its original, and
    // changes no answer.
    clickhouse_exec(&store, &format!("OPTIMIZE TABLE {db_name}.events FINAL")).await;
    let rows = format!("SELECT count() FROM {db_name}.events");
    assert_eq!(clickhouse_count(&store, &rows).await, 2);
    let first = format!("SELECT cost FROM {db_name}.events WHERE attempt = 1");
    assert_eq!(clickhouse_count(&store, &first).await, 1_000_000_000);
    assert_eq!(totals().await, (json!(4), json!(0)));
    server.stop();
}

/// Resealing an hour leaves its old generations behind until the sealing node drops
/// them (`cells::drop_superseded`, run after each seal): an hour of two days ago is
/// sealed three times (a late call in it before each reseal), so its cells hold three
/// generations; a seal pass run later than the grace (10 minutes) after the newest one
/// started deletes the older generations' cells and `sealed` rows, keeps the newest,
/// and the totals read afterwards are still the three calls' ($1.00 + $0.25 + $0.50).
/// On one server and, when `BURNRATE_CH_CLUSTER_URL` is set, on the two-shard cluster
/// (the deletes run on every shard's local tables).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superseded_cell_generations_are_dropped_and_reads_stay_exact() {
    for store in server_and_cluster("generations") {
        generations_are_dropped_on(store).await;
    }
}

/// Fresh store URLs named after `name`: one server, and the two-shard cluster when
/// `BURNRATE_CH_CLUSTER_URL` is set; none (the test says it skipped) without a server.
fn server_and_cluster(name: &str) -> Vec<String> {
    let Some(store) = clickhouse_store(name) else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return Vec::new();
    };
    let mut stores = vec![store];
    if let Some(url) = clickhouse_url("BURNRATE_CH_CLUSTER_URL") {
        let db = format!("e2e_{name}_cluster_{}", std::process::id());
        stores.push(url.replace("{db}", &db));
    }
    stores
}

/// The database a store URL names.
fn database_of(url: &str) -> String {
    let db = url.rsplit('/').next().unwrap();
    db.split('?').next().unwrap().to_string()
}

async fn generations_are_dropped_on(store: String) {
    let db_name = database_of(&store);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let key = |scope: &str| store_key(&db, &store, scope);
    let (ingest, read) = (key("ingest"), key("read"));
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);
    let sealing = burnrate::store::open(&store).unwrap();
    let two_days_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    let mut generations = 0;
    for (id, cost) in [("g1", 1.0), ("g2", 0.25), ("g3", 0.5)] {
        let mut e = event(id);
        e["timestamp"] = json!(two_days_ago.to_string());
        e["costUsd"] = json!(cost);
        let reply = api.post("/v1/ingest/batch", &ingest, &json!([e])).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        if id == "g3" {
            // The last seal is trusted: the late call's mark is older than its start
            // minus the clock-skew margin (5 s), so the final read takes the cells.
            tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        }
        let now = jiff::Timestamp::now().as_millisecond();
        generations += sealing.seal(now).await.unwrap();
    }
    let distinct = format!("SELECT uniqExact(gen) FROM {db_name}.cells");
    let sealed_rows = format!("SELECT count() FROM {db_name}.sealed");
    // The server's own seal pass (10 s after its start) may have added one more.
    assert!(generations >= 3, "hours sealed: {generations}");
    assert!(clickhouse_count(&store, &distinct).await >= 3);
    // Within the grace nothing goes.
    sealing
        .seal(jiff::Timestamp::now().as_millisecond())
        .await
        .unwrap();
    assert!(clickhouse_count(&store, &distinct).await >= 3);
    let newest = clickhouse_count(&store, &format!("SELECT max(gen) FROM {db_name}.sealed")).await;

    let later = jiff::Timestamp::now().as_millisecond() + 11 * 60_000;
    sealing.seal(later).await.unwrap();
    assert_eq!(clickhouse_count(&store, &distinct).await, 1);
    assert_eq!(
        clickhouse_count(&store, &format!("SELECT min(gen) FROM {db_name}.cells")).await,
        newest
    );
    assert_eq!(clickhouse_count(&store, &sealed_rows).await, 1);
    // The sealed versions go with their generation: only the newest one's remain, its
    // marker row and the one (endpoint, version, environment, data mode) of the calls.
    let versions = format!("SELECT uniqExact(gen), min(gen), count() FROM {db_name}.cell_versions");
    assert_eq!(
        clickhouse_count(
            &store,
            &format!("SELECT min(gen) FROM {db_name}.cell_versions")
        )
        .await,
        newest
    );
    assert_eq!(
        clickhouse_count(
            &store,
            &format!("SELECT count() FROM {db_name}.cell_versions")
        )
        .await,
        2,
        "{versions}"
    );
    // The newest generation's main cells still hold the three calls: 1.75 USD.
    let main_requests = format!("SELECT sum(requests) FROM {db_name}.cells WHERE family = 'main'");
    assert_eq!(clickhouse_count(&store, &main_requests).await, 3);
    let top = api.get("/v1/top/endpoints?since=7d", &read).await;
    assert_eq!(top.status, 200, "{}", top.body);
    assert_eq!(
        (
            &top.body["total"]["requests"],
            &top.body["total"]["costUsd"]
        ),
        (&json!(3), &json!(1.75)),
        "{}",
        top.body
    );
    server.stop();
}

/// Retention on a ClickHouse store through the real binary: calls 20 and 15 days old
/// are pruned by `burnrate prune --days 10` while the server runs; the dashboard's
/// 30-day number and the API's totals stay what every call adds up to (the pruned
/// history answers the old days), `rawFrom` says from when raw events exist, an old
/// window of whole days reads exactly from the pruned history, and an erasure takes the
/// tenant's pruned calls out too, leaving its id in no pruned row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_clickhouse_keeps_old_windows_and_reports_raw_from() {
    let Some(store) = clickhouse_store("retention") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    const DAY_MS: i64 = 86_400_000;
    const GONE: &str = "gone-ch-r7";
    let db_name = store.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let on_store = |args: &[&str]| store_cli(&db, &store, args);
    let key = |scope: &str| store_key(&db, &store, scope);
    let (ingest, read, admin) = (key("ingest"), key("read"), key("admin"));
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);
    let now = jiff::Timestamp::now().as_millisecond();
    let iso = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    let call = |id: &str, ts: i64, tenant: &str, cost: f64| {
        let mut e = event(id);
        e["timestamp"] = json!(iso(ts));
        e["tenantId"] = json!(tenant);
        e["costUsd"] = json!(cost);
        e
    };
    let calls = json!([
        call("old-1", now - 20 * DAY_MS, GONE, 0.25),
        call("old-2", now - 15 * DAY_MS, "keeper", 0.50),
        call("new-1", now - 2 * DAY_MS, GONE, 2.00),
        call("new-2", now - 3_600_000, "keeper", 4.00),
    ]);
    let reply = api.post("/v1/ingest/batch", &ingest, &calls).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let totals = |body: &Value| {
        (
            body["total"]["requests"].clone(),
            body["total"]["costUsd"].clone(),
        )
    };
    // 0.25 + 0.50 + 2.00 + 4.00, and the dashboard shows the same sum.
    let top = api.get("/v1/top/tenants?since=30d", &read).await;
    assert_eq!(totals(&top.body), (json!(4), json!(6.75)), "{}", top.body);
    let page = common::dashboard_page(&api.url, &read, "/tenants?range=30d").await;
    assert!(page.contains("$6.75"), "{page}");
    assert!(!page.contains("data-raw-from"), "nothing pruned yet");

    // Rows are pruned once older than the nodes' clock-skew margin (5 s).
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let pruned: Value = serde_json::from_str(&on_store(&[
        "prune",
        "--workspace",
        "default",
        "--days",
        "10",
    ]))
    .unwrap();
    let raw_from = (now - 10 * DAY_MS).div_euclid(DAY_MS) * DAY_MS;
    assert_eq!(
        (&pruned["events"], &pruned["costUsd"], &pruned["rawFrom"]),
        (&json!(2), &json!("0.75"), &json!(iso(raw_from))),
        "{pruned}"
    );
    let in_events = format!("SELECT count() FROM {db_name}.events WHERE id LIKE 'old-%'");
    assert_eq!(clickhouse_count(&store, &in_events).await, 0);

    let retention = api.get("/v1/retention", &read).await;
    assert_eq!(
        retention.body["rawFrom"],
        json!(iso(raw_from)),
        "{}",
        retention.body
    );
    let top = api.get("/v1/top/tenants?since=30d", &read).await;
    assert_eq!(totals(&top.body), (json!(4), json!(6.75)), "{}", top.body);
    let page = common::dashboard_page(&api.url, &read, "/tenants?range=30d").await;
    assert!(page.contains("$6.75"), "{page}");
    assert!(
        page.contains(&format!(r#"data-raw-from="{}""#, iso(raw_from))),
        "{page}"
    );
    // Whole days before raw_from read from the pruned history alone: exact, and the
    // answer does not say raw events were missing.
    let old = api
        .post(
            "/v1/query",
            &read,
            &json!({"from": iso(raw_from - 25 * DAY_MS), "to": iso(raw_from),
                    "groupBy": ["tenantId"], "measures": ["requests", "costUsd"]}),
        )
        .await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(old.body["totals"][0]["requests"], json!(2), "{}", old.body);
    assert_eq!(
        old.body["totals"][0]["costUsd"],
        json!(0.75),
        "{}",
        old.body
    );
    assert!(old.body.get("rawPrunedBefore").is_none(), "{}", old.body);
    // The raw events left are the recent ones.
    let events = api.get("/v1/events?limit=100", &read).await;
    let ids: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["externalRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new-2", "new-1"]);

    // Erasure: one raw call (2.00) and one pruned one (0.25).
    let erased = api
        .post("/v1/erasure", &admin, &json!({"tenantId": GONE}))
        .await;
    assert_eq!(erased.status, 201, "{}", erased.body);
    assert_eq!(
        (
            &erased.body["events"],
            &erased.body["prunedHistoryCalls"],
            &erased.body["costUsd"]
        ),
        (&json!(1), &json!(1), &json!("2.25")),
        "{}",
        erased.body
    );
    let in_pruned = format!("SELECT count() FROM {db_name}.pruned WHERE c_tenant = '{GONE}'");
    assert_eq!(clickhouse_count(&store, &in_pruned).await, 0);
    let top = api.get("/v1/top/tenants?since=30d", &read).await;
    assert_eq!(totals(&top.body), (json!(2), json!(4.5)), "{}", top.body);
    let page = common::dashboard_page(&api.url, &read, "/tenants?range=30d").await;
    assert!(page.contains("$4.50"), "{page}");
    server.stop();
}

/// Two nodes pruning one workspace at the same moment prune it once: at most one run
/// takes the calls (the other answers Conflict, or finds nothing left), the pruned
/// history holds each call once, and the totals of every old day are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_pruning_one_workspace_at_once_prune_it_once() {
    let Some(store) = clickhouse_store("prune_race") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    const DAY_MS: i64 = 86_400_000;
    let db_name = store.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let key = |scope: &str| store_key(&db, &store, scope);
    let (ingest, read) = (key("ingest"), key("read"));
    let server = Server::start(&db, &["--store", &store]);
    let api = Api::new(&server);
    let now = jiff::Timestamp::now().as_millisecond();
    // 60 calls over days 20 to 15 ago at $0.01 each, and one recent call at $1.
    let mut calls: Vec<Value> = (0..60)
        .map(|i| {
            let mut e = event(&format!("race-{i}"));
            let ts = now - 20 * DAY_MS + i * (DAY_MS / 12);
            e["timestamp"] = json!(jiff::Timestamp::from_millisecond(ts).unwrap().to_string());
            e["costUsd"] = json!(0.01);
            e
        })
        .collect();
    let mut recent = event("race-recent");
    recent["costUsd"] = json!(1.0);
    calls.push(recent);
    let reply = api
        .post("/v1/ingest/batch", &ingest, &Value::Array(calls))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let before = api.get("/v1/top/tenants?since=30d", &read).await.body;
    assert_eq!(
        (&before["total"]["requests"], &before["total"]["costUsd"]),
        (&json!(61), &json!(1.6)),
        "{before}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let (a, b) = (
        burnrate::store::open(&store).unwrap(),
        burnrate::store::open(&store).unwrap(),
    );
    let ws = a.workspace("default".into()).await.unwrap().unwrap().id;
    let cut = now - 10 * DAY_MS;
    // A third node reads by day and tenant all the while: an answer never moves, before,
    // during (its delete running) or after a prune.
    let reader = burnrate::store::open(&store).unwrap();
    let query = burnrate::query::Query {
        from_ms: (now - 30 * DAY_MS).div_euclid(DAY_MS) * DAY_MS,
        to_ms: now + 60_000,
        filters: Default::default(),
        group_by: vec![burnrate::query::Dimension::TenantId],
        bucket: Some(burnrate::query::Bucket::Day),
        measures: burnrate::query::Measure::ALL.to_vec(),
        order_by: None,
        ascending: false,
        limit: 1_000,
        count_by_first: false,
    };
    let first = reader.aggregate(ws, query.clone()).await.unwrap();
    assert_eq!(first.total().requests, 61);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = tokio::spawn({
        let done = done.clone();
        async move {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let got = reader.aggregate(ws, query.clone()).await.unwrap();
                assert_eq!(
                    (&got.rows, &got.totals),
                    (&first.rows, &first.totals),
                    "read {n}"
                );
                n += 1;
            }
            n
        }
    });
    let (ra, rb) = tokio::join!(a.prune_before(ws, cut), b.prune_before(ws, cut));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reads.await.unwrap() > 0);
    let mut taken = 0;
    for r in [ra, rb] {
        match r {
            Ok(removed) => taken += removed.events,
            Err(burnrate::store::StoreError::Conflict(why)) => {
                assert!(why.contains("another node"), "{why}")
            }
            Err(e) => panic!("{e}"),
        }
    }
    if taken == 0 {
        // Both claims lost (each saw the other's): a later run takes the calls.
        taken = a.prune_before(ws, cut).await.unwrap().events;
    }
    assert_eq!(taken, 60);
    let pruned = format!("SELECT sum(requests) FROM {db_name}.pruned");
    assert_eq!(clickhouse_count(&store, &pruned).await, 60);
    let after = api.get("/v1/top/tenants?since=30d", &read).await.body;
    assert_eq!(after["total"], before["total"], "{before}\n{after}");
    assert!(a.raw_from(ws).await.unwrap().is_some());
    server.stop();
}

/// What `burnrate --store STORE ARGS` printed, trimmed (`db` names a file that must stay
/// unused: --store wins).
fn store_cli(db: &std::path::Path, store: &str, args: &[&str]) -> String {
    let mut all = vec!["--store", store];
    all.extend_from_slice(args);
    cli(db, &all).trim().to_string()
}

/// A new key of the default workspace on `store`.
fn store_key(db: &std::path::Path, store: &str, scope: &str) -> String {
    let args = ["keys", "create", "--workspace", "default", "--scope", scope];
    store_cli(db, store, &args)
}

/// A call whose attempts lie hours apart, read from the by-hour copy: ingest names it in
/// `spanning`, so a raw read of one of its hours resolves it from all its attempts (the
/// winner, hours later, decides its time); with its names gone (as when two nodes stored
/// its attempts at the same moment, neither seeing the other) a read of the first hour
/// takes the lone attempt for the call, until the seal, which resolves the hour's calls
/// from all their rows, names it again. Both on one server and on the two-shard cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_split_across_hours_is_resolved_whole_in_raw_reads() {
    for store in server_and_cluster("spanning") {
        split_call_on(store).await;
    }
}

/// Every call of `[from, to)` in every environment, as one total.
fn window(from: i64, to: i64) -> burnrate::query::Query {
    use burnrate::query::{Filters, Measure, Query};
    Query {
        from_ms: from,
        to_ms: to,
        filters: Filters::default(),
        group_by: vec![],
        bucket: None,
        measures: Measure::ALL.to_vec(),
        order_by: None,
        ascending: false,
        limit: 10,
        count_by_first: false,
    }
}

async fn split_call_on(url: String) {
    let db_name = database_of(&url);
    let store = burnrate::store::open(&url).unwrap();
    let ws = store.workspace("default".into()).await.unwrap().unwrap().id;
    let book = burnrate::price::PriceBook::bundled().unwrap();
    const HOUR: i64 = 3_600_000;
    let now = jiff::Timestamp::now().as_millisecond();
    // The first attempt fails 6 hours ago (mid-hour), the second succeeds 3 hours later.
    let first_hour = (now - 6 * HOUR).div_euclid(HOUR) * HOUR;
    let at = |ms: i64, id: &str, attempt: u64, ok: bool| {
        let mut e = event(id);
        e["timestamp"] = json!(jiff::Timestamp::from_millisecond(ms).unwrap().to_string());
        e["attempt"] = json!(attempt);
        if !ok {
            e["status"] = json!("timeout");
            e["usageMissing"] = json!(true);
            for k in ["inputTokens", "cachedTokens", "outputTokens"] {
                e.as_object_mut().unwrap().remove(k);
            }
        }
        e.to_string()
    };
    let ingest = |texts: Vec<String>| {
        let items = texts
            .iter()
            .map(|t| burnrate::ingest::parse_item(t))
            .collect();
        let prepared = burnrate::ingest::prepare(items, &book, &Default::default(), now);
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        prepared.events
    };
    let events = ingest(vec![
        at(first_hour + 30 * 60_000, "split", 1, false),
        at(first_hour + 3 * HOUR + 10 * 60_000, "split", 2, true),
    ]);
    store.ingest(ws, events).await.unwrap();
    let names = format!("SELECT count() FROM {db_name}.spanning WHERE id = 'split'");
    assert_eq!(clickhouse_count(&url, &names).await, 2);
    let requests = |from: i64, to: i64| {
        let store = store.clone();
        async move {
            let answer = store.aggregate(ws, window(from, to)).await.unwrap();
            answer.total().requests
        }
    };
    // The first attempt's hour alone: the call's time is the winner's, three hours on.
    assert_eq!(requests(first_hour, first_hour + HOUR).await, 0);
    assert_eq!(
        requests(first_hour + 3 * HOUR, first_hour + 4 * HOUR).await,
        1
    );
    assert_eq!(requests(first_hour, first_hour + 4 * HOUR).await, 1);
    // Without its names, a read of the first hour alone sees only the first attempt.
    for server in servers(&url) {
        let table = local(&url, "spanning");
        clickhouse_exec(
            &server,
            &format!("ALTER TABLE {db_name}.{table} DELETE WHERE id = 'split'"),
        )
        .await;
        wait_mutations(&server, &db_name).await;
    }
    assert_eq!(clickhouse_count(&url, &names).await, 0);
    assert_eq!(requests(first_hour, first_hour + HOUR).await, 1);
    // The seal names it again; a new call in the first hour (its hour read raw again:
    // the dirty mark is newer than the seal) then leaves the split call out.
    assert!(store.seal(now).await.unwrap() >= 2);
    assert_eq!(clickhouse_count(&url, &names).await, 2);
    store
        .ingest(
            ws,
            ingest(vec![at(first_hour + 40 * 60_000, "late", 1, true)]),
        )
        .await
        .unwrap();
    assert_eq!(requests(first_hour, first_hour + HOUR).await, 1);
    assert_eq!(requests(first_hour, first_hour + 4 * HOUR).await, 2);

    // A store from before the by-hour copy (its tables dropped here, and the names):
    // the next open fills both from `events`, and the reads answer as before.
    for server in servers(&url) {
        for table in ["events_by_hour", "events_by_hour_local"] {
            clickhouse_exec(&server, &format!("DROP TABLE IF EXISTS {db_name}.{table}")).await;
        }
        let table = local(&url, "spanning");
        clickhouse_exec(&server, &format!("DROP TABLE {db_name}.{table}")).await;
    }
    drop(store);
    let store = burnrate::store::open(&url).unwrap();
    let rows = |table: &str| format!("SELECT count() FROM {db_name}.{table}");
    assert_eq!(clickhouse_count(&url, &rows("events_by_hour")).await, 3);
    assert_eq!(clickhouse_count(&url, &rows("events")).await, 3);
    assert_eq!(clickhouse_count(&url, &names).await, 2);
    let hour = store
        .aggregate(ws, window(first_hour, first_hour + HOUR))
        .await
        .unwrap();
    assert_eq!(hour.total().requests, 1);
}

/// Each server of a store URL (every shard of a cluster URL), as a URL of its own.
fn servers(url: &str) -> Vec<String> {
    match url.split("shards=").nth(1) {
        Some(shards) => shards
            .split('&')
            .next()
            .unwrap()
            .split(';')
            .map(|host| format!("clickhouse://{host}/"))
            .collect(),
        None => vec![url.to_string()],
    }
}

/// A table's shard-local name on a cluster URL, its own name otherwise.
fn local(url: &str, table: &str) -> String {
    match url.contains("cluster=") {
        true => format!("{table}_local"),
        false => table.to_string(),
    }
}

/// Wait for every mutation of the database (on the URL's first server) to finish.
async fn wait_mutations(url: &str, db: &str) {
    let pending =
        format!("SELECT count() FROM system.mutations WHERE database = '{db}' AND is_done = 0");
    for _ in 0..200 {
        if clickhouse_count(url, &pending).await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("mutations of {db} did not finish");
}
