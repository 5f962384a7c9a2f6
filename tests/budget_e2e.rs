//! Budgets and the guard against the real binary: concurrent clients racing for one
//! budget, counters rebuilt after a restart, ingest replies naming budgets, bad input.

mod common;

use common::{blamed, cli, key, Api, Server};
use serde_json::{json, Value};
use std::sync::Arc;

/// A call that costs exactly `cost` (reported by the client for a model with no price).
fn call(id: &str, tenant: &str, cost: &str) -> Value {
    json!({
        "externalRequestId": id, "provider": "selfhosted", "model": "race-model",
        "endpointTag": "support.reply", "tenantId": tenant, "inputTokens": 100,
        "outputTokens": 10, "status": "success", "costUsd": cost.parse::<f64>().unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_racing_for_a_ten_dollar_budget_never_overshoot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("race.db");
    cli(&db, &["workspaces", "list"]);
    let admin = key(&db, "default", "admin");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &[]);
    let api = Arc::new(Api::new(&server));
    let created = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "acme cap", "scope": {"tenantId": "acme"}, "period": "month",
                    "limitUsd": 10, "action": "block", "thresholds": [50, 80]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();

    let mut clients = Vec::new();
    for c in 0..50 {
        let (api, ingest) = (api.clone(), ingest.clone());
        clients.push(tokio::spawn(async move {
            let mut allowed = 0;
            for n in 0.. {
                let rid = format!("c{c}-{n}");
                let answer = api
                    .post(
                        "/v1/guard",
                        &ingest,
                        &json!({"endpointTag": "support.reply", "tenantId": "acme",
                                "estimatedCostUsd": 0.01, "externalRequestId": rid}),
                    )
                    .await;
                assert_eq!(answer.status, 200, "{}", answer.body);
                if answer.body["allow"] != json!(true) {
                    assert_eq!(answer.body["reason"], "budget_exceeded");
                    break;
                }
                allowed += 1;
                let stored = api
                    .post(
                        "/v1/ingest/llm-request",
                        &ingest,
                        &call(&rid, "acme", "0.01"),
                    )
                    .await;
                assert_eq!(stored.status, 202, "{}", stored.body);
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for c in clients {
        allowed += c.await.unwrap();
    }
    // Each allowed call reserved $0.01 before spending it: exactly $10 worth got through.
    assert_eq!(allowed, 1000);
    let status = api.get(&format!("/v1/budgets/{id}/status"), &admin).await;
    assert_eq!(
        status.body["spentUsd"].as_f64(),
        Some(10.0),
        "{}",
        status.body
    );
    assert_eq!(status.body["reservedUsd"], json!(0));
    assert_eq!(status.body["state"], "exceeded");

    // After a restart the counters are rebuilt from the store: still exceeded, still denied.
    server.kill();
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let status = api.get(&format!("/v1/budgets/{id}/status"), &admin).await;
    assert_eq!(
        status.body["spentUsd"].as_f64(),
        Some(10.0),
        "{}",
        status.body
    );
    let answer = api
        .post(
            "/v1/guard",
            &ingest,
            &json!({"endpointTag": "support.reply", "tenantId": "acme", "estimatedCostUsd": 0.01}),
        )
        .await;
    assert_eq!(answer.body["allow"], json!(false));
    assert!(answer.body["retryAfterSeconds"].as_u64().unwrap() > 0);
    // Another tenant is outside the budget's scope.
    let other = api
        .post(
            "/v1/guard",
            &ingest,
            &json!({"endpointTag": "support.reply", "tenantId": "zeta", "estimatedCostUsd": 0.01}),
        )
        .await;
    assert_eq!(other.body["allow"], json!(true));
}

#[tokio::test]
async fn ingest_replies_name_the_budgets_at_warning_and_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    cli(&db, &["workspaces", "list"]);
    let admin = key(&db, "default", "admin");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let day = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "day", "period": "day", "limitUsd": 1, "thresholds": [50]}),
        )
        .await;
    let other = api
        .post("/v1/budgets", &admin, &json!({"name": "beta only", "period": "day", "limitUsd": 1, "scope": {"tenantId": "beta"}}))
        .await;
    let (day, other) = (day.body["id"].clone(), other.body["id"].clone());
    let r = api
        .post("/v1/ingest/llm-request", &admin, &call("a", "acme", "0.2"))
        .await;
    assert_eq!(r.body["budget"], json!({"warning": [], "exceeded": []}));
    let r = api
        .post("/v1/ingest/llm-request", &admin, &call("b", "acme", "0.4"))
        .await;
    assert_eq!(r.body["budget"], json!({"warning": [day], "exceeded": []}));
    let r = api
        .post(
            "/v1/ingest/batch",
            &admin,
            &json!([call("c", "acme", "0.5")]),
        )
        .await;
    assert_eq!(r.body["budget"], json!({"warning": [], "exceeded": [day]}));
    // A duplicate touches nothing.
    let r = api
        .post("/v1/ingest/llm-request", &admin, &call("c", "acme", "0.5"))
        .await;
    assert_eq!(r.body["duplicates"], json!(1));
    assert_eq!(r.body["budget"], json!({"warning": [], "exceeded": []}));
    let status = api
        .get(&format!("/v1/budgets/{other}/status"), &admin)
        .await;
    assert_eq!(status.body["spentUsd"], json!(0));
    // Test traffic never spends a real budget.
    let mut test_call = call("t", "acme", "5");
    test_call["dataMode"] = json!("test");
    api.post("/v1/ingest/llm-request", &admin, &test_call).await;
    let status = api.get(&format!("/v1/budgets/{day}/status"), &admin).await;
    assert_eq!(status.body["spentUsd"], json!(1.1));
}

#[tokio::test]
async fn bad_budget_and_guard_input_is_a_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    cli(&db, &["workspaces", "list"]);
    let admin = key(&db, "default", "admin");
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let cases = [
        (
            json!({"name": "x", "period": "day", "limitUsd": -3}),
            "limitUsd",
        ),
        (
            json!({"name": "x", "period": "day", "limitUsd": 3, "scope": {"colour": "red"}}),
            "scope.colour",
        ),
        (
            json!({"name": "x", "period": "dya", "limitUsd": 3}),
            "period",
        ),
        (
            json!({"name": "x", "period": "day", "limitUsd": 3, "thresholds": [101]}),
            "thresholds[0]",
        ),
    ];
    for (body, field) in cases {
        let r = api.post("/v1/budgets", &admin, &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(blamed(&r.body["error"]["fields"]), vec![field.to_string()]);
    }
    let r = api
        .post(
            "/v1/budgets",
            &read,
            &json!({"name": "x", "period": "day", "limitUsd": 3}),
        )
        .await;
    assert_eq!(r.status, 403, "a read key cannot create budgets");
    let r = api
        .post(
            "/v1/guard",
            &admin,
            &json!({"tenantId": "a", "estimatedCostUsd": -1}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        vec!["endpointTag", "estimatedCostUsd"]
    );
    let r = api.get("/v1/budgets/999/status", &admin).await;
    assert_eq!(r.status, 404);
    let r = api.get("/v1/budgets/abc/status", &admin).await;
    assert_eq!(r.status, 400);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["id"]);
}

/// `estimatedCostUsd: 9223372036` was accepted and, on a budget with the largest limit,
/// reserved: the next call's spent + reserved + estimate wrapped negative and was allowed.
/// An estimate is now at most $10,000 (the ceiling of one call's costUsd).
#[tokio::test]
async fn guard_estimate_that_would_overflow_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    cli(&db, &["workspaces", "list"]);
    let admin = key(&db, "default", "admin");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let created = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "huge", "period": "month", "action": "block",
                    "limitUsd": "9223372036.854775807"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let guard = |estimate: Value, id: &str| {
        let body = json!({"endpointTag": "support.reply", "estimatedCostUsd": estimate,
                          "externalRequestId": id});
        let (api, ingest) = (&api, &ingest);
        async move { api.post("/v1/guard", ingest, &body).await }
    };
    for (n, estimate) in [
        json!(9223372036u64),
        json!(9223372036.5f64),
        json!(10000.000000001f64),
        json!(1e300),
    ]
    .into_iter()
    .enumerate()
    {
        let r = guard(estimate.clone(), &format!("big-{n}")).await;
        assert_eq!(r.status, 400, "{estimate}: {}", r.body);
        assert_eq!(blamed(&r.body["error"]["fields"]), vec!["estimatedCostUsd"]);
        assert!(
            r.body["error"]["fields"][0]["message"]
                .as_str()
                .unwrap()
                .contains("10000"),
            "{}",
            r.body
        );
    }
    // The ceiling itself is fine, and it is held exactly (read as text: f64 would not).
    let raw_guard = |estimate: u64, id: &str| {
        let body = json!({"endpointTag": "support.reply", "estimatedCostUsd": estimate,
                          "externalRequestId": id});
        let (api, ingest) = (&api, &ingest);
        async move {
            let resp = api
                .http
                .post(format!("{}/v1/guard", api.url))
                .header("X-API-Key", ingest.as_str())
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    let text = raw_guard(10_000, "max").await;
    assert!(text.contains(r#""allow":true"#), "{text}");
    assert!(text.contains(r#""reserved":true"#), "{text}");
    assert!(
        text.contains(r#""remaining":9223372036.854775807"#),
        "{text}"
    );
    // Nothing wrapped: the next call sees the true sum of what is reserved.
    let text = raw_guard(1, "small").await;
    assert!(text.contains(r#""allow":true"#), "{text}");
    assert!(
        text.contains(r#""remaining":9223362036.854775807"#),
        "{text}"
    );
}

/// The Rust SDK's guard() against the real server: allowed, then denied once spent.
#[tokio::test]
async fn the_rust_sdk_guard_reads_the_server_answer() {
    use burnrate_client::{Client, GuardRequest};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sdk.db");
    cli(&db, &["workspaces", "list"]);
    let admin = key(&db, "default", "admin");
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let created = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "sdk", "period": "day", "limitUsd": 1, "action": "block",
              "scope": {"endpointTag": "support.reply"}}),
        )
        .await;
    let id = created.body["id"].as_i64().unwrap().to_string();
    let client = Client::new(server.url.clone(), ingest.clone());
    let ask = || {
        GuardRequest::new("support.reply")
            .tenant_id("acme")
            .estimated_cost_usd(0.4)
    };
    let first = client.guard(ask()).await.unwrap();
    assert!(first.allow);
    assert_eq!(first.budgets[0].id, id);
    assert_eq!(first.budgets[0].remaining, Some(1.0));
    api.post(
        "/v1/ingest/llm-request",
        &ingest,
        &call("sdk-1", "acme", "0.9"),
    )
    .await;
    let denied = client.guard(ask()).await.unwrap();
    assert!(!denied.allow);
    assert_eq!(denied.reason.as_deref(), Some("budget_exceeded"));
    assert!(denied.retry_after().unwrap().as_secs() > 0);
    assert!((denied.budgets[0].remaining.unwrap() - 0.1).abs() < 1e-9);
}

/// A server over a new store with an admin and an ingest key of `default`.
struct Fixture {
    dir: tempfile::TempDir,
    db: std::path::PathBuf,
    admin: String,
    ingest: String,
    server: Server,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    cli(&db, &["workspaces", "list"]);
    let (admin, ingest) = (key(&db, "default", "admin"), key(&db, "default", "ingest"));
    let server = Server::start(&db, &[]);
    Fixture {
        dir,
        db,
        admin,
        ingest,
        server,
    }
}

/// A month budget of $10 on one tenant; its id.
async fn tenant_budget(api: &Api, admin: &str, tenant: &str, action: &str) -> i64 {
    let created = api
        .post(
            "/v1/budgets",
            admin,
            &json!({"name": tenant, "scope": {"tenantId": tenant}, "period": "month",
                    "limitUsd": 10, "action": action}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_i64().unwrap()
}

/// What a budget's status says is spent.
async fn spent_usd(api: &Api, admin: &str, id: i64) -> f64 {
    let status = api.get(&format!("/v1/budgets/{id}/status"), admin).await;
    status.body["spentUsd"].as_f64().unwrap()
}

/// Spend committed by another process (a CLI import into the same file while the server
/// runs) reaches the server's counters through the store's commit sequence, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_imported_by_another_process_reaches_the_running_budget() {
    let f = fixture();
    let api = Api::new(&f.server);
    let id = tenant_budget(&api, &f.admin, "acme", "block").await;
    // $1 through the server itself: counted at once.
    let stored = api
        .post(
            "/v1/ingest/llm-request",
            &f.ingest,
            &call("own-1", "acme", "1"),
        )
        .await;
    assert_eq!(stored.status, 202, "{}", stored.body);
    // $3 through `burnrate import`, a second process writing the same file.
    let file = f.dir.path().join("calls.ndjson");
    let lines: Vec<String> = (0..3)
        .map(|i| call(&format!("imported-{i}"), "acme", "1").to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    cli(&f.db, &["import", file.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while spent_usd(&api, &f.admin, id).await != 4.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the import's $3 never reached the counters: {}",
            spent_usd(&api, &f.admin, id).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // And it stays exact: one more own call counts once on top.
    api.post(
        "/v1/ingest/llm-request",
        &f.ingest,
        &call("own-2", "acme", "1"),
    )
    .await;
    assert_eq!(spent_usd(&api, &f.admin, id).await, 5.0);
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    assert_eq!(
        spent_usd(&api, &f.admin, id).await,
        5.0,
        "a refresh must not count anything twice"
    );
}

/// A retry that names another tenant and replaces the stored attempt moves the call's
/// cost at once: the first tenant's budget gives it back, the second's takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacing_retry_under_another_tenant_moves_the_cost_between_budgets() {
    let f = fixture();
    let api = Api::new(&f.server);
    let alpha = tenant_budget(&api, &f.admin, "alpha", "notify").await;
    let beta = tenant_budget(&api, &f.admin, "beta", "notify").await;
    let spent = || async {
        (
            spent_usd(&api, &f.admin, alpha).await,
            spent_usd(&api, &f.admin, beta).await,
        )
    };
    // Attempt 1 fails after using tokens, billed to alpha.
    let mut first = call("moved-1", "alpha", "1");
    first["status"] = json!("error");
    first["errorCode"] = json!("timeout");
    let stored = api.post("/v1/ingest/llm-request", &f.ingest, &first).await;
    assert_eq!(stored.status, 202, "{}", stored.body);
    assert_eq!(spent().await, (1.0, 0.0));
    // Attempt 2 succeeds and replaces it, under beta.
    let mut second = call("moved-1", "beta", "2");
    second["attempt"] = json!(2);
    let stored = api.post("/v1/ingest/llm-request", &f.ingest, &second).await;
    assert_eq!(stored.status, 202, "{}", stored.body);
    assert_eq!(spent().await, (0.0, 2.0));
}

/// A month budget of $10 for each tenant, blocking; its id.
async fn each_tenant_budget(api: &Api, admin: &str, overrides: Value) -> i64 {
    let created = api
        .post(
            "/v1/budgets",
            admin,
            &json!({"name": "each tenant", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 10, "action": "block", "overrides": overrides}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["scope"]["tenantId"], "*");
    created.body["id"].as_i64().unwrap()
}

/// The guard's answer for `tenant` asking to spend `estimate`, without reserving it.
async fn guard_for(api: &Api, key: &str, tenant: &str, estimate: f64) -> Value {
    let answer = api
        .post(
            "/v1/guard",
            key,
            &json!({"endpointTag": "support.reply", "tenantId": tenant,
                    "estimatedCostUsd": estimate}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

/// What one member of a per-member budget has spent, read from the guard's position.
async fn member_spent(api: &Api, key: &str, tenant: &str) -> f64 {
    let answer = guard_for(api, key, tenant, 0.0).await;
    let position = &answer["budgets"][0];
    assert_eq!(position["member"], tenant, "{answer}");
    let limit = position["limitUsd"].as_f64().unwrap();
    ((limit - position["remaining"].as_f64().unwrap()) * 1e6).round() / 1e6
}

async fn ingest(api: &Api, key: &str, body: &Value) {
    let stored = api.post("/v1/ingest/llm-request", key, body).await;
    assert_eq!(stored.status, 202, "{}", stored.body);
}

/// `tenantId: "*"` was refused (a stopgap); now it is a $10 cap for each tenant on its
/// own: one tenant over it is blocked with the quota's reason and reset time while
/// another passes, and a tenant first seen after the budget was made has its own cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_budget_caps_each_tenant_separately_including_a_new_one() {
    let f = fixture();
    let api = Api::new(&f.server);
    each_tenant_budget(&api, &f.admin, json!({"acme": 25})).await;
    ingest(&api, &f.ingest, &call("a-1", "alpha", "9.5")).await;
    ingest(&api, &f.ingest, &call("b-1", "beta", "2")).await;
    let alpha = guard_for(&api, &f.ingest, "alpha", 1.0).await;
    assert_eq!(alpha["allow"], false, "{alpha}");
    assert_eq!(alpha["reason"], "tenant_quota_exceeded");
    assert_eq!(alpha["quota"]["member"], "alpha");
    assert_eq!(alpha["quota"]["dimension"], "tenantId");
    assert_eq!(alpha["quota"]["limitUsd"].as_f64(), Some(10.0));
    let resets = alpha["quota"]["resetsAt"].as_str().unwrap();
    assert!(
        resets.ends_with("-01T00:00:00Z"),
        "the month's end: {resets}"
    );
    assert!(alpha["quota"]["message"].as_str().unwrap().contains("$10"));
    let beta = guard_for(&api, &f.ingest, "beta", 1.0).await;
    assert_eq!(beta["allow"], true, "{beta}");
    assert_eq!(beta["budgets"][0]["remaining"].as_f64(), Some(8.0));
    // A tenant nobody named before: capped at $10 of its own.
    ingest(&api, &f.ingest, &call("n-1", "newco", "10")).await;
    let newco = guard_for(&api, &f.ingest, "newco", 0.01).await;
    assert_eq!(newco["reason"], "tenant_quota_exceeded", "{newco}");
    // acme's override: $25.
    ingest(&api, &f.ingest, &call("c-1", "acme", "20")).await;
    let acme = guard_for(&api, &f.ingest, "acme", 1.0).await;
    assert_eq!(acme["allow"], true, "{acme}");
    assert_eq!(acme["budgets"][0]["limitUsd"].as_f64(), Some(25.0));
}

/// Member spend comes back exactly after a restart (one grouped read) and a retry that
/// replaces an attempt under another tenant moves its cost between the two members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_spend_reloads_exactly_and_follows_a_retry_to_another_tenant() {
    let f = fixture();
    let api = Api::new(&f.server);
    each_tenant_budget(&api, &f.admin, json!({})).await;
    let mut first = call("moved-1", "alpha", "1");
    first["status"] = json!("error");
    first["errorCode"] = json!("timeout");
    ingest(&api, &f.ingest, &first).await;
    ingest(&api, &f.ingest, &call("kept-1", "alpha", "0.25")).await;
    assert_eq!(member_spent(&api, &f.ingest, "alpha").await, 1.25);
    let mut second = call("moved-1", "beta", "2");
    second["attempt"] = json!(2);
    ingest(&api, &f.ingest, &second).await;
    assert_eq!(member_spent(&api, &f.ingest, "alpha").await, 0.25);
    assert_eq!(member_spent(&api, &f.ingest, "beta").await, 2.0);
    let Fixture {
        dir,
        db,
        admin,
        ingest: key,
        server,
    } = f;
    server.kill();
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    assert_eq!(member_spent(&api, &key, "alpha").await, 0.25);
    assert_eq!(member_spent(&api, &key, "beta").await, 2.0);
    assert_eq!(member_spent(&api, &key, "gamma").await, 0.0);
    drop((dir, admin));
}

/// A per-member budget's status lists the members over and near their caps, most over
/// first, a page at a time; never every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pages_the_members_over_and_near_their_caps() {
    let f = fixture();
    let api = Api::new(&f.server);
    let id = each_tenant_budget(&api, &f.admin, json!({"acme": 40})).await;
    let spend = [
        ("t1", "12"),
        ("t2", "9"),
        ("t3", "1"),
        ("acme", "36"),
        ("t4", "20"),
    ];
    for (tenant, cost) in spend {
        ingest(&api, &f.ingest, &call(&format!("{tenant}-1"), tenant, cost)).await;
    }
    let path = format!("/v1/budgets/{id}/status?membersLimit=2");
    let first = api.get(&path, &f.admin).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let members = &first.body["members"];
    assert_eq!(
        (&members["count"], &members["over"], &members["near"]),
        (&json!(5), &json!(2), &json!(2)),
        "{members}"
    );
    let names = |m: &Value| -> Vec<String> {
        let page = m["page"].as_array().unwrap();
        page.iter()
            .map(|p| p["member"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(members), vec!["t4", "t1"]);
    assert_eq!(members["page"][0]["usedPct"].as_f64(), Some(200.0));
    assert_eq!(first.body["state"], "exceeded");
    let next = members["nextOffset"].as_u64().unwrap();
    let path = format!("/v1/budgets/{id}/status?membersLimit=2&membersOffset={next}");
    let second = api.get(&path, &f.admin).await;
    assert_eq!(
        names(&second.body["members"]),
        vec!["acme", "t2"],
        "equal shares: more spend first"
    );
    assert_eq!(second.body["members"]["nextOffset"], Value::Null);
    let bad = api
        .get(&format!("/v1/budgets/{id}/status?membersLimit=0"), &f.admin)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(blamed(&bad.body["error"]["fields"]), vec!["membersLimit"]);
    // The CLI, from the database alone: the same counts and the worst first.
    let shown = cli(&f.db, &["budgets", "status", &id.to_string()]);
    let summary = format!("budget {id} is per member: 5 members, 2 over their cap, 2 near it");
    assert!(shown.contains(&summary), "{shown}");
    let (t4, t1) = (
        shown.find("  t4: $20 of $10 (200.0%), exceeded"),
        shown.find("  t1: $12 of $10"),
    );
    assert!(t4.is_some() && t4 < t1, "{shown}");
}

/// Plans set by CSV import (API), one by one (API) and by the CLI in another process:
/// a tenant's override beats its plan's limit, which beats the budget's default; a plan
/// without a limit leaves its tenants uncapped; the guard names the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_beats_the_plan_which_beats_the_default() {
    let f = fixture();
    let api = Api::new(&f.server);
    let created = api
        .post(
            "/v1/budgets",
            &f.admin,
            &json!({"name": "by plan", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 10, "action": "block", "overrides": {"acme": 500},
                    "planLimits": {"free": 1, "pro": 50, "enterprise": null}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let csv = "tenantId,plan\nacme,free\nf1,free\np1,pro\ne1,enterprise\n";
    let imported = api
        .post_raw(
            "/v1/plans/import",
            Some(&f.admin),
            "text/csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert_eq!(imported.body["assigned"], 4);
    let free = guard_for(&api, &f.ingest, "f1", 2.0).await;
    assert_eq!(free["reason"], "tenant_quota_exceeded", "{free}");
    assert_eq!(free["quota"]["plan"], "free");
    assert_eq!(free["quota"]["limitUsd"].as_f64(), Some(1.0));
    let acme = guard_for(&api, &f.ingest, "acme", 100.0).await;
    assert_eq!(
        acme["allow"], true,
        "the override beats the free plan: {acme}"
    );
    let pro = guard_for(&api, &f.ingest, "p1", 40.0).await;
    assert_eq!(pro["budgets"][0]["limitUsd"].as_f64(), Some(50.0), "{pro}");
    assert_eq!(pro["budgets"][0]["plan"], "pro");
    let enterprise = guard_for(&api, &f.ingest, "e1", 9000.0).await;
    assert_eq!(enterprise["allow"], true, "{enterprise}");
    assert_eq!(enterprise["budgets"], json!([]));
    let nobody = guard_for(&api, &f.ingest, "nobody", 11.0).await;
    assert_eq!(
        nobody["reason"], "tenant_quota_exceeded",
        "the default: {nobody}"
    );
    // Off its plan: the default $10 again.
    let put = api
        .put_json("/v1/plans/tenants/f1", &f.admin, &json!({"plan": null}))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(guard_for(&api, &f.ingest, "f1", 2.0).await["allow"], true);
    // The CLI, another process: the running server picks it up on its reload.
    cli(&f.db, &["plans", "set", "nobody", "pro"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while guard_for(&api, &f.ingest, "nobody", 11.0).await["allow"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "the CLI's plan never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let plans = api.get("/v1/plans", &f.admin).await;
    assert_eq!(plans.body["tenants"], 4, "{}", plans.body);
    assert_eq!(
        plans.body["plans"],
        json!([{"plan": "enterprise", "tenants": 1}, {"plan": "free", "tenants": 1},
               {"plan": "pro", "tenants": 2}])
    );
    let one = api.get("/v1/plans/tenants/p1", &f.admin).await;
    assert_eq!(one.body, json!({"tenantId": "p1", "plan": "pro"}));
    let bad = api
        .post_raw(
            "/v1/plans/import",
            Some(&f.admin),
            "text/csv",
            b"tenantId,plan\nx\n".to_vec(),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(blamed(&bad.body["error"]["fields"]), vec!["line 2"]);
    let listed = cli(&f.db, &["plans", "list"]);
    assert!(listed.contains("pro\t2 tenants"), "{listed}");
}

/// In a workspace that pseudonymizes personal ids (the default), an override and a plan
/// naming a tenant by e-mail address find that tenant, whose calls and guard requests are
/// stored and counted under its pseudonym; neither the stored budget nor a reply shows
/// the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_and_plans_naming_a_personal_tenant_find_its_pseudonym() {
    let f = fixture();
    let api = Api::new(&f.server);
    let created = api
        .post(
            "/v1/budgets",
            &f.admin,
            &json!({"name": "by plan", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 10, "action": "block",
                    "overrides": {"Bob@Example.com": 500}, "planLimits": {"free": 1}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        !created.body.to_string().contains("xample.com"),
        "{}",
        created.body
    );
    let csv = "tenantId,plan\ncarol@example.com,free\n";
    let imported = api
        .post_raw(
            "/v1/plans/import",
            Some(&f.admin),
            "text/csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let bob = guard_for(&api, &f.ingest, "bob@example.com", 100.0).await;
    assert_eq!(bob["allow"], true, "bob's override of $500: {bob}");
    let carol = guard_for(&api, &f.ingest, "carol@example.com", 2.0).await;
    assert_eq!(carol["reason"], "tenant_quota_exceeded", "{carol}");
    assert_eq!(carol["quota"]["plan"], "free", "{carol}");
    for answer in [&bob, &carol] {
        assert!(!answer.to_string().contains("xample.com"), "{answer}");
    }
    let plan = api
        .get("/v1/plans/tenants/carol@example.com", &f.admin)
        .await;
    assert_eq!(plan.body["plan"], "free", "{}", plan.body);
}
