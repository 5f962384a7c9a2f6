//! Tracking quality end to end through the real binary: a workspace with a known mix of
//! events gives exactly the expected shares, checks, score and naming lint through
//! GET /v1/quality and `burnrate doctor` (from the server and from the store file), and
//! the Setup page shows each stage from an empty workspace to complete attribution.

mod common;

use common::{cli, key, Api, Server, BIN};
use serde_json::{json, Value};

const UUID_TAG: &str = "ticket.5f0c2a9e-3b1d-4c8e-9a7f-0123456789ab";

/// One call: `id` None is id-less; `tenant`/`version` None leave the field out.
fn call(
    id: Option<&str>,
    tag: &str,
    tenant: Option<&str>,
    version: Option<&str>,
    model: &str,
) -> Value {
    let mut e = json!({
        "provider": "openai", "model": model, "endpointTag": tag,
        "inputTokens": 1000, "outputTokens": 100, "status": "success"
    });
    if let Some(id) = id {
        e["externalRequestId"] = json!(id);
    }
    if let Some(t) = tenant {
        e["tenantId"] = json!(t);
    }
    if let Some(v) = version {
        e["promptVersion"] = json!(v);
    }
    e
}

const PRICED: &str = "gpt-4o-mini";
const UNPRICED: &str = "acme-finetune-zz9";

/// 10 calls: 3 id-less, 2 without a tenant, 1 without a promptVersion, 1 of an
/// unpriced model; `support.reply` and `Support_Reply`; a tag with a UUID inside; and
/// one misspelled field (`promptVerison`).
fn known_mix() -> Value {
    let (a, v) = (Some("acme"), Some("v1"));
    let mut typo = call(Some("a10"), "billing.summary", a, v, PRICED);
    typo["promptVerison"] = json!("v1");
    json!([
        call(Some("a1"), "support.reply", a, v, PRICED),
        call(Some("a2"), "support.reply", a, v, PRICED),
        call(Some("a3"), "support.reply", None, v, PRICED),
        call(None, "support.reply", a, v, PRICED),
        call(None, "Support_Reply", a, v, PRICED),
        call(None, "Support_Reply", None, v, PRICED),
        call(Some("a7"), "Support_Reply", a, v, UNPRICED),
        call(Some("a8"), UUID_TAG, a, None, PRICED),
        call(Some("a9"), "billing.summary", a, v, PRICED),
        typo,
    ])
}

fn share(report: &Value, name: &str) -> (u64, u64) {
    let s = &report["shares"][name];
    (s["with"].as_u64().unwrap(), s["of"].as_u64().unwrap())
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Everything the known mix must give, whichever path produced the report.
fn assert_known_mix(report: &Value) {
    assert_eq!(report["events"], 10, "{report:#}");
    assert_eq!(share(report, "externalRequestId"), (7, 10));
    assert_eq!(share(report, "tenantId"), (8, 10));
    assert_eq!(share(report, "promptVersion"), (9, 10));
    assert_eq!(share(report, "usage"), (10, 10));
    assert_eq!(share(report, "priced"), (9, 10));
    assert_eq!(report["shares"]["tenantId"]["share"], 0.8);
    assert_eq!(report["stage"], "priced");
    // mean of (7 + 8 + 9 + 10 + 9) / 50 = 86, less 5 for each of two lint findings.
    assert_eq!(report["score"], 76);
    let lint = &report["lint"];
    assert_eq!(
        lint["spellings"],
        json!([{"normalized": "support.reply", "tags": [
            {"endpointTag": "support.reply", "events": 4},
            {"endpointTag": "Support_Reply", "events": 3}
        ]}])
    );
    assert_eq!(
        lint["idsInTags"],
        json!([{"endpointTag": UUID_TAG, "reason": "a UUID"}])
    );
    assert_eq!(lint["highCardinality"], Value::Null);
    let endpoint = |tag: &str| {
        report["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpointTag"] == tag)
            .unwrap_or_else(|| panic!("{tag} listed"))
            .clone()
    };
    let spelled = endpoint("Support_Reply");
    assert_eq!(spelled["events"], 3);
    assert_eq!(spelled["shares"]["externalRequestId"]["with"], 1);
    assert_eq!(spelled["shares"]["tenantId"]["with"], 2);
    assert_eq!(spelled["shares"]["priced"]["with"], 2);
    let support = endpoint("support.reply");
    assert_eq!(support["shares"]["externalRequestId"]["with"], 3);
    assert_eq!(support["shares"]["tenantId"]["with"], 3);
    assert_eq!(endpoint(UUID_TAG)["shares"]["promptVersion"]["with"], 0);
    let keys = report["keys"].as_array().unwrap();
    let typoed: Vec<&Value> = keys.iter().filter(|k| k["unknownFields"] != 0).collect();
    assert_eq!(typoed.len(), 1, "{keys:?}");
    assert_eq!(typoed[0]["unknownFields"], 1);
    assert_eq!(typoed[0]["lastUnknownField"], "promptVerison");
}

#[tokio::test]
async fn a_known_mix_gives_exact_shares_and_lint_via_the_api_and_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let r = api.post("/v1/ingest/batch", &ingest, &known_mix()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["accepted"], 10);

    let r = api.get("/v1/quality", &read).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_known_mix(&r.body);
    assert_eq!(
        r.body["privacy"],
        json!({"pseudonymized": 0, "rejected": 0})
    );
    let expected_statuses: Vec<(String, String)> = [
        ("externalRequestId", "warn"),
        ("tenantId", "warn"),
        ("promptVersion", "pass"),
        ("usage", "pass"),
        ("priced", "pass"),
        ("unknownFields", "warn"),
        ("personalIds", "pass"),
        ("endpointSpellings", "warn"),
        ("idsInEndpointTags", "warn"),
        ("endpointCardinality", "pass"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(statuses(&r.body), expected_statuses);

    // A filter narrows it like every read endpoint; a typo'd parameter is a 400 naming it.
    let one = api
        .get("/v1/quality?endpointTag=Support_Reply", &read)
        .await;
    assert_eq!(one.body["events"], 3);
    assert_eq!(share(&one.body, "tenantId"), (2, 3));
    // A tenant filter: its own calls all have a tenant; naming `unknown` keeps the
    // calls without one, and only those lack it.
    let acme = api.get("/v1/quality?tenantId=acme", &read).await.body;
    assert_eq!(share(&acme, "tenantId"), (8, 8));
    let both = api
        .get("/v1/quality?tenantId=acme,unknown", &read)
        .await
        .body;
    assert_eq!(share(&both, "tenantId"), (8, 10));
    let bad = api.get("/v1/quality?endpointTags=x", &read).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["fields"][0]["field"], "endpointTags");
    // An empty window is the first stage, with no score.
    let empty = api
        .get(
            "/v1/quality?from=2021-01-01T00:00:00Z&to=2021-01-02T00:00:00Z",
            &read,
        )
        .await;
    assert_eq!(empty.body["stage"], "no_events");
    assert_eq!(empty.body["score"], Value::Null);

    // doctor asking the server prints the same report.
    let url = server.url.clone();
    let remote = cli(&db, &["doctor", "--json", "--url", &url, "--key", &read]);
    let remote: Value = serde_json::from_str(&remote).unwrap();
    assert_known_mix(&remote);
    // doctor reading the store file: the same shares; no server counted personal ids.
    let local: Value = serde_json::from_str(&cli(&db, &["doctor", "--json"])).unwrap();
    assert_known_mix(&local);
    assert_eq!(local["privacy"], Value::Null);
    assert_eq!(
        statuses(&local).len(),
        expected_statuses.len() - 1,
        "no personalIds check without a server"
    );
    let text = cli(&db, &["doctor"]);
    for line in [
        "10 events",
        "stage: priced",
        "score: 76/100",
        "promptVerison",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(
        text.contains("7 of 10 events (70.0%) carry a stable externalRequestId"),
        "{text}"
    );
    // A bad flag value is an error naming it, exit non-zero.
    let out = std::process::Command::new(BIN)
        .args(["--db", db.to_str().unwrap(), "doctor", "--since", "7x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));

    // An id that looks like an e-mail is pseudonymized at ingest and counted here.
    let mut personal = call(
        Some("a11"),
        "billing.summary",
        Some("acme"),
        Some("v1"),
        PRICED,
    );
    personal["userId"] = json!("bob@example.com");
    let r = api.post("/v1/ingest/llm-request", &ingest, &personal).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let after = api.get("/v1/quality", &read).await.body;
    assert_eq!(after["privacy"], json!({"pseudonymized": 1, "rejected": 0}));
    assert!(statuses(&after).contains(&("personalIds".into(), "pass".into())));
    assert_eq!(after["events"], 11);
}

/// The dashboard's Setup page as a logged-in reader sees it.
async fn setup_page(http: &reqwest::Client, url: &str, cookie: &str) -> String {
    let resp = http
        .get(format!("{url}/setup"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

fn step_state<'a>(page: &'a str, step: &str) -> &'a str {
    let marker = format!("data-step=\"{step}\" data-state=\"");
    let at = page.find(&marker).unwrap_or_else(|| panic!("{step} shown")) + marker.len();
    &page[at..at + page[at..].find('"').unwrap()]
}

#[tokio::test]
async fn the_setup_page_walks_from_no_event_to_attribution_complete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    cli(&db, &["workspaces", "create", "fresh"]);
    let (ingest, read) = (key(&db, "fresh", "ingest"), key(&db, "fresh", "read"));
    let server = Server::start(&db, &[]);
    let api = Api::new(&server);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{}/login", server.url))
        .form(&[("key", read.as_str()), ("next", "/setup")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();

    // An empty workspace's Overview points to Setup.
    let overview = http
        .get(format!("{}/", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        overview.contains("New workspace? <a href=\"/setup"),
        "{overview}"
    );

    let page = setup_page(&http, &server.url, &cookie).await;
    assert!(page.contains("data-stage=\"no_events\""), "{page}");
    assert_eq!(step_state(&page, "first-event"), "current");
    assert_eq!(step_state(&page, "first-priced"), "todo");
    assert!(page.contains(&format!("curl -sS {}/v1/ingest/llm-request", server.url)));
    assert!(!page.contains("quality-checks"), "no checks without events");

    let send = |events: Vec<Value>| {
        let (api, ingest) = (&api, &ingest);
        async move {
            let r = api
                .post("/v1/ingest/batch", ingest, &Value::Array(events))
                .await;
            assert_eq!(r.status, 202, "{:?}", r.body);
        }
    };
    send(vec![call(Some("u1"), "chat", None, None, UNPRICED)]).await;
    let page = setup_page(&http, &server.url, &cookie).await;
    assert!(page.contains("data-stage=\"unpriced\""), "{page}");
    assert_eq!(step_state(&page, "first-event"), "done");
    assert_eq!(step_state(&page, "first-priced"), "current");

    send(vec![call(Some("p1"), "chat", None, None, PRICED)]).await;
    let page = setup_page(&http, &server.url, &cookie).await;
    assert!(page.contains("data-stage=\"priced\""), "{page}");
    assert_eq!(step_state(&page, "first-priced"), "done");
    assert_eq!(step_state(&page, "complete"), "current");
    assert!(page.contains("data-check=\"tenantId\" data-status=\"fail\""));

    // 18 of 20 with a tenant and a version: 90%, the target.
    let attributed: Vec<Value> = (0..18)
        .map(|i| {
            call(
                Some(&format!("c{i}")),
                "chat",
                Some("acme"),
                Some("v1"),
                PRICED,
            )
        })
        .collect();
    send(attributed).await;
    let page = setup_page(&http, &server.url, &cookie).await;
    assert!(page.contains("data-stage=\"complete\""), "{page}");
    assert_eq!(step_state(&page, "complete"), "done");
    assert!(page.contains("data-check=\"tenantId\" data-status=\"pass\""));
    assert!(page.contains("data-endpoint=\"chat\""));
}
