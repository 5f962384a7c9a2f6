//! `burnrate export`: every stored event of a workspace (or of the last `--since`) as
//! CSV or NDJSON on stdout, read 1,000 at a time (the lines of `GET /v1/events?format=`).

use super::workspace_id;
use crate::export::Format;
use crate::store::{EventQuery, Store};
use anyhow::{anyhow, Context};
use std::io::Write;

pub async fn export(
    store: &dyn Store,
    workspace: &str,
    format: &str,
    since: Option<&str>,
) -> anyhow::Result<()> {
    let format = Format::parse(format)
        .with_context(|| format!("--format {format} is not a format; use csv or ndjson"))?;
    let ws = workspace_id(store, workspace).await?;
    let window = match since {
        None => None,
        Some(text) => {
            let length = crate::window::parse_since(text).map_err(|e| anyhow!("--since {e}"))?;
            let now = jiff::Timestamp::now().as_millisecond();
            Some((now - length, now + 1))
        }
    };
    let mut query = EventQuery {
        window,
        limit: 1000,
        ..Default::default()
    };
    write(format.head().as_bytes())?;
    loop {
        let page = store.events(ws, query.clone()).await?;
        let text: String = page.events.iter().map(|e| format.line(e)).collect();
        write(text.as_bytes())?;
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(()),
        }
    }
}

fn write(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}
