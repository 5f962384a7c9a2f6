//! The shared usage vectors (testdata/usage-vectors.json), run by every SDK and the
//! server's validator: each case through this crate's mapping function for its shape.

use burnrate_client::{usage, Event, Usage};
use serde_json::Value;
use std::path::PathBuf;

fn vectors() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/usage-vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("usage-vectors.json is JSON");
    assert_eq!(doc["format"], 1, "unknown vectors format");
    doc["cases"].as_array().expect("cases").clone()
}

fn map(shape: &str, u: &Value) -> Usage {
    match shape {
        "openai.chat" | "openai.chat.stream" => usage::openai_chat(u),
        "openai.responses" => usage::openai_responses(u),
        "openai.embeddings" => usage::openai_embeddings(u),
        "anthropic.messages" => usage::anthropic_messages(u),
        "anthropic.stream" => usage::anthropic_stream(u.as_array().expect("a list of usages")),
        "gemini" => usage::gemini(u),
        "bedrock.converse" => usage::bedrock_converse(u),
        "openrouter" => usage::openrouter(u),
        "xai" => usage::xai(u),
        other => panic!("unknown shape {other}: add a mapping function"),
    }
}

#[test]
fn every_shared_vector_maps_as_expected() {
    let cases = vectors();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let shape = case["shape"].as_str().unwrap();
        let want = &case["expected"];
        let got = map(shape, &case["usage"]);
        let counts = [
            ("inputTokens", got.input_tokens),
            ("cachedTokens", got.cached_tokens),
            ("cacheWriteTokens", got.cache_write_tokens),
            ("outputTokens", got.output_tokens),
            ("reasoningTokens", got.reasoning_tokens),
        ];
        for (field, value) in counts {
            if want[field].as_u64() != Some(value) {
                failures.push(format!(
                    "{name}: {field} = {value}, expected {}",
                    want[field]
                ));
            }
        }
        let cost_ok = match (want["costUsd"].as_f64(), got.cost_usd) {
            (None, None) => want["costUsd"].is_null(),
            (Some(w), Some(g)) => (w - g).abs() <= 1e-12,
            _ => false,
        };
        if !cost_ok {
            failures.push(format!(
                "{name}: costUsd = {:?}, expected {}",
                got.cost_usd, want["costUsd"]
            ));
        }
        assert!(!got.missing, "{name}: usage present, not missing");
        // The event built from it is what the contract wants, field for field.
        let event = serde_json::to_value(Event::new("p", "m", "t").usage(got)).unwrap();
        for (field, _) in counts {
            assert_eq!(event[field], want[field], "{name}: event {field}");
        }
        if let Some(cost) = got.cost_usd {
            // as sent on the wire: at most 9 decimals
            let text = event["costUsd"].to_string();
            let (m, e) = text.split_once('e').unwrap_or((&text, "0"));
            let decimals =
                m.split_once('.').map_or(0, |(_, d)| d.len()) as i64 - e.parse::<i64>().unwrap();
            assert!(
                decimals <= 9,
                "{name}: costUsd {text} has {decimals} decimals ({cost})"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{} shared vectors passed", cases.len());
}

#[test]
fn embeddings_set_the_operation() {
    let u = usage::openai_embeddings(&serde_json::json!({"prompt_tokens": 8, "total_tokens": 8}));
    let e = serde_json::to_value(Event::new("openai", "text-embedding-3-small", "search").usage(u))
        .unwrap();
    assert_eq!(e["operation"], "embeddings");
}
