//! Tag sets: a call's tags (its canonical JSON object) stored once in `tag_sets` and
//! referenced by id from `events.tag_set`. Calls of one product repeat a few tag sets
//! (plan, region, team): inline, the JSON was about 40% of an event row at realistic
//! data; an id takes 1-3 bytes. A tag set unique to one call (a session id as a tag)
//! costs its JSON plus a 64-bit hash in an index, not a second copy of the JSON.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The SQL expression of an `events` row's tags as JSON text (NULL without tags).
pub const TAGS_OF_ROW: &str = "(SELECT tags FROM tag_sets WHERE tag_sets.id = tag_set)";

/// Ids of tag sets the writer met lately. Bounded: with a tag unique to each call the
/// map would otherwise grow by a string per event; past the bound it starts over and
/// misses are looked up by hash.
#[derive(Default)]
pub struct TagSetCache {
    ids: HashMap<Box<str>, i64, foldhash::fast::RandomState>,
}

const CACHE_LIMIT: usize = 65_536;

/// Garbage collection of tag sets no call references runs when retention prunes and
/// the table holds more than this many sets: below it, orphans cost at most a few MB
/// and the collection's scan of every event is not worth it.
const COLLECT_ABOVE: i64 = 100_000;

/// A stable 64-bit hash of a tag set's JSON (stored in the file, so not a hasher whose
/// output may change between builds).
fn hash(tags: &str) -> i64 {
    let digest = Sha256::digest(tags.as_bytes());
    i64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// The id of the tag set `tags` (canonical JSON: keys sorted), added if new.
pub fn intern(conn: &Connection, cache: &mut TagSetCache, tags: &str) -> rusqlite::Result<i64> {
    if let Some(id) = cache.ids.get(tags) {
        return Ok(*id);
    }
    let h = hash(tags);
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM tag_sets WHERE hash = ?1 AND tags = ?2")?
        .query_row(params![h, tags], |r| r.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            conn.prepare_cached("INSERT INTO tag_sets (hash, tags) VALUES (?1, ?2)")?
                .execute(params![h, tags])?;
            conn.last_insert_rowid()
        }
    };
    if cache.ids.len() >= CACHE_LIMIT {
        cache.ids.clear();
    }
    cache.ids.insert(tags.into(), id);
    Ok(id)
}

/// After a prune: drop tag sets no call references, when there are enough of them for
/// orphans to matter (`COLLECT_ABOVE`).
pub fn collect_after_prune(conn: &Connection) -> rusqlite::Result<usize> {
    collect_unreferenced(conn, COLLECT_ABOVE)
}

/// Delete the tag sets no call references, if there are more than `above` sets.
fn collect_unreferenced(conn: &Connection, above: i64) -> rusqlite::Result<usize> {
    let sets: i64 = conn.query_row("SELECT COUNT(*) FROM tag_sets", [], |r| r.get(0))?;
    if sets <= above {
        return Ok(0);
    }
    // One scan of the events' tag sets.
    conn.execute(
        "DELETE FROM tag_sets WHERE id NOT IN (SELECT tag_set FROM events WHERE tag_set IS NOT NULL)",
        [],
    )
}

/// The condition on an `events` row that one of its tag values is `?{param}`.
pub fn has_value(param: usize) -> String {
    format!(
        "tag_set IN (SELECT t.id FROM tag_sets t, json_each(t.tags) j WHERE j.value = ?{param})"
    )
}

/// After an erasure deleted the calls holding `value` as a tag value: delete every tag
/// set holding it that no call references any more, so the value leaves the file (a set
/// another workspace's calls still use stays theirs).
pub fn forget_value(conn: &Connection, value: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM tag_sets WHERE id IN
             (SELECT t.id FROM tag_sets t, json_each(t.tags) j WHERE j.value = ?1)
           AND id NOT IN (SELECT tag_set FROM events WHERE tag_set IS NOT NULL)",
        [value],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, 0).unwrap();
        conn
    }

    #[test]
    fn one_row_per_distinct_tag_set_and_the_same_id_after_the_cache_starts_over() {
        let conn = store();
        let mut cache = TagSetCache::default();
        let a = intern(&conn, &mut cache, r#"{"plan":"free"}"#).unwrap();
        let b = intern(&conn, &mut cache, r#"{"plan":"pro"}"#).unwrap();
        assert_ne!(a, b);
        assert_eq!(intern(&conn, &mut cache, r#"{"plan":"free"}"#).unwrap(), a);
        let mut fresh = TagSetCache::default();
        assert_eq!(intern(&conn, &mut fresh, r#"{"plan":"pro"}"#).unwrap(), b);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM tag_sets", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn the_cache_stays_bounded_with_a_tag_unique_to_each_call() {
        let conn = store();
        let mut cache = TagSetCache::default();
        for i in 0..(CACHE_LIMIT + 10) {
            intern(&conn, &mut cache, &format!(r#"{{"session":"s{i}"}}"#)).unwrap();
        }
        assert!(cache.ids.len() <= CACHE_LIMIT);
        let again = intern(&conn, &mut cache, r#"{"session":"s3"}"#).unwrap();
        assert_eq!(
            again, 4,
            "the fourth set keeps its id after the cache started over"
        );
    }

    #[test]
    fn a_forgotten_value_leaves_only_the_sets_calls_still_use() {
        let conn = store();
        let mut cache = TagSetCache::default();
        let gone = intern(&conn, &mut cache, r#"{"customer":"bob@example.com"}"#).unwrap();
        let kept = intern(
            &conn,
            &mut cache,
            r#"{"customer":"bob@example.com","x":"1"}"#,
        )
        .unwrap();
        let other = intern(&conn, &mut cache, r#"{"customer":"ann@example.com"}"#).unwrap();
        // One call (of another workspace, say) still uses `kept`.
        call_with(&conn, kept);
        assert_eq!(forget_value(&conn, "bob@example.com").unwrap(), 1);
        assert_eq!(set_ids(&conn), vec![kept, other]);
        assert!(gone < kept);
    }

    #[test]
    fn collecting_keeps_exactly_the_sets_calls_use_and_only_past_the_bound() {
        let conn = store();
        let mut cache = TagSetCache::default();
        let ids: Vec<i64> = (0..4)
            .map(|i| intern(&conn, &mut cache, &format!(r#"{{"s":"{i}"}}"#)).unwrap())
            .collect();
        call_with(&conn, ids[1]);
        call_with(&conn, ids[3]);
        assert_eq!(collect_unreferenced(&conn, 4).unwrap(), 0, "at the bound");
        assert_eq!(collect_unreferenced(&conn, 3).unwrap(), 2);
        assert_eq!(set_ids(&conn), vec![ids[1], ids[3]]);
    }

    /// A stored call whose tags are set `tag_set`.
    fn call_with(conn: &Connection, tag_set: i64) {
        conn.execute(
            "INSERT INTO events (workspace_id, external_request_id, idless, ts, received_at,
                 attempt, attempt_mask, attempts, provider, model, endpoint, input_tokens,
                 cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, image_count,
                 status, data_mode, environment, operation, service_tier, usage_missing, tag_set)
             VALUES (1, 'c', 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?1)",
            [tag_set],
        )
        .unwrap();
    }

    fn set_ids(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT id FROM tag_sets ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }
}
