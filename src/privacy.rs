//! Privacy by default: tenant ids, user ids and tag values that look like e-mail
//! addresses or phone numbers are replaced, before anything is stored, by a keyed
//! pseudonym (`pii_` + the first 80 bits of HMAC-SHA256 under a per-workspace secret, in
//! hex). Pure except `ensure_secret`, which creates a workspace's secret in the store.
//! The same mapping serves ingest (`ingest::prepare`), the guard, budget scopes and read
//! filters, so a cap or a filter naming "bob@example.com" finds the events stored under
//! his pseudonym. The rules are documented in docs/event-contract.md ("Privacy").

use crate::event::{Event, FieldError};
use crate::query::{Dimension, Filters};
use crate::store::{ControlStore, StoreError, WorkspaceId};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The control object kind holding a workspace's pseudonym secret (`{"secret": hex}`).
pub const SECRET_KIND: &str = "pseudonym_secret";
/// Every pseudonym starts with this, so a reader knows what it is looking at.
pub const PREFIX: &str = "pii_";
/// 80 bits of the MAC: among 10^7 distinct ids the chance that any two share a pseudonym
/// is about n^2 / 2^81 = 4 * 10^-11 (the birthday bound), and the id stays short (24
/// characters, well inside the 128 of a tag value).
const MAC_BYTES: usize = 10;
const PSEUDONYM_LEN: usize = PREFIX.len() + 2 * MAC_BYTES;

/// What ingest does with an id or tag value that looks like personal data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiPolicy {
    /// Store the keyed pseudonym instead (the default).
    #[default]
    Pseudonymize,
    /// Reject the event with a 400 naming the field.
    Reject,
    /// Store it as sent (the workspace takes responsibility).
    Allow,
}

impl PiiPolicy {
    pub fn parse(s: &str) -> Option<PiiPolicy> {
        match s {
            "pseudonymize" => Some(PiiPolicy::Pseudonymize),
            "reject" => Some(PiiPolicy::Reject),
            "allow" => Some(PiiPolicy::Allow),
            _ => None,
        }
    }
}

/// A workspace's 256-bit pseudonym key. Never printed: Debug shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn random() -> Secret {
        Secret(rand::random())
    }

    fn from_stored(body: &serde_json::Value) -> Option<Secret> {
        let text = body.get("secret")?.as_str()?;
        hex::decode(text).ok()?.try_into().ok().map(Secret)
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::json!({ "secret": hex::encode(self.0) })
    }

    /// `pii_` + 20 hex digits of HMAC-SHA256(secret, a version tag + the canonical value).
    pub fn pseudonym(&self, canonical: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(b"burnrate-pii-v1\0");
        mac.update(canonical.as_bytes());
        let bytes = mac.finalize().into_bytes();
        format!("{PREFIX}{}", hex::encode(&bytes[..MAC_BYTES]))
    }
}

/// What a value looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personal {
    Email,
    Phone,
}

impl Personal {
    fn describe(self) -> &'static str {
        match self {
            Personal::Email => "an e-mail address",
            Personal::Phone => "a phone number",
        }
    }
}

/// Does `value` look like personal data? An e-mail address anywhere in it, or the whole
/// value a phone number.
pub fn detect(value: &str) -> Option<Personal> {
    if contains_email(value) {
        Some(Personal::Email)
    } else if is_phone(value) {
        Some(Personal::Phone)
    } else {
        None
    }
}

/// Is `value` already a pseudonym (ours, or one an SDK made the same way)? Kept as is.
pub fn is_pseudonym(value: &str) -> bool {
    value.len() == PSEUDONYM_LEN
        && value.starts_with(PREFIX)
        && value[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '.'
}

/// An `@` with at least one local-part character before it and a domain of two or more
/// labels after it whose last label (the top-level domain) is at least two letters (or
/// punycode `xn--`). So `alice@example.co.uk` and `id:bob@corp.com` are e-mail, while
/// `tenant@v2` and `team@acme-corp` (no dotted domain) are not.
fn contains_email(value: &str) -> bool {
    value.match_indices('@').any(|(at, _)| {
        let before = &value[..at];
        let has_local = before.chars().next_back().is_some_and(is_local_char);
        let after = &value[at + 1..];
        let end = after.find(|c| !is_domain_char(c)).unwrap_or(after.len());
        let domain = after[..end].trim_end_matches('.');
        let labels: Vec<&str> = domain.split('.').collect();
        let tld = labels.last().copied().unwrap_or_default();
        has_local
            && labels.len() >= 2
            && labels
                .iter()
                .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
            && ((tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
                || tld.starts_with("xn--"))
    })
}

/// The whole value (trimmed) is digits and the separators people write (space, `-`,
/// `.`, parentheses), with either a leading `+` and 7-15 digits (E.164 allows 15), or
/// 10-15 digits and at least one separator. A bare run of digits is an account number,
/// not a phone (`12345678`), and dates (`2024-01-05`, 8 digits) stay short of 10.
fn is_phone(value: &str) -> bool {
    let v = value.trim();
    let (plus, rest) = match v.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    if !rest.starts_with(|c: char| c.is_ascii_digit() || c == '(') {
        return false;
    }
    let mut digits = 0;
    let mut separators = 0;
    for c in rest.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '.' | '(' | ')' => separators += 1,
            _ => return false,
        }
    }
    if plus {
        (7..=15).contains(&digits)
    } else {
        (10..=15).contains(&digits) && separators > 0
    }
}

/// The form the MAC is taken of, so the ways one person is written map to one pseudonym:
/// an e-mail lowercased, a phone as its digits (with the `+` if it had one), anything
/// else (pseudonymized because the workspace asked for every id) exactly as sent.
fn canonical(value: &str, kind: Option<Personal>) -> String {
    let v = value.trim();
    match kind {
        Some(Personal::Email) => v.to_lowercase(),
        Some(Personal::Phone) => {
            let sign = if v.starts_with('+') { "+" } else { "" };
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            format!("{sign}{digits}")
        }
        None => value.to_string(),
    }
}

/// How many ids and tag values a batch had pseudonymized or rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub pseudonymized: u64,
    pub rejected: u64,
}

/// One workspace's privacy rules with its secret: what ingest, the guard, budgets and
/// filters apply.
#[derive(Debug, Clone, Copy)]
pub struct Privacy<'a> {
    pub policy: PiiPolicy,
    /// Pseudonymize every tenantId and userId, personal-looking or not.
    pub all_ids: bool,
    pub secret: Option<&'a Secret>,
}

/// Which kind of value: ids follow `all_ids`, tag values only the detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Id,
    TagValue,
}

impl Privacy<'_> {
    /// The value to store for `value` at `field`: None to keep it, Some(pseudonym), or a
    /// field error when the policy rejects it. The error names the field, never the value.
    pub fn map(&self, field: &str, value: &str, slot: Slot) -> Result<Option<String>, FieldError> {
        if is_pseudonym(value) {
            return Ok(None);
        }
        let kind = detect(value);
        let every = slot == Slot::Id && self.all_ids;
        let pseudonymize = match (kind, self.policy) {
            (Some(kind), PiiPolicy::Reject) => {
                return Err(FieldError::new(
                    field,
                    format!(
                        "looks like {}; this workspace rejects personal data in ids and tag values (piiIds: reject): send an opaque id",
                        kind.describe()
                    ),
                ))
            }
            (Some(_), PiiPolicy::Pseudonymize) => true,
            (Some(_), PiiPolicy::Allow) | (None, _) => every,
        };
        if !pseudonymize {
            return Ok(None);
        }
        match self.secret {
            Some(secret) => Ok(Some(secret.pseudonym(&canonical(value, kind)))),
            // Never store the raw value for want of a key.
            None => Err(FieldError::new(
                field,
                "cannot be pseudonymized: the workspace has no pseudonym secret yet; retry",
            )),
        }
    }

    /// `map` applied to `value` in place: true when it became a pseudonym; a refusal is
    /// added to `errors`.
    pub fn map_in_place(
        &self,
        field: &str,
        value: &mut String,
        slot: Slot,
        errors: &mut Vec<FieldError>,
    ) -> bool {
        match self.map(field, value, slot) {
            Ok(Some(pseudonym)) => {
                *value = pseudonym;
                true
            }
            Ok(None) => false,
            Err(e) => {
                errors.push(e);
                false
            }
        }
    }

    /// Would `map` pseudonymize `value` (so the secret is needed)?
    pub fn needs_secret(&self, value: &str, slot: Slot) -> bool {
        if is_pseudonym(value) {
            return false;
        }
        let personal = detect(value).is_some() && self.policy == PiiPolicy::Pseudonymize;
        personal || (slot == Slot::Id && self.all_ids)
    }

    /// Apply `map` to an event's tenantId, userId and tag values in place: how many were
    /// pseudonymized, or every field the policy rejects.
    pub fn apply(&self, event: &mut Event) -> Result<u64, Vec<FieldError>> {
        let mut count = 0;
        let mut errors = Vec::new();
        let mut one = |field: &str, value: &mut String, slot: Slot| {
            count += self.map_in_place(field, value, slot, &mut errors) as u64;
        };
        if let Some(v) = event.tenant_id.as_mut() {
            one("tenantId", v, Slot::Id);
        }
        if let Some(v) = event.user_id.as_mut() {
            one("userId", v, Slot::Id);
        }
        for (key, v) in event.tags.iter_mut() {
            one(&format!("tags.{key}"), v, Slot::TagValue);
        }
        if errors.is_empty() {
            Ok(count)
        } else {
            Err(errors)
        }
    }

    /// The values a read filter (or a budget scope, or the guard) must use for `value`:
    /// its pseudonym when ingest would have stored one, else the value itself. Unlike
    /// ingest this never refuses: under `reject` or `allow` a personal value stays as
    /// given (under `allow` it is stored so).
    pub fn lookup(&self, value: &str, slot: Slot) -> String {
        let policy = match self.policy {
            // A filter is not a write: look up what `pseudonymize` would have stored.
            PiiPolicy::Reject => PiiPolicy::Allow,
            other => other,
        };
        let privacy = Privacy { policy, ..*self };
        match privacy.map("", value, slot) {
            Ok(Some(pseudonym)) => pseudonym,
            _ => value.to_string(),
        }
    }

    /// Filters on tenantId, userId and tags also match the stored pseudonyms: each value
    /// that maps to one gets it added (the raw value stays, for events stored under
    /// `allow`).
    pub fn widen_filters(&self, filters: &mut Filters) {
        let widen = |values: &mut Vec<String>, slot: Slot| {
            let extra: Vec<String> = values
                .iter()
                .map(|v| self.lookup(v, slot))
                .filter(|p| !values.contains(p))
                .collect();
            values.extend(extra);
            values.dedup();
        };
        for (dim, values) in filters.text.iter_mut() {
            if matches!(dim, Dimension::TenantId | Dimension::UserId) {
                widen(values, Slot::Id);
            }
        }
        for values in filters.tags.values_mut() {
            widen(values, Slot::TagValue);
        }
    }
}

/// The workspace's secret, created if it has none. Race-free across processes: every
/// writer inserts its candidate and then takes the oldest stored one (ids grow and are
/// never reused), which all of them see once their own insert is visible; a loser
/// deletes its own row.
pub async fn ensure_secret<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
) -> Result<Secret, StoreError> {
    if let Some(secret) = oldest(store, ws).await? {
        return Ok(secret);
    }
    let mine = store
        .put_object(ws, SECRET_KIND, None, Secret::random().stored())
        .await?;
    let rows = store.objects(Some(ws), SECRET_KIND).await?;
    let winner = rows
        .iter()
        .find_map(|o| Secret::from_stored(&o.body).map(|s| (o.id, s)));
    match winner {
        Some((id, secret)) => {
            if id != mine {
                store.delete_object(ws, SECRET_KIND, mine).await?;
            }
            Ok(secret)
        }
        None => Err(StoreError::Database(
            "the pseudonym secret just written cannot be read back".into(),
        )),
    }
}

async fn oldest<S: ControlStore + ?Sized>(
    store: &S,
    ws: WorkspaceId,
) -> Result<Option<Secret>, StoreError> {
    Ok(store
        .objects(Some(ws), SECRET_KIND)
        .await?
        .iter()
        .find_map(|o| Secret::from_stored(&o.body)))
}

/// Every workspace's secret (one read for the server's settings cache).
pub async fn all_secrets<S: ControlStore + ?Sized>(
    store: &S,
) -> Result<std::collections::HashMap<WorkspaceId, Secret>, StoreError> {
    let mut map = std::collections::HashMap::new();
    for o in store.objects(None, SECRET_KIND).await? {
        if let Some(s) = Secret::from_stored(&o.body) {
            // Oldest first: the first readable row of a workspace is its secret.
            map.entry(o.workspace).or_insert(s);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests;
