//! Id mappings through the real binary (docs/mappings.md): history under an old
//! endpointTag and new events under the new one group together in top lists and time
//! series with the exact sum; a filter on the new tenant finds the old events (in the
//! event list too); effectiveFrom (truncated to the hour) splits history; a prefix rule
//! and the missing-value label make service accounts and anonymous traffic named
//! buckets in Top Users; cycles and second rules are refused naming the field; removing
//! a mapping restores the stored grouping; the CLI adds, lists and removes.

mod common;

use common::{blamed, cli, key, Api, Server};
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;
const NANO: i64 = 1_000_000_000;

fn at(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// Nano-USD from a JSON money number's exact decimal text.
fn nanos(v: &Value) -> i64 {
    let text = v.to_string();
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = format!("{frac:0<9}");
    whole.parse::<i64>().unwrap() * NANO + frac[..9].parse::<i64>().unwrap()
}

/// One call costing `cost` nano-USD (sent as exact decimal text).
fn call(id: &str, t: i64, endpoint: &str, tenant: &str, user: Option<&str>, cost: i64) -> Value {
    let mut e = json!({"externalRequestId": id, "provider": "openai", "model": "gpt-4o-mini",
        "endpointTag": endpoint, "tenantId": tenant, "inputTokens": 100, "outputTokens": 10,
        "status": "success", "timestamp": at(t),
        "costUsd": serde_json::from_str::<Value>(&format!("{}.{:09}", cost / NANO, cost % NANO)).unwrap()});
    if let Some(u) = user {
        e["userId"] = json!(u);
    }
    e
}

/// The cost and requests of each row of a top list, by its group value.
fn rows(report: &Value, dim: &str) -> Vec<(String, i64, u64)> {
    let mut out: Vec<(String, i64, u64)> = report["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|r| {
            (
                r["group"][dim].as_str().unwrap().to_string(),
                nanos(&r["costUsd"]),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn ids(page: &Value) -> Vec<String> {
    let mut ids: Vec<String> = page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|e| e["externalRequestId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn mappings_regroup_history_filter_split_by_time_and_bucket_service_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let now = jiff::Timestamp::now().as_millisecond();
    let hour = now - now.rem_euclid(HOUR);
    // The tenant merge starts at 10:25 of the hour ten hours ago: truncated to 10:00.
    let split_hour = hour - 10 * HOUR;
    let c = |n: i64| n * 1_000_000; // thousandths of a dollar, in nano-USD
    let events = vec![
        // History under the old endpoint name, new events under the new one.
        call(
            "old-1",
            hour - 30 * HOUR,
            "support_reply",
            "acme",
            Some("alice"),
            c(10),
        ),
        call(
            "old-2",
            hour - 29 * HOUR,
            "support_reply",
            "acme",
            Some("bob"),
            c(20),
        ),
        call(
            "old-3",
            hour - 28 * HOUR,
            "support_reply",
            "acme",
            None,
            c(30),
        ),
        call(
            "new-1",
            hour - 2 * HOUR,
            "support.reply",
            "acme",
            Some("alice"),
            c(5),
        ),
        call(
            "new-2",
            hour - HOUR,
            "support.reply",
            "acme",
            Some("svc:batch"),
            c(7),
        ),
        // globex-eu merges into globex from split_hour on.
        call(
            "eu-before",
            split_hour - 5 * HOUR,
            "chat",
            "globex-eu",
            Some("svc:etl"),
            c(100),
        ),
        call(
            "eu-same-hour",
            split_hour + 10 * 60_000,
            "chat",
            "globex-eu",
            None,
            c(50),
        ),
        call(
            "eu-after",
            split_hour + 5 * HOUR,
            "chat",
            "globex-eu",
            Some("carol"),
            c(200),
        ),
        call(
            "globex",
            hour - 3 * HOUR,
            "chat",
            "globex",
            Some("svc:batch"),
            c(400),
        ),
    ];
    let r = api.post("/v1/ingest/batch", &ingest, &json!(events)).await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Bad mappings: every field named; a read key cannot write.
    let bad = api
        .put_json(
            "/v1/mappings",
            &admin,
            &json!({"dimension": "model", "from": "", "to": "x*", "effectiveFrom": "soon", "colour": 1}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(
        blamed(&bad.body["error"]["fields"]),
        vec!["colour", "dimension", "from", "to", "effectiveFrom"]
    );
    let denied = api
        .put_json(
            "/v1/mappings",
            &read,
            &json!({"dimension": "tenantId", "from": "a", "to": "b"}),
        )
        .await;
    assert_eq!(denied.status, 403);

    let add = |body: Value| {
        let api = &api;
        let admin = &admin;
        async move { api.put_json("/v1/mappings", admin, &body).await }
    };
    let endpoint = add(json!({"dimension": "endpointTag", "from": "support_reply",
                              "to": "support.reply", "note": "renamed in v2"}))
    .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let tenant = add(
        json!({"dimension": "tenantId", "from": "globex-eu", "to": "globex",
                            "effectiveFrom": at(split_hour + 25 * 60_000)}),
    )
    .await;
    assert_eq!(tenant.status, 201, "{}", tenant.body);
    assert_eq!(tenant.body["effectiveFrom"], json!(at(split_hour)));
    for rule in [
        json!({"dimension": "userId", "from": "svc:*", "to": "service-accounts"}),
        json!({"dimension": "userId", "from": "unknown", "to": "anonymous"}),
    ] {
        let r = add(rule).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // A cycle names `to`; a second rule for one value names `from`; a prefix rule whose
    // target matches its own prefix is a cycle too.
    let cycle = add(json!({"dimension": "tenantId", "from": "globex", "to": "globex-eu"})).await;
    assert_eq!(cycle.status, 400, "{}", cycle.body);
    assert_eq!(blamed(&cycle.body["error"]["fields"]), vec!["to"]);
    let again = add(json!({"dimension": "tenantId", "from": "globex-eu", "to": "other"})).await;
    assert_eq!(blamed(&again.body["error"]["fields"]), vec!["from"]);
    let own = add(json!({"dimension": "userId", "from": "bot-*", "to": "bot-all"})).await;
    assert_eq!(blamed(&own.body["error"]["fields"]), vec!["to"]);
    let listed = api.get("/v1/mappings", &read).await;
    assert_eq!(listed.body["mappings"].as_array().unwrap().len(), 4);

    // Top endpoints: one row for support.reply, the exact sum of old and new calls.
    let window = "since=48h";
    let top = api
        .get(&format!("/v1/top/endpoints?{window}"), &read)
        .await
        .body;
    assert_eq!(
        rows(&top, "endpointTag"),
        vec![
            ("chat".into(), c(100 + 50 + 200 + 400), 4),
            ("support.reply".into(), c(10 + 20 + 30 + 5 + 7), 5),
        ]
    );
    assert_eq!(nanos(&top["total"]["costUsd"]), c(822));
    // `burnrate top` (the CLI reading the file) agrees with the API.
    let cli_top: Value =
        serde_json::from_str(&cli(&db, &["top", "endpoints", "--since", "48h", "--json"])).unwrap();
    assert_eq!(rows(&cli_top, "endpointTag"), rows(&top, "endpointTag"));

    // The time series by endpoint has one support.reply series whose days add up.
    let series = api
        .get(
            &format!("/v1/timeseries?{window}&bucket=day&by=endpointTag"),
            &read,
        )
        .await
        .body;
    let keys: Vec<&str> = series["series"]
        .as_array()
        .unwrap_or_else(|| panic!("{series}"))
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert!(!keys.contains(&"support_reply"), "{keys:?}");
    let support = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "support.reply")
        .unwrap();
    let sum: i64 = support["costUsd"]
        .as_array()
        .unwrap()
        .iter()
        .map(nanos)
        .sum();
    assert_eq!(sum, c(72));

    // Tenants: globex-eu before the split stays itself; from the split hour on (10:10
    // included, though the rule said 10:25) it is globex.
    let tenants = api
        .get(&format!("/v1/top/tenants?{window}"), &read)
        .await
        .body;
    assert_eq!(
        rows(&tenants, "tenantId"),
        vec![
            ("acme".into(), c(72), 5),
            ("globex".into(), c(50 + 200 + 400), 3),
            ("globex-eu".into(), c(100), 1),
        ]
    );
    // A filter on the new tenant finds the old events, in aggregates and the event list.
    let filtered = api
        .get(
            &format!("/v1/top/endpoints?{window}&tenantId=globex"),
            &read,
        )
        .await
        .body;
    assert_eq!(
        rows(&filtered, "endpointTag"),
        vec![("chat".into(), c(650), 3)]
    );
    // The tenant page of globex shows the merged spend ($0.65) and its requests.
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", api.url))
        .form(&[("key", read.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let tenant_page = api
        .http
        .get(format!("{}/tenant?tenantId=globex&range=7d", api.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(tenant_page.contains("$0.65"), "{tenant_page}");
    let page = api
        .get(&format!("/v1/events?{window}&tenantId=globex"), &read)
        .await
        .body;
    assert_eq!(ids(&page), vec!["eu-after", "eu-same-hour", "globex"]);
    let old = api
        .get(&format!("/v1/events?{window}&tenantId=globex-eu"), &read)
        .await
        .body;
    assert_eq!(ids(&old), vec!["eu-before"]);
    let endpoint_page = api
        .get(
            &format!("/v1/events?{window}&endpointTag=support.reply"),
            &read,
        )
        .await
        .body;
    assert_eq!(ids(&endpoint_page).len(), 5);

    // Service accounts and anonymous calls are named buckets among the people.
    let users = api
        .get(&format!("/v1/top/users?{window}"), &read)
        .await
        .body;
    assert_eq!(
        rows(&users, "userId"),
        vec![
            ("alice".into(), c(15), 2),
            ("anonymous".into(), c(30 + 50), 2),
            ("bob".into(), c(20), 1),
            ("carol".into(), c(200), 1),
            ("service-accounts".into(), c(7 + 100 + 400), 3),
        ]
    );
    let bucket = api
        .get(
            &format!("/v1/top/endpoints?{window}&userId=service-accounts"),
            &read,
        )
        .await
        .body;
    assert_eq!(
        rows(&bucket, "endpointTag"),
        vec![
            ("chat".into(), c(500), 2),
            ("support.reply".into(), c(7), 1)
        ]
    );

    // Removing the endpoint mapping restores the stored grouping at once.
    let id = endpoint.body["id"].as_i64().unwrap();
    let gone = api
        .http
        .delete(format!("{}/v1/mappings/{id}", api.url))
        .header("X-API-Key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let top = api
        .get(&format!("/v1/top/endpoints?{window}"), &read)
        .await
        .body;
    assert_eq!(
        rows(&top, "endpointTag"),
        vec![
            ("chat".into(), c(750), 4),
            ("support.reply".into(), c(12), 2),
            ("support_reply".into(), c(60), 3),
        ]
    );
    server.stop();
}

#[test]
fn the_cli_adds_lists_and_removes_mappings_with_the_api_checks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    key(&db, "default", "admin");
    let added = cli(
        &db,
        &[
            "mappings", "add", "tenantId", "acme-old", "acme", "--note", "merger",
        ],
    );
    assert!(added.contains("acme-old -> acme"), "{added}");
    let out = burnrate_harness::cli(
        std::path::Path::new(common::BIN),
        &db,
        &["mappings", "add", "tenantId", "acme", "acme-old"],
    )
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("to: would make a cycle"), "{err}");
    let list = cli(&db, &["mappings", "list"]);
    assert!(
        list.contains("acme-old") && list.contains("merger"),
        "{list}"
    );
    let id = added.split_whitespace().nth(1).unwrap().to_string();
    cli(&db, &["mappings", "remove", &id]);
    assert!(!cli(&db, &["mappings", "list"]).contains("acme-old"));
}

/// A blocking budget of the new tenant counts the old tenant's spend of its period (its
/// load reads through the mapping) and the old name's new calls (their commit effects
/// are mapped); the guard asked under the old name answers for the new one.
#[tokio::test]
async fn a_budget_of_the_new_tenant_counts_spend_stored_under_the_old_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, admin) = (key(&db, "default", "ingest"), key(&db, "default", "admin"));
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let now = jiff::Timestamp::now().as_millisecond();
    let budget = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "new-co", "scope": {"tenantId": "new-co"}, "period": "month",
                    "limitUsd": 1, "action": "block"}),
        )
        .await;
    assert_eq!(budget.status, 201, "{}", budget.body);
    let status_path = format!("/v1/budgets/{}/status", budget.body["id"]);
    let c = |n: i64| n * 1_000_000;
    let r = api
        .post(
            "/v1/ingest/llm-request",
            &ingest,
            &call("o1", now - 60_000, "chat", "old-co", None, c(600)),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let spent = || {
        let (api, admin, path) = (&api, admin.clone(), status_path.clone());
        async move { nanos(&api.get(&path, &admin).await.body["spentUsd"]) }
    };
    assert_eq!(spent().await, 0, "old-co is not new-co yet");
    let m = api
        .put_json(
            "/v1/mappings",
            &admin,
            &json!({"dimension": "tenantId", "from": "old-co", "to": "new-co"}),
        )
        .await;
    assert_eq!(m.status, 201, "{}", m.body);
    assert_eq!(spent().await, c(600));
    api.post(
        "/v1/ingest/llm-request",
        &ingest,
        &call("o2", now - 30_000, "chat", "old-co", None, c(300)),
    )
    .await;
    assert_eq!(spent().await, c(900));
    let guard = |tenant: &str, estimate: f64| {
        let body = json!({"endpointTag": "chat", "tenantId": tenant, "estimatedCostUsd": estimate});
        let (api, ingest) = (&api, ingest.clone());
        async move { api.post("/v1/guard", &ingest, &body).await.body["allow"].clone() }
    };
    assert_eq!(guard("old-co", 0.05).await, json!(true));
    assert_eq!(guard("old-co", 0.2).await, json!(false), "0.9 + 0.2 > 1");
    assert_eq!(guard("new-co", 0.2).await, json!(false));
    assert_eq!(guard("other", 0.2).await, json!(true));
    server.stop();
}

/// A mapping naming a person by e-mail is stored, and matches, by the pseudonym ingest
/// stored instead of the address: the raw value reaches neither the events nor the
/// mapping.
#[tokio::test]
async fn a_mapping_names_personal_ids_by_their_pseudonyms() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let now = jiff::Timestamp::now().as_millisecond();
    let c = |n: i64| n * 1_000_000;
    let r = api
        .post(
            "/v1/ingest/llm-request",
            &ingest,
            &call(
                "p1",
                now - 60_000,
                "chat",
                "acme",
                Some("Dave@Example.com"),
                c(40),
            ),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let m = api
        .put_json(
            "/v1/mappings",
            &admin,
            &json!({"dimension": "userId", "from": "dave@example.com", "to": "dave"}),
        )
        .await;
    assert_eq!(m.status, 201, "{}", m.body);
    let from = m.body["from"].as_str().unwrap();
    assert!(from.starts_with("pii_") && !from.contains('@'), "{from}");
    let listed = api.get("/v1/mappings", &read).await.body.to_string();
    assert!(!listed.contains("xample"), "{listed}");
    let users = api.get("/v1/top/users?since=1h", &read).await.body;
    assert_eq!(rows(&users, "userId"), vec![("dave".into(), c(40), 1)]);
    server.stop();
}
