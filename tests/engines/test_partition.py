"""Partitioning sources: every record in exactly one partition, line numbers kept."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

import dspex as dx
from dspex.engines import split_source
from dspex.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def _read(src: Any) -> list[Any]:
    return [r async for r in src.records()]


def _write(path: Path, n: int, bad: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    with path.open("w") as f:
        for i in range(n):
            f.write("{not json\n" if i in bad else json.dumps({"id": i, "x": i, "pad": "é" * (i % 13)}) + "\n")


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 50])
async def test_jsonl_byte_ranges_cover_each_line_once(tmp_path: Path, parts: int) -> None:
    path = tmp_path / "in.jsonl"
    _write(path, 200, bad={57, 123})
    split = split_source(dx.sources.jsonl(path, id_field="id"), parts)
    assert 1 <= len(split) <= parts
    got = [r for part in split for r in await _read(part)]
    keys = [r.key for r in got if r.error is None]
    assert keys == [str(i) for i in range(200) if i not in (57, 123)]
    # a bad line keeps its line number in the whole file, whichever partition reads it
    assert sorted(r.error.line for r in got if r.error is not None) == [58, 124]


async def test_jsonl_without_final_newline_and_tiny_file(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1}\n{"id": 2}')
    split = split_source(dx.sources.jsonl(path, id_field="id"), 8)
    assert [r.key for part in split for r in await _read(part)] == ["1", "2"]


async def test_list_chunks_and_parquet_row_groups(tmp_path: Path) -> None:
    items = [{"id": i} for i in range(10)]
    split = split_source(dx.sources.iterable(items, id_field="id"), 3)
    assert [[r.key for r in await _read(p)] for p in split] == [
        ["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9"]]
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    pq.write_table(pa.Table.from_pylist([{"id": i} for i in range(100)]), tmp_path / "t.parquet",
                   row_group_size=10)
    split = split_source(dx.sources.parquet(tmp_path / "t.parquet", id_field="id"), 4)
    assert len(split) == 4
    assert [r.key for p in split for r in await _read(p)] == [str(i) for i in range(100)]


def test_unpartitionable_source_and_bad_count() -> None:
    with pytest.raises(ConfigError, match="cannot partition source"):
        split_source(dx.sources.iterable(iter([{"id": 1}]), id_field="id"), 2)
    with pytest.raises(ConfigError, match="partitions must be a positive int"):
        split_source(dx.sources.iterable([{"id": 1}]), 0)


@pytest.mark.parametrize("parts", [1, 2, 3, 9])
async def test_csv_ranges_keep_quoted_newlines_whole(tmp_path: Path, parts: int) -> None:
    path = tmp_path / "in.csv"
    rows = ["id,text"]
    for i in range(60):
        text = f'"line one of {i}\nline two, ""quoted""\n"' if i % 4 == 0 else f"plain {i}"
        rows.append(f"{i},{text}")
    rows.insert(30, "bad,row,with,too,many,columns")
    path.write_text("\n".join(rows) + "\n")
    whole = await _read(dx.sources.csv(path, id_field="id"))
    split = split_source(dx.sources.csv(path, id_field="id"), parts)
    assert 1 <= len(split) <= parts
    assert (len(split) > 1) == (parts > 1)
    got = [r for part in split for r in await _read(part)]
    assert [(r.key, r.data) for r in got if r.error is None] == [
        (r.key, r.data) for r in whole if r.error is None]
    assert len([r for r in got if r.error is None]) == 60
    # the bad row keeps its line number in the whole file
    assert [r.error.line for r in got if r.error] == [r.error.line for r in whole if r.error]
