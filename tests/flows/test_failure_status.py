"""A run whose items all (or too many) fail reports ``failed`` (issue 12, defect 8)."""

from __future__ import annotations

from typing import Any

import pytest

import dspex.flows as fl
from dspex.errors import ConfigError
from dspex.sinks import collect
from dspex.sources import iterable

pytestmark = pytest.mark.reliability


def _flow(n: int, bad: set[int], on_error: str = "dead_letter") -> fl.Flow:
    def work(r: dict[str, int]) -> dict[str, int]:
        if r["id"] in bad:
            raise ValueError(f"bad {r['id']}")
        return r

    flow = fl.Flow("fails")
    flow.source(iterable([{"id": i} for i in range(n)])).map(work, on_error=on_error).sink(collect())
    flow.dead_letter(collect("dead"))
    return flow


@pytest.mark.parametrize("on_error", ["dead_letter", "skip"])
async def test_every_item_failing_is_a_failed_run(on_error: str) -> None:
    report = await _flow(20, set(range(20)), on_error).run(progress=False)
    assert report.status == "failed"
    assert report.items_failed == report.items_in == 20
    assert report.items_out == 0


async def test_some_failures_complete_by_default_and_fail_past_the_rate() -> None:
    bad = {1, 5, 9}  # 15 %
    assert (await _flow(20, bad).run(progress=False)).status == "completed"
    assert (await _flow(20, bad).run(progress=False, max_failure_rate=0.2)).status == "completed"
    failed = await _flow(20, bad).run(progress=False, max_failure_rate=0.1)
    assert failed.status == "failed"
    assert failed.dead_letter_count == 3
    assert failed.items_out == 17
    assert (await _flow(20, set()).run(progress=False, max_failure_rate=0)).status == "completed"
    assert (await _flow(0, set()).run(progress=False)).status == "completed"  # nothing read


@pytest.mark.parametrize("kwargs", [{"max_failure_rate": 1.5}, {"max_failure_rate": "x"},
                                    {"max_failure_rate": True}, {"on_duplicate": "merge"}])
async def test_bad_thresholds_and_policies_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        await _flow(1, set()).run(progress=False, **kwargs)
