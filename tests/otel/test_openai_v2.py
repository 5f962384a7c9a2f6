"""OTLP ingest end to end: the official opentelemetry-instrumentation-openai-v2 wraps the
real openai SDK talking to the local fake provider (sdk/python/tests/fakes.py); the stock
OTLP/HTTP exporter (protobuf, gzip) sends the spans to the real burnrate binary.
Attribution is set from application code with baggage, copied onto spans by the stock
BaggageSpanProcessor (the example of docs/otlp.md)."""

from __future__ import annotations

from opentelemetry import baggage, context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from openai import OpenAI

# gpt-4o-mini: $0.15/M input, $0.075/M cached input, $0.60/M output.
# The fake provider's chat usage is 1200 input (1024 of them cached) and 300 output, but
# openai-v2 records no cache count for chat completions (only for the Responses API), so
# the span says 1200 uncached: 1200 * 0.15 + 300 * 0.60 = 360 micro-USD.
CHAT_COST = 0.00036


def _request_id(span) -> str:
    """The trace and the provider's response id when the span has one, else the trace and
    span ids."""
    response = span.attributes.get("gen_ai.response.id")
    if response:
        return "otel-%032x-%s-%s" % (span.context.trace_id, span.attributes["gen_ai.provider.name"],
                                     response)
    return "otel-%032x-%016x" % (span.context.trace_id, span.context.span_id)


def test_openai_v2_spans_become_priced_events_attributed_from_baggage(server, fake, instrumented):
    captured = instrumented
    client = OpenAI(base_url=fake.url + "/v1", api_key="sk-test")
    # Application code: who and what the call is for, as baggage on the current context.
    ctx = baggage.set_baggage("burnrate.endpoint_tag", "support.reply")
    ctx = baggage.set_baggage("burnrate.tenant_id", "acme", ctx)
    ctx = baggage.set_baggage("burnrate.prompt_version", "v7", ctx)
    token = context.attach(ctx)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        context.detach(token)
    span = captured.get_finished_spans()[-1]
    rid = _request_id(span)
    events = server.events(rid)
    assert len(events) == 1, events
    e = events[0]
    assert (e["provider"], e["model"], e["endpointTag"], e["tenantId"], e["promptVersion"]) == (
        "openai", "gpt-4o-mini", "support.reply", "acme", "v7")
    assert (e["inputTokens"], e["cachedTokens"], e["outputTokens"]) == (1200, 0, 300)
    assert e["status"] == "success"
    assert abs(e["costUsd"] - CHAT_COST) < 1e-12
    assert e["costSource"] == "catalog"
    # An exporter retry of the same spans is a duplicate, never a second call.
    resend = OTLPSpanExporter(endpoint=server.url + "/v1/traces", headers={"x-api-key": server.ingest_key})
    assert resend.export([span]) == SpanExportResult.SUCCESS
    assert len(server.events(rid)) == 1
    assert server.count() == 1


def test_without_baggage_the_service_name_is_the_endpoint(server, fake, instrumented):
    client = OpenAI(base_url=fake.url + "/v1", api_key="sk-test")
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    span = instrumented.get_finished_spans()[-1]
    rid = _request_id(span)
    e = server.events(rid)[0]
    assert (e["endpointTag"], e["operation"], e["inputTokens"], e["outputTokens"]) == (
        "support-bot", "embeddings", 42, 0)

