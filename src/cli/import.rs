//! `burnrate import` (JSONL through the same validation, dedupe and pricing as HTTP
//! ingest, rejected lines reported by number) and `burnrate demo`.

use super::args::DemoArgs;
use super::workspace_id;
use crate::ingest::{self, Item};
use crate::load::{Loader, CHUNK};
use crate::store::Store;
use anyhow::{bail, Context};
use std::io::BufRead;
use std::sync::Arc;

/// Demo traffic as the flags describe it.
pub async fn demo(store: Arc<dyn Store>, args: DemoArgs) -> anyhow::Result<()> {
    crate::load::demo(store, args.into_run()?).await.map(|_| ())
}

/// `demo --out FILE`: the same traffic as NDJSON, no store opened.
pub fn demo_to_file(args: DemoArgs) -> anyhow::Result<()> {
    let out = args.out.clone().context("--out")?;
    let written = crate::load::demo_to_file(args.into_run()?, &out)?;
    println!("demo: {written} events written to {}", out.display());
    Ok(())
}

/// Marks a line that could not be read, followed by the reason (a NUL can never start
/// a JSON event).
const UNREAD: char = '\0';

pub async fn import(
    store: Arc<dyn Store>,
    file: &str,
    workspace: &str,
    format: &str,
    allow_rejects: bool,
) -> anyhow::Result<()> {
    let format = crate::importers::Format::parse(format).with_context(|| {
        format!(
            "--format {format} is not a format; use one of {}",
            crate::importers::FORMATS
        )
    })?;
    let ws = workspace_id(store.as_ref(), workspace).await?;
    let reader = open_lines(file)?;
    let mut loader = Loader::new(store, ws).await?;
    let progress = spinner();
    let started = std::time::Instant::now();
    // Lines of one chunk, kept as text: the parsed events borrow their strings.
    let mut lines_text: Vec<String> = Vec::with_capacity(CHUNK);
    let mut line_numbers = Vec::with_capacity(CHUNK);
    let mut rejected_lines = Vec::new();
    // Lines the format leaves out (Langfuse spans and events: no usage).
    let mut skipped = 0u64;
    let mut lines = reader.split(b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line?;
        if !line.iter().all(u8::is_ascii_whitespace) {
            // A line that is not UTF-8, or another tool's line that is not an object,
            // stays visible as such: `items_of` reports it.
            let converted = match String::from_utf8(line) {
                Ok(text) => format
                    .convert(&text)
                    .unwrap_or_else(|reason| Some(format!("{UNREAD}{reason}"))),
                Err(_) => Some(format!("{UNREAD}line is not valid UTF-8")),
            };
            match converted {
                Some(event) => {
                    lines_text.push(event);
                    line_numbers.push(i + 1);
                }
                None => skipped += 1,
            }
        }
        if !lines_text.is_empty() && (lines_text.len() == CHUNK || lines.peek().is_none()) {
            for bad in loader.load(items_of(&lines_text)).await? {
                let line = line_numbers[bad.index];
                rejected_lines.push(line);
                progress.suspend(|| eprintln!("line {line}: {}", reasons(&bad)));
            }
            progress.inc(line_numbers.len() as u64);
            line_numbers.clear();
            lines_text.clear();
        }
    }
    progress.finish_and_clear();
    print_counts(&loader, started.elapsed().as_secs_f64());
    if skipped > 0 {
        println!(
            "skipped {skipped} lines that are not LLM calls (observations other than generations)"
        );
    }
    let total = loader.accepted + loader.duplicates + loader.rejected;
    if rejected_lines.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} of {total} events rejected (lines {}; reasons above); the accepted ones are stored, \
         and importing the fixed file again skips them as duplicates",
        rejected_lines.len(),
        line_list(&rejected_lines)
    );
    if allow_rejects {
        eprintln!("warning: {message}");
        return Ok(());
    }
    bail!("{message} (--allow-rejects to exit 0)")
}

/// The file's lines, or stdin's for "-".
fn open_lines(file: &str) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {file}"))?,
        ))
    })
}

fn spinner() -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {human_pos} events read, {per_sec} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    progress
}

/// One chunk's lines parsed into items; a line that could not be read is an item error.
fn items_of(lines_text: &[String]) -> Vec<Item<'_>> {
    lines_text
        .iter()
        .map(|text| match text.strip_prefix(UNREAD) {
            Some(reason) => Err(vec![crate::event::FieldError::new("body", reason)]),
            None => ingest::parse_item(text),
        })
        .collect()
}

/// "field: message; field: message".
fn reasons(bad: &ingest::Rejected) -> String {
    let reasons: Vec<String> = bad
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    reasons.join("; ")
}

fn print_counts(loader: &Loader, secs: f64) {
    let total = loader.accepted + loader.duplicates + loader.rejected;
    println!(
        "read {total} events in {secs:.1}s ({:.0} events/s): {} accepted, {} duplicates, {} rejected, {} warnings",
        total as f64 / secs.max(1e-9),
        loader.accepted,
        loader.duplicates,
        loader.rejected,
        loader.warnings
    );
}

/// "2, 5, 7" or "2, 5, 7, ... and 40 more".
fn line_list(lines: &[usize]) -> String {
    const SHOWN: usize = 20;
    let shown: Vec<String> = lines.iter().take(SHOWN).map(usize::to_string).collect();
    match lines.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{}, ... and {more} more", shown.join(", ")),
        _ => shown.join(", "),
    }
}
