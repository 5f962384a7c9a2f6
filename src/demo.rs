//! Demo traffic: realistic, seeded usage events (dataMode=demo) with skewed endpoints and
//! tenants, prompt-version deploys, retries, errors, a few unknown models and one visible
//! cost spike, so the first screen is not empty. Pure: the caller passes the end time.

pub mod profile;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

struct Endpoint {
    tag: &'static str,
    weight: u32,
    provider: &'static str,
    model: &'static str,
    operation: &'static str,
    input: u64,
    output: u64,
    cache_share: f64,
    reasoning_share: f64,
    /// (version, days before the end when it went live, token multiplier)
    versions: &'static [(&'static str, f64, f64)],
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        tag: "support.reply",
        weight: 30,
        provider: "openai",
        model: "gpt-4o-mini-2024-07-18",
        operation: "chat",
        input: 1800,
        output: 260,
        cache_share: 0.4,
        reasoning_share: 0.0,
        versions: &[("support_v8", 99.0, 1.0), ("support_v9", 12.0, 1.1)],
    },
    Endpoint {
        tag: "chat.assist",
        weight: 20,
        provider: "openai",
        model: "gpt-4.1",
        operation: "chat",
        input: 2400,
        output: 420,
        cache_share: 0.3,
        reasoning_share: 0.0,
        versions: &[("assist_v3", 99.0, 1.0)],
    },
    Endpoint {
        tag: "search.embed",
        weight: 18,
        provider: "openai",
        model: "text-embedding-3-small",
        operation: "embeddings",
        input: 600,
        output: 0,
        cache_share: 0.0,
        reasoning_share: 0.0,
        versions: &[("embed_v1", 99.0, 1.0)],
    },
    Endpoint {
        tag: "summarize.doc",
        weight: 14,
        provider: "anthropic",
        model: "claude-sonnet-4-5-20250929",
        operation: "chat",
        input: 5200,
        output: 520,
        cache_share: 0.2,
        reasoning_share: 0.0,
        versions: &[("summarize_v3", 99.0, 1.0), ("summarize_v4", 5.0, 2.9)],
    },
    Endpoint {
        tag: "agent.plan",
        weight: 8,
        provider: "openai",
        model: "o4-mini",
        operation: "responses",
        input: 3000,
        output: 1800,
        cache_share: 0.25,
        reasoning_share: 0.7,
        versions: &[("planner_v1", 99.0, 1.0), ("planner_v2", 20.0, 0.9)],
    },
    Endpoint {
        tag: "extract.invoice",
        weight: 7,
        provider: "google",
        model: "gemini-2.5-flash",
        operation: "chat",
        input: 4200,
        output: 380,
        cache_share: 0.0,
        reasoning_share: 0.3,
        versions: &[("extract_v2", 99.0, 1.0)],
    },
    Endpoint {
        tag: "legacy.classify",
        weight: 3,
        provider: "selfhosted",
        model: "acme-classifier-7b",
        operation: "chat",
        input: 400,
        output: 8,
        cache_share: 0.0,
        reasoning_share: 0.0,
        versions: &[("classify_v1", 99.0, 1.0)],
    },
];

const TENANTS: usize = 40;
const USERS: usize = 600;
const SPIKE_TENANT: &str = "enterprise-alpha";
const SPIKE_ENDPOINT: usize = 3; // summarize.doc

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub days: u32,
    pub events: u64,
    pub end_ms: i64,
    pub seed: u64,
    /// The spike, the costly prompt deploy and the unpriced model; off gives clean
    /// traffic (the baseline the alert rules must stay quiet on).
    pub incidents: bool,
}

impl DemoConfig {
    /// The spike: three hours, two days before the end, at 14:00 UTC; always inside the
    /// generated window (a shorter window has it in its first three whole hours).
    pub fn spike_window(&self) -> (i64, i64) {
        let day_start = (self.end_ms - 2 * DAY_MS).div_euclid(DAY_MS) * DAY_MS;
        let start = day_start + 14 * HOUR_MS;
        let window_start = self.end_ms - self.days.max(1) as i64 * DAY_MS;
        let start = if start >= window_start && start + 3 * HOUR_MS <= self.end_ms {
            start
        } else {
            (window_start + HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS
        };
        (start, (start + 3 * HOUR_MS).min(self.end_ms))
    }
}

pub struct DemoGenerator {
    config: DemoConfig,
    rng: StdRng,
    produced: u64,
    pending: Vec<Value>,
}

impl DemoGenerator {
    pub fn new(config: DemoConfig) -> DemoGenerator {
        let rng = StdRng::seed_from_u64(config.seed);
        DemoGenerator {
            config,
            rng,
            produced: 0,
            pending: Vec::new(),
        }
    }

    fn tenant(&mut self) -> String {
        // Zipf-like: tenant k is chosen with weight 1/(k+1).
        let total: f64 = (1..=TENANTS).map(|k| 1.0 / k as f64).sum();
        let mut pick = self.rng.random::<f64>() * total;
        for k in 1..=TENANTS {
            pick -= 1.0 / k as f64;
            if pick <= 0.0 {
                return tenant_name(k - 1);
            }
        }
        tenant_name(TENANTS - 1)
    }

    fn endpoint(&mut self) -> usize {
        let total: u32 = ENDPOINTS.iter().map(|e| e.weight).sum();
        let mut pick = self.rng.random_range(0..total);
        for (i, e) in ENDPOINTS.iter().enumerate() {
            if pick < e.weight {
                return i;
            }
            pick -= e.weight;
        }
        0
    }

    /// A time in the window, busier in working hours.
    fn timestamp(&mut self) -> i64 {
        let span = self.config.days as i64 * DAY_MS;
        loop {
            let t = self.config.end_ms - self.rng.random_range(0..span);
            let hour = t.div_euclid(HOUR_MS).rem_euclid(24);
            let busy = if (8..20).contains(&hour) { 1.0 } else { 0.35 };
            if self.rng.random::<f64>() < busy {
                return t;
            }
        }
    }

    fn jitter(&mut self, mean: u64) -> u64 {
        if mean == 0 {
            return 0;
        }
        let f: f64 = self.rng.random_range(0.5..1.5);
        (mean as f64 * f).round() as u64
    }

    /// One logical call: one event, or two when it was retried.
    fn call(&mut self) -> Vec<Value> {
        let n = self.produced;
        let (spike_from, spike_to) = self.config.spike_window();
        let in_spike = self.rng.random::<f64>() < 0.03 && self.config.incidents;
        let (ep_index, ts, tenant) = if in_spike {
            (
                SPIKE_ENDPOINT,
                self.rng.random_range(spike_from..spike_to),
                SPIKE_TENANT.to_string(),
            )
        } else {
            (self.endpoint(), self.timestamp(), self.tenant())
        };
        // Clean traffic sends the unpriced model's share to the first endpoint.
        let ep_index = match ENDPOINTS[ep_index].provider {
            "selfhosted" if !self.config.incidents => 0,
            _ => ep_index,
        };
        let ep = &ENDPOINTS[ep_index];
        let days_before_end = (self.config.end_ms - ts) as f64 / DAY_MS as f64;
        let (version, multiplier) = ep
            .versions
            .iter()
            .rev()
            .find(|v| v.1 >= days_before_end)
            .map(|v| (v.0, v.2))
            .unwrap_or((ep.versions[0].0, ep.versions[0].2));
        let multiplier = if self.config.incidents {
            multiplier
        } else {
            multiplier.min(1.2)
        };
        let input = self.jitter((ep.input as f64 * multiplier) as u64).max(1);
        let output = self.jitter((ep.output as f64 * multiplier) as u64);
        let cached = (input as f64 * ep.cache_share * self.rng.random::<f64>() * 2.0)
            .min(input as f64 * 0.9) as u64;
        let reasoning = (output as f64 * ep.reasoning_share) as u64;
        let user = format!("user-{:04}", self.rng.random_range(0..USERS));
        let environment = if self.rng.random::<f64>() < 0.1 {
            "staging"
        } else {
            "prod"
        };
        let id = format!("demo-{}-{n}", self.config.seed);
        let latency = 200 + (output * 12).min(30_000) + self.rng.random_range(0..400);
        let base = json!({
            "externalRequestId": id,
            "timestamp": jiff::Timestamp::from_millisecond(ts).map(|t| t.to_string()).unwrap_or_default(),
            "provider": ep.provider, "model": ep.model, "endpointTag": ep.tag,
            "promptVersion": version, "tenantId": tenant, "userId": user,
            "operation": ep.operation, "dataMode": "demo", "environment": environment,
        });
        let roll: f64 = self.rng.random();
        let failed = |status: &str, code: &str, attempt: u32| {
            let mut e = base.clone();
            e["attempt"] = json!(attempt);
            e["status"] = json!(status);
            e["errorCode"] = json!(code);
            e["usageMissing"] = json!(true);
            e["latencyMs"] = json!(latency / 4);
            e
        };
        let mut ok = base.clone();
        ok["status"] = json!("success");
        ok["inputTokens"] = json!(input);
        ok["cachedTokens"] = json!(cached);
        ok["outputTokens"] = json!(output);
        ok["reasoningTokens"] = json!(reasoning);
        ok["latencyMs"] = json!(latency);
        if roll < 0.02 {
            vec![failed("error", "500", 1)]
        } else if roll < 0.05 {
            ok["attempt"] = json!(2);
            vec![failed("rate_limited", "429", 1), ok]
        } else {
            vec![ok]
        }
    }
}

fn tenant_name(k: usize) -> String {
    const NAMED: &[&str] = &[
        SPIKE_TENANT,
        "globex",
        "initech",
        "umbrella",
        "hooli",
        "acme-co",
    ];
    NAMED
        .get(k)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("tenant-{k:03}"))
}

impl Iterator for DemoGenerator {
    type Item = Value;

    /// Yields contract JSON events; retried calls yield both attempts in order.
    fn next(&mut self) -> Option<Value> {
        if let Some(e) = self.pending.pop() {
            return Some(e);
        }
        if self.produced >= self.config.events {
            return None;
        }
        let mut call = self.call();
        self.produced += 1;
        call.reverse();
        let first = call.pop();
        self.pending = call;
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RawEvent;

    #[test]
    fn demo_events_are_valid_and_seeded() {
        let end = 1_764_000_000_000;
        let make = || {
            DemoGenerator::new(DemoConfig {
                days: 30,
                events: 500,
                end_ms: end,
                seed: 7,
                incidents: true,
            })
        };
        let events: Vec<Value> = make().collect();
        assert!(events.len() >= 500);
        assert_eq!(events, make().collect::<Vec<_>>(), "same seed, same events");
        for e in &events {
            let text = e.to_string();
            let raw: RawEvent = serde_json::from_str(&text).unwrap();
            crate::validate::validate(&raw, end).unwrap();
        }
        assert!(events.iter().any(|e| e["attempt"] == json!(2)));
        assert!(events
            .iter()
            .any(|e| e["model"] == json!("acme-classifier-7b")));
    }

    #[test]
    fn the_spike_lies_inside_the_generated_window_for_short_demos() {
        // `demo --days 1` printed (and generated) a spike two days before the end,
        // outside its one-day window.
        for days in 1..=3 {
            for hour in [0, 5, 13, 16, 23] {
                let end = 1_764_028_800_000 + hour * HOUR_MS + 17 * 60_000;
                let config = DemoConfig {
                    days,
                    events: 2_000,
                    end_ms: end,
                    seed: 3,
                    incidents: true,
                };
                let (from, to) = config.spike_window();
                let start = end - days as i64 * DAY_MS;
                assert!(
                    start <= from && from < to && to <= end,
                    "days {days}, hour {hour}"
                );
                assert_eq!(to - from, 3 * HOUR_MS);
                for e in DemoGenerator::new(config) {
                    let ts: jiff::Timestamp = e["timestamp"].as_str().unwrap().parse().unwrap();
                    let ms = ts.as_millisecond();
                    assert!(ms > start - 60_000 && ms <= end, "event outside the window");
                }
            }
        }
        // Long demos keep the spike two days before the end at 14:00 UTC.
        let config = DemoConfig {
            days: 30,
            events: 0,
            end_ms: 1_764_028_800_000 + 20 * HOUR_MS,
            seed: 1,
            incidents: true,
        };
        assert_eq!(
            config.spike_window().0,
            1_764_028_800_000 - 2 * DAY_MS + 14 * HOUR_MS
        );
    }
}
