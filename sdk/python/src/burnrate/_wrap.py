"""Transparent wrappers for OpenAI and Anthropic clients (sync and async).

The wrapped client is a proxy: attribute access passes through to the real client, and
only the instrumented methods (chat.completions.create/parse, responses.create/parse,
embeddings.create, messages.create, messages.stream) are replaced. They return exactly
what the provider SDK returns (streams are wrapped in a pass-through proxy that also
reports isinstance() as the provider's stream class) and re-raise its exceptions
unchanged. Everything burnrate does around the call is guarded: it never raises.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from ._context import CallState, current_attrs, current_call, install_http_hook, merge_attrs
from ._event import build_event, classify_exception, new_request_id, service_tier_of
from ._usage import (
    Usage,
    anthropic_messages,
    openai_chat,
    openai_embeddings,
    openai_responses,
    openrouter,
    usage_from_anthropic_stream,
    xai,
)

logger = logging.getLogger("burnrate")

_REWRAP = "rewrap"
OPENAI_SPEC: Dict[str, Any] = {
    "chat": {"completions": {"create": "openai.chat", "parse": "openai.chat"}},
    "responses": {"create": "openai.responses", "parse": "openai.responses"},
    "embeddings": {"create": "openai.embeddings"},
    "with_options": _REWRAP,
    "copy": _REWRAP,
}
ANTHROPIC_SPEC: Dict[str, Any] = {
    "messages": {"create": "anthropic.messages", "stream": "anthropic.messages.stream"},
    "with_options": _REWRAP,
    "copy": _REWRAP,
}
_OPERATION = {
    "openai.chat": "chat",
    "openai.responses": "responses",
    "openai.embeddings": "embeddings",
    "anthropic.messages": "chat",
    "anthropic.messages.stream": "chat",
}
# OpenAI-compatible hosts -> provider name (the OpenAI client pointed elsewhere)
_HOSTS = (
    ("openrouter.ai", "openrouter"),
    ("api.x.ai", "xai"),
    ("x.ai", "xai"),
    ("openai.azure.com", "azure"),
    ("azure.com", "azure"),
    ("deepseek.com", "deepseek"),
    ("mistral.ai", "mistral"),
    ("groq.com", "groq"),
    ("together.xyz", "together"),
    ("together.ai", "together"),
    ("fireworks.ai", "fireworks"),
    ("generativelanguage.googleapis.com", "google"),
    ("perplexity.ai", "perplexity"),
)
_CHAT_MAPPERS: Dict[str, Callable[[Any], Usage]] = {
    "openrouter": openrouter,
    "xai": xai,
}
_CALL_KEYS = ("external_request_id", "attempt")


def detect_kind(client: Any) -> Optional[str]:
    for cls in type(client).__mro__:
        mod = getattr(cls, "__module__", "") or ""
        root = mod.split(".", 1)[0]
        if root in ("openai", "anthropic"):
            return root
    return None


def detect_provider(client: Any, kind: str) -> str:
    name = type(client).__name__
    if kind == "anthropic":
        if "Bedrock" in name:
            return "bedrock"
        if "Vertex" in name:
            return "google"
        if "Foundry" in name:
            return "azure"
        return "anthropic"
    if "Azure" in name:
        return "azure"
    try:
        host = (urlsplit(str(getattr(client, "base_url", ""))).hostname or "").lower()
    except Exception:
        host = ""
    for suffix, provider in _HOSTS:
        if host == suffix or host.endswith("." + suffix):
            return provider
    return "openai"


def is_async_client(client: Any) -> bool:
    if type(client).__name__.startswith("Async"):
        return True
    try:
        import inspect

        return inspect.iscoroutinefunction(getattr(getattr(client, "_client", None), "send", None))
    except Exception:
        return False


class ClientConfig(object):
    """What one wrap() call decided: the Burnrate instance, provider, defaults."""

    __slots__ = ("br", "kind", "provider", "is_async", "attrs", "chat_mapper", "spec")

    def __init__(self, br: Any, kind: str, provider: str, is_async: bool, attrs: Dict[str, Any]) -> None:
        self.br = br
        self.kind = kind
        self.provider = provider
        self.is_async = is_async
        self.attrs = attrs
        self.chat_mapper = _CHAT_MAPPERS.get(provider, openai_chat)
        self.spec = OPENAI_SPEC if kind == "openai" else ANTHROPIC_SPEC

    def begin(self, shape: str, kwargs: Dict[str, Any]) -> Optional["Call"]:
        """Start one logical call. Pops the `burnrate=` kwarg (always) and may add
        stream_options.include_usage. Returns None when tracking is off or on error."""
        overrides = kwargs.pop("burnrate", None)
        try:
            br = self.br
            if not br._active:
                return None
            attrs = self.attrs
            ctx = current_attrs()
            if ctx:
                attrs = merge_attrs(attrs, ctx)
            erid = None
            attempt = 1
            if overrides:
                extra = {k: v for k, v in overrides.items() if k not in _CALL_KEYS}
                if extra:
                    attrs = merge_attrs(attrs, extra)
                erid = overrides.get("external_request_id")
                attempt = overrides.get("attempt") or 1
            stream = kwargs.get("stream") is True
            hide_usage_chunk = False
            if stream and shape == "openai.chat":
                so = kwargs.get("stream_options")
                if not (isinstance(so, dict) and so.get("include_usage") is True):
                    new_so = dict(so) if isinstance(so, dict) else {}
                    new_so["include_usage"] = True
                    kwargs["stream_options"] = new_so
                    hide_usage_chunk = True
            call = Call(self, shape, attrs, erid or new_request_id(), attempt, kwargs.get("model"))
            call.stream = stream
            call.hide_usage_chunk = hide_usage_chunk
            return call
        except Exception:
            logger.debug("burnrate: could not start tracking a call", exc_info=True)
            return None


class Call(object):
    """One logical provider call: its identity, attempts, timing and the one event."""

    __slots__ = (
        "cfg",
        "shape",
        "attrs",
        "external_request_id",
        "base_attempt",
        "requested_model",
        "state",
        "stream",
        "hide_usage_chunk",
        "started",
        "t0",
        "done",
    )

    def __init__(
        self, cfg: ClientConfig, shape: str, attrs: Dict[str, Any], erid: str, attempt: int, model: Any
    ) -> None:
        self.cfg = cfg
        self.shape = shape
        self.attrs = attrs
        self.external_request_id = erid
        self.base_attempt = attempt if isinstance(attempt, int) and attempt > 0 else 1
        self.requested_model = model if isinstance(model, str) else None
        self.state = CallState()
        self.stream = False
        self.hide_usage_chunk = False
        self.done = False
        self.start()

    def start(self) -> None:
        self.started = time.time()
        self.t0 = time.perf_counter()

    def emit(
        self,
        status: str,
        usage: Optional[Usage],
        model: Any = None,
        tier: Any = None,
        error_code: Optional[str] = None,
        usage_missing: bool = False,
    ) -> None:
        """Queue the events of this call: one per earlier failed HTTP attempt (the provider
        SDK retried it), then the final attempt with the usage or the final error."""
        if self.done:
            return
        self.done = True
        try:
            now = time.perf_counter()
            model = model if isinstance(model, str) and model else self.requested_model
            provider = self.cfg.provider
            operation = _OPERATION.get(self.shape, "chat")
            br = self.cfg.br
            log = self.state.log
            base = self.base_attempt - 1
            for i in range(len(log) - 1):
                wall, t0, t1, http_status, exc = log[i]
                a_status, a_code = attempt_outcome(http_status, exc)
                br._emit(
                    build_event(
                        self.attrs,
                        external_request_id=self.external_request_id,
                        attempt=base + i + 1,
                        started=wall,
                        provider=provider,
                        model=model,
                        operation=operation,
                        status=a_status,
                        usage=None,
                        latency_ms=int(((t1 or now) - t0) * 1000),
                        error_code=a_code,
                    )
                )
            if log:
                started, t0 = log[-1][0], log[-1][1]
            else:
                started, t0 = self.started, self.t0
            br._emit(
                build_event(
                    self.attrs,
                    external_request_id=self.external_request_id,
                    attempt=base + self.state.attempts(),
                    started=started,
                    provider=provider,
                    model=model,
                    operation=operation,
                    status=status,
                    usage=usage,
                    latency_ms=int((now - t0) * 1000),
                    error_code=error_code,
                    service_tier=service_tier_of(tier),
                    usage_missing=usage_missing,
                )
            )
        except Exception:
            logger.debug("burnrate: could not record a call", exc_info=True)

    def fail(self, exc: BaseException) -> None:
        try:
            self.state.note_exception(exc)
            status, code = classify_exception(exc)
            self.emit(status, None, error_code=code)
        except Exception:
            logger.debug("burnrate: could not record a failed call", exc_info=True)

    def finish(self, result: Any) -> Any:
        """Record a returned result (or wrap a stream). Returns what the caller gets."""
        try:
            if self.stream:
                return wrap_stream(result, self)
            usage, model, tier = extract(self.shape, result, self.cfg.chat_mapper)
            self.emit("success", usage, model, tier)
        except Exception:
            logger.debug("burnrate: could not record a result", exc_info=True)
        return result


def attempt_outcome(http_status: Optional[int], exc: Optional[BaseException]) -> Tuple[str, str]:
    """(status, errorCode) of one failed HTTP attempt."""
    if exc is not None:
        return classify_exception(exc)
    if http_status == 429:
        return "rate_limited", "429"
    if http_status in (408, 504):
        return "timeout", str(http_status)
    return "error", str(http_status) if http_status is not None else "unknown"


def extract(shape: str, result: Any, chat_mapper: Callable[[Any], Usage]) -> Tuple[Optional[Usage], Any, Any]:
    u = getattr(result, "usage", None)
    model = getattr(result, "model", None)
    if shape == "openai.chat":
        return (chat_mapper(u) if u is not None else None), model, getattr(result, "service_tier", None)
    if shape == "openai.responses":
        return (openai_responses(u) if u is not None else None), model, getattr(
            result, "service_tier", None
        )
    if shape == "openai.embeddings":
        return (openai_embeddings(u) if u is not None else None), model, None
    if shape.startswith("anthropic."):
        return (anthropic_messages(u) if u is not None else None), model, getattr(u, "service_tier", None)
    return None, model, None


# ---- stream observers ------------------------------------------------------------------


class _ChatObserver(object):
    __slots__ = ("mapper", "hide", "usage", "model", "tier")

    def __init__(self, mapper: Callable[[Any], Usage], hide: bool) -> None:
        self.mapper = mapper
        self.hide = hide
        self.usage: Optional[Usage] = None
        self.model = None
        self.tier = None

    def observe(self, chunk: Any) -> bool:
        m = getattr(chunk, "model", None)
        if m:
            self.model = m
        u = getattr(chunk, "usage", None)
        if u is not None:
            self.usage = self.mapper(u)
            self.tier = getattr(chunk, "service_tier", None)
            if self.hide and not getattr(chunk, "choices", None):
                return True  # the usage-only chunk the caller did not ask for
        return False

    def result(self) -> Tuple[Optional[Usage], bool]:
        return self.usage, self.usage is not None


class _ResponsesObserver(object):
    __slots__ = ("usage", "model", "tier")

    def __init__(self) -> None:
        self.usage: Optional[Usage] = None
        self.model = None
        self.tier = None

    def observe(self, event: Any) -> bool:
        resp = getattr(event, "response", None)
        if resp is not None:
            m = getattr(resp, "model", None)
            if m:
                self.model = m
            u = getattr(resp, "usage", None)
            if u is not None:
                self.usage = openai_responses(u)
                self.tier = getattr(resp, "service_tier", None)
        return False

    def result(self) -> Tuple[Optional[Usage], bool]:
        return self.usage, self.usage is not None


class _AnthropicObserver(object):
    __slots__ = ("parts", "model", "tier", "delta_seen")

    def __init__(self) -> None:
        self.parts: List[Any] = []
        self.model = None
        self.tier = None
        self.delta_seen = False

    def observe(self, event: Any) -> bool:
        t = getattr(event, "type", None)
        if t == "message_start":
            msg = getattr(event, "message", None)
            self.model = getattr(msg, "model", None)
            u = getattr(msg, "usage", None)
            if u is not None:
                self.parts = [u]
                self.tier = getattr(u, "service_tier", None)
        elif t == "message_delta":
            u = getattr(event, "usage", None)
            if u is not None:
                self.parts.append(u)
                self.delta_seen = True
        return False

    def result(self) -> Tuple[Optional[Usage], bool]:
        if not self.parts:
            return None, False
        return usage_from_anthropic_stream(self.parts), self.delta_seen


def _observer_for(call: Call) -> Any:
    if call.shape == "openai.chat":
        return _ChatObserver(call.cfg.chat_mapper, call.hide_usage_chunk)
    if call.shape == "openai.responses":
        return _ResponsesObserver()
    if call.shape.startswith("anthropic."):
        return _AnthropicObserver()
    return _ResponsesObserver()


_CLOSED = object()


def _finish_stream(call: Call, obs: Any, outcome: Any) -> None:
    """outcome: None = exhausted, _CLOSED = closed early by the caller, else the exception."""
    if call.done:
        return
    try:
        usage, complete = obs.result()
        model, tier = obs.model, obs.tier
        if complete:
            call.emit("success", usage, model, tier)
        elif outcome is None:
            call.emit("success", usage, model, tier, usage_missing=True)
        elif outcome is _CLOSED:
            call.emit("cancelled", usage, model, tier, error_code="stream_closed", usage_missing=True)
        else:
            status, code = classify_exception(outcome)
            call.emit(status, usage, model, tier, error_code=code, usage_missing=True)
    except Exception:
        logger.debug("burnrate: could not record a stream", exc_info=True)


class _StreamProxyBase(object):
    def __init__(self, inner: Any, call: Call, obs: Any) -> None:
        object.__setattr__(self, "_br_inner", inner)
        object.__setattr__(self, "_br_call", call)
        object.__setattr__(self, "_br_obs", obs)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(proxy, openai.Stream) stays True
        return type(self._br_inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._br_inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._br_inner, name, value)

    def __repr__(self) -> str:
        return repr(self._br_inner)

    def _br_finish(self, outcome: Any) -> None:
        _finish_stream(self._br_call, self._br_obs, outcome)

    def __del__(self) -> None:
        try:
            call = self._br_call
            if not call.done:
                _finish_stream(call, self._br_obs, _CLOSED)
        except Exception:
            pass


class SyncStreamProxy(_StreamProxyBase):
    def __iter__(self) -> "SyncStreamProxy":
        return self

    def __next__(self) -> Any:
        inner = self._br_inner
        obs = self._br_obs
        while True:
            try:
                item = inner.__next__()
            except StopIteration:
                self._br_finish(None)
                raise
            except BaseException as e:
                self._br_finish(e)
                raise
            try:
                hide = obs.observe(item)
            except Exception:
                hide = False
            if not hide:
                return item

    def __enter__(self) -> "SyncStreamProxy":
        self._br_inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._br_inner.__exit__(*exc)
        finally:
            self._br_finish(_CLOSED)

    def close(self) -> None:
        try:
            self._br_inner.close()
        finally:
            self._br_finish(_CLOSED)


class AsyncStreamProxy(_StreamProxyBase):
    def __aiter__(self) -> "AsyncStreamProxy":
        return self

    async def __anext__(self) -> Any:
        inner = self._br_inner
        obs = self._br_obs
        while True:
            try:
                item = await inner.__anext__()
            except StopAsyncIteration:
                self._br_finish(None)
                raise
            except BaseException as e:
                self._br_finish(e)
                raise
            try:
                hide = obs.observe(item)
            except Exception:
                hide = False
            if not hide:
                return item

    async def __aenter__(self) -> "AsyncStreamProxy":
        await self._br_inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._br_inner.__aexit__(*exc)
        finally:
            self._br_finish(_CLOSED)

    async def close(self) -> None:
        try:
            await self._br_inner.close()
        finally:
            self._br_finish(_CLOSED)


def wrap_stream(result: Any, call: Call) -> Any:
    obs = _observer_for(call)
    if hasattr(result, "__anext__"):
        return AsyncStreamProxy(result, call, obs)
    if hasattr(result, "__next__"):
        return SyncStreamProxy(result, call, obs)
    # not a stream after all (e.g. a raw response): record what we can
    usage, model, tier = extract(call.shape, result, call.cfg.chat_mapper)
    call.emit("success", usage, model, tier, usage_missing=usage is None)
    return result


# ---- anthropic messages.stream(): a context manager around the raw stream ----------------


class _ManagerProxyBase(object):
    def __init__(self, inner: Any, call: Call) -> None:
        object.__setattr__(self, "_br_inner", inner)
        object.__setattr__(self, "_br_call", call)
        object.__setattr__(self, "_br_obs", _AnthropicObserver())
        object.__setattr__(self, "_br_stream", None)
        object.__setattr__(self, "_br_hooked", False)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._br_inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._br_inner, name)

    def _br_hook(self, message_stream: Any, proxy_cls: type) -> None:
        object.__setattr__(self, "_br_stream", message_stream)
        try:
            raw = message_stream._raw_stream
            message_stream._raw_stream = proxy_cls(raw, self._br_call, self._br_obs)
            object.__setattr__(self, "_br_hooked", True)
        except Exception:
            logger.debug("burnrate: MessageStream has no _raw_stream; using the snapshot", exc_info=True)

    def _br_exit(self, exc: Any) -> None:
        call = self._br_call
        if call.done:
            return
        if not self._br_hooked:
            # fallback: the SDK's accumulated snapshot
            try:
                snap = self._br_stream._current_snapshot_or_none()  # type: ignore[union-attr]
            except Exception:
                snap = None
            if snap is not None and getattr(snap, "usage", None) is not None:
                self._br_obs.parts = [snap.usage]
                self._br_obs.model = getattr(snap, "model", None)
                self._br_obs.delta_seen = getattr(snap, "stop_reason", None) is not None
        _finish_stream(call, self._br_obs, _CLOSED)


class SyncMessageStreamManagerProxy(_ManagerProxyBase):
    def __enter__(self) -> Any:
        call = self._br_call
        call.start()
        token = current_call.set(call.state)
        try:
            ms = self._br_inner.__enter__()
        except BaseException as e:
            current_call.reset(token)
            call.fail(e)
            raise
        current_call.reset(token)
        self._br_hook(ms, SyncStreamProxy)
        return ms

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._br_inner.__exit__(*exc)
        finally:
            self._br_exit(exc[1] if len(exc) > 1 else None)


class AsyncMessageStreamManagerProxy(_ManagerProxyBase):
    async def __aenter__(self) -> Any:
        call = self._br_call
        call.start()
        token = current_call.set(call.state)
        try:
            ms = await self._br_inner.__aenter__()
        except BaseException as e:
            current_call.reset(token)
            call.fail(e)
            raise
        current_call.reset(token)
        self._br_hook(ms, AsyncStreamProxy)
        return ms

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._br_inner.__aexit__(*exc)
        finally:
            self._br_exit(exc[1] if len(exc) > 1 else None)


# ---- instrumented methods and the client proxy -------------------------------------------


def instrument(fn: Callable[..., Any], cfg: ClientConfig, shape: str) -> Callable[..., Any]:
    if shape == "anthropic.messages.stream":
        manager_cls = AsyncMessageStreamManagerProxy if cfg.is_async else SyncMessageStreamManagerProxy

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            call = cfg.begin(shape, kwargs)
            mgr = fn(*args, **kwargs)
            if call is None:
                return mgr
            try:
                return manager_cls(mgr, call)
            except Exception:
                return mgr

        return stream

    if cfg.is_async:

        @functools.wraps(fn)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            call = cfg.begin(shape, kwargs)
            if call is None:
                return await fn(*args, **kwargs)
            token = current_call.set(call.state)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as e:
                current_call.reset(token)
                call.fail(e)
                raise
            current_call.reset(token)
            return call.finish(result)

        return acall

    @functools.wraps(fn)
    def scall(*args: Any, **kwargs: Any) -> Any:
        call = cfg.begin(shape, kwargs)
        if call is None:
            return fn(*args, **kwargs)
        token = current_call.set(call.state)
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            current_call.reset(token)
            call.fail(e)
            raise
        current_call.reset(token)
        return call.finish(result)

    return scall


class WrappedProxy(object):
    """Pass-through proxy of a provider client (or one of its resources)."""

    def __init__(self, target: Any, cfg: ClientConfig, spec: Dict[str, Any]) -> None:
        object.__setattr__(self, "_br_target", target)
        object.__setattr__(self, "_br_cfg", cfg)
        object.__setattr__(self, "_br_spec", spec)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(wrapped, OpenAI) stays True
        return type(self._br_target)

    def __getattr__(self, name: str) -> Any:
        target = self._br_target
        value = getattr(target, name)
        entry = self._br_spec.get(name)
        if entry is None:
            return value
        try:
            cfg = self._br_cfg
            if isinstance(entry, dict):
                wrapped: Any = WrappedProxy(value, cfg, entry)
            elif entry == _REWRAP:
                wrapped = _rewrapper(value, cfg)
            else:
                wrapped = instrument(value, cfg, entry)
            object.__setattr__(self, name, wrapped)  # cache: next access skips __getattr__
            return wrapped
        except Exception:
            logger.debug("burnrate: could not instrument %s", name, exc_info=True)
            return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._br_target, name, value)

    def __dir__(self) -> List[str]:
        return dir(self._br_target)

    def __repr__(self) -> str:
        return repr(self._br_target)

    def __enter__(self) -> "WrappedProxy":
        self._br_target.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._br_target.__exit__(*exc)

    async def __aenter__(self) -> "WrappedProxy":
        await self._br_target.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._br_target.__aexit__(*exc)


def _rewrapper(fn: Callable[..., Any], cfg: ClientConfig) -> Callable[..., Any]:
    """client.with_options(...) / client.copy(...) return a wrapped client too."""

    @functools.wraps(fn)
    def rewrap(*args: Any, **kwargs: Any) -> Any:
        new = fn(*args, **kwargs)
        try:
            install_http_hook(new, cfg.is_async)
            return WrappedProxy(new, cfg, cfg.spec)
        except Exception:
            return new

    return rewrap


def wrap_client(br: Any, client: Any, attrs: Dict[str, Any], provider: Optional[str] = None) -> Any:
    kind = detect_kind(client)
    if kind is None:
        br._log_once(
            "wrap_unknown",
            logging.WARNING,
            "burnrate: wrap() supports OpenAI and Anthropic clients; %s is returned unwrapped "
            "(use br.track() for other providers)",
            type(client).__name__,
        )
        return client
    is_async = is_async_client(client)
    cfg = ClientConfig(br, kind, provider or detect_provider(client, kind), is_async, attrs)
    if not install_http_hook(client, is_async):
        br._log_once(
            "no_hook",
            logging.INFO,
            "burnrate: could not hook the client's HTTP layer; only the final attempt of a "
            "retried call is recorded",
        )
    return WrappedProxy(client, cfg, cfg.spec)
