"""The LM contract shared by every LM (``dx.LM``, ``ScriptedLM``, fallbacks).

A ``BaseLM`` takes chat messages and returns an :class:`LMResponse` holding
one or more completions and the usage they cost; ``stream`` yields
:class:`LMChunk` text deltas as they arrive and ends with a chunk carrying the
usage. Modules only ever talk to this contract, so any object implementing it
can stand in for a real provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["BaseLM", "LMChunk", "LMResponse", "LMUsage", "Message", "NativeToolCall"]

Message = dict[str, Any]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": ...}``."""


class LMUsage(BaseModel):
    """Tokens spent by one call (all zero on a cache hit, with ``cache_hit``)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cache_hit: bool = False
    estimated: bool = False
    """True when the server reported no usage and dspex counted it locally."""

    def __add__(self, other: LMUsage) -> LMUsage:
        return LMUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost=self.cost + other.cost,
            cache_hit=self.cache_hit and other.cache_hit,
            estimated=self.estimated or other.estimated,
        )


class NativeToolCall(BaseModel):
    """A tool call the provider returned natively (not as text)."""

    model_config = ConfigDict(frozen=True)

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class LMResponse(BaseModel):
    """The result of one LM call: ``n`` completions and what they cost."""

    model_config = ConfigDict(frozen=True)

    outputs: list[str]
    model: str = ""
    usage: LMUsage = Field(default_factory=LMUsage)
    tool_calls: list[list[NativeToolCall]] = Field(default_factory=list)
    finish_reasons: list[str | None] = Field(default_factory=list)
    #: The model's own reasoning per completion, where the provider returns it
    #: (OpenAI-compatible ``reasoning_content``); empty otherwise.
    reasoning: list[str | None] = Field(default_factory=list)
    structured_output: str | None = None
    """The ``response_format`` rung the server took (``json_schema``, ``json_object``,
    ``prompt``), or None when the call asked for no structured output."""
    dropped_params: list[str] = Field(default_factory=list)
    """Optional parameters left out because the server refused them."""


class LMChunk(BaseModel):
    """One piece of a streamed completion.

    ``text`` is the new text (may be empty); the last chunk has ``done=True``
    and carries ``usage`` (and any native ``tool_calls``, and the ``model`` that answered).
    """

    model_config = ConfigDict(frozen=True)

    text: str = ""
    done: bool = False
    usage: LMUsage | None = None
    finish_reason: str | None = None
    tool_calls: list[NativeToolCall] = Field(default_factory=list)
    model: str = ""  # the model that answered (final chunk only)


@runtime_checkable
class BaseLM(Protocol):
    """What modules need from an LM.

    ``acall`` returns all completions at once; ``stream`` yields text deltas of
    a single completion as they arrive. ``model`` names the model in usage
    reports and history.
    """

    model: str

    async def acall(self, messages: list[Message], **params: Any) -> LMResponse:
        """Return the completions for ``messages`` (``n`` in params, default 1)."""
        ...

    def stream(self, messages: list[Message], **params: Any) -> AsyncIterator[LMChunk]:
        """Yield text deltas of one completion; the last chunk has ``done``."""
        ...
