//! Bulk writes that do not come over HTTP: the `import` command's lines and the demo's
//! traffic, validated, priced and stored in chunks through the same steps as ingest.

use crate::app::load_prices;
use crate::budget::counters::Counters;
use crate::demo::profile::Profile;
use crate::demo::DemoConfig;
use crate::ingest::{self, Item};
use crate::price::PriceBook;
use crate::store::{Store, WorkspaceId};
use anyhow::bail;
use std::sync::Arc;

/// Items per store call: large enough for the writer's group commit to pay off, small
/// enough that a chunk's texts and parsed events stay a few megabytes.
pub const CHUNK: usize = 5_000;

/// The named workspace's id, or an error that says how to create it.
pub async fn workspace_id(store: &dyn Store, name: &str) -> anyhow::Result<WorkspaceId> {
    match store.workspace(name.to_string()).await? {
        Some(w) => Ok(w.id),
        None => {
            bail!("no workspace named {name:?}; create it with `burnrate workspaces create {name}`")
        }
    }
}

/// Validate, price and store items in chunks through `ingest::accept`; shared by
/// `import` and `demo`.
pub struct Loader {
    store: Arc<dyn Store>,
    /// This process's counters: no budget is loaded here (the server re-reads spend
    /// from the store), but the path is the one every front door takes.
    counters: Arc<Counters>,
    workspace: WorkspaceId,
    book: PriceBook,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub warnings: usize,
    settings: crate::settings::IngestSettings,
}

impl Loader {
    pub async fn new(store: Arc<dyn Store>, workspace: WorkspaceId) -> anyhow::Result<Loader> {
        Ok(Loader {
            book: load_prices(store.as_ref()).await?,
            settings: crate::settings::load(store.as_ref(), workspace).await?,
            store,
            counters: Arc::new(Counters::new(0)),
            workspace,
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            warnings: 0,
        })
    }

    /// Returns the rejected items' positions in `items` with their errors.
    pub async fn load(&mut self, items: Vec<Item<'_>>) -> anyhow::Result<Vec<ingest::Rejected>> {
        let now = jiff::Timestamp::now().as_millisecond();
        let prepared = ingest::prepare(items, &self.book, &self.settings, now);
        self.rejected += prepared.rejected.len();
        self.warnings += prepared.warnings.len() + prepared.warnings_omitted;
        let ingestor = ingest::Ingestor {
            store: self.store.clone(),
            counters: self.counters.clone(),
            sinks: Vec::new(),
        };
        let receipt = ingestor
            .accept(self.workspace, prepared.events, Default::default(), now)
            .await?;
        let outcome = receipt.outcome;
        self.accepted += outcome.accepted();
        self.duplicates += outcome.duplicates();
        Ok(prepared.rejected)
    }
}

/// What demo traffic to write, and where.
pub struct DemoRun {
    pub workspace: String,
    pub config: DemoConfig,
    /// `None` is the small demo, the one whose spike the summary line names.
    pub profile: Option<Profile>,
    /// Write in timestamp order, as live traffic arrives (see `in_time_order`).
    pub time_ordered: bool,
}

impl DemoRun {
    /// What `serve --demo` writes into an empty database: the small demo's 30 days.
    pub fn serve_default(now_ms: i64) -> DemoRun {
        DemoRun {
            workspace: "default".into(),
            config: DemoConfig {
                days: 30,
                events: 60_000,
                end_ms: now_ms,
                seed: 42,
                incidents: true,
            },
            profile: None,
            time_ordered: false,
        }
    }
}

/// Write demo traffic with a progress bar and print what was written; returns the
/// number of events accepted.
pub async fn demo(store: Arc<dyn Store>, run: DemoRun) -> anyhow::Result<usize> {
    let ws = workspace_id(store.as_ref(), &run.workspace).await?;
    let (days, events) = (run.config.days, run.config.events);
    // Only the small profile tells the spike's story.
    let spike = run.profile.is_none().then(|| run.config.spike_window());
    let mut loader = Loader::new(store, ws).await?;
    let progress = indicatif::ProgressBar::new(events);
    let (mut texts, spill) = demo_texts(&run)?;
    loop {
        let batch: Vec<String> = texts.by_ref().take(CHUNK).collect();
        if batch.is_empty() {
            break;
        }
        let chunk: Vec<Item> = batch.iter().map(|t| ingest::parse_item(t)).collect();
        progress.inc(chunk.len() as u64);
        loader.load(chunk).await?;
    }
    let _ = std::fs::remove_dir_all(&spill);
    progress.finish_and_clear();
    let fmt = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let spike = spike
        .map(|(from, to)| format!("; cost spike {} .. {}", fmt(from), fmt(to)))
        .unwrap_or_default();
    println!(
        "demo: {} events written to workspace {:?} (dataMode=demo, {} days){spike}",
        loader.accepted, run.workspace, days,
    );
    Ok(loader.accepted)
}

/// The run's events as JSON texts, in the order they are written, and the spill
/// directory to remove afterwards (time order sorts through it).
fn demo_texts(
    run: &DemoRun,
) -> anyhow::Result<(Box<dyn Iterator<Item = String>>, std::path::PathBuf)> {
    let generator = crate::demo::profile::events(run.profile.clone(), run.config.clone());
    let spill = std::env::temp_dir().join(format!("burnrate-demo-{}", std::process::id()));
    let texts: Box<dyn Iterator<Item = String>> = if run.time_ordered {
        Box::new(in_time_order(generator, spill.clone())?)
    } else {
        Box::new(generator.map(|v| v.to_string()))
    };
    Ok((texts, spill))
}

/// Write the run's events to `out` as NDJSON, in the order `demo` would store them;
/// returns how many.
pub fn demo_to_file(run: DemoRun, out: &std::path::Path) -> anyhow::Result<u64> {
    use std::io::Write;
    let (texts, spill) = demo_texts(&run)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut written = 0u64;
    for text in texts {
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        written += 1;
    }
    file.flush()?;
    let _ = std::fs::remove_dir_all(&spill);
    Ok(written)
}

/// The demo's events in timestamp order, as a live app writes them (the generator draws
/// times at random). Spilled to one file per UTC day, each sorted in memory when read.
fn in_time_order(
    events: impl Iterator<Item = serde_json::Value>,
    dir: std::path::PathBuf,
) -> anyhow::Result<impl Iterator<Item = String>> {
    use std::io::{BufRead, Write};
    std::fs::create_dir_all(&dir)?;
    let mut files: std::collections::BTreeMap<i64, std::io::BufWriter<std::fs::File>> =
        Default::default();
    for e in events {
        let ms = e["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_millisecond());
        let day = ms.div_euclid(86_400_000);
        let file = match files.entry(day) {
            std::collections::btree_map::Entry::Occupied(f) => f.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let file = std::fs::File::create(dir.join(format!("{day}.tsv")))?;
                slot.insert(std::io::BufWriter::new(file))
            }
        };
        writeln!(file, "{ms}\t{e}")?;
    }
    let days: Vec<i64> = files.keys().copied().collect();
    for (_, mut file) in files {
        file.flush()?;
    }
    Ok(days.into_iter().flat_map(move |day| {
        let path = dir.join(format!("{day}.tsv"));
        let file = std::fs::File::open(&path).map(std::io::BufReader::new);
        let mut lines: Vec<(i64, String)> = file
            .map(|f| {
                f.lines()
                    .map_while(Result::ok)
                    .filter_map(|l| {
                        let (ms, json) = l.split_once('\t')?;
                        Some((ms.parse().ok()?, json.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        // Stable: the attempts of one call keep their order.
        lines.sort_by_key(|(ms, _)| *ms);
        lines.into_iter().map(|(_, json)| json)
    }))
}
