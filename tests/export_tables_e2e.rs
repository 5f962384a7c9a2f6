//! `format=csv|ndjson` with `table=` on the reads that answer several tables
//! (`/v1/explain`: drivers, dimensions, endpoints, mix; `/v1/budgets`: budgets,
//! members; `/v1/prompt-versions`: comparisons, versions) against the real binary: every
//! table's cells compared with the JSON answer's lists cell by cell, CSV parsed with the
//! `csv` crate, NDJSON with serde_json, and the amounts computed by hand. Every
//! "Download CSV" link of the dashboard pages that show those tables is fetched with the
//! session cookie alone and has the JSON answer's rows.

mod common;
use common::*;
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;

/// Exact decimal text to nano-USD, by hand (no f64): "0.00072" -> 720_000.
fn nanos(text: &str) -> i64 {
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 9, "{text}");
    let frac = format!("{frac:0<9}");
    sign * (whole.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap())
}

/// A table as both formats: the CSV header and records, the NDJSON objects.
struct Both {
    header: Vec<String>,
    csv: Vec<Vec<String>>,
    ndjson: Vec<serde_json::Map<String, Value>>,
}

async fn fetch(req: reqwest::RequestBuilder, content_type: &str, filename: &str) -> String {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], content_type);
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"{filename}\"").as_str()
    );
    text
}

async fn both(api: &Api, key: &str, path: &str, stem: &str) -> Both {
    let get = |format: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        api.http
            .get(format!("{}{path}{sep}format={format}", api.url))
            .header("X-API-Key", key)
    };
    let csv_text = fetch(
        get("csv"),
        "text/csv; charset=utf-8",
        &format!("{stem}.csv"),
    )
    .await;
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let csv: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let nd_text = fetch(
        get("ndjson"),
        "application/x-ndjson",
        &format!("{stem}.ndjson"),
    )
    .await;
    let ndjson: Vec<serde_json::Map<String, Value>> = nd_text
        .lines()
        .map(|l| {
            // Keys in the CSV header's order: the line starts with the first column.
            if let Some(first) = header.first() {
                assert!(l.starts_with(&format!("{{{}:", json!(first))), "{l}");
            }
            serde_json::from_str::<Value>(l)
                .unwrap()
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(csv.len(), ndjson.len(), "{path}");
    Both {
        header,
        csv,
        ndjson,
    }
}

/// `a.b` in a JSON object (null when any step is missing or null).
fn at<'a>(j: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(j, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// Columns that move with the clock between two reads (the budget's forecast).
const MOVING: &[&str] = &["forecastUsd", "projectedExhaustion"];

/// Row `i` of the table against the JSON object `j`, column by column: `context` holds
/// the columns that come from an enclosing object (the dimension of a group).
fn row_matches(t: &Both, i: usize, j: &Value, context: &[(&str, Value)], money: &[&str]) {
    let (csv, nd) = (&t.csv[i], &t.ndjson[i]);
    assert_eq!(nd.len(), t.header.len(), "every column is in the line");
    for (c, name) in t.header.iter().enumerate() {
        let expected = context
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| at(j, name).clone());
        let (cell, value) = (&csv[c], &nd[name]);
        let expected = &expected;
        if MOVING.contains(&name.as_str()) {
            // Each read is a moment later: known in all three or in none.
            assert_eq!(cell.is_empty(), value.is_null(), "{name}");
            assert_eq!(cell.is_empty(), expected.is_null(), "{name}");
            continue;
        }
        let what = format!("row {i} {name}: csv {cell:?}, ndjson {value}, json {expected}");
        match expected {
            Value::Null => assert!(cell.is_empty() && value.is_null(), "{what}"),
            Value::String(s) => assert!(cell == s && value == expected, "{what}"),
            Value::Bool(b) => assert!(*cell == b.to_string() && value == expected, "{what}"),
            Value::Array(_) => {
                assert!(
                    cell.as_str() == expected.to_string().as_str() && value == expected,
                    "{what}"
                )
            }
            Value::Number(n) if money.contains(&name.as_str()) => {
                // Money: the JSON number's exact value, as a decimal string in NDJSON.
                let from_json = (n.as_f64().unwrap() * 1e9).round() as i64;
                assert_eq!(nanos(cell), from_json, "{what}");
                assert_eq!(value.as_str(), Some(cell.as_str()), "{what}");
            }
            Value::Number(n) => {
                assert_eq!(cell.parse::<f64>().unwrap(), n.as_f64().unwrap(), "{what}");
                assert_eq!(value, expected, "{what}");
            }
            other => panic!("{what}: unexpected {other}"),
        }
    }
}

fn ts(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Baseline (the day before yesterday's 24 h): 2 calls on support.reply. Current (the
/// last 24 h): 4 on support.reply, 1 on search.rank for tenant beta, 1 of an unpriced
/// model. Each priced call is $0.00024 (600 uncached x $0.15/M + 400 cached x $0.075/M +
/// 200 output x $0.60/M).
async fn seed_windows(api: &Api, ingest: &str, now: i64) {
    let mut events = Vec::new();
    for i in 0..2 {
        let mut e = event(&format!("b-{i}"));
        e["timestamp"] = json!(ts(now - 30 * HOUR + i * 60_000));
        events.push(e);
    }
    for i in 0..4 {
        let mut e = event(&format!("c-{i}"));
        e["timestamp"] = json!(ts(now - 2 * HOUR + i * 60_000));
        events.push(e);
    }
    let mut rank = event("c-rank");
    rank["endpointTag"] = json!("search.rank");
    rank["tenantId"] = json!("beta");
    rank["timestamp"] = json!(ts(now - HOUR));
    events.push(rank);
    let mut odd = event("c-odd");
    odd["model"] = json!("house-model-unpriced");
    odd["timestamp"] = json!(ts(now - HOUR));
    events.push(odd);
    let r = api.post("/v1/ingest/batch", ingest, &json!(events)).await;
    assert_eq!(r.body["accepted"], json!(8), "{}", r.body);
}

const EXPLAIN_MONEY: &[&str] = &[
    "contributionUsd",
    "changeUsd",
    "volumeUsd",
    "costPerRequestUsd",
    "costUsd.baseline",
    "costUsd.current",
    "costPerRequest.baseline",
    "costPerRequest.current",
];

#[tokio::test]
async fn every_explain_table_is_the_json_lists_cell_by_cell_in_csv_and_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let now = now_ms();
    seed_windows(&api, &ingest, now).await;
    let window = format!("from={}&to={}", ts(now - 24 * HOUR), ts(now));
    let j = api.get(&format!("/v1/explain?{window}"), &read).await;
    assert_eq!(j.status, 200, "{}", j.body);
    let j = j.body;

    // Drivers (the default table).
    let drivers = both(
        &api,
        &read,
        &format!("/v1/explain?{window}"),
        "explain-drivers",
    )
    .await;
    let named = both(
        &api,
        &read,
        &format!("/v1/explain?{window}&table=drivers"),
        "explain-drivers",
    )
    .await;
    assert_eq!(named.csv, drivers.csv);
    let list = j["drivers"].as_array().unwrap();
    assert!(!list.is_empty(), "{j}");
    assert_eq!(drivers.csv.len(), list.len());
    for (i, d) in list.iter().enumerate() {
        row_matches(&drivers, i, d, &[], EXPLAIN_MONEY);
    }

    // Dimensions: one line per (dimension, group), the dimension from the enclosing list.
    let dims = both(
        &api,
        &read,
        &format!("/v1/explain?{window}&table=dimensions"),
        "explain-dimensions",
    )
    .await;
    let mut i = 0;
    for d in j["dimensions"].as_array().unwrap() {
        for g in d["groups"].as_array().unwrap() {
            row_matches(
                &dims,
                i,
                g,
                &[("dimension", d["dimension"].clone())],
                EXPLAIN_MONEY,
            );
            i += 1;
        }
    }
    assert_eq!(dims.csv.len(), i);
    // By hand: support.reply 2 -> 4 calls at $0.00024: +$0.00048, all volume; search.rank
    // is new (+$0.00024, from no calls, $0); the unpriced model's cost is unknown (null).
    let line = |dimension: &str, value: &str| {
        dims.ndjson
            .iter()
            .find(|l| l["dimension"] == dimension && l["value"] == value)
            .unwrap_or_else(|| panic!("{dimension}={value}"))
            .clone()
    };
    let reply = line("endpointTag", "support.reply");
    assert_eq!(
        [
            &reply["requests.baseline"],
            &reply["requests.current"],
            &reply["costUsd.baseline"],
            &reply["costUsd.current"],
            &reply["changeUsd"],
            &reply["volumeUsd"],
            &reply["costPerRequestUsd"],
            &reply["presence"],
        ],
        [
            &json!(2),
            &json!(5),
            &json!("0.00048"),
            &json!("0.00096"),
            &json!("0.00048"),
            &json!("0.00048"),
            &json!("0"),
            &json!("both"),
        ]
    );
    let rank = line("endpointTag", "search.rank");
    assert_eq!(
        (
            &rank["presence"],
            &rank["changeUsd"],
            &rank["costUsd.baseline"]
        ),
        (&json!("new"), &json!("0.00024"), &json!("0"))
    );
    let odd = line("model", "house-model-unpriced");
    assert_eq!(
        (&odd["costUsd.current"], &odd["unpriced.current"]),
        (&Value::Null, &json!(1))
    );

    // Endpoints: one line per endpoint, the cause flattened.
    let eps = both(
        &api,
        &read,
        &format!("/v1/explain?{window}&table=endpoints"),
        "explain-endpoints",
    )
    .await;
    let list = j["endpoints"].as_array().unwrap();
    assert_eq!(eps.csv.len(), list.len());
    for (i, e) in list.iter().enumerate() {
        row_matches(&eps, i, e, &[], EXPLAIN_MONEY);
    }

    // Mix: each endpoint's prompt versions then models.
    let mix = both(
        &api,
        &read,
        &format!("/v1/explain?{window}&table=mix"),
        "explain-mix",
    )
    .await;
    let mut i = 0;
    for e in list {
        for (dimension, field) in [("promptVersion", "promptVersions"), ("model", "models")] {
            for m in e[field].as_array().unwrap() {
                let context = [
                    ("endpointTag", e["endpointTag"].clone()),
                    ("dimension", json!(dimension)),
                ];
                row_matches(&mix, i, m, &context, EXPLAIN_MONEY);
                i += 1;
            }
        }
    }
    assert_eq!(mix.csv.len(), i);
    assert!(i > 0, "{j}");
}

#[tokio::test]
async fn explain_and_budget_tables_refuse_bad_format_and_table_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    for (path, field) in [
        ("/v1/explain?since=24h&format=xml", "format"),
        ("/v1/explain?since=24h&format=csv&table=causes", "table"),
        ("/v1/explain?since=24h&table=drivers", "table"),
        ("/v1/budgets?format=tsv", "format"),
        ("/v1/budgets?format=ndjson&table=tenants", "table"),
        ("/v1/budgets?table=members", "table"),
        ("/v1/budgets?membersLimit=0", "membersLimit"),
        ("/v1/budgets?limit=5", "limit"),
        ("/v1/reconciliation?format=csv&table=months", "table"),
        ("/v1/reconciliation?table=days", "table"),
        ("/v1/prompt-versions?format=csv&table=x", "table"),
    ] {
        let r = api.get(path, &read).await;
        assert_eq!(
            (r.status, blamed(&r.body["error"]["fields"])),
            (400, vec![field.to_string()]),
            "{path}: {}",
            r.body
        );
    }
}

const BUDGET_MONEY: &[&str] = &[
    "limitUsd",
    "spentUsd",
    "reservedUsd",
    "remainingUsd",
    "forecastUsd",
];

#[tokio::test]
async fn budget_tables_are_the_json_budgets_and_their_members_over_and_near_caps() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    for body in [
        json!({"name": "all", "scope": {}, "period": "month", "limitUsd": 1, "action": "notify"}),
        json!({"name": "each, tenant", "scope": {"tenantId": "*"}, "period": "month",
               "limitUsd": 0.0005, "action": "notify"}),
    ] {
        let r = api.post("/v1/budgets", &admin, &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // acme 3 calls ($0.00072: over its $0.0005), gamma 2 ($0.00048: 96%, past the 80%
    // threshold), beta 1 ($0.00024: 48%, neither), plus one unpriced call of acme's.
    let mut events = Vec::new();
    for (tenant, n) in [("acme", 3), ("gamma", 2), ("beta", 1)] {
        for i in 0..n {
            let mut e = event(&format!("{tenant}-{i}"));
            e["tenantId"] = json!(tenant);
            events.push(e);
        }
    }
    let mut odd = event("odd");
    odd["model"] = json!("house-model-unpriced");
    events.push(odd);
    let r = api.post("/v1/ingest/batch", &ingest, &json!(events)).await;
    assert_eq!(r.body["accepted"], json!(7), "{}", r.body);

    let j = api.get("/v1/budgets", &read).await.body;
    let list = j["budgets"].as_array().unwrap();
    assert_eq!(list.len(), 2);

    let budgets = both(&api, &read, "/v1/budgets", "budgets-budgets").await;
    assert_eq!(budgets.csv.len(), 2);
    for (i, b) in list.iter().enumerate() {
        let s = &b["status"];
        let context = [
            ("scope", json!(b["budget"]["scope"].to_string())),
            ("period", b["budget"]["period"].clone()),
            ("action", b["budget"]["action"].clone()),
        ];
        row_matches(&budgets, i, s, &context, BUDGET_MONEY);
    }
    let by_name = |name: &str| {
        budgets
            .ndjson
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()
            .clone()
    };
    // By hand: 6 priced calls x $0.00024 = $0.00144 of $1; 1 unpriced call.
    let all = by_name("all");
    assert_eq!(
        (
            &all["spentUsd"],
            &all["remainingUsd"],
            &all["unpricedRequests"]
        ),
        (&json!("0.00144"), &json!("0.99856"), &json!(1))
    );
    assert_eq!(all["members.count"], Value::Null);
    let each = by_name("each, tenant");
    assert_eq!(
        (&each["members.over"], &each["members.near"]),
        (&json!(1), &json!(1))
    );

    // Members: the pages of the per-member budget, most over first.
    let members = both(
        &api,
        &read,
        "/v1/budgets?table=members&membersLimit=100",
        "budgets-members",
    )
    .await;
    let j = api.get("/v1/budgets?membersLimit=100", &read).await.body;
    let mut i = 0;
    for b in j["budgets"].as_array().unwrap() {
        let s = &b["status"];
        for m in s["members"]["page"].as_array().into_iter().flatten() {
            let context = [
                ("budgetId", s["budgetId"].clone()),
                ("budgetName", s["name"].clone()),
            ];
            row_matches(&members, i, m, &context, BUDGET_MONEY);
            i += 1;
        }
    }
    assert_eq!(members.csv.len(), i);
    let rows: Vec<(String, String, String)> = members
        .ndjson
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_string();
            (s("member"), s("spentUsd"), s("state"))
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("acme".into(), "0.00072".into(), "exceeded".into()),
            ("gamma".into(), "0.00048".into(), "warning".into()),
        ]
    );
    assert_eq!(members.header[..3], ["budgetId", "budgetName", "member"]);
    assert_eq!(members.csv[0][1], "each, tenant");
}

/// How many rows the JSON answer's list behind a table has (`table` as in the link).
fn json_rows(path: &str, table: Option<&str>, j: &Value) -> usize {
    let len = |v: &Value| v.as_array().map_or(0, Vec::len);
    let sum = |list: &Value, f: &dyn Fn(&Value) -> usize| {
        list.as_array().unwrap().iter().map(f).sum::<usize>()
    };
    match (path, table) {
        (p, None) if p.starts_with("/v1/top/") => len(&j["rows"]),
        ("/v1/prompt-versions", None) => len(&j["endpoints"]),
        ("/v1/prompt-versions", Some("versions")) => sum(&j["endpoints"], &|e| len(&e["versions"])),
        ("/v1/explain", Some("drivers")) => len(&j["drivers"]),
        ("/v1/explain", Some("dimensions")) => sum(&j["dimensions"], &|d| len(&d["groups"])),
        ("/v1/explain", Some("endpoints")) => len(&j["endpoints"]),
        ("/v1/explain", Some("mix")) => sum(&j["endpoints"], &|e| {
            len(&e["promptVersions"]) + len(&e["models"])
        }),
        ("/v1/reconciliation", None) => len(&j["days"]),
        ("/v1/reconciliation", Some("models")) => sum(&j["days"], &|d| len(&d["models"])),
        ("/v1/budgets", None) => len(&j["budgets"]),
        ("/v1/budgets", Some("members")) => {
            sum(&j["budgets"], &|b| len(&b["status"]["members"]["page"]))
        }
        other => panic!("no list for {other:?}"),
    }
}

#[tokio::test]
async fn every_download_link_of_the_dashboard_serves_its_table_to_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read, admin) = (
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
        key(&db, "default", "admin"),
    );
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let r = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "each tenant", "scope": {"tenantId": "*"}, "period": "month",
                    "limitUsd": 0.0005, "action": "notify"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let now = now_ms();
    seed_windows(&api, &ingest, now).await;
    // Two prompt versions of support.reply today, so the versions page has a comparison.
    let mut versions = Vec::new();
    for (i, v) in ["sr_v1", "sr_v2", "sr_v2"].iter().enumerate() {
        let mut e = event(&format!("v-{i}"));
        e["promptVersion"] = json!(v);
        e["timestamp"] = json!(ts(now - 3 * HOUR + i as i64 * 60_000));
        versions.push(e);
    }
    let r = api
        .post("/v1/ingest/batch", &ingest, &json!(versions))
        .await;
    assert_eq!(r.body["accepted"], json!(3), "{}", r.body);

    // A provider's bill for today, split by model: $0.002 for gpt-4o-mini.
    let today = &ts(now)[..10];
    let bill = format!("date,provider,model,amountUsd\n{today},openai,gpt-4o-mini,0.002\n");
    let imported = api
        .http
        .post(format!("{}/v1/reconciliation/import?format=csv", api.url))
        .header("X-API-Key", &admin)
        .header("content-type", "text/csv")
        .body(bill)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status().as_u16(), 200);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{}/login", api.url))
        .form(&[("key", read.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();

    let window = format!("from={}&to={}", ts(now - 24 * HOUR), ts(now));
    let mut seen = Vec::new();
    for (page, links) in [
        (format!("/tenant?tenantId=acme&{window}"), 4),
        (format!("/versions?{window}"), 2),
        (format!("/explain?{window}"), 4),
        ("/budgets".to_string(), 2),
        (format!("/reconciliation?{window}"), 2),
    ] {
        let html = http
            .get(format!("{}{page}", api.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let hrefs: Vec<String> = html
            .split("class=\"csv-link\" download href=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
            .collect();
        assert_eq!(hrefs.len(), links, "{page}: {hrefs:?}");
        for href in hrefs {
            // No key header: the session cookie alone reads it.
            let resp = http
                .get(format!("{}{href}", api.url))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{href}");
            assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
            let text = resp.text().await.unwrap();
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let rows = reader.records().map(Result::unwrap).count();
            // The same question as JSON (with the read key): the same number of rows.
            let (path, query) = href.split_once('?').unwrap();
            let mut table = None;
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| match p.split_once('=') {
                    Some(("format", _)) => false,
                    Some(("table", t)) => {
                        table = Some(t);
                        false
                    }
                    _ => true,
                })
                .collect();
            let j = api.get(&format!("{path}?{}", kept.join("&")), &read).await;
            assert_eq!(j.status, 200, "{href}: {}", j.body);
            assert_eq!(rows, json_rows(path, table, &j.body), "{page}: {href}");
            assert!(rows > 0, "{page}: {href} has no rows to compare");
            seen.push(href);
        }
    }
    // The prompt-version tables, cell by cell against the JSON answer.
    let path = format!("/v1/prompt-versions?{window}");
    let j = api.get(&path, &read).await.body;
    let money = &[
        "costUsd",
        "costPerRequest",
        "current.costUsd",
        "current.costPerRequest",
        "baseline.costUsd",
        "baseline.costPerRequest",
    ];
    let comparisons = both(&api, &read, &path, "prompt-versions-comparisons").await;
    let endpoints = j["endpoints"].as_array().unwrap();
    assert_eq!(comparisons.csv.len(), endpoints.len());
    for (i, e) in endpoints.iter().enumerate() {
        row_matches(&comparisons, i, e, &[], money);
    }
    let every = both(
        &api,
        &read,
        &format!("{path}&table=versions"),
        "prompt-versions-versions",
    )
    .await;
    let mut i = 0;
    for e in endpoints {
        for v in e["versions"].as_array().unwrap() {
            row_matches(
                &every,
                i,
                v,
                &[("endpointTag", e["endpointTag"].clone())],
                money,
            );
            i += 1;
        }
    }
    assert_eq!(every.csv.len(), i);
    // By hand: sr_v2 has two calls at $0.00024, sr_v1 one.
    let version = |name: &str| {
        every
            .ndjson
            .iter()
            .find(|l| l["promptVersion"] == name)
            .unwrap()
            .clone()
    };
    let (v1, v2) = (version("sr_v1"), version("sr_v2"));
    assert_eq!(
        (
            &v2["requests"],
            &v2["costUsd"],
            &v1["requests"],
            &v1["costUsd"]
        ),
        (&json!(2), &json!("0.00048"), &json!(1), &json!("0.00024"))
    );

    // The bill's tables, cell by cell against the JSON answer.
    let path = format!("/v1/reconciliation?from={today}");
    let j = api.get(&path, &read).await.body;
    let money = &[
        "billedUsd",
        "attributedUsd",
        "differenceUsd",
        "unattributed.notReportedUsd",
        "unattributed.priceGapUsd",
        "unattributed.otherUsd",
        "unattributed.overAttributedUsd",
    ];
    let days = both(&api, &read, &path, "reconciliation-days").await;
    let list = j["days"].as_array().unwrap();
    assert_eq!((days.csv.len(), list.len()), (1, 1), "{j}");
    row_matches(&days, 0, &list[0], &[], money);
    let models = both(
        &api,
        &read,
        &format!("{path}&table=models"),
        "reconciliation-models",
    )
    .await;
    let mut i = 0;
    for d in list {
        for m in d["models"].as_array().unwrap() {
            let context = [
                ("day", d["day"].clone()),
                ("provider", d["provider"].clone()),
            ];
            row_matches(&models, i, m, &context, money);
            i += 1;
        }
    }
    assert_eq!(models.csv.len(), i);
    // By hand: billed is the bill's $0.002; the difference is billed minus attributed.
    let day = &days.ndjson[0];
    assert_eq!(day["billedUsd"], json!("0.002"));
    let attributed = nanos(day["attributedUsd"].as_str().unwrap());
    assert_eq!(
        nanos(day["differenceUsd"].as_str().unwrap()),
        2_000_000 - attributed
    );

    // The tenant page's tables are the tenant's: its link carries the filter.
    assert!(
        seen[0].starts_with("/v1/top/endpoints?format=csv&from="),
        "{}",
        seen[0]
    );
    assert!(seen[0].contains("tenantId=acme"), "{}", seen[0]);
}
