//! `burnrate prices`: list, show how a model resolves, import, versions, remove a
//! version, check for unpriced models, generate the bundled book from LiteLLM's map.

use super::args::PriceCommand;
use super::table;
use crate::app::load_prices;
use crate::price::book::BookFile;
use crate::price::{self, litellm, Layer, PriceBook};
use crate::store::{Store, StoredBook};
use anyhow::{bail, Context};
use comfy_table::CellAlignment;
use std::path::PathBuf;

fn rate_text(r: Option<crate::money::Rate>) -> String {
    r.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
}

pub async fn prices(store: &dyn Store, cmd: PriceCommand) -> anyhow::Result<()> {
    let book = load_prices(store).await?;
    let now = jiff::Timestamp::now().as_millisecond();
    match cmd {
        PriceCommand::List { provider } => list_prices(&book, provider.as_deref(), now),
        PriceCommand::Show { model, provider } => {
            show_price(&book, provider.as_deref(), &model, now)?
        }
        PriceCommand::Import {
            file,
            effective_from,
        } => import_prices(store, &file, effective_from).await?,
        PriceCommand::Versions => price_versions(store, &book).await?,
        PriceCommand::RemoveVersion { version } => remove_price_version(store, &version).await?,
        PriceCommand::Check => check_prices(store, &book, now).await?,
        PriceCommand::Reprice {
            unpriced: _,
            entry,
            confirm,
            workspace,
            from,
            to,
            model,
        } => {
            if confirm && entry.is_none() {
                bail!("--confirm commits a correction of priced events: give --entry ID");
            }
            let ws = crate::load::workspace_id(store, &workspace).await?;
            let time = |flag: &str, v: Option<String>, default: i64| -> anyhow::Result<i64> {
                match v {
                    None => Ok(default),
                    Some(t) => Ok(t
                        .parse::<jiff::Timestamp>()
                        .map_err(|e| {
                            anyhow::anyhow!("--{flag}: `{t}` is not an RFC 3339 time: {e}")
                        })?
                        .as_millisecond()),
                }
            };
            let scope = crate::store::RepriceScope {
                from_ms: time("from", from, i64::MIN)?,
                to_ms: time("to", to, i64::MAX)?,
                model,
                target: crate::store::RepriceTarget::Unpriced,
                dry_run: false,
            };
            let book = std::sync::Arc::new(book);
            let line = match entry {
                None => {
                    let (summary, _) =
                        crate::lifecycle::reprice_unpriced(store, book, ws, scope, now).await?;
                    serde_json::to_string(&summary)?
                }
                Some(entry) => {
                    let (record, _) = crate::lifecycle::correct_entry(
                        store,
                        book,
                        ws,
                        scope,
                        entry,
                        confirm,
                        "cli".into(),
                        now,
                    )
                    .await?;
                    serde_json::to_string(&record)?
                }
            };
            println!("{line}");
        }
        PriceCommand::Corrections { workspace } => {
            let ws = crate::load::workspace_id(store, &workspace).await?;
            let records = crate::lifecycle::corrections(store, ws).await?;
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({ "corrections": records }))?
            );
        }
        PriceCommand::Generate { .. } => unreachable!("handled in run"),
    }
    Ok(())
}

/// Every model's standard rates in force now, with its long-context bands and tiers.
fn list_prices(book: &PriceBook, provider: Option<&str>, now: i64) {
    let mut table = table(&[
        "provider",
        "model",
        "input $/M",
        "cached $/M",
        "cache write $/M",
        "output $/M",
        "bands",
        "tiers",
    ]);
    for c in 3..=5 {
        if let Some(col) = table.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut count = 0;
    for key in book.keys() {
        if provider.is_some_and(|p| p != key.provider) {
            continue;
        }
        let Some((entry, _)) = book.lookup(&key.provider, &key.model, now) else {
            continue;
        };
        let base = entry
            .rows
            .iter()
            .find(|r| r.tier == crate::event::ServiceTier::Standard && r.above == 0);
        let Some(base) = base else { continue };
        let mut bands: Vec<String> = entry
            .rows
            .iter()
            .filter(|r| r.above > 0)
            .map(|r| band_label(r.above))
            .collect();
        bands.dedup();
        let mut tiers: Vec<&str> = entry
            .rows
            .iter()
            .map(|r| r.tier.as_str())
            .filter(|t| *t != "standard")
            .collect();
        tiers.dedup();
        table.add_row(vec![
            key.provider.clone(),
            key.model.clone(),
            rate_text(base.input),
            rate_text(base.cached_input),
            rate_text(base.cache_write),
            rate_text(base.output),
            bands.join(" "),
            tiers.join(" "),
        ]);
        count += 1;
    }
    println!("{table}");
    println!(
        "{count} models; book versions: {}",
        book.versions().join(", ")
    );
}

/// `>200k` for a band over 200,000 tokens, `>=200k` for one from 200,000 (stored as
/// above 199,999).
fn band_label(above: u64) -> String {
    if (above + 1).is_multiple_of(1000) {
        format!(">={}k", (above + 1) / 1000)
    } else {
        format!(">{}k", above / 1000)
    }
}

/// What to do about a dated id no source lists: its base model is priced, but a new
/// snapshot may be billed differently, so only the user can say they bill the same.
fn snapshot_suggestion(provider: &str, model: &str, base: &price::book::ModelKey) -> String {
    let alias = serde_json::json!({"provider": provider, "model": model,
        "target": {"provider": base.provider, "model": base.model}});
    format!(
        "{provider}/{model}: no price source lists this snapshot; {}/{} is priced. If the provider bills the snapshot the same, import an overrides file with the alias {alias}",
        base.provider, base.model
    )
}

/// The models stored events named that have no price, and why.
async fn check_prices(store: &dyn Store, book: &PriceBook, now: i64) -> anyhow::Result<()> {
    let unpriced = store.unpriced_models().await?;
    if unpriced.is_empty() {
        println!("every event has a price");
        return Ok(());
    }
    let mut table = table(&["provider", "model", "unpriced events", "last seen", "why"]);
    let mut suggestions = Vec::new();
    for m in &unpriced {
        let why = match book.lookup(&m.provider, &m.model, now) {
            Some(_) => "no rate for the event's service tier or prompt size",
            None => match book.undated_base(&m.provider, &m.model, now) {
                Some(base) => {
                    suggestions.push(snapshot_suggestion(&m.provider, &m.model, &base.key));
                    "snapshot no price source lists (see below)"
                }
                None => "unknown model",
            },
        };
        table.add_row(vec![
            m.provider.clone(),
            m.model.clone(),
            m.events.to_string(),
            m.last_seen.clone(),
            why.into(),
        ]);
    }
    println!("{table}");
    for line in suggestions {
        println!("{line}");
    }
    println!("add prices with `burnrate prices import overrides.json` (see docs/price-book-format.md); stored events keep cost null until re-sent");
    Ok(())
}

fn show_price(
    book: &PriceBook,
    provider: Option<&str>,
    model: &str,
    now: i64,
) -> anyhow::Result<()> {
    let providers: Vec<String> = match provider {
        Some(p) => vec![p.to_string()],
        None => {
            let mut ps: Vec<String> = book
                .keys()
                .iter()
                .filter(|k| k.model == model.to_ascii_lowercase())
                .map(|k| k.provider.clone())
                .collect();
            ps.dedup();
            if ps.is_empty() {
                ps = price::model_candidates("openai", model)
                    .iter()
                    .map(|(k, _)| k.provider.clone())
                    .take(1)
                    .collect();
            }
            ps
        }
    };
    for p in providers {
        let Some((entry, how)) = book.lookup(&p, model, now) else {
            println!("{p}/{model}: no price (unknown model: cost stays null, counted as unpriced)");
            continue;
        };
        println!(
            "{p}/{model} -> {}/{} ({})",
            how.key.provider, how.key.model, how.rule
        );
        println!(
            "  entry {}  mode {}  source {}",
            entry.id, entry.mode, entry.source
        );
        let mut table = table(&[
            "tier",
            "input above",
            "input $/M",
            "cached $/M",
            "cache write $/M",
            "output $/M",
            "reasoning $/M",
        ]);
        for r in &entry.rows {
            table.add_row(vec![
                r.tier.as_str().to_string(),
                r.above.to_string(),
                rate_text(r.input),
                rate_text(r.cached_input),
                rate_text(r.cache_write),
                rate_text(r.output),
                rate_text(r.reasoning),
            ]);
        }
        println!("{table}");
        if let Some(img) = entry.per_image {
            println!("  per image: ${img}");
        }
        // Every period of the price, so a past event's price can be read back.
        for (layer, e) in book.history(&how.key) {
            let time = |ms: i64| {
                jiff::Timestamp::from_millisecond(ms)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            };
            let until = e
                .effective_to_ms
                .map(|ms| format!(" until {}", time(ms)))
                .unwrap_or_default();
            let base = e
                .rows
                .iter()
                .find(|r| r.tier == crate::event::ServiceTier::Standard && r.above == 0);
            println!(
                "  from {}{until}: input {} / cached {} / output {} $/M (version {}, {:?})",
                time(e.effective_from_ms),
                rate_text(base.and_then(|r| r.input)),
                rate_text(base.and_then(|r| r.cached_input)),
                rate_text(base.and_then(|r| r.output)),
                e.book_version,
                layer
            );
        }
    }
    Ok(())
}

async fn import_prices(
    store: &dyn Store,
    file: &PathBuf,
    effective_from: Option<String>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let now = jiff::Timestamp::now();
    let effective = match effective_from {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .context("--effective-from must be RFC 3339")?,
        None => now,
    };
    let price::import::Prepared { kind, book } =
        price::import::prepare(value, &file.display().to_string(), now, effective)?;
    let entries = book.entries.len();
    store
        .save_price_book(StoredBook {
            kind: kind.into(),
            version: book.version.clone(),
            body: serde_json::to_string(&book)?,
            imported_at_ms: None,
        })
        .await?;
    println!("imported {entries} {kind} entries as version {} (a running server picks them up within 2 s; undo with `burnrate prices remove-version {}`)", book.version, book.version);
    Ok(())
}

async fn price_versions(store: &dyn Store, book: &PriceBook) -> anyhow::Result<()> {
    let bundled: BookFile = serde_json::from_str(price::BUNDLED_BOOK)?;
    let mut table = table(&["kind", "version", "entries", "aliases", "imported at"]);
    table.add_row(vec![
        "catalog (bundled)".into(),
        bundled.version.clone(),
        bundled.entries.len().to_string(),
        bundled.aliases.len().to_string(),
        "-".into(),
    ]);
    for stored in store.price_books().await? {
        let file: Option<BookFile> = serde_json::from_str(&stored.body).ok();
        let count = |n: Option<usize>| n.map_or("?".into(), |n| n.to_string());
        table.add_row(vec![
            stored.kind,
            stored.version,
            count(file.as_ref().map(|f| f.entries.len())),
            count(file.as_ref().map(|f| f.aliases.len())),
            stored
                .imported_at_ms
                .map_or("-".into(), crate::report::rfc3339),
        ]);
    }
    println!("{table}");
    println!("in force, newest last: {}", book.versions().join(", "));
    Ok(())
}

async fn remove_price_version(store: &dyn Store, version: &str) -> anyhow::Result<()> {
    let bundled: BookFile = serde_json::from_str(price::BUNDLED_BOOK)?;
    if version == bundled.version {
        bail!("{version} is the bundled book, built into the binary: it cannot be removed (overrides win over it)");
    }
    let removed = store.remove_price_book(version.to_string()).await?;
    if removed == 0 {
        let stored: Vec<String> = store
            .price_books()
            .await?
            .into_iter()
            .map(|b| b.version)
            .collect();
        bail!(
            "no imported price book version {version:?}; stored: {}",
            if stored.is_empty() {
                "none".to_string()
            } else {
                stored.join(", ")
            }
        );
    }
    println!("removed version {version} ({removed} import(s)); stored events keep the price they were stored with, a running server drops it within 2 s");
    Ok(())
}

/// The inputs of the generated book.
pub struct Sources<'a> {
    pub litellm: &'a PathBuf,
    pub genai_prices: Option<&'a PathBuf>,
    pub corrections: &'a PathBuf,
}

pub fn generate_book(
    sources: Sources<'_>,
    out: &PathBuf,
    package_version: &str,
    snapshot_date: &str,
) -> anyhow::Result<()> {
    let Sources {
        litellm: litellm_path,
        genai_prices,
        corrections,
    } = sources;
    let map: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(litellm_path)?)?;
    let fixes: BookFile = serde_json::from_str(&std::fs::read_to_string(corrections)?)
        .with_context(|| format!("parsing {}", corrections.display()))?;
    let genai: Option<price::genai::Export> = genai_prices
        .map(|path| {
            let text = std::fs::read_to_string(path)?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        })
        .transpose()?;
    let version = format!("litellm-{package_version}+{snapshot_date}");
    let source = serde_json::json!({
        "name": "LiteLLM model_prices_and_context_window.json",
        "package": "litellm", "packageVersion": package_version, "snapshotDate": snapshot_date,
        "license": "MIT (see prices/LICENSE.litellm)", "corrections": corrections.display().to_string(),
        "second": genai.as_ref().map(|g| serde_json::json!({
            "package": "genai-prices", "packageVersion": g.version,
            "license": "MIT (see prices/LICENSE.genai-prices)",
            "use": "models LiteLLM lacks; disagreements in prices/DISAGREEMENTS.md"})),
    });
    let snapshot_ms = price::book::parse_time(&format!("{snapshot_date}T00:00:00Z"))
        .map_err(|e| anyhow::anyhow!("--snapshot-date {e}"))?;
    let mut converted = litellm::convert(&map, &version, source)?;
    let second = genai.as_ref().map(|g| {
        let (entries, collisions) = price::genai::convert(g);
        let (added, disagreements) = price::genai::merge(&mut converted.book, entries, snapshot_ms);
        (g.version.clone(), added, collisions, disagreements)
    });
    let (replaced, added) = litellm::apply_corrections(&mut converted.book, &fixes);
    if let Some((genai_version, genai_added, collisions, disagreements)) = &second {
        let title = format!(
            "LiteLLM {package_version}, genai-prices {genai_version}, snapshot {snapshot_date}"
        );
        let report = price::genai::report(disagreements, &converted.book, snapshot_ms, &title);
        std::fs::write(out.with_file_name("DISAGREEMENTS.md"), report)?;
        println!(
            "genai-prices {genai_version}: {genai_added} entries added for models LiteLLM lacks, {collisions} duplicate names skipped, {} disagreements written to DISAGREEMENTS.md",
            disagreements.len()
        );
    }
    // The generated book must load; fail here rather than at the next build.
    let mut check = PriceBook::default();
    check
        .add_file(&converted.book, Layer::Catalog)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut text = String::from("{\n");
    text.push_str(&format!(
        "\"format\": {},\n\"kind\": \"catalog\",\n\"version\": {},\n",
        price::book::FORMAT,
        serde_json::to_string(&version)?
    ));
    text.push_str(&format!(
        "\"source\": {},\n\"aliases\": {},\n\"entries\": [\n",
        serde_json::to_string(&converted.book.source)?,
        serde_json::to_string(&converted.book.aliases)?
    ));
    // One entry per line: a price change shows as a one-line diff.
    let lines: Vec<String> = converted
        .book
        .entries
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    text.push_str(&lines.join(",\n"));
    text.push_str("\n]\n}\n");
    std::fs::write(out, text)?;
    println!(
        "wrote {} entries to {} (version {version}); {} LiteLLM keys skipped (no token prices), {} collisions, corrections: {replaced} replaced, {added} added",
        converted.book.entries.len(),
        out.display(),
        converted.skipped,
        converted.collisions.len()
    );
    for c in converted.collisions.iter().take(20) {
        eprintln!("collision (first key kept): {c}");
    }
    Ok(())
}
