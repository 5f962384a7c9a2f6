//! Login and logout. The key travels once, in a POST body; the browser keeps only a
//! random session token in an HttpOnly, SameSite=Strict cookie.

use crate::http::dashboard::{html, layout, redirect, safe_next, session};
use crate::http::state::HttpState;
use crate::store::Scope;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html as markup, Markup};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    next: Option<String>,
}

fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let nonce = crate::auth::random_token(16);
    let body: Markup = markup! {
        div.login {
            div.card {
                h1 { span.brand style="color:inherit" { span.flame {} "burnrate" } }
                p.muted style="margin-top:0" { "Sign in with a read or admin key to see where the LLM money goes." }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form method="post" action="/login" {
                    label for="key" { "API key" }
                    input #key type="password" name="key" autocomplete="current-password" autofocus required placeholder="br_…" spellcheck="false";
                    input type="hidden" name="next" value=(next);
                    button.btn type="submit" { "Sign in" }
                }
                p.muted style="font-size:12.5px;margin-bottom:0" {
                    "No key yet? On the server:" br;
                    code style="white-space:nowrap" { "burnrate keys create --scope read" }
                }
            }
        }
    };
    html(status, layout::shell("Sign in", &nonce, body), &nonce)
}

pub async fn form(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(params.get("next").map(String::as_str)).to_string();
    let known = state.sessions.key_of(&state.app, state.now_ms(), &headers);
    if let Ok(Some(_)) = known.await {
        return redirect(&next, None);
    }
    login_page(StatusCode::OK, &next, None)
}

pub async fn submit(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    if !session::same_origin(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            &next,
            Some("Sign in from this server's own page."),
        );
    }
    let key = form.key.trim();
    if key.is_empty() {
        return login_page(StatusCode::UNAUTHORIZED, &next, Some("Enter a key."));
    }
    let key_hash = crate::auth::hash_key(key);
    let info = match state.authenticate(key_hash.clone()).await {
        Ok(info) => info,
        Err(e) => {
            tracing::error!(error = %e, "login: key check failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    match info {
        None => login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That key is not valid or has been revoked."),
        ),
        Some(info) if !info.scope.allows(Scope::Read) => login_page(
            StatusCode::FORBIDDEN,
            &next,
            Some("An ingest key can only send events. Sign in with a read or admin key."),
        ),
        Some(_) => {
            if let Some(old) = session::cookie_token(&headers) {
                state.sessions.remove(old);
            }
            let token = state.sessions.create(key_hash, state.now_ms());
            redirect(&next, Some(session::set_cookie(&token, &headers)))
        }
    }
}

pub async fn logout(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if !session::same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "logout must come from this server's own page",
        )
            .into_response();
    }
    if let Some(token) = session::cookie_token(&headers) {
        state.sessions.remove(token);
    }
    redirect("/login", Some(session::clear_cookie()))
}
