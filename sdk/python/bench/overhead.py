"""Work burnrate adds to the caller's thread per wrapped call (target: < 50 us).

Two measurements, both in-process (no network, the worker never sends during the run):

1. sdk path: exactly what a wrapped call adds around the provider call -- start the call
   (attribution, request id, clock), record the result (usage mapping, event dict) and
   enqueue it -- timed on a prebuilt ChatCompletion.
2. end to end: a real OpenAI client on an in-process mock transport, wrapped vs unwrapped,
   interleaved; the median difference per call (noisier: the provider SDK itself costs
   a few hundred microseconds per call).

Usage: .venv/bin/python bench/overhead.py [calls]
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from burnrate import Burnrate
from burnrate._wrap import ClientConfig

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000

USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}
BODY = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": USAGE,
    "service_tier": "default",
}


def make_br() -> Burnrate:
    # a URL that is never contacted: the batch never fills and the interval is an hour
    return Burnrate(url="http://127.0.0.1:9", api_key="bench", batch_size=10**7,
                    flush_interval=3600, queue_size=10**7)


def drain(br: Burnrate) -> None:
    with br._delivery._lock:
        br._delivery._q.clear()


def bench_sdk_path(n: int) -> float:
    from openai.types.chat import ChatCompletion

    br = make_br()
    result = ChatCompletion.model_validate(BODY)
    cfg = ClientConfig(br, "openai", "openai", False, {"endpoint_tag": "support.reply", "prompt_version": "v9"})
    kwargs = {"model": "gpt-4o-mini", "messages": []}
    with br.context(tenant_id="acme", user_id="u-1"):
        for _ in range(min(n, 1000)):  # warm up
            cfg.begin("openai.chat", dict(kwargs)).finish(result)
        took = 0.0
        block = 1000
        for _ in range(max(1, n // block)):
            t = time.perf_counter()
            for _ in range(block):
                call = cfg.begin("openai.chat", dict(kwargs))
                call.finish(result)
            took += time.perf_counter() - t
            drain(br)  # what the worker does in real life, outside the timed region
        n = max(1, n // block) * block
    assert br.stats()["enqueued"] >= n
    return took / n * 1e6


def bench_end_to_end(n: int) -> float:
    import httpx2
    from openai import OpenAI

    payload = json.dumps(BODY).encode()

    def handler(request):
        return httpx2.Response(200, content=payload, headers={"content-type": "application/json"})

    raw = OpenAI(api_key="sk", base_url="http://fake/v1", max_retries=0,
                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    br = make_br()
    wrapped = br.wrap(raw, endpoint_tag="support.reply")
    msgs = [{"role": "user", "content": "hi"}]
    for _ in range(300):
        raw.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        wrapped.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    diffs = []
    block = 50
    for _ in range(max(1, n // block)):
        t = time.perf_counter()
        for _ in range(block):
            raw.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        a = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(block):
            wrapped.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        b = time.perf_counter() - t
        diffs.append((b - a) / block)
        drain(br)
    return statistics.median(diffs) * 1e6, a / block * 1e6


def main() -> None:
    sdk = bench_sdk_path(N)
    e2e, base = bench_end_to_end(max(1000, N // 10))
    print("burnrate overhead on the caller's thread (python %s)" % sys.version.split()[0])
    print("  sdk path (begin + record + enqueue): %6.1f us/call  (%d calls)" % (sdk, N))
    print("  end to end, wrapped - unwrapped:     %6.1f us/call  (unwrapped call: %.0f us)" % (e2e, base))
    print("  target < 50 us: %s" % ("OK" if sdk < 50 else "MISSED"))


if __name__ == "__main__":
    main()
