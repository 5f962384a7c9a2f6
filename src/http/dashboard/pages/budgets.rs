//! Budgets: one card per budget with its gauge, its numbers, the forecast and a chart of
//! the period so far; and the posture block of the Overview. Status comes from
//! `budget::service` (the same call as GET /v1/budgets), spend over time from one
//! aggregate time series per budget.

use super::{heading, money, page_handler};
use crate::app::AppState;
use crate::budget::period::Period;
use crate::budget::service::MEMBER_PAGE;
use crate::budget::{Action, Budget, Members, State, Status};
use crate::http::dashboard::chart::{self, Burn, Gauge};
use crate::http::dashboard::{format, Ctx, Page, PageError, PageResult};
use crate::query::Bucket;
use crate::store::{StoreError, WorkspaceId};
use maud::{html, Markup};
use std::cmp::Ordering;

page_handler!(page, Page::Budgets, body);

/// Budgets the Overview lists by name (the others only count).
const WORST: usize = 3;

/// One budget as the pages show it.
pub struct Entry {
    pub budget: Budget,
    pub status: Status,
    /// (time, cumulative spend in nano-USD) from the period's start; empty unless asked.
    pub points: Vec<(i64, i64)>,
}

/// Every budget of the workspace with its status (and its spend over the period so far
/// when `with_spend`), worst first. Budgets are read concurrently: a month budget's
/// status needs one aggregate (the trailing week) and its chart another.
pub async fn load(ctx: &Ctx, with_spend: bool) -> Result<Vec<Entry>, PageError> {
    let budgets = ctx.state.budgets.list(ctx.ws()).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, budget) in budgets.into_iter().enumerate() {
        let (state, ws, now) = (ctx.state.clone(), ctx.ws(), ctx.now);
        tasks.spawn(async move {
            let status = state.budgets.status(ws, &budget, now, MEMBER_PAGE).await?;
            let points = match with_spend {
                true => spend_so_far(&state, ws, &budget, now).await?,
                false => Vec::new(),
            };
            Ok::<_, StoreError>((
                i,
                Entry {
                    budget,
                    status,
                    points,
                },
            ))
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| {
            tracing::error!(error = %e, "budget status task failed");
            PageError::Internal
        })?;
        done.push(result?);
    }
    // Worst first; among equals, the order they were created in.
    done.sort_by(|(i, a), (j, b)| worst_first(a, b).then(i.cmp(j)));
    Ok(done.into_iter().map(|(_, e)| e).collect())
}

fn rank(s: State) -> u8 {
    match s {
        State::Exceeded => 2,
        State::Warning => 1,
        State::Ok => 0,
    }
}

fn worst_first(a: &Entry, b: &Entry) -> Ordering {
    rank(b.status.state)
        .cmp(&rank(a.status.state))
        .then(b.status.used_pct.total_cmp(&a.status.used_pct))
}

/// Cumulative spend from the period's start to now: hourly buckets (daily for months),
/// one aggregate query.
async fn spend_so_far(
    state: &AppState,
    ws: WorkspaceId,
    budget: &Budget,
    now: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let (start, end) = budget.window(now);
    let to = now.min(end);
    let mut points = vec![(start, 0)];
    if to <= start {
        return Ok(points);
    }
    let bucket = match budget.period {
        Period::Month => Bucket::Day,
        _ => Bucket::Hour,
    };
    let query = budget.spend_query(start, to);
    let ts = crate::report::timeseries(state.store.as_ref(), ws, &query, bucket, None, 1).await?;
    let mut total = 0;
    for (at, cost) in ts.buckets.iter().zip(&ts.total.cost_usd) {
        total += cost.nanos();
        let bucket_end = format::parse_ms(at).unwrap_or(start) + bucket.millis();
        points.push((bucket_end.min(to), total));
    }
    Ok(points)
}

/// A time in the budget's own zone (periods are calendar periods there).
fn local(ms: i64, tz: &str, pattern: &str) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(zone).strftime(pattern).to_string())
        .unwrap_or_default()
}

/// The period in words (`January 2026`, `week of Jan 5, 2026`) and its bounds.
fn period_words(b: &Budget, start: i64, end: i64) -> (String, String) {
    let tz = b.timezone.as_str();
    let name = match b.period {
        Period::Hour => local(start, tz, "hour from %b %-d, %H:%M"),
        Period::Day => local(start, tz, "%a %b %-d, %Y"),
        Period::Week => local(start, tz, "week of %b %-d, %Y"),
        Period::Month => local(start, tz, "%B %Y"),
    };
    let bounds = format!(
        "{} – {} {tz}",
        local(start, tz, "%b %-d %H:%M"),
        local(end, tz, "%b %-d %H:%M")
    );
    (name, bounds)
}

fn axis_label(b: &Budget, at: i64) -> String {
    let pattern = match b.period {
        Period::Hour | Period::Day => "%b %-d %H:%M",
        Period::Week | Period::Month => "%b %-d",
    };
    local(at, &b.timezone, pattern)
}

/// What the budget counts, in words: `tenant acme, endpoint support.reply · prod, real`.
pub fn scope_words(b: &Budget) -> Markup {
    let s = &b.scope;
    let named = [
        ("endpoint", &s.endpoint_tag),
        ("tenant", &s.tenant_id),
        ("user", &s.user_id),
        ("model", &s.model),
        ("provider", &s.provider),
    ];
    let parts: Vec<(String, &str)> = named
        .iter()
        .filter_map(|(label, v)| v.as_deref().map(|v| (label.to_string(), v)))
        .chain(
            s.tags
                .iter()
                .map(|(k, v)| (format!("tag {k} ="), v.as_str())),
        )
        .collect();
    let each = s.each.map(|e| match e {
        crate::budget::Each::TenantId => "tenant",
        crate::budget::Each::UserId => "user",
        crate::budget::Each::EndpointTag => "endpoint",
    });
    html! {
        span data-scope {
            @if let Some(word) = each {
                b data-each=(word) { "Each " (word) " separately" }
                @if !parts.is_empty() { ": " }
            }
            @if parts.is_empty() {
                @if each.is_none() { "All spend of the workspace" }
            } @else {
                "Spend of "
                @for (i, (label, value)) in parts.iter().enumerate() {
                    @if i > 0 { ", " }
                    (label) " " code { (value) }
                }
            }
            span.faint { " · " (s.environment.as_str()) ", " (s.data_mode.as_str()) " traffic" }
        }
    }
}

pub fn state_badge(s: &Status) -> Markup {
    match s.state {
        State::Ok => html! { span.badge.good data-state="ok" { "ok" } },
        State::Warning => html! {
            span.badge.warn data-state="warning" {
                "warning"
                @if let Some(t) = s.threshold_reached { " · " (t) "% reached" }
            }
        },
        State::Exceeded => html! { span.badge.bad data-state="exceeded" { "exceeded" } },
    }
}

fn state_class(s: State) -> &'static str {
    match s {
        State::Ok => "ok",
        State::Warning => "warning",
        State::Exceeded => "exceeded",
    }
}

pub fn gauge_of(e: &Entry) -> Markup {
    chart::gauge(&Gauge {
        id: e.budget.id,
        limit: e.status.limit_usd.nanos(),
        spent: e.status.spent_usd.nanos(),
        reserved: e.status.reserved_usd.nanos(),
        forecast: e.status.forecast_usd.nanos(),
        thresholds: e.budget.thresholds.clone(),
        state: state_class(e.status.state),
    })
}

fn method_words(method: &str) -> &'static str {
    match method {
        "weekday_trailing_7d" => "each remaining day as the same weekday of the last 7 days",
        _ => "run rate of the period so far",
    }
}

/// The link to one budget's card.
pub fn card_link(ctx: &Ctx, id: i64) -> String {
    format!("{}#budget-{id}", ctx.link(Page::Budgets, &[]))
}

async fn body(ctx: &Ctx) -> PageResult {
    ctx.check_params()?;
    let entries = load(ctx, true).await?;
    let title = heading(
        "Budgets",
        html! { "Spend against each budget's limit in its current period, what is reserved by the guard, and where the period is heading. Worst first." },
    );
    if entries.is_empty() {
        return Ok(html! { (title) (empty()) });
    }
    Ok(html! {
        (title)
        (counts(&entries))
        @for e in &entries {
            (card(ctx, e))
        }
        (super::api_csv_link(ctx, "/v1/budgets", None, &[], "Download CSV"))
        @if entries.iter().any(|e| e.status.members.is_some()) {
            (super::api_csv_link(ctx, "/v1/budgets", None, &[("table", "members"), ("membersLimit", "1000")], "Download CSV (members over and near their caps)"))
        }
    })
}

fn counts(entries: &[Entry]) -> Markup {
    let count = |s: State| entries.iter().filter(|e| e.status.state == s).count();
    html! {
        div.posture-counts {
            @for (s, label, class) in [(State::Exceeded, "exceeded", "bad"), (State::Warning, "warning", "warn"), (State::Ok, "ok", "good")] {
                @let n = count(s);
                // Coloured only when there is something in that state.
                span class={ "pc " (if n > 0 { class } else { "" }) } data-count=(label) { b.tnum { (n) } " " (label) }
            }
        }
    }
}

/// A budget for each member: its members over and near their own caps, and the worst
/// of them (the status's first page), instead of a total against one limit.
fn member_card(e: &Entry, m: &Members) -> Markup {
    let (b, s) = (&e.budget, &e.status);
    html! {
        div.card.budget id=(format!("budget-{}", b.id)) data-budget-id=(b.id) data-state=(state_class(s.state)) data-members=(m.count) {
            div.card-head {
                h2 { (b.name) }
                (state_badge(s))
                @if b.action == Action::Block { span.badge title="The guard denies a member's calls that would take its spend past its own limit" { "blocks each at its limit" } }
                span.muted { (scope_words(b)) }
                div.right.muted { span { "per " (b.period.as_str()) ", " (money(b.limit_usd)) " each by default" } }
            }
            div.posture-counts {
                span.pc data-count="members" { b.tnum { (format::int(m.count as u64)) } " members" }
                span class={ "pc " (if m.over > 0 { "bad" } else { "" }) } data-count="over" { b.tnum { (format::int(m.over as u64)) } " over their cap" }
                span class={ "pc " (if m.near > 0 { "warn" } else { "" }) } data-count="near" { b.tnum { (format::int(m.near as u64)) } " near it" }
                span.pc.faint { "total spent " (money(s.spent_usd)) }
            }
            @if m.page.is_empty() {
                p.muted { "No member is near its cap this period." }
            } @else {
                table.bd.budget-members {
                    thead { tr { th { "Member" } th { "Plan" } th.num { "Spent" } th.num { "Limit" } th.num { "Used" } th { "State" } } }
                    tbody {
                        @for row in &m.page {
                            tr data-member=(row.member) {
                                td {
                                    @if b.scope.each == Some(crate::budget::Each::TenantId) {
                                        a href=(format!("/tenant?tenantId={}", crate::http::dashboard::view::encode(&row.member))) { code { (row.member) } }
                                    } @else {
                                        code { (row.member) }
                                    }
                                }
                                td { (row.plan.as_deref().unwrap_or("–")) }
                                td.num { (money(row.spent_usd)) }
                                td.num { (money(row.limit_usd)) }
                                td.num.tnum { (format!("{:.1}%", row.used_pct)) }
                                td { (state_class(row.state)) }
                            }
                        }
                    }
                }
                @if m.over + m.near > m.page.len() {
                    p.muted.small { (m.over + m.near - m.page.len()) " more over or near their caps: GET /v1/budgets/" (b.id) "/status?membersOffset=" (m.page.len()) }
                }
            }
        }
    }
}

fn card(ctx: &Ctx, e: &Entry) -> Markup {
    if let Some(m) = &e.status.members {
        return member_card(e, m);
    }
    let (b, s) = (&e.budget, &e.status);
    let start = format::parse_ms(&s.period_start).unwrap_or(0);
    let end = format::parse_ms(&s.period_end).unwrap_or(0);
    let (period, bounds) = period_words(b, start, end);
    let exhaustion = s.projected_exhaustion.as_deref().and_then(format::parse_ms);
    let burn = Burn {
        start,
        end,
        now: ctx.now,
        points: e.points.clone(),
        spent: s.spent_usd.nanos(),
        forecast: s.forecast_usd.nanos(),
        limit: s.limit_usd.nanos(),
        thresholds: b.thresholds.clone(),
        exhaustion,
        start_label: axis_label(b, start),
        end_label: axis_label(b, end),
    };
    html! {
        div.card.budget id=(format!("budget-{}", b.id)) data-budget-id=(b.id) data-state=(state_class(s.state)) {
            div.card-head {
                h2 { (b.name) }
                (state_badge(s))
                @if b.action == Action::Block { span.badge title="The guard denies calls that would take spend past the limit" { "blocks at the limit" } }
                span.muted { (scope_words(b)) }
                div.right.muted {
                    span { "per " (b.period.as_str()) ": " b { (period) } }
                    span.tnum.faint { (bounds) }
                }
            }
            div.budget-body {
                div {
                    div.budget-big {
                        span data-field="spentUsd" { (money(s.spent_usd)) }
                        span.muted { " of " (money(s.limit_usd)) }
                        span.used.tnum data-field="usedPct" { (format!("{:.1}%", s.used_pct)) }
                    }
                    (gauge_of(e))
                    div.legend.small {
                        span { span.sw.spent {} "spent" }
                        span { span.sw.reserved {} "reserved by the guard" }
                        span { span.sw.fc {} "forecast" }
                    }
                    table.bd.budget-nums {
                        tbody {
                            tr data-field="reservedUsd" { td { "Reserved" } td.num { (money(s.reserved_usd)) } }
                            tr data-field="remainingUsd" { td { "Remaining" } td.num { (money(s.remaining_usd)) } }
                            tr data-field="forecastUsd" {
                                td { "Forecast to period end" div.small.faint data-method=(s.forecast_method) { (method_words(s.forecast_method)) } }
                                td.num { (money(s.forecast_usd)) }
                            }
                            tr data-field="projectedExhaustion" {
                                td { "Projected to run out" }
                                td.num {
                                    @match exhaustion {
                                        _ if s.state == State::Exceeded => span.d.bad { "already exceeded" },
                                        Some(at) => span.d.bad data-at=(format::rfc3339(at)) { (format::time(at)) " UTC" span.faint { " · in " (format::duration(at - ctx.now)) } },
                                        None => span.faint { "not this period" },
                                    }
                                }
                            }
                            @if s.unpriced_requests > 0 {
                                tr data-field="unpricedRequests" {
                                    td { "Unpriced calls " span.faint { "(not in spent)" } }
                                    td.num { a.badge.warn href=(ctx.link(Page::Models, &[])) { (format::int(s.unpriced_requests)) } }
                                }
                            }
                        }
                    }
                }
                div {
                    (chart::burn(&burn))
                    div.legend.small {
                        span { span.sw.line-spent {} "spent so far (" (if b.period == Period::Month { "per day" } else { "per hour" }) ")" }
                        span { span.sw.fc {} "forecast" }
                        span { span.sw.limit {} "limit" }
                    }
                }
            }
        }
    }
}

fn empty() -> Markup {
    html! {
        div.card.empty data-empty {
            h2 { "No budgets yet" }
            p { "A budget caps the spend of the workspace, or of one endpoint, tenant, user, model, provider or tag, per hour, day, week or month (in your time zone). It warns at its thresholds and can make the guard deny calls past the limit." }
            p { "Create one with an admin key:" }
            pre.code { (CURL_EXAMPLE) }
            p { "or from the command line: " code { "burnrate budgets create --name \"acme monthly\" --period month --limit 500 --scope tenantId=acme --action block" } }
        }
    }
}

const CURL_EXAMPLE: &str = r#"curl -X POST "$BURNRATE_URL/v1/budgets" \
  -H "X-API-Key: $BURNRATE_ADMIN_KEY" -H "Content-Type: application/json" \
  -d '{"name": "acme monthly", "scope": {"tenantId": "acme"}, "period": "month",
       "timezone": "Europe/Berlin", "limitUsd": 500, "thresholds": [50, 80, 95],
       "action": "notify"}'"#;

/// The Overview's block: counts by state and the worst few with their gauges; a
/// one-line hint when there is no budget.
pub fn posture(ctx: &Ctx, entries: &[Entry]) -> Markup {
    html! {
        div.card #budget {
            div.card-head {
                h2 { "Budget posture" }
                @if !entries.is_empty() {
                    div.right { a href=(ctx.link(Page::Budgets, &[])) { "All budgets →" } }
                }
            }
            @if entries.is_empty() {
                p.muted data-empty { "No budgets yet: " a href=(ctx.link(Page::Budgets, &[])) { "set a limit per tenant, endpoint or month" } " and get warned before the bill does." }
            } @else {
                (counts(entries))
                @for e in entries.iter().take(WORST) {
                    div.posture-row data-budget-id=(e.budget.id) {
                        div.posture-head {
                            a href=(card_link(ctx, e.budget.id)) { (e.budget.name) }
                            (state_badge(&e.status))
                            span.right.tnum {
                                (money(e.status.spent_usd)) span.faint { " / " (format::usd(e.status.limit_usd)) }
                            }
                        }
                        (gauge_of(e))
                    }
                }
                @if entries.len() > WORST {
                    p.muted.small { (entries.len() - WORST) " more on the " a href=(ctx.link(Page::Budgets, &[])) { "Budgets page" } "." }
                }
            }
        }
    }
}
