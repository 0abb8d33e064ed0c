"""``Parallel``: run ``(module, example)`` pairs concurrently on the running loop.

DSPy's ``Parallel(num_threads=...)(exec_pairs)`` call shape, with results in
input order and ``max_errors`` / ``return_failed_examples`` as in DSPy, but no
thread pool: ``num_threads`` workers (tasks of one anyio task group) pull
pairs in order and ``await module.acall(...)``, so thousands of LM calls
share one event loop. Only a plain *sync* callable runs in a worker thread
(so it cannot block the loop). Where DSPy raises a bare ``Exception`` and
loses every finished result when ``max_errors`` is reached, this raises
:class:`~dspex.errors.ParallelFailed` carrying them.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from .._util._sync import run_sync
from ..errors import ConfigError, InputError, ParallelFailed
from ._example import Example

__all__ = ["Parallel"]

_log = logging.getLogger("dspex.modules")

#: DSPy's defaults for ``settings.num_threads`` and ``settings.max_errors``.
DEFAULT_NUM_THREADS = 8
DEFAULT_MAX_ERRORS = 10


class Parallel:
    """Run ``(module, example)`` pairs with at most ``num_threads`` in flight.

    Args:
        num_threads: Concurrent pairs (default 8, DSPy's); tasks, not threads.
        max_errors: Failures tolerated; the ``max_errors``-th cancels the
            pairs still running and raises ``ParallelFailed`` (default 10).
        access_examples: Call ``module(**example.inputs())`` for an
            ``Example`` (else ``module(example)``).
        return_failed_examples: Return ``(results, failed_examples,
            exceptions)`` instead of ``results``.
        provide_traceback: Log each failure with its traceback.
        disable_progress_bar: Accepted for DSPy compatibility (no bar is drawn).
        timeout: Accepted for DSPy compatibility; DSPy resubmits stragglers
            after it, dspex relies on the LM's own timeouts and retries.
        straggler_limit: Accepted for DSPy compatibility (see ``timeout``).

    An example is an ``Example``, a ``dict`` (keyword inputs), a ``tuple``
    (positional) or, for a nested ``Parallel``, a ``list`` of pairs.
    ``results[i]`` is pair ``i``'s prediction, ``None`` if it failed.
    Memory is bounded by the results list: at most ``num_threads`` calls
    are in flight. Cancelling the caller cancels every pair.

    Raises:
        ConfigError: ``num_threads`` < 1 or ``max_errors`` < 0.
    """

    def __init__(
        self,
        num_threads: int | None = None,
        max_errors: int | None = None,
        access_examples: bool = True,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: int = 120,
        straggler_limit: int = 3,
    ) -> None:
        self.num_threads = num_threads or DEFAULT_NUM_THREADS
        self.max_errors = DEFAULT_MAX_ERRORS if max_errors is None else max_errors
        if not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ConfigError(f"Parallel num_threads must be an int >= 1, got {num_threads!r}")
        if not isinstance(self.max_errors, int) or self.max_errors < 0:
            raise ConfigError(f"Parallel max_errors must be an int >= 0 or None, got {max_errors!r}")
        self.access_examples = access_examples
        self.return_failed_examples = return_failed_examples
        self.provide_traceback = bool(provide_traceback)
        self.disable_progress_bar = disable_progress_bar
        self.timeout = timeout
        self.straggler_limit = straggler_limit

    async def acall(self, exec_pairs: Sequence[tuple[Any, Any]], num_threads: int | None = None) -> Any:
        """Run every pair on the current event loop; see the class doc.

        Raises:
            ParallelFailed: ``max_errors`` pairs failed; ``.results``,
                ``.failed_examples`` and ``.exceptions`` hold what finished.
        """
        pairs = list(exec_pairs)
        width = min(num_threads or self.num_threads, len(pairs)) or 1
        results: list[Any] = [None] * len(pairs)
        failures: dict[int, BaseException] = {}
        work = iter(enumerate(pairs))
        limit_hit = False

        async def worker(scope: anyio.CancelScope) -> None:
            nonlocal limit_hit
            for idx, pair in work:  # one shared iterator: each pair is taken once, in order
                try:
                    results[idx] = await self._run_pair(pair)
                except Exception as exc:
                    failures[idx] = exc
                    self._log_failure(idx, exc)
                    if len(failures) >= self.max_errors:
                        limit_hit = True
                        scope.cancel()  # stop the pairs in flight; finished results stay
                        return

        async with anyio.create_task_group() as tg:
            for _ in range(width):
                tg.start_soon(worker, tg.cancel_scope)
        order = sorted(failures)
        failed = [pairs[i][1] for i in order]
        exceptions = [failures[i] for i in order]
        if limit_hit:
            err = ParallelFailed(
                f"Parallel stopped after {len(failures)} failed pair(s) (max_errors={self.max_errors}); "
                f"{sum(r is not None for r in results)} of {len(pairs)} finished; first error: {exceptions[0]!r}"
            )
            err.results, err.failed_examples, err.exceptions = results, failed, exceptions
            raise err from exceptions[0]
        if self.return_failed_examples:
            return results, failed, exceptions
        return results

    def __call__(self, exec_pairs: Sequence[tuple[Any, Any]], num_threads: int | None = None) -> Any:
        """Run every pair from synchronous code (safe inside a running loop's worker thread)."""
        return run_sync(functools.partial(self.acall, exec_pairs, num_threads), reuse_loop=True)

    forward = __call__

    def _log_failure(self, idx: int, exc: BaseException) -> None:
        if self.provide_traceback:
            _log.error("Parallel: pair %d failed", idx, exc_info=exc)
        else:
            _log.error("Parallel: pair %d failed: %r. Set provide_traceback=True for the traceback.", idx, exc)

    async def _run_pair(self, pair: tuple[Any, Any]) -> Any:
        module, example = pair
        if isinstance(example, Example):
            if self.access_examples:
                return await _invoke(module, (), dict(example.inputs().items()))
            return await _invoke(module, (example,), {})
        if isinstance(example, dict):
            return await _invoke(module, (), example)
        if isinstance(example, list) and isinstance(module, Parallel):
            return await module.acall(example)
        if isinstance(example, tuple):
            return await _invoke(module, example, {})
        raise InputError(
            f"Parallel: invalid example type {type(example).__name__}; expected Example, dict, tuple "
            "(or a list of pairs for a nested Parallel)"
        )


async def _invoke(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``module`` without blocking the loop: ``acall``, a coroutine, or a thread."""
    acall = getattr(module, "acall", None)
    if acall is not None and inspect.iscoroutinefunction(acall):
        return await acall(*args, **kwargs)
    if inspect.iscoroutinefunction(module) or inspect.iscoroutinefunction(getattr(module, "__call__", None)):  # noqa: B004
        return await module(*args, **kwargs)
    if not callable(module):
        raise InputError(f"Parallel: {module!r} is not a module or callable")
    result = await anyio.to_thread.run_sync(functools.partial(module, *args, **kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result
