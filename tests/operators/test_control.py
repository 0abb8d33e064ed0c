"""tap, rate_limit, dedupe and timeout."""

from __future__ import annotations

import anyio
import pytest

import dspex.flows as fl
from dspex.errors import ConfigError, ItemFailed
from dspex.sinks import collect
from dspex.testing import FakeClock


async def test_tap_sees_every_record_sync_and_async() -> None:
    seen: list[int] = []

    async def record(r: dict[str, int]) -> None:
        seen.append(r["i"])

    out = collect()
    flow = fl.Flow("tap")
    flow.source([{"i": i} for i in range(5)]).tap(lambda r: seen.append(-r["i"])).tap(record) \
        .sink(out)
    await flow.run(progress=False)
    assert sorted(seen) == [-4, -3, -2, -1, 0, 0, 1, 2, 3, 4]
    assert len(out.items) == 5


async def test_rate_limit_spaces_items_on_the_clock() -> None:
    clock = FakeClock()
    out = collect()
    flow = fl.Flow("rl")
    flow.source([{"i": i} for i in range(6)]).rate_limit(2.0, burst=2).sink(out)
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.autojump)
        await flow.run(progress=False, clock=clock)
        tg.cancel_scope.cancel()
    assert len(out.items) == 6
    assert clock.now() == pytest.approx(2.0)  # 2 free (burst), 4 more at 2 per second


async def test_dedupe_by_field_record_and_bounded() -> None:
    out = collect()
    flow = fl.Flow("dd")
    flow.source([{"k": 1}, {"k": 2}, {"k": 1}, {"k": 3}, {"k": 2}]).dedupe("k").sink(out)
    report = await flow.run(progress=False)
    assert [r["k"] for r in out.items] == [1, 2, 3]
    assert report.nodes["dedupe-2"].extra["dropped"] == 2

    whole = collect()
    flow2 = fl.Flow("dd2")
    flow2.source([{"a": [1]}, {"a": [1]}, {"a": [2]}]).dedupe().sink(whole)
    await flow2.run(progress=False)
    assert whole.items == [{"a": [1]}, {"a": [2]}]

    bounded = collect()
    flow3 = fl.Flow("dd3")
    flow3.source([{"k": k} for k in (1, 2, 3, 1)]).dedupe("k", max_keys=2).sink(bounded)
    await flow3.run(progress=False)
    assert [r["k"] for r in bounded.items] == [1, 2, 3, 1]  # 1 was forgotten


async def test_timeout_fails_slow_items_through_its_policy() -> None:
    async def maybe_hang(r: dict[str, int]) -> dict[str, int]:
        if r["i"] == 1:
            await anyio.sleep_forever()
        return r

    out = collect()
    flow = fl.Flow("to")
    flow.source([{"i": i} for i in range(3)]).map(maybe_hang, concurrency=3) \
        .timeout(0.05, on_error="dead_letter", name="deadline").sink(out)
    report = await flow.run(progress=False)
    assert [r["i"] for r in out.items] == [0, 2]
    (dl,) = report.dead_letters
    assert isinstance(dl.error, ItemFailed)
    assert dl.node == "deadline"
    assert "longer than 0.05 s" in str(dl.error)


def test_control_config_errors() -> None:
    handle = fl.Flow("x").source([1])
    with pytest.raises(ConfigError, match="per_second must be > 0"):
        handle.rate_limit(0)
    with pytest.raises(ConfigError, match="max_keys"):
        handle.dedupe(max_keys=0)
    with pytest.raises(ConfigError, match="timeout seconds"):
        handle.timeout(0)
    with pytest.raises(ConfigError, match="tap expects a callable"):
        handle.tap(3)  # type: ignore[arg-type]
