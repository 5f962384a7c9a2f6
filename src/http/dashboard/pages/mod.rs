//! One module per page, and what several pages share: deltas, money cells, share bars,
//! sparklines and the empty state.

pub mod alerts;
pub mod budgets;
pub mod explain;
pub mod login;
pub mod models;
pub mod overview;
pub mod reconciliation;
pub mod requests;
pub mod setup;
pub mod tenant;
pub mod top;
pub mod versions;

use super::{chart, format, Ctx, Page, PageError};
use crate::money::Usd;
use crate::query::{Bucket, Dimension, Query};
use maud::{html, Markup};
use std::collections::HashMap;

/// A page handler: check the session, read the URL, build the body, answer.
macro_rules! page_handler {
    ($name:ident, $page:expr, $body:path) => {
        pub async fn $name(
            axum::extract::State(state): axum::extract::State<
                std::sync::Arc<crate::http::state::HttpState>,
            >,
            headers: axum::http::HeaderMap,
            uri: axum::http::Uri,
            axum::extract::Query(params): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >,
        ) -> axum::response::Response {
            let ctx = match crate::http::dashboard::Ctx::load(state, &headers, &uri, &params, $page)
                .await
            {
                Ok(ctx) => ctx,
                Err(response) => return response,
            };
            let body = $body(&ctx).await;
            ctx.finish(body).await
        }
    };
}
pub(crate) use page_handler;

/// Whether a rise of a measure is bad news, good news or neither.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    UpIsBad,
    UpIsGood,
    Neutral,
}

fn tone(v: f64, sense: Sense, flat: f64) -> &'static str {
    if v.abs() < flat || sense == Sense::Neutral {
        "d flat"
    } else if (v > 0.0) == (sense == Sense::UpIsBad) {
        "d bad"
    } else {
        "d good"
    }
}

/// A percentage change, coloured by what it means.
pub fn delta(pct: Option<f64>, sense: Sense) -> Markup {
    match pct {
        Some(p) if p.is_finite() => {
            html! { span class=(tone(p, sense, 0.5)) { (format::change(Some(p))) } }
        }
        _ => html! { span.d.flat { "—" } },
    }
}

/// A change of a ratio in percentage points.
pub fn delta_pp(now: Option<f64>, before: Option<f64>, sense: Sense) -> Markup {
    match (now, before) {
        (Some(a), Some(b)) => html! {
            span class=(tone((a - b) * 100.0, sense, 0.05)) { (format::change_pp(Some(a), Some(b))) }
        },
        _ => html! { span.d.flat { "—" } },
    }
}

/// Money with its exact value alongside, for tests and copy-paste.
pub fn money(u: Usd) -> Markup {
    html! { span data-usd=(u.to_string()) { (format::usd(u)) } }
}

/// A group's money with its unpriced calls, as `money::with_unpriced` words it: what
/// every page shows for a group's spend, so that unknown never reads as $0.00. The exact
/// cost keeps its own `data-usd` element; the unpriced count follows it.
pub fn group_money(s: &crate::report::Stats) -> Markup {
    money_with_unpriced(s.cost_usd, s.unpriced)
}

pub fn money_with_unpriced(cost: Option<Usd>, unpriced: u64) -> Markup {
    use crate::money::{unpriced_only, unpriced_suffix};
    match cost {
        None => html! {
            span.badge.warn data-unpriced-calls=(unpriced) { (unpriced_only(unpriced)) }
        },
        Some(u) => html! {
            (money(u))
            @if unpriced > 0 {
                " " span.faint data-unpriced-calls=(unpriced) { (unpriced_suffix(unpriced)) }
            }
        },
    }
}

pub fn money_opt(u: Option<Usd>) -> Markup {
    match u {
        Some(u) => money(u),
        None => html! { span.faint { "—" } },
    }
}

/// Share of total as a bar and a number.
pub fn share(pct: Option<f64>) -> Markup {
    let w = pct.unwrap_or(0.0).clamp(0.0, 100.0);
    html! {
        div.share {
            div.bar { i style=(format!("width:{w:.1}%")) {} }
            span.tnum { (format::share(pct)) }
        }
    }
}

/// The bucket for sparklines of this window: hours up to three days, then days: a week of hourly points per row costs a rollup
/// read of 168 buckets per tenant for a line 80 pixels wide.
pub fn spark_bucket(q: &Query) -> Bucket {
    if (q.to_ms - q.from_ms) / Bucket::Hour.millis() <= 72 {
        Bucket::Hour
    } else {
        Bucket::Day
    }
}

/// Cost per bucket for each of `keys` of `dim` (a text dimension).
pub async fn sparks(
    ctx: &Ctx,
    q: &Query,
    dim: &Dimension,
    keys: &[String],
) -> Result<HashMap<String, Vec<i64>>, PageError> {
    let bucket = spark_bucket(q);
    let mut out = HashMap::new();
    // In batches: a filter of thousands of values would be one long SQL statement.
    for chunk in keys.chunks(100) {
        let store = ctx.state.store.as_ref();
        let series = crate::report::key_series(store, ctx.ws(), q, bucket, dim, chunk).await?;
        for s in series {
            out.insert(s.key, s.cost_usd.iter().map(|u| u.0).collect());
        }
    }
    Ok(out)
}

pub fn spark_cell(sparks: &HashMap<String, Vec<i64>>, key: &str) -> Markup {
    match sparks.get(key) {
        Some(v) => chart::sparkline(v, &format!("Spend of {key} over the window")),
        None => html! {},
    }
}

/// What to show when the view has no requests: where the data is instead (another data
/// mode or environment, or an earlier time), as links.
pub async fn no_data(ctx: &Ctx, q: &Query) -> Result<Markup, PageError> {
    let mut aq = q.clone();
    aq.filters.data_mode.clear();
    aq.filters.environment.clear();
    aq.group_by = vec![Dimension::DataMode, Dimension::Environment];
    aq.bucket = None;
    aq.order_by = Some(crate::query::Measure::Requests);
    aq.ascending = false;
    aq.limit = 20;
    let rows = ctx.state.store.aggregate(ctx.ws(), aq).await?.rows;
    Ok(html! {
        div.card.empty data-empty {
            h2 { "No requests match this view" }
            @if rows.is_empty() {
                p { "Nothing was recorded in this window. Try a longer range: "
                    a href=(ctx.view.link(ctx.page.path(), true, &[("range", Some("30d"))])) { "last 30 days" } "." }
                p { "New workspace? " a href=(ctx.link(Page::Setup, &[])) { "Setup" } " shows how to send the first event." }
            } @else {
                p { "This window does have traffic with other settings:" }
                p {
                    @for r in &rows {
                        @let (mode, env) = (&r.group[0], &r.group[1]);
                        @let env_value = if env == "prod" { None } else { Some(env.as_str()) };
                        @let mode_value = if mode == "real" { None } else { Some(mode.as_str()) };
                        a.btn.ghost style="display:inline-flex;align-items:center;margin:4px"
                            href=(ctx.view.link(ctx.page.path(), true, &[("dataMode", mode_value), ("environment", env_value)])) {
                            (format::int(r.sums.requests)) " " (mode) " requests in " (env)
                        }
                    }
                }
                p.muted { "Real traffic is the default view (dataMode=real, environment=prod); test and demo data never mix into it unless you ask." }
            }
        }
    })
}

/// The page heading with the window in words.
pub fn heading(title: &str, sub: Markup) -> Markup {
    html! {
        h1 { (title) }
        p.sub { (sub) }
    }
}

/// Links from a row to the next step of the investigation.
pub fn step_link(ctx: &Ctx, page: Page, set: &[(&str, Option<&str>)], text: &str) -> Markup {
    html! { a href=(ctx.link(page, set)) { (text) } }
}

/// Rows per page of a paged top list.
pub const PAGE_ROWS: usize = 100;

/// The `page` parameter (1 when absent): a top list reads at most `query::MAX_LIMIT`
/// groups, so the last page is the one that ends there.
pub fn page_number(ctx: &Ctx) -> Result<usize, PageError> {
    let last = crate::query::MAX_LIMIT / PAGE_ROWS;
    match ctx.view.own("page") {
        None => Ok(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=last).contains(n))
            .ok_or_else(|| PageError::Bad(format!("page must be an integer from 1 to {last}"))),
    }
}

/// How many groups to read for page `page` (one more than it shows: whether another
/// page follows), at most `query::MAX_LIMIT`.
pub fn page_limit(page: usize) -> usize {
    (page * PAGE_ROWS + 1).min(crate::query::MAX_LIMIT)
}

/// The rows of page `page` out of the first `page_limit(page)` rows, and whether more follow.
pub fn page_of<T>(mut rows: Vec<T>, page: usize) -> (Vec<T>, bool) {
    let more = rows.len() > page * PAGE_ROWS;
    rows.truncate(page * PAGE_ROWS);
    let start = ((page - 1) * PAGE_ROWS).min(rows.len());
    (rows.split_off(start), more)
}

/// Previous and next links of a paged list (nothing on a single page).
pub fn pager(ctx: &Ctx, page: usize, more: bool) -> Markup {
    let number = |n: usize| n.to_string();
    html! {
        @if page > 1 || more {
            div.pager #pager data-page=(page) {
                @if page > 1 {
                    @let prev = number(page - 1);
                    a #prev-page href=(ctx.link(ctx.page, &[("page", if page == 2 { None } else { Some(prev.as_str()) })])) { "← Previous" }
                }
                span.muted { "Rows " (format::int(((page - 1) * PAGE_ROWS + 1) as u64)) "–" (format::int((page * PAGE_ROWS) as u64)) ", by spend" }
                @if more {
                    @let next = number(page + 1);
                    a.btn.ghost #next-page href=(ctx.link(ctx.page, &[("page", Some(next.as_str()))])) { "Next page →" }
                }
            }
        }
    }
}

/// "Download CSV" under a top table: the API's `/v1/top/{kind}?format=csv` for the
/// window shown (as absolute times) and the view's filters, every row up to the API's
/// limit. The API reads accept the dashboard's session cookie, so the link just works.
pub fn csv_link(ctx: &Ctx, kind: &str, q: &Query) -> Markup {
    api_csv_link(
        ctx,
        &format!("/v1/top/{kind}"),
        Some(q),
        &[("limit", "1000")],
        "Download CSV",
    )
}

/// "Download CSV" of an API read: `path?format=csv`, then the window of `q` (absolute
/// times) and the view's filters when given, then `extra` (a table, its own settings).
pub fn api_csv_link(
    ctx: &Ctx,
    path: &str,
    q: Option<&Query>,
    extra: &[(&str, &str)],
    label: &str,
) -> Markup {
    let mut pairs: Vec<(String, String)> = vec![("format".into(), "csv".into())];
    if let Some(q) = q {
        pairs.push(("from".into(), crate::report::rfc3339(q.from_ms)));
        pairs.push(("to".into(), crate::report::rfc3339(q.to_ms)));
        pairs.extend(ctx.view.filters.iter().cloned());
    }
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", super::view::encode(k), super::view::encode(v)))
        .collect();
    let href = format!("{path}?{}", query.join("&"));
    html! {
        div.csv { a.csv-link download href=(href) { (label) } }
    }
}

#[cfg(test)]
mod paging_tests {
    use super::*;

    #[test]
    fn a_page_is_its_hundred_rows_and_knows_whether_more_follow() {
        let rows: Vec<usize> = (0..250).collect();
        let (p1, more) = page_of(rows.clone()[..page_limit(1)].to_vec(), 1);
        assert_eq!((p1.len(), p1[0], p1[99], more), (100, 0, 99, true));
        let (p3, more) = page_of(rows.clone(), 3);
        assert_eq!((p3.len(), p3[0], more), (50, 200, false));
        let (p4, more) = page_of(rows, 4);
        assert_eq!((p4.len(), more), (0, false));
        assert_eq!(page_limit(100), crate::query::MAX_LIMIT);
    }
}
