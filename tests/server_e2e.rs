//! The server as an operator runs it: its log, its connection limits, a full disk, and
//! requests too large to answer.

mod common;

use common::{blamed, cli, key, Api, Server};
use serde_json::json;

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

/// 40,000 values in one filter reached SQLite as 40,000 parameters: a 500 "too many SQL
/// variables", and the whole statement (400 KB) in the log at error level.
#[tokio::test]
async fn filter_list_over_the_cap_is_a_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let log = dir.path().join("server.log");
    cli(&db, &["workspaces", "list"]);
    let read = key(&db, "default", "read");
    let server = Server::start_logged(&db, &["--no-alerts"], &log);
    let api = Api::new(&server);
    let ids = |n: usize| -> Vec<String> { (0..n).map(|i| format!("t{i}")).collect() };

    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"filters": {"tenantId": ids(40_000)}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["filters.tenantId"]);
    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"filters": {"tag:team": ids(1_001)}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["filters.tag:team"]);
    // Each list within its cap, six of them past the query's 5,000.
    let mut filters = serde_json::Map::new();
    for d in [
        "tenantId",
        "userId",
        "model",
        "provider",
        "endpointTag",
        "promptVersion",
    ] {
        filters.insert(d.into(), json!(ids(1_000)));
    }
    let r = api
        .post("/v1/query", &read, &json!({ "filters": filters }))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(blamed(&r.body["error"]["fields"]), vec!["filters"]);
    // The full cap still answers.
    let r = api
        .post(
            "/v1/query",
            &read,
            &json!({"filters": {"tenantId": ids(1_000)}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // URL parameters with comma lists: the same cap, naming the parameter.
    let list = ids(1_001).join(",");
    for path in [
        "/v1/events",
        "/v1/summary",
        "/v1/top/endpoints",
        "/v1/timeseries",
    ] {
        let r = api.get(&format!("{path}?userId={list}"), &read).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(blamed(&r.body["error"]["fields"]), vec!["userId"], "{path}");
    }
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("SELECT"),
        "SQL in the log: {} bytes",
        text.len()
    );
    assert!(!text.contains("SQL variables"), "{text}");
    assert!(text.len() < 10_000, "the log grew by {} bytes", text.len());
}

/// A tmpfs of `size` mounted at a new directory, unmounted on drop; None (with the reason
/// printed) where mounting is not permitted.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(parent: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let dir = parent.join("tmpfs");
        std::fs::create_dir(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir)),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Write zeros to `path` until the file system is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let mut byte = [0u8; 1];
    while file.write_all(&byte).is_ok() {
        byte[0] = 1;
    }
    let _ = file.sync_all();
}

/// A full disk answered `500 internal` and /readyz said ready. Now: 503 storage_full with
/// Retry-After, /readyz 503 while writes fail, and both recover once space returns, with
/// every acknowledged event kept.
#[tokio::test]
async fn full_disk_is_a_503_with_retry_after_and_not_ready_until_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "4m") else {
        return;
    };
    let db = tmpfs.0.join("full.db");
    cli(&db, &["workspaces", "list"]);
    let ingest = key(&db, "default", "ingest");
    let read = key(&db, "default", "read");
    let server = Server::start_logged(&db, &["--no-alerts"], &dir.path().join("server.log"));
    let api = Api::new(&server);
    let ready = |api: &Api| {
        let url = format!("{}/readyz", api.url);
        let http = api.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(ready(&api).await.0, 200);

    let batch = |round: usize| -> serde_json::Value {
        let events: Vec<_> = (0..200)
            .map(|i| common::event(&format!("r{round}-{i}")))
            .collect();
        json!(events)
    };
    let mut acknowledged = 0u64;
    for round in 0..3 {
        let r = api.post("/v1/ingest/batch", &ingest, &batch(round)).await;
        assert_eq!(r.status, 202, "{}", r.body);
        acknowledged += r.body["accepted"].as_u64().unwrap();
    }
    let filler = tmpfs.0.join("filler");
    fill(&filler);
    let mut full = None;
    for round in 3..200 {
        let r = api.post("/v1/ingest/batch", &ingest, &batch(round)).await;
        match r.status {
            202 => acknowledged += r.body["accepted"].as_u64().unwrap(),
            _ => {
                full = Some((round, r));
                break;
            }
        }
    }
    let (round, r) = full.expect("the disk filled up");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "storage_full", "{}", r.body);
    assert!(r.retry_after.is_some_and(|s| s.parse::<u64>().unwrap() > 0));
    let (status, body) = ready(&api).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage_full"), "{body}");
    // Still not ready on a second look: the probe write fails as long as the disk is full.
    assert_eq!(ready(&api).await.0, 503);

    std::fs::remove_file(&filler).unwrap();
    // Space is back: the refused batch goes in, and readiness returns by itself.
    let r = api.post("/v1/ingest/batch", &ingest, &batch(round)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    acknowledged += r.body["accepted"].as_u64().unwrap();
    assert_eq!(ready(&api).await.0, 200);
    let r = api
        .post("/v1/query", &read, &json!({"measures": ["requests"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rows"][0]["requests"], json!(acknowledged));
    assert_eq!(acknowledged, (round as u64 + 1) * 200);
    server.stop();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("database or disk is full"), "{log}");
    assert!(!log.contains("INSERT"), "no SQL in the log: {log}");
}

/// Readiness also recovers without any ingest: the probe itself notices space is back.
#[tokio::test]
async fn readiness_recovers_by_itself_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "4m") else {
        return;
    };
    let db = tmpfs.0.join("ready.db");
    cli(&db, &["workspaces", "list"]);
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &["--no-alerts"]);
    let api = Api::new(&server);
    let filler = tmpfs.0.join("filler");
    fill(&filler);
    let mut refused = false;
    for round in 0..200 {
        let events: Vec<_> = (0..200)
            .map(|i| common::event(&format!("q{round}-{i}")))
            .collect();
        let r = api.post("/v1/ingest/batch", &ingest, &json!(events)).await;
        if r.status == 503 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the disk filled up");
    let readyz = format!("{}/readyz", api.url);
    assert_eq!(api.http.get(&readyz).send().await.unwrap().status(), 503);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(api.http.get(&readyz).send().await.unwrap().status(), 200);
    server.stop();
}

/// The `host:port` of a server URL.
fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Read until the server closes the connection (or `limit` passes); returns what was
/// read and when it closed, None if it stayed open.
fn until_closed(
    socket: &mut std::net::TcpStream,
    start: std::time::Instant,
    limit: std::time::Duration,
) -> (Vec<u8>, Option<std::time::Duration>) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        let left = limit
            .saturating_sub(start.elapsed())
            .max(std::time::Duration::from_millis(1));
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.read(&mut buf) {
            Ok(0) => return (got, Some(start.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, Some(start.elapsed()))
            }
            Err(_) => break,
        }
    }
    (got, None)
}

/// One request on a fresh connection; the status line's code.
fn get_status(addr: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A client sending its headers a byte at a time held its connection forever: 200 such
/// sockets starved real clients. It is now closed once the header timeout passes.
#[test]
fn slow_loris_client_is_disconnected_after_the_header_timeout() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("loris.db");
    cli(&db, &["workspaces", "list"]);
    let server = Server::start(&db, &["--no-alerts", "--header-timeout-secs", "1"]);
    let mut socket = std::net::TcpStream::connect(addr(&server)).unwrap();
    let start = Instant::now();
    let request =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut_off = None;
    for byte in request {
        if socket.write_all(&[*byte]).is_err() {
            cut_off = Some(start.elapsed());
            break;
        }
        // Gone already? A read that ends at once says so.
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let (got, closed) = until_closed(&mut socket, Instant::now(), Duration::from_millis(300));
        assert!(got.is_empty() || !String::from_utf8_lossy(&got).contains("200 OK"));
        if closed.is_some() {
            cut_off = Some(start.elapsed());
            break;
        }
    }
    let cut_off = cut_off.expect("the slow client was never disconnected");
    assert!(cut_off >= Duration::from_millis(900), "{cut_off:?}");
    assert!(cut_off < Duration::from_secs(4), "{cut_off:?}");
    // Real clients are served as before.
    assert_eq!(get_status(&addr(&server), "/healthz"), 200);
}

/// Connections beyond the cap wait to be accepted; silent ones are closed by the header
/// timeout, so they free their places and a real client behind them is still served.
#[test]
fn idle_sockets_beyond_the_cap_do_not_starve_real_clients() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cap.db");
    cli(&db, &["workspaces", "list"]);
    let server = Server::start(
        &db,
        &[
            "--no-alerts",
            "--header-timeout-secs",
            "1",
            "--max-connections",
            "4",
        ],
    );
    let start = Instant::now();
    let idle: Vec<_> = (0..12)
        .map(|_| std::net::TcpStream::connect(addr(&server)).unwrap())
        .collect();
    let url = addr(&server);
    let client = std::thread::spawn(move || (get_status(&url, "/healthz"), start.elapsed()));
    let closed: Vec<Duration> = idle
        .into_iter()
        .map(|mut s| {
            until_closed(&mut s, start, Duration::from_secs(15))
                .1
                .expect("an idle socket stayed open")
        })
        .collect();
    let (status, served_after) = client.join().unwrap();
    assert_eq!(status, 200);
    assert!(served_after < Duration::from_secs(10), "{served_after:?}");
    // Four at a time: the last of twelve silent sockets is served (and closed) in the
    // third round of one-second timeouts.
    let last = closed.iter().max().unwrap();
    assert!(*last >= Duration::from_millis(2_500), "{closed:?}");
    assert!(
        closed.iter().min().unwrap() < &Duration::from_secs(2),
        "{closed:?}"
    );
}

/// A client that sends its headers and then stalls in the body is closed by the idle
/// timeout (the header timeout no longer applies once the headers are in).
#[test]
fn stalled_upload_is_closed_after_the_idle_timeout() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stall.db");
    cli(&db, &["workspaces", "list"]);
    let ingest = key(&db, "default", "ingest");
    let server = Server::start(&db, &["--no-alerts", "--idle-timeout-secs", "2"]);
    let mut socket = std::net::TcpStream::connect(addr(&server)).unwrap();
    write!(
        socket,
        "POST /v1/ingest/llm-request HTTP/1.1\r\nHost: x\r\nX-API-Key: {ingest}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"externalRequestId\""
    )
    .unwrap();
    let start = Instant::now();
    let (_, closed) = until_closed(&mut socket, start, Duration::from_secs(15));
    let closed = closed.expect("a stalled upload stayed open");
    assert!(closed >= Duration::from_millis(1_900), "{closed:?}");
    assert!(closed < Duration::from_secs(5), "{closed:?}");
    assert_eq!(get_status(&addr(&server), "/healthz"), 200);
}
