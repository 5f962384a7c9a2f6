//! The promptVersion gate for CI: is a candidate version's per-request cost (or tokens,
//! or latency) more than `maxIncreasePct` above the baseline version's? A seeded
//! percentile bootstrap gives a confidence interval on the ratio of the two means; the
//! verdict is only pass or fail when the interval is on one side of the limit. Pure: the
//! caller passes the per-request values.

use crate::money::Usd;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub const DEFAULT_MIN_SAMPLES: usize = 30;
pub const DEFAULT_MAX_INCREASE_PCT: f64 = 10.0;
/// Resamples of the bootstrap; with a fixed seed the same data gives the same interval.
pub const RESAMPLES: usize = 2000;
pub const SEED: u64 = 0x6275_726e_7261_7465; // "burnrate"
pub const CONFIDENCE: f64 = 0.95;

pub const RULE: &str = "pass when the upper bound of the 95% bootstrap interval of the increase is at most maxIncreasePct; fail when its lower bound is above maxIncreasePct; otherwise (the interval contains the limit), or with fewer than minSamples requests of either version, or a baseline mean of 0: not_enough_data, because the data cannot yet tell";

/// What the gate compares per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    CostPerRequest,
    InputTokensPerRequest,
    OutputTokensPerRequest,
    Latency,
}

impl Metric {
    pub const EXPECTED: &'static str =
        "cost_per_request, input_tokens_per_request, output_tokens_per_request, latency";

    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "cost_per_request" => Metric::CostPerRequest,
            "input_tokens_per_request" => Metric::InputTokensPerRequest,
            "output_tokens_per_request" => Metric::OutputTokensPerRequest,
            "latency" => Metric::Latency,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    NotEnoughData,
}

impl Verdict {
    /// The exit code of `burnrate gate`.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::NotEnoughData => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub max_increase_pct: f64,
    pub min_samples: usize,
}

/// One version's sample: how many requests and their mean (nano-USD for cost, tokens,
/// or milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub requests: usize,
    /// The mean in the metric's unit; for cost as exact USD in `meanUsd` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_usd: Option<Usd>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub verdict: Verdict,
    pub reason: String,
    pub metric: Metric,
    pub max_increase_pct: f64,
    pub min_samples: usize,
    pub candidate: Sample,
    pub baseline: Sample,
    /// (candidate mean / baseline mean - 1) in percent.
    pub estimate_pct: Option<f64>,
    /// The 95% percentile bootstrap interval of the increase, in percent.
    pub interval_pct: Option<[f64; 2]>,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
    pub rule: &'static str,
}

fn sample(values: &[i64], metric: Metric) -> Sample {
    let sum: i128 = values.iter().map(|v| *v as i128).sum();
    let n = values.len();
    let mean = (n > 0).then(|| sum as f64 / n as f64);
    match metric {
        Metric::CostPerRequest => Sample {
            requests: n,
            mean: None,
            mean_usd: (n > 0).then(|| Usd((sum / n as i128) as i64)),
        },
        _ => Sample {
            requests: n,
            mean,
            mean_usd: None,
        },
    }
}

/// Sum of a resample with replacement of `values` (exact, integers).
fn resample_sum(values: &[i64], rng: &mut StdRng) -> i128 {
    let n = values.len();
    (0..n).map(|_| values[rng.random_range(0..n)] as i128).sum()
}

/// The percentile bootstrap interval of mean(candidate) / mean(baseline) - 1, in
/// percent: each resample draws both versions again with replacement. Deterministic
/// for a seed. Both slices must be non-empty.
pub fn interval(candidate: &[i64], baseline: &[i64], resamples: usize, seed: u64) -> [f64; 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    let (nc, nb) = (candidate.len() as f64, baseline.len() as f64);
    let mut increases: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            let (c, b) = (
                resample_sum(candidate, &mut rng),
                resample_sum(baseline, &mut rng),
            );
            // A resample of the baseline that is all zeros has no ratio: an unbounded
            // increase, which keeps the upper bound honest.
            if b == 0 {
                f64::INFINITY
            } else {
                ((c as f64 * nb) / (b as f64 * nc) - 1.0) * 100.0
            }
        })
        .collect();
    increases.sort_by(f64::total_cmp);
    let alpha = (1.0 - CONFIDENCE) / 2.0;
    let at = |p: f64| increases[(p * (increases.len() - 1) as f64).round() as usize];
    [at(alpha), at(1.0 - alpha)]
}

/// Compare the candidate's per-request values with the baseline's.
pub fn evaluate(candidate: &[i64], baseline: &[i64], metric: Metric, s: Settings) -> Outcome {
    let mut out = Outcome {
        verdict: Verdict::NotEnoughData,
        reason: String::new(),
        metric,
        max_increase_pct: s.max_increase_pct,
        min_samples: s.min_samples,
        candidate: sample(candidate, metric),
        baseline: sample(baseline, metric),
        estimate_pct: None,
        interval_pct: None,
        confidence: CONFIDENCE * 100.0,
        resamples: RESAMPLES,
        seed: SEED,
        rule: RULE,
    };
    let (nc, nb) = (candidate.len(), baseline.len());
    if nc < s.min_samples.max(1) || nb < s.min_samples.max(1) {
        out.reason = format!(
            "{nc} candidate and {nb} baseline requests; at least {} of each are needed",
            s.min_samples
        );
        return out;
    }
    let (sc, sb) = (
        candidate.iter().map(|v| *v as i128).sum::<i128>(),
        baseline.iter().map(|v| *v as i128).sum::<i128>(),
    );
    if sb == 0 {
        out.reason = "the baseline's mean is 0, so an increase in percent is undefined".into();
        return out;
    }
    let estimate = ((sc as f64 * nb as f64) / (sb as f64 * nc as f64) - 1.0) * 100.0;
    let [low, high] = interval(candidate, baseline, RESAMPLES, SEED);
    out.estimate_pct = Some(estimate);
    out.interval_pct = Some([low, high]);
    let limit = s.max_increase_pct;
    (out.verdict, out.reason) = if high <= limit {
        (
            Verdict::Pass,
            format!("the increase is at most {high:.1}% (95% interval), within the {limit}% limit"),
        )
    } else if low > limit {
        (
            Verdict::Fail,
            format!("the increase is at least {low:.1}% (95% interval), above the {limit}% limit"),
        )
    } else {
        (
            Verdict::NotEnoughData,
            format!(
                "the 95% interval {low:.1}% .. {high:.1}% contains the {limit}% limit; more requests will tell"
            ),
        )
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings {
        max_increase_pct: 10.0,
        min_samples: 30,
    };

    /// `n` (even) values in pairs mean ± 0..20%, so their mean is exactly `mean`.
    fn around(mean: i64, n: usize) -> Vec<i64> {
        (0..n as i64)
            .map(|i| {
                let offset = mean * ((i / 2) % 5) / 20;
                if i % 2 == 0 {
                    mean + offset
                } else {
                    mean - offset
                }
            })
            .collect()
    }

    #[test]
    fn the_interval_is_seeded_and_brackets_the_estimate() {
        let (c, b) = (around(1300, 200), around(1000, 200));
        let first = interval(&c, &b, RESAMPLES, SEED);
        assert_eq!(
            first,
            interval(&c, &b, RESAMPLES, SEED),
            "same seed, same interval"
        );
        assert!(first[0] < 30.0 && 30.0 < first[1], "{first:?}");
        // With ±20% spread and 200 requests each, the interval is a few points wide.
        assert!(first[1] - first[0] < 10.0, "{first:?}");
    }

    #[test]
    fn a_clear_regression_fails() {
        let o = evaluate(
            &around(1300, 200),
            &around(1000, 200),
            Metric::CostPerRequest,
            SETTINGS,
        );
        assert_eq!(o.verdict, Verdict::Fail, "{}", o.reason);
        assert_eq!(o.verdict.exit_code(), 1);
        assert_eq!(
            o.estimate_pct.map(|e| (e * 10.0).round() / 10.0),
            Some(30.0)
        );
        assert_eq!(o.candidate.mean_usd, Some(Usd(1300)));
        assert!(o.interval_pct.unwrap()[0] > 10.0);
    }

    #[test]
    fn the_same_cost_passes() {
        let o = evaluate(
            &around(1000, 200),
            &around(1000, 150),
            Metric::CostPerRequest,
            SETTINGS,
        );
        assert_eq!(o.verdict, Verdict::Pass, "{}", o.reason);
        assert_eq!(o.estimate_pct, Some(0.0));
        assert!(o.interval_pct.unwrap()[1] <= 10.0);
    }

    #[test]
    fn too_few_requests_or_an_interval_across_the_limit_is_not_enough_data() {
        let o = evaluate(
            &around(2000, 28),
            &around(1000, 200),
            Metric::CostPerRequest,
            SETTINGS,
        );
        assert_eq!(o.verdict, Verdict::NotEnoughData);
        assert_eq!(o.verdict.exit_code(), 2);
        assert_eq!(
            o.reason,
            "28 candidate and 200 baseline requests; at least 30 of each are needed"
        );
        assert_eq!(o.interval_pct, None);
        // +10% on 30 noisy requests: the interval straddles the 10% limit.
        let noisy = |mean: i64| -> Vec<i64> {
            (0..30)
                .map(|i| if i % 2 == 0 { mean / 4 } else { mean * 7 / 4 })
                .collect()
        };
        let o = evaluate(&noisy(1100), &noisy(1000), Metric::Latency, SETTINGS);
        assert_eq!(o.verdict, Verdict::NotEnoughData, "{}", o.reason);
        let [low, high] = o.interval_pct.unwrap();
        assert!(low <= 10.0 && 10.0 < high);
        assert_eq!(o.candidate.mean, Some(1100.0));
        let zero = evaluate(&around(10, 40), &[0; 40], Metric::CostPerRequest, SETTINGS);
        assert_eq!(zero.verdict, Verdict::NotEnoughData);
    }
}
