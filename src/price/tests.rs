//! Tests of pricing: the shared usage vectors (testdata/), resolution of provider and
//! model names, tiers and the cost of an event.

use super::book::{BookFile, EntryFile};
use super::*;
use crate::event::RawEvent;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    now: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    entry: Option<EntryFile>,
    /// Several entries (a model's price history) instead of one `entry`.
    #[serde(default)]
    entries: Vec<EntryFile>,
    event: serde_json::Value,
    expected: Expected,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expected {
    cost_usd: Option<String>,
    cost_source: Option<String>,
}

fn book_with(entries: Vec<EntryFile>) -> PriceBook {
    let mut book = PriceBook::default();
    let file = BookFile {
        format: 1,
        version: "test".into(),
        entries,
        ..Default::default()
    };
    book.add_file(&file, Layer::Catalog).unwrap();
    book
}

#[test]
fn shared_pricing_vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/pricing-vectors.json"
    ))
    .unwrap();
    let vectors: Vectors = serde_json::from_str(&text).unwrap();
    let now = vectors
        .now
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    assert!(vectors.cases.len() >= 12);
    for case in vectors.cases {
        let book = book_with(case.entry.into_iter().chain(case.entries).collect());
        let text = case.event.to_string();
        let raw: RawEvent = serde_json::from_str(&text).unwrap();
        let event =
            crate::validate::validate(&raw, now).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        let pricing = book.price(&event);
        assert_eq!(
            pricing.cost.map(|c| c.to_string()),
            case.expected.cost_usd,
            "{}",
            case.name
        );
        assert_eq!(
            pricing.source.map(|s| s.as_str().to_string()),
            case.expected.cost_source,
            "{}",
            case.name
        );
    }
}

fn bundled() -> PriceBook {
    PriceBook::bundled().unwrap()
}

const NOW: i64 = 1_764_000_000_000;

fn rates_of(book: &PriceBook, provider: &str, model: &str) -> (String, String, String) {
    let (entry, _) = book
        .lookup(provider, model, NOW)
        .unwrap_or_else(|| panic!("{provider}/{model} unpriced"));
    let r = cost::applied_rates(&entry, crate::event::ServiceTier::Standard, 1000).unwrap();
    (
        r.input.to_string(),
        r.cached_input.to_string(),
        r.output.to_string(),
    )
}

#[test]
fn bundled_book_has_published_prices_for_common_models() {
    let book = bundled();
    // Published per-1M prices: input, cached input, output.
    assert_eq!(
        rates_of(&book, "openai", "gpt-4o-mini"),
        ("0.15".into(), "0.075".into(), "0.6".into())
    );
    assert_eq!(
        rates_of(&book, "openai", "gpt-4o"),
        ("2.5".into(), "1.25".into(), "10".into())
    );
    assert_eq!(
        rates_of(&book, "anthropic", "claude-sonnet-4-5"),
        ("3".into(), "0.3".into(), "15".into())
    );
    assert_eq!(
        rates_of(&book, "openai", "text-embedding-3-small").0,
        "0.02"
    );
}

#[test]
fn aliases_resolve_by_explicit_rules_only() {
    let book = bundled();
    let rule = |p: &str, m: &str| {
        book.lookup(p, m, NOW)
            .map(|(e, how)| (e.model.clone(), how.rule))
    };
    assert_eq!(
        rule("openai", "gpt-4o-mini-2024-07-18").unwrap().0,
        "gpt-4o-mini-2024-07-18"
    );
    assert_eq!(
        rule("openai", "openai/gpt-4o"),
        Some(("gpt-4o".into(), "provider prefix"))
    );
    assert_eq!(rule("OpenAI", "GPT-4o"), Some(("gpt-4o".into(), "exact")));
    assert_eq!(
        rule("gemini", "gemini-2.5-flash").unwrap().0,
        "gemini-2.5-flash"
    );
    assert_eq!(
        rule("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0").map(|r| r.0),
        Some("us.anthropic.claude-3-5-sonnet-20241022-v2:0".into())
            .or(Some("anthropic.claude-3-5-sonnet-20241022-v2:0".into()))
    );
    // A dated snapshot the book does not list is unpriced (it may have a new price).
    assert_eq!(rule("openai", "gpt-4o-mini-2031-01-01"), None);
    // Close names are not guessed.
    assert_eq!(rule("openai", "gpt-4o-mini-fast"), None);
    assert_eq!(rule("openai", "gpt4o"), None);
}

#[test]
fn corrections_are_applied_to_the_bundled_book() {
    let book = bundled();
    let (entry, _) = book.lookup("anthropic", "claude-sonnet-4-5", NOW).unwrap();
    assert!(entry.source.starts_with("correction:"), "{}", entry.source);
    assert!(
        entry.rows.iter().any(|r| r.above == 200_000),
        "long-context band added by correction"
    );
}

#[test]
fn dated_entries_price_events_by_their_own_time() {
    let mut old = EntryFile {
        provider: "openai".into(),
        model: "m".into(),
        ..Default::default()
    };
    old.effective_from = book::EPOCH.into();
    old.usd_per_m_tok = vec![book::RateRowFile {
        tier: "standard".into(),
        input: Some("1".into()),
        output: Some("1".into()),
        ..Default::default()
    }];
    let mut new = old.clone();
    new.effective_from = "2026-01-01T00:00:00Z".into();
    new.usd_per_m_tok[0].input = Some("2".into());
    let book = book_with(vec![old, new]);
    let at = |ts: &str| {
        book.lookup(
            "openai",
            "m",
            ts.parse::<jiff::Timestamp>().unwrap().as_millisecond(),
        )
        .unwrap()
        .0
    };
    assert_eq!(
        at("2025-12-31T23:59:59Z").rows[0]
            .input
            .unwrap()
            .to_string(),
        "1"
    );
    assert_eq!(
        at("2026-01-01T00:00:00Z").rows[0]
            .input
            .unwrap()
            .to_string(),
        "2"
    );
    assert!(at("2026-01-01T00:00:00Z")
        .id
        .ends_with("@2026-01-01T00:00:00Z"));
}

#[test]
fn overrides_win_over_the_catalogue() {
    let mut book = bundled();
    let mut fine_tune = EntryFile {
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        ..Default::default()
    };
    fine_tune.effective_from = book::EPOCH.into();
    fine_tune.usd_per_m_tok = vec![book::RateRowFile {
        tier: "standard".into(),
        input: Some("0.1".into()),
        output: Some("0.4".into()),
        ..Default::default()
    }];
    let file = BookFile {
        format: 1,
        version: "negotiated".into(),
        entries: vec![fine_tune],
        ..Default::default()
    };
    book.add_file(&file, Layer::Override).unwrap();
    assert_eq!(rates_of(&book, "openai", "gpt-4o-mini").0, "0.1");
    assert!(book
        .lookup("openai", "gpt-4o-mini", NOW)
        .unwrap()
        .0
        .id
        .starts_with("negotiated:"));
}

#[test]
fn litellm_conversion_maps_fields_and_suffixes() {
    let map = serde_json::json!({
        "gemini/gemini-x": {"litellm_provider": "gemini", "mode": "chat",
            "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
            "cache_read_input_token_cost": 1.25e-07,
            "input_cost_per_token_above_200k_tokens": 2.5e-06, "output_cost_per_token_above_200k_tokens": 1.5e-05,
            "input_cost_per_token_batches": 6.25e-07, "output_cost_per_token_batches": 5e-06,
            "cache_creation_input_token_cost_above_1hr": 9e-06},
        "no-price": {"litellm_provider": "openai", "mode": "chat"},
        "img": {"litellm_provider": "openai", "mode": "image_generation", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "output_cost_per_image": 0.04}
    });
    let converted = litellm::convert(&map, "v", serde_json::json!({})).unwrap();
    assert_eq!(converted.skipped, 1);
    let g = converted
        .book
        .entries
        .iter()
        .find(|e| e.model == "gemini-x")
        .unwrap();
    assert_eq!(g.provider, "google");
    let rows: Vec<(String, u64, Option<String>, Option<String>)> = g
        .usd_per_m_tok
        .iter()
        .map(|r| {
            (
                r.tier.clone(),
                r.above,
                r.input.clone(),
                r.cached_input.clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "standard".into(),
                0,
                Some("1.25".into()),
                Some("0.125".into())
            ),
            ("standard".into(), 200000, Some("2.5".into()), None),
            ("batch".into(), 0, Some("0.625".into()), None),
        ]
    );
    let img = converted
        .book
        .entries
        .iter()
        .find(|e| e.model == "img")
        .unwrap();
    assert_eq!(
        (img.mode.as_str(), img.per_image_usd.as_deref()),
        ("image", Some("0.04"))
    );
}

#[test]
fn azure_deployment_names_map_through_an_overrides_alias() {
    let mut book = bundled();
    assert!(
        book.lookup("azure", "support-gpt4o-eastus", NOW).is_none(),
        "a deployment name is not guessed"
    );
    let overrides: BookFile = serde_json::from_value(serde_json::json!({
        "format": 1, "kind": "overrides", "version": "local",
        "aliases": [{"provider": "azure", "model": "support-gpt4o-eastus",
                     "target": {"provider": "azure", "model": "gpt-4o"}}]
    }))
    .unwrap();
    book.add_file(&overrides, Layer::Override).unwrap();
    let (entry, how) = book.lookup("azure", "support-gpt4o-eastus", NOW).unwrap();
    assert_eq!(
        (entry.provider.as_str(), entry.model.as_str(), how.rule),
        ("azure", "gpt-4o", "exact")
    );
}

#[test]
fn a_success_with_missing_usage_is_unpriced_and_a_failure_without_usage_is_free() {
    let book = bundled();
    let raw = |status: &str| -> crate::event::Event {
        let text = format!(
            r#"{{"provider":"openai","model":"gpt-4o-mini","endpointTag":"e","status":"{status}","usageMissing":true}}"#
        );
        let raw: RawEvent = serde_json::from_str(&text).unwrap();
        crate::validate::validate(&raw, 1_764_000_000_000).unwrap()
    };
    let success = book.price(&raw("success"));
    assert_eq!((success.cost, success.source), (None, None));
    let failed = book.price(&raw("error"));
    assert_eq!(failed.cost, Some(crate::money::Usd(0)));
    let mut reported = raw("success");
    reported.client_cost = Some(crate::money::Usd(5));
    assert_eq!(book.price(&reported).cost, Some(crate::money::Usd(5)));
}

/// The cost the bundled book gives `tokens` (input, cached, output) of `model` at `at`.
fn bundled_cost_at(model: &str, at: &str, tokens: (u64, u64, u64)) -> Option<String> {
    bundled_cost(&format!(
        r#""provider":"openai","model":"{model}","timestamp":"{at}","inputTokens":{},"cachedTokens":{},"outputTokens":{}"#,
        tokens.0, tokens.1, tokens.2
    ))
}

/// The cost the bundled book gives a successful event with these JSON fields.
fn bundled_cost(fields: &str) -> Option<String> {
    let text = format!(r#"{{"endpointTag":"e","status":"success",{fields}}}"#);
    let raw: RawEvent = serde_json::from_str(&text).unwrap();
    let now = "2026-12-01T00:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let event = crate::validate::validate(&raw, now).unwrap();
    bundled().price(&event).cost.map(|c| c.to_string())
}

#[test]
fn o3_before_its_june_2025_cut_is_billed_at_the_launch_price() {
    // 8,000 uncached + 2,000 cached input, 1,000 output.
    // Before: 8000 x $10/M + 2000 x $2.50/M + 1000 x $40/M = 0.08 + 0.005 + 0.04.
    // After:  8000 x $2/M  + 2000 x $0.50/M + 1000 x $8/M  = 0.016 + 0.001 + 0.008.
    for model in ["o3", "o3-2025-04-16"] {
        assert_eq!(
            bundled_cost_at(model, "2025-06-09T12:00:00Z", (10_000, 2_000, 1_000)).as_deref(),
            Some("0.125"),
            "{model}"
        );
        assert_eq!(
            bundled_cost_at(model, "2025-06-11T12:00:00Z", (10_000, 2_000, 1_000)).as_deref(),
            Some("0.025"),
            "{model}"
        );
    }
}

#[test]
fn claude_sonnet_5_leaves_its_introductory_price_on_2026_09_01() {
    let book = bundled();
    let at = |ts: &str| {
        let ms = ts.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let (entry, _) = book.lookup("anthropic", "claude-sonnet-5", ms).unwrap();
        let r = cost::applied_rates(&entry, crate::event::ServiceTier::Standard, 1000).unwrap();
        (r.input.to_string(), r.output.to_string())
    };
    assert_eq!(at("2026-08-31T23:59:59Z"), ("2".into(), "10".into()));
    assert_eq!(at("2026-09-01T00:00:00Z"), ("3".into(), "15".into()));
}

#[test]
fn an_entry_past_its_effective_to_is_no_longer_in_force() {
    let mut retired = EntryFile {
        provider: "openai".into(),
        model: "m".into(),
        effective_from: book::EPOCH.into(),
        effective_to: Some("2026-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    retired.usd_per_m_tok = vec![book::RateRowFile {
        tier: "standard".into(),
        input: Some("1".into()),
        output: Some("1".into()),
        ..Default::default()
    }];
    let book = book_with(vec![retired]);
    let ms = |ts: &str| ts.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    assert!(book
        .lookup("openai", "m", ms("2025-12-31T23:59:59Z"))
        .is_some());
    assert!(book
        .lookup("openai", "m", ms("2026-01-01T00:00:00Z"))
        .is_none());
}

#[test]
fn an_undated_alias_is_billed_at_the_snapshot_it_pointed_to_at_the_time() {
    let snapshot = |model: &str, input: &str| {
        let mut e = EntryFile {
            provider: "openai".into(),
            model: model.into(),
            effective_from: book::EPOCH.into(),
            ..Default::default()
        };
        e.usd_per_m_tok = vec![book::RateRowFile {
            tier: "standard".into(),
            input: Some(input.into()),
            output: Some(input.into()),
            ..Default::default()
        }];
        e
    };
    let file: BookFile = serde_json::from_value(serde_json::json!({
        "format": 1, "version": "test",
        "aliases": [
            {"provider": "openai", "model": "family", "target": {"provider": "openai", "model": "family-2024-05-13"},
             "effectiveTo": "2024-10-02T00:00:00Z"},
            {"provider": "openai", "model": "family", "target": {"provider": "openai", "model": "family-2024-08-06"},
             "effectiveFrom": "2024-10-02T00:00:00Z"}
        ]
    }))
    .unwrap();
    let mut book = book_with(vec![
        snapshot("family-2024-05-13", "5"),
        snapshot("family-2024-08-06", "2.5"),
    ]);
    book.add_file(&file, Layer::Catalog).unwrap();
    let at = |ts: &str| {
        let ms = ts.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let (entry, how) = book.lookup("openai", "family", ms).unwrap();
        (how.key.model, entry.rows[0].input.unwrap().to_string())
    };
    assert_eq!(
        at("2024-10-01T23:59:59Z"),
        ("family-2024-05-13".into(), "5".into())
    );
    assert_eq!(
        at("2024-10-02T00:00:00Z"),
        ("family-2024-08-06".into(), "2.5".into())
    );
}

#[test]
fn a_past_price_correction_ends_where_the_generated_price_begins() {
    let map = serde_json::json!({
        "o3": {"litellm_provider": "openai", "mode": "chat",
            "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06}
    });
    let mut book = litellm::convert(&map, "v", serde_json::json!({}))
        .unwrap()
        .book;
    let fixes: BookFile = serde_json::from_value(serde_json::json!({
        "format": 1,
        "corrections": [{"provider": "openai", "model": "o3", "effectiveTo": "2025-06-10T00:00:00Z",
            "usdPerMTok": [{"tier": "standard", "input": "10", "output": "40"}],
            "source": "https://example.test/o3", "checked": "2026-12-02"}]
    }))
    .unwrap();
    assert_eq!(litellm::apply_corrections(&mut book, &fixes), (0, 1));
    let spans: Vec<(&str, Option<&str>, Option<&str>)> = book
        .entries
        .iter()
        .map(|e| {
            (
                e.effective_from.as_str(),
                e.effective_to.as_deref(),
                e.usd_per_m_tok[0].input.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        vec![
            (book::EPOCH, Some("2025-06-10T00:00:00Z"), Some("10")),
            ("2025-06-10T00:00:00Z", None, Some("2")),
        ]
    );
}

#[test]
fn an_xai_prompt_that_reaches_200k_tokens_is_billed_at_the_long_context_rate() {
    let grok = |tier: &str, input: u64| {
        bundled_cost(&format!(
            r#""provider":"xai","model":"grok-4.20-0309-reasoning","serviceTier":"{tier}","inputTokens":{input},"outputTokens":1000"#
        ))
    };
    // xAI: $1.25 / $2.50 below 200K, $2.50 / $5.00 for prompts of 200K tokens or more.
    // 199,999 x 1.25/M + 1,000 x 2.50/M = 0.24999875 + 0.0025
    assert_eq!(grok("standard", 199_999).as_deref(), Some("0.25249875"));
    // 200,000 x 2.50/M + 1,000 x 5/M = 0.5 + 0.005 (was 0.2525 at the base rate)
    assert_eq!(grok("standard", 200_000).as_deref(), Some("0.505"));
    // Batch is 20% off in both bands: 200,000 x 2/M + 1,000 x 4/M.
    assert_eq!(grok("batch", 200_000).as_deref(), Some("0.404"));
}

#[test]
fn an_anthropic_prompt_bills_the_long_context_rate_only_over_200k_tokens() {
    let sonnet = |input: u64| {
        bundled_cost(&format!(
            r#""provider":"anthropic","model":"claude-sonnet-4-5","inputTokens":{input},"outputTokens":1000"#
        ))
    };
    // 200,000 x 3/M + 1,000 x 15/M; 200,001 x 6/M + 1,000 x 22.50/M.
    assert_eq!(sonnet(200_000).as_deref(), Some("0.615"));
    assert_eq!(sonnet(200_001).as_deref(), Some("1.222506"));
}

#[test]
fn a_tier_without_rates_for_the_prompts_band_is_unpriced_not_billed_short() {
    let mut entry = EntryFile {
        provider: "vertex".into(),
        model: "m".into(),
        effective_from: book::EPOCH.into(),
        ..Default::default()
    };
    let row = |tier: &str, above: u64, input: &str| book::RateRowFile {
        tier: tier.into(),
        above,
        input: Some(input.into()),
        output: Some(input.into()),
        ..Default::default()
    };
    entry.usd_per_m_tok = vec![
        row("standard", 0, "3"),
        row("standard", 200_000, "6"),
        row("batch", 0, "1.5"),
    ];
    let book = book_with(vec![entry]);
    let (entry, _) = book.lookup("vertex", "m", NOW).unwrap();
    let batch = crate::event::ServiceTier::Batch;
    assert!(cost::applied_rates(&entry, batch, 200_000).is_ok());
    assert_eq!(
        cost::applied_rates(&entry, batch, 200_001),
        Err(Unpriced::NoRateForTier(batch))
    );
}

#[test]
fn a_dated_snapshot_no_source_lists_is_unpriced_and_its_base_is_suggested() {
    let book = bundled();
    for (provider, model, base) in [
        ("openai", "gpt-4o-2025-01-01", "gpt-4o"),
        ("anthropic", "claude-opus-4-1-20990101", "claude-opus-4-1"),
        ("openai", "openai/gpt-4o-mini-20310101", "gpt-4o-mini"),
    ] {
        assert!(book.lookup(provider, model, NOW).is_none(), "{model}");
        let suggested = book.undated_base(provider, model, NOW).unwrap();
        assert_eq!(
            suggested.key.model,
            base.replace("claude-opus-4-1", "claude-opus-4-1-20250805"),
            "{model}"
        );
    }
    // Listed snapshots still resolve exactly, and nothing is suggested for them.
    assert!(book.lookup("openai", "gpt-4o-2024-08-06", NOW).is_some());
    assert!(book
        .undated_base("openai", "gpt-4o-2024-08-06", NOW)
        .is_none());
}

#[test]
fn an_unlisted_bedrock_region_profile_is_unpriced_when_profiles_carry_a_premium() {
    let book = bundled();
    // AWS: global cross-Region inference is ~10% cheaper than geographic profiles for
    // Claude 4.5+; the book lists us./eu./jp. opus-4-7 at $5.50 against $5 unprefixed, so
    // an unlisted ca. profile has no known price rather than the unprefixed $5.
    let (listed, _) = book
        .lookup("bedrock", "eu.anthropic.claude-opus-4-7", NOW)
        .unwrap();
    assert_eq!(listed.rows[0].input.unwrap().to_string(), "5.5");
    assert!(book
        .lookup("bedrock", "ca.anthropic.claude-opus-4-7", NOW)
        .is_none());
    // Where every listed profile costs the same as the model (Claude 3.5 Sonnet v2), an
    // unlisted profile still resolves to it.
    let (entry, how) = book
        .lookup(
            "bedrock",
            "jp.anthropic.claude-3-5-sonnet-20241022-v2:0",
            NOW,
        )
        .unwrap();
    assert_eq!(
        (entry.model.as_str(), how.rule),
        (
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "bedrock region profile"
        )
    );
}

#[test]
fn the_models_the_independent_check_found_unpriced_have_their_list_price() {
    let book = bundled();
    // (provider as clients send it, model, input, cached input, output) per 1M tokens,
    // from genai-prices' provider files (sources in prices/corrections.json).
    let cases = [
        ("gemini", "gemini-2.0-flash", "0.1", "0.025", "0.4"),
        ("gemini", "gemini-2.0-flash-lite", "0.075", "0.075", "0.3"),
        ("gemini", "gemini-1.5-pro", "1.25", "1.25", "5"),
        ("gemini", "gemini-1.5-flash", "0.075", "0.01875", "0.3"),
        ("gemini", "gemini-3-pro-preview", "2", "0.2", "12"),
        (
            "gemini",
            "gemini-2.5-pro-preview-05-06",
            "1.25",
            "0.125",
            "10",
        ),
        ("xai", "grok-3", "3", "0.75", "15"),
        ("xai", "grok-3-mini", "0.3", "0.075", "0.5"),
        ("xai", "grok-4-0709", "3", "0.75", "15"),
        ("xai", "grok-4", "3", "0.75", "15"),
        ("xai", "grok-4-fast-reasoning", "0.2", "0.05", "0.5"),
        ("openai", "o1-mini", "1.1", "0.55", "4.4"),
        ("openai", "o1-preview", "15", "7.5", "60"),
        ("openai", "gpt-4.5-preview", "75", "37.5", "150"),
        ("openai", "chatgpt-4o-latest", "5", "5", "15"),
    ];
    for (provider, model, input, cached, output) in cases {
        assert_eq!(
            rates_of(&book, provider, model),
            (input.into(), cached.into(), output.into()),
            "{provider}/{model}"
        );
    }
}

#[test]
fn grok_4_bills_the_higher_rate_past_128k_tokens() {
    let grok = |input: u64| {
        bundled_cost(&format!(
            r#""provider":"xai","model":"grok-4","inputTokens":{input},"outputTokens":1000"#
        ))
    };
    // 128,000 x 3/M + 1,000 x 15/M; 128,001 x 6/M + 1,000 x 30/M.
    assert_eq!(grok(128_000).as_deref(), Some("0.399"));
    assert_eq!(grok(128_001).as_deref(), Some("0.798006"));
}

fn genai_export() -> genai::Export {
    serde_json::from_value(serde_json::json!({
        "version": "0.2.3",
        "providers": [{"id": "x-ai", "pricingUrls": [], "models": [
            {"id": "m-1", "names": ["m-1", "m-1-latest"], "prices": [
                {"startDate": null, "inputMtok": {"base": "3", "tiers": [{"start": 128000, "price": "6"}]},
                 "cacheReadMtok": "0.75", "cacheWriteMtok": null, "outputMtok": "15"},
                {"startDate": "2026-03-01", "inputMtok": "2", "cacheReadMtok": null,
                 "cacheWriteMtok": null, "outputMtok": "10"}]},
            {"id": "no-output", "names": ["no-output"], "prices": [
                {"startDate": null, "inputMtok": "1", "cacheReadMtok": null, "cacheWriteMtok": null, "outputMtok": null}]}
        ]}]
    }))
    .unwrap()
}

#[test]
fn genai_prices_tiers_and_dates_become_bands_and_dated_entries() {
    let (entries, collisions) = genai::convert(&genai_export());
    assert_eq!(collisions, 0);
    type Seen<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Vec<(u64, Option<&'a str>, Option<&'a str>)>,
    );
    let seen: Vec<Seen> = entries
        .iter()
        .map(|e| {
            (
                e.provider.as_str(),
                e.model.as_str(),
                e.effective_from.as_str(),
                e.usd_per_m_tok
                    .iter()
                    .map(|r| (r.above, r.input.as_deref(), r.cached_input.as_deref()))
                    .collect(),
            )
        })
        .collect();
    let first = vec![
        (0, Some("3"), Some("0.75")),
        (128000, Some("6"), Some("0.75")),
    ];
    let second = vec![(0, Some("2"), None)];
    assert_eq!(
        seen,
        vec![
            ("xai", "m-1", book::EPOCH, first.clone()),
            ("xai", "m-1", "2026-03-01T00:00:00Z", second.clone()),
            ("xai", "m-1-latest", book::EPOCH, first),
            ("xai", "m-1-latest", "2026-03-01T00:00:00Z", second),
        ],
        "a period without an output price is left out"
    );
}

#[test]
fn genai_prices_fills_what_litellm_lacks_and_lists_where_they_disagree() {
    let map = serde_json::json!({
        "xai/m-1": {"litellm_provider": "xai", "mode": "chat",
            "input_cost_per_token": 2e-06, "output_cost_per_token": 1.2e-05}
    });
    let mut book = litellm::convert(&map, "v", serde_json::json!({}))
        .unwrap()
        .book;
    let (entries, _) = genai::convert(&genai_export());
    let at = "2026-11-25T00:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let (added, disagreements) = genai::merge(&mut book, entries, at);
    assert_eq!(added, 2, "m-1-latest's two periods");
    let rows: Vec<(&str, &str, &str, &str)> = disagreements
        .iter()
        .map(|d| {
            (
                d.model.as_str(),
                d.field,
                d.litellm.as_str(),
                d.genai.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("m-1", "history", "one price", "price changes on 2026-03-01"),
            ("m-1", "output", "12", "10"),
        ]
    );
    let report = genai::report(&disagreements, &book, at, "test");
    assert!(report
        .contains("| xai | m-1 | output | 12 | 10 | LiteLLM | primary source; not reviewed yet |"));
    assert!(book
        .entries
        .iter()
        .any(|e| e.model == "m-1-latest" && e.source == "genai-prices 0.2.3"));
}

#[test]
fn openrouter_names_are_priced_from_the_second_source() {
    let book = bundled();
    let (entry, how) = book.lookup("openrouter", "openai/gpt-4o", NOW).unwrap();
    assert_eq!(how.rule, "exact");
    assert_eq!(entry.source, "genai-prices 0.2.3");
    // genai-prices records OpenRouter's cached-input rate from 2026-10-19 on.
    let cached_at = |ts: &str| {
        let ms = ts.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let (entry, _) = book.lookup("openrouter", "openai/gpt-4o", ms).unwrap();
        let r = cost::applied_rates(&entry, crate::event::ServiceTier::Standard, 1000).unwrap();
        (
            r.input.to_string(),
            r.cached_input.to_string(),
            r.output.to_string(),
        )
    };
    assert_eq!(
        cached_at("2026-10-18T00:00:00Z"),
        ("2.5".into(), "2.5".into(), "10".into())
    );
    assert_eq!(
        cached_at("2026-10-19T00:00:00Z"),
        ("2.5".into(), "1.25".into(), "10".into())
    );
}

/// The model names prices/CHECKED.md's tables list (provider, model), as a reviewer
/// wrote them; names with spaces or wildcards are notes, not models.
fn checked_models() -> Vec<(String, String)> {
    let text = include_str!("../../prices/CHECKED.md");
    let providers = [
        "openai",
        "anthropic",
        "google",
        "deepseek",
        "xai",
        "mistral",
    ];
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [provider, models, ..] = cells[..] else {
            continue;
        };
        if !providers.contains(&provider) {
            continue;
        }
        for name in models.split([',', '/']) {
            let name = name.split('(').next().unwrap_or("").trim();
            let plain = name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-@".contains(c));
            if !name.is_empty() && plain && !out.contains(&(provider.into(), name.into())) {
                out.push((provider.to_string(), name.to_string()));
            }
        }
    }
    out
}

/// The bundled book's snapshot date (prices/SOURCE.md).
fn snapshot_ms() -> i64 {
    "2026-11-25T00:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond()
}

/// A checked model's standard rates at the book's snapshot: "input / cached / output".
fn checked_rates(book: &PriceBook, provider: &str, model: &str) -> Option<String> {
    let (entry, _) = book.lookup(provider, model, snapshot_ms())?;
    let r = cost::applied_rates(&entry, crate::event::ServiceTier::Standard, 1000).ok()?;
    Some(format!("{} / {} / {}", r.input, r.cached_input, r.output))
}

#[test]
fn a_checked_model_does_not_change_price_without_a_correction_or_review() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/prices/checked-prices.json");
    let book = bundled();
    let now: std::collections::BTreeMap<String, String> = checked_models()
        .into_iter()
        .filter_map(|(p, m)| Some((format!("{p}/{m}"), checked_rates(&book, &p, &m)?)))
        .collect();
    if std::env::var_os("BURNRATE_REVIEWED_CHECKED_PRICES").is_some() {
        // A reviewer who checked the changes against the providers' pages records them.
        std::fs::write(path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
    }
    let reviewed: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (key, rates) in &now {
        let (provider, model) = key.split_once('/').unwrap();
        let corrected = book
            .lookup(provider, model, snapshot_ms())
            .is_some_and(|(e, _)| e.source.starts_with("correction:"));
        assert!(
            reviewed.get(key) == Some(rates) || corrected,
            "{key} (listed in prices/CHECKED.md) is now {rates}, reviewed as {:?}: check the provider's page, then add a correction or record the review with BURNRATE_REVIEWED_CHECKED_PRICES=1",
            reviewed.get(key)
        );
    }
}

#[test]
fn deepseek_v4_is_billed_its_flat_price_before_peak_hours_began() {
    let v4 = |model: &str, at: &str| {
        bundled_cost(&format!(
            r#""provider":"deepseek","model":"{model}","timestamp":"{at}","inputTokens":1000000,"outputTokens":1000000"#
        ))
    };
    // 1M input + 1M output: flat 0.435 + 0.87 before 2026-08-16 16:00 UTC, then the
    // peak rate 1.32 + 3.96.
    assert_eq!(
        v4("deepseek-v4-pro", "2026-08-16T15:59:59Z").as_deref(),
        Some("1.305")
    );
    assert_eq!(
        v4("deepseek-v4-pro", "2026-08-16T16:00:00Z").as_deref(),
        Some("5.28")
    );
    // v4-flash: 0.14 + 0.28, then 0.44 + 1.32 until 2026-09-10, then 0.30 + 1.20.
    assert_eq!(
        v4("deepseek-v4-flash", "2026-08-01T00:00:00Z").as_deref(),
        Some("0.42")
    );
    assert_eq!(
        v4("deepseek-v4-flash", "2026-09-01T00:00:00Z").as_deref(),
        Some("1.76")
    );
    assert_eq!(
        v4("deepseek-v4-flash", "2026-09-10T00:00:00Z").as_deref(),
        Some("1.5")
    );
}

#[test]
fn bedrock_in_region_claude_ids_carry_the_regional_premium_over_global() {
    let book = bundled();
    let input_at = |model: &str, ts: &str| {
        let ms = ts.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let (entry, _) = book.lookup("bedrock", model, ms).unwrap();
        let r = cost::applied_rates(&entry, crate::event::ServiceTier::Standard, 1000).unwrap();
        (r.input.to_string(), r.output.to_string())
    };
    let now = "2026-11-25T00:00:00Z";
    // Global profile $5 / $25; in-region (unprefixed) and geographic profiles 10% more.
    assert_eq!(
        input_at("global.anthropic.claude-opus-4-7", now),
        ("5".into(), "25".into())
    );
    assert_eq!(
        input_at("anthropic.claude-opus-4-7", now),
        ("5.5".into(), "27.5".into())
    );
    // Sonnet 5: promotional until 2026-08-31, standard from 2026-09-01, regional +10%.
    let before = "2026-08-31T23:59:59Z";
    assert_eq!(
        input_at("global.anthropic.claude-sonnet-5", before),
        ("2".into(), "10".into())
    );
    assert_eq!(
        input_at("global.anthropic.claude-sonnet-5", now),
        ("3".into(), "15".into())
    );
    assert_eq!(
        input_at("us.anthropic.claude-sonnet-5", before),
        ("2.2".into(), "11".into())
    );
    assert_eq!(
        input_at("anthropic.claude-sonnet-5", now),
        ("3.3".into(), "16.5".into())
    );
}

#[test]
fn grok_4_20_and_gpt_5_6_sol_are_billed_their_price_before_their_cuts() {
    let cost = |provider: &str, model: &str, at: &str, input: u64| {
        bundled_cost(&format!(
            r#""provider":"{provider}","model":"{model}","timestamp":"{at}","inputTokens":{input},"outputTokens":1000000"#
        ))
    };
    // Grok 4.20 before 2026-04-30: $2 / $6, from a 200K-token prompt $4 / $12.
    let grok = "grok-4.20-0309-reasoning";
    // 199,999 x 2/M + 1M x 6/M; 200,000 x 4/M + 1M x 12/M; after the cut
    // 100,000 x 1.25/M + 1M x 2.50/M.
    assert_eq!(
        cost("xai", grok, "2026-04-29T12:00:00Z", 199_999).as_deref(),
        Some("6.399998")
    );
    assert_eq!(
        cost("xai", grok, "2026-04-29T12:00:00Z", 200_000).as_deref(),
        Some("12.8")
    );
    assert_eq!(
        cost("xai", grok, "2026-04-30T00:00:00Z", 100_000).as_deref(),
        Some("2.625")
    );
    // GPT-5.6 Sol before 2026-08-21: $5 / $30; after: $4 / $20 (100K input + 1M output).
    assert_eq!(
        cost("openai", "gpt-5.6-sol", "2026-08-20T12:00:00Z", 100_000).as_deref(),
        Some("30.5")
    );
    assert_eq!(
        cost("openai", "gpt-5.6-sol", "2026-08-21T00:00:00Z", 100_000).as_deref(),
        Some("20.4")
    );
}
