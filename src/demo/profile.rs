//! Cardinality profiles for demo and benchmark traffic. `small` is the demo's story
//! (`demo.rs`: 40 tenants, 600 users, the summarize_v4 incident); `realistic` is
//! generated here from a `Profile`: thousands of skewed tenants, users owned by one
//! tenant each, endpoints with prompt versions rolling out over time, retries and late
//! arrivals, with a daily and weekly rhythm. Pure and streaming: events come out in
//! arrival order from a seeded RNG, and memory does not grow with the number of events.

use super::DemoConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Calls are spread over one-minute slots, each weighted by the time of day and week.
const SLOT_MS: i64 = MINUTE_MS;
/// A new prompt version takes over its endpoint's traffic gradually over this long, as
/// a staged deploy does.
const ROLLOUT_MS: i64 = 6 * HOUR_MS;
/// Calls that fail without a retry (the retried ones come on top).
const ERROR_SHARE: f64 = 0.01;

/// How many distinct values each dimension has and how the traffic arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub tenants: u32,
    /// Each user belongs to one tenant; bigger tenants have more users.
    pub users: u32,
    pub endpoints: u32,
    /// Spread over the endpoints; each endpoint's versions go live one after another.
    pub prompt_versions: u32,
    /// Priced models (the bundled price book knows them); the unknown model comes on top.
    pub models: u32,
    pub tag_keys: u32,
    /// Share of calls whose first attempt fails and is retried with the same id.
    pub retry_share: f64,
    /// Share of calls that arrive after newer ones (backfills, queued exporters).
    pub late_share: f64,
    /// How far behind its arrival a late call's timestamp can be.
    pub max_late_ms: i64,
}

impl Profile {
    /// A mid-sized SaaS: 5,000 tenants, 200,000 users, 60 endpoints, 300 prompt
    /// versions, 12 models, 3 tag keys, 3% retries, 10% late by up to 2 days.
    pub fn realistic() -> Profile {
        Profile {
            tenants: 5_000,
            users: 200_000,
            endpoints: 60,
            prompt_versions: 300,
            models: 12,
            tag_keys: 3,
            retry_share: 0.03,
            late_share: 0.10,
            max_late_ms: 2 * DAY_MS,
        }
    }

    /// The first rule the profile breaks, worded for the flag that sets it.
    pub fn check(&self) -> Result<(), String> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1"))
            }
        };
        if self.tenants == 0 || self.endpoints == 0 || self.models == 0 {
            return Err("--tenants, --endpoints and --models must be at least 1".into());
        }
        if self.users < self.tenants {
            return Err("--users must be at least --tenants (every tenant has a user)".into());
        }
        if self.models as usize > MODELS.len() {
            return Err(format!("--models must be at most {}", MODELS.len()));
        }
        if self.tag_keys as usize > TAG_KEYS.len() {
            return Err(format!("--tag-keys must be at most {}", TAG_KEYS.len()));
        }
        if self.max_late_ms < 0 {
            return Err("--max-lateness must not be negative".into());
        }
        share("--retry-share", self.retry_share)?;
        share("--late-share", self.late_share)?;
        share(
            "--retry-share plus the 1% errors",
            self.retry_share + ERROR_SHARE,
        )
    }
}

/// A model of the bundled price book and how calls use it.
struct Model {
    provider: &'static str,
    model: &'static str,
    operation: &'static str,
    /// Share of output tokens that are reasoning tokens.
    reasoning: f64,
    /// Up to this share of input tokens is read from the prompt cache.
    cache: f64,
}

const fn model(
    provider: &'static str,
    model: &'static str,
    operation: &'static str,
    reasoning: f64,
    cache: f64,
) -> Model {
    Model {
        provider,
        model,
        operation,
        reasoning,
        cache,
    }
}

/// Priced models across providers; a profile uses the first `models`.
const MODELS: &[Model] = &[
    model("openai", "gpt-4o-mini-2024-07-18", "chat", 0.0, 0.4),
    model("openai", "gpt-4.1", "chat", 0.0, 0.3),
    model("openai", "text-embedding-3-small", "embeddings", 0.0, 0.0),
    model("anthropic", "claude-sonnet-4-5-20250929", "chat", 0.0, 0.2),
    model("openai", "o4-mini", "responses", 0.7, 0.25),
    model("google", "gemini-2.5-flash", "chat", 0.3, 0.0),
    model("openai", "gpt-4.1-mini", "chat", 0.0, 0.3),
    model("anthropic", "claude-haiku-4-5-20251001", "chat", 0.0, 0.3),
    model("google", "gemini-2.5-pro", "chat", 0.4, 0.1),
    model("mistral", "mistral-small-latest", "chat", 0.0, 0.0),
    model("openai", "text-embedding-3-large", "embeddings", 0.0, 0.0),
    model("anthropic", "claude-opus-4-1-20250805", "chat", 0.0, 0.2),
    model("openai", "o3", "responses", 0.6, 0.2),
    model("azure", "gpt-4o", "chat", 0.0, 0.2),
    model("mistral", "mistral-large-latest", "chat", 0.0, 0.0),
    model("vertex", "gemini-2.0-flash", "chat", 0.0, 0.0),
];

/// The self-hosted model the price book does not know (as in the small demo), so
/// unpriced calls stay visible.
const UNKNOWN_MODEL: Model = model("selfhosted", "acme-classifier-7b", "chat", 0.0, 0.0);

const AREAS: &[&str] = &[
    "support",
    "chat",
    "search",
    "summarize",
    "agent",
    "extract",
    "classify",
    "translate",
    "moderate",
    "code",
    "email",
    "report",
];
const ACTIONS: &[&str] = &[
    "reply", "assist", "embed", "doc", "plan", "invoice", "route", "draft",
];
const TAG_KEYS: &[&str] = &[
    "team",
    "region",
    "plan",
    "feature",
    "cluster",
    "surface",
    "experiment",
    "locale",
    "channel",
    "sdk",
];
const TEAMS: &[&str] = &["core", "growth", "platform", "search", "support", "data"];
const REGIONS: &[&str] = &["us-east", "us-west", "eu-west", "ap-south"];

struct Version {
    name: String,
    /// When it starts taking traffic; the first version is live from the beginning.
    live_from: i64,
    /// Its prompt's tokens relative to the endpoint's.
    tokens: f64,
}

struct Endpoint {
    name: String,
    model: &'static Model,
    /// Mean tokens per call.
    input: u64,
    output: u64,
    versions: Vec<Version>,
}

/// The name of the k-th tenant by traffic rank (tenant-0000 is the biggest).
pub fn tenant_name(k: u32) -> String {
    format!("tenant-{k:04}")
}

fn endpoint_name(i: usize) -> String {
    let base = format!(
        "{}.{}",
        AREAS[i % AREAS.len()],
        ACTIONS[(i / AREAS.len()) % ACTIONS.len()]
    );
    match i / (AREAS.len() * ACTIONS.len()) {
        0 => base,
        n => format!("{base}-{n}"),
    }
}

fn version_name(endpoint: &str, number: usize) -> String {
    format!("{}_v{number}", endpoint.replace('.', "_"))
}

/// How many of the prompt versions endpoint `i` has: an even spread.
fn version_count(profile: &Profile, i: usize) -> usize {
    let (versions, endpoints) = (profile.prompt_versions as usize, profile.endpoints as usize);
    versions / endpoints + usize::from(i < versions % endpoints)
}

/// (endpoint, candidate, baseline) for a gate benchmark: the busiest endpoint's two
/// newest prompt versions; None when it has fewer than two.
pub fn gate_example(profile: &Profile) -> Option<(String, String, String)> {
    let count = version_count(profile, 0);
    let name = endpoint_name(0);
    (count >= 2).then(|| {
        let (candidate, baseline) = (version_name(&name, count), version_name(&name, count - 1));
        (name, candidate, baseline)
    })
}

/// Endpoints with their model, token sizes and versions, drawn from their own RNG so
/// that they do not depend on how many events are generated.
fn endpoints(profile: &Profile, config: &DemoConfig) -> Vec<Endpoint> {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_e4d0);
    let start = window_start(config);
    let span = config.end_ms - start;
    let n = profile.endpoints as usize;
    (0..n)
        .map(|i| {
            let unknown = config.incidents && n >= 2 && i == n - 1;
            let model = if unknown {
                &UNKNOWN_MODEL
            } else {
                &MODELS[i % profile.models as usize]
            };
            let name = endpoint_name(i);
            let count = version_count(profile, i);
            let phase: f64 = rng.random();
            let versions = (0..count)
                .map(|j| Version {
                    name: version_name(&name, j + 1),
                    // Launches spread over the window, staggered per endpoint; the last
                    // one still has a 1/count share of the window to itself.
                    live_from: match j {
                        0 => i64::MIN,
                        _ => start + (span as f64 * (j as f64 - 1.0 + phase) / count as f64) as i64,
                    },
                    tokens: rng.random_range(0.85..1.2),
                })
                .collect();
            let output = match model.operation {
                "embeddings" => 0,
                _ => rng.random_range(20..1_200),
            };
            Endpoint {
                name,
                model,
                input: rng.random_range(200..6_000),
                output,
                versions,
            }
        })
        .collect()
}

fn window_start(config: &DemoConfig) -> i64 {
    config.end_ms - config.days as i64 * DAY_MS
}

/// Relative traffic at a time: quietest at 03:00 UTC, busiest at 15:00, weekends at
/// 45% of a weekday.
fn rhythm(t: i64) -> f64 {
    let hour = t.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
    let daily = 0.25 + 0.75 * (0.5 - 0.5 * (std::f64::consts::TAU * (hour - 3.0) / 24.0).cos());
    // 1970-01-01 was a Thursday: Monday is 0.
    let weekday = (t.div_euclid(DAY_MS) + 3).rem_euclid(7);
    let weekly = if weekday >= 5 { 0.45 } else { 1.0 };
    daily * weekly
}

/// A rank in 0..n where rank k is drawn with probability ln((k+2)/(k+1)) / ln(n+1):
/// close to Zipf with exponent 1 (a few ranks carry most draws) without a table.
fn skewed(rng: &mut StdRng, n: u32) -> u32 {
    let r = (n as f64 + 1.0).powf(rng.random::<f64>()) - 1.0;
    (r as u32).min(n.saturating_sub(1))
}

/// The generator's walk through time: which slot it is in and how many of the slot's
/// calls it has produced.
struct Clock {
    start: i64,
    slots: i64,
    /// Slots entered so far.
    slot: i64,
    slot_start: i64,
    slot_calls: u64,
    slot_pos: u64,
    /// Rhythm summed over the whole window and over the slots entered so far.
    total_weight: f64,
    weight_so_far: f64,
    calls: u64,
    allocated: u64,
}

impl Clock {
    fn new(config: &DemoConfig) -> Clock {
        let start = window_start(config);
        let slots = config.days as i64 * DAY_MS / SLOT_MS;
        let total_weight = (0..slots).map(|s| rhythm(start + s * SLOT_MS)).sum();
        Clock {
            start,
            slots,
            slot: 0,
            slot_start: start,
            slot_calls: 0,
            slot_pos: 0,
            total_weight,
            weight_so_far: 0.0,
            calls: config.events,
            allocated: 0,
        }
    }

    /// The arrival time of the next call, in order; None after the last call.
    fn next(&mut self, rng: &mut StdRng) -> Option<i64> {
        while self.slot_pos >= self.slot_calls {
            if self.slot >= self.slots {
                return None;
            }
            self.enter_slot();
        }
        let (j, k) = (self.slot_pos as f64, self.slot_calls as f64);
        self.slot_pos += 1;
        // Stratified within the slot: call j lands in the j-th of k equal parts, so
        // arrivals stay in time order without sorting.
        let offset = (j + rng.random::<f64>()) * SLOT_MS as f64 / k;
        Some(self.slot_start + offset as i64)
    }

    /// Give the next slot its share of the calls, rounded so the shares add up to
    /// exactly `calls`.
    fn enter_slot(&mut self) {
        self.slot_start = self.start + self.slot * SLOT_MS;
        self.weight_so_far += rhythm(self.slot_start);
        self.slot += 1;
        let target = if self.slot == self.slots {
            self.calls
        } else {
            (self.calls as f64 * self.weight_so_far / self.total_weight).round() as u64
        };
        self.slot_calls = target.saturating_sub(self.allocated);
        self.allocated += self.slot_calls;
        self.slot_pos = 0;
    }
}

/// The demo's events: `None` is the small profile (the story in `demo.rs`).
pub fn events(
    profile: Option<Profile>,
    config: DemoConfig,
) -> Box<dyn Iterator<Item = Value> + Send> {
    match profile {
        None => Box::new(super::DemoGenerator::new(config)),
        Some(p) => Box::new(ProfileGenerator::new(p, config)),
    }
}

/// Streams a profile's events in arrival order (see the module doc).
pub struct ProfileGenerator {
    profile: Profile,
    config: DemoConfig,
    rng: StdRng,
    endpoints: Vec<Endpoint>,
    clock: Clock,
    produced: u64,
    ready: VecDeque<Value>,
    /// Second attempts of on-time calls, held until the clock reaches their time:
    /// (timestamp, call number) -> event. Holds only the retries of the last seconds.
    delayed: BTreeMap<(i64, u64), Value>,
}

impl ProfileGenerator {
    /// `config.events` counts calls (a retried call yields two events), as in the small
    /// demo; `config.incidents` adds the unknown model.
    pub fn new(profile: Profile, config: DemoConfig) -> ProfileGenerator {
        ProfileGenerator {
            rng: StdRng::seed_from_u64(config.seed),
            endpoints: endpoints(&profile, &config),
            clock: Clock::new(&config),
            profile,
            config,
            produced: 0,
            ready: VecDeque::new(),
            delayed: BTreeMap::new(),
        }
    }

    /// Retries whose time has come, before the call arriving at `now`.
    fn release_due(&mut self, now: i64) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.ready.push_back(entry.remove());
        }
    }

    /// How long before its arrival a call happened: 0 for most, up to the maximum
    /// lateness (never before the window) for the late share.
    fn lateness(&mut self, arrival: i64) -> i64 {
        let room = (arrival - self.clock.start).min(self.profile.max_late_ms);
        if room < 1 || self.rng.random::<f64>() >= self.profile.late_share {
            return 0;
        }
        self.rng.random_range(1..=room)
    }

    fn version(&mut self, endpoint: usize, ts: i64) -> Option<(String, f64)> {
        let versions = &self.endpoints[endpoint].versions;
        let current = versions.iter().rposition(|v| v.live_from <= ts)?;
        let since = ts.saturating_sub(versions[current].live_from);
        // During a rollout the previous version keeps the rest of the traffic.
        let rolled_out = since as f64 / ROLLOUT_MS as f64;
        let pick = if current > 0 && self.rng.random::<f64>() >= rolled_out {
            current - 1
        } else {
            current
        };
        let v = &self.endpoints[endpoint].versions[pick];
        Some((v.name.clone(), v.tokens))
    }

    /// Tenant by rank, and a user among the tenant's own: tenant k owns a contiguous
    /// block of users sized by its traffic share (at least one).
    fn tenant_and_user(&mut self) -> (u32, u32) {
        let (t, u) = (self.profile.tenants, self.profile.users);
        let tenant = skewed(&mut self.rng, t);
        let first_user = |k: u32| {
            let share = (k as f64 + 1.0).ln() / (t as f64 + 1.0).ln();
            k + ((u - t) as f64 * share) as u32
        };
        let (from, to) = (first_user(tenant), first_user(tenant + 1));
        let user = from + skewed(&mut self.rng, (to - from).max(1));
        (tenant, user)
    }

    fn tags(&mut self, endpoint: usize, tenant: u32) -> Map<String, Value> {
        // The biggest 1% of tenants are on enterprise plans, the next 9% on pro.
        let plan = |k: u32, n: u32| {
            if k < n.div_ceil(100) {
                "enterprise"
            } else if k < n.div_ceil(10) {
                "pro"
            } else {
                "free"
            }
        };
        (0..self.profile.tag_keys as usize)
            .map(|i| {
                let key = TAG_KEYS[i];
                let value = match key {
                    "team" => TEAMS[endpoint % TEAMS.len()].to_string(),
                    "region" => REGIONS[tenant as usize % REGIONS.len()].to_string(),
                    "plan" => plan(tenant, self.profile.tenants).to_string(),
                    _ => format!("{key}-{}", self.rng.random_range(0..4)),
                };
                (key.to_string(), json!(value))
            })
            .collect()
    }

    fn jitter(&mut self, mean: f64) -> u64 {
        (mean * self.rng.random_range(0.5..1.5)).round() as u64
    }

    /// One call arriving at `arrival`: its events go to `ready`, an on-time retry's
    /// second attempt to `delayed`.
    fn call(&mut self, arrival: i64) {
        let n = self.produced;
        self.produced += 1;
        let late = self.lateness(arrival);
        let ts = arrival - late;
        let endpoint = skewed(&mut self.rng, self.profile.endpoints) as usize;
        let (tenant, user) = self.tenant_and_user();
        let version = self.version(endpoint, ts);
        let tags = self.tags(endpoint, tenant);
        let staging = self.rng.random::<f64>() < 0.1;
        let ep = &self.endpoints[endpoint];
        let (model, mean_in, mean_out) = (ep.model, ep.input as f64, ep.output as f64);
        let mut base = json!({
            "externalRequestId": format!("demo-{}-r{n}", self.config.seed),
            "timestamp": rfc3339(ts),
            "provider": model.provider, "model": model.model, "endpointTag": ep.name,
            "tenantId": tenant_name(tenant), "userId": format!("user-{user:06}"),
            "operation": model.operation, "dataMode": "demo",
            "environment": if staging { "staging" } else { "prod" },
        });
        let multiplier = match version {
            Some((name, tokens)) => {
                base["promptVersion"] = json!(name);
                tokens
            }
            None => 1.0,
        };
        if !tags.is_empty() {
            base["tags"] = Value::Object(tags);
        }
        let input = self.jitter(mean_in * multiplier).max(1);
        let output = self.jitter(mean_out * multiplier);
        let cached = (input as f64 * model.cache * self.rng.random::<f64>()) as u64;
        let latency = 200 + (output * 12).min(30_000) + self.rng.random_range(0..400);
        let mut ok = base.clone();
        ok["status"] = json!("success");
        ok["inputTokens"] = json!(input);
        ok["cachedTokens"] = json!(cached);
        ok["outputTokens"] = json!(output);
        ok["reasoningTokens"] = json!((output as f64 * model.reasoning) as u64);
        ok["latencyMs"] = json!(latency);
        let roll: f64 = self.rng.random();
        if roll < self.profile.retry_share {
            self.retried(base, ok, ts, late > 0, n);
        } else if roll < self.profile.retry_share + ERROR_SHARE {
            self.ready
                .push_back(failed(base, "error", "500", latency / 4));
        } else {
            self.ready.push_back(ok);
        }
    }

    /// A failed first attempt now and the successful second one after a backoff. A late
    /// call's attempts arrive together (a backfill sends what it has).
    fn retried(&mut self, base: Value, mut ok: Value, ts: i64, late: bool, n: u64) {
        let (status, code) = if self.rng.random::<f64>() < 0.7 {
            ("rate_limited", "429")
        } else {
            ("error", "503")
        };
        let first = failed(base, status, code, 400);
        let retry_ts = (ts + self.rng.random_range(1_000..20_000)).min(self.config.end_ms - 1);
        ok["attempt"] = json!(2);
        ok["timestamp"] = json!(rfc3339(retry_ts));
        self.ready.push_back(first);
        if late {
            self.ready.push_back(ok);
        } else {
            self.delayed.insert((retry_ts, n), ok);
        }
    }
}

fn failed(mut event: Value, status: &str, code: &str, latency: u64) -> Value {
    event["attempt"] = json!(1);
    event["status"] = json!(status);
    event["errorCode"] = json!(code);
    event["usageMissing"] = json!(true);
    event["latencyMs"] = json!(latency);
    event
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Iterator for ProfileGenerator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            match self.clock.next(&mut self.rng) {
                Some(arrival) => {
                    self.release_due(arrival);
                    self.call(arrival);
                }
                None => return self.delayed.pop_first().map(|(_, e)| e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RawEvent;
    use std::collections::{HashMap, HashSet};

    const END: i64 = 1_764_000_000_000;

    fn config(events: u64, seed: u64) -> DemoConfig {
        DemoConfig {
            days: 30,
            events,
            end_ms: END,
            seed,
            incidents: true,
        }
    }

    fn ms(e: &Value) -> i64 {
        e["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_millisecond())
    }

    /// The small profile is the demo's story, byte for byte: these hashes of its first
    /// 5,000 calls were taken from the generator before profiles existed.
    #[test]
    fn small_profile_is_unchanged() {
        use sha2::{Digest, Sha256};
        let expected = [
            (
                true,
                5_143,
                "6788899d2c4c16ffbad41fa3406b4f6d3143fa4a2811f76735f89883dc0a4736",
            ),
            (
                false,
                5_144,
                "4bbaad2e480ae179e7dd04a285e7fd8ab97961b9941111ad4aa19065911696a2",
            ),
        ];
        for (incidents, count, sha) in expected {
            let config = DemoConfig {
                incidents,
                ..config(5_000, 42)
            };
            let mut hash = Sha256::new();
            let mut n = 0;
            for e in events(None, config) {
                hash.update(e.to_string().as_bytes());
                hash.update(b"\n");
                n += 1;
            }
            assert_eq!(n, count, "incidents={incidents}");
            assert_eq!(hex::encode(hash.finalize()), sha, "incidents={incidents}");
        }
    }

    #[test]
    fn realistic_is_seeded() {
        let first = |seed| {
            ProfileGenerator::new(Profile::realistic(), config(2_000, seed))
                .take(500)
                .collect::<Vec<_>>()
        };
        assert_eq!(first(3), first(3));
        assert_ne!(first(3), first(4));
    }

    /// Streaming: what the generator holds between calls is the retries in flight and
    /// one call's events, however many calls it makes.
    #[test]
    fn realistic_holds_only_the_retries_in_flight() {
        let mut generator = ProfileGenerator::new(Profile::realistic(), config(50_000, 5));
        let mut held = 0;
        while generator.next().is_some() {
            held = held.max(generator.ready.len() + generator.delayed.len());
        }
        assert!(held < 10, "{held}");
    }

    /// What one pass over a sample counts.
    #[derive(Default)]
    struct Sample {
        events: u64,
        calls: HashSet<String>,
        retried: u64,
        late: u64,
        max_late: i64,
        calls_per_tenant: HashMap<String, u64>,
        users: HashMap<String, String>,
        endpoints: HashSet<String>,
        versions: HashSet<String>,
        models: HashSet<String>,
        tag_keys: HashSet<String>,
        calls_per_hour: [u64; 24],
        calls_per_weekday: [u64; 7],
        unpriced: u64,
    }

    fn sample(calls: u64) -> Sample {
        let book = crate::price::PriceBook::bundled().unwrap();
        let mut s = Sample::default();
        let mut newest = i64::MIN;
        for e in ProfileGenerator::new(Profile::realistic(), config(calls, 11)) {
            s.events += 1;
            let body = e.to_string();
            let raw: RawEvent = serde_json::from_str(&body).unwrap();
            let event = crate::validate::validate(&raw, END).expect("valid");
            if book.price(&event).cost.is_none() {
                assert_eq!(
                    event.model, "acme-classifier-7b",
                    "only the unknown model is unpriced"
                );
                s.unpriced += 1;
            }
            let t = ms(&e);
            if t < newest {
                s.late += 1;
                s.max_late = s.max_late.max(newest - t);
            }
            newest = newest.max(t);
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            if e["attempt"] == json!(2) {
                s.retried += 1;
                continue;
            }
            s.calls.insert(text("externalRequestId"));
            *s.calls_per_tenant.entry(text("tenantId")).or_default() += 1;
            let tenant = s.users.entry(text("userId")).or_insert(text("tenantId"));
            assert_eq!(*tenant, text("tenantId"), "a user belongs to one tenant");
            s.endpoints.insert(text("endpointTag"));
            s.versions.insert(text("promptVersion"));
            s.models.insert(text("model"));
            s.tag_keys
                .extend(e["tags"].as_object().unwrap().keys().cloned());
            s.calls_per_hour[(t.rem_euclid(DAY_MS) / HOUR_MS) as usize] += 1;
            s.calls_per_weekday[((t.div_euclid(DAY_MS) + 3).rem_euclid(7)) as usize] += 1;
        }
        s
    }

    #[test]
    fn realistic_sample_has_the_profiles_shape() {
        let s = sample(200_000);
        let calls = s.calls.len() as f64;
        assert_eq!(s.calls.len(), 200_000);
        let share = |n: u64| n as f64 / calls;
        let mut per_tenant: Vec<u64> = s.calls_per_tenant.values().copied().collect();
        per_tenant.sort_unstable_by(|a, b| b.cmp(a));
        let top_1pct = share(per_tenant[..50].iter().sum());
        println!(
            "events {}, tenants {} (top 1% carry {top_1pct:.3}), users {}, retried {:.4}, late {:.4} (max {} h), unpriced {:.4}",
            s.events,
            s.calls_per_tenant.len(),
            s.users.len(),
            share(s.retried),
            s.late as f64 / s.events as f64,
            s.max_late / HOUR_MS,
            share(s.unpriced)
        );
        // Nearly every tenant shows up; not every user at about one call per user.
        assert!(s.calls_per_tenant.len() > 4_800);
        assert!((40_000..150_000).contains(&s.users.len()));
        assert!(top_1pct > 0.4, "top 1% of tenants carry {top_1pct}");
        assert!((0.027..0.033).contains(&share(s.retried)));
        let late = s.late as f64 / s.events as f64;
        assert!((0.09..0.11).contains(&late), "late {late}");
        assert!(s.max_late <= 2 * DAY_MS);
        assert!(s.max_late > 40 * HOUR_MS);
        assert_eq!(s.endpoints.len(), 60);
        assert_eq!(s.versions.len(), 300);
        assert_eq!(s.models.len(), 13, "12 priced and the unknown one");
        assert_eq!(s.tag_keys.len(), 3);
        assert!(s.unpriced > 0 && share(s.unpriced) < 0.01);
        // Afternoons are busier than nights, weekdays than weekends.
        let (night, afternoon) = (s.calls_per_hour[3], s.calls_per_hour[15]);
        assert!(afternoon > 3 * night, "{afternoon} vs {night}");
        // A Sunday is 45% of a Wednesday; 30 days may hold five of one and four of the other.
        let (weekday, sunday) = (s.calls_per_weekday[2], s.calls_per_weekday[6]);
        assert!(sunday * 10 < weekday * 7, "{sunday} vs {weekday}");
    }

    #[test]
    fn profile_rules_name_the_flag() {
        let bad = Profile {
            users: 10,
            ..Profile::realistic()
        };
        assert!(bad.check().unwrap_err().contains("--users"));
        let bad = Profile {
            late_share: 1.5,
            ..Profile::realistic()
        };
        assert!(bad.check().unwrap_err().contains("--late-share"));
        assert_eq!(Profile::realistic().check(), Ok(()));
    }
}
