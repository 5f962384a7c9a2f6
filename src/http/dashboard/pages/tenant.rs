//! One tenant's page (`/tenant?tenantId=acme` with the usual window and filters): its
//! margin (the `/v1/margin` report for this tenant), its caps and where it stands
//! against them, spend over time by endpoint, its endpoints, users, prompt versions and
//! models (the top-list reports with the tenant filter: aggregate queries, never a scan
//! of its events), and its most expensive requests.

use super::{heading, money, money_opt, page_handler, share};
use crate::budget::counters::RateCap;
use crate::budget::service::TenantCap;
use crate::http::dashboard::{chart, format, Ctx, Page, PageError, PageResult};
use crate::privacy::Slot;
use crate::query::{Bucket, Dimension, Query};
use crate::report::margin::{self, RevenueBook, TenantMargin};
use crate::report::{self, TopKind, TopReport};
use crate::store::{EventOrder, EventQuery, StoredEvent};
use maud::{html, Markup};

page_handler!(page, Page::Tenant, body);

const ROWS: usize = 10;
const TOP_REQUESTS: usize = 10;

/// The one tenant the page is about: `tenantId` with a single value.
fn one_tenant(ctx: &Ctx) -> Result<&str, PageError> {
    match ctx.view.filter("tenantId") {
        Some(t) if !t.is_empty() && !t.contains(',') => Ok(t),
        _ => Err(PageError::Bad(
            "tenantId must name one tenant: open a tenant from the Tenants page".into(),
        )),
    }
}

async fn body(ctx: &Ctx) -> PageResult {
    let tenant = one_tenant(ctx)?;
    let q = ctx.window()?;
    let ws = ctx.ws();
    let store = ctx.state.store.as_ref();
    // The id as stored (a pseudonym when it looks personal): margin rows and caps use it.
    let stored = ctx.settings.privacy().lookup(tenant, Slot::Id);
    let plans = ctx.state.budgets.plans(ws).await?;
    let book =
        RevenueBook::load(store, ws, plans, ctx.state.budgets.plan_history(ws).await?).await?;
    let bucket = if q.to_ms - q.from_ms <= 8 * Bucket::Day.millis() {
        Bucket::Hour
    } else {
        Bucket::Day
    };
    // Every read at once: the chart by hour and the costliest requests can read raw
    // events (older hours of a tenant's endpoints), the others are cells.
    let (reads, stack, top) = tokio::join!(
        async {
            tokio::try_join!(
                margin::margin(store, ws, &book, &q, (0, 10)),
                report::top(store, ws, &q, TopKind::Endpoints, ROWS),
                report::top(store, ws, &q, TopKind::Users, ROWS),
                report::top(store, ws, &q, TopKind::PromptVersions, ROWS),
                report::top(store, ws, &q, TopKind::Models, ROWS),
            )
        },
        super::overview::stack(ctx, &q, bucket, &Dimension::EndpointTag),
        top_requests(ctx, &q),
    );
    let (m, endpoints, users, versions, models) = reads?;
    let (stack, top) = (stack?, top?);
    let caps = ctx.state.budgets.tenant_caps(ws, &stored, ctx.now).await?;
    let mut rate_caps = ctx.state.budgets.rate_caps(ws).await?;
    rate_caps.retain(|c| c.per_tenant);
    let row = m.tenants.iter().find(|r| r.tenant_id == stored);
    let plan = book.plan(&stored);
    let from_to = html! {
        "From " span.tnum { (format::time(q.from_ms)) } " to " span.tnum { (format::time(q.to_ms)) " UTC" } "."
    };
    Ok(html! {
        (heading(&format!("Tenant {tenant}"), html! {
            @if let Some(p) = plan { "Plan " b data-plan=(p) { (p) } ". " }
            (from_to)
        }))
        (margin_card(row))
        (caps_card(&caps, &rate_caps))
        div.card #spend-over-time {
            div.card-head { h2 { "Spend over time, by endpoint" } }
            (chart::stacked(&stack, None, None, &[]))
        }
        div.grid.halves {
            (top_card(ctx, &q, ("Endpoints", "endpoints", "endpoints"), &endpoints, &["endpointTag"]))
            (top_card(ctx, &q, ("Users", "users", "users"), &users, &["userId"]))
            (top_card(ctx, &q, ("Prompt versions", "versions", "prompt-versions"), &versions, &["endpointTag", "promptVersion"]))
            (top_card(ctx, &q, ("Models", "models", "models"), &models, &["provider", "model"]))
        }
        (requests_card(ctx, &top))
    })
}

fn margin_card(row: Option<&TenantMargin>) -> Markup {
    let Some(r) = row else {
        return html! {
            div.card #margin data-empty {
                p.muted { "No cost, plan or revenue for this tenant in this window." }
            }
        };
    };
    let pct = |p: Option<f64>| p.map_or("—".to_string(), |p| format!("{p:.1}%"));
    html! {
        div.card #margin {
            div.card-head { h2 { "Margin" } }
            div.margin-kpis {
                div data-kpi="revenue" { div.muted { "Revenue" } div.big { (money(r.revenue_usd)) } }
                div data-kpi="cost" { div.muted { "AI cost" } div.big { (super::money_with_unpriced(Some(r.cost_usd), r.unpriced)) } }
                div data-kpi="margin" { div.muted { "Margin" } div.big { (money(r.margin_usd)) } }
                div data-kpi="share" { div.muted { "AI cost / revenue" } div.big { (pct(r.cost_share_pct)) } }
                div data-kpi="per-user-day" { div.muted { "Cost per active user-day" } div.big { (money_opt(r.cost_per_active_user_day_usd)) } }
            }
            @if let Some(p) = &r.projected {
                p #projection {
                    "At its run rate this month ends at " span data-kpi="projected-cost" { (money(p.cost_usd)) }
                    " of AI cost for " span data-kpi="projected-revenue" { (money(p.revenue_usd)) }
                    " of revenue: a margin of " span data-kpi="projected-margin" { (money(p.margin_usd)) } "."
                }
            }
        }
    }
}

fn caps_card(caps: &[TenantCap], rate_caps: &[RateCap]) -> Markup {
    html! {
        div.card #caps {
            div.card-head { h2 { "Caps" } }
            @for c in rate_caps {
                p data-rate-cap=(c.id) { "At most " b { (format::int(c.requests_per_minute.into())) } " requests a minute to " code { (c.endpoint_tag) } " (each tenant)." }
            }
            @if caps.is_empty() {
                p.muted data-empty { "No budget caps this tenant." }
            } @else {
                table.t.sortable {
                    thead { tr { th { "Budget" } th { "Plan" } th.num { "Spent" } th.num { "Limit" } th { "State" } th { "Action" } th { "Period" } } }
                    tbody {
                        @for c in caps {
                            tr data-budget=(c.budget_id) data-state=(format!("{:?}", c.state).to_lowercase()) {
                                td { a href=(format!("/budgets#budget-{}", c.budget_id)) { (c.name) } @if c.per_tenant { " " span.faint { "(each tenant)" } } }
                                td { (c.plan.as_deref().unwrap_or("—")) }
                                td.num { (money(c.spent_usd)) }
                                td.num { @match c.limit_usd { Some(l) => (money(l)), None => span.faint { "no limit" } } }
                                td { (format!("{:?}", c.state).to_lowercase()) }
                                td { (format!("{:?}", c.action).to_lowercase()) }
                                td.tnum { (c.period_start) " – " (c.period_end) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One top table of the tenant: (title, element id, the `/v1/top/{kind}` behind it).
fn top_card(
    ctx: &Ctx,
    q: &Query,
    (title, id, kind): (&str, &str, &str),
    r: &TopReport,
    dims: &[&str],
) -> Markup {
    let value = |row: &report::TopRow, d: &str| {
        row.group
            .get(d)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    html! {
        div.card.scroll id=(id) {
            div.card-head { h2 { (title) } }
            table.t.sortable {
                thead { tr { th { (title) } th.num { "Spend" } th.num { "Share" } th.num { "Requests" } th.num { "Cost / req" } } }
                tbody {
                    @for row in &r.rows {
                        @let key = dims.iter().map(|d| value(row, d)).collect::<Vec<_>>();
                        @let set: Vec<(&str, Option<&str>)> = dims.iter().zip(&key).map(|(d, v)| (*d, Some(v.as_str()))).collect();
                        tr data-key=(key.join("/")) {
                            td.name { a href=(ctx.link(Page::Requests, &set)) { (key.join(" / ")) } }
                            td.num data-col="spend" { (super::group_money(&row.stats)) }
                            td.num { (share(row.share_pct)) }
                            td.num { (format::int(row.stats.requests)) }
                            td.num { (money_opt(row.stats.cost_per_request)) }
                        }
                    }
                }
            }
            (super::csv_link(ctx, kind, q))
        }
    }
}

/// The tenant's most expensive requests in the window (priced calls; the store orders
/// by cost, so every call of the window is ranked, not only the newest).
async fn top_requests(ctx: &Ctx, q: &Query) -> Result<(Vec<StoredEvent>, bool), PageError> {
    let page = ctx
        .state
        .store
        .events(
            ctx.ws(),
            EventQuery {
                external_request_id: None,
                window: Some((q.from_ms, q.to_ms)),
                filters: Some(q.filters.clone()),
                cursor: None,
                limit: TOP_REQUESTS,
                order: EventOrder::Costliest,
            },
        )
        .await?;
    let more = page.next_cursor.is_some();
    Ok((page.events, more))
}

fn requests_card(ctx: &Ctx, (events, more): &(Vec<StoredEvent>, bool)) -> Markup {
    html! {
        div.card.scroll #top-requests {
            div.card-head {
                h2 { "Most expensive requests" }
                @if *more { a.faint href=(ctx.link(Page::Requests, &[("order", Some("cost"))])) { "all, most expensive first →" } }
            }
            table.t.sortable {
                thead { tr { th { "Time (UTC)" } th { "Endpoint" } th { "Model" } th { "User" } th.num { "Tokens in / out" } th.num { "Cost" } } }
                tbody {
                    @for e in events {
                        tr data-request=(e.external_request_id) {
                            td.tnum { a href=(ctx.link(Page::Requests, &[("q", Some(&e.external_request_id))])) { (e.timestamp) } }
                            td { (e.endpoint_tag) }
                            td { code { (e.model) } }
                            td { (e.user_id.as_deref().unwrap_or("—")) }
                            td.num { (format::int(e.input_tokens)) " / " (format::int(e.output_tokens)) }
                            td.num { (money_opt(e.cost_usd)) }
                        }
                    }
                }
            }
        }
    }
}
