//! The reply schemas of the control routes (plans, revenue, margin, reconciliation, rate
//! caps, alerts and their rules, channels, mappings, deploys, settings, erasure, prices,
//! retention), written from the serialized types and checked against real replies by
//! tests/openapi_e2e.rs. Closed objects: a field the server adds without a line here
//! fails that test.

use super::{array_of, closed, or_null, schema_ref, strings};
use crate::alert::RuleKind;
use crate::event::{DataMode, Environment};
use serde_json::{json, Map, Value};

/// `closed(properties)` with only `required` required (the others may be left out).
fn closed_with(properties: Value, required: &[&str]) -> Value {
    let mut schema = closed(properties);
    schema["required"] = json!(required);
    schema
}

pub(super) fn control_schemas() -> Map<String, Value> {
    let money = json!({"type": "number", "description": "USD, exact decimal (nano-USD)"});
    let money_n = or_null(money.clone());
    let decimal = json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
        "description": "USD as exact decimal text"});
    let int = json!({"type": "integer", "minimum": 0});
    let int_n = or_null(int.clone());
    let num = json!({"type": "number"});
    let num_n = or_null(num.clone());
    let string = json!({"type": "string"});
    let string_n = or_null(string.clone());
    let boolean = json!({"type": "boolean"});
    let time = json!({"type": "string", "format": "date-time"});
    let time_n = or_null(time.clone());
    let day = json!({"type": "string", "format": "date"});
    let attempt = closed(json!({"atMs": int, "status": int_n, "error": string_n,
        "durationMs": int}));
    let driver = closed(
        json!({"dimension": string, "value": string, "sharePct": num,
        "detail": string}),
    );
    let finding = json!({
        "rule": strings(RuleKind::ALL.iter().map(|k| k.as_str())), "key": string,
        "severity": {"type": "string", "enum": ["warning", "critical"]},
        "title": string, "text": string,
        "evidence": {"type": "object", "description": "the numbers, the window and the baseline; per rule"},
        "drivers": array_of(driver), "link": string,
    });
    let mut alert = finding.as_object().unwrap().clone();
    alert.extend(
        json!({
            "id": int, "state": {"type": "string", "enum": ["firing", "resolved"]},
            "firedAt": time, "resolvedAt": time_n, "lastSeenAt": time,
            "acknowledgedAt": time_n, "deliveries": array_of(schema_ref("Delivery")),
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    let rule = closed(json!({
        "enabled": boolean, "threshold": num, "minRequests": int, "windowMinutes": int,
        "minUsd": money, "sigmas": num, "cooldownMinutes": int, "mutedUntil": time_n,
    }));
    let digest = closed_with(
        json!({"cadence": {"type": "string", "enum": ["daily", "weekly"]}, "time": string,
            "timeZone": string, "weekday": string}),
        &["cadence", "time", "timeZone"],
    );
    // One closed object per channel type; `digest` only when the channel has one.
    let channel = |kind: &str, fields: Value, required: &[&str]| {
        let mut props = json!({"id": int, "name": string, "type": {"type": "string", "enum": [kind]},
            "digest": digest});
        props
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let mut all = vec!["id", "name", "type"];
        all.extend(required);
        closed_with(props, &all)
    };
    let unattributed = closed(json!({"notReportedUsd": money, "priceGapUsd": money,
        "overAttributedUsd": money, "otherUsd": money}));
    let model_row = closed(json!({"model": string_n, "billedUsd": money,
        "attributedUsd": money, "differenceUsd": money, "coveragePct": num_n,
        "requests": int, "unpriced": int}));
    let day_row = closed(json!({
        "day": day, "provider": string, "source": string, "billedUsd": money,
        "unpricedBillLines": int, "attributedUsd": money, "differenceUsd": money,
        "coveragePct": num_n, "requests": int, "unpriced": int,
        "unpricedModels": array_of(string.clone()), "unattributed": unattributed,
        "models": array_of(model_row), "modelsCut": boolean,
    }));
    let projected = closed(
        json!({"monthStart": time, "monthEnd": time, "costUsd": money,
        "revenueUsd": money, "marginUsd": money, "costSharePct": num_n}),
    );
    let tenant_margin = closed(json!({
        "tenantId": string, "plan": string_n, "revenueUsd": money, "costUsd": money,
        "unpriced": int, "requests": int, "marginUsd": money, "costSharePct": num_n,
        "activeUserDays": int, "costPerActiveUserDayUsd": money_n,
        "projected": or_null(projected),
    }));
    let margin_totals = closed(json!({
        "revenueUsd": money, "costUsd": money, "unpriced": int, "marginUsd": money,
        "costSharePct": num_n, "unprofitable": int, "activeUserDays": int,
        "costPerActiveUserDayUsd": money_n,
    }));
    let entries = [
        (
            "PlanCounts",
            closed(json!({"tenants": int, "plans": array_of(closed(json!({
                "plan": string, "tenants": int})))})),
        ),
        (
            "PlanHistory",
            closed(
                json!({"tenantId": string, "plan": string_n, "history": array_of(closed(
                json!({"effectiveFrom": time_n, "plan": string_n})))}),
            ),
        ),
        (
            "TenantPlan",
            closed(json!({"tenantId": string, "plan": string_n})),
        ),
        (
            "TenantPlanChange",
            closed(json!({"tenantId": string, "plan": string_n, "effectiveFrom": time_n})),
        ),
        ("PlanImport", closed(json!({"assigned": int}))),
        (
            "PlanPrice",
            closed(json!({"plan": string, "priceUsd": money})),
        ),
        (
            "PlanDefinitions",
            closed(json!({"plans": array_of(schema_ref("PlanPrice"))})),
        ),
        ("RevenueAdded", closed(json!({"added": int}))),
        (
            "RevenueEntries",
            closed(
                json!({"tenantId": string, "entries": array_of(closed(json!({
                "tenantId": string, "type": {"type": "string", "enum": ["override", "oneOff"]},
                "date": day, "amountUsd": money_n})))}),
            ),
        ),
        (
            "Margin",
            closed(
                json!({"from": time, "to": time, "totals": margin_totals, "count": int,
                "offset": int, "nextOffset": int_n, "tenants": array_of(tenant_margin)}),
            ),
        ),
        (
            "ReconciliationImport",
            closed(json!({"format": string, "days": int, "replaced": int,
                "billedUsd": money, "unpricedLines": int, "from": day, "to": day})),
        ),
        (
            "Reconciliation",
            closed(json!({"from": time, "to": time, "totals": closed(json!({
                "billedUsd": money, "attributedUsd": money, "differenceUsd": money,
                "coveragePct": num_n})), "days": array_of(day_row)})),
        ),
        (
            "RateCap",
            closed(
                json!({"id": int, "endpointTag": string, "perTenant": boolean,
                "requestsPerMinute": int}),
            ),
        ),
        (
            "RateCaps",
            closed(json!({"rateCaps": array_of(schema_ref("RateCap"))})),
        ),
        (
            "Delivery",
            closed(json!({"alertId": int, "channelId": int, "channel": string,
            "state": {"type": "string", "enum": ["firing", "resolved"]},
            "delivered": boolean, "attempts": array_of(attempt.clone())})),
        ),
        ("Alert", closed(Value::Object(alert))),
        (
            "Alerts",
            closed(json!({"alerts": array_of(schema_ref("Alert"))})),
        ),
        ("AlertTransitions", closed(json!({"transitions": int}))),
        ("Finding", closed(finding)),
        (
            "Findings",
            closed(json!({"at": time, "findings": array_of(schema_ref("Finding"))})),
        ),
        (
            "AlertRules",
            closed(json!({
                "environment": strings(Environment::ALL.iter().map(|s| s.as_str())),
                "dataMode": strings(DataMode::ALL.iter().map(|s| s.as_str())),
                "rules": {"type": "object", "additionalProperties": rule,
                    "propertyNames": strings(RuleKind::ALL.iter().map(|k| k.as_str()))},
            })),
        ),
        (
            "Channel",
            json!({"description": "secrets are redacted except in the reply that creates the channel (a generated webhook secret is shown once)",
                "anyOf": [
                channel("webhook", json!({"url": string, "secret": string}), &["url", "secret"]),
                channel("slack", json!({"url": string}), &["url"]),
                channel("pagerduty", json!({"routingKey": string, "url": string}),
                    &["routingKey", "url"]),
            ]}),
        ),
        (
            "Channels",
            closed(json!({"channels": array_of(schema_ref("Channel"))})),
        ),
        (
            "DeliveryReport",
            closed(json!({"attempts": array_of(attempt), "delivered": boolean})),
        ),
        (
            "Mapping",
            closed_with(
                json!({"id": int, "dimension": {"type": "string",
                    "enum": ["endpointTag", "tenantId", "userId"]},
                    "from": string, "to": string, "effectiveFrom": time, "note": string}),
                &["id", "dimension", "from", "to"],
            ),
        ),
        (
            "Mappings",
            closed(json!({"mappings": array_of(schema_ref("Mapping"))})),
        ),
        (
            "DeployNote",
            closed_with(
                json!({"id": int, "endpointTag": string, "promptVersion": string,
                    "note": string, "author": string, "time": time}),
                &["id", "note", "time"],
            ),
        ),
        (
            "DeployNotes",
            closed(json!({"deploys": array_of(schema_ref("DeployNote"))})),
        ),
        (
            "WorkspaceSettingsReply",
            closed_with(
                json!({
                    "unknownFields": {"type": "string", "enum": ["warn", "reject"]},
                    "requiredFields": array_of(string.clone()),
                    "otlpAttributes": {"type": "object",
                        "additionalProperties": array_of(string.clone())},
                    "piiIds": {"type": "string", "enum": ["pseudonymize", "reject", "allow"]},
                    "pseudonymizeAllIds": boolean,
                    "rawRetentionDays": int,
                }),
                &[
                    "unknownFields",
                    "requiredFields",
                    "piiIds",
                    "pseudonymizeAllIds",
                ],
            ),
        ),
        (
            "ErasureRecord",
            closed(
                json!({"id": int, "subject": {"type": "string", "enum": ["tenant", "user"]},
                "events": int, "prunedHistoryCalls": int, "costUsd": decimal,
                "unpriced": int, "objectsEdited": int, "erasedAt": time, "by": string}),
            ),
        ),
        (
            "Erasures",
            closed(json!({"erasures": array_of(schema_ref("ErasureRecord"))})),
        ),
        (
            "Repriced",
            closed(
                json!({"repriced": int, "costUsd": decimal, "stillUnpriced": int,
                "repricedAt": time}),
            ),
        ),
        (
            "PriceCorrection",
            closed(
                json!({"id": int_n, "dryRun": boolean, "entry": string, "from": time_n,
                "to": time_n, "model": string_n, "repriced": int, "unchanged": int,
                "costBeforeUsd": decimal, "costAfterUsd": decimal, "differenceUsd": decimal,
                "at": time, "by": string}),
            ),
        ),
        (
            "RepriceReply",
            json!({"description": "unpriced: true answers Repriced; entry answers the PriceCorrection (a dry run without confirm; 201 when confirmed)",
                "anyOf": [schema_ref("Repriced"), schema_ref("PriceCorrection")]}),
        ),
        (
            "PriceCorrections",
            closed(json!({"corrections": array_of(schema_ref("PriceCorrection"))})),
        ),
        (
            "Retention",
            closed(json!({"rawRetentionDays": int_n, "rawFrom": time_n})),
        ),
    ];
    entries
        .into_iter()
        .map(|(name, schema)| (name.to_string(), schema))
        .collect()
}
