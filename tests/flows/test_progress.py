"""Progress without a TTY: periodic lines on stderr (on the run's clock), a last line, an ETA."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _poll import wait_until

import dspex as dx
from dspex.errors import ConfigError
from dspex.testing import FakeClock

pytestmark = pytest.mark.anyio


async def test_lines_every_interval_with_eta_then_a_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    clock, gate, out = FakeClock(), anyio.Event(), dx.sinks.collect()

    async def slow(record: int) -> dict[str, Any]:
        if record >= 2:
            await gate.wait()  # the last two items wait for the test
        return {"x": record}

    flow = dx.Flow("counting")
    flow.source([0, 1, 2, 3]).map(slow, concurrency=4, ordered=False).sink(out, buffer=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(clock=clock, progress_every_s=5))
        await wait_until(lambda: len(out.items) >= 2)
        assert capsys.readouterr().err == ""  # nothing before the first interval
        await clock.step(5)
        line = capsys.readouterr().err
        assert line == ("counting: 2/4 done, 2 out, 0.4 items/s, 2 in flight, 0 failed, 0 tokens, "
                        "$0.0000, ETA 0:05\n")
        gate.set()
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("counting: 4/4 done, 4 out, 0.8 items/s, 0 in flight, 0 failed")
    assert "ETA" not in last


def test_progress_false_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    flow = dx.Flow("quiet")
    flow.source([1, 2]).map(lambda r: {"x": r}).sink(dx.sinks.collect())
    flow.run_sync(progress=False)
    assert capsys.readouterr().err == ""
    flow.run_sync()
    assert capsys.readouterr().err.startswith("quiet: 2/2 done, 2 out")


def test_interval_must_be_positive() -> None:
    flow = dx.Flow("bad")
    flow.source([1]).sink(dx.sinks.collect())
    with pytest.raises(ConfigError, match="progress_every_s must be a number > 0, got 0"):
        flow.run_sync(progress_every_s=0)


async def test_a_callable_gets_running_reports_every_interval_and_a_last_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock, gate, out = FakeClock(), anyio.Event(), dx.sinks.collect()
    seen: list[tuple[str, int, int]] = []

    async def slow(record: int) -> dict[str, Any]:
        if record >= 2:
            await gate.wait()
        return {"x": record}

    flow = dx.Flow("hooked")
    flow.source([0, 1, 2, 3]).map(slow, concurrency=4, ordered=False).sink(out, buffer=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(clock=clock, progress_every_s=5,
                                       progress=lambda r: seen.append((r.status, r.items_in, r.items_out))))
        await wait_until(lambda: len(out.items) >= 2)
        assert seen == []  # nothing before the first interval
        await clock.step(5)
        assert seen == [("running", 4, 2)]
        gate.set()
    assert seen[-1] == ("running", 4, 4)  # the last call carries the final counts
    assert capsys.readouterr().err == ""  # a hook replaces the lines
