//! Explain: why spend changed between this window and the one before (or a baseline from
//! the URL), as the summary paragraph with the table behind every sentence: totals,
//! drivers, each dimension's groups, and what changed inside the top endpoints.

use super::{heading, money, money_opt, page_handler};
use crate::explain::{DimensionChange, EndpointFindings, Explanation, MixRow, Pair, Presence};
use crate::http::dashboard::view::View;
use crate::http::dashboard::{format, Ctx, Page, PageError, PageResult};
use crate::money::Usd;
use crate::report::explain::{ExplainError, ExplainRequest};
use maud::{html, Markup};

page_handler!(page, Page::Explain, body);

/// Groups shown per dimension.
const GROUPS: usize = 10;

/// The Explain page's URL for a window and a scope (filters such as endpointTag or
/// tenantId), optionally against a given baseline: what an alert or a chart links to.
pub fn explain_url(
    from_ms: i64,
    to_ms: i64,
    baseline: Option<(i64, i64)>,
    scope: &[(&str, &str)],
) -> String {
    let (from, to) = (format::rfc3339(from_ms), format::rfc3339(to_ms));
    let mut set: Vec<(&str, Option<&str>)> = vec![("from", Some(&from)), ("to", Some(&to))];
    let base = baseline.map(|(f, t)| (format::rfc3339(f), format::rfc3339(t)));
    if let Some((f, t)) = &base {
        set.push(("baselineFrom", Some(f)));
        set.push(("baselineTo", Some(t)));
    }
    set.extend(scope.iter().map(|(k, v)| (*k, Some(*v))));
    View::default().link(Page::Explain.path(), false, &set)
}

fn time_of(ctx: &Ctx, name: &str) -> Result<Option<i64>, PageError> {
    match ctx.view.own(name) {
        None => Ok(None),
        Some(t) => crate::http::dashboard::view::parse_time(t)
            .map(Some)
            .ok_or_else(|| {
                PageError::Bad(format!(
                    "{name} must be a date-time, e.g. 2026-01-31T00:00:00Z"
                ))
            }),
    }
}

async fn body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let request = ExplainRequest::new(
        q,
        time_of(ctx, "baselineFrom")?,
        time_of(ctx, "baselineTo")?,
        ctx.view.own("by"),
    )
    .map_err(bad)?;
    let e = crate::report::explain::explain(ctx.state.store.as_ref(), ctx.ws(), &request)
        .await
        .map_err(bad)?;
    Ok(html! {
        (heading("Explain", html! { "Why spend changed: this window against the baseline, split into volume and cost per request. Every sentence has its table below." }))
        (controls(ctx))
        div.card #explain-summary {
            p data-summary style="font-size:15px;line-height:1.55;margin:0" { (e.summary) }
            p.muted.small style="margin-top:8px" { "Method: " (e.method) "." }
        }
        (totals(&e))
        (drivers(&e))
        (csv_link(ctx, &request, "drivers", "Download CSV"))
        @for d in &e.dimensions {
            (dimension(ctx, d))
        }
        (csv_link(ctx, &request, "dimensions", "Download CSV (every dimension)"))
        @for f in &e.endpoints {
            (endpoint(ctx, f))
        }
        @if !e.endpoints.is_empty() {
            (csv_link(ctx, &request, "endpoints", "Download CSV (endpoints)"))
            (csv_link(ctx, &request, "mix", "Download CSV (prompt versions and models)"))
        }
    })
}

/// "Download CSV" of one table of `/v1/explain` for the request this page answered:
/// its window and filters, its dimensions and its baseline as absolute times.
fn csv_link(ctx: &Ctx, request: &ExplainRequest, table: &str, label: &str) -> Markup {
    let by: Vec<String> = request.by.iter().map(|d| d.name()).collect();
    let by = by.join(",");
    let (from, to) = (
        format::rfc3339(request.baseline.0),
        format::rfc3339(request.baseline.1),
    );
    let extra = [
        ("by", by.as_str()),
        ("baselineFrom", from.as_str()),
        ("baselineTo", to.as_str()),
        ("table", table),
    ];
    super::api_csv_link(ctx, "/v1/explain", Some(&request.window), &extra, label)
}

fn bad(e: ExplainError) -> PageError {
    match e {
        ExplainError::Field { field, message } => PageError::Bad(format!("{field} {message}")),
        ExplainError::Store(e) => e.into(),
    }
}

/// The page's own settings: the dimensions and a baseline other than the window before.
fn controls(ctx: &Ctx) -> Markup {
    let v = &ctx.view;
    html! {
        form.card method="get" action=(Page::Explain.path()) style="display:flex;gap:14px;align-items:end;flex-wrap:wrap" {
            @for (name, value) in v.pairs(false) {
                input type="hidden" name=(name) value=(value);
            }
            label.field { span { "Split by" }
                input type="text" name="by" value=(v.own("by").unwrap_or(crate::report::explain::DEFAULT_BY)) size="44" spellcheck="false"; }
            label.field { span { "Baseline from (UTC)" }
                input.time type="text" name="baselineFrom" value=(v.own("baselineFrom").unwrap_or("")) placeholder="the window before"; }
            label.field { span { "Baseline to (UTC)" }
                input.time type="text" name="baselineTo" value=(v.own("baselineTo").unwrap_or("")) placeholder="the window before"; }
            button.btn type="submit" { "Explain" }
        }
    }
}

fn signed(u: Usd) -> Markup {
    let text = if u.0 > 0 {
        format!("+{}", format::usd(u))
    } else if u.0 < 0 {
        format!("−{}", format::usd(Usd(-u.0)))
    } else {
        format::usd(u)
    };
    html! { span data-usd=(u.to_string()) class=(if u.0 > 0 { "d bad" } else if u.0 < 0 { "d good" } else { "d flat" }) { (text) } }
}

fn pct(p: Option<f64>) -> String {
    p.map_or("—".into(), |p| format!("{p:.0}%"))
}

fn totals(e: &Explanation) -> Markup {
    let (b, c) = (&e.baseline, &e.current);
    let window = |t: &crate::explain::Totals| {
        let (f, to) = (
            format::parse_ms(&t.from).unwrap_or(0),
            format::parse_ms(&t.to).unwrap_or(0),
        );
        format!("{} – {}", format::time(f), format::time(to))
    };
    html! {
        div.card.scroll {
            div.card-head { h2 { "Totals" } span.muted { "baseline " (window(b)) " · current " (window(c)) " UTC" } }
            table.t #explain-totals data-change-usd=(e.change_usd.to_string()) {
                thead { tr { th {} th.num { "Baseline" } th.num { "Current" } th.num { "Change" } } }
                tbody {
                    tr data-row="cost" { td { "Spend" } td.num { (money(b.cost_usd)) } td.num { (money(c.cost_usd)) } td.num { (signed(e.change_usd)) } }
                    tr { td { "Requests" } td.num { (format::int(b.requests)) } td.num { (format::int(c.requests)) } td.num { (format::change(crate::report::change_pct(c.requests as f64, b.requests as f64))) } }
                    tr { td { "Cost / request" } td.num { (money_opt(b.cost_per_request)) } td.num { (money_opt(c.cost_per_request)) } td {} }
                    tr { td { "Tokens / request" } td.num { (format::count(b.tokens_per_request)) } td.num { (format::count(c.tokens_per_request)) } td {} }
                    tr { td { "Retry ratio" } td.num { (format::ratio(b.retry_ratio)) } td.num { (format::ratio(c.retry_ratio)) } td.num { (format::change_pp(c.retry_ratio, b.retry_ratio)) } }
                    tr { td { "Error share" } td.num { (format::ratio(b.error_share)) } td.num { (format::ratio(c.error_share)) } td.num { (format::change_pp(c.error_share, b.error_share)) } }
                    tr { td { "Cache hit rate" } td.num { (format::ratio(b.cache_hit_rate)) } td.num { (format::ratio(c.cache_hit_rate)) } td.num { (format::change_pp(c.cache_hit_rate, b.cache_hit_rate)) } }
                    tr data-row="volume" { td { "Volume effect" } td {} td {} td.num { (signed(e.effects.volume_usd)) } }
                    tr data-row="cost-per-request" { td { "Cost / request effect" } td {} td {} td.num { (signed(e.effects.cost_per_request_usd)) } }
                }
            }
        }
    }
}

fn drivers(e: &Explanation) -> Markup {
    html! {
        div.card.scroll {
            div.card-head { h2 { "Drivers" } span.muted { "the findings that explain most of the change; shares of different dimensions overlap" } }
            @if e.drivers.is_empty() {
                p.muted { "No single group explains a notable part of the change." }
            } @else {
                table.t #drivers {
                    thead { tr { th { "#" } th { "Kind" } th { "Where" } th.num { "Contribution" } th.num { "Share" } th { "Finding" } } }
                    tbody {
                        @for (i, d) in e.drivers.iter().enumerate() {
                            tr data-kind=(d.kind.as_str()) data-dimension=(d.dimension) data-value=(d.value) {
                                td.num { (i + 1) }
                                td { span.badge { (d.kind.as_str()) } }
                                td.name {
                                    a href=(format!("#dim-{}", d.dimension)) { (d.dimension) " = " code { (d.value) } }
                                    @if let Some(ep) = &d.endpoint_tag { div.small.faint { "on " a href=(format!("#endpoint-{ep}")) { (ep) } } }
                                }
                                td.num data-col="contribution" { (signed(d.contribution_usd)) }
                                td.num { (pct(d.contribution_pct)) }
                                td { (d.sentence) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A link to the page that shows one group of a dimension on its own.
fn group_link(ctx: &Ctx, dimension: &str, value: &str) -> String {
    let page = match dimension {
        "endpointTag" | "tenantId" => Page::Tenants,
        "promptVersion" => Page::Versions,
        "model" => Page::Models,
        _ => Page::Requests,
    };
    ctx.link(page, &[(dimension, Some(value))])
}

fn dimension(ctx: &Ctx, d: &DimensionChange) -> Markup {
    html! {
        div.card.scroll id=(format!("dim-{}", d.dimension)) {
            div.card-head {
                h2 { "By " (d.dimension) }
                span.muted { "change " (signed(d.change_usd)) " = volume " (signed(d.split.volume_usd)) " + cost/request " (signed(d.split.cost_per_request_usd)) " + new " (signed(d.new_usd)) " + vanished " (signed(d.vanished_usd)) }
            }
            table.t data-dimension=(d.dimension) {
                thead { tr {
                    th { (d.dimension) } th.num { "Baseline" } th.num { "Current" } th.num { "Change" } th.num { "Share of change" }
                    th.num { "Volume effect" } th.num { "Cost/req effect" } th.num { "Requests" } th.num { "Cost / req" }
                } }
                tbody {
                    @for g in d.groups.iter().take(GROUPS) {
                        tr data-key=(g.value) {
                            td.name {
                                a href=(group_link(ctx, &d.dimension, &g.value)) { (g.value) }
                                @match g.presence {
                                    Presence::New => { " " span.badge.warn { "new" } }
                                    Presence::Vanished => { " " span.badge { "gone" } }
                                    Presence::Both => {}
                                }
                            }
                            td.num { (super::money_with_unpriced(g.cost_usd.baseline, g.unpriced.baseline)) }
                            td.num { (super::money_with_unpriced(g.cost_usd.current, g.unpriced.current)) }
                            td.num data-col="change" { (signed(g.change_usd)) }
                            td.num { (pct(g.share_of_change_pct)) }
                            @if g.presence == Presence::Both {
                                td.num { (signed(g.split.volume_usd)) }
                                td.num { (signed(g.split.cost_per_request_usd)) }
                            } @else {
                                td.num.faint { "—" } td.num.faint { "—" }
                            }
                            td.num { (format::int(g.requests.baseline)) " → " (format::int(g.requests.current)) }
                            td.num { (money_opt(g.cost_per_request.baseline)) " → " (money_opt(g.cost_per_request.current)) }
                        }
                    }
                }
            }
            @if d.groups.len() > GROUPS { p.muted.small { (d.groups.len() - GROUPS) " smaller groups not shown (the JSON API has them all)." } }
        }
    }
}

fn ratio_row(name: &str, p: &Pair<Option<f64>>) -> Markup {
    html! { tr { td { (name) } td.num { (format::ratio(p.baseline)) } td.num { (format::ratio(p.current)) } td.num { (format::change_pp(p.current, p.baseline)) } } }
}

fn count_row(name: &str, p: &Pair<Option<f64>>) -> Markup {
    let change = match (p.baseline, p.current) {
        (Some(b), Some(c)) => crate::report::change_pct(c, b),
        _ => None,
    };
    html! { tr { td { (name) } td.num { (format::count(p.baseline)) } td.num { (format::count(p.current)) } td.num { (format::change(change)) } } }
}

fn mix_table(title: &str, rows: &[MixRow], versions: bool) -> Markup {
    html! {
        table.t style="margin-top:10px" {
            thead { tr {
                th { (title) } @if versions { th { "First seen" } }
                th.num { "Share before" } th.num { "Share now" } th.num { "Cost / req before" } th.num { "Cost / req now" }
            } }
            tbody {
                @for r in rows {
                    tr data-key=(r.value) {
                        td { code { (r.value) } @if r.new_in_window { " " span.badge.warn { "new in window" } } }
                        @if versions { td.tnum { (r.first_seen.as_deref().and_then(format::parse_ms).map(format::time).unwrap_or_default()) } }
                        td.num { (format::ratio(r.share.baseline)) }
                        td.num { (format::ratio(r.share.current)) }
                        td.num { (money_opt(r.cost_per_request.baseline)) }
                        td.num { (money_opt(r.cost_per_request.current)) }
                    }
                }
            }
        }
    }
}

fn endpoint(ctx: &Ctx, f: &EndpointFindings) -> Markup {
    html! {
        div.card.scroll id=(format!("endpoint-{}", f.endpoint_tag)) data-endpoint=(f.endpoint_tag) {
            div.card-head {
                h2 { "Inside " (f.endpoint_tag) }
                span.muted { "change " (signed(f.change_usd)) " = volume " (signed(f.split.volume_usd)) " + cost/request " (signed(f.split.cost_per_request_usd)) }
                @if let Some(c) = &f.cause { span.badge.bad { "cause: " (c.kind.as_str()) " " (c.value) } }
                div.right { a href=(ctx.link(Page::Versions, &[("endpointTag", Some(&f.endpoint_tag))])) { "Prompt versions →" } }
            }
            table.t {
                thead { tr { th {} th.num { "Baseline" } th.num { "Current" } th.num { "Change" } } }
                tbody {
                    tr { td { "Requests" } td.num { (format::int(f.requests.baseline)) } td.num { (format::int(f.requests.current)) } td.num { (format::change(crate::report::change_pct(f.requests.current as f64, f.requests.baseline as f64))) } }
                    tr { td { "Cost / request" } td.num { (money_opt(f.cost_per_request.baseline)) } td.num { (money_opt(f.cost_per_request.current)) } td {} }
                    (ratio_row("Retry ratio", &f.retry_ratio))
                    (ratio_row("Error share", &f.error_share))
                    (ratio_row("Cache hit rate", &f.cache_hit_rate))
                    (count_row("Input tokens / request", &f.input_tokens_per_request))
                    (count_row("Output tokens / request", &f.output_tokens_per_request))
                }
            }
            (mix_table("Prompt version", &f.prompt_versions, true))
            (mix_table("Model", &f.models, false))
        }
    }
}
