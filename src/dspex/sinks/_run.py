"""The run a sink is writing for: one ``ContextVar``, set by the flow runner.

A sink object belongs to the user and may be shared by several runs of one
flow at once (two ``flow.run`` calls in one task group), so the run id cannot
live on the sink. The runner sets it for the duration of a run with
:func:`bound_run`; every task of the run inherits it (both anyio backends copy
contextvars at spawn), so a sink's ``open``/``write``/``aclose`` read the id
of the run that called them with :func:`current_run_id`. Sinks need no extra
method for this, and a third-party sink that does not care sees nothing new.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["bound_run", "current_run_id"]

_RUN_ID: ContextVar[str | None] = ContextVar("dspex_sink_run_id", default=None)


def current_run_id() -> str | None:
    """Return the id of the flow run the calling task belongs to, or ``None`` outside a run.

    Does not block. Inside a sink's methods this is the run that is writing.
    """
    return _RUN_ID.get()


@contextmanager
def bound_run(run_id: str) -> Iterator[None]:
    """Make ``run_id`` the current run for this task and the tasks it spawns, until exit.

    The previous value comes back on exit, so runs nest and run side by side.

    Raises:
        ConfigError: ``run_id`` is not a non-empty string.
    """
    if not isinstance(run_id, str) or not run_id:
        raise ConfigError(f"a run id must be a non-empty string, got {run_id!r}")
    token = _RUN_ID.set(run_id)
    try:
        yield
    finally:
        _RUN_ID.reset(token)
