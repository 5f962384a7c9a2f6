//! Backup and restore of the SQLite store: SQLite's online backup API copies the file as
//! of one moment while the server keeps writing (WAL: the copy's read transaction never
//! blocks the writer), and a restore checks a backup before it takes the store's place.

use crate::store::{Result, StoreError};
use rusqlite::{backup::Backup, Connection, OpenFlags};
use std::path::Path;

/// Copy the database at `from` to a new file `to` in one backup step (one read
/// transaction, so one consistent snapshot); returns the copy's size.
pub fn backup(from: &Path, to: &Path) -> Result<u64> {
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists; a backup never overwrites a file",
            to.display()
        )));
    }
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut copy = Connection::open(to)?;
    {
        let backup = Backup::new(&source, &mut copy)?;
        // -1: every page in one step, under one read transaction.
        backup.step(-1)?;
    }
    // A single file, not a WAL pair: the copy is self-contained.
    copy.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    drop(copy);
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}

/// Put the backup at `from` in place of the database at `to` (which must not exist unless
/// `replace`). The backup must pass SQLite's integrity check and be a burnrate store.
pub fn restore(from: &Path, to: &Path, replace: bool) -> anyhow::Result<u64> {
    let backup = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let check: String = backup.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    anyhow::ensure!(
        check == "ok",
        "{} fails SQLite's integrity check: {check}",
        from.display()
    );
    let version: Option<String> = backup
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .ok();
    anyhow::ensure!(
        version.is_some(),
        "{} is not a burnrate store (no schema version)",
        from.display()
    );
    if to.exists() {
        anyhow::ensure!(
            replace,
            "{} exists; pass --replace to overwrite it (stop any server using it first)",
            to.display()
        );
    }
    let mut target = Connection::open(to)?;
    {
        let copy = Backup::new(&backup, &mut target)?;
        copy.step(-1)?;
    }
    // Closing the only connection checkpoints the WAL into the file.
    drop(target);
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}
