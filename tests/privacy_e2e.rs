//! Privacy by default, end to end through the real binary: ids that look like e-mail
//! addresses or phone numbers never reach the store file, a reply or the server log (at
//! debug level); the guard, budgets and read filters find the person by the raw value;
//! policy `reject` answers 400 naming the field.

mod common;

use common::{blamed, cli, key, Api, Server};
use serde_json::{json, Value};
use std::path::Path;

const RAW: [&str; 4] = [
    "bob@example.com",
    "Bob@Example.com",
    "415 555 0100",
    "alice@example.co.uk",
];

fn call(id: &str, tenant: &str, user: &str, cost: &str) -> Value {
    json!({
        "externalRequestId": id, "provider": "openai", "model": "gpt-4o-mini",
        "endpointTag": "support.reply", "tenantId": tenant, "userId": user,
        "tags": {"owner": "alice@example.co.uk", "team": "search"},
        "inputTokens": 100, "outputTokens": 10, "costUsd": cost.parse::<f64>().unwrap(),
        "status": "success"
    })
}

/// Every file of the store (the database, its WAL and shared memory) as bytes.
fn store_bytes(db: &Path) -> Vec<u8> {
    let name = db.file_name().unwrap().to_str().unwrap().to_string();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_str().unwrap().starts_with(&name) {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    all
}

fn assert_no_raw(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    for raw in RAW {
        assert!(
            !text.contains(&raw.to_lowercase()),
            "{what} holds the raw id {raw:?}"
        );
    }
}

#[tokio::test]
async fn personal_ids_never_reach_the_store_a_reply_or_the_log_and_caps_still_find_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = dir.path().join("server.log");
    let (admin, ingest, read) = (
        key(&db, "default", "admin"),
        key(&db, "default", "ingest"),
        key(&db, "default", "read"),
    );
    // `import` is a front door too: it pseudonymizes with the same workspace secret.
    let file = dir.path().join("old.jsonl");
    std::fs::write(
        &file,
        format!("{}\n", call("old-1", "bob@example.com", "u1", "0.5")),
    )
    .unwrap();
    cli(&db, &["import", file.to_str().unwrap()]);

    std::env::set_var("BURNRATE_LOG", "debug");
    let server = Server::start_logged(&db, &["--no-alerts"], &log);
    let api = Api::new(&server);
    let mut replies = Vec::new();

    let budget = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "bob cap", "scope": {"tenantId": "bob@example.com"}, "period": "month",
                    "limitUsd": 3, "action": "block", "thresholds": [50]}),
        )
        .await;
    assert_eq!(budget.status, 201, "{}", budget.body);
    let pseudonym = budget.body["scope"]["tenantId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pseudonym.starts_with("pii_") && pseudonym.len() == 24,
        "{pseudonym}"
    );
    replies.push(budget.body.clone());

    let stored = api
        .post(
            "/v1/ingest/batch",
            &ingest,
            &json!([
                call("r1", "bob@example.com", "+1 415 555 0100", "1"),
                call("r2", "Bob@Example.com", "user_123", "1"),
                call("r3", "acme-corp", "tenant@v2", "1"),
            ]),
        )
        .await;
    assert_eq!(stored.status, 202, "{}", stored.body);
    assert_eq!(stored.body["accepted"], 3, "{}", stored.body);
    replies.push(stored.body.clone());

    // A filter naming the raw e-mail finds his events (both spellings, and the import).
    let events = api
        .get("/v1/events?tenantId=bob@example.com&since=1d", &read)
        .await;
    assert_eq!(events.status, 200, "{}", events.body);
    let found = events.body["events"].as_array().unwrap();
    let ids: std::collections::BTreeSet<&str> = found
        .iter()
        .map(|e| e["externalRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["old-1", "r1", "r2"].into_iter().collect());
    assert!(found.iter().all(|e| e["tenantId"] == json!(pseudonym)));
    replies.push(events.body.clone());
    let acme = api
        .get("/v1/events?tenantId=acme-corp&since=1d", &read)
        .await;
    let acme = &acme.body["events"][0];
    assert_eq!(acme["tenantId"], "acme-corp");
    assert_eq!(
        acme["userId"], "tenant@v2",
        "not an e-mail: no dotted domain"
    );
    let top = api.get("/v1/top/tenants?since=1d", &read).await;
    assert_eq!(top.status, 200, "{}", top.body);
    replies.push(top.body.clone());

    // The guard names him by e-mail and meets his budget: $2.50 spent + $1 > $3.
    let guard = api
        .post(
            "/v1/guard",
            &ingest,
            &json!({"endpointTag": "support.reply", "tenantId": "bob@example.com",
                    "estimatedCostUsd": 1}),
        )
        .await;
    assert_eq!(guard.status, 200, "{}", guard.body);
    assert_eq!(guard.body["allow"], false, "{}", guard.body);
    assert_eq!(guard.body["reason"], "budget_exceeded");
    replies.push(guard.body.clone());
    let other = api
        .post(
            "/v1/guard",
            &ingest,
            &json!({"endpointTag": "support.reply", "tenantId": "carol@example.com",
                    "estimatedCostUsd": 1}),
        )
        .await;
    assert_eq!(other.body["allow"], true, "{}", other.body);
    let status = api.get("/v1/budgets", &admin).await;
    assert_eq!(
        status.body["budgets"][0]["status"]["spentUsd"],
        json!(2.5),
        "{}",
        status.body
    );
    replies.push(status.body.clone());

    // r1: tenant, user, tag; r2: tenant, tag; r3: tag.
    let metrics = api.get("/metrics", &read).await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains(
            "burnrate_personal_ids_total{workspace=\"default\",outcome=\"pseudonymized\"} 6"
        ),
        "{text}"
    );

    server.stop();
    for reply in &replies {
        assert_no_raw("a reply", reply.to_string().as_bytes());
    }
    let log_text = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&log_text).contains("DEBUG"),
        "debug log on"
    );
    assert_no_raw("the server log", &log_text);
    assert_no_raw("the store", &store_bytes(&db));
}

#[tokio::test]
async fn policy_reject_answers_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let (admin, ingest) = (key(&db, "default", "admin"), key(&db, "default", "ingest"));
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let set = api
        .put_json(
            "/v1/workspace/settings",
            &admin,
            &json!({"piiIds": "reject"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["piiIds"], "reject");

    let one = api
        .post(
            "/v1/ingest/llm-request",
            &ingest,
            &call("r1", "acme", "bob@example.com", "1"),
        )
        .await;
    assert_eq!(one.status, 400, "{}", one.body);
    assert_eq!(
        blamed(&one.body["error"]["fields"]),
        vec!["userId", "tags.owner"]
    );
    assert_no_raw("the reply", one.body.to_string().as_bytes());

    let budget = api
        .post(
            "/v1/budgets",
            &admin,
            &json!({"name": "x", "scope": {"userId": "+1 415 555 0100"}, "period": "day",
                    "limitUsd": 3}),
        )
        .await;
    assert_eq!(budget.status, 400, "{}", budget.body);
    assert_eq!(
        blamed(&budget.body["error"]["fields"]),
        vec!["scope.userId"]
    );

    let guard = api
        .post(
            "/v1/guard",
            &ingest,
            &json!({"endpointTag": "support.reply", "tenantId": "bob@example.com"}),
        )
        .await;
    assert_eq!(guard.status, 400, "{}", guard.body);
    assert_eq!(blamed(&guard.body["error"]["fields"]), vec!["tenantId"]);

    // Opaque ids still go through.
    let mut ok = call("r2", "acme", "user_123", "1");
    ok["tags"] = json!({"team": "search"});
    let stored = api.post("/v1/ingest/llm-request", &ingest, &ok).await;
    assert_eq!(stored.status, 202, "{}", stored.body);
    server.stop();
}

#[tokio::test]
async fn opting_in_pseudonymizes_every_tenant_and_user_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    cli(
        &db,
        &[
            "workspaces",
            "configure",
            "default",
            "--pseudonymize-all-ids",
            "true",
        ],
    );
    let (ingest, read) = (key(&db, "default", "ingest"), key(&db, "default", "read"));
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let stored = api
        .post(
            "/v1/ingest/llm-request",
            &ingest,
            &call("r1", "acme-corp", "user_123", "1"),
        )
        .await;
    assert_eq!(stored.status, 202, "{}", stored.body);
    let events = api
        .get("/v1/events?tenantId=acme-corp&since=1d", &read)
        .await;
    let e = &events.body["events"][0];
    assert!(e["tenantId"].as_str().unwrap().starts_with("pii_"), "{e}");
    assert!(e["userId"].as_str().unwrap().starts_with("pii_"), "{e}");
    assert_eq!(e["tags"]["team"], "search", "tag values only when personal");
    server.stop();
}

/// Two processes' handles on one store making the first secret of a workspace at the same
/// moment end with one secret, the same for both; `workspaces create` makes it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_uses_agree_on_one_pseudonym_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    cli(&db, &["workspaces", "create", "acme"]);
    let url = format!("sqlite://{}", db.display());
    let (a, b) = (
        burnrate::store::open(&url).unwrap(),
        burnrate::store::open(&url).unwrap(),
    );
    let acme = a.workspace("acme".into()).await.unwrap().unwrap().id;
    let made = a
        .objects(Some(acme), burnrate::privacy::SECRET_KIND)
        .await
        .unwrap();
    assert_eq!(made.len(), 1, "created with the workspace");

    let ws = a.workspace("default".into()).await.unwrap().unwrap().id;
    assert!(a
        .objects(Some(ws), burnrate::privacy::SECRET_KIND)
        .await
        .unwrap()
        .is_empty());
    let mut racers = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        racers.push(tokio::spawn(async move {
            let secret = burnrate::privacy::ensure_secret(store.as_ref(), ws)
                .await
                .unwrap();
            secret.pseudonym("bob@example.com")
        }));
    }
    let mut pseudonyms = Vec::new();
    for r in racers {
        pseudonyms.push(r.await.unwrap());
    }
    pseudonyms.dedup();
    assert_eq!(pseudonyms.len(), 1, "{pseudonyms:?}");
    let rows = b
        .objects(Some(ws), burnrate::privacy::SECRET_KIND)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "losers delete their rows");
    a.close().await;
    b.close().await;
}
