"""The Burnrate object: configuration, wrap(), context(), track(), guard(), delivery."""

from __future__ import annotations

import atexit
import functools
import hashlib
import hmac
import http.client
import inspect
import json
import logging
import os
import time
import warnings
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlsplit

from ._context import ATTR_KEYS, AttributionContext, current_attrs, merge_attrs
from . import _delivery as _delivery_mod
from ._delivery import Delivery
from ._event import build_event, classify_exception, new_request_id, service_tier_of
from ._usage import Usage
from ._wrap import wrap_client

logger = logging.getLogger("burnrate")

_ENVIRONMENTS = ("prod", "staging", "dev")
_DATA_MODES = ("real", "test", "demo")
_OPERATIONS = ("chat", "responses", "embeddings", "image", "audio")


def env_api_key(env: Any) -> Optional[str]:
    """The ingest key from the environment: BURNRATE_API_KEY, else the deprecated
    BURNRATE_KEY (the name the CLI used before), with a warning on stderr so users rename it."""
    key = env.get("BURNRATE_API_KEY")
    if key:
        return key
    old = env.get("BURNRATE_KEY")
    if old:
        # FutureWarning, not DeprecationWarning: Python shows it by default, to the end user.
        warnings.warn(
            "burnrate: BURNRATE_KEY is deprecated; set BURNRATE_API_KEY instead",
            FutureWarning,
            stacklevel=3,
        )
        return old
    return None


def pseudonymize(value: Any, secret: str) -> str:
    """HMAC-SHA256 of str(value) keyed by secret, hex, prefixed "ps_" (67 characters)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return "ps_" + hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()


class BudgetExceeded(Exception):
    """Raised by guard() when the server answers allow=false."""

    def __init__(self, decision: "GuardDecision") -> None:
        self.decision = decision
        self.reason = decision.reason
        super().__init__("burnrate budget exceeded" + (": %s" % decision.reason if decision.reason else ""))


class GuardDecision(object):
    """The answer of POST /v1/guard. degraded=True: the server could not be asked and the
    SDK failed open (allow=True)."""

    __slots__ = ("allow", "reason", "raw", "degraded")

    def __init__(self, allow: bool, reason: Optional[str] = None, raw: Any = None, degraded: bool = False) -> None:
        self.allow = allow
        self.reason = reason
        self.raw = raw
        self.degraded = degraded

    def __bool__(self) -> bool:
        return self.allow

    def __repr__(self) -> str:
        return "GuardDecision(allow=%r, reason=%r, degraded=%r)" % (self.allow, self.reason, self.degraded)


def parse_guard_response(status: int, body: bytes) -> GuardDecision:
    """Map an HTTP answer of /v1/guard to a decision. Unknown or failed answers fail open."""
    data: Any = None
    try:
        data = json.loads(body.decode("utf-8")) if body else None
    except Exception:
        data = None
    if 200 <= status < 300 and isinstance(data, dict):
        allow = data.get("allow", data.get("allowed"))
        if isinstance(allow, bool):
            reason = data.get("reason")
            return GuardDecision(allow, reason if isinstance(reason, str) else None, data)
        return GuardDecision(True, "unrecognised guard answer", data, degraded=True)
    if status in (402, 429) and isinstance(data, dict) and data.get("allow") is False:
        reason = data.get("reason")
        return GuardDecision(False, reason if isinstance(reason, str) else None, data)
    return GuardDecision(True, "guard unavailable (HTTP %d)" % status, data, degraded=True)


class Tracker(object):
    """One logical call tracked by hand (any provider). See Burnrate.track()."""

    def __init__(
        self,
        br: "Burnrate",
        provider: str,
        model: Optional[str],
        operation: str,
        given: Dict[str, Any],
        external_request_id: Optional[str],
        attempt: int,
        usage_from: Optional[Callable[[Any], Any]],
    ) -> None:
        self._br = br
        self.provider = provider
        self.model = model
        self.operation = operation
        self._given = given
        self._attrs = br._resolve(given)
        self._fixed_erid = external_request_id
        self.external_request_id = external_request_id or new_request_id()
        self.attempt = attempt
        self._usage_from = usage_from
        self.usage: Optional[Usage] = None
        self.status: Optional[str] = None
        self.error_code: Optional[str] = None
        self.service_tier: Optional[str] = None
        self._started = 0.0
        self._t0 = 0.0
        self._done = False
        self._ctx_token: Any = None

    # -- filling in ---------------------------------------------------------------------------
    def set_usage(self, usage: Any = None, **counts: Any) -> None:
        """A Usage (from usage_from_*), or counts: input_tokens=, cached_tokens=,
        cache_write_tokens=, output_tokens=, reasoning_tokens=, cost_usd=."""
        try:
            if isinstance(usage, Usage):
                self.usage = usage
            else:
                self.usage = Usage(**counts)
        except Exception:
            logger.debug("burnrate: bad usage given to set_usage", exc_info=True)

    def set_model(self, model: str) -> None:
        self.model = model

    def set_status(self, status: str, error_code: Optional[str] = None) -> None:
        self.status = status
        self.error_code = error_code

    def set_service_tier(self, tier: str) -> None:
        self.service_tier = service_tier_of(tier)

    def retry(self) -> None:
        """Count one more attempt of the same logical call (same externalRequestId)."""
        self.attempt += 1

    # -- lifecycle ----------------------------------------------------------------------------
    def _start(self) -> None:
        self._started = time.time()
        self._t0 = time.perf_counter()
        self._done = False

    def _finish(self, exc: Optional[BaseException]) -> None:
        if self._done:
            return
        self._done = True
        try:
            if exc is not None:
                status, code = classify_exception(exc)
                if self.status is None or self.status == "success":
                    self.status, self.error_code = status, self.error_code or code
            status = self.status or "success"
            ev = build_event(
                self._attrs,
                external_request_id=self.external_request_id,
                attempt=self.attempt,
                started=self._started,
                provider=self.provider,
                model=self.model,
                operation=self.operation,
                status=status,
                usage=self.usage,
                latency_ms=int((time.perf_counter() - self._t0) * 1000),
                error_code=self.error_code,
                service_tier=self.service_tier,
            )
            self._br._emit(ev)
        except Exception:
            logger.debug("burnrate: could not record a tracked call", exc_info=True)

    def _result(self, result: Any) -> None:
        if self._usage_from is not None and self.usage is None:
            try:
                u = self._usage_from(result)
                if isinstance(u, Usage):
                    self.usage = u
            except Exception:
                logger.debug("burnrate: usage_from failed", exc_info=True)

    def __enter__(self) -> "Tracker":
        self._start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._finish(exc)
        return False

    async def __aenter__(self) -> "Tracker":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def _fresh(self) -> "Tracker":
        return Tracker(
            self._br,
            self.provider,
            self.model,
            self.operation,
            self._given,
            self._fixed_erid,
            self.attempt,
            self._usage_from,
        )

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """As a decorator: one tracked logical call per invocation of fn."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                t = self._fresh()
                t._start()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as e:
                    t._finish(e)
                    raise
                t._result(result)
                t._finish(None)
                return result

            return awrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = self._fresh()
            t._start()
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                t._finish(e)
                raise
            t._result(result)
            t._finish(None)
            return result

        return wrapper


class Burnrate(object):
    """The burnrate client. Cheap to keep one per process; thread-safe.

    Configuration comes from the arguments or the environment: BURNRATE_URL,
    BURNRATE_API_KEY (ingest scope; the old name BURNRATE_KEY still works, with a
    deprecation warning), BURNRATE_ENVIRONMENT, BURNRATE_DATA_MODE,
    BURNRATE_PSEUDONYMIZE_SECRET, BURNRATE_DISABLED=1.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        environment: Optional[str] = None,
        data_mode: Optional[str] = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        queue_size: int = 10000,
        timeout: float = 0.6,
        pseudonymize_secret: Optional[str] = None,
        enabled: Optional[bool] = None,
        max_send_attempts: int = 4,
        shutdown_timeout: float = 2.0,
        guard_fail_open: bool = True,
        **delivery_options: Any,
    ) -> None:
        env = os.environ
        self.url = (url or env.get("BURNRATE_URL") or "").rstrip("/") or None
        api_key = api_key or env_api_key(env)
        self._logged: set = set()
        environment = environment or env.get("BURNRATE_ENVIRONMENT") or None
        data_mode = data_mode or env.get("BURNRATE_DATA_MODE") or None
        if environment is not None and environment not in _ENVIRONMENTS:
            logger.warning("burnrate: environment must be one of %s; ignoring it", ", ".join(_ENVIRONMENTS))
            environment = None
        if data_mode is not None and data_mode not in _DATA_MODES:
            logger.warning("burnrate: data_mode must be one of %s; ignoring it", ", ".join(_DATA_MODES))
            data_mode = None
        self._defaults: Dict[str, Any] = {}
        if environment:
            self._defaults["environment"] = environment
        if data_mode:
            self._defaults["data_mode"] = data_mode
        self._secret = pseudonymize_secret or env.get("BURNRATE_PSEUDONYMIZE_SECRET") or None
        if enabled is None:
            enabled = env.get("BURNRATE_DISABLED", "").lower() not in ("1", "true", "yes")
        self.timeout = float(timeout)
        self.shutdown_timeout = float(shutdown_timeout)
        self.guard_fail_open = guard_fail_open
        self._api_key = api_key
        self._delivery = Delivery(
            self.url if enabled else None,
            api_key,
            batch_size=batch_size,
            flush_interval=flush_interval,
            queue_size=queue_size,
            timeout=timeout,
            max_send_attempts=max_send_attempts,
            **delivery_options,
        )
        self._delivery.shutdown_timeout = self.shutdown_timeout
        self._active = self._delivery.enabled
        if enabled and not self._active:
            self._log_once(
                "disabled",
                logging.INFO,
                "burnrate: BURNRATE_URL / BURNRATE_API_KEY not set; calls pass through untracked",
            )

    def __repr__(self) -> str:  # never show the key
        return "Burnrate(url=%r, enabled=%r)" % (self.url, self._active)

    # -- internals ----------------------------------------------------------------------------
    def _log_once(self, key: str, level: int, msg: str, *args: Any) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        try:
            logger.log(level, msg, *args)
        except Exception:
            pass

    def _resolve(self, attrs: Dict[str, Any]) -> Dict[str, Any]:
        """defaults < given attrs (wrap/track) < active context. Per-call overrides go on top
        in the wrapper."""
        out = merge_attrs(self._defaults, attrs) if self._defaults else dict(attrs)
        ctx = current_attrs()
        if ctx:
            out = merge_attrs(out, ctx)
        return out

    def _emit(self, ev: Dict[str, Any]) -> None:
        try:
            if self._secret:
                uid = ev.get("userId")
                if uid is not None and not (isinstance(uid, str) and uid.startswith("ps_")):
                    ev["userId"] = pseudonymize(uid, self._secret)
            self._delivery.enqueue(ev)
        except Exception:
            logger.debug("burnrate: could not queue an event", exc_info=True)

    # -- public API ---------------------------------------------------------------------------
    def wrap(
        self,
        client: Any,
        *,
        endpoint_tag: Optional[str] = None,
        prompt_version: Optional[str] = None,
        tenant_id: Optional[str] = None,
        user_id: Optional[str] = None,
        tags: Optional[Dict[str, str]] = None,
        provider: Optional[str] = None,
    ) -> Any:
        """Return client (OpenAI, AsyncOpenAI, Anthropic, AsyncAnthropic and their Azure /
        Bedrock / Vertex variants) wrapped so every call is recorded. Per-call overrides:
        pass burnrate={"endpoint_tag": ..., "tenant_id": ..., "external_request_id": ...,
        "attempt": ...} to any instrumented method."""
        try:
            attrs: Dict[str, Any] = dict(self._defaults)
            attrs = merge_attrs(
                attrs,
                {
                    "endpoint_tag": endpoint_tag,
                    "prompt_version": prompt_version,
                    "tenant_id": tenant_id,
                    "user_id": user_id,
                    "tags": tags,
                },
            )
            return wrap_client(self, client, attrs, provider)
        except Exception:
            logger.debug("burnrate: wrap failed; returning the client unwrapped", exc_info=True)
            return client

    def context(self, **attrs: Any) -> AttributionContext:
        """Attribution for every call inside: endpoint_tag, prompt_version, tenant_id,
        user_id, tags, data_mode, environment. Nests; inner values win."""
        return AttributionContext(attrs)

    def track(
        self,
        provider: str,
        model: Optional[str] = None,
        *,
        operation: str = "chat",
        endpoint_tag: Optional[str] = None,
        prompt_version: Optional[str] = None,
        tenant_id: Optional[str] = None,
        user_id: Optional[str] = None,
        tags: Optional[Dict[str, str]] = None,
        external_request_id: Optional[str] = None,
        attempt: int = 1,
        usage_from: Optional[Callable[[Any], Any]] = None,
    ) -> Tracker:
        """Track a call to any provider yourself.

        with br.track("google", "gemini-2.5-flash", endpoint_tag="search.summarize") as t:
            resp = genai.models.generate_content(...)
            t.set_usage(usage_from_gemini(resp.usage_metadata))

        or as a decorator with usage_from=lambda result: usage_from_gemini(result).
        """
        if operation not in _OPERATIONS:
            operation = "chat"
        given = {
            "endpoint_tag": endpoint_tag,
            "prompt_version": prompt_version,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "tags": tags,
        }
        given = {k: v for k, v in given.items() if v is not None}
        return Tracker(
            self,
            provider,
            model,
            operation,
            given,
            external_request_id,
            attempt if isinstance(attempt, int) and attempt > 0 else 1,
            usage_from,
        )

    def record(
        self,
        provider: str,
        model: str,
        usage: Optional[Usage] = None,
        *,
        status: str = "success",
        latency_ms: Optional[int] = None,
        error_code: Optional[str] = None,
        operation: str = "chat",
        external_request_id: Optional[str] = None,
        attempt: int = 1,
        started: Optional[float] = None,
        service_tier: Optional[str] = None,
        **attrs: Any,
    ) -> str:
        """Record one finished call directly. Returns its externalRequestId."""
        erid = external_request_id or new_request_id()
        try:
            given = {k: v for k, v in attrs.items() if k in ATTR_KEYS}
            ev = build_event(
                self._resolve(given),
                external_request_id=erid,
                attempt=attempt,
                started=started if started is not None else time.time(),
                provider=provider,
                model=model,
                operation=operation if operation in _OPERATIONS else "chat",
                status=status,
                usage=usage,
                latency_ms=latency_ms,
                error_code=error_code,
                service_tier=service_tier_of(service_tier),
            )
            self._emit(ev)
        except Exception:
            logger.debug("burnrate: record failed", exc_info=True)
        return erid

    def pseudonymize(self, value: Any) -> str:
        """HMAC-SHA256(secret, value) as "ps_<hex>". Needs pseudonymize_secret (or
        BURNRATE_PSEUDONYMIZE_SECRET): raises ValueError when none is configured."""
        if not self._secret:
            raise ValueError("burnrate: no pseudonymize_secret configured")
        return pseudonymize(value, self._secret)

    def guard(
        self,
        endpoint_tag: Optional[str] = None,
        *,
        tenant_id: Optional[str] = None,
        user_id: Optional[str] = None,
        model: Optional[str] = None,
        estimated_cost_usd: Optional[float] = None,
        external_request_id: Optional[str] = None,
        raise_on_deny: bool = True,
    ) -> GuardDecision:
        """Ask the server (POST /v1/guard) whether this call fits the budgets.

        Raises BudgetExceeded when the answer is allow=false (unless raise_on_deny=False).
        If the server cannot be asked (down, timeout, not implemented) the SDK fails open:
        the decision is allow=True with degraded=True (guard_fail_open=False makes it
        allow=False instead)."""
        decision = self._guard_request(
            endpoint_tag, tenant_id, user_id, model, estimated_cost_usd, external_request_id
        )
        if not decision.allow and raise_on_deny:
            raise BudgetExceeded(decision)
        return decision

    async def aguard(self, endpoint_tag: Optional[str] = None, **kwargs: Any) -> GuardDecision:
        """guard() for async code (runs the blocking request in a thread)."""
        import asyncio
        import contextvars

        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # keep br.context() attribution in the worker thread
        return await loop.run_in_executor(None, ctx.run, functools.partial(self.guard, endpoint_tag, **kwargs))

    def _guard_request(
        self,
        endpoint_tag: Optional[str],
        tenant_id: Optional[str],
        user_id: Optional[str],
        model: Optional[str],
        estimated_cost_usd: Optional[float],
        external_request_id: Optional[str],
    ) -> GuardDecision:
        try:
            ctx = self._resolve({})
            body: Dict[str, Any] = {
                "endpointTag": endpoint_tag or ctx.get("endpoint_tag"),
                "tenantId": tenant_id or ctx.get("tenant_id"),
                "userId": user_id or ctx.get("user_id"),
                "model": model,
                "estimatedCostUsd": estimated_cost_usd,
                "externalRequestId": external_request_id,
            }
            if body["userId"] is not None and self._secret and not str(body["userId"]).startswith("ps_"):
                body["userId"] = pseudonymize(body["userId"], self._secret)
            body = {k: v for k, v in body.items() if v is not None}
            if not self.url or not self._api_key:
                return self._guard_degraded("burnrate not configured")
            parts = urlsplit(self.url)
            conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            conn = conn_cls(parts.hostname or "", parts.port, timeout=self.timeout)
            try:
                conn.request(
                    "POST",
                    (parts.path or "") + "/v1/guard",
                    json.dumps(body).encode("utf-8"),
                    {"Content-Type": "application/json", "X-API-Key": self._api_key},
                )
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            decision = parse_guard_response(resp.status, data)
            if decision.degraded:
                self._log_once(
                    "guard_%d" % resp.status,
                    logging.WARNING,
                    "burnrate: guard answered HTTP %d; failing %s",
                    resp.status,
                    "open" if self.guard_fail_open else "closed",
                )
                if not self.guard_fail_open:
                    decision.allow = False
            return decision
        except Exception as e:
            return self._guard_degraded("guard unreachable (%s)" % type(e).__name__)

    def _guard_degraded(self, reason: str) -> GuardDecision:
        self._log_once("guard_" + reason, logging.WARNING, "burnrate: %s; failing open", reason)
        return GuardDecision(self.guard_fail_open, reason, None, degraded=True)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is sent or dropped (True) or timeout (False)."""
        try:
            return self._delivery.flush(timeout)
        except Exception:
            return False

    def close(self, timeout: Optional[float] = None) -> bool:
        """Flush and stop the worker."""
        try:
            return self._delivery.close(self.shutdown_timeout if timeout is None else timeout)
        except Exception:
            return False

    def stats(self) -> Dict[str, Any]:
        """Delivery counters: enqueued, sent, duplicates, rejected, dropped_* , queued,
        send_errors, rate_limited, paused, ..."""
        try:
            return self._delivery.stats()
        except Exception:
            return {}


@atexit.register
def _flush_at_exit() -> None:
    # every live queue, including those of Burnrate objects already garbage-collected
    for d in list(_delivery_mod._live):
        try:
            d.close(getattr(d, "shutdown_timeout", 2.0))
        except Exception:
            pass
