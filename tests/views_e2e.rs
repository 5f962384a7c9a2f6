//! Views that must be true against the real binary: totals, shares and concentration
//! past the query layer's row limit, sums that overflow or rows stored out of range,
//! unpriced groups never shown as $0, and one cost/request in every view.

mod common;

use common::{cli, key, Api, Server};
use serde_json::{json, Value};

const DAY: &str = "from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z";

/// Exact nano-USD of a JSON money value (written from the exact decimal text; up to
/// 15 significant digits survive f64 parsing unchanged).
fn nanos(v: &Value) -> i64 {
    let text = v.to_string();
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    assert!(frac.len() <= 9, "{text}");
    whole.parse::<i64>().unwrap() * 1_000_000_000 + format!("{frac:0<9}").parse::<i64>().unwrap()
}

/// `nanos` as the decimal USD text a client sends.
fn usd(nanos: i64) -> Value {
    let text = format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000);
    serde_json::from_str(&text).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn share(part: i64, total: i64) -> f64 {
    part as f64 / total as f64 * 100.0
}

/// The cost of the i-th of the many-tenant events: all different, so ranks are fixed.
fn cost_of(i: i64) -> i64 {
    1_000_000 + i * 1_000
}

const MANY: i64 = 12_000;

#[tokio::test]
async fn totals_shares_and_concentration_are_exact_past_the_row_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    // 12,000 calls, each of its own tenant and user, in one hour of 2026-01-10.
    let events: Vec<Value> = (0..MANY)
        .map(|i| {
            json!({
                "externalRequestId": format!("many-{i}"),
                "timestamp": format!("2026-01-10T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
                "provider": "openai", "model": "gpt-4o-mini",
                "endpointTag": if i % 2 == 0 { "support.reply" } else { "search.rank" },
                "tenantId": format!("tenant-{i:05}"), "userId": format!("user-{i:05}"),
                "inputTokens": 100, "outputTokens": 10, "status": "success",
                "costUsd": usd(cost_of(i)),
            })
        })
        .collect();
    // One call the day before: the baseline of explain and the previous window of top.
    let base = json!([{
        "externalRequestId": "base", "timestamp": "2026-01-09T12:00:00Z",
        "provider": "openai", "model": "gpt-4o-mini", "endpointTag": "support.reply",
        "tenantId": "tenant-00001", "userId": "user-00001", "inputTokens": 100,
        "outputTokens": 10, "status": "success", "costUsd": usd(5_000_000),
    }]);
    let r = api.post("/v1/ingest/batch", &ingest, &base).await;
    assert_eq!(r.status, 202, "{}", r.body);
    for chunk in events.chunks(3_000) {
        let r = api.post("/v1/ingest/batch", &ingest, &json!(chunk)).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["accepted"], json!(chunk.len()));
    }
    let total: i64 = (0..MANY).map(cost_of).sum();
    let top5: i64 = (MANY - 5..MANY).map(cost_of).sum();
    let largest = cost_of(MANY - 1);

    for (kind, dim, prefix) in [
        ("tenants", "tenantId", "tenant"),
        ("users", "userId", "user"),
    ] {
        let r = api
            .get(&format!("/v1/top/{kind}?{DAY}&limit=5"), &read)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["total"]["requests"], json!(MANY), "{kind}");
        assert_eq!(nanos(&r.body["total"]["costUsd"]), total, "{kind}");
        let rows = r.body["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[0]["group"][dim],
            json!(format!("{prefix}-{:05}", MANY - 1))
        );
        assert_eq!(nanos(&r.body["previousTotal"]["costUsd"]), 5_000_000);
        let got = rows[0]["sharePct"].as_f64().unwrap();
        assert!(close(got, share(largest, total)), "{kind}: {got}");

        let r = api
            .get(&format!("/v1/concentration?{DAY}&by={dim}"), &read)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let top1 = r.body["top1SharePct"].as_f64().unwrap();
        let top5_got = r.body["top5SharePct"].as_f64().unwrap();
        assert!(close(top1, share(largest, total)), "{kind}: {top1}");
        assert!(close(top5_got, share(top5, total)), "{kind}: {top5_got}");
    }

    // The time series by tenant: the total and the series (top groups + other) add up.
    let r = api
        .get(
            &format!("/v1/timeseries?{DAY}&bucket=hour&by=tenantId&limit=5"),
            &read,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sum = |v: &Value| -> (i64, u64) {
        let cost = v["costUsd"].as_array().unwrap().iter().map(nanos).sum();
        let n = v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum();
        (cost, n)
    };
    assert_eq!(sum(&r.body["total"]), (total, MANY as u64));
    let series = r.body["series"].as_array().unwrap();
    let (cost, n) = series
        .iter()
        .map(sum)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!((cost, n), (total, MANY as u64));
    assert_eq!(series.last().unwrap()["key"], json!("other"));

    // The raw query: rows cut at its limit, totals of every group, and how many were cut.
    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"from": "2026-01-10T00:00:00Z", "to": "2026-01-11T00:00:00Z",
                    "groupBy": ["tenantId"], "limit": 10}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rows"].as_array().unwrap().len(), 10);
    assert_eq!(r.body["rowsCut"], json!(MANY - 10));
    assert_eq!(r.body["totals"][0]["requests"], json!(MANY));
    assert_eq!(nanos(&r.body["totals"][0]["costUsd"]), total);

    // Explain folds the groups past its row limit into "(other)": every dimension still
    // adds up to the total.
    let r = api
        .get(
            "/v1/explain?from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z&baselineFrom=2026-01-09T00:00:00Z&baselineTo=2026-01-10T00:00:00Z&by=tenantId",
            &read,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(nanos(&r.body["current"]["costUsd"]), total);
    let groups = r.body["dimensions"][0]["groups"].as_array().unwrap();
    let current: i64 = groups.iter().map(|g| nanos(&g["costUsd"]["current"])).sum();
    assert_eq!(current, total);
    assert!(groups.iter().any(|g| g["value"] == json!("(other)")));
    server.stop();
}
