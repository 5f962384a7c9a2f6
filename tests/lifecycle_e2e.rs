//! Backup and restore through the real binary: a backup taken while the server runs and
//! takes writes is one consistent moment, and a restored store answers like the original.

mod common;

use common::{cli, event, key, Api, Server, BIN};
use serde_json::{json, Value};
use std::path::Path;

/// The totals and rows of `top tenants` over 60 days (real data).
fn tenants(db: &Path) -> (Value, Value) {
    let args = ["top", "tenants", "--since", "60d", "--json"];
    let json: Value = serde_json::from_str(&cli(db, &args)).unwrap();
    (json["total"].clone(), json["rows"].clone())
}

fn requests(db: &Path) -> u64 {
    tenants(db).0["requests"].as_u64().unwrap()
}

fn failing(db: &Path, args: &[&str]) -> String {
    let out = burnrate_harness::cli(Path::new(BIN), db, args).unwrap();
    assert!(!out.status.success(), "burnrate {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// 100 calls of one batch, `round` apart from the others.
fn batch(round: usize) -> Value {
    let calls: Vec<Value> = (0..100)
        .map(|i| {
            let mut e = event(&format!("r{round}-{i}"));
            e["tenantId"] = json!(format!("tenant-{}", i % 7));
            e
        })
        .collect();
    Value::Array(calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_ingesting_restores_to_a_store_that_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (orig, copy, restored) = (
        dir.path().join("orig.db"),
        dir.path().join("copy.db"),
        dir.path().join("restored.db"),
    );
    let (ingest, read) = (
        key(&orig, "default", "ingest"),
        key(&orig, "default", "read"),
    );
    let server = Server::start(&orig, &[]);
    let api = Api::new(&server);
    for round in 0..5 {
        let reply = api.post("/v1/ingest/batch", &ingest, &batch(round)).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    // Backup while batches keep arriving.
    let writer = {
        let (api, ingest) = (Api::new(&server), ingest.clone());
        tokio::spawn(async move {
            for round in 5..40 {
                let reply = api.post("/v1/ingest/batch", &ingest, &batch(round)).await;
                assert_eq!(reply.status, 202, "{}", reply.body);
            }
        })
    };
    let said = cli(&orig, &["backup", copy.to_str().unwrap()]);
    assert!(said.starts_with("backup written to"), "{said}");
    writer.await.unwrap();
    server.stop();
    // One consistent moment: whole batches only, at least those acknowledged before.
    let in_copy = requests(&copy);
    assert!((500..=4_000).contains(&in_copy), "{in_copy}");
    assert_eq!(
        in_copy % 100,
        0,
        "a backup holds whole commits, never part of a batch"
    );
    assert_eq!(requests(&orig), 4_000);

    // Restore: the store answers like the original did at the backup's moment.
    let said = cli(&restored, &["restore", copy.to_str().unwrap()]);
    assert!(said.starts_with("restored"), "{said}");
    assert_eq!(tenants(&restored), tenants(&copy));
    // Keys come along: the read key works against a server on the restored store.
    let server = Server::start(&restored, &[]);
    let api = Api::new(&server);
    let page = api.get("/v1/events?limit=1", &read).await;
    assert_eq!(page.status, 200, "{}", page.body);
    server.stop();

    // Never overwrite by accident.
    let err = failing(&orig, &["backup", copy.to_str().unwrap()]);
    assert!(err.contains("never overwrites"), "{err}");
    let err = failing(&restored, &["restore", copy.to_str().unwrap()]);
    assert!(err.contains("--replace"), "{err}");
    cli(&restored, &["restore", "--replace", orig.to_str().unwrap()]);
    assert_eq!(requests(&restored), 4_000);
    // Not a store at all: refused before anything is touched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let err = failing(
        &dir.path().join("new.db"),
        &["restore", junk.to_str().unwrap()],
    );
    assert!(
        err.contains("not a database") || err.contains("integrity"),
        "{err}"
    );
}

const DAY_MS: i64 = 86_400_000;
/// A tenant id that must vanish from the store file after its erasure.
const ERASED_TENANT: &str = "erase-me-tenant-q7";

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// Every file of the store (the database, its WAL and shared memory) as bytes.
fn store_bytes(db: &Path) -> Vec<u8> {
    let name = db.file_name().unwrap().to_str().unwrap().to_string();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_str().unwrap().starts_with(&name) {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// One priced call at `ts_ms` with a client-given cost (exact, so totals are sums of
/// these literals).
fn call(id: &str, ts_ms: i64, tenant: &str, user: &str, cost: &str) -> Value {
    let mut e = event(id);
    e["timestamp"] = json!(iso(ts_ms));
    e["tenantId"] = json!(tenant);
    e["userId"] = json!(user);
    e["costUsd"] = json!(cost.parse::<f64>().unwrap());
    e["tags"] = json!({"team": "x"});
    e
}

/// (requests, costUsd) of `top tenants` over the last 30 days, through the API.
async fn tenant_totals(api: &Api, read: &str) -> (Value, Value) {
    let top = api.get("/v1/top/tenants?since=30d", read).await;
    assert_eq!(top.status, 200, "{}", top.body);
    (
        top.body["total"]["requests"].clone(),
        top.body["total"]["costUsd"].clone(),
    )
}

/// Retention by the server's own pass, then erasures through the API and the CLI: old
/// windows keep their totals (the pruned history), event lists say from when raw rows
/// exist, every erasure takes exactly its calls out (raw and pruned), the audit records
/// never hold the id, and the id's bytes are gone from the store file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_erasure_keep_totals_exact_and_leave_no_trace_of_the_erased_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("life.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    cli(
        &db,
        &[
            "workspaces",
            "configure",
            "default",
            "--raw-retention-days",
            "10",
        ],
    );
    let now = jiff::Timestamp::now().as_millisecond();
    let raw_from = (now - 10 * DAY_MS).div_euclid(DAY_MS) * DAY_MS;
    let calls = json!([
        call("old-1", now - 20 * DAY_MS, ERASED_TENANT, "u-1", "0.25"),
        call("old-2", now - 20 * DAY_MS, "keeper", "u-2", "0.50"),
        call("old-3", now - 15 * DAY_MS, ERASED_TENANT, "u-1", "1.00"),
        call("new-1", now - 2 * DAY_MS, ERASED_TENANT, "u-1", "2.00"),
        call("new-2", now - 3_600_000, "keeper", "u-2", "4.00"),
        call(
            "new-3",
            now - 7_200_000,
            "keeper",
            "ann@example.com",
            "8.00"
        ),
    ]);
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let reply = api.post("/v1/ingest/batch", &ingest, &calls).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    // The pass runs 5 s after the start.
    let mut retention = Value::Null;
    for _ in 0..100 {
        retention = api.get("/v1/retention", &read).await.body;
        if !retention["rawFrom"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        retention,
        json!({"rawRetentionDays": 10, "rawFrom": iso(raw_from)})
    );
    // Old windows keep their totals: 0.25 + 0.50 + 1.00 + 2.00 + 4.00 + 8.00.
    assert_eq!(tenant_totals(&api, &read).await, (json!(6), json!(15.75)));
    let summary = api.get("/v1/summary?since=30d", &read).await;
    assert_eq!(
        summary.body["rawFrom"],
        json!(iso(raw_from)),
        "{}",
        summary.body
    );
    // The raw events left are the three recent ones.
    let events = api.get("/v1/events?limit=100", &read).await;
    let ids: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["externalRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new-2", "new-3", "new-1"]);
    let pseudonym = events.body["events"][1]["userId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pseudonym.starts_with("pii_"), "{pseudonym}");
    // A tag query needs raw events, which exist only from raw_from: it says so.
    let tagged = api
        .post(
            "/v1/query",
            &read,
            &json!({"from": iso(now - 30 * DAY_MS), "to": iso(now + 60_000),
                    "filters": {"tag:team": ["x"]}, "measures": ["requests"]}),
        )
        .await;
    assert_eq!(tagged.status, 200, "{}", tagged.body);
    assert_eq!(tagged.body["rawPrunedBefore"], json!(iso(raw_from)));
    assert_eq!(tagged.body["totals"][0]["requests"], json!(3));
    // The dashboard's freshness line says it too.
    let page = common::dashboard_page(&api.url, &read, "/tenants").await;
    assert!(
        page.contains(&format!(r#"data-raw-from="{}""#, iso(raw_from))),
        "{page}"
    );

    // Bad input: a 4xx naming the field.
    let short = api
        .put_json(
            "/v1/workspace/settings",
            &admin,
            &json!({"rawRetentionDays": 3}),
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.body);
    assert!(short.body.to_string().contains("rawRetentionDays"));
    for (body, field) in [
        (json!({}), "tenantId"),
        (json!({"tenantId": "a", "userId": "b"}), "userId"),
        (json!({"tenantId": ""}), "tenantId"),
        (json!({"tenant": "a"}), "tenant"),
    ] {
        let bad = api.post("/v1/erasure", &admin, &body).await;
        assert_eq!(bad.status, 400, "{body}: {}", bad.body);
        assert_eq!(
            common::blamed(&bad.body["error"]["fields"]),
            [field],
            "{body}"
        );
    }
    let not_admin = api
        .post("/v1/erasure", &read, &json!({"tenantId": ERASED_TENANT}))
        .await;
    assert_eq!(not_admin.status, 403, "{}", not_admin.body);

    // A call that names the tenant only in a tag, and five control objects naming it:
    // an id mapping, a plan assignment, a revenue entry, a budget's per-tenant override
    // and a budget of that tenant alone.
    let mut tagged = call("new-4", now - 1_800_000, "keeper", "u-2", "0.125");
    tagged["tags"] = json!({"team": "x", "customer": ERASED_TENANT});
    let reply = api
        .post("/v1/ingest/batch", &ingest, &json!([tagged]))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let posts = [
        (
            "/v1/mappings",
            json!({"dimension": "tenantId", "from": "old-name-q7", "to": ERASED_TENANT}),
        ),
        (
            "/v1/revenue",
            json!({"entries": [
                {"tenantId": ERASED_TENANT, "type": "override", "date": "2026-11-01", "amountUsd": "20"},
                {"tenantId": "keeper", "type": "override", "date": "2026-11-01", "amountUsd": "30"}]}),
        ),
        (
            "/v1/budgets",
            json!({"name": "each", "scope": {"tenantId": "*"}, "period": "month",
                   "limitUsd": 10, "action": "notify",
                   "overrides": {ERASED_TENANT: 50, "keeper": 60}}),
        ),
        (
            "/v1/budgets",
            json!({"name": "one", "scope": {"tenantId": ERASED_TENANT}, "period": "month",
                   "limitUsd": 10, "action": "notify"}),
        ),
    ];
    for (path, body) in posts {
        let r = api.post(path, &admin, &body).await;
        assert!(r.status == 200 || r.status == 201, "{path}: {}", r.body);
    }
    let csv = format!("tenantId,plan\n{ERASED_TENANT},pro\nkeeper,free\n");
    let r = api
        .post_raw("/v1/plans/import", Some(&admin), "text/csv", csv.into())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The guard sees both budgets of the tenant: the one of it alone, and the per-tenant
    // one with its plan and override ($50).
    let limits = || async {
        let answer = api
            .post(
                "/v1/guard",
                &ingest,
                &json!({"endpointTag": "support.reply", "tenantId": ERASED_TENANT,
                        "estimatedCostUsd": 0.01}),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let mut limits: Vec<String> = answer.body["budgets"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", answer.body))
            .iter()
            .map(|b| format!("{}/{}/{}", b["name"], b["plan"], b["limitUsd"]))
            .collect();
        limits.sort();
        limits
    };
    assert_eq!(limits().await, [r#""each"/"pro"/50"#, r#""one"/null/null"#]);

    // Erase the tenant: two raw calls (2.00, and 0.125 by the tag) and two pruned ones
    // (0.25 + 1.00); five objects edited.
    let erased = api
        .post("/v1/erasure", &admin, &json!({"tenantId": ERASED_TENANT}))
        .await;
    assert_eq!(erased.status, 201, "{}", erased.body);
    let record = &erased.body;
    assert_eq!(
        (
            &record["subject"],
            &record["events"],
            &record["prunedHistoryCalls"],
            &record["costUsd"],
            &record["unpriced"],
            &record["objectsEdited"]
        ),
        (
            &json!("tenant"),
            &json!(2),
            &json!(2),
            &json!("3.375"),
            &json!(0),
            &json!(5)
        ),
        "{record}"
    );
    // The server follows at once: only the per-tenant budget is left, without the
    // tenant's plan or override.
    let left = limits().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with(r#""each"/null/"#) && !left[0].ends_with("/50"),
        "{left:?}"
    );
    // What did not name the tenant stays: keeper's plan, revenue and override.
    // Two tenants had plans; keeper keeps "free".
    let plans = api.get("/v1/plans", &admin).await;
    assert_eq!(
        plans.body,
        json!({"plans": [{"plan": "free", "tenants": 1}], "tenants": 1})
    );
    let budgets = api.get("/v1/budgets", &admin).await;
    let budgets_text = budgets.body.to_string();
    assert!(budgets_text.contains("keeper"), "{budgets_text}");
    let revenue = api.get("/v1/revenue?tenantId=keeper", &admin).await;
    assert!(revenue.body.to_string().contains("30"), "{}", revenue.body);
    assert!(!budgets_text.contains("\"one\""), "{budgets_text}");
    for path in [
        "/v1/plans",
        "/v1/budgets",
        "/v1/mappings",
        "/v1/revenue?tenantId=keeper",
    ] {
        let r = api.get(path, &admin).await;
        assert!(
            !r.body.to_string().contains(ERASED_TENANT),
            "{path}: {}",
            r.body
        );
    }
    assert!(!record.to_string().contains(ERASED_TENANT));
    assert_eq!(tenant_totals(&api, &read).await, (json!(3), json!(12.50)));

    // Erase a user by e-mail from the CLI (another process, the server running): the
    // e-mail finds its pseudonym; the server's answers catch up.
    let said = cli(&db, &["erase", "--user", "ann@example.com"]);
    let record: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(
        (
            &record["subject"],
            &record["events"],
            &record["costUsd"],
            &record["by"]
        ),
        (&json!("user"), &json!(1), &json!("8"), &json!("cli")),
        "{record}"
    );
    assert!(!said.contains("ann@") && !said.contains(&pseudonym));
    assert_eq!(tenant_totals(&api, &read).await, (json!(2), json!(4.50)));
    let audit = api.get("/v1/erasure", &admin).await;
    assert_eq!(audit.body["erasures"].as_array().unwrap().len(), 2);
    assert!(!audit.body.to_string().contains(ERASED_TENANT));
    server.stop();

    // Reopened (rollups summed from the file): the same totals; no trace of the ids.
    let top: Value =
        serde_json::from_str(&cli(&db, &["top", "tenants", "--since", "30d", "--json"])).unwrap();
    assert_eq!(
        (&top["total"]["requests"], &top["total"]["costUsd"]),
        (&json!(2), &json!(4.5)),
        "{top}"
    );
    let bytes = store_bytes(&db);
    assert!(
        contains(&bytes, "keeper"),
        "the check can find what is there"
    );
    assert!(
        !contains(&bytes, ERASED_TENANT),
        "the store holds the erased tenant"
    );
    assert!(
        !contains(&bytes, &pseudonym),
        "the store holds the erased pseudonym"
    );
}

/// Free text that mentions an erased id: a budget alert whose title, text, key, link
/// and evidence name a tenant, and a deploy note naming a user. Each erasure replaces
/// the id with `[erased]` in them (counted in `objectsEdited`, what does not mention it
/// stays), and afterwards no byte of the store file holds either id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_replaces_the_id_in_alert_evidence_and_deploy_notes() {
    const TENANT: &str = "erase-me-tenant-t5";
    const USER: &str = "erase-me-user-u5";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("text.db");
    let (ingest, admin) = (key(&db, "default", "ingest"), key(&db, "default", "admin"));
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    // A budget for each tenant of $1: the tenant spends $2 (over its cap), keeper $0.50.
    let budget = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "each", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 1, "action": "notify"}),
        )
        .await;
    assert_eq!(budget.status, 201, "{}", budget.body);
    let now = jiff::Timestamp::now().as_millisecond();
    let calls = json!([
        call("t-1", now - 60_000, TENANT, "u-keep", "2.00"),
        call("t-2", now - 50_000, "keeper", USER, "0.50"),
    ]);
    let reply = api.post("/v1/ingest/batch", &ingest, &calls).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let note = api
        .post(
            "/v1/deploys",
            &ingest,
            &json!({"endpointTag": "support.reply", "promptVersion": "v9",
                    "note": format!("rolled back for {USER} after complaints"),
                    "author": "dana"}),
        )
        .await;
    assert_eq!(note.status, 201, "{}", note.body);
    let evaluated = api.post("/v1/alerts/evaluate", &admin, &json!({})).await;
    assert_eq!(evaluated.status, 200, "{}", evaluated.body);
    let alerts = api.get("/v1/alerts", &admin).await;
    let naming: Vec<&Value> = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a.to_string().contains(TENANT))
        .collect();
    assert_eq!(naming.len(), 1, "{}", alerts.body);
    let alert = naming[0].clone();
    assert_eq!(alert["evidence"]["member"], json!(TENANT), "{alert}");
    assert!(alert["text"].as_str().unwrap().contains(TENANT), "{alert}");

    // The tenant: its call, the alert and the budget's record of the members it told
    // (the member alert cover) are the objects naming it.
    let erased = api
        .post("/v1/erasure", &admin, &json!({"tenantId": TENANT}))
        .await;
    assert_eq!(erased.status, 201, "{}", erased.body);
    assert_eq!(
        (&erased.body["events"], &erased.body["objectsEdited"]),
        (&json!(1), &json!(2)),
        "{}",
        erased.body
    );
    let alerts = api.get("/v1/alerts", &admin).await;
    assert!(!alerts.body.to_string().contains(TENANT), "{}", alerts.body);
    let after = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == alert["id"])
        .unwrap_or_else(|| panic!("{}", alerts.body));
    assert_eq!(after["evidence"]["member"], json!("[erased]"), "{after}");
    // Only the id changed: the same text with the marker in its place.
    let text = alert["text"].as_str().unwrap().replace(TENANT, "[erased]");
    assert_eq!(after["text"], json!(text), "{after}");
    assert_eq!(after["evidence"]["spentUsd"], alert["evidence"]["spentUsd"]);

    // The user: its call and the deploy note mentioning it.
    let erased = api
        .post("/v1/erasure", &admin, &json!({"userId": USER}))
        .await;
    assert_eq!(erased.status, 201, "{}", erased.body);
    assert_eq!(
        (&erased.body["events"], &erased.body["objectsEdited"]),
        (&json!(1), &json!(1)),
        "{}",
        erased.body
    );
    let notes = api.get("/v1/deploys?since=1d", &admin).await;
    assert_eq!(
        notes.body["deploys"].as_array().unwrap().len(),
        1,
        "{}",
        notes.body
    );
    let kept = &notes.body["deploys"][0];
    assert_eq!(
        (&kept["note"], &kept["author"], &kept["promptVersion"]),
        (
            &json!("rolled back for [erased] after complaints"),
            &json!("dana"),
            &json!("v9")
        ),
        "{kept}"
    );
    server.stop();

    let bytes = store_bytes(&db);
    assert!(contains(&bytes, "keeper") && contains(&bytes, "after complaints"));
    assert!(
        !contains(&bytes, TENANT),
        "the store holds the erased tenant"
    );
    assert!(!contains(&bytes, USER), "the store holds the erased user");
}

/// A call of a self-hosted model with no price yet.
fn selfhosted(id: &str, ts_ms: i64, model: &str, input: u64, output: u64) -> Value {
    json!({"externalRequestId": id, "timestamp": iso(ts_ms), "provider": "selfhosted",
           "model": model, "endpointTag": "classify", "tenantId": "acme",
           "inputTokens": input, "outputTokens": output, "status": "success"})
}

/// (costUsd, unpriced) of all models over the last day.
async fn model_totals(api: &Api, read: &str) -> (Value, Value) {
    let top = api.get("/v1/top/models?since=1d", read).await;
    assert_eq!(top.status, 200, "{}", top.body);
    (
        top.body["total"]["costUsd"].clone(),
        top.body["total"]["unpriced"].clone(),
    )
}

/// After an override prices a self-hosted model, `POST /v1/prices/reprice` prices its
/// stored calls exactly (by hand: $0.05 per 1M input, $0.10 per 1M output), totals and
/// a budget's spent move by exactly that, the calls record repricedAt and the entry,
/// and a second run (or priced calls) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repricing_prices_the_unpriced_after_an_override_and_moves_totals_and_budgets_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reprice.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    let server = Server::start(&db, &[]);
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
    let id = budget.body["id"].as_i64().unwrap();
    let spent = || async {
        let status = api.get(&format!("/v1/budgets/{id}/status"), &admin).await;
        status.body["spentUsd"].clone()
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let mut priced = call("p1", now - 60_000, "acme", "u", "1.00");
    priced["tags"] = json!({});
    let calls = json!([
        priced,
        selfhosted("u1", now - 50_000, "acme-llm-7b", 1_000_000, 500_000),
        selfhosted("u2", now - 40_000, "acme-llm-7b", 200_000, 100_000),
        selfhosted("u3", now - 30_000, "other-unknown", 10, 1),
    ]);
    let reply = api.post("/v1/ingest/batch", &ingest, &calls).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(model_totals(&api, &read).await, (json!(1), json!(3)));
    assert_eq!(spent().await, json!(1));

    // Bad input names the field.
    for (body, field) in [
        (json!({}), "unpriced"),
        (json!({"unpriced": false}), "unpriced"),
        (json!({"unpriced": true, "from": "yesterday"}), "from"),
        (json!({"unpriced": true, "model": 7}), "model"),
        (json!({"unpriced": true, "entry": "x"}), "entry"),
    ] {
        let bad = api.post("/v1/prices/reprice", &admin, &body).await;
        assert_eq!(bad.status, 400, "{body}: {}", bad.body);
        assert_eq!(
            common::blamed(&bad.body["error"]["fields"]),
            [field],
            "{body}"
        );
    }

    let overrides = dir.path().join("overrides.json");
    std::fs::write(
        &overrides,
        json!({"format": 1, "kind": "overrides", "corrections": [
            {"provider": "selfhosted", "model": "acme-llm-7b",
             "effectiveFrom": "2026-01-01T00:00:00Z", "mode": "chat",
             "usdPerMTok": [{"tier": "standard", "above": 0, "input": "0.05", "output": "0.10"}]}]})
        .to_string(),
    )
    .unwrap();
    cli(&db, &["prices", "import", overrides.to_str().unwrap()]);
    // The server reloads prices within 2 s; until then nothing can be priced.
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
    // u1: 1.0M x 0.05 + 0.5M x 0.10 = 0.10; u2: 0.2M x 0.05 + 0.1M x 0.10 = 0.02.
    assert_eq!(
        (
            &summary["repriced"],
            &summary["costUsd"],
            &summary["stillUnpriced"]
        ),
        (&json!(2), &json!("0.12"), &json!(1)),
        "{summary}"
    );
    assert_eq!(model_totals(&api, &read).await, (json!(1.12), json!(1)));
    assert_eq!(
        spent().await,
        json!(1.12),
        "the budget counted the new cost"
    );
    let u1 = api.get("/v1/events?externalRequestId=u1", &read).await;
    let u1 = &u1.body["events"][0];
    assert_eq!(u1["costUsd"], json!(0.1), "{u1}");
    assert_eq!(u1["repricedAt"], summary["repricedAt"], "{u1}");
    assert!(
        u1["priceEntryId"].as_str().unwrap().contains("acme-llm-7b"),
        "{u1}"
    );
    let p1 = api.get("/v1/events?externalRequestId=p1", &read).await;
    assert!(p1.body["events"][0].get("repricedAt").is_none());

    // Priced calls are never re-priced: a second run finds only the unknown model.
    let again = cli(&db, &["prices", "reprice", "--unpriced"]);
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (&again["repriced"], &again["stillUnpriced"]),
        (&json!(0), &json!(1)),
        "{again}"
    );
    assert_eq!(model_totals(&api, &read).await, (json!(1.12), json!(1)));
    server.stop();
}

/// Import an override pricing acme-llm-7b at `input` / `output` USD per 1M tokens.
fn import_override(db: &Path, dir: &Path, name: &str, input: &str, output: &str) {
    let file = dir.join(name);
    std::fs::write(
        &file,
        json!({"format": 1, "kind": "overrides", "corrections": [
            {"provider": "selfhosted", "model": "acme-llm-7b",
             "effectiveFrom": "2026-01-01T00:00:00Z", "mode": "chat",
             "usdPerMTok": [{"tier": "standard", "above": 0, "input": input, "output": output}]}]})
        .to_string(),
    )
    .unwrap();
    cli(db, &["prices", "import", file.to_str().unwrap()]);
}

/// A mistyped override priced calls wrongly; after the fixed override is imported,
/// `prices reprice --entry ID` shows what a correction would do and changes nothing,
/// `--confirm` (here `POST /v1/prices/reprice` with confirm) re-prices exactly those
/// calls: totals and a budget's spent move by the difference computed by hand, the calls
/// record repricedAt and their entry, and the audit record is listed by the API and the
/// CLI. A second correction finds nothing to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_correction_reprices_one_entrys_calls_and_leaves_an_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("correct.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    // The mistake: $0.05 / $0.10 per 1M instead of $0.08 / $0.20.
    import_override(&db, dir.path(), "wrong.json", "0.05", "0.10");
    let server = Server::start(&db, &[]);
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
    let id = budget.body["id"].as_i64().unwrap();
    let spent = || async {
        let status = api.get(&format!("/v1/budgets/{id}/status"), &admin).await;
        status.body["spentUsd"].clone()
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let mut other = call("p1", now - 60_000, "acme", "u", "1.00");
    other["tags"] = json!({});
    let calls = json!([
        other,
        selfhosted("c1", now - 50_000, "acme-llm-7b", 1_000_000, 500_000),
        selfhosted("c2", now - 40_000, "acme-llm-7b", 200_000, 100_000),
    ]);
    let reply = api.post("/v1/ingest/batch", &ingest, &calls).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    // c1: 1.0M x 0.05 + 0.5M x 0.10 = 0.10; c2: 0.2M x 0.05 + 0.1M x 0.10 = 0.02.
    assert_eq!(model_totals(&api, &read).await, (json!(1.12), json!(0)));
    assert_eq!(spent().await, json!(1.12));
    let c1 = api.get("/v1/events?externalRequestId=c1", &read).await;
    let entry = c1.body["events"][0]["priceEntryId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(entry.contains("acme-llm-7b"), "{entry}");

    // Bad input names the field.
    for (body, field) in [
        (json!({"entry": ""}), "entry"),
        (json!({"entry": 7}), "entry"),
        (json!({"entry": entry, "confirm": "yes"}), "confirm"),
        (json!({"unpriced": true, "confirm": true}), "confirm"),
        (json!({"entry": entry, "to": "soon"}), "to"),
    ] {
        let bad = api.post("/v1/prices/reprice", &admin, &body).await;
        assert_eq!(bad.status, 400, "{body}: {}", bad.body);
        assert_eq!(
            common::blamed(&bad.body["error"]["fields"]),
            [field],
            "{body}"
        );
    }

    import_override(&db, dir.path(), "fixed.json", "0.08", "0.20");
    // c1: 1.0M x 0.08 + 0.5M x 0.20 = 0.18; c2: 0.2M x 0.08 + 0.1M x 0.20 = 0.036.
    // The server reloads prices within 2 s; the dry run shows the new cost once it did.
    let mut dry = Value::Null;
    for _ in 0..50 {
        let r = api
            .post("/v1/prices/reprice", &admin, &json!({"entry": entry}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        dry = r.body;
        if dry["costAfterUsd"] == json!("0.216") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let shown = |v: &Value| {
        (
            v["repriced"].clone(),
            v["costBeforeUsd"].clone(),
            v["costAfterUsd"].clone(),
            v["differenceUsd"].clone(),
        )
    };
    let expected = (json!(2), json!("0.12"), json!("0.216"), json!("0.096"));
    assert_eq!(shown(&dry), expected, "{dry}");
    assert_eq!((&dry["dryRun"], &dry["id"]), (&json!(true), &Value::Null));
    // The CLI's dry run says the same; neither changed anything.
    let cli_dry: Value =
        serde_json::from_str(&cli(&db, &["prices", "reprice", "--entry", &entry])).unwrap();
    assert_eq!(shown(&cli_dry), expected, "{cli_dry}");
    assert_eq!(model_totals(&api, &read).await, (json!(1.12), json!(0)));
    assert_eq!(spent().await, json!(1.12));
    let none = api.get("/v1/prices/corrections", &admin).await;
    assert_eq!(none.body, json!({"corrections": []}));
    // --confirm without --entry is refused by the CLI.
    failing(&db, &["prices", "reprice", "--unpriced", "--confirm"]);

    let done = api
        .post(
            "/v1/prices/reprice",
            &admin,
            &json!({"entry": entry, "confirm": true}),
        )
        .await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(shown(&done.body), expected, "{}", done.body);
    assert_eq!(done.body["dryRun"], json!(false));
    assert_eq!(model_totals(&api, &read).await, (json!(1.216), json!(0)));
    assert_eq!(
        spent().await,
        json!(1.216),
        "the budget counted the difference"
    );
    let c1 = api.get("/v1/events?externalRequestId=c1", &read).await;
    let c1 = &c1.body["events"][0];
    assert_eq!(c1["costUsd"], json!(0.18), "{c1}");
    assert_eq!(c1["repricedAt"], done.body["at"], "{c1}");
    let p1 = api.get("/v1/events?externalRequestId=p1", &read).await;
    assert!(p1.body["events"][0].get("repricedAt").is_none());

    // The audit record: listed by the API and the CLI, as the commit answered.
    let listed = api.get("/v1/prices/corrections", &admin).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let records = listed.body["corrections"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1, "{}", listed.body);
    assert_eq!(records[0], done.body);
    assert!(records[0]["by"].as_str().unwrap().starts_with("key "));
    let from_cli: Value = serde_json::from_str(&cli(&db, &["prices", "corrections"])).unwrap();
    assert_eq!(from_cli["corrections"], json!(records));

    // Corrected already: a second correction changes nothing.
    let again = api
        .post(
            "/v1/prices/reprice",
            &admin,
            &json!({"entry": entry, "confirm": true}),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body["repriced"], json!(0), "{}", again.body);
    assert_eq!(model_totals(&api, &read).await, (json!(1.216), json!(0)));
    server.stop();
}
