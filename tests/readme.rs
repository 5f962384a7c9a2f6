//! The README's shell examples, run as written against `burnrate serve --demo`, so that
//! what the README shows is what burnrate prints.
//!
//! How README.md is read (keep these rules when editing it):
//! - Every ```` ```sh ```` block is a sequence of commands, run in order by one bash
//!   session (variables carry over), in a temporary directory where `burnrate serve
//!   --demo` was started with the default database `./burnrate.db`. `burnrate` on PATH is
//!   the binary under test; `KEY` holds the admin key the server printed.
//! - A command ends at a line end outside quotes that does not end in `\`. Lines starting
//!   with `#` that follow a command show its output (combined stdout and stderr), one `# `
//!   line per output line. Inside a line `...` matches any text; a line that is only
//!   `...` matches any number of output lines (also none). The shown lines must account
//!   for the whole output: end with `# ...` when only its start is shown. A command
//!   without shown output only has to succeed (exit status 0); a command that is meant to
//!   fail shows it, e.g. `burnrate gate ...; echo "exit $?"`.
//! - Substitutions: `127.0.0.1:8080` (the README's address) becomes the test server's
//!   address in commands and back in their output; `KEY=br_...` sets the real admin key.
//! - A block that must not run here (it builds, installs, starts another server, runs
//!   the test suite, or talks to the outside world) has the line
//!   `<!-- readme-test: skip (why) -->` right before its opening fence.
//!
//! When this test fails it lists every command whose output differs: the README line,
//! the command, the shown lines and what it really printed. Fix the README (or the code).
//! It needs `bash`, `curl` and coreutils `timeout` on PATH, as the README's reader does.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_burnrate");
const README_ADDR: &str = "127.0.0.1:8080";
const SKIP_MARK: &str = "<!-- readme-test: skip";

/// One command of the README and the output lines it shows.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    line: usize,
    command: String,
    shown: Vec<String>,
}

/// The runnable examples of a README, in order.
fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let lines: Vec<&str> = readme.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_end();
        if fence != "```sh" {
            i += 1;
            continue;
        }
        let skip = i > 0 && lines[i - 1].trim_start().starts_with(SKIP_MARK);
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].trim_end() != "```" {
            end += 1;
        }
        if !skip {
            out.extend(block_examples(&lines[start..end], start + 1));
        }
        i = end + 1;
    }
    out
}

/// Split one block into commands and their shown output. `first_line` is the 1-based
/// README line of the block's first line.
fn block_examples(lines: &[&str], first_line: usize) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut quote = Quote::None;
    let mut current: Option<Example> = None;
    for (n, line) in lines.iter().enumerate() {
        if let Some(ex) = current.as_mut() {
            ex.command.push('\n');
            ex.command.push_str(line);
        } else if let Some(shown) = line.trim_start().strip_prefix('#') {
            // Output shown for the previous command (a comment before any command is prose).
            if let Some(prev) = out.last_mut() {
                prev.shown.push(
                    shown
                        .strip_prefix(' ')
                        .unwrap_or(shown)
                        .trim_end()
                        .to_string(),
                );
            }
            continue;
        } else if line.trim().is_empty() {
            continue;
        } else {
            current = Some(Example {
                line: first_line + n,
                command: line.to_string(),
                shown: Vec::new(),
            });
        }
        quote = scan(line, quote);
        if quote == Quote::None && !line.trim_end().ends_with('\\') {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

/// The quoting state after `line`, starting in `quote` (enough shell for the README:
/// quotes, backslash escapes outside single quotes, and `#` comments).
fn scan(line: &str, mut quote: Quote) -> Quote {
    let mut chars = line.chars().peekable();
    let mut prev_blank = true;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Quote::None, '#') if prev_blank => return quote,
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::None | Quote::Double, '\\') => {
                chars.next();
            }
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    quote
}

/// Does `text` match `pattern`, where `...` stands for any text?
fn line_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Do the output lines match the shown lines (`...` alone: any number of lines)?
fn output_matches(shown: &[String], actual: &[&str]) -> bool {
    match shown.split_first() {
        None => actual.is_empty(),
        Some((p, rest)) if p == "..." => {
            (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..]))
        }
        Some((p, rest)) => {
            !actual.is_empty() && line_matches(p, actual[0]) && output_matches(rest, &actual[1..])
        }
    }
}

/// The demo server, started in `dir` with the default database file.
struct Demo {
    child: Child,
    addr: String,
    admin_key: String,
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        let mut child = Command::new(BIN)
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("BURNRATE_DB")
            .env_remove("BURNRATE_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start burnrate serve --demo");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin_key = None;
        let addr = loop {
            let line = lines
                .next()
                .expect("the demo server exited before listening")
                .unwrap();
            if let Some(key) = line.strip_prefix("admin key (shown once, keep it safe): ") {
                admin_key = Some(key.trim().to_string());
            }
            if let Some(url) = line.strip_prefix("listening on http://") {
                break url.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Demo {
            child,
            addr,
            admin_key: admin_key.expect("serve --demo printed no admin key"),
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One bash script running every example, each output framed by marker lines.
fn script(examples: &[Example], demo: &Demo) -> String {
    let mut s = String::from("exec 2>&1\n");
    for (i, ex) in examples.iter().enumerate() {
        let command = ex
            .command
            .replace(README_ADDR, &demo.addr)
            .replace("KEY=br_...", &format!("KEY={}", demo.admin_key));
        s.push_str(&format!(
            "printf '\\n@@readme-begin {i}\\n'\n{command}\nprintf '\\n@@readme-end {i} %s\\n' \"$?\"\n"
        ));
    }
    s
}

/// Each example's output lines and exit status, cut out of the script's output.
fn split_output(text: &str, count: usize) -> Vec<(Vec<String>, Option<i32>)> {
    let lines: Vec<&str> = text.lines().collect();
    (0..count)
        .map(|i| {
            let begin = format!("@@readme-begin {i}");
            let end = format!("@@readme-end {i} ");
            let Some(from) = lines.iter().position(|l| *l == begin) else {
                return (vec!["(the command never started)".into()], None);
            };
            let to = lines[from..]
                .iter()
                .position(|l| l.starts_with(&end))
                .map(|n| from + n);
            let body = &lines[from + 1..to.unwrap_or(lines.len())];
            let status = to.and_then(|t| lines[t][end.len()..].trim().parse().ok());
            let mut body: Vec<String> = body.iter().map(|l| l.trim_end().to_string()).collect();
            while body.last().is_some_and(|l| l.is_empty()) {
                body.pop();
            }
            (body, status)
        })
        .collect()
}

fn indent(lines: &[String]) -> String {
    if lines.is_empty() {
        return "    (nothing)\n".into();
    }
    lines.iter().map(|l| format!("    {l}\n")).collect()
}

#[test]
fn every_readme_example_prints_what_the_readme_shows() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let examples = examples(&readme);
    assert!(
        examples.len() >= 20 && examples.iter().filter(|e| !e.shown.is_empty()).count() >= 10,
        "the README should have runnable examples with shown output; found {examples:#?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let script_path = dir.path().join("readme-examples.sh");
    std::fs::write(&script_path, script(&examples, &demo)).unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("timeout");
    cmd.args(["600", "bash", script_path.to_str().unwrap()])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("KEY", &demo.admin_key)
        .env("NO_COLOR", "1");
    for var in [
        "BURNRATE_DB",
        "BURNRATE_URL",
        "BURNRATE_KEY",
        "BURNRATE_API_KEY",
        "BURNRATE_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("run bash");
    let text = String::from_utf8_lossy(&output.stdout).replace(&demo.addr, README_ADDR);
    let mut failures = String::new();
    for (ex, (actual, status)) in examples.iter().zip(split_output(&text, examples.len())) {
        let refs: Vec<&str> = actual.iter().map(String::as_str).collect();
        let ok_output = ex.shown.is_empty() || output_matches(&ex.shown, &refs);
        if ok_output && status == Some(0) {
            continue;
        }
        failures.push_str(&format!(
            "\nREADME.md:{}: {}\n  exit status: {}\n  the README shows:\n{}  it printed:\n{}",
            ex.line,
            ex.command.replace('\n', "\n    "),
            status.map_or("none (killed or never ran)".into(), |s| s.to_string()),
            indent(&ex.shown),
            indent(&actual),
        ));
    }
    assert!(
        failures.is_empty(),
        "README examples differ from what burnrate prints (`...` matches any text; a line \
         of only `...` any lines):\n{failures}"
    );
}

#[cfg(test)]
mod rules {
    use super::*;

    #[test]
    fn commands_span_quotes_and_continuations_and_collect_their_shown_output() {
        let readme = "text\n```sh\nKEY=br_...   # the key's comment\ncurl -d '{\"a\":\n  1}' \\\n  -H x\n# {\"ok\":1}\n# ...\nburnrate keys list\n```\n<!-- readme-test: skip (builds) -->\n```sh\ncargo run\n```\n";
        let ex = examples(readme);
        assert_eq!(ex.len(), 3, "{ex:#?}");
        assert_eq!(ex[0].command, "KEY=br_...   # the key's comment");
        assert_eq!(ex[1].command, "curl -d '{\"a\":\n  1}' \\\n  -H x");
        assert_eq!(ex[1].line, 4);
        assert_eq!(ex[1].shown, vec!["{\"ok\":1}", "..."]);
        assert_eq!(ex[2].command, "burnrate keys list");
    }

    #[test]
    fn dots_match_any_text_in_a_line_and_any_lines_alone() {
        assert!(line_matches(
            "{\"accepted\":1,...\"rejected\":[]...}",
            "{\"accepted\":1,\"budget\":{},\"rejected\":[]}"
        ));
        assert!(!line_matches("{\"accepted\":1...}", "{\"accepted\":2}"));
        assert!(!line_matches("a...a", "a"));
        let shown = vec![
            "FAIL: ...".to_string(),
            "...".to_string(),
            "exit 1".to_string(),
        ];
        assert!(output_matches(
            &shown,
            &["FAIL: x", "table", "row", "exit 1"]
        ));
        assert!(output_matches(&shown, &["FAIL: x", "exit 1"]));
        assert!(!output_matches(&shown, &["FAIL: x", "exit 1", "more"]));
        assert!(!output_matches(&shown, &["PASS: x", "exit 1"]));
    }
}
