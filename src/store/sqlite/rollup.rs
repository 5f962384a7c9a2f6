//! Rollups: per-hour and per-day sums of events by fixed dimension sets, kept in memory
//! (derived data: rebuilt from the events at open, never written to the file). The writer
//! records each commit's changes (`Changes`: every call's contribution), checks before
//! the commit that no total can leave i64, and hands them with the commit's sequence
//! number to a fold thread, which adds them to the totals' cells; a read can tell which
//! commits the totals include.

use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex, RwLock, RwLockReadGuard, Weak};

/// Why a commit's writes failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    /// A total would leave i64 (a stored total never silently wraps or turns into a
    /// float); the measure is named.
    #[error("the {0} total of a rollup cell would overflow")]
    Overflow(&'static str),
    /// The fold thread did not get commit N (not expected: the writer hands every one).
    #[error("commit {0} never reached the rollups")]
    Missing(i64),
}

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Hours of hourly user cells: a "last 24 hours" window and the one before it (whose
/// first partial hour is its cell minus raw minutes, so that cell too) are read from
/// cells whenever the newest event is within the last hour.
const RECENT_HOURS: i64 = 50;

/// The hours `tenant_detail` keeps: a week's chart by hour of a tenant's endpoints (the
/// Overview and the tenant page of a tenant for 7 days) reads cells, not a week of raw
/// events (~2 s at 10M calls a month). At that size an hour holds ~8k of its cells:
/// ~1M more than 50 hours, ~25 MB.
const TENANT_DETAIL_HOURS: i64 = 7 * 24 + 2;

/// A family of rollups: the dimension columns it keeps (names of `events` columns), the
/// grains it is kept at, and how many recent hours its hourly cells cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub dims: &'static [&'static str],
    pub grains: &'static [Grain],
    /// Hourly cells only for the newest this many hours of a workspace (counted back
    /// from the hour of its newest event); None = every hour.
    pub recent_hours: Option<i64>,
    /// Whether retention's pruned history (which keeps no tags) is added to it.
    pub pruned_history: bool,
}

/// Model/endpoint/version questions by hour and day; tenants and users without the
/// endpoint, tenants by hour and day, users by day and by hour for the last two days
/// only: at realistic cardinality (200,000 users) an hourly user cell holds about one
/// event, so hourly user cells for all history would cost memory per event, while the
/// last day's windows (the on-call view) are the sub-day windows read most. Tenants are
/// fewer (5,000, skewed): packed, their hours cost a few bytes per event and spare every
/// tenant window's edges a raw read (at 3M calls, a 7-day top list took 134 ms of CPU
/// with raw edges and 28 ms on whole days); tags by tag set, by hour and day; and a
/// tenant's endpoints, models and prompt versions (the tenant page, every view filtered
/// by a tenant) by day and by hour for the last week. Users are kept
/// under their tenant (a user belongs to one tenant in practice, so that costs the
/// tenant's id, ~2 bytes a cell, not more cells): a tenant's users are one run of each
/// bucket's sorted cells (`Cells::each_in_runs`). Questions these cannot answer exactly
/// (a user's endpoints, older partial days of users at a window's edges) read raw
/// events.
pub const FAMILIES: [Family; 5] = [
    Family {
        name: "main",
        dims: &[
            "environment",
            "data_mode",
            "status",
            "provider",
            "model",
            "endpoint",
            "prompt_version",
        ],
        grains: &[Grain::Hour, Grain::Day],
        recent_hours: None,
        pruned_history: true,
    },
    Family {
        name: "tenant",
        dims: &["environment", "data_mode", "tenant"],
        grains: &[Grain::Hour, Grain::Day],
        recent_hours: None,
        pruned_history: true,
    },
    Family {
        name: "user",
        dims: &["environment", "data_mode", "tenant", "user"],
        grains: &[Grain::Hour, Grain::Day],
        recent_hours: Some(RECENT_HOURS),
        pruned_history: true,
    },
    // Breakdowns and filters by tag: a cell per tag set (`tag_sets.rs`), named by the
    // read. Only while a workspace has at most `MAX_TAG_SETS` sets (`Totals::admits`).
    Family {
        name: "tag",
        dims: &["environment", "data_mode", "tag_set"],
        grains: &[Grain::Hour, Grain::Day],
        recent_hours: None,
        pruned_history: false,
    },
    // At 10M realistic calls over 30 days, ~94k cells a day (2.8M in all): a tenant
    // uses few of the endpoints and models, so its cells per day stay far below its
    // calls. By the main family's dimensions plus the tenant, behind environment and
    // data mode as in the other families.
    Family {
        name: "tenant_detail",
        dims: &[
            "environment",
            "data_mode",
            "tenant",
            "status",
            "provider",
            "model",
            "endpoint",
            "prompt_version",
        ],
        grains: &[Grain::Hour, Grain::Day],
        recent_hours: Some(TENANT_DETAIL_HOURS),
        pruned_history: true,
    },
];

/// The tag family's index in `FAMILIES`.
pub const TAG_FAMILY: usize = 3;

/// Tag sets a workspace's tag family holds at most: beyond, a tag takes many values
/// (a session id as a tag) and cells per set would cost memory per call, so the
/// workspace's tag cells are dropped and its tag reads read raw events. 2,048 sets
/// active every hour of 30 days are ~1.5M hourly cells (~37 MB); realistic tags (plan,
/// region, team) make tens.
pub const MAX_TAG_SETS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grain {
    Hour = 0,
    Day = 1,
}

impl Grain {
    pub fn millis(self) -> i64 {
        match self {
            Grain::Hour => HOUR_MS,
            Grain::Day => DAY_MS,
        }
    }
}

/// The measures of a rollup cell, in order; each is a plain sum.
pub const MEASURES: [&str; N_MEASURES] = [
    "requests",
    "attempts",
    "cost_nanos",
    "priced",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "latency_sum",
    "latency_count",
    "errors",
    "usage_missing",
    "idless",
];

pub const N_MEASURES: usize = 14;

/// The same measures computed from raw `events` rows, in the same order.
pub const RAW_MEASURES: [&str; N_MEASURES] = [
    "COUNT(*)",
    "SUM(attempts)",
    "COALESCE(SUM(cost_nanos), 0)",
    "COUNT(cost_nanos)",
    "SUM(input_tokens)",
    "SUM(cached_tokens)",
    "SUM(cache_write_tokens)",
    "SUM(output_tokens)",
    "SUM(reasoning_tokens)",
    "COALESCE(SUM(latency_ms), 0)",
    "COUNT(latency_ms)",
    "SUM(status != 0)",
    "SUM(usage_missing)",
    "SUM(idless)",
];

/// One cell's sums.
pub type Cell = [i64; N_MEASURES];
/// A cell's dimension ids (dims ids or codes, 0 = missing) in family order; unused
/// slots are 0.
pub type DimIds = [u32; 8];
pub(super) type Hasher = foldhash::fast::RandomState;

/// The `events` columns a call's contribution is read from, in `Contribution::from_row`
/// order (the rebuild and the writer's merge of a new attempt read the same).
pub const CONTRIBUTION_COLUMNS: &str =
    "workspace_id, ts, environment, data_mode, status, provider, model, endpoint,
     COALESCE(prompt_version, 0), COALESCE(tenant, 0), COALESCE(user, 0), attempts,
     cost_nanos, input_tokens, cached_tokens, cache_write_tokens, output_tokens,
     reasoning_tokens, latency_ms, usage_missing, idless, COALESCE(tag_set, 0), id";

/// The dimension columns of `pruned_cells` (and of the prune's GROUP BY over `events`),
/// in `Contribution` order after the workspace and the hour.
pub const PRUNED_DIMS: &str = "workspace_id, hour, environment, data_mode, status, provider,
     model, endpoint, prompt_version, tenant, user";

/// What one logical call contributes to the rollups: its dimension ids (0 = missing)
/// and its measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contribution {
    pub workspace: i64,
    pub ts: i64,
    pub environment: i64,
    pub data_mode: i64,
    pub status: i64,
    pub provider: i64,
    pub model: i64,
    pub endpoint: i64,
    pub prompt_version: i64,
    pub tenant: i64,
    pub user: i64,
    pub attempts: i64,
    pub cost_nanos: Option<i64>,
    pub input: i64,
    pub cached: i64,
    pub cache_write: i64,
    pub output: i64,
    pub reasoning: i64,
    pub latency_ms: Option<i64>,
    pub usage_missing: bool,
    pub idless: bool,
    /// The call's `tag_sets` id (0: no tags).
    pub tag_set: i64,
    /// The `events` row holding the call (0: none, as for pruned history).
    pub row: i64,
}

impl Contribution {
    /// The contribution of a row read with `CONTRIBUTION_COLUMNS` first.
    pub fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Contribution> {
        Ok(Contribution {
            workspace: r.get(0)?,
            ts: r.get(1)?,
            environment: r.get(2)?,
            data_mode: r.get(3)?,
            status: r.get(4)?,
            provider: r.get(5)?,
            model: r.get(6)?,
            endpoint: r.get(7)?,
            prompt_version: r.get(8)?,
            tenant: r.get(9)?,
            user: r.get(10)?,
            attempts: r.get(11)?,
            cost_nanos: r.get(12)?,
            input: r.get(13)?,
            cached: r.get(14)?,
            cache_write: r.get(15)?,
            output: r.get(16)?,
            reasoning: r.get(17)?,
            latency_ms: r.get(18)?,
            usage_missing: r.get(19)?,
            idless: r.get(20)?,
            tag_set: r.get(21)?,
            row: r.get(22)?,
        })
    }

    fn dim(&self, column: &str) -> i64 {
        match column {
            "environment" => self.environment,
            "data_mode" => self.data_mode,
            "status" => self.status,
            "provider" => self.provider,
            "model" => self.model,
            "endpoint" => self.endpoint,
            "prompt_version" => self.prompt_version,
            "tenant" => self.tenant,
            "user" => self.user,
            "tag_set" => self.tag_set,
            _ => 0,
        }
    }

    pub(super) fn dims(&self, family: &Family) -> Result<DimIds, WriteError> {
        let mut ids = [0u32; 8];
        for (slot, column) in ids.iter_mut().zip(family.dims) {
            *slot = u32::try_from(self.dim(column))
                .map_err(|_| WriteError::Overflow("dimension id"))?;
        }
        Ok(ids)
    }

    pub(super) fn measures(&self) -> Cell {
        [
            1,
            self.attempts,
            self.cost_nanos.unwrap_or(0),
            self.cost_nanos.is_some() as i64,
            self.input,
            self.cached,
            self.cache_write,
            self.output,
            self.reasoning,
            self.latency_ms.unwrap_or(0),
            self.latency_ms.is_some() as i64,
            (self.status != 0) as i64,
            self.usage_missing as i64,
            self.idless as i64,
        ]
    }

    fn version_key(&self) -> VersionKey {
        (
            self.workspace,
            self.endpoint,
            self.prompt_version,
            self.environment,
            self.data_mode,
        )
    }
}

/// Add `delta` times `sign` to `total`, checked: a sum that would wrap names its measure.
pub(super) fn add_cell(total: &mut Cell, delta: &Cell, sign: i64) -> Result<(), WriteError> {
    for ((t, d), name) in total.iter_mut().zip(delta).zip(MEASURES) {
        *t = d
            .checked_mul(sign)
            .and_then(|d| t.checked_add(d))
            .ok_or(WriteError::Overflow(name))?;
    }
    Ok(())
}

/// (workspace, endpoint, prompt version, environment, data mode): when each prompt
/// version was first and last seen.
pub type VersionKey = (i64, i64, i64, i64, i64);

/// (family index, grain, workspace, bucket start, dimension ids).
type Key = (usize, Grain, i64, i64, DimIds);

/// Per measure, the sum of the absolute values of contributions: no cell of the
/// workspace can be further from zero than what was ever added to it.
pub type Reach = [i128; N_MEASURES];

fn add_reach(reach: &mut Reach, measures: &Cell) {
    for (r, m) in reach.iter_mut().zip(measures) {
        *r = r.saturating_add(i128::from(m.unsigned_abs()));
    }
}

/// The rollup changes of one commit as the writer records them: each call's
/// contribution and sign, summed into cells later by the fold thread, and per
/// workspace how far they can move any cell (`Reach`), which decides the overflow
/// check before the commit.
#[derive(Default)]
pub struct Changes {
    calls: Vec<(Contribution, i64)>,
    reach: HashMap<i64, Reach, Hasher>,
}

impl Changes {
    /// Add (`sign` = 1) or take back (`sign` = -1) one call's contribution.
    pub fn apply(&mut self, c: &Contribution, sign: i64) {
        add_reach(self.reach.entry(c.workspace).or_default(), &c.measures());
        self.calls.push((*c, sign));
    }

    /// The changes summed per cell; checked, so a sum that would wrap names its measure.
    pub fn pending(&self) -> Result<Pending, WriteError> {
        let mut pending = Pending::default();
        for (c, sign) in &self.calls {
            pending.apply(c, *sign)?;
        }
        Ok(pending)
    }
}

/// The rollup changes of one commit summed per cell: what the exact overflow check
/// compares with the totals when a workspace's reach cannot rule an overflow out.
#[derive(Default)]
pub struct Pending {
    sums: HashMap<Key, Cell, Hasher>,
}

impl Pending {
    /// Add (`sign` = 1) or take back (`sign` = -1) one call's contribution; checked, so
    /// a sum that would wrap fails the commit instead.
    pub fn apply(&mut self, c: &Contribution, sign: i64) -> Result<(), WriteError> {
        let measures = c.measures();
        for (i, family) in FAMILIES.iter().enumerate() {
            let dims = c.dims(family)?;
            for &grain in family.grains {
                let bucket = c.ts.div_euclid(grain.millis()) * grain.millis();
                let entry = self
                    .sums
                    .entry((i, grain, c.workspace, bucket, dims))
                    .or_insert([0; N_MEASURES]);
                add_cell(entry, &measures, sign)?;
            }
        }
        Ok(())
    }
}

/// One family at one grain: per (workspace, bucket start) the cells by dimension ids, so
/// a window reads only its own buckets.
#[derive(Default)]
pub struct Cells {
    buckets: BTreeMap<(i64, i64), Bucket>,
}

impl Cells {
    /// A cell's sums (its packed sums plus the changes since), if it has any.
    fn cell(&self, workspace: i64, bucket: i64, dims: &DimIds) -> Option<Cell> {
        self.buckets.get(&(workspace, bucket))?.get(dims)
    }

    fn add(
        &mut self,
        workspace: i64,
        bucket: i64,
        dims: DimIds,
        delta: &Cell,
        sign: i64,
    ) -> Result<(), WriteError> {
        let cells = self.buckets.entry((workspace, bucket)).or_default();
        cells.add(dims, delta, sign)?;
        if cells.is_empty() {
            self.buckets.remove(&(workspace, bucket));
        }
        Ok(())
    }

    /// How many cells this holds (for the memory figures; a packed cell with changes
    /// since counts twice).
    pub fn len(&self) -> usize {
        self.buckets.values().map(Bucket::len).sum()
    }

    /// About how many bytes the cells take on the heap (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        let open_slot = std::mem::size_of::<(DimIds, Cell)>() + 1;
        self.buckets
            .values()
            .map(|b| {
                b.packed.bytes.capacity()
                    + 4 * b.packed.marks.capacity()
                    + open_slot * b.open.capacity()
            })
            .sum()
    }

    /// Call `f` with (bucket start, ids, sums) for every cell of `workspace`'s buckets
    /// that start in `from..to` and whose ids `keep` accepts (checked before a packed
    /// cell's sums are decoded). A cell can come twice, its packed sums and the changes
    /// since: callers add what they get, which gives the cell's sums.
    pub fn each_in<E>(
        &self,
        workspace: i64,
        (from, to): (i64, i64),
        keep: impl Fn(&DimIds) -> bool,
        mut f: impl FnMut(i64, &DimIds, &Cell) -> Result<(), E>,
    ) -> Result<(), E> {
        for ((_, start), cells) in self.buckets.range((workspace, from)..(workspace, to)) {
            cells.each(&keep, |dims, cell| f(*start, dims, cell))?;
        }
        Ok(())
    }

    /// `each_in` for the cells whose first `len` ids are one of `runs` (sorted, zeros
    /// after the first `len` ids): a bucket's packed cells are sorted by their ids, so
    /// the cells of each run lie together, found by a binary search. A read filtered by
    /// a tenant decodes that tenant's cells, not every cell of the window.
    pub fn each_in_runs<E>(
        &self,
        workspace: i64,
        (from, to): (i64, i64),
        (runs, len): (&[DimIds], usize),
        keep: impl Fn(&DimIds) -> bool,
        mut f: impl FnMut(i64, &DimIds, &Cell) -> Result<(), E>,
    ) -> Result<(), E> {
        for ((_, start), cells) in self.buckets.range((workspace, from)..(workspace, to)) {
            cells.each_in_runs(runs, len, &keep, |dims, cell| f(*start, dims, cell))?;
        }
        Ok(())
    }

    /// The cells of `dims` (where present) in `workspace`'s buckets that start in
    /// `from..to`: a lookup each, for reads that name their few cells.
    pub fn each_of<E>(
        &self,
        workspace: i64,
        (from, to): (i64, i64),
        dims: &[DimIds],
        mut f: impl FnMut(i64, &DimIds, &Cell) -> Result<(), E>,
    ) -> Result<(), E> {
        for ((_, start), bucket) in self.buckets.range((workspace, from)..(workspace, to)) {
            for ids in dims {
                if let Some(cell) = bucket.get(ids) {
                    f(*start, ids, &cell)?;
                }
            }
        }
        Ok(())
    }

    /// The generation of `workspace`'s bucket at `start` (see `Bucket::generation`);
    /// 0, which no bucket has, when there is none.
    pub fn generation(&self, workspace: i64, start: i64) -> u64 {
        self.buckets
            .get(&(workspace, start))
            .map_or(0, |bucket| bucket.generation)
    }

    /// The start and the number of cells of each of `workspace`'s buckets that start in
    /// `from..to`.
    pub fn sizes_in(
        &self,
        workspace: i64,
        (from, to): (i64, i64),
    ) -> impl Iterator<Item = (i64, usize)> + '_ {
        let range = (workspace, from)..(workspace, to);
        self.buckets
            .range(range)
            .map(|((_, start), cells)| (*start, cells.len()))
    }

    /// Pack one bucket that holds changes, if any does (true: one was packed).
    fn pack_one(&mut self) -> Result<bool, WriteError> {
        match self.buckets.values_mut().find(|b| !b.open.is_empty()) {
            Some(bucket) => bucket.pack().map(|()| true),
            None => Ok(false),
        }
    }

    /// Fold every bucket's changes into its packed cells.
    fn pack_all(&mut self) -> Result<(), WriteError> {
        for bucket in self.buckets.values_mut() {
            if !bucket.open.is_empty() {
                bucket.pack()?;
            }
        }
        Ok(())
    }

    /// The bucket starts of `workspace` (tests).
    #[cfg(test)]
    fn starts(&self, workspace: i64) -> Vec<i64> {
        let range = (workspace, i64::MIN)..=(workspace, i64::MAX);
        self.buckets.range(range).map(|((_, s), _)| *s).collect()
    }

    /// Drop a workspace's buckets that start before `start`, except those `spare` keeps.
    fn drop_before(&mut self, workspace: i64, start: i64, spare: impl Fn(i64) -> bool) {
        let old: Vec<(i64, i64)> = self
            .buckets
            .range((workspace, i64::MIN)..(workspace, start))
            .map(|(key, _)| *key)
            .filter(|(_, bucket)| !spare(*bucket))
            .collect();
        for key in old {
            self.buckets.remove(&key);
        }
    }

    /// Drop a workspace's buckets that start in `from..to`.
    fn drop_range(&mut self, workspace: i64, from: i64, to: i64) {
        if from < to {
            self.drop_before(workspace, to, |bucket| bucket < from);
        }
    }

    /// Fold the changes of a workspace's buckets that start in `from..to` into their
    /// packed cells.
    fn pack_range(&mut self, workspace: i64, from: i64, to: i64) -> Result<(), WriteError> {
        for (_, bucket) in self.buckets.range_mut((workspace, from)..(workspace, to)) {
            if !bucket.open.is_empty() {
                bucket.pack()?;
            }
        }
        Ok(())
    }
}

/// Changes since the last pack that a bucket holds before packing again: at least
/// `PACK_AFTER`, else an eighth of its packed cells (so packing costs a constant per
/// change, amortized: a copy of about 9 cells; and at most a ninth of a busy bucket's
/// cells are unpacked). The fold packs the rest when it is idle (`fold_commits`), so a
/// quiet server holds every cell packed.
const PACK_AFTER: usize = 64;

/// The cells of one bucket. Most of them are packed (`Packed`: a few dozen bytes a
/// cell instead of about two hundred in a hash map); changes since the last pack are
/// kept as deltas in `open` and folded in when there are enough of them. Why: at
/// realistic cardinality the user and tenant families hold about one cell per active
/// user per day, which in hash maps alone grew the server's memory by ~200 bytes per
/// call stored.
struct Bucket {
    packed: Packed,
    /// Deltas added to the packed sums (a cell only here is new since the last pack).
    open: HashMap<DimIds, Cell, Hasher>,
    /// Which state of its cells the bucket holds: a number no other bucket, and no
    /// earlier state of this one, ever had (`next_generation`). A result summed from
    /// buckets stays exact while their generations stay (`aggregate::FirstPasses`).
    generation: u64,
}

/// A number never handed out before in this process: a bucket's new generation.
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket {
            packed: Packed::default(),
            open: HashMap::default(),
            generation: next_generation(),
        }
    }
}

impl Bucket {
    fn get(&self, dims: &DimIds) -> Option<Cell> {
        match (self.packed.get(dims), self.open.get(dims)) {
            (None, None) => None,
            (packed, open) => {
                let mut sum = packed.unwrap_or([0; N_MEASURES]);
                if let Some(open) = open {
                    // Both parts together were checked before the commit that made them.
                    for (s, o) in sum.iter_mut().zip(open) {
                        *s = s.wrapping_add(*o);
                    }
                }
                Some(sum)
            }
        }
    }

    /// The only change to a bucket's sums (packing keeps them): a new generation.
    fn add(&mut self, dims: DimIds, delta: &Cell, sign: i64) -> Result<(), WriteError> {
        self.generation = next_generation();
        let open = self.open.entry(dims).or_insert([0; N_MEASURES]);
        add_cell(open, delta, sign)?;
        // A call that moved away (a replaced attempt) leaves no empty cell behind.
        if open.iter().all(|m| *m == 0) {
            self.open.remove(&dims);
        }
        if self.open.len() > PACK_AFTER.max(self.packed.len() / 8) {
            self.pack()?;
        }
        Ok(())
    }

    /// Fold the open deltas into the packed cells, dropping cells whose sums are all 0.
    fn pack(&mut self) -> Result<(), WriteError> {
        // Taken, not drained: a drained map keeps its slots (~140 bytes each).
        let mut open: Vec<(DimIds, Cell)> = std::mem::take(&mut self.open).into_iter().collect();
        open.sort_unstable_by_key(|(dims, _)| *dims);
        self.packed = self.packed.merged(&open)?;
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.packed.len() == 0 && self.open.is_empty()
    }

    fn len(&self) -> usize {
        self.packed.len() + self.open.len()
    }

    fn each<E>(
        &self,
        keep: impl Fn(&DimIds) -> bool,
        mut f: impl FnMut(&DimIds, &Cell) -> Result<(), E>,
    ) -> Result<(), E> {
        for (dims, rest) in self.packed.cells() {
            if keep(&dims) {
                f(&dims, &Packed::sums(rest))?;
            }
        }
        for (dims, cell) in &self.open {
            if keep(dims) {
                f(dims, cell)?;
            }
        }
        Ok(())
    }

    /// `each` for the cells whose first `len` ids are one of `runs` (see
    /// `Cells::each_in_runs`); the open deltas, at most an eighth of the cells, are
    /// all looked at.
    fn each_in_runs<E>(
        &self,
        runs: &[DimIds],
        len: usize,
        keep: impl Fn(&DimIds) -> bool,
        mut f: impl FnMut(&DimIds, &Cell) -> Result<(), E>,
    ) -> Result<(), E> {
        for run in runs {
            for (dims, rest) in self.packed.cells_from(self.packed.seek(run)) {
                match dims[..len].cmp(&run[..len]) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Greater => break,
                    std::cmp::Ordering::Equal if keep(&dims) => f(&dims, &Packed::sums(rest))?,
                    std::cmp::Ordering::Equal => {}
                }
            }
        }
        for (dims, cell) in &self.open {
            if keep(dims) {
                f(dims, cell)?;
            }
        }
        Ok(())
    }
}

/// Cells sorted by their ids, one after the other: a length byte (the cell's bytes after
/// it), the number of ids up to the last non-zero one, those ids (LEB128), a bit mask of
/// the sums that are stored and those sums (zigzag LEB128; a zero sum is left out, and
/// the measures that count calls like `requests` does are stored as their difference
/// from it, mostly zero). A user's day cell takes about 22 bytes. Why this layout (it
/// was 4 bytes of offset plus every sum, ~31 bytes a cell): at 10M realistic calls the
/// totals hold ~7M cells, the largest part of the server's memory (ARCHITECTURE.md).
/// A read walks the cells in order; a lookup of one cell binary-searches `marks` and
/// walks at most `MARK_EVERY` cells.
#[derive(Default)]
struct Packed {
    bytes: Vec<u8>,
    /// Where every `MARK_EVERY`-th cell starts in `bytes`.
    marks: Vec<u32>,
    len: usize,
}

/// Cells between two entries of `Packed::marks`.
const MARK_EVERY: usize = 16;

/// The measures stored as their difference from `requests` (index 0 of `MEASURES`): each
/// counts calls like it (attempts, priced calls, calls with a latency), so the
/// difference is mostly zero and left out. Wrapping both ways: exact for any values.
const LIKE_REQUESTS: [usize; 3] = [1, 3, 10];

impl Packed {
    /// `cells` as they are, all-zero ones included (tests of the encoding).
    #[cfg(test)]
    fn from_sorted(cells: &[(DimIds, Cell)]) -> Packed {
        let mut packed = Packed::default();
        for (dims, cell) in cells {
            packed.encode_cell(dims, cell);
        }
        packed
    }

    /// These cells with the sorted `changes` added, cells whose sums are all zero left
    /// out. A cell no change touches is copied as it is: a pack then costs a copy of
    /// most cells, not a decode and an encode of each (at 1M realistic calls it took
    /// the fold thread ~3 us per call that way).
    fn merged(&self, changes: &[(DimIds, Cell)]) -> Result<Packed, WriteError> {
        let mut out = Packed {
            bytes: Vec::with_capacity(self.bytes.len() + changes.len() * 24),
            marks: Vec::with_capacity((self.len + changes.len()).div_ceil(MARK_EVERY)),
            len: 0,
        };
        let mut changes = changes.iter().peekable();
        let mut bytes = &self.bytes[..];
        while let Some((&len, rest)) = bytes.split_first() {
            let (cell, rest) = rest.split_at(len as usize);
            bytes = rest;
            let (dims, sums) = Packed::ids(cell);
            while let Some((new, delta)) = changes.next_if(|(d, _)| *d < dims) {
                out.push_cell(new, delta);
            }
            match changes.next_if(|(d, _)| *d == dims) {
                Some((_, delta)) => {
                    let mut sum = Packed::sums(sums);
                    add_cell(&mut sum, delta, 1)?;
                    out.push_cell(&dims, &sum);
                }
                None => out.push_encoded(cell),
            }
        }
        for (new, delta) in changes {
            out.push_cell(new, delta);
        }
        out.bytes.shrink_to_fit();
        Ok(out)
    }

    /// Mark the cell about to be added, if it is a `MARK_EVERY`-th one.
    fn mark(&mut self) {
        if self.len.is_multiple_of(MARK_EVERY) {
            let start = u32::try_from(self.bytes.len()).expect("a bucket under 4 GB");
            self.marks.push(start);
        }
        self.len += 1;
    }

    /// Add a cell as another `Packed` holds it (the bytes after its length).
    fn push_encoded(&mut self, cell: &[u8]) {
        self.mark();
        self.bytes.push(cell.len() as u8);
        self.bytes.extend_from_slice(cell);
    }

    /// Encode a cell after the last one, unless its sums are all zero.
    fn push_cell(&mut self, dims: &DimIds, cell: &Cell) {
        if cell.iter().any(|m| *m != 0) {
            self.encode_cell(dims, cell);
        }
    }

    fn encode_cell(&mut self, dims: &DimIds, cell: &Cell) {
        self.mark();
        let at = self.bytes.len();
        self.bytes.push(0);
        let used = dims.iter().rposition(|id| *id != 0).map_or(0, |i| i + 1);
        self.bytes.push(used as u8);
        for id in &dims[..used] {
            prost::encoding::encode_varint(u64::from(*id), &mut self.bytes);
        }
        let mut stored = *cell;
        for i in LIKE_REQUESTS {
            stored[i] = stored[i].wrapping_sub(cell[0]);
        }
        let mask = stored
            .iter()
            .enumerate()
            .filter(|(_, m)| **m != 0)
            .fold(0u64, |mask, (i, _)| mask | 1 << i);
        prost::encoding::encode_varint(mask, &mut self.bytes);
        for m in stored.iter().filter(|m| **m != 0) {
            prost::encoding::encode_varint(((m << 1) ^ (m >> 63)) as u64, &mut self.bytes);
        }
        // At most 1 + 8 * 5 + 3 + 14 * 10 = 184 bytes.
        self.bytes[at] = (self.bytes.len() - at - 1) as u8;
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The cells in order from byte `at`: each one's ids and its encoded sums.
    fn cells_from(&self, at: usize) -> impl Iterator<Item = (DimIds, &[u8])> + '_ {
        let mut bytes = &self.bytes[at..];
        std::iter::from_fn(move || {
            let (&len, rest) = bytes.split_first()?;
            let (cell, rest) = rest.split_at(len as usize);
            bytes = rest;
            Some(Packed::ids(cell))
        })
    }

    fn cells(&self) -> impl Iterator<Item = (DimIds, &[u8])> + '_ {
        self.cells_from(0)
    }

    /// A cell's ids (the bytes after its length), and the bytes after them.
    fn ids(mut bytes: &[u8]) -> (DimIds, &[u8]) {
        let used = bytes[0] as usize;
        bytes = &bytes[1..];
        let mut dims = [0u32; 8];
        for id in dims.iter_mut().take(used) {
            *id = varint(&mut bytes) as u32;
        }
        (dims, bytes)
    }

    /// The sums encoded at the front of `bytes`.
    #[inline]
    fn sums(mut bytes: &[u8]) -> Cell {
        // Only the stored sums are visited (a user's cell has about 8 of 14): reads
        // decode every cell of their window.
        let mut mask = varint(&mut bytes);
        let mut cell = [0i64; N_MEASURES];
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let z = varint(&mut bytes);
            cell[i] = ((z >> 1) as i64) ^ -((z & 1) as i64);
        }
        for i in LIKE_REQUESTS {
            cell[i] = cell[i].wrapping_add(cell[0]);
        }
        cell
    }

    /// Where to start walking to find `dims` or the first cell after it: the last marked
    /// cell whose ids are not after `dims` (0 when every cell is after it).
    fn seek(&self, dims: &DimIds) -> usize {
        let after = self.marks.partition_point(|&at| {
            let (ids, _) = self.cells_from(at as usize).next().expect("a marked cell");
            ids <= *dims
        });
        after
            .checked_sub(1)
            .map_or(0, |mark| self.marks[mark] as usize)
    }

    fn get(&self, dims: &DimIds) -> Option<Cell> {
        if self.len == 0 {
            return None;
        }
        self.cells_from(self.seek(dims))
            .take(MARK_EVERY)
            .find(|(ids, _)| ids == dims)
            .map(|(_, rest)| Packed::sums(rest))
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (DimIds, Cell)> + '_ {
        self.cells().map(|(dims, rest)| (dims, Packed::sums(rest)))
    }
}

/// One LEB128 integer from the front of `bytes` (which the packer wrote, so it is whole
/// and at most 10 bytes long). Decoded inline: reads decode every cell of a window, and
/// most sums of a user's cell take one or two bytes.
#[inline]
fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return value;
        }
    }
    unreachable!("packed cells hold whole varints")
}

/// The rollups as of commit `seq`.
#[derive(Default)]
pub struct Totals {
    /// The commit sequence (`meta.commit_seq`) these totals include, all of it and
    /// nothing later.
    pub seq: i64,
    /// Indexed by family, then `Grain as usize`; a grain a family does not keep is empty.
    pub cells: [[Cells; 2]; FAMILIES.len()],
    pub seen: HashMap<VersionKey, (i64, i64), Hasher>,
    /// Per workspace, the hour of its newest event: where a family's recent hours end.
    pub newest_hour: HashMap<i64, i64, Hasher>,
    /// Per workspace, no stored call is newer than this (the newest time an attempt was
    /// added with; a replaced attempt can leave it above the newest call).
    newest_ms: HashMap<i64, i64, Hasher>,
    /// Per workspace that retention pruned, from when raw events exist (a UTC day start):
    /// the pruned history is added to the main and tenant families' hours and every day,
    /// never to user hours, so those start no earlier than this.
    pub raw_from: HashMap<i64, i64, Hasher>,
    /// Per workspace, how far from zero any of its cells can be (the overflow bound).
    reach: HashMap<i64, Reach, Hasher>,
    /// Per workspace, the old days whose hourly cells the families with recent hours
    /// keep anyway (`Pin`), the first opened first.
    pins: HashMap<i64, Vec<Pin>, Hasher>,
    /// Per workspace, the tag sets its tag family holds cells of (`admits`).
    tag_sets: HashMap<i64, std::collections::HashSet<u32, Hasher>, Hasher>,
    /// Workspaces with more than `MAX_TAG_SETS` tag sets: no tag cells.
    many_tag_sets: std::collections::HashSet<i64, Hasher>,
    /// The costliest calls of each day per tenant, endpoint and model.
    pub costliest: super::costliest::Costliest,
    /// The rows of each tenant and user, and the rows per hour.
    pub row_lists: super::row_lists::RowLists,
}

/// Pin ids, unique in the process: a fill from before a rebuild never matches a pin
/// opened after it.
static PIN_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// An old day whose hourly cells a family with recent hours (users) keeps although the
/// day left them: a day a window's edge falls in (a "last 7 days" list of users starts
/// 7 days ago), so that edge reads at most half an hour of raw events instead of up to
/// half a day. Opened empty at a commit the totals include (from then on every commit's
/// changes to the day are kept), then filled with the day's cells as of that commit
/// (`aggregate::pin_day`, off the request path) and only then `ready` for reads.
struct Pin {
    day: i64,
    id: u64,
    ready: bool,
    opened: std::time::Instant,
}

/// How long a pin stays before a new one may take its place: windows on more days
/// than `MAX_PINS` (several dashboards at once) read some edges raw instead of building
/// pins over and over (each build reads a day of raw events).
pub const PIN_MIN_LIFE: std::time::Duration = std::time::Duration::from_secs(600);

/// Pinned days per workspace; a new one drops the first opened (see `PIN_MIN_LIFE`).
/// Four: the edges of a window and of the one before it, for two window lengths (7 and
/// 30 days). A pinned day costs about 23 bytes per user active in an hour of it (7 MB
/// at 10M calls a month).
pub const MAX_PINS: usize = 4;

/// The `seq` of totals a fold failed on: no commit has it, so reads wait for the
/// rebuild they then ask the writer for.
const STALE: i64 = -1;

impl Totals {
    /// Whether `pending` can be added without a total leaving i64 (checked before the
    /// commit, so a refused request stores nothing).
    pub fn check(&self, pending: &Pending) -> Result<(), WriteError> {
        for ((family, grain, ws, bucket, dims), delta) in &pending.sums {
            let mut total = self.cells[*family][*grain as usize]
                .cell(*ws, *bucket, dims)
                .unwrap_or([0; N_MEASURES]);
            add_cell(&mut total, delta, 1)?;
        }
        Ok(())
    }

    /// Where `family`'s hourly cells of `workspace` start: every hour from there on has
    /// its cell (i64::MAX: none yet). Hours before it are only in the daily cells.
    pub fn hours_from(&self, family: usize, workspace: i64) -> i64 {
        match FAMILIES[family].recent_hours {
            None => i64::MIN,
            Some(hours) => self
                .newest_hour
                .get(&workspace)
                .map_or(i64::MAX, |newest| newest - (hours - 1) * HOUR_MS)
                .max(self.raw_from(workspace).unwrap_or(i64::MIN)),
        }
    }

    /// Whether `workspace`'s tag family holds tag set `tag_set`: yes while the workspace
    /// has at most `MAX_TAG_SETS` sets; the first set past that drops its tag cells for
    /// good (until the next rebuild, which meets the same sets).
    fn admits(&mut self, workspace: i64, tag_set: i64) -> bool {
        if self.many_tag_sets.contains(&workspace) {
            return false;
        }
        let Ok(id) = u32::try_from(tag_set) else {
            return false;
        };
        let sets = self.tag_sets.entry(workspace).or_default();
        if sets.contains(&id) {
            return true;
        }
        if sets.len() < MAX_TAG_SETS {
            sets.insert(id);
            return true;
        }
        self.tag_sets.remove(&workspace);
        self.many_tag_sets.insert(workspace);
        for cells in &mut self.cells[TAG_FAMILY] {
            cells.drop_range(workspace, i64::MIN, i64::MAX);
        }
        false
    }

    /// The tag sets of `workspace`'s tag cells, None when it has too many for cells.
    pub fn tag_sets(&self, workspace: i64) -> Option<Vec<u32>> {
        if self.many_tag_sets.contains(&workspace) {
            return None;
        }
        Some(
            self.tag_sets
                .get(&workspace)
                .map_or_else(Vec::new, |sets| sets.iter().copied().collect()),
        )
    }

    /// No call of `workspace` is newer than this (i64::MAX: unknown).
    pub fn newest_ms(&self, workspace: i64) -> i64 {
        self.newest_ms.get(&workspace).copied().unwrap_or(i64::MAX)
    }

    /// From when a workspace's raw events exist (None: nothing was pruned).
    pub fn raw_from(&self, workspace: i64) -> Option<i64> {
        self.raw_from.get(&workspace).copied()
    }

    /// Whether a change of this cell is kept: the hourly cells of a family with
    /// `recent_hours` cover only its recent hours and its pinned days.
    fn keeps(&self, family: usize, grain: Grain, workspace: i64, bucket: i64) -> bool {
        grain != Grain::Hour
            || bucket >= self.hours_from(family, workspace)
            || self.is_pinned(workspace, bucket.div_euclid(DAY_MS) * DAY_MS)
    }

    /// Whether `day` of `workspace` is pinned (ready or still being filled).
    pub fn is_pinned(&self, workspace: i64, day: i64) -> bool {
        self.pins
            .get(&workspace)
            .is_some_and(|pins| pins.iter().any(|p| p.day == day))
    }

    /// The pinned days of `workspace` whose hourly cells are complete (i64::MIN pads).
    pub fn ready_pins(&self, workspace: i64) -> [i64; MAX_PINS] {
        let mut days = [i64::MIN; MAX_PINS];
        let ready = self.pins.get(&workspace).into_iter().flatten();
        for (slot, pin) in days.iter_mut().zip(ready.filter(|p| p.ready)) {
            *slot = pin.day;
        }
        days
    }

    /// Pin `day` of `workspace` as of these totals' commit (the caller's read snapshot
    /// must be at `self.seq`): from now on the day's hourly changes are kept. None when
    /// it is pinned already, the totals are stale, or there are `MAX_PINS` and none of
    /// them is older than `PIN_MIN_LIFE` (else the first opened gives way).
    pub fn open_pin(&mut self, workspace: i64, day: i64, now: std::time::Instant) -> Option<u64> {
        if self.seq == STALE || self.is_pinned(workspace, day) {
            return None;
        }
        let pins = self.pins.entry(workspace).or_default();
        let dropped = if pins.len() >= MAX_PINS {
            let old = pins
                .iter()
                .position(|p| now.saturating_duration_since(p.opened) >= PIN_MIN_LIFE)?;
            Some(pins.remove(old))
        } else {
            None
        };
        let id = PIN_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pins.push(Pin {
            day,
            id,
            ready: false,
            opened: now,
        });
        if let Some(old) = dropped {
            self.unpin_hours(workspace, old.day);
        }
        Some(id)
    }

    /// Add cells of pin `id` as of the commit it was opened at (family, hour start, ids,
    /// sums), some at a time: additions commute with the folds in between. With `done`,
    /// pack the day's hours and make the pin ready. False when the pin was dropped or
    /// the totals rebuilt since (nothing is added); on an error the pin is dropped.
    pub fn fill_pin(
        &mut self,
        workspace: i64,
        id: u64,
        cells: &[(usize, i64, DimIds, Cell)],
        done: bool,
    ) -> Result<bool, WriteError> {
        let Some(at) = self
            .pins
            .get(&workspace)
            .and_then(|pins| pins.iter().position(|p| p.id == id))
        else {
            return Ok(false);
        };
        let day = self.pins[&workspace][at].day;
        let added = cells.iter().try_for_each(|(family, hour, dims, cell)| {
            self.cells[*family][Grain::Hour as usize].add(workspace, *hour, *dims, cell, 1)
        });
        let packed = added.and_then(|()| {
            self.cells.iter_mut().try_for_each(|f| match done {
                true => f[Grain::Hour as usize].pack_range(workspace, day, day + DAY_MS),
                false => Ok(()),
            })
        });
        if let Err(e) = packed {
            if let Some(pins) = self.pins.get_mut(&workspace) {
                pins.retain(|p| p.id != id);
            }
            self.unpin_hours(workspace, day);
            return Err(e);
        }
        if let Some(pin) = self.pins.get_mut(&workspace).and_then(|p| p.get_mut(at)) {
            pin.ready = done;
        }
        Ok(true)
    }

    /// Drop the hourly cells of an unpinned `day` that are not in the recent hours.
    fn unpin_hours(&mut self, workspace: i64, day: i64) {
        for (i, family) in FAMILIES.iter().enumerate() {
            if family.recent_hours.is_some() {
                let to = (day + DAY_MS).min(self.hours_from(i, workspace));
                self.cells[i][Grain::Hour as usize].drop_range(workspace, day, to);
            }
        }
    }

    /// Move a workspace's newest hour to `ts`'s hour if that is later.
    fn see_newest(&mut self, workspace: i64, ts: i64) -> bool {
        let newest_ms = self.newest_ms.entry(workspace).or_insert(ts);
        *newest_ms = (*newest_ms).max(ts);
        let hour = ts.div_euclid(HOUR_MS) * HOUR_MS;
        let newest = self.newest_hour.entry(workspace).or_insert(hour);
        let moved = hour > *newest;
        *newest = (*newest).max(hour);
        moved
    }

    /// Drop the hourly cells that left a workspace's recent hours.
    fn drop_old_hours(&mut self, workspace: i64) {
        for (i, family) in FAMILIES.iter().enumerate() {
            if family.recent_hours.is_some() {
                let from = self.hours_from(i, workspace);
                let pins = self.pins.get(&workspace);
                let pinned = |start: i64| {
                    let day = start.div_euclid(DAY_MS) * DAY_MS;
                    pins.is_some_and(|pins| pins.iter().any(|p| p.day == day))
                };
                self.cells[i][Grain::Hour as usize].drop_before(workspace, from, pinned);
            }
        }
    }

    /// One call's contribution straight into the totals (a rebuild, which drops the
    /// hours that left the recent ones at its end).
    fn add(&mut self, c: &Contribution) -> Result<(), WriteError> {
        self.see_newest(c.workspace, c.ts);
        let measures = c.measures();
        add_reach(self.reach.entry(c.workspace).or_default(), &measures);
        self.add_measures(c, &measures, 1, false)?;
        self.costliest.apply(c, 1);
        self.row_lists.apply(c, 1);
        let span = self.seen.entry(c.version_key()).or_insert((c.ts, c.ts));
        *span = (span.0.min(c.ts), span.1.max(c.ts));
        Ok(())
    }

    /// Fold the changes of commit `seq` (on the fold thread). A commit a rebuild already
    /// includes is skipped; a failed fold, or a commit missing before this one, leaves
    /// the totals STALE until the writer rebuilds them (reads wait and ask for that).
    fn fold(&mut self, changes: &Changes, seq: i64) {
        if self.seq == STALE || seq <= self.seq {
            return;
        }
        let folded = if seq == self.seq + 1 {
            self.apply_changes(changes, seq)
        } else {
            Err(WriteError::Missing(self.seq + 1))
        };
        if let Err(e) = folded {
            tracing::error!(error = %e, seq, "folding a commit into the rollups failed; they will be rebuilt");
            self.seq = STALE;
        }
    }

    /// Add a committed commit's changes call by call (summing them per cell first cost
    /// the fold thread a hash-map entry per cell and call, and at realistic cardinality
    /// most cells of a commit get one call).
    fn apply_changes(&mut self, changes: &Changes, seq: i64) -> Result<(), WriteError> {
        for (ws, reach) in &changes.reach {
            let total = self.reach.entry(*ws).or_default();
            for (t, r) in total.iter_mut().zip(reach) {
                *t = t.saturating_add(*r);
            }
        }
        // The recent hours move first, so a change to an hour that just left them is not
        // kept (that hour's cells are dropped with it).
        let mut newest: HashMap<i64, i64, Hasher> = HashMap::default();
        for (c, _) in changes.calls.iter().filter(|(_, sign)| *sign > 0) {
            let ts = newest.entry(c.workspace).or_insert(c.ts);
            *ts = (*ts).max(c.ts);
        }
        for (ws, ts) in newest {
            if self.see_newest(ws, ts) {
                self.drop_old_hours(ws);
            }
        }
        for (c, sign) in &changes.calls {
            self.add_measures(c, &c.measures(), *sign, false)?;
            self.costliest.apply(c, *sign);
            self.row_lists.apply(c, *sign);
            if *sign > 0 {
                let span = self.seen.entry(c.version_key()).or_insert((c.ts, c.ts));
                *span = (span.0.min(c.ts), span.1.max(c.ts));
            }
        }
        self.seq = seq;
        Ok(())
    }

    /// Add `measures` to every cell `c`'s dimensions and time fall in (that is kept).
    /// `sign` = -1 takes them back (a replaced attempt's old values). `pruned`: pruned
    /// history, added only to the families that take it.
    fn add_measures(
        &mut self,
        c: &Contribution,
        measures: &Cell,
        sign: i64,
        pruned: bool,
    ) -> Result<(), WriteError> {
        for (i, family) in FAMILIES.iter().enumerate() {
            if pruned && !family.pruned_history {
                continue;
            }
            if i == TAG_FAMILY && !self.admits(c.workspace, c.tag_set) {
                continue;
            }
            let dims = c.dims(family)?;
            for &grain in family.grains {
                let bucket = c.ts.div_euclid(grain.millis()) * grain.millis();
                if self.keeps(i, grain, c.workspace, bucket) {
                    let cells = &mut self.cells[i][grain as usize];
                    cells.add(c.workspace, bucket, dims, measures, sign)?;
                }
            }
        }
        Ok(())
    }

    /// Recompute every total from the events `tx` sees, as of its commit sequence (a
    /// transaction the caller holds).
    pub fn sum(tx: &Connection) -> Result<Totals, WriteError> {
        let mut totals = Totals {
            seq: commit_seq(tx)?,
            ..Default::default()
        };
        // First, so the events' tenant and user hours before it are never kept.
        {
            let mut stmt = tx.prepare("SELECT workspace_id, raw_from_ms FROM raw_from")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                totals.raw_from.insert(r.get(0)?, r.get(1)?);
            }
        }
        {
            let mut stmt = tx.prepare(&format!("SELECT {CONTRIBUTION_COLUMNS} FROM events"))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                totals.add(&Contribution::from_row(r)?)?;
            }
        }
        totals.add_pruned(tx)?;
        let workspaces: Vec<i64> = totals.newest_hour.keys().copied().collect();
        for ws in workspaces {
            totals.drop_old_hours(ws);
        }
        // Every bucket packed whole: the deltas a rebuild leaves would cost ~200 bytes each.
        for cells in totals.cells.iter_mut().flatten() {
            cells.pack_all()?;
        }
        totals.costliest.shrink();
        totals.row_lists.shrink();
        Ok(totals)
    }

    /// Add retention's pruned history (`pruned_cells`, `pruned_versions`): its hours are
    /// all before `raw_from`, so they reach the main family's hours and every day.
    fn add_pruned(&mut self, tx: &Connection) -> Result<(), WriteError> {
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT {PRUNED_DIMS}, {} FROM pruned_cells",
                MEASURES.join(", ")
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let c = Contribution {
                    workspace: r.get(0)?,
                    ts: r.get(1)?,
                    environment: r.get(2)?,
                    data_mode: r.get(3)?,
                    status: r.get(4)?,
                    provider: r.get(5)?,
                    model: r.get(6)?,
                    endpoint: r.get(7)?,
                    prompt_version: r.get(8)?,
                    tenant: r.get(9)?,
                    user: r.get(10)?,
                    ..Default::default()
                };
                let mut measures = [0; N_MEASURES];
                for (i, m) in measures.iter_mut().enumerate() {
                    *m = r.get(11 + i)?;
                }
                add_reach(self.reach.entry(c.workspace).or_default(), &measures);
                self.add_measures(&c, &measures, 1, true)?;
            }
        }
        let mut stmt = tx.prepare(
            "SELECT workspace_id, endpoint, prompt_version, environment, data_mode, first_ms, last_ms
             FROM pruned_versions",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let (first, last): (i64, i64) = (r.get(5)?, r.get(6)?);
            let span = self.seen.entry(key).or_insert((first, last));
            *span = (span.0.min(first), span.1.max(last));
        }
        Ok(())
    }

    /// Pack one bucket of any family and grain that holds changes (true: one was).
    fn pack_one(&mut self) -> Result<bool, WriteError> {
        for cells in self.cells.iter_mut().flatten() {
            if cells.pack_one()? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// About how many bytes the cells take on the heap (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        self.cells.iter().flatten().map(Cells::heap_bytes).sum()
    }

    /// Cells per family and grain, for the memory figures in logs and benchmarks.
    pub fn cell_counts(&self) -> Vec<(&'static str, Grain, usize)> {
        let mut counts = Vec::new();
        for (i, family) in FAMILIES.iter().enumerate() {
            for &grain in family.grains {
                counts.push((family.name, grain, self.cells[i][grain as usize].len()));
            }
        }
        counts
    }
}

/// The last committed sequence number as the transaction `conn` is in sees it.
pub fn commit_seq(conn: &Connection) -> rusqlite::Result<i64> {
    let text: String = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'commit_seq'")?
        .query_row([], |r| r.get(0))?;
    Ok(text.parse().unwrap_or(0))
}

/// The rollups shared by the writer and the readers, and the fold thread that sums each
/// commit's changes into them (off the writer thread: summing and packing cells took a
/// quarter of the writer's time, and a fold waiting for readers no longer holds up the
/// next commit).
pub struct Rollups {
    totals: RwLock<Totals>,
    /// (workspace, day) of the pins being built (`claim_pin`).
    building: Mutex<std::collections::HashSet<(i64, i64)>>,
    /// What the totals hold once every commit handed to the fold thread is in.
    ahead: Mutex<Ahead>,
    folds: mpsc::Sender<Fold>,
}

struct Ahead {
    seq: i64,
    reach: HashMap<i64, Reach, Hasher>,
}

enum Fold {
    Commit(Changes, i64),
    /// Answered once every commit handed before it is in the totals.
    Flush(mpsc::SyncSender<()>),
}

impl Rollups {
    /// The rollups over `totals`, with their fold thread (which ends with them).
    pub fn new(totals: Totals) -> Arc<Rollups> {
        let (folds, jobs) = mpsc::channel();
        let ahead = Mutex::new(Ahead {
            seq: totals.seq,
            reach: totals.reach.clone(),
        });
        Arc::new_cyclic(|me: &Weak<Rollups>| {
            let me = me.clone();
            let spawned = std::thread::Builder::new()
                .name("burnrate-fold".into())
                .spawn(move || {
                    crate::sched::background("burnrate-fold");
                    fold_commits(me, jobs)
                });
            if let Err(e) = spawned {
                // Hand-offs then fold on the writer thread (see `hand_off`).
                tracing::error!(error = %e, "could not start the rollups' fold thread");
            }
            Rollups {
                totals: RwLock::new(totals),
                building: Mutex::default(),
                ahead,
                folds,
            }
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Totals> {
        self.totals.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The totals to change outside a fold (opening and filling a pin).
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Totals> {
        self.totals.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim the build of `day`'s pin for `workspace`: false while another build of it
    /// runs. The claim ends when the returned guard drops.
    pub fn claim_pin(self: &Arc<Self>, workspace: i64, day: i64) -> Option<PinClaim> {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        building.insert((workspace, day)).then(|| PinClaim {
            rollups: self.clone(),
            key: (workspace, day),
        })
    }

    fn ahead(&self) -> std::sync::MutexGuard<'_, Ahead> {
        self.ahead.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The commit sequence the totals reach once every handed-off commit is folded: the
    /// writer compares it with the file's to notice another process's commits.
    pub fn ahead_seq(&self) -> i64 {
        self.ahead().seq
    }

    /// Whether `changes` can be committed without any total leaving i64. Decided from
    /// each workspace's reach when that proves it (always, short of totals near 9.2 *
    /// 10^18); otherwise, once the fold thread caught up, cell by cell as exactly.
    pub fn admit(&self, changes: &Changes) -> Result<(), WriteError> {
        let mut ahead = self.ahead();
        let fits = changes.reach.iter().all(|(ws, reach)| {
            let before = ahead.reach.get(ws).copied().unwrap_or_default();
            before
                .iter()
                .zip(reach)
                .all(|(b, r)| b.saturating_add(*r) <= i128::from(i64::MAX))
        });
        if !fits {
            self.flush();
            self.read().check(&changes.pending()?)?;
        }
        for (ws, reach) in &changes.reach {
            let total = ahead.reach.entry(*ws).or_default();
            for (t, r) in total.iter_mut().zip(reach) {
                *t = t.saturating_add(*r);
            }
        }
        Ok(())
    }

    /// Hand commit `seq`'s changes (admitted before it) to the fold thread.
    pub fn hand_off(&self, changes: Changes, seq: i64) {
        self.ahead().seq = seq;
        if let Err(mpsc::SendError(Fold::Commit(changes, seq))) =
            self.folds.send(Fold::Commit(changes, seq))
        {
            let mut totals = self.totals.write().unwrap_or_else(|e| e.into_inner());
            totals.fold(&changes, seq);
        }
    }

    /// Wait until every handed-off commit is in the totals.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.folds.send(Fold::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Replace every total (after a rebuild, which includes every commit up to its `seq`).
    pub fn replace(&self, fresh: Totals) {
        self.flush();
        *self.ahead() = Ahead {
            seq: fresh.seq,
            reach: fresh.reach.clone(),
        };
        *self.totals.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }
}

/// A claimed pin build (`Rollups::claim_pin`); dropping it ends the claim.
pub struct PinClaim {
    rollups: Arc<Rollups>,
    key: (i64, i64),
}

impl Drop for PinClaim {
    fn drop(&mut self) {
        let mut building = self
            .rollups
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        building.remove(&self.key);
    }
}

/// How long the fold thread waits without a commit before it packs the buckets'
/// changes, and how often it packs them under a steady trickle of commits.
const PACK_IDLE: std::time::Duration = std::time::Duration::from_secs(1);
const PACK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The fold thread: takes every handed-off commit waiting and adds them to the totals
/// under one write lock. Idle (or once a minute), it packs the buckets' open changes,
/// one bucket per write lock so reads wait for one bucket's pack at most.
fn fold_commits(rollups: Weak<Rollups>, jobs: mpsc::Receiver<Fold>) {
    // Whether a commit was folded since the last pack (an idle server takes no lock).
    let (mut unpacked, mut packed_at) = (false, std::time::Instant::now());
    loop {
        let first = match jobs.recv_timeout(PACK_IDLE) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if std::mem::take(&mut unpacked) {
                    pack_open_buckets(&rollups);
                    packed_at = std::time::Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut commits = Vec::new();
        let mut flushed = Vec::new();
        for job in std::iter::once(first).chain(jobs.try_iter()) {
            match job {
                Fold::Commit(changes, seq) => commits.push((changes, seq)),
                Fold::Flush(done) => flushed.push(done),
            }
        }
        let Some(strong) = rollups.upgrade() else {
            return;
        };
        {
            let mut totals = strong.totals.write().unwrap_or_else(|e| e.into_inner());
            for (changes, seq) in commits {
                totals.fold(&changes, seq);
                unpacked = true;
            }
        }
        drop(strong);
        for done in flushed {
            let _ = done.send(());
        }
        // After the fold, so a read waiting for these commits does not wait for a pack.
        if packed_at.elapsed() > PACK_EVERY && std::mem::take(&mut unpacked) {
            pack_open_buckets(&rollups);
            packed_at = std::time::Instant::now();
        }
    }
}

/// Pack every bucket that holds changes, one per write lock (packing keeps every sum
/// and generation, so no read sees a difference).
fn pack_open_buckets(rollups: &Weak<Rollups>) {
    let Some(rollups) = rollups.upgrade() else {
        return;
    };
    loop {
        let mut totals = rollups.totals.write().unwrap_or_else(|e| e.into_inner());
        match totals.pack_one() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                // The bucket's changes are gone with the failed pack: as a failed fold.
                tracing::error!(error = %e, "packing the rollups' changes failed; they will be rebuilt");
                totals.seq = STALE;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_cells_give_back_every_value_they_were_given() {
        let edges = [
            0,
            1,
            -1,
            63,
            -64,
            64,
            127,
            128,
            300,
            -300,
            i64::MAX,
            i64::MIN,
        ];
        let cells: Vec<(DimIds, Cell)> = edges
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let dims = [1, 2, i as u32 * 1_000_003, 0, 0, 0, 0, u32::MAX];
                (dims, std::array::from_fn(|m| v.wrapping_add(m as i64)))
            })
            .collect();
        let packed = Packed::from_sorted(&cells);
        let back: Vec<(DimIds, Cell)> = packed.iter().collect();
        assert_eq!(back, cells);
    }

    /// A bucket given changes in rounds (new cells before, between and after the packed
    /// ones, changes to packed cells, cells taken back to zero) holds exactly the sums a
    /// plain map of the same changes holds, after every pack, and finds each by its ids.
    #[test]
    fn packing_changes_into_packed_cells_keeps_exactly_the_sums_of_every_change() {
        let mut bucket = Bucket::default();
        let mut reference: BTreeMap<DimIds, Cell> = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..40 {
            for _ in 0..(50 + round * 37) {
                let r = next();
                let dims: DimIds = [0, 0, (r % 13) as u32, (r >> 8) as u32 % 301, 0, 0, 0, 0];
                let v = (r >> 20) as i64 % 1_000 - 300;
                let delta: Cell = std::array::from_fn(|m| if m % 3 == 0 { v } else { v / 2 });
                let sum = reference.entry(dims).or_insert([0; N_MEASURES]);
                // Every third change takes a cell back to zero.
                let delta = if r % 3 == 0 { sum.map(|m| -m) } else { delta };
                add_cell(sum, &delta, 1).unwrap();
                if sum.iter().all(|m| *m == 0) {
                    reference.remove(&dims);
                }
                bucket.add(dims, &delta, 1).unwrap();
            }
            bucket.pack().unwrap();
            let packed: Vec<(DimIds, Cell)> = bucket.packed.iter().collect();
            let expected: Vec<(DimIds, Cell)> = reference.iter().map(|(d, c)| (*d, *c)).collect();
            assert_eq!(packed, expected, "round {round}");
            for (dims, cell) in &expected {
                assert_eq!(bucket.get(dims), Some(*cell));
            }
            assert_eq!(bucket.get(&[0, 0, 98, 0, 0, 0, 0, 0]), None);
        }
        assert!(reference.len() > 500, "{}", reference.len());
    }

    /// A run's cells, read by seeking the run in the sorted packed cells and walking
    /// it, are exactly the cells a full scan keeps with the same filter, open deltas
    /// included, for runs before, between and after the cells.
    #[test]
    fn a_runs_cells_are_the_cells_with_its_leading_ids_packed_or_open() {
        // Tenants 1..=40 with users under them, in two environments, packed; then open
        // deltas: a changed cell, a new user of tenant 7, and a cell of tenant 8.
        let cell = |v: i64| -> Cell { std::array::from_fn(|m| v + m as i64) };
        let mut cells = Cells::default();
        for env in [1, 2] {
            for tenant in 1..=40u32 {
                for user in 0..(tenant % 9 + 1) {
                    let dims = [env, 1, tenant, 100 + user, 0, 0, 0, 0];
                    cells.add(0, 0, dims, &cell(i64::from(tenant)), 1).unwrap();
                }
            }
        }
        cells.pack_all().unwrap();
        for (dims, v) in [
            ([1, 1, 7, 100], 5),
            ([2, 1, 7, 999], 6),
            ([1, 1, 8, 100], 7),
        ] {
            let dims = [dims[0], dims[1], dims[2], dims[3], 0, 0, 0, 0];
            cells.add(0, 0, dims, &cell(v), 1).unwrap();
        }
        let collect = |runs: Option<(&[DimIds], usize)>, keep: &dyn Fn(&DimIds) -> bool| {
            let mut got: BTreeMap<DimIds, Cell> = BTreeMap::new();
            let mut add = |_: i64, dims: &DimIds, c: &Cell| -> Result<(), WriteError> {
                add_cell(got.entry(*dims).or_insert([0; N_MEASURES]), c, 1)
            };
            match runs {
                Some(runs) => cells.each_in_runs(0, (0, 1), runs, keep, &mut add),
                None => cells.each_in(0, (0, 1), keep, &mut add),
            }
            .unwrap();
            got
        };
        let runs: Vec<DimIds> = [1, 2]
            .map(|env| [env, 1, 7, 0, 0, 0, 0, 0])
            .into_iter()
            .collect();
        let of_seven = collect(Some((&runs, 3)), &|d: &DimIds| d[2] == 7);
        assert_eq!(of_seven, collect(None, &|d: &DimIds| d[2] == 7));
        // 8 users in each environment, and the open new one.
        assert_eq!(of_seven.len(), 17);
        assert_eq!(of_seven[&[1, 1, 7, 100, 0, 0, 0, 0]], {
            let mut sum = cell(7);
            add_cell(&mut sum, &cell(5), 1).unwrap();
            sum
        });
        // Runs before, between and after the cells, and the first and last tenants.
        for tenant in [0, 1, 40, 41] {
            let runs = [[1, 1, tenant, 0, 0, 0, 0, 0]];
            let keep = |d: &DimIds| d[0] == 1 && d[2] == tenant;
            assert_eq!(collect(Some((&runs, 3)), &keep), collect(None, &keep));
        }
    }

    /// Lookups walk from the nearest mark: every stored cell is found with its sums,
    /// ids between, before and after them are not; sums far from `requests` (where the
    /// stored difference wraps) and all-zero sums come back exactly.
    #[test]
    fn packed_cells_are_found_by_their_ids_and_absent_ids_are_not() {
        assert_eq!(
            LIKE_REQUESTS.map(|i| MEASURES[i]),
            ["attempts", "priced", "latency_count"]
        );
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let cells: Vec<(DimIds, Cell)> = (0..100u32)
            .map(|i| {
                // Even ids only, so every odd one is absent.
                let dims = [1, 2, i * 2 + 2, 0, 0, 0, 0, 0];
                let cell: Cell = match i % 4 {
                    0 => [0; N_MEASURES],
                    1 => std::array::from_fn(|_| next() as i64),
                    2 => std::array::from_fn(|m| if m == 0 { i64::MIN } else { i64::MAX }),
                    _ => std::array::from_fn(|m| (next() % 1000) as i64 * (m as i64 % 3)),
                };
                (dims, cell)
            })
            .collect();
        let packed = Packed::from_sorted(&cells);
        assert_eq!(packed.len(), cells.len());
        assert_eq!(packed.iter().collect::<Vec<_>>(), cells);
        for (dims, cell) in &cells {
            assert_eq!(packed.get(dims), Some(*cell), "{dims:?}");
            let mut absent = *dims;
            absent[2] += 1;
            assert_eq!(packed.get(&absent), None, "{absent:?}");
        }
        assert_eq!(packed.get(&[1, 2, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(packed.get(&[0; 8]), None);
        assert_eq!(packed.get(&[1, 3, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Packed::default().get(&[1, 2, 2, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn a_commit_whose_sum_would_wrap_fails_naming_the_measure() {
        let mut pending = Pending::default();
        let big = Contribution {
            cost_nanos: Some(i64::MAX - 1),
            ..Default::default()
        };
        pending.apply(&big, 1).unwrap();
        let err = pending.apply(&big, 1).unwrap_err();
        assert!(matches!(err, WriteError::Overflow("cost_nanos")), "{err}");
    }

    #[test]
    fn a_commit_that_would_push_a_total_past_i64_is_refused_before_it_is_applied() {
        let mut totals = Totals::default();
        let near = Contribution {
            cost_nanos: Some(i64::MAX - 1),
            ..Default::default()
        };
        let mut first = Changes::default();
        first.apply(&near, 1);
        totals.check(&first.pending().unwrap()).unwrap();
        totals.apply_changes(&first, 1).unwrap();
        let mut second = Pending::default();
        second
            .apply(
                &Contribution {
                    cost_nanos: Some(5),
                    ..Default::default()
                },
                1,
            )
            .unwrap();
        let err = totals.check(&second).unwrap_err();
        assert!(matches!(err, WriteError::Overflow("cost_nanos")), "{err}");
        // Nothing of the refused commit is in the totals.
        let cell = totals.cells[0][Grain::Hour as usize]
            .cell(0, 0, &[0; 8])
            .unwrap();
        assert_eq!((cell[0], cell[2], totals.seq), (1, i64::MAX - 1, 1));
    }

    #[test]
    fn a_workspace_with_too_many_tag_sets_keeps_no_tag_cells_and_others_keep_theirs() {
        let mut totals = Totals::default();
        let tagged = |workspace: i64, tag_set: i64| Contribution {
            tag_set,
            ..costing(workspace, 5)
        };
        totals.add(&tagged(2, 7)).unwrap();
        for set in 1..=MAX_TAG_SETS as i64 {
            totals.add(&tagged(1, set)).unwrap();
        }
        let tag_cells = |totals: &Totals, ws: i64| {
            totals.cells[TAG_FAMILY][Grain::Day as usize]
                .sizes_in(ws, (i64::MIN, i64::MAX))
                .map(|(_, n)| n)
                .sum::<usize>()
        };
        assert_eq!(totals.tag_sets(1).map(|s| s.len()), Some(MAX_TAG_SETS));
        assert_eq!(tag_cells(&totals, 1), MAX_TAG_SETS);
        // Again a known set: still held. One more: the workspace's tag cells go.
        totals.add(&tagged(1, 1)).unwrap();
        let set_1 =
            totals.cells[TAG_FAMILY][Grain::Day as usize].cell(1, 0, &[0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(set_1.map(|c| c[0]), Some(2));
        totals.add(&tagged(1, MAX_TAG_SETS as i64 + 1)).unwrap();
        assert_eq!(totals.tag_sets(1), None);
        assert_eq!(tag_cells(&totals, 1), 0);
        totals.add(&tagged(1, 1)).unwrap();
        assert_eq!(tag_cells(&totals, 1), 0, "no tag cell comes back");
        // The other families and workspaces keep every call.
        let main = totals.cells[0][Grain::Day as usize]
            .cell(1, 0, &[0; 8])
            .unwrap();
        assert_eq!(main[0], MAX_TAG_SETS as i64 + 3);
        assert_eq!(totals.tag_sets(2), Some(vec![7]));
        assert_eq!(tag_cells(&totals, 2), 1);
    }

    fn costing(workspace: i64, cost_nanos: i64) -> Contribution {
        Contribution {
            workspace,
            cost_nanos: Some(cost_nanos),
            ..Default::default()
        }
    }

    /// The main family's hourly cell (all dimensions 0) of `workspace` at hour 0.
    fn cost_of(rollups: &Rollups, workspace: i64) -> Option<i64> {
        let totals = rollups.read();
        let cell = totals.cells[0][Grain::Hour as usize].cell(workspace, 0, &[0; 8]);
        cell.map(|c| c[2])
    }

    #[test]
    fn handed_off_commits_reach_the_totals_in_order_and_a_flush_waits_for_them() {
        let rollups = Rollups::new(Totals::default());
        for seq in 1..=50 {
            let mut changes = Changes::default();
            changes.apply(&costing(1, 3), 1);
            rollups.admit(&changes).unwrap();
            rollups.hand_off(changes, seq);
        }
        assert_eq!(rollups.ahead_seq(), 50);
        rollups.flush();
        assert_eq!(rollups.read().seq, 50);
        assert_eq!(cost_of(&rollups, 1), Some(150));
    }

    /// Changes not yet packed, over every bucket of every family and grain.
    fn open_changes(totals: &Totals) -> usize {
        let buckets = totals
            .cells
            .iter()
            .flatten()
            .flat_map(|c| c.buckets.values());
        buckets.map(|b| b.open.len()).sum()
    }

    #[test]
    fn an_idle_fold_thread_packs_the_changes_and_every_sum_stays() {
        let rollups = Rollups::new(Totals::default());
        // 40 users' calls in one commit: fewer than `PACK_AFTER`, so none is packed.
        let mut changes = Changes::default();
        for user in 1..=40 {
            let c = Contribution {
                user,
                tenant: 1 + user % 3,
                ..costing(1, user)
            };
            changes.apply(&c, 1);
        }
        rollups.admit(&changes).unwrap();
        rollups.hand_off(changes, 1);
        rollups.flush();
        let before = |t: &Totals| -> Vec<Option<Cell>> {
            let users = &t.cells[2][Grain::Day as usize];
            (1..=41u32)
                .map(|u| users.cell(1, 0, &[0, 0, 1 + u % 3, u, 0, 0, 0, 0]))
                .collect()
        };
        let (sums, generation) = {
            let t = rollups.read();
            assert!(open_changes(&t) > 0);
            (before(&t), t.cells[2][Grain::Day as usize].generation(1, 0))
        };
        assert_eq!(sums[6].map(|c| c[2]), Some(7));
        assert_eq!(sums[40], None);
        let waited = std::time::Instant::now();
        while open_changes(&rollups.read()) > 0 {
            assert!(waited.elapsed() < PACK_IDLE * 5, "still open");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let t = rollups.read();
        assert_eq!(before(&t), sums);
        // Packing is no change to a read: cached sums over the bucket stay valid.
        assert_eq!(t.cells[2][Grain::Day as usize].generation(1, 0), generation);
        assert_eq!(t.seq, 1);
    }

    #[test]
    fn a_commit_that_could_overflow_is_checked_cell_by_cell_against_folded_totals() {
        let rollups = Rollups::new(Totals::default());
        // Workspace 1 nears i64::MAX; its reach no longer proves a commit safe.
        let mut near = Changes::default();
        near.apply(&costing(1, i64::MAX - 10), 1);
        rollups.admit(&near).unwrap();
        rollups.hand_off(near, 1);
        // 10 more still fits: checked exactly (after the fold thread caught up).
        let mut fits = Changes::default();
        fits.apply(&costing(1, 10), 1);
        rollups.admit(&fits).unwrap();
        rollups.hand_off(fits, 2);
        // One more nano-USD would wrap the cell: refused, naming the measure.
        let mut over = Changes::default();
        over.apply(&costing(1, 1), 1);
        let err = rollups.admit(&over).unwrap_err();
        assert!(matches!(err, WriteError::Overflow("cost_nanos")), "{err}");
        // Another workspace's reach is its own: admitted without waiting.
        let mut other = Changes::default();
        other.apply(&costing(2, 1), 1);
        rollups.admit(&other).unwrap();
        rollups.hand_off(other, 3);
        rollups.flush();
        assert_eq!(cost_of(&rollups, 1), Some(i64::MAX));
        assert_eq!(cost_of(&rollups, 2), Some(1));
    }

    #[test]
    fn a_missing_commit_leaves_the_totals_stale_until_a_rebuild() {
        let rollups = Rollups::new(Totals::default());
        let mut changes = Changes::default();
        changes.apply(&costing(1, 5), 1);
        rollups.hand_off(changes, 2);
        rollups.flush();
        // No read can match STALE; the rebuild replaces the totals whole.
        assert_eq!(rollups.read().seq, STALE);
        rollups.replace(Totals {
            seq: 2,
            ..Default::default()
        });
        assert_eq!((rollups.read().seq, rollups.ahead_seq()), (2, 2));
    }

    #[test]
    fn a_replaced_attempt_that_moves_leaves_no_empty_cell_behind() {
        let mut totals = Totals::default();
        let old = Contribution {
            ts: 5 * HOUR_MS,
            cost_nanos: Some(7),
            ..Default::default()
        };
        let new = Contribution {
            ts: 30 * HOUR_MS,
            ..old
        };
        let mut first = Changes::default();
        first.apply(&old, 1);
        totals.apply_changes(&first, 1).unwrap();
        let mut second = Changes::default();
        second.apply(&old, -1);
        second.apply(&new, 1);
        totals.apply_changes(&second, 2).unwrap();
        let hours = &totals.cells[0][Grain::Hour as usize];
        assert_eq!(hours.len(), 1);
        assert!(hours.cell(0, 5 * HOUR_MS, &[0; 8]).is_none());
        assert_eq!(hours.cell(0, 30 * HOUR_MS, &[0; 8]).unwrap()[2], 7);
    }

    #[test]
    fn user_hours_cover_only_the_recent_ones_and_move_with_the_newest_event() {
        let (user, hour) = (2, Grain::Hour as usize);
        let call = |h: i64| Contribution {
            ts: h * HOUR_MS + 60_000,
            user: 9,
            cost_nanos: Some(5),
            ..Default::default()
        };
        let mut totals = Totals::default();
        let mut first = Changes::default();
        for h in [100, 130, 147] {
            first.apply(&call(h), 1);
        }
        totals.apply_changes(&first, 1).unwrap();
        // The newest is hour 147: hours 98..=147 are recent, all three kept.
        assert_eq!(RECENT_HOURS, 50);
        assert_eq!(totals.hours_from(user, 0), 98 * HOUR_MS);
        assert_eq!(totals.cells[user][hour].len(), 3);
        // A call at hour 160 moves the recent hours to 111..=160: hour 100 leaves (the
        // daily cells still hold it); a late call at hour 105 is kept only by day.
        let mut second = Changes::default();
        second.apply(&call(160), 1);
        second.apply(&call(105), 1);
        totals.apply_changes(&second, 2).unwrap();
        assert_eq!(totals.hours_from(user, 0), 111 * HOUR_MS);
        let starts: Vec<i64> = totals.cells[user][hour]
            .starts(0)
            .iter()
            .map(|start| start / HOUR_MS)
            .collect();
        assert_eq!(starts, [130, 147, 160]);
        // The main and tenant families keep every hour; days keep everything.
        assert_eq!(totals.hours_from(0, 0), i64::MIN);
        assert_eq!(totals.hours_from(1, 0), i64::MIN);
        assert_eq!(totals.cells[0][hour].len(), 5);
        let mut day_calls = 0;
        totals.cells[user][Grain::Day as usize]
            .each_in(
                0,
                (i64::MIN, i64::MAX),
                |_| true,
                |_, _, cell| {
                    day_calls += cell[0];
                    Ok::<_, WriteError>(())
                },
            )
            .unwrap();
        assert_eq!(day_calls, 5);
        // A workspace without events has no hourly cells to read yet.
        assert_eq!(totals.hours_from(user, 7), i64::MAX);
    }

    /// A pinned old day keeps the commits after its opening in its hourly cells, adds
    /// the day's cells as of the opening when filled, survives the recent hours moving
    /// on, and gives way (its cells dropped) to the pin opened MAX_PINS later.
    #[test]
    fn a_pinned_day_holds_its_hours_exactly_until_it_gives_way() {
        let (user, hour) = (2, Grain::Hour as usize);
        let call = |h: i64, u: i64, cost: i64| Contribution {
            ts: h * HOUR_MS + 60_000,
            user: u,
            cost_nanos: Some(cost),
            ..Default::default()
        };
        let cost_at = |totals: &Totals, h: i64, u: u32| {
            let mut dims = [0u32; 8];
            dims[3] = u; // after environment, data mode and tenant
            totals.cells[user][hour]
                .cell(0, h * HOUR_MS, &dims)
                .map(|c| c[2])
        };
        let mut totals = Totals::default();
        let mut first = Changes::default();
        // Day 1 (hours 24..48) is old once the newest call is at hour 200.
        first.apply(&call(30, 9, 5), 1);
        first.apply(&call(200, 9, 1), 1);
        totals.apply_changes(&first, 1).unwrap();
        assert_eq!(cost_at(&totals, 30, 9), None);
        let start = std::time::Instant::now();
        let id = totals.open_pin(0, DAY_MS, start).unwrap();
        assert_eq!(totals.open_pin(0, DAY_MS, start), None, "pinned once");
        assert_eq!(
            totals.ready_pins(0),
            [i64::MIN; MAX_PINS],
            "not ready before its fill"
        );
        // A later commit: another call on day 1, and the first one replaced.
        let mut second = Changes::default();
        second.apply(&call(30, 9, 5), -1);
        second.apply(&call(31, 9, 7), 1);
        second.apply(&call(40, 4, 3), 1);
        totals.apply_changes(&second, 2).unwrap();
        // The fill: day 1 as the opening's snapshot saw it (the first call only).
        let mut dims = [0u32; 8];
        dims[3] = 9;
        let base = call(30, 9, 5).measures();
        let first_hour = [(user, 30 * HOUR_MS, dims, base)];
        assert!(totals.fill_pin(0, id, &first_hour, false).unwrap());
        assert_eq!(
            totals.ready_pins(0),
            [i64::MIN; MAX_PINS],
            "ready when done"
        );
        assert!(totals.fill_pin(0, id, &[], true).unwrap());
        assert_eq!(totals.ready_pins(0)[0], DAY_MS);
        assert_eq!(cost_at(&totals, 30, 9), None, "added and taken away");
        assert_eq!(cost_at(&totals, 31, 9), Some(7));
        assert_eq!(cost_at(&totals, 40, 4), Some(3));
        // The recent hours move on; the pinned day stays.
        let mut third = Changes::default();
        third.apply(&call(300, 9, 1), 1);
        totals.apply_changes(&third, 3).unwrap();
        assert_eq!(cost_at(&totals, 31, 9), Some(7));
        assert_eq!(
            cost_at(&totals, 200, 9),
            None,
            "hour 200 left the recent hours"
        );
        // A fill for a pin these totals never opened (one from before a rebuild) adds
        // nothing.
        let stray = [(user, 31 * HOUR_MS, dims, base)];
        assert!(!totals.fill_pin(0, id + 1_000, &stray, true).unwrap());
        assert_eq!(cost_at(&totals, 31, 9), Some(7));
        // Three more pins fill the four places; a fifth waits until the first has
        // stood PIN_MIN_LIFE, then day 1 gives way and its hours go.
        for day in 2..1 + MAX_PINS as i64 {
            totals.open_pin(0, day * DAY_MS, start).unwrap();
        }
        let fifth = (1 + MAX_PINS as i64) * DAY_MS;
        let soon = start + PIN_MIN_LIFE / 2;
        assert_eq!(totals.open_pin(0, fifth, soon), None);
        assert_eq!(cost_at(&totals, 31, 9), Some(7));
        assert!(totals.open_pin(0, fifth, start + PIN_MIN_LIFE).is_some());
        assert!(!totals.is_pinned(0, DAY_MS));
        assert_eq!(cost_at(&totals, 31, 9), None);
        assert_eq!(cost_at(&totals, 40, 4), None);
    }
}
