"""Progress from inside running partitions: counts and usage reach the caller while they run."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import _engine_fns
import cloudpickle
import pytest
from _engine_fns import fail_every_seventh

import dspex as dx
from dspex.engines._progress import PartitionProgress, ProgressBoard, progress_hook
from dspex.engines._task import PartitionResult
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from pathlib import Path

cloudpickle.register_pickle_by_value(_engine_fns)
pytestmark = pytest.mark.anyio

N = 120


def _counts(report: dx.RunReport) -> tuple[int, int, int, int]:
    return (report.items_in, report.items_out, report.items_failed,
            int(report.usage.get("input_tokens", 0)))


@pytest.mark.parametrize("engine", ["processes", "dask"])
async def test_progress_streams_counts_and_usage_while_partitions_run(
    tmp_path: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch, anyio_backend: str, engine: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-progress")
    seen: list[tuple[str, tuple[int, int, int, int]]] = []
    go = tmp_path / "go"

    def on_progress(report: dx.RunReport) -> None:
        seen.append((report.status, _counts(report)))
        if report.items_out >= 20:  # the last record of each partition waits for this
            go.touch()

    async with FakeLLMServer(latency_ms=20) as server:
        lm = dx.LM("openai/fake", api_base=server.url + "/v1", cache=False)
        flow = dx.Flow("progress")
        # partitions are ids 0-59 and 60-119: their last records wait until progress came
        items = [{"id": i, "question": f"what is {i} + 1?", "go": str(go),
                  "hold": i in (N // 2 - 1, N - 1)} for i in range(N)]
        flow.source(dx.sources.iterable(items, id_field="id")).map(
            dx.ChainOfThought("question -> answer"), concurrency=2).map(
            fail_every_seventh, on_error="skip").sink(dx.sinks.collect())
        kw: dict[str, Any] = ({"workers": 2} if engine == "processes"
                              else {"address": cluster.scheduler_address})
        report = await flow.run(engine=engine, partitions=2, lm=lm, store=tmp_path / "s.sqlite",
                                progress=on_progress, backend=anyio_backend, **kw)
    failed = len(range(0, N, 7))
    assert _counts(report)[:3] == (N, N - failed, failed)
    assert report.usage["input_tokens"] > 0
    running = [counts for status, counts in seen if status == "running"]
    # counts arrived while the partitions ran: some, but not all, items were done
    assert any(0 < c[1] < N - failed for c in running), running
    assert any(0 < c[3] < report.usage["input_tokens"] for c in running), running
    for before, after in itertools.pairwise(running):
        assert all(a >= b for a, b in zip(after, before, strict=True)), (before, after)
    # the last call is the final report: its totals equal the report returned
    assert seen[-1] == (report.status, _counts(report))
    assert all(c <= f for c, f in zip(running[-1], _counts(report), strict=True))


def test_board_sums_partitions_keeps_counters_monotonic_and_takes_final_reports() -> None:
    board = ProgressBoard("f", "r")
    board.update(PartitionProgress(0, 10, 8, 1, 0.5, {"input_tokens": 100}))
    board.update(PartitionProgress(1, 4, 4, 0, 0.25, {"input_tokens": 40}))
    snap = board.snapshot()
    assert (snap.status, snap.items_in, snap.items_out, snap.items_failed) == ("running", 14, 12, 1)
    assert (snap.cost, snap.usage) == (0.75, {"input_tokens": 140})
    version = board.version
    # a restarted attempt of partition 0 reports less: the board keeps the larger counts
    board.update(PartitionProgress(0, 3, 2, 0, 0.1, {"input_tokens": 20}))
    assert board.version == version  # nothing changed
    assert board.snapshot().items_in == 14
    final = dx.RunReport("f", "r/part-00000", items_in=12, items_out=9, items_failed=3)
    board.finish(PartitionResult(0, final))
    assert (board.snapshot().items_in, board.snapshot().items_failed) == (16, 3)
    assert board.version == version + 1


def test_hook_sends_only_changes_as_plain_dicts() -> None:
    sent: list[dict[str, Any]] = []
    hook = progress_hook(3, lambda p: sent.append(p.to_dict()))
    report = dx.RunReport("f", "r", status="running", items_in=5, items_out=4,
                          usage={"input_tokens": 7, "model": "x"})
    hook(report)
    hook(report)  # the same counts again: not sent
    report.items_out = 5
    hook(report)
    assert [d["items_out"] for d in sent] == [4, 5]
    assert sent[0] == {"index": 3, "items_in": 5, "items_out": 4, "items_failed": 0,
                       "cost": 0.0, "usage": {"input_tokens": 7}}
    received = {**sent[1], "worker": "tcp://127.0.0.1:40000"}  # as Dask's events carry it
    assert PartitionProgress.from_dict(received) == PartitionProgress(3, 5, 5, 0, 0.0,
                                                                      {"input_tokens": 7})


async def test_without_a_hook_lines_on_stderr_name_partitions_and_the_totals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anyio_backend: str
) -> None:
    flow = dx.Flow("lines")
    items = [{"id": i, "x": i} for i in range(30)]
    flow.source(dx.sources.iterable(items, id_field="id")).map(
        fail_every_seventh, on_error="skip").sink(dx.sinks.collect())
    report = await flow.run(engine="processes", workers=2, partitions=2,
                            store=tmp_path / "s.sqlite", backend=anyio_backend)
    lines = capsys.readouterr().err.splitlines()
    done = sorted(line.split(" done on ")[0] for line in lines if " done on pid " in line)
    assert done == ["lines: partition 1/2", "lines: partition 2/2"]
    assert lines[-1].startswith(f"lines: 30 in, {report.items_out} out, ")
    assert lines[-1].endswith(", 5 failed, 0 tokens, $0.0000")
