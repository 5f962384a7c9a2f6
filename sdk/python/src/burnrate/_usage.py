"""Provider usage objects -> burnrate token counts.

One function per provider shape. Every function accepts the usage object as the HTTP API
returns it (a dict, camelCase or snake_case as the provider writes it) or the provider
SDK's typed object (attributes), or the whole response that carries it. Missing or null
counters count as 0. The functions never raise: garbage in gives zeros out.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional

__all__ = [
    "Usage",
    "usage_from_openai_chat",
    "usage_from_openai_chat_stream",
    "usage_from_openai_responses",
    "usage_from_openai_embeddings",
    "usage_from_anthropic",
    "usage_from_anthropic_stream",
    "usage_from_gemini",
    "usage_from_bedrock",
    "usage_from_openrouter",
    "usage_from_xai",
    "usage_from_shape",
    "SHAPES",
]

_COST_DECIMALS = 9  # the server keeps nano-dollars and rejects more precise costUsd


class Usage(object):
    """Token counts of one call, in the contract's conventions.

    input_tokens includes cached and cache-write tokens; output_tokens includes reasoning
    tokens. cost_usd is only set when the provider reported the exact cost.
    """

    __slots__ = (
        "input_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_usd",
    )

    def __init__(
        self,
        input_tokens: int = 0,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        output_tokens: int = 0,
        reasoning_tokens: int = 0,
        cost_usd: Optional[float] = None,
    ) -> None:
        self.input_tokens = _count(input_tokens)
        self.cached_tokens = _count(cached_tokens)
        self.cache_write_tokens = _count(cache_write_tokens)
        self.output_tokens = _count(output_tokens)
        self.reasoning_tokens = _count(reasoning_tokens)
        self.cost_usd = _cost(cost_usd)

    def to_fields(self) -> Dict[str, Any]:
        """The contract fields (camelCase), as in the shared vectors' `expected`."""
        return {
            "inputTokens": self.input_tokens,
            "cachedTokens": self.cached_tokens,
            "cacheWriteTokens": self.cache_write_tokens,
            "outputTokens": self.output_tokens,
            "reasoningTokens": self.reasoning_tokens,
            "costUsd": self.cost_usd,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Usage):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)
        return "Usage(%s)" % inner


def _count(value: Any) -> int:
    """A non-negative int, or 0 for None, garbage, negatives and booleans."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if value > 0 else 0
    if isinstance(value, float):
        return int(value) if value > 0 and value == value and value != float("inf") else 0
    try:
        n = int(value)
    except Exception:
        return 0
    return n if n > 0 else 0


def _cost(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except Exception:
        return None
    if f != f or f < 0 or f == float("inf"):
        return None
    return round(f, _COST_DECIMALS)


def _get(obj: Any, *names: str) -> Any:
    """First non-None of obj[name] / obj.name for the given names."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        for name in names:
            v = obj.get(name)
            if v is not None:
                return v
        return None
    for name in names:
        try:
            v = getattr(obj, name, None)
        except Exception:
            v = None
        if v is not None:
            return v
    # pydantic models keep unknown fields in model_extra
    extra = getattr(obj, "model_extra", None)
    if isinstance(extra, dict):
        for name in names:
            v = extra.get(name)
            if v is not None:
                return v
    return None


def _unwrap(obj: Any, *keys: str) -> Any:
    """If obj is a whole response carrying the usage under one of keys, return the usage."""
    if obj is None or isinstance(obj, (list, tuple)):
        return obj
    inner = _get(obj, *keys)
    if inner is not None and not isinstance(inner, (int, float, str)):
        return inner
    return obj


# ---- OpenAI and OpenAI-compatible -------------------------------------------------------


def usage_from_openai_chat(usage: Any) -> Usage:
    """OpenAI chat completions usage (also the final chunk of a stream)."""
    return openai_chat(_unwrap(usage, "usage"))


def openai_chat(usage: Any) -> Usage:
    prompt = _count(_get(usage, "prompt_tokens"))
    completion = _count(_get(usage, "completion_tokens"))
    cached = _count(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
    reasoning = _count(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"))
    return Usage(prompt, cached, 0, completion, reasoning)


usage_from_openai_chat_stream = usage_from_openai_chat


def usage_from_openai_responses(usage: Any) -> Usage:
    """OpenAI Responses API usage."""
    return openai_responses(_unwrap(usage, "usage"))


def openai_responses(usage: Any) -> Usage:
    inp = _count(_get(usage, "input_tokens"))
    out = _count(_get(usage, "output_tokens"))
    cached = _count(_get(_get(usage, "input_tokens_details"), "cached_tokens"))
    reasoning = _count(_get(_get(usage, "output_tokens_details"), "reasoning_tokens"))
    return Usage(inp, cached, 0, out, reasoning)


def usage_from_openai_embeddings(usage: Any) -> Usage:
    """OpenAI embeddings usage: prompt tokens only."""
    return openai_embeddings(_unwrap(usage, "usage"))


def openai_embeddings(usage: Any) -> Usage:
    return Usage(_count(_get(usage, "prompt_tokens")), 0, 0, 0, 0)


def usage_from_openrouter(usage: Any) -> Usage:
    """OpenRouter: OpenAI chat shape plus usage.cost (USD) as the exact cost."""
    return openrouter(_unwrap(usage, "usage"))


def openrouter(usage: Any) -> Usage:
    u = openai_chat(usage)
    u.cost_usd = _cost(_get(usage, "cost"))
    return u


def usage_from_xai(usage: Any) -> Usage:
    """xAI: OpenAI chat shape, with two differences.

    - xAI's completion_tokens can exclude reasoning tokens (total_tokens = prompt +
      completion + reasoning). When the total says so, output = completion + reasoning.
    - usage.cost_in_usd_ticks (1 tick = 1e-10 USD) is the exact cost.
    """
    return xai(_unwrap(usage, "usage"))


def xai(usage: Any) -> Usage:
    u = openai_chat(usage)
    total = _get(usage, "total_tokens")
    if (
        u.reasoning_tokens > 0
        and total is not None
        and _count(total) == u.input_tokens + u.output_tokens + u.reasoning_tokens
    ):
        u.output_tokens += u.reasoning_tokens
    ticks = _get(usage, "cost_in_usd_ticks")
    if ticks is not None and not isinstance(ticks, bool):
        try:
            u.cost_usd = _cost(int(ticks) / 1e10)
        except Exception:
            u.cost_usd = None
    return u


# ---- Anthropic -------------------------------------------------------------------------

_ANTHROPIC_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def usage_from_anthropic(usage: Any) -> Usage:
    """Anthropic Messages usage: input = input + cache read + cache creation."""
    return anthropic_messages(_unwrap(usage, "usage"))


def anthropic_messages(usage: Any) -> Usage:
    base = _count(_get(usage, "input_tokens"))
    read = _count(_get(usage, "cache_read_input_tokens"))
    write = _count(_get(usage, "cache_creation_input_tokens"))
    out = _count(_get(usage, "output_tokens"))
    return Usage(base + read + write, read, write, out, 0)


def usage_from_anthropic_stream(usages: Iterable[Any]) -> Usage:
    """Anthropic stream: message_start.message.usage, then each message_delta.usage.

    Counters are cumulative: a non-null field of a later object replaces the earlier one
    (message_delta carries the running output_tokens; newer API versions repeat the input
    fields too).
    """
    merged: Dict[str, Any] = {}
    if not isinstance(usages, (list, tuple)):
        usages = [usages]
    for u in usages:
        for name in _ANTHROPIC_FIELDS:
            v = _get(u, name)
            if v is not None:
                merged[name] = v
    return anthropic_messages(merged)


# ---- Google Gemini ---------------------------------------------------------------------


def usage_from_gemini(usage_metadata: Any) -> Usage:
    """Gemini usageMetadata (REST camelCase or google-genai snake_case attributes).

    promptTokenCount already includes cachedContentTokenCount;
    output = candidatesTokenCount + thoughtsTokenCount.
    """
    m = _unwrap(usage_metadata, "usageMetadata", "usage_metadata")
    prompt = _count(_get(m, "promptTokenCount", "prompt_token_count"))
    cached = _count(_get(m, "cachedContentTokenCount", "cached_content_token_count"))
    candidates = _count(_get(m, "candidatesTokenCount", "candidates_token_count"))
    thoughts = _count(_get(m, "thoughtsTokenCount", "thoughts_token_count"))
    return Usage(prompt, cached, 0, candidates + thoughts, thoughts)


# ---- AWS Bedrock -----------------------------------------------------------------------


def usage_from_bedrock(usage: Any) -> Usage:
    """Bedrock Converse / ConverseStream usage: inputTokens excludes the cache counters."""
    usage = _unwrap(usage, "usage")
    base = _count(_get(usage, "inputTokens", "input_tokens"))
    read = _count(_get(usage, "cacheReadInputTokens", "cache_read_input_tokens"))
    write = _count(_get(usage, "cacheWriteInputTokens", "cache_write_input_tokens"))
    out = _count(_get(usage, "outputTokens", "output_tokens"))
    return Usage(base + read + write, read, write, out, 0)


usage_from_bedrock_converse = usage_from_bedrock

SHAPES: Dict[str, Callable[[Any], Usage]] = {
    "openai.chat": usage_from_openai_chat,
    "openai.chat.stream": usage_from_openai_chat_stream,
    "openai.responses": usage_from_openai_responses,
    "openai.embeddings": usage_from_openai_embeddings,
    "anthropic.messages": usage_from_anthropic,
    "anthropic.stream": usage_from_anthropic_stream,
    "gemini": usage_from_gemini,
    "bedrock.converse": usage_from_bedrock,
    "openrouter": usage_from_openrouter,
    "xai": usage_from_xai,
}


def usage_from_shape(shape: str, usage: Any) -> Usage:
    """Dispatch on the shared vectors' shape names."""
    try:
        fn = SHAPES[shape]
    except KeyError:
        raise ValueError("unknown usage shape %r (known: %s)" % (shape, ", ".join(sorted(SHAPES))))
    return fn(usage)
