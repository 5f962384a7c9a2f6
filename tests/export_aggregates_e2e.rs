//! `format=csv` and `format=ndjson` on the aggregate reads (`/v1/top/{kind}`,
//! `/v1/timeseries`, `POST /v1/query`) against the real binary: the JSON answer's rows,
//! value for value, parsed back with the `csv` crate (and serde_json per NDJSON line);
//! money as exact decimal text; the dashboard's "Download CSV" link works with the
//! session cookie alone.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;

struct Csv {
    status: u16,
    content_type: String,
    disposition: String,
    header: Vec<String>,
    rows: Vec<HashMap<String, String>>,
}

async fn csv_of(req: reqwest::RequestBuilder) -> Csv {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.len(), columns.len(), "every record has every column");
            columns
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect();
    Csv {
        status,
        content_type,
        disposition,
        header: columns,
        rows,
    }
}

/// Exact decimal text to nano-USD, by hand (no f64): "0.00072" -> 720_000.
fn nanos(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 9, "{text}");
    let frac = format!("{frac:0<9}");
    whole.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
}

/// A CSV cell against the JSON value of the same field: null is an empty cell, a string
/// the same text, a number the same number.
fn same(cell: &str, value: &Value, what: &str) {
    match value {
        Value::Null => assert_eq!(cell, "", "{what}"),
        Value::String(s) => assert_eq!(cell, s, "{what}"),
        Value::Number(n) => assert_eq!(
            cell.parse::<f64>().unwrap(),
            n.as_f64().unwrap(),
            "{what}: {cell} vs {n}"
        ),
        other => panic!("{what}: unexpected {other}"),
    }
}

/// Five calls of gpt-4o-mini (3 on support.reply, 2 on search.rank) at 0.00024 each
/// (600 uncached input x $0.15/M + 400 cached x $0.075/M + 200 output x $0.60/M), and one
/// call of a model without a price on an endpoint whose name needs CSV quoting.
async fn seed(api: &Api, ingest: &str) {
    let mut events = Vec::new();
    for i in 0..5 {
        let mut e = event(&format!("e-{i}"));
        if i >= 3 {
            e["endpointTag"] = json!("search.rank");
        }
        events.push(e);
    }
    let mut odd = event("odd");
    odd["model"] = json!("house-model-unpriced");
    odd["endpointTag"] = json!("say \"hi\", then go");
    events.push(odd);
    let r = api.post("/v1/ingest/batch", ingest, &json!(events)).await;
    assert_eq!(r.body["accepted"], json!(6), "{}", r.body);
}

#[tokio::test]
async fn top_timeseries_and_query_csv_are_the_json_rows_value_for_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    seed(&api, &ingest).await;
    let get = |path: &str| {
        api.http
            .get(format!("{}{path}", api.url))
            .header("X-API-Key", &read)
    };

    // Top endpoints: the same rows as the JSON answer, in the same order.
    let json_top = api.get("/v1/top/endpoints?since=1h", &read).await.body;
    let top = csv_of(get("/v1/top/endpoints?since=1h&format=csv")).await;
    assert_eq!(
        (top.status, top.content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    assert_eq!(
        top.disposition,
        "attachment; filename=\"top-endpoints.csv\""
    );
    let json_rows = json_top["rows"].as_array().unwrap();
    assert_eq!(top.rows.len(), 3);
    assert_eq!(top.rows.len(), json_rows.len());
    assert_eq!(top.header[0], "endpointTag");
    for (row, j) in top.rows.iter().zip(json_rows) {
        same(
            &row["endpointTag"],
            &j["group"]["endpointTag"],
            "endpointTag",
        );
        for (field, value) in j.as_object().unwrap() {
            match value {
                Value::Object(inner) if field != "group" => {
                    for (f, v) in inner {
                        same(&row[&format!("{field}.{f}")], v, &format!("{field}.{f}"));
                    }
                }
                Value::Object(_) => {}
                v => same(&row[field], v, field),
            }
        }
    }
    // Money as exact text, computed by hand: 3 x 0.00024 and 2 x 0.00024.
    let by_tag: HashMap<&str, &HashMap<String, String>> = top
        .rows
        .iter()
        .map(|r| (r["endpointTag"].as_str(), r))
        .collect();
    assert_eq!(by_tag["support.reply"]["costUsd"], "0.00072");
    assert_eq!(by_tag["support.reply"]["costPerRequest"], "0.00024");
    assert_eq!(by_tag["search.rank"]["costUsd"], "0.00048");
    // The unpriced call: unknown cost is empty, never 0, and its count is there.
    let odd = by_tag["say \"hi\", then go"];
    assert_eq!(
        (odd["costUsd"].as_str(), odd["unpriced"].as_str()),
        ("", "1")
    );

    // Timeseries by model: one line per (bucket, series), the series' values.
    let ts_json = api
        .get("/v1/timeseries?since=24h&by=model", &read)
        .await
        .body;
    let ts = csv_of(get("/v1/timeseries?since=24h&by=model&format=csv")).await;
    assert_eq!(ts.header, ["bucket", "model", "costUsd", "requests"]);
    let buckets = ts_json["buckets"].as_array().unwrap();
    let series = ts_json["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{ts_json}");
    assert_eq!(ts.rows.len(), buckets.len() * 2);
    for (n, row) in ts.rows.iter().enumerate() {
        let (i, s) = (n / 2, &series[n % 2]);
        same(&row["bucket"], &buckets[i], "bucket");
        same(&row["model"], &s["key"], "model");
        same(&row["costUsd"], &s["costUsd"][i], "costUsd");
        same(&row["requests"], &s["requests"][i], "requests");
    }
    let of = |model: &'static str| ts.rows.iter().filter(move |r| r["model"] == model);
    let cost: i64 = of("gpt-4o-mini").map(|r| nanos(&r["costUsd"])).sum();
    assert_eq!(cost, 5 * 240_000);
    let calls = |model| -> u64 {
        of(model)
            .map(|r| r["requests"].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        (calls("gpt-4o-mini"), calls("house-model-unpriced")),
        (5, 1)
    );

    // The aggregate query: its rows with the measures asked (unpriced joins costUsd).
    let body = json!({"groupBy": ["model"], "measures": ["requests", "costUsd"]});
    let q_json = api.post("/v1/query", &read, &body).await.body;
    let q = csv_of(
        api.http
            .post(format!("{}/v1/query?format=csv", api.url))
            .header("X-API-Key", &read)
            .json(&body),
    )
    .await;
    assert_eq!(q.disposition, "attachment; filename=\"query.csv\"");
    assert_eq!(q.header, ["model", "requests", "costUsd", "unpriced"]);
    let q_rows = q_json["rows"].as_array().unwrap();
    assert_eq!(q.rows.len(), q_rows.len());
    for (row, j) in q.rows.iter().zip(q_rows) {
        same(&row["model"], &j["group"]["model"], "model");
        for m in ["requests", "costUsd", "unpriced"] {
            same(&row[m], &j[m], m);
        }
    }
    let mini = q.rows.iter().find(|r| r["model"] == "gpt-4o-mini").unwrap();
    assert_eq!(
        (mini["requests"].as_str(), mini["costUsd"].as_str()),
        ("5", "0.0012")
    );
}

#[tokio::test]
async fn a_bad_format_on_an_aggregate_read_is_a_400_naming_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let read = key(&db, "default", "read");
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    for path in [
        "/v1/top/endpoints?format=xml",
        "/v1/top/models?format=NDJSON",
        "/v1/timeseries?format=CSV",
    ] {
        let r = api.get(path, &read).await;
        assert_eq!(
            (r.status, blamed(&r.body["error"]["fields"])),
            (400, vec!["format".to_string()]),
            "{path}: {}",
            r.body
        );
    }
    let r = api.post("/v1/query?format=xls", &read, &json!({})).await;
    assert_eq!(
        (r.status, blamed(&r.body["error"]["fields"])),
        (400, vec!["format".to_string()])
    );
    // The query is the body: any other URL parameter is named, never ignored.
    let r = api.post("/v1/query?groupBy=model", &read, &json!({})).await;
    assert_eq!(
        (r.status, blamed(&r.body["error"]["fields"])),
        (400, vec!["groupBy".to_string()])
    );
    // format=json is the default, said out loud.
    let r = api.get("/v1/top/endpoints?format=json", &read).await;
    assert_eq!(r.status, 200);
    assert!(r.body["rows"].is_array());
}

#[tokio::test]
async fn the_dashboard_download_links_serve_the_csv_to_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    seed(&api, &ingest).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{}/login", api.url))
        .form(&[("key", read.as_str()), ("next", "/endpoints")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();

    // The endpoints' link keeps the page's model filter: two endpoints, not three.
    for (page, kind, first_column, rows) in [
        (
            "/endpoints?range=24h&model=gpt-4o-mini",
            "endpoints",
            "endpointTag",
            Some(2),
        ),
        ("/tenants?range=24h", "tenants", "tenantId", Some(1)),
        ("/tenants?range=24h&dim=userId", "users", "userId", None),
        ("/models?range=24h", "models", "provider", Some(2)),
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
        let start = html
            .find(&format!("href=\"/v1/top/{kind}?format=csv"))
            .unwrap_or_else(|| panic!("{page} has no Download CSV link"));
        let href = &html[start + 6..];
        let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
        assert!(html[start..].contains("Download CSV"));
        // No key header: the session cookie alone reads it.
        let csv = csv_of(
            http.get(format!("{}{href}", api.url))
                .header("cookie", &cookie),
        )
        .await;
        assert_eq!(csv.header[0], first_column, "{page}");
        let json = api.get(&href.replace("format=csv&", ""), &read).await.body;
        let expected = json["rows"].as_array().unwrap().len();
        assert_eq!(csv.rows.len(), expected, "{page}: {href}");
        if let Some(n) = rows {
            assert_eq!(csv.rows.len(), n, "{page}: {href}");
        }
    }
}

/// An NDJSON answer: its content type and its lines as ordered (key, value) lists.
async fn ndjson_of(req: reqwest::RequestBuilder) -> (String, String, Vec<Vec<(String, Value)>>) {
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let header = |name: &str| resp.headers()[name].to_str().unwrap().to_string();
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let text = resp.text().await.unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text}");
    let lines = text
        .lines()
        .map(|line| {
            // Keys in the order the line writes them (serde_json's Map would sort them).
            let object: Value = serde_json::from_str(line).unwrap();
            let object = object.as_object().unwrap().clone();
            let mut keys: Vec<(usize, String)> = object
                .keys()
                .map(|k| (line.find(&format!("{}:", json!(k))).unwrap(), k.clone()))
                .collect();
            keys.sort();
            keys.into_iter()
                .map(|(_, k)| (k.clone(), object[&k].clone()))
                .collect()
        })
        .collect();
    (content_type, disposition, lines)
}

/// An NDJSON line against the CSV record of the same row: the same keys in the same
/// order; null where the cell is empty; money columns as the same exact decimal string.
fn same_as_csv(line: &[(String, Value)], header: &[String], row: &HashMap<String, String>) {
    let keys: Vec<&String> = line.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, header.iter().collect::<Vec<_>>());
    for (k, v) in line {
        let cell = &row[k];
        match v {
            Value::Null => assert_eq!(cell, "", "{k}"),
            Value::String(s) => assert_eq!(s, cell, "{k}"),
            Value::Number(n) => assert_eq!(n.to_string(), *cell, "{k}"),
            other => panic!("{k}: unexpected {other}"),
        }
        let money = k.ends_with("costUsd") || k.ends_with("costPerRequest");
        if money && !v.is_null() {
            assert!(v.is_string(), "{k}: money is a decimal string, got {v}");
        }
    }
}

#[tokio::test]
async fn top_timeseries_and_query_ndjson_are_the_csv_rows_with_money_as_exact_strings() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    seed(&api, &ingest).await;
    let get = |path: &str| {
        api.http
            .get(format!("{}{path}", api.url))
            .header("X-API-Key", &read)
    };

    let (content_type, disposition, top) =
        ndjson_of(get("/v1/top/endpoints?since=1h&format=ndjson")).await;
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(disposition, "attachment; filename=\"top-endpoints.ndjson\"");
    let top_csv = csv_of(get("/v1/top/endpoints?since=1h&format=csv")).await;
    let top_json = api.get("/v1/top/endpoints?since=1h", &read).await.body;
    assert_eq!(top.len(), 3);
    assert_eq!(top.len(), top_json["rows"].as_array().unwrap().len());
    for (line, row) in top.iter().zip(&top_csv.rows) {
        same_as_csv(line, &top_csv.header, row);
    }
    for (line, j) in top.iter().zip(top_json["rows"].as_array().unwrap()) {
        let line: HashMap<&str, &Value> = line.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(line["endpointTag"], &j["group"]["endpointTag"]);
        assert_eq!(line["requests"], &j["requests"]);
        assert_eq!(line["unpriced"], &j["unpriced"]);
        assert_eq!(line["sharePct"], &j["sharePct"]);
    }
    // By hand: 3 x 0.00024 on support.reply, 2 x 0.00024 on search.rank; the unpriced
    // endpoint's cost is null, never "0".
    let by_tag: HashMap<String, HashMap<&str, &Value>> = top
        .iter()
        .map(|line| {
            let m: HashMap<&str, &Value> = line.iter().map(|(k, v)| (k.as_str(), v)).collect();
            (m["endpointTag"].as_str().unwrap().to_string(), m)
        })
        .collect();
    assert_eq!(by_tag["support.reply"]["costUsd"], &json!("0.00072"));
    assert_eq!(by_tag["support.reply"]["costPerRequest"], &json!("0.00024"));
    assert_eq!(by_tag["support.reply"]["requests"], &json!(3));
    assert_eq!(by_tag["search.rank"]["costUsd"], &json!("0.00048"));
    let odd = &by_tag["say \"hi\", then go"];
    assert_eq!((odd["costUsd"], odd["unpriced"]), (&Value::Null, &json!(1)));

    // Timeseries: one line per (bucket, series), as the CSV.
    let (_, disposition, ts) =
        ndjson_of(get("/v1/timeseries?since=24h&by=model&format=ndjson")).await;
    assert_eq!(disposition, "attachment; filename=\"timeseries.ndjson\"");
    let ts_csv = csv_of(get("/v1/timeseries?since=24h&by=model&format=csv")).await;
    assert_eq!(ts.len(), ts_csv.rows.len());
    for (line, row) in ts.iter().zip(&ts_csv.rows) {
        same_as_csv(line, &ts_csv.header, row);
    }
    let mini: i64 = ts
        .iter()
        .filter(|l| l[1].1 == json!("gpt-4o-mini"))
        .map(|l| nanos(l[2].1.as_str().unwrap()))
        .sum();
    assert_eq!(mini, 5 * 240_000);

    // The aggregate query.
    let body = json!({"groupBy": ["model"], "measures": ["requests", "costUsd"]});
    let post = |format: &str| {
        api.http
            .post(format!("{}/v1/query?format={format}", api.url))
            .header("X-API-Key", &read)
            .json(&body)
    };
    let (_, disposition, q) = ndjson_of(post("ndjson")).await;
    assert_eq!(disposition, "attachment; filename=\"query.ndjson\"");
    let q_csv = csv_of(post("csv")).await;
    assert_eq!(q.len(), 2);
    for (line, row) in q.iter().zip(&q_csv.rows) {
        same_as_csv(line, &q_csv.header, row);
    }
    let models: HashMap<&str, &Vec<(String, Value)>> =
        q.iter().map(|l| (l[0].1.as_str().unwrap(), l)).collect();
    assert_eq!(
        models["gpt-4o-mini"][1..],
        [
            ("requests".to_string(), json!(5)),
            ("costUsd".to_string(), json!("0.0012")),
            ("unpriced".to_string(), json!(0)),
        ]
    );
    assert_eq!(
        models["house-model-unpriced"][1..],
        [
            ("requests".to_string(), json!(1)),
            ("costUsd".to_string(), Value::Null),
            ("unpriced".to_string(), json!(1)),
        ]
    );
}
