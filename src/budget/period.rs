//! Calendar periods in a time zone: the hour, day, ISO week (Monday first) or month that
//! holds an instant. Days are calendar days, so a day across a DST change is 23 or 25 h.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "hour" => Some(Period::Hour),
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// [start, end) in ms of the period holding `at_ms`, aligned in `tz` (an IANA name
    /// checked when the budget was created; UTC if it has since vanished).
    pub fn bounds(self, at_ms: i64, tz: &str) -> (i64, i64) {
        let tz = TimeZone::get(tz).unwrap_or(TimeZone::UTC);
        let at = Timestamp::from_millisecond(at_ms)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(tz);
        let (start, end) = self
            .zoned_bounds(&at)
            .expect("calendar arithmetic in range");
        (
            start.timestamp().as_millisecond(),
            end.timestamp().as_millisecond(),
        )
    }

    fn zoned_bounds(self, at: &Zoned) -> Result<(Zoned, Zoned), jiff::Error> {
        Ok(match self {
            Period::Hour => {
                // Whole hours since the day began: right across DST changes too.
                let day = at.start_of_day()?;
                let hours = (at.timestamp().as_second() - day.timestamp().as_second()) / 3600;
                let start = day.timestamp().checked_add((hours * 3600).seconds())?;
                let start = start.to_zoned(at.time_zone().clone());
                let end = start.timestamp().checked_add(1.hour())?;
                (start, end.to_zoned(at.time_zone().clone()))
            }
            Period::Day => {
                let start = at.start_of_day()?;
                let end = start.date().tomorrow()?.to_zoned(at.time_zone().clone())?;
                (start, end)
            }
            Period::Week => {
                let back = at.weekday().to_monday_zero_offset();
                let monday = at.date().checked_sub((back as i64).days())?;
                let start = monday.to_zoned(at.time_zone().clone())?;
                let end = monday
                    .checked_add(7.days())?
                    .to_zoned(at.time_zone().clone())?;
                (start, end)
            }
            Period::Month => {
                let first = at.date().first_of_month();
                let start = first.to_zoned(at.time_zone().clone())?;
                let end = first
                    .checked_add(1.month())?
                    .to_zoned(at.time_zone().clone())?;
                (start, end)
            }
        })
    }
}

/// The weekday of `at_ms` in `tz`, Monday = 0.
pub fn weekday(at_ms: i64, tz: &str) -> usize {
    let tz = TimeZone::get(tz).unwrap_or(TimeZone::UTC);
    let day: Weekday = Timestamp::from_millisecond(at_ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz)
        .weekday();
    day.to_monday_zero_offset() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn periods_are_calendar_aligned_in_utc() {
        let at = ms("2026-03-18T13:45:10Z"); // a Wednesday
        let cases = [
            (Period::Hour, "2026-03-18T13:00:00Z", "2026-03-18T14:00:00Z"),
            (Period::Day, "2026-03-18T00:00:00Z", "2026-03-19T00:00:00Z"),
            (Period::Week, "2026-03-16T00:00:00Z", "2026-03-23T00:00:00Z"),
            (
                Period::Month,
                "2026-03-01T00:00:00Z",
                "2026-04-01T00:00:00Z",
            ),
        ];
        for (period, start, end) in cases {
            assert_eq!(period.bounds(at, "UTC"), (ms(start), ms(end)), "{period:?}");
        }
    }

    #[test]
    fn periods_follow_the_budget_time_zone_and_dst() {
        // 2026-03-29 is the EU switch to summer time: that Berlin day has 23 hours.
        let at = ms("2026-03-29T12:00:00Z");
        assert_eq!(
            Period::Day.bounds(at, "Europe/Berlin"),
            (ms("2026-03-28T23:00:00Z"), ms("2026-03-29T22:00:00Z"))
        );
        // A month in New York starts at local midnight (UTC-5 on March 1st).
        assert_eq!(
            Period::Month.bounds(ms("2026-03-01T03:00:00Z"), "America/New_York"),
            (ms("2026-02-01T05:00:00Z"), ms("2026-03-01T05:00:00Z")),
            "03:00Z on March 1st is still February in New York"
        );
        // Hours in a zone with a 30-minute offset start at :30 UTC.
        assert_eq!(
            Period::Hour.bounds(ms("2026-03-18T13:45:00Z"), "Asia/Kolkata"),
            (ms("2026-03-18T13:30:00Z"), ms("2026-03-18T14:30:00Z"))
        );
    }

    #[test]
    fn the_last_instant_belongs_to_the_old_period_and_the_next_to_the_new() {
        let end = ms("2026-04-01T00:00:00Z");
        assert_eq!(Period::Month.bounds(end - 1, "UTC").1, end);
        assert_eq!(Period::Month.bounds(end, "UTC").0, end);
        assert_eq!(weekday(ms("2026-03-16T10:00:00Z"), "UTC"), 0, "a Monday");
    }
}
