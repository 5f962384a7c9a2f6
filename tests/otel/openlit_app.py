"""An application instrumented with OpenLIT, run by test_openlit.py in a process of its
own (openlit.init sets the process-wide tracer provider and patches the openai and
anthropic SDKs, which would also trace the openai-v2 tests). It calls the fake provider
with the real SDKs; OpenLIT's stock OTLP/HTTP exporter sends the spans to burnrate, as
configured by the standard OTEL_EXPORTER_OTLP_* variables the test sets. Attribution is
baggage copied onto spans by the stock BaggageSpanProcessor (docs/otlp.md). Each request
is a span of the application's own (a trace), as a web handler's would be. Prints each
call's trace id and the provider's response id as JSON.

Usage: openlit_app.py FAKE_PROVIDER_URL PRICING_JSON"""

from __future__ import annotations

import json
import sys

import anthropic
import openlit
from openai import OpenAI
from opentelemetry import baggage, context, trace
from opentelemetry.processor.baggage import BaggageSpanProcessor


def handled(name, pairs, call):
    """One request of the application: its own span (the trace), the attribution as
    baggage, the SDK call. Returns (trace id as hex, the SDK's reply)."""
    ctx = None
    for key, value in pairs.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx) if ctx is not None else None
    try:
        with trace.get_tracer("openlit-app").start_as_current_span(name) as root:
            return "%032x" % root.get_span_context().trace_id, call()
    finally:
        if token is not None:
            context.detach(token)


def main() -> None:
    fake_url, pricing = sys.argv[1], sys.argv[2]
    # Synchronous export, so every span is sent before the process exits; a local
    # price list (OpenLIT fetches one from the internet by default).
    openlit.init(application_name="support-bot", environment="production", disable_batch=True,
                 disable_metrics=True, disable_events=True, capture_message_content=False,
                 pricing_json=pricing)
    trace.get_tracer_provider().add_span_processor(
        BaggageSpanProcessor(lambda key: key.startswith("burnrate.")))
    client = OpenAI(base_url=fake_url + "/v1", api_key="sk-test")
    claude = anthropic.Anthropic(base_url=fake_url, api_key="sk-ant-test")
    ids = {}
    trace_id, reply = handled(
        "POST /reply",
        {"burnrate.endpoint_tag": "support.reply", "burnrate.tenant_id": "acme",
         "burnrate.prompt_version": "v7"},
        lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]))
    ids["chat"] = [trace_id, reply.id]
    trace_id, reply = handled("POST /rank", {},
                              lambda: client.responses.create(model="o4-mini", input="hi"))
    ids["responses"] = [trace_id, reply.id]
    handled("POST /embed", {},
            lambda: client.embeddings.create(model="text-embedding-3-small", input="hello"))
    trace_id, reply = handled(
        "POST /summarize",
        {"burnrate.endpoint_tag": "support.summarize", "burnrate.tenant_id": "beta"},
        lambda: claude.messages.create(
            model="claude-sonnet-4-5", max_tokens=100,
            messages=[{"role": "user", "content": "hi"}]))
    ids["anthropic"] = [trace_id, reply.id]
    trace.get_tracer_provider().shutdown()
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
