"""Run async code from sync callers: the sole user of ``anyio.run``/``from_thread``.

``run_sync(fn, *args)`` runs ``await fn(*args)`` to completion. With no event
loop in this thread it starts one (``backend`` defaults to asyncio, or the
``DSPEX_BACKEND`` environment variable). Called from inside a running loop's
thread (a sync ``__call__`` inside async code), it runs the coroutine on a
fresh loop in a worker thread, so it never deadlocks the caller's loop.
Called from an anyio worker thread (a sync ``forward`` that ``Module.acall``
runs via ``anyio.to_thread``), it runs the coroutine back on the parent loop,
so LM connection pools and event streams bound to that loop keep working.
Context variables (``dx.context``) carry over in every case.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")

__all__ = ["run_sync"]


def _in_event_loop() -> bool:
    try:
        anyio.lowlevel.current_token()
    except RuntimeError:
        return False
    return True


def run_sync(fn: Callable[..., Awaitable[T]], *args: Any, backend: str | None = None) -> T:
    """Run ``fn(*args)`` to completion from synchronous code and return its result."""
    chosen = backend or os.environ.get("DSPEX_BACKEND", "asyncio")
    ctx = contextvars.copy_context()

    async def main() -> T:
        return await fn(*args)

    if not _in_event_loop():
        started = False

        async def on_parent() -> T:
            nonlocal started
            started = True
            return await fn(*args)

        try:  # an anyio worker thread: run on the loop that spawned it
            return anyio.from_thread.run(on_parent)
        except anyio.NoEventLoopError:
            if started:
                raise
        return ctx.run(anyio.run, main, backend=chosen)
    box: dict[str, Any] = {}

    def worker() -> None:
        # Carry the caller's context variables, except the marker that says which
        # async library runs in the caller's thread (a fresh loop runs here).
        for var, value in ctx.items():
            if var.name != "current_async_library_cvar":
                var.set(value)
        try:
            box["value"] = anyio.run(main, backend=chosen)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker, name="dspex-run-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
