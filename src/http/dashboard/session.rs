//! Dashboard sessions: a read or admin key is exchanged once, by a POST form, for a
//! random token in an HttpOnly, SameSite=Strict cookie. The server keeps only the
//! SHA-256 of each token, mapped to the SHA-256 of the key, and checks that key against
//! the store on every request, so a revoked key logs its sessions out at once. The key
//! itself never appears in a URL, a page or a log.

use crate::app::AppState;
use crate::store::{KeyInfo, Result, Scope};
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;

pub const COOKIE: &str = "burnrate_session";
/// A session ends after this long without a request...
pub const IDLE_MS: i64 = 12 * 3_600_000;
/// ...and after this long in any case.
pub const MAX_AGE_MS: i64 = 7 * 24 * 3_600_000;
/// Sessions kept at most; past it the oldest is dropped.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    key_hash: String,
    created_ms: i64,
    last_ms: i64,
}

/// The server-side session map (in memory: a restart logs everyone out).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn token_id(token: &str) -> String {
    crate::auth::hash_key(token)
}

impl Sessions {
    /// A new session for the key with this hash; returns the token for the cookie.
    pub fn create(&self, key_hash: String, now_ms: i64) -> String {
        let token = crate::auth::random_token(32);
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| live(s, now_ms));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            token_id(&token),
            Session {
                key_hash,
                created_ms: now_ms,
                last_ms: now_ms,
            },
        );
        token
    }

    /// The key hash of a live session, marking it used.
    pub fn key_hash(&self, token: &str, now_ms: i64) -> Option<String> {
        let id = token_id(token);
        let mut map = self.map.lock().unwrap();
        let session = map.get_mut(&id)?;
        if !live(session, now_ms) {
            map.remove(&id);
            return None;
        }
        session.last_ms = now_ms;
        Some(session.key_hash.clone())
    }

    pub fn remove(&self, token: &str) {
        self.map.lock().unwrap().remove(&token_id(token));
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key behind the request's session cookie, checked against the live keys now
    /// (`AppState::authenticate`). A session whose key was revoked (or whose workspace
    /// lost it) is ended on the spot.
    pub async fn key_of(
        &self,
        app: &AppState,
        now_ms: i64,
        headers: &HeaderMap,
    ) -> Result<Option<KeyInfo>> {
        let Some(token) = cookie_token(headers) else {
            return Ok(None);
        };
        let Some(key_hash) = self.key_hash(token, now_ms) else {
            return Ok(None);
        };
        match app.authenticate(key_hash).await? {
            Some(info) if info.scope.allows(Scope::Read) => Ok(Some(info)),
            _ => {
                self.remove(token);
                Ok(None)
            }
        }
    }
}

fn live(s: &Session, now_ms: i64) -> bool {
    now_ms - s.last_ms < IDLE_MS && now_ms - s.created_ms < MAX_AGE_MS
}

/// The session token from the Cookie header(s), if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Whether the browser reached us over TLS (through a proxy that says so): then the
/// cookie is also `Secure`. Plain HTTP on localhost is the default, where it cannot be.
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The Set-Cookie value that starts a session.
pub fn set_cookie(token: &str, headers: &HeaderMap) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        MAX_AGE_MS / 1000,
        if behind_tls(headers) { "; Secure" } else { "" }
    )
}

/// The Set-Cookie value that ends it in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The CSRF token of a session: derived from its (HttpOnly, never shown) cookie token,
/// so a page can carry it in its forms and the server can check it without storing
/// anything, while another site, which cannot read the cookie, cannot compute it.
pub fn csrf_token(session_token: &str) -> String {
    crate::auth::hash_key(&format!("burnrate-csrf:{session_token}"))
}

/// Whether `given` is the CSRF token of the request's session (compared in constant
/// time: the comparison's duration tells nothing about the right token).
pub fn csrf_ok(headers: &HeaderMap, given: Option<&str>) -> bool {
    let (Some(token), Some(given)) = (cookie_token(headers), given) else {
        return false;
    };
    let want = csrf_token(token);
    want.len() == given.len()
        && want
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// For the login and logout forms: a browser's `Origin`, when it sends one, must be this
/// server (no logging someone in or out from another site). Clients without the header
/// (curl, old browsers) pass; the SameSite=Strict cookie covers the rest.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_stored_hashed() {
        let s = Sessions::default();
        let t = s.create("h".into(), 0);
        assert_eq!(s.key_hash(&t, 1000).as_deref(), Some("h"));
        assert!(!s.map.lock().unwrap().contains_key(&t));
        assert_eq!(s.key_hash(&t, 1000 + IDLE_MS), None);
        let t = s.create("h".into(), 0);
        let mut now = 0;
        while now < MAX_AGE_MS - IDLE_MS {
            now += IDLE_MS / 2;
            assert!(s.key_hash(&t, now).is_some());
        }
        assert_eq!(s.key_hash(&t, MAX_AGE_MS), None);
        assert_eq!(s.key_hash("nope", 0), None);
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("origin", "null".parse().unwrap());
        assert!(!same_origin(&h));
        assert!(!set_cookie("t", &h).contains("Secure"));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie("t", &h).ends_with("; Secure"));
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "burnrate_session=abc".parse().unwrap());
        let token = csrf_token("abc");
        assert!(csrf_ok(&h, Some(&token)));
        assert!(!csrf_ok(&h, Some(&csrf_token("abd"))), "another session's");
        assert!(!csrf_ok(&h, Some("")));
        assert!(!csrf_ok(&h, None));
        assert!(!csrf_ok(&HeaderMap::new(), Some(&token)), "no session");
    }

    #[test]
    fn cookie_header_parsing() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; burnrate_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie_token(&h), Some("abc"));
        h.insert("cookie", "burnrate_session=".parse().unwrap());
        assert_eq!(cookie_token(&h), None);
    }
}
