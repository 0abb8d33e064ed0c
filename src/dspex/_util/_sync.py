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

``run_sync(..., reuse_loop=True)`` is for short calls made over and over (a
module's or an LM's sync ``__call__``): with no loop in the caller's thread,
the coroutine runs on a long-lived loop instead of a fresh loop each time, so
keep-alive connections survive between calls. In the main thread on asyncio
that loop is the thread's own (``_aio_runner``: no hand-off at all); in other
threads, or on trio, it is one loop in a daemon thread (per backend), and a
call costs a thread hand-off rather than a loop start-up.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import os
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from . import _aio_runner
from ._may_block import allow_blocking

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

__all__ = ["run_sync"]


def _in_event_loop() -> bool:
    try:
        anyio.lowlevel.current_token()
    except RuntimeError:
        return False
    return True


class _LoopThread:
    """One event loop in a daemon thread, running the coroutines handed to :meth:`call`."""

    def __init__(self, backend: str) -> None:
        self.pid = os.getpid()
        self._ready = threading.Event()
        self._token: Any = None
        self._tg: Any = None
        self._failed: BaseException | None = None
        thread = threading.Thread(target=self._run, args=(backend,), name=f"dspex-loop-{backend}", daemon=True)
        thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed

    def _run(self, backend: str) -> None:
        try:
            anyio.run(self._main, backend=backend)
        except BaseException as exc:  # the loop could not start (bad backend name)
            self._failed = exc
            self._ready.set()

    async def _main(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg, self._token = tg, anyio.lowlevel.current_token()
            self._ready.set()
            await anyio.sleep_forever()

    @property
    def alive(self) -> bool:
        return self._tg is not None and self.pid == os.getpid()

    async def _task(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                    future: concurrent.futures.Future[T], scopes: list[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            try:
                result = await fn(*args)
            except anyio.get_cancelled_exc_class():
                future.set_exception(KeyboardInterrupt("the call was interrupted"))
                raise
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)
                return
            future.set_result(result)

    def call(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        """Run ``fn(*args)`` on the loop in the caller's context; block for the result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        scopes: list[Any] = []
        token = self._token
        # run_sync_soon runs the spawn in a copy of this thread's context, and
        # the task inherits it: dx.context settings carry over.
        token.backend_class.run_sync_soon(self._tg.start_soon, (self._task, fn, args, future, scopes),
                                          token.native_token)
        try:
            return future.result()
        except BaseException:
            if not future.done():  # interrupted while waiting (Ctrl-C): cancel the call
                future.cancel()
                for scope in scopes:
                    token.backend_class.run_sync_soon(scope.cancel, (), token.native_token)
            raise


_loops: dict[str, _LoopThread] = {}
_loops_lock = threading.Lock()


def _loop_thread(backend: str) -> _LoopThread:
    loop = _loops.get(backend)
    if loop is None or not loop.alive:
        with _loops_lock:
            loop = _loops.get(backend)
            if loop is None or not loop.alive:  # first use, or a forked child
                loop = _loops[backend] = _LoopThread(backend)
    return loop


def run_sync(
    fn: Callable[..., Awaitable[T]], *args: Any, backend: str | None = None, reuse_loop: bool = False
) -> T:
    """Run ``fn(*args)`` to completion from synchronous code and return its result.

    Args:
        fn: The async function.
        *args: Its arguments.
        backend: ``"asyncio"`` or ``"trio"`` (default: ``DSPEX_BACKEND`` or asyncio).
        reuse_loop: With no loop in this thread, run on a long-lived loop (the
            main thread's own on asyncio, else the shared loop thread) instead
            of starting a loop (for short, frequent calls).
    """
    chosen = backend or os.environ.get("DSPEX_BACKEND", "asyncio")
    ctx = contextvars.copy_context()

    async def main() -> T:
        return await fn(*args)

    if not _in_event_loop():
        if reuse_loop and chosen == "asyncio" and _aio_runner.usable():
            # While the call is alone on that loop it may block it: the HTTP pool then
            # exchanges on a blocking socket (``_util/_may_block.py``).
            allow_blocking(ctx, _aio_runner.alone)
            return _aio_runner.run_on_main_loop(main(), ctx)
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
        if reuse_loop:
            return _loop_thread(chosen).call(fn, args)
        return ctx.run(lambda: anyio.run(main, backend=chosen))
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
