//! The reads behind tracking quality (`quality` is the pure part): three aggregate
//! queries of the window by endpointTag (all calls; those without a tenantId; those
//! without a promptVersion) and the keys' unknown-field tallies.

use crate::quality::{Counts, Inputs, KeyFields, PrivacyCounts, Report};
use crate::query::{Dimension, Measure, Query};
use crate::store::{Result, Store, WorkspaceId};
use std::collections::HashMap;

/// Endpoint tags read per window: the lint sees this many, the rest count as cut.
pub const MAX_ENDPOINTS: usize = crate::query::MAX_LIMIT;
/// Endpoint tags listed in the report (most events first).
pub const LISTED_ENDPOINTS: usize = 100;

/// `base`'s window and filters grouped by endpointTag, most calls first.
fn by_endpoint(base: &Query) -> Query {
    Query {
        group_by: vec![Dimension::EndpointTag],
        bucket: None,
        measures: vec![Measure::Requests],
        order_by: Some(Measure::Requests),
        ascending: false,
        limit: MAX_ENDPOINTS,
        ..base.clone()
    }
}

/// The calls of `q` without a value of `dim`, or None when `q`'s own filter on `dim`
/// already leaves none of them (it names values only).
fn without(q: &Query, dim: Dimension) -> Option<Query> {
    let missing = dim.missing_label().to_string();
    if let Some(values) = q.filters.text.get(&dim) {
        if !values.contains(&missing) {
            return None;
        }
    }
    let mut q = q.clone();
    q.filters.restrict(&dim, &[missing]);
    Some(q)
}

async fn missing_per_endpoint(
    store: &dyn Store,
    ws: WorkspaceId,
    q: Option<Query>,
) -> Result<(HashMap<String, u64>, u64)> {
    let Some(q) = q else {
        return Ok((HashMap::new(), 0));
    };
    let answer = store.aggregate(ws, q).await?;
    let per = answer
        .rows
        .iter()
        .map(|r| (r.group[0].clone(), r.sums.requests))
        .collect();
    Ok((per, answer.total().requests))
}

/// The tracking-quality report of `base`'s window and filters; `privacy` from the
/// server's counters when a server answers.
pub async fn quality(
    store: &dyn Store,
    ws: WorkspaceId,
    base: &Query,
    privacy: Option<PrivacyCounts>,
) -> Result<Report> {
    let all = by_endpoint(base);
    let (answer, (no_tenant, no_tenant_total), (unversioned, unversioned_total), keys) = tokio::try_join!(
        store.aggregate(ws, all.clone()),
        missing_per_endpoint(store, ws, without(&all, Dimension::TenantId)),
        missing_per_endpoint(store, ws, without(&all, Dimension::PromptVersion)),
        key_fields(store, ws),
    )?;
    let counts = |sums: &crate::query::Sums, no_tenant: u64, unversioned: u64| Counts {
        events: sums.requests,
        idless: sums.idless,
        no_tenant,
        unversioned,
        usage_missing: sums.usage_missing,
        unpriced: sums.unpriced(),
    };
    let endpoints = answer
        .rows
        .iter()
        .map(|r| {
            let tag = &r.group[0];
            let get = |m: &HashMap<String, u64>| m.get(tag).copied().unwrap_or(0);
            (
                tag.clone(),
                counts(&r.sums, get(&no_tenant), get(&unversioned)),
            )
        })
        .collect();
    let total = counts(&answer.total(), no_tenant_total, unversioned_total);
    let mut report = crate::quality::report(Inputs {
        from: super::rfc3339(base.from_ms),
        to: super::rfc3339(base.to_ms),
        total,
        endpoints,
        endpoints_cut: answer.cut,
        keys,
        privacy,
    });
    // The lint saw every tag read; the list shows the largest ones.
    report.endpoints_cut += report.endpoints.len().saturating_sub(LISTED_ENDPOINTS);
    report.endpoints.truncate(LISTED_ENDPOINTS);
    Ok(report)
}

/// The workspace's keys with their unknown-field tallies (all time), revoked keys
/// only when they sent some.
async fn key_fields(store: &dyn Store, ws: WorkspaceId) -> Result<Vec<KeyFields>> {
    let Some(name) = store
        .workspaces()
        .await?
        .into_iter()
        .find(|w| w.id == ws)
        .map(|w| w.name)
    else {
        return Ok(Vec::new());
    };
    Ok(store
        .keys(Some(name))
        .await?
        .into_iter()
        .filter(|k| k.revoked_at.is_none() || k.unknown_fields > 0)
        .map(|k| KeyFields {
            id: k.id,
            prefix: k.prefix,
            name: k.name,
            unknown_fields: k.unknown_fields,
            last_unknown_field: k.last_unknown_field,
        })
        .collect())
}
