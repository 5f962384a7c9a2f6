//! Window lengths as people write them ("15m", "24h", "7d", "4w", "1d12h"): the one
//! parser behind the CLI's `--since` and the API's `since=` (pure).

use jiff::fmt::friendly::SpanParser;
use jiff::Span;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The longest window: three years (the oldest accepted event is from 2020).
pub const MAX_SINCE_DAYS: i64 = 3 * 365 + 1;
const EXPECTED: &str = "a duration like 15m, 24h, 7d or 4w (units m, h, d, w)";

/// A window length in milliseconds; the error says what is wrong, to be shown after the
/// parameter's name (`since ...`).
pub fn parse_since(text: &str) -> Result<i64, String> {
    static PARSER: SpanParser = SpanParser::new();
    let text = text.trim();
    // jiff also reads ISO 8601 ("P1D") and "1 day ago"; only the short friendly form is ours.
    if !text.starts_with(|c: char| c.is_ascii_digit())
        || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        || text.ends_with("ago")
    {
        return Err(format!("must be {EXPECTED}, got {text:?}"));
    }
    let span: Span = PARSER.parse_span(text).map_err(|e| {
        // The digits and units are checked above: what jiff still refuses is a number
        // beyond its span limits.
        let e = e.to_string();
        if e.contains("too big") || e.contains("range") {
            too_long(text)
        } else {
            format!("must be {EXPECTED}, got {text:?}")
        }
    })?;
    let calendar = span.get_years() != 0 || span.get_months() != 0;
    let fine = span.get_seconds() != 0
        || span.get_milliseconds() != 0
        || span.get_microseconds() != 0
        || span.get_nanoseconds() != 0;
    if calendar || fine {
        return Err(format!("must use the units m, h, d or w, got {text:?}"));
    }
    let ms = [
        (i64::from(span.get_weeks()), 7 * DAY_MS),
        (i64::from(span.get_days()), DAY_MS),
        (i64::from(span.get_hours()), HOUR_MS),
        (span.get_minutes(), MINUTE_MS),
    ]
    .iter()
    .try_fold(0i64, |sum, (n, unit)| {
        n.checked_mul(*unit)?.checked_add(sum)
    })
    .ok_or_else(|| too_long(text))?;
    if ms <= 0 {
        return Err(format!("must be longer than zero, got {text:?}"));
    }
    if ms > MAX_SINCE_DAYS * DAY_MS {
        return Err(too_long(text));
    }
    Ok(ms)
}

fn too_long(text: &str) -> String {
    format!("must be at most {MAX_SINCE_DAYS}d (3 years), got {text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_in_minutes_hours_days_and_weeks() {
        assert_eq!(parse_since("15m"), Ok(15 * MINUTE_MS));
        assert_eq!(parse_since("24h"), Ok(DAY_MS));
        assert_eq!(parse_since("7d"), Ok(7 * DAY_MS));
        assert_eq!(parse_since("4w"), Ok(28 * DAY_MS));
        assert_eq!(parse_since("1d12h"), Ok(36 * HOUR_MS));
        assert_eq!(parse_since(" 30m "), Ok(30 * MINUTE_MS));
        assert_eq!(parse_since("1096d"), Ok(1096 * DAY_MS));
    }

    #[test]
    fn zero_is_refused() {
        for text in ["0m", "0d", "0w", "0h0m"] {
            let e = parse_since(text).unwrap_err();
            assert!(e.contains("longer than zero"), "{text}: {e}");
        }
    }

    #[test]
    fn huge_durations_say_too_long_not_a_date_error() {
        for text in ["9999999999999d", "1097d", "157w", "99999999999999999999m"] {
            let e = parse_since(text).unwrap_err();
            assert!(e.contains("at most 1096d (3 years)"), "{text}: {e}");
        }
    }

    #[test]
    fn other_units_and_forms_are_refused() {
        for text in ["30s", "1y", "2mo", "10ms"] {
            let e = parse_since(text).unwrap_err();
            assert!(e.contains("units m, h, d or w"), "{text}: {e}");
        }
        for text in ["", "d", "7", "-7d", "7d ago", "P7D", "7x", "7.5d", "1e3d"] {
            let e = parse_since(text).unwrap_err();
            assert!(e.contains("like 15m, 24h, 7d or 4w"), "{text:?}: {e}");
        }
    }
}
