"""Provider registry: ``"openai/…"`` → the class that speaks that API.

Only re-exports. ``provider_class(name)`` resolves a provider prefix.
"""

from ._anthropic import AnthropicProvider as AnthropicProvider
from ._base import Provider as Provider
from ._base import ProviderRequest as ProviderRequest
from ._base import StreamState as StreamState
from ._gemini import GeminiProvider as GeminiProvider
from ._openai import OpenAIProvider as OpenAIProvider
from ._registry import PROVIDERS as PROVIDERS
from ._registry import provider_class as provider_class

__all__ = [
    "PROVIDERS",
    "AnthropicProvider",
    "GeminiProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderRequest",
    "StreamState",
    "provider_class",
]
