"""Running the tools an LM asked for: registered tools only, failures as observations.

:func:`run_tool` is the tool-running policy shared by ``ReAct`` (and anything
else that executes LM-requested calls). It runs a tool only if its name is in
the registry it is given; an unknown name, arguments that fail validation, an
exception raised by the tool and a timeout all become the observation text
(``"Execution error in {name}: ..."``, DSPy's wording, with the traceback
summary DSPy feeds back), never an exception. Cancellation is not caught.
When the call runs under ``Module.stream`` (or a flow node), a ``ToolCall``
event goes out before the tool runs and a ``ToolResult`` (result or error,
duration) after it. The event's ``error`` is only ``ExceptionType: message``:
events travel to clients (WebSocket), and a traceback would show them the
server's file paths and code.
"""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from .._util._clock import Clock, default_clock
from ..errors import ToolError
from ..events import ToolCall, ToolResult
from ..signatures._tool import Tool
from ..telemetry._observe import observer
from ._stream import EMITTER

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["ToolOutcome", "format_error_for_lm", "run_tool", "tool_map"]


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call produced.

    Attributes:
        observation: The tool's return value, or the error text fed to the LM.
        error: ``"ExceptionType: message"`` when the call failed (no
            traceback: it goes out in the ``ToolResult`` event), else None.
        duration_s: Seconds from the start of validation to the result.
    """

    observation: Any
    error: str | None
    duration_s: float


def format_error_for_lm(error: BaseException, *, traceback_frames: int = 5) -> str:
    """Return ``error`` as DSPy feeds it back: a newline, then the traceback summary."""
    if traceback_frames <= 0:
        return str(error)
    return "\n" + "".join(
        traceback.format_exception(type(error), error, error.__traceback__, limit=traceback_frames)
    ).strip()


def _error_summary(error: BaseException) -> str:
    """Return ``"ExceptionType: message"`` (just the type when the message is empty)."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def tool_map(tools: Iterable[Any]) -> dict[str, Tool]:
    """Return ``{name: Tool}`` for callables or ``Tool`` objects, in order.

    Raises:
        ToolError: An entry is neither a ``Tool`` nor a callable, or two tools
            share a name.
    """
    out: dict[str, Tool] = {}
    for item in tools:
        tool = item if isinstance(item, Tool) else Tool(item)
        if tool.name in out:
            raise ToolError(f"two tools are named {tool.name!r}; expected unique tool names")
        out[tool.name] = tool
    return out


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr)


async def run_tool(
    tools: Mapping[str, Tool],
    name: str,
    args: Any,
    *,
    call_id: str | None = None,
    clock: Clock | None = None,
) -> ToolOutcome:
    """Run the registered tool ``name`` with ``args``; never raise for tool failures.

    The tool is awaited (async) or run in a worker thread (sync) under its own
    ``timeout``, so the event loop is never blocked. Only tools in ``tools``
    can run: any other name yields an observation listing the valid names.

    With an OpenTelemetry SDK provider the call is an ``execute_tool`` span
    (a failed tool marks it with ``error.type``), and callbacks see
    ``on_tool_start``/``on_tool_end``.

    Returns:
        The outcome; on failure ``observation`` is
        ``"Execution error in {name}: <traceback summary>"``.
    """
    watching = observer(tools.get(name))
    if watching is None:
        return await _run_tool(tools, name, args, call_id, clock)
    telemetry, callbacks = watching
    return await telemetry.tool_call(  # type: ignore[no-any-return]
        callbacks, tools.get(name), name, args, call_id,
        functools.partial(_run_tool, tools, name, args, call_id, clock),
    )


async def _run_tool(
    tools: Mapping[str, Tool], name: str, args: Any, call_id: str | None, clock: Clock | None
) -> ToolOutcome:
    clock = clock or default_clock()
    emitter = EMITTER.get()
    if emitter is not None and not emitter.usable():
        emitter = None
    shown_args = args if isinstance(args, dict) else {"_raw": args}
    if emitter is not None:
        await emitter.emit(ToolCall(name=name, args=_jsonable(shown_args), call_id=call_id))
    start = clock.now()
    error: str | None = None
    try:
        tool = tools.get(name)
        if tool is None:
            what = f"unknown tool {name!r}" if name else "no tool was named"
            raise ToolError(f"{what}; expected one of: {', '.join(tools)}")
        observation = await tool.arun(args)
    except Exception as exc:  # the LM sees the failure and carries on (cancellation is not an Exception)
        error = _error_summary(exc)
        observation = f"Execution error in {name}: {format_error_for_lm(exc)}"
    duration = max(0.0, clock.now() - start)
    if emitter is not None:
        result = None if error is not None else _jsonable(observation)
        await emitter.emit(ToolResult(name=name, result=result, error=error, duration_s=duration, call_id=call_id))
    return ToolOutcome(observation, error, duration)
