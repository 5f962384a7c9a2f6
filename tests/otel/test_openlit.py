"""OTLP ingest end to end with OpenLIT: openlit_app.py (its own process) wraps the real
openai and anthropic SDKs talking to the local fake provider (sdk/python/tests/fakes.py)
and exports with OpenLIT's stock OTLP/HTTP exporter to the real burnrate binary. The
stored events are checked against values computed by hand from the fake provider's
usage, OpenLIT's price list (tests/otel/openlit-pricing.json) and the price book."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# OpenLIT's price list, USD per 1K tokens: gpt-4o-mini 0.0001 input, 0.00005 cached,
# 0.0004 output; text-embedding-3-small 0.00003. Chat usage 1200 input (1024 cached),
# 300 output; OpenLIT bills the uncached part at the input price:
# (1200 - 1024) * 0.0001/1000 + 1024 * 0.00005/1000 + 300 * 0.0004/1000.
CHAT_CLIENT_COST = 0.0000176 + 0.0000512 + 0.00012  # 0.0001888
# 42 input tokens * 0.00003/1000 (the price book would say 42 * 0.02/1M = 0.00000084).
EMBEDDINGS_CLIENT_COST = 0.00000126
# o4-mini is not in OpenLIT's list: its cost is 0, unknown, so the price book prices it
# (USD per 1M: 1.1 input, 0.275 cached, 4.4 output): 900 input of which 512 cached, 400
# output of which 128 reasoning: 388 * 1.1 + 512 * 0.275 + 400 * 4.4.
RESPONSES_BOOK_COST = (426.8 + 140.8 + 1760) / 1e6  # 0.0023276
# claude-sonnet-4-5 (USD per 1M: 3 input, 0.3 cache read, 3.75 cache write, 15 output);
# Anthropic's usage: 30 uncached input, 2000 cache read, 500 cache write, 250 output.
ANTHROPIC_BOOK_COST = (30 * 3 + 2000 * 0.3 + 500 * 3.75 + 250 * 15) / 1e6  # 0.006315


def _run_app(server, fake):
    env = dict(os.environ)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = server.url
    env["OTEL_EXPORTER_OTLP_HEADERS"] = "Authorization=Bearer%20" + server.ingest_key
    env["OTEL_EXPORTER_OTLP_COMPRESSION"] = "gzip"
    env.pop("OTEL_EXPORTER_OTLP_PROTOCOL", None)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "openlit_app.py"), fake.url,
         os.path.join(HERE, "openlit-pricing.json")],
        capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _one(server, rid):
    events = server.events(rid)
    assert len(events) == 1, (rid, events)
    return events[0]


def test_openlit_spans_become_events_with_its_cost_tokens_and_attribution(fresh_server, fake):
    server = fresh_server
    ids = _run_app(server, fake)

    chat = _one(server, "otel-%s-openai-%s" % tuple(ids["chat"]))
    assert (chat["provider"], chat["model"], chat["operation"]) == ("openai", "gpt-4o-mini", "chat")
    assert (chat["endpointTag"], chat["tenantId"], chat["promptVersion"]) == (
        "support.reply", "acme", "v7")
    assert chat["environment"] == "prod"  # OpenLIT's environment="production"
    assert (chat["inputTokens"], chat["cachedTokens"], chat["cacheWriteTokens"],
            chat["outputTokens"], chat["reasoningTokens"]) == (1200, 1024, 0, 300, 0)
    assert chat["costSource"] == "client"
    assert abs(chat["costUsd"] - CHAT_CLIENT_COST) < 1e-12
    assert chat["status"] == "success" and chat["latencyMs"] is not None

    responses = _one(server, "otel-%s-openai-%s" % tuple(ids["responses"]))
    assert (responses["model"], responses["endpointTag"], responses["tenantId"]) == (
        "o4-mini", "support-bot", None)
    assert (responses["inputTokens"], responses["cachedTokens"], responses["outputTokens"],
            responses["reasoningTokens"]) == (900, 512, 400, 128)
    assert responses["costSource"] == "catalog"
    assert abs(responses["costUsd"] - RESPONSES_BOOK_COST) < 1e-12

    # The Anthropic SDK traces its own call too (a child span with usage, cache inside
    # input) and OpenLIT copies Anthropic's input (cache outside): both name the same
    # response, so they are one call with the cache counted once inside input.
    claude = _one(server, "otel-%s-anthropic-%s" % tuple(ids["anthropic"]))
    assert (claude["provider"], claude["model"], claude["endpointTag"], claude["tenantId"]) == (
        "anthropic", "claude-sonnet-4-5", "support.summarize", "beta")
    assert (claude["inputTokens"], claude["cachedTokens"], claude["cacheWriteTokens"],
            claude["outputTokens"]) == (2000 + 500 + 30, 2000, 500, 250)
    assert claude["costSource"] == "catalog"
    assert abs(claude["costUsd"] - ANTHROPIC_BOOK_COST) < 1e-12

    # Embeddings carry no response id: the trace and span ids name the call.
    events = server._get("/v1/events?limit=1000")["events"]
    embeddings = [e for e in events if e["model"] == "text-embedding-3-small"]
    assert len(embeddings) == 1, events
    e = embeddings[0]
    assert e["externalRequestId"].startswith("otel-") and len(e["externalRequestId"]) == 5 + 32 + 1 + 16
    assert (e["operation"], e["inputTokens"], e["outputTokens"], e["costSource"]) == (
        "embeddings", 42, 0, "client")
    assert abs(e["costUsd"] - EMBEDDINGS_CLIENT_COST) < 1e-12
    # Four calls, four events: the handlers' spans (no usage) are skipped, the nested
    # Anthropic SDK span was a duplicate.
    assert len(events) == 4, events
