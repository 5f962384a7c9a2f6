//! The server's background loops: picking up what other processes change in the
//! database (price books, budgets, workspace settings) every 2 s, keys every 250 ms and
//! the guard's id mapping rules every second, and the alert rules'
//! evaluation every minute (which also sends the channels' digests that are due), and
//! sealing the closed hours every minute (one node at a time). Each
//! runs until the server aborts it at shutdown.

use super::nodes::Registration;
use crate::app::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A `burnrate prices import`, `budgets create` or `workspaces configure` run by the CLI
/// (another process) reaches the running server within this.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
const EVALUATE_EVERY: Duration = Duration::from_secs(60);

/// Alone, budgets' spend is re-read from the store every this many reloads (10 s): spend
/// that other processes commit (a CLI import) reaches the guard within this. With other
/// nodes live, every reload (2 s).
const SPEND_REFRESH_TICKS: u32 = 5;

/// Reload the price book, the budgets and the workspace settings every 2 s; a failed
/// reload keeps what was loaded before and is retried at the next tick. Ticks fall on
/// multiples of 2 s of the wall clock, so every node sharing the store reloads budget
/// spend at the same moment (each then admits only its share: `Counters::set_nodes`);
/// with other nodes live the spend is reloaded every tick, alone every fifth.
pub fn reload_every_2s(state: Arc<AppState>, node: Arc<Registration>) -> JoinHandle<()> {
    tokio::spawn(async move {
        for tick in 1u32.. {
            tokio::time::sleep(until_next_tick()).await;
            match node.beat(state.store.as_ref(), wall_ms()).await {
                Ok(live) => {
                    state.budgets.counters.set_nodes(live);
                    state.limiter.set_nodes(live);
                }
                Err(e) => tracing::warn!(error = %e, "node registry update failed"),
            }
            if tick % SPEND_REFRESH_TICKS == 0 || state.budgets.counters.nodes() > 1 {
                if let Err(e) = state.budgets.refresh_spend().await {
                    tracing::warn!(error = %e, "budget spend refresh failed");
                }
            }
            if let Err(e) = state.refresh_prices().await {
                tracing::warn!(error = %e, "price book reload failed");
            }
            if let Err(e) = state.budgets.reload_all().await {
                tracing::warn!(error = %e, "budget reload failed");
            }
            if let Err(e) = state.settings.reload_all().await {
                tracing::warn!(error = %e, "workspace settings reload failed");
            }
        }
    })
}

/// Keep the key table and the guard's id mapping rules fresh, off the requests' path:
/// the store's key generation every `keytable::CHECK_EVERY` (the table reloads when it
/// moved), the mapping rules of every workspace the guard asked for every
/// `mapping::RULES_TTL`. A failed read keeps what was loaded and is retried.
pub fn refresh_keys_and_rules(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::keytable::CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rules_read = tokio::time::Instant::now();
        // Four checks a second: a store that stays down is logged once, not at each.
        let mut failing = false;
        loop {
            tick.tick().await;
            match state.keys.refresh(state.store.as_ref()).await {
                Ok(reloaded) => {
                    if reloaded || failing {
                        tracing::debug!(keys = state.keys.len(), reloaded, "key table checked");
                    }
                    failing = false;
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "key table check failed; the loaded keys stay");
                }
                Err(_) => {}
            }
            if rules_read.elapsed() >= crate::mapping::RULES_TTL {
                rules_read = tokio::time::Instant::now();
                state.mappings.refresh_cached(state.store.as_ref()).await;
            }
        }
    })
}

fn wall_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The time to the next multiple of `RELOAD_EVERY` on the wall clock.
fn until_next_tick() -> Duration {
    let every = RELOAD_EVERY.as_millis() as i64;
    Duration::from_millis((every - wall_ms().rem_euclid(every)) as u64)
}

/// Retention's pass: the first this long after the start, then every `PRUNE_EVERY`.
/// Pruning takes whole UTC days, so an hourly pass prunes each day within an hour of
/// its passing the limit; a pass with nothing to prune is one indexed count per
/// workspace with a setting.
const FIRST_PRUNE_AFTER: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Apply every workspace's `rawRetentionDays` (`lifecycle::prune_all`) now and then.
pub fn prune_every_hour(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_PRUNE_AFTER).await;
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match crate::lifecycle::prune_all(state.store.as_ref(), wall_ms()).await {
                Ok(done) => {
                    for p in done.iter().filter(|p| p.events > 0) {
                        tracing::info!(
                            workspace = %p.workspace,
                            events = p.events,
                            raw_from = p.raw_from.as_deref().unwrap_or(""),
                            "retention pruned raw events (their sums stay in the rollups)"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
    })
}

/// Sealing's pass (`EventStore::seal`): the first this long after the start, then every
/// `SEAL_EVERY`. A store whose reads need no sealing answers at once.
const FIRST_SEAL_AFTER: Duration = Duration::from_secs(10);
const SEAL_EVERY: Duration = Duration::from_secs(60);

/// Seal the closed hours once a minute (ClickHouse's sealed hourly cells), on one node
/// at a time: the live node with the smallest registration id.
pub fn seal_every_minute(state: Arc<AppState>, node: Arc<Registration>) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_SEAL_AFTER).await;
        let mut tick = tokio::time::interval(SEAL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match node.is_first(state.store.as_ref(), wall_ms()).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "node registry read failed");
                    continue;
                }
            }
            let started = std::time::Instant::now();
            match state.store.seal(wall_ms()).await {
                Ok(0) => {}
                Ok(hours) => tracing::info!(
                    hours,
                    ms = started.elapsed().as_millis() as u64,
                    "sealed hours"
                ),
                Err(e) => tracing::warn!(error = %e, "sealing failed"),
            }
        }
    })
}

/// Evaluate every workspace's alert rules once a minute, and send each channel's digest
/// once its scheduled local time has come (once per period: `alert::digests`).
pub fn evaluate_alerts_every_minute(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVALUATE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Ok(workspaces) = state.store.workspaces().await else {
                continue;
            };
            for ws in workspaces {
                if let Err(e) = state.alerts.evaluate_once(ws.id, &state.prices()).await {
                    tracing::warn!(error = %e, workspace = ws.id, "alert evaluation failed");
                }
            }
        }
    })
}
