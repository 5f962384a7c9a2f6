//! The control half of the SQLite store: workspaces, API keys, control objects and
//! price books.

use super::{ms_to_rfc3339, now_ms, SqliteStore};
use crate::store::*;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

/// The id of the workspace named `name`.
fn workspace_id(c: &Connection, name: &str) -> Result<i64> {
    c.query_row("SELECT id FROM workspaces WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("workspace {name}")))
}

fn key_record(r: &rusqlite::Row) -> rusqlite::Result<KeyRecord> {
    let scope: String = r.get(3)?;
    Ok(KeyRecord {
        id: r.get(0)?,
        workspace: r.get(1)?,
        prefix: r.get(2)?,
        scope: Scope::parse(&scope).unwrap_or(Scope::Read),
        name: r.get(4)?,
        created_at: ms_to_rfc3339(r.get(5)?),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(ms_to_rfc3339),
        unknown_fields: r.get::<_, Option<i64>>(7)?.unwrap_or(0) as u64,
        last_unknown_field: r.get(8)?,
    })
}

const KEY_COLUMNS: &str = "k.id, w.name, k.prefix, k.scope, k.name, k.created_at, k.revoked_at,
    q.unknown_fields, q.last_unknown_field";
/// The key tables every key listing joins.
const KEY_TABLES: &str = "api_keys k JOIN workspaces w ON w.id = k.workspace_id
    LEFT JOIN key_quality q ON q.key_id = k.id";

/// A transaction that takes the write lock at its start: one that read first and wrote
/// later would fail at once ("database is locked", no busy wait) whenever the server's
/// writer committed in between, as a CLI command beside a running server does.
fn write_tx(c: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    Ok(c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

/// Move `key_generation` (a `meta` row, made on first use: files from before it have
/// none), in the transaction that changed a key or a workspace's pause.
fn bump_key_generation(c: &Connection) -> Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('key_generation', '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    Ok(())
}

#[async_trait]
impl ControlStore for SqliteStore {
    async fn authenticate(&self, key_hash: String) -> Result<Option<KeyInfo>> {
        // One indexed lookup on a cached statement takes microseconds: run it right here.
        // Handing it to the blocking pool costs more than the query and, under load, puts
        // milliseconds of queueing on every guard call.
        self.with_conn_inline(move |c| {
            Ok(c.prepare_cached(
                "SELECT k.id, k.workspace_id, k.scope, w.paused FROM api_keys k
                 JOIN workspaces w ON w.id = k.workspace_id
                 WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
            )?
            .query_row([key_hash], |r| {
                let scope: String = r.get(2)?;
                Ok(KeyInfo {
                    key_id: r.get(0)?,
                    workspace_id: r.get(1)?,
                    scope: Scope::parse(&scope).unwrap_or(Scope::Read),
                    workspace_paused: r.get(3)?,
                })
            })
            .optional()?)
        })
    }

    async fn create_workspace(&self, name: String) -> Result<Workspace> {
        self.with_write_conn(move |c| {
            let now = now_ms();
            let n = c.execute(
                "INSERT OR IGNORE INTO workspaces (name, paused, created_at) VALUES (?1, 0, ?2)",
                params![name, now],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("workspace {name} exists")));
            }
            Ok(Workspace {
                id: c.last_insert_rowid(),
                name,
                paused: false,
                created_at: ms_to_rfc3339(now),
            })
        })
        .await
    }

    async fn workspaces(&self) -> Result<Vec<Workspace>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT id, name, paused, created_at FROM workspaces ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(Workspace {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    paused: r.get(2)?,
                    created_at: ms_to_rfc3339(r.get(3)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn workspace(&self, name: String) -> Result<Option<Workspace>> {
        Ok(self
            .workspaces()
            .await?
            .into_iter()
            .find(|w| w.name == name))
    }

    async fn set_paused(&self, name: String, paused: bool) -> Result<()> {
        self.with_write_conn(move |c| {
            let tx = write_tx(c)?;
            let n = tx.execute(
                "UPDATE workspaces SET paused = ?2 WHERE name = ?1",
                params![name, paused],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("workspace {name}")));
            }
            bump_key_generation(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_key(
        &self,
        workspace: String,
        scope: Scope,
        key_hash: String,
        prefix: String,
        name: Option<String>,
    ) -> Result<KeyRecord> {
        self.with_write_conn(move |c| {
            let tx = write_tx(c)?;
            let ws = workspace_id(&tx, &workspace)?;
            tx.execute(
                "INSERT INTO api_keys (workspace_id, key_hash, prefix, scope, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![ws, key_hash, prefix, scope.as_str(), name, now_ms()],
            )?;
            let id = tx.last_insert_rowid();
            let record = tx.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM {KEY_TABLES} WHERE k.id = ?1"),
                [id],
                key_record,
            )?;
            bump_key_generation(&tx)?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn keys(&self, workspace: Option<String>) -> Result<Vec<KeyRecord>> {
        self.with_conn(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM {KEY_TABLES} WHERE ?1 IS NULL OR w.name = ?1 ORDER BY k.id"
            ))?;
            let rows = stmt.query_map([workspace], key_record)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn revoke_key(&self, id_or_prefix: String) -> Result<usize> {
        self.with_write_conn(move |c| {
            let tx = write_tx(c)?;
            let n = tx.execute(
                "UPDATE api_keys SET revoked_at = ?2
                 WHERE revoked_at IS NULL AND (CAST(id AS TEXT) = ?1 OR prefix = ?1)",
                params![id_or_prefix, now_ms()],
            )?;
            if n > 0 {
                bump_key_generation(&tx)?;
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn live_keys(&self) -> Result<Vec<LiveKey>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT k.key_hash, k.id, k.workspace_id, k.scope, w.paused FROM api_keys k
                 JOIN workspaces w ON w.id = k.workspace_id
                 WHERE k.revoked_at IS NULL ORDER BY k.id",
            )?;
            let rows = stmt.query_map([], |r| {
                let scope: String = r.get(3)?;
                Ok(LiveKey {
                    key_hash: r.get(0)?,
                    info: KeyInfo {
                        key_id: r.get(1)?,
                        workspace_id: r.get(2)?,
                        scope: Scope::parse(&scope).unwrap_or(Scope::Read),
                        workspace_paused: r.get(4)?,
                    },
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn key_generation(&self) -> Result<i64> {
        self.with_conn(|c| {
            let v: Option<String> = c
                .prepare_cached("SELECT value FROM meta WHERE key = 'key_generation'")?
                .query_row([], |r| r.get(0))
                .optional()?;
            Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
        })
        .await
    }

    async fn claim_first_start(&self) -> Result<bool> {
        self.with_write_conn(|c| {
            Ok(c.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('first_start_done', '1')",
                [],
            )? == 1)
        })
        .await
    }

    async fn price_books(&self) -> Result<Vec<StoredBook>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT kind, version, body, imported_at FROM price_books ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredBook {
                    kind: r.get(0)?,
                    version: r.get(1)?,
                    body: r.get(2)?,
                    imported_at_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn save_price_book(&self, book: StoredBook) -> Result<()> {
        self.with_write_conn(move |c| {
            let tx = write_tx(c)?;
            tx.execute(
                "INSERT INTO price_books (kind, version, body, imported_at) VALUES (?1, ?2, ?3, ?4)",
                params![book.kind, book.version, book.body, now_ms()],
            )?;
            tx.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'price_generation'",
                [],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_price_book(&self, version: String) -> Result<usize> {
        self.with_write_conn(move |c| {
            let tx = write_tx(c)?;
            let removed = tx.execute("DELETE FROM price_books WHERE version = ?1", [version])?;
            if removed > 0 {
                tx.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'price_generation'",
                    [],
                )?;
            }
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn price_generation(&self) -> Result<i64> {
        self.with_conn(|c| {
            let v: String = c.query_row(
                "SELECT value FROM meta WHERE key = 'price_generation'",
                [],
                |r| r.get(0),
            )?;
            Ok(v.parse().unwrap_or(0))
        })
        .await
    }

    async fn put_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: Option<i64>,
        body: serde_json::Value,
    ) -> Result<i64> {
        self.with_write_conn(move |c| {
            let now = now_ms();
            let text = body.to_string();
            match id {
                None => {
                    // The next id of this workspace's kind, taken in the same transaction.
                    let tx = write_tx(c)?;
                    let id: i64 = tx.query_row(
                        "INSERT INTO object_ids (workspace_id, kind, last_id) VALUES (?1, ?2, 1)
                         ON CONFLICT (workspace_id, kind) DO UPDATE SET last_id = last_id + 1
                         RETURNING last_id",
                        params![workspace, kind],
                        |r| r.get(0),
                    )?;
                    tx.execute(
                        "INSERT INTO objects (workspace_id, kind, id, body, created_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![workspace, kind, id, text, now],
                    )?;
                    tx.commit()?;
                    Ok(id)
                }
                Some(id) => {
                    let n = overwriting(c, |c| {
                        c.execute(
                            "UPDATE objects SET body = ?4, updated_ms = ?5
                             WHERE id = ?1 AND workspace_id = ?2 AND kind = ?3",
                            params![id, workspace, kind, text, now],
                        )
                    })?;
                    if n == 0 {
                        return Err(StoreError::NotFound(format!("{kind} {id}")));
                    }
                    Ok(id)
                }
            }
        })
        .await
    }

    async fn objects(
        &self,
        workspace: Option<WorkspaceId>,
        kind: &'static str,
    ) -> Result<Vec<StoredObject>> {
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, workspace_id, body, created_ms, updated_ms FROM objects
                 WHERE kind = ?1 AND (?2 IS NULL OR workspace_id = ?2) ORDER BY workspace_id, id",
            )?;
            let rows = stmt.query_map(params![kind, workspace], |r| {
                let body: String = r.get(2)?;
                Ok(StoredObject {
                    id: r.get(0)?,
                    workspace: r.get(1)?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    created_ms: r.get(3)?,
                    updated_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn delete_object(
        &self,
        workspace: WorkspaceId,
        kind: &'static str,
        id: i64,
    ) -> Result<bool> {
        self.with_write_conn(move |c| {
            let n = overwriting(c, |c| {
                c.execute(
                    "DELETE FROM objects WHERE id = ?1 AND workspace_id = ?2 AND kind = ?3",
                    params![id, workspace, kind],
                )
            })?;
            Ok(n == 1)
        })
        .await
    }

    async fn stored_keys(&self) -> Result<Vec<StoredKey>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT w.name, k.key_hash, k.prefix, k.scope, k.name, k.created_at, k.revoked_at
                 FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id ORDER BY k.id",
            )?;
            let rows = stmt.query_map([], |r| {
                let scope: String = r.get(3)?;
                Ok(StoredKey {
                    workspace: r.get(0)?,
                    key_hash: r.get(1)?,
                    prefix: r.get(2)?,
                    scope: Scope::parse(&scope).unwrap_or(Scope::Read),
                    name: r.get(4)?,
                    created_ms: r.get(5)?,
                    revoked_ms: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn copy_key(&self, key: StoredKey) -> Result<bool> {
        self.with_write_conn(move |c| {
            let tx = write_tx(c)?;
            let ws = workspace_id(&tx, &key.workspace)?;
            let added = tx.execute(
                "INSERT OR IGNORE INTO api_keys
                     (workspace_id, key_hash, prefix, scope, name, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    ws,
                    key.key_hash,
                    key.prefix,
                    key.scope.as_str(),
                    key.name,
                    key.created_ms,
                    key.revoked_ms
                ],
            )? == 1;
            if added {
                bump_key_generation(&tx)?;
            }
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    async fn every_object(&self) -> Result<Vec<KindedObject>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT kind, id, workspace_id, body, created_ms, updated_ms FROM objects
                 ORDER BY workspace_id, kind, id",
            )?;
            let rows = stmt.query_map([], |r| {
                let body: String = r.get(3)?;
                Ok(KindedObject {
                    kind: r.get(0)?,
                    object: StoredObject {
                        id: r.get(1)?,
                        workspace: r.get(2)?,
                        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                        created_ms: r.get(4)?,
                        updated_ms: r.get(5)?,
                    },
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn copy_object(&self, kind: String, object: StoredObject) -> Result<()> {
        self.with_write_conn(move |c| {
            let tx = write_tx(c)?;
            let o = &object;
            tx.execute(
                "INSERT OR REPLACE INTO objects (workspace_id, kind, id, body, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![o.workspace, kind, o.id, o.body.to_string(), o.created_ms, o.updated_ms],
            )?;
            // Ids are never reused: the kind's sequence continues after this one.
            tx.execute(
                "INSERT INTO object_ids (workspace_id, kind, last_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (workspace_id, kind) DO UPDATE SET last_id = MAX(last_id, ?3)",
                params![o.workspace, kind, o.id],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

/// Run `f` with `secure_delete` on: what a replaced or deleted control object held is
/// overwritten with zeros, not left in free space (an erasure edits objects that named
/// the erased id). Control writes are rare, so the extra writes cost nothing noticeable.
fn overwriting<T>(
    c: &mut Connection,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    c.pragma_update(None, "secure_delete", true)?;
    let result = f(c);
    c.pragma_update(None, "secure_delete", false)?;
    Ok(result?)
}
