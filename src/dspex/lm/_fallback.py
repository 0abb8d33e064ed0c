"""``dx.LM.fallback(primary, secondary, ...)``: try LMs in order.

A :class:`FallbackLM` is a ``BaseLM`` that sends each call to the first LM
and, when it fails with an :class:`~dspex.errors.LMError` (after that LM's own
retries, or at once for an open circuit), to the next. Input errors are not
LM failures and propagate at once. A stream falls back only while it has
produced no text; after that the error propagates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, LMError
from ._types import BaseLM, LMChunk, LMResponse, Message

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["FallbackLM"]


class FallbackLM:
    """An LM that falls back along a chain of LMs on LM errors.

    Args:
        *lms: Two or more ``BaseLM`` objects, most preferred first.

    Raises:
        ConfigError: Fewer than two LMs, or one is not a ``BaseLM``.
    """

    def __init__(self, *lms: Any) -> None:
        if len(lms) < 2:
            raise ConfigError(f"LM.fallback needs at least two LMs, got {len(lms)}")
        for lm in lms:
            if not isinstance(lm, BaseLM):
                raise ConfigError(f"LM.fallback got {lm!r}: expected an LM (with model, acall, stream)")
        self.lms: tuple[BaseLM, ...] = lms
        self.model = lms[0].model
        self.last_used: BaseLM | None = None

    @property
    def provider(self) -> str | None:
        """The primary LM's provider name."""
        return getattr(self.lms[0], "provider", None)

    async def acall(self, messages: list[Message] | str, **params: Any) -> LMResponse:
        """Return the first successful LM's response.

        Raises:
            LMError: Every LM failed; the last error, chained to the previous.
        """
        error: LMError | None = None
        for lm in self.lms:
            try:
                response = await lm.acall(messages, **params)  # type: ignore[arg-type]
            except LMError as exc:
                exc.__context__ = error
                error = exc
                continue
            self.last_used = lm
            return response
        assert error is not None
        raise error

    async def stream(self, messages: list[Message] | str, **params: Any) -> AsyncIterator[LMChunk]:
        """Yield the chunks of the first LM that starts streaming successfully."""
        error: LMError | None = None
        for lm in self.lms:
            emitted = False
            try:
                async for chunk in lm.stream(messages, **params):  # type: ignore[arg-type]
                    emitted = emitted or bool(chunk.text)
                    yield chunk
            except LMError as exc:
                if emitted:
                    raise
                exc.__context__ = error
                error = exc
                continue
            self.last_used = lm
            return
        assert error is not None
        raise error

    def dump_state(self) -> dict[str, Any]:
        """Return the primary LM's state plus the fallbacks' states."""
        states = [lm.dump_state() if hasattr(lm, "dump_state") else {"model": lm.model} for lm in self.lms]
        return {**states[0], "fallbacks": states[1:]}

    def __repr__(self) -> str:
        return f"LM.fallback({', '.join(repr(lm) for lm in self.lms)})"
