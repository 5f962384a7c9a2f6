//! Alerts: what is firing (with its evidence, drivers and the views that explain it),
//! the history with each delivery's outcome, and the rule settings. The alerts are
//! those of GET /v1/alerts, the settings those of GET /v1/alert-rules.
//!
//! An admin session can acknowledge a firing alert and mute its rule for a while
//! (POST /alerts/ack, /alerts/mute): each form carries the session's CSRF token
//! (`session::csrf_token`) and the browser's Origin must be this server. A read session
//! sees no forms, and its POSTs are refused.

use super::{heading, money, page_handler, share};
use crate::alert::{AlertSettings, RuleKind};
use crate::http::dashboard::pages::explain::explain_url;
use crate::http::dashboard::{format, redirect, session, Ctx, Page, PageResult};
use crate::http::state::HttpState;
use crate::money::Usd;
use crate::store::{KeyInfo, Scope, StoreError};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

page_handler!(page, Page::Alerts, body);

/// Resolved alerts shown; /v1/alerts has the rest.
const HISTORY: usize = 200;

async fn body(ctx: &Ctx) -> PageResult {
    ctx.check_params()?;
    let alerts = ctx.state.alerts.alerts(ctx.ws()).await?;
    let settings = ctx.state.alerts.settings(ctx.ws()).await?;
    let firing: Vec<&Value> = alerts.iter().filter(|a| a["state"] == "firing").collect();
    let history: Vec<&Value> = alerts.iter().filter(|a| a["state"] != "firing").collect();
    Ok(html! {
        (heading("Alerts", html! {
            "What the rules found in " (settings.environment.as_str()) ", " (settings.data_mode.as_str())
            " traffic, with the numbers behind each alert and the view that explains it. Rules run every minute."
        }))
        div.card #firing {
            div.card-head {
                h2 { "Firing" }
                span class={ "badge " (if firing.is_empty() { "good" } else { "bad" }) } data-count="firing" { (firing.len()) }
            }
            @if firing.is_empty() {
                p.muted data-empty { "Nothing is firing. Alerts appear here within a minute of a rule finding something." }
            }
        }
        @for a in &firing {
            (alert_card(ctx, a))
        }
        (history_card(ctx, &history))
        (rules_card(&settings, ctx.now))
    })
}

fn id_of(a: &Value) -> i64 {
    a["id"].as_i64().unwrap_or(0)
}

fn ms_of(v: &Value) -> Option<i64> {
    v.as_str().and_then(format::parse_ms)
}

fn severity_badge(a: &Value) -> Markup {
    let severity = a["severity"].as_str().unwrap_or("warning");
    html! { span class={ "badge " (if severity == "critical" { "bad" } else { "warn" }) } data-severity=(severity) { (severity) } }
}

/// A time with how long ago it was.
fn when(ctx: &Ctx, v: &Value) -> Markup {
    match ms_of(v) {
        Some(at) => html! {
            span.tnum title=(format::rfc3339(at)) { (format::time(at)) " UTC" }
            span.faint { " (" (format::duration(ctx.now - at)) " ago)" }
        },
        None => html! { span.faint { "—" } },
    }
}

/// The Explain page for the alert's window against its baseline, scoped like the
/// alert (its endpoint or tenant, and the data the rules watch). Budget alerts have no
/// window: the period so far, against the same length before it.
pub fn explain_href(a: &Value, now: i64) -> Option<String> {
    let ev = &a["evidence"];
    let mut scope: Vec<(&str, &str)> = ["endpointTag", "tenantId"]
        .into_iter()
        .filter_map(|k| ev[k].as_str().map(|v| (k, v)))
        .collect();
    // The rules' link names the environment and data mode they watched.
    let link = a["link"].as_str().unwrap_or("");
    let query = link.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("environment", v)) if v != "prod" => scope.push(("environment", v)),
            Some(("dataMode", v)) if v != "real" => scope.push(("dataMode", v)),
            _ => {}
        }
    }
    if let (Some(from), Some(to)) = (ms_of(&ev["window"]["from"]), ms_of(&ev["window"]["to"])) {
        let baseline = ms_of(&ev["baseline"]["from"]).zip(ms_of(&ev["baseline"]["to"]));
        return Some(explain_url(from, to, baseline, &scope));
    }
    let start = ms_of(&ev["periodStart"])?;
    let end = ms_of(&ev["periodEnd"])?;
    let to = ms_of(&a["lastSeenAt"]).unwrap_or(now).min(end);
    (to > start).then(|| explain_url(start, to, None, &scope))
}

fn links(a: &Value, now: i64) -> Markup {
    html! {
        div.alert-links {
            @if let Some(link) = a["link"].as_str().filter(|l| l.starts_with('/')) {
                a.btn.ghost data-go="view" href=(link) { "Open view →" }
            }
            @if let Some(href) = explain_href(a, now) {
                a.btn.ghost data-go="explain" href=(href) { "Explain this →" }
            }
        }
    }
}

fn alert_card(ctx: &Ctx, a: &Value) -> Markup {
    let id = id_of(a);
    let rule = a["rule"].as_str().unwrap_or("");
    html! {
        div.card.alert id=(format!("alert-{id}")) data-alert-id=(id) data-rule=(rule) data-state="firing" {
            div.card-head {
                (severity_badge(a))
                h2 { (a["title"].as_str().unwrap_or("")) }
                code.faint { (rule) }
                @if !a["acknowledgedAt"].is_null() {
                    span.badge.good data-acknowledged { "acknowledged " (when(ctx, &a["acknowledgedAt"])) }
                }
                div.right.muted { "fired " (when(ctx, &a["firedAt"])) }
            }
            @if admin(ctx) {
                (actions(ctx, id, rule, a["acknowledgedAt"].is_null()))
            }
            (details(ctx, a))
        }
    }
}

fn admin(ctx: &Ctx) -> bool {
    ctx.key.scope == Scope::Admin
}

/// How long a rule can be muted from the page, in minutes.
const MUTE_FOR: &[(u64, &str)] = &[
    (60, "1 hour"),
    (8 * 60, "8 hours"),
    (1440, "1 day"),
    (7 * 1440, "7 days"),
];

/// Acknowledge and mute, for admin sessions; each form carries the CSRF token.
fn actions(ctx: &Ctx, id: i64, rule: &str, unacknowledged: bool) -> Markup {
    html! {
        div.actions data-actions {
            @if unacknowledged {
                form method="post" action="/alerts/ack" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="hidden" name="id" value=(id);
                    button.btn type="submit" data-ack { "Acknowledge" }
                }
            }
            form method="post" action="/alerts/mute" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="rule" value=(rule);
                label.field {
                    span { "Mute " code { (rule) } " for" }
                    select name="minutes" {
                        @for (minutes, label) in MUTE_FOR {
                            option value=(minutes) { (label) }
                        }
                    }
                }
                button.btn.ghost type="submit" data-mute { "Mute rule" }
            }
        }
    }
}

/// Why a POST from the page is refused, or the admin key behind it.
async fn admin_post(
    state: &HttpState,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<KeyInfo, (StatusCode, &'static str)> {
    let key = match state
        .sessions
        .key_of(&state.app, state.now_ms(), headers)
        .await
    {
        Ok(Some(key)) => key,
        Ok(None) => return Err((StatusCode::UNAUTHORIZED, "sign in first")),
        Err(e) => {
            tracing::error!(error = %e, "dashboard session check failed");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
        }
    };
    if !session::same_origin(headers) {
        return Err((
            StatusCode::FORBIDDEN,
            "this form must come from this server's own page",
        ));
    }
    // A read session is refused whatever it sends.
    if key.scope != Scope::Admin {
        return Err((
            StatusCode::FORBIDDEN,
            "a read session is read-only; sign in with an admin key to acknowledge or mute",
        ));
    }
    if !session::csrf_ok(headers, csrf) {
        return Err((
            StatusCode::FORBIDDEN,
            "csrf: missing or not this session's token; reload the Alerts page",
        ));
    }
    Ok(key)
}

fn bad(field: &str, message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{field}: {message}")).into_response()
}

pub async fn acknowledge(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let key = match admin_post(&state, &headers, form.get("csrf").map(String::as_str)).await {
        Ok(key) => key,
        Err(refused) => return refused.into_response(),
    };
    let Some(id) = form.get("id").and_then(|v| v.parse::<i64>().ok()) else {
        return bad("id", "must be the integer id of an alert");
    };
    match state
        .app
        .alerts
        .acknowledge(key.workspace_id, id, state.now_ms())
        .await
    {
        Ok(()) => redirect(&format!("/alerts#alert-{id}"), None),
        Err(StoreError::NotFound(_)) => bad("id", "no alert with this id in the workspace"),
        Err(e) => {
            tracing::error!(error = %e, "acknowledging an alert failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub async fn mute(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let key = match admin_post(&state, &headers, form.get("csrf").map(String::as_str)).await {
        Ok(key) => key,
        Err(refused) => return refused.into_response(),
    };
    let Some(rule) = form.get("rule").and_then(|r| RuleKind::parse(r)) else {
        return bad(
            "rule",
            "must be the name of a rule, e.g. hourly_spend_spike",
        );
    };
    let Some(minutes) = form
        .get("minutes")
        .and_then(|m| m.parse::<u64>().ok())
        .filter(|m| MUTE_FOR.iter().any(|(allowed, _)| allowed == m))
    else {
        return bad("minutes", "must be 60, 480, 1440 or 10080");
    };
    let until = state.now_ms() + minutes as i64 * 60_000;
    match state.app.alerts.mute(key.workspace_id, rule, until).await {
        Ok(_) => redirect("/alerts#rules", None),
        Err(e) => {
            tracing::error!(error = %e, "muting a rule failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// The text, the evidence and the drivers, the links and the deliveries.
fn details(ctx: &Ctx, a: &Value) -> Markup {
    let ev = &a["evidence"];
    html! {
        p.alert-text { (a["text"].as_str().unwrap_or("")) }
        div.grid.alert-grid {
            div {
                h3.mini { "Evidence" }
                table.bd.evidence {
                    tbody {
                        @for (name, label) in [("window", "Window"), ("baseline", "Baseline")] {
                            @if let (Some(from), Some(to)) = (ms_of(&ev[name]["from"]), ms_of(&ev[name]["to"])) {
                                tr data-key=(name) {
                                    td { (label) }
                                    td.num { (format::time(from)) " – " (format::time(to)) " UTC" }
                                }
                            }
                        }
                        @for (key, value) in flatten(ev) {
                            tr data-key=(key) { td { code { (key) } } td.num { (value_cell(&key, value)) } }
                        }
                    }
                }
            }
            div {
                h3.mini { "Drivers" }
                @let drivers = a["drivers"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                @if drivers.is_empty() {
                    p.muted.small { "No single group stands out." }
                } @else {
                    table.t.drivers {
                        thead { tr { th { "Where" } th.num { "Share" } th { "Detail" } } }
                        tbody {
                            @for d in drivers {
                                tr data-dimension=(d["dimension"].as_str().unwrap_or("")) data-value=(d["value"].as_str().unwrap_or("")) {
                                    td.name { (d["dimension"].as_str().unwrap_or("")) " = " code { (d["value"].as_str().unwrap_or("")) } }
                                    td.num data-share=(d["sharePct"]) { (share(d["sharePct"].as_f64())) }
                                    td.small { (d["detail"].as_str().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (links(a, ctx.now))
        (deliveries(a))
    }
}

/// Fields of a budget alert's `status` that repeat what the evidence says at its top
/// level (the budget's name and period) or only identify it.
const REPEATED: &[&str] = &[
    "status.budgetId",
    "status.name",
    "status.periodStart",
    "status.periodEnd",
];

/// The evidence's numbers as (dotted key, value), keys of nested objects joined with
/// dots as in the API, leaving out the windows (shown as times) and `REPEATED`.
fn flatten(ev: &Value) -> Vec<(String, &Value)> {
    fn walk<'v>(prefix: &str, v: &'v Value, out: &mut Vec<(String, &'v Value)>) {
        match v {
            Value::Object(map) => {
                for (k, inner) in map {
                    if prefix.is_empty() && matches!(k.as_str(), "window" | "baseline") {
                        continue;
                    }
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, inner, out);
                }
            }
            other => out.push((prefix.to_string(), other)),
        }
    }
    let mut out = Vec::new();
    walk("", ev, &mut out);
    out.retain(|(k, _)| !REPEATED.contains(&k.as_str()));
    out
}

/// A value as its name says: money for `...Usd`, percent for `...Pct`, ratios for
/// `retryRatio`/`errorRate`, times for RFC 3339 text.
fn value_cell(key: &str, v: &Value) -> Markup {
    let segments: Vec<&str> = key.split('.').collect();
    let named = |suffix: &str| segments.iter().any(|s| s.ends_with(suffix));
    match v {
        Value::Number(n) if named("Usd") => match Usd::parse(&n.to_string()) {
            Ok(u) => money(u),
            Err(_) => html! { (n) },
        },
        Value::Number(n) if named("Pct") || named("thresholdReached") => {
            html! { (format!("{:.1}%", n.as_f64().unwrap_or(0.0))) }
        }
        Value::Number(n) if named("Ratio") || named("Rate") => {
            html! { (format::ratio(n.as_f64())) }
        }
        Value::Number(n) => match n.as_u64() {
            Some(i) => html! { (format::int(i)) },
            None => {
                let x = n.as_f64().unwrap_or(0.0);
                if x.abs() >= 100.0 {
                    html! { (format::count(Some(x))) }
                } else {
                    html! { (format!("{x:.2}")) }
                }
            }
        },
        Value::String(s) => match format::parse_ms(s) {
            Some(at) => html! { (format::time(at)) " UTC" },
            None => html! { code { (s) } },
        },
        Value::Bool(b) => html! { (if *b { "yes" } else { "no" }) },
        Value::Null => html! { span.faint { "—" } },
        Value::Array(items) => html! { span.faint { (items.len()) " items" } },
        Value::Object(_) => html! {},
    }
}

/// Per channel: what was sent (firing or resolved), delivered or not, after how many
/// attempts, and the last answer.
fn deliveries(a: &Value) -> Markup {
    let list = a["deliveries"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        div.deliveries.small {
            @if list.is_empty() {
                span.faint { "No channel configured: nothing was sent (add one with POST /v1/channels)." }
            }
            @for d in list {
                @let attempts = d["attempts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                @let last = attempts.last();
                span.delivery data-channel=(d["channel"].as_str().unwrap_or("")) data-delivered=(d["delivered"]) {
                    span.faint { (d["state"].as_str().unwrap_or("")) " → " }
                    b { (d["channel"].as_str().unwrap_or("")) }
                    " "
                    @if d["delivered"] == true {
                        span.st.ok { "delivered" }
                    } @else {
                        span.st.err { "failed" }
                    }
                    span.faint {
                        " " (attempts.len()) (if attempts.len() == 1 { " attempt" } else { " attempts" })
                        @if let Some(l) = last {
                            @if let Some(status) = l["status"].as_u64() { ", HTTP " (status) }
                            @if let Some(e) = l["error"].as_str() { ", " (e) }
                        }
                    }
                }
            }
        }
    }
}

fn history_card(ctx: &Ctx, history: &[&Value]) -> Markup {
    html! {
        div.card #history {
            div.card-head {
                h2 { "History" }
                span.muted { "resolved alerts, newest first; open one for its evidence" }
            }
            @if history.is_empty() {
                p.muted { "No resolved alerts yet." }
            } @else {
                div.alert-list {
                    @for a in history.iter().take(HISTORY) {
                        @let id = id_of(a);
                        details.alert-row id=(format!("alert-{id}")) data-alert-id=(id) data-rule=(a["rule"].as_str().unwrap_or("")) data-state="resolved" {
                            summary {
                                (severity_badge(a))
                                span.title { (a["title"].as_str().unwrap_or("")) }
                                span.tnum.muted { "fired " (when(ctx, &a["firedAt"])) }
                                span.tnum.muted { "resolved " (when(ctx, &a["resolvedAt"])) }
                            }
                            div.alert-more { (details(ctx, a)) }
                        }
                    }
                }
                @if history.len() > HISTORY {
                    p.muted.small { (history.len() - HISTORY) " older alerts are in GET /v1/alerts." }
                }
            }
        }
    }
}

fn rules_card(settings: &AlertSettings, now: i64) -> Markup {
    html! {
        div.card.scroll #rules {
            div.card-head {
                h2 { "Rules" }
                span.muted { "change them with PUT /v1/alert-rules (admin key); an admin session can mute a firing alert's rule above" }
            }
            table.t {
                thead { tr {
                    th { "Rule" } th { "Enabled" } th.num { "Threshold" } th { "Meaning" }
                    th.num { "Min. calls" } th.num { "Min. change" } th.num { "Sigmas" } th.num { "Window" } th.num { "Cooldown" } th { "Muted" }
                } }
                tbody {
                    @for r in &settings.rules {
                        tr data-rule=(r.kind.as_str()) {
                            td { code { (r.kind.as_str()) } }
                            td { @if r.enabled { span.st.ok { "on" } } @else { span.st.err { "off" } } }
                            td.num { (r.threshold) }
                            td.small.muted { (r.threshold_means) }
                            td.num { (format::int(r.min_requests)) }
                            td.num { (r.min_usd.readable()) }
                            td.num { (r.sigmas) }
                            td.num { (format::duration(r.window_minutes as i64 * 60_000)) }
                            td.num { (format::duration(r.cooldown_minutes as i64 * 60_000)) }
                            td {
                                @match r.muted_until_ms {
                                    Some(t) if r.muted(now) => span.badge.warn { "until " (format::time(t)) " UTC" },
                                    _ => span.faint { "no" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explain_links_take_the_alert_window_its_baseline_and_its_scope() {
        let a = json!({
            "evidence": {
                "window": {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"},
                "baseline": {"from": "2026-02-22T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
                "endpointTag": "support.reply", "sharePct": {"now": 60.5}
            },
            "link": "/endpoints?from=x&to=y&environment=prod&dataMode=demo&endpointTag=support.reply"
        });
        assert_eq!(
            explain_href(&a, 0).unwrap(),
            "/explain?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z\
             &baselineFrom=2026-02-22T00:00:00Z&baselineTo=2026-03-01T00:00:00Z\
             &endpointTag=support.reply&dataMode=demo"
        );
        let keys: Vec<String> = flatten(&a["evidence"])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["endpointTag", "sharePct.now"]);
        let budget = json!({
            "evidence": {"periodStart": "2026-03-01T00:00:00Z", "periodEnd": "2026-04-01T00:00:00Z"},
            "lastSeenAt": "2026-03-10T12:00:00Z", "link": "/budgets#budget-1"
        });
        assert_eq!(
            explain_href(&budget, 0).unwrap(),
            "/explain?from=2026-03-01T00:00:00Z&to=2026-03-10T12:00:00Z"
        );
    }
}
