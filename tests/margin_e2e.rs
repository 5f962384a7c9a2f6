//! Revenue and margin per tenant against the real binary: plan prices, a revenue
//! override and one-off amounts against the AI cost of ingested events, unprofitable
//! tenants first, cost per active user-day, the month-end projection, the
//! tenant_cost_over_revenue alert, bad inputs named, and the CLI.

mod common;

use common::{blamed, cli, event, key, Api, Server};
use serde_json::{json, Value};

const NANO: i64 = 1_000_000_000;

fn call(id: &str, tenant: &str, day: u32, user: Option<&str>, cost: f64) -> Value {
    let mut e = json!({
        "externalRequestId": id, "provider": "openai", "model": "gpt-4o-mini",
        "endpointTag": "support.reply", "tenantId": tenant, "inputTokens": 1000,
        "outputTokens": 200, "status": "success", "environment": "prod", "dataMode": "real",
        "costUsd": cost, "timestamp": format!("2026-11-{day:02}T12:00:00Z"),
    });
    if let Some(u) = user {
        e["userId"] = json!(u);
    }
    e
}

/// Money in a reply as nano-USD, read from its exact decimal text.
fn nanos(v: &Value) -> i64 {
    let text = v.to_string();
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = format!("{frac:0<9}");
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap();
    sign * (whole * NANO + frac.parse::<i64>().unwrap())
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    server: Server,
    admin: String,
}

/// Plans pro $100/month and free $0; acme and globex on pro, initech on free; globex's
/// revenue overridden to $20/month from November, acme paid a $100 one-off on Nov 10.
/// Calls in November: acme 24 x $1.50 (4 user-days), globex 20 x $1.50 (no users),
/// initech one call priced from the book ($0.00024).
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let admin = key(&db, "default", "admin");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    for (plan, price) in [("pro", json!(100)), ("free", json!("0"))] {
        let r = api
            .put_json(
                &format!("/v1/plans/definitions/{plan}"),
                &admin,
                &json!({"priceUsd": price}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let csv = "tenantId,plan\nacme,pro\nglobex,pro\ninitech,free\n";
    let r = api
        .post_raw("/v1/plans/import", Some(&admin), "text/csv", csv.into())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let entries = json!({"entries": [
        {"tenantId": "globex", "type": "override", "date": "2026-11-01", "amountUsd": "20"},
    ]});
    let r = api.post("/v1/revenue", &admin, &entries).await;
    assert_eq!((r.status, &r.body["added"]), (200, &json!(1)), "{}", r.body);
    let csv = "tenantId,type,date,amountUsd\nacme,oneOff,2026-11-10,100\n";
    let r = api
        .post_raw("/v1/revenue/import", Some(&admin), "text/csv", csv.into())
        .await;
    assert_eq!((r.status, &r.body["added"]), (200, &json!(1)), "{}", r.body);
    let mut events: Vec<Value> = (0..24)
        .map(|i| {
            let user = format!("u{}", i % 2);
            call(&format!("a{i}"), "acme", 2 + i % 4, Some(&user), 1.5)
        })
        .collect();
    events.extend((0..20).map(|i| call(&format!("g{i}"), "globex", 3, None, 1.5)));
    let mut priced = event("i0");
    priced["tenantId"] = json!("initech");
    priced["userId"] = json!("x");
    priced["timestamp"] = json!("2026-11-03T08:00:00Z");
    events.push(priced);
    let r = api.post("/v1/ingest/batch", &admin, &json!(events)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["accepted"], 45, "{}", r.body);
    Fixture {
        _dir: dir,
        db,
        server,
        admin,
    }
}

fn row<'a>(report: &'a Value, tenant: &str) -> &'a Value {
    let rows = report["tenants"].as_array().unwrap();
    rows.iter().find(|r| r["tenantId"] == tenant).unwrap()
}

fn order(report: &Value) -> Vec<&str> {
    let rows = report["tenants"].as_array().unwrap();
    rows.iter()
        .map(|r| r["tenantId"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn margin_per_tenant_equals_hand_computed_revenue_minus_cost_unprofitable_first() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    let r = api.get("/v1/margin?month=2026-11", &f.admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = &r.body;
    assert_eq!(order(m), ["globex", "initech", "acme"], "{m}");
    let acme = row(m, "acme");
    assert_eq!(acme["plan"], "pro");
    assert_eq!(
        nanos(&acme["revenueUsd"]),
        200 * NANO,
        "plan $100 + one-off $100"
    );
    assert_eq!(nanos(&acme["costUsd"]), 36 * NANO);
    assert_eq!(nanos(&acme["marginUsd"]), 164 * NANO);
    assert_eq!(acme["costSharePct"].as_f64(), Some(18.0));
    assert_eq!(acme["activeUserDays"], 4);
    assert_eq!(nanos(&acme["costPerActiveUserDayUsd"]), 9 * NANO);
    let globex = row(m, "globex");
    assert_eq!(
        nanos(&globex["revenueUsd"]),
        20 * NANO,
        "the override, not pro"
    );
    assert_eq!(nanos(&globex["marginUsd"]), -10 * NANO);
    assert_eq!(globex["costSharePct"].as_f64(), Some(150.0));
    assert_eq!(globex["activeUserDays"], 0);
    assert_eq!(globex["costPerActiveUserDayUsd"], Value::Null);
    let initech = row(m, "initech");
    assert_eq!(
        nanos(&initech["costUsd"]),
        240_000,
        "book price of the call"
    );
    assert_eq!(nanos(&initech["marginUsd"]), -240_000);
    assert_eq!(initech["costSharePct"], Value::Null, "no revenue, no share");
    assert_eq!(
        acme["projected"],
        Value::Null,
        "a finished month projects nothing"
    );
    let totals = &m["totals"];
    assert_eq!(nanos(&totals["revenueUsd"]), 220 * NANO);
    assert_eq!(nanos(&totals["costUsd"]), 66 * NANO + 240_000);
    assert_eq!(nanos(&totals["marginUsd"]), 154 * NANO - 240_000);
    assert_eq!(totals["unprofitable"], 2);
    assert_eq!(totals["activeUserDays"], 5);
    assert_eq!(m["count"], 3);
    // One page at a time, in the same order.
    let p = api
        .get("/v1/margin?month=2026-11&limit=1&offset=1", &f.admin)
        .await;
    assert_eq!(order(&p.body), ["initech"], "{}", p.body);
    assert_eq!(p.body["nextOffset"], 2);
    // One tenant (the tenant page's report): its user-days are the totals' too.
    let one = api
        .get("/v1/margin?month=2026-11&tenantId=acme", &f.admin)
        .await;
    assert_eq!(order(&one.body), ["acme"], "{}", one.body);
    assert_eq!(one.body["totals"]["activeUserDays"], 4);
    assert_eq!(row(&one.body, "acme")["activeUserDays"], 4);
    // The same numbers from the CLI, reading the database.
    let out = cli(&f.db, &["margin", "--month", "2026-11"]);
    let (g, a) = (out.find("globex"), out.find("acme"));
    assert!(g.is_some() && g < a, "{out}");
    assert!(out.contains("$164.00") && out.contains("-$10.00"), "{out}");
    assert!(out.contains("2 of 3 tenants unprofitable"), "{out}");
    // Prices and entries from the CLI (another process) reach the server's answer.
    cli(&f.db, &["revenue", "price", "pro", "120.5"]);
    let file = f.db.with_file_name("rev.csv");
    std::fs::write(
        &file,
        "tenantId,type,date,amountUsd\nacme,oneOff,2026-11-30,-0.5\n",
    )
    .unwrap();
    let out = cli(&f.db, &["revenue", "import", file.to_str().unwrap()]);
    assert!(out.contains("1 revenue entries added"), "{out}");
    assert!(cli(&f.db, &["revenue", "prices"]).contains("pro\t$120.50 per month"));
    let r = api.get("/v1/margin?month=2026-11", &f.admin).await;
    assert_eq!(
        nanos(&row(&r.body, "acme")["revenueUsd"]),
        220 * NANO,
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn month_end_projection_carries_each_tenants_run_rate_to_the_end() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    // Half of November gone: revenue so far is half the monthly amount plus one-offs.
    let path = "/v1/margin?month=2026-11&at=2026-11-16T00:00:00Z";
    let r = api.get(path, &f.admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let acme = row(&r.body, "acme");
    assert_eq!(
        nanos(&acme["revenueUsd"]),
        150 * NANO,
        "$50 of pro + $100 one-off"
    );
    let p = &acme["projected"];
    assert_eq!(p["monthEnd"], "2026-12-01T00:00:00Z", "{p}");
    assert_eq!(nanos(&p["costUsd"]), 72 * NANO, "$36 in 15 days, 15 to go");
    assert_eq!(nanos(&p["revenueUsd"]), 200 * NANO);
    assert_eq!(nanos(&p["marginUsd"]), 128 * NANO);
    let globex = &row(&r.body, "globex")["projected"];
    assert_eq!(nanos(&globex["costUsd"]), 60 * NANO);
    assert_eq!(nanos(&globex["marginUsd"]), -40 * NANO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_over_revenue_alert_fires_for_the_tenant_over_30_percent_only() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    let r = api
        .get("/v1/alerts/findings?at=2026-11-16T00:00:00Z", &f.admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ours: Vec<&Value> = r.body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "tenant_cost_over_revenue")
        .collect();
    // globex: $30 of cost against $10 of revenue so far (300%); acme: $36 of $150 (24%).
    assert_eq!(ours.len(), 1, "{ours:?}");
    let e = &ours[0]["evidence"];
    assert_eq!(e["tenantId"], "globex");
    assert_eq!(nanos(&e["costUsd"]), 30 * NANO);
    assert_eq!(nanos(&e["revenueUsd"]), 10 * NANO);
    assert_eq!(e["costSharePct"].as_f64(), Some(300.0));
    assert_eq!(nanos(&e["projectedMonthCostUsd"]), 60 * NANO);
    assert!(ours[0]["link"].as_str().unwrap().starts_with("/tenant?"));
    // A higher threshold: quiet.
    let change = json!({"rules": {"tenant_cost_over_revenue": {"threshold": 400}}});
    let r = api.put_json("/v1/alert-rules", &f.admin, &change).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .get("/v1/alerts/findings?at=2026-11-16T00:00:00Z", &f.admin)
        .await;
    let fired = r.body["findings"].as_array().unwrap().iter();
    assert_eq!(
        fired
            .filter(|f| f["rule"] == "tenant_cost_over_revenue")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_revenue_and_margin_inputs_are_refused_naming_the_field() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    let cases = [
        ("/v1/margin?month=2026-13", "month"),
        (
            "/v1/margin?month=2026-11&from=2026-11-01T00:00:00Z",
            "month",
        ),
        ("/v1/margin?month=2099-01", "month"),
        ("/v1/margin?limit=0", "limit"),
        ("/v1/margin?offset=-1", "offset"),
        ("/v1/margin?at=yesterday", "at"),
        ("/v1/margin?tenant=acme", "tenant"),
        ("/v1/revenue", "tenantId"),
    ];
    for (path, field) in cases {
        let r = api.get(path, &f.admin).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(blamed(&r.body["error"]["fields"]), [field], "{path}");
    }
    let r = api
        .put_json(
            "/v1/plans/definitions/pro",
            &f.admin,
            &json!({"priceUsd": -1}),
        )
        .await;
    assert_eq!(
        (r.status, blamed(&r.body["error"]["fields"])),
        (400, vec!["priceUsd".to_string()])
    );
    let named = json!({"priceUsd": 1, "name": "x"});
    let r = api
        .put_json("/v1/plans/definitions/pro", &f.admin, &named)
        .await;
    assert_eq!(blamed(&r.body["error"]["fields"]), ["name"], "{}", r.body);
    let r = api
        .put_json(
            "/v1/plans/definitions/bad%20name",
            &f.admin,
            &json!({"priceUsd": 1}),
        )
        .await;
    assert_eq!(
        (r.status, blamed(&r.body["error"]["fields"])),
        (400, vec!["plan".to_string()])
    );
    let bad = json!({"entries": [
        {"tenantId": "acme", "type": "oneOff", "date": "2026-11-31", "amountUsd": 5},
        {"tenantId": "acme", "type": "override", "date": "2026-11-01", "amountUsd": "1.0000000001"}
    ]});
    let r = api.post("/v1/revenue", &f.admin, &bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        ["entries[0].date", "entries[1].amountUsd"]
    );
    let csv = "tenantId,type,date,amountUsd\nacme,oneOff,2026-11-02,1\nacme,refund,2026-11-02,1\n";
    let r = api
        .post_raw("/v1/revenue/import", Some(&f.admin), "text/csv", csv.into())
        .await;
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        ["line 3 type"],
        "{}",
        r.body
    );
    // Nothing of the refused requests was stored.
    let r = api.get("/v1/revenue?tenantId=acme", &f.admin).await;
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 1, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_for_a_personal_tenant_id_reaches_its_pseudonymized_calls() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    let entries = json!({"entries": [
        {"tenantId": "bob@example.com", "type": "oneOff", "date": "2026-11-05", "amountUsd": 7},
    ]});
    let r = api.post("/v1/revenue", &f.admin, &entries).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .post(
            "/v1/ingest/batch",
            &f.admin,
            &json!([call("b1", "bob@example.com", 5, None, 2.0)]),
        )
        .await;
    assert_eq!(r.body["accepted"], 1, "{}", r.body);
    let r = api
        .get(
            "/v1/margin?month=2026-11&tenantId=bob@example.com",
            &f.admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.body["tenants"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", r.body);
    let bob = &rows[0];
    assert!(
        bob["tenantId"].as_str().unwrap().starts_with("pii_"),
        "{bob}"
    );
    assert_eq!(nanos(&bob["revenueUsd"]), 7 * NANO);
    assert_eq!(nanos(&bob["marginUsd"]), 5 * NANO);
    assert!(!r.body.to_string().contains("bob@"), "{}", r.body);
}

/// A dashboard session cookie (`name=value`) for `key`.
async fn session(server: &Server, key: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/login", server.url))
        .form(&[("key", key), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    (http, cookie.split(';').next().unwrap().to_string())
}

async fn page(server: &Server, key: &str, path: &str) -> (u16, String) {
    let (http, cookie) = session(server, key).await;
    let r = http
        .get(format!("{}{path}", server.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The exact amount of the `data-usd` element inside the element with `attr`.
fn usd_in(html: &str, attr: &str) -> String {
    let at = html
        .find(attr)
        .unwrap_or_else(|| panic!("{attr} not in the page"));
    let rest = &html[at..];
    let v = &rest[rest.find("data-usd=\"").unwrap() + 10..];
    v[..v.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_page_shows_the_margin_caps_and_breakdowns_of_the_api() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    let budget = json!({"name": "AI quota", "scope": {"tenantId": "*"}, "period": "month",
                        "limitUsd": 10, "planLimits": {"pro": 50}});
    let r = api.post("/v1/budgets", &f.admin, &budget).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cap = json!({"endpointTag": "support.reply", "perTenant": true, "requestsPerMinute": 120});
    let r = api.post("/v1/rate-caps", &f.admin, &cap).await;
    assert!(r.status < 300, "{}", r.body);
    let window = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z";
    let (status, html) = page(
        &f.server,
        &f.admin,
        &format!("/tenant?{window}&tenantId=acme"),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let m = api
        .get(&format!("/v1/margin?{window}&tenantId=acme"), &f.admin)
        .await;
    let acme = row(&m.body, "acme");
    for (kpi, field) in [
        ("revenue", "revenueUsd"),
        ("cost", "costUsd"),
        ("margin", "marginUsd"),
    ] {
        let shown = usd_in(&html, &format!("data-kpi=\"{kpi}\""));
        assert_eq!(shown, acme[field].to_string(), "{kpi}");
    }
    assert_eq!(usd_in(&html, "data-kpi=\"revenue\""), "200");
    assert!(html.contains(r#"data-plan="pro""#), "the plan is shown");
    // Its endpoints, users and models: the top lists of the API with the tenant filter.
    let users = api
        .get(&format!("/v1/top/users?{window}&tenantId=acme"), &f.admin)
        .await;
    for u in users.body["rows"].as_array().unwrap() {
        let key = u["group"]["userId"].as_str().unwrap();
        let shown = usd_in(&html, &format!("data-key=\"{key}\""));
        assert_eq!(shown, u["costUsd"].to_string(), "user {key}");
    }
    assert_eq!(users.body["rows"].as_array().unwrap().len(), 2);
    // Its cap this period: the per-tenant budget at the pro plan's limit.
    assert!(html.contains("id=\"caps\""), "{html}");
    let caps = &html[html.find("id=\"caps\"").unwrap()..];
    assert!(
        caps.contains("AI quota") && caps.contains("data-usd=\"50\""),
        "{caps}"
    );
    assert!(caps.contains("<b>120</b> requests a minute"), "{caps}");
    // Its most expensive requests: each $1.50, none of another tenant's.
    let top = &html[html.find("id=\"top-requests\"").unwrap()..];
    assert_eq!(top.matches("data-request=").count(), 10);
    assert!(
        !top.contains("data-request=\"g"),
        "globex's calls are not acme's"
    );
    // Every tenant name links to its page: the Tenants list, and this page needs one tenant.
    let (_, list) = page(&f.server, &f.admin, &format!("/tenants?{window}")).await;
    assert!(list.contains("href=\"/tenant?"), "{list}");
    let (status, _) = page(&f.server, &f.admin, &format!("/tenant?{window}")).await;
    assert_eq!(status, 400);
}

/// The list is ordered by margin, so it needs every tenant's cost: a tenant past the
/// 10,000th by cost (the query layer's largest answer) is still listed and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_the_ten_thousandth_by_cost_is_still_in_the_margin_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("many.db");
    let admin = key(&db, "default", "admin");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    // 10,001 tenants, the last one the cheapest.
    let events: Vec<Value> = (0..10_001)
        .map(|i| {
            let cost = if i == 10_000 { 0.001 } else { 0.01 };
            call(&format!("m{i}"), &format!("t{i:05}"), 2, None, cost)
        })
        .collect();
    for chunk in events.chunks(2_000) {
        let r = api.post("/v1/ingest/batch", &admin, &json!(chunk)).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let r = api.get("/v1/margin?month=2026-11&limit=1", &admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["count"], 10_001);
    assert_eq!(r.body["totals"]["unprofitable"], 10_001);
    // The cheapest loses least: it is the last of the list.
    let last = api
        .get("/v1/margin?month=2026-11&limit=1&offset=10000", &admin)
        .await;
    assert_eq!(order(&last.body), ["t10000"], "{}", last.body);
    assert_eq!(nanos(&last.body["tenants"][0]["marginUsd"]), -1_000_000);
}

#[tokio::test]
async fn active_user_days_are_counted_past_one_answer_of_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let admin = key(&db, "default", "admin");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    // big: 6,000 users on each of two days (12,000 pairs, more than one answer of
    // 10,000 rows holds); small: 3 users on one day, a user twice that day, and calls
    // without a user on two days (no user-days).
    let mut events: Vec<Value> = (0..12_000)
        .map(|i| {
            let user = format!("u{}", i % 6_000);
            call(&format!("b{i}"), "big", 3 + i / 6_000, Some(&user), 0.01)
        })
        .collect();
    for (i, user) in ["a", "b", "c", "a"].iter().enumerate() {
        events.push(call(&format!("s{i}"), "small", 4, Some(user), 0.03));
    }
    events.push(call("n1", "small", 4, None, 0.03));
    events.push(call("n2", "small", 5, None, 0.03));
    for chunk in events.chunks(2_000) {
        let r = api.post("/v1/ingest/batch", &admin, &json!(chunk)).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let r = api.get("/v1/margin?month=2026-11", &admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let big = row(&r.body, "big");
    assert_eq!(big["activeUserDays"], 12_000, "{}", r.body);
    // $120 over 12,000 user-days: a cent each.
    assert_eq!(nanos(&big["costPerActiveUserDayUsd"]), 10_000_000);
    let small = row(&r.body, "small");
    assert_eq!(small["activeUserDays"], 3, "{}", r.body);
    // $0.18 over 3 user-days.
    assert_eq!(nanos(&small["costPerActiveUserDayUsd"]), 60_000_000);
    assert_eq!(r.body["totals"]["activeUserDays"], 12_003);
    // The tenant page's query: one tenant, the same count.
    let one = api
        .get("/v1/margin?month=2026-11&tenantId=big", &admin)
        .await;
    assert_eq!(
        row(&one.body, "big")["activeUserDays"],
        12_000,
        "{}",
        one.body
    );
    assert_eq!(one.body["totals"]["activeUserDays"], 12_000);
}
