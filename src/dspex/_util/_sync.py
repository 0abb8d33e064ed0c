"""Run async code from sync callers: the sole user of ``anyio.run``/``from_thread``.

``run_sync(fn, *args)`` runs ``await fn(*args)`` to completion. With no event
loop in this thread it starts one (``backend`` defaults to asyncio, or the
``DSPEX_BACKEND`` environment variable). Called from inside a running loop's
thread (a sync ``__call__`` inside async code), it runs the coroutine on a
fresh loop in a worker thread, so it never deadlocks the caller's loop.
Context variables (``dx.context``) carry over in both cases.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
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
