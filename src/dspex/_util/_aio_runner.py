"""The main thread's own asyncio loop, kept open between sync calls (asyncio-only).

A sync ``__call__`` from a script's main thread (no loop running there) is
the DSPy-style hot path: ``run_sync(..., reuse_loop=True)`` runs it here, on
an asyncio loop kept open for the life of the process, instead of handing it
to the loop thread. The coroutine runs in the caller's thread, so
a call costs a task on an idle loop, not a thread hand-off (two wake-ups
through the kernel) — and keep-alive connections, which belong to their
loop, survive between calls. Ctrl-C cancels the running call. Only the main
thread gets such a loop: one in a worker thread could not be closed when the
thread ends. After a fork the child makes its own. At interpreter exit the
loop is closed (``atexit``). The loop's task factory tracks its live tasks, so
:func:`alone` can tell when the one sync call has the loop to itself (the sync
bridge hands that check to the HTTP pool through ``_util/_may_block.py``; the
pool then exchanges on a blocking socket: ``_http/_blocking.py``).
"""

# asyncio-only: anyio has no loop that stays open between anyio.run() calls, so this adapter
# owns one asyncio loop (chosen only for the asyncio backend, in the main thread).
from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Coroutine

T = TypeVar("T")

__all__ = ["alone", "run_on_main_loop", "usable"]

_loop: asyncio.AbstractEventLoop | None = None
_pid = 0
_live: set[asyncio.Task[Any]] = set()  # tasks on _loop not yet known to be done (its task factory adds them)
_orphans: list[asyncio.AbstractEventLoop] = []  # loops inherited through fork: never touched again


def _close() -> None:
    global _loop
    loop, _loop = _loop, None
    if loop is not None and _pid == os.getpid() and not loop.is_running():
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _track(loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context | None = None) -> Any:
    task = asyncio.Task(coro, loop=loop, context=context)
    _live.add(task)
    task.add_done_callback(_live.discard)
    return task


def alone(loop: object) -> bool:
    """Whether ``loop`` is the main thread's sync loop running one task and nothing else.

    Then the one call it runs may block the loop on I/O: no other task waits
    for a turn (the LM pool uses blocking sockets then, ``_http/_blocking.py``).
    """
    return loop is _loop and len(_live) == 1


def usable() -> bool:
    """Whether this thread may use the main loop (it is the main thread)."""
    return threading.current_thread() is threading.main_thread()


def run_on_main_loop(coro: Coroutine[Any, Any, T], ctx: contextvars.Context) -> T:
    """Run ``coro`` to completion on the main thread's persistent loop, in ``ctx``.

    Not :class:`asyncio.Runner`: its per-call SIGINT handler swap costs more
    than the whole call (``signal.signal`` turns the old handler into an enum,
    failing through ``repr`` of the previous task). Ctrl-C here raises
    :class:`KeyboardInterrupt` out of the loop; the call is then cancelled and
    run to the end of its clean-up before the interrupt propagates.
    """
    global _loop, _pid
    if _loop is None or _pid != os.getpid():
        if _loop is not None:
            _orphans.append(_loop)
        else:
            atexit.register(_close)
        _loop, _pid = asyncio.new_event_loop(), os.getpid()
        _loop.set_task_factory(_track)
        _live.clear()
    loop = _loop
    for done in [t for t in _live if t.done()]:  # ended while the loop was stopping (Ctrl-C)
        _live.discard(done)
    task = loop.create_task(coro, context=ctx)
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" log
        raise
