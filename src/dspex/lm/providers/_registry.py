"""Map a model string's provider prefix to its :class:`Provider` class.

``"openai/gpt-4o-mini"`` → :class:`OpenAIProvider`; a few aliases name
OpenAI-compatible servers (``ollama``, ``vllm``, ``groq``, ...), which all
speak chat completions and need ``api_base`` (known hosted ones get a default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import ConfigError
from ._anthropic import AnthropicProvider
from ._gemini import GeminiProvider
from ._openai import OpenAIProvider

if TYPE_CHECKING:
    from ._base import Provider

__all__ = ["COMPATIBLE_BASES", "PROVIDERS", "provider_class", "split_model"]

PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}

#: OpenAI-compatible aliases and their default ``api_base`` (None: must be given).
COMPATIBLE_BASES: dict[str, str | None] = {
    "groq": "https://api.groq.com/openai/v1",
    "together": "https://api.together.xyz/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": None,
    "lm_studio": "http://127.0.0.1:1234/v1",
    "llamacpp": "http://127.0.0.1:8080/v1",
}


def split_model(model: object) -> tuple[str, str]:
    """Split ``"provider/name"``; raise ConfigError naming the bad model.

    Raises:
        ConfigError: ``model`` is not a ``"provider/name"`` string or the
            provider is unknown; the message lists the known providers.
    """
    known = ", ".join(sorted([*PROVIDERS, *COMPATIBLE_BASES]))
    if not isinstance(model, str) or "/" not in model:
        raise ConfigError(
            f"invalid model {model!r}: expected 'provider/name' such as 'openai/gpt-4o-mini'; "
            f"known providers: {known}"
        )
    provider, name = model.split("/", 1)
    if not provider or not name.strip():
        raise ConfigError(f"invalid model {model!r}: expected 'provider/name'; known providers: {known}")
    if provider not in PROVIDERS and provider not in COMPATIBLE_BASES:
        raise ConfigError(f"unknown provider {provider!r} in model {model!r}; known providers: {known}")
    return provider, name


def provider_class(provider: str) -> type[Provider]:
    """Return the class for ``provider`` (compatible aliases → OpenAI)."""
    if provider in COMPATIBLE_BASES:
        return OpenAIProvider
    try:
        return PROVIDERS[provider]
    except KeyError:
        raise ConfigError(
            f"unknown provider {provider!r}; known providers: "
            f"{', '.join(sorted([*PROVIDERS, *COMPATIBLE_BASES]))}"
        ) from None
