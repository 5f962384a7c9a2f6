//! The config file against the real binary: `burnrate config example` is a file the
//! binary accepts (all defaults: a no-op), a value in the file applies when neither the
//! flag nor its environment variable is given (flags > env > file), a command's section
//! applies to that command, `BURNRATE_CONFIG` names the file like `--config`, and a key
//! that is no flag, a value of the wrong kind or a missing file are refused by name.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// `burnrate ARGS` in `dir` with `env` and none of the BURNRATE_ variables of the
/// caller's environment.
fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(common::BIN);
    cmd.current_dir(dir).args(args);
    for var in [
        "BURNRATE_DB",
        "BURNRATE_STORE",
        "BURNRATE_CONFIG",
        "BURNRATE_LOG",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn the_example_is_accepted_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let example = ok(&run(dir.path(), &[], &["config", "example"]));
    assert!(example.contains("[serve]\n"), "{example}");
    assert!(example.contains("listen = \"127.0.0.1:8080\""));
    assert!(example.contains("[reconcile.import]"));
    std::fs::write(dir.path().join("burnrate.toml"), &example).unwrap();
    // The example's db is the default burnrate.db, in the working directory.
    let key = ok(&run(
        dir.path(),
        &[],
        &[
            "--config",
            "burnrate.toml",
            "keys",
            "create",
            "--scope",
            "read",
        ],
    ));
    assert!(key.starts_with("br_"), "{key}");
    assert!(dir.path().join("burnrate.db").exists());
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("c.toml"), "db = \"file.db\"\n").unwrap();
    let create = ["keys", "create", "--scope", "read"];
    let with_config = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--config".to_string(), "c.toml".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(create.iter().map(|s| s.to_string()));
        args
    };
    let args = with_config(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&run(d, &[], &args));
    assert!(d.join("file.db").exists(), "the file's db");
    ok(&run(d, &[("BURNRATE_DB", "env.db")], &args));
    assert!(
        d.join("env.db").exists(),
        "the environment wins over the file"
    );
    let args = with_config(&["--db", "flag.db"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&run(d, &[("BURNRATE_DB", "env2.db")], &args));
    assert!(d.join("flag.db").exists(), "the flag wins over both");
    assert!(!d.join("env2.db").exists());
    // BURNRATE_CONFIG names the file as --config does.
    std::fs::write(d.join("d.toml"), "db = \"named-by-env.db\"\n").unwrap();
    ok(&run(d, &[("BURNRATE_CONFIG", "d.toml")], &create));
    assert!(d.join("named-by-env.db").exists());
}

#[test]
fn a_commands_section_applies_to_that_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let event = r#"{"externalRequestId":"c1","provider":"openai","model":"gpt-4o-mini","endpointTag":"a","inputTokens":10,"outputTokens":2,"status":"success"}"#;
    std::fs::write(d.join("e.jsonl"), format!("{event}\n")).unwrap();
    std::fs::write(
        d.join("c.toml"),
        "db = \"s.db\"\n[export]\nformat = \"ndjson\"\n[import]\nworkspace = \"other\"\n",
    )
    .unwrap();
    ok(&run(
        d,
        &[],
        &["--config", "c.toml", "workspaces", "create", "other"],
    ));
    ok(&run(d, &[], &["--config", "c.toml", "import", "e.jsonl"]));
    // Imported into the file's workspace: the default one has nothing.
    let none = ok(&run(
        d,
        &[],
        &["--config", "c.toml", "export", "--workspace", "default"],
    ));
    assert_eq!(none, "", "ndjson of no events is empty");
    let lines = ok(&run(
        d,
        &[],
        &["--config", "c.toml", "export", "--workspace", "other"],
    ));
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["externalRequestId"], "c1",
        "the file's format: ndjson"
    );
    let csv = ok(&run(
        d,
        &[],
        &[
            "--config",
            "c.toml",
            "export",
            "--workspace",
            "other",
            "--format",
            "csv",
        ],
    ));
    assert!(
        csv.starts_with("externalRequestId,"),
        "the flag wins: {csv}"
    );
}

#[test]
fn bad_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (text, says) in [
        (
            "[export]\nformt = \"csv\"\n",
            "[export] formt is not a flag of `burnrate export`",
        ),
        (
            "[serve]\nno-alerts = \"yes\"\n",
            "[serve] no-alerts must be true or false",
        ),
        ("dbb = \"x.db\"\n", "dbb is not a flag"),
        ("db = \n", "is not TOML"),
    ] {
        std::fs::write(d.join("bad.toml"), text).unwrap();
        let out = run(d, &[], &["--config", "bad.toml", "workspaces", "list"]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{text}: {err}");
    }
    let out = run(d, &[], &["--config", "missing.toml", "workspaces", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml: cannot read it"));
    // A value the flag refuses is refused as the flag would be.
    std::fs::write(d.join("bad.toml"), "[serve]\nmax-connections = 0\n").unwrap();
    let out = run(d, &[], &["--config", "bad.toml", "serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-connections"));
}
