//! Which event row holds each logical call: an in-memory index from a 64-bit hash of
//! (workspace, externalRequestId) to row ids, rebuilt from the events at open.
//!
//! Why not a UNIQUE index in the file: external ids are random strings, so each insert
//! lands on a random page of a text B-tree, and every commit rewrote thousands of those
//! pages into the WAL. That index cost about half of the writer's time at realistic
//! cardinality (ARCHITECTURE.md has the numbers). A hash is only a candidate: the row's
//! stored id is compared before it counts as the same call, so a collision costs one
//! extra row read, never a wrong merge.

use crate::store::WorkspaceId;
use rusqlite::Connection;
use std::collections::HashMap;
use std::hash::BuildHasher;

type Hasher = foldhash::fast::RandomState;

/// Row ids by call hash. Owned by the writer (the only one who adds to it) and read by
/// lookups of one call (`/v1/events?externalRequestId=`).
#[derive(Default)]
pub struct CallIndex {
    hasher: Hasher,
    /// The first row stored under each hash.
    first: HashMap<u64, i64, Hasher>,
    /// Further rows under a hash that another id already has (a 64-bit collision: in
    /// practice empty).
    more: HashMap<u64, Vec<i64>, Hasher>,
}

impl CallIndex {
    /// Index every stored call `tx` sees (a transaction the caller holds).
    pub fn scan(tx: &Connection) -> rusqlite::Result<CallIndex> {
        let mut index = CallIndex::default();
        let mut stmt = tx.prepare("SELECT id, workspace_id, external_request_id FROM events")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = index.key(r.get(1)?, r.get_ref(2)?.as_str()?);
            index.insert(key, r.get(0)?);
        }
        Ok(index)
    }

    pub fn key(&self, workspace: WorkspaceId, external_id: &str) -> u64 {
        self.hasher.hash_one((workspace, external_id))
    }

    pub fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    pub fn insert(&mut self, key: u64, row: i64) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(row)
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(row);
            }
        }
    }

    /// The rows that may hold the call with this key: compare their stored ids.
    pub fn candidates(&self, key: u64) -> impl Iterator<Item = i64> + '_ {
        let more = self.more.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        self.first
            .get(&key)
            .copied()
            .into_iter()
            .chain(more.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_keys_keep_every_row_as_a_candidate() {
        let mut index = CallIndex::default();
        index.insert(7, 1);
        index.insert(7, 2);
        index.insert(8, 3);
        assert_eq!(index.candidates(7).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(index.candidates(8).collect::<Vec<_>>(), vec![3]);
        assert_eq!(index.candidates(9).count(), 0);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn the_key_names_the_workspace_and_the_id() {
        let index = CallIndex::default();
        assert_eq!(index.key(1, "a"), index.key(1, "a"));
        assert_ne!(index.key(1, "a"), index.key(2, "a"));
        assert_ne!(index.key(1, "a"), index.key(1, "b"));
    }
}
