"""``Assert`` and ``Suggest``: conditions inside module code, retried with feedback.

DSPy removed its assertions in 2.6 (BestOfN and Refine replace them); dspex
keeps them with one contract, the same as the flow ``validate`` node:

* Inside a running module (its ``forward``/``aforward``), a false condition
  stops the attempt. The module call is re-run from the start up to
  ``max_backtracks`` times (setting, default 2, DSPy's old default) with the
  message added to the ``feedback`` setting, which every ``Predict`` appends
  to its last user message as ``Your previous response was rejected: <msg>``
  (messages accumulate over retries). When streaming, each failure emits a
  ``ValidationFailed`` event.
* After the last retry, ``Assert`` raises :class:`~dspex.errors.AssertionFailed`;
  ``Suggest`` lets the attempt continue and the module's prediction carries
  ``prediction["_flags"] == [{"module": ..., "message": ...}, ...]`` (the
  same ``_flags`` key a ``validate(mode="suggest")`` node writes on records,
  so a flow maps it through); when streaming, a ``ValidationFailed`` event
  announces each flag too.
* The innermost module around the call site is the one retried; a final
  failure of an inner module is not retried again by the outer ones.
* Outside any module call, ``Assert`` raises at once and ``Suggest`` only
  logs.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .._context import context, get_setting
from ..errors import AssertionFailed
from ..events import ValidationFailed
from ._stream import EMITTER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Assert", "Suggest", "call_with_backtracks", "call_with_backtracks_sync"]

_log = logging.getLogger("dspex.modules")


class Backtrack(AssertionFailed):
    """A failed condition that the enclosing module call will retry (internal)."""


class _Attempt:
    """The state of one module-call attempt that assertions report to."""

    __slots__ = ("flags", "last", "module")

    def __init__(self, module: str, last: bool) -> None:
        self.module = module
        self.last = last
        self.flags: list[dict[str, Any]] = []


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("dspex_assertion_attempt", default=None)


def _check(condition: Any, msg: str, hard: bool) -> None:
    if condition:
        return
    message = str(msg) or ("assertion failed" if hard else "suggestion failed")
    attempt = _ATTEMPT.get()
    if attempt is None:
        if hard:
            raise AssertionFailed(f"dx.Assert failed: {message}")
        _log.warning("dx.Suggest failed outside a module call: %s", message)
        return
    if not attempt.last:
        raise Backtrack(message)
    if hard:
        raise AssertionFailed(f"dx.Assert failed in {attempt.module} after all retries: {message}")
    attempt.flags.append({"module": attempt.module, "message": message})


def Assert(condition: Any, msg: str = "") -> None:
    """Require ``condition`` inside module code: retry with ``msg`` as feedback, then fail.

    Returns at once when ``condition`` is truthy. See the module doc for the
    retry contract.

    Raises:
        AssertionFailed: ``condition`` is falsy on the last attempt (or
            outside a module call). Earlier attempts raise an internal
            subclass that the module call catches.
    """
    _check(condition, msg, hard=True)


def Suggest(condition: Any, msg: str = "") -> None:
    """Prefer ``condition`` inside module code: retry with ``msg`` as feedback, then flag.

    Returns at once when ``condition`` is truthy; on the last attempt a
    failure is recorded in the prediction's ``_flags`` and the code goes on.

    Raises:
        AssertionFailed: (internal subclass) on an attempt that will be retried.
    """
    _check(condition, msg, hard=False)


def _finish(result: Any, attempt: _Attempt) -> Any:
    if attempt.flags and hasattr(result, "__setitem__") and hasattr(result, "get"):
        result["_flags"] = [*(result.get("_flags") or ()), *attempt.flags]
    return result


async def call_with_backtracks(name: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()`` as one module call, retrying failed assertions as the module doc says.

    The first attempt runs under the caller's settings unchanged (no extra
    context), so modules without assertions pay one context-variable set.
    """
    budget = int(get_setting("max_backtracks") or 0)
    feedback: tuple[str, ...] = tuple(get_setting("feedback") or ())
    for n in range(budget + 1):
        attempt = _Attempt(name, last=n == budget)
        token = _ATTEMPT.set(attempt)
        try:
            if n == 0:
                result = await call()
            else:
                with context(feedback=feedback):
                    result = await call()
        except Backtrack as exc:
            emitter = EMITTER.get()
            if emitter is not None and emitter.usable():
                await emitter.emit(ValidationFailed(message=exc.message, attempt=n + 1))
            feedback = (*feedback, exc.message)
            continue
        finally:
            _ATTEMPT.reset(token)
        if attempt.flags:
            await _announce_flags(attempt, n + 1)
        return _finish(result, attempt)
    raise AssertionError("unreachable: the last attempt never raises Backtrack")


async def _announce_flags(attempt: _Attempt, number: int) -> None:
    """Emit a ``ValidationFailed`` per suggestion that was flagged, when streaming."""
    emitter = EMITTER.get()
    if emitter is not None and emitter.usable():
        for flag in attempt.flags:
            await emitter.emit(ValidationFailed(message=flag["message"], attempt=number))


def call_with_backtracks_sync(name: str, call: Callable[[], Any]) -> Any:
    """Run ``call()`` (a sync ``forward``) as :func:`call_with_backtracks` does, without events."""
    budget = int(get_setting("max_backtracks") or 0)
    feedback: tuple[str, ...] = tuple(get_setting("feedback") or ())
    for n in range(budget + 1):
        attempt = _Attempt(name, last=n == budget)
        token = _ATTEMPT.set(attempt)
        try:
            if n == 0:
                result = call()
            else:
                with context(feedback=feedback):
                    result = call()
        except Backtrack as exc:
            feedback = (*feedback, exc.message)
            continue
        finally:
            _ATTEMPT.reset(token)
        return _finish(result, attempt)
    raise AssertionError("unreachable: the last attempt never raises Backtrack")
