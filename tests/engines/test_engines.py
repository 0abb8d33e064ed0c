"""The processes and dask engines: same outputs as local, exactly once, secrets kept home.

Dask tests share one ``LocalCluster`` (2 workers on 127.0.0.1, no dashboard)
per module; record functions live in ``_engine_fns`` and are pickled by value.
"""

from __future__ import annotations

import gc
import json
import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import _engine_fns
import anyio
import cloudpickle
import pytest
from _engine_fns import (
    slow_marking,
    square,
    with_dask_worker_state,
    with_env_mark,
    with_gc_state,
    with_retention,
)

import dspex as dx
from dspex.engines import DaskEngine, ProcessesEngine, get_engine
from dspex.engines._driver import WORKER_RETENTION, worker_settings
from dspex.engines._task import PartitionTask, pack
from dspex.errors import ConfigError
from dspex.testing import FakeLLMServer

cloudpickle.register_pickle_by_value(_engine_fns)
pytestmark = pytest.mark.anyio

N = 400


def _input(tmp_path: Path, n: int = N, extra: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "in.jsonl"
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "x": i, **(extra or {})}) + "\n")
    return path


def _outputs(sink_path: Path) -> list[dict[str, Any]]:
    """Read a partitioned sink through its manifest (or the plain file for local runs)."""
    manifest = sink_path.with_suffix(".manifest.json")
    files = ([Path(p["path"]) for p in json.loads(manifest.read_text())["parts"]]
             if manifest.exists() else [sink_path])
    return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()]


def _flow(src: Path, out: Path, fn: Any = square) -> tuple[dx.Flow, Any]:
    flow = dx.Flow("engines")
    got = dx.sinks.collect()
    kept = flow.source(dx.sources.jsonl(src, id_field="id")).map(fn).filter(
        lambda r: r["y"] % 3 != 1)
    kept.sink(dx.sinks.jsonl(out, mode="w"))
    kept.sink(got)
    return flow, got


def _key(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return sorted((r["id"], r["y"]) for r in rows)


@pytest.mark.slow
async def test_local_processes_and_dask_give_identical_output_sets(
    tmp_path: Path, cluster: Any, anyio_backend: str
) -> None:
    src = _input(tmp_path)
    expected = [(i, i * i) for i in range(N) if (i * i) % 3 != 1]
    runs: dict[str, dict[str, Any]] = {
        "local": {}, "processes": {"workers": 2, "partitions": 4, "backend": anyio_backend},
        "dask": {"address": cluster.scheduler_address, "partitions": 4, "backend": anyio_backend}}
    for engine, kw in runs.items():
        out = tmp_path / engine / "out.jsonl"
        out.parent.mkdir()
        flow, got = _flow(src, out)
        report = await flow.run(engine=engine, run_id=f"same-{engine}", store=tmp_path / "s.sqlite",
                                progress=False, **kw)
        assert report.status == "completed", engine
        assert (report.items_in, report.items_out) == (N, 2 * len(expected)), engine
        assert report.nodes["map-2"].items_in == N
        assert _key(_outputs(out)) == expected, engine
        assert _key(got.items) == expected, engine
    manifest = json.loads((tmp_path / "dask" / "out.manifest.json").read_text())
    assert len(manifest["parts"]) == 4
    assert manifest["run_id"] == "same-dask"


async def _wait_for(path: Path, timeout_s: float = 60) -> None:
    """Poll for a file another process writes (no event can cross processes)."""
    for _ in range(int(timeout_s / 0.02)):
        if await anyio.Path(path).exists():
            return
        await anyio.sleep(0.02)
    raise TimeoutError(f"{path} did not appear within {timeout_s} s")


async def _kill_when_marked(marks: Path) -> int:
    await _wait_for(marks / "pid")
    pid = int((marks / "pid").read_text())
    (marks / "killed").write_text("")  # first: the resumed partition must not mark again
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.parametrize("engine", ["processes", "dask"])
async def test_worker_killed_mid_partition_finishes_exactly_once(
    tmp_path: Path, cluster: Any, anyio_backend: str, engine: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    src = _input(tmp_path, extra={"marks": str(marks)})
    out = tmp_path / "out.jsonl"
    flow, _ = _flow(src, out, slow_marking)
    kw: dict[str, Any] = ({"workers": 2} if engine == "processes"
                          else {"address": cluster.scheduler_address})
    store = tmp_path / "s.sqlite"
    box: dict[str, Any] = {}

    async def run() -> None:
        box["report"] = await flow.run(engine=engine, run_id="kill", store=store, progress=False,
                                       backend=anyio_backend, partitions=4, checkpoint_every=5,
                                       checkpoint_interval_s=0.05, **kw)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        killed = await _kill_when_marked(marks)
    assert killed != os.getpid()
    expected = [(i, i * i) for i in range(N) if (i * i) % 3 != 1]
    assert _key(_outputs(out)) == expected  # every record once: none lost, none twice
    assert box["report"].status == "completed"
    # the whole run again with the same id: nothing is missing, nothing runs
    again = await flow.run(engine=engine, run_id="kill", store=store, progress=False,
                           backend=anyio_backend, partitions=4, **kw)
    assert (again.items_in, again.items_out, again.resumed) == (0, 0, True)
    assert _key(_outputs(out)) == expected


@pytest.mark.slow
async def test_relaunch_resumes_only_missing_partitions_and_keeps_the_plan(
    tmp_path: Path, anyio_backend: str
) -> None:
    src = _input(tmp_path, 100)
    out = tmp_path / "out.jsonl"
    flow, _ = _flow(src, out)
    store = tmp_path / "s.sqlite"
    first = await flow.run(engine="processes", workers=2, partitions=3, run_id="r", store=store,
                           progress=False, backend=anyio_backend)
    assert first.items_in == 100
    second = await flow.run(engine=ProcessesEngine(workers=1), partitions=5, run_id="r",
                            store=store, progress=False, backend=anyio_backend)
    assert second.items_in == 0
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert len(manifest["parts"]) == 3  # the count fixed at the run's start


@pytest.mark.slow
async def test_lm_in_workers_reads_its_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-secret-41")
    async with FakeLLMServer(require_api_key="sk-env-secret-41") as server:
        lm = dx.LM("openai/fake", api_base=server.url + "/v1", cache=False)
        flow = dx.Flow("cot")
        got = dx.sinks.collect()
        items = [{"id": i, "question": f"what is {i} + 1?"} for i in range(12)]
        flow.source(dx.sources.iterable(items, id_field="id")).map(
            dx.ChainOfThought("question -> answer"), concurrency=4).sink(got)
        report = await flow.run(engine="processes", workers=2, partitions=3, lm=lm,
                                store=tmp_path / "s.sqlite", progress=False, backend=anyio_backend)
    assert report.status == "completed"
    assert report.items_out == 12
    assert sorted(r["id"] for r in got.items) == list(range(12))
    assert all(r["answer"] and r["reasoning"] for r in got.items)
    assert report.usage["input_tokens"] > 0  # usage from every partition, summed
    assert server.stats.requests >= 12


async def test_workers_see_the_callers_environment_of_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    # the fork server (started by the first run, or earlier) keeps the environment of its start
    flow = dx.Flow("env")
    got = dx.sinks.collect()
    flow.source(dx.sources.iterable([{"id": i} for i in range(4)], id_field="id")).map(
        with_env_mark).sink(got)
    kw: dict[str, Any] = {"engine": "processes", "workers": 2, "partitions": 2,
                          "store": tmp_path / "s.sqlite", "progress": False,
                          "backend": anyio_backend}
    await flow.run(**kw)
    assert {r["mark"] for r in got.items} == {None}
    monkeypatch.setenv("DSPEX_TEST_MARK", f"set-later-{anyio_backend}")
    got.items.clear()
    await flow.run(**kw)
    assert {r["mark"] for r in got.items} == {f"set-later-{anyio_backend}"}


@pytest.mark.parametrize(("gc_threshold", "expected"), [
    (ProcessesEngine(workers=2).gc_threshold, ([7000, 10, 10], True)),
    (None, ([700, 10, 10], False)),
])
async def test_workers_tune_their_garbage_collector_unless_told_not_to(
    tmp_path: Path, anyio_backend: str, gc_threshold: tuple[int, int, int] | None,
    expected: tuple[list[int], bool],
) -> None:
    flow = dx.Flow("gc")
    got = dx.sinks.collect()
    flow.source(dx.sources.iterable([{"id": i} for i in range(4)], id_field="id")).map(
        with_gc_state).sink(got)
    engine = ProcessesEngine(workers=2, gc_threshold=gc_threshold)
    await flow.run(engine=engine, partitions=2, store=tmp_path / "s.sqlite", progress=False,
                   backend=anyio_backend)
    assert len(got.items) == 4
    assert {(tuple(r["threshold"]), r["frozen"]) for r in got.items} == {(tuple(expected[0]), expected[1])}
    assert gc.get_threshold() == (700, 10, 10)  # the caller's own process is left alone


@pytest.mark.parametrize("bad", [(0, 10, 10), (7000, 10), [7000, 10, 10], (7000.0, 10, 10), (True, 10, 10)])
@pytest.mark.parametrize("engine", [ProcessesEngine, DaskEngine])
def test_a_bad_gc_threshold_is_a_config_error(bad: Any, engine: Any) -> None:
    with pytest.raises(ConfigError, match="gc_threshold must be three positive ints"):
        engine(workers=2, gc_threshold=bad)


@pytest.mark.slow
async def test_dask_tunes_the_workers_of_its_own_cluster_and_leaves_anothers_alone(
    tmp_path: Path, cluster: Any, anyio_backend: str
) -> None:
    flow = dx.Flow("dask-gc")
    got = dx.sinks.collect()
    flow.source(dx.sources.iterable([{"id": i} for i in range(4)], id_field="id")).map(
        with_dask_worker_state).sink(got)
    kw: dict[str, Any] = {"partitions": 2, "progress": False, "backend": anyio_backend}
    await flow.run(engine=DaskEngine(workers=2), store=tmp_path / "own.sqlite", **kw)
    assert {(tuple(r["threshold"]), r["frozen"], r["profile"]) for r in got.items} == {((7000, 10, 10), True, False)}
    got.items.clear()
    # a cluster at an address is someone else's: its collector settings stay as they were
    await flow.run(engine=DaskEngine(address=cluster.scheduler_address), store=tmp_path / "theirs.sqlite", **kw)
    assert len(got.items) == 4
    assert {(tuple(r["threshold"]), r["frozen"]) for r in got.items} == {((700, 10, 10), False)}
    assert gc.get_threshold() == (700, 10, 10)  # and the caller's process too


def test_payload_and_task_carry_no_api_key(tmp_path: Path) -> None:
    lm = dx.LM("openai/fake", api_key="sk-explicit-secret-99")
    flow = dx.Flow("f")
    items = [{"id": 1, "question": "q"}]
    source = dx.sources.iterable(items, id_field="id")
    flow.source(source).map(dx.Predict("question -> answer", lm=lm)).sink(dx.sinks.collect())
    payload = pack(flow, {"lm": lm}, source, source, 0)
    task = PartitionTask(0, "r/part-00000", payload, str(tmp_path / "s"), "asyncio")
    assert b"sk-explicit-secret-99" not in payload
    assert "sk-explicit-secret-99" not in repr(task)
    _, options = cloudpickle.loads(payload)
    assert options["lm"].model == "openai/fake"


def test_bad_engine_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown engine 'ray'"):
        get_engine("ray")
    with pytest.raises(ConfigError, match="workers must be a positive int"):
        get_engine("processes", workers=0)
    flow = dx.Flow("f")
    flow.source(iter([{"id": 1}])).sink(dx.sinks.collect())
    with pytest.raises(ConfigError, match="cannot partition source"):
        flow.run_sync(engine="processes", store=tmp_path / "s.sqlite", progress=False)
    flow = dx.Flow("g")
    flow.source([{"id": 1}]).sink(dx.sinks.collect())
    with pytest.raises(ConfigError, match="run store file"):
        flow.run_sync(engine="processes", store=":memory:", progress=False)
    with pytest.raises(ConfigError, match="not the local engine"):
        flow.run_sync(workers=2, progress=False)
    with pytest.raises(ConfigError, match="backend must be"):
        flow.run_sync(engine="processes", backend="curio", progress=False)


@pytest.mark.slow
@pytest.mark.reliability
async def test_cancelled_processes_run_resumes_exactly_once(tmp_path: Path, anyio_backend: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    src = _input(tmp_path, extra={"marks": str(marks)})
    out = tmp_path / "out.jsonl"
    flow, _ = _flow(src, out, slow_marking)
    store = tmp_path / "s.sqlite"
    kw: dict[str, Any] = {"engine": "processes", "workers": 2, "partitions": 4, "run_id": "c",
                          "store": store, "progress": False, "backend": anyio_backend,
                          "checkpoint_every": 5}
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(flow.run, **kw))
        await _wait_for(marks / "pid")  # record 40 of partition 0: partitions 2 and 3 not started
        (marks / "killed").write_text("")
        tg.cancel_scope.cancel()
    assert not out.with_suffix(".manifest.json").exists()  # the run did not finish
    report = await flow.run(**kw)  # the lease of a terminated worker is taken over at once
    assert report.status == "completed"
    assert report.resumed
    expected = [(i, i * i) for i in range(N) if (i * i) % 3 != 1]
    assert _key(_outputs(out)) == expected


def test_worker_settings_start_an_empty_trace_and_keep_fewer_calls_unless_told() -> None:
    caller = {"trace": [("step", {}, {})] * 3, "max_history_size": 10_000, "max_trace_size": 10_000, "lm": None}
    assert worker_settings(caller) == {"trace": [], "max_history_size": WORKER_RETENTION,
                                       "max_trace_size": WORKER_RETENTION, "lm": None}
    assert caller["trace"] == [("step", {}, {})] * 3  # the caller's own settings are untouched
    chosen = {"trace": None, "max_history_size": 7, "max_trace_size": 50_000}
    assert worker_settings(chosen) == chosen  # tracing off and sizes the caller chose stay


async def test_workers_keep_few_calls_and_none_of_the_callers_trace(tmp_path: Path, anyio_backend: str) -> None:
    flow = dx.Flow("retention")
    got = dx.sinks.collect()
    flow.source(dx.sources.iterable([{"id": i} for i in range(4)], id_field="id")).map(with_retention).sink(got)
    kw: dict[str, Any] = {"engine": "processes", "workers": 2, "store": tmp_path / "s.sqlite", "progress": False,
                          "backend": anyio_backend}
    with dx.context(trace=[("step", {"q": "x" * 1000}, {})] * 500):
        report = await flow.run(**kw)
    assert report.items_out == 4
    assert {(r["history"], r["trace_size"], r["trace_len"]) for r in got.items} == {
        (WORKER_RETENTION, WORKER_RETENTION, 0)}
    got.items.clear()
    with dx.context(max_history_size=7, trace=None):
        await flow.run(**kw)
    assert {(r["history"], r["trace_size"], r["trace_len"]) for r in got.items} == {(7, WORKER_RETENTION, None)}


def test_the_processes_engine_makes_one_partition_per_worker_and_dask_two() -> None:
    assert ProcessesEngine(workers=3).default_partitions == 3
    assert get_engine("dask", workers=3).default_partitions == 6


async def test_a_run_that_does_not_say_gets_the_engines_default_partitions(
    tmp_path: Path, anyio_backend: str
) -> None:
    src, out = _input(tmp_path, 40), tmp_path / "out.jsonl"
    flow, _ = _flow(src, out)
    await flow.run(engine=ProcessesEngine(workers=3), store=tmp_path / "s.sqlite", progress=False,
                   backend=anyio_backend)
    parts = json.loads(out.with_suffix(".manifest.json").read_text())["parts"]
    assert len(parts) == 3
    assert _key(_outputs(out)) == [(i, i * i) for i in range(40) if (i * i) % 3 != 1]
