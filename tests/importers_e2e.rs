//! `burnrate import --format wrapper|litellm|langfuse|helicone` on sample files written from the other
//! tool's documented shapes (testdata/importers/), through the real binary.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_burnrate");

fn sample(name: &str) -> String {
    format!("{}/testdata/importers/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn stored(db: &std::path::Path, ids: &[&str]) -> Vec<Value> {
    let read = key(db, "default", "read");
    let server = Server::start(db, &[]);
    let api = Api::new(&server);
    let mut events = Vec::new();
    for id in ids {
        let r = api
            .get(&format!("/v1/events?externalRequestId={id}"), &read)
            .await;
        events.push(r.body["events"][0].clone());
    }
    events
}

#[tokio::test]
async fn a_wrapper_log_imports_with_reasoning_added_and_a_line_without_feature_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let out = Command::new(BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "import",
            "--format",
            "wrapper",
        ])
        .arg(sample("wrapper.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 4: endpointTag"), "{stderr}");
    let e = stored(&db, &["req-1", "req-2", "req-3"]).await;
    assert_eq!(
        (
            &e[0]["endpointTag"],
            &e[0]["tenantId"],
            &e[0]["tags"],
            &e[0]["costUsd"]
        ),
        (
            &json!("support.reply"),
            &json!("acme"),
            &json!({"route": "/api/reply"}),
            &json!(0.00024)
        )
    );
    // completion 108 + reasoning 192: reasoning is outside completion in this log.
    assert_eq!(
        (
            &e[1]["outputTokens"],
            &e[1]["reasoningTokens"],
            &e[1]["costUsd"],
            &e[1]["costSource"]
        ),
        (&json!(300), &json!(192), &json!(0.0012), &json!("client"))
    );
    assert_eq!(e[2]["status"], json!("error"));
    assert_eq!(e[1]["timestamp"], json!("2026-03-01T10:00:05Z"));
}

#[tokio::test]
async fn litellm_spend_logs_import_with_their_tags_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    cli(
        &db,
        &[
            "import",
            "--format",
            "litellm",
            &sample("litellm-spendlogs.jsonl"),
        ],
    );
    let e = stored(&db, &["chatcmpl-a1", "chatcmpl-a2", "chatcmpl-a3"]).await;
    assert_eq!(
        (
            &e[0]["endpointTag"],
            &e[0]["userId"],
            &e[0]["latencyMs"],
            &e[0]["timestamp"]
        ),
        (
            &json!("search.rank"),
            &json!("u-17"),
            &json!(840),
            &json!("2026-03-01T10:00:00Z")
        )
    );
    assert_eq!(
        (&e[0]["costUsd"], &e[0]["costSource"]),
        (&json!(0.00024), &json!("client"))
    );
    // spend 0 is LiteLLM's "no price": the book prices it (claude-3-5-haiku:
    // 30 x $0.80/M + 5 x $4/M = $0.000044).
    assert_eq!(
        (&e[1]["endpointTag"], &e[1]["costUsd"]),
        (&json!("support.reply"), &json!(0.000044))
    );
    assert_eq!(e[2]["status"], json!("error"));
    let out = Command::new(BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "import",
            "--format",
            "langsmith",
            "-",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("use one of burnrate, wrapper, litellm, langfuse, helicone"));
}

#[tokio::test]
async fn langfuse_generations_import_with_their_usage_types_and_spans_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let out = Command::new(BIN)
        .args([
            "--db",
            db.to_str().unwrap(),
            "import",
            "--format",
            "langfuse",
        ])
        .arg(sample("langfuse-observations.jsonl"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // gen-a4's model names no provider Langfuse could have recorded: rejected, named.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 5: provider"), "{stderr}");
    assert!(stdout.contains("3 accepted"), "{stdout}");
    assert!(stdout.contains("skipped 1 lines"), "{stdout}");
    let e = stored(&db, &["gen-a1", "gen-a2", "gen-a3", "span-1"]).await;
    // input 600 + cached 400 (Langfuse keeps them apart), output 200.
    assert_eq!(
        (
            &e[0]["inputTokens"],
            &e[0]["cachedTokens"],
            &e[0]["outputTokens"],
            &e[0]["promptVersion"],
            &e[0]["tenantId"],
            &e[0]["latencyMs"]
        ),
        (
            &json!(1000),
            &json!(400),
            &json!(200),
            &json!("reply-v3"),
            &json!("acme"),
            &json!(1250)
        )
    );
    assert_eq!(
        (&e[0]["costUsd"], &e[0]["costSource"]),
        (&json!(0.00021), &json!("client"))
    );
    // No cost from Langfuse: the book prices it (30 x $0.80/M + 5 x $4/M).
    assert_eq!(
        (&e[1]["provider"], &e[1]["costUsd"], &e[1]["promptVersion"]),
        (
            &json!("anthropic"),
            &json!(0.000044),
            &json!("summarize_v2")
        )
    );
    assert_eq!(e[2]["status"], json!("error"));
    assert_eq!(e[3], Value::Null, "a span is not an event");
}

#[tokio::test]
async fn helicone_requests_import_with_their_properties_and_provider_token_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    cli(
        &db,
        &[
            "import",
            "--format",
            "helicone",
            &sample("helicone-requests.jsonl"),
        ],
    );
    let ids = [
        "0b7f6a2e-8c1d-4f3a-9e2b-5d4c3b2a1f01",
        "0b7f6a2e-8c1d-4f3a-9e2b-5d4c3b2a1f02",
        "0b7f6a2e-8c1d-4f3a-9e2b-5d4c3b2a1f03",
    ];
    let e = stored(&db, &ids).await;
    assert_eq!(
        (
            &e[0]["endpointTag"],
            &e[0]["tenantId"],
            &e[0]["userId"],
            &e[0]["provider"],
            &e[0]["inputTokens"],
            &e[0]["cachedTokens"],
            &e[0]["latencyMs"]
        ),
        (
            &json!("search.rank"),
            &json!("globex"),
            &json!("u-17"),
            &json!("openai"),
            &json!(1000),
            &json!(400),
            &json!(840)
        )
    );
    assert_eq!(
        (&e[0]["costUsd"], &e[0]["costSource"]),
        (&json!(0.00024), &json!("client"))
    );
    // cost 0 is Helicone's "no price": the book prices it.
    assert_eq!(
        (
            &e[1]["endpointTag"],
            &e[1]["costUsd"],
            &e[1]["promptVersion"]
        ),
        (
            &json!("support.reply"),
            &json!(0.000044),
            &json!("support_v7")
        )
    );
    // No Feature property: the request path is the endpoint; a 500 is an error.
    assert_eq!(
        (&e[2]["endpointTag"], &e[2]["status"]),
        (&json!("/v1/chat/completions"), &json!("error"))
    );
}
