//! Per-key token buckets for the ingest rate (events per second with a burst).

use std::collections::HashMap;
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
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl RateLimiter {
    pub fn new(config: RateConfig) -> RateLimiter {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take `n` events for `key_id` at `now_ms`; Err(seconds to wait) when the bucket
    /// does not hold them. A request larger than the burst waits for a full bucket.
    pub fn take(&self, key_id: i64, n: usize, now_ms: i64) -> Result<(), u64> {
        let RateConfig { per_second, burst } = self.config;
        if per_second <= 0.0 {
            return Ok(());
        }
        let need = (n as f64).min(burst);
        let mut buckets = self.buckets.lock().unwrap();
        let bucket = buckets.entry(key_id).or_insert(Bucket {
            tokens: burst,
            updated_ms: now_ms,
        });
        let elapsed = (now_ms - bucket.updated_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated_ms = now_ms;
        if bucket.tokens >= need {
            bucket.tokens -= need;
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
        assert_eq!(limiter.take(1, 1_000_000, 0), Ok(()));
    }
}
