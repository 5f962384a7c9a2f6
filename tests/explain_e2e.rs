//! Explain and the gate against the real binary: steady demo-like traffic over two weeks
//! with one known incident per workspace (a runaway endpoint, a prompt regression, a
//! retry storm, a tenant burst, a silent switch to a pricier model); the first driver
//! must name it. Bad input gets a 400 naming the parameter; the gate's exit codes come
//! from the CLI binary.

mod common;

use common::{cli, key, Api, Server, BIN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const HOUR: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z: the baseline week, then the current week.
const T0: i64 = 1_767_225_600_000;
const WINDOW: &str = "from=2026-01-08T00:00:00Z&to=2026-01-15T00:00:00Z";

fn ts(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// One successful call (models m1 and m2 are priced by the fixture overrides: m1 $1/M
/// input, $2/M output; m2 ten times that).
fn call(id: String, at: i64, endpoint: &str, version: &str, model: &str, tenant: &str) -> Value {
    let (input, output) = match endpoint {
        "support.reply" => (1000, 300),
        "chat.assist" => (2000, 500),
        "summarize.doc" => (4000, 400),
        _ => (500, 0),
    };
    json!({
        "externalRequestId": id, "timestamp": ts(at), "provider": "acme", "model": model,
        "endpointTag": endpoint, "promptVersion": version, "tenantId": tenant,
        "inputTokens": input, "outputTokens": output, "status": "success", "latencyMs": 900
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Incident {
    None,
    RunawayEndpoint,
    PromptRegression,
    RetryStorm,
    TenantBurst,
    ModelSwitch,
}

/// Two weeks of hourly traffic on four endpoints and four tenants, with `incident` in
/// the second week. search.embed moves to an equally priced se_v2 on day 10 (the gate's
/// passing case).
fn traffic(incident: Incident) -> Vec<Value> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("e{n}")
    };
    let tenants = ["t-a", "t-b", "t-c", "t-d"];
    for h in 0..14 * 24 {
        let at = T0 + h * HOUR + 5 * 60_000;
        let day = h / 24;
        let tenant = tenants[(h % 4) as usize];
        let current = day >= 7;
        for i in 0..2 {
            let t = at + i * 600_000;
            if incident == Incident::RetryStorm && day >= 9 {
                // Every call is retried twice; half of them never get through (no usage).
                let (first, second) = (id(), id());
                for (k, eid) in [(0, first), (1, second)] {
                    for attempt in 1..=3 {
                        let mut e =
                            call(eid.clone(), t + k, "support.reply", "sr_v1", "m1", tenant);
                        let gives_up = k == 0 || attempt < 3;
                        e["attempt"] = json!(attempt);
                        if gives_up {
                            e["status"] = json!("rate_limited");
                            e["inputTokens"] = json!(0);
                            e["outputTokens"] = json!(0);
                        }
                        out.push(e);
                    }
                }
                break;
            }
            out.push(call(id(), t, "support.reply", "sr_v1", "m1", tenant));
        }
        let chat_model = if incident == Incident::ModelSwitch && day >= 9 {
            "m2"
        } else {
            "m1"
        };
        let chats = if incident == Incident::RunawayEndpoint && current {
            6
        } else {
            1
        };
        for i in 0..chats {
            out.push(call(
                id(),
                at + 60_000 * (20 + i),
                "chat.assist",
                "ca_v1",
                chat_model,
                tenant,
            ));
        }
        let regressed = incident == Incident::PromptRegression && day >= 10;
        let mut s = call(
            id(),
            at + 40 * 60_000,
            "summarize.doc",
            if regressed { "sd_v2" } else { "sd_v1" },
            "m1",
            tenant,
        );
        if regressed {
            s["inputTokens"] = json!(12_000);
            s["outputTokens"] = json!(1_200);
        }
        out.push(s);
        let embed_version = if day >= 10 { "se_v2" } else { "se_v1" };
        out.push(call(
            id(),
            at + 50 * 60_000,
            "search.embed",
            embed_version,
            "m1",
            tenant,
        ));
        // t-burst: one call a day before, eight an hour from day 11.
        if h % 24 == 0 {
            out.push(call(
                id(),
                at + 55 * 60_000,
                "support.reply",
                "sr_v1",
                "m1",
                "t-burst",
            ));
        }
        if incident == Incident::TenantBurst && day >= 11 {
            let endpoints = ["support.reply", "chat.assist", "summarize.doc"];
            let versions = ["sr_v1", "ca_v1", "sd_v1"];
            for i in 0..8 {
                let k = (i % 3) as usize;
                out.push(call(
                    id(),
                    at + 60_000 * (30 + i),
                    endpoints[k],
                    versions[k],
                    "m1",
                    "t-burst",
                ));
            }
        }
    }
    out
}

struct Setup {
    _dir: tempfile::TempDir,
    db: PathBuf,
    server: Server,
    api: Api,
}

const SCENARIOS: &[(&str, Incident)] = &[
    ("steady", Incident::None),
    ("runaway", Incident::RunawayEndpoint),
    ("prompt", Incident::PromptRegression),
    ("retries", Incident::RetryStorm),
    ("burst", Incident::TenantBurst),
    ("model", Incident::ModelSwitch),
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/fixture")
        .join(name)
}

async fn setup() -> (Setup, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    cli(
        &db,
        &[
            "prices",
            "import",
            fixture("overrides.json").to_str().unwrap(),
        ],
    );
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let mut keys = Vec::new();
    for (name, incident) in SCENARIOS {
        cli(&db, &["workspaces", "create", name]);
        let ingest = key(&db, name, "ingest");
        for chunk in traffic(*incident).chunks(5000) {
            let r = api.post("/v1/ingest/batch", &ingest, &json!(chunk)).await;
            assert_eq!(r.status, 202, "{}", r.body);
            assert_eq!(r.body["rejected"], json!([]), "{}", r.body);
        }
        keys.push((name.to_string(), key(&db, name, "read")));
    }
    (
        Setup {
            _dir: dir,
            db,
            server,
            api,
        },
        keys,
    )
}

fn first_driver(e: &Value) -> (String, String, String) {
    let d = &e["drivers"][0];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (s(&d["kind"]), s(&d["dimension"]), s(&d["value"]))
}

fn usd(v: &Value) -> i64 {
    // Exact: the JSON number's decimal text, parsed as nano-USD.
    let text = v.to_string();
    match text.strip_prefix('-') {
        Some(rest) => -burnrate::money::Usd::parse(rest).unwrap().0,
        None => burnrate::money::Usd::parse(&text).unwrap().0,
    }
}

/// Every dimension's parts add up to the total change, to the nano.
fn assert_exact(e: &Value) {
    let change = usd(&e["changeUsd"]);
    assert_eq!(
        change,
        usd(&e["current"]["costUsd"]) - usd(&e["baseline"]["costUsd"])
    );
    assert_eq!(
        usd(&e["effects"]["volumeUsd"]) + usd(&e["effects"]["costPerRequestUsd"]),
        change
    );
    for d in e["dimensions"].as_array().unwrap() {
        let parts = ["volumeUsd", "costPerRequestUsd", "newUsd", "vanishedUsd"]
            .iter()
            .map(|k| usd(&d[*k]))
            .sum::<i64>();
        assert_eq!(parts, change, "{}", d["dimension"]);
        let groups: i64 = d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| usd(&g["changeUsd"]))
            .sum();
        assert_eq!(groups, change, "{}", d["dimension"]);
    }
}

#[tokio::test]
async fn the_first_driver_names_each_injected_incident() {
    let (s, keys) = setup().await;
    let expect = [
        ("runaway", ("volume", "endpointTag", "chat.assist"), None),
        (
            "prompt",
            ("prompt_version", "promptVersion", "sd_v2"),
            Some("summarize.doc"),
        ),
        ("retries", ("retries", "endpointTag", "support.reply"), None),
        ("burst", ("volume", "tenantId", "t-burst"), None),
        ("model", ("model_mix", "model", "m2"), Some("chat.assist")),
    ];
    for (name, (kind, dim, value), endpoint) in expect {
        let key = &keys.iter().find(|(n, _)| n == name).unwrap().1;
        let r = s.api.get(&format!("/v1/explain?{WINDOW}"), key).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let e = &r.body;
        assert_eq!(
            first_driver(e),
            (kind.to_string(), dim.to_string(), value.to_string()),
            "{name}: {}",
            serde_json::to_string_pretty(&e["drivers"]).unwrap()
        );
        assert_eq!(e["drivers"][0]["endpointTag"].as_str(), endpoint, "{name}");
        assert!(!e["summary"].as_str().unwrap().is_empty());
        assert_exact(e);
    }
}

#[tokio::test]
async fn explain_shows_the_regression_in_numbers() {
    let (s, keys) = setup().await;
    let key = &keys.iter().find(|(n, _)| n == "prompt").unwrap().1;
    let e = s.api.get(&format!("/v1/explain?{WINDOW}"), key).await.body;
    // Per week: support.reply 336 x $0.0016, chat.assist 168 x $0.003, summarize.doc 168
    // x $0.0048, search.embed 168 x $0.0005, t-burst 7 x $0.0016 = $1.9432.
    assert_eq!(e["baseline"]["costUsd"], json!(1.9432));
    assert_eq!(e["baseline"]["requests"], json!(847));
    // Current: 96 summarize.doc calls on sd_v2 cost $0.0144 instead of $0.0048.
    assert_eq!(usd(&e["changeUsd"]), 96 * 9_600_000);
    let doc = e["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["endpointTag"] == "summarize.doc")
        .unwrap();
    // Volume did not change, so the whole change is cost per request.
    assert_eq!(usd(&doc["volumeUsd"]), 0);
    assert_eq!(usd(&doc["costPerRequestUsd"]), 96 * 9_600_000);
    let v2 = doc["promptVersions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["value"] == "sd_v2")
        .unwrap();
    assert_eq!(v2["firstSeen"], json!("2026-01-11T00:45:00Z"));
    assert_eq!(v2["newInWindow"], json!(true));
    assert_eq!(v2["costPerRequest"]["current"], json!(0.0144));
    assert_eq!(e["drivers"][0]["contributionPct"], json!(100.0));
    // The steady workspace: nothing changed, nothing to drive.
    let steady = &keys.iter().find(|(n, _)| n == "steady").unwrap().1;
    let e = s
        .api
        .get(&format!("/v1/explain?{WINDOW}"), steady)
        .await
        .body;
    assert_eq!(e["changeUsd"], json!(0));
    assert_eq!(e["drivers"], json!([]));
    assert!(e["summary"]
        .as_str()
        .unwrap()
        .starts_with("Spend was unchanged at $1.94"));
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter() {
    let (s, keys) = setup().await;
    let key = &keys[0].1;
    let cases = [
        ("from=2026-01-15T00:00:00Z&to=2026-01-08T00:00:00Z", "from"),
        (&format!("{WINDOW}&by=endpointTag,colour") as &str, "by"),
        (
            &format!("{WINDOW}&by=endpointTag,tenantId,model,provider,status"),
            "by",
        ),
        (&format!("{WINDOW}&by=model,model"), "by"),
        (
            &format!("{WINDOW}&baselineFrom=2026-01-10T00:00:00Z"),
            "baselineTo",
        ),
        (&format!("{WINDOW}&baselineFrom=yesterday"), "baselineFrom"),
        (
            &format!("{WINDOW}&baselineFrom=2026-01-05T00:00:00Z&baselineTo=2026-01-02T00:00:00Z"),
            "baselineFrom",
        ),
        ("from=2025-06-01T00:00:00Z&to=2025-06-08T00:00:00Z", "to"),
        ("from=2026-01-01T00:00:00Z&to=2026-01-08T00:00:00Z", "from"),
        (
            &format!("{WINDOW}&baselineFrom=2025-12-01T00:00:00Z&baselineTo=2025-12-08T00:00:00Z"),
            "baselineFrom",
        ),
        (&format!("{WINDOW}&environment=production"), "environment"),
        (&format!("{WINDOW}&colour=red"), "colour"),
    ];
    for (query, field) in cases {
        let r = s.api.get(&format!("/v1/explain?{query}"), key).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(
            common::blamed(&r.body["error"]["fields"]),
            [field],
            "{query}: {}",
            r.body
        );
    }
    for (query, field) in [
        ("candidate=sd_v2", "endpointTag"),
        ("endpointTag=summarize.doc", "candidate"),
        (
            "endpointTag=summarize.doc&candidate=sd_v2&metric=joy",
            "metric",
        ),
        (
            "endpointTag=summarize.doc&candidate=sd_v2&maxIncreasePct=lots",
            "maxIncreasePct",
        ),
        (
            "endpointTag=summarize.doc&candidate=sd_v2&minSamples=1",
            "minSamples",
        ),
        (
            "endpointTag=summarize.doc&candidate=sd_v2&promptVersion=x",
            "promptVersion",
        ),
        (
            "endpointTag=summarize.doc&candidate=sd_v2&baseline=sd_v2",
            "baseline",
        ),
    ] {
        let r = s.api.get(&format!("/v1/gate?{query}"), key).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(
            common::blamed(&r.body["error"]["fields"]),
            [field],
            "{query}: {}",
            r.body
        );
    }
}

/// `burnrate gate` on the database: exit code, stdout.
fn gate(db: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "gate",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-15T00:00:00Z",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_gate_exits_pass_fail_or_not_enough_data() {
    let (s, keys) = setup().await;
    let ws = ["--workspace", "prompt"];
    // sd_v2 costs three times sd_v1 per request: fail, with the baseline found by itself.
    let (code, out) = gate(
        &s.db,
        &[
            &ws[..],
            &["--endpoint-tag", "summarize.doc", "--candidate", "sd_v2"],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("FAIL: sd_v2 vs sd_v1 on summarize.doc"),
        "{out}"
    );
    // se_v2 costs what se_v1 did: pass.
    let (code, out) = gate(
        &s.db,
        &[
            &ws[..],
            &[
                "--endpoint-tag",
                "search.embed",
                "--candidate",
                "se_v2",
                "--json",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["estimatePct"], json!(0.0));
    assert_eq!(v["candidate"]["requests"], json!(96));
    assert_eq!(v["baseline"]["requests"], json!(240));
    assert_eq!(v["candidate"]["meanUsd"], json!(0.0005));
    // Too few requests for the asked minimum: not enough data.
    let (code, out) = gate(
        &s.db,
        &[
            &ws[..],
            &[
                "--endpoint-tag",
                "summarize.doc",
                "--candidate",
                "sd_v2",
                "--min-samples",
                "500",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("96 candidate and 240 baseline requests; at least 500 of each are needed"),
        "{out}"
    );
    // The gate could not run: 3, never a verdict.
    let (code, _) = gate(
        &s.db,
        &[
            &ws[..],
            &[
                "--endpoint-tag",
                "summarize.doc",
                "--candidate",
                "sd_v2",
                "--metric",
                "joy",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 3);
    let (code, _) = gate(&s.db, &["--no-such-flag"]);
    assert_eq!(code, 3);
    // The same through a server with --url/--key.
    let key = &keys.iter().find(|(n, _)| n == "prompt").unwrap().1;
    let (code, out) = gate(
        &s.db,
        &[
            "--url",
            &s.server.url,
            "--key",
            key,
            "--endpoint-tag",
            "summarize.doc",
            "--candidate",
            "sd_v2",
            "--metric",
            "output_tokens_per_request",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("increase +200.0%"), "{out}");
}

#[tokio::test]
async fn the_cli_prints_the_summary_and_the_drivers() {
    let (s, _) = setup().await;
    let out = cli(
        &s.db,
        &[
            "explain",
            "--workspace",
            "model",
            "--from",
            "2026-01-08T00:00:00Z",
            "--to",
            "2026-01-15T00:00:00Z",
        ],
    );
    assert!(out.starts_with("Spend rose from $1.94 to "), "{out}");
    assert!(out.contains("model_mix"), "{out}");
    assert!(out.contains("as its traffic moved to model m2"), "{out}");
    let json_out = cli(
        &s.db,
        &[
            "explain",
            "--workspace",
            "model",
            "--from",
            "2026-01-08T00:00:00Z",
            "--to",
            "2026-01-15T00:00:00Z",
            "--json",
            "--by",
            "endpointTag,model",
        ],
    );
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["dimensions"].as_array().unwrap().len(), 2);
    assert_eq!(first_driver(&v).0, "model_mix");
}
