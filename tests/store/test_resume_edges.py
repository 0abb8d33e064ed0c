"""Resume edge cases (issue 12, defect 4): malformed lines, repeated ids, Ctrl-C.

Each test crashes (or cancels) a run part-way, resumes it with the same
``run_id`` and checks that every input ends up exactly once: in the output,
or in the dead letters, never in both and never twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import dspex.flows as fl
from dspex.backpressure import BufferPolicy
from dspex.errors import FlowFailed
from dspex.sinks import callback, jsonl
from dspex.sources import iterable, text_dir
from dspex.sources import jsonl as jsonl_source
from dspex.store import RunStore

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.reliability


def _crashing(crash: dict[str, Any]) -> Any:
    """A map that fails the run at id ``crash["at"]`` while ``crash["on"]``."""

    def work(r: dict[str, Any]) -> dict[str, Any]:
        if crash["on"] and int(r["id"]) == crash["at"]:
            raise RuntimeError(f"crash at {r['id']}")
        return {"id": r["id"], "out": True}

    return work


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _flow(source: Any, fn: Any, out: Path, dead: Path) -> fl.Flow:
    flow = fl.Flow("edges")
    flow.source(source).map(fn).sink(jsonl(out))
    flow.dead_letter(jsonl(dead))
    return flow


async def _crash_then_resume(flow: fl.Flow, crash: dict[str, Any], store: Path) -> Any:
    with pytest.raises(FlowFailed):
        await flow.run(run_id="r", store=store, progress=False, checkpoint_every=7)
    crash["on"] = False
    return await flow.run(run_id="r", store=store, progress=False, checkpoint_every=7)


async def test_malformed_lines_are_dead_lettered_once_across_a_resume(tmp_path: Path) -> None:
    src, out, dead = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    lines = [json.dumps({"id": i}) for i in range(300)]
    for n in range(10):  # 10 bad lines spread over the file, before and after the crash
        lines.insert(n * 30 + 5, "{not json" if n % 2 else '{"no_id": 1}')
    src.write_text("\n".join(lines) + "\n")
    crash = {"on": True, "at": 150}
    flow = _flow(jsonl_source(src, id_field="id"), _crashing(crash), out, dead)
    report = await _crash_then_resume(flow, crash, tmp_path / "s.sqlite")
    assert report.resumed
    assert sorted(r["id"] for r in _lines(out)) == list(range(300))
    bad = _lines(dead)
    assert len(bad) == 10, [d["key"] for d in bad]
    assert sorted(d["key"] for d in bad) == sorted(f"@line:{n * 30 + 6}" for n in range(10))


@pytest.mark.parametrize("crash_at", [100, 180])
async def test_repeated_id_is_dead_lettered_once_across_a_resume(
    tmp_path: Path, crash_at: int
) -> None:
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    rows: list[dict[str, Any]] = [{"id": i} for i in range(200)]
    rows.insert(150, {"id": "50", "copy": 2})  # 50 and "50" are one id
    crash = {"on": True, "at": crash_at}
    flow = _flow(iterable(rows, id_field="id"), _crashing(crash), out, dead)
    report = await _crash_then_resume(flow, crash, tmp_path / "s.sqlite")
    assert report.resumed
    assert sorted(int(r["id"]) for r in _lines(out)) == list(range(200))
    (dup,) = _lines(dead)
    assert dup["error_type"] == "DuplicateKeyError"
    assert dup["data"] == {"id": "50", "copy": 2}
    assert dup["key"] == "@pos:151"
    assert "repeats id '50' of record 51" in dup["error"]


async def test_repeated_id_without_a_crash_and_an_unchanged_rerun(tmp_path: Path) -> None:
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    rows = [{"id": 1}, {"id": 2}, {"id": 1}, {"id": 3}, {"id": 1}]
    flow = _flow(iterable(rows, id_field="id"), _crashing({"on": False}), out, dead)
    store = tmp_path / "s.sqlite"
    report = await flow.run(run_id="d", store=store, progress=False)
    assert report.items_out == 3
    assert report.dead_letter_count == 2
    assert [d["key"] for d in _lines(dead)] == ["@pos:3", "@pos:5"]
    again = await flow.run(run_id="d", store=store, progress=False)
    assert again.items_in == 0
    assert again.dead_letter_count == 0
    assert len(_lines(out)) == 3
    assert len(_lines(dead)) == 2


async def test_on_duplicate_raise_fails_the_run(tmp_path: Path) -> None:
    flow = _flow(iterable([{"id": 7}, {"id": "7"}], id_field="id"), _crashing({"on": False}),
                 tmp_path / "o.jsonl", tmp_path / "d.jsonl")
    with pytest.raises(FlowFailed) as info:
        await flow.run(run_id="x", store=tmp_path / "s.sqlite", progress=False,
                       on_duplicate="raise")
    assert isinstance(info.value.__cause__, BaseExceptionGroup)
    assert "DuplicateKeyError" in str(info.value)
    assert "'7'" in str(info.value)


async def test_changed_input_order_is_not_a_duplicate(tmp_path: Path) -> None:
    """A key seen at another position by an earlier pass is no repeat in this one."""
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    store = tmp_path / "s.sqlite"
    crash = {"on": True, "at": 30}
    rows: list[dict[str, Any]] = [{"id": i} for i in range(60)]
    flow = _flow(iterable(rows, id_field="id"), _crashing(crash), out, dead)
    with pytest.raises(FlowFailed):
        await flow.run(run_id="c", store=store, progress=False, checkpoint_every=5)
    crash["on"] = False
    moved = _flow(iterable([{"id": 100}, *rows], id_field="id"), _crashing(crash), out, dead)
    await moved.run(run_id="c", store=store, progress=False)
    assert sorted(r["id"] for r in _lines(out)) == [*range(60), 100]
    assert _lines(dead) == []


async def test_cancelled_run_commits_what_its_sinks_hold(tmp_path: Path) -> None:
    """Ctrl-C: the keys already written are committed, so resume does not redo them."""
    out, store = tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    calls: list[int] = []
    written: list[Any] = []
    hang = {"at": 60}

    async def work(r: dict[str, int]) -> dict[str, int]:
        calls.append(r["id"])
        if r["id"] >= hang["at"]:
            await anyio.sleep_forever()
        return r

    flow = fl.Flow("cancel")
    flow.source(iterable([{"id": i} for i in range(100)], id_field="id")) \
        .map(work).sink(jsonl(out), callback(written.append))
    kwargs: dict[str, Any] = {"run_id": "c", "store": store, "progress": False,
                              "checkpoint_interval_s": 3600}
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: flow.run(**kwargs))
            while True:  # bounded by fail_after
                if len(written) >= 60:
                    break
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    async with RunStore(store) as rs:
        checkpoint = await rs.load_checkpoint("c")
    assert checkpoint is not None
    assert checkpoint.done == {str(i) for i in range(60)}
    hang["at"] = 10**9
    calls.clear()
    report = await flow.run(**kwargs)
    assert report.resumed
    assert sorted(calls) == list(range(60, 100))
    assert sorted(r["id"] for r in _lines(out)) == list(range(100))


async def test_bad_files_of_a_directory_source_have_distinct_position_keys(tmp_path: Path) -> None:
    """Every undecodable file names line 1 of itself: keys must still be distinct."""
    root = tmp_path / "docs"
    root.mkdir()
    for n in range(6):
        (root / f"{n}.txt").write_bytes(b"\xff\xfe bad" if n % 2 else b"good")
    out, dead, store = tmp_path / "out.jsonl", tmp_path / "dead.jsonl", tmp_path / "s.sqlite"
    flow = _flow(text_dir(root), lambda r: {"id": r["path"]}, out, dead)
    await flow.run(run_id="t", store=store, progress=False)
    again = await flow.run(run_id="t", store=store, progress=False)
    assert again.items_in == 0
    assert sorted(d["key"] for d in _lines(dead)) == ["@pos:2", "@pos:4", "@pos:6"]
    assert len(_lines(out)) == 3


async def test_no_commit_after_a_torn_sink_write(tmp_path: Path) -> None:
    """A sink that fails mid-batch may hold part of it: nothing more is committed."""
    out, store = tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    fail = {"at": 30}

    async def slow(r: dict[str, int]) -> dict[str, int]:
        await anyio.lowlevel.checkpoint()  # let the sink take small batches
        return r

    def flaky(record: dict[str, int]) -> None:
        if record["id"] == fail["at"]:
            raise OSError("disk gone")

    flow = fl.Flow("torn")
    flow.source(iterable([{"id": i} for i in range(50)], id_field="id")) \
        .map(slow).sink(jsonl(out), callback(flaky))
    kwargs: dict[str, Any] = {"run_id": "t", "store": store, "progress": False,
                              "checkpoint_interval_s": 3600, "buffer": BufferPolicy(chunk=5)}
    with pytest.raises(FlowFailed, match="disk gone"):
        await flow.run(**kwargs)
    async with RunStore(store) as rs:
        checkpoint = await rs.load_checkpoint("t")
    assert checkpoint is not None
    assert checkpoint.done == set()
    fail["at"] = -1
    await flow.run(**kwargs)
    assert sorted(r["id"] for r in _lines(out)) == list(range(50))
