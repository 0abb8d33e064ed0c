"""The hooks the library's call sites use: one cheap test, then spans and callbacks.

:func:`observer` answers, per module, LM or tool call, "is anything
watching?": it returns None when there is neither an SDK provider nor a
callback (the common case, a ``ContextVar`` read inside a flow run), else
the :class:`~dspex.telemetry._spans.Telemetry` to use (a span-less one when
only callbacks watch) and the callbacks. :class:`ObservedLM` wraps an LM so
that every ``acall`` and ``stream`` made through it gets a GenAI client span
and the ``on_lm_start``/``on_lm_end`` callbacks.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ._callbacks import new_call_id, notify
from ._spans import ACTIVE, UNPINNED, Telemetry, ambient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["ObservedLM", "observed_lm", "observer"]

_SILENT = Telemetry(None, None)


def observer(instance: Any) -> tuple[Telemetry, tuple[Any, ...]] | None:
    """Return (telemetry, callbacks) watching a call on ``instance``, or None for nobody."""
    telemetry, callbacks = ambient()
    pinned = ACTIVE.get()
    if pinned is not UNPINNED:
        telemetry = pinned
    own = getattr(instance, "callbacks", None)
    if own:
        callbacks = (*callbacks, *own)
    if telemetry is None:
        if not callbacks:
            return None
        telemetry = _SILENT
    return telemetry, callbacks


def observed_lm(lm: Any) -> Any:
    """Return ``lm`` itself when nothing watches, else an :class:`ObservedLM` around it."""
    watching = observer(lm)
    if watching is None:
        return lm
    return ObservedLM(lm, *watching)


class ObservedLM:
    """An LM whose ``acall``/``stream`` are traced and reported to callbacks.

    Every other attribute is the wrapped LM's. Errors propagate unchanged.
    """

    def __init__(self, lm: Any, telemetry: Telemetry, callbacks: tuple[Any, ...]) -> None:
        self.lm = lm
        self.telemetry = telemetry
        self.callbacks = callbacks

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lm, name)

    def _start(self, messages: Any, params: dict[str, Any]) -> tuple[str, Any, float]:
        call_id = ""
        if self.callbacks:
            call_id = new_call_id()
            notify(self.callbacks, "on_lm_start", call_id, self.lm, {"messages": messages, **params})
        return call_id, self.telemetry.lm_start(self.lm, messages, params), time.perf_counter()

    def _end(self, call_id: str, outputs: Any, error: BaseException | None) -> None:
        if self.callbacks:
            notify(self.callbacks, "on_lm_end", call_id, outputs, error)

    async def acall(self, messages: Any, **params: Any) -> Any:
        """Call the LM inside a ``chat`` span (see the class doc)."""
        call_id, span, started = self._start(messages, params)
        try:
            response = await self.lm.acall(messages, **params)
        except BaseException as exc:
            self.telemetry.lm_end(span, self.lm, started, error=exc)
            if isinstance(exc, Exception):
                self._end(call_id, None, exc)
            raise
        self.telemetry.lm_end(
            span, self.lm, started, usage=response.usage, response_model=response.model or None,
            outputs=response.outputs, finish_reasons=response.finish_reasons,
        )
        self._end(call_id, list(response.outputs), None)
        return response

    async def stream(self, messages: Any, **params: Any) -> AsyncIterator[Any]:
        """Stream from the LM; the span ends with the stream (its last chunk has usage)."""
        call_id, span, started = self._start(messages, params)
        texts: list[str] = []
        usage = finish = model = None
        error: BaseException | None = None
        try:
            chunks = self.lm.stream(messages, **params)
            if not hasattr(chunks, "aclose"):
                chunks = _closable(chunks)
            async with aclosing(chunks) as stream:
                async for chunk in stream:
                    texts.append(chunk.text)
                    usage = chunk.usage or usage
                    finish = chunk.finish_reason or finish
                    model = getattr(chunk, "model", None) or model
                    yield chunk
        except GeneratorExit:  # the consumer stopped early: not an LM error
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            text = "".join(texts)
            self.telemetry.lm_end(span, self.lm, started, usage=usage, response_model=model,
                                  outputs=[text], finish_reasons=[finish], error=error)
            self._end(call_id, None if error else [text], error if isinstance(error, Exception) else None)


async def _closable(iterable: Any) -> AsyncIterator[Any]:
    async for item in iterable:
        yield item
