//! Plan history against an in-process server whose clock the test sets: a tenant's plan
//! changes at its `effectiveFrom`; the guard caps the current period by the plan in
//! force now (for the whole period); revenue accrues each plan's price over the days it
//! was in force (hand-computed below); `/v1/plans/history` and `burnrate plans history`
//! list the changes; bad dates are 400s naming the field.

mod common;

use burnrate::server::{start_with_clock, Config};
use common::{cli, key, Api};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

async fn guard(api: &Api, key: &str, tenant: &str, estimate: f64) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dated_plan_change_moves_the_cap_when_due_and_splits_the_months_revenue() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plans.db");
    let admin = key(&db, "default", "admin");
    let now = Arc::new(AtomicI64::new(ms("2026-03-20T12:00:00Z")));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let config = Config::embedded(format!("sqlite://{}", db.display()));
    let running = start_with_clock(config, clock).await.unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        url: format!("http://{}", running.addr),
    };
    for (plan, price) in [("free", 10), ("pro", 40)] {
        let path = format!("/v1/plans/definitions/{plan}");
        let r = api
            .put_json(&path, &admin, &json!({"priceUsd": price}))
            .await;
        assert!(r.status < 300, "{} {}", r.status, r.body);
    }
    let made = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "quota", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 100, "action": "block",
                    "planLimits": {"free": 1, "pro": 50}}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);

    // acme: free since always (its first plan, undated), pro from tomorrow.
    let put = |tenant: &'static str, body: Value| {
        let api = &api;
        let admin = &admin;
        async move {
            let path = format!("/v1/plans/tenants/{tenant}");
            api.put_json(&path, admin, &body).await
        }
    };
    let r = put("acme", json!({"plan": "free"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = put(
        "acme",
        json!({"plan": "pro", "effectiveFrom": "2026-03-21"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["effectiveFrom"], "2026-03-21T00:00:00Z");
    for (body, field) in [
        (
            json!({"plan": "pro", "effectiveFrom": "soon"}),
            "effectiveFrom",
        ),
        (json!({"plan": "pro", "effectiveFrom": 5}), "effectiveFrom"),
        (json!({"plan": "pro", "from": "2026-03-21"}), "from"),
    ] {
        let r = put("acme", body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["error"]["fields"][0]["field"], field, "{}", r.body);
    }
    let history = api.get("/v1/plans/history?tenant=acme", &admin).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(
        history.body,
        json!({"tenantId": "acme", "plan": "free", "history": [
            {"effectiveFrom": null, "plan": "free"},
            {"effectiveFrom": "2026-03-21T00:00:00Z", "plan": "pro"}]})
    );
    let missing = api.get("/v1/plans/history", &admin).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"]["fields"][0]["field"], "tenant");

    // Today acme is on free: a $2 call passes its $1 cap.
    let today = guard(&api, &admin, "acme", 2.0).await;
    assert_eq!(today["reason"], "tenant_quota_exceeded", "{today}");
    assert_eq!(today["quota"]["plan"], "free", "{today}");

    // beta: free (its first plan: since always), then pro undated: from now.
    put("beta", json!({"plan": "free"})).await;
    put("beta", json!({"plan": "pro"})).await;
    let beta = api.get("/v1/plans/history?tenant=beta", &admin).await;
    assert_eq!(
        beta.body["history"],
        json!([{"effectiveFrom": null, "plan": "free"},
               {"effectiveFrom": "2026-03-20T12:00:00Z", "plan": "pro"}])
    );

    // Tomorrow: pro is in force, for the whole of March (the cap is $50 now).
    now.store(ms("2026-03-21T00:00:01Z"), Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let tomorrow = loop {
        let answer = guard(&api, &admin, "acme", 2.0).await;
        if answer["allow"] == true {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pro never came in force: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(tomorrow["budgets"][0]["plan"], "pro", "{tomorrow}");
    assert_eq!(tomorrow["budgets"][0]["limitUsd"].as_f64(), Some(50.0));

    // Revenue: February all on free, $10 exactly. March (31 days): 20 days of free
    // ($10 x 20/31 = $6.451612903, rounded half-up) and 11 of pro ($40 x 11/31 =
    // $14.193548387).
    let margin = |from: &'static str, to: &'static str| {
        let api = &api;
        let admin = &admin;
        async move {
            let path = format!("/v1/margin?from={from}&to={to}&tenantId=acme");
            let r = api.get(&path, admin).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["tenants"][0]["revenueUsd"].clone()
        }
    };
    let feb = margin("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z").await;
    assert_eq!(feb, json!(10));
    let march = margin("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z").await;
    let want: serde_json::Number = "20.64516129".parse().unwrap();
    assert_eq!(march, json!(want), "6.451612903 + 14.193548387");

    running.stop().await.unwrap();
    // The CLI, another process, shows the same history.
    let shown = cli(&db, &["plans", "history", "acme"]);
    assert_eq!(
        shown,
        "since always\tfree\nfrom 2026-03-21T00:00:00Z\tpro\n"
    );
}
