//! The tables, created idempotently at open. Written for ClickHouse 18.16 (Debian's
//! package) and modern servers alike: plain column types (no DateTime64, Map,
//! LowCardinality or Nullable; times are Int64 milliseconds, a missing text is ''),
//! MergeTree-family engines with ORDER BY, no TTL.
//!
//! Without a cluster each table is a plain table. With `cluster=NAME`, each table is a
//! `<name>_local` table on every shard plus a `<name>` Distributed table over the
//! cluster: events sharded by a hash of (workspace, externalRequestId), so every attempt
//! of a call lives on one shard; control tables all on the first shard (sharding key 0),
//! small and read by every node. There is no Keeper in the tests, so no ON CLUSTER: the
//! node creates the local tables on every shard its URL lists (`shards=`); with a Keeper,
//! `ON CLUSTER` does the same from one node (docs/scale-out.md).

/// One table: its name, columns, engine and key, and how a cluster shards it.
pub struct Table {
    pub name: &'static str,
    columns: &'static str,
    engine: &'static str,
    /// The Distributed sharding expression in cluster mode.
    sharding: &'static str,
}

/// `EVENTS`' columns, shared by `EVENTS_BY_HOUR` (a macro: `concat!` takes literals).
macro_rules! event_columns {
    () => {
        "ws Int64, idless UInt8, id String, attempt UInt8, pick UInt64, seq UInt64, keep UInt64,
        ts Int64, received Int64, provider String, model String, endpoint String,
        prompt_version String, tenant String, user String,
        input UInt64, cached UInt64, cache_write UInt64, output UInt64, reasoning UInt64,
        image_count UInt32, latency Int64, status String, error_code String,
        data_mode String, environment String, operation String, service_tier String,
        usage_missing UInt8, tag_keys Array(String), tag_values Array(String),
        priced UInt8, cost Int64, cost_source String, price_entry_id String,
        price_book_version String, repriced Int64"
    };
}

/// Every stored attempt of every call: one row per (workspace, call, attempt). A call is
/// its winning attempt, chosen at read time as the max `pick`: the attempt's rank (has
/// usage, success, lower attempt number) above, the first stored copy below (a smaller
/// commit sequence picks higher). A resend of an (id, attempt) is refused at write time;
/// a copy two nodes raced to store is merged away keeping the first (`keep`, largest for
/// the smallest sequence) and never counted twice meanwhile (reads count distinct
/// attempts and take every column from the one row of the largest `pick`).
///
/// A re-pricing (`reprice.rs`) stores a copy of a call's winning row with its new price
/// and `repriced` set (ms; 0 = never re-priced), made as if stored one microsecond before
/// the row it copies (`seq - 1`, so `pick + 1` and `keep + 1`): it wins the read's argMax
/// and the merge over the original, while a better-ranked attempt still wins over both.
/// `repriced` is the last column so an older table gets it with `ADD COLUMN` (`UPGRADES`).
pub const EVENTS: Table = Table {
    name: "events",
    columns: event_columns!(),
    engine: "ReplacingMergeTree(keep) ORDER BY (ws, idless, id, attempt)",
    sharding: "cityHash64(ws, id)",
};

/// The same attempts as `EVENTS`, ordered by hour (`hour` = `intDiv(ts, 3600000)`, the
/// last column; times are from 2020 on, so ClickHouse's `intDiv` and Rust's
/// `div_euclid` give every row the same hour): what a read of a few hours (a window's edges, the newest minutes,
/// dirty hours) resolves its calls from, reading those hours' rows instead of every
/// row of the workspace (`EVENTS` is ordered by id, and a set of calls of one hour is
/// spread over all of it). Written before `EVENTS` by every write (ingest, re-pricing),
/// deleted before it (erasure, retention), so it never lacks a row `EVENTS` has; a row
/// written twice (a failed commit retried) is one attempt to every read.
///
/// A call whose attempts lie in more than one hour is named in `SPANNING`, so a read
/// of some hours also reads its attempts in the others (`read::calls_in_hours`).
pub const EVENTS_BY_HOUR: Table = Table {
    name: "events_by_hour",
    columns: concat!(event_columns!(), ", hour Int64"),
    engine: "ReplacingMergeTree(keep) ORDER BY (ws, hour, idless, id, attempt)",
    sharding: "cityHash64(ws, id)",
};

/// The calls whose stored attempts lie in more than one hour: one row per (call, hour
/// with an attempt). Written by ingest (which reads a call's stored attempts before
/// storing one), by the seal (which resolves every call of its hours from all their
/// rows, and so also finds a call two nodes split between hours at the same moment),
/// and filled from `EVENTS` when `EVENTS_BY_HOUR` is created. A row too many only
/// makes a read look at one more hour.
pub const SPANNING: Table = Table {
    name: "spanning",
    columns: "ws Int64, idless UInt8, id String, hour Int64",
    engine: "ReplacingMergeTree ORDER BY (ws, idless, id, hour)",
    sharding: "cityHash64(ws, id)",
};

/// Per workspace and hour, what its stored attempts add up to, in 32-bit halves so no
/// sum wraps: what a write is checked against before it is stored (a total past i64
/// would make every read of that hour fail).
pub const HOUR_TOTALS: Table = Table {
    name: "hour_totals",
    columns: "ws Int64, hour Int64,
        cost_hi Int64, cost_lo Int64, input_hi Int64, input_lo Int64,
        cached_hi Int64, cached_lo Int64, cache_write_hi Int64, cache_write_lo Int64,
        output_hi Int64, output_lo Int64, reasoning_hi Int64, reasoning_lo Int64,
        latency_hi Int64, latency_lo Int64",
    engine: "SummingMergeTree ORDER BY (ws, hour)",
    sharding: "cityHash64(ws, hour)",
};

/// Sealed hourly cells (`cells.rs`): per workspace, family, hour and seal generation,
/// the sums of the calls of that hour by the family's dimensions (a dimension the family
/// does not keep is ''), 64-bit sums in 32-bit halves. Sharded by workspace and hour,
/// so the rows of one cell are summed on one shard.
pub const CELLS: Table = Table {
    name: "cells",
    columns: "ws Int64, family String, hour Int64, gen UInt64,
        c_environment String, c_data_mode String, c_status String, c_provider String,
        c_model String, c_endpoint String, c_prompt_version String, c_tenant String,
        c_user String,
        requests UInt64, attempts UInt64, cost_hi Int64, cost_lo Int64, priced UInt64,
        input_hi Int64, input_lo Int64, cached_hi Int64, cached_lo Int64,
        cache_write_hi Int64, cache_write_lo Int64, output_hi Int64, output_lo Int64,
        reasoning_hi Int64, reasoning_lo Int64, latency_hi Int64, latency_lo Int64,
        latency_count UInt64, errors UInt64, usage_missing UInt64, idless UInt64",
    engine: "SummingMergeTree ORDER BY (ws, family, hour, gen, c_environment, c_data_mode,
        c_status, c_provider, c_model, c_endpoint, c_prompt_version, c_tenant, c_user)",
    sharding: "cityHash64(ws, hour)",
};

/// Sealed first and last times (`cells.rs`): per workspace, hour and seal generation,
/// when each (endpoint, prompt version, environment, data mode) was first and last seen
/// among the hour's calls (ms), written by the seal with the cells and read under the
/// same generation rule, so `versions_seen` reads whole sealed hours from here and
/// resolves raw calls only for the hours not trusted.
pub const CELL_VERSIONS: Table = Table {
    name: "cell_versions",
    columns: "ws Int64, hour Int64, gen UInt64, c_endpoint String, c_prompt_version String,
        c_environment String, c_data_mode String, first_ms Int64, last_ms Int64",
    engine: "MergeTree ORDER BY (ws, hour, gen, c_endpoint, c_prompt_version)",
    sharding: "cityHash64(ws, hour)",
};

/// One row per seal of a workspace's hour: the generation of its cells (the newest
/// one is read; a merge keeps only it).
pub const SEALED: Table = Table {
    name: "sealed",
    columns: "ws Int64, hour Int64, gen UInt64",
    engine: "ReplacingMergeTree(gen) ORDER BY (ws, hour)",
    sharding: "cityHash64(ws, hour)",
};

/// Dirty marks: a write changed calls of the hour at `at` (ms, after its rows were
/// stored). A merge keeps the newest mark of each hour.
pub const DIRTY: Table = Table {
    name: "dirty",
    columns: "ws Int64, hour Int64, at Int64",
    engine: "ReplacingMergeTree(at) ORDER BY (ws, hour)",
    sharding: "cityHash64(ws, hour)",
};

/// Retention's pruned history (`retention.rs`): per workspace, hour and prune
/// generation, the sums of the calls a prune deleted, by every dimension the reads
/// group or filter by (tenant and user together, so an erasure takes a person's share
/// out exactly), in `CELLS`' measure columns. Read only for generations whose record in
/// `PRUNES` is deleting or done; never resealed, never dropped by a cleanup.
pub const PRUNED: Table = Table {
    name: "pruned",
    columns: "ws Int64, hour Int64, gen UInt64,
        c_environment String, c_data_mode String, c_status String, c_provider String,
        c_model String, c_endpoint String, c_prompt_version String, c_tenant String,
        c_user String,
        requests UInt64, attempts UInt64, cost_hi Int64, cost_lo Int64, priced UInt64,
        input_hi Int64, input_lo Int64, cached_hi Int64, cached_lo Int64,
        cache_write_hi Int64, cache_write_lo Int64, output_hi Int64, output_lo Int64,
        reasoning_hi Int64, reasoning_lo Int64, latency_hi Int64, latency_lo Int64,
        latency_count UInt64, errors UInt64, usage_missing UInt64, idless UInt64",
    engine: "SummingMergeTree ORDER BY (ws, hour, gen, c_environment, c_data_mode, c_status,
        c_provider, c_model, c_endpoint, c_prompt_version, c_tenant, c_user)",
    sharding: "cityHash64(ws, hour)",
};

/// When each prompt version of a prune's calls was first and last seen (per prune
/// generation; `versions_seen` takes the min and max with the raw calls').
pub const PRUNED_VERSIONS: Table = Table {
    name: "pruned_versions",
    columns: "ws Int64, gen UInt64, c_endpoint String, c_prompt_version String,
        c_environment String, c_data_mode String, first_ms Int64, last_ms Int64",
    engine: "MergeTree ORDER BY (ws, gen, c_endpoint, c_prompt_version)",
    sharding: "cityHash64(ws)",
};

/// One record per prune of a workspace (`retention.rs`), its newest state kept by a
/// merge: claimed (0), deleting (1: its pruned rows are stored and its raw rows are being
/// deleted; `keep` and `straddle` name the calls its delete condition needs), done (2),
/// dropped (3: lost the claim, found nothing, or failed before deleting). `cutoff` is
/// the UTC day raw events are kept from, `before_seq` the newest commit it prunes.
pub const PRUNES: Table = Table {
    name: "prunes",
    columns: "ws Int64, gen UInt64, state UInt8, started_ms Int64, cutoff Int64,
        before_seq UInt64, calls UInt64, keep Array(String), straddle Array(String)",
    engine: "ReplacingMergeTree(state) ORDER BY (ws, gen)",
    sharding: "0",
};

pub const WORKSPACES: Table = Table {
    name: "workspaces",
    columns: "id Int64, name String, paused UInt8, created_ms Int64, created_seq UInt64,
        version UInt64",
    engine: "ReplacingMergeTree(version) ORDER BY id",
    sharding: "0",
};

pub const KEYS: Table = Table {
    name: "api_keys",
    columns: "id Int64, workspace_id Int64, key_hash String, prefix String, scope String,
        name String, has_name UInt8, created_ms Int64, created_seq UInt64, revoked_ms Int64,
        version UInt64",
    engine: "ReplacingMergeTree(version) ORDER BY id",
    sharding: "0",
};

/// Unknown-field tallies per key: one row per request that had any.
pub const KEY_TALLY: Table = Table {
    name: "key_tally",
    columns: "key_id Int64, unknown_fields UInt64, last_unknown String, seq UInt64",
    engine: "MergeTree ORDER BY (key_id, seq)",
    sharding: "0",
};

pub const OBJECTS: Table = Table {
    name: "objects",
    columns: "workspace Int64, kind String, id Int64, body String, created_ms Int64,
        updated_ms Int64, created_seq UInt64, deleted UInt8, version UInt64",
    engine: "ReplacingMergeTree(version) ORDER BY (workspace, kind, id)",
    sharding: "0",
};

/// Price books: one row per saved book (`book` its sequence, the import order); a
/// removal is a newer row of the same book with `removed` set.
pub const PRICE_BOOKS: Table = Table {
    name: "price_books",
    columns: "book UInt64, kind String, version_name String, body String, imported_ms Int64,
        removed UInt8, version UInt64",
    engine: "ReplacingMergeTree(version) ORDER BY book",
    sharding: "0",
};

/// One-time claims (the first start's admin key): the smallest claim wins.
pub const CLAIMS: Table = Table {
    name: "claims",
    columns: "name String, token UInt64, seq UInt64",
    engine: "MergeTree ORDER BY (name, seq, token)",
    sharding: "0",
};

/// Columns added after a table was first released: (table, column, type). A store
/// created before gets them at open (ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`,
/// so `open` asks `system.columns` first).
pub const UPGRADES: [(&Table, &str, &str); 1] = [(&EVENTS, "repriced", "Int64")];

/// The tables `create` makes at every open; `EVENTS_BY_HOUR` is made (and filled) by
/// the open itself, once (`ClickhouseStore::ensure_by_hour`).
pub const ALL: [&Table; 16] = [
    &EVENTS,
    &SPANNING,
    &HOUR_TOTALS,
    &CELLS,
    &CELL_VERSIONS,
    &SEALED,
    &DIRTY,
    &PRUNED,
    &PRUNED_VERSIONS,
    &PRUNES,
    &WORKSPACES,
    &KEYS,
    &KEY_TALLY,
    &OBJECTS,
    &PRICE_BOOKS,
    &CLAIMS,
];

/// The statements that create `table` in database `db` on one server: the plain table,
/// or (cluster mode) the shard's local table and the Distributed table over `cluster`.
pub fn create(db: &str, table: &Table, cluster: Option<&str>) -> Vec<String> {
    let name = table.name;
    let columns = table.columns;
    let engine = table.engine;
    match cluster {
        None => vec![format!(
            "CREATE TABLE IF NOT EXISTS {db}.{name} ({columns}) ENGINE = {engine}"
        )],
        Some(cluster) => vec![
            format!("CREATE TABLE IF NOT EXISTS {db}.{name}_local ({columns}) ENGINE = {engine}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{name} ({columns}) ENGINE = Distributed({cluster}, {db}, {name}_local, {})",
                table.sharding
            ),
        ],
    }
}

/// The statement that creates `table`'s shard-local table (the plain table without a
/// cluster) under the name `name`.
pub fn create_local_as(db: &str, table: &Table, name: &str) -> String {
    format!(
        "CREATE TABLE {db}.{name} ({}) ENGINE = {}",
        table.columns, table.engine
    )
}

/// The names of `table`'s columns, in order.
pub fn column_names(table: &Table) -> Vec<&'static str> {
    table
        .columns
        .split(',')
        .filter_map(|c| c.split_whitespace().next())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_gets_local_tables_and_distributed_tables_sharded_by_call() {
        let plain = create("burnrate", &EVENTS, None);
        assert_eq!(plain.len(), 1);
        assert!(plain[0].contains("burnrate.events (") && plain[0].contains("ReplacingMergeTree"));
        let cluster = create("burnrate", &EVENTS, Some("prod"));
        assert!(cluster[0].contains("burnrate.events_local ("));
        assert!(
            cluster[1].ends_with("Distributed(prod, burnrate, events_local, cityHash64(ws, id))"),
            "{}",
            cluster[1]
        );
        let names = column_names(&EVENTS_BY_HOUR);
        assert_eq!(names.len(), column_names(&EVENTS).len() + 1);
        assert_eq!(
            (names[0], names[7], names[names.len() - 1]),
            ("ws", "ts", "hour")
        );
        let control = create("burnrate", &KEYS, Some("prod"));
        assert!(control[1].ends_with("api_keys_local, 0)"), "{}", control[1]);
    }
}
