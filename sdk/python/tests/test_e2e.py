"""End to end against the real burnrate binary (started on port 0 with a temp database).

The binary is target/debug/burnrate at the repository root, or $BURNRATE_BIN. These tests
FAIL (they do not skip) when it is missing or does not speak the CLI (`keys create`,
`serve --listen 127.0.0.1:0`), so a missing server cannot pass unnoticed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from fakes import CHAT_USAGE, FakeProvider

from burnrate import Burnrate, usage_from_shape

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("BURNRATE_BIN") or os.path.join(REPO, "target", "debug", "burnrate")
VECTORS = os.path.join(REPO, "testdata", "usage-vectors.json")
MSG = [{"role": "user", "content": "hi"}]

# hand-computed costs of the fake provider's usage
# gpt-4o-mini: $0.15/M input, $0.075/M cached input, $0.60/M output
#   (1200 - 1024) * 0.15 + 1024 * 0.075 + 300 * 0.60 = 26.4 + 76.8 + 180 = 283.2 micro-USD
GPT_4O_MINI_COST = 0.0002832
# claude-3-5-haiku-20241022: $0.80/M input, $0.08/M cache read, $1/M cache write, $4/M output
#   30 * 0.8 + 2000 * 0.08 + 500 * 1 + 250 * 4 = 24 + 160 + 500 + 1000 = 1684 micro-USD
CLAUDE_HAIKU_COST = 0.001684


def _cli(*args: str, timeout: float = 60) -> str:
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        pytest.fail("burnrate %s failed (exit %d): %s" % (" ".join(args), out.returncode, out.stderr.strip()))
    return out.stdout


def _require_bin() -> None:
    if not os.path.isfile(BIN) or not os.access(BIN, os.X_OK):
        pytest.fail("burnrate binary not found at %s (build it, or set BURNRATE_BIN)" % BIN)


class Server(object):
    def __init__(self, tmpdir: str) -> None:
        _require_bin()
        self.db = os.path.join(tmpdir, "burnrate.db")
        self.ingest_key = self._key("ingest")
        self.read_key = self._key("read")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--db", self.db, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: "queue.Queue[str]" = queue.Queue()
        self._stderr: list = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._stderr), daemon=True).start()
        self.url = None
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("listening on http://"):
                self.url = line.split("listening on ", 1)[1].strip()
                break
        if self.url is None:
            self.stop()
            pytest.fail(
                "burnrate serve at %s did not print 'listening on http://...' (exit %s); stderr:\n%s"
                % (BIN, self.proc.returncode, "".join(self._stderr)[-2000:])
            )

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            if isinstance(sink, list):
                sink.append(line)
            else:
                sink.put(line)

    def _key(self, scope: str) -> str:
        key = _cli("keys", "create", "--db", self.db, "--workspace", "default", "--scope", scope).strip()
        if not key or "\n" in key:
            pytest.fail("burnrate keys create --scope %s printed %r, expected only the key" % (scope, key))
        return key

    def events(self, external_request_id: str, want: int = 1, timeout: float = 5.0):
        url = "%s/v1/events?externalRequestId=%s" % (self.url, external_request_id)
        end = time.monotonic() + timeout
        evs = []
        while time.monotonic() < end:
            req = urllib.request.Request(url, headers={"X-API-Key": self.read_key})
            with urllib.request.urlopen(req, timeout=5) as resp:
                evs = json.loads(resp.read())["events"]
            if len(evs) >= want:
                return evs
            time.sleep(0.05)
        return evs

    def wait_ingest_paused(self, paused: bool, timeout: float = 3.0) -> None:
        """Wait until ingest answers as a paused (402) or live workspace's would: a pause
        made with the CLI reaches a running server within 250 ms (its key table), not at
        once. Probes with an empty batch, which stores nothing (400 when live)."""
        end = time.monotonic() + timeout
        while True:
            req = urllib.request.Request(
                self.url + "/v1/ingest/batch",
                data=b"[]",
                headers={"X-API-Key": self.ingest_key, "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    status = resp.status
            except urllib.error.HTTPError as e:
                status = e.code
            if (status == 402) == paused:
                return
            if time.monotonic() > end:
                pytest.fail("ingest still answers %d %.1f s after the pause changed" % (status, timeout))
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("burnrate")))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fake():
    p = FakeProvider()
    yield p
    p.close()


@pytest.fixture
def sdk(server):
    br = Burnrate(url=server.url, api_key=server.ingest_key, flush_interval=0.02)
    yield br
    br.close(timeout=2)


def _openai(fake, **kw):
    from openai import OpenAI

    kw.setdefault("max_retries", 2)
    return OpenAI(base_url=fake.url + "/v1", api_key="sk-test", **kw)


def _one(server, sdk, rid):
    assert sdk.flush(5), sdk.stats()
    evs = server.events(rid)
    assert len(evs) == 1, (evs, sdk.stats())
    return evs[0]


def test_openai_chat_event_stored_with_catalog_cost(server, sdk, fake):
    fake.reset()
    rid = "e2e-" + uuid.uuid4().hex
    c = sdk.wrap(_openai(fake), endpoint_tag="support.reply", prompt_version="support_v9", tenant_id="acme",
                 tags={"team": "cx"})
    c.chat.completions.create(model="gpt-4o-mini", messages=MSG, burnrate={"external_request_id": rid, "user_id": "u-1"})
    ev = _one(server, sdk, rid)
    assert ev["externalRequestId"] == rid
    assert (ev["provider"], ev["model"], ev["endpointTag"], ev["promptVersion"]) == (
        "openai", "gpt-4o-mini", "support.reply", "support_v9")
    assert (ev["tenantId"], ev["userId"], ev["tags"]) == ("acme", "u-1", {"team": "cx"})
    assert (ev["inputTokens"], ev["cachedTokens"], ev["cacheWriteTokens"], ev["outputTokens"], ev["reasoningTokens"]) == (
        CHAT_USAGE["prompt_tokens"], 1024, 0, 300, 0)
    assert ev["status"] == "success" and ev["attempt"] == 1 and ev["operation"] == "chat"
    assert ev["costUsd"] is not None, "gpt-4o-mini must be priced from the catalog"
    assert ev["costUsd"] == pytest.approx(GPT_4O_MINI_COST, abs=1e-9)
    assert ev["costSource"] == "catalog"


def test_anthropic_event_stored_with_catalog_cost(server, sdk, fake):
    from anthropic import Anthropic

    fake.reset()
    rid = "e2e-" + uuid.uuid4().hex
    c = sdk.wrap(Anthropic(base_url=fake.url, api_key="sk-ant"), endpoint_tag="summarize")
    with c.messages.stream(model="claude-3-5-haiku-20241022", max_tokens=64, messages=MSG,
                           burnrate={"external_request_id": rid}) as s:
        s.get_final_message()
    ev = _one(server, sdk, rid)
    assert (ev["inputTokens"], ev["cachedTokens"], ev["cacheWriteTokens"], ev["outputTokens"]) == (2530, 2000, 500, 250)
    assert ev["provider"] == "anthropic" and ev["model"] == "claude-3-5-haiku-20241022"
    assert ev["costUsd"] == pytest.approx(CLAUDE_HAIKU_COST, abs=1e-9)


def test_retries_keep_one_request_id_and_count_attempts(server, sdk, fake):
    fake.reset()
    fake.fail_next("/v1/chat/completions", 429, 500)
    rid = "e2e-" + uuid.uuid4().hex
    c = sdk.wrap(_openai(fake), endpoint_tag="retry.test")
    c.chat.completions.create(model="gpt-4o-mini", messages=MSG, burnrate={"external_request_id": rid})
    assert len(fake.requests) == 3
    ev = _one(server, sdk, rid)
    # three attempt events under one id: the server keeps one call, counts 3 attempts,
    # and describes it by the attempt that has usage (cost counted once)
    assert ev["attempts"] == 3
    assert ev["attempt"] == 3 and ev["inputTokens"] == 1200
    assert ev["status"] == "success" and ev["costUsd"] == pytest.approx(GPT_4O_MINI_COST, abs=1e-9)


def test_failed_call_stored_as_error(server, sdk, fake):
    import openai

    fake.reset()
    fake.fail_next("/v1/chat/completions", 500, 500, 500)
    rid = "e2e-" + uuid.uuid4().hex
    c = sdk.wrap(_openai(fake), endpoint_tag="fail.test")
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG, burnrate={"external_request_id": rid})
    ev = _one(server, sdk, rid)
    assert (ev["status"], ev["errorCode"], ev["usageMissing"], ev["attempts"]) == ("error", "500", True, 3)
    assert ev["inputTokens"] == 0 and ev["costUsd"] in (None, 0)


def test_streams_and_responses_stored(server, sdk, fake):
    fake.reset()
    c = sdk.wrap(_openai(fake), endpoint_tag="stream.test")
    r1, r2, r3 = ("e2e-" + uuid.uuid4().hex for _ in range(3))
    list(c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, burnrate={"external_request_id": r1}))
    c.responses.create(model="gpt-4o-mini", input="hi", burnrate={"external_request_id": r2})
    c.embeddings.create(model="text-embedding-3-small", input="hi", burnrate={"external_request_id": r3})
    a, b, e = _one(server, sdk, r1), _one(server, sdk, r2), _one(server, sdk, r3)
    assert a["outputTokens"] == 300 and a["costUsd"] == pytest.approx(GPT_4O_MINI_COST, abs=1e-9)
    assert (b["operation"], b["inputTokens"], b["reasoningTokens"]) == ("responses", 900, 128)
    assert (e["operation"], e["inputTokens"], e["outputTokens"]) == ("embeddings", 42, 0)


def test_every_shared_vector_is_accepted(server, sdk):
    with open(VECTORS) as f:
        cases = json.load(f)["cases"]
    ids = []
    for case in cases:
        u = usage_from_shape(case["shape"], case["usage"])
        ids.append(sdk.record("openai", "gpt-4o-mini", u, endpoint_tag="vectors", external_request_id="v-" + uuid.uuid4().hex))
    assert sdk.flush(5)
    s = sdk.stats()
    assert s["rejected"] == 0 and s["dropped"] == 0, s
    for rid, case in zip(ids, cases):
        (ev,) = server.events(rid)
        for f in ("inputTokens", "cachedTokens", "cacheWriteTokens", "outputTokens", "reasoningTokens"):
            assert ev[f] == case["expected"][f], (case["name"], f)
        if case["expected"]["costUsd"] is not None:
            assert ev["costUsd"] == pytest.approx(case["expected"]["costUsd"], abs=1e-12), case["name"]
            assert ev["costSource"] == "client"


def test_wrong_key_is_dropped_not_raised(server, fake):
    fake.reset()
    br = Burnrate(url=server.url, api_key="not-a-key", flush_interval=0.02)
    c = br.wrap(_openai(fake), endpoint_tag="t")
    c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert br.flush(5)
    assert br.stats()["dropped_unauthorized"] == 1


def test_paused_workspace_pauses_sending_and_app_stays_fast(server, fake):
    fake.reset()
    br = Burnrate(url=server.url, api_key=server.ingest_key, flush_interval=0.02, pause_seconds=0.5)
    try:
        _cli("workspaces", "pause", "default", "--db", server.db)
        server.wait_ingest_paused(True)
        rid = "e2e-" + uuid.uuid4().hex
        c = br.wrap(_openai(fake), endpoint_tag="paused.test")
        t = time.perf_counter()
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG, burnrate={"external_request_id": rid})
        assert time.perf_counter() - t < 0.5
        end = time.monotonic() + 5
        while not br.stats()["paused"] and time.monotonic() < end:
            time.sleep(0.05)
        assert br.stats()["paused"] is True, br.stats()
    finally:
        _cli("workspaces", "resume", "default", "--db", server.db)
    assert br.flush(5), br.stats()
    assert len(server.events(rid)) == 1
    br.close(1)


def test_server_down_app_unaffected(fake, tmp_path):
    """The real binary stopped: calls still succeed fast, events are dropped and counted."""
    s = Server(str(tmp_path))
    url, key = s.url, s.ingest_key
    s.stop()
    br = Burnrate(url=url, api_key=key, flush_interval=0.01, batch_size=1, max_send_attempts=2, backoff_base=0.01)
    c = br.wrap(_openai(fake, max_retries=0), endpoint_tag="t")
    for _ in range(5):
        t = time.perf_counter()
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert time.perf_counter() - t < 0.25
    assert br.flush(5)
    assert br.stats()["dropped_send_failed"] == 5
