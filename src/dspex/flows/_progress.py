"""Run progress: a live bar on a terminal, periodic log lines otherwise.

On a TTY (stderr) a ``rich`` live line shows items in and out, items/s, items
in flight, errors, tokens and cost, refreshed a few times a second. When
stderr is not a terminal a line is logged to the ``dspex.flows`` logger every
``log_every_s`` seconds. ``progress=False`` turns both off; ``True`` forces
the live bar. Progress only reads counters; it never slows the flow down.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._runner import Runner

__all__ = ["Progress", "progress_line"]

log = logging.getLogger("dspex.flows")


def progress_line(runner: Runner, elapsed: float) -> str:
    """Return the one-line summary of a running flow."""
    report = runner.report("running")
    rate = report.items_out / elapsed if elapsed > 0 else 0.0
    services = getattr(runner, "services", None)
    in_flight = services.limiter.in_flight if services is not None else 0
    tokens = report.usage.get("input_tokens", 0) + report.usage.get("output_tokens", 0)
    return (
        f"{runner.name}: {report.items_in} in, {report.items_out} out, "
        f"{rate:,.0f} items/s, {in_flight} in flight, {report.items_failed} errors, "
        f"{tokens:,} tokens, ${report.cost:.4f}"
    )


class Progress:
    """Show a run's progress until cancelled (a helper task of the runner).

    Args:
        runner: The running flow.
        mode: ``None`` (live bar on a TTY, log lines otherwise) or ``True``
            (live bar).
        log_every_s: Interval of the log lines.
    """

    def __init__(self, runner: Runner, mode: bool | None, log_every_s: float = 10.0) -> None:
        self.runner = runner
        self.live = mode is True or (mode is None and sys.stderr.isatty())
        self.log_every_s = log_every_s

    async def run(self) -> None:
        """Refresh until cancelled; print a last line on the way out."""
        start = time.perf_counter()
        if not self.live:
            while True:
                await anyio.sleep(self.log_every_s)
                log.info("%s", progress_line(self.runner, time.perf_counter() - start))
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True)
        live: Any = Live("", console=console, refresh_per_second=4, transient=False)
        with live:
            try:
                while True:
                    live.update(progress_line(self.runner, time.perf_counter() - start))
                    await anyio.sleep(0.25)
            finally:
                live.update(progress_line(self.runner, time.perf_counter() - start))
