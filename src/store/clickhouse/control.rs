//! The control store in ClickHouse: workspaces, keys, objects, price books and claims.
//! Every change is a new row with a larger `version` (ReplacingMergeTree); reads take
//! each entity's newest row (argMax by version), so nothing is updated in place and any
//! node reads what any node wrote. New workspace and key ids are random 53-bit numbers
//! (unique across nodes without coordination); object ids count per (workspace, kind)
//! from the largest ever stored, deleted ones included, each new one claimed in the
//! claims table (`claim_alone`) so that no two nodes are given the same id.

use super::http::{quote, tsv_field, Client};
use super::{ms_to_rfc3339, now_ms, num, optional, schema, text, ClickhouseStore};
use crate::store::{
    KeyInfo, KeyRecord, KindedObject, LiveKey, Result, Scope, StoreError, StoredBook, StoredKey,
    StoredObject, Workspace, WorkspaceId,
};
use rand::Rng;

/// The id of the `default` workspace every store opens with (the same on every node).
const DEFAULT_WORKSPACE: i64 = 1;

fn random_id() -> i64 {
    rand::rng().random_range(2..(1i64 << 53))
}

fn micros_now() -> u64 {
    jiff::Timestamp::now().as_microsecond().max(0) as u64
}

/// Create `default` unless it exists; two nodes doing it at once write the same row.
pub async fn ensure_default_workspace(client: &Client, db: &str) -> Result<()> {
    let sql = format!(
        "SELECT count() FROM {db}.{} WHERE id = {DEFAULT_WORKSPACE}",
        schema::WORKSPACES.name
    );
    let rows = client.select(&sql).await?;
    if rows.first().map_or(0, |r| num::<u64>(r, 0).unwrap_or(0)) > 0 {
        return Ok(());
    }
    let row = workspace_row(
        &Workspace {
            id: DEFAULT_WORKSPACE,
            name: "default".into(),
            paused: false,
            created_at: String::new(),
        },
        now_ms(),
        0,
        1,
    );
    client
        .insert(&format!("{db}.{}", schema::WORKSPACES.name), &[row])
        .await
}

fn workspace_row(w: &Workspace, created_ms: i64, created_seq: u64, version: u64) -> String {
    format!(
        "{}\t{}\t{}\t{created_ms}\t{created_seq}\t{version}",
        w.id,
        tsv_field(&w.name),
        w.paused as u8
    )
}

/// A workspace as stored, with what a new version of it must keep.
struct WorkspaceRow {
    workspace: Workspace,
    created_ms: i64,
    created_seq: u64,
}

async fn workspace_rows(store: &ClickhouseStore) -> Result<Vec<WorkspaceRow>> {
    let sql = format!(
        "SELECT id, argMax(name, version), argMax(paused, version), argMax(created_ms, version),
            argMax(created_seq, version) AS w_seq
         FROM {} GROUP BY id ORDER BY w_seq, id",
        store.table(schema::WORKSPACES.name)
    );
    let rows = store.client.select(&sql).await?;
    rows.iter()
        .map(|r| {
            let created_ms: i64 = num(r, 3)?;
            Ok(WorkspaceRow {
                workspace: Workspace {
                    id: num(r, 0)?,
                    name: text(r, 1),
                    paused: num::<u8>(r, 2)? == 1,
                    created_at: ms_to_rfc3339(created_ms),
                },
                created_ms,
                created_seq: num(r, 4)?,
            })
        })
        .collect()
}

pub async fn workspaces(store: &ClickhouseStore) -> Result<Vec<Workspace>> {
    Ok(workspace_rows(store)
        .await?
        .into_iter()
        .map(|w| w.workspace)
        .collect())
}

async fn workspace_named(store: &ClickhouseStore, name: &str) -> Result<WorkspaceRow> {
    workspace_rows(store)
        .await?
        .into_iter()
        .find(|w| w.workspace.name == name)
        .ok_or_else(|| StoreError::NotFound(format!("workspace {name}")))
}

/// How long a node waits after claiming a name before reading who claimed it first: a
/// node claiming at nearly the same moment has its row stored by then.
const NAME_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);
/// Claims older than this are ignored: a claimer that never created its workspace
/// (stopped between the two) does not hold the name for ever.
const NAME_CLAIM_MS: u64 = 10_000;

/// Claim a name for this node: every claimer writes a row, waits `NAME_SETTLE`, and the
/// earliest recent claim (by time, then token) wins; racers all read the same earliest.
async fn claim_first(store: &ClickhouseStore, name: &str) -> Result<bool> {
    let token: u64 = rand::rng().random_range(1..u64::MAX);
    let now = micros_now();
    let row = format!("{}\t{token}\t{now}", tsv_field(name));
    let table = store.table(schema::CLAIMS.name);
    store.client.insert(&table, &[row]).await?;
    tokio::time::sleep(NAME_SETTLE).await;
    let sql = format!(
        "SELECT token FROM {table} WHERE name = {} AND seq >= {} ORDER BY seq, token LIMIT 1",
        quote(name),
        now.saturating_sub(NAME_CLAIM_MS * 1_000)
    );
    let rows = store.client.select(&sql).await?;
    Ok(rows.first().and_then(|r| num::<u64>(r, 0).ok()) == Some(token))
}

pub async fn create_workspace(store: &ClickhouseStore, name: &str) -> Result<Workspace> {
    let exists = || StoreError::Conflict(format!("workspace {name} exists"));
    if workspace_named(store, name).await.is_ok() {
        return Err(exists());
    }
    // Two nodes creating one name at once: one creates it, the other is told it exists.
    if !claim_first(store, &format!("workspace/{name}")).await?
        || workspace_named(store, name).await.is_ok()
    {
        return Err(exists());
    }
    let created_ms = now_ms();
    let w = Workspace {
        id: random_id(),
        name: name.to_string(),
        paused: false,
        created_at: ms_to_rfc3339(created_ms),
    };
    let v = store.seq.next();
    store
        .client
        .insert(
            &store.table(schema::WORKSPACES.name),
            &[workspace_row(&w, created_ms, v, v)],
        )
        .await?;
    Ok(w)
}

pub async fn set_paused(store: &ClickhouseStore, name: &str, paused: bool) -> Result<()> {
    let mut w = workspace_named(store, name).await?;
    w.workspace.paused = paused;
    let row = workspace_row(&w.workspace, w.created_ms, w.created_seq, store.seq.next());
    store
        .client
        .insert(&store.table(schema::WORKSPACES.name), &[row])
        .await
}

/// A key's newest row.
struct KeyRow {
    id: i64,
    workspace_id: i64,
    key_hash: String,
    prefix: String,
    scope: Scope,
    name: Option<String>,
    created_ms: i64,
    created_seq: u64,
    revoked_ms: i64,
}

impl KeyRow {
    fn line(&self, version: u64) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{version}",
            self.id,
            self.workspace_id,
            tsv_field(&self.key_hash),
            tsv_field(&self.prefix),
            self.scope.as_str(),
            tsv_field(self.name.as_deref().unwrap_or("")),
            self.name.is_some() as u8,
            self.created_ms,
            self.created_seq,
            self.revoked_ms
        )
    }
}

/// Keys' newest rows, oldest key first; `having` narrows them (on the `k_` columns).
async fn key_rows(store: &ClickhouseStore, having: &str) -> Result<Vec<KeyRow>> {
    let sql = format!(
        "SELECT id, argMax(workspace_id, version), argMax(key_hash, version) AS k_hash,
            argMax(prefix, version) AS k_prefix, argMax(scope, version), argMax(name, version),
            argMax(has_name, version), argMax(created_ms, version),
            argMax(created_seq, version) AS k_seq, argMax(revoked_ms, version) AS k_revoked
         FROM {} GROUP BY id HAVING {having} ORDER BY k_seq, id",
        store.table(schema::KEYS.name)
    );
    let rows = store.client.select(&sql).await?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                id: num(r, 0)?,
                workspace_id: num(r, 1)?,
                key_hash: text(r, 2),
                prefix: text(r, 3),
                scope: Scope::parse(&text(r, 4))
                    .ok_or_else(|| StoreError::Database("clickhouse: unknown key scope".into()))?,
                name: (num::<u8>(r, 6)? == 1).then(|| text(r, 5)),
                created_ms: num(r, 7)?,
                created_seq: num(r, 8)?,
                revoked_ms: num(r, 9)?,
            })
        })
        .collect()
}

pub async fn authenticate(store: &ClickhouseStore, key_hash: &str) -> Result<Option<KeyInfo>> {
    let having = format!("k_hash = {} AND k_revoked = 0", quote(key_hash));
    let Some(key) = key_rows(store, &having).await?.into_iter().next() else {
        return Ok(None);
    };
    let workspaces = workspaces(store).await?;
    let Some(ws) = workspaces.iter().find(|w| w.id == key.workspace_id) else {
        return Ok(None);
    };
    Ok(Some(KeyInfo {
        key_id: key.id,
        workspace_id: ws.id,
        scope: key.scope,
        workspace_paused: ws.paused,
    }))
}

/// Every key not revoked with its workspace's pause; keys of a workspace that is gone
/// are left out, as `authenticate` refuses them.
pub async fn live_keys(store: &ClickhouseStore) -> Result<Vec<LiveKey>> {
    let workspaces = workspaces(store).await?;
    Ok(key_rows(store, "k_revoked = 0")
        .await?
        .into_iter()
        .filter_map(|k| {
            let ws = workspaces.iter().find(|w| w.id == k.workspace_id)?;
            Some(LiveKey {
                key_hash: k.key_hash,
                info: KeyInfo {
                    key_id: k.id,
                    workspace_id: ws.id,
                    scope: k.scope,
                    workspace_paused: ws.paused,
                },
            })
        })
        .collect())
}

/// Every change to a key or a workspace is a new row with a larger version: the
/// newest version and the row count of both tables, mixed into one number. The count
/// catches a row written by a node whose clock is behind (a version below the newest);
/// a merge that drops replaced rows moves it too, which costs one needless reload.
pub async fn key_generation(store: &ClickhouseStore) -> Result<i64> {
    let sql = format!(
        "SELECT max(version), count() FROM {} UNION ALL SELECT max(version), count() FROM {}",
        store.table(schema::KEYS.name),
        store.table(schema::WORKSPACES.name)
    );
    let mut parts: Vec<(u64, u64)> = Vec::new();
    for r in store.client.select(&sql).await? {
        parts.push((num(&r, 0)?, num(&r, 1)?));
    }
    // UNION ALL does not keep the order of its parts: sort so both tables always
    // mix in the same order.
    parts.sort_unstable();
    let mut mixed: u64 = 0xcbf2_9ce4_8422_2325;
    for (version, count) in parts {
        for n in [version, count] {
            mixed = (mixed ^ n).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(mixed as i64)
}

pub async fn create_key(
    store: &ClickhouseStore,
    workspace: &str,
    scope: Scope,
    key_hash: String,
    prefix: String,
    name: Option<String>,
) -> Result<KeyRecord> {
    let ws = workspace_named(store, workspace).await?;
    let version = store.seq.next();
    let key = KeyRow {
        id: random_id(),
        workspace_id: ws.workspace.id,
        key_hash,
        prefix,
        scope,
        name,
        created_ms: now_ms(),
        created_seq: version,
        revoked_ms: 0,
    };
    store
        .client
        .insert(&store.table(schema::KEYS.name), &[key.line(version)])
        .await?;
    Ok(KeyRecord {
        id: key.id,
        workspace: workspace.to_string(),
        prefix: key.prefix,
        scope,
        name: key.name,
        created_at: ms_to_rfc3339(key.created_ms),
        revoked_at: None,
        unknown_fields: 0,
        last_unknown_field: None,
    })
}

pub async fn keys(store: &ClickhouseStore, workspace: Option<&str>) -> Result<Vec<KeyRecord>> {
    let workspaces = workspaces(store).await?;
    let only = match workspace {
        Some(name) => match workspaces.iter().find(|w| w.name == name) {
            Some(w) => Some(w.id),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let tally_sql = format!(
        "SELECT key_id, sum(unknown_fields), argMax(last_unknown, seq) FROM {} GROUP BY key_id",
        store.table(schema::KEY_TALLY.name)
    );
    let mut tallies = std::collections::HashMap::new();
    for r in store.client.select(&tally_sql).await? {
        tallies.insert(num::<i64>(&r, 0)?, (num::<u64>(&r, 1)?, optional(&r, 2)));
    }
    let mut out = Vec::new();
    for k in key_rows(store, "1").await? {
        if only.is_some_and(|id| id != k.workspace_id) {
            continue;
        }
        let (unknown_fields, last_unknown_field) = tallies.remove(&k.id).unwrap_or((0, None));
        out.push(KeyRecord {
            id: k.id,
            workspace: workspaces
                .iter()
                .find(|w| w.id == k.workspace_id)
                .map(|w| w.name.clone())
                .unwrap_or_default(),
            prefix: k.prefix,
            scope: k.scope,
            name: k.name,
            created_at: ms_to_rfc3339(k.created_ms),
            revoked_at: (k.revoked_ms != 0).then(|| ms_to_rfc3339(k.revoked_ms)),
            unknown_fields,
            last_unknown_field,
        });
    }
    Ok(out)
}

pub async fn revoke_key(store: &ClickhouseStore, id_or_prefix: &str) -> Result<usize> {
    let having = format!(
        "k_revoked = 0 AND (toString(id) = {s} OR k_prefix = {s})",
        s = quote(id_or_prefix)
    );
    let live = key_rows(store, &having).await?;
    let version = store.seq.next();
    let now = now_ms();
    let lines: Vec<String> = live
        .into_iter()
        .map(|mut k| {
            k.revoked_ms = now;
            k.line(version)
        })
        .collect();
    store
        .client
        .insert(&store.table(schema::KEYS.name), &lines)
        .await?;
    Ok(lines.len())
}

/// Claim `name` once: every claim is stored, the earliest wins. Two nodes claiming at
/// the same moment both win only if each reads before the other's row lands.
pub async fn claim(store: &ClickhouseStore, name: &str) -> Result<bool> {
    let token: u64 = rand::rng().random_range(1..u64::MAX);
    let row = format!("{}\t{token}\t{}", tsv_field(name), micros_now());
    let table = store.table(schema::CLAIMS.name);
    store.client.insert(&table, &[row]).await?;
    let sql = format!(
        "SELECT token FROM {table} WHERE name = {} ORDER BY seq, token LIMIT 1",
        quote(name)
    );
    let rows = store.client.select(&sql).await?;
    Ok(rows.first().and_then(|r| num::<u64>(r, 0).ok()) == Some(token))
}

/// Stored books' newest rows that are not removed, in import order.
async fn live_books(store: &ClickhouseStore, having: &str) -> Result<Vec<(u64, StoredBook)>> {
    let sql = format!(
        "SELECT book, argMax(kind, version), argMax(version_name, version) AS b_version,
            argMax(body, version), argMax(imported_ms, version), argMax(removed, version) AS b_removed
         FROM {} GROUP BY book HAVING b_removed = 0 AND {having} ORDER BY book",
        store.table(schema::PRICE_BOOKS.name)
    );
    let rows = store.client.select(&sql).await?;
    rows.iter()
        .map(|r| {
            Ok((
                num(r, 0)?,
                StoredBook {
                    kind: text(r, 1),
                    version: text(r, 2),
                    body: text(r, 3),
                    imported_at_ms: Some(num(r, 4)?),
                },
            ))
        })
        .collect()
}

fn book_line(book: u64, b: &StoredBook, imported_ms: i64, removed: bool, version: u64) -> String {
    format!(
        "{book}\t{}\t{}\t{}\t{imported_ms}\t{}\t{version}",
        tsv_field(&b.kind),
        tsv_field(&b.version),
        tsv_field(&b.body),
        removed as u8
    )
}

pub async fn price_books(store: &ClickhouseStore) -> Result<Vec<StoredBook>> {
    Ok(live_books(store, "1")
        .await?
        .into_iter()
        .map(|(_, b)| b)
        .collect())
}

pub async fn save_price_book(store: &ClickhouseStore, book: StoredBook) -> Result<()> {
    let seq = store.seq.next();
    let imported = book.imported_at_ms.unwrap_or_else(now_ms);
    store
        .client
        .insert(
            &store.table(schema::PRICE_BOOKS.name),
            &[book_line(seq, &book, imported, false, seq)],
        )
        .await
}

pub async fn remove_price_book(store: &ClickhouseStore, version: &str) -> Result<usize> {
    let books = live_books(store, &format!("b_version = {}", quote(version))).await?;
    let v = store.seq.next();
    let lines: Vec<String> = books
        .iter()
        .map(|(book, b)| book_line(*book, b, b.imported_at_ms.unwrap_or(0), true, v))
        .collect();
    store
        .client
        .insert(&store.table(schema::PRICE_BOOKS.name), &lines)
        .await?;
    Ok(lines.len())
}

/// The newest change to the price books: grows with every save and removal.
pub async fn price_generation(store: &ClickhouseStore) -> Result<i64> {
    let sql = format!(
        "SELECT max(version) FROM {}",
        store.table(schema::PRICE_BOOKS.name)
    );
    let rows = store.client.select(&sql).await?;
    rows.first().map_or(Ok(0), |r| num(r, 0))
}

/// An object's newest row.
struct ObjectRow {
    kind: String,
    object: StoredObject,
    created_seq: u64,
    deleted: bool,
}

/// Objects of `kind` (every kind: None) of one workspace or all, newest rows, deleted
/// ones included, oldest first.
async fn object_rows(
    store: &ClickhouseStore,
    workspace: Option<WorkspaceId>,
    kind: Option<&str>,
    id: Option<i64>,
) -> Result<Vec<ObjectRow>> {
    let mut conditions = vec!["1".to_string()];
    conditions.extend(kind.map(|k| format!("kind = {}", quote(k))));
    conditions.extend(workspace.map(|w| format!("workspace = {w}")));
    conditions.extend(id.map(|i| format!("id = {i}")));
    let sql = format!(
        "SELECT workspace, id, argMax(body, version), argMax(created_ms, version),
            argMax(updated_ms, version), argMax(created_seq, version) AS o_seq,
            argMax(deleted, version), kind
         FROM {} WHERE {} GROUP BY workspace, kind, id ORDER BY o_seq, workspace, id",
        store.table(schema::OBJECTS.name),
        conditions.join(" AND ")
    );
    let rows = store.client.select(&sql).await?;
    rows.iter()
        .map(|r| {
            let body = serde_json::from_str(&text(r, 2)).map_err(|_| {
                StoreError::Database("clickhouse: a stored object is not JSON".into())
            })?;
            Ok(ObjectRow {
                kind: text(r, 7),
                object: StoredObject {
                    id: num(r, 1)?,
                    workspace: num(r, 0)?,
                    body,
                    created_ms: num(r, 3)?,
                    updated_ms: num(r, 4)?,
                },
                created_seq: num(r, 5)?,
                deleted: num::<u8>(r, 6)? == 1,
            })
        })
        .collect()
}

fn object_line(o: &ObjectRow, version: u64) -> String {
    let x = &o.object;
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{version}",
        x.workspace,
        tsv_field(&o.kind),
        x.id,
        tsv_field(&x.body.to_string()),
        x.created_ms,
        x.updated_ms,
        o.created_seq,
        o.deleted as u8
    )
}

/// Claim `name` for this node alone: true when, after this node's claim row landed, it
/// is the only claim of `name`. Of two nodes racing, at least one sees the other's row
/// (each reads after its own insert), so at most one wins; both may lose, and retry.
async fn claim_alone(store: &ClickhouseStore, name: &str) -> Result<bool> {
    let token: u64 = rand::rng().random_range(1..u64::MAX);
    let row = format!("{}\t{token}\t{}", tsv_field(name), micros_now());
    let table = store.table(schema::CLAIMS.name);
    store.client.insert(&table, &[row]).await?;
    let sql = format!("SELECT token FROM {table} WHERE name = {}", quote(name));
    let rows = store.client.select(&sql).await?;
    Ok(rows.len() == 1 && rows[0].first().and_then(|t| t.parse::<u64>().ok()) == Some(token))
}

/// The tries a new object id gets before the store answers busy.
const ID_TRIES: u32 = 40;

/// A new object id for (workspace, kind): the next after the largest stored, claimed so
/// that two nodes creating objects of one kind at the same moment never get the same id
/// (the two rows would be one object). A lost claim moves on to the next id after a
/// short random pause, so racing nodes fall out of step.
async fn new_object_id(store: &ClickhouseStore, workspace: WorkspaceId, kind: &str) -> Result<i64> {
    let sql = format!(
        "SELECT max(id) FROM {} WHERE workspace = {workspace} AND kind = {}",
        store.table(schema::OBJECTS.name),
        quote(kind)
    );
    let mut id = 0;
    for _ in 0..ID_TRIES {
        let rows = store.client.select(&sql).await?;
        let last: i64 = rows.first().map_or(Ok(0), |r| num(r, 0))?;
        id = (id + 1).max(last + 1);
        if claim_alone(store, &format!("object/{workspace}/{kind}/{id}")).await? {
            return Ok(id);
        }
        let pause = rand::rng().random_range(1..20);
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
    Err(StoreError::Busy)
}

pub async fn put_object(
    store: &ClickhouseStore,
    workspace: WorkspaceId,
    kind: &str,
    id: Option<i64>,
    body: serde_json::Value,
) -> Result<i64> {
    let now = now_ms();
    let version = store.seq.next();
    let row = match id {
        Some(id) => {
            let mut rows = object_rows(store, Some(workspace), Some(kind), Some(id)).await?;
            let mut row = rows
                .pop()
                .filter(|r| !r.deleted)
                .ok_or_else(|| StoreError::NotFound(format!("{kind} {id}")))?;
            row.object.body = body;
            row.object.updated_ms = now.max(row.object.created_ms);
            row
        }
        None => ObjectRow {
            kind: kind.to_string(),
            object: StoredObject {
                id: new_object_id(store, workspace, kind).await?,
                workspace,
                body,
                created_ms: now,
                updated_ms: now,
            },
            created_seq: version,
            deleted: false,
        },
    };
    store
        .client
        .insert(
            &store.table(schema::OBJECTS.name),
            &[object_line(&row, version)],
        )
        .await?;
    Ok(row.object.id)
}

pub async fn objects(
    store: &ClickhouseStore,
    workspace: Option<WorkspaceId>,
    kind: &str,
) -> Result<Vec<StoredObject>> {
    Ok(object_rows(store, workspace, Some(kind), None)
        .await?
        .into_iter()
        .filter(|r| !r.deleted)
        .map(|r| r.object)
        .collect())
}

pub async fn delete_object(
    store: &ClickhouseStore,
    workspace: WorkspaceId,
    kind: &str,
    id: i64,
) -> Result<bool> {
    let rows = object_rows(store, Some(workspace), Some(kind), Some(id)).await?;
    let Some(mut row) = rows.into_iter().find(|r| !r.deleted) else {
        return Ok(false);
    };
    row.deleted = true;
    // The tombstone keeps no body: what the object said (an erased id, say) is gone
    // once a merge drops the older versions.
    row.object.body = serde_json::json!({});
    row.object.updated_ms = now_ms().max(row.object.created_ms);
    store
        .client
        .insert(
            &store.table(schema::OBJECTS.name),
            &[object_line(&row, store.seq.next())],
        )
        .await?;
    Ok(true)
}

pub async fn stored_keys(store: &ClickhouseStore) -> Result<Vec<StoredKey>> {
    let workspaces = workspaces(store).await?;
    let rows = key_rows(store, "1").await?;
    Ok(rows
        .into_iter()
        .filter_map(|k| {
            let ws = workspaces.iter().find(|w| w.id == k.workspace_id)?;
            Some(StoredKey {
                workspace: ws.name.clone(),
                key_hash: k.key_hash,
                prefix: k.prefix,
                scope: k.scope,
                name: k.name,
                created_ms: k.created_ms,
                revoked_ms: (k.revoked_ms != 0).then_some(k.revoked_ms),
            })
        })
        .collect())
}

pub async fn copy_key(store: &ClickhouseStore, key: StoredKey) -> Result<bool> {
    let having = format!("k_hash = {}", quote(&key.key_hash));
    if !key_rows(store, &having).await?.is_empty() {
        return Ok(false);
    }
    let ws = workspace_named(store, &key.workspace).await?;
    let version = store.seq.next();
    let row = KeyRow {
        id: random_id(),
        workspace_id: ws.workspace.id,
        key_hash: key.key_hash,
        prefix: key.prefix,
        scope: key.scope,
        name: key.name,
        created_ms: key.created_ms,
        created_seq: version,
        revoked_ms: key.revoked_ms.unwrap_or(0),
    };
    store
        .client
        .insert(&store.table(schema::KEYS.name), &[row.line(version)])
        .await?;
    Ok(true)
}

pub async fn every_object(store: &ClickhouseStore) -> Result<Vec<KindedObject>> {
    Ok(object_rows(store, None, None, None)
        .await?
        .into_iter()
        .filter(|r| !r.deleted)
        .map(|r| KindedObject {
            kind: r.kind,
            object: r.object,
        })
        .collect())
}

/// New ids take the largest stored id plus one (`new_object_id`), so a copied id is
/// never given again.
pub async fn copy_object(
    store: &ClickhouseStore,
    kind: String,
    object: StoredObject,
) -> Result<()> {
    let version = store.seq.next();
    let row = ObjectRow {
        kind,
        object,
        created_seq: version,
        deleted: false,
    };
    store
        .client
        .insert(
            &store.table(schema::OBJECTS.name),
            &[object_line(&row, version)],
        )
        .await
}
