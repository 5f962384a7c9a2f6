//! The frame of every page: header with navigation, the filter bar, the freshness line.

use super::view::{View, FILTERS, PRESETS};
use super::{format, style, Ctx, Page};
use crate::store::Freshness;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The HTML document around `content`.
pub fn shell(title: &str, nonce: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · burnrate" }
                style { (PreEscaped(style::CSS)) }
            }
            body {
                (content)
                script nonce=(nonce) { (PreEscaped(style::JS)) }
            }
        }
    }
}

/// A dashboard page: header, filters, freshness, then the page's body.
/// What the freshness line shows: the newest event and, when retention pruned raw
/// events, from when they exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fresh {
    pub newest: Option<Freshness>,
    pub raw_from_ms: Option<i64>,
}

pub fn page(ctx: &Ctx, fresh: Fresh, body: Markup) -> Markup {
    let content = html! {
        header.top {
            div.wrap {
                a.brand href=(ctx.link(Page::Overview, &[])) { span.flame {} "burnrate" }
                nav.tabs {
                    @for p in Page::ALL.iter().filter(|p| p.in_nav()) {
                        a class=(if *p == ctx.page { "on" } else { "" }) href=(ctx.link(*p, &[])) { (p.title()) }
                    }
                }
                span.who { (ctx.key.scope.as_str()) " key" }
                form method="post" action="/logout" {
                    button.linkbtn type="submit" { "Log out" }
                }
            }
        }
        (filter_bar(ctx, fresh))
        main {
            div.wrap { (body) }
        }
        footer {
            div.wrap { "burnrate · times in UTC · numbers as in the JSON API (/v1/top, /v1/timeseries, …) with the same parameters" }
        }
    };
    shell(ctx.page.title(), &ctx.nonce, content)
}

const ENVIRONMENTS: &[(&str, &str)] = &[
    ("prod", "prod"),
    ("staging", "staging"),
    ("dev", "dev"),
    ("prod,staging,dev", "all"),
];
const DATA_MODES: &[(&str, &str)] = &[
    ("real", "real"),
    ("test", "test"),
    ("demo", "demo"),
    ("real,test,demo", "all"),
];
/// Filters with a text box in the bar; the others show as chips when set.
const TEXT_FILTERS: &[(&str, &str)] = &[
    ("provider", "Provider"),
    ("model", "Model"),
    ("endpointTag", "Endpoint"),
    ("tenantId", "Tenant"),
];

fn filter_bar(ctx: &Ctx, fresh: Fresh) -> Markup {
    if !ctx.page.uses_window() {
        return html! {
            div.filters.bare { div.wrap { (freshness(ctx, fresh, None)) } }
        };
    }
    let v: &View = &ctx.view;
    let path = ctx.page.path();
    let preset = v.preset();
    let env = v.filter("environment").unwrap_or("prod");
    let mode = v.filter("dataMode").unwrap_or("real");
    let window = v.query(ctx.now).ok();
    let chips: Vec<&(String, String)> = v
        .filters
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "environment" | "dataMode"))
        .collect();
    html! {
        div.filters {
            div.wrap {
                form method="get" action=(path) {
                    div.field {
                        span { "Range" }
                        div.seg {
                            @for (name, _) in PRESETS {
                                a class=(if preset == Some(*name) { "on" } else { "" })
                                    href=(v.link(path, true, &[("range", Some(name)), ("from", None), ("to", None)])) { (name) }
                            }
                        }
                    }
                    @if let Some(p) = preset {
                        input type="hidden" name="range" value=(p);
                    }
                    label.field {
                        span { "From (UTC)" }
                        input.time type="text" name="from" placeholder="yyyy-mm-dd hh:mm" autocomplete="off"
                            value=(v.from.as_deref().and_then(super::view::parse_time).map(format::input_time).unwrap_or_default());
                    }
                    label.field {
                        span { "To (UTC)" }
                        input.time type="text" name="to" placeholder=(if preset.is_some() { "now" } else { "yyyy-mm-dd hh:mm" }) autocomplete="off"
                            value=(v.to.as_deref().and_then(super::view::parse_time).map(format::input_time).unwrap_or_default());
                    }
                    (picker(ctx, v, path))
                    div.field {
                        span { "Data" }
                        div.seg.mode {
                            @for (value, label) in DATA_MODES {
                                a class={ (if mode == *value { "on " } else { "" }) (label) }
                                    href=(v.link(path, true, &[("dataMode", if *value == "real" { None } else { Some(value) })]))
                                    data-mode=(label) { (label) }
                            }
                        }
                    }
                    @if mode != "real" {
                        input type="hidden" name="dataMode" value=(mode);
                    }
                    label.field {
                        span { "Environment" }
                        select name="environment" data-submit {
                            @for (value, label) in ENVIRONMENTS {
                                option value=(value) selected[env == *value] { (label) }
                            }
                            @if !ENVIRONMENTS.iter().any(|(val, _)| *val == env) {
                                option value=(env) selected { (env) }
                            }
                        }
                    }
                    @for (name, label) in TEXT_FILTERS {
                        label.field {
                            span { (label) }
                            input type="text" name=(name) value=(v.filter(name).unwrap_or("")) placeholder="any" autocomplete="off" spellcheck="false";
                        }
                    }
                    @for (name, value) in &v.filters {
                        @if !TEXT_FILTERS.iter().any(|(n, _)| n == name) && !matches!(name.as_str(), "environment" | "dataMode") {
                            input type="hidden" name=(name) value=(value);
                        }
                    }
                    @for (name, value) in v.hidden_own() {
                        input type="hidden" name=(name) value=(value);
                    }
                    button.btn type="submit" { "Apply" }
                }
                @if !chips.is_empty() {
                    div.chips {
                        span.muted { "Filtered by" }
                        @for (name, value) in &chips {
                            span.chip data-filter=(name) {
                                span { (label_of(name)) " = " b { (value) } }
                                a href=(v.link(path, true, &[(name.as_str(), None)])) title="Remove this filter" { "×" }
                            }
                        }
                        @let clear: Vec<(&str, Option<&str>)> = FILTERS.iter().filter(|n| !matches!(**n, "environment" | "dataMode")).map(|n| (*n, None)).collect();
                        a href=(v.link(path, true, &clear)) { "clear" }
                    }
                }
                (freshness(ctx, fresh, window.as_ref()))
            }
        }
    }
}

/// The date picker beside the typed fields: calendar presets (links, so they work
/// without JavaScript) and two day pickers that fill the typed fields (the end day is
/// included: `to` becomes the next midnight).
fn picker(ctx: &Ctx, v: &View, path: &str) -> Markup {
    html! {
        details.picker #picker {
            summary.btn.ghost { "Pick dates" }
            div.picker-menu {
                div.presets {
                    @for (label, from, to) in super::view::calendar_presets(ctx.now) {
                        @let (from, to) = (format::rfc3339(from), format::rfc3339(to));
                        a data-preset=(label) href=(v.link(path, true, &[("from", Some(&from)), ("to", Some(&to))])) { (label) }
                    }
                }
                div.days {
                    label { span { "First day" } input type="date" data-fill="from"; }
                    label { span { "Last day" } input type="date" data-fill="to"; }
                    span.faint { "fills the fields; Apply shows it" }
                }
            }
        }
    }
}

fn label_of(name: &str) -> &str {
    match name {
        "endpointTag" => "endpoint",
        "tenantId" => "tenant",
        "userId" => "user",
        "promptVersion" => "prompt version",
        other => other,
    }
}

fn freshness(ctx: &Ctx, fresh: Fresh, window: Option<&crate::query::Query>) -> Markup {
    html! {
        div.fresh {
            @match fresh.newest {
                Some(f) => {
                    @let age = ctx.now - f.newest_event_ms;
                    span data-freshness {
                        span.dot.stale[age > 3_600_000] {}
                        "Newest event " b.tnum { (format::time(f.newest_event_ms)) " UTC" }
                        " (" (if age < 60_000 { "just now".to_string() } else { format!("{} ago", format::duration(age)) }) ")"
                    }
                    span title="How long the most recently received event took to arrive after it happened" { "Ingest lag " b.tnum { (format::duration(f.ingest_lag_ms)) } }
                }
                None => span { span.dot.stale {} "No events in this workspace yet" }
            }
            @if let Some(w) = window {
                span data-window-from=(format::rfc3339(w.from_ms)) data-window-to=(format::rfc3339(w.to_ms)) {
                    "Window " b.tnum { (format::time(w.from_ms)) " – " (format::time(w.to_ms)) " UTC" }
                    " vs the previous " (format::span(w.to_ms - w.from_ms))
                }
            }
            @if let Some(from) = fresh.raw_from_ms {
                span data-raw-from=(format::rfc3339(from)) title="Retention pruned older raw events; totals and charts of older windows come from the kept rollups, while event lists, tag breakdowns and partial hours before this time count only what remains" {
                    "Raw events from " b.tnum { (format::time(from)) " UTC" } " (older pruned, totals kept)"
                }
            }
            span.right {
                label hidden { input #autorefresh type="checkbox"; "Auto-refresh every minute" }
            }
        }
    }
}

/// A problem box in place of a page's body.
pub fn problem(message: &str) -> Markup {
    html! {
        div.card {
            h2 { "This view could not be shown" }
            p.error { (message) }
            p.muted { "Fix the parameter in the filter bar or the URL; the names are those of the JSON API." }
        }
    }
}
