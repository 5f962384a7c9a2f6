//! The shared usage vectors (testdata/usage-vectors.json): every mapped event the SDKs
//! produce must pass the server's validation, and a provider-reported cost is kept.

use burnrate::event::{CostSource, RawEvent};
use burnrate::price::PriceBook;
use serde_json::{json, Value};

#[test]
fn every_sdk_mapping_is_a_valid_event_for_the_server() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/usage-vectors.json"
    ))
    .unwrap();
    let vectors: Value = serde_json::from_str(&text).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let book = PriceBook::bundled().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected = &case["expected"];
        let mut event = json!({"provider": "openrouter", "model": "vector-model", "endpointTag": "vectors", "status": "success"});
        for field in [
            "inputTokens",
            "cachedTokens",
            "cacheWriteTokens",
            "outputTokens",
            "reasoningTokens",
            "costUsd",
        ] {
            event[field] = expected[field].clone();
        }
        let body = event.to_string();
        let raw: RawEvent = serde_json::from_str(&body).unwrap();
        let valid =
            burnrate::validate::validate(&raw, now).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(
            valid.tokens.input,
            expected["inputTokens"].as_u64().unwrap(),
            "{name}"
        );
        let pricing = book.price(&valid);
        match expected["costUsd"].as_f64() {
            Some(cost) => {
                assert_eq!(pricing.source, Some(CostSource::Client), "{name}");
                assert!(
                    (pricing.cost.unwrap().as_f64() - cost).abs() < 1e-9,
                    "{name}"
                );
            }
            None => assert_eq!(
                pricing.cost, None,
                "{name}: an unknown model stays unpriced"
            ),
        }
    }
}

/// A span carrying `attributes` (a JSON object: integers, floats and strings as the
/// OTLP attribute types they stand for).
fn span_with(attributes: &Value) -> burnrate::otlp::proto::ExportTraceServiceRequest {
    use burnrate::otlp::proto::{
        AnyValue, ExportTraceServiceRequest, KeyValue, ResourceSpans, ScopeSpans, Span,
    };
    let attributes = attributes
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, v)| KeyValue {
            key: key.clone(),
            value: Some(AnyValue {
                value: Some(match v {
                    Value::String(s) => Value_::StringValue(s.clone()),
                    n if n.is_i64() => Value_::IntValue(n.as_i64().unwrap()),
                    n => Value_::DoubleValue(n.as_f64().unwrap()),
                }),
            }),
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    attributes,
                    ..Span::default()
                }],
            }],
        }],
    }
}

use burnrate::otlp::proto::Value as Value_;

#[test]
fn every_otlp_vector_maps_to_the_fields_of_its_provider_case() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/usage-vectors.json"
    ))
    .unwrap();
    let vectors: Value = serde_json::from_str(&text).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    let otlp = vectors["otlpCases"].as_array().unwrap();
    assert!(otlp.len() >= 10);
    let now = jiff::Timestamp::now().as_millisecond();
    for case in otlp {
        let name = case["name"].as_str().unwrap();
        let same = case["sameAs"].as_str().unwrap();
        let expected = &cases
            .iter()
            .find(|c| c["name"] == same)
            .unwrap_or_else(|| panic!("{name}: no case named {same}"))["expected"];
        let mapped =
            burnrate::otlp::map_request(&span_with(&case["attributes"]), &Default::default());
        assert_eq!(mapped.skipped, 0, "{name}");
        let mut event = mapped.events[0].event.clone();
        for field in [
            "inputTokens",
            "cachedTokens",
            "cacheWriteTokens",
            "outputTokens",
            "reasoningTokens",
        ] {
            assert_eq!(event[field], expected[field], "{name}: {field}");
        }
        assert_eq!(
            event.get("costUsd").and_then(Value::as_f64),
            expected["costUsd"].as_f64(),
            "{name}"
        );
        // Attribution comes from elsewhere (service.name); the usage must be a valid event.
        event["endpointTag"] = json!("vectors");
        event["model"] = json!("vector-model");
        let body = event.to_string();
        let raw: RawEvent = serde_json::from_str(&body).unwrap();
        burnrate::validate::validate(&raw, now).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}
