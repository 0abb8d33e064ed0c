"""LM clients: ``LM`` over OpenAI-compatible, Anthropic and Gemini APIs.

Only re-exports; see ``_lm.py`` for the front and ``providers/`` for the wire
formats.
"""

from ._breaker import CircuitBreakerPolicy as CircuitBreakerPolicy
from ._cache import CacheDisabledWarning as CacheDisabledWarning
from ._cache import LMCache as LMCache
from ._cache import configure_cache as configure_cache
from ._embedder import Embedder as Embedder
from ._fallback import FallbackLM as FallbackLM
from ._history import inspect_history as inspect_history
from ._lm import LM as LM
from ._pricing import Price as Price
from ._pricing import set_prices as set_prices
from ._ratelimit import RateLimit as RateLimit
from ._retry import RetryPolicy as RetryPolicy
from .._http._transport import Timeouts as Timeouts
from ._types import BaseLM as BaseLM
from ._types import LMChunk as LMChunk
from ._types import LMResponse as LMResponse
from ._types import LMUsage as LMUsage
from ._types import Message as Message
from ._types import NativeToolCall as NativeToolCall

__all__ = [
    "BaseLM",
    "CacheDisabledWarning",
    "CircuitBreakerPolicy",
    "Embedder",
    "FallbackLM",
    "LM",
    "LMCache",
    "LMChunk",
    "LMResponse",
    "LMUsage",
    "Message",
    "NativeToolCall",
    "Price",
    "RateLimit",
    "RetryPolicy",
    "Timeouts",
    "configure_cache",
    "inspect_history",
    "set_prices",
]
