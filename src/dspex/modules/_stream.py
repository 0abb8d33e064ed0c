"""Event plumbing for ``Module.stream``: the ambient emitter and the stream object.

``Module.stream(**inputs)`` returns a :class:`ModuleStream`. On first use it
opens a task group and runs ``module.acall(**inputs)`` in a task whose
context holds an :class:`Emitter` writing to a bounded memory stream; every
``Predict`` reached from that call (however deeply nested) sees the emitter
and streams its LM call, emitting token, field, usage and retry events named
after its predictor path. The stream ends with ``PredictionDone``. Closing the
stream early cancels the task and waits for it, so nothing leaks. A consumer
that only forwards events (the flow engine) uses :func:`call_emitting`
instead: the module runs in the caller's task and each event goes straight to
the callback, with no task or buffer in between (one scheduling hop less per
token).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc
import anyio.lowlevel

from ..events import Event, PredictionDone

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._module import Module

__all__ = ["EMITTER", "Emitter", "ModuleStream", "call_emitting"]


class Emitter:
    """Where predictors send events while a module is being streamed.

    Bound to the event loop that created it: ``usable()`` is False in a
    different loop (a sync call that had to start its own), and predictors
    then run without streaming.
    """

    __slots__ = ("_names", "_native", "_send", "seq")

    def __init__(self, send: Callable[[Event], Awaitable[None]], names: dict[int, str]) -> None:
        self._send = send
        self._names = names
        self._native = anyio.lowlevel.current_token().native_token
        self.seq = 0

    def usable(self) -> bool:
        """Return True if events can be sent from the current event loop."""
        try:
            return anyio.lowlevel.current_token().native_token is self._native
        except RuntimeError:
            return False

    def name_of(self, predictor: Any) -> str:
        """Return the predictor's dotted path in the streamed module."""
        name = self._names.get(id(predictor))
        return name if name is not None else type(predictor).__name__

    async def emit(self, event: Event, predictor: str | None = None) -> None:
        """Stamp ``event`` with its sequence number (and predictor) and send it.

        Blocks while the consumer's buffer is full (backpressure).
        """
        self.seq += 1
        update: dict[str, Any] = {"seq": self.seq}
        if predictor is not None and "predictor" in type(event).model_fields:
            update["predictor"] = predictor
        await self._send(event.model_copy(update=update))


EMITTER: ContextVar[Emitter | None] = ContextVar("dspex_emitter", default=None)


async def call_emitting(module: Module, inputs: dict[str, Any], emit: Callable[[Event], Awaitable[None]]) -> Any:
    """Run ``module.acall(**inputs)`` here, awaiting ``emit(event)`` for each event.

    The events are those of :meth:`Module.stream` (ending with
    ``PredictionDone``), delivered from the module's own task as they happen:
    nothing is buffered, so ``emit`` sees a token as soon as the LM yields it
    and its backpressure slows the module directly. Returns the prediction;
    an exception from the module propagates after the events before it.
    """
    names = {id(p): n for n, p in module.named_predictors()}
    emitter = Emitter(emit, names)
    token = EMITTER.set(emitter)
    try:
        pred = await module.acall(**inputs)
    finally:
        EMITTER.reset(token)
    outputs = pred.toDict() if hasattr(pred, "toDict") else {}
    await emitter.emit(PredictionDone(outputs=outputs, prediction=pred))
    return pred


class ModuleStream:
    """Async iterator over the events of one module call.

    Use it directly (``async for ev in module.stream(...)``), consuming it to
    the end or calling :meth:`aclose` when stopping early, or as
    ``async with module.stream(...) as events:``, which always closes it.
    The producer task runs in a task group owned by this object, entered on
    first use and exited when the stream ends or is closed, so iterate it from
    one task, and keep any cancel scope you open (``anyio.fail_after``…)
    either around the whole use, first item to close, or inside one step. The buffer holds ``max_buffer_size`` events; a slow consumer
    slows the module down. An exception raised by the module is re-raised
    from ``__anext__`` after the events that preceded it.
    """

    def __init__(self, module: Module, inputs: dict[str, Any], max_buffer_size: int = 16) -> None:
        self._module = module
        self._inputs = inputs
        self._size = max_buffer_size
        self._tg: anyio.abc.TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[Event] | None = None
        self._error: BaseException | None = None
        self._state = "new"

    async def _start(self) -> None:
        send, receive = anyio.create_memory_object_stream[Event](self._size)
        self._receive = receive
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._state = "running"
        self._tg.start_soon(self._produce, send)

    async def _produce(self, send: MemoryObjectSendStream[Event]) -> None:
        async with send:
            try:
                await call_emitting(self._module, self._inputs, send.send)
            except Exception as exc:  # delivered to the consumer after the events
                self._error = exc

    async def _finish(self) -> None:
        self._state = "closed"
        if self._receive is not None:
            self._receive.close()
        if self._tg is not None:
            tg, self._tg = self._tg, None
            await tg.__aexit__(None, None, None)

    def __aiter__(self) -> ModuleStream:
        return self

    async def __anext__(self) -> Event:
        if self._state == "new":
            await self._start()
        if self._state == "closed" or self._receive is None:
            raise StopAsyncIteration
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            pass
        await self._finish()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the module (cancelling it if still running) and wait for it."""
        if self._state == "running" and self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._finish()
        self._state = "closed"

    async def __aenter__(self) -> Self:
        if self._state == "new":
            await self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
