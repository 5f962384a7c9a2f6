"""track(), record(), context(), pseudonymize(), guard() and the usage helpers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
from fakes import FakeBurnrate, dead_url

from burnrate import (
    BudgetExceeded,
    Burnrate,
    Usage,
    parse_guard_response,
    pseudonymize,
    usage_from_anthropic,
    usage_from_bedrock,
    usage_from_gemini,
    usage_from_openrouter,
    usage_from_shape,
    usage_from_xai,
)


def events(br, ingest, n):
    assert br.flush(5)
    evs = ingest.wait_for(n)
    assert len(evs) == n, evs
    return evs


# ---- track ------------------------------------------------------------------------------------


def test_track_context_manager(br, ingest):
    with br.context(tenant_id="acme", user_id="u-1"):
        with br.track("google", "gemini-2.5-flash", endpoint_tag="search.summarize") as t:
            meta = {"promptTokenCount": 5120, "candidatesTokenCount": 230, "cachedContentTokenCount": 4096,
                    "thoughtsTokenCount": 512, "totalTokenCount": 5862}
            t.set_usage(usage_from_gemini(meta))
    (ev,) = events(br, ingest, 1)
    assert (ev["provider"], ev["model"], ev["endpointTag"], ev["tenantId"], ev["userId"]) == (
        "google", "gemini-2.5-flash", "search.summarize", "acme", "u-1")
    assert (ev["inputTokens"], ev["cachedTokens"], ev["outputTokens"], ev["reasoningTokens"]) == (5120, 4096, 742, 512)
    assert ev["status"] == "success" and "usageMissing" not in ev
    assert t.external_request_id == ev["externalRequestId"]


def test_track_exception_is_reraised_and_recorded(br, ingest):
    class ThrottlingException(Exception):
        pass

    with pytest.raises(ThrottlingException):
        with br.track("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", endpoint_tag="t"):
            raise ThrottlingException("slow down")
    with pytest.raises(ValueError):
        with br.track("mistral", "mistral-small", endpoint_tag="t") as t:
            t.retry()
            raise ValueError("x")
    a, b = events(br, ingest, 2)
    assert (a["status"], a["errorCode"], a["usageMissing"]) == ("rate_limited", "ThrottlingException", True)
    assert (b["status"], b["errorCode"], b["attempt"]) == ("error", "ValueError", 2)


def test_track_decorator_sync_and_async(br, ingest):
    @br.track("bedrock", "amazon.nova-lite-v1:0", endpoint_tag="deco", usage_from=lambda r: usage_from_bedrock(r))
    def converse(n):
        return {"output": {}, "usage": {"inputTokens": n, "outputTokens": 7, "totalTokens": n + 7,
                                        "cacheReadInputTokens": 3, "cacheWriteInputTokens": 0}}

    @br.track("deepseek", "deepseek-chat", endpoint_tag="deco.async")
    async def acall():
        return "ok"

    converse(10)
    converse(20)
    assert asyncio.run(acall()) == "ok"
    a, b, c = events(br, ingest, 3)
    assert a["externalRequestId"] != b["externalRequestId"]
    assert (a["inputTokens"], a["cachedTokens"], a["outputTokens"]) == (13, 3, 7)
    assert b["inputTokens"] == 23
    assert c["endpointTag"] == "deco.async" and c["usageMissing"] is True


def test_track_counts_kwargs_and_exact_cost(br, ingest):
    with br.track("openrouter", "anthropic/claude-3.5-haiku", endpoint_tag="t", external_request_id="abc", attempt=2) as t:
        t.set_usage(input_tokens=100, output_tokens=20, cost_usd=0.00012345678912)
    (ev,) = events(br, ingest, 1)
    assert ev["externalRequestId"] == "abc" and ev["attempt"] == 2
    assert ev["costUsd"] == 0.000123457  # rounded to nano-dollars


def test_record_returns_id(br, ingest):
    rid = br.record("azure", "gpt-4o", Usage(10, 0, 0, 1), endpoint_tag="t", status="timeout",
                    error_code="408", operation="chat", tenant_id="x")
    (ev,) = events(br, ingest, 1)
    assert ev["externalRequestId"] == rid and ev["status"] == "timeout" and ev["tenantId"] == "x"


# ---- context ----------------------------------------------------------------------------------


def test_context_nesting_and_decorator(br, ingest):
    @br.context(endpoint_tag="from.decorator")
    def handler():
        br.record("openai", "m", Usage(1))

    with br.context(tenant_id="outer", tags={"a": "1"}):
        with br.context(tenant_id="inner", tags={"b": "2"}):
            br.record("openai", "m", Usage(1), endpoint_tag="t")
        br.record("openai", "m", Usage(1), endpoint_tag="t")
    handler()
    a, b, c = events(br, ingest, 3)
    assert (a["tenantId"], a["tags"]) == ("inner", {"a": "1", "b": "2"})
    assert (b["tenantId"], b["tags"]) == ("outer", {"a": "1"})
    assert c["endpointTag"] == "from.decorator" and "tenantId" not in c


def test_context_rejects_unknown_keys(br):
    with pytest.raises(TypeError):
        br.context(tenant="x")


def test_environment_and_data_mode(make_br, ingest):
    br = make_br(ingest.url, environment="staging", data_mode="test")
    br.record("openai", "m", Usage(1), endpoint_tag="t")
    with br.context(data_mode="demo"):
        br.record("openai", "m", Usage(1), endpoint_tag="t")
    a, b = events(br, ingest, 2)
    assert (a["environment"], a["dataMode"]) == ("staging", "test")
    assert b["dataMode"] == "demo"


def test_env_configuration(monkeypatch, ingest):
    monkeypatch.setenv("BURNRATE_URL", ingest.url)
    monkeypatch.setenv("BURNRATE_API_KEY", "env-key")
    br = Burnrate(flush_interval=0.02)
    br.record("openai", "m", Usage(1), endpoint_tag="t")
    assert br.flush(5)
    assert ingest.headers[0]["X-API-Key"] == "env-key"
    monkeypatch.setenv("BURNRATE_DISABLED", "1")
    assert Burnrate().stats()["enabled"] is False


def test_old_burnrate_key_env_var_still_works_with_a_deprecation_warning(monkeypatch, ingest):
    monkeypatch.setenv("BURNRATE_URL", ingest.url)
    monkeypatch.delenv("BURNRATE_API_KEY", raising=False)
    monkeypatch.setenv("BURNRATE_KEY", "old-env-key")
    with pytest.warns(FutureWarning, match="BURNRATE_KEY is deprecated; set BURNRATE_API_KEY"):
        br = Burnrate(flush_interval=0.02)
    br.record("openai", "m", Usage(1), endpoint_tag="t")
    assert br.flush(5)
    assert ingest.headers[0]["X-API-Key"] == "old-env-key"


def test_burnrate_api_key_wins_over_the_old_name_without_a_warning(monkeypatch, ingest, recwarn):
    monkeypatch.setenv("BURNRATE_URL", ingest.url)
    monkeypatch.setenv("BURNRATE_API_KEY", "new-env-key")
    monkeypatch.setenv("BURNRATE_KEY", "old-env-key")
    br = Burnrate(flush_interval=0.02)
    br.record("openai", "m", Usage(1), endpoint_tag="t")
    assert br.flush(5)
    assert ingest.headers[0]["X-API-Key"] == "new-env-key"
    assert not [w for w in recwarn if "BURNRATE_KEY" in str(w.message)]


# ---- pseudonymize -----------------------------------------------------------------------------


def test_pseudonymize():
    want = "ps_" + hmac.new(b"k", b"user-42", hashlib.sha256).hexdigest()
    assert pseudonymize("user-42", "k") == want
    assert Burnrate(url="http://x", api_key="y", pseudonymize_secret="k").pseudonymize("user-42") == want
    assert len(want) == 67
    with pytest.raises(ValueError):
        Burnrate(url="http://x", api_key="y").pseudonymize("u")


def test_pseudonymized_ids_are_not_hashed_twice(make_br, ingest):
    br = make_br(ingest.url, pseudonymize_secret="k")
    br.record("openai", "m", Usage(1), endpoint_tag="t", user_id=br.pseudonymize("u"))
    br.record("openai", "m", Usage(1), endpoint_tag="t", user_id="u")
    a, b = events(br, ingest, 2)
    assert a["userId"] == b["userId"] == pseudonymize("u", "k")


# ---- guard ------------------------------------------------------------------------------------


def test_parse_guard_response():
    d = parse_guard_response(200, b'{"allow": true}')
    assert d.allow and not d.degraded
    d = parse_guard_response(200, b'{"allow": false, "reason": "tenant budget acme/monthly exhausted"}')
    assert not d.allow and d.reason.startswith("tenant budget")
    d = parse_guard_response(200, b'{"allowed": false}')
    assert not d.allow
    d = parse_guard_response(402, b'{"allow": false, "reason": "paused"}')
    assert not d.allow and d.reason == "paused"
    for status, body in ((404, b"not found"), (500, b""), (200, b"garbage"), (200, b'{"allow": "yes"}')):
        d = parse_guard_response(status, body)
        assert d.allow and d.degraded


def test_guard_against_fake_server(make_br, ingest):
    br = make_br(ingest.url, pseudonymize_secret="k")
    d = br.guard("support.reply", tenant_id="acme", user_id="u", model="gpt-4o-mini",
                 estimated_cost_usd=0.002, external_request_id="r1")
    assert d.allow
    body = ingest.guard_requests[0]["body"]
    assert body == {"endpointTag": "support.reply", "tenantId": "acme", "userId": pseudonymize("u", "k"),
                    "model": "gpt-4o-mini", "estimatedCostUsd": 0.002, "externalRequestId": "r1"}
    ingest.guard_answer = (200, {"allow": False, "reason": "budget exhausted"})
    with pytest.raises(BudgetExceeded) as info:
        br.guard("support.reply", tenant_id="acme")
    assert info.value.reason == "budget exhausted"
    assert br.guard("support.reply", raise_on_deny=False).allow is False
    with br.context(endpoint_tag="ctx.tag", tenant_id="ctx-tenant"):
        with pytest.raises(BudgetExceeded):
            asyncio.run(br.aguard())
    assert ingest.guard_requests[-1]["body"] == {"endpointTag": "ctx.tag", "tenantId": "ctx-tenant"}


def test_guard_fails_open_when_unreachable(make_br):
    br = make_br(dead_url())
    d = br.guard("t", tenant_id="x")
    assert d.allow and d.degraded
    slow = FakeBurnrate()
    slow.guard_answer = (404, {"error": "not found"})
    try:
        assert make_br(slow.url).guard("t").degraded
        closed = make_br(slow.url, guard_fail_open=False)
        with pytest.raises(BudgetExceeded):
            closed.guard("t")
    finally:
        slow.close()


# ---- usage helpers on SDK objects and odd inputs -------------------------------------------------


def test_usage_helpers_accept_objects_and_whole_responses():
    import anthropic

    u = anthropic.types.Usage(input_tokens=10, output_tokens=5, cache_read_input_tokens=100,
                              cache_creation_input_tokens=None)
    assert usage_from_anthropic(u) == Usage(110, 100, 0, 5)

    class Meta:  # google-genai style snake_case attributes
        prompt_token_count = 11
        candidates_token_count = 120
        thoughts_token_count = 964
        cached_content_token_count = None

    class Resp:
        usage_metadata = Meta()

    assert usage_from_gemini(Resp()) == Usage(11, 0, 0, 1084, 964)
    assert usage_from_bedrock({"usage": {"inputTokens": 1, "outputTokens": 2}}) == Usage(1, 0, 0, 2)


def test_usage_helpers_never_raise_on_garbage():
    for shape in ("openai.chat", "openai.responses", "anthropic.messages", "anthropic.stream", "gemini",
                  "bedrock.converse", "openrouter", "xai", "openai.embeddings"):
        for junk in (None, {}, [], "text", 42, {"prompt_tokens": "x", "cost": "free"}, {"prompt_tokens": -5}):
            u = usage_from_shape(shape, junk)
            assert u.input_tokens >= 0 and u.output_tokens >= 0
    assert usage_from_openrouter({"prompt_tokens": 1, "cost": "0.5"}).cost_usd == 0.5
    assert usage_from_xai({"prompt_tokens": 1, "cost_in_usd_ticks": True}).cost_usd is None
    with pytest.raises(ValueError):
        usage_from_shape("nope", {})
