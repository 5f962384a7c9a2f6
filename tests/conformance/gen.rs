//! Random events and queries for the conformance suite: calls with retries as attempt
//! numbers, replacements, resends, id-less calls, several workspaces, tags, unpriced
//! models, every environment, data mode and status, arriving out of order; and random
//! aggregate queries over them. Everything derives from one seed and fixed times, so a
//! failing seed replays exactly.

use burnrate::event::{DataMode, Environment, PricedEvent, Status};
use burnrate::ingest;
use burnrate::price::PriceBook;
use burnrate::query::{Bucket, Dimension, Filters, Measure, Query};
use burnrate::store::WorkspaceId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;
/// Events fall in [START, START + 3 days): a Monday 00:07:13 UTC, so windows have
/// partial hours and days at both edges.
pub const START: i64 = 1_767_571_200_000 + 7 * 60_000 + 13_000;
/// The clock ingest validates against: after every event.
pub const NOW: i64 = START + 4 * DAY;

pub const ENDPOINTS: &[&str] = &["a", "b", "c", "d", "support.reply"];
pub const TENANTS: &[&str] = &["t1", "t2", "t3", "t4", "t5", "t6"];
pub const USERS: &[&str] = &["u1", "u2", "u3", "u4", "u5", "u6", "u7"];
pub const VERSIONS: &[&str] = &["v1", "v2", "v3"];
/// gpt-4o* are priced by the bundled book; mystery-model is not (unpriced).
pub const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "mystery-model"];
pub const TEAMS: &[&str] = &["x", "y", "z"];
pub const REGIONS: &[&str] = &["eu", "us"];

pub fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// One ingest request as the store receives it.
pub struct Request {
    pub workspace: WorkspaceId,
    pub events: Vec<PricedEvent>,
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// A first attempt of a call (attempt 1, or no attempt field at all).
fn random_event(rng: &mut StdRng, id: Option<String>) -> Value {
    let mut ts = START + rng.random_range(0..3 * DAY);
    if rng.random_bool(0.25) {
        // On the hour: calls at the same millisecond (ties in every newest-first list)
        // and exactly on window and bucket edges.
        ts = ts.div_euclid(HOUR) * HOUR;
    }
    let status = *pick(
        rng,
        &[
            "success",
            "success",
            "success",
            "success",
            "error",
            "timeout",
            "rate_limited",
            "cancelled",
        ],
    );
    let mut e = json!({
        "timestamp": iso(ts),
        "provider": "openai",
        "model": pick(rng, MODELS),
        "endpointTag": pick(rng, ENDPOINTS),
        "environment": pick(rng, &["prod", "prod", "prod", "staging", "dev"]),
        "dataMode": pick(rng, &["real", "real", "real", "test", "demo"]),
        "status": status,
        "inputTokens": rng.random_range(0..5000),
        "outputTokens": rng.random_range(0..800),
        "operation": pick(rng, &["chat", "chat", "responses", "embeddings"]),
        "serviceTier": pick(rng, &["standard", "standard", "batch", "flex", "priority"]),
    });
    if let Some(id) = id {
        e["externalRequestId"] = json!(id);
    }
    if rng.random_bool(0.5) {
        e["attempt"] = json!(1);
    }
    let input = e["inputTokens"].as_u64().unwrap();
    let cached = rng.random_range(0..=input);
    e["cachedTokens"] = json!(cached);
    if rng.random_bool(0.2) {
        e["cacheWriteTokens"] = json!(rng.random_range(0..=input - cached));
    }
    if rng.random_bool(0.3) {
        e["reasoningTokens"] = json!(rng.random_range(0..=e["outputTokens"].as_u64().unwrap()));
    }
    if status != "success" && rng.random_bool(0.7) {
        e["errorCode"] = json!(pick(rng, &["429", "500", "context_length"]));
    }
    if status != "success" && rng.random_bool(0.5) {
        // A failed call that reports no usage.
        e["usageMissing"] = json!(true);
    }
    if rng.random_bool(0.8) {
        e["tenantId"] = json!(pick(rng, TENANTS));
    }
    if rng.random_bool(0.7) {
        e["userId"] = json!(pick(rng, USERS));
    }
    if rng.random_bool(0.6) {
        e["promptVersion"] = json!(pick(rng, VERSIONS));
    }
    if rng.random_bool(0.8) {
        e["latencyMs"] = json!(rng.random_range(50..5000));
    }
    if rng.random_bool(0.05) {
        e["imageCount"] = json!(rng.random_range(1..4));
    }
    if rng.random_bool(0.05) {
        // A cost the provider reported (costSource client), also for an unknown model.
        let text = format!("0.{:06}", rng.random_range(1..999_999));
        e["costUsd"] = serde_json::from_str(&text).unwrap();
    }
    let mut tags = serde_json::Map::new();
    if rng.random_bool(0.5) {
        tags.insert("team".into(), json!(pick(rng, TEAMS)));
    }
    if rng.random_bool(0.3) {
        tags.insert("region".into(), json!(pick(rng, REGIONS)));
    }
    if !tags.is_empty() {
        e["tags"] = Value::Object(tags);
    }
    e
}

/// A later attempt of `e`, seconds to minutes later: without usage (a failure that
/// replaces nothing with usage) or with other usage, model, tenant, user and tags (which
/// replaces a stored attempt without usage, or a failed one).
fn retry(rng: &mut StdRng, e: &Value, attempt: u64) -> Value {
    let mut r = e.clone();
    r["attempt"] = json!(attempt);
    let ts = e["timestamp"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    // Mostly minutes later (sometimes past an hour's end); now and then a resend hours
    // or days later, so a call's attempts lie hours apart.
    let later = match rng.random_bool(0.1) {
        true => rng.random_range(2 * HOUR..2 * DAY),
        false => rng.random_range(0..20 * 60_000),
    };
    r["timestamp"] = json!(iso((ts + later).min(NOW - HOUR)));
    let obj = r.as_object_mut().unwrap();
    for k in ["usageMissing", "errorCode", "costUsd"] {
        obj.remove(k);
    }
    if rng.random_bool(0.4) {
        r["usageMissing"] = json!(true);
        r["status"] = json!(pick(rng, &["rate_limited", "timeout", "error"]));
    } else {
        r["status"] = json!(pick(rng, &["success", "success", "success", "error"]));
        r["inputTokens"] = json!(rng.random_range(100..3000));
        r["cachedTokens"] = json!(0);
        r.as_object_mut().unwrap().remove("cacheWriteTokens");
        r["model"] = json!(pick(rng, MODELS));
        r["tenantId"] = json!(pick(rng, TENANTS));
        if rng.random_bool(0.3) {
            r["userId"] = json!(pick(rng, USERS));
        }
        r["latencyMs"] = json!(rng.random_range(50..9000));
        if rng.random_bool(0.3) {
            r["tags"] = json!({"team": pick(rng, TEAMS)});
        }
    }
    if rng.random_bool(0.1) {
        // A later attempt under another environment or data mode moves the call there
        // when it wins.
        r["environment"] = json!(pick(rng, &["prod", "staging", "dev"]));
        r["dataMode"] = json!(pick(rng, &["real", "test"]));
    }
    r
}

/// One arriving item: the workspace and the event's JSON.
type Arrival = (WorkspaceId, Value);

/// The calls of a scenario, each with its attempts and resends, in arrival order:
/// mostly in order, a share moved to random places (late arrivals, retries before the
/// first attempt).
fn arrivals(rng: &mut StdRng, workspaces: &[WorkspaceId], calls: usize) -> Vec<Arrival> {
    let mut out: Vec<Arrival> = Vec::new();
    for n in 0..calls {
        let ws = *pick(rng, workspaces);
        // A few ids repeat in another workspace: a different call there.
        let id = match rng.random_range(0..100) {
            0..=4 => None,
            5..=7 if n > 0 => Some(format!("c{}", rng.random_range(0..n))),
            _ => Some(format!("c{n}")),
        };
        let idless = id.is_none();
        let first = random_event(rng, id);
        let mut attempts = vec![first.clone()];
        if !idless && rng.random_bool(0.12) {
            for a in 2..=rng.random_range(2..=4u64) {
                attempts.push(retry(rng, &first, a));
            }
            if rng.random_bool(0.05) {
                attempts.push(retry(rng, &first, 64));
            }
        }
        for a in attempts {
            // A resend of the same (id, attempt), sometimes with other content.
            if rng.random_bool(0.05) {
                let mut again = a.clone();
                if !idless && rng.random_bool(0.5) {
                    again["inputTokens"] = json!(rng.random_range(0..100));
                    again["cachedTokens"] = json!(0);
                    again.as_object_mut().unwrap().remove("cacheWriteTokens");
                }
                out.push((ws, again));
            }
            out.push((ws, a));
        }
    }
    let moved = out.len() / 5;
    for _ in 0..moved {
        let from = rng.random_range(0..out.len());
        let item = out.remove(from);
        let to = rng.random_range(0..=out.len());
        out.insert(to, item);
    }
    out
}

/// A scenario of about `calls` logical calls over `workspaces`, cut into requests of
/// 1 to 300 events of one workspace each, validated and priced as ingest does.
pub fn requests(seed: u64, workspaces: &[WorkspaceId], calls: usize) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let book = PriceBook::bundled().unwrap();
    let mut pending = arrivals(&mut rng, workspaces, calls);
    pending.reverse();
    let mut out = Vec::new();
    while let Some((ws, first)) = pending.pop() {
        let size = if rng.random_bool(0.3) {
            1
        } else {
            rng.random_range(1..300)
        };
        let mut texts = vec![first.to_string()];
        // Consecutive arrivals of the same workspace share the request.
        while texts.len() < size && pending.last().is_some_and(|(w, _)| *w == ws) {
            texts.push(pending.pop().unwrap().1.to_string());
        }
        out.push(Request {
            workspace: ws,
            events: prepare(&book, &texts),
        });
    }
    out
}

/// Validate and price event texts as ingest does; every one must pass.
pub fn prepare(book: &PriceBook, texts: &[String]) -> Vec<PricedEvent> {
    let items = texts.iter().map(|t| ingest::parse_item(t)).collect();
    let prepared = ingest::prepare(items, book, &Default::default(), NOW);
    assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
    prepared.events
}

/// A random subset (possibly empty) of a vocabulary.
fn subset<T: Copy>(rng: &mut StdRng, all: &[T]) -> Vec<T> {
    all.iter()
        .copied()
        .filter(|_| rng.random_bool(0.5))
        .collect()
}

/// A non-empty random list of values, sometimes with the dimension's missing label.
fn values(rng: &mut StdRng, pool: &[&str], missing: &str) -> Vec<String> {
    let mut v: Vec<String> = pool
        .iter()
        .filter(|_| rng.random_bool(0.4))
        .map(|s| s.to_string())
        .collect();
    if v.is_empty() || rng.random_bool(0.3) {
        v.push(if rng.random_bool(0.5) {
            missing.to_string()
        } else {
            pick(rng, pool).to_string()
        });
    }
    v
}

const DIMENSIONS: &[&str] = &[
    "endpointTag",
    "promptVersion",
    "tenantId",
    "userId",
    "provider",
    "model",
    "environment",
    "dataMode",
    "status",
    "tag:team",
    "tag:region",
];

/// A window: edges at a random millisecond, a whole hour or a whole day, so queries
/// have partial hours at the edges and whole days inside; sometimes everything.
fn window(rng: &mut StdRng) -> (i64, i64) {
    if rng.random_bool(0.1) {
        return (START - DAY, NOW);
    }
    let align = |t: i64, rng: &mut StdRng| match rng.random_range(0..3) {
        0 => t.div_euclid(HOUR) * HOUR,
        1 => t.div_euclid(DAY) * DAY,
        _ => t,
    };
    let a = align(START - HOUR + rng.random_range(0..4 * DAY), rng);
    let b = align(START - HOUR + rng.random_range(0..4 * DAY), rng);
    (a.min(b), a.max(b))
}

/// Random filters on every kind of dimension, missing-value labels included.
pub fn filters(rng: &mut StdRng) -> Filters {
    let mut f = Filters::default();
    if rng.random_bool(0.6) {
        f.environment = subset(rng, Environment::ALL);
    }
    if rng.random_bool(0.6) {
        f.data_mode = subset(rng, DataMode::ALL);
    }
    if rng.random_bool(0.2) {
        f.status = subset(rng, Status::ALL);
    }
    let text: [(Dimension, &[&str]); 6] = [
        (Dimension::EndpointTag, ENDPOINTS),
        (Dimension::PromptVersion, VERSIONS),
        (Dimension::TenantId, TENANTS),
        (Dimension::UserId, USERS),
        (Dimension::Model, MODELS),
        (Dimension::Provider, &["openai", "anthropic"]),
    ];
    for (d, pool) in text {
        if rng.random_bool(0.15) {
            let v = values(rng, pool, d.missing_label());
            f.text.insert(d, v);
        }
    }
    for (key, pool) in [("team", TEAMS), ("region", REGIONS)] {
        if rng.random_bool(0.15) {
            f.tags.insert(key.into(), values(rng, pool, "unknown"));
        }
    }
    f
}

/// A random aggregate query: 0-3 group-by dimensions (tags included), hour/day/no
/// bucket, filters, order by any measure either way, often a small limit.
pub fn query(rng: &mut StdRng) -> Query {
    let (from_ms, to_ms) = window(rng);
    // Distinct dimensions in a random order (the answer's group order follows it).
    let mut group_by: Vec<Dimension> = (0..rng.random_range(0..=3))
        .map(|_| *pick(rng, DIMENSIONS))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|d| Dimension::parse(d).unwrap())
        .collect();
    group_by.shuffle(rng);
    let bucket = match rng.random_range(0..3) {
        0 => Some(Bucket::Hour),
        1 => Some(Bucket::Day),
        _ => None,
    };
    Query {
        from_ms,
        to_ms,
        filters: filters(rng),
        group_by,
        bucket,
        measures: Measure::ALL.to_vec(),
        order_by: rng.random_bool(0.8).then(|| *pick(rng, Measure::ALL)),
        ascending: rng.random_bool(0.4),
        limit: if rng.random_bool(0.6) {
            rng.random_range(1..8)
        } else {
            10_000
        },
        count_by_first: rng.random_bool(0.3),
    }
}

/// A window and filters for the list reads (events, request values, latencies).
pub fn window_and_filters(rng: &mut StdRng) -> ((i64, i64), Filters) {
    (window(rng), filters(rng))
}
