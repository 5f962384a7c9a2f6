//! Per-workspace ingest settings: what happens to unknown fields (`warn` or `reject`)
//! and which attribution fields every event must carry. Stored as one `objects` row of
//! kind `workspace_settings`; the server keeps them in memory and rereads them every 2 s,
//! so a change made by the CLI (another process) applies within that time.

use crate::event::FieldError;
use crate::privacy::{PiiPolicy, Privacy, Secret};
use crate::store::{Store, StoreError, WorkspaceId};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

pub const KIND: &str = "workspace_settings";

/// What ingest does with a top-level field the contract does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownFields {
    /// Store the event and say so in the reply's `warnings`.
    #[default]
    Warn,
    /// Reject the event with a 400 naming the field.
    Reject,
}

/// The attribution fields a workspace may require: "fail fast, never default
/// attribution to unknown".
pub const REQUIRABLE: &[&str] = &[
    "tenantId",
    "userId",
    "promptVersion",
    "endpointTag",
    "externalRequestId",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestSettings {
    pub unknown_fields: UnknownFields,
    /// Names from `REQUIRABLE`, sorted, without repeats.
    pub required_fields: Vec<String>,
    /// OTLP ingest: span or resource attribute names to read an attribution field from,
    /// tried before the built-in ones (`{"tenantId": ["app.customer"]}`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub otlp_attributes: BTreeMap<String, Vec<String>>,
    /// Ids and tag values that look like e-mail addresses or phone numbers: pseudonymize
    /// (default), reject or allow (`privacy`).
    pub pii_ids: PiiPolicy,
    /// Pseudonymize every tenantId and userId, personal-looking or not.
    pub pseudonymize_all_ids: bool,
    /// Retention: raw events older than this many whole UTC days are pruned by the
    /// server's daily pass (their sums stay in the rollups); None keeps every event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_retention_days: Option<u32>,
    /// The workspace's pseudonym key: a control object of its own (never part of what
    /// settings replies show), attached by whoever loads the settings for ingest.
    #[serde(skip)]
    pub secret: Option<Secret>,
}

/// The retention a workspace may set, in days: at least a week, so retries and late
/// events of recent calls still find their call (dedupe reads raw events), at most ten
/// years.
pub const RETENTION_DAYS: std::ops::RangeInclusive<u64> = 7..=3650;

/// The fields `otlpAttributes` can map.
pub const OTLP_MAPPABLE: &[&str] = &["endpointTag", "promptVersion", "tenantId", "userId"];

impl IngestSettings {
    /// `current` with the fields `body` gives replaced (a field left out keeps its
    /// value), or every problem of the body by field.
    pub fn updated(&self, body: &Value) -> Result<IngestSettings, Vec<FieldError>> {
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new(
                "body",
                "must be an object with unknownFields and/or requiredFields",
            )]);
        };
        let mut next = self.clone();
        let mut errors = Vec::new();
        for (name, value) in obj {
            match name.as_str() {
                "unknownFields" => match value.as_str() {
                    Some("warn") => next.unknown_fields = UnknownFields::Warn,
                    Some("reject") => next.unknown_fields = UnknownFields::Reject,
                    _ => errors.push(FieldError::new(name, "must be warn or reject")),
                },
                "requiredFields" => match required(value) {
                    Ok(fields) => next.required_fields = fields,
                    Err(message) => errors.push(FieldError::new(name, message)),
                },
                "otlpAttributes" => match otlp_attributes(value) {
                    Ok(map) => next.otlp_attributes = map,
                    Err(e) => errors.push(e),
                },
                "piiIds" => match value.as_str().and_then(PiiPolicy::parse) {
                    Some(policy) => next.pii_ids = policy,
                    None => errors.push(FieldError::new(
                        name,
                        "must be pseudonymize, reject or allow",
                    )),
                },
                "pseudonymizeAllIds" => match value.as_bool() {
                    Some(all) => next.pseudonymize_all_ids = all,
                    None => errors.push(FieldError::new(name, "must be true or false")),
                },
                "rawRetentionDays" => match value {
                    Value::Null => next.raw_retention_days = None,
                    _ => match value.as_u64().filter(|d| RETENTION_DAYS.contains(d)) {
                        Some(days) => next.raw_retention_days = Some(days as u32),
                        None => errors.push(FieldError::new(
                            name,
                            format!(
                                "must be a whole number of days from {} to {}, or null to keep every event",
                                RETENTION_DAYS.start(),
                                RETENTION_DAYS.end()
                            ),
                        )),
                    },
                },
                _ => errors.push(FieldError::new(
                    name,
                    "is not a setting; use unknownFields, requiredFields, otlpAttributes, piiIds, pseudonymizeAllIds or rawRetentionDays",
                )),
            }
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors)
        }
    }

    /// Read back what `updated` produced and was stored; anything unreadable is the
    /// default (a hand-edited row must not stop ingest).
    pub fn from_stored(body: &Value) -> IngestSettings {
        IngestSettings::default().updated(body).unwrap_or_default()
    }

    pub fn requires(&self, field: &str) -> bool {
        self.required_fields.iter().any(|f| f == field)
    }

    /// The privacy rules ingest, the guard, budgets and filters apply for this workspace.
    pub fn privacy(&self) -> Privacy<'_> {
        Privacy {
            policy: self.pii_ids,
            all_ids: self.pseudonymize_all_ids,
            secret: self.secret.as_ref(),
        }
    }
}

fn required(value: &Value) -> Result<Vec<String>, String> {
    let expected = || format!("must be a list of: {}", REQUIRABLE.join(", "));
    let list = value.as_array().ok_or_else(expected)?;
    let mut fields = Vec::new();
    for item in list {
        match item.as_str() {
            Some(name) if REQUIRABLE.contains(&name) => fields.push(name.to_string()),
            _ => return Err(expected()),
        }
    }
    fields.sort();
    fields.dedup();
    Ok(fields)
}

/// `{"tenantId": ["app.customer", ...], ...}`: for each field of `OTLP_MAPPABLE`, up to
/// 10 attribute names of 1-128 characters.
fn otlp_attributes(value: &Value) -> Result<BTreeMap<String, Vec<String>>, FieldError> {
    let Some(obj) = value.as_object() else {
        return Err(FieldError::new(
            "otlpAttributes",
            "must be an object from field name to a list of attribute names",
        ));
    };
    let mut map = BTreeMap::new();
    for (field, names) in obj {
        let at = format!("otlpAttributes.{field}");
        if !OTLP_MAPPABLE.contains(&field.as_str()) {
            return Err(FieldError::new(
                &at,
                format!("is not mappable; use {}", OTLP_MAPPABLE.join(", ")),
            ));
        }
        let list: Option<Vec<String>> = names.as_array().and_then(|a| {
            a.iter()
                .map(|n| {
                    n.as_str()
                        .filter(|n| (1..=128).contains(&n.len()))
                        .map(String::from)
                })
                .collect()
        });
        match list {
            Some(list) if list.len() <= 10 => map.insert(field.clone(), list),
            _ => {
                return Err(FieldError::new(
                    &at,
                    "must be a list of at most 10 attribute names of 1 to 128 characters",
                ))
            }
        };
    }
    Ok(map)
}

/// Every workspace's settings as the server uses them.
pub struct Settings {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<WorkspaceId, Arc<IngestSettings>>>,
    /// Held while a missing secret is made, so requests arriving together make it once.
    making_secret: tokio::sync::Mutex<()>,
}

impl Settings {
    /// Every workspace's settings, and a pseudonym secret for each one without (the
    /// `default` workspace of a new file, workspaces from before secrets): made here,
    /// before the server listens, not by the first requests. Why: made on first use,
    /// the secret's write waited for SQLite's write lock behind the writer's commits,
    /// and the first single events of a batch load waited 1.2-5.7 s for it (bench
    /// ingest, realistic profile, 2 cores).
    pub async fn start(store: Arc<dyn Store>) -> Result<Settings, StoreError> {
        let settings = Settings {
            store,
            cache: RwLock::default(),
            making_secret: tokio::sync::Mutex::new(()),
        };
        settings.reload_all().await?;
        for workspace in settings.store.workspaces().await? {
            settings.with_secret(workspace.id).await?;
        }
        Ok(settings)
    }

    /// The settings ingest applies to `ws` now (the defaults when none are stored).
    pub fn get(&self, ws: WorkspaceId) -> Arc<IngestSettings> {
        self.cache
            .read()
            .unwrap()
            .get(&ws)
            .cloned()
            .unwrap_or_default()
    }

    /// The settings with the workspace's pseudonym secret, which ingest, the guard,
    /// budgets and filters need: a workspace without one (created before secrets existed,
    /// or by another process since the last reload) gets it now.
    pub async fn with_secret(&self, ws: WorkspaceId) -> Result<Arc<IngestSettings>, StoreError> {
        let current = self.get(ws);
        if current.secret.is_some() {
            return Ok(current);
        }
        // One request makes it; the others wait for it and find it made.
        let _making = self.making_secret.lock().await;
        let current = self.get(ws);
        if current.secret.is_some() {
            return Ok(current);
        }
        let secret = crate::privacy::ensure_secret(self.store.as_ref(), ws).await?;
        let mut cache = self.cache.write().unwrap();
        let entry = cache.entry(ws).or_insert(current);
        if entry.secret.is_none() {
            *entry = Arc::new(IngestSettings {
                secret: Some(secret),
                ..(**entry).clone()
            });
        }
        Ok(entry.clone())
    }

    /// Reread every workspace's settings and secrets: two reads of a few rows.
    pub async fn reload_all(&self) -> Result<(), StoreError> {
        let mut all: HashMap<WorkspaceId, IngestSettings> = HashMap::new();
        // Ordered by id: if two rows exist (two first writes racing), the newest wins.
        for object in self.store.objects(None, KIND).await? {
            all.insert(object.workspace, IngestSettings::from_stored(&object.body));
        }
        for (ws, secret) in crate::privacy::all_secrets(self.store.as_ref()).await? {
            all.entry(ws).or_default().secret = Some(secret);
        }
        *self.cache.write().unwrap() = all.into_iter().map(|(ws, s)| (ws, Arc::new(s))).collect();
        Ok(())
    }

    /// Apply `body` to `ws`'s settings, store them and use them at once.
    pub async fn update(
        &self,
        ws: WorkspaceId,
        body: &Value,
    ) -> Result<Result<IngestSettings, Vec<FieldError>>, StoreError> {
        let result = update(self.store.as_ref(), ws, body).await?;
        if let Ok(settings) = &result {
            let secret = self.with_secret(ws).await?.secret.clone();
            self.cache.write().unwrap().insert(
                ws,
                Arc::new(IngestSettings {
                    secret,
                    ..settings.clone()
                }),
            );
        }
        Ok(result)
    }
}

/// The stored settings of `ws` with its pseudonym secret (created if it has none), for
/// the CLI and the loader, which have no running cache.
pub async fn load(store: &dyn Store, ws: WorkspaceId) -> Result<IngestSettings, StoreError> {
    let mut settings = load_stored(store, ws).await?;
    settings.secret = Some(crate::privacy::ensure_secret(store, ws).await?);
    Ok(settings)
}

/// The stored settings of `ws` without the secret (which may not exist yet).
pub async fn load_stored(store: &dyn Store, ws: WorkspaceId) -> Result<IngestSettings, StoreError> {
    Ok(store
        .objects(Some(ws), KIND)
        .await?
        .last()
        .map(|o| IngestSettings::from_stored(&o.body))
        .unwrap_or_default())
}

/// Apply `body` to the stored settings of `ws`: the new settings, or the body's field
/// errors (nothing stored then).
pub async fn update(
    store: &dyn Store,
    ws: WorkspaceId,
    body: &Value,
) -> Result<Result<IngestSettings, Vec<FieldError>>, StoreError> {
    let stored = store.objects(Some(ws), KIND).await?;
    let current = stored
        .last()
        .map(|o| IngestSettings::from_stored(&o.body))
        .unwrap_or_default();
    let next = match current.updated(body) {
        Ok(next) => next,
        Err(errors) => return Ok(Err(errors)),
    };
    let value = serde_json::to_value(&next).expect("settings serialize");
    store
        .put_object(ws, KIND, stored.last().map(|o| o.id), value)
        .await?;
    Ok(Ok(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A new file's `default` workspace has no secret; the server's settings make it at
    /// start, and requests arriving together for a workspace without one (made by
    /// another process since) make one between them, not one each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secrets_are_made_at_start_and_once_for_requests_arriving_together() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = crate::store::open(&url).unwrap();
        let default = store.workspace("default".into()).await.unwrap().unwrap().id;
        assert!(crate::privacy::all_secrets(store.as_ref())
            .await
            .unwrap()
            .is_empty());
        let settings = Arc::new(Settings::start(store.clone()).await.unwrap());
        let made = crate::privacy::all_secrets(store.as_ref()).await.unwrap();
        assert_eq!(made.keys().copied().collect::<Vec<_>>(), [default]);
        assert!(settings.get(default).secret.is_some(), "in use at once");

        let later = store.create_workspace("later".into()).await.unwrap().id;
        let asked: Vec<_> = (0..8)
            .map(|_| {
                let settings = settings.clone();
                tokio::spawn(async move { settings.with_secret(later).await })
            })
            .collect();
        let mut secrets = Vec::new();
        for ask in asked {
            secrets.push(ask.await.unwrap().unwrap().secret.clone().unwrap());
        }
        secrets.dedup();
        assert_eq!(secrets.len(), 1, "every request has the same secret");
        // Ids count up per workspace and kind: the next one tells how many were written.
        let kind = crate::privacy::SECRET_KIND;
        let next = store
            .put_object(later, kind, None, json!({}))
            .await
            .unwrap();
        assert_eq!(next, 2, "one secret written, not one per request");
    }

    #[test]
    fn retention_takes_whole_days_in_range_or_null_and_survives_a_round_trip() {
        let s = IngestSettings::default()
            .updated(&json!({"rawRetentionDays": 30}))
            .unwrap();
        assert_eq!(s.raw_retention_days, Some(30));
        let stored = serde_json::to_value(&s).unwrap();
        assert_eq!(stored["rawRetentionDays"], json!(30));
        assert_eq!(
            IngestSettings::from_stored(&stored).raw_retention_days,
            Some(30)
        );
        // Another change keeps it; null removes it.
        let kept = s.updated(&json!({"unknownFields": "warn"})).unwrap();
        assert_eq!(kept.raw_retention_days, Some(30));
        let off = kept.updated(&json!({"rawRetentionDays": null})).unwrap();
        assert_eq!(off.raw_retention_days, None);
        assert!(serde_json::to_value(&off)
            .unwrap()
            .get("rawRetentionDays")
            .is_none());
        for bad in [json!(6), json!(3651), json!(7.5), json!("30"), json!(-1)] {
            let errors = IngestSettings::default()
                .updated(&json!({"rawRetentionDays": bad}))
                .unwrap_err();
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].field, "rawRetentionDays", "{bad}");
        }
        for edge in [7, 3650] {
            let s = IngestSettings::default()
                .updated(&json!({"rawRetentionDays": edge}))
                .unwrap();
            assert_eq!(s.raw_retention_days, Some(edge as u32));
        }
    }

    #[test]
    fn updates_keep_what_they_do_not_name_and_name_every_bad_field() {
        let s = IngestSettings::default()
            .updated(&json!({"unknownFields": "reject", "requiredFields": ["userId", "tenantId", "userId"]}))
            .unwrap();
        assert_eq!(s.unknown_fields, UnknownFields::Reject);
        assert_eq!(s.required_fields, vec!["tenantId", "userId"]);
        let kept = s.updated(&json!({"unknownFields": "warn"})).unwrap();
        assert_eq!(kept.required_fields, vec!["tenantId", "userId"]);
        let errors = s
            .updated(&json!({"unknownFields": "drop", "requiredFields": ["model"], "colour": 1}))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["colour", "requiredFields", "unknownFields"]);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"unknownFields": "reject", "requiredFields": ["tenantId", "userId"],
                   "piiIds": "pseudonymize", "pseudonymizeAllIds": false})
        );
        assert_eq!(
            IngestSettings::from_stored(&serde_json::to_value(&s).unwrap()),
            s
        );
    }

    #[test]
    fn pii_policy_settings_are_checked_by_name() {
        let s = IngestSettings::default()
            .updated(&json!({"piiIds": "reject", "pseudonymizeAllIds": true}))
            .unwrap();
        assert_eq!(s.pii_ids, PiiPolicy::Reject);
        assert!(s.pseudonymize_all_ids);
        let errors = s
            .updated(&json!({"piiIds": "hash", "pseudonymizeAllIds": "yes"}))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["piiIds", "pseudonymizeAllIds"]);
        assert_eq!(IngestSettings::default().pii_ids, PiiPolicy::Pseudonymize);
    }
}
