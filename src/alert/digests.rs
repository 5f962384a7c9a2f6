//! Scheduled digests: for each channel with a `digest` schedule, once per period, a
//! summary of the watched traffic (spend vs the period before, top movers by endpoint,
//! budgets at risk, unprofitable tenants, firing alerts, the period's alerts) sent through `notify`. The last
//! period sent is a control object per channel (`digest_sent`), so a restart or a
//! second evaluation in the same period sends nothing again.

use super::engine::{Alerts, ALERT};
use crate::budget::service::MEMBER_PAGE;
use crate::money::Usd;
use crate::notify::{self, Mover, NotificationState, Period, Severity, Summary};
use crate::query::Dimension;
use crate::report::margin::{margin, RevenueBook};
use crate::report::{by_cost, only_groups};
use crate::store::{StoreError, WorkspaceId};
use serde_json::{json, Value};

pub const DIGEST_SENT: &str = "digest_sent";
/// Endpoints listed as top movers.
const MOVERS: usize = 5;
/// Unprofitable tenants named (the rest are counted).
const UNPROFITABLE: usize = 5;

impl Alerts {
    /// Send every digest due at `now` that was not sent yet; how many were sent. A
    /// channel seen for the first time starts at its next scheduled moment (its
    /// current period is marked as handled without a message).
    pub async fn send_digests(&self, ws: WorkspaceId, now: i64) -> Result<usize, StoreError> {
        let sent = self.store().objects(Some(ws), DIGEST_SENT).await?;
        let mut count = 0;
        for channel in self.channels(ws).await? {
            let Some(period) = channel.digest.as_ref().and_then(|d| d.due(now)) else {
                continue;
            };
            let record = sent
                .iter()
                .find(|o| o.body["channelId"] == json!(channel.id));
            let last_end = record.and_then(|o| o.body["periodEnd"].as_i64());
            if last_end.is_some_and(|end| end >= period.end_ms) {
                continue;
            }
            let mut body = json!({"channelId": channel.id, "periodStart": period.start_ms,
                                  "periodEnd": period.end_ms});
            if last_end.is_some() {
                let n = self.digest_of(ws, period, now).await?;
                let report = self.send(&channel, &n).await;
                body["delivered"] = json!(report.delivered);
                body["attempts"] = json!(report.attempts);
                count += 1;
            }
            self.store()
                .put_object(ws, DIGEST_SENT, record.map(|o| o.id), body)
                .await?;
        }
        Ok(count)
    }

    /// Mark a new channel's current period as handled: its first digest is the next.
    pub(super) async fn start_digests(
        &self,
        ws: WorkspaceId,
        channel: &notify::Channel,
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some(period) = channel.digest.as_ref().and_then(|d| d.due(now)) {
            let body = json!({"channelId": channel.id, "periodStart": period.start_ms,
                              "periodEnd": period.end_ms});
            self.store().put_object(ws, DIGEST_SENT, None, body).await?;
        }
        Ok(())
    }

    /// The digest of `period` for the workspace's watched traffic.
    async fn digest_of(
        &self,
        ws: WorkspaceId,
        period: Period,
        now: i64,
    ) -> Result<notify::Notification, StoreError> {
        let settings = self.settings(ws).await?;
        let len = period.end_ms - period.start_ms;
        let q = super::rules::watched(&settings, period.start_ms, period.end_ms);
        let before = super::rules::watched(&settings, period.start_ms - len, period.start_ms);
        let store = self.store();
        let spend = store
            .aggregate(ws, by_cost(&q, vec![], 1))
            .await?
            .total()
            .cost;
        let spend_before = store
            .aggregate(ws, by_cost(&before, vec![], 1))
            .await?
            .total()
            .cost;
        let rows = store
            .aggregate(
                ws,
                by_cost(&q, vec![Dimension::EndpointTag], crate::query::MAX_LIMIT),
            )
            .await?
            .rows;
        let old = if rows.is_empty() {
            Vec::new()
        } else {
            let one = only_groups(&by_cost(&before, vec![Dimension::EndpointTag], 1), &rows);
            store.aggregate(ws, one).await?.rows
        };
        let mut movers: Vec<Mover> = rows
            .iter()
            .map(|r| Mover {
                endpoint: r.group[0].clone(),
                now: r.sums.cost,
                before: old
                    .iter()
                    .find(|o| o.group == r.group)
                    .map_or(Usd(0), |o| o.sums.cost),
            })
            .collect();
        // Endpoints that spent before and nothing now move too (down to zero).
        let top_before = store
            .aggregate(ws, by_cost(&before, vec![Dimension::EndpointTag], MOVERS))
            .await?
            .rows;
        for r in top_before {
            if !rows.iter().any(|n| n.group == r.group) {
                movers.push(Mover {
                    endpoint: r.group[0].clone(),
                    now: Usd(0),
                    before: r.sums.cost,
                });
            }
        }
        movers.sort_by_key(|m| std::cmp::Reverse((m.now.0 as i128 - m.before.0 as i128).abs()));
        movers.truncate(MOVERS);
        let (unprofitable, unprofitable_count) = self.unprofitable(ws, &q).await?;
        let summary = Summary {
            spend,
            spend_before,
            movers,
            budgets_at_risk: self.budgets_at_risk(ws, now).await?,
            unprofitable,
            unprofitable_count,
            firing: self.firing(ws).await?,
        };
        let mut n = notify::summary_digest(&self.alert_notifications(ws).await?, period, &summary);
        n.link = Some(format!("{}/alerts", self.public_url()));
        Ok(n)
    }

    /// "name: 85% of $100.00 per month (warning)" for each budget over a threshold or
    /// projected to run out.
    async fn budgets_at_risk(&self, ws: WorkspaceId, now: i64) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for budget in self.budgets().list(ws).await? {
            let status = self.budgets().status(ws, &budget, now, MEMBER_PAGE).await?;
            let at_risk =
                status.state != crate::budget::State::Ok || status.projected_exhaustion.is_some();
            if at_risk {
                out.push(format!(
                    "{}: {:.0}% of {} per {}{}",
                    budget.name,
                    status.used_pct,
                    budget.limit_usd,
                    budget.period.as_str(),
                    status
                        .projected_exhaustion
                        .as_ref()
                        .map(|at| format!(", projected to run out at {at}"))
                        .unwrap_or_default()
                ));
            }
        }
        Ok(out)
    }

    /// The period's most unprofitable tenants (revenue below AI cost, from the margin
    /// report: plan prices, overrides and one-offs), at most five, and how many in all.
    async fn unprofitable(
        &self,
        ws: WorkspaceId,
        q: &crate::query::Query,
    ) -> Result<(Vec<String>, usize), StoreError> {
        let plans = self.budgets().plans(ws).await?;
        let book = RevenueBook::load(
            self.store(),
            ws,
            plans,
            self.budgets().plan_history(ws).await?,
        )
        .await?;
        let report = margin(self.store(), ws, &book, q, (0, UNPROFITABLE)).await?;
        let lines = report
            .tenants
            .iter()
            .filter(|t| t.margin_usd.0 < 0)
            .map(|t| {
                format!(
                    "{}: margin {} ({} revenue, {} AI cost)",
                    t.tenant_id,
                    t.margin_usd.readable(),
                    t.revenue_usd.readable(),
                    t.cost_usd.readable()
                )
            })
            .collect();
        Ok((lines, report.totals.unprofitable))
    }

    async fn firing(&self, ws: WorkspaceId) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store()
            .objects(Some(ws), ALERT)
            .await?
            .iter()
            .filter(|o| o.body["state"] == json!("firing"))
            .filter_map(|o| o.body["title"].as_str().map(str::to_string))
            .collect())
    }

    /// Stored alerts as the notifications they sent (fired, and resolved).
    async fn alert_notifications(
        &self,
        ws: WorkspaceId,
    ) -> Result<Vec<notify::Notification>, StoreError> {
        let mut out = Vec::new();
        for o in self.store().objects(Some(ws), ALERT).await? {
            let b = &o.body;
            let severity = if b["severity"] == json!("critical") {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let changes = [
                (NotificationState::Firing, &b["firedAt"]),
                (NotificationState::Resolved, &b["resolvedAt"]),
            ];
            for (state, at) in changes {
                let Some(at_ms) = ms_of(at) else { continue };
                out.push(notify::Notification {
                    id: format!("alert_{}", o.id),
                    dedup_key: b["key"].as_str().unwrap_or_default().to_string(),
                    state,
                    severity,
                    title: b["title"].as_str().unwrap_or_default().to_string(),
                    text: String::new(),
                    drivers: Vec::new(),
                    link: None,
                    payload: Value::Null,
                    at_ms,
                });
            }
        }
        Ok(out)
    }
}

fn ms_of(v: &Value) -> Option<i64> {
    v.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}
