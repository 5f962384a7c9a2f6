//! Prompt versions: per endpoint, the current version against its baseline (the one
//! before it, or `baseline=`), regressions (largest cost/request increase) first.

use super::{delta, heading, money_opt, no_data, page_handler, Sense};
use crate::http::dashboard::{format, Ctx, Page, PageResult};
use crate::report::{self, VersionComparison, VersionStats};
use maud::{html, Markup};

page_handler!(page, Page::Versions, body);

/// A rise of cost per request from which a version is flagged as a regression.
const REGRESSION_PCT: f64 = 10.0;

fn first_seen(v: &VersionStats) -> String {
    format::parse_ms(&v.first_seen)
        .map(format::time)
        .unwrap_or_default()
}

async fn body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let baseline = ctx.view.own("baseline");
    let list = report::prompt_versions(ctx.state.store.as_ref(), ctx.ws(), &q, baseline).await?;
    let title = heading(
        "Prompt versions",
        html! {
            "Per endpoint, the newest prompt version against "
            @if let Some(b) = baseline { "version " b { (b) } } @else { "the one before it" }
            ". Regressions first."
        },
    );
    if list.is_empty() {
        return Ok(html! { (title) (no_data(ctx, &q).await?) });
    }
    let notes = crate::deploy::list(ctx.state.store.as_ref(), ctx.ws(), None).await?;
    // The download links ask the API the same question: the same baseline, if chosen.
    let own: Vec<(&str, &str)> = baseline.iter().map(|b| ("baseline", *b)).collect();
    let mut every = own.clone();
    every.push(("table", "versions"));
    let single = list.iter().all(|c| c.baseline.is_none());
    let regressions = list.iter().filter(|c| is_regression(c)).count();
    Ok(html! {
        (title)
        @if regressions > 0 {
            div.callout {
                span { b { (regressions) } " endpoint" (if regressions == 1 { "" } else { "s" })
                    " got more expensive per request with the current version (+" (REGRESSION_PCT) "% or more)." }
            }
        }
        @if single {
            div.callout.info {
                span { "Only one version per endpoint in this window, so there is nothing to compare with." }
                a.go href=(ctx.view.link(Page::Versions.path(), true, &[("range", Some("30d")), ("from", None), ("to", None)])) { "Look at 30 days →" }
            }
        }
        div.card.scroll {
            table.t #versions-table {
                thead { tr {
                    th { "Endpoint" } th { "Current version" } th { "Baseline" }
                    th.num { "Cost / req" } th.num { "Change" }
                    th.num { "Input tok / req" } th.num { "Output tok / req" } th.num { "Cache hit" }
                    th.num { "Errors" } th.num { "Latency" } th.num { "Requests" } th {}
                } }
                tbody {
                    @for c in &list {
                        (row(ctx, c, &notes))
                    }
                }
            }
        }
        (super::api_csv_link(ctx, "/v1/prompt-versions", Some(&q), &own, "Download CSV"))
        (super::api_csv_link(ctx, "/v1/prompt-versions", Some(&q), &every, "Download CSV (every version)"))
    })
}

fn is_regression(c: &VersionComparison) -> bool {
    c.delta
        .as_ref()
        .and_then(|d| d.cost_per_request_pct)
        .is_some_and(|p| p >= REGRESSION_PCT)
}

/// A measure of the current version with its change vs the baseline underneath.
fn measure(value: String, change: Option<f64>, sense: Sense) -> Markup {
    html! {
        td.num {
            (value)
            @if change.is_some() { div.small { (delta(change, sense)) } }
        }
    }
}

/// The deploy note that put this version live: one naming it for this endpoint (or for
/// every endpoint), whenever it was written.
fn note_of<'a>(
    notes: &'a [crate::deploy::DeployNote],
    c: &VersionComparison,
) -> Option<&'a crate::deploy::DeployNote> {
    notes
        .iter()
        .filter(|n| n.prompt_version.as_deref() == Some(c.current.prompt_version.as_str()))
        .filter(|n| {
            n.endpoint_tag
                .as_deref()
                .is_none_or(|e| e == c.endpoint_tag)
        })
        .max_by_key(|n| (n.time_ms, n.id))
}

fn row(ctx: &Ctx, c: &VersionComparison, notes: &[crate::deploy::DeployNote]) -> Markup {
    let cur = &c.current;
    let d = c.delta.as_ref();
    let pick = |f: fn(&report::VersionDelta) -> Option<f64>| d.and_then(f);
    html! {
        tr class=(if is_regression(c) { "regress" } else { "" }) data-endpoint=(c.endpoint_tag) {
            td.name {
                a href=(ctx.link(Page::Tenants, &[("endpointTag", Some(&c.endpoint_tag))])) { (c.endpoint_tag) }
                @if is_regression(c) { " " span.badge.bad { "regression" } }
            }
            td {
                code { (cur.prompt_version) } div.small.faint.tnum { "since " (first_seen(cur)) }
                @if let Some(n) = note_of(notes, c) {
                    div.small.deploy-note title=(format::time(n.time_ms)) {
                        "“" (n.note) "”" @if let Some(a) = &n.author { " — " (a) }
                    }
                }
            }
            td {
                @match &c.baseline {
                    Some(b) => { code { (b.prompt_version) } div.small.faint.tnum { (format::int(b.stats.requests)) " requests" } }
                    None => span.faint title="No earlier version in this window" { "—" }
                }
            }
            td.num data-col="cpr" {
                (money_opt(cur.stats.cost_per_request))
                @if let Some(b) = &c.baseline { div.small.faint { "was " (money_opt(b.stats.cost_per_request)) } }
            }
            td.num.big-delta { (delta(pick(|d| d.cost_per_request_pct), Sense::UpIsBad)) }
            (measure(format::count(cur.stats.input_tokens_per_request), pick(|d| d.input_tokens_per_request_pct), Sense::UpIsBad))
            (measure(format::count(cur.stats.output_tokens_per_request), pick(|d| d.output_tokens_per_request_pct), Sense::UpIsBad))
            (measure(format::ratio(cur.stats.cache_hit_rate), pick(|d| d.cache_hit_rate_pct), Sense::UpIsGood))
            (measure(format::ratio(cur.stats.error_rate), pick(|d| d.error_rate_pct), Sense::UpIsBad))
            (measure(cur.stats.latency_avg_ms.map(|ms| format::duration(ms.round() as i64)).unwrap_or_else(|| "—".into()), pick(|d| d.latency_avg_ms_pct), Sense::UpIsBad))
            td.num { (format::int(cur.stats.requests)) }
            td.links { a href=(ctx.link(Page::Requests, &[("endpointTag", Some(&c.endpoint_tag)), ("promptVersion", Some(&cur.prompt_version))])) { "requests" } }
        }
        @if c.versions.len() > 2 || (c.versions.len() > 1 && c.baseline.as_ref().is_some_and(|b| b.prompt_version != c.versions[1].prompt_version)) {
            tr.versions {
                td colspan="12" style="padding-top:0" {
                    details {
                        summary.muted style="cursor:pointer;font-size:12.5px" { "All " (c.versions.len()) " versions of " (c.endpoint_tag) }
                        table.t style="margin:6px 0 4px" {
                            thead { tr { th { "Version" } th { "First seen" } th.num { "Requests" } th.num { "Cost / req" } th.num { "Tokens / req" } th {} } }
                            tbody {
                                @for v in &c.versions {
                                    tr {
                                        td { code { (v.prompt_version) } }
                                        td.tnum { (first_seen(v)) }
                                        td.num { (format::int(v.stats.requests)) }
                                        td.num { (money_opt(v.stats.cost_per_request)) }
                                        td.num { (format::count(v.stats.tokens_per_request)) }
                                        td.links { a href=(ctx.link(Page::Versions, &[("baseline", Some(&v.prompt_version))])) { "use as baseline" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
