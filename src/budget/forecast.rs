//! Where a budget's period will end up. Two methods:
//! - run rate: spend so far divided by time elapsed, carried to the period's end;
//! - for months with a week of history, weekday-aware: each remaining day is expected to
//!   cost what the same weekday cost in the trailing 7 days (weekends are quiet for most
//!   B2B apps, so a Monday-based run rate overshoots and a Sunday-based one undershoots).

use super::period::{weekday, Period};
use super::{Budget, SpendInput};

pub struct Forecast {
    pub total: i64,
    pub method: &'static str,
    pub exhaustion_ms: Option<i64>,
}

/// Extrapolating from less than this much of a period is noise.
const MIN_ELAPSED_MS: i64 = 60_000;

pub fn project(budget: &Budget, input: &SpendInput, start: i64, end: i64, now: i64) -> Forecast {
    let limit = budget.limit_usd.nanos();
    match (budget.period, input.trailing_days) {
        (Period::Month, Some(days)) => weekday_aware(budget, input.spent, &days, end, now, limit),
        _ => run_rate(input.spent, start, end, now, limit),
    }
}

/// Spend so far carried to the period's end at its average rate (also each tenant's
/// month-end projection in `report::margin`).
pub fn run_rate(spent: i64, start: i64, end: i64, now: i64, limit: i64) -> Forecast {
    let elapsed = (now - start).max(MIN_ELAPSED_MS) as i128;
    let remaining = (end - now).max(0) as i128;
    let total = spent as i128 + spent as i128 * remaining / elapsed;
    let exhaustion_ms = (spent < limit && total > limit as i128 && spent > 0)
        .then(|| saturate(now as i128 + (limit as i128 - spent as i128) * elapsed / spent as i128));
    Forecast {
        total: saturate(total),
        method: "run_rate",
        exhaustion_ms,
    }
}

fn weekday_aware(
    budget: &Budget,
    spent: i64,
    trailing: &[i64; 7],
    end: i64,
    now: i64,
    limit: i64,
) -> Forecast {
    let tz = budget.timezone.as_str();
    let today = weekday(now, tz);
    // trailing[0] is 7 days ago: the same weekday as today.
    let expected = |at: i64| trailing[(weekday(at, tz) + 7 - today) % 7] as i128;
    let mut total = spent as i128;
    let mut exhaustion_ms = None;
    let mut cursor = now;
    while cursor < end {
        let (day_start, day_end) = Period::Day.bounds(cursor, tz);
        let day_end = day_end.min(end);
        let day_len = (day_end - day_start).max(1) as i128;
        let part = (day_end - cursor) as i128;
        let add = expected(cursor) * part / day_len;
        if exhaustion_ms.is_none() && spent < limit && total + add > limit as i128 && add > 0 {
            let need = limit as i128 - total;
            exhaustion_ms = Some(saturate(cursor as i128 + need * part / add));
        }
        total += add;
        cursor = day_end;
    }
    Forecast {
        total: saturate(total),
        method: "weekday_trailing_7d",
        exhaustion_ms,
    }
}

/// An i128 result bounded to i64: a forecast past $9.2 billion shows the maximum rather
/// than wrapping to a negative amount.
fn saturate(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}
