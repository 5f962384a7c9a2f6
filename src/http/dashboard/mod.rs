//! The dashboard: server-rendered HTML (maud) with inline SVG charts and inline CSS,
//! usable without JavaScript. Every number comes from `report` and the store, like the
//! JSON API's; the URL carries the view (time range and the API's filter names).

pub mod chart;
pub mod format;
pub mod layout;
pub mod pages;
pub mod session;
pub mod style;
pub mod view;

use crate::app::AppState;
use crate::http::state::HttpState;
use crate::query::Query as Window;
use crate::store::{KeyInfo, StoreError, WorkspaceId};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use std::collections::HashMap;
use std::sync::Arc;
use view::View;

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/endpoints", get(pages::top::endpoints))
        .route("/tenants", get(pages::top::tenants))
        .route("/tenant", get(pages::tenant::page))
        .route("/versions", get(pages::versions::page))
        .route("/models", get(pages::models::page))
        .route("/requests", get(pages::requests::page))
        .route("/explain", get(pages::explain::page))
        .route("/budgets", get(pages::budgets::page))
        .route("/alerts", get(pages::alerts::page))
        .route("/reconciliation", get(pages::reconciliation::page))
        .route("/alerts/ack", post(pages::alerts::acknowledge))
        .route("/alerts/mute", post(pages::alerts::mute))
        .route("/setup", get(pages::setup::page))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
}

/// The dashboard's pages, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Overview,
    Endpoints,
    Tenants,
    Tenant,
    Versions,
    Models,
    Requests,
    Explain,
    Budgets,
    Alerts,
    Reconciliation,
    Setup,
}

impl Page {
    pub const ALL: &'static [Page] = &[
        Page::Overview,
        Page::Endpoints,
        Page::Tenants,
        Page::Tenant,
        Page::Versions,
        Page::Models,
        Page::Requests,
        Page::Explain,
        Page::Budgets,
        Page::Alerts,
        Page::Reconciliation,
        Page::Setup,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Page::Overview => "/",
            Page::Endpoints => "/endpoints",
            Page::Tenants => "/tenants",
            Page::Tenant => "/tenant",
            Page::Versions => "/versions",
            Page::Models => "/models",
            Page::Requests => "/requests",
            Page::Explain => "/explain",
            Page::Budgets => "/budgets",
            Page::Alerts => "/alerts",
            Page::Reconciliation => "/reconciliation",
            Page::Setup => "/setup",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::Endpoints => "Top endpoints",
            Page::Tenants => "Tenants & users",
            Page::Tenant => "Tenant",
            Page::Versions => "Prompt versions",
            Page::Models => "Models",
            Page::Requests => "Requests",
            Page::Explain => "Explain",
            Page::Budgets => "Budgets",
            Page::Alerts => "Alerts",
            Page::Reconciliation => "Bill",
            Page::Setup => "Setup",
        }
    }

    /// The page's own URL parameters (besides time range and filters).
    pub fn own_params(self) -> &'static [&'static str] {
        match self {
            Page::Overview => &["by", "bucket"],
            Page::Endpoints => &["page"],
            Page::Tenant => &[],
            Page::Tenants => &["dim", "page"],
            Page::Versions => &["baseline"],
            Page::Models | Page::Reconciliation => &[],
            Page::Requests => &["cursor", "q", "order"],
            Page::Explain => &["baselineFrom", "baselineTo", "by"],
            Page::Budgets | Page::Alerts | Page::Setup => &[],
        }
    }

    /// Whether the navigation lists the page (one tenant's page opens from a tenant).
    pub fn in_nav(self) -> bool {
        self != Page::Tenant
    }

    /// Whether the page reads the time range and filters of the URL. Budgets and alerts
    /// carry their own scope and period, so those pages show only the freshness line
    /// (their links still keep the view for the way back).
    pub fn uses_window(self) -> bool {
        !matches!(self, Page::Budgets | Page::Alerts)
    }
}

/// What one page request knows: who asked (the session's key, checked just now), when,
/// and the view from the URL.
pub struct Ctx {
    pub state: Arc<AppState>,
    pub key: KeyInfo,
    pub now: i64,
    pub view: View,
    pub page: Page,
    /// For the one inline script the Content-Security-Policy allows.
    pub nonce: String,
    /// The workspace's settings with its pseudonym secret: filters naming a personal
    /// value also match its pseudonym.
    pub settings: Arc<crate::settings::IngestSettings>,
    /// The session's CSRF token, for the forms that change something (admin sessions).
    pub csrf: String,
}

/// Why a page could not be built.
#[derive(Debug)]
pub enum PageError {
    /// A parameter was wrong: shown to the user with what to fix.
    Bad(String),
    /// The store is slow or down (ClickHouse): 503, try again shortly.
    Unavailable,
    /// Details are in the log, not on the page.
    Internal,
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => PageError::Bad(format!("{what} not found")),
            StoreError::SumOverflow => PageError::Bad(StoreError::SumOverflow.to_string()),
            StoreError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "dashboard store unavailable");
                PageError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "dashboard store error");
                PageError::Internal
            }
        }
    }
}

pub type PageResult = Result<Markup, PageError>;

impl Ctx {
    /// Check the session and read the URL; without a live session, a redirect to the
    /// login page that comes back here afterwards.
    pub async fn load(
        state: Arc<HttpState>,
        headers: &HeaderMap,
        uri: &Uri,
        params: &HashMap<String, String>,
        page: Page,
    ) -> Result<Ctx, Response> {
        let now = state.now_ms();
        let key = match state.sessions.key_of(&state.app, now, headers).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(to_login(uri)),
            Err(e) => {
                tracing::error!(error = %e, "dashboard session check failed");
                return Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response());
            }
        };
        let view = View::parse(params, page.own_params());
        if let Some(fixed) = view.canonical() {
            return Err(redirect(&fixed.link(page.path(), true, &[]), None));
        }
        let settings = match state.settings.with_secret(key.workspace_id).await {
            Ok(settings) => settings,
            Err(e) => {
                tracing::error!(error = %e, "dashboard settings read failed");
                return Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response());
            }
        };
        let csrf = session::cookie_token(headers)
            .map(session::csrf_token)
            .unwrap_or_default();
        Ok(Ctx {
            settings,
            csrf,
            now,
            key,
            view,
            page,
            nonce: crate::auth::random_token(16),
            state: state.app.clone(),
        })
    }

    pub fn ws(&self) -> WorkspaceId {
        self.key.workspace_id
    }

    /// The window and filters of the URL, checked by the query layer.
    pub fn window(&self) -> Result<Window, PageError> {
        let mut window = self.view.query(self.now).map_err(PageError::Bad)?;
        self.settings.privacy().widen_filters(&mut window.filters);
        Ok(window)
    }

    /// For pages that do not read the window: a parameter they do not know is still
    /// reported rather than ignored.
    pub fn check_params(&self) -> Result<(), PageError> {
        match self.view.errors.first() {
            Some(e) => Err(PageError::Bad(e.clone())),
            None => Ok(()),
        }
    }

    /// A link to another page keeping the time range and filters.
    pub fn link(&self, page: Page, set: &[(&str, Option<&str>)]) -> String {
        self.view.link(page.path(), page == self.page, set)
    }

    /// Wrap the page's body in the layout and answer.
    pub async fn finish(&self, body: PageResult) -> Response {
        let fresh = layout::Fresh {
            newest: self.state.store.freshness(self.ws()).await.ok().flatten(),
            raw_from_ms: self.state.store.raw_from(self.ws()).await.ok().flatten(),
        };
        let (status, body) = match body {
            Ok(m) => (StatusCode::OK, m),
            Err(PageError::Bad(message)) => (StatusCode::BAD_REQUEST, layout::problem(&message)),
            Err(PageError::Unavailable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                layout::problem(
                    "The store did not answer in time; reload the page in a few seconds.",
                ),
            ),
            Err(PageError::Internal) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                layout::problem(
                    "Something went wrong reading the data; the server log has the details.",
                ),
            ),
        };
        let mut response = html(status, layout::page(self, fresh, body), &self.nonce);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // As the API's 503 store_unavailable.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// An HTML answer with the headers every dashboard page carries: no caching (pages hold
/// private numbers), no framing, no referrer to other sites (URLs hold filters), and a
/// CSP that allows only the inline style and the one inline script with this page's
/// nonce.
pub fn html(status: StatusCode, markup: Markup, nonce: &str) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let h = response.headers_mut();
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; img-src data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::CONTENT_SECURITY_POLICY, &csp);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "same-origin");
    response
}

/// 303 to `location`, optionally setting a cookie.
pub fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn to_login(uri: &Uri) -> Response {
    let back = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if back == "/" {
        redirect("/login", None)
    } else {
        redirect(&format!("/login?next={}", view::encode(back)), None)
    }
}

/// Where to go after login: only one of the dashboard's own pages (exactly its path)
/// with a query string of plain URL characters; anything else goes to the Overview.
/// Checking the shape of a free path is not enough: browsers drop tabs and newlines and
/// read `\` as `/`, so `/<tab>/evil.example` becomes `//evil.example`, another site.
pub fn safe_next(next: Option<&str>) -> &str {
    let Some(next) = next else { return "/" };
    let (path, query) = match next.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (next, None),
    };
    let known = Page::ALL.iter().any(|p| p.path() == path);
    let plain_query = query.is_none_or(|q| q.bytes().all(is_query_byte));
    if known && plain_query {
        next
    } else {
        "/"
    }
}

/// RFC 3986 query characters (unreserved, sub-delims, `:@/?` and `%` escapes) and the
/// few that browsers send unescaped in a query (`|[]{}^`): no whitespace, control
/// characters, backslashes, quotes, fragments or non-ASCII.
fn is_query_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%|[]{}^".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn login_next_outside_the_dashboard_goes_home() {
        let attacks = [
            "/\t/evil.example",
            "\t//evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\evil.example",
            "/\\/evil.example",
            "/%09/evil.example",
            "/%2F/evil.example",
            "/%5Cevil.example",
            "%2F%2Fevil.example",
            "https://evil.example/",
            "http:evil.example",
            "javascript:alert(1)",
            "evil.example",
            " /endpoints",
            "/endpoints/../../evil",
            "/endpoints#//evil.example",
            "/endpoints?x=\t//evil.example",
            "/endpoints?x=\\evil",
            "/nope",
            "/login",
            "/v1/events",
            "",
        ];
        for attack in attacks {
            assert_eq!(safe_next(Some(attack)), "/", "{attack:?} was followed");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn login_next_keeps_a_dashboard_page_and_its_query() {
        for ok in [
            "/",
            "/endpoints",
            "/endpoints?dataMode=demo",
            "/tenants?dim=userId&range=24h",
            "/explain?from=2026-11-20T00%3A00%3A00Z&by=endpointTag,model",
            "/requests?tag%3Ateam=a%2Fb",
            "/requests?tag:team=a|b",
            "/alerts",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
    }
}
