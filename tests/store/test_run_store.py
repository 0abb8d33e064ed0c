"""RunStore: atomic commits, checkpoints, versions, traces, clear errors."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from dspex.errors import StoreError
from dspex.store import RunStore

if TYPE_CHECKING:
    from pathlib import Path


async def test_commit_and_load_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "store.sqlite"
    async with RunStore(path) as store:
        assert await store.load_checkpoint("r1") is None
        await store.commit("r1", ["a", "b"], {"jsonl:out": 10})
        await store.commit("r1", ["c", "a"], {"jsonl:out": 25, "collect": 3})
        await store.commit("r2", ["z"], {})
    async with RunStore(path) as store:  # durable across connections
        cp = await store.load_checkpoint("r1")
        assert cp is not None
        assert cp.done == {"a", "b", "c"}
        assert cp.positions == {"jsonl:out": 25, "collect": 3}
        assert cp.commits == 2
        runs = {r["run_id"]: r for r in await store.runs()}
        assert runs["r1"]["done"] == 3
        assert runs["r2"]["done"] == 1
        await store.delete_run("r1")
        assert await store.load_checkpoint("r1") is None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


async def test_commit_is_all_or_nothing(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "s.sqlite") as store:
        await store.commit("r", ["a"], {"sink": 1})
        with pytest.raises(StoreError, match="JSON-serialisable"):
            await store.commit("r", ["b"], {"sink": object()})

        # A failure inside the transaction (after the keys were inserted) rolls it all back.
        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO done_keys VALUES ('r', 'c')")
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        with pytest.raises(StoreError, match="no such table"):
            await store._run(broken)
        cp = await store.load_checkpoint("r")
        assert cp is not None
        assert cp.done == {"a"}
        assert cp.positions == {"sink": 1}


async def test_corrupt_store_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StoreError, match="corrupt or not a dspex run store") as info:
        await RunStore(path).open()
    assert info.value.path == str(path)


async def test_locked_store_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    async with RunStore(path) as store:
        await store.commit("r", ["a"], {})
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            conn = store._conn
            assert conn is not None  # the store is open
            conn.execute("PRAGMA busy_timeout=50")  # keep the test short
            with pytest.raises(StoreError, match="lock"):
                await store.commit("r", ["b"], {})
        finally:
            other.execute("ROLLBACK")
            other.close()
        cp = await store.load_checkpoint("r")
        assert cp is not None
        assert cp.done == {"a"}


async def test_program_versions_and_traces(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "s.sqlite") as store:
        assert await store.save_version("qa", '{"v": 1}', 0.5) == 1
        assert await store.save_version("qa", '{"v": 2}', 0.75) == 2
        assert await store.save_version("other", "{}") == 1
        versions = await store.versions("qa")
        assert [(v["version"], v["state"], v["score"]) for v in versions] == [
            (1, '{"v": 1}', 0.5), (2, '{"v": 2}', 0.75)
        ]
        await store.add_traces("qa", [
            {"inputs": {"q": "a"}, "outputs": {"a": "1"}, "score": 1.0},
            {"inputs": {"q": "b"}, "outputs": {"a": "2"}, "score": 0.0},
        ], run_id="r1")
        good = await store.traces("qa", min_score=0.5)
        assert good == [{"inputs": {"q": "a"}, "outputs": {"a": "1"}, "score": 1.0, "run_id": "r1"}]
        assert len(await store.traces("qa")) == 2
        with pytest.raises(StoreError, match="'inputs' and 'outputs'"):
            await store.add_traces("qa", [{"inputs": {}}])


async def test_memory_store_and_lazy_open() -> None:
    store = RunStore(":memory:")
    await store.commit("r", ["k"], {"s": [1, "x"]})  # opens on first use
    cp = await store.load_checkpoint("r")
    assert cp is not None
    assert cp.positions == {"s": [1, "x"]}
    await store.aclose()
    await store.aclose()
