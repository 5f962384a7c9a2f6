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

/// Calls added since the last merge that the index holds before merging them into the
/// sorted part: at least this many, else an eighth of the sorted part (so merging costs
/// a constant per call, amortized).
const MERGE_AFTER: usize = 1 << 16;

/// Row ids by call hash. Owned by the writer (the only one who adds to it) and read by
/// lookups of one call (`/v1/events?externalRequestId=`).
///
/// Most calls sit in two sorted arrays (8 bytes a call); the calls of the latest
/// commits in a hash map until there are enough to merge. Why: a hash map alone took
/// 17-34 bytes a call (its slots grow by doubling), about 300 MB at 10M calls. The
/// arrays keep 48 bits of each hash (the top 16 are the prefix table's, the low 32 are
/// stored): a hash is only a candidate anyway, and at 10M calls two calls share 48 bits
/// about once in the whole index (a lookup reads one extra row per 28 million).
#[derive(Default)]
pub struct CallIndex {
    hasher: Hasher,
    /// The low 32 bits of the sorted short keys (`short`) and, at the same position, the
    /// first row stored under each.
    keys: Vec<u32>,
    rows: Vec<u32>,
    /// Where the keys starting with each 16-bit prefix start in `keys` (and, last, the
    /// end): a lookup binary-searches only its prefix's few keys, not all of them (the
    /// whole search missed the cache a dozen times per call).
    starts: Vec<u32>,
    /// The first row under keys added since the last merge (and under any key whose
    /// row id does not fit 32 bits), by the whole key.
    recent: HashMap<u64, i64, Hasher>,
    /// Further rows under a whole key whose short key another id already has (a 48-bit
    /// collision: in practice nearly empty).
    more: HashMap<u64, Vec<i64>, Hasher>,
}

impl CallIndex {
    /// Index every stored call `tx` sees (a transaction the caller holds).
    pub fn scan(tx: &Connection) -> rusqlite::Result<CallIndex> {
        let mut index = CallIndex::default();
        let mut all: Vec<(u64, i64)> = Vec::new();
        let mut stmt = tx.prepare("SELECT id, workspace_id, external_request_id FROM events")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = index.key(r.get(1)?, r.get_ref(2)?.as_str()?);
            all.push((key, r.get::<_, i64>(0)?));
        }
        // Rows come in id order, and a stable sort keeps it: the first row of a key is
        // its oldest, as `insert` in id order would have kept it.
        all.sort_by_key(|(key, _)| short(*key));
        index.merge(all);
        Ok(index)
    }

    pub fn key(&self, workspace: WorkspaceId, external_id: &str) -> u64 {
        self.hasher.hash_one((workspace, external_id))
    }

    pub fn len(&self) -> usize {
        self.keys.len() + self.recent.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    /// About how many bytes the index takes on the heap (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        4 * self.keys.capacity()
            + 4 * self.rows.capacity()
            + 17 * self.recent.capacity()
            + 4 * self.starts.capacity()
    }

    pub fn insert(&mut self, key: u64, row: i64) {
        if self.first(key).is_some() {
            self.more.entry(key).or_default().push(row);
            return;
        }
        self.recent.insert(key, row);
        if self.recent.len() > MERGE_AFTER.max(self.keys.len() / 8) {
            let mut recent: Vec<(u64, i64)> = self.recent.drain().collect();
            // By row too: a map drains in no fixed order, and of two keys sharing their
            // short key the older row must be the one the arrays keep (as `scan` does).
            recent.sort_unstable_by_key(|(key, row)| (short(*key), *row));
            self.merge(recent);
        }
    }

    /// The sorted arrays' entries in order, as (short key, row).
    fn sorted(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let prefixes = self.starts.len().saturating_sub(1);
        (0..prefixes).flat_map(move |prefix| {
            let (from, to) = (
                self.starts[prefix] as usize,
                self.starts[prefix + 1] as usize,
            );
            (from..to).map(move |i| {
                (
                    (prefix as u64) << 32 | u64::from(self.keys[i]),
                    self.rows[i],
                )
            })
        })
    }

    /// Merge `added` (whole keys sorted by short key, no short key already indexed
    /// unless it repeats within `added`) into the sorted arrays; a repeated short key's
    /// later rows go to `more` under their whole key, and a row id past 32 bits stays in
    /// `recent`.
    fn merge(&mut self, added: Vec<(u64, i64)>) {
        let mut merged = Sorted::with_capacity(self.keys.len() + added.len());
        let mut old = self.sorted().peekable();
        let mut more = Vec::new();
        let mut recent = Vec::new();
        for (key, row) in added {
            let short_key = short(key);
            while let Some((k, r)) = old.next_if(|(k, _)| *k < short_key) {
                merged.push(k, r);
            }
            let taken =
                merged.last == Some(short_key) || old.peek().map(|(k, _)| *k) == Some(short_key);
            if taken {
                more.push((key, row));
            } else if let Ok(small) = u32::try_from(row) {
                merged.push(short_key, small);
            } else {
                recent.push((key, row));
            }
        }
        for (short_key, row) in old {
            merged.push(short_key, row);
        }
        for (key, row) in more {
            self.more.entry(key).or_default().push(row);
        }
        self.recent.extend(recent);
        (self.keys, self.rows, self.starts) = merged.finish();
    }

    /// The first row stored under `key`.
    fn first(&self, key: u64) -> Option<i64> {
        if let Some(row) = self.recent.get(&key) {
            return Some(*row);
        }
        let prefix = (key >> PREFIX_SHIFT) as usize;
        let (from, to) = (*self.starts.get(prefix)?, *self.starts.get(prefix + 1)?);
        let (from, to) = (from as usize, to as usize);
        let i = from + self.keys[from..to].binary_search(&(key as u32)).ok()?;
        Some(i64::from(self.rows[i]))
    }

    /// The rows that may hold the call with this key: compare their stored ids.
    pub fn candidates(&self, key: u64) -> impl Iterator<Item = i64> + '_ {
        let more = self.more.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        self.first(key).into_iter().chain(more.iter().copied())
    }
}

/// Keys are grouped by their top 16 bits.
const PREFIX_SHIFT: u32 = 48;

/// The 48 bits of a key the sorted arrays keep: its top 16 bits (the prefix) above its
/// low 32 (the stored part).
fn short(key: u64) -> u64 {
    (key >> PREFIX_SHIFT) << 32 | (key & 0xffff_ffff)
}

/// The sorted arrays being built from entries pushed in short-key order, with their
/// prefix table (for each 16-bit prefix, the position of its first entry, then the end).
struct Sorted {
    keys: Vec<u32>,
    rows: Vec<u32>,
    starts: Vec<u32>,
    last: Option<u64>,
}

impl Sorted {
    fn with_capacity(n: usize) -> Sorted {
        Sorted {
            keys: Vec::with_capacity(n),
            rows: Vec::with_capacity(n),
            starts: Vec::with_capacity((1 << 16) + 1),
            last: None,
        }
    }

    fn position(&self) -> u32 {
        u32::try_from(self.keys.len()).expect("under 4 billion calls")
    }

    fn push(&mut self, short_key: u64, row: u32) {
        let prefix = (short_key >> 32) as usize;
        while self.starts.len() <= prefix {
            self.starts.push(self.position());
        }
        self.keys.push(short_key as u32);
        self.rows.push(row);
        self.last = Some(short_key);
    }

    fn finish(mut self) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        while self.starts.len() <= 1 << 16 {
            self.starts.push(self.position());
        }
        (self.keys, self.rows, self.starts)
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
    fn merged_and_recent_calls_are_found_alike() {
        let mut index = CallIndex::default();
        // Enough calls for several merges, added in a scrambled key order.
        let n = (MERGE_AFTER * 3) as u64;
        for i in 0..n {
            index.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i as i64 + 1);
        }
        assert!(index.keys.len() > MERGE_AFTER && !index.recent.is_empty());
        for i in [0, 1, n / 2, n - 1] {
            let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert_eq!(
                index.candidates(key).collect::<Vec<_>>(),
                vec![i as i64 + 1]
            );
        }
        assert_eq!(index.candidates(12345).count(), 0);
        // A collision with a merged key keeps both rows, the first one first.
        let short_key = index.sorted().nth(10).unwrap().0;
        let merged = (short_key >> 32) << PREFIX_SHIFT | (short_key & 0xffff_ffff);
        let row = index.candidates(merged).next().unwrap();
        index.insert(merged, 999_999_999);
        assert_eq!(
            index.candidates(merged).collect::<Vec<_>>(),
            vec![row, 999_999_999]
        );
        assert_eq!(index.len(), n as usize + 1);
        // A row id past 32 bits is kept whole.
        index.insert(77, i64::from(u32::MAX) + 5);
        assert_eq!(
            index.candidates(77).collect::<Vec<_>>(),
            vec![i64::from(u32::MAX) + 5]
        );
    }

    /// Two whole keys that share the 48 bits the arrays keep are both candidates for
    /// the second, and the first finds only its own row, merged or not.
    #[test]
    fn keys_sharing_their_short_key_keep_both_rows() {
        let mut index = CallIndex::default();
        let (a, b) = (0xABCD_0000_1234_5678u64, 0xABCD_FFFF_1234_5678u64);
        assert_eq!(short(a), short(b));
        index.insert(a, 10);
        index.insert(b, 20);
        let n = MERGE_AFTER as u64 + 1;
        for i in 0..n {
            index.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, 100 + i as i64);
        }
        assert!(index.recent.len() < n as usize, "merged");
        assert_eq!(index.candidates(a).collect::<Vec<_>>(), vec![10]);
        assert_eq!(index.candidates(b).collect::<Vec<_>>(), vec![10, 20]);
        assert_eq!(index.len(), n as usize + 2);
        // The same pair arriving in one scan's merge.
        let mut fresh = CallIndex::default();
        fresh.merge(vec![(a, 1), (b, 2)]);
        assert_eq!(fresh.candidates(a).collect::<Vec<_>>(), vec![1]);
        assert_eq!(fresh.candidates(b).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn the_key_names_the_workspace_and_the_id() {
        let index = CallIndex::default();
        assert_eq!(index.key(1, "a"), index.key(1, "a"));
        assert_ne!(index.key(1, "a"), index.key(2, "a"));
        assert_ne!(index.key(1, "a"), index.key(1, "b"));
    }
}
