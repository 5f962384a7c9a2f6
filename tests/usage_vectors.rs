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
