//! Models: spend by provider and model, and the models without a price (counted, never
//! shown as $0) with what to do about them.

use super::{delta, heading, money_opt, no_data, page_handler, share, Sense};
use crate::http::dashboard::{format, Ctx, Page, PageResult};
use crate::report::{self, TopKind};
use maud::html;

page_handler!(page, Page::Models, body);

async fn body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    let r = report::top(ctx.state.store.as_ref(), ctx.ws(), &q, TopKind::Models, 100).await?;
    let title = heading(
        "Models",
        html! { "Spend by provider and model in this window, against the window before." },
    );
    if r.total.requests == 0 {
        return Ok(html! { (title) (no_data(ctx, &q).await?) });
    }
    let group = |row: &report::TopRow, k: &str| -> String {
        row.group
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let unpriced: Vec<&report::TopRow> =
        r.rows.iter().filter(|row| row.stats.unpriced > 0).collect();
    Ok(html! {
        (title)
        @if !unpriced.is_empty() {
            div.card #unpriced style="border-color:#f0dcb0;background:#fffcf5" {
                div.card-head {
                    h2 { "Unpriced models" }
                    span.badge.warn { (format::int(r.total.unpriced)) " requests without a price" }
                }
                p style="margin:0 0 10px" {
                    "These requests are counted but not in the spend: their model has no price in the book. Run "
                    code { "burnrate prices check" } " to list them, then add a price with "
                    code { "burnrate prices import overrides.json" } " (negotiated rates, fine-tunes, self-hosted). "
                    "Events already stored keep their state; new ones are priced from then on."
                }
                table.t {
                    thead { tr { th { "Provider" } th { "Model" } th.num { "Unpriced requests" } th.num { "Of its requests" } th {} } }
                    tbody {
                        @for row in &unpriced {
                            @let (p, m) = (group(row, "provider"), group(row, "model"));
                            tr data-unpriced=(format!("{p}/{m}")) {
                                td { (p) } td { code { (m) } }
                                td.num { (format::int(row.stats.unpriced)) }
                                td.num { (format::ratio(Some(row.stats.unpriced as f64 / row.stats.requests.max(1) as f64))) }
                                td.links { a href=(ctx.link(Page::Requests, &[("provider", Some(&p)), ("model", Some(&m))])) { "requests" } }
                            }
                        }
                    }
                }
            }
        }
        div.card.scroll {
            table.t.sortable #top-table data-total-usd=(r.total.priced_cost().to_string()) {
                thead { tr {
                    th { "Provider" } th { "Model" } th.num { "Spend" } th.num { "Share" } th.num { "vs before" }
                    th.num { "Requests" } th.num { "Cost / req" } th.num { "Tokens / req" } th.num { "Cache hit" } th.num { "Unpriced" } th {}
                } }
                tbody {
                    @for row in &r.rows {
                        @let (p, m) = (group(row, "provider"), group(row, "model"));
                        tr data-key=(format!("{p}/{m}")) {
                            td { (p) }
                            td.name { code { (m) } }
                            td.num data-col="spend" { (super::group_money(&row.stats)) }
                            td.num { (share(row.share_pct)) }
                            td.num { (delta(row.change.cost_usd_pct, Sense::UpIsBad)) }
                            td.num { (format::int(row.stats.requests)) }
                            td.num { (money_opt(row.stats.cost_per_request)) }
                            td.num { (format::count(row.stats.tokens_per_request)) }
                            td.num { (format::ratio(row.stats.cache_hit_rate)) }
                            td.num { @if row.stats.unpriced > 0 { span.badge.warn { (format::int(row.stats.unpriced)) } } @else { span.faint { "0" } } }
                            td.links {
                                a href=(ctx.link(Page::Endpoints, &[("provider", Some(&p)), ("model", Some(&m))])) { "endpoints" }
                                a href=(ctx.link(Page::Requests, &[("provider", Some(&p)), ("model", Some(&m))])) { "requests" }
                            }
                        }
                    }
                }
                tfoot { tr {
                    td colspan="2" { "All models" }
                    td.num data-col="total" { (super::group_money(&r.total)) }
                    td.num { "100%" }
                    td.num { (delta(report::Change::between(&r.total, &r.previous_total).cost_usd_pct, Sense::UpIsBad)) }
                    td.num { (format::int(r.total.requests)) }
                    td.num { (money_opt(r.total.cost_per_request)) }
                    td.num { (format::count(r.total.tokens_per_request)) }
                    td.num { (format::ratio(r.total.cache_hit_rate)) }
                    td.num { (format::int(r.total.unpriced)) }
                    td {}
                } }
            }
        }
        (super::csv_link(ctx, "models", &q))
    })
}
