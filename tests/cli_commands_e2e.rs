//! The command line through the real binary: exit codes and messages of gate, import,
//! prices, durations, and the live budget state read from a server.

mod common;

use common::{cli, Api, Server, BIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

/// Run `burnrate --db DB ARGS` with `env` set; never panics on a failing command.
fn run(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["--db", db.to_str().unwrap()]).args(args);
    for var in ["BURNRATE_URL", "BURNRATE_API_KEY", "BURNRATE_KEY"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ago(minutes: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes)).to_string()
}

fn event(id: &str, endpoint: &str, version: &str) -> Value {
    json!({
        "externalRequestId": id, "timestamp": ago(60), "provider": "openai",
        "model": "gpt-4o-mini", "endpointTag": endpoint, "promptVersion": version,
        "inputTokens": 1000, "outputTokens": 100, "status": "success"
    })
}

/// Write JSONL lines to a file in `dir`.
fn jsonl(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn gate_on_a_new_endpoint_without_a_baseline_version_exits_2_not_enough_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let lines: Vec<String> = (0..40)
        .map(|i| event(&format!("e{i}"), "brand.new", "bn_v1").to_string())
        .collect();
    cli(&db, &["import", &jsonl(dir.path(), "e.jsonl", &lines)]);
    let out = run(
        &db,
        &[
            "gate",
            "--endpoint-tag",
            "brand.new",
            "--candidate",
            "bn_v1",
            "--data-mode",
            "real",
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("NOT ENOUGH DATA: bn_v1 vs no baseline on brand.new"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no baseline: no earlier version of brand.new was seen before bn_v1"),
        "{stdout}"
    );
    let out = run(
        &db,
        &[
            "gate",
            "--endpoint-tag",
            "brand.new",
            "--candidate",
            "bn_v1",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "not_enough_data");
    assert_eq!(v["baselineVersion"], Value::Null);
    assert_eq!(v["candidate"]["requests"], json!(40));
    assert_eq!(v["baseline"]["requests"], json!(0));
}

/// Events 1 hour, 10 days and 20 days old (one each of three endpoints).
fn spread_events(dir: &Path, db: &Path) {
    let lines: Vec<String> = [
        (60, "a.now"),
        (10 * 1440, "b.ten_days"),
        (20 * 1440, "c.twenty_days"),
    ]
    .iter()
    .map(|(minutes, endpoint)| {
        let mut e = event(endpoint, endpoint, "v1");
        e["timestamp"] = json!(ago(*minutes));
        e.to_string()
    })
    .collect();
    cli(db, &["import", &jsonl(dir, "spread.jsonl", &lines)]);
}

#[test]
fn since_durations_are_checked_with_weeks_and_clear_errors_naming_since() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    spread_events(dir.path(), &db);
    let requests = |since: &str| {
        let out = cli(&db, &["top", "endpoints", "--since", since, "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["total"]["requests"].as_u64().unwrap()
    };
    assert_eq!(requests("2h"), 1);
    assert_eq!(requests("2w"), 2);
    assert_eq!(requests("4w"), 3);
    assert_eq!(requests("1d12h"), 1);
    for (since, message) in [
        ("9999999999999d", "--since must be at most 1096d (3 years)"),
        ("0m", "--since must be longer than zero"),
        ("30s", "--since must use the units m, h, d or w"),
        ("7", "--since must be a duration like 15m, 24h, 7d or 4w"),
    ] {
        let out = run(&db, &["top", "endpoints", "--since", since], &[]);
        assert!(!out.status.success(), "{since}");
        let err = text(&out.stderr);
        assert!(err.contains(message), "{since}: {err}");
        assert!(!err.contains("RFC 3339"), "{since}: {err}");
    }
    // explain and the gate read the same parser (the gate: could not run, 3).
    let out = run(&db, &["explain", "--since", "0m"], &[]);
    assert!(text(&out.stderr).contains("--since must be longer than zero"));
    let out = run(
        &db,
        &[
            "gate",
            "--endpoint-tag",
            "a.now",
            "--candidate",
            "v1",
            "--since",
            "9999999999999d",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("--since must be at most 1096d"));
}

#[tokio::test]
async fn api_read_endpoints_accept_since_and_refuse_it_with_from() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    spread_events(dir.path(), &db);
    let key = common::key(&db, "default", "read");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    for (since, requests) in [("2h", 1), ("15d", 2), ("4w", 3)] {
        let r = api.get(&format!("/v1/summary?since={since}"), &key).await;
        assert_eq!(r.status, 200, "{since}: {}", r.body);
        assert_eq!(r.body["requests"], json!(requests), "{since}: {}", r.body);
    }
    let r = api.get("/v1/top/endpoints?since=2w", &key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"]["requests"], json!(2), "{}", r.body);
    for query in [
        "since=0m",
        "since=9999999999999d",
        "since=7x",
        "since=7d&from=2026-01-01T00:00:00Z",
    ] {
        for path in ["/v1/summary", "/v1/top/endpoints", "/v1/explain"] {
            let r = api.get(&format!("{path}?{query}"), &key).await;
            assert_eq!(r.status, 400, "{path}?{query}: {}", r.body);
            assert_eq!(
                common::blamed(&r.body["error"]["fields"]),
                ["since"],
                "{path}?{query}"
            );
        }
    }
    let r = api.get("/v1/summary?since=9999999999999d", &key).await;
    assert_eq!(
        r.body["error"]["message"],
        json!("since must be at most 1096d (3 years), got \"9999999999999d\"")
    );
}

#[test]
fn import_with_rejected_lines_counts_honestly_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let mut bad_tokens = event("r3", "x.y", "v1");
    bad_tokens["inputTokens"] = json!(-5);
    let lines = [
        event("r1", "x.y", "v1").to_string(),
        "{not json".to_string(),
        bad_tokens.to_string(),
        event("r2", "x.y", "v1").to_string(),
        event("r1", "x.y", "v1").to_string(),
        json!({"provider": "openai"}).to_string(),
        event("r4", "x.y", "v1").to_string(),
    ];
    let file = jsonl(dir.path(), "seven.jsonl", &lines.map(|l| l.to_string()));
    let out = run(&db, &["import", &file], &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("read 7 events") && stdout.contains("3 accepted, 1 duplicates, 3 rejected"),
        "{stdout}"
    );
    assert!(!stdout.contains("imported 7"), "{stdout}");
    assert!(stderr.contains("line 2: body: invalid JSON"), "{stderr}");
    assert!(stderr.contains("line 3: inputTokens:"), "{stderr}");
    assert!(stderr.contains("line 6: model: is required"), "{stderr}");
    assert!(
        stderr.contains("3 of 7 events rejected (lines 2, 3, 6; reasons above)"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-rejects"), "{stderr}");
    // The accepted events are stored even so; --allow-rejects exits 0 with the counts.
    let out = run(&db, &["import", "--allow-rejects", &file], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("0 accepted, 4 duplicates, 3 rejected"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("warning: 3 of 7 events rejected"));
    // A clean file exits 0 without a warning.
    let clean = jsonl(
        dir.path(),
        "clean.jsonl",
        &[event("r9", "x.y", "v1").to_string()],
    );
    let out = run(&db, &["import", &clean], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("1 accepted, 0 duplicates, 0 rejected"));
}

#[tokio::test]
async fn budgets_list_with_url_shows_the_servers_live_reservations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let admin = common::key(&db, "default", "admin");
    let ingest = common::key(&db, "default", "ingest");
    let read = common::key(&db, "default", "read");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let created = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "acme cap", "scope": {"tenantId": "acme"}, "period": "month",
                    "limitUsd": 10, "action": "block"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap().to_string();
    let guard = api
        .post(
            "/v1/guard",
            &ingest,
            &json!({"endpointTag": "support.reply", "tenantId": "acme",
                    "estimatedCostUsd": 2.5, "externalRequestId": "held-1"}),
        )
        .await;
    assert_eq!(guard.body["allow"], json!(true), "{}", guard.body);

    // From the server: the reservation is there, in the table and in JSON.
    let url = server.url.as_str();
    let out = run(&db, &["budgets", "list", "--url", url, "--key", &read], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row = stdout.lines().find(|l| l.contains("acme cap")).unwrap();
    let cells: Vec<&str> = row.split('┆').map(str::trim).collect();
    assert_eq!(
        cells[3..7],
        ["$10.00", "$0.00", "$2.50", "$7.50"],
        "{stdout}"
    );
    assert!(!stdout.contains("not shown"), "{stdout}");
    let out = run(
        &db,
        &["budgets", "status", &id, "--json"],
        &[("BURNRATE_URL", url), ("BURNRATE_API_KEY", &read)],
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["reservedUsd"], json!(2.5), "{status}");
    assert_eq!(status["remainingUsd"], json!(7.5), "{status}");

    // From the file alone: the reservation cannot be known, and the output says so.
    let out = run(&db, &["budgets", "list"], &[]);
    let stdout = text(&out.stdout);
    let row = stdout.lines().find(|l| l.contains("acme cap")).unwrap();
    assert!(row.contains("not shown"), "{stdout}");
    assert!(
        stdout.contains(
            "reserved: not shown (guard reservations live in the running server's memory"
        ),
        "{stdout}"
    );
    let out = run(&db, &["budgets", "status", &id, "--json"], &[]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["reservedUsd"], Value::Null, "{status}");
    assert!(text(&out.stderr).contains("reserved: not shown"));
}

#[tokio::test]
async fn the_cli_reads_burnrate_api_key_and_still_takes_the_old_burnrate_key_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let read = common::key(&db, "default", "read");
    let server = Server::start(&db, &["--no-alerts"]);
    let url = server.url.as_str();
    let args = ["budgets", "list", "--json"];
    let out = run(
        &db,
        &args,
        &[("BURNRATE_URL", url), ("BURNRATE_API_KEY", &read)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"budgets": []})
    );
    assert!(!text(&out.stderr).contains("deprecated"));
    let out = run(
        &db,
        &args,
        &[("BURNRATE_URL", url), ("BURNRATE_KEY", &read)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"budgets": []})
    );
    assert!(
        text(&out.stderr)
            .contains("note: BURNRATE_KEY is deprecated; set BURNRATE_API_KEY instead"),
        "{}",
        text(&out.stderr)
    );
    // alerts evaluate asks the same server the same way.
    let out = run(
        &db,
        &["alerts", "evaluate", "--json"],
        &[("BURNRATE_URL", url), ("BURNRATE_API_KEY", &read)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["findings"], json!([]), "{answer}");
    assert!(answer["at"].as_str().unwrap().starts_with("20"), "{answer}");
    let out = run(&db, &args, &[("BURNRATE_URL", url)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--url needs --key (or BURNRATE_API_KEY)"));
    // A wrong key is the server's 401, not a silent empty list.
    let out = run(
        &db,
        &args,
        &[("BURNRATE_URL", url), ("BURNRATE_API_KEY", "br_wrong")],
    );
    assert_eq!(out.status.code(), Some(1));
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/fixture")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn prices_import_refuses_a_file_that_is_not_a_price_book_and_a_mistake_can_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let write = |name: &str, v: Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, v.to_string()).unwrap();
        path.to_str().unwrap().to_string()
    };
    for (file, message) in [
        (
            write("foo.json", json!({"foo": 1})),
            "\"foo\" is not a model object",
        ),
        (write("empty.json", json!({})), "nothing to import"),
        (
            write(
                "none.json",
                json!({"format": 1, "kind": "overrides", "entries": []}),
            ),
            "has no entries and no aliases: nothing to import",
        ),
    ] {
        let out = run(&db, &["prices", "import", &file], &[]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        assert!(
            text(&out.stderr).contains(message),
            "{file}: {}",
            text(&out.stderr)
        );
    }
    // Nothing was stored by the refused imports: only the bundled book is listed.
    let versions = cli(&db, &["prices", "versions"]);
    assert_eq!(
        versions.matches("catalog (bundled)").count(),
        1,
        "{versions}"
    );
    assert!(!versions.contains("import-"), "{versions}");
    assert!(!versions.contains("overrides"), "{versions}");

    // A good overrides file is listed with its entries, and prices events at a running
    // server; removing it unprices the next event within the server's 2 s reload.
    let imported = cli(&db, &["prices", "import", &fixture("overrides.json")]);
    assert!(
        imported.contains("imported 2 overrides entries as version fixture-1"),
        "{imported}"
    );
    let versions = cli(&db, &["prices", "versions"]);
    let row = versions.lines().find(|l| l.contains("fixture-1")).unwrap();
    let cells: Vec<&str> = row.split('┆').map(str::trim).collect();
    assert_eq!(cells[2..4], ["2", "0"], "{versions}");
    assert!(cells[0].ends_with("overrides"), "{versions}");
    assert!(cells[4].starts_with("20"), "{versions}");

    let ingest = common::key(&db, "default", "ingest");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let call = |id: &str| {
        json!({"externalRequestId": id, "provider": "acme", "model": "m1", "endpointTag": "x",
               "inputTokens": 1_000_000, "outputTokens": 0, "status": "success"})
    };
    let events = |id: &str| format!("/v1/events?externalRequestId={id}");
    let read = common::key(&db, "default", "read");
    assert_eq!(
        api.post("/v1/ingest/llm-request", &ingest, &call("p1"))
            .await
            .status,
        202
    );
    let stored = api.get(&events("p1"), &read).await;
    assert_eq!(
        stored.body["events"][0]["costUsd"],
        json!(1),
        "{}",
        stored.body
    );

    let removed = cli(&db, &["prices", "remove-version", "fixture-1"]);
    assert!(
        removed.contains("removed version fixture-1 (1 import(s))"),
        "{removed}"
    );
    let versions = cli(&db, &["prices", "versions"]);
    assert!(!versions.contains("fixture-1"), "{versions}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        api.post("/v1/ingest/llm-request", &ingest, &call("p2"))
            .await
            .status,
        202
    );
    let stored = api.get(&events("p2"), &read).await;
    assert_eq!(
        stored.body["events"][0]["costUsd"],
        Value::Null,
        "{}",
        stored.body
    );

    let out = run(&db, &["prices", "remove-version", "fixture-1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no imported price book version \"fixture-1\"; stored: none")
    );
}

#[test]
fn a_reader_that_closes_stdout_early_is_no_panic() {
    // `burnrate prices list | head -1`: 800 KB of table into a pipe closed after one read.
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let mut child = Command::new(BIN)
        .args(["--db", db.to_str().unwrap(), "prices", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's read end is dropped here: the next write fails with EPIPE.
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
}

/// `demo --out FILE` writes the events a store would get, without opening a store:
/// importing the file gives the same answers as writing the demo into a store.
#[test]
fn demo_out_writes_the_events_a_store_would_get() {
    let dir = tempfile::tempdir().unwrap();
    let (direct, imported, never) = (
        dir.path().join("direct.db"),
        dir.path().join("imported.db"),
        dir.path().join("never.db"),
    );
    let file = dir.path().join("events.ndjson");
    // A fixed end an hour ago: both runs draw the same events, all inside the window.
    let end = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let demo = [
        "demo",
        "--events",
        "400",
        "--end",
        &end,
        "--profile",
        "realistic",
    ];
    cli(&direct, &demo);
    let mut to_file = demo.to_vec();
    to_file.extend(["--out", file.to_str().unwrap()]);
    let said = cli(&never, &to_file);
    assert!(!never.exists(), "demo --out must not create a store");
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        said.trim(),
        format!(
            "demo: {} events written to {}",
            lines.lines().count(),
            file.display()
        )
    );
    cli(&imported, &["import", file.to_str().unwrap()]);
    // The totals and rows (the window's own from/to differ by the seconds between runs).
    let top = |db: &std::path::Path| {
        let args = [
            "top",
            "tenants",
            "--since",
            "60d",
            "--data-mode",
            "demo",
            "--json",
        ];
        let json: Value = serde_json::from_str(&cli(db, &args)).unwrap();
        (json["total"].clone(), json["rows"].clone())
    };
    let answer = top(&direct);
    assert!(answer.0["requests"].as_u64().unwrap() > 300, "{answer:?}");
    assert_eq!(answer, top(&imported));
}
