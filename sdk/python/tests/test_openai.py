"""wrap() around the real openai SDK (sync and async) against the fake provider."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from fakes import CHAT_USAGE, by_call, finals
from openai import AsyncOpenAI, OpenAI

MSG = [{"role": "user", "content": "hi"}]


def client(provider, **kw):
    kw.setdefault("max_retries", 2)
    return OpenAI(base_url=provider.url + "/v1", api_key="sk-test", **kw)


def aclient(provider, **kw):
    kw.setdefault("max_retries", 2)
    return AsyncOpenAI(base_url=provider.url + "/v1", api_key="sk-test", **kw)


def one_event(br, ingest):
    assert br.flush(5)
    evs = ingest.wait_for(1)
    assert len(evs) == 1, evs
    return evs[0]


def test_chat_success_event_fields(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="support.reply", prompt_version="support_v9",
                tenant_id="acme", tags={"team": "cx"})
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert isinstance(r, openai.types.chat.ChatCompletion)
    assert r.choices[0].message.content == "Hello from the fake."
    ev = one_event(br, ingest)
    assert ev["provider"] == "openai"
    assert ev["model"] == "gpt-4o-mini"
    assert ev["endpointTag"] == "support.reply"
    assert ev["promptVersion"] == "support_v9"
    assert ev["tenantId"] == "acme"
    assert ev["tags"] == {"team": "cx"}
    assert ev["status"] == "success"
    assert ev["operation"] == "chat"
    assert ev["attempt"] == 1
    assert (ev["inputTokens"], ev["cachedTokens"], ev["outputTokens"], ev["reasoningTokens"]) == (1200, 1024, 300, 0)
    assert "usageMissing" not in ev
    assert ev["latencyMs"] >= 0
    assert ev["timestamp"].endswith("Z") and "T" in ev["timestamp"]
    assert len(ev["externalRequestId"]) == 36
    # the provider saw no burnrate artefacts
    assert "burnrate" not in provider.requests[0]["body"]


def test_transparency(br, provider):
    raw = client(provider)
    c = br.wrap(raw, endpoint_tag="t")
    assert isinstance(c, OpenAI)
    assert c.base_url == raw.base_url
    assert c.api_key == "sk-test"
    assert c.max_retries == 2
    assert c.models is raw.models  # uninstrumented resources pass through untouched
    c2 = c.with_options(timeout=5)
    assert isinstance(c2, OpenAI)
    c2.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert br.flush(5)
    assert br.stats()["sent"] == 1


def test_same_result_wrapped_and_unwrapped(br, provider):
    raw = client(provider)
    c = br.wrap(raw, endpoint_tag="t")
    a = raw.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    b = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    da, db = a.model_dump(), b.model_dump()
    for d in (da, db):
        d.pop("id"), d.pop("created")
    assert da == db


def test_stream_hides_injected_usage_chunk(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    s = c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    assert isinstance(s, openai.Stream)
    chunks = list(s)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "Hello from the fake."
    assert all(ch.choices for ch in chunks), "the usage-only chunk must not reach the caller"
    assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    ev = one_event(br, ingest)
    assert (ev["inputTokens"], ev["cachedTokens"], ev["outputTokens"]) == (1200, 1024, 300)
    assert ev["status"] == "success"


def test_stream_keeps_usage_chunk_when_caller_asked(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    with c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                   stream_options={"include_usage": True}) as s:
        chunks = [ch for ch in s]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1200
    ev = one_event(br, ingest)
    assert ev["outputTokens"] == 300


def test_stream_closed_early_is_cancelled(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    s = c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    next(s)
    s.close()
    ev = one_event(br, ingest)
    assert ev["status"] == "cancelled"
    assert ev["usageMissing"] is True


def test_stream_without_usage_is_usage_missing(br, ingest, provider):
    provider.omit_usage = True  # an OpenAI-compatible server that ignores include_usage
    c = br.wrap(client(provider), endpoint_tag="t")
    list(c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    ev = one_event(br, ingest)
    assert ev["status"] == "success" and ev["usageMissing"] is True


def test_responses_and_embeddings(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    r = c.responses.create(model="gpt-4o-mini", input="hi")
    assert r.output_text == "Hi there."
    s = c.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    types = [e.type for e in s]
    assert types[-1] == "response.completed"
    e = c.embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(e.data[0].embedding) == 3
    assert br.flush(5)
    evs = ingest.wait_for(3)
    resp, resp_stream, emb = evs
    for ev in (resp, resp_stream):
        assert ev["operation"] == "responses"
        assert (ev["inputTokens"], ev["cachedTokens"], ev["outputTokens"], ev["reasoningTokens"]) == (900, 512, 400, 128)
    assert emb["operation"] == "embeddings"
    assert (emb["inputTokens"], emb["outputTokens"]) == (42, 0)
    assert emb["model"] == "text-embedding-3-small"


def test_retry_keeps_request_id_and_counts_attempts(br, ingest, provider):
    provider.fail_next("/v1/chat/completions", 429, 500)
    c = br.wrap(client(provider), endpoint_tag="t")
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.usage.prompt_tokens == 1200
    assert len(provider.requests) == 3
    assert br.flush(5)
    (evs,) = by_call(ingest.wait_for(3)).values()
    assert [(e["attempt"], e["status"], e.get("errorCode"), e.get("usageMissing")) for e in evs] == [
        (1, "rate_limited", "429", True), (2, "error", "500", True), (3, "success", None, None)]
    assert evs[2]["inputTokens"] == 1200 and evs[0]["inputTokens"] == 0
    assert all(e["latencyMs"] >= 0 for e in evs)
    assert evs[0]["timestamp"] <= evs[1]["timestamp"] <= evs[2]["timestamp"]


def test_failure_event_and_exception_unchanged(br, ingest, provider):
    provider.fail_next("/v1/chat/completions", 500, 500, 500)
    c = br.wrap(client(provider), endpoint_tag="t")
    with pytest.raises(openai.InternalServerError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 500
    assert br.flush(5)
    (evs,) = by_call(ingest.wait_for(3)).values()
    assert [(e["attempt"], e["status"], e["errorCode"], e["usageMissing"], e["inputTokens"]) for e in evs] == [
        (i, "error", "500", True, 0) for i in (1, 2, 3)]


def test_rate_limited_without_retries(br, ingest, provider):
    provider.fail_next("/v1/chat/completions", 429)
    c = br.wrap(client(provider, max_retries=0), endpoint_tag="t")
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    ev = one_event(br, ingest)
    assert (ev["status"], ev["errorCode"], ev["attempt"]) == ("rate_limited", "429", 1)


def test_timeout_status(br, ingest, provider):
    provider.delay = 0.5
    c = br.wrap(client(provider, max_retries=0, timeout=0.1), endpoint_tag="t")
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    ev = one_event(br, ingest)
    assert ev["status"] == "timeout"
    assert ev["usageMissing"] is True


def test_connection_error(br, ingest):
    from fakes import dead_url

    c = br.wrap(OpenAI(base_url=dead_url() + "/v1", api_key="x", max_retries=1), endpoint_tag="t")
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert br.flush(5)
    (evs,) = by_call(ingest.wait_for(2)).values()
    assert [(e["attempt"], e["status"], e["errorCode"]) for e in evs] == [
        (1, "error", "ConnectError"), (2, "error", "APIConnectionError")]


def test_per_call_overrides_and_context(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="default.tag", tenant_id="wrap-tenant", tags={"a": "1"})
    with br.context(tenant_id="ctx-tenant", user_id="u1", tags={"b": "2"}):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        c.chat.completions.create(
            model="gpt-4o-mini", messages=MSG,
            burnrate={"endpoint_tag": "override.tag", "external_request_id": "my-id-1", "attempt": 2, "tags": {"c": "3"}},
        )
    c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert br.flush(5)
    a, b, d = ingest.wait_for(3)
    assert (a["endpointTag"], a["tenantId"], a["userId"], a["tags"]) == ("default.tag", "ctx-tenant", "u1", {"a": "1", "b": "2"})
    assert (b["endpointTag"], b["externalRequestId"], b["attempt"]) == ("override.tag", "my-id-1", 2)
    assert b["tags"] == {"a": "1", "b": "2", "c": "3"}
    assert (d["tenantId"], d.get("userId")) == ("wrap-tenant", None)


def test_provider_detection_and_exact_costs(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t", provider="openrouter")
    c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSG)
    ev = one_event(br, ingest)
    assert ev["provider"] == "openrouter"
    from burnrate._wrap import detect_provider

    assert detect_provider(OpenAI(base_url="https://openrouter.ai/api/v1", api_key="x"), "openai") == "openrouter"
    assert detect_provider(OpenAI(base_url="https://api.x.ai/v1", api_key="x"), "openai") == "xai"
    assert detect_provider(OpenAI(api_key="x"), "openai") == "openai"
    assert detect_provider(openai.AzureOpenAI(api_key="x", api_version="2024-10-21",
                                              azure_endpoint="https://r.openai.azure.com"), "openai") == "azure"


def test_user_id_pseudonymized_when_secret_set(make_br, ingest, provider):
    from burnrate import pseudonymize

    br = make_br(ingest.url, pseudonymize_secret="s3cret")
    c = br.wrap(client(provider), endpoint_tag="t", user_id="alice@example.com")
    c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    ev = one_event(br, ingest)
    assert ev["userId"] == pseudonymize("alice@example.com", "s3cret")
    assert "alice" not in str(ingest.batches)


def test_disabled_sdk_passes_through(provider):
    from burnrate import Burnrate

    br = Burnrate()  # no URL / key in the environment
    c = br.wrap(client(provider), endpoint_tag="t")
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG, burnrate={"tenant_id": "x"})
    assert r.usage.prompt_tokens == 1200
    assert "burnrate" not in provider.requests[-1]["body"]
    assert br.stats()["enabled"] is False


def test_wrap_unknown_object_returns_it():
    from burnrate import Burnrate

    o = object()
    assert Burnrate(url="http://127.0.0.1:9", api_key="k").wrap(o) is o


# ---- async -----------------------------------------------------------------------------------


def test_async_chat_stream_and_retry(br, ingest, provider):
    c = br.wrap(aclient(provider), endpoint_tag="async.tag")
    assert isinstance(c, AsyncOpenAI)

    async def main():
        r = await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert r.usage.completion_tokens == 300
        s = await c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        assert isinstance(s, openai.AsyncStream)
        chunks = [ch async for ch in s]
        assert all(ch.choices for ch in chunks)
        provider.fail_next("/v1/chat/completions", 429)
        await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        provider.fail_next("/v1/chat/completions", 500, 500, 500)
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        r = await c.responses.create(model="gpt-4o-mini", input="x")
        e = await c.embeddings.create(model="text-embedding-3-small", input="x")
        return r, e

    asyncio.run(main())
    assert br.flush(5)
    all_events = ingest.wait_for(9)
    assert len(all_events) == 9  # 6 calls; one retried once, one failed three times
    evs = finals(all_events)
    assert [e["status"] for e in evs] == ["success", "success", "success", "error", "success", "success"]
    assert [e["attempt"] for e in evs] == [1, 1, 2, 3, 1, 1]
    assert evs[1]["outputTokens"] == 300
    assert [e["operation"] for e in evs][-2:] == ["responses", "embeddings"]
    assert all(e["endpointTag"] == "async.tag" for e in evs)


def test_async_concurrent_calls_keep_their_own_attempts(br, ingest, provider):
    c = br.wrap(aclient(provider), endpoint_tag="t")

    async def call(i):
        with br.context(tenant_id="tenant-%d" % i):
            await c.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                            burnrate={"external_request_id": "id-%d" % i})

    async def main():
        provider.fail_next("/v1/chat/completions", 429)
        await asyncio.gather(*(call(i) for i in range(5)))

    asyncio.run(main())
    assert br.flush(5)
    evs = {e["externalRequestId"]: e for e in finals(ingest.wait_for(6))}
    assert len(evs) == 5 and len(ingest.events) == 6
    assert sorted(e["attempt"] for e in evs.values()) == [1, 1, 1, 1, 2]
    for i in range(5):
        assert evs["id-%d" % i]["tenantId"] == "tenant-%d" % i


def test_wrapped_call_is_fast(br, provider):
    raw = client(provider)
    c = br.wrap(raw, endpoint_tag="t")
    for _ in range(5):  # warm up
        raw.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)

    def best(fn, n=20):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn(model="gpt-4o-mini", messages=MSG)
            times.append(time.perf_counter() - t)
        return sorted(times)[n // 2]

    base = best(raw.chat.completions.create)
    wrapped = best(c.chat.completions.create)
    assert wrapped - base < 0.005, (base, wrapped)


def test_usage_from_sdk_objects():
    from burnrate import usage_from_openai_chat

    u = openai.types.CompletionUsage(**CHAT_USAGE)
    assert usage_from_openai_chat(u).to_fields()["cachedTokens"] == 1024
