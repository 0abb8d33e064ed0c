"""Checkpoint and resume in process: every input exactly once after a failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import dspex.flows as fl
from dspex.errors import FlowFailed
from dspex.sinks import collect, jsonl
from dspex.sources import iterable
from dspex.store import RunStore

if TYPE_CHECKING:
    from pathlib import Path


def _failing_at(bad: set[int]) -> Any:
    def work(r: dict[str, int]) -> dict[str, int]:
        if r["id"] in bad:
            raise RuntimeError(f"crash at {r['id']}")
        return {**r, "done": True}

    return work


def _flow(rows: list[dict[str, int]], fn: Any, sink: Any, *, concurrency: int = 1) -> fl.Flow:
    flow = fl.Flow("resume")
    flow.source(iterable(rows, id_field="id")).map(fn, concurrency=concurrency,
                                                   ordered=False).sink(sink)
    return flow


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_resume_after_failure_writes_each_input_once(
    tmp_path: Path, concurrency: int
) -> None:
    rows = [{"id": i} for i in range(500)]
    out = collect()
    store = tmp_path / "store.sqlite"
    first = _flow(rows, _failing_at({321}), out, concurrency=concurrency)
    with pytest.raises(FlowFailed) as info:
        await first.run(run_id="r1", store=store, progress=False, checkpoint_every=50)
    assert info.value.report.committed_keys > 0
    second = _flow(rows, _failing_at(set()), out, concurrency=concurrency)
    report = await second.run(run_id="r1", store=store, progress=False, checkpoint_every=50)
    assert report.resumed
    ids = [r["id"] for r in out.items]
    assert sorted(ids) == list(range(500))
    assert report.items_in < 500  # done keys were skipped
    async with RunStore(store) as rs:
        checkpoint = await rs.load_checkpoint("r1")
    assert checkpoint is not None
    assert len(checkpoint.done) == 500


async def test_resume_with_jsonl_sink_and_dead_letters(tmp_path: Path) -> None:
    rows = [{"id": i} for i in range(200)]
    path = tmp_path / "out.jsonl"
    store = RunStore(tmp_path / "s.sqlite")
    await store.open()
    try:
        flow = fl.Flow("jl")
        src = flow.source(iterable(rows, id_field="id"))
        src.map(_failing_at({5, 7}), on_error="dead_letter").filter(lambda r: r["id"] != 9) \
            .sink(jsonl(path))
        flow.dead_letter(dead := collect("dead"))
        report = await flow.run(run_id="j", store=store, progress=False, checkpoint_every=10)
        assert report.committed_keys == 200
        assert report.dead_letter_count == 2
        again = await flow.run(run_id="j", store=store, progress=False)
        assert again.items_in == 0
        assert again.resumed
    finally:
        await store.aclose()
    lines = path.read_text().splitlines()
    assert len(lines) == 197
    assert len(dead.items) == 2


async def test_no_checkpoint_without_run_id_or_key(tmp_path: Path) -> None:
    out = collect()
    flow = fl.Flow("plain")
    flow.source([{"id": 1}]).sink(out)
    report = await flow.run(run_id="x", store=tmp_path / "s.sqlite", progress=False)
    assert report.committed_keys == 0
    assert not (tmp_path / "s.sqlite").exists()
