//! Reconciliation with the provider's bill against the real binary: each sample report
//! format (testdata/reconcile/, built from the providers' documented shapes) imported by
//! the API and the CLI, billed against attributed per day and provider with the
//! unattributed spend by cause (every number computed by hand in the comments),
//! re-imports that replace instead of adding, the bill_mismatch alert firing on a gap and
//! quiet on a matching day, and bad files refused naming the line or field.

mod common;

use common::{blamed, cli, Api, Server};
use serde_json::{json, Value};

const NANO: i64 = 1_000_000_000;
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/reconcile");

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
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

fn call(id: &str, provider: &str, model: &str, day: u32, cost: Option<&str>) -> Value {
    let mut e = json!({
        "externalRequestId": id, "provider": provider, "model": model,
        "endpointTag": "support.reply", "tenantId": "acme", "inputTokens": 1000,
        "outputTokens": 200, "status": "success", "environment": "prod", "dataMode": "real",
        "timestamp": format!("2026-11-{day:02}T12:00:00Z"),
    });
    if let Some(c) = cost {
        e["costUsd"] = json!(c.parse::<f64>().unwrap());
    }
    e
}

/// The calls burnrate saw:
/// - openai Nov 2: 10 x $0.25 in prod + 1 x $0.10 in staging = $2.60 (and $5 of test
///   data, not attributed); Nov 3: 4 x $0.25 = $1.00.
/// - anthropic Nov 2: claude-sonnet-4-5 8 x $0.50 = $4.00; claude-custom-x 2 calls
///   without a price.
/// - mistral Nov 4: mistral-large-latest 3 x $0.25 = $0.75.
fn calls() -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..10 {
        out.push(call(
            &format!("o2-{i}"),
            "openai",
            "gpt-4o-mini",
            2,
            Some("0.25"),
        ));
    }
    let mut staging = call("o2-s", "openai", "gpt-4o-mini", 2, Some("0.10"));
    staging["environment"] = json!("staging");
    out.push(staging);
    let mut test = call("o2-t", "openai", "gpt-4o-mini", 2, Some("5"));
    test["dataMode"] = json!("test");
    out.push(test);
    for i in 0..4 {
        out.push(call(
            &format!("o3-{i}"),
            "openai",
            "gpt-4o-mini",
            3,
            Some("0.25"),
        ));
    }
    for i in 0..8 {
        let id = format!("a2-{i}");
        out.push(call(&id, "anthropic", "claude-sonnet-4-5", 2, Some("0.5")));
    }
    for i in 0..2 {
        out.push(call(
            &format!("a2-x{i}"),
            "anthropic",
            "claude-custom-x",
            2,
            None,
        ));
    }
    for i in 0..3 {
        let id = format!("m4-{i}");
        out.push(call(
            &id,
            "mistral",
            "mistral-large-latest",
            4,
            Some("0.25"),
        ));
    }
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    server: Server,
    admin: String,
    read: String,
}

async fn fixture() -> Fixture {
    fixture_on(None).await
}

/// The fixture on SQLite, or on the ClickHouse store URL `store` (keys made there too).
async fn fixture_on(store: Option<String>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let mut flags: Vec<String> = Vec::new();
    if let Some(url) = &store {
        flags = vec!["--store".into(), url.clone()];
    }
    let make_key = |scope: &str| {
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend(["keys", "create", "--workspace", "default", "--scope", scope]);
        cli(&db, &args).trim().to_string()
    };
    let (admin, read) = (make_key("admin"), make_key("read"));
    let mut extra: Vec<&str> = flags.iter().map(String::as_str).collect();
    extra.push("--no-alerts");
    let server = Server::start(&db, &extra);
    let api = Api::new(&server);
    let r = api.post("/v1/ingest/batch", &admin, &json!(calls())).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["accepted"], json!(calls().len()), "{}", r.body);
    Fixture {
        _dir: dir,
        db,
        server,
        admin,
        read,
    }
}

async fn import(api: &Api, admin: &str, file: &str, format: Option<&str>) -> common::Reply {
    let path = match format {
        Some(f) => format!("/v1/reconciliation/import?format={f}"),
        None => "/v1/reconciliation/import".to_string(),
    };
    api.post_raw(&path, Some(admin), "application/json", sample(file).into())
        .await
}

fn day<'a>(report: &'a Value, day: &str, provider: &str) -> &'a Value {
    report["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == day && d["provider"] == provider)
        .unwrap_or_else(|| panic!("no row {day} {provider} in {report}"))
}

const WINDOW: &str = "/v1/reconciliation?from=2026-11-01&to=2026-11-08";

#[tokio::test]
async fn every_format_reconciles_to_hand_computed_numbers() {
    every_format_on(fixture().await).await;
}

/// The same on ClickHouse (bill days are control objects there too; the attribution is
/// its aggregate). Skips without `BURNRATE_CH_URL`, like tests/clickhouse_e2e.rs.
#[tokio::test]
async fn every_format_reconciles_the_same_on_clickhouse() {
    let Some(url) = common::clickhouse_url("BURNRATE_CH_URL") else {
        eprintln!("BURNRATE_CH_URL is not set (scripts/clickhouse.sh env): skipped");
        return;
    };
    let store = url.replace("{db}", &format!("e2e_reconcile_{}", std::process::id()));
    every_format_on(fixture_on(Some(store)).await).await;
}

async fn every_format_on(f: Fixture) {
    let api = Api::new(&f.server);
    // Formats told from the files (openai-usage named, to test the parameter).
    for (file, format, days) in [
        ("openai-costs.json", None, 2),
        ("anthropic-cost.json", None, 1),
        ("openai-usage.json", Some("openai-usage"), 1),
    ] {
        let r = import(&api, &f.admin, file, format).await;
        assert_eq!(r.status, 200, "{file}: {}", r.body);
        assert_eq!(r.body["days"], json!(days), "{file}: {}", r.body);
        assert_eq!(r.body["replaced"], json!(0));
    }
    let r = api
        .post_raw(
            "/v1/reconciliation/import",
            Some(&f.admin),
            "text/csv",
            sample("generic.csv").into(),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["format"]),
        (200, &json!("csv")),
        "{}",
        r.body
    );

    let r = api.get(WINDOW, &f.read).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rep = &r.body;

    // OpenAI Nov 2: $2.50 + $0.10 billed; $2.60 attributed (prod and staging, not test).
    let d = day(rep, "2026-11-02", "openai");
    assert_eq!(nanos(&d["billedUsd"]), 2_600_000_000);
    assert_eq!(nanos(&d["attributedUsd"]), 2_600_000_000);
    assert_eq!(nanos(&d["differenceUsd"]), 0);
    assert_eq!(d["coveragePct"], json!(100.0));
    assert_eq!(d["requests"], json!(11));
    // OpenAI Nov 3: $1.50 billed, $1.00 seen, all priced: $0.50 "other".
    let d = day(rep, "2026-11-03", "openai");
    assert_eq!(nanos(&d["billedUsd"]), 1_500_000_000);
    assert_eq!(nanos(&d["attributedUsd"]), 1_000_000_000);
    assert_eq!(nanos(&d["unattributed"]["otherUsd"]), 500_000_000);
    assert_eq!(nanos(&d["unattributed"]["notReportedUsd"]), 0);
    let coverage = d["coveragePct"].as_f64().unwrap();
    assert!((coverage - 100.0 * 2.0 / 3.0).abs() < 1e-9, "{coverage}");

    // Anthropic Nov 2, cents to dollars: sonnet 250.5 + 149.5 = 400 cents = $4.00;
    // claude-custom-x 123.456789 cents = $1.23456789; haiku 35 cents; web search 10
    // cents. Billed $5.68456789; attributed $4.00 (the custom model's calls are unpriced).
    let d = day(rep, "2026-11-02", "anthropic");
    assert_eq!(nanos(&d["billedUsd"]), 5_684_567_890);
    assert_eq!(nanos(&d["attributedUsd"]), 4_000_000_000);
    assert_eq!(nanos(&d["differenceUsd"]), 1_684_567_890);
    let u = &d["unattributed"];
    assert_eq!(
        nanos(&u["priceGapUsd"]),
        1_234_567_890,
        "custom model: seen, unpriced"
    );
    assert_eq!(
        nanos(&u["notReportedUsd"]),
        450_000_000,
        "haiku + web search: no calls"
    );
    assert_eq!(nanos(&u["otherUsd"]), 0);
    assert_eq!(d["unpriced"], json!(2));
    assert_eq!(d["unpricedModels"], json!(["claude-custom-x"]));
    let models = d["models"].as_array().unwrap();
    let sonnet = models
        .iter()
        .find(|m| m["model"] == "claude-sonnet-4-5")
        .unwrap();
    assert_eq!(nanos(&sonnet["billedUsd"]), 4_000_000_000);
    assert_eq!(nanos(&sonnet["attributedUsd"]), 4_000_000_000);
    assert_eq!(sonnet["requests"], json!(8));
    assert!(
        models.iter().any(|m| m["model"].is_null()),
        "the web search line"
    );

    // Mistral Nov 4 (CSV): $0.75 + $0.05 without a model; $0.75 seen.
    let d = day(rep, "2026-11-04", "mistral");
    assert_eq!(nanos(&d["billedUsd"]), 800_000_000);
    assert_eq!(nanos(&d["attributedUsd"]), 750_000_000);
    assert_eq!(nanos(&d["unattributed"]["notReportedUsd"]), 50_000_000);

    // OpenAI Nov 5 (usage, priced by the book at OpenAI's list prices for
    // gpt-4o-mini: $0.15/M input, $0.075/M cached, $0.60/M output; batch $0.075/M
    // input): 800k x 0.15 + 200k x 0.075 + 100k x 0.60 = $0.195; batch 1M x 0.075 =
    // $0.075. The fine-tune has no price: one unpriced bill line, not in billed.
    let d = day(rep, "2026-11-05", "openai");
    assert_eq!(nanos(&d["billedUsd"]), 270_000_000);
    assert_eq!(d["unpricedBillLines"], json!(1));
    assert_eq!(nanos(&d["attributedUsd"]), 0);
    assert_eq!(nanos(&d["unattributed"]["notReportedUsd"]), 270_000_000);

    // Totals: 2.60 + 1.50 + 5.68456789 + 0.80 + 0.27 billed; 2.60 + 1.00 + 4.00 + 0.75
    // attributed.
    assert_eq!(nanos(&rep["totals"]["billedUsd"]), 10_854_567_890);
    assert_eq!(nanos(&rep["totals"]["attributedUsd"]), 8_350_000_000);
    assert_eq!(nanos(&rep["totals"]["differenceUsd"]), 2_504_567_890);
    assert_eq!(rep["days"].as_array().unwrap().len(), 5);
    assert_eq!(rep["days"][0]["day"], "2026-11-05", "newest day first");

    // The dashboard page shows the same numbers.
    let page = common::dashboard_page(
        &f.server.url,
        &f.read,
        "/reconciliation?from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z",
    )
    .await;
    assert!(page.contains("data-key=\"2026-11-02/anthropic\""), "{page}");
    assert!(page.contains("data-usd=\"5.68456789\""), "{page}");
    // Every environment unless the URL names one: staging's one call of $0.10.
    let cell = |page: &str, key: &str, col: &str| -> String {
        let row = &page[page.find(&format!("data-key=\"{key}\"")).unwrap()..];
        let at = &row[row.find(&format!("data-col=\"{col}\"")).unwrap()..];
        let at = &at[at.find("data-usd=\"").unwrap() + 10..];
        at[..at.find('"').unwrap()].to_string()
    };
    assert_eq!(cell(&page, "2026-11-02/openai", "attributed"), "2.6");
    let window = "from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z";
    let staging = common::dashboard_page(
        &f.server.url,
        &f.read,
        &format!("/reconciliation?{window}&environment=staging"),
    )
    .await;
    assert_eq!(cell(&staging, "2026-11-02/openai", "attributed"), "0.1");
}

#[tokio::test]
async fn importing_again_replaces_and_never_double_counts() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    for round in 0..2 {
        let r = import(&api, &f.admin, "openai-costs.json", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["replaced"], json!(round * 2), "{}", r.body);
        let r = api.get(WINDOW, &f.read).await;
        assert_eq!(
            nanos(&r.body["totals"]["billedUsd"]),
            4_100_000_000,
            "round {round}"
        );
        assert_eq!(r.body["days"].as_array().unwrap().len(), 2);
    }
    // A corrected report for Nov 3 replaces that day only (by the CLI this time).
    let fixed = f._dir.path().join("fixed.csv");
    std::fs::write(
        &fixed,
        "date,provider,model,amountUsd\n2026-11-03,openai,,1.00\n",
    )
    .unwrap();
    let out = cli(&f.db, &["reconcile", "import", fixed.to_str().unwrap()]);
    assert!(out.contains("1 replaced"), "{out}");
    let r = api.get(WINDOW, &f.read).await;
    let d = day(&r.body, "2026-11-03", "openai");
    assert_eq!(nanos(&d["billedUsd"]), 1_000_000_000);
    assert_eq!(nanos(&d["differenceUsd"]), 0);
    assert_eq!(nanos(&r.body["totals"]["billedUsd"]), 3_600_000_000);
    // The CLI shows the same report.
    let out = cli(
        &f.db,
        &[
            "reconcile",
            "show",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-08",
            "--json",
        ],
    );
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(nanos(&shown["totals"]["billedUsd"]), 3_600_000_000);
}

#[tokio::test]
async fn the_alert_fires_on_a_gap_and_stays_quiet_when_bill_and_burnrate_match() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    for file in ["openai-costs.json", "anthropic-cost.json"] {
        assert_eq!(import(&api, &f.admin, file, None).await.status, 200);
    }
    let findings = |body: &Value| -> Vec<Value> {
        body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "bill_mismatch")
            .cloned()
            .collect()
    };
    let r = api
        .get("/v1/alerts/findings?at=2026-11-06T00:00:00Z", &f.admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut keys: Vec<String> = findings(&r.body)
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    // Nov 2 openai matches exactly: no finding. Nov 3 openai is a third short (33% >
    // 3%); Nov 2 anthropic $1.68456789 of $5.68456789 (29.6%).
    assert_eq!(
        keys,
        [
            "bill_mismatch:anthropic:2026-11-02",
            "bill_mismatch:openai:2026-11-03"
        ]
    );
    let openai = findings(&r.body)
        .into_iter()
        .find(|f| f["evidence"]["provider"] == "openai")
        .unwrap();
    let e = &openai["evidence"];
    assert_eq!(nanos(&e["billedUsd"]), 1_500_000_000);
    assert_eq!(nanos(&e["attributedUsd"]), 1_000_000_000);
    assert_eq!(nanos(&e["differenceUsd"]), 500_000_000);
    assert_eq!(e["thresholdPct"], json!(3.0));
    assert!(openai["link"]
        .as_str()
        .unwrap()
        .starts_with("/reconciliation?"));

    // A threshold of 30%: the anthropic day (29.6%) is under it, openai's 33.3% is not.
    let change = json!({"rules": {"bill_mismatch": {"threshold": 30}}});
    let r = api.put_json("/v1/alert-rules", &f.admin, &change).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .get("/v1/alerts/findings?at=2026-11-06T00:00:00Z", &f.admin)
        .await;
    let keys: Vec<Value> = findings(&r.body).iter().map(|f| f["key"].clone()).collect();
    assert_eq!(keys, [json!("bill_mismatch:openai:2026-11-03")]);

    // A bill equal to what burnrate saw: quiet.
    let fixed = "date,provider,model,amountUsd\n2026-11-03,openai,,1.00\n";
    let r = api
        .post_raw(
            "/v1/reconciliation/import",
            Some(&f.admin),
            "text/csv",
            fixed.into(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .get("/v1/alerts/findings?at=2026-11-06T00:00:00Z", &f.admin)
        .await;
    assert!(findings(&r.body).is_empty(), "{}", r.body);
}

#[tokio::test]
async fn bad_files_and_parameters_are_refused_naming_the_line_or_field() {
    let f = fixture().await;
    let api = Api::new(&f.server);
    let post = |body: String, format: Option<&str>| {
        let path = match format {
            Some(fm) => format!("/v1/reconciliation/import?format={fm}"),
            None => "/v1/reconciliation/import".into(),
        };
        let api = &api;
        let admin = f.admin.clone();
        async move {
            api.post_raw(&path, Some(&admin), "application/json", body.into())
                .await
        }
    };
    let eur = sample("openai-costs.json").replacen("\"usd\"", "\"eur\"", 1);
    let r = post(eur, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        ["data[0].results[0].amount.currency"]
    );
    let cents = sample("anthropic-cost.json").replacen("\"250.5\"", "\"2,50\"", 1);
    let r = post(cents, None).await;
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        ["data[0].results[0].amount"]
    );
    let csv = "date,provider,model,amountUsd\n2026-11-04,mistral,m,1\n2026-11-31,mistral,m,abc\n";
    let r = post(csv.into(), Some("csv")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        ["line 3 date", "line 3 amountUsd"]
    );
    let r = post("{\"data\": []}".into(), None).await;
    assert_eq!(blamed(&r.body["error"]["fields"]), ["format"]);
    let r = post(sample("generic.csv"), Some("xls")).await;
    assert_eq!(blamed(&r.body["error"]["fields"]), ["format"]);
    let r = post(
        "{\"object\": \"page\", \"data\": []}".into(),
        Some("openai-costs"),
    )
    .await;
    assert_eq!(
        blamed(&r.body["error"]["fields"]),
        ["body"],
        "an empty report is no $0 bill"
    );
    // Nothing of the refused files was kept.
    let r = api.get(WINDOW, &f.read).await;
    assert_eq!(r.body["days"], json!([]), "{}", r.body);
    // Reading: bad parameters named; importing needs an admin key.
    for (path, field) in [
        ("/v1/reconciliation?from=yesterday", "from"),
        ("/v1/reconciliation?from=2026-11-05&to=2026-11-01", "from"),
        ("/v1/reconciliation?dataMode=fake", "dataMode"),
        ("/v1/reconciliation?model=x", "model"),
    ] {
        let r = api.get(path, &f.read).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(blamed(&r.body["error"]["fields"]), [field], "{path}");
    }
    let r = api
        .post_raw(
            "/v1/reconciliation/import",
            Some(&f.read),
            "text/csv",
            sample("generic.csv").into(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The CLI names the line too, and imports nothing.
    let bad = f._dir.path().join("bad.csv");
    std::fs::write(&bad, csv).unwrap();
    let out = burnrate_harness::cli(
        std::path::Path::new(common::BIN),
        &f.db,
        &["reconcile", "import", bad.to_str().unwrap()],
    )
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3 amountUsd"), "{err}");
}
