"""burnrate: LLM cost attribution for Python apps.

    from burnrate import Burnrate
    client = Burnrate().wrap(OpenAI(), endpoint_tag="support.reply")
"""

from ._client import (
    BudgetExceeded,
    Burnrate,
    GuardDecision,
    Tracker,
    parse_guard_response,
    pseudonymize,
)
from ._context import AttributionContext
from ._usage import (
    SHAPES,
    Usage,
    usage_from_anthropic,
    usage_from_anthropic_stream,
    usage_from_bedrock,
    usage_from_bedrock_converse,
    usage_from_gemini,
    usage_from_openai_chat,
    usage_from_openai_chat_stream,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
    usage_from_openrouter,
    usage_from_shape,
    usage_from_xai,
)

__version__ = "0.1.0"

__all__ = [
    "AttributionContext",
    "BudgetExceeded",
    "Burnrate",
    "GuardDecision",
    "SHAPES",
    "Tracker",
    "Usage",
    "parse_guard_response",
    "pseudonymize",
    "usage_from_anthropic",
    "usage_from_anthropic_stream",
    "usage_from_bedrock",
    "usage_from_bedrock_converse",
    "usage_from_gemini",
    "usage_from_openai_chat",
    "usage_from_openai_chat_stream",
    "usage_from_openai_embeddings",
    "usage_from_openai_responses",
    "usage_from_openrouter",
    "usage_from_shape",
    "usage_from_xai",
    "__version__",
]
