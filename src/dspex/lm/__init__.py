"""LM clients: ``LM`` over OpenAI-compatible, Anthropic and Gemini APIs.

Only re-exports; see ``_lm.py`` for the front and ``providers/`` for the wire
formats. ``Transport`` (with ``HTTPResponse``) is the seam ``LM(transport=...)``
takes; the HTTP client behind it lives in ``dspex._http``.
"""

from .._http._transport import HTTPResponse as HTTPResponse
from .._http._transport import Timeouts as Timeouts
from .._http._transport import Transport as Transport
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
from ._types import BaseLM as BaseLM
from ._types import LMChunk as LMChunk
from ._types import LMResponse as LMResponse
from ._types import LMUsage as LMUsage
from ._types import Message as Message
from ._types import NativeToolCall as NativeToolCall

__all__ = [
    "LM",
    "BaseLM",
    "CacheDisabledWarning",
    "CircuitBreakerPolicy",
    "Embedder",
    "FallbackLM",
    "HTTPResponse",
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
    "Transport",
    "configure_cache",
    "inspect_history",
    "set_prices",
]
