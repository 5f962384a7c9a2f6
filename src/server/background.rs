//! The server's background loops: picking up what other processes change in the
//! database (price books, budgets, workspace settings) every 2 s, and the alert rules'
//! evaluation every minute (which also sends the channels' digests that are due). Each runs until the server aborts it at shutdown.

use crate::app::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A `burnrate prices import`, `budgets create` or `workspaces configure` run by the CLI
/// (another process) reaches the running server within this.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
const EVALUATE_EVERY: Duration = Duration::from_secs(60);

/// Budgets' spend is re-read from the store every this many reloads (10 s): spend that
/// other processes commit (a CLI import, another node) reaches the guard within this.
const SPEND_REFRESH_TICKS: u32 = 5;

/// Reload the price book, the budgets and the workspace settings every 2 s; a failed
/// reload keeps what was loaded before and is retried at the next tick.
pub fn reload_every_2s(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        for tick in 1u32.. {
            tokio::time::sleep(RELOAD_EVERY).await;
            if tick % SPEND_REFRESH_TICKS == 0 {
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
