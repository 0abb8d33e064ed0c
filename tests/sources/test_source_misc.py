"""Iterable, stdin and Parquet sources, and the source conformance kit over all of them."""

from __future__ import annotations

import builtins
import io
import json
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import pyarrow as pa  # a dev dependency: the Parquet tests must run in CI, not skip
import pyarrow.parquet as pq
import pytest
from _source_reading import generator, read

from dspex import sources
from dspex.errors import ConfigError, SourceError
from dspex.testing import check_source

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path



async def test_iterable_sync_keyed_with_skip_and_missing_id() -> None:
    items = [{"id": 1, "x": "a"}, {"x": "no id"}, {"id": 2, "x": "b"}, {"id": 3}]
    recs = await read(sources.iterable(items, id_field="id"), skip={"3"}.__contains__)
    assert [(r.key, r.data) for r in recs if r.error is None] == [
        ("1", {"id": 1, "x": "a"}), ("2", {"id": 2, "x": "b"})
    ]
    ((bad, error),) = [(r, r.error) for r in recs if r.error is not None]
    assert bad.data == {"x": "no id"}
    assert error.line == 2
    assert error.field == "id"


async def test_iterable_async_is_closed_when_stopped_early() -> None:
    closed = []

    async def gen() -> AsyncIterator[dict[str, int]]:
        try:
            for i in range(1000):
                yield {"i": i}
        finally:
            closed.append(True)

    agen = generator(sources.iterable(gen()).records())
    async with aclosing(agen):
        async for rec in agen:
            assert rec.data == {"i": 0}
            break
    assert closed == [True]


def test_iterable_rejects_non_iterables() -> None:
    with pytest.raises(ConfigError, match="expects an iterable"):
        sources.iterable(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="got str"):
        sources.iterable("abc")


async def test_stdin_jsonl_and_lines_from_a_stream() -> None:
    data = b'{"id": 1}\nnot json\n{"id": 2}\n'
    recs = await read(sources.stdin(id_field="id", stream=io.BytesIO(data)))
    assert [r.key for r in recs if r.error is None] == ["1", "2"]
    ((bad, error),) = [(r, r.error) for r in recs if r.error is not None]
    assert error.line == 2
    assert error.path == "stdin"
    assert bad.data == "not json"
    lines = await read(sources.stdin("lines", stream=io.BytesIO(b"a\r\n\nb")))
    assert [r.data for r in lines] == [{"text": "a"}, {"text": ""}, {"text": "b"}]


def test_stdin_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match="'jsonl' or 'lines'"):
        sources.stdin("xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="id_field needs format='jsonl'"):
        sources.stdin("lines", id_field="id")


def _write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int) -> None:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)


async def test_parquet_streams_by_batches_with_columns_and_keys(tmp_path: Path) -> None:
    rows = [{"id": i, "q": f"q{i}", "big": "x" * 10} for i in range(1000)]
    rows[5]["id"] = None
    p = tmp_path / "d.parquet"
    _write_parquet(p, rows, row_group_size=100)
    src = sources.parquet(p, id_field="id", columns=["q"], batch_size=64)
    recs = await read(src, skip={"0"}.__contains__)
    good = [r for r in recs if r.error is None]
    assert good[0].data == {"q": "q1", "id": 1}
    assert good[0].key == "1"
    assert len(good) == 998
    assert src.max_chunk_records <= 64
    (error,) = [r.error for r in recs if r.error is not None]
    assert error.line == 6
    assert error.field == "id"


async def test_parquet_reads_a_directory_in_name_order(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "part-00001.parquet", [{"i": 2}], 10)
    _write_parquet(tmp_path / "part-00000.parquet", [{"i": 0}, {"i": 1}], 10)
    (tmp_path / "part-00002.parquet.tmp").write_bytes(b"junk")
    recs = await read(sources.parquet(tmp_path))
    assert [r.data for r in recs] == [{"i": 0}, {"i": 1}, {"i": 2}]


async def test_parquet_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no Parquet file"):
        await read(sources.parquet(tmp_path / "missing.parquet"))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(SourceError, match="cannot read Parquet file"):
        await read(sources.parquet(bad))


async def test_parquet_without_pyarrow_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ConfigError, match=r"pip install 'dspex\[parquet\]'"):
        await read(sources.parquet(tmp_path / "x.parquet"))


ROWS = [{"id": str(i), "text": f"t{i}"} for i in range(7)]


async def test_conformance_iterables() -> None:
    await check_source(sources.iterable(ROWS, id_field="id"), expect=ROWS)
    await check_source(sources.iterable(ROWS), expect=ROWS)

    async def agen() -> AsyncIterator[dict[str, str]]:
        for row in ROWS:
            yield row

    await check_source(lambda: sources.iterable(agen(), id_field="id"), expect=ROWS)


async def test_conformance_files(tmp_path: Path) -> None:
    j = tmp_path / "r.jsonl"
    j.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "oops\n")
    recs = await check_source(sources.jsonl(j, id_field="id"), expect=ROWS)
    assert recs[-1].error is not None
    assert recs[-1].error.line == 8
    c = tmp_path / "r.csv"
    c.write_text("id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in ROWS))
    await check_source(sources.csv(c, id_field="id"), expect=ROWS)
    await check_source(sources.csv(c), expect=ROWS)
    d = tmp_path / "docs"
    d.mkdir()
    for r in ROWS:
        (d / f"{r['id']}.txt").write_text(r["text"])
    await check_source(sources.text_dir(d), expect=[
        {"path": str(d / f"{r['id']}.txt"), "text": r["text"]} for r in ROWS
    ])
    data = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    await check_source(lambda: sources.stdin(id_field="id", stream=io.BytesIO(data)), expect=ROWS)


async def test_conformance_parquet(tmp_path: Path) -> None:
    p = tmp_path / "r.parquet"
    _write_parquet(p, ROWS, row_group_size=3)
    await check_source(sources.parquet(p, id_field="id", batch_size=2), expect=ROWS)
