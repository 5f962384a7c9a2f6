"""Background delivery: bounded queue, one worker thread, batches to /v1/ingest/batch.

Rules (see the SDK README): the caller's thread only appends to a bounded deque; a
daemon thread sends batches with a short timeout; 429 honours Retry-After; 402 pauses
sending (logged once); network errors and 5xx retry with jittered backoff, then the batch
is dropped and counted; a full queue drops the newest event and counts it. Nothing here
raises into the application.
"""

from __future__ import annotations

import collections
import email.utils
import http.client
import json
import logging
import os
import random
import re
import threading
import time
import weakref
from typing import Any, Deque, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

logger = logging.getLogger("burnrate")

_USER_AGENT = "burnrate-python/0.1.0"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The server accepts tag keys of these characters only (and rejects the whole event
# otherwise), so anything else becomes "_".
_TAG_KEY_OUTSIDE = re.compile(r"[^A-Za-z0-9_.\-]")

# contract limits (server validator)
_MAX_ID = 128
_MAX_PROVIDER = 64
_MAX_TAGS = 10
_MAX_TAG_KEY = 64
_MAX_TAG_VALUE = 128
_TEXT_FIELDS = (
    ("externalRequestId", _MAX_ID),
    ("provider", _MAX_PROVIDER),
    ("model", _MAX_ID),
    ("endpointTag", _MAX_ID),
    ("promptVersion", _MAX_ID),
    ("tenantId", _MAX_ID),
    ("userId", _MAX_ID),
    ("errorCode", _MAX_ID),
)
_COUNTERS = (
    "enqueued",
    "sent",
    "duplicates",
    "rejected",
    "dropped_queue_full",
    "dropped_send_failed",
    "dropped_rejected",
    "dropped_unauthorized",
    "dropped_rate_limited",
    "dropped_disabled",
    "batches_sent",
    "send_errors",
    "rate_limited",
    "paused_responses",
)

_live: "weakref.WeakSet[Delivery]" = weakref.WeakSet()


def _rfc3339(ts: float) -> str:
    ms = int(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def _text(value: Any, limit: int) -> Optional[str]:
    if value is None:
        return None
    s = value if isinstance(value, str) else str(value)
    s = s.strip()
    if not s:
        return None
    if _CONTROL.search(s):
        s = _CONTROL.sub(" ", s).strip()
    if len(s) > limit:
        s = s[:limit].rstrip()
    return s or None


def finalize_event(ev: Dict[str, Any]) -> Dict[str, Any]:
    """Make an event valid per the contract (done on the worker thread, not the caller's).

    Formats the timestamp, trims strings to the limits, clamps the token sums so the
    server does not reject the whole event for a provider's inconsistent counters.
    """
    ts = ev.get("timestamp")
    if isinstance(ts, (int, float)):
        ev["timestamp"] = _rfc3339(ts)
    for field, limit in _TEXT_FIELDS:
        if field in ev:
            v = _text(ev[field], limit)
            if v is None:
                del ev[field]
            else:
                ev[field] = v
    if "provider" in ev:
        ev["provider"] = ev["provider"].lower()
    if not ev.get("endpointTag"):
        ev["endpointTag"] = "untagged"
    if not ev.get("model"):
        ev["model"] = "unknown"
    if not ev.get("provider"):
        ev["provider"] = "unknown"
    inp = ev.get("inputTokens", 0)
    cached = ev.get("cachedTokens", 0)
    write = ev.get("cacheWriteTokens", 0)
    if cached + write > inp:
        ev["inputTokens"] = cached + write
    if ev.get("reasoningTokens", 0) > ev.get("outputTokens", 0):
        ev["outputTokens"] = ev["reasoningTokens"]
    att = ev.get("attempt")
    if att is not None:
        ev["attempt"] = min(max(int(att), 1), 64)
    tags = ev.get("tags")
    if tags is not None:
        clean = {}
        for k, v in tags.items():
            if len(clean) >= _MAX_TAGS:
                break
            k = _text(k, _MAX_TAG_KEY)
            if k is None or v is None:
                continue
            k = _TAG_KEY_OUTSIDE.sub("_", k)
            v = v if isinstance(v, str) else str(v)
            clean[k] = v[:_MAX_TAG_VALUE]
        if clean:
            ev["tags"] = clean
        else:
            del ev["tags"]
    if ev.get("costUsd") is None:
        ev.pop("costUsd", None)
    return ev


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _retry_after(value: Optional[str], default: float) -> float:
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except Exception:
        return default


class Delivery(object):
    """The queue and its worker. One per Burnrate instance."""

    def __init__(
        self,
        url: Optional[str],
        api_key: Optional[str],
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        queue_size: int = 10000,
        timeout: float = 0.6,
        max_send_attempts: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        max_retry_after: float = 60.0,
        pause_seconds: float = 30.0,
        max_rate_limited_retries: int = 10,
    ) -> None:
        self.enabled = bool(url and api_key)
        self.shutdown_timeout = 2.0
        self._api_key = api_key or ""
        self._batch_size = max(1, int(batch_size))
        self._flush_interval = max(0.001, float(flush_interval))
        self._queue_size = max(1, int(queue_size))
        self._timeout = float(timeout)
        self._max_send_attempts = max(1, int(max_send_attempts))
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_retry_after = max_retry_after
        self._pause_seconds = pause_seconds
        self._max_rl_retries = max_rate_limited_retries
        self._scheme = "http"
        self._host = ""
        self._port: Optional[int] = None
        self._path = "/v1/ingest/batch"
        if url:
            try:
                parts = urlsplit(url.rstrip("/"))
                self._scheme = parts.scheme or "http"
                self._host = parts.hostname or ""
                self._port = parts.port
                self._path = (parts.path or "") + "/v1/ingest/batch"
            except Exception:
                self.enabled = False
        self._init_runtime()
        self._logged: set = set()
        _live.add(self)

    # -- state that must be rebuilt in a forked child --------------------------------------
    def _init_runtime(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._q: Deque[Dict[str, Any]] = collections.deque()
        self._inflight = 0
        self._flushers = 0
        self._closed = False
        self._paused_until = 0.0
        self._paused = False
        self._thread: Optional[threading.Thread] = None
        self._conn: Optional[http.client.HTTPConnection] = None
        self._c: Dict[str, int] = dict.fromkeys(_COUNTERS, 0)

    def _after_fork(self) -> None:
        # the parent's worker thread does not exist here; its queue belongs to the parent
        self._init_runtime()

    # -- caller side (hot path) ------------------------------------------------------------
    def enqueue(self, ev: Dict[str, Any]) -> bool:
        if not self.enabled:
            self._c["dropped_disabled"] += 1
            return False
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            q = self._q
            if len(q) >= self._queue_size:
                self._c["dropped_queue_full"] += 1
                return False
            q.append(ev)
            self._c["enqueued"] += 1
            if self._thread is None:
                self._start_worker()
            elif len(q) == self._batch_size:
                self._cv.notify()
        return True

    def _start_worker(self) -> None:
        t = threading.Thread(target=self._run, name="burnrate-delivery", daemon=True)
        self._thread = t
        t.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every queued event was handled (sent or dropped) or timeout."""
        if not self.enabled:
            return True
        if self._pid != os.getpid():
            self._after_fork()
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cv:
            if not self._q and not self._inflight:
                return True
            self._flushers += 1
            self._cv.notify_all()
            try:
                while self._q or self._inflight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cv.wait(left)
                return True
            finally:
                self._flushers -= 1

    def close(self, timeout: float = 2.0) -> bool:
        ok = self.flush(timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        return ok

    def stats(self) -> Dict[str, Any]:
        with self._lock:
            s: Dict[str, Any] = dict(self._c)
            s["queued"] = len(self._q)
            s["in_flight"] = self._inflight
        s["dropped"] = (
            s["dropped_queue_full"]
            + s["dropped_send_failed"]
            + s["dropped_rejected"]
            + s["dropped_unauthorized"]
            + s["dropped_rate_limited"]
        )
        s["paused"] = self._paused
        s["enabled"] = self.enabled
        return s

    # -- worker side -----------------------------------------------------------------------
    def _log_once(self, key: str, level: int, msg: str, *args: Any) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        try:
            logger.log(level, msg, *args)
        except Exception:
            pass

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # pragma: no cover - last resort, never propagate
            try:
                logger.debug("burnrate worker stopped", exc_info=True)
            except Exception:
                pass
            with self._lock:
                self._thread = None

    def _loop(self) -> None:
        while True:
            with self._cv:
                if self._closed and not self._q:
                    self._thread = None
                    self._cv.notify_all()
                    return
                if len(self._q) < self._batch_size and not self._flushers and not self._closed:
                    self._cv.wait(self._flush_interval)
                if not self._q:
                    self._cv.notify_all()
                    continue
                n = min(self._batch_size, len(self._q))
                batch = [self._q.popleft() for _ in range(n)]
                self._inflight = n
            try:
                self._deliver(batch)
            except Exception:
                self._c["dropped_send_failed"] += len(batch)
                logger.debug("burnrate: unexpected delivery error", exc_info=True)
            with self._cv:
                self._inflight = 0
                self._cv.notify_all()

    def _sleep(self, seconds: float) -> None:
        """Sleep on the condition so close() can cut it short."""
        end = time.monotonic() + seconds
        with self._cv:
            while not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._cv.wait(left)

    def _deliver(self, batch: List[Dict[str, Any]]) -> None:
        events = []
        for ev in batch:
            try:
                events.append(finalize_event(ev))
            except Exception:
                self._c["dropped_rejected"] += 1
        if events:
            self._send(events)

    def _encode(self, events: List[Dict[str, Any]]) -> Tuple[Optional[bytes], List[Dict[str, Any]]]:
        try:
            return _dumps(events), events
        except Exception:
            good = []
            for ev in events:
                try:
                    _dumps(ev)
                    good.append(ev)
                except Exception:
                    self._c["dropped_rejected"] += 1
            self._log_once("encode", logging.WARNING, "burnrate: dropped events that are not valid JSON")
            return (_dumps(good) if good else None), good

    def _send(self, events: List[Dict[str, Any]]) -> None:
        body, events = self._encode(events)
        if body is None:
            return
        failures = 0
        rate_limited = 0
        while True:
            if self._paused_until:
                wait = self._paused_until - time.monotonic()
                if wait > 0:
                    if self._closed:
                        self._c["dropped_send_failed"] += len(events)
                        return
                    self._sleep(wait)
                    continue
            try:
                status, headers, data = self._post(body)
            except Exception as e:
                status, headers, data = 0, {}, b""
                err: Optional[BaseException] = e
            else:
                err = None
            if 200 <= status < 300:
                self._on_accepted(len(events), data)
                if self._paused:
                    self._paused = False
                    self._paused_until = 0.0
                    self._logged.discard("paused")
                    logger.info("burnrate: ingest accepted events again; sending resumed")
                return
            if status == 429:
                self._c["rate_limited"] += 1
                rate_limited += 1
                if rate_limited > self._max_rl_retries or self._closed:
                    self._c["dropped_rate_limited"] += len(events)
                    return
                delay = min(_retry_after(headers.get("retry-after"), 1.0), self._max_retry_after)
                self._sleep(delay)
                continue
            if status == 402:
                self._c["paused_responses"] += 1
                self._paused = True
                pause = min(_retry_after(headers.get("retry-after"), self._pause_seconds), 3600.0)
                self._paused_until = time.monotonic() + pause
                self._log_once(
                    "paused",
                    logging.WARNING,
                    "burnrate: the workspace is paused (HTTP 402); sending is paused and "
                    "events stay queued (bounded) until ingest accepts them again",
                )
                if self._closed:
                    self._c["dropped_send_failed"] += len(events)
                    return
                continue
            if status in (401, 403):
                self._c["dropped_unauthorized"] += len(events)
                self._log_once(
                    "auth",
                    logging.ERROR,
                    "burnrate: ingest refused the API key (HTTP %d); events are dropped",
                    status,
                )
                return
            if status == 413 and len(events) > 1:
                half = len(events) // 2
                self._send(events[:half])
                self._send(events[half:])
                return
            if 400 <= status < 500:
                self._c["dropped_rejected"] += len(events)
                self._log_once(
                    "http%d" % status,
                    logging.WARNING,
                    "burnrate: ingest answered HTTP %d; %d events dropped",
                    status,
                    len(events),
                )
                return
            # network error, timeout or 5xx: jittered exponential backoff, then drop
            self._c["send_errors"] += 1
            failures += 1
            if failures >= self._max_send_attempts or self._closed:
                self._c["dropped_send_failed"] += len(events)
                self._log_once(
                    "send_failed",
                    logging.WARNING,
                    "burnrate: could not deliver events (%s); dropped after %d attempts "
                    "(further failures are counted in stats(), not logged)",
                    ("HTTP %d" % status) if status else type(err).__name__,
                    failures,
                )
                return
            cap = min(self._backoff_max, self._backoff_base * (2 ** failures))
            self._sleep(random.uniform(cap / 2, cap))

    def _on_accepted(self, n: int, data: bytes) -> None:
        self._c["batches_sent"] += 1
        try:
            answer = json.loads(data.decode("utf-8")) if data else {}
        except Exception:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        accepted = answer.get("accepted")
        duplicates = answer.get("duplicates")
        rejected = answer.get("rejected") or []
        if not isinstance(accepted, int):
            accepted = n
        self._c["sent"] += accepted
        if isinstance(duplicates, int):
            self._c["duplicates"] += duplicates
        if isinstance(rejected, list) and rejected:
            self._c["rejected"] += len(rejected)
            try:
                first = rejected[0].get("errors") or []
                fields = ", ".join(
                    "%s: %s" % (e.get("field"), e.get("message")) for e in first if isinstance(e, dict)
                )
            except Exception:
                fields = "?"
            self._log_once(
                "rejected",
                logging.WARNING,
                "burnrate: ingest rejected %d events (first: %s)",
                len(rejected),
                fields,
            )

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._scheme == "https":
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _post(self, body: bytes) -> Tuple[int, Dict[str, str], bytes]:
        headers = {
            "Content-Type": "application/json",
            "X-API-Key": self._api_key,
            "User-Agent": _USER_AGENT,
        }
        for fresh_retry in (False, True):
            reused = self._conn is not None
            conn = self._connection()
            try:
                conn.request("POST", self._path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k.lower(): v for k, v in resp.getheaders()}
                if resp.will_close:
                    self._drop_conn()
                return resp.status, out, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_conn()
                if reused and not fresh_retry:
                    continue  # a kept-alive connection the server had closed: retry once
                raise
            except Exception:
                self._drop_conn()
                raise
        raise RuntimeError("unreachable")

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


def _after_fork_in_child() -> None:
    for d in list(_live):
        try:
            d._after_fork()
        except Exception:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
