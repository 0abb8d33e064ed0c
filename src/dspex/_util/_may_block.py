"""Whether the running task may block its event loop on I/O: told by the sync bridge, asked by the pool.

A sync call from a script's main thread runs on the main thread's own asyncio
loop (``_util/_aio_runner.py``). While it is the only task there, nothing else
waits for a turn, so the HTTP pool may exchange on a blocking socket
(``_http/_blocking.py``), which costs far less CPU than the loop's readiness
callbacks. The sync bridge (``_util/_sync.run_sync``) says so by putting a
check of its loop into the call's context; the pool reads only this module, so
it knows nothing of how the bridge runs its loops.
"""

from __future__ import annotations

from contextvars import Context, ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["allow_blocking", "may_block"]

_check: ContextVar[Callable[[object], bool] | None] = ContextVar("dspex_may_block", default=None)


def allow_blocking(ctx: Context, check: Callable[[object], bool]) -> None:
    """Let tasks run in ``ctx`` (and contexts copied from it) block a loop while ``check(loop)`` holds.

    ``check`` is asked on every request, so it must be cheap and must not block;
    it sees the native loop object the asking task runs on.
    """
    ctx.run(_check.set, check)


def may_block(loop: object) -> bool:
    """Whether the current task may block ``loop`` (the loop it runs on) on I/O; never blocks."""
    check = _check.get()
    return check is not None and check(loop)
