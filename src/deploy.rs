//! Deploy notes: short change notes ("summarize_v4: longer summaries for enterprise")
//! with the endpoint, prompt version, author and time they concern. Stored as control
//! objects of kind `deploy_note`; shown as markers on the dashboard's charts, and named in
//! explain sentences and alert evidence next to the change they likely caused. The
//! checks and the matching are pure; `save` and `list` go to the store.

use crate::event::FieldError;
use crate::store::{ControlStore, StoreError, WorkspaceId};
use serde::Serialize;
use serde_json::{json, Value};

pub const KIND: &str = "deploy_note";
/// A note is a line or two, not a changelog.
pub const MAX_NOTE_CHARS: usize = 500;
/// endpointTag, promptVersion and author: as long as the event contract's strings.
pub const MAX_NAME_CHARS: usize = 128;
const FIELDS: &[&str] = &["endpointTag", "promptVersion", "note", "author", "time"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployNote {
    pub id: i64,
    /// None: the deploy concerns every endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    pub note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// RFC 3339.
    pub time: String,
    #[serde(skip)]
    pub time_ms: i64,
}

impl DeployNote {
    /// `after summarize_v4: 'longer summaries for enterprise'` (or `after the deploy of
    /// Nov 20 14:00 UTC: '...'` when it names no version).
    pub fn mention(&self) -> String {
        let what = match &self.prompt_version {
            Some(v) => v.clone(),
            None => format!("the deploy of {}", short_time(self.time_ms)),
        };
        format!("after {what}: '{}'", self.note)
    }

    /// Does it concern `endpoint`?
    fn covers(&self, endpoint: &str) -> bool {
        self.endpoint_tag.as_deref().is_none_or(|e| e == endpoint)
    }
}

fn short_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%b %-d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The note that most likely explains a change of `endpoint` seen in `[from, to)`: the
/// newest note for that endpoint (or for every endpoint) in the window that names
/// `version`, else the newest one naming no version, else none. A note naming another
/// version is about another change.
pub fn for_change<'a>(
    notes: &'a [DeployNote],
    endpoint: &str,
    version: Option<&str>,
    from: i64,
    to: i64,
) -> Option<&'a DeployNote> {
    let in_window = |n: &&DeployNote| n.covers(endpoint) && n.time_ms >= from && n.time_ms < to;
    let newest = |want: Option<&str>| {
        notes
            .iter()
            .filter(in_window)
            .filter(|n| n.prompt_version.as_deref() == want)
            .max_by_key(|n| (n.time_ms, n.id))
    };
    version
        .and_then(|v| newest(Some(v)))
        .or_else(|| newest(None))
}

fn text(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    field,
                    format!("must be 1 to {max} characters without control characters"),
                ));
                None
            } else {
                Some(s.to_string())
            }
        }
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

/// Check a note's JSON (`POST /v1/deploys`, `burnrate deploy note`): every problem by
/// field. `time` defaults to `now_ms`; like an event's timestamp it is RFC 3339, not
/// before 2020 and at most 5 minutes ahead.
pub fn parse(body: &Value, now_ms: i64) -> Result<DeployNote, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.as_str(),
                format!("is not a deploy note field; use {}", FIELDS.join(", ")),
            ));
        }
    }
    let endpoint_tag = text(obj, "endpointTag", MAX_NAME_CHARS, &mut errors);
    let prompt_version = text(obj, "promptVersion", MAX_NAME_CHARS, &mut errors);
    let author = text(obj, "author", MAX_NAME_CHARS, &mut errors);
    let note = text(obj, "note", MAX_NOTE_CHARS, &mut errors);
    if note.is_none() && !errors.iter().any(|e| e.field == "note") {
        errors.push(FieldError::new("note", "is required"));
    }
    let time_ms = match obj.get("time") {
        None | Some(Value::Null) => Some(now_ms),
        Some(Value::String(s)) => match s.parse::<jiff::Timestamp>() {
            Ok(t)
                if t.as_millisecond() >= crate::validate::MIN_TIMESTAMP_MS
                    && t.as_millisecond() <= now_ms + 5 * 60_000 =>
            {
                Some(t.as_millisecond())
            }
            _ => None,
        },
        Some(_) => None,
    };
    if time_ms.is_none() {
        errors.push(FieldError::new(
            "time",
            "must be an RFC 3339 date-time (2026-01-31T12:00:00Z), not before 2020 and at most 5 minutes ahead",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let time_ms = time_ms.unwrap_or(now_ms);
    Ok(DeployNote {
        id: 0,
        endpoint_tag,
        prompt_version,
        note: note.unwrap_or_default(),
        author,
        time: rfc3339(time_ms),
        time_ms,
    })
}

fn stored(n: &DeployNote) -> Value {
    json!({"endpointTag": n.endpoint_tag, "promptVersion": n.prompt_version,
           "note": n.note, "author": n.author, "time": n.time})
}

/// Store a checked note; returns it with its id.
pub async fn save<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
    note: DeployNote,
) -> Result<DeployNote, StoreError> {
    let id = store.put_object(ws, KIND, None, stored(&note)).await?;
    Ok(DeployNote { id, ..note })
}

/// The workspace's notes with a time in `[from, to)`, oldest first (every note when
/// `window` is None). Rows that no longer read (edited by hand) are left out.
pub async fn list<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
    window: Option<(i64, i64)>,
) -> Result<Vec<DeployNote>, StoreError> {
    let mut notes: Vec<DeployNote> = store
        .objects(Some(ws), KIND)
        .await?
        .into_iter()
        .filter_map(|o| {
            // Stored notes were checked when written: read back without the future limit.
            parse(&o.body, i64::MAX - 5 * 60_000)
                .ok()
                .map(|n| DeployNote { id: o.id, ..n })
        })
        .filter(|n| window.is_none_or(|(from, to)| n.time_ms >= from && n.time_ms < to))
        .collect();
    notes.sort_by_key(|n| (n.time_ms, n.id));
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn fields(body: Value) -> Vec<String> {
        parse(&body, NOW)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn every_bad_field_of_a_note_is_named() {
        assert_eq!(fields(json!({})), vec!["note"]);
        assert_eq!(
            fields(
                json!({"note": "x".repeat(501), "endpointTag": 5, "colour": "red",
                          "time": "yesterday", "author": "", "promptVersion": "v\u{7}"})
            ),
            vec![
                "colour",
                "endpointTag",
                "promptVersion",
                "author",
                "note",
                "time"
            ]
        );
        assert_eq!(
            fields(json!({"note": "x", "time": "2026-01-01T00:06:00Z"})),
            vec!["time"]
        );
        assert_eq!(
            fields(json!({"note": "x", "time": "2019-12-31T23:59:59Z"})),
            vec!["time"]
        );
        assert_eq!(fields(json!([1])), vec!["body"]);
    }

    #[test]
    fn a_note_of_500_characters_is_kept_and_time_defaults_to_now() {
        let n = parse(
            &json!({"note": "é".repeat(500), "endpointTag": "summarize"}),
            NOW,
        )
        .unwrap();
        assert_eq!(n.note.chars().count(), 500);
        assert_eq!(n.time, "2026-01-01T00:00:00Z");
        assert_eq!(n.endpoint_tag.as_deref(), Some("summarize"));
    }

    fn note(id: i64, endpoint: Option<&str>, version: Option<&str>, at: i64) -> DeployNote {
        DeployNote {
            id,
            endpoint_tag: endpoint.map(String::from),
            prompt_version: version.map(String::from),
            note: format!("note {id}"),
            author: None,
            time: rfc3339(at),
            time_ms: at,
        }
    }

    #[test]
    fn the_note_of_a_change_names_its_version_else_the_newest_unversioned_one() {
        let notes = vec![
            note(1, Some("summarize"), Some("v4"), NOW - 100),
            note(2, Some("summarize"), Some("v5"), NOW - 50),
            note(3, None, None, NOW - 10),
            note(4, Some("chat"), Some("v4"), NOW - 5),
            note(5, Some("summarize"), Some("v4"), NOW - 10_000),
        ];
        let pick = |endpoint, version, from| {
            for_change(&notes, endpoint, version, from, NOW).map(|n| n.id)
        };
        assert_eq!(pick("summarize", Some("v4"), NOW - 1000), Some(1));
        assert_eq!(pick("summarize", Some("v6"), NOW - 1000), Some(3));
        assert_eq!(pick("summarize", None, NOW - 1000), Some(3));
        assert_eq!(pick("summarize", Some("v4"), NOW - 20), Some(3));
        assert_eq!(pick("chat", Some("v4"), NOW - 1000), Some(4));
        assert_eq!(notes[0].mention(), "after v4: 'note 1'",);
        assert_eq!(
            notes[2].mention(),
            "after the deploy of Dec 31 23:59 UTC: 'note 3'"
        );
    }
}
