//! Requests: the explorer. Filter with the bar, search one call by externalRequestId,
//! page with the cursor; each row opens to its cost breakdown, recomputed from the
//! price entry the event was priced with.
//!
//! The store applies the window and filters and pages the filtered list itself; the
//! page passes its cursor through unchanged.

use super::{heading, money, page_handler};
use crate::event::{ServiceTier, Tokens};
use crate::http::dashboard::{format, Ctx, Page, PageError, PageResult};
use crate::money::Usd;
use crate::price;
use crate::price::book::PriceEntry;
use crate::store::{EventOrder, EventQuery, StoreError, StoredEvent};
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;

page_handler!(page, Page::Requests, body);

const PAGE: usize = 50;

async fn body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let search = ctx.view.own("q");
    let cursor = ctx.view.own("cursor");
    let order = match ctx.view.own("order") {
        None | Some("newest") => EventOrder::Newest,
        Some("cost") => EventOrder::Costliest,
        Some(_) => {
            return Err(PageError::Bad(
                "order must be newest or cost (most expensive first)".into(),
            ))
        }
    };
    let query = match search {
        Some(id) => EventQuery {
            external_request_id: Some(id.to_string()),
            limit: 1,
            ..Default::default()
        },
        None => EventQuery {
            external_request_id: None,
            window: Some((q.from_ms, q.to_ms)),
            filters: Some(q.filters.clone()),
            cursor: cursor.map(str::to_string),
            limit: PAGE,
            order,
        },
    };
    let page = match ctx.state.store.events(ctx.ws(), query).await {
        Err(StoreError::NotFound(_) | StoreError::BadCursor)
            if search.is_none() && cursor.is_some() =>
        {
            return Err(PageError::Bad("cursor is not one this page made".into()))
        }
        other => other?,
    };
    let (events, next) = (page.events, page.next_cursor);
    let book = ctx.state.prices();
    let mut entries: HashMap<String, Option<Arc<PriceEntry>>> = HashMap::new();
    let status = ctx.view.filter("status").unwrap_or("");
    Ok(html! {
        (heading("Requests", html! { "Single calls, newest or most expensive first, with what each part cost and the price entry used. Click a row for the breakdown." }))
        @if search.is_none() {
            div.seg #order {
                a class=(if order == EventOrder::Newest { "on" } else { "" }) data-order="newest"
                    href=(ctx.link(Page::Requests, &[("order", None), ("cursor", None)])) { "Newest" }
                a class=(if order == EventOrder::Costliest { "on" } else { "" }) data-order="cost"
                    href=(ctx.link(Page::Requests, &[("order", Some("cost")), ("cursor", None)])) { "Most expensive" }
            }
            @if order == EventOrder::Costliest {
                p.muted { "Priced calls of this window, most expensive first; unpriced calls have no known cost and are left out." }
            }
        }
        form.search method="get" action="/requests" {
            label.field {
                span { "externalRequestId" }
                input type="text" name="q" value=(search.unwrap_or("")) placeholder="find one call by its id" autocomplete="off" spellcheck="false";
            }
            label.field {
                span { "Status" }
                select name="status" data-submit {
                    @for (value, label) in [("", "any"), ("success", "success"), ("error", "error"), ("timeout", "timeout"), ("rate_limited", "rate limited"), ("cancelled", "cancelled")] {
                        option value=(value) selected[status == value] { (label) }
                    }
                }
            }
            @for (name, value) in ctx.view.pairs(false) {
                @if name != "status" {
                    input type="hidden" name=(name) value=(value);
                }
            }
            button.btn type="submit" { "Search" }
            @if search.is_some() {
                a href=(ctx.link(Page::Requests, &[("q", None)])) { "back to the list" }
            }
        }
        @if search.is_some() {
            p.muted { "An id search ignores the time range and filters." }
        }
        @if events.is_empty() {
            div.card.empty data-empty {
                @if let Some(id) = search { "No request with externalRequestId " code { (id) } "." }
                @else { "No requests match this view." }
            }
        } @else {
            div.reqs #requests {
                div.req-row.req-head {
                    span { "Time (UTC)" } span { "Endpoint" } span { "Model" } span { "Tenant / user" }
                    span.num { "Tokens in → out" } span.num { "Latency" } span { "Status" } span.num { "Cost" }
                }
                @for e in &events {
                    @let entry = e.price_entry_id.as_ref().and_then(|id| {
                        entries.entry(id.clone()).or_insert_with(|| book.entry_by_id(id)).clone()
                    });
                    (request(ctx, e, entry.as_deref()))
                }
            }
        }
        div.pager {
            @if cursor.is_some() {
                a href=(ctx.link(Page::Requests, &[("cursor", None)])) { "← First page" }
            }
            @if let Some(n) = &next {
                a.btn.ghost style="display:inline-flex;align-items:center" #next-page href=(ctx.link(Page::Requests, &[("cursor", Some(n.as_str()))])) { "Next page →" }
            }
        }
    })
}

fn tokens_of(e: &StoredEvent) -> Tokens {
    Tokens {
        input: e.input_tokens,
        cached: e.cached_tokens,
        cache_write: e.cache_write_tokens,
        output: e.output_tokens,
        reasoning: e.reasoning_tokens,
    }
}

fn request(ctx: &Ctx, e: &StoredEvent, entry: Option<&PriceEntry>) -> Markup {
    let ts = format::parse_ms(&e.timestamp).unwrap_or(0);
    let ok = e.status == "success";
    let who = match (&e.tenant_id, &e.user_id) {
        (Some(t), Some(u)) => format!("{t} / {u}"),
        (Some(t), None) => t.clone(),
        (None, Some(u)) => format!("— / {u}"),
        (None, None) => "—".into(),
    };
    html! {
        details.req data-request-id=(e.external_request_id) {
            summary.req-row {
                span.tnum { (format::time_secs(ts)) }
                span title=(e.endpoint_tag) { (e.endpoint_tag) }
                span title=(format!("{}/{}", e.provider, e.model)) { span.muted { (e.provider) "/" } (e.model) }
                span title=(who) {
                    @match &e.tenant_id {
                        Some(t) => {
                            a href=(ctx.link(Page::Tenant, &[("tenantId", Some(t))])) title="The tenant's page" { (t) }
                            @if let Some(u) = &e.user_id { " / " (u) }
                        }
                        None => (who),
                    }
                }
                span.num { (format::int(e.input_tokens)) " → " (format::int(e.output_tokens)) }
                span.num { (e.latency_ms.map(|ms| format::duration(ms as i64)).unwrap_or_else(|| "—".into())) }
                span { span class=(if ok { "st ok" } else { "st err" }) { (e.status.replace('_', " ")) } }
                span.num {
                    @match e.cost_usd {
                        Some(c) => (money(c)),
                        None => span.badge.warn { "unpriced" },
                    }
                }
            }
            div.req-body {
                div {
                    h3 { "Cost breakdown" }
                    (breakdown(e, entry))
                }
                div {
                    h3 { "Request" }
                    dl.kv {
                        dt { "externalRequestId" } dd { code { (e.external_request_id) } @if e.idless { " " span.badge { "assigned by server" } } }
                        dt { "Time" } dd.tnum { (e.timestamp) }
                        dt { "Received" } dd.tnum { (e.received_at) }
                        dt { "Endpoint" } dd { a href=(ctx.link(Page::Endpoints, &[("endpointTag", Some(&e.endpoint_tag))])) { (e.endpoint_tag) } }
                        dt { "Prompt version" } dd { (e.prompt_version.as_deref().unwrap_or("unversioned")) }
                        dt { "Tenant / user" } dd { (who) }
                        dt { "Operation · tier" } dd { (e.operation) " · " (e.service_tier) }
                        dt { "Attempts" } dd { "usage from attempt " (e.attempt) " of " (e.attempts) }
                        dt { "Environment · data" } dd { (e.environment) " · " (e.data_mode) }
                        @if let Some(code) = &e.error_code { dt { "Error code" } dd { code { (code) } } }
                        @if e.usage_missing { dt { "Usage" } dd { span.badge.warn { "missing: tokens unknown" } } }
                        @if !e.tags.is_empty() {
                            dt { "Tags" } dd { @for (k, v) in &e.tags { code { (k) "=" (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())) } " " } }
                        }
                    }
                }
            }
        }
    }
}

fn breakdown(e: &StoredEvent, entry: Option<&PriceEntry>) -> Markup {
    if e.cost_source == Some("client") {
        return html! {
            p { "Cost reported by the client (the provider's own figure): " (money_opt_or(e.cost_usd)) "." }
            @if let Some(id) = &e.price_entry_id { p.muted { "Catalogue entry for reference: " code { (id) } } }
        };
    }
    let Some(id) = &e.price_entry_id else {
        return html! {
            p { span.badge.warn { "unpriced" } " No price entry matched " code { (e.provider) "/" (e.model) }
                " at this time, so the call counts in requests but not in spend. Run " code { "burnrate prices check" } "." }
        };
    };
    let Some(entry) = entry else {
        return html! {
            p { "Priced with " code { (id) } " (" (money_opt_or(e.cost_usd)) "); that entry is no longer in the loaded price book, so the parts cannot be shown." }
        };
    };
    let tier = ServiceTier::parse(e.service_tier).unwrap_or(ServiceTier::Standard);
    let tokens = tokens_of(e);
    let parts = price::cost(entry, tier, &tokens, e.image_count);
    let rates = price::cost::applied_rates(entry, tier, tokens.input).ok();
    let Ok(b) = parts else {
        return html! { p { "The entry " code { (id) } " has no rate for the " (e.service_tier) " tier." } };
    };
    let uncached = tokens
        .input
        .saturating_sub(tokens.cached + tokens.cache_write);
    let plain_output = tokens.output.saturating_sub(tokens.reasoning);
    let rows: Vec<(&str, String, String, Usd)> = [
        (
            "Input (uncached)",
            uncached,
            rates.map(|r| r.input),
            b.input,
        ),
        (
            "Cached input",
            tokens.cached,
            rates.map(|r| r.cached_input),
            b.cached_input,
        ),
        (
            "Cache write",
            tokens.cache_write,
            rates.map(|r| r.cache_write),
            b.cache_write,
        ),
        ("Output", plain_output, rates.map(|r| r.output), b.output),
        (
            "Reasoning",
            tokens.reasoning,
            rates.map(|r| r.reasoning),
            b.reasoning,
        ),
    ]
    .into_iter()
    .filter(|(_, n, _, cost)| *n > 0 || cost.0 > 0)
    .map(|(label, n, rate, cost)| {
        (
            label,
            format::int(n),
            rate.map(|r| format!("${r}")).unwrap_or_default(),
            cost,
        )
    })
    .chain((b.images.0 > 0).then(|| {
        (
            "Images",
            e.image_count.to_string(),
            entry
                .per_image
                .map(|p| format!("${p} each"))
                .unwrap_or_default(),
            b.images,
        )
    }))
    .chain((b.request.0 > 0).then(|| {
        (
            "Per request",
            "1".to_string(),
            entry
                .per_request
                .map(|p| format!("${p}"))
                .unwrap_or_default(),
            b.request,
        )
    }))
    .collect();
    let differs = e.cost_usd.is_some_and(|c| c != b.total);
    html! {
        table.bd {
            thead { tr { th { "Part" } th { "Tokens" } th { "Rate / 1M" } th { "Cost" } } }
            tbody {
                @for (label, n, rate, cost) in &rows {
                    tr { td { (label) } td.num { (n) } td.num.muted { (rate) } td.num { (money(*cost)) } }
                }
                tr.total { td { "Total" } td {} td {} td.num data-breakdown-total=(b.total.to_string()) { (money(b.total)) } }
            }
        }
        @if differs {
            p.muted { "Stored cost " (money_opt_or(e.cost_usd)) " differs: it was computed when the event was written." }
        }
        dl.kv style="margin-top:10px" {
            dt { "Price entry" } dd { code data-price-entry=(id) { (id) } }
            dt { "Book version" } dd { (e.price_book_version.as_deref().unwrap_or(&entry.book_version)) }
            dt { "Effective from" } dd.tnum {
                @if entry.effective_from_ms == 0 { "the first price of this model" } @else { (format::rfc3339(entry.effective_from_ms)) }
            }
            dt { "Tier · band" } dd { (e.service_tier) @if b.band_above > 0 { " · above " (format::int(b.band_above)) " input tokens" } }
            dt { "Source" } dd { @if entry.source.is_empty() { span.faint { "—" } } @else { (entry.source) } }
        }
    }
}

fn money_opt_or(u: Option<Usd>) -> Markup {
    super::money_opt(u)
}
