//! Per-key token buckets for the ingest rate (events per second with a burst). With N
//! live nodes on one store each node holds `max(1, rate / N)` events a second and
//! `max(1, burst / N)` of burst per key (`set_nodes`, told by the node registry as rate
//! caps are), so the cluster admits about what one node would (docs/scale-out.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
pub struct RateConfig {
    /// Events per second refilled; 0 disables the limit.
    pub per_second: f64,
    /// Bucket size: the most events accepted at once after a quiet period.
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

pub struct RateLimiter {
    config: RateConfig,
    /// How many live nodes share the limit (1 unless told otherwise).
    nodes: AtomicU64,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl RateLimiter {
    pub fn new(config: RateConfig) -> RateLimiter {
        RateLimiter {
            config,
            nodes: AtomicU64::new(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// How many nodes serve the store now: from the next request on, this node holds
    /// its part of every key's rate and burst.
    pub fn set_nodes(&self, nodes: u64) {
        self.nodes.store(nodes.max(1), Ordering::Relaxed);
    }

    /// This node's (events per second, burst): the configured ones divided by the live
    /// nodes, never below one event (nor above what is configured, for a rate under 1).
    pub fn share(&self) -> (f64, f64) {
        let n = self.nodes.load(Ordering::Relaxed).max(1) as f64;
        let part = |v: f64| (v / n).max(v.min(1.0));
        (part(self.config.per_second), part(self.config.burst))
    }

    /// Take `n` events for `key_id` at `now_ms`; Err(seconds to wait) when the bucket
    /// does not hold them. A request larger than the burst waits for a full bucket and
    /// then takes all its events: the bucket goes below zero and later requests wait
    /// until it refilled, so large requests cannot outrun the rate.
    pub fn take(&self, key_id: i64, n: usize, now_ms: i64) -> Result<(), u64> {
        if self.config.per_second <= 0.0 {
            return Ok(());
        }
        let (per_second, burst) = self.share();
        let need = (n as f64).min(burst);
        let mut buckets = self.buckets.lock().unwrap();
        let bucket = buckets.entry(key_id).or_insert(Bucket {
            tokens: burst,
            updated_ms: now_ms,
        });
        let elapsed = (now_ms - bucket.updated_ms).max(0) as f64 / 1000.0;
        // `min`: a bucket filled while fewer nodes shared the limit shrinks to the share.
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated_ms = now_ms;
        if bucket.tokens >= need {
            bucket.tokens -= n as f64;
            Ok(())
        } else {
            Err(((need - bucket.tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_burst_and_refills_over_time() {
        let limiter = RateLimiter::new(RateConfig {
            per_second: 100.0,
            burst: 200.0,
        });
        assert_eq!(limiter.take(1, 150, 0), Ok(()));
        assert_eq!(limiter.take(1, 100, 0), Err(1));
        assert_eq!(limiter.take(2, 100, 0), Ok(()), "buckets are per key");
        assert_eq!(limiter.take(1, 100, 500), Ok(()), "50 left + 50 refilled");
        assert_eq!(limiter.take(1, 1, 500), Err(1));
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let limiter = RateLimiter::new(RateConfig {
            per_second: 0.0,
            burst: 0.0,
        });
        limiter.set_nodes(3);
        assert_eq!(limiter.take(1, 1_000_000, 0), Ok(()));
    }

    #[test]
    fn each_of_n_nodes_holds_its_part_of_rate_and_burst() {
        let limiter = RateLimiter::new(RateConfig {
            per_second: 100.0,
            burst: 200.0,
        });
        limiter.set_nodes(4);
        assert_eq!(limiter.share(), (25.0, 50.0));
        // A full bucket holds 50, refilled at 25 a second.
        assert_eq!(limiter.take(1, 50, 0), Ok(()));
        assert_eq!(limiter.take(1, 1, 0), Err(1));
        assert_eq!(limiter.take(1, 25, 1_000), Ok(()));
        assert_eq!(limiter.take(1, 1, 1_000), Err(1));
        // Never below one event a second; a rate under 1 stays as configured.
        limiter.set_nodes(1_000);
        assert_eq!(limiter.share(), (1.0, 1.0));
        let slow = RateLimiter::new(RateConfig {
            per_second: 0.5,
            burst: 0.5,
        });
        slow.set_nodes(2);
        assert_eq!(slow.share(), (0.5, 0.5));
        // Back to one node: the whole rate and burst again.
        limiter.set_nodes(0);
        assert_eq!(limiter.share(), (100.0, 200.0));
    }

    #[test]
    fn a_bucket_filled_for_fewer_nodes_shrinks_to_the_new_share() {
        let limiter = RateLimiter::new(RateConfig {
            per_second: 10.0,
            burst: 100.0,
        });
        assert_eq!(limiter.take(1, 1, 0), Ok(()), "99 left");
        limiter.set_nodes(2);
        // Capped at 50 now (not 99): 50 fit, then none.
        assert_eq!(limiter.take(1, 50, 0), Ok(()));
        assert_eq!(limiter.take(1, 1, 0), Err(1));
    }

    #[test]
    fn a_request_larger_than_the_burst_is_paid_back_before_the_next() {
        let limiter = RateLimiter::new(RateConfig {
            per_second: 10.0,
            burst: 20.0,
        });
        // 50 events on a full bucket of 20: admitted, the bucket owes 30.
        assert_eq!(limiter.take(1, 50, 0), Ok(()));
        // After 3 s it is back at 0: one event waits 1 s more; after 4 s it fits.
        assert_eq!(limiter.take(1, 1, 3_000), Err(1));
        assert_eq!(limiter.take(1, 10, 4_000), Ok(()));
        assert_eq!(limiter.take(1, 1, 4_000), Err(1));
    }
}
