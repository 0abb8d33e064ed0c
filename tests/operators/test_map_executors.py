"""map / flat_map / filter with ``executor="inline" | "threads" | "processes"``.

Functions run in worker processes must be importable by module name: they
live in ``_executor_fns`` (which imports little, so workers start fast).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from _executor_fns import double, flaky, fragile, keep_even, sleepy, twice

import dspex.flows as fl
from dspex.errors import ConfigError, FlowFailed
from dspex.sinks import collect

if TYPE_CHECKING:
    from pathlib import Path

EXECUTORS = ["inline", "threads", "processes"]


async def _run_chain(executor: str, ordered: bool, n: int = 300) -> list[dict[str, Any]]:
    out = collect()
    flow = fl.Flow(f"chain-{executor}")
    (flow.source([{"x": i} for i in range(n)])
         .map(double, concurrency=2, ordered=ordered, executor=executor)
         .flat_map(twice, ordered=ordered, executor=executor)
         .filter(keep_even, ordered=ordered, executor=executor)
         .sink(out))
    await flow.run(progress=False)
    return out.items


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["threads", "processes"])
@pytest.mark.parametrize("ordered", [True, False])
async def test_executor_gives_the_same_records_as_inline(executor: str, ordered: bool) -> None:
    inline = await _run_chain("inline", ordered)
    other = await _run_chain(executor, ordered)
    strip = [{k: v for k, v in r.items() if k != "pid"} for r in other]
    expected = [{k: v for k, v in r.items() if k != "pid"} for r in inline]
    assert len(strip) == 300  # 300 records, x2 by flat_map, half kept by filter
    if ordered:
        assert strip == expected
    else:
        def key(r: dict[str, Any]) -> tuple[int, int]:
            return (r["x"], r["copy"])

        assert sorted(strip, key=key) == sorted(expected, key=key)
    pids = {r["pid"] for r in other}
    if executor == "processes":
        assert os.getpid() not in pids
    else:
        assert pids == {os.getpid()}


async def test_processes_executor_runs_in_flow_on_this_backend() -> None:
    out = collect()
    flow = fl.Flow("procs")
    flow.source([{"x": i} for i in range(50)]).map(double, concurrency=2, executor="processes").sink(out)
    report = await flow.run(progress=False)
    assert [r["y"] for r in out.items] == [2 * i for i in range(50)]
    assert os.getpid() not in {r["pid"] for r in out.items}
    assert report.nodes["map-2"].items_out == 50


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
async def test_error_policy_applies_per_record(executor: str, policy: str) -> None:
    out, dead = collect(), collect()
    flow = fl.Flow("policy")
    (flow.source([{"x": i} for i in range(60)])
         .map(fragile, concurrency=3, executor=executor, on_error=policy).sink(out))
    flow.dead_letter(dead)
    report = await flow.run(progress=False)
    bad = [i for i in range(60) if i % 7 == 3]
    assert [r["x"] for r in out.items] == [i for i in range(60) if i not in bad]
    assert report.nodes["map-2"].items_failed == len(bad)
    if policy == "dead_letter":
        assert len(dead.items) == len(bad)
        assert {d["error_type"] for d in dead.items} == {"ValueError"}
        assert sorted(d["error"] for d in dead.items) == sorted(f"bad record {i}" for i in bad)
    else:
        assert dead.items == []


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_raise_policy_fails_the_flow_naming_the_record(executor: str) -> None:
    flow = fl.Flow("raise")
    flow.source([{"x": i} for i in range(20)]).map(fragile, concurrency=2, executor=executor).sink(collect())
    with pytest.raises(FlowFailed, match=r"ValueError: bad record (3|10|17)\b"):
        await flow.run(progress=False)


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_retry_policy_reinvokes_each_failed_record(executor: str, tmp_path: Path) -> None:
    out = collect()
    flow = fl.Flow("retry")
    rows = [{"x": i, "dir": str(tmp_path)} for i in range(40)]
    flow.source(rows).map(flaky, concurrency=2, executor=executor, on_error=("retry", 2)).sink(out)
    report = await flow.run(progress=False)
    assert [r["x"] for r in out.items] == list(range(40))
    assert report.nodes["map-2"].items_failed == 0
    assert report.nodes["map-2"].extra["retries"] == 8  # x = 0, 5, ..., 35 failed once


def test_unpicklable_function_is_refused_naming_it() -> None:
    def local(r: Any) -> Any:
        return r

    with pytest.raises(ConfigError, match=r"local.*cannot be pickled"):
        fl.Flow("p").source([1]).map(local, executor="processes")
    with pytest.raises(ConfigError, match=r"<lambda>.*cannot be pickled"):
        fl.Flow("p").source([1]).filter(lambda r: True, executor="processes")


def test_executor_values_and_callables_are_checked() -> None:
    async def coro(r: Any) -> Any:
        return r

    with pytest.raises(ConfigError, match=r"executor must be one of 'inline', 'threads', 'processes'"):
        fl.Flow("p").source([1]).map(double, executor="gpu")
    with pytest.raises(ConfigError, match=r"coro is an async function"):
        fl.Flow("p").source([1]).map(coro, executor="threads")


async def test_unpicklable_record_is_dead_lettered_and_the_rest_pass() -> None:
    out, dead = collect(), collect()
    rows: list[dict[str, Any]] = [{"x": i} for i in range(10)]
    rows[4]["lock"] = threading.Lock()
    flow = fl.Flow("records")
    flow.source(rows).map(double, concurrency=2, executor="processes", on_error="dead_letter").sink(out)
    flow.dead_letter(dead)
    await flow.run(progress=False)
    assert [r["x"] for r in out.items] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert len(dead.items) == 1
    assert "cannot be sent to a worker process" in str(dead.items[0]["error"])


async def test_cancelling_a_run_kills_its_worker_processes(tmp_path: Path) -> None:
    flow = fl.Flow("cancel")
    rows = [{"x": i, "dir": str(tmp_path)} for i in range(400)]  # two batches at least
    flow.source(rows).map(sleepy, concurrency=2, executor="processes").sink(collect())
    pids: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(progress=False))
        for _ in range(600):  # bounded: spawned workers need a moment to start
            pids = [int(p.stem) async for p in anyio.Path(tmp_path).glob("*.pid")]
            if len(pids) == 2:
                break
            await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_cancelling_a_threads_run_leaves_no_call_running() -> None:
    running = 0
    started = threading.Event()
    lock = threading.Lock()

    def slow(r: dict[str, Any]) -> dict[str, Any]:
        nonlocal running
        with lock:
            running += 1
        started.set()
        threading.Event().wait(0.2)
        with lock:
            running -= 1
        return r

    flow = fl.Flow("cancel-threads")
    flow.source([{"x": i} for i in range(100)]).map(slow, concurrency=4, executor="threads").sink(collect())
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(progress=False))
        await anyio.to_thread.run_sync(started.wait, 30)
        tg.cancel_scope.cancel()
    assert started.is_set()
    assert running == 0


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_inline_flat_map_drains_an_async_generator_from_a_sync_function(concurrency: int) -> None:
    async def copies(r: dict[str, int]) -> Any:
        for i in range(2):
            yield {**r, "copy": i}

    out = collect()
    flow = fl.Flow("agen")
    flow.source([{"x": i} for i in range(5)]).flat_map(lambda r: copies(r), concurrency=concurrency).sink(out)
    await flow.run(progress=False)
    assert [(r["x"], r["copy"]) for r in out.items] == [(i, c) for i in range(5) for c in range(2)]
