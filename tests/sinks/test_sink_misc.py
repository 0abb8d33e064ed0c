"""Collect, stdout, callback, SQLite and Parquet sinks, and the sink conformance kit."""

from __future__ import annotations

import csv as pycsv
import io
import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq  # a dev dependency: the Parquet tests must run in CI, not skip
import pytest

from dspex import sinks
from dspex.errors import ConfigError, SinkError
from dspex.testing import check_sink

if TYPE_CHECKING:
    from pathlib import Path


async def test_collect_keeps_items_and_restores_by_count() -> None:
    sink = sinks.collect()
    async with sink:
        await sink.write([{"a": 1}, {"a": 2}])
        pos = await sink.checkpoint()
        await sink.write([{"a": 3}])
        await sink.restore(pos)
    assert pos == 2
    assert sink.items == [{"a": 1}, {"a": 2}]


async def test_stdout_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    async with sinks.stdout() as sink:
        await sink.write([{"a": 1}, {"b": "é"}])
        assert await sink.checkpoint() is None
    assert capsys.readouterr().out == '{"a": 1}\n{"b": "é"}\n'


async def test_callback_sync_and_async() -> None:
    seen: list[Any] = []

    async def afn(record: Any) -> None:
        seen.append(("async", record["i"]))

    async with sinks.callback(afn) as s1, sinks.callback(lambda r: seen.append(("sync", r["i"]))) as s2:
        await s1.write([{"i": 1}, {"i": 2}])
        await s2.write([{"i": 3}])
    assert seen == [("async", 1), ("async", 2), ("sync", 3)]
    assert s1.name == "callback:afn"
    with pytest.raises(ConfigError, match="expects a callable"):
        sinks.callback(3)  # type: ignore[arg-type]


async def test_sqlite_creates_table_adds_columns_and_restores(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite"
    sink = sinks.sqlite(db, "answers")
    await sink.open()
    assert await sink.checkpoint() == 0
    await sink.write([{"id": 1, "answer": "x"}, {"id": 2, "answer": ["a", "b"]}])
    pos = await sink.checkpoint()
    await sink.write([{"id": 3, "score": 0.5}])
    await sink.restore(pos)
    await sink.write([{"id": 4, "answer": None, "flag": True}])
    with pytest.raises(SinkError, match="field 'bad'") as info:
        await sink.write([{"id": 5, "bad": object()}])
    assert info.value.field == "bad"
    await sink.aclose()
    await sink.aclose()
    conn = sqlite3.connect(db)
    rows = conn.execute('SELECT id, answer, score, flag FROM "answers" ORDER BY rowid').fetchall()
    conn.close()
    assert rows == [(1, "x", None, None), (2, '["a", "b"]', None, None), (4, None, None, 1)]
    with pytest.raises(ConfigError, match="table name"):
        sinks.sqlite(db, "")


async def test_parquet_directory_one_part_per_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    sink = sinks.parquet(out, row_group_size=2)
    await sink.open()
    await sink.write([{"i": 1, "tags": {"x"}}, {"i": 2, "tags": set()}, {"i": 3, "tags": {"y"}}])
    assert await sink.checkpoint() == 1
    await sink.write([{"i": 4, "tags": {"z"}}])
    assert await sink.checkpoint() == 2
    await sink.write([{"i": 5, "tags": set()}])
    await sink.flush()
    await sink.restore(2)
    await sink.aclose()
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert pq.read_table(out).to_pylist() == [
        {"i": 1, "tags": ["x"]}, {"i": 2, "tags": []}, {"i": 3, "tags": ["y"]},
        {"i": 4, "tags": ["z"]},
    ]
    (out / "part-00002.parquet.tmp").write_bytes(b"torn")
    async with sinks.parquet(out) as again:
        assert again.parts == 2
    assert not (out / "part-00002.parquet.tmp").exists()


async def test_parquet_single_file_is_renamed_into_place_and_cannot_checkpoint(tmp_path: Path) -> None:
    f = tmp_path / "one.parquet"
    sink = sinks.parquet(f)
    await sink.open()
    await sink.write([{"a": 1}])
    await sink.flush()
    assert not f.exists()
    with pytest.raises(SinkError, match="give a directory path"):
        await sink.checkpoint()
    await sink.aclose()
    assert pq.read_table(f).to_pylist() == [{"a": 1}]


# -- conformance over every built-in sink ------------------------------------------


def _append(p: Path, data: bytes) -> None:
    with p.open("ab") as f:
        f.write(data)


def _read_jsonl(p: Path) -> list[dict[str, Any]]:
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").split("\n") if line]


async def test_conformance_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    await check_sink(
        lambda: sinks.jsonl(p), read=lambda: _read_jsonl(p),
        tear=lambda: _append(p, b'{"id": "torn", "te'),
    )


async def test_conformance_csv(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"

    def read() -> list[dict[str, Any]]:
        if not p.exists():
            return []
        with p.open(newline="", encoding="utf-8") as f:
            return list(pycsv.DictReader(f))

    await check_sink(
        lambda: sinks.csv(p), read=read, tear=lambda: _append(p, b'99,"torn')
    )


async def test_conformance_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"

    def read() -> list[dict[str, Any]]:
        conn = sqlite3.connect(db)
        try:
            return [{"id": i, "text": t} for i, t in conn.execute("SELECT id, text FROM t ORDER BY rowid")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    await check_sink(lambda: sinks.sqlite(db, "t"), read=read)


async def test_conformance_parquet(tmp_path: Path) -> None:
    out = tmp_path / "ds"

    def read() -> list[dict[str, Any]]:
        parts = sorted(out.glob("*.parquet")) if out.exists() else []
        return [row for part in parts for row in pq.read_table(part).to_pylist()]

    await check_sink(
        lambda: sinks.parquet(out), read=read,
        tear=lambda: (out / "part-99999.parquet.tmp").write_bytes(b"PAR1 torn"),
    )


async def test_conformance_in_memory_sinks() -> None:
    collected = sinks.collect()
    await check_sink(lambda: collected, read=lambda: collected.items)
    seen: list[Any] = []

    async def remember(record: Any) -> None:
        seen.append(record)

    await check_sink(lambda: sinks.callback(remember), read=lambda: seen)
    buf = io.StringIO()
    await check_sink(
        lambda: sinks.stdout(buf), read=lambda: [json.loads(x) for x in buf.getvalue().splitlines()]
    )
