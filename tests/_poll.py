"""Wait, bounded, for state the test cannot be signalled about.

A test that watches another process (a browser's DevTools file, a journal a
subprocess writes) or a server's internals (``sink.server.sessions``) has no
event to wait on, so it polls; :func:`wait_until` is that poll in one place,
always under a deadline so a broken run fails instead of hanging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["wait_until"]


async def wait_until(predicate: Callable[[], object], *, limit_s: float = 10.0, step_s: float = 0.01) -> None:
    """Return once ``predicate()`` is true, checking every ``step_s`` seconds.

    Raises:
        TimeoutError: It was still false after ``limit_s`` seconds.
    """
    with anyio.fail_after(limit_s):
        while True:
            if predicate():
                return
            await anyio.sleep(step_s)
