//! The server as an operator runs it: its log, its connection limits, a full disk, and
//! requests too large to answer.

mod common;

use common::{cli, Server};

/// Colour codes belong on a terminal only; a log file or pipeline got `\x1b[2m...` before.
#[tokio::test]
async fn log_without_a_terminal_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let log = dir.path().join("server.log");
    cli(&db, &["workspaces", "list"]);
    let server = Server::start_logged(&db, &["--no-alerts"], &log);
    // A request answered means the server is past its start (and its log line).
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("serving"),
        "the log has the start line: {text}"
    );
    assert!(text.contains("closing the store"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "colour codes in a piped log: {text:?}"
    );
}
