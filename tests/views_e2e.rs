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
    assert!(v.is_number(), "not an amount of money: {v}");
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

/// One call on `endpoint` with `model` at `ts`; a cost only when given.
fn call(id: &str, ts: &str, endpoint: &str, model: &str, cost: Option<i64>) -> Value {
    let mut e = json!({
        "externalRequestId": id, "timestamp": ts, "provider": "openai", "model": model,
        "endpointTag": endpoint, "tenantId": "acme", "userId": "u1",
        "inputTokens": 100, "outputTokens": 10, "status": "success",
    });
    if model == "mystery-9000" {
        e["provider"] = json!("acme-labs");
    }
    if let Some(c) = cost {
        e["costUsd"] = usd(c);
    }
    e
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

#[tokio::test]
async fn unpriced_groups_show_a_null_cost_with_their_count_never_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let hour_ago = iso(jiff::Timestamp::now().as_millisecond() - 3_600_000);
    let events = json!([
        call("u1", &hour_ago, "labs.unpriced", "mystery-9000", None),
        call("u2", &hour_ago, "labs.unpriced", "mystery-9000", None),
        call("u3", &hour_ago, "labs.unpriced", "mystery-9000", None),
        call("m1", &hour_ago, "mixed.ep", "gpt-4o-mini", Some(2_000_000)),
        call("m2", &hour_ago, "mixed.ep", "mystery-9000", None),
    ]);
    let r = api.post("/v1/ingest/batch", &ingest, &events).await;
    assert_eq!(r.status, 202, "{}", r.body);

    let r = api.get("/v1/top/endpoints", &read).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let row = |body: &Value, key: &str, value: &str| -> Value {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"][key] == json!(value))
            .cloned()
            .unwrap_or_else(|| panic!("no row {value} in {body}"))
    };
    let unpriced = row(&r.body, "endpointTag", "labs.unpriced");
    assert_eq!(unpriced["costUsd"], Value::Null, "{unpriced}");
    assert_eq!(unpriced["unpriced"], json!(3));
    assert_eq!(unpriced["costPerRequest"], Value::Null);
    assert_eq!(
        unpriced["sharePct"],
        Value::Null,
        "an unknown share, not 0%"
    );
    let mixed = row(&r.body, "endpointTag", "mixed.ep");
    assert_eq!(nanos(&mixed["costUsd"]), 2_000_000);
    assert_eq!(mixed["unpriced"], json!(1));

    let r = api.get("/v1/top/models", &read).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let model = row(&r.body, "model", "mystery-9000");
    assert_eq!(model["costUsd"], Value::Null, "{model}");
    assert_eq!(model["unpriced"], json!(4));

    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"groupBy": ["endpointTag"], "measures": ["costUsd"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let unpriced = row(&r.body, "endpointTag", "labs.unpriced");
    assert_eq!(unpriced["costUsd"], Value::Null, "{unpriced}");
    assert_eq!(
        unpriced["unpriced"],
        json!(3),
        "the count goes with the money"
    );
    let mixed = row(&r.body, "endpointTag", "mixed.ep");
    assert_eq!(nanos(&mixed["costUsd"]), 2_000_000);
    assert_eq!(mixed["unpriced"], json!(1));

    // The CLI shows the same: "unpriced (3 calls)", never $0.00.
    let out = cli(&db, &["top", "endpoints"]);
    let line = out
        .lines()
        .find(|l| l.contains("labs.unpriced"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("unpriced (3 calls)"), "{line}");
    assert!(!line.contains("$0.00"), "{line}");
    let line = out.lines().find(|l| l.contains("mixed.ep")).unwrap();
    assert!(line.contains("$0.002 + 1 unpriced"), "{line}");
    server.stop();
}

#[tokio::test]
async fn cost_per_request_is_the_same_in_summary_top_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let (b, c) = ("2026-01-09T12:00:00Z", "2026-01-10T12:00:00Z");
    let events = json!([
        call("b1", b, "support.reply", "gpt-4o-mini", Some(10_000_000)),
        call("b2", b, "support.reply", "gpt-4o-mini", Some(10_000_000)),
        call("b3", b, "support.reply", "mystery-9000", None),
        call("c1", c, "support.reply", "gpt-4o-mini", Some(10_000_000)),
        call("c2", c, "support.reply", "gpt-4o-mini", Some(20_000_000)),
        call("c3", c, "support.reply", "gpt-4o-mini", Some(30_000_000)),
        call("c4", c, "support.reply", "mystery-9000", None),
        call("c5", c, "support.reply", "mystery-9000", None),
    ]);
    let r = api.post("/v1/ingest/batch", &ingest, &events).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // $0.06 over the 3 priced calls; the 2 unpriced ones have no known cost.
    let expected = 20_000_000;

    let summary = api.get(&format!("/v1/summary?{DAY}"), &read).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert_eq!(nanos(&summary.body["costPerRequest"]), expected);

    let top = api.get(&format!("/v1/top/endpoints?{DAY}"), &read).await;
    assert_eq!(top.status, 200, "{}", top.body);
    assert_eq!(nanos(&top.body["total"]["costPerRequest"]), expected);
    assert_eq!(nanos(&top.body["rows"][0]["costPerRequest"]), expected);

    let explain = api
        .get(
            &format!("/v1/explain?{DAY}&baselineFrom=2026-01-09T00:00:00Z&baselineTo=2026-01-10T00:00:00Z&by=endpointTag"),
            &read,
        )
        .await;
    assert_eq!(explain.status, 200, "{}", explain.body);
    assert_eq!(nanos(&explain.body["current"]["costPerRequest"]), expected);
    assert_eq!(
        nanos(&explain.body["baseline"]["costPerRequest"]),
        10_000_000
    );
    let group = &explain.body["dimensions"][0]["groups"][0];
    assert_eq!(nanos(&group["costPerRequest"]["current"]), expected);
    // The split uses the same calls: volume = Δpriced x mean cost/request, exact.
    let effects = &explain.body["effects"];
    assert_eq!(nanos(&effects["volumeUsd"]), 15_000_000);
    assert_eq!(nanos(&effects["costPerRequestUsd"]), 25_000_000);
    server.stop();
}

/// Rows written before ingest had bounds: a token count that wrapped negative in i64
/// and two costs of $5 billion on different days (each row fit; their sum does not).
#[tokio::test]
async fn rows_stored_out_of_range_never_make_a_read_fail_with_500() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let events = json!([
        call(
            "ok",
            "2026-01-10T10:30:00Z",
            "support.reply",
            "gpt-4o-mini",
            Some(1_000_000)
        ),
        call(
            "wrap",
            "2026-01-11T10:30:00Z",
            "support.reply",
            "gpt-4o-mini",
            Some(1_000_000)
        ),
        call(
            "huge-1",
            "2026-01-12T10:30:00Z",
            "support.reply",
            "gpt-4o-mini",
            Some(1_000_000)
        ),
        call(
            "huge-2",
            "2026-01-13T10:30:00Z",
            "support.reply",
            "gpt-4o-mini",
            Some(1_000_000)
        ),
    ]);
    let r = api.post("/v1/ingest/batch", &ingest, &events).await;
    assert_eq!(r.status, 202, "{}", r.body);
    server.stop();

    // The one place a test writes the database itself: the values old ingest let in.
    // Dropping the rollups' version rebuilds them from these events at the next start,
    // as the old writer had summed them.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let wrapped = (9_223_372_036_854_775_813u64) as i64; // 2^63 + 5 sent, stored wrapped
        c.execute(
            "UPDATE events SET input_tokens = ?1 WHERE external_request_id = 'wrap'",
            [wrapped],
        )
        .unwrap();
        c.execute(
            "UPDATE events SET cost_nanos = 5000000000000000000 WHERE external_request_id LIKE 'huge-%'",
            [],
        )
        .unwrap();
        c.execute("DELETE FROM meta WHERE key = 'rollups_version'", [])
            .unwrap();
    }
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let all = "from=2026-01-10T00:00:00Z&to=2026-01-14T00:00:00Z";

    // Events list, with the value the client sent.
    let r = api.get(&format!("/v1/events?{all}"), &read).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let wrap = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["externalRequestId"] == json!("wrap"))
        .cloned()
        .unwrap();
    assert_eq!(wrap["inputTokens"], json!(9_223_372_036_854_775_813u64));

    // A window without those rows reads as ever.
    let r = api.get(&format!("/v1/summary?{DAY}"), &read).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["requests"], json!(1));

    // Windows holding them: a 422 naming the cause on that request, never a 500.
    for window in [
        "from=2026-01-11T00:00:00Z&to=2026-01-12T00:00:00Z",
        "from=2026-01-12T00:00:00Z&to=2026-01-14T00:00:00Z",
        all,
    ] {
        for path in [
            "/v1/summary",
            "/v1/top/endpoints",
            "/v1/top/tenants",
            "/v1/top/users",
            "/v1/top/models",
            "/v1/timeseries",
            "/v1/concentration",
        ] {
            let r = api.get(&format!("{path}?{window}"), &read).await;
            assert_eq!(r.status, 422, "{path}?{window}: {}", r.body);
            assert_eq!(r.body["error"]["code"], json!("sum_overflow"), "{path}");
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("narrow the window"), "{message}");
        }
    }
    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"from": "2026-01-12T00:00:00Z", "to": "2026-01-14T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    // The dashboard says the same on its pages.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{}/login", server.url))
        .form(&[("key", read.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    for page in [
        "/",
        "/endpoints",
        "/tenants",
        "/models",
        "/versions",
        "/requests",
    ] {
        let resp = http
            .get(format!("{}{page}?{all}", server.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(status < 500, "{page}: {status}");
        if status != 200 {
            assert!(body.contains("narrow the window"), "{page}: {body}");
        }
    }
    server.stop();
}
