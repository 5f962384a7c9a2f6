//! Ingest: read the stored attempts of the request's calls, decide each event with
//! `dedupe::decide` (in arrival order, against what the request already stored), check
//! that no hour's totals would leave i64, then insert the new attempts. The caller holds
//! the node's write lock.

use super::http::{quote, quote_array, tsv_field};
use super::{num, schema, text, ClickhouseStore};
use crate::dedupe;
use crate::event::{DataMode, Environment, PricedEvent, Status};
use crate::store::{
    FieldTally, IngestOutcome, Result, SpendEffect, StoreError, WorkspaceId, WriteResult,
};
use std::collections::{BTreeMap, HashMap};

const HOUR_MS: i64 = 3_600_000;

/// The measures a write is checked on, as the event fields they sum (in this order the
/// first that would overflow is named).
const MEASURES: [&str; 7] = [
    "costUsd",
    "inputTokens",
    "cachedTokens",
    "cacheWriteTokens",
    "outputTokens",
    "reasoningTokens",
    "latencyMs",
];

/// What a cost change is counted under: one attempt's dimensions.
#[derive(Debug, Clone)]
struct Attempt {
    attempt: u8,
    has_usage: bool,
    success: bool,
    ts_ms: i64,
    environment: Environment,
    data_mode: DataMode,
    endpoint: String,
    tenant: Option<String>,
    user: Option<String>,
    model: String,
    provider: String,
    tags: BTreeMap<String, String>,
    cost: Option<i64>,
}

impl Attempt {
    fn of(p: &PricedEvent) -> Attempt {
        let e = &p.event;
        Attempt {
            attempt: e.attempt,
            has_usage: !e.usage_missing,
            success: e.status == Status::Success,
            ts_ms: e.timestamp_ms,
            environment: e.environment,
            data_mode: e.data_mode,
            endpoint: e.endpoint_tag.clone(),
            tenant: e.tenant_id.clone(),
            user: e.user_id.clone(),
            model: e.model.clone(),
            provider: e.provider.clone(),
            tags: e.tags.clone(),
            cost: p.pricing.cost.map(|c| c.0),
        }
    }
}

/// A call as ingest sees it: the attempts stored, their hours and its winner.
struct Call {
    mask: u64,
    /// The hours of its stored attempts and of those this commit stores.
    hours: Vec<i64>,
    winner: Attempt,
    /// The winner's stored `pick` (0 for one this request stored: only compared
    /// between stored rows).
    pick: u64,
}

/// The rank the read side takes the max of: has usage, success, then the lower attempt.
pub fn rank(attempt: u8, has_usage: bool, success: bool) -> u16 {
    (has_usage as u16 * 2 + success as u16) * 128 + (64 - attempt.clamp(1, 64) as u16)
}

/// The read side's order of a call's stored rows: the rank above 54 bits, then the
/// earlier commit (sequences are microseconds, below 2^54 until the year 2540).
pub(super) fn pick(rank: u16, seq: u64) -> u64 {
    const LOW: u64 = (1 << 54) - 1;
    ((rank as u64) << 54) | (LOW - seq.min(LOW))
}

/// One request's part of a commit: its events (of the commit's workspace) and its
/// unknown-field tally.
pub struct Part<'a> {
    pub events: &'a [PricedEvent],
    pub tally: &'a FieldTally,
}

/// Store the parts' events as one commit: one read of their calls' stored attempts and
/// hours, the dedupe decisions in order (a later part sees what an earlier one stored),
/// one insert per table. Returns each part's outcome, all with the commit's sequence.
/// Any error (an hour past i64, ClickHouse unavailable) fails the whole commit before
/// anything is inserted, except when an insert itself fails.
pub async fn ingest_parts(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    parts: &[Part<'_>],
) -> Result<Vec<IngestOutcome>> {
    let events: Vec<&PricedEvent> = parts.iter().flat_map(|p| p.events.iter()).collect();
    // The two reads are independent (the hours of every event, a superset of those of
    // the attempts that will be stored): one round trip of latency, not two.
    let all_hours: Vec<i64> = events
        .iter()
        .map(|p| p.event.timestamp_ms.div_euclid(HOUR_MS))
        .collect();
    let started = std::time::Instant::now();
    let ((mut calls, mut touched), stored_hours) = tokio::try_join!(
        stored_calls(store, ws, &events),
        stored_hour_totals(store, ws, all_hours.clone())
    )?;
    let mut results = Vec::with_capacity(events.len());
    // The cost changes of each event, in event order.
    let mut effects: Vec<Vec<SpendEffect>> = Vec::with_capacity(events.len());
    let mut new_rows: Vec<&PricedEvent> = Vec::new();
    for &p in &events {
        let (result, changes, stored) = decide(ws, p, &mut calls);
        results.push(result);
        effects.push(changes);
        if stored {
            new_rows.push(p);
        }
    }
    let hours = hour_totals(&new_rows);
    check_hours(&stored_hours, &hours)?;
    let seq = store.seq.next();
    let received = super::now_ms();
    let rows: Vec<String> = new_rows
        .iter()
        .map(|p| event_row(ws, p, seq, received))
        .collect();
    let hour_rows: Vec<String> = hours
        .iter()
        .map(|(hour, sums)| {
            let mut fields = vec![ws.to_string(), hour.to_string()];
            for s in sums {
                let (hi, lo) = halves(*s);
                fields.push(hi.to_string());
                fields.push(lo.to_string());
            }
            fields.join("\t")
        })
        .collect();
    let tally_rows: Vec<String> = parts
        .iter()
        .filter_map(
            |part| match (part.tally.key_id, part.tally.unknown_fields > 0) {
                (Some(key), true) => Some(format!(
                    "{key}\t{}\t{}\t{seq}",
                    part.tally.unknown_fields,
                    tsv_field(part.tally.last_unknown.as_deref().unwrap_or(""))
                )),
                _ => None,
            },
        )
        .collect();
    // The by-hour copy and the spanning calls first: once a row is in `EVENTS` a
    // retried commit finds it stored and writes it nowhere again, so the copy must
    // never lack it. A failure after them leaves rows the retry writes again (one
    // attempt to every read).
    let by_hour: Vec<String> = new_rows
        .iter()
        .zip(&rows)
        .map(|(p, row)| format!("{row}\t{}", p.event.timestamp_ms.div_euclid(HOUR_MS)))
        .collect();
    let (by_hour_table, spanning_table) = (
        store.table(schema::EVENTS_BY_HOUR.name),
        store.table(schema::SPANNING.name),
    );
    let spanning = spanning_rows(ws, &calls);
    tokio::try_join!(
        store.client.insert(&by_hour_table, &by_hour),
        store.client.insert(&spanning_table, &spanning),
    )?;
    // Three independent inserts at once. They are not one transaction (ClickHouse has
    // none): a failure between them leaves the hour totals short of the events (the
    // overflow check is then less strict for that hour) or a tally uncounted.
    let (events_table, hours_table, tally_table) = (
        store.table(schema::EVENTS.name),
        store.table(schema::HOUR_TOTALS.name),
        store.table(schema::KEY_TALLY.name),
    );
    tokio::try_join!(
        store.client.insert(&events_table, &rows),
        store.client.insert(&hours_table, &hour_rows),
        store.client.insert(&tally_table, &tally_rows)
    )?;
    // Mark dirty, now that the rows are stored, every hour whose sealed cells this
    // commit may have changed: its events' hours and the hours of the stored attempts
    // of their calls (the old winner's among them). A slow commit reads its calls'
    // attempts again: one stored meanwhile by another node may be a winner a seal
    // counted (cells.rs, `SKEW_MS`).
    touched.extend(all_hours);
    if started.elapsed() > super::cells::SLOW_COMMIT {
        // Read again, a call split between hours by another node meanwhile is named now.
        let (again, hours) = stored_calls(store, ws, &events).await?;
        touched.extend(hours);
        store
            .client
            .insert(
                &store.table(schema::SPANNING.name),
                &spanning_rows(ws, &again),
            )
            .await?;
    }
    super::cells::mark(store, ws, touched).await?;
    // Each part's share of the results and effects, in order.
    let mut results = results.into_iter();
    let mut effects = effects.into_iter();
    Ok(parts
        .iter()
        .map(|part| {
            let n = part.events.len();
            IngestOutcome {
                results: results.by_ref().take(n).collect(),
                seq,
                effects: effects.by_ref().take(n).flatten().collect(),
            }
        })
        .collect())
}

/// `SPANNING`'s rows for the calls whose attempts lie in more than one hour: one per
/// (call, hour). Written for every such call a commit touches, already named or not
/// (a row written twice is merged away).
fn spanning_rows(ws: WorkspaceId, calls: &HashMap<CallKey, Call>) -> Vec<String> {
    let mut rows = Vec::new();
    for ((idless, id), call) in calls {
        let mut hours = call.hours.clone();
        hours.sort_unstable();
        hours.dedup();
        if hours.len() > 1 {
            for hour in hours {
                rows.push(format!(
                    "{ws}\t{}\t{}\t{hour}",
                    *idless as u8,
                    tsv_field(id)
                ));
            }
        }
    }
    rows
}

/// What one event does to its call (given the calls read and decided so far, which it
/// updates): its result, its cost changes, and whether its attempt is stored.
fn decide(
    ws: WorkspaceId,
    p: &PricedEvent,
    calls: &mut HashMap<CallKey, Call>,
) -> (WriteResult, Vec<SpendEffect>, bool) {
    let e = &p.event;
    let incoming = Attempt::of(p);
    let key = call_key(p);
    let Some(call) = key.as_ref().and_then(|k| calls.get_mut(k)) else {
        let effect = effect(ws, p, &incoming, &incoming, incoming.cost, 1, true);
        if let Some(key) = key {
            let mask = dedupe::attempt_bit(e.attempt);
            calls.insert(
                key,
                Call {
                    mask,
                    hours: vec![incoming.ts_ms.div_euclid(HOUR_MS)],
                    winner: incoming,
                    pick: 0,
                },
            );
        }
        return (WriteResult::Inserted, vec![effect], true);
    };
    // dedupe's rule, with the read side's rank: a total order (the lower attempt wins
    // among equals), so the call ends the same whatever the arrival order.
    let bit = dedupe::attempt_bit(e.attempt);
    if call.mask & bit != 0 {
        return (WriteResult::Duplicate, Vec::new(), false);
    }
    let w = &call.winner;
    let replace = rank(e.attempt, incoming.has_usage, incoming.success)
        > rank(w.attempt, w.has_usage, w.success);
    call.mask |= bit;
    call.hours.push(incoming.ts_ms.div_euclid(HOUR_MS));
    let changes = if replace {
        let old = &call.winner;
        let changes = vec![
            effect(ws, p, old, old, old.cost, -1, false),
            effect(ws, p, &incoming, &incoming, incoming.cost, 1, false),
        ];
        call.winner = incoming;
        changes
    } else {
        // Nothing of the cost changes; the effect settles the reservation.
        let mut same = effect(ws, p, &incoming, &call.winner, None, 0, false);
        same.unpriced_delta = 0;
        vec![same]
    };
    (WriteResult::Attempt { replaced: replace }, changes, true)
}

/// One cost change: counted under `counted`'s dimensions and time, in the environment
/// and data mode of `call` (the winner it leaves or joins).
fn effect(
    ws: WorkspaceId,
    p: &PricedEvent,
    counted: &Attempt,
    call: &Attempt,
    cost: Option<i64>,
    sign: i64,
    new: bool,
) -> SpendEffect {
    SpendEffect {
        workspace: ws,
        external_request_id: p.event.external_request_id.clone(),
        ts_ms: counted.ts_ms,
        environment: call.environment,
        data_mode: call.data_mode,
        endpoint_tag: counted.endpoint.clone(),
        tenant_id: counted.tenant.clone(),
        user_id: counted.user.clone(),
        model: counted.model.clone(),
        provider: counted.provider.clone(),
        tags: counted.tags.clone(),
        cost_delta: sign * cost.unwrap_or(0),
        unpriced_delta: sign * cost.is_none() as i64,
        new_call_cost: cost.filter(|_| new),
    }
}

/// A call as stored: (id-less, id). An id-less call has a key only when it was copied
/// from another store with its assigned id (`PricedEvent::stored_id`).
type CallKey = (bool, String);

fn call_key(p: &PricedEvent) -> Option<CallKey> {
    p.stored_id().map(|(id, idless)| (idless, id.to_string()))
}

/// The stored attempts of the request's calls (those with an id), by call, and the
/// hours of all of them.
async fn stored_calls(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    events: &[&PricedEvent],
) -> Result<(HashMap<CallKey, Call>, Vec<i64>)> {
    let mut hours = Vec::new();
    let mut calls: HashMap<CallKey, Call> = HashMap::new();
    let mut rows = Vec::new();
    for idless in [false, true] {
        let mut ids: Vec<&str> = events
            .iter()
            .filter_map(|p| p.stored_id().filter(|k| k.1 == idless).map(|k| k.0))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for list in id_lists(&ids) {
            let sql = format!(
                "SELECT idless, id, attempt, usage_missing, status, ts, environment, data_mode,
                    endpoint, tenant, user, model, provider, tag_keys, tag_values, priced, cost,
                    pick
                 FROM {} WHERE ws = {ws} AND idless = {} AND id IN ({list})",
                store.table(schema::EVENTS.name),
                idless as u8
            );
            rows.extend(store.client.select(&sql).await?);
        }
    }
    for row in rows {
        let a = stored_attempt(&row[1..])?;
        let hour = num::<i64>(&row, 5)?.div_euclid(HOUR_MS);
        hours.push(hour);
        let pick: u64 = num(&row, 17)?;
        let id = (num::<u8>(&row, 0)? == 1, text(&row, 1));
        match calls.get_mut(&id) {
            None => {
                calls.insert(
                    id,
                    Call {
                        mask: dedupe::attempt_bit(a.attempt),
                        hours: vec![hour],
                        winner: a,
                        pick,
                    },
                );
            }
            Some(call) => {
                call.mask |= dedupe::attempt_bit(a.attempt);
                call.hours.push(hour);
                // The read side's order: rank, then a re-priced copy over its original.
                if pick > call.pick {
                    call.winner = a;
                    call.pick = pick;
                }
            }
        }
    }
    Ok((calls, hours))
}

/// Which of `ids` have a stored attempt in `ws`.
pub async fn stored_ids(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    ids: &[String],
) -> Result<Vec<String>> {
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut stored = Vec::new();
    for list in id_lists(&ids) {
        let sql = format!(
            "SELECT DISTINCT id FROM {} WHERE ws = {ws} AND idless = 0 AND id IN ({list})",
            store.table(schema::EVENTS.name),
        );
        stored.extend(store.client.select(&sql).await?.iter().map(|r| text(r, 0)));
    }
    Ok(stored)
}

/// The quoted ids as `IN` lists of at most `MAX_LIST` bytes each: ClickHouse parses at
/// most `max_query_size` (256 KiB by default) of a statement's text.
pub(super) fn id_lists(ids: &[&str]) -> Vec<String> {
    const MAX_LIST: usize = 100_000;
    let mut lists: Vec<String> = Vec::new();
    let mut current = String::new();
    for id in ids {
        let quoted = quote(id);
        if !current.is_empty() && current.len() + quoted.len() + 1 > MAX_LIST {
            lists.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&quoted);
    }
    if !current.is_empty() {
        lists.push(current);
    }
    lists
}

fn stored_attempt(row: &[String]) -> Result<Attempt> {
    let bad = |what: &str| StoreError::Database(format!("clickhouse: a stored {what} is unknown"));
    let keys = super::http::parse_array(&text(row, 12)).ok_or_else(|| bad("tag list"))?;
    let values = super::http::parse_array(&text(row, 13)).ok_or_else(|| bad("tag list"))?;
    Ok(Attempt {
        attempt: num(row, 1)?,
        has_usage: num::<u8>(row, 2)? == 0,
        success: text(row, 3) == Status::Success.as_str(),
        ts_ms: num(row, 4)?,
        environment: Environment::parse(&text(row, 5)).ok_or_else(|| bad("environment"))?,
        data_mode: DataMode::parse(&text(row, 6)).ok_or_else(|| bad("data mode"))?,
        endpoint: text(row, 7),
        tenant: super::optional(row, 8),
        user: super::optional(row, 9),
        model: text(row, 10),
        provider: text(row, 11),
        tags: keys.into_iter().zip(values).collect(),
        cost: (num::<u8>(row, 14)? == 1)
            .then(|| num(row, 15))
            .transpose()?,
    })
}

/// The event's values per measure (`MEASURES` order), as i128 so no sum here wraps.
fn measures(p: &PricedEvent) -> [i128; 7] {
    let t = &p.event.tokens;
    [
        p.pricing.cost.map_or(0, |c| c.0) as i128,
        t.input as i128,
        t.cached as i128,
        t.cache_write as i128,
        t.output as i128,
        t.reasoning as i128,
        p.event.latency_ms.unwrap_or(0) as i128,
    ]
}

/// The new attempts' sums per hour of their time.
fn hour_totals(rows: &[&PricedEvent]) -> BTreeMap<i64, [i128; 7]> {
    let mut hours: BTreeMap<i64, [i128; 7]> = BTreeMap::new();
    for p in rows {
        let hour = p.event.timestamp_ms.div_euclid(HOUR_MS);
        let sums = hours.entry(hour).or_insert([0; 7]);
        for (s, m) in sums.iter_mut().zip(measures(p)) {
            *s += m;
        }
    }
    hours
}

/// Refuse the request (naming the event field) when an hour's stored attempts plus the
/// new ones would total past i64: every read of that hour would fail. Stored attempts
/// include replaced ones, so this is at least as strict as the calls' totals.
pub(super) fn check_hours(
    stored: &HashMap<i64, [i128; 7]>,
    hours: &BTreeMap<i64, [i128; 7]>,
) -> Result<()> {
    for (hour, new) in hours {
        let old = stored.get(hour).copied().unwrap_or([0; 7]);
        for m in 0..MEASURES.len() {
            if old[m] + new[m] > i64::MAX as i128 {
                return Err(StoreError::WriteOverflow(MEASURES[m].to_string()));
            }
        }
    }
    Ok(())
}

/// What the stored attempts of these hours add up to, per hour.
pub(super) async fn stored_hour_totals(
    store: &ClickhouseStore,
    ws: WorkspaceId,
    mut hours: Vec<i64>,
) -> Result<HashMap<i64, [i128; 7]>> {
    let mut stored: HashMap<i64, [i128; 7]> = HashMap::new();
    hours.sort_unstable();
    hours.dedup();
    if hours.is_empty() {
        return Ok(stored);
    }
    let list: Vec<String> = hours.iter().map(i64::to_string).collect();
    let sums: Vec<String> = [
        "cost",
        "input",
        "cached",
        "cache_write",
        "output",
        "reasoning",
        "latency",
    ]
    .iter()
    .map(|m| format!("sum({m}_hi), sum({m}_lo)"))
    .collect();
    let sql = format!(
        "SELECT hour, {} FROM {} WHERE ws = {ws} AND hour IN ({}) GROUP BY hour",
        sums.join(", "),
        store.table(schema::HOUR_TOTALS.name),
        list.join(",")
    );
    for row in store.client.select(&sql).await? {
        let mut sums = [0i128; 7];
        for (m, s) in sums.iter_mut().enumerate() {
            let hi: i128 = num(&row, 1 + 2 * m)?;
            let lo: i128 = num(&row, 2 + 2 * m)?;
            *s = (hi << 32) + lo;
        }
        stored.insert(num(&row, 0)?, sums);
    }
    Ok(stored)
}

/// A non-negative sum as (high, low) 32-bit halves, each far inside i64.
pub(super) fn halves(v: i128) -> (i64, i64) {
    ((v >> 32) as i64, (v & 0xffff_ffff) as i64)
}

/// One stored attempt as a TabSeparated line (columns of `schema::EVENTS`).
fn event_row(ws: WorkspaceId, p: &PricedEvent, seq: u64, received: i64) -> String {
    let e = &p.event;
    let (id, idless) = match p.stored_id() {
        Some((id, idless)) => (id.to_string(), idless as u8),
        None => (format!("idless-{}", crate::auth::random_token(16)), 1),
    };
    let received = p.copied.as_ref().map_or(received, |c| c.received_at_ms);
    let t = &e.tokens;
    let s = |v: &str| tsv_field(v);
    let o = |v: &Option<String>| tsv_field(v.as_deref().unwrap_or(""));
    let fields = [
        ws.to_string(),
        idless.to_string(),
        s(&id),
        e.attempt.to_string(),
        pick(
            rank(e.attempt, !e.usage_missing, e.status == Status::Success),
            seq,
        )
        .to_string(),
        seq.to_string(),
        (u64::MAX - seq).to_string(),
        e.timestamp_ms.to_string(),
        received.to_string(),
        s(&e.provider),
        s(&e.model),
        s(&e.endpoint_tag),
        o(&e.prompt_version),
        o(&e.tenant_id),
        o(&e.user_id),
        t.input.to_string(),
        t.cached.to_string(),
        t.cache_write.to_string(),
        t.output.to_string(),
        t.reasoning.to_string(),
        e.image_count.to_string(),
        e.latency_ms.map_or(-1, i64::from).to_string(),
        e.status.as_str().to_string(),
        o(&e.error_code),
        e.data_mode.as_str().to_string(),
        e.environment.as_str().to_string(),
        e.operation.as_str().to_string(),
        e.service_tier.as_str().to_string(),
        (e.usage_missing as u8).to_string(),
        s(&quote_array(e.tags.keys().map(String::as_str))),
        s(&quote_array(e.tags.values().map(String::as_str))),
        (p.pricing.cost.is_some() as u8).to_string(),
        p.pricing.cost.map_or(0, |c| c.0).to_string(),
        p.pricing.source.map_or("", |c| c.as_str()).to_string(),
        o(&p.pricing.price_entry_id),
        o(&p.pricing.price_book_version),
        // Priced (or not) as it arrived, unless copied from a store that re-priced it
        // (0 = never re-priced).
        p.copied
            .as_ref()
            .and_then(|c| c.repriced_at_ms)
            .unwrap_or(0)
            .to_string(),
    ];
    fields.join("\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_orders_usage_then_success_then_the_lower_attempt() {
        assert!(rank(64, true, false) > rank(1, false, true));
        assert!(rank(9, true, true) > rank(1, true, false));
        assert!(rank(1, true, true) > rank(2, true, true));
        assert!(rank(1, false, false) > rank(64, false, false));
    }

    #[test]
    fn long_id_lists_are_split_below_the_statement_size_limit() {
        let long: Vec<String> = (0..5_000).map(|i| format!("{i:0>250}")).collect();
        let ids: Vec<&str> = long.iter().map(String::as_str).collect();
        let lists = id_lists(&ids);
        assert!(lists.len() > 10, "{}", lists.len());
        assert!(lists.iter().all(|l| l.len() <= 100_000));
        let joined: Vec<String> = lists.join(",").split(',').map(str::to_string).collect();
        let expected: Vec<String> = ids.iter().map(|id| quote(id)).collect();
        assert_eq!(joined, expected);
        assert!(id_lists(&[]).is_empty());
    }

    #[test]
    fn halves_rebuild_the_value() {
        for v in [0i128, 1, 4_294_967_296, i64::MAX as i128, u64::MAX as i128] {
            let (hi, lo) = halves(v);
            assert_eq!(((hi as i128) << 32) + lo as i128, v);
        }
    }
}
