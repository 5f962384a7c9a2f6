//! A channel's digest schedule (pure): daily or weekly at a local time in an IANA time
//! zone, its checks (errors name the API field) and the period due at a given moment.

use super::Period;
use crate::event::FieldError;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    Daily,
    Weekly,
}

/// `{"cadence": "daily"|"weekly", "time": "HH:MM", "timeZone": "Europe/Berlin",
/// "weekday": "monday"}` (weekday for weekly only, default monday). The stored form is
/// the checked one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestSchedule {
    pub cadence: Cadence,
    pub time: String,
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<String>,
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
];

impl DigestSchedule {
    /// Read a channel's `digest` field; every problem names its field (`digest.time`).
    pub fn from_json(v: &Value) -> Result<DigestSchedule, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = v.as_object() else {
            return Err(vec![FieldError::new(
                "digest",
                "must be an object: {\"cadence\", \"time\", \"timeZone\"}",
            )]);
        };
        let text = |k: &str| obj.get(k).and_then(Value::as_str);
        let cadence = match text("cadence") {
            Some("daily") => Some(Cadence::Daily),
            Some("weekly") => Some(Cadence::Weekly),
            _ => {
                errors.push(FieldError::new("digest.cadence", "must be daily or weekly"));
                None
            }
        };
        let time = text("time").filter(|t| hour_minute(t).is_some());
        if time.is_none() {
            errors.push(FieldError::new(
                "digest.time",
                "must be a local time HH:MM (00:00 to 23:59)",
            ));
        }
        let zone = text("timeZone").filter(|z| TimeZone::get(z).is_ok());
        if zone.is_none() {
            errors.push(FieldError::new(
                "digest.timeZone",
                "must be an IANA time zone such as Europe/Berlin or UTC",
            ));
        }
        let weekday = match (cadence, obj.get("weekday")) {
            (_, None | Some(Value::Null)) | (None, _) => None,
            (Some(Cadence::Weekly), Some(w)) => match w.as_str().and_then(weekday_of) {
                Some(_) => w.as_str().map(str::to_ascii_lowercase),
                None => {
                    errors.push(FieldError::new(
                        "digest.weekday",
                        "must be monday to sunday",
                    ));
                    None
                }
            },
            (Some(Cadence::Daily), Some(_)) => {
                errors.push(FieldError::new(
                    "digest.weekday",
                    "is for a weekly digest only",
                ));
                None
            }
        };
        for key in obj.keys() {
            if !["cadence", "time", "timeZone", "weekday"].contains(&key.as_str()) {
                errors.push(FieldError::new(
                    format!("digest.{key}"),
                    "is not a digest setting; use cadence, time, timeZone, weekday",
                ));
            }
        }
        match (cadence, time, zone) {
            (Some(cadence), Some(time), Some(zone)) if errors.is_empty() => Ok(DigestSchedule {
                cadence,
                time: time.to_string(),
                time_zone: zone.to_string(),
                weekday: weekday.or_else(|| (cadence == Cadence::Weekly).then(|| "monday".into())),
            }),
            _ => Err(errors),
        }
    }

    /// The latest scheduled moment at or before `now_ms` and the period it closes (the
    /// local day or week before it, DST-correct), or None if the schedule cannot be read.
    pub fn due(&self, now_ms: i64) -> Option<Period> {
        let tz = TimeZone::get(&self.time_zone).ok()?;
        let (h, m) = hour_minute(&self.time)?;
        let now = Timestamp::from_millisecond(now_ms)
            .ok()?
            .to_zoned(tz.clone());
        let mut day: Date = now.date();
        let at = loop {
            let at = day.at(h, m, 0, 0).to_zoned(tz.clone()).ok()?;
            let right_day = match (self.cadence, self.weekday.as_deref()) {
                (Cadence::Weekly, Some(w)) => weekday_of(w)? == day.weekday(),
                _ => true,
            };
            if right_day && at.timestamp() <= now.timestamp() {
                break at;
            }
            day = day.yesterday().ok()?;
        };
        let start: Zoned = match self.cadence {
            Cadence::Daily => at.checked_sub(1.day()).ok()?,
            Cadence::Weekly => at.checked_sub(1.week()).ok()?,
        };
        Some(Period {
            start_ms: start.timestamp().as_millisecond(),
            end_ms: at.timestamp().as_millisecond(),
        })
    }
}

fn weekday_of(name: &str) -> Option<Weekday> {
    let name = name.to_ascii_lowercase();
    WEEKDAYS.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// "09:30" -> (9, 30).
fn hour_minute(text: &str) -> Option<(i8, i8)> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_daily_digest_is_due_at_its_local_time_for_the_local_day_before() {
        let s = DigestSchedule::from_json(
            &json!({"cadence": "daily", "time": "09:00", "timeZone": "Europe/Berlin"}),
        )
        .unwrap();
        // 08:30 UTC is 09:30 in Berlin (winter): today's 09:00 is due.
        let p = s.due(ms("2026-02-25T08:30:00Z")).unwrap();
        assert_eq!(p.end_ms, ms("2026-02-25T08:00:00Z"));
        assert_eq!(p.start_ms, ms("2026-02-24T08:00:00Z"));
        // 07:59 UTC is 08:59 in Berlin: still yesterday's.
        assert_eq!(
            s.due(ms("2026-02-25T07:59:00Z")).unwrap().end_ms,
            ms("2026-02-24T08:00:00Z")
        );
        // Across the spring change (29 March 2026) the local day has 23 hours.
        let p = s.due(ms("2026-03-29T08:00:00Z")).unwrap();
        assert_eq!(p.end_ms, ms("2026-03-29T07:00:00Z"));
        assert_eq!(p.end_ms - p.start_ms, 23 * 3_600_000);
    }

    #[test]
    fn a_weekly_digest_is_due_on_its_weekday() {
        let s = DigestSchedule::from_json(&json!({"cadence": "weekly", "time": "08:00",
            "timeZone": "America/New_York", "weekday": "Monday"}))
        .unwrap();
        assert_eq!(s.weekday.as_deref(), Some("monday"));
        // Wednesday 25 Feb 2026: the Monday before, 08:00 EST = 13:00 UTC.
        let p = s.due(ms("2026-02-25T12:00:00Z")).unwrap();
        assert_eq!(p.end_ms, ms("2026-02-23T13:00:00Z"));
        assert_eq!(p.start_ms, ms("2026-02-16T13:00:00Z"));
    }

    #[test]
    fn a_bad_schedule_names_each_field() {
        let e = DigestSchedule::from_json(&json!({"cadence": "hourly", "time": "25:00",
            "timeZone": "Mars/Olympus", "weekday": "monday", "at": 1}))
        .unwrap_err();
        let fields: Vec<String> = e.iter().map(|f| f.field.to_string()).collect();
        assert_eq!(
            fields,
            [
                "digest.cadence",
                "digest.time",
                "digest.timeZone",
                "digest.at"
            ]
        );
        let e = DigestSchedule::from_json(&json!({"cadence": "daily", "time": "9:00",
            "timeZone": "UTC", "weekday": "monday"}))
        .unwrap_err();
        let fields: Vec<String> = e.iter().map(|f| f.field.to_string()).collect();
        assert_eq!(fields, ["digest.time", "digest.weekday"]);
    }
}
