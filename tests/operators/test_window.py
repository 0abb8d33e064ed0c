"""batch and window by count and time, on a FakeClock (both backends)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex.flows as fl
from dspex.backpressure import BufferPolicy
from dspex.errors import ConfigError
from dspex.sinks import collect
from dspex.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def test_batch_by_size() -> None:
    out = collect()
    flow = fl.Flow("b")
    flow.source([{"i": i} for i in range(7)]).batch(size=3).sink(out)
    report = await flow.run(progress=False)
    assert [[r["i"] for r in b] for b in out.items] == [[0, 1, 2], [3, 4, 5], [6]]
    assert report.items_in == 7
    assert report.items_out == 3


def _held_source(first: int, release: anyio.Event, then: int = 1) -> Any:
    async def gen() -> AsyncIterator[dict[str, int]]:
        for i in range(first):
            yield {"i": i}
        await release.wait()
        for i in range(first, first + then):
            yield {"i": i}

    return gen()


async def test_batch_by_timeout_on_fake_clock() -> None:
    clock = FakeClock()
    release = anyio.Event()
    out = collect()
    flow = fl.Flow("bt", buffer=BufferPolicy(chunk=1))
    flow.source(_held_source(2, release)).batch(size=10, timeout=5.0).sink(out)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(progress=False, clock=clock))
        await clock.step(4.9)
        assert out.items == []
        await clock.step(0.1)
        assert [[r["i"] for r in b] for b in out.items] == [[0, 1]]
        release.set()
    assert [[r["i"] for r in b] for b in out.items] == [[0, 1], [2]]


async def test_window_tumbles_per_key_on_fake_clock() -> None:
    clock = FakeClock()
    release = anyio.Event()
    out = collect()
    flow = fl.Flow("w", buffer=BufferPolicy(chunk=1))
    flow.source(_held_source(4, release, then=2)).window(10.0, key=lambda r: r["i"] % 2).sink(out)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(progress=False, clock=clock))
        await clock.step(9.0)
        assert out.items == []
        await clock.step(1.0)
        first = {w["key"]: [r["i"] for r in w["items"]] for w in out.items}
        assert first == {0: [0, 2], 1: [1, 3]}
        assert {(w["start"], w["end"]) for w in out.items} == {(0.0, 10.0)}
        release.set()
    last = out.items[2:]
    assert {w["key"]: [r["i"] for r in w["items"]] for w in last} == {0: [4], 1: [5]}
    assert {w["start"] for w in last} == {10.0}


async def test_window_size_emits_early() -> None:
    out = collect()
    flow = fl.Flow("ws")
    flow.source([{"i": i} for i in range(5)]).window(3600.0, size=2).sink(out)
    await flow.run(progress=False)
    assert [[r["i"] for r in w["items"]] for w in out.items] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({}, "size, a timeout"), ({"size": 0}, "size must be"), ({"timeout": -1}, "timeout must be")],
)
def test_batch_config_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fl.Flow("x").source([1]).batch(**kwargs)


def test_window_config_errors() -> None:
    with pytest.raises(ConfigError, match="seconds must be > 0"):
        fl.Flow("x").source([1]).window(0)
