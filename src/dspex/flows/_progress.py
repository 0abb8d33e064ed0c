"""Run progress: a live bar on a terminal, periodic lines on stderr otherwise.

On a TTY (stderr) a ``rich`` live line shows items in and out, items/s, items
in flight, errors, tokens and cost, refreshed a few times a second. When
stderr is not a terminal (a redirected or piped run, CI, a container) a plain
line is written to stderr every ``every_s`` seconds and once at the end, with
the failure count and, when every source knows its length, an ETA; the same
line goes to the ``dspex.flows`` logger at DEBUG for log collectors.
``progress=False`` turns both off; ``True`` forces the live bar; a callable
receives a running :class:`RunReport` every ``every_s`` seconds and once at
the end instead (how engine workers stream their counts home). Progress
only reads counters and sleeps on the run's clock; it never slows the flow.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sized
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._report import RunReport
    from ._runner import Runner

ProgressHook = Callable[["RunReport"], None]
"""Called with a running report (status ``"running"``) from the run's event loop."""

__all__ = ["Progress", "ProgressHook", "progress_line"]

log = logging.getLogger("dspex.flows")


def _total(runner: Runner) -> int | None:
    """Return how many records the sources hold, when every source knows."""
    total = 0
    for node in runner.plan.nodes:
        if node.source is None:
            continue
        items = getattr(node.source, "items", None)
        if not isinstance(items, Sized):
            return None
        total += len(items)
    return total


def _eta(remaining: int, rate: float) -> str:
    if rate <= 0:
        return "ETA ?"
    seconds = int(remaining / rate)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours}:{minutes:02d}:{seconds:02d}" if hours else f"ETA {minutes}:{seconds:02d}"


def progress_line(runner: Runner, elapsed: float, total: int | None = None) -> str:
    """Return the one-line summary of a running flow.

    Args:
        runner: The running flow.
        elapsed: Seconds since the run started (on the run's clock).
        total: Records the sources hold, if known (adds ``done/total`` and an ETA).
    """
    report = runner.report("running")
    done = report.items_out + report.items_failed
    rate = done / elapsed if elapsed > 0 else 0.0
    services = getattr(runner, "services", None)
    in_flight = services.limiter.in_flight if services is not None else 0
    tokens = report.usage.get("input_tokens", 0) + report.usage.get("output_tokens", 0)
    head = f"{runner.name}: {report.items_in} in, {report.items_out} out"
    if total is not None:
        head = f"{runner.name}: {done}/{total} done, {report.items_out} out"
    line = (
        f"{head}, {rate:,.1f} items/s, {in_flight} in flight, {report.items_failed} failed, "
        f"{tokens:,} tokens, ${report.cost:.4f}"
    )
    return f"{line}, {_eta(total - done, rate)}" if total is not None and done < total else line


class Progress:
    """Show a run's progress until cancelled (a helper task of the runner).

    Args:
        runner: The running flow (its ``clock`` times the lines).
        mode: ``None`` (live bar on a TTY, lines otherwise), ``True``
            (live bar) or a hook called with a running report instead.
        every_s: Interval of the plain lines.
        stream: Where plain lines go (default: ``sys.stderr`` at run time).
    """

    def __init__(self, runner: Runner, mode: bool | ProgressHook | None, every_s: float = 10.0,
                 stream: IO[str] | None = None) -> None:
        self.runner = runner
        self.stream = stream
        self.hook = None if mode is None or isinstance(mode, bool) else mode
        out = stream if stream is not None else sys.stderr
        self.live = mode is True or (mode is None and out.isatty())
        self.every_s = every_s

    def _emit(self, line: str) -> None:
        out = self.stream if self.stream is not None else sys.stderr
        print(line, file=out, flush=True)
        log.debug("%s", line)

    async def run(self) -> None:
        """Refresh until cancelled; print a last line on the way out."""
        clock = self.runner.clock
        start = clock.now()
        total = _total(self.runner)
        if self.hook is not None:
            await self._hook(self.hook)
            return
        if not self.live:
            try:
                while True:
                    await clock.sleep(self.every_s)
                    self._emit(progress_line(self.runner, clock.now() - start, total))
            finally:
                # a final line so short runs and redirected logs say how it ended
                self._emit(progress_line(self.runner, clock.now() - start, total))
        await self._live(start, total)

    async def _hook(self, hook: ProgressHook) -> None:
        try:
            while True:
                await self.runner.clock.sleep(self.every_s)
                hook(self.runner.report("running"))
        finally:
            hook(self.runner.report("running"))  # the last counts, also on the way out

    async def _live(self, start: float, total: int | None) -> None:
        from rich.console import Console
        from rich.live import Live

        clock = self.runner.clock
        console = Console(stderr=True)
        live: Any = Live("", console=console, refresh_per_second=4, transient=False)
        with live:
            try:
                while True:
                    live.update(progress_line(self.runner, clock.now() - start, total))
                    await clock.sleep(0.25)
            finally:
                live.update(progress_line(self.runner, clock.now() - start, total))
