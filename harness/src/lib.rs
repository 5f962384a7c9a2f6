//! The one spawn-the-binary harness the end-to-end tests and the benchmarks share: the
//! real `burnrate` binary serving on a free loopback port over a database file, and its
//! CLI run against the same file. Standard library only, so it builds in seconds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A `burnrate serve` child process on a free loopback port; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
    pub db: PathBuf,
}

impl Server {
    /// Start `bin serve` on port 0 over `db` with `extra` flags; waits for its
    /// `listening on URL` line. `stderr` is where its log goes.
    pub fn spawn(bin: &Path, db: &Path, extra: &[&str], stderr: Stdio) -> std::io::Result<Server> {
        let mut child = Command::new(bin)
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(line) => {
                    if let Some(url) = line?.strip_prefix("listening on ") {
                        break url.to_string();
                    }
                }
                None => {
                    let _ = child.wait();
                    return Err(std::io::Error::other("the server exited before listening"));
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            child,
            url,
            db: db.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no graceful shutdown, the harshest restart.
    pub fn kill(mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }

    /// SIGTERM, then wait: the graceful path a real deployment takes.
    pub fn stop(mut self) -> std::io::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait().map(|_| ())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `bin --db DB ARGS` to completion.
pub fn cli(bin: &Path, db: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new(bin).arg("--db").arg(db).args(args).output()
}

/// Create an API key of `scope` in `workspace` with the CLI; returns the key.
pub fn create_key(bin: &Path, db: &Path, workspace: &str, scope: &str) -> std::io::Result<String> {
    let out = cli(
        bin,
        db,
        &["keys", "create", "--workspace", workspace, "--scope", scope],
    )?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "burnrate keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // `keys create` prints the key alone on stdout.
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The buckets of histogram `name` (no labels) in a Prometheus or OpenMetrics text:
/// (upper bound in seconds, observations at or under it), cumulative as exposed, in
/// order, `+Inf` last. Empty when the text has no such histogram.
pub fn histogram_buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = match bound {
                "+Inf" => f64::INFINITY,
                b => b.parse().ok()?,
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}
