//! The reference: what a store must answer, computed in plain Rust from the events it
//! was given, in arrival order. Dedupe follows docs/event-contract.md ("Retries",
//! `src/dedupe.rs`), restated here independently: the same (id, attempt) again is a
//! duplicate; a new attempt replaces the stored one when it ranks higher by (has usage,
//! success, lower attempt number), a total order, so the call ends as its best attempt
//! whatever the arrival order; the winner describes the whole call, environment and data
//! mode included. Aggregates, ordering and cuts are computed without the library's
//! `answer`.

use burnrate::event::{DataMode, Environment, Event, PricedEvent, Pricing, Status};
use burnrate::money::Usd;
use burnrate::query::{Answer, Dimension, Filters, Measure, Query, Row, SumOverflow, Sums};
use burnrate::store::{
    RequestValues, SpendEffect, StoredEvent, UnpricedModel, WorkspaceId, WriteResult,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// A logical call as the store must hold it.
#[derive(Debug, Clone)]
pub struct Call {
    pub workspace: WorkspaceId,
    /// None for an id-less call (the store names it).
    pub id: Option<String>,
    /// The attempt that describes the call (its winner).
    pub event: Event,
    pub pricing: Pricing,
    /// Bit n-1 set = attempt n seen.
    pub mask: u64,
    /// The requests (by index) that inserted the call and that last changed it.
    pub first_request: usize,
    pub last_request: usize,
    /// (endpoint, prompt version, time, environment, data mode) of every attempt
    /// accepted for the call.
    pub seen: Vec<(String, Option<String>, i64, Environment, DataMode)>,
}

impl Call {
    pub fn ts(&self) -> i64 {
        self.event.timestamp_ms
    }

    pub fn attempts(&self) -> u32 {
        self.mask.count_ones()
    }

    /// What the call adds to a group's sums.
    pub fn sums(&self) -> Sums {
        let e = &self.event;
        Sums {
            requests: 1,
            attempts: self.attempts() as u64,
            cost: self.pricing.cost.unwrap_or(Usd(0)),
            priced: self.pricing.cost.is_some() as u64,
            input: e.tokens.input,
            cached: e.tokens.cached,
            cache_write: e.tokens.cache_write,
            output: e.tokens.output,
            reasoning: e.tokens.reasoning,
            latency_sum: e.latency_ms.unwrap_or(0) as u64,
            latency_count: e.latency_ms.is_some() as u64,
            errors: (e.status != Status::Success) as u64,
            usage_missing: e.usage_missing as u64,
            idless: self.id.is_none() as u64,
        }
    }

    /// The call as `Store::events` must list it; the store's own values of
    /// `received_at` (and of the id of an id-less call) are checked apart.
    pub fn stored_event(&self) -> StoredEvent {
        let e = &self.event;
        let p = &self.pricing;
        StoredEvent {
            external_request_id: self.id.clone().unwrap_or_default(),
            idless: self.id.is_none(),
            timestamp: iso(e.timestamp_ms),
            received_at: String::new(),
            provider: e.provider.clone(),
            model: e.model.clone(),
            endpoint_tag: e.endpoint_tag.clone(),
            prompt_version: e.prompt_version.clone(),
            tenant_id: e.tenant_id.clone(),
            user_id: e.user_id.clone(),
            input_tokens: e.tokens.input,
            cached_tokens: e.tokens.cached,
            cache_write_tokens: e.tokens.cache_write,
            output_tokens: e.tokens.output,
            reasoning_tokens: e.tokens.reasoning,
            total_tokens: e.tokens.input.saturating_add(e.tokens.output),
            image_count: e.image_count,
            latency_ms: e.latency_ms,
            status: e.status.as_str(),
            error_code: e.error_code.clone(),
            data_mode: e.data_mode.as_str(),
            environment: e.environment.as_str(),
            operation: e.operation.as_str(),
            service_tier: e.service_tier.as_str(),
            usage_missing: e.usage_missing,
            tags: e
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
            attempt: e.attempt,
            attempts: self.attempts(),
            cost_usd: p.cost,
            cost_source: p.source.map(|s| s.as_str()),
            price_entry_id: p.price_entry_id.clone(),
            price_book_version: p.price_book_version.clone(),
            repriced_at: None,
        }
    }

    pub fn request_values(&self) -> RequestValues {
        RequestValues {
            cost: self.pricing.cost,
            input_tokens: self.event.tokens.input,
            output_tokens: self.event.tokens.output,
            latency_ms: self.event.latency_ms,
        }
    }
}

pub fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// Every call the store holds, in insertion order.
#[derive(Debug, Default)]
pub struct Reference {
    pub calls: Vec<Call>,
    by_id: HashMap<(WorkspaceId, String), usize>,
}

impl Reference {
    /// Apply one ingest request, as the store must: one result per event, and the cost
    /// change of each event that is not a duplicate.
    pub fn ingest(
        &mut self,
        workspace: WorkspaceId,
        events: &[PricedEvent],
        request: usize,
    ) -> (Vec<WriteResult>, Vec<Effect>) {
        let mut effects = Vec::new();
        let results = events
            .iter()
            .map(|p| {
                let (result, effect) = self.ingest_one(workspace, p, request);
                effects.extend(effect);
                result
            })
            .collect();
        (results, effects)
    }

    fn ingest_one(
        &mut self,
        workspace: WorkspaceId,
        p: &PricedEvent,
        request: usize,
    ) -> (WriteResult, Vec<Effect>) {
        let e = &p.event;
        let bit = 1u64 << (e.attempt - 1);
        let seen = (
            e.endpoint_tag.clone(),
            e.prompt_version.clone(),
            e.timestamp_ms,
            e.environment,
            e.data_mode,
        );
        let new_cost = p.pricing.cost.map(|c| c.0);
        // `counted`: the attempt whose dimensions and time the change is counted under;
        // `call`: the stored call, whose environment and data mode every effect keeps.
        let effect =
            |counted: &Event, call: &Event, cost: Option<i64>, sign: i64, new: bool| Effect {
                external_request_id: e.external_request_id.clone(),
                tenant_id: counted.tenant_id.clone(),
                endpoint_tag: counted.endpoint_tag.clone(),
                ts_ms: counted.timestamp_ms,
                environment: call.environment.as_str(),
                data_mode: call.data_mode.as_str(),
                cost_delta: sign * cost.unwrap_or(0),
                unpriced_delta: sign * cost.is_none() as i64,
                new_call_cost: cost.filter(|_| new),
            };
        let existing = e
            .external_request_id
            .as_ref()
            .and_then(|id| self.by_id.get(&(workspace, id.clone())).copied());
        let Some(i) = existing else {
            if let Some(id) = &e.external_request_id {
                self.by_id.insert((workspace, id.clone()), self.calls.len());
            }
            self.calls.push(Call {
                workspace,
                id: e.external_request_id.clone(),
                event: e.clone(),
                pricing: p.pricing.clone(),
                mask: bit,
                first_request: request,
                last_request: request,
                seen: vec![seen],
            });
            return (WriteResult::Inserted, vec![effect(e, e, new_cost, 1, true)]);
        };
        let call = &mut self.calls[i];
        if call.mask & bit != 0 {
            return (WriteResult::Duplicate, Vec::new());
        }
        let rank = |e: &Event| {
            (
                !e.usage_missing,
                e.status == Status::Success,
                std::cmp::Reverse(e.attempt),
            )
        };
        let replaced = rank(e) > rank(&call.event);
        call.mask |= bit;
        call.last_request = request;
        call.seen.push(seen);
        let old_cost = call.pricing.cost.map(|c| c.0);
        if !replaced {
            // Nothing of the cost changes; the effect settles the attempt's reservation.
            let mut same = effect(e, &call.event, None, 0, false);
            same.unpriced_delta = 0;
            return (WriteResult::Attempt { replaced }, vec![same]);
        }
        let retract = effect(&call.event, &call.event, old_cost, -1, false);
        let add = effect(e, e, new_cost, 1, false);
        call.event = e.clone();
        call.pricing = p.pricing.clone();
        (WriteResult::Attempt { replaced }, vec![retract, add])
    }

    /// Forget the calls `gone` selects (an erasure); returns them.
    pub fn remove(&mut self, gone: impl Fn(&Call) -> bool) -> Vec<Call> {
        let (removed, kept) = std::mem::take(&mut self.calls).into_iter().partition(gone);
        self.calls = kept;
        self.by_id = self
            .calls
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some(((c.workspace, c.id.clone()?), i)))
            .collect();
        removed
    }

    /// Retention: the calls `pruned` selects keep counting in every answer (the pruned
    /// history) but are no longer found by id, so a later attempt of one is a new call
    /// (its stored attempts are gone).
    pub fn forget_ids(&mut self, pruned: impl Fn(&Call) -> bool) {
        let calls = &self.calls;
        self.by_id.retain(|_, i| !pruned(&calls[*i]));
    }

    /// The calls of a workspace in [from, to) that match the filters.
    pub fn matching<'a>(
        &'a self,
        workspace: WorkspaceId,
        window: Option<(i64, i64)>,
        filters: Option<&'a Filters>,
    ) -> impl Iterator<Item = &'a Call> + 'a {
        self.calls.iter().filter(move |c| {
            c.workspace == workspace
                && window.is_none_or(|(from, to)| from <= c.ts() && c.ts() < to)
                && filters.is_none_or(|f| matches(&c.event, f))
        })
    }

    /// The matching calls newest first, as groups of equal times (the order inside a
    /// group is not part of the contract).
    pub fn newest_first<'a>(
        &'a self,
        workspace: WorkspaceId,
        window: Option<(i64, i64)>,
        filters: Option<&'a Filters>,
    ) -> Vec<Vec<&'a Call>> {
        let mut by_ts: BTreeMap<i64, Vec<&Call>> = BTreeMap::new();
        for c in self.matching(workspace, window, filters) {
            by_ts.entry(c.ts()).or_default().push(c);
        }
        by_ts.into_values().rev().collect()
    }

    /// The exact answer to an aggregate query.
    pub fn answer(&self, workspace: WorkspaceId, q: &Query) -> Result<Answer, SumOverflow> {
        let mut groups: BTreeMap<(Option<i64>, Vec<String>), Sums> = BTreeMap::new();
        for c in self.matching(workspace, Some((q.from_ms, q.to_ms)), Some(&q.filters)) {
            let bucket = q.bucket.map(|b| c.ts().div_euclid(b.millis()) * b.millis());
            let labels = q.group_by.iter().map(|d| label(&c.event, d)).collect();
            groups.entry((bucket, labels)).or_default().add(&c.sums())?;
        }
        let mut totals: BTreeMap<Option<i64>, Sums> = BTreeMap::new();
        for ((bucket, _), sums) in &groups {
            totals.entry(*bucket).or_default().add(sums)?;
        }
        Sums::total(totals.values())?;
        let order = q.order_by.unwrap_or(Measure::CostUsd);
        let mut rows: Vec<Row> = groups
            .into_iter()
            .map(|((bucket_ms, group), sums)| Row {
                group,
                bucket_ms,
                sums,
            })
            .collect();
        rows.sort_by(|a, b| {
            let by_measure = cmp_measure(&a.sums, &b.sums, order);
            a.bucket_ms
                .cmp(&b.bucket_ms)
                .then(if q.ascending {
                    by_measure
                } else {
                    by_measure.reverse()
                })
                .then_with(|| a.group.cmp(&b.group))
        });
        let cut = rows.len().saturating_sub(q.limit);
        // Groups per first label, cut ones included, when asked.
        let mut first_counts: BTreeMap<String, u64> = BTreeMap::new();
        if q.count_by_first {
            for first in rows.iter().filter_map(|r| r.group.first()) {
                *first_counts.entry(first.clone()).or_default() += 1;
            }
        }
        rows.truncate(q.limit);
        Ok(Answer {
            first_counts: first_counts.into_iter().collect(),
            rows,
            totals: totals
                .into_iter()
                .map(|(bucket_ms, sums)| Row {
                    group: Vec::new(),
                    bucket_ms,
                    sums,
                })
                .collect(),
            cut,
            // Which commits a store's answer saw is the store's to say.
            seen: 0,
            raw_from_ms: None,
        })
    }

    /// Per (endpoint, prompt version) in the environments and data modes of `f`: the
    /// span of the calls as stored now (the least a store may answer) and of every
    /// attempt accepted for them (the most).
    pub fn versions_seen(&self, workspace: WorkspaceId, f: &Filters) -> VersionSpans {
        let mut spans = VersionSpans::default();
        let scoped = |env: &Environment, mode: &DataMode| {
            (f.environment.is_empty() || f.environment.contains(env))
                && (f.data_mode.is_empty() || f.data_mode.contains(mode))
        };
        let key = |endpoint: &str, version: &Option<String>| {
            (
                endpoint.to_string(),
                version.clone().unwrap_or_else(|| "unversioned".into()),
            )
        };
        for c in self.calls.iter().filter(|c| c.workspace == workspace) {
            let now = scoped(&c.event.environment, &c.event.data_mode);
            if now {
                widen(
                    &mut spans.now,
                    key(&c.event.endpoint_tag, &c.event.prompt_version),
                    c.ts(),
                );
            }
            // The upper bound: every attempt of a call that was ever in scope (by its
            // winner now or any attempt's environment and data mode), whichever of its
            // attempts a store kept a sighting of.
            if now || c.seen.iter().any(|s| scoped(&s.3, &s.4)) {
                for (endpoint, version, ts, _, _) in &c.seen {
                    widen(&mut spans.ever, key(endpoint, version), *ts);
                }
            }
        }
        spans
    }

    /// Calls without a price across all workspaces, per (provider, model).
    pub fn unpriced_models(&self) -> Vec<UnpricedModel> {
        let mut by_model: BTreeMap<(String, String), (u64, i64)> = BTreeMap::new();
        for c in self.calls.iter().filter(|c| c.pricing.cost.is_none()) {
            let entry = by_model
                .entry((c.event.provider.clone(), c.event.model.clone()))
                .or_insert((0, i64::MIN));
            *entry = (entry.0 + 1, entry.1.max(c.ts()));
        }
        by_model
            .into_iter()
            .map(|((provider, model), (events, last))| UnpricedModel {
                provider,
                model,
                events,
                last_seen: iso(last),
            })
            .collect()
    }
}

/// The parts of a `SpendEffect` the contract fixes: whose call, the tenant, endpoint and
/// time the change is counted under, its environment and data mode (those of the call
/// it leaves or joins: the old winner's for a retraction, the new one's otherwise), the change of its cost and of its unpriced count, and a new
/// call's cost. A replaced attempt is two effects: the old attempt's cost taken back
/// under the old attempt's tenant, endpoint and time, then the new attempt's whole cost
/// under its own, so a retry that names another tenant moves the cost exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub external_request_id: Option<String>,
    pub tenant_id: Option<String>,
    pub endpoint_tag: String,
    pub ts_ms: i64,
    pub environment: &'static str,
    pub data_mode: &'static str,
    pub cost_delta: i64,
    pub unpriced_delta: i64,
    pub new_call_cost: Option<i64>,
}

impl Effect {
    pub fn of(e: &SpendEffect) -> Effect {
        Effect {
            external_request_id: e.external_request_id.clone(),
            tenant_id: e.tenant_id.clone(),
            endpoint_tag: e.endpoint_tag.clone(),
            ts_ms: e.ts_ms,
            environment: e.environment.as_str(),
            data_mode: e.data_mode.as_str(),
            cost_delta: e.cost_delta,
            unpriced_delta: e.unpriced_delta,
            new_call_cost: e.new_call_cost,
        }
    }
}

/// (endpoint, prompt version) -> (first ms, last ms).
pub type Spans = BTreeMap<(String, String), (i64, i64)>;

#[derive(Debug, Default)]
pub struct VersionSpans {
    pub now: Spans,
    pub ever: Spans,
}

fn widen(spans: &mut Spans, key: (String, String), ts: i64) {
    let span = spans.entry(key).or_insert((ts, ts));
    *span = (span.0.min(ts), span.1.max(ts));
}

/// A text dimension's value of an event (None = missing).
fn text_value<'a>(e: &'a Event, d: &Dimension) -> Option<&'a str> {
    match d {
        Dimension::EndpointTag => Some(&e.endpoint_tag),
        Dimension::PromptVersion => e.prompt_version.as_deref(),
        Dimension::TenantId => e.tenant_id.as_deref(),
        Dimension::UserId => e.user_id.as_deref(),
        Dimension::Provider => Some(&e.provider),
        Dimension::Model => Some(&e.model),
        Dimension::Tag(key) => e.tags.get(key).map(String::as_str),
        Dimension::Environment => Some(e.environment.as_str()),
        Dimension::DataMode => Some(e.data_mode.as_str()),
        Dimension::Status => Some(e.status.as_str()),
    }
}

/// What a group shows for an event: its value, or the dimension's missing label.
pub fn label(e: &Event, d: &Dimension) -> String {
    text_value(e, d).unwrap_or(d.missing_label()).to_string()
}

/// Whether an event passes the filters: every non-empty vocabulary list contains its
/// value; every text or tag list contains its value, or its missing label when absent.
pub fn matches(e: &Event, f: &Filters) -> bool {
    let listed = |values: &[String], d: &Dimension| values.iter().any(|v| *v == label(e, d));
    (f.environment.is_empty() || f.environment.contains(&e.environment))
        && (f.data_mode.is_empty() || f.data_mode.contains(&e.data_mode))
        && (f.status.is_empty() || f.status.contains(&e.status))
        && f.text.iter().all(|(d, values)| listed(values, d))
        && f.tags
            .iter()
            .all(|(key, values)| listed(values, &Dimension::Tag(key.clone())))
}

/// A measure's exact value as numerator / denominator; None where it is undefined (a
/// cost with every call unpriced, a ratio over nothing), which sorts below any value.
fn measure(s: &Sums, m: Measure) -> Option<(i128, i128)> {
    let n = |v: u64| v as i128;
    let ratio = |a: i128, b: u64| (b > 0).then_some((a, b as i128));
    match m {
        Measure::Requests => Some((n(s.requests), 1)),
        Measure::Attempts => Some((n(s.attempts), 1)),
        Measure::CostUsd => (s.priced > 0 || s.requests == 0).then_some((s.cost.0 as i128, 1)),
        Measure::InputTokens => Some((n(s.input), 1)),
        Measure::OutputTokens => Some((n(s.output), 1)),
        Measure::CachedTokens => Some((n(s.cached), 1)),
        Measure::CacheWriteTokens => Some((n(s.cache_write), 1)),
        Measure::ReasoningTokens => Some((n(s.reasoning), 1)),
        Measure::CostPerRequest => ratio(s.cost.0 as i128, s.priced),
        Measure::TokensPerRequest => ratio(n(s.input) + n(s.output), s.requests),
        Measure::LatencyAvgMs => ratio(n(s.latency_sum), s.latency_count),
        Measure::ErrorRate => ratio(n(s.errors), s.requests),
        Measure::RetryRatio => ratio(n(s.attempts) - n(s.requests), s.requests),
        Measure::Unpriced => Some((n(s.requests) - n(s.priced), 1)),
        Measure::CacheHitRate => ratio(n(s.cached), s.input),
    }
}

/// Ascending order of a measure, exactly (cross-multiplied; test values are small).
fn cmp_measure(a: &Sums, b: &Sums, m: Measure) -> Ordering {
    match (measure(a, m), measure(b, m)) {
        (Some((na, da)), Some((nb, db))) => (na * db).cmp(&(nb * da)),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}
