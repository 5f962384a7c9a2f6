//! Top endpoints, and top tenants or users with their concentration: who is behind the
//! spend, now against the window before.

use super::{
    delta, heading, money_opt, no_data, page_handler, page_limit, page_number, page_of, pager,
    share, spark_cell, sparks, Sense,
};
use crate::http::dashboard::{chart, format, Ctx, Page, PageError, PageResult};
use crate::query::Dimension;
use crate::report::{self, TopKind, TopReport, TopRow};
use maud::{html, Markup};
use std::collections::HashMap;

page_handler!(endpoints, Page::Endpoints, endpoints_body);
page_handler!(tenants, Page::Tenants, tenants_body);

fn key_of<'a>(row: &'a TopRow, dim: &str) -> &'a str {
    row.group.get(dim).and_then(|v| v.as_str()).unwrap_or("")
}

fn window_words(r: &TopReport) -> Markup {
    let from = format::parse_ms(&r.from).unwrap_or(0);
    let to = format::parse_ms(&r.to).unwrap_or(0);
    html! {
        "From " span.tnum { (format::time(from)) } " to " span.tnum { (format::time(to)) " UTC" }
        ", against the previous " (format::span(to - from)) "."
    }
}

async fn endpoints_body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let page = page_number(ctx)?;
    let mut r = report::top(
        ctx.state.store.as_ref(),
        ctx.ws(),
        &q,
        TopKind::Endpoints,
        page_limit(page),
    )
    .await?;
    let (rows, more) = page_of(std::mem::take(&mut r.rows), page);
    r.rows = rows;
    let title = heading("Top endpoints", window_words(&r));
    if r.total.requests == 0 {
        return Ok(html! { (title) (no_data(ctx, &q).await?) });
    }
    let keys: Vec<String> = r
        .rows
        .iter()
        .map(|row| key_of(row, "endpointTag").to_string())
        .collect();
    let sparks = sparks(ctx, &q, &Dimension::EndpointTag, &keys).await?;
    Ok(html! {
        (title)
        @if let Some(first) = r.rows.first().filter(|_| page == 1) {
            @let tag = key_of(first, "endpointTag");
            div.callout.info {
                span { b { (tag) } " takes " b { (format::share(first.share_pct)) } " of the spend ("
                    (super::group_money(&first.stats)) ", " (delta(first.change.cost_usd_pct, Sense::UpIsBad)) " vs before)." }
                a.go href=(ctx.link(Page::Tenants, &[("endpointTag", Some(tag))])) { "Who is behind it →" }
            }
        }
        div.card.scroll {
            table.t.sortable #top-table data-total-usd=(r.total.priced_cost().to_string()) {
                thead { tr {
                    th { "Endpoint" } th.num { "Spend" } th.num { "Share" } th.num { "vs before" } th data-nosort { "Trend" }
                    th.num { "Requests" } th.num { "Cost / req" } th.num { "vs before" } th.num { "Tokens / req" }
                    th.num { "Errors" } th.num { "Retries" } th {}
                } }
                tbody {
                    @for row in &r.rows {
                        @let tag = key_of(row, "endpointTag");
                        tr data-key=(tag) {
                            td.name { a href=(ctx.link(Page::Tenants, &[("endpointTag", Some(tag))])) title="Who is behind it" { (tag) } }
                            (stat_cells(row, &sparks, tag))
                            td.num data-v=(row.stats.retry_ratio.map(|v| v.to_string()).unwrap_or_default()) { (format::ratio(row.stats.retry_ratio)) }
                            td.links {
                                a href=(ctx.link(Page::Tenants, &[("endpointTag", Some(tag))])) { "who" }
                                a href=(ctx.link(Page::Versions, &[("endpointTag", Some(tag))])) { "versions" }
                                a href=(ctx.link(Page::Requests, &[("endpointTag", Some(tag))])) { "requests" }
                            }
                        }
                    }
                }
                tfoot { tr {
                    td { "All endpoints" }
                    td.num data-col="total" { (super::group_money(&r.total)) }
                    td.num { "100%" }
                    td.num { (delta(report::Change::between(&r.total, &r.previous_total).cost_usd_pct, Sense::UpIsBad)) }
                    td {}
                    td.num { (format::int(r.total.requests)) }
                    td.num { (money_opt(r.total.cost_per_request)) }
                    td {} td.num { (format::count(r.total.tokens_per_request)) }
                    td.num { (format::ratio(r.total.error_rate)) }
                    td.num { (format::ratio(r.total.retry_ratio)) }
                    td {}
                } }
            }
        }
        (pager(ctx, page, more))
        (super::csv_link(ctx, "endpoints", &q))
    })
}

async fn tenants_body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let (dim_name, kind, dim, noun) = match ctx.view.own("dim").unwrap_or("tenantId") {
        "tenantId" => ("tenantId", TopKind::Tenants, Dimension::TenantId, "Tenant"),
        "userId" => ("userId", TopKind::Users, Dimension::UserId, "User"),
        _ => return Err(PageError::Bad("dim must be tenantId or userId".into())),
    };
    let page = page_number(ctx)?;
    let store = ctx.state.store.as_ref();
    let (mut r, conc) =
        report::top_and_concentration(store, ctx.ws(), &q, kind, page_limit(page)).await?;
    let (rows, more) = page_of(std::mem::take(&mut r.rows), page);
    r.rows = rows;
    let endpoint = ctx.view.filter("endpointTag");
    let title = heading(
        "Tenants & users",
        html! {
            @if let Some(e) = endpoint { "Who is behind " b { (e) } ". " }
            (window_words(&r))
        },
    );
    let toggle = html! {
        div.seg style="margin-bottom:14px" {
            a class=(if dim_name == "tenantId" { "on" } else { "" }) href=(ctx.link(Page::Tenants, &[("dim", None)])) { "Tenants" }
            a class=(if dim_name == "userId" { "on" } else { "" }) href=(ctx.link(Page::Tenants, &[("dim", Some("userId"))])) { "Users" }
        }
    };
    if r.total.requests == 0 {
        return Ok(html! { (title) (toggle) (no_data(ctx, &q).await?) });
    }
    let keys: Vec<String> = r
        .rows
        .iter()
        .map(|row| key_of(row, dim_name).to_string())
        .collect();
    let sparks = sparks(ctx, &q, &dim, &keys).await?;
    let lower = noun.to_lowercase();
    Ok(html! {
        (title)
        (toggle)
        @if let Some(e) = endpoint {
            div.callout.info {
                span { "Next: did a deploy change what " b { (e) } " costs per request?" }
                a.go href=(ctx.link(Page::Versions, &[])) { "Prompt versions of " (e) " →" }
            }
        }
        div.card #concentration {
            div.conc {
                div data-conc="top1" {
                    div.muted { "Top 1 " (lower) " share" }
                    div.big { (format::share(conc.top1_share_pct)) }
                    div { (pp_change(conc.top1_share_pct, conc.previous_top1_share_pct)) " " span.faint { "vs " (format::share(conc.previous_top1_share_pct)) " before" } }
                }
                div data-conc="top5" {
                    div.muted { "Top 5 " (lower) "s share" }
                    div.big { (format::share(conc.top5_share_pct)) }
                    div { (pp_change(conc.top5_share_pct, conc.previous_top5_share_pct)) " " span.faint { "vs " (format::share(conc.previous_top5_share_pct)) " before" } }
                }
                div {
                    div.muted { "Largest " (lower) "s now" }
                    div.stackbar {
                        @for (i, s) in conc.top.iter().enumerate() {
                            i style=(format!("width:{:.2}%;background:{}", s.share_pct.unwrap_or(0.0), chart::color(i, &s.key))) title=(format!("{}: {}", s.key, format::share(s.share_pct))) {}
                        }
                    }
                    div.legend style="margin-top:0" {
                        @for (i, s) in conc.top.iter().enumerate() {
                            span { span.sw style=(format!("background:{}", chart::color(i, &s.key))) {} (s.key) span.v { (format::share(s.share_pct)) } }
                        }
                    }
                }
            }
        }
        div.card.scroll {
            table.t.sortable #top-table data-total-usd=(r.total.priced_cost().to_string()) {
                thead { tr {
                    th { (noun) } th.num { "Spend" } th.num { "Share" } th.num { "vs before" } th data-nosort { "Trend" }
                    th.num { "Requests" } th.num { "Cost / req" } th.num { "vs before" } th.num { "Tokens / req" } th.num { "Errors" } th {}
                } }
                tbody {
                    @for row in &r.rows {
                        @let key = key_of(row, dim_name);
                        tr data-key=(key) {
                            td.name {
                                @if dim_name == "tenantId" {
                                    a href=(ctx.link(Page::Tenant, &[("tenantId", Some(key))])) title="The tenant's page" { (key) }
                                } @else {
                                    a href=(ctx.link(Page::Requests, &[(dim_name, Some(key))])) title="Their requests" { (key) }
                                }
                            }
                            (stat_cells(row, &sparks, key))
                            td.links {
                                a href=(ctx.link(Page::Endpoints, &[(dim_name, Some(key))])) { "endpoints" }
                                a href=(ctx.link(Page::Requests, &[(dim_name, Some(key))])) { "requests" }
                            }
                        }
                    }
                }
                tfoot { tr {
                    td { "All " (lower) "s" }
                    td.num data-col="total" { (super::group_money(&r.total)) }
                    td.num { "100%" }
                    td.num { (delta(report::Change::between(&r.total, &r.previous_total).cost_usd_pct, Sense::UpIsBad)) }
                    td {}
                    td.num { (format::int(r.total.requests)) }
                    td.num { (money_opt(r.total.cost_per_request)) }
                    td {} td.num { (format::count(r.total.tokens_per_request)) }
                    td.num { (format::ratio(r.total.error_rate)) }
                    td {}
                } }
            }
        }
        (pager(ctx, page, more))
        (super::csv_link(ctx, if dim_name == "userId" { "users" } else { "tenants" }, &q))
    })
}

/// A change of a share (in percent) in percentage points; more concentration is a risk.
fn pp_change(now: Option<f64>, before: Option<f64>) -> Markup {
    super::delta_pp(
        now.map(|v| v / 100.0),
        before.map(|v| v / 100.0),
        Sense::UpIsBad,
    )
}

/// The numbers of one top-list row that the endpoints and the tenants/users tables share.
fn stat_cells(row: &TopRow, sparks: &HashMap<String, Vec<i64>>, key: &str) -> Markup {
    // `data-v`: the exact value the column sorts by (nano-USD for money, no rounding);
    // empty when there is none, which sorts last.
    let nanos = |u: Option<crate::money::Usd>| u.map(|u| u.0.to_string()).unwrap_or_default();
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    html! {
        td.num data-col="spend" data-v=(nanos(row.stats.cost_usd)) { (super::group_money(&row.stats)) }
        td.num data-v=(num(row.share_pct)) { (share(row.share_pct)) }
        td.num data-v=(num(row.change.cost_usd_pct)) { (delta(row.change.cost_usd_pct, Sense::UpIsBad)) }
        td { (spark_cell(sparks, key)) }
        td.num data-v=(row.stats.requests) { (format::int(row.stats.requests)) }
        td.num data-v=(nanos(row.stats.cost_per_request)) { (money_opt(row.stats.cost_per_request)) }
        td.num data-v=(num(row.change.cost_per_request_pct)) { (delta(row.change.cost_per_request_pct, Sense::UpIsBad)) }
        td.num data-v=(num(row.stats.tokens_per_request)) { (format::count(row.stats.tokens_per_request)) }
        td.num data-v=(num(row.stats.error_rate)) { (format::ratio(row.stats.error_rate)) }
    }
}
