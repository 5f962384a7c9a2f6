//! Which `events` rows hold each tenant's and each user's calls, and how many rows each
//! hour of a workspace holds, kept beside the rollups by the fold: a raw read filtered
//! by a tenant or a user fetches the few rows its list names instead of every row of its
//! window, and a raw read of most of the table scans it instead of walking the time
//! index (`access.rs` chooses).
//!
//! At 10M realistic calls a month (200,000 users, 5,000 tenants), a month of one user's
//! calls by hour walked 10M rows through the time index (4.4 s in SQLite alone); the
//! user's list names 745 rows (3 ms).
//!
//! Invariant: every stored row whose tenant (user) is X is in X's list. A list may also
//! name rows that no longer hold X (a replaced attempt that changed it, a row retention
//! deleted): a read re-applies every filter to the rows it fetches, so a superset is
//! exact. Rows are added when the fold adds a call and never taken out; a rebuild (at
//! start, after retention or an erasure) starts the lists afresh.

use super::rollup::{Contribution, HOUR_MS};
use std::collections::{BTreeMap, HashMap};

/// Which dimension a list is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Of {
    Tenant = 0,
    User = 1,
}

/// (workspace, dims id of the tenant or user, `Of` as u8).
type Key = (i64, u32, u8);

/// One value's rows in the order they were added, each as the zigzag LEB128 difference
/// from the one before (rows are added nearly in order, so most take one to three
/// bytes; a replaced attempt's older row takes a negative difference).
#[derive(Debug, Default)]
struct List {
    deltas: Vec<u8>,
    last: i64,
    len: u32,
}

impl List {
    fn push(&mut self, row: i64) {
        // The same row again (a replaced attempt that kept its tenant or user).
        if self.len > 0 && row == self.last {
            return;
        }
        let delta = row.wrapping_sub(self.last);
        let mut zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                self.deltas.push(byte);
                break;
            }
            self.deltas.push(byte | 0x80);
        }
        self.last = row;
        self.len += 1;
    }

    fn rows(&self, out: &mut Vec<i64>) {
        let (mut row, mut zigzag, mut shift) = (0i64, 0u64, 0);
        for &byte in &self.deltas {
            zigzag |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
                row = row.wrapping_add(delta);
                out.push(row);
                (zigzag, shift) = (0, 0);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct RowLists {
    lists: HashMap<Key, List, super::rollup::Hasher>,
    /// Rows per (workspace, hour start): how many rows a window's raw read would walk.
    hours: BTreeMap<(i64, i64), i64>,
    /// Rows in the table, every workspace.
    rows: i64,
}

impl RowLists {
    /// Follow one call added (`sign` 1) or taken away (-1, a replaced attempt's old
    /// values: its row stays in the lists, see the invariant).
    pub fn apply(&mut self, c: &Contribution, sign: i64) {
        if c.row == 0 {
            return;
        }
        let hour = c.ts.div_euclid(HOUR_MS).saturating_mul(HOUR_MS);
        let in_hour = self.hours.entry((c.workspace, hour)).or_insert(0);
        *in_hour += sign;
        if *in_hour <= 0 {
            self.hours.remove(&(c.workspace, hour));
        }
        self.rows += sign;
        if sign < 0 {
            return;
        }
        for (of, id) in [(Of::Tenant, c.tenant), (Of::User, c.user)] {
            // 0: the call has none (dims ids start at 1).
            if let Ok(id @ 1..) = u32::try_from(id) {
                self.lists
                    .entry((c.workspace, id, of as u8))
                    .or_default()
                    .push(c.row);
            }
        }
    }

    /// How many rows the lists of `ids` name (with rows named twice counted twice).
    pub fn listed(&self, workspace: i64, of: Of, ids: &[u32]) -> u64 {
        ids.iter()
            .filter_map(|id| self.lists.get(&(workspace, *id, of as u8)))
            .map(|l| u64::from(l.len))
            .sum()
    }

    /// The rows the lists of `ids` name, ascending, each once.
    pub fn rows_of(&self, workspace: i64, of: Of, ids: &[u32]) -> Vec<i64> {
        let mut rows = Vec::with_capacity(self.listed(workspace, of, ids) as usize);
        for id in ids {
            if let Some(list) = self.lists.get(&(workspace, *id, of as u8)) {
                list.rows(&mut rows);
            }
        }
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// About how many rows of `workspace` are in [from, to) (whole hours: the hours the
    /// window touches).
    pub fn in_window(&self, workspace: i64, from: i64, to: i64) -> u64 {
        if from >= to {
            return 0;
        }
        // Saturating: an open window starts at i64::MIN.
        let first = from.div_euclid(HOUR_MS).saturating_mul(HOUR_MS);
        self.hours
            .range((workspace, first)..(workspace, to))
            .map(|(_, n)| *n as u64)
            .sum()
    }

    /// Rows in the table, every workspace's.
    pub fn table_rows(&self) -> u64 {
        self.rows.max(0) as u64
    }

    /// Give back the room the lists grew into (after a rebuild).
    pub fn shrink(&mut self) {
        for list in self.lists.values_mut() {
            list.deltas.shrink_to_fit();
        }
    }

    /// About how many bytes the lists take on the heap (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        // A hash map entry: its key and list, plus an eighth for the free slots.
        let entry = (std::mem::size_of::<Key>() + std::mem::size_of::<List>()) * 9 / 8;
        let hour = std::mem::size_of::<((i64, i64), i64)>() * 4 / 3;
        self.lists
            .values()
            .map(|l| entry + l.deltas.capacity())
            .sum::<usize>()
            + self.hours.len() * hour
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(row: i64, ts: i64, tenant: i64, user: i64) -> Contribution {
        Contribution {
            workspace: 1,
            ts,
            environment: 0,
            data_mode: 0,
            status: 0,
            provider: 1,
            model: 2,
            endpoint: 3,
            prompt_version: 0,
            tenant,
            user,
            attempts: 1,
            cost_nanos: Some(1),
            input: 0,
            cached: 0,
            cache_write: 0,
            output: 0,
            reasoning: 0,
            latency_ms: None,
            usage_missing: false,
            idless: false,
            tag_set: 0,
            row,
        }
    }

    #[test]
    fn a_list_names_each_row_once_in_any_order_of_arrival() {
        let mut lists = RowLists::default();
        // Rows far apart, a replaced attempt's older row, and the same row again.
        for row in [5, 300_000, 300_000, 7, 1 << 40, 2] {
            lists.apply(&call(row, 0, 10, 20), 1);
        }
        lists.apply(&call(9, 0, 11, 0), 1);
        assert_eq!(
            lists.rows_of(1, Of::User, &[20]),
            vec![2, 5, 7, 300_000, 1 << 40]
        );
        assert_eq!(
            lists.rows_of(1, Of::Tenant, &[10, 11]),
            vec![2, 5, 7, 9, 300_000, 1 << 40]
        );
        // No list for a call without a user, another workspace or an unknown id.
        assert_eq!(lists.rows_of(1, Of::User, &[0, 21]), Vec::<i64>::new());
        assert_eq!(lists.rows_of(2, Of::Tenant, &[10]), Vec::<i64>::new());
        // The repeated row directly after itself was not added again.
        assert_eq!(lists.listed(1, Of::User, &[20]), 5);
    }

    #[test]
    fn rows_are_counted_by_hour_and_a_moved_call_moves_its_count() {
        let mut lists = RowLists::default();
        let h = 1_000 * HOUR_MS;
        lists.apply(&call(1, h + 5, 1, 1), 1);
        lists.apply(&call(2, h + HOUR_MS - 1, 1, 1), 1);
        lists.apply(&call(3, h + 3 * HOUR_MS, 1, 1), 1);
        assert_eq!(lists.in_window(1, h + 10, h + 11), 2);
        assert_eq!(lists.in_window(1, h, h + 4 * HOUR_MS), 3);
        assert_eq!(lists.in_window(1, h + HOUR_MS, h + 3 * HOUR_MS), 0);
        assert_eq!(lists.in_window(2, h, h + 4 * HOUR_MS), 0);
        // A replaced attempt moved row 3 to the first hour.
        lists.apply(&call(3, h + 3 * HOUR_MS, 1, 1), -1);
        lists.apply(&call(3, h + 7, 1, 1), 1);
        assert_eq!(lists.in_window(1, h + 2 * HOUR_MS, h + 4 * HOUR_MS), 0);
        assert_eq!(lists.in_window(1, h, h + 1), 3);
        assert_eq!(lists.table_rows(), 3);
        // Pruned history (no row) is in no count.
        lists.apply(&call(0, h, 1, 1), 1);
        assert_eq!(lists.table_rows(), 3);
    }
}
