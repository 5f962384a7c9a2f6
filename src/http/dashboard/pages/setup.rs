//! Setup: walks a new workspace from "no event yet" (the curl line of a first event) to
//! "first priced event" to "attribution complete", with the tracking-quality checks of
//! GET /v1/quality and `burnrate doctor`.

use super::{heading, page_handler};
use crate::http::dashboard::{format, Ctx, Page, PageResult};
use crate::quality::{Report, Stage, Status, TARGET};
use maud::{html, Markup};

page_handler!(page, Page::Setup, body);

/// A first event as the README and the first start show it, for this workspace's URL.
fn first_event_curl(base: &str) -> String {
    format!(
        "curl -sS {base}/v1/ingest/llm-request -H \"X-API-Key: $BURNRATE_API_KEY\" \\\n  \
         -H 'Content-Type: application/json' \\\n  \
         -d '{{\"externalRequestId\":\"hello-1\",\"provider\":\"openai\",\"model\":\"gpt-4o-mini\",\
         \"endpointTag\":\"hello.world\",\"tenantId\":\"acme\",\"promptVersion\":\"hello_v1\",\
         \"inputTokens\":1200,\"outputTokens\":300,\"status\":\"success\"}}'"
    )
}

async fn body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let privacy = Some(ctx.state.metrics.privacy_counts(ctx.ws()));
    let r =
        crate::report::quality::quality(ctx.state.store.as_ref(), ctx.ws(), &q, privacy).await?;
    Ok(html! {
        (heading("Setup", html! {
            "From the first event to complete attribution, and how well this window's traffic is tracked (also "
            code { "GET /v1/quality" } " and " code { "burnrate doctor" } ")."
        }))
        (stages(ctx, &r))
        @if r.events > 0 { (checks(&r)) (endpoints(&r)) }
    })
}

/// Each step's state (first event, first priced event, attribution complete) at `now`.
fn states(now: Stage) -> [&'static str; 3] {
    match now {
        Stage::NoEvents => ["current", "todo", "todo"],
        Stage::Unpriced => ["done", "current", "todo"],
        Stage::Priced => ["done", "done", "current"],
        Stage::Complete => ["done", "done", "done"],
    }
}

fn stages(ctx: &Ctx, r: &Report) -> Markup {
    let target = format!("{:.0}%", TARGET * 100.0);
    let mark = |s: &str| match s {
        "done" => html! { span.badge.good { "done" } },
        "current" => html! { span.badge.warn { "next" } },
        _ => html! { span.badge { "to do" } },
    };
    let [first, first_priced, complete] = states(r.stage);
    html! {
        div.card #setup-stages data-stage=(stage_name(r.stage)) {
            div data-step="first-event" data-state=(first) {
                h2 { "1. Send a first event " (mark(first)) }
                @if r.stage == Stage::NoEvents {
                    p { "No event in this window yet. Create an ingest key ("
                        code { "burnrate keys create --scope ingest" } "), put it in "
                        code { "BURNRATE_API_KEY" } " and send one:" }
                }
                pre.code.curl { (first_event_curl(ctx.state.alerts.public_url())) }
                @if r.stage == Stage::NoEvents {
                    p.faint { "This page counts the window and filters above (environment prod, dataMode real unless changed): events sent with another "
                        code { "environment" } " or " code { "dataMode" } " show under those filters." }
                }
            }
            div data-step="first-priced" data-state=(first_priced) {
                h2 { "2. First priced event " (mark(first_priced)) }
                @match r.stage {
                    Stage::NoEvents => p.faint { "Once events arrive, each gets its cost from the price book." },
                    Stage::Unpriced => p { "Events arrive but none has a price: check the "
                        a href=(ctx.link(Page::Models, &[])) { "Models" }
                        " page for unpriced models, and that successful calls report usage." },
                    _ => p { (format::int(r.shares.priced.with)) " of " (format::int(r.events)) " events are priced." },
                }
            }
            div data-step="complete" data-state=(complete) {
                h2 { "3. Attribution complete " (mark(complete)) }
                p {
                    "At least " (target) " of events carry a " code { "tenantId" } " and a " code { "promptVersion" }
                    @if r.events > 0 {
                        ": now " (format::ratio(r.shares.tenant_id.share)) " and " (format::ratio(r.shares.prompt_version.share))
                    }
                    "."
                }
            }
        }
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::NoEvents => "no_events",
        Stage::Unpriced => "unpriced",
        Stage::Priced => "priced",
        Stage::Complete => "complete",
    }
}

fn checks(r: &Report) -> Markup {
    let badge = |s: Status| match s {
        Status::Pass => html! { span.badge.good { "pass" } },
        Status::Warn => html! { span.badge.warn { "warn" } },
        Status::Fail => html! { span.badge.bad { "fail" } },
    };
    html! {
        div.card #quality-checks {
            div.card-head {
                h2 { "Tracking quality" }
                @if let Some(score) = r.score { span.badge data-score=(score) { "score " (score) "/100" } }
            }
            table.t {
                thead { tr { th { "Check" } th { "Status" } th { "Detail" } } }
                tbody {
                    @for c in &r.checks {
                        tr data-check=(c.id) data-status=(c.status.as_str()) {
                            td { code { (c.id) } } td { (badge(c.status)) } td { (c.detail) }
                        }
                    }
                }
            }
        }
    }
}

fn endpoints(r: &Report) -> Markup {
    html! {
        div.card.scroll #quality-endpoints {
            table.t {
                thead { tr {
                    th { "Endpoint" } th.num { "Events" } th.num { "externalRequestId" } th.num { "tenantId" }
                    th.num { "promptVersion" } th.num { "Usage" } th.num { "Priced" }
                } }
                tbody {
                    @for e in &r.endpoints {
                        tr data-endpoint=(e.endpoint_tag) {
                            td.name { code { (e.endpoint_tag) } }
                            td.num { (format::int(e.events)) }
                            @for s in [e.shares.external_request_id, e.shares.tenant_id, e.shares.prompt_version, e.shares.usage, e.shares.priced] {
                                td.num { (format::ratio(s.share)) }
                            }
                        }
                    }
                }
            }
            @if r.endpoints_cut > 0 { p.faint { (format::int(r.endpoints_cut as u64)) " more endpoint tags not listed." } }
        }
    }
}
