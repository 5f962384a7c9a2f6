//! The costliest calls of each day, per tenant, per endpoint, per model and of all
//! calls, kept beside the rollups by the fold: a list of calls ordered by cost (the
//! tenant page's most expensive requests, the Requests page sorted by cost) reads the
//! few rows these name instead of every call of its window (a week of one tenant at 10M
//! calls a month was a 2.3M-row scan, 1.5 s).
//!
//! A list keeps at most its kind's `capacity` calls and a floor: the highest cost it
//! ever let go (a call evicted, or turned away on arrival). Invariant: every stored
//! priced call of the list's key and day is in the list with its current cost, or costs
//! at most the floor. A call's old values leaving (a replaced attempt) take it out of its
//! list; the floor never goes down. So a read whose last row costs more than the floor
//! of every list it read is exact, and a day whose floor is not below it is read raw
//! (`read::costliest_from_lists`).

use super::rollup::{Contribution, DAY_MS};
use std::collections::BTreeMap;

/// Which calls a list ranks: all of them, or those of one tenant, endpoint or model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    All = 0,
    Tenant = 1,
    Endpoint = 2,
    Model = 3,
}

impl Kind {
    /// Calls a list of this kind keeps. All: a page of 100 and the next page's start of
    /// a day; a tenant's: the tenant page's 10 and its "more" from one day, with room for
    /// a "last 24 hours" whose first day is only partly in the window (tenants are many:
    /// at 10M realistic calls a month ~270k lists of a tenant's day in an environment and
    /// data mode hold 2.3M calls at 16; at 12, 2M, but a big tenant's 24 hours then read
    /// the older day raw, ~85 ms instead of 1.5).
    fn capacity(self) -> usize {
        match self {
            Kind::All => 128,
            Kind::Endpoint | Kind::Model => 64,
            Kind::Tenant => 16,
        }
    }
}

/// (workspace, kind, value's dims id (0 for All), day number, environment, data mode).
type Key = (i64, u8, u32, i32, u8, u8);

/// No call was let go: the list holds every priced call of its key and day.
const NO_FLOOR: i64 = i64::MIN;

#[derive(Debug)]
struct List {
    /// (cost in nano-USD, events row), costliest first.
    calls: Vec<(i64, i64)>,
    /// The highest cost let go (`NO_FLOOR`: none).
    floor: i64,
}

impl List {
    fn add(&mut self, call: (i64, i64), capacity: usize) {
        if call.0 <= self.floor {
            return;
        }
        // Full: the cheaper of the new call and the last goes (before the insert, so the
        // list never grows past its capacity).
        if self.calls.len() >= capacity {
            let last = *self.calls.last().expect("a full list");
            if call < last {
                self.floor = self.floor.max(call.0);
                return;
            }
            self.calls.pop();
            self.floor = self.floor.max(last.0);
        }
        let at = self.calls.partition_point(|c| *c > call);
        self.calls.insert(at, call);
    }

    fn remove(&mut self, call: (i64, i64)) {
        if let Ok(at) = self.calls.binary_search_by(|c| call.cmp(c)) {
            self.calls.remove(at);
        }
    }
}

/// The lists of every workspace.
#[derive(Debug, Default)]
pub struct Costliest {
    lists: BTreeMap<Key, List>,
}

/// What a read takes from the lists: candidate calls and, per day, the highest floor of
/// the lists it read (days whose lists let no call go are left out).
#[derive(Debug, Default, PartialEq)]
pub struct Candidates {
    /// (cost, events row), costliest first.
    pub calls: Vec<(i64, i64)>,
    /// (day number, highest floor), by day.
    pub floors: Vec<(i64, i64)>,
}

/// Which lists a read takes: one kind, its values' ids (one 0 for All), the days and
/// the environment and data-mode codes it admits (None: any).
pub struct Selection<'a> {
    pub workspace: i64,
    pub kind: Kind,
    pub values: &'a [u32],
    pub days: (i64, i64),
    pub environments: Option<&'a [u8]>,
    pub data_modes: Option<&'a [u8]>,
}

impl Costliest {
    /// Add a stored call (`sign` 1) to its lists, or take its old values out (-1).
    /// Unpriced calls and contributions without a row (pruned history) are in none.
    pub fn apply(&mut self, c: &Contribution, sign: i64) {
        let Some(cost) = c.cost_nanos else { return };
        if c.row == 0 {
            return;
        }
        let day = c.ts.div_euclid(DAY_MS);
        let (Ok(day), Ok(environment), Ok(data_mode)) = (
            i32::try_from(day),
            u8::try_from(c.environment),
            u8::try_from(c.data_mode),
        ) else {
            return;
        };
        let lists = [
            (Kind::All, 0),
            (Kind::Tenant, c.tenant),
            (Kind::Endpoint, c.endpoint),
            (Kind::Model, c.model),
        ];
        for (kind, value) in lists {
            // A missing tenant (0) has no list of its own; ids past u32 none either.
            let Ok(value) = u32::try_from(value) else {
                continue;
            };
            if kind != Kind::All && value == 0 {
                continue;
            }
            let key = (c.workspace, kind as u8, value, day, environment, data_mode);
            if sign > 0 {
                self.lists
                    .entry(key)
                    .or_insert_with(|| List {
                        calls: Vec::new(),
                        floor: NO_FLOOR,
                    })
                    .add((cost, c.row), kind.capacity());
            } else if let Some(list) = self.lists.get_mut(&key) {
                list.remove((cost, c.row));
                if list.calls.is_empty() && list.floor == NO_FLOOR {
                    self.lists.remove(&key);
                }
            }
        }
    }

    /// The candidates of the lists `s` names.
    pub fn candidates(&self, s: &Selection) -> Candidates {
        let mut found = Candidates::default();
        let clamp = |day: i64| day.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        let (first, last) = (clamp(s.days.0), clamp(s.days.1));
        let mut floors: BTreeMap<i64, i64> = BTreeMap::new();
        for &value in s.values {
            let from = (s.workspace, s.kind as u8, value, first, 0, 0);
            let to = (s.workspace, s.kind as u8, value, last, u8::MAX, u8::MAX);
            for (&(_, _, _, day, environment, data_mode), list) in self.lists.range(from..=to) {
                let admits =
                    |codes: Option<&[u8]>, code: u8| codes.is_none_or(|c| c.contains(&code));
                if !admits(s.environments, environment) || !admits(s.data_modes, data_mode) {
                    continue;
                }
                found.calls.extend_from_slice(&list.calls);
                if list.floor != NO_FLOOR {
                    let floor = floors.entry(day as i64).or_insert(NO_FLOOR);
                    *floor = (*floor).max(list.floor);
                }
            }
        }
        found.calls.sort_unstable_by(|a, b| b.cmp(a));
        found.floors = floors.into_iter().collect();
        found
    }

    /// Give back the room the lists grew into (after a rebuild: most lists are of days
    /// that change no more, and a list of one call would keep room for four).
    pub fn shrink(&mut self) {
        for list in self.lists.values_mut() {
            list.calls.shrink_to_fit();
        }
    }

    /// About how many bytes the lists take on the heap (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        // A B-tree entry: its key and list, plus about a third for the nodes.
        let entry = (std::mem::size_of::<Key>() + std::mem::size_of::<List>()) * 4 / 3;
        self.lists
            .values()
            .map(|l| entry + l.calls.capacity() * std::mem::size_of::<(i64, i64)>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn call(row: i64, tenant: i64, ts: i64, cost: i64) -> Contribution {
        Contribution {
            workspace: 1,
            ts,
            tenant,
            endpoint: 7,
            model: 9,
            cost_nanos: Some(cost),
            row,
            ..Default::default()
        }
    }

    fn tenant(t: u32, days: (i64, i64)) -> Selection<'static> {
        let values: &'static [u32] = Box::leak(Box::new([t]));
        Selection {
            workspace: 1,
            kind: Kind::Tenant,
            values,
            days,
            environments: None,
            data_modes: None,
        }
    }

    /// Random calls added, moved (a replaced attempt: old values out, new in) and
    /// repriced: every live call of a tenant's day is a candidate with its cost, or costs
    /// at most that day's floor; and a day whose list never overflowed has no floor.
    #[test]
    fn every_live_call_is_a_candidate_or_under_its_days_floor() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut lists = Costliest::default();
        let mut live: Vec<Contribution> = Vec::new();
        for row in 1..4000 {
            if !live.is_empty() && rng.random_bool(0.2) {
                let i = rng.random_range(0..live.len());
                let old = live[i];
                lists.apply(&old, -1);
                let new = call(
                    old.row,
                    rng.random_range(1..4),
                    rng.random_range(0..3 * DAY_MS),
                    rng.random_range(0..1000),
                );
                lists.apply(&new, 1);
                live[i] = new;
            }
            let c = call(
                row,
                rng.random_range(1..4),
                rng.random_range(0..3 * DAY_MS),
                rng.random_range(0..1000),
            );
            lists.apply(&c, 1);
            live.push(c);
        }
        let mut overflowed = 0;
        for t in 1..4u32 {
            for day in 0..3 {
                let found = lists.candidates(&tenant(t, (day, day)));
                let floor = found.floors.first().map_or(NO_FLOOR, |f| f.1);
                overflowed += (floor != NO_FLOOR) as usize;
                let of_day = live
                    .iter()
                    .filter(|c| c.tenant == t as i64 && c.ts.div_euclid(DAY_MS) == day);
                for c in of_day {
                    let cost = c.cost_nanos.unwrap();
                    assert!(
                        found.calls.contains(&(cost, c.row)) || cost <= floor,
                        "row {} cost {cost} lost (floor {floor})",
                        c.row
                    );
                }
                // Only live calls, each with its current cost.
                for (cost, row) in &found.calls {
                    assert!(live.iter().any(|c| c.row == *row
                        && c.cost_nanos == Some(*cost)
                        && c.tenant == t as i64));
                }
                assert!(found.calls.len() <= Kind::Tenant.capacity());
            }
        }
        assert_eq!(
            overflowed, 9,
            "each tenant-day holds more calls than a list"
        );
    }

    /// A list holds its calls costliest first and, under capacity, every one of them
    /// with no floor; the All list and the model's list see the same calls.
    #[test]
    fn a_small_day_is_held_whole_and_in_order() {
        let mut lists = Costliest::default();
        for (row, cost) in [(1, 50), (2, 900), (3, 50), (4, 7)] {
            lists.apply(&call(row, 2, DAY_MS + row, cost), 1);
        }
        let found = lists.candidates(&tenant(2, (0, 5)));
        assert_eq!(found.calls, vec![(900, 2), (50, 3), (50, 1), (7, 4)]);
        assert_eq!(found.floors, vec![]);
        let all = lists.candidates(&Selection {
            kind: Kind::All,
            values: &[0],
            ..tenant(0, (1, 1))
        });
        assert_eq!(all, found);
        let other_day = lists.candidates(&Selection {
            kind: Kind::Model,
            values: &[9],
            ..tenant(0, (2, 9))
        });
        assert_eq!(other_day, Candidates::default());
        // Out of its environment's lists, nothing.
        let staging = lists.candidates(&Selection {
            environments: Some(&[1]),
            ..tenant(2, (0, 5))
        });
        assert_eq!(staging.calls, vec![]);
    }
}
