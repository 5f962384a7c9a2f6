//! `store::open(url)`: the one way code gets a store. A URL names the backend and where
//! it keeps its data: `sqlite:///path/to/burnrate.db` (or a bare path) for the embedded
//! store, `clickhouse://[user[:password]@]host:port/database[?cluster=NAME]` for a
//! ClickHouse server or cluster. Nothing above `store/` names a backend.

use super::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded store: one SQLite file.
    Sqlite(PathBuf),
    /// A ClickHouse server or cluster over its HTTP interface.
    Clickhouse(super::clickhouse::ClickhouseUrl),
}

impl StoreUrl {
    /// `sqlite:///abs/path.db`, `sqlite://relative/path.db`, or a bare path (the short
    /// form `--db` gives). Other schemes are named in the error.
    pub fn parse(url: &str) -> anyhow::Result<StoreUrl> {
        let url = url.trim();
        anyhow::ensure!(!url.is_empty(), "the store URL is empty");
        if let Some(path) = url.strip_prefix("sqlite://") {
            anyhow::ensure!(
                !path.is_empty(),
                "sqlite:// needs a file path, e.g. sqlite:///var/lib/burnrate/burnrate.db"
            );
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("clickhouse://") {
            return Ok(StoreUrl::Clickhouse(
                super::clickhouse::ClickhouseUrl::parse(rest)?,
            ));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            anyhow::bail!(
                "unsupported store URL scheme `{scheme}://`; use sqlite:///path/to/burnrate.db or clickhouse://host:port/database"
            );
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(url)))
    }

    /// The URL as text, for logs and errors (never a password).
    pub fn describe(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreUrl::Clickhouse(url) => url.describe(),
        }
    }
}

/// Open (creating what is missing) the store `url` names. Its reads apply the
/// workspaces' id mappings (`mapping::Mapped`, docs/mappings.md).
pub fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let backend = open_backend(url)?;
    Ok(Arc::new(crate::mapping::Mapped::new(backend)))
}

fn open_backend(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(path) => {
            use anyhow::Context;
            let store = super::sqlite::SqliteStore::open(&path)
                .with_context(|| format!("opening database {}", path.display()))?;
            Ok(Arc::new(store))
        }
        StoreUrl::Clickhouse(url) => {
            use anyhow::Context;
            let store = super::clickhouse::ClickhouseStore::open(&url)
                .with_context(|| format!("opening {}", url.describe()))?;
            Ok(Arc::new(store))
        }
    }
}

/// Replace (or create) the store `url` names with the backup at `from`, which is checked
/// first. An existing store is only replaced when `replace`; no server may be using it.
pub fn restore(url: &str, from: &std::path::Path, replace: bool) -> anyhow::Result<u64> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(path) => super::sqlite::restore(from, &path, replace),
        StoreUrl::Clickhouse(url) => anyhow::bail!(
            "{} is restored with ClickHouse's own tools (RESTORE, clickhouse-backup); burnrate restore writes the embedded store",
            url.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_and_bare_paths_name_the_same_file() {
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/b.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/b.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite://data/b.db").unwrap(),
            StoreUrl::Sqlite("data/b.db".into())
        );
        assert_eq!(
            StoreUrl::parse("burnrate.db").unwrap(),
            StoreUrl::Sqlite("burnrate.db".into())
        );
    }

    #[test]
    fn clickhouse_urls_open_the_clickhouse_backend_and_never_show_the_password() {
        let url = StoreUrl::parse("clickhouse://ann:s3cret@ch:8123/burnrate?cluster=prod").unwrap();
        assert!(matches!(url, StoreUrl::Clickhouse(_)));
        assert_eq!(
            url.describe(),
            "clickhouse://ann@ch:8123/burnrate?cluster=prod"
        );
        let e = StoreUrl::parse("clickhouse://ch:8123")
            .unwrap_err()
            .to_string();
        assert!(e.contains("names a database"), "{e}");
    }

    #[test]
    fn an_unknown_scheme_or_empty_url_is_refused_by_name() {
        let e = StoreUrl::parse("postgres://h/db").unwrap_err().to_string();
        assert!(e.contains("`postgres://`"), "{e}");
        assert!(StoreUrl::parse("sqlite://").is_err());
        assert!(StoreUrl::parse("  ").is_err());
    }
}
