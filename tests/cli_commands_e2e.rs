//! The command line through the real binary: exit codes and messages of gate, import,
//! prices, durations, and the live budget state read from a server.

mod common;

use common::{cli, BIN};
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
