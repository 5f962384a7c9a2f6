"""Fixtures: the real burnrate binary (port 0, temp database), the fake provider of the
Python SDK's tests, and one process-wide tracer provider with the openai-v2
instrumentation exporting over OTLP/HTTP (protobuf, gzip, Bearer key from
OTEL_EXPORTER_OTLP_HEADERS, as an operator would configure it)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "sdk", "python", "tests"))

from fakes import FakeProvider  # noqa: E402

BIN = os.environ.get("BURNRATE_BIN") or os.path.join(REPO, "target", "debug", "burnrate")


def _cli(*args: str) -> str:
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail("burnrate %s failed: %s" % (" ".join(args), out.stderr.strip()))
    return out.stdout.strip()


class Server(object):
    def __init__(self, tmpdir: str) -> None:
        if not os.access(BIN, os.X_OK):
            pytest.fail("burnrate binary not found at %s (build it, or set BURNRATE_BIN)" % BIN)
        self.db = os.path.join(tmpdir, "burnrate.db")
        self.ingest_key = _cli("keys", "create", "--db", self.db, "--workspace", "default", "--scope", "ingest")
        self.read_key = _cli("keys", "create", "--db", self.db, "--workspace", "default", "--scope", "read")
        self.admin_key = _cli("keys", "create", "--db", self.db, "--workspace", "default", "--scope", "admin")
        self.proc = subprocess.Popen([BIN, "serve", "--db", self.db, "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True).start()
        self.url = None
        end = time.monotonic() + 60
        while self.url is None and time.monotonic() < end:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("listening on http://"):
                self.url = line.split("listening on ", 1)[1].strip()
        if self.url is None:
            self.stop()
            pytest.fail("burnrate serve did not start")

    def _get(self, path: str):
        req = urllib.request.Request(self.url + path, headers={"X-API-Key": self.read_key})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def events(self, rid: str, timeout: float = 5.0):
        end = time.monotonic() + timeout
        while True:
            evs = self._get("/v1/events?externalRequestId=" + rid)["events"]
            if evs or time.monotonic() > end:
                return evs
            time.sleep(0.05)

    def count(self) -> int:
        return len(self._get("/v1/events?limit=1000")["events"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("burnrate")))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def fake():
    p = FakeProvider()
    yield p
    p.close()


@pytest.fixture(scope="session")
def instrumented(server):
    """The stock exporter configured only by the standard environment variables."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = server.url
    os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = "Authorization=Bearer%20" + server.ingest_key
    os.environ["OTEL_EXPORTER_OTLP_COMPRESSION"] = "gzip"
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    captured = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(captured))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    yield captured
    OpenAIInstrumentor().uninstrument()
    provider.shutdown()


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """A server of the module's own, for tests that count every stored event."""
    s = Server(str(tmp_path_factory.mktemp("burnrate")))
    yield s
    s.stop()
