"""Attribution context (contextvars) and the per-logical-call attempt counter."""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from typing import Any, Dict, Optional

ATTR_KEYS = (
    "endpoint_tag",
    "prompt_version",
    "tenant_id",
    "user_id",
    "tags",
    "data_mode",
    "environment",
)

# attribution set by `with br.context(...)`: a plain dict, replaced (never mutated)
_attrs: "contextvars.ContextVar[Optional[Dict[str, Any]]]" = contextvars.ContextVar(
    "burnrate_attrs", default=None
)


def current_attrs() -> Optional[Dict[str, Any]]:
    return _attrs.get()


def merge_attrs(base: Optional[Dict[str, Any]], extra: Dict[str, Any]) -> Dict[str, Any]:
    """Later wins; None values are ignored; tags are merged key by key."""
    out = dict(base) if base else {}
    for k, v in extra.items():
        if v is None:
            continue
        if k == "tags":
            tags = dict(out.get("tags") or {})
            tags.update(v)
            out["tags"] = tags
        else:
            out[k] = v
    return out


class AttributionContext(object):
    """`with br.context(tenant_id=...):` (also usable as a decorator, sync or async)."""

    def __init__(self, attrs: Dict[str, Any]) -> None:
        unknown = set(attrs) - set(ATTR_KEYS)
        if unknown:
            raise TypeError("unknown attribution keys: %s" % ", ".join(sorted(unknown)))
        self._attrs = attrs
        self._tokens: list = []

    def __enter__(self) -> "AttributionContext":
        self._tokens.append(_attrs.set(merge_attrs(_attrs.get(), self._attrs)))
        return self

    def __exit__(self, *exc: Any) -> None:
        _attrs.reset(self._tokens.pop())

    async def __aenter__(self) -> "AttributionContext":
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: Any) -> Any:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with AttributionContext(self._attrs):
                    return await fn(*args, **kwargs)

            return awrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with AttributionContext(self._attrs):
                return fn(*args, **kwargs)

        return wrapper


class CallState(object):
    """The HTTP attempts of one logical call, seen by the send() hook installed by wrap().

    Each attempt is logged as [wall start, perf start, perf end, HTTP status, exception].
    """

    __slots__ = ("log", "retries_taken")

    def __init__(self) -> None:
        self.log: list = []
        self.retries_taken = -1  # from the provider SDK's x-stainless-retry-count header

    def attempts(self) -> int:
        if self.log:
            return len(self.log)
        if self.retries_taken >= 0:
            return self.retries_taken + 1
        return 1

    def begin(self, request: Any) -> list:
        entry = [time.time(), time.perf_counter(), None, None, None]
        self.log.append(entry)
        self._note_header(request)
        return entry

    @staticmethod
    def end(entry: list, status: Optional[int], exc: Optional[BaseException]) -> None:
        entry[2] = time.perf_counter()
        entry[3] = status
        entry[4] = exc

    def _note_header(self, request: Any) -> None:
        try:
            v = request.headers.get("x-stainless-retry-count")
            if v is not None:
                n = int(v)
                if n > self.retries_taken:
                    self.retries_taken = n
        except Exception:
            pass

    def note_exception(self, exc: BaseException) -> None:
        """Fallback when no hook ran: the failed request carries the retry header."""
        if self.log:
            return
        try:
            req = getattr(exc, "request", None)
            if req is None:
                resp = getattr(exc, "response", None)
                req = getattr(resp, "request", None)
            if req is not None:
                self._note_header(req)
        except Exception:
            pass


current_call: "contextvars.ContextVar[Optional[CallState]]" = contextvars.ContextVar(
    "burnrate_call", default=None
)

_HOOK_MARK = "_burnrate_send_hooked"


def _hook_sync_send(http: Any) -> None:
    original = http.send

    def send(request: Any, *args: Any, **kwargs: Any) -> Any:
        st = current_call.get()
        if st is None:
            return original(request, *args, **kwargs)
        entry = st.begin(request)
        try:
            response = original(request, *args, **kwargs)
        except BaseException as e:
            CallState.end(entry, None, e)
            raise
        CallState.end(entry, getattr(response, "status_code", None), None)
        return response

    http.send = send


def _hook_async_send(http: Any) -> None:
    original = http.send

    async def send(request: Any, *args: Any, **kwargs: Any) -> Any:
        st = current_call.get()
        if st is None:
            return await original(request, *args, **kwargs)
        entry = st.begin(request)
        try:
            response = await original(request, *args, **kwargs)
        except BaseException as e:
            CallState.end(entry, None, e)
            raise
        CallState.end(entry, getattr(response, "status_code", None), None)
        return response

    http.send = send


def install_http_hook(client: Any, is_async: bool) -> bool:
    """Wrap send() of the provider client's httpx client (once) so that every HTTP attempt
    of a tracked call is logged. Outside a tracked call it passes straight through."""
    try:
        http = getattr(client, "_client", None)
        if http is None or not callable(getattr(http, "send", None)):
            return False
        if getattr(http, _HOOK_MARK, False):
            return True
        if is_async:
            _hook_async_send(http)
        else:
            _hook_sync_send(http)
        setattr(http, _HOOK_MARK, True)
        return True
    except Exception:
        return False
