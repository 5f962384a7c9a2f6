"""Local fake servers for the tests: a fake LLM provider (OpenAI + Anthropic HTTP APIs)
and a fake burnrate ingest that can misbehave. Standard library only."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

# ---- usage the fake provider reports (hand-checked numbers used by the tests) ----------------

CHAT_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
RESPONSES_USAGE = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 512},
    "output_tokens": 400,
    "output_tokens_details": {"reasoning_tokens": 128},
    "total_tokens": 1300,
}
EMBEDDINGS_USAGE = {"prompt_tokens": 42, "total_tokens": 42}
ANTHROPIC_USAGE = {
    "input_tokens": 30,
    "cache_creation_input_tokens": 500,
    "cache_read_input_tokens": 2000,
    "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 250,
    "service_tier": "standard",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up (the point of some tests) are not errors


class _Base(object):
    handler_cls: Any = None

    def __init__(self) -> None:
        owner = self

        class H(self.handler_cls):  # type: ignore[misc,name-defined]
            server_owner = owner

        self.httpd = _Server(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: Any = None

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK
        # add ~40 ms to every response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send_json(self, status: int, obj: Any, headers: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


# ---- fake provider ---------------------------------------------------------------------------


class FakeProvider(_Base):
    """OpenAI (/v1/chat/completions, /v1/responses, /v1/embeddings) and Anthropic
    (/v1/messages) with SSE streaming and programmable failures."""

    def __init__(self) -> None:
        self.handler_cls = _ProviderHandler
        self.requests: List[Dict[str, Any]] = []
        self.failures: Dict[str, List[int]] = {}
        self.delay = 0.0
        self.cut_stream = False
        self.omit_usage = False
        super().__init__()

    def fail_next(self, path: str, *statuses: int) -> None:
        with self.lock:
            self.failures.setdefault(path, []).extend(statuses)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.failures.clear()
        self.delay = 0.0
        self.cut_stream = False
        self.omit_usage = False


def _sse(event: Optional[str], data: Any) -> bytes:
    out = ""
    if event:
        out += "event: %s\n" % event
    out += "data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data))
    return out.encode()


class _ProviderHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802
        owner: FakeProvider = self.server_owner
        raw = self._body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        with owner.lock:
            owner.requests.append({"path": path, "headers": dict(self.headers), "body": body})
            pending = owner.failures.get(path)
            fail = pending.pop(0) if pending else None
        if owner.delay:
            time.sleep(owner.delay)
        anthropic = path.endswith("/messages")
        if fail is not None:
            return self._fail(fail, anthropic)
        model = body.get("model", "unknown-model")
        if path.endswith("/chat/completions"):
            return self._chat(body, model)
        if path.endswith("/responses"):
            return self._responses(body, model)
        if path.endswith("/embeddings"):
            return self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.01, -0.02, 0.03]}],
                    "model": model,
                    "usage": EMBEDDINGS_USAGE,
                },
            )
        if anthropic:
            return self._messages(body, model)
        self._send_json(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

    def _fail(self, status: int, anthropic: bool) -> None:
        headers = {"retry-after-ms": "5", "x-request-id": "req_fail"}
        if anthropic:
            kind = {429: "rate_limit_error", 529: "overloaded_error", 400: "invalid_request_error"}.get(status, "api_error")
            self._send_json(status, {"type": "error", "error": {"type": kind, "message": "fake failure %d" % status}}, headers)
        else:
            kind = {429: "rate_limit_exceeded", 400: "invalid_request_error"}.get(status, "server_error")
            self._send_json(status, {"error": {"message": "fake failure %d" % status, "type": kind, "param": None, "code": kind}}, headers)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    # OpenAI chat ---------------------------------------------------------------------------
    def _chat(self, body: Dict[str, Any], model: str) -> None:
        owner: FakeProvider = self.server_owner
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        if not body.get("stream"):
            resp = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello from the fake.", "refusal": None, "annotations": []},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": None if owner.omit_usage else CHAT_USAGE,
                "service_tier": body.get("service_tier") or "default",
                "system_fingerprint": "fp_fake",
            }
            return self._send_json(200, resp)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: Dict[str, Any], finish: Optional[str]) -> Dict[str, Any]:
            c = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                c["usage"] = None
            return c

        self._start_sse()
        self._write(_sse(None, chunk({"role": "assistant", "content": "", "refusal": None}, None)))
        for word in ("Hello", " from", " the", " fake."):
            self._write(_sse(None, chunk({"content": word}, None)))
            if owner.cut_stream:
                return
        self._write(_sse(None, chunk({}, "stop")))
        if include_usage and not owner.omit_usage:
            final = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": CHAT_USAGE,
            }
            self._write(_sse(None, final))
        self._write(_sse(None, "[DONE]"))

    # OpenAI responses ---------------------------------------------------------------------------
    def _responses(self, body: Dict[str, Any], model: str) -> None:
        owner: FakeProvider = self.server_owner
        rid = "resp_" + uuid.uuid4().hex
        mid = "msg_" + uuid.uuid4().hex

        def response(status: str, usage: Any, text: str) -> Dict[str, Any]:
            return {
                "id": rid,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "error": None,
                "incomplete_details": None,
                "instructions": None,
                "max_output_tokens": None,
                "model": model,
                "output": []
                if not text
                else [
                    {
                        "type": "message",
                        "id": mid,
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}],
                    }
                ],
                "parallel_tool_calls": True,
                "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None},
                "service_tier": "default",
                "store": True,
                "temperature": 1.0,
                "text": {"format": {"type": "text"}},
                "tool_choice": "auto",
                "tools": [],
                "top_p": 1.0,
                "truncation": "disabled",
                "usage": usage,
                "user": None,
                "metadata": {},
            }

        if not body.get("stream"):
            return self._send_json(200, response("completed", None if owner.omit_usage else RESPONSES_USAGE, "Hi there."))
        self._start_sse()
        seq = iter(range(1000))
        self._write(_sse("response.created", {"type": "response.created", "sequence_number": next(seq), "response": response("in_progress", None, "")}))
        for word in ("Hi", " there."):
            self._write(
                _sse(
                    "response.output_text.delta",
                    {"type": "response.output_text.delta", "sequence_number": next(seq), "item_id": mid, "output_index": 0, "content_index": 0, "delta": word, "logprobs": []},
                )
            )
            if owner.cut_stream:
                return
        self._write(
            _sse(
                "response.completed",
                {"type": "response.completed", "sequence_number": next(seq), "response": response("completed", RESPONSES_USAGE, "Hi there.")},
            )
        )

    # Anthropic messages ---------------------------------------------------------------------------
    def _messages(self, body: Dict[str, Any], model: str) -> None:
        owner: FakeProvider = self.server_owner
        mid = "msg_" + uuid.uuid4().hex[:24]
        if not body.get("stream"):
            return self._send_json(
                200,
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": "Hello from the fake."}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": ANTHROPIC_USAGE,
                },
            )
        self._start_sse()
        start_usage = dict(ANTHROPIC_USAGE)
        start_usage["output_tokens"] = 1
        self._write(
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
        )
        self._write(_sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        self._write(_sse("ping", {"type": "ping"}))
        for word in ("Hello", " from", " the", " fake."):
            self._write(_sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}))
            if owner.cut_stream:
                return
        self._write(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        self._write(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]},
                },
            )
        )
        self._write(_sse("message_stop", {"type": "message_stop"}))


# ---- fake burnrate ingest (well-behaved or not) ------------------------------------------------


class FakeBurnrate(_Base):
    """POST /v1/ingest/batch recorder. mode: ok | slow | 429 | 402 | 500 | 401 | 413 | reject.
    /v1/guard answers self.guard_answer (status, body)."""

    def __init__(self, mode: str = "ok") -> None:
        self.handler_cls = _IngestHandler
        self.mode = mode
        self.slow_seconds = 2.0
        self.retry_after = "1"
        self.batches: List[List[Dict[str, Any]]] = []
        self.hits = 0
        self.headers: List[Dict[str, str]] = []
        self.guard_answer = (200, {"allow": True})
        self.guard_requests: List[Dict[str, Any]] = []
        super().__init__()

    @property
    def events(self) -> List[Dict[str, Any]]:
        with self.lock:
            return [e for b in self.batches for e in b]

    def wait_for(self, n: int, timeout: float = 5.0) -> List[Dict[str, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            evs = self.events
            if len(evs) >= n:
                return evs
            time.sleep(0.01)
        return self.events


class _IngestHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802
        owner: FakeBurnrate = self.server_owner
        raw = self._body()
        path = self.path.split("?")[0]
        if path == "/v1/guard":
            with owner.lock:
                owner.guard_requests.append({"headers": dict(self.headers), "body": json.loads(raw or b"{}")})
            status, obj = owner.guard_answer
            return self._send_json(status, obj)
        with owner.lock:
            owner.hits += 1
            owner.headers.append(dict(self.headers))
        mode = owner.mode
        if mode == "slow":
            time.sleep(owner.slow_seconds)
        elif mode == "429":
            return self._send_json(429, {"error": "slow down"}, {"Retry-After": owner.retry_after})
        elif mode == "402":
            return self._send_json(402, {"error": "workspace paused"})
        elif mode == "500":
            return self._send_json(500, {"error": "boom"})
        elif mode == "401":
            return self._send_json(401, {"error": "bad key"})
        try:
            events = json.loads(raw)
        except ValueError:
            return self._send_json(400, {"error": "bad json"})
        if mode == "413" and len(events) > 1:
            return self._send_json(413, {"error": "too large"})
        with owner.lock:
            owner.batches.append(events)
        rejected = []
        if mode == "reject":
            rejected = [{"index": i, "errors": [{"field": "model", "message": "is required"}]} for i in range(len(events))]
        self._send_json(202, {"accepted": len(events) - len(rejected), "duplicates": 0, "rejected": rejected})


def dead_url() -> str:
    """A URL where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


def by_call(events: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """externalRequestId -> its attempt events, in attempt order (insertion-ordered)."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["externalRequestId"], []).append(e)
    for v in out.values():
        v.sort(key=lambda e: e["attempt"])
    return out


def finals(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The last attempt of each logical call, in call order."""
    return [v[-1] for v in by_call(events).values()]
