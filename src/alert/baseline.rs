//! Seasonal baselines for the rules (pure): what a window usually holds at this time of
//! day, from the same window on earlier days of the same kind (weekday or weekend), and
//! whether a value is beyond the usual under that history's own spread (median and
//! median absolute deviation, in exact integers such as nano-USD).
//!
//! Traffic has a daily rhythm (a peak several times the night) and a weekly one (quiet
//! weekends): comparing an hour with the trailing 7-day hourly average calls every daily
//! peak a spike. The same hour of earlier days has the rhythm built in.

const DAY_MS: i64 = 86_400_000;

/// How many earlier days are looked at (two weeks: ten weekdays and four weekend days).
pub const DAYS: i64 = 14;

/// Fewer samples than this make no baseline (no finding on a young workspace).
pub const MIN_SAMPLES: usize = 3;

/// The median absolute deviation of normal data times 1.4826 is its standard deviation:
/// as the fraction 14826 / 10000 so that comparisons stay integers.
const MAD_TO_SIGMA: (i128, i128) = (14_826, 10_000);

/// Saturday or Sunday (UTC) at `t_ms`.
fn weekend(t_ms: i64) -> bool {
    // 1970-01-01 was a Thursday: Monday is 0.
    (t_ms.div_euclid(DAY_MS) + 3).rem_euclid(7) >= 5
}

/// Of the days back (1..=DAYS) that have a sample, those to compare `now_ms` with: the
/// ones of the same kind (weekday or weekend) when there are at least MIN_SAMPLES of
/// them, else all (a short history, where the kind cannot be told yet).
pub fn comparable(now_ms: i64, days_back: &[i64]) -> Vec<i64> {
    let same: Vec<i64> = days_back
        .iter()
        .copied()
        .filter(|d| weekend(now_ms - d * DAY_MS) == weekend(now_ms))
        .collect();
    if same.len() >= MIN_SAMPLES {
        same
    } else {
        days_back.to_vec()
    }
}

/// The usual value and its spread from samples of the same window on comparable days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    /// The median sample (the upper one of an even count: the quieter choice).
    pub expected: i64,
    /// The median absolute deviation from `expected`.
    pub mad: i64,
    pub samples: usize,
}

impl Baseline {
    /// None on fewer than MIN_SAMPLES samples.
    pub fn of(samples: &[i64]) -> Option<Baseline> {
        if samples.len() < MIN_SAMPLES {
            return None;
        }
        let expected = median(samples.to_vec());
        let deviations = samples
            .iter()
            .map(|s| {
                (*s as i128 - expected as i128)
                    .unsigned_abs()
                    .min(i64::MAX as u128) as i64
            })
            .collect();
        Some(Baseline {
            expected,
            mad: median(deviations),
            samples: samples.len(),
        })
    }

    /// `now` is above the usual by at least `floor` (materiality, in the samples' unit)
    /// and by more than `sigmas` robust standard deviations (1.4826 x MAD) of the
    /// history. `sigmas` is a dimensionless threshold, taken in thousandths; every
    /// amount stays an integer.
    pub fn unusually_high(&self, now: i64, sigmas: f64, floor: i64) -> bool {
        let excess = now as i128 - self.expected as i128;
        let milli_sigmas = (sigmas * 1000.0).round() as i128;
        excess > 0
            && excess >= floor as i128
            && excess * MAD_TO_SIGMA.1 * 1000 > milli_sigmas * MAD_TO_SIGMA.0 * self.mad as i128
    }
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-02-25 was a Wednesday, 2026-02-28 a Saturday.
    const WEDNESDAY: i64 = 1_772_028_000_000;

    #[test]
    fn a_weekday_is_compared_with_weekdays_and_a_weekend_day_with_weekend_days() {
        let all: Vec<i64> = (1..=DAYS).collect();
        // Wednesday: back 1, 2 (Tue, Mon) are weekdays, 3 and 4 (Sun, Sat) are not.
        let weekdays = comparable(WEDNESDAY, &all);
        assert_eq!(weekdays, vec![1, 2, 5, 6, 7, 8, 9, 12, 13, 14]);
        let saturday = WEDNESDAY + 3 * DAY_MS;
        assert_eq!(comparable(saturday, &all), vec![6, 7, 13, 14]);
        // Two weekend days of history are too few to tell: every day counts.
        assert_eq!(comparable(saturday, &[1, 2, 3, 7]), vec![1, 2, 3, 7]);
    }

    #[test]
    fn the_median_and_its_deviation_resist_one_odd_day() {
        let b = Baseline::of(&[100, 110, 90, 105, 95, 10_000]).unwrap();
        assert_eq!(b.expected, 105);
        assert_eq!(b.mad, 10);
        assert_eq!(b.samples, 6);
        assert_eq!(Baseline::of(&[1, 2]), None, "two days are no baseline");
    }

    #[test]
    fn a_peak_within_the_usual_spread_is_not_unusual_but_one_far_beyond_it_is() {
        // The same peak hour on earlier days: 1.0-1.6 dollars (in nanos).
        let days = [1_000, 1_600, 1_200, 1_400, 1_100, 1_500, 1_300].map(|d| d * 1_000_000);
        let b = Baseline::of(&days).unwrap();
        assert_eq!((b.expected, b.mad), (1_300_000_000, 200_000_000));
        // 2.4 dollars is 1.1 dollars above: under 4 x 1.4826 x 0.2 = 1.19.
        assert!(!b.unusually_high(2_400_000_000, 4.0, 1_000_000_000));
        // 2.5 dollars is 1.2 above: beyond 4 robust deviations, and above a 1 dollar floor.
        assert!(b.unusually_high(2_500_000_000, 4.0, 1_000_000_000));
        // The same change is not material under a 2 dollar floor.
        assert!(!b.unusually_high(2_500_000_000, 4.0, 2_000_000_000));
        // A history with no spread: any material rise is beyond it.
        let flat = Baseline::of(&[5, 5, 5]).unwrap();
        assert!(flat.unusually_high(6, 4.0, 1));
        assert!(!flat.unusually_high(5, 4.0, 0), "the usual is not a rise");
    }
}
