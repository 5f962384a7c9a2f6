//! The provider's bill against burnrate: per UTC day and provider in the window, billed,
//! attributed, difference, coverage and the unattributed spend by cause, with the
//! models of reports that split by model (`report::reconcile`, as `/v1/reconciliation`).

use super::{heading, money, page_handler};
use crate::http::dashboard::{format, Ctx, Page, PageResult};
use crate::report::reconcile;
use maud::{html, Markup};

page_handler!(page, Page::Reconciliation, body);

async fn body(ctx: &Ctx) -> PageResult {
    let q = ctx.window()?;
    // The provider bills every environment: the attribution counts them all unless the
    // URL names one (the filter bar's prod is only its default).
    let chosen = ctx.view.filters.iter().any(|(n, _)| n == "environment");
    let filters = crate::query::Filters {
        data_mode: q.filters.data_mode.clone(),
        environment: if chosen {
            q.filters.environment.clone()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let r = reconcile::reconciliation(
        ctx.state.store.as_ref(),
        ctx.ws(),
        q.from_ms,
        q.to_ms,
        &filters,
    )
    .await?;
    // The download links ask the API the same question: the window and the environment
    // and data mode the page used (the API takes no other filter).
    let (from, to) = (format::rfc3339(q.from_ms), format::rfc3339(q.to_ms));
    let mut extra: Vec<(&str, &str)> = vec![("from", &from), ("to", &to)];
    for (name, value) in &ctx.view.filters {
        if (name == "environment" && chosen) || name == "dataMode" {
            extra.push((name, value));
        }
    }
    let mut by_model = extra.clone();
    by_model.push(("table", "models"));
    let title = heading(
        "Bill",
        html! { "What each provider billed per UTC day against what burnrate attributed (every environment unless one is chosen; the window snapped to whole days)." },
    );
    if r.days.is_empty() {
        return Ok(html! {
            (title)
            div.card #no-bill {
                p { "No provider bill in this window. Import one with "
                    code { "burnrate reconcile import FILE" }
                    " (OpenAI Costs or Usage API pages, Anthropic's cost report, or a CSV "
                    code { "date,provider,model,amountUsd" } ")." }
            }
        });
    }
    Ok(html! {
        (title)
        div.card #bill-totals {
            p {
                "Billed " (money(r.totals.billed_usd)) ", attributed " (money(r.totals.attributed_usd))
                ", difference " span #bill-difference { (money(r.totals.difference_usd)) }
                " (coverage " (format::share(r.totals.coverage_pct)) ")."
            }
        }
        div.card.scroll {
            table.t #bill-table {
                thead { tr {
                    th { "Day" } th { "Provider" } th.num { "Billed" } th.num { "Attributed" }
                    th.num { "Difference" } th.num { "Coverage" } th.num { "Not reported" }
                    th.num { "Price gaps" } th.num { "Other" } th.num { "Over" } th.num { "Unpriced calls" }
                } }
                tbody {
                    @for d in &r.days {
                        tr data-key=(format!("{}/{}", d.day, d.provider)) {
                            td { (d.day) } td { (d.provider) }
                            td.num data-col="billed" { (money(d.billed_usd)) }
                            td.num data-col="attributed" { (money(d.attributed_usd)) }
                            td.num data-col="difference" { (money(d.difference_usd)) }
                            td.num { (format::share(d.coverage_pct)) }
                            td.num { (money(d.unattributed.not_reported_usd)) }
                            td.num { (money(d.unattributed.price_gap_usd)) }
                            td.num { (money(d.unattributed.other_usd)) }
                            td.num { (money(d.unattributed.over_attributed_usd)) }
                            td.num { (format::int(d.unpriced)) }
                        }
                        @if !d.models.is_empty() { (models(d)) }
                    }
                }
            }
        }
        (super::api_csv_link(ctx, "/v1/reconciliation", None, &extra, "Download CSV"))
        @if r.days.iter().any(|d| !d.models.is_empty()) {
            (super::api_csv_link(ctx, "/v1/reconciliation", None, &by_model, "Download CSV (per model)"))
        }
    })
}

/// The model rows under a day of a report split by model.
fn models(d: &crate::reconcile::DayRow) -> Markup {
    html! {
        @for m in &d.models {
            tr.sub data-key=(format!("{}/{}/{}", d.day, d.provider, m.model.as_deref().unwrap_or("-"))) {
                td {} td { code { (m.model.as_deref().unwrap_or("(no model)")) } }
                td.num { (money(m.billed_usd)) }
                td.num { (money(m.attributed_usd)) }
                td.num { (money(m.difference_usd)) }
                td.num { (format::share(m.coverage_pct)) }
                td colspan="4" {} td.num { (format::int(m.unpriced)) }
            }
        }
    }
}
