//! Alerts as the server runs them: settings per workspace, the evaluation every minute
//! (which also sends the channels' scheduled digests, `digests.rs`), stored alerts with
//! their history, channels and every delivery attempt.

use super::members;
use super::rules::{evaluate, Context};
use super::state::{step, AlertState, Known, Transition};
use super::{AlertSettings, Finding, RuleKind, Severity};
use crate::budget::service::Budgets;
use crate::event::FieldError;
use crate::notify::{self, Channel, Notification, NotificationState, RetryPolicy};
use crate::price::PriceBook;
use crate::store::{Store, StoreError, StoredObject, WorkspaceId};
use serde_json::{json, Value};
use std::sync::Arc;

pub const ALERT: &str = "alert";
pub const SETTINGS: &str = "alert_settings";
pub const CHANNEL: &str = "channel";
pub const DELIVERY: &str = "delivery";
/// A person's acknowledgement of one alert (`{"alertId": id, "at": time}`), kept apart
/// from the alert so the minute's evaluation, which rewrites firing alerts, never loses it.
pub const ACK: &str = "alert_ack";
/// Which node evaluates a workspace's rules: one object per workspace (the smallest id
/// when two were created at once), `{"node": token, "untilMs": ms}`.
pub const LEASE: &str = "alert_lease";

/// How long a lease holds without renewal: a node killed without releasing it delays
/// the others' evaluations by at most this.
const LEASE_MS: i64 = 90_000;
/// After writing a lease, wait this long before reading who holds it: a node that wrote
/// at nearly the same moment has its row stored by then, and both read the same holder.
const LEASE_SETTLE: std::time::Duration = std::time::Duration::from_millis(1_000);

/// Alerts kept per workspace; older resolved ones are dropped.
const HISTORY: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A channel named by its integer id or by its name.
#[derive(Debug, Clone, Copy)]
pub enum ChannelRef<'a> {
    Id(i64),
    Name(&'a str),
}

pub struct Alerts {
    store: Arc<dyn Store>,
    budgets: Arc<Budgets>,
    http: reqwest::Client,
    /// Absolute base of dashboard links in notifications.
    public_url: String,
    clock: crate::clock::Clock,
    pub retry: RetryPolicy,
    /// This process among the nodes that may evaluate (a random token).
    node: u64,
    /// One evaluation at a time in this process (the minute loop and the API).
    evaluating: tokio::sync::Mutex<()>,
    /// Who called on each recent day, for `new_user_burst` (made once an hour).
    seen: super::abuse::SeenCache,
}

impl Alerts {
    /// The dashboard's base URL as people reach it (`--public-url`), no trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub(super) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(super) fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    pub fn new(
        store: Arc<dyn Store>,
        budgets: Arc<Budgets>,
        public_url: String,
        clock: crate::clock::Clock,
    ) -> Alerts {
        Alerts {
            store,
            budgets,
            http: notify::http_client(),
            public_url: public_url.trim_end_matches('/').to_string(),
            clock,
            retry: RetryPolicy::default(),
            node: rand::random::<u64>() >> 11,
            evaluating: tokio::sync::Mutex::new(()),
            seen: Default::default(),
        }
    }

    pub async fn settings(&self, ws: WorkspaceId) -> Result<AlertSettings, StoreError> {
        let stored = self.store.objects(Some(ws), SETTINGS).await?;
        Ok(stored
            .last()
            .and_then(|o| AlertSettings::from_json(&o.body).ok())
            .unwrap_or_default())
    }

    /// Merge a change (`{"dataMode": .., "rules": {"retry_storm": {...}}}`) into the
    /// workspace's settings.
    pub async fn change_settings(
        &self,
        ws: WorkspaceId,
        change: &Value,
    ) -> Result<AlertSettings, AlertError> {
        let mut merged = self.settings(ws).await?.to_json();
        merge(&mut merged, change);
        let settings = AlertSettings::from_json(&merged).map_err(AlertError::Invalid)?;
        let stored = self.store.objects(Some(ws), SETTINGS).await?;
        let id = stored.last().map(|o| o.id);
        self.store
            .put_object(ws, SETTINGS, id, settings.to_json())
            .await?;
        Ok(settings)
    }

    pub async fn channels(&self, ws: WorkspaceId) -> Result<Vec<Channel>, StoreError> {
        let stored = self.store.objects(Some(ws), CHANNEL).await?;
        Ok(stored.iter().filter_map(channel_of).collect())
    }

    pub async fn add_channel(&self, ws: WorkspaceId, body: &Value) -> Result<Channel, AlertError> {
        let mut body = body.clone();
        let Some(obj) = body.as_object_mut() else {
            return Err(AlertError::Invalid(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        };
        // The row holds the id; a client's own "id" is not kept.
        obj.remove("id");
        // A digest schedule is checked field by field and stored in its checked form.
        if let Some(d) = obj.get("digest").filter(|d| !d.is_null()) {
            let schedule = notify::DigestSchedule::from_json(d).map_err(AlertError::Invalid)?;
            if obj.get("type") == Some(&json!("pagerduty")) {
                return Err(AlertError::Invalid(vec![FieldError::new(
                    "digest",
                    "PagerDuty pages people; send digests to a webhook or Slack channel",
                )]));
            }
            obj.insert("digest".into(), json!(schedule));
        }
        // A webhook without a secret gets one (shown once in the reply).
        if obj.get("type") == Some(&json!("webhook")) && !obj.contains_key("secret") {
            obj.insert("secret".into(), json!(notify::new_webhook_secret()));
        }
        let channel: Channel = serde_json::from_value(body.clone()).map_err(|e| {
            AlertError::Invalid(vec![FieldError::new(
                "type",
                format!("is not a valid channel: {e}"),
            )])
        })?;
        if channel.name.trim().is_empty() {
            return Err(AlertError::Invalid(vec![FieldError::new(
                "name",
                "is required",
            )]));
        }
        channel.kind.check().map_err(AlertError::Invalid)?;
        let id = self.store.put_object(ws, CHANNEL, None, body).await?;
        let channel = Channel { id, ..channel };
        self.start_digests(ws, &channel, (self.clock)()).await?;
        Ok(channel)
    }

    pub async fn delete_channel(&self, ws: WorkspaceId, id: i64) -> Result<bool, StoreError> {
        self.store.delete_object(ws, CHANNEL, id).await
    }

    /// Acknowledge alert `id` at `now` (someone is on it): shown with the alert as
    /// `acknowledgedAt`; notifications and the state machine are unchanged. NotFound for
    /// an alert that does not exist.
    pub async fn acknowledge(&self, ws: WorkspaceId, id: i64, now: i64) -> Result<(), StoreError> {
        let alerts = self.store.objects(Some(ws), ALERT).await?;
        if !alerts.iter().any(|a| a.id == id) {
            return Err(StoreError::NotFound(format!("alert {id}")));
        }
        let acks = self.store.objects(Some(ws), ACK).await?;
        let existing = acks.iter().find(|a| a.body["alertId"] == json!(id));
        let body = json!({"alertId": id, "at": crate::report::rfc3339(now)});
        self.store
            .put_object(ws, ACK, existing.map(|a| a.id), body)
            .await?;
        Ok(())
    }

    /// Mute a rule until `until_ms` (the rule's `mutedUntil` setting, as PUT
    /// /v1/alert-rules sets it).
    pub async fn mute(
        &self,
        ws: WorkspaceId,
        rule: RuleKind,
        until_ms: i64,
    ) -> Result<AlertSettings, AlertError> {
        let change =
            json!({"rules": {rule.as_str(): {"mutedUntil": crate::report::rfc3339(until_ms)}}});
        self.change_settings(ws, &change).await
    }

    /// Stored alerts, newest first, with their deliveries.
    pub async fn alerts(&self, ws: WorkspaceId) -> Result<Vec<Value>, StoreError> {
        let deliveries = self.store.objects(Some(ws), DELIVERY).await?;
        let acks = self.store.objects(Some(ws), ACK).await?;
        let mut out: Vec<Value> = self
            .store
            .objects(Some(ws), ALERT)
            .await?
            .into_iter()
            .rev()
            .map(|o| {
                let mut v = o.body;
                v["id"] = json!(o.id);
                let mine: Vec<Value> = deliveries
                    .iter()
                    .filter(|d| d.body["alertId"] == json!(o.id))
                    .map(|d| d.body.clone())
                    .collect();
                v["deliveries"] = json!(mine);
                v["acknowledgedAt"] = acks
                    .iter()
                    .find(|a| a.body["alertId"] == json!(o.id))
                    .map_or(Value::Null, |a| a.body["at"].clone());
                v
            })
            .collect();
        out.sort_by_key(|a| std::cmp::Reverse(a["state"] == json!("firing")));
        Ok(out)
    }

    /// Findings at `now` without storing or sending anything.
    pub async fn findings(
        &self,
        ws: WorkspaceId,
        book: &PriceBook,
        now: i64,
    ) -> Result<Vec<Finding>, StoreError> {
        let settings = self.settings(ws).await?;
        let ctx = Context {
            store: self.store.as_ref(),
            ws,
            settings: &settings,
            budgets: Some(&self.budgets),
            book,
            now,
            seen: Some(&self.seen),
        };
        evaluate(&ctx).await
    }

    /// One evaluation: findings, transitions, stored alerts, notifications. Only the
    /// node holding the workspace's lease evaluates (others answer 0 transitions), one
    /// evaluation at a time, so no rule fires or notifies twice across nodes.
    pub async fn evaluate_once(
        &self,
        ws: WorkspaceId,
        book: &PriceBook,
    ) -> Result<usize, StoreError> {
        let _one = self.evaluating.lock().await;
        if !self.hold_lease(ws).await? {
            tracing::debug!(workspace = ws, "alert rules evaluated by another node");
            return Ok(0);
        }
        let now = (self.clock)();
        let settings = self.settings(ws).await?;
        let findings = self.findings(ws, book, now).await?;
        let stored = self.store.objects(Some(ws), ALERT).await?;
        let known: Vec<Known> = stored.iter().filter_map(known_of).collect();
        let findings = self.cap_members(ws, findings, &stored, now).await?;
        let cooldown = |kind: RuleKind| settings.rule(kind).cooldown_minutes as i64 * 60_000;
        let transitions = step(&known, findings, now, cooldown);
        let changed = transitions.len();
        for t in transitions {
            match t {
                Transition::Fire(f) => {
                    let body = alert_body(&f, AlertState::Firing, now, None, now);
                    let id = self.store.put_object(ws, ALERT, None, body.clone()).await?;
                    self.notify(ws, id, &f, NotificationState::Firing, now)
                        .await?;
                }
                Transition::Refresh { id, finding } => {
                    let fired = fired_at(&stored, id).unwrap_or(now);
                    let body = alert_body(&finding, AlertState::Firing, fired, None, now);
                    self.store.put_object(ws, ALERT, Some(id), body).await?;
                }
                Transition::Resolve { id } => {
                    let Some(old) = stored.iter().find(|o| o.id == id) else {
                        continue;
                    };
                    let mut body = old.body.clone();
                    body["state"] = json!("resolved");
                    body["resolvedAt"] = json!(crate::report::rfc3339(now));
                    self.store
                        .put_object(ws, ALERT, Some(id), body.clone())
                        .await?;
                    // A member alert resolves when its period ends (or its spend is
                    // erased): no news, and hundreds of them would resolve at once.
                    if let Some(f) = finding_of(&body).filter(|f| !members::is_member_key(&f.key)) {
                        self.notify(ws, id, &f, NotificationState::Resolved, now)
                            .await?;
                    }
                }
            }
        }
        self.prune(ws, &stored).await?;
        self.send_digests(ws, now).await?;
        Ok(changed)
    }

    /// Member alerts of budgets for each value (`members.rs`): those already firing stay,
    /// at most `members::PER_EVALUATION` new ones per budget and evaluation, the rest in
    /// one summary; every key told is added to its budget period's cover object first,
    /// so a member is never told twice about one mark in one period.
    async fn cap_members(
        &self,
        ws: WorkspaceId,
        findings: Vec<Finding>,
        stored: &[StoredObject],
        now: i64,
    ) -> Result<Vec<Finding>, StoreError> {
        let covers = self.store.objects(Some(ws), members::COVER).await?;
        let mut told = members::Told::default();
        for o in &covers {
            told.covered.extend(members::cover_keys(&o.body));
        }
        for o in stored {
            let Some(key) = o.body["key"].as_str() else {
                continue;
            };
            let Some(group) = members::group_of_key(key) else {
                continue;
            };
            let firing = o.body["state"] == json!("firing");
            if firing {
                told.firing.insert(key.to_string());
            }
            if let Some(f) = finding_of(&o.body).filter(members::is_summary) {
                *told.summary_count.entry(group.to_string()).or_default() += 1;
                if firing {
                    told.summaries.push(f);
                }
            }
        }
        let capped = members::cap(findings, &told, members::PER_EVALUATION);
        for (group, keys) in &capped.newly_told {
            let existing = covers.iter().find(|o| o.body["group"] == json!(group));
            let mut all = existing.map_or_else(Vec::new, |o| members::cover_keys(&o.body));
            all.extend(keys.iter().cloned());
            let end = capped
                .findings
                .iter()
                .filter(|f| members::group_of_key(&f.key) == Some(group.as_str()))
                .find_map(|f| ms_of(&f.evidence["periodEnd"]))
                .unwrap_or(now);
            let body = members::cover_body(group, end, &all);
            self.store
                .put_object(ws, members::COVER, existing.map(|o| o.id), body)
                .await?;
        }
        // Covers of periods that ended are no longer needed.
        for o in &covers {
            if o.body["periodEndMs"].as_i64().is_some_and(|end| end <= now) {
                self.store.delete_object(ws, members::COVER, o.id).await?;
            }
        }
        Ok(capped.findings)
    }

    /// Whether this node holds (or has just taken) the lease on evaluating `ws`'s rules.
    /// A free or expired lease is written with this node's token, then read back after
    /// `LEASE_SETTLE`: of nodes taking it at once, every one reads the same holder (the
    /// newest version of the lowest-id lease object).
    async fn hold_lease(&self, ws: WorkspaceId) -> Result<bool, StoreError> {
        let now = wall_ms();
        let lease = self.lease(ws).await?;
        let holder = lease.as_ref().map(|l| lease_holder(&l.body));
        let renewal = match holder {
            Some((node, until)) if node != self.node && until > now => return Ok(false),
            Some((node, until)) => node == self.node && until > now,
            None => false,
        };
        let body = json!({"node": self.node, "untilMs": now + LEASE_MS});
        self.store
            .put_object(ws, LEASE, lease.map(|l| l.id), body)
            .await?;
        if renewal {
            return Ok(true);
        }
        tokio::time::sleep(LEASE_SETTLE).await;
        let lease = self.lease(ws).await?;
        Ok(lease.is_some_and(|l| lease_holder(&l.body).0 == self.node))
    }

    /// The workspace's lease object: the lowest id, should two nodes have created one.
    async fn lease(&self, ws: WorkspaceId) -> Result<Option<StoredObject>, StoreError> {
        let leases = self.store.objects(Some(ws), LEASE).await?;
        Ok(leases.into_iter().min_by_key(|l| l.id))
    }

    /// Give up this node's leases (at shutdown), so another node evaluates at once.
    pub async fn release_leases(&self) -> Result<(), StoreError> {
        for ws in self.store.workspaces().await? {
            if let Some(l) = self.lease(ws.id).await? {
                if lease_holder(&l.body).0 == self.node {
                    let body = json!({"node": self.node, "untilMs": 0});
                    self.store
                        .put_object(ws.id, LEASE, Some(l.id), body)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Tell every channel, each delivery recorded with all its attempts.
    async fn notify(
        &self,
        ws: WorkspaceId,
        alert_id: i64,
        f: &Finding,
        state: NotificationState,
        now: i64,
    ) -> Result<(), StoreError> {
        let n = Notification {
            id: notify::new_notification_id(),
            dedup_key: f.key.clone(),
            state,
            severity: match f.severity {
                Severity::Warning => notify::Severity::Warning,
                Severity::Critical => notify::Severity::Critical,
            },
            title: f.title.clone(),
            text: f.text.clone(),
            drivers: f.drivers.clone(),
            link: Some(format!("{}{}", self.public_url, f.link)),
            payload: json!({"alertId": alert_id, "alert": f, "state": state}),
            at_ms: now,
        };
        for channel in self.channels(ws).await? {
            let report = self.send(&channel, &n).await;
            let record = json!({
                "alertId": alert_id, "channelId": channel.id, "channel": channel.name,
                "state": state, "delivered": report.delivered, "attempts": report.attempts,
            });
            self.store.put_object(ws, DELIVERY, None, record).await?;
        }
        Ok(())
    }

    pub(super) async fn send(&self, channel: &Channel, n: &Notification) -> notify::DeliveryReport {
        let clock = self.clock.clone();
        let now = move || clock();
        notify::deliver(
            &self.http,
            channel,
            n,
            &self.retry,
            &now,
            tokio::time::sleep,
        )
        .await
    }

    /// A test message to one channel, by id (the API) or name (the CLI also takes one).
    pub async fn test_channel(
        &self,
        ws: WorkspaceId,
        which: ChannelRef<'_>,
    ) -> Result<notify::DeliveryReport, StoreError> {
        let channel = self
            .channels(ws)
            .await?
            .into_iter()
            .find(|c| match which {
                ChannelRef::Id(id) => c.id == id,
                ChannelRef::Name(name) => c.name == name,
            })
            .ok_or_else(|| match which {
                ChannelRef::Id(id) => StoreError::NotFound(format!("channel {id}")),
                ChannelRef::Name(name) => StoreError::NotFound(format!("channel {name:?}")),
            })?;
        let n = Notification::test(
            &channel.name,
            Some(format!("{}/alerts", self.public_url)),
            (self.clock)(),
        );
        Ok(self.send(&channel, &n).await)
    }

    /// Keep the newest alerts; firing ones are never dropped.
    async fn prune(&self, ws: WorkspaceId, stored: &[StoredObject]) -> Result<(), StoreError> {
        if stored.len() <= HISTORY {
            return Ok(());
        }
        let excess = stored.len() - HISTORY;
        for old in stored
            .iter()
            .filter(|o| o.body["state"] == json!("resolved"))
            .take(excess)
        {
            self.store.delete_object(ws, ALERT, old.id).await?;
            // Its acknowledgement goes with it.
            for ack in self.store.objects(Some(ws), ACK).await? {
                if ack.body["alertId"] == json!(old.id) {
                    self.store.delete_object(ws, ACK, ack.id).await?;
                }
            }
        }
        Ok(())
    }
}

/// (node, until ms) of a lease body; a malformed one is free.
fn lease_holder(body: &Value) -> (u64, i64) {
    (
        body["node"].as_u64().unwrap_or(0),
        body["untilMs"].as_i64().unwrap_or(0),
    )
}

fn wall_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn alert_body(
    f: &Finding,
    state: AlertState,
    fired: i64,
    resolved: Option<i64>,
    seen: i64,
) -> Value {
    json!({
        "key": f.key, "rule": f.rule, "state": state, "severity": f.severity,
        "title": f.title, "text": f.text, "evidence": f.evidence, "drivers": f.drivers,
        "link": f.link,
        "firedAt": crate::report::rfc3339(fired),
        "resolvedAt": resolved.map(crate::report::rfc3339),
        "lastSeenAt": crate::report::rfc3339(seen),
    })
}

fn ms_of(v: &Value) -> Option<i64> {
    v.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn fired_at(stored: &[StoredObject], id: i64) -> Option<i64> {
    ms_of(&stored.iter().find(|o| o.id == id)?.body["firedAt"])
}

fn known_of(o: &StoredObject) -> Option<Known> {
    let b = &o.body;
    Some(Known {
        id: o.id,
        key: b["key"].as_str()?.to_string(),
        rule: RuleKind::parse(b["rule"].as_str()?)?,
        state: if b["state"] == json!("firing") {
            AlertState::Firing
        } else {
            AlertState::Resolved
        },
        resolved_at_ms: ms_of(&b["resolvedAt"]),
    })
}

fn finding_of(b: &Value) -> Option<Finding> {
    Some(Finding {
        rule: RuleKind::parse(b["rule"].as_str()?)?,
        key: b["key"].as_str()?.to_string(),
        severity: if b["severity"] == json!("critical") {
            Severity::Critical
        } else {
            Severity::Warning
        },
        title: b["title"].as_str()?.to_string(),
        text: b["text"].as_str().unwrap_or_default().to_string(),
        evidence: b["evidence"].clone(),
        drivers: serde_json::from_value(b["drivers"].clone()).unwrap_or_default(),
        link: b["link"].as_str().unwrap_or("/").to_string(),
    })
}

fn channel_of(o: &StoredObject) -> Option<Channel> {
    let mut body = o.body.clone();
    body["id"] = json!(o.id);
    serde_json::from_value(body).ok()
}

/// Deep-merge `change` into `base` (objects merge, anything else replaces).
fn merge(base: &mut Value, change: &Value) {
    match (base, change) {
        (Value::Object(b), Value::Object(c)) => {
            for (k, v) in c {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, c) => *b = c.clone(),
    }
}
