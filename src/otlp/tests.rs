//! Tests of the span -> event mapping and of both OTLP decodings.

use super::proto::*;
use super::*;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

/// 2026-03-01T10:00:00Z in nanoseconds.
const START: u64 = 1_772_359_200_000_000_000;

fn span(attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        name: "chat gpt-4o-mini".into(),
        start_time_unix_nano: START,
        end_time_unix_nano: START + 1_250_000_000,
        attributes,
        status: None,
    }
}

fn export(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
            }),
            scope_spans: vec![ScopeSpans { spans }],
        }],
    }
}

fn openai_attrs() -> Vec<KeyValue> {
    vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.system", "openai"),
        s("gen_ai.request.model", "gpt-4o-mini"),
        s("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        i("gen_ai.usage.input_tokens", 1200),
        i("gen_ai.usage.output_tokens", 300),
        i("gen_ai.usage.cache_read.input_tokens", 1024),
    ]
}

fn one(request: &ExportTraceServiceRequest) -> Json {
    let mapped = map_request(request, &AttributeNames::new());
    assert_eq!(mapped.events.len(), 1, "{mapped:?}");
    mapped.events[0].event.clone()
}

#[test]
fn an_openai_span_becomes_an_event_with_ids_usage_and_timing() {
    let event = one(&export(
        vec![s("service.name", "support-bot")],
        vec![span(openai_attrs())],
    ));
    assert_eq!(
        event,
        json!({
            "externalRequestId": "otel-0102030405060708090a0b0c0d0e0f10-0102030405060708",
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "endpointTag": "support-bot",
            "inputTokens": 1200, "outputTokens": 300, "cachedTokens": 1024,
            "cacheWriteTokens": 0, "reasoningTokens": 0,
            "status": "success",
            "latencyMs": 1250,
            "timestamp": "2026-03-01T10:00:01.25Z",
            "operation": "chat",
        })
    );
}

#[test]
fn spans_without_usage_are_skipped_and_counted() {
    let http = span(vec![s("http.request.method", "POST")]);
    let no_usage = span(vec![
        s("gen_ai.system", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
    ]);
    let mapped = map_request(
        &export(vec![], vec![http, span(openai_attrs()), no_usage]),
        &AttributeNames::new(),
    );
    assert_eq!(mapped.skipped, 2);
    assert_eq!(mapped.events.len(), 1);
    assert_eq!(
        mapped.events[0].span,
        "0102030405060708090a0b0c0d0e0f10/0102030405060708"
    );
}

#[test]
fn attribution_prefers_the_span_then_the_resource_then_service_name() {
    let mut attrs = openai_attrs();
    attrs.push(s("burnrate.endpoint_tag", "support.reply"));
    attrs.push(s("enduser.id", "u-1"));
    let resource = vec![
        s("service.name", "support-bot"),
        s("burnrate.endpoint_tag", "resource.tag"),
        s("burnrate.tenant_id", "acme"),
        s("burnrate.prompt_version", "v7"),
        s("deployment.environment.name", "staging"),
    ];
    let event = one(&export(resource, vec![span(attrs)]));
    assert_eq!(event["endpointTag"], "support.reply");
    assert_eq!(event["tenantId"], "acme");
    assert_eq!(event["promptVersion"], "v7");
    assert_eq!(event["userId"], "u-1");
    assert_eq!(event["environment"], "staging");

    let event = one(&export(
        vec![
            s("service.name", "svc"),
            s("burnrate.endpoint_tag", "resource.tag"),
        ],
        vec![span(openai_attrs())],
    ));
    assert_eq!(event["endpointTag"], "resource.tag");
}

#[test]
fn a_workspace_attribute_name_wins_over_the_built_in_ones() {
    let mut attrs = openai_attrs();
    attrs.push(s("app.feature", "search.rank"));
    attrs.push(s("app.customer", "globex"));
    attrs.push(s("burnrate.tenant_id", "acme"));
    let names: AttributeNames = [
        ("endpointTag".to_string(), vec!["app.feature".to_string()]),
        ("tenantId".to_string(), vec!["app.customer".to_string()]),
    ]
    .into_iter()
    .collect();
    let mapped = map_request(
        &export(vec![s("service.name", "svc")], vec![span(attrs)]),
        &names,
    );
    let event = &mapped.events[0].event;
    assert_eq!(event["endpointTag"], "search.rank");
    assert_eq!(event["tenantId"], "globex");
}

#[test]
fn failed_spans_take_their_status_from_error_type_and_the_span_status() {
    let mut attrs = openai_attrs();
    attrs.push(s("error.type", "RateLimitError"));
    let event = one(&export(vec![], vec![span(attrs)]));
    assert_eq!(event["status"], "rate_limited");
    assert_eq!(event["errorCode"], "RateLimitError");

    let mut failed = span(openai_attrs());
    failed.status = Some(Status {
        message: "boom".into(),
        code: STATUS_ERROR,
    });
    let event = one(&export(vec![], vec![failed]));
    assert_eq!(event["status"], "error");
    assert!(event.get("errorCode").is_none());

    let mut attrs = openai_attrs();
    attrs.push(s("error.type", "APITimeoutError"));
    assert_eq!(one(&export(vec![], vec![span(attrs)]))["status"], "timeout");
}

#[test]
fn a_count_that_is_not_an_integer_is_passed_on_for_validation_to_name() {
    let attrs = vec![
        s("gen_ai.system", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        kv("gen_ai.usage.input_tokens", Value::DoubleValue(12.5)),
        i("gen_ai.usage.output_tokens", 3),
        kv(
            "gen_ai.usage.cache_read.input_tokens",
            Value::DoubleValue(2.0),
        ),
    ];
    let event = one(&export(vec![], vec![span(attrs)]));
    assert_eq!(event["inputTokens"], json!(12.5));
    assert_eq!(event["outputTokens"], json!(3));
    // A double holding an integer is an integer.
    assert_eq!(event["cachedTokens"], json!(2));
}

#[test]
fn openlit_zero_cost_is_an_unknown_cost_not_free() {
    let mut attrs = openai_attrs();
    attrs.push(kv("gen_ai.usage.cost", Value::DoubleValue(0.0)));
    assert!(one(&export(vec![], vec![span(attrs)]))
        .get("costUsd")
        .is_none());
    let mut attrs = openai_attrs();
    attrs.push(kv("gen_ai.usage.cost", Value::DoubleValue(0.0021)));
    assert_eq!(
        one(&export(vec![], vec![span(attrs)]))["costUsd"],
        json!(0.0021)
    );
}

#[test]
fn openinference_spellings_are_read() {
    let attrs = vec![
        s("llm.provider", "openai"),
        s("llm.model_name", "gpt-4o"),
        i("llm.token_count.prompt", 500),
        i("llm.token_count.completion", 90),
        i("llm.token_count.completion_details.reasoning", 40),
        s("openinference.span.kind", "LLM"),
    ];
    let event = one(&export(vec![], vec![span(attrs)]));
    assert_eq!(
        (
            &event["provider"],
            &event["model"],
            &event["inputTokens"],
            &event["outputTokens"],
            &event["reasoningTokens"]
        ),
        (
            &json!("openai"),
            &json!("gpt-4o"),
            &json!(500),
            &json!(90),
            &json!(40)
        )
    );
}

#[test]
fn semantic_convention_provider_names_map_to_the_price_books() {
    assert_eq!(provider_name("aws.bedrock"), "bedrock");
    assert_eq!(provider_name("gcp.vertex_ai"), "vertex");
    assert_eq!(provider_name("gcp.gemini"), "google");
    assert_eq!(provider_name("azure.ai.openai"), "azure");
    assert_eq!(provider_name("OpenAI"), "openai");
}

/// The same export as the stock exporters send it in OTLP/JSON and in protobuf.
#[test]
fn json_and_protobuf_exports_decode_to_the_same_request() {
    let body = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"support-bot"}}]},
      "scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.openai_v2"},"spans":[{
        "traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
        "name":"chat gpt-4o-mini","kind":3,
        "startTimeUnixNano":"1772359200000000000","endTimeUnixNano":1772359201250000000,
        "attributes":[
          {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
          {"key":"gen_ai.system","value":{"stringValue":"openai"}},
          {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-mini"}},
          {"key":"gen_ai.response.model","value":{"stringValue":"gpt-4o-mini-2024-07-18"}},
          {"key":"gen_ai.usage.input_tokens","value":{"intValue":"1200"}},
          {"key":"gen_ai.usage.output_tokens","value":{"intValue":300}},
          {"key":"gen_ai.usage.cache_read.input_tokens","value":{"intValue":"1024"}},
          {"key":"empty","value":{}},
          {"key":"list","value":{"arrayValue":{"values":[{"stringValue":"a"}]}}}],
        "status":{}}]}]}]}"#;
    let from_json = decode_json(body.as_bytes()).unwrap();
    let mut expected_attrs = openai_attrs();
    expected_attrs.push(KeyValue {
        key: "empty".into(),
        value: Some(AnyValue { value: None }),
    });
    expected_attrs.push(kv(
        "list",
        Value::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(Value::StringValue("a".into())),
            }],
        }),
    ));
    let mut expected_span = span(expected_attrs);
    expected_span.status = Some(Status::default());
    let expected = export(vec![s("service.name", "support-bot")], vec![expected_span]);
    assert_eq!(from_json, expected);
    let bytes = prost::Message::encode_to_vec(&expected);
    assert_eq!(decode_protobuf(&bytes).unwrap(), expected);
    assert_eq!(one(&from_json)["endpointTag"], "support-bot");
}

#[test]
fn malformed_exports_are_refused_with_the_reason() {
    let err = decode_json(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#)
        .unwrap_err();
    assert!(err.contains("hex"), "{err}");
    let err = decode_protobuf(&[0x0a, 0xff, 0xff]).unwrap_err();
    assert!(err.starts_with("invalid OTLP protobuf"), "{err}");
}

#[test]
fn two_spans_of_one_response_share_the_request_id_and_a_long_id_falls_back() {
    // OpenLIT's span (Anthropic's own input, its cost) around the Anthropic SDK's span
    // (cache inside input): one call, one id, the same tokens.
    let openlit = span(vec![
        s("gen_ai.provider.name", "anthropic"),
        s("gen_ai.response.id", "msg_01"),
        i("gen_ai.usage.input_tokens", 30),
        i("gen_ai.usage.output_tokens", 250),
        i("gen_ai.usage.cache_read.input_tokens", 2000),
        i("gen_ai.usage.cache_creation.input_tokens", 500),
        kv("gen_ai.usage.cost", Value::DoubleValue(0.0)),
    ]);
    let mut sdk = span(vec![
        s("gen_ai.provider.name", "anthropic"),
        s("gen_ai.response.id", "msg_01"),
        i("gen_ai.usage.input_tokens", 2530),
        i("gen_ai.usage.output_tokens", 250),
        i("gen_ai.usage.cache_read.input_tokens", 2000),
        i("gen_ai.usage.cache_write.input_tokens", 500),
    ]);
    sdk.span_id = vec![9; 8];
    let mapped = map_request(&export(vec![], vec![openlit, sdk]), &AttributeNames::new());
    let [a, b] = [&mapped.events[0].event, &mapped.events[1].event];
    assert_eq!(
        a["externalRequestId"],
        "otel-0102030405060708090a0b0c0d0e0f10-anthropic-msg_01"
    );
    for field in [
        "externalRequestId",
        "inputTokens",
        "cachedTokens",
        "cacheWriteTokens",
        "outputTokens",
    ] {
        assert_eq!(a[field], b[field], "{field}");
    }
    assert_eq!(a["inputTokens"], 2530);

    // The same response id in another trace is another call (a server that answers
    // every call with one id).
    let mut other = span(vec![
        s("gen_ai.provider.name", "anthropic"),
        s("gen_ai.response.id", "msg_01"),
        i("gen_ai.usage.input_tokens", 10),
    ]);
    other.trace_id = vec![7; 16];
    let event = one(&export(vec![], vec![other]));
    assert_eq!(
        event["externalRequestId"],
        "otel-07070707070707070707070707070707-anthropic-msg_01"
    );

    // An id the contract could not hold (128 characters) is not used.
    let long = "r".repeat(84); // otel- + 32 + - + openai + - + 84 = 129
    let mut attrs = openai_attrs();
    attrs.push(s("gen_ai.response.id", &long));
    let event = one(&export(vec![], vec![span(attrs)]));
    assert_eq!(
        event["externalRequestId"],
        "otel-0102030405060708090a0b0c0d0e0f10-0102030405060708"
    );
}
