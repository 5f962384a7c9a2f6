//! Alerts for the members of a budget for each tenant, against an in-process server whose
//! clock the test sets and a local webhook receiver: one alert per member crossing a
//! threshold or its cap (named by its pseudonym when personal, with its plan), told once
//! per member, mark and period, at most ten new ones per evaluation and the rest in one
//! "and N more" summary; a member climbing to a higher mark is told again; the period's
//! end resolves them without a message.

mod common;

use burnrate::server::{start_with_clock, Config};
use common::webhook::{receiver, Inbox};
use common::{key, Api};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// One call of `tenant` costing `usd` (reported cost, so spend is exact by hand).
fn call(id: &str, tenant: &str, usd: &str) -> Value {
    json!({
        "externalRequestId": id, "provider": "openai", "model": "gpt-4.1",
        "endpointTag": "chat.assist", "tenantId": tenant, "inputTokens": 1000,
        "outputTokens": 100, "costUsd": usd.parse::<serde_json::Number>().unwrap(),
        "status": "success", "timestamp": "2026-03-10T11:00:00Z",
    })
}

/// The alerts (payload `data.alert`) of the firing messages received since `from`.
fn fired(inbox: &Inbox, from: usize) -> Vec<Value> {
    inbox.messages()[from..]
        .iter()
        .map(|(_, body)| serde_json::from_slice::<Value>(body).unwrap())
        .inspect(|m| assert_eq!(m["type"], "alert.firing", "{m}"))
        .map(|m| m["data"]["alert"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_member_crossing_is_told_once_and_a_crowd_is_summed_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("members.db");
    let admin = key(&db, "default", "admin");
    let now = Arc::new(AtomicI64::new(ms("2026-03-10T12:00:00Z")));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    // `embedded`: no minute loop; the test evaluates when it chooses.
    let config = Config::embedded(format!("sqlite://{}", db.display()));
    let running = start_with_clock(config, clock).await.unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        url: format!("http://{}", running.addr),
    };
    let (inbox, url) = receiver("/hooks/members").await;

    // Only the budget rule: the other rules would see this traffic too.
    let mut off = serde_json::Map::new();
    for rule in burnrate::alert::RuleKind::ALL {
        if rule != burnrate::alert::RuleKind::Budget {
            off.insert(rule.as_str().into(), json!({"enabled": false}));
        }
    }
    let put = api
        .put_json("/v1/alert-rules", &admin, &json!({"rules": off}))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let made = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "quota", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 10, "thresholds": [80],
                    "planLimits": {"free": 1, "pro": 50}}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let budget_id = made.body["id"].as_i64().unwrap();
    let mut csv =
        "tenantId,plan\nsmall,free\nnear,free\nacme,pro\ncarol@example.com,free\n".to_string();
    for i in 0..25 {
        csv.push_str(&format!("t{i:02},free\n"));
    }
    let imported = api
        .post_raw("/v1/plans/import", Some(&admin), "text/csv", csv.into())
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let channel = api
        .post(
            "/v1/channels",
            &admin,
            &json!({"name": "hook", "type": "webhook", "url": url}),
        )
        .await;
    assert_eq!(channel.status, 201, "{}", channel.body);

    let ingest = |calls: Vec<Value>| {
        let api = &api;
        let admin = &admin;
        async move {
            let r = api.post("/v1/ingest/batch", admin, &json!(calls)).await;
            assert_eq!(r.status, 202, "{}", r.body);
        }
    };
    // The counters take commits in a task of their own: wait until the budget shows
    // `count` members before evaluating.
    let settled = |count: usize| {
        let api = &api;
        let admin = &admin;
        async move {
            let path = format!("/v1/budgets/{budget_id}/status");
            for _ in 0..100 {
                let s = api.get(&path, admin).await;
                if s.body["members"]["count"] == json!(count) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("the budget never showed {count} members");
        }
    };
    let evaluate = |at: &'static str| {
        let api = &api;
        let admin = &admin;
        let now = now.clone();
        async move {
            now.store(ms(at), Ordering::SeqCst);
            let r = api.post("/v1/alerts/evaluate", admin, &json!({})).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };

    // small: $0.50 of its $1 (50%, under 80%); near: $0.85 of $1 (85%); acme: $45 of
    // its pro $50 (90%); carol: $0.90 of $1 (90%), stored under her pseudonym.
    ingest(vec![
        call("s1", "small", "0.5"),
        call("n1", "near", "0.85"),
        call("a1", "acme", "45"),
        call("c1", "carol@example.com", "0.9"),
    ])
    .await;
    settled(4).await;
    evaluate("2026-03-10T12:00:00Z").await;
    let first = fired(&inbox, 0);
    let mut members: Vec<(String, String, String)> = first
        .iter()
        .map(|a| {
            let e = &a["evidence"];
            let text = |v: &Value| v.as_str().unwrap().to_string();
            (text(&e["member"]), text(&e["plan"]), text(&e["mark"]))
        })
        .collect();
    members.sort();
    assert_eq!(members.len(), 3, "{first:?}");
    assert!(
        !serde_json::to_string(&first)
            .unwrap()
            .contains("example.com"),
        "a personal tenant stays a pseudonym: {first:?}"
    );
    let carol = members.iter().find(|m| m.0 != "acme" && m.0 != "near");
    let carol = carol.unwrap().0.clone();
    let mut want = vec![
        ("acme".to_string(), "pro".to_string(), "80".to_string()),
        ("near".into(), "free".into(), "80".into()),
        (carol, "free".into(), "80".into()),
    ];
    want.sort();
    assert_eq!(members, want);
    let acme = first
        .iter()
        .find(|a| a["evidence"]["member"] == "acme")
        .unwrap();
    assert_eq!(
        acme["key"],
        format!("budget:{budget_id}:2026-03-01T00:00:00Z:member:acme:80")
    );
    assert_eq!(acme["evidence"]["spentUsd"], json!(45));
    assert_eq!(acme["evidence"]["limitUsd"], json!(50));
    assert_eq!(
        acme["title"],
        "Tenant acme (plan pro) reached 80% of its cap in budget quota"
    );
    assert_eq!(acme["severity"], "warning");

    // The same evaluation a minute later: nobody is told twice.
    evaluate("2026-03-10T12:01:00Z").await;
    assert_eq!(inbox.len(), 3);

    // 25 free tenants go over their $1 at once: ten alerts, then "and 15 more".
    ingest(
        (0..25)
            .map(|i| call(&format!("t{i}"), &format!("t{i:02}"), "1.5"))
            .collect(),
    )
    .await;
    settled(29).await;
    evaluate("2026-03-10T12:02:00Z").await;
    let crowd = fired(&inbox, 3);
    assert_eq!(crowd.len(), 11, "{crowd:?}");
    // Most over first, equal shares by name: t00..t09 alone.
    let alone: Vec<&str> = crowd[..10]
        .iter()
        .map(|a| a["evidence"]["member"].as_str().unwrap())
        .collect();
    let names: Vec<String> = (0..10).map(|i| format!("t{i:02}")).collect();
    assert_eq!(alone, names);
    assert_eq!(crowd[0]["severity"], "critical");
    assert_eq!(
        crowd[0]["title"],
        "Tenant t00 (plan free) is over its cap in budget quota"
    );
    let summary = &crowd[10];
    assert_eq!(
        summary["key"],
        format!("budget:{budget_id}:2026-03-01T00:00:00Z:members:1")
    );
    assert_eq!(summary["title"], "Budget quota: and 15 more members");
    assert_eq!(summary["evidence"]["count"], 15);
    assert_eq!(summary["evidence"]["marks"], json!({"exceeded": 15}));
    let text = summary["text"].as_str().unwrap();
    assert!(
        text.contains("- t10 (plan free): $1.50 of $1.00 (exceeded)"),
        "{text}"
    );
    assert!(text.ends_with("and 5 more on the Budgets page."), "{text}");

    // Nothing new: quiet, and the fifteen summed up are not told one by one later.
    evaluate("2026-03-10T12:03:00Z").await;
    evaluate("2026-03-10T12:04:00Z").await;
    assert_eq!(inbox.len(), 14);

    // near climbs past its cap ($0.85 + $0.20 = $1.05 of $1): told again, once.
    ingest(vec![call("n2", "near", "0.2")]).await;
    let path = format!("/v1/budgets/{budget_id}/status");
    for _ in 0..100 {
        let s = api.get(&path, &admin).await;
        if s.body["members"]["over"] == json!(26) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    evaluate("2026-03-10T12:05:00Z").await;
    let climbed = fired(&inbox, 14);
    assert_eq!(climbed.len(), 1, "{climbed:?}");
    assert_eq!(
        climbed[0]["key"],
        format!("budget:{budget_id}:2026-03-01T00:00:00Z:member:near:exceeded")
    );
    assert_eq!(climbed[0]["evidence"]["spentUsd"], json!(1.05));

    // The API lists the firing member alerts and the summary.
    let alerts = api.get("/v1/alerts", &admin).await;
    let firing = alerts.body["alerts"].as_array().unwrap();
    let firing = firing.iter().filter(|a| a["state"] == "firing").count();
    // acme, carol, near at exceeded (its 80% alert resolved), t00..t09, the summary.
    assert_eq!(firing, 3 + 10 + 1);

    // April: a new period; March's alerts resolve without a message.
    evaluate("2026-04-01T00:01:00Z").await;
    assert_eq!(inbox.len(), 15);
    let alerts = api.get("/v1/alerts", &admin).await;
    let firing = alerts.body["alerts"].as_array().unwrap();
    assert!(
        firing.iter().all(|a| a["state"] == "resolved"),
        "{}",
        alerts.body
    );
    running.stop().await.unwrap();
}
