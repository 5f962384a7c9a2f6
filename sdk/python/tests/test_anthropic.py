"""wrap() around the real anthropic SDK (sync and async) against the fake provider."""

from __future__ import annotations

import asyncio

import anthropic
import pytest
from anthropic import Anthropic, AsyncAnthropic
from fakes import by_call

MSG = [{"role": "user", "content": "hi"}]
MODEL = "claude-3-5-haiku-20241022"
# fake usage: input 30 + cache read 2000 + cache write 500 = 2530, output 250
WANT = (2530, 2000, 500, 250)


def client(provider, **kw):
    kw.setdefault("max_retries", 2)
    return Anthropic(base_url=provider.url, api_key="sk-ant-test", **kw)


def aclient(provider, **kw):
    kw.setdefault("max_retries", 2)
    return AsyncAnthropic(base_url=provider.url, api_key="sk-ant-test", **kw)


def tokens(ev):
    return ev["inputTokens"], ev["cachedTokens"], ev["cacheWriteTokens"], ev["outputTokens"]


def events(br, ingest, n):
    assert br.flush(5)
    evs = ingest.wait_for(n)
    assert len(evs) == n, evs
    return evs


def test_messages_create(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="summarize", tenant_id="t1")
    assert isinstance(c, Anthropic)
    m = c.messages.create(model=MODEL, max_tokens=100, messages=MSG)
    assert isinstance(m, anthropic.types.Message)
    assert m.content[0].text == "Hello from the fake."
    (ev,) = events(br, ingest, 1)
    assert ev["provider"] == "anthropic" and ev["model"] == MODEL
    assert tokens(ev) == WANT
    assert (ev["status"], ev["attempt"], ev["endpointTag"], ev["tenantId"]) == ("success", 1, "summarize", "t1")
    assert "serviceTier" not in ev  # "standard" is the default


def test_messages_create_stream(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    s = c.messages.create(model=MODEL, max_tokens=100, messages=MSG, stream=True)
    assert isinstance(s, anthropic.Stream)
    types = [e.type for e in s]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    (ev,) = events(br, ingest, 1)
    assert tokens(ev) == WANT and ev["status"] == "success"


def test_messages_stream_helper(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    with c.messages.stream(model=MODEL, max_tokens=100, messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake."
    assert final.usage.output_tokens == 250
    (ev,) = events(br, ingest, 1)
    assert tokens(ev) == WANT and ev["status"] == "success"


def test_stream_cut_off_keeps_input_usage_marks_missing(br, ingest, provider):
    provider.cut_stream = True
    c = br.wrap(client(provider), endpoint_tag="t")
    s = c.messages.create(model=MODEL, max_tokens=100, messages=MSG, stream=True)
    for _ in s:
        pass
    (ev,) = events(br, ingest, 1)
    assert ev["usageMissing"] is True
    assert ev["inputTokens"] == 2530 and ev["outputTokens"] == 1


def test_stream_helper_left_early_is_cancelled(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    with c.messages.stream(model=MODEL, max_tokens=100, messages=MSG) as stream:
        next(iter(stream))
    (ev,) = events(br, ingest, 1)
    assert ev["status"] == "cancelled" and ev["usageMissing"] is True


def test_retry_then_success_and_failure(br, ingest, provider):
    c = br.wrap(client(provider), endpoint_tag="t")
    provider.fail_next("/v1/messages", 529)
    c.messages.create(model=MODEL, max_tokens=100, messages=MSG)
    provider.fail_next("/v1/messages", 429, 429, 429)
    with pytest.raises(anthropic.RateLimitError):
        c.messages.create(model=MODEL, max_tokens=100, messages=MSG)
    provider.fail_next("/v1/messages", 400)
    with pytest.raises(anthropic.BadRequestError):
        c.messages.create(model=MODEL, max_tokens=100, messages=MSG)
    ok, limited, bad = by_call(events(br, ingest, 6)).values()
    # one event per HTTP attempt, same externalRequestId, attempt counting up
    assert [(e["attempt"], e["status"], e.get("errorCode")) for e in ok] == [(1, "error", "529"), (2, "success", None)]
    assert tokens(ok[1]) == WANT and ok[0]["usageMissing"] is True and ok[0]["inputTokens"] == 0
    assert [(e["attempt"], e["status"], e["errorCode"], e["usageMissing"]) for e in limited] == [
        (1, "rate_limited", "429", True), (2, "rate_limited", "429", True), (3, "rate_limited", "429", True)]
    assert [(e["attempt"], e["status"], e["errorCode"]) for e in bad] == [(1, "error", "400")]


def test_stream_helper_failure(br, ingest, provider):
    provider.fail_next("/v1/messages", 500, 500, 500)
    c = br.wrap(client(provider), endpoint_tag="t")
    with pytest.raises(anthropic.InternalServerError):
        with c.messages.stream(model=MODEL, max_tokens=100, messages=MSG) as stream:
            stream.get_final_message()
    evs = events(br, ingest, 3)
    assert [(e["status"], e["errorCode"], e["attempt"]) for e in evs] == [("error", "500", i) for i in (1, 2, 3)]
    assert len({e["externalRequestId"] for e in evs}) == 1


def test_async_anthropic(br, ingest, provider):
    c = br.wrap(aclient(provider), endpoint_tag="t")
    assert isinstance(c, AsyncAnthropic)

    async def main():
        m = await c.messages.create(model=MODEL, max_tokens=100, messages=MSG)
        assert m.usage.output_tokens == 250
        s = await c.messages.create(model=MODEL, max_tokens=100, messages=MSG, stream=True)
        assert isinstance(s, anthropic.AsyncStream)
        [e async for e in s]
        async with c.messages.stream(model=MODEL, max_tokens=100, messages=MSG) as stream:
            text = "".join([t async for t in stream.text_stream])
            assert text == "Hello from the fake."
        provider.fail_next("/v1/messages", 429)
        await c.messages.create(model=MODEL, max_tokens=100, messages=MSG)
        provider.fail_next("/v1/messages", 500, 500, 500)
        with pytest.raises(anthropic.InternalServerError):
            await c.messages.create(model=MODEL, max_tokens=100, messages=MSG)

    asyncio.run(main())
    calls = list(by_call(events(br, ingest, 8)).values())
    assert [[e["status"] for e in c] for c in calls] == [
        ["success"], ["success"], ["success"], ["rate_limited", "success"], ["error"] * 3]
    assert [c[-1]["attempt"] for c in calls] == [1, 1, 1, 2, 3]
    assert all(tokens(c[-1]) == WANT for c in calls[:4])


def test_passthrough_attributes(br, provider):
    raw = client(provider)
    c = br.wrap(raw, endpoint_tag="t")
    assert c.api_key == "sk-ant-test"
    assert c.messages.count_tokens == raw.messages.count_tokens or callable(c.messages.count_tokens)
    assert isinstance(c.with_options(max_retries=0), Anthropic)
