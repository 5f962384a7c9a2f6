//! The repository stands alone: no file points outside it (the design notes a clone does
//! not have), every relative link in the Markdown files resolves, and the README says how
//! to get `burnrate` on PATH before its first command uses it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every tracked file (what a user's clone holds), relative to the repository root.
fn tracked_files() -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Text of a tracked file, or None for binary files (screenshots, fixtures).
fn text(path: &Path) -> Option<String> {
    String::from_utf8(std::fs::read(root().join(path)).ok()?).ok()
}

/// Pointers at the workplace around the repository: its shared design notes and the
/// absolute path of a developer's checkout.
const OUTSIDE: &[&str] = &["../shared", "shared/DESIGN", "shared/seeds", "/work/main"];

#[test]
fn no_file_points_outside_the_repository() {
    let mut found = Vec::new();
    for path in tracked_files() {
        // This file names the patterns it looks for.
        if path.ends_with("repository_docs.rs") {
            continue;
        }
        let Some(text) = text(&path) else { continue };
        for (n, line) in text.lines().enumerate() {
            if let Some(p) = OUTSIDE.iter().find(|p| line.contains(*p)) {
                found.push(format!("{}:{}: {p}", path.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "pointers outside the repository:\n{}",
        found.join("\n")
    );
}

/// The targets of the inline links `[text](target)` of one Markdown text.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = markdown;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].trim().to_string());
        }
    }
    out
}

#[test]
fn every_relative_markdown_link_resolves_inside_the_repository() {
    let mut broken = Vec::new();
    for path in tracked_files() {
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let Some(text) = text(&path) else { continue };
        let dir = root().join(&path).parent().unwrap().to_path_buf();
        for target in link_targets(&text) {
            let local = target.split('#').next().unwrap_or("");
            let external = target.contains("://") || target.starts_with("mailto:");
            if external || local.is_empty() {
                continue;
            }
            let resolved = dir.join(local);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|p| p.starts_with(root().canonicalize().unwrap()));
            if !inside {
                broken.push(format!("{}: ({target})", path.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links that do not resolve inside the repository:\n{}",
        broken.join("\n")
    );
}

#[test]
fn readme_says_how_to_get_burnrate_on_path_before_using_it() {
    let readme = text(Path::new("README.md")).unwrap();
    let install = readme
        .find("cargo install --path .")
        .expect("README shows `cargo install --path .`");
    // The first command line (inside a code fence) that runs `burnrate`.
    let mut in_code = false;
    let mut offset = 0;
    let mut first_use = None;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if in_code && line.starts_with("burnrate ") {
            first_use = Some(offset);
            break;
        }
        offset += line.len() + 1;
    }
    let first_use = first_use.expect("README runs burnrate somewhere");
    assert!(
        install < first_use,
        "`cargo install --path .` comes after the first `burnrate` command"
    );
    assert!(readme.contains("target/release/burnrate") || readme.contains("target/release"));
}
