"""Delivery rules against a fake burnrate that misbehaves, and the app staying fast."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from fakes import FakeBurnrate, dead_url
from openai import OpenAI

from burnrate import Usage
from burnrate._delivery import finalize_event

MSG = [{"role": "user", "content": "hi"}]


def record(br, n=1, **kw):
    for i in range(n):
        br.record("openai", "gpt-4o-mini", Usage(10, 0, 0, 5), endpoint_tag="t", **kw)


def test_batches_and_flush(make_br, ingest):
    br = make_br(ingest.url, batch_size=10, flush_interval=5.0)
    record(br, 25)
    assert br.flush(5)
    assert [len(b) for b in ingest.batches] == [10, 10, 5]
    s = br.stats()
    assert (s["enqueued"], s["sent"], s["batches_sent"], s["queued"], s["dropped"]) == (25, 25, 3, 0, 0)
    assert ingest.headers[0]["X-API-Key"] == "test-ingest-key"


def test_interval_sends_without_flush(make_br, ingest):
    make = make_br(ingest.url, batch_size=100, flush_interval=0.05)
    record(make, 3)
    assert len(ingest.wait_for(3, timeout=2)) == 3


def test_queue_full_drops_newest_and_counts(make_br):
    slow = FakeBurnrate("slow")
    try:
        br = make_br(slow.url, queue_size=5, batch_size=100, flush_interval=10)
        ids = [br.record("openai", "m", Usage(1), endpoint_tag="t") for _ in range(8)]
        s = br.stats()
        assert s["dropped_queue_full"] == 3
        assert s["enqueued"] == 5
        # the oldest five are the ones kept
        queued = [e["externalRequestId"] for e in list(br._delivery._q)]
        assert queued == ids[:5]
    finally:
        slow.close()


def test_429_honours_retry_after(make_br):
    srv = FakeBurnrate("429")
    srv.retry_after = "0.3"
    try:
        br = make_br(srv.url)
        record(br)
        time.sleep(0.15)
        srv.mode = "ok"
        t = time.monotonic()
        assert br.flush(5)
        assert srv.events and br.stats()["rate_limited"] >= 1
        assert srv.hits == 2, "one 429, then one successful retry after Retry-After"
        assert time.monotonic() - t < 1.5
    finally:
        srv.close()


def test_402_pauses_and_logs_once(make_br, caplog):
    srv = FakeBurnrate("402")
    try:
        br = make_br(srv.url, pause_seconds=0.3)
        with caplog.at_level(logging.WARNING, logger="burnrate"):
            record(br)
            time.sleep(1.0)  # several pause periods
            record(br)
            assert not br.flush(0.2)
        s = br.stats()
        assert s["paused"] is True and s["paused_responses"] >= 2
        assert s["queued"] + s["in_flight"] == 2, "events are held, not dropped, while paused"
        paused_logs = [r for r in caplog.records if "paused" in r.getMessage()]
        assert len(paused_logs) == 1
        srv.mode = "ok"
        assert br.flush(3)
        assert len(srv.events) == 2 and br.stats()["paused"] is False
    finally:
        srv.close()


def test_500_retries_with_backoff_then_drops(make_br):
    srv = FakeBurnrate("500")
    try:
        br = make_br(srv.url, max_send_attempts=3, backoff_base=0.01)
        record(br, 4)
        assert br.flush(5)
        s = br.stats()
        assert srv.hits == 3
        assert s["dropped_send_failed"] == 4 and s["send_errors"] == 3 and s["sent"] == 0
    finally:
        srv.close()


def test_down_drops_and_counts(make_br):
    br = make_br(dead_url(), max_send_attempts=2, backoff_base=0.01)
    record(br, 3)
    assert br.flush(5)
    assert br.stats()["dropped_send_failed"] == 3


def test_slow_server_times_out_at_600ms(make_br):
    srv = FakeBurnrate("slow")
    try:
        br = make_br(srv.url, max_send_attempts=1)
        record(br)
        t = time.monotonic()
        assert br.flush(5)
        took = time.monotonic() - t
        assert 0.5 < took < 1.5, took
        assert br.stats()["dropped_send_failed"] == 1
    finally:
        srv.close()


def test_401_drops_and_logs_once(make_br, caplog):
    srv = FakeBurnrate("401")
    try:
        br = make_br(srv.url, api_key="ingest-SECRET-key")
        with caplog.at_level(logging.DEBUG, logger="burnrate"):
            record(br)
            assert br.flush(5)
            record(br)
            assert br.flush(5)
        assert br.stats()["dropped_unauthorized"] == 2
        text = " ".join(r.getMessage() for r in caplog.records)
        assert text.count("refused the API key") == 1
        assert "SECRET" not in text and "SECRET" not in repr(br)
    finally:
        srv.close()


def test_413_splits_batches(make_br):
    srv = FakeBurnrate("413")
    try:
        br = make_br(srv.url, batch_size=8, flush_interval=5)
        record(br, 8)
        assert br.flush(5)
        assert sorted(len(b) for b in srv.batches) == [1] * 8
        assert br.stats()["sent"] == 8
    finally:
        srv.close()


def test_rejected_counted(make_br):
    srv = FakeBurnrate("reject")
    try:
        br = make_br(srv.url)
        record(br, 2)
        assert br.flush(5)
        assert br.stats()["rejected"] == 2 and br.stats()["sent"] == 0
    finally:
        srv.close()


def test_enqueue_never_raises_on_garbage(make_br, ingest):
    br = make_br(ingest.url)
    br.record("openai", "m", Usage(1), endpoint_tag="t", tags={"k": object()})  # str()-able
    br.record("openai", "m", Usage(1), endpoint_tag="t", tags={"k": "v"}, latency_ms=float("nan"))
    br._emit({"bogus": float("nan")})  # cannot be JSON-encoded in a strict way
    assert br.flush(3)
    s = br.stats()
    assert s["enqueued"] == 3 and s["dropped_rejected"] == 1 and s["sent"] == 2


def test_finalize_event_clamps_and_trims():
    ev = finalize_event(
        {
            "externalRequestId": "x" * 200,
            "timestamp": 0.0,
            "provider": "OpenAI",
            "model": "m\nodel",
            "endpointTag": "  ",
            "tenantId": "",
            "inputTokens": 5,
            "cachedTokens": 4,
            "cacheWriteTokens": 3,
            "outputTokens": 1,
            "reasoningTokens": 2,
            "attempt": 99,
            "tags": {str(i): str(i) for i in range(15)},
            "costUsd": None,
        }
    )
    assert len(ev["externalRequestId"]) == 128
    assert ev["timestamp"] == "1970-01-01T00:00:00.000Z"
    assert ev["provider"] == "openai" and ev["model"] == "m odel"
    assert ev["endpointTag"] == "untagged" and "tenantId" not in ev
    assert ev["inputTokens"] == 7 and ev["outputTokens"] == 2
    assert ev["attempt"] == 64 and len(ev["tags"]) == 10 and "costUsd" not in ev


def test_tag_keys_outside_the_servers_charset_become_underscores():
    # The server rejects a whole event whose tag key has other characters.
    ev = finalize_event(
        {"provider": "openai", "model": "m", "endpointTag": "t", "status": "success",
         "tags": {"team name": "a", "région/zone": "b", "ok_key-1.x": "c"}}
    )
    assert ev["tags"] == {"team_name": "a", "r_gion_zone": "b", "ok_key-1.x": "c"}


def test_atexit_flush(ingest, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import sys
        from burnrate import Burnrate, Usage
        br = Burnrate(url=sys.argv[1], api_key="k", flush_interval=60)
        for _ in range(3):
            br.record("openai", "gpt-4o-mini", Usage(10, 0, 0, 5), endpoint_tag="exit.test")
        print("done")
    """))
    out = subprocess.run([sys.executable, str(script), ingest.url], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert len(ingest.wait_for(3, timeout=2)) == 3


def test_fork_child_delivers_its_own_events(make_br, ingest):
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    br = make_br(ingest.url)
    record(br)
    assert br.flush(5)
    pid = os.fork()
    if pid == 0:  # child
        try:
            br.record("openai", "m", Usage(1), endpoint_tag="child")
            ok = br.flush(5)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert [e["endpointTag"] for e in ingest.wait_for(2)] == ["t", "child"]


# ---- the application stays fast whatever burnrate does ------------------------------------------


@pytest.mark.parametrize("mode", ["down", "slow", "429", "402", "500"])
def test_app_calls_stay_fast_when_burnrate_misbehaves(mode, provider, make_br):
    srv = None
    if mode == "down":
        url = dead_url()
    else:
        srv = FakeBurnrate(mode)
        srv.retry_after = "5"
        url = srv.url
    try:
        br = make_br(url, batch_size=1, flush_interval=0.01)
        raw = OpenAI(base_url=provider.url + "/v1", api_key="sk", max_retries=0)
        c = br.wrap(raw, endpoint_tag="t")
        raw.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # warm up
        worst = 0.0
        for _ in range(15):
            t = time.perf_counter()
            r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
            worst = max(worst, time.perf_counter() - t)
            assert r.usage.prompt_tokens == 1200
        assert worst < 0.25, "a wrapped call took %.3fs with burnrate %s" % (worst, mode)
        t = time.monotonic()
        br.flush(0.3)
        assert time.monotonic() - t < 0.6, "flush(timeout) must respect its timeout"
        key = {"down": "send_errors", "500": "send_errors", "slow": "send_errors",
               "429": "rate_limited", "402": "paused_responses"}[mode]
        end = time.monotonic() + 3
        while br.stats()[key] < 1 and time.monotonic() < end:
            time.sleep(0.02)
        s = br.stats()
        assert s["enqueued"] == 15 and s["sent"] == 0
        assert s[key] >= 1, s
    finally:
        if srv:
            srv.close()


def test_concurrent_producers(make_br, ingest):
    br = make_br(ingest.url, batch_size=50)

    def work():
        for _ in range(200):
            br.record("openai", "m", Usage(1), endpoint_tag="t")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert br.flush(10)
    assert len(ingest.events) == 800
    assert len({e["externalRequestId"] for e in ingest.events}) == 800
