//! How numbers, money and times read on the dashboard. Money is formatted from exact
//! nano-USD with integer arithmetic, so the page shows the same digits as the JSON API.

use crate::money::{group_digits, Usd};

/// `$1,234.57` from $1 up, below four significant digits (see `Usd::readable`). The
/// browser test mirrors this rule.
pub fn usd(amount: Usd) -> String {
    amount.readable()
}

/// Money for chart axes, with as many decimals as the axis step needs: `$15`, `$2.50`,
/// `$0.025`, `$1.2k`.
pub fn usd_axis(v: f64, step: f64) -> String {
    if step >= 1000.0 {
        return format!("${}k", trim_zeros(&format!("{:.1}", v / 1000.0)));
    }
    // Whole steps need no decimals; others the digits of the step, at least cents.
    let exact = |d: i32| {
        let x = step * 10f64.powi(d);
        (x - x.round()).abs() < 1e-6 * x.max(1.0)
    };
    let decimals = if exact(0) {
        0
    } else {
        (1..=6).find(|d| exact(*d)).unwrap_or(6).max(2) as usize
    };
    format!("${}", group_digits_f(v, decimals))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn group_digits_f(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    match text.split_once('.') {
        Some((whole, frac)) => format!("{}.{frac}", group_digits(whole)),
        None => group_digits(&text),
    }
}

/// A window's length in words: `24 hours`, `7 days`, `3 hours`, or a duration.
pub fn span(ms: i64) -> String {
    const H: i64 = 3_600_000;
    if ms > 0 && ms % (24 * H) == 0 && ms > 24 * H {
        format!("{} days", ms / (24 * H))
    } else if ms > 0 && ms % H == 0 {
        let h = ms / H;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else {
        duration(ms)
    }
}

pub fn int(n: u64) -> String {
    group_digits(&n.to_string())
}

/// A count that may be fractional (tokens per request): whole numbers.
pub fn count(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => int(v.round().max(0.0) as u64),
        _ => "—".into(),
    }
}

/// A ratio (0..1) as a percentage with one decimal.
pub fn ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            let p = v * 100.0;
            if p > 0.0 && p < 0.1 {
                "<0.1%".into()
            } else {
                format!("{p:.1}%")
            }
        }
        _ => "—".into(),
    }
}

/// A share already in percent.
pub fn share(v: Option<f64>) -> String {
    ratio(v.map(|p| p / 100.0))
}

/// A change in percent, signed: `+12.3%`, `−4.0%`; `new` when there was nothing before.
pub fn change(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v >= 900.0 {
                // Ten times and more reads better as a multiple.
                format!("{:.0}×", 1.0 + v / 100.0)
            } else if v >= 0.05 {
                format!("+{v:.1}%")
            } else if v <= -0.05 {
                format!("−{:.1}%", -v)
            } else {
                "±0%".into()
            }
        }
        _ => "—".into(),
    }
}

/// A change of a ratio in percentage points.
pub fn change_pp(now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(a), Some(b)) => {
            let d = (a - b) * 100.0;
            if d >= 0.05 {
                format!("+{d:.1} pp")
            } else if d <= -0.05 {
                format!("−{:.1} pp", -d)
            } else {
                "±0 pp".into()
            }
        }
        _ => "—".into(),
    }
}

/// Milliseconds as a human duration: `850 ms`, `4.2 s`, `3 min`, `2.5 h`, `3 d`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else if ms < 86_400_000 {
        format!("{:.1} h", ms as f64 / 3_600_000.0)
    } else {
        format!("{:.1} d", ms as f64 / 86_400_000.0)
    }
}

fn civil(ms: i64) -> Option<jiff::civil::DateTime> {
    Some(
        jiff::Timestamp::from_millisecond(ms)
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .datetime(),
    )
}

/// `Nov 23 14:00` (UTC).
pub fn time(ms: i64) -> String {
    civil(ms)
        .map(|t| t.strftime("%b %-d %H:%M").to_string())
        .unwrap_or_default()
}

/// `Nov 23 14:00:05` (UTC), for single requests.
pub fn time_secs(ms: i64) -> String {
    civil(ms)
        .map(|t| t.strftime("%b %-d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `Nov 23`.
pub fn day(ms: i64) -> String {
    civil(ms)
        .map(|t| t.strftime("%b %-d").to_string())
        .unwrap_or_default()
}

/// A time as typed in the filter bar: `2026-11-23 14:00` (seconds only when set).
pub fn input_time(ms: i64) -> String {
    let format = if ms % 60_000 == 0 {
        "%Y-%m-%d %H:%M"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    civil(ms)
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_default()
}

/// RFC 3339 in UTC, as the API takes it; whole seconds when there are no millis.
pub fn rfc3339(ms: i64) -> String {
    crate::report::rfc3339(ms)
}

/// Parse the RFC 3339 text the store writes.
pub fn parse_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_like_money() {
        assert_eq!(usd(Usd(0)), "$0.00");
        assert_eq!(usd(Usd(69_956_578_310)), "$69.96");
        assert_eq!(usd(Usd(1_234_567_890_123)), "$1,234.57");
        assert_eq!(usd(Usd(1_000_000_000)), "$1.00");
        assert_eq!(usd(Usd(999_990_000)), "$1.00");
        assert_eq!(usd(Usd(15_314_487)), "$0.01531");
        assert_eq!(usd(Usd(345_000)), "$0.000345");
        assert_eq!(usd(Usd(120_000_000)), "$0.12");
        assert_eq!(usd(Usd(2_000_000)), "$0.002");
        assert_eq!(usd(Usd(1_846_153)), "$0.001846");
        assert_eq!(usd(Usd(123_456_789)), "$0.1235");
        assert_eq!(usd(Usd(1_234)), "$0.000001234");
        assert_eq!(usd(Usd(7)), "$0.000000007");
        assert_eq!(usd(Usd(-2_500_000_000)), "-$2.50");
    }

    #[test]
    fn ratios_and_changes() {
        assert_eq!(ratio(Some(0.02252)), "2.3%");
        assert_eq!(ratio(None), "—");
        assert_eq!(change(Some(12.34)), "+12.3%");
        assert_eq!(change(Some(-4.0)), "−4.0%");
        assert_eq!(change(Some(0.01)), "±0%");
        assert_eq!(change(Some(1300.0)), "14×");
        assert_eq!(usd_axis(15.0, 5.0), "$15");
        assert_eq!(usd_axis(2.5, 2.5), "$2.50");
        assert_eq!(usd_axis(0.025, 0.025), "$0.025");
        assert_eq!(usd_axis(2500.0, 2500.0), "$2.5k");
        assert_eq!(span(7 * 86_400_000), "7 days");
        assert_eq!(span(86_400_000), "24 hours");
        assert_eq!(span(3 * 3_600_000), "3 hours");
        assert_eq!(change_pp(Some(0.05), Some(0.02)), "+3.0 pp");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(time(1_764_000_000_000), "Nov 24 16:00");
    }
}
