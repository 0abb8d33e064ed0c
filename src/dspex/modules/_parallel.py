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
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.to_thread

from .._util._clock import default_clock
from .._util._sync import run_sync
from ..errors import ConfigError, InputError, ParallelFailed
from ._example import Example

if TYPE_CHECKING:
    from collections.abc import Sequence

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
        timeout: Seconds after which a straggler is started a second time
            (first result wins, the other attempt is cancelled), as in DSPy.
        straggler_limit: Stragglers are resubmitted only when at most this
            many pairs are left (DSPy's 3); 0 turns resubmission off.

    An example is an ``Example``, a ``dict`` (keyword inputs), a ``tuple``
    (positional) or, for a nested ``Parallel``, a ``list`` of pairs.
    ``results[i]`` is pair ``i``'s prediction, ``None`` if it failed.
    Memory is bounded by the results list: at most ``num_threads`` calls
    are in flight (plus at most ``straggler_limit`` resubmitted stragglers).
    Cancelling the caller cancels every pair.

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
        if not timeout or timeout <= 0:
            raise ConfigError(f"Parallel timeout must be > 0 seconds, got {timeout!r}")
        self.timeout = timeout
        self.straggler_limit = straggler_limit

    async def acall(self, exec_pairs: Sequence[tuple[Any, Any]], num_threads: int | None = None) -> Any:
        """Run every pair on the current event loop; see the class doc.

        Raises:
            ParallelFailed: ``max_errors`` pairs failed; ``.results``,
                ``.failed_examples`` and ``.exceptions`` hold what finished.
        """
        pairs = list(exec_pairs)
        run = _Run(self, pairs)
        async with anyio.create_task_group() as tg:
            run.tg = tg
            for _ in range(min(num_threads or self.num_threads, len(pairs))):
                tg.start_soon(run.worker)
            if pairs and self.straggler_limit > 0:
                tg.start_soon(run.watch)
        results, failures, limit_hit = run.results, run.failures, run.limit_hit
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


class _Run:
    """The state of one ``Parallel.acall``: workers, results, failures, stragglers.

    A pair runs as one *attempt*; the watchdog starts a second attempt of a
    straggler (DSPy's rule: at most ``straggler_limit`` pairs left and this one
    running longer than ``timeout``). The first attempt to finish, with a
    result or an error, decides the pair and cancels the other.
    """

    def __init__(self, owner: Parallel, pairs: list[tuple[Any, Any]]) -> None:
        self.owner = owner
        self.pairs = pairs
        self.work = iter(enumerate(pairs))  # shared by the workers: each pair is taken once, in order
        self.results: list[Any] = [None] * len(pairs)
        self.failures: dict[int, BaseException] = {}
        self.started: dict[int, float] = {}
        self.scopes: dict[int, list[anyio.CancelScope]] = {}
        self.decided: set[int] = set()
        self.limit_hit = False
        self.tg: anyio.abc.TaskGroup | None = None
        self.watch_scope = anyio.CancelScope()
        self.clock = default_clock()

    async def worker(self) -> None:
        for idx, pair in self.work:
            await self.attempt(idx, pair)

    async def attempt(self, idx: int, pair: tuple[Any, Any]) -> None:
        with anyio.CancelScope() as scope:
            self.scopes.setdefault(idx, []).append(scope)
            self.started.setdefault(idx, self.clock.now())
            try:
                value: Any = await self.owner._run_pair(pair)
                error: Exception | None = None
            except Exception as exc:
                value, error = None, exc
            if idx in self.decided:
                return
            self.decided.add(idx)
            if len(self.decided) == len(self.pairs):
                self.watch_scope.cancel()  # nothing left to watch: do not wait for its next tick
            for other in self.scopes.pop(idx):
                if other is not scope:
                    other.cancel()  # the duplicate of a straggler lost the race
            if error is None:
                self.results[idx] = value
                return
            self.failures[idx] = error
            self.owner._log_failure(idx, error)
            if len(self.failures) >= self.owner.max_errors and self.tg is not None:
                self.limit_hit = True
                self.tg.cancel_scope.cancel()  # stop the pairs in flight; finished results stay

    async def watch(self) -> None:
        """Resubmit stragglers until every pair is decided (DSPy's straggler rule)."""
        with self.watch_scope:
            await self._watch()

    async def _watch(self) -> None:
        owner, duplicated = self.owner, set()
        while len(self.decided) < len(self.pairs):
            await self.clock.sleep(min(1.0, owner.timeout / 4))
            if len(self.pairs) - len(self.decided) > owner.straggler_limit:
                continue
            now = self.clock.now()
            for idx, since in list(self.started.items()):
                if idx not in self.decided and idx not in duplicated and now - since > owner.timeout:
                    duplicated.add(idx)
                    _log.warning("Parallel: pair %d has run %.0f s; starting it again (first result wins)",
                                 idx, now - since)
                    assert self.tg is not None
                    self.tg.start_soon(self.attempt, idx, self.pairs[idx])


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
