"""Checkpointer: exactly-once resume across a simulated crash."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dspex import sinks
from dspex.store import Checkpointer, RunStore, sink_ids

if TYPE_CHECKING:
    from pathlib import Path


def lines(p: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in p.read_text().split("\n") if x]


async def _run(store_path: Path, out: Path, dead: Path, items: list[int], crash_after: int | None,
               commit_every: int = 3) -> Checkpointer:
    """A miniature engine: keyed items → output sink, odd multiples of 5 → dead letters."""
    out_sink, dead_sink = sinks.jsonl(out), sinks.jsonl(dead)
    async with RunStore(store_path) as store:
        await out_sink.open()
        await dead_sink.open()
        cp = Checkpointer(store, "run-1", [out_sink, dead_sink])
        skip = await cp.resume()
        pending: list[str] = []
        for n, i in enumerate(x for x in items if not skip(str(x))):
            if i % 5 == 0 and i % 2:
                await dead_sink.write([{"id": i, "error": "bad"}])
            else:
                await out_sink.write([{"id": i}])
            pending.append(str(i))
            if crash_after is not None and n + 1 == crash_after:
                # kill -9: output reached the file, but no commit and no close happened
                await out_sink._drain()
                await dead_sink._drain()
                return cp
            if len(pending) == commit_every:
                await cp.commit(pending)
                pending = []
        await cp.commit(pending)
        await out_sink.aclose()
        await dead_sink.aclose()
        return cp


async def test_crash_between_write_and_commit_is_exactly_once(tmp_path: Path) -> None:
    store, out, dead = tmp_path / "s.sqlite", tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    items = list(range(20))
    await _run(store, out, dead, items, crash_after=8)  # 2 commits of 3, then 2 uncommitted
    assert len(lines(out)) + len(lines(dead)) == 8
    cp = await _run(store, out, dead, items, crash_after=None)
    assert cp.resumed is not None
    assert cp.resumed.done == {str(i) for i in range(6)}
    ids = sorted(r["id"] for r in lines(out) + lines(dead))
    assert ids == items  # every input exactly once
    assert [r["id"] for r in lines(dead)] == [5, 15]


async def test_crash_before_the_first_commit_rewinds_to_the_start(tmp_path: Path) -> None:
    store, out, dead = tmp_path / "s.sqlite", tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    out.write_text('{"id": "from an earlier run"}\n')
    await _run(store, out, dead, list(range(10)), crash_after=2)
    await _run(store, out, dead, list(range(10)), crash_after=None)
    assert [r["id"] for r in lines(out)] == ["from an earlier run", 0, 1, 2, 3, 4, 6, 7, 8, 9]


async def test_torn_write_during_crash_is_repaired(tmp_path: Path) -> None:
    store, out, dead = tmp_path / "s.sqlite", tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    await _run(store, out, dead, list(range(10)), crash_after=4)
    with out.open("ab") as f:
        f.write(b'{"id": 99, "par')  # the process died mid-write
    await _run(store, out, dead, list(range(10)), crash_after=None)
    assert sorted(r["id"] for r in lines(out)) == [0, 1, 2, 3, 4, 6, 7, 8, 9]


async def test_collect_sink_positions_and_duplicate_names(tmp_path: Path) -> None:
    a, b = sinks.collect(), sinks.collect()
    assert sink_ids([a, b]) == ["collect", "collect#1"]
    async with RunStore(tmp_path / "s.sqlite") as store:
        cp = Checkpointer(store, "r", [a, b])
        assert (await cp.resume())("x") is False
        await a.write([{"i": 1}])
        await cp.commit(["1"])
        await b.write([{"i": 2}, {"i": 3}])
        a2, b2 = sinks.collect(), sinks.collect()
        b2.items.extend([{"i": 2}, {"i": 3}, {"i": "uncommitted"}])
        again = Checkpointer(store, "r", [a2, b2])
        skip = await again.resume()
        assert skip("1")
        assert not skip("2")
        assert b2.items == []  # position 0 committed for the second sink
        checkpoint = await store.load_checkpoint("r")
        assert checkpoint is not None
        assert checkpoint.positions == {"collect": 1, "collect#1": 0}
