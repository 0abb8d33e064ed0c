"""A sink learns the calling run from ``dx.sinks.current_run_id``; the runner sets nothing on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import dspex as dx
from dspex.errors import ConfigError
from dspex.sinks._run import bound_run

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class RunIdSink(dx.sinks.Sink):
    """Notes which run each lifecycle call came from."""

    name = "run-ids"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    async def open(self) -> None:
        self.calls.append(("open", dx.sinks.current_run_id()))

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.calls.append(("write", dx.sinks.current_run_id()))

    async def aclose(self) -> None:
        self.calls.append(("aclose", dx.sinks.current_run_id()))


async def test_every_sink_call_of_a_run_sees_that_runs_id() -> None:
    sink = RunIdSink()
    flow = dx.Flow("ids")
    flow.source(dx.sources.iterable([{"n": 1}, {"n": 2}])).sink(sink)
    report = await flow.run(run_id="r7")
    assert report.run_id == "r7"
    kinds = [kind for kind, _ in sink.calls]
    assert kinds[0] == "open"
    assert kinds[-1] == "aclose"
    assert "write" in kinds
    assert {run for _, run in sink.calls} == {"r7"}
    assert dx.sinks.current_run_id() is None  # reset after the run


async def test_bound_run_nests_and_restores() -> None:
    assert dx.sinks.current_run_id() is None
    with bound_run("outer"):
        with bound_run("inner"):
            assert dx.sinks.current_run_id() == "inner"
        assert dx.sinks.current_run_id() == "outer"
    assert dx.sinks.current_run_id() is None


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_bad_run_id_is_a_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError, match="non-empty string"), bound_run(bad):
        pass
