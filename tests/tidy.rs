//! Tidy: the rules of ARCHITECTURE.md's Invariants section, checked on the source text.
//!
//! In the spirit of rust-analyzer's tidy test: plain Rust reading `src/` and `tests/`, no
//! parser crate. Each rule is its own test; a failure names the file, the line and the
//! rule. How each rule is read (text heuristics, so here are their limits):
//!
//! - Lexing: just enough to tell code from comments and string literals (`//`, nested
//!   `/* */`, `"..."` with escapes, raw strings `r#"..."#`, char literals vs lifetimes).
//!   Rules about code see the code with comments and literal contents blanked, so prose
//!   never trips them; the SQL rule sees only string literals.
//! - Crates: the identifier `axum`, `maud`, `hyper` or `hyper_util` (`clap`, or a clap
//!   attribute `#[arg(` / `#[command(`) in code of `src/` outside the place allowed to
//!   use it. Any use of a crate names it (`use`, a path, `extern crate`), short of a
//!   re-export, which would itself name it in an allowed file. `tests/` is not checked:
//!   end-to-end tests run axum servers as fake webhook receivers.
//! - SQL: a string literal of `src/` that starts (after whitespace) with the head of a
//!   statement, uppercase as the code writes SQL: `SELECT x`, `INSERT INTO|OR`, `UPDATE t
//!   SET`, `DELETE FROM`, `REPLACE INTO`, `CREATE|DROP|ALTER TABLE|INDEX|...`, `PRAGMA x`,
//!   `WITH t AS`, `VACUUM`. A statement the code assembles is found by the literal holding its head;
//!   fragments (`" AND ts >= ?"`) are not statements and are not looked for. Lowercase
//!   SQL would pass. `sql_detector_*` check the detector: it must flag every literal the
//!   SQLite backend hands to rusqlite, and the SQL rule itself, green over all of
//!   `src/`, shows it takes no prose (error messages, HTTP methods) for SQL.
//! - Money on f64: a float conversion (`as f64`, `as f32`, `f64::from(`, `.as_f64()`)
//!   in a unit of code that names money: an identifier containing `nanos`, `cost`, `usd`,
//!   `spend`, `spent`, `money` or `femto`, in the unit or in the enclosing function's
//!   name, or a newtype's field cast (`x.0 as f64`, how `Usd` meets a float). The unit is
//!   the `;`- or `,`-separated item of the innermost `{ }` block holding the conversion
//!   (a statement, a match arm, a struct field), whole calls included. A text check
//!   cannot see types: money in a variable with a neutral name (`change as f64`) passes,
//!   so money keeps money names. Where money may become a float (display, dimensionless
//!   ratios) is listed by file, function and a piece of the unit, each with its reason;
//!   an entry that no longer matches anything fails too. Test code (`#[cfg(test)]` items
//!   and the module files they declare) is not a money path.
//!
//! A check that cannot fail checks nothing: each rule was seen failing on a deliberately
//! broken file (a stray `src/` file with axum, clap, SQL, `cost as f64` and no header; a
//! lowercase statement handed to `execute` in the store) before this was committed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// The rules.

#[test]
fn only_http_knows_axum_maud_and_hyper() {
    let mut bad = Vec::new();
    for file in sources("src") {
        if file.path.starts_with("src/http/") {
            continue;
        }
        for (offset, ident) in identifiers(&file.lexed.code) {
            if ["axum", "maud", "hyper", "hyper_util"].contains(&ident) {
                bad.push(file.at(offset, &format!("uses `{ident}`")));
            }
        }
    }
    fail_on(
        bad,
        "only src/http/ knows axum, maud and hyper (ARCHITECTURE.md, Invariants)",
    );
}

#[test]
fn only_the_cli_knows_clap() {
    let mut bad = Vec::new();
    for file in sources("src") {
        let p = file.path.as_str();
        if p == "src/main.rs" || p == "src/cli.rs" || p.starts_with("src/cli/") {
            continue;
        }
        for (offset, ident) in identifiers(&file.lexed.code) {
            if ident == "clap" {
                bad.push(file.at(offset, "uses `clap`"));
            }
        }
        for attribute in ["#[arg(", "#[command(", "#[clap("] {
            for (offset, _) in file.lexed.code.match_indices(attribute) {
                bad.push(file.at(offset, &format!("has a clap attribute `{attribute}`")));
            }
        }
    }
    fail_on(
        bad,
        "only the CLI (src/cli.rs, src/cli/) and src/main.rs know clap (ARCHITECTURE.md, Invariants)",
    );
}

#[test]
fn only_the_store_names_a_backend() {
    let mut bad = Vec::new();
    for file in sources("src") {
        if file.path.starts_with("src/store/") {
            continue;
        }
        let code = &file.lexed.code;
        for ident in ["SqliteStore", "rusqlite"] {
            for (offset, found) in identifiers(code) {
                if found == ident {
                    bad.push(file.at(offset, &format!("names `{ident}`")));
                }
            }
        }
        for (offset, _) in code.match_indices("store::sqlite") {
            bad.push(file.at(offset, "names `store::sqlite`"));
        }
    }
    fail_on(
        bad,
        "code gets a store from store::open(url); only src/store/ names a backend (ARCHITECTURE.md, Invariants)",
    );
}

#[test]
fn only_the_store_backend_holds_sql() {
    let mut bad = Vec::new();
    for file in sources("src") {
        if is_store_backend(&file.path) {
            continue;
        }
        for literal in &file.lexed.strings {
            if is_sql_statement(&literal.text) {
                let head: String = literal.text.trim().chars().take(40).collect();
                bad.push(file.at(literal.offset, &format!("holds SQL: \"{head}...\"")));
            }
        }
    }
    fail_on(
        bad,
        "only src/store/<backend>/ holds SQL (ARCHITECTURE.md, Invariants)",
    );
}

#[test]
fn every_file_opens_with_a_doc_line() {
    let mut bad = Vec::new();
    for root in ["src", "tests"] {
        for file in sources(root) {
            if !file.text.starts_with("//!") {
                bad.push(format!("{}:1: does not start with a `//!` line", file.path));
            }
        }
    }
    fail_on(
        bad,
        "every .rs file under src/ and tests/ opens with a `//!` line saying what it is",
    );
}

/// Where money may become a float, and why: (file, function, a piece of the unit of code
/// as the failure message prints it, reason). Display and dimensionless ratios only.
const FLOAT_MONEY_ALLOWED: &[(&str, &str, &str, &str)] = &[
    (
        "src/metrics.rs",
        "usd",
        ".as_f64()",
        "a Prometheus sample is a float: the exact nano-USD sum is converted once per scrape \
         through money's display conversion, never summed as a float",
    ),
    (
        "src/money.rs",
        "as_f64",
        "self.0 as f64 / NANOS_PER_USD as f64",
        "the one conversion of money for display and charts; never summed",
    ),
    (
        "src/alert/mod.rs",
        "spike_times",
        "cost_nanos as f64 / expected_nanos as f64",
        "a spike's size, spend over expected spend: a ratio shown as `4.2x` and compared \
         with the rule's threshold; both amounts stay integers",
    ),
    (
        "src/alert/abuse.rs",
        "times",
        "now_nanos as f64 / expected_nanos as f64",
        "an abuse finding's size, spend over its usual, shown as `4.2x` in the text and \
         evidence; the threshold is compared in integers (`at_least_times`)",
    ),
    (
        "src/alert/rules.rs",
        "usd",
        "nanos as f64 / 1e9",
        "alert text in dollars and cents (display)",
    ),
    (
        "src/alert/rules.rs",
        "share_pct",
        "part_nanos as f64 / whole_nanos as f64",
        "a share of spend in percent, for display and a rule's threshold; both amounts \
         are exact integers",
    ),
    (
        "src/budget/mod.rs",
        "state_at",
        "spent as f64 * 100.0 / limit as f64",
        "percent of the limit, compared with the budget's thresholds (decimal percents); \
         spend reaching the limit is decided in integers before",
    ),
    (
        "src/budget/mod.rs",
        "new",
        "spent as f64 * 100.0 / limit as f64",
        "a member's usedPct, a ratio for display; its state is decided in integers",
    ),
    (
        "src/budget/mod.rs",
        "status",
        "input.spent as f64 * 100.0 / limit as f64",
        "usedPct, a ratio for display",
    ),
    (
        "src/cli/top.rs",
        "usd_text",
        "u.as_f64()",
        "money in the CLI's tables (display)",
    ),
    (
        "src/cli/control.rs",
        "print_budgets",
        "let usd = |v: &Value|",
        "a JSON amount printed at cents (display)",
    ),
    (
        "src/cli/control.rs",
        "print_budgets",
        "s[\" \"].as_f64().unwrap_or(0.0)",
        "usedPct, a percent, printed in a row that also holds money",
    ),
    (
        "src/cli/explain.rs",
        "print_explanation",
        ".as_f64() .map_or(",
        "a percent of the JSON answer, printed in a row that also holds money",
    ),
    (
        "src/explain/causes.rs",
        "usd_f",
        "u.map(|u| u.0 as f64)",
        "cost/request for `moved` only: a relative change, (now - before) / before, \
         against RELATIVE_SHIFT",
    ),
    (
        "src/explain.rs",
        "explain",
        "change_pct(t.current.cost.0 as f64",
        "the total's change in percent (display)",
    ),
    (
        "src/explain/split.rs",
        "group_change",
        "change_pct(now.0 as f64, before.0 as f64)",
        "a group's change of cost/request in percent (display)",
    ),
    (
        "src/explain/text.rs",
        "cpr_words",
        "moved_words(c.0 as f64, b.0 as f64)",
        "cost/request's change in words, `rose 2.9x` (display)",
    ),
    (
        "src/report.rs",
        "between",
        "let usd = |u: Option<Usd>| u.map(|u| u.0 as f64)",
        "percent changes of cost and cost/request (display)",
    ),
    (
        "src/report.rs",
        "prompt_versions",
        "let usd = |u: Option<Usd>| u.map(|u| u.0 as f64)",
        "the percent change of cost/request (display, and the order of regressions)",
    ),
    (
        "src/report.rs",
        "share_pct",
        "cost.0 as f64 / total.0 as f64",
        "a group's share of spend, sharePct (display)",
    ),
    (
        "src/http/dashboard/pages/overview.rs",
        "body",
        "sum as f64 / total as f64 * 100.0",
        "a group's share of spend (display)",
    ),
    (
        "src/http/dashboard/chart.rs",
        "stacked",
        "let max_usd",
        "chart geometry: the top of the axis in dollars",
    ),
    (
        "src/http/dashboard/chart.rs",
        "stacked",
        "top_usd + step",
        "chart geometry: axis ticks (`k` is a tick number) up to the axis's top",
    ),
    (
        "src/http/dashboard/chart.rs",
        "scale",
        "self.spent + self.reserved",
        "chart geometry: the gauge's scale",
    ),
    (
        "src/http/dashboard/chart.rs",
        "x",
        "nanos.max(0) as f64",
        "chart geometry: a position on the gauge",
    ),
    (
        "src/http/dashboard/chart.rs",
        "burn",
        "max(b.spent) as f64",
        "chart geometry: the top of the burn chart's axis",
    ),
    (
        "src/http/dashboard/chart.rs",
        "burn",
        "|nanos: i64|",
        "chart geometry: a point's height",
    ),
];

#[test]
fn no_money_on_an_f64_path() {
    let files = sources("src");
    let test_files = test_module_files(&files);
    let mut used = BTreeSet::new();
    let mut bad = Vec::new();
    for file in files.iter().filter(|f| !test_files.contains(&f.path)) {
        let code = file.lexed.code.as_bytes();
        let tests = cfg_test_spans(&file.lexed.code);
        let fns = function_spans(&file.lexed.code);
        for at in float_conversions(&file.lexed.code) {
            if tests.iter().any(|(s, e)| (*s..*e).contains(&at)) {
                continue;
            }
            let (start, end) = unit_around(code, at);
            let unit = squeeze(&file.lexed.code[start..end]);
            let function = enclosing_function(&fns, at).unwrap_or("(no function)");
            // A function named for money (`fn usd_f`) handles money throughout; `x.0 as
            // f64` is how the newtype `Usd` meets a float, whatever `x` is called.
            let newtype = file.lexed.code[..at].trim_end().ends_with(".0");
            let name = money_name(&unit)
                .or_else(|| money_name(function))
                .or(newtype.then_some(".0"));
            let Some(name) = name else {
                continue;
            };
            let allowed = FLOAT_MONEY_ALLOWED.iter().position(|(p, f, piece, _)| {
                *p == file.path && *f == function && unit.contains(piece)
            });
            match allowed {
                Some(i) => {
                    used.insert(i);
                }
                None => bad.push(file.at(
                    at,
                    &format!("fn {function} turns money (`{name}`) into a float: `{unit}`"),
                )),
            }
        }
    }
    bad.dedup();
    for (i, (path, function, piece, _)) in FLOAT_MONEY_ALLOWED.iter().enumerate() {
        if !used.contains(&i) {
            bad.push(format!(
                "{path}: the allow-list entry for fn {function} (`{piece}`) matches no money-to-float conversion any more; remove it"
            ));
        }
    }
    fail_on(
        bad,
        "money is never a float in arithmetic; f64 only in ratios for display (ARCHITECTURE.md, \
         Invariants). Compute in integers (i128 where products can overflow, cross-multiplied \
         comparisons instead of division), or, for display or a ratio, add the function to \
         FLOAT_MONEY_ALLOWED in tests/tidy.rs with its reason",
    );
}

// ---------------------------------------------------------------------------------------
// Checks of the SQL detector itself: it must see the store's statements, and only SQL.

#[test]
fn sql_detector_finds_every_statement_of_the_sqlite_store() {
    let calls = [
        "prepare",
        "prepare_cached",
        "execute",
        "execute_batch",
        "query_row",
    ];
    let (mut checked, mut missed) = (0, Vec::new());
    let mut heads = BTreeSet::new();
    for file in sources("src/store/sqlite") {
        for literal in &file.lexed.strings {
            if is_sql_statement(&literal.text) {
                let words: Vec<&str> = literal.text.split_whitespace().take(2).collect();
                heads.insert(match words[0] {
                    "CREATE" => words.join(" "),
                    head => head.to_string(),
                });
            }
        }
        for (offset, ident) in identifiers(&file.lexed.code) {
            if !calls.contains(&ident) {
                continue;
            }
            let Some(at) = literal_argument(&file.lexed.code, offset + ident.len()) else {
                continue; // a variable or a constant: its literal is checked where it is written
            };
            checked += 1;
            let literal = file.lexed.strings.iter().find(|l| l.offset == at);
            if !literal.is_some_and(|l| is_sql_statement(&l.text)) {
                missed.push(file.at(at, &format!("the SQL passed to `{ident}` is not detected")));
            }
        }
    }
    fail_on(
        missed,
        "the SQL detector must flag every statement of the store",
    );
    assert!(
        checked >= 40,
        "only {checked} literal statements found in src/store/sqlite"
    );
    for head in [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE TABLE",
        "PRAGMA",
    ] {
        assert!(
            heads.contains(head),
            "no `{head}` statement detected in src/store/sqlite: {heads:?}"
        );
    }
}

#[test]
fn sql_detector_examples() {
    let sql = [
        "SELECT id FROM dims WHERE kind = ?1",
        "\n        SELECT e.ts FROM events e",
        "INSERT OR IGNORE INTO dims (kind, value) VALUES (?1, ?2)",
        "INSERT INTO objects (body) VALUES (?1)",
        "UPDATE events SET attempts = ?2 WHERE id = ?1",
        "DELETE FROM price_books WHERE version = ?1",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT)",
        "CREATE UNIQUE INDEX IF NOT EXISTS x ON y (z)",
        "PRAGMA wal_checkpoint(TRUNCATE);",
        "WITH recent AS (SELECT 1) SELECT * FROM recent",
        "WITH RECURSIVE n(i) AS (SELECT 1) SELECT COUNT(*) FROM n",
        "EXPLAIN QUERY PLAN {sql}",
        "\\\n    SELECT 1",
    ];
    let prose = [
        "SELECT",
        "DELETE",
        "DELETE /v1/budgets/{id}",
        "UPDATE available: run burnrate prices import",
        "CREATE a budget first",
        "Select a window",
        "delete this key",
        "WITH CARE",
        "EXPLAIN why",
        "INSERT COIN",
        "",
    ];
    for s in sql {
        assert!(is_sql_statement(s), "not detected as SQL: {s:?}");
    }
    for s in prose {
        assert!(!is_sql_statement(s), "prose taken for SQL: {s:?}");
    }
}

#[test]
fn lexer_tells_code_from_comments_and_literals() {
    let src = "let a = 'x'; // axum\nfn f<'a>(s: &'a str) { /* maud /* nested */ */ }\nlet q = r#\"SELECT \"x\"\"#; let e = \"a\\\"b\"; let c = '\\'';";
    let lexed = lex(src);
    let code = &lexed.code;
    assert!(!code.contains("axum") && !code.contains("maud"), "{code}");
    assert!(code.contains("fn f<'a>(s: &'a str)"), "{code}");
    let texts: Vec<&str> = lexed.strings.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["SELECT \"x\"", "a\\\"b"]);
    assert_eq!(code.len(), src.len());
    assert_eq!(code.lines().count(), src.lines().count());
}

// ---------------------------------------------------------------------------------------
// Reading the tree.

struct Source {
    /// Relative to the crate root, with `/` separators.
    path: String,
    text: String,
    lexed: Lexed,
}

impl Source {
    /// `path:line: what`, the location of a finding.
    fn at(&self, offset: usize, what: &str) -> String {
        let line = self.text[..offset].matches('\n').count() + 1;
        format!("{}:{line}: {what}", self.path)
    }
}

/// Every .rs file under `dir` (relative to the crate root), sorted.
fn sources(dir: &str) -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect_rs(&root.join(dir), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap();
            let path = rel.to_string_lossy().replace('\\', "/");
            let lexed = lex(&text);
            Source { path, text, lexed }
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && name != "node_modules" && name != "target" {
            collect_rs(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// `src/store/<backend>/...`: a file inside a backend's directory (not `src/store/mod.rs`).
fn is_store_backend(path: &str) -> bool {
    path.strip_prefix("src/store/")
        .is_some_and(|rest| rest.contains('/'))
}

fn fail_on(findings: Vec<String>, rule: &str) {
    assert!(
        findings.is_empty(),
        "\n{}\n\nrule: {rule}\n",
        findings.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The lexer.

struct Lexed {
    /// The source with comments and the contents of literals blanked to spaces (line
    /// breaks kept): offsets and line numbers are the source's. Quotes stay, so a
    /// literal's place in the code is still visible.
    code: String,
    strings: Vec<Literal>,
}

struct Literal {
    /// Where the literal starts in the source (its `"`, or the `r` of a raw string).
    offset: usize,
    /// Its text as written between the quotes (escapes not decoded).
    text: String,
}

fn lex(src: &str) -> Lexed {
    let b = src.as_bytes();
    let mut code = b.to_vec();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = src[i..].find('\n').map_or(b.len(), |n| i + n);
            blank(&mut code, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let end = block_comment_end(b, i);
            blank(&mut code, i, end);
            i = end;
        } else if let Some((open, close, hashes)) = string_at(b, i) {
            strings.push(Literal {
                offset: i,
                text: src[open..close].to_string(),
            });
            blank(&mut code, open, close);
            i = close + 1 + hashes;
        } else if b[i] == b'\'' {
            i = char_literal_end(src, i).map_or(i + 1, |end| {
                blank(&mut code, i + 1, end - 1);
                end
            });
        } else {
            i += 1;
        }
    }
    Lexed {
        code: String::from_utf8(code).expect("blanking keeps UTF-8"),
        strings,
    }
}

fn blank(code: &mut [u8], from: usize, to: usize) {
    for c in &mut code[from..to] {
        if *c != b'\n' {
            *c = b' ';
        }
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A string literal starting at `i`: (first byte of its text, its closing quote, the
/// number of `#` after it). Plain `"..."` (also `b"`, `c"`: the prefix is code) and raw
/// `r"..."`, `r#"..."#`, `br#"..."#`.
fn string_at(b: &[u8], i: usize) -> Option<(usize, usize, usize)> {
    if b[i] == b'"' {
        let mut j = i + 1;
        while j < b.len() && b[j] != b'"' {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        return Some((i + 1, j.min(b.len()), 0));
    }
    // `r` starts a raw string only as a prefix, not inside an identifier (`for`, `r#type`).
    let prefix_start = if i > 0 && matches!(b[i - 1], b'b' | b'c') {
        i - 1
    } else {
        i
    };
    if b[i] != b'r' || (prefix_start > 0 && is_ident_byte(b[prefix_start - 1])) {
        return None;
    }
    let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
    let open = i + 1 + hashes;
    if b.get(open) != Some(&b'"') {
        return None;
    }
    let mut closing = vec![b'"'];
    closing.extend(std::iter::repeat_n(b'#', hashes));
    let close = b[open + 1..]
        .windows(closing.len())
        .position(|w| w == closing.as_slice())
        .map_or(b.len(), |n| open + 1 + n);
    Some((open + 1, close, hashes))
}

fn block_comment_end(b: &[u8], start: usize) -> usize {
    let (mut depth, mut j) = (0, start);
    while j < b.len() {
        if b[j..].starts_with(b"/*") {
            depth += 1;
            j += 2;
        } else if b[j..].starts_with(b"*/") {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// The end (past the closing quote) of a char literal at `i`, or None for a lifetime.
fn char_literal_end(src: &str, i: usize) -> Option<usize> {
    let b = src.as_bytes();
    if b.get(i + 1) == Some(&b'\\') {
        // '\n', '\'', '\u{..}': the closing quote is the first one after the escaped char.
        return src[i + 3..].find('\'').map(|n| i + 3 + n + 1);
    }
    let c = src[i + 1..].chars().next()?;
    let close = i + 1 + c.len_utf8();
    (b.get(close) == Some(&b'\'')).then_some(close + 1)
}

/// Every identifier of `code` with its offset.
fn identifiers(code: &str) -> Vec<(usize, &str)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_ident_byte(b[i]) {
            let start = i;
            while i < b.len() && is_ident_byte(b[i]) {
                i += 1;
            }
            if !b[start].is_ascii_digit() {
                out.push((start, &code[start..i]));
            }
        } else {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// SQL.

/// Does a literal's text start like an SQL statement (uppercase, as the code writes SQL)?
fn is_sql_statement(text: &str) -> bool {
    let mut t = text.trim_start();
    // A leading line continuation (`"\` then a new line) or an escaped line break.
    while let Some(rest) = t.strip_prefix('\\') {
        t = rest.strip_prefix('n').unwrap_or(rest).trim_start();
    }
    let words: Vec<&str> = t.split_whitespace().take(3).collect();
    let object = [
        "TABLE", "INDEX", "UNIQUE", "VIEW", "TRIGGER", "TEMP", "VIRTUAL",
    ];
    match words.as_slice() {
        ["SELECT" | "PRAGMA", _, ..] => true,
        ["INSERT", "INTO" | "OR", ..] | ["REPLACE", "INTO", ..] | ["DELETE", "FROM", ..] => true,
        ["UPDATE", _, "SET"] | ["WITH", _, "AS"] | ["WITH", "RECURSIVE", _] => true,
        ["EXPLAIN", "QUERY", "PLAN"] => true,
        ["CREATE" | "DROP" | "ALTER", o, ..] => object.contains(o),
        [w, ..] => w.trim_end_matches(';') == "VACUUM",
        _ => false,
    }
}

/// The offset of a string literal that is the first argument of the call whose name
/// ends at `after` (`(` then optional `&` and `format!(`), if it is one.
fn literal_argument(code: &str, after: usize) -> Option<usize> {
    let mut rest = code[after..].strip_prefix('(')?.trim_start();
    rest = rest.strip_prefix('&').unwrap_or(rest).trim_start();
    rest = rest.strip_prefix("format!(").unwrap_or(rest).trim_start();
    let at = code.len() - rest.len();
    string_at(code.as_bytes(), at).map(|_| at)
}

// ---------------------------------------------------------------------------------------
// Money on f64.

/// Offsets of float conversions in code.
fn float_conversions(code: &str) -> Vec<usize> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for pattern in ["as f64", "as f32", "f64::from(", ".as_f64("] {
        for (at, _) in code.match_indices(pattern) {
            let before_ok = pattern.starts_with('.') || at == 0 || !is_ident_byte(b[at - 1]);
            let end = at + pattern.len();
            let after_ok = pattern.ends_with('(') || end == b.len() || !is_ident_byte(b[end]);
            if before_ok && after_ok {
                out.push(at);
            }
        }
    }
    out.sort_unstable();
    out
}

/// A money name among the unit's identifiers, if any.
fn money_name(unit: &str) -> Option<&str> {
    let markers = ["nanos", "cost", "usd", "spend", "spent", "money", "femto"];
    identifiers(unit)
        .into_iter()
        .map(|(_, ident)| ident)
        .find(|ident| {
            let lower = ident.to_ascii_lowercase();
            markers.iter().any(|m| lower.contains(m))
        })
}

/// The unit of code around `at`: the `;`- or `,`-separated item of the innermost `{ }`
/// block holding it (a statement, a match arm, a struct field), whole calls included.
fn unit_around(code: &[u8], at: usize) -> (usize, usize) {
    // The outermost bracket opened between the block's `{` and `at`: the unit holds it.
    let (mut anchor, mut depth, mut i) = (at, 0, at);
    while i > 0 {
        i -= 1;
        match code[i] {
            b')' | b']' | b'}' => depth += 1,
            b'(' | b'[' if depth == 0 => anchor = i,
            b'{' if depth == 0 => break,
            b'(' | b'[' | b'{' => depth -= 1,
            _ => {}
        }
    }
    (unit_start(code, anchor), unit_end(code, anchor))
}

fn unit_start(code: &[u8], anchor: usize) -> usize {
    let (mut depth, mut i) = (0, anchor);
    while i > 0 {
        match code[i - 1] {
            b';' | b',' | b'{' | b'}' if depth == 0 => break,
            b')' | b']' | b'}' => depth += 1,
            b'(' | b'[' | b'{' => depth -= 1,
            _ => {}
        }
        i -= 1;
    }
    i
}

fn unit_end(code: &[u8], anchor: usize) -> usize {
    let (mut depth, mut i) = (0, anchor);
    while i < code.len() {
        match code[i] {
            b';' | b',' | b'{' if depth == 0 => break,
            b')' | b']' | b'}' if depth == 0 => break,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Every function with a body: (start of body, end of body, name).
fn function_spans(code: &str) -> Vec<(usize, usize, &str)> {
    let ids = identifiers(code);
    let mut out = Vec::new();
    for pair in ids.windows(2) {
        let ((at, keyword), (_, name)) = (pair[0], pair[1]);
        // `fn name`, not the type `fn(&str)`.
        if keyword != "fn" || !code[at + 2..].starts_with(char::is_whitespace) {
            continue;
        }
        if let Some((start, end)) = item_body(code.as_bytes(), at) {
            out.push((start, end, name));
        }
    }
    out
}

/// The `{ ... }` body of the item whose header starts at `at`, or None when the header
/// ends with `;` first (a declaration, `mod x;`).
fn item_body(code: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut parens = 0;
    let mut i = at;
    while i < code.len() {
        match code[i] {
            b'(' | b'[' => parens += 1,
            b')' | b']' => parens -= 1,
            b';' if parens == 0 => return None,
            b'{' if parens == 0 => return Some((i, matching_brace(code, i))),
            _ => {}
        }
        i += 1;
    }
    None
}

fn matching_brace(code: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// The name of the innermost function whose body holds `at`.
fn enclosing_function<'a>(fns: &[(usize, usize, &'a str)], at: usize) -> Option<&'a str> {
    fns.iter()
        .filter(|(start, end, _)| (*start..*end).contains(&at))
        .max_by_key(|(start, _, _)| *start)
        .map(|(_, _, name)| *name)
}

/// Spans of items marked `#[cfg(test)]` that have a body.
fn cfg_test_spans(code: &str) -> Vec<(usize, usize)> {
    code.match_indices("#[cfg(test)]")
        .filter_map(|(at, m)| item_body(code.as_bytes(), at + m.len()))
        .collect()
}

/// Files of test modules declared `#[cfg(test)] mod name;`.
fn test_module_files(files: &[Source]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in files {
        let code = &file.lexed.code;
        for (at, m) in code.match_indices("#[cfg(test)]") {
            let rest = code[at + m.len()..].trim_start();
            let Some(decl) = rest.strip_prefix("mod ") else {
                continue;
            };
            let Some(name) = decl.split(';').next().filter(|n| !n.contains('{')) else {
                continue;
            };
            let dir = module_dir(&file.path);
            out.insert(format!("{dir}/{}.rs", name.trim()));
            out.insert(format!("{dir}/{}/mod.rs", name.trim()));
        }
    }
    out
}

/// Where a file's child modules live: next to `mod.rs`/`lib.rs`/`main.rs`, else in the
/// directory named after the file.
fn module_dir(path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    match name {
        "mod.rs" | "lib.rs" | "main.rs" => dir.to_string(),
        _ => format!("{dir}/{}", name.trim_end_matches(".rs")),
    }
}

/// A unit of code on one line (what messages print and allow-list entries match).
fn squeeze(unit: &str) -> String {
    unit.split_whitespace().collect::<Vec<_>>().join(" ")
}
