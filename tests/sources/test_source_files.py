"""JSONL, CSV and text-directory sources: streaming, bad lines, keys and skip."""

from __future__ import annotations

import io
import json
from contextlib import aclosing
from typing import TYPE_CHECKING

import pytest
from _source_reading import generator, read
from hypothesis import given
from hypothesis import strategies as st

from dspex import sources
from dspex.errors import SourceError
from dspex.sources import SourceRecord
from dspex.sources._lines import LineChunker, parse_lines

if TYPE_CHECKING:
    from pathlib import Path



def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_jsonl_reads_objects_in_order_with_keys(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "q.jsonl", b'{"id": 1, "q": "a"}\n{"id": "b", "q": "\xc3\xa9"}\n')
    recs = await read(sources.jsonl(p, id_field="id"))
    assert [(r.data, r.key, r.error) for r in recs] == [
        ({"id": 1, "q": "a"}, "1", None),
        ({"id": "b", "q": "é"}, "b", None),
    ]
    assert sources.jsonl(p).name == f"jsonl:{p}"


async def test_jsonl_bad_lines_become_error_records_with_line_numbers(tmp_path: Path) -> None:
    data = (
        b'{"id": 1}\n'          # 1 ok
        b"\n"                   # 2 blank: skipped
        b'{"id": 2\n'           # 3 bad JSON
        b"[1, 2]\n"             # 4 not an object
        b'{"q": "no id"}\n'     # 5 missing id
        b"\xff\xfe{}\n"         # 6 undecodable
        b'{"id": null}\n'       # 7 null id
        b'{"id": 3}'            # 8 ok, no trailing newline
    )
    p = write_bytes(tmp_path / "bad.jsonl", data)
    recs = await read(sources.jsonl(p, id_field="id"))
    good = [(r.key, r.data) for r in recs if r.error is None]
    assert good == [("1", {"id": 1}), ("3", {"id": 3})]
    bad = [r for r in recs if r.error is not None]
    errors = [r.error for r in recs if r.error is not None]
    assert [e.line for e in errors] == [3, 4, 5, 6, 7]
    assert all(isinstance(r.error, SourceError) and r.error.path == str(p) for r in bad)
    assert all(r.key is None for r in bad)
    assert bad[0].data == '{"id": 2'
    assert "invalid JSON" in str(bad[0].error)
    assert "expected a JSON object" in str(bad[1].error)
    assert errors[2].field == "id"
    assert "missing id field 'id'" in str(bad[2].error)
    assert "undecodable" in str(bad[3].error)
    assert bad[3].data.endswith("{}")
    assert f"{p}:6:" in str(bad[3].error)


async def test_jsonl_handles_bom_crlf_and_chunk_boundaries(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "text": "x" * (i % 7)}) for i in range(500)]
    p = write_bytes(tmp_path / "c.jsonl", b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    src = sources.jsonl(p, id_field="id", chunk_bytes=64)  # many lines split across chunks
    recs = await read(src)
    assert [r.data for r in recs] == [json.loads(line) for line in lines]
    assert all(r.error is None for r in recs)


async def test_jsonl_skip_is_honoured(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(10)))
    recs = await read(sources.jsonl(p, id_field="id"), skip={"0", "3", "9"}.__contains__)
    assert [r.key for r in recs] == ["1", "2", "4", "5", "6", "7", "8"]


async def test_jsonl_huge_file_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    with p.open("w") as f:
        for i in range(200_000):
            f.write(json.dumps({"id": i, "question": f"What is {i}?"}) + "\n")
    size = p.stat().st_size
    src = sources.jsonl(p, id_field="id", chunk_bytes=1 << 16)
    count = 0
    async with aclosing(generator(src.records())) as agen:
        async for rec in agen:
            assert rec.error is None
            count += 1
    assert count == 200_000
    assert size > 40 * (1 << 16)
    # One chunk plus the unfinished line before it: never the whole file.
    assert src.max_buffered_bytes <= (1 << 16) + 64
    assert src.max_chunk_records <= (1 << 16) // 20


async def test_jsonl_oversize_line_is_reported_not_buffered(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "long.jsonl", b'{"id": 1}\n' + b'{"x": "' + b"a" * 5000 + b'"}\n{"id": 2}\n')
    src = sources.JsonlSource(p, id_field="id", chunk_bytes=256, max_line_bytes=1000)
    recs = await read(src)
    assert [r.key for r in recs if r.error is None] == ["1", "2"]
    (error,) = [r.error for r in recs if r.error is not None]
    assert error.line == 2
    assert "longer than 1000 bytes" in str(error)
    assert src.max_buffered_bytes < 1400


def _all_lines(chunker: LineChunker) -> list[tuple[int, bytes | None]]:
    lines: list[tuple[int, bytes | None]] = []
    while not chunker.eof:
        lines.extend(chunker.next_lines())
    return lines


def test_very_long_line_is_joined_once_not_quadratically() -> None:
    line = b'{"x": "' + b"a" * (50 << 20) + b'"}'  # 50 MB: 51 reads of 1 MiB
    chunker = LineChunker(io.BytesIO(line + b'\n{"y": 1}').read, chunk_bytes=1 << 20)
    lines = _all_lines(chunker)
    assert [n for n, _ in lines] == [1, 2]
    assert lines[0][1] == line
    assert lines[1][1] == b'{"y": 1}'
    # One join of the held chunks plus the chunk ending the line; growing the
    # tail by concatenation would copy about 51 * 25 MB = 1.3 GB.
    assert chunker.bytes_joined <= len(line) + (1 << 20)


def test_oversize_line_spanning_reads_is_dropped_and_counted() -> None:
    data = b"ok\n" + b"z" * 10_000 + b"\nafter\n"
    chunker = LineChunker(io.BytesIO(data).read, chunk_bytes=100, max_line_bytes=1000)
    assert _all_lines(chunker) == [(1, b"ok"), (2, None), (3, b"after")]
    assert chunker.max_buffered <= 1100
    assert chunker.bytes_joined < 300


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       st.integers(min_value=1, max_value=17), st.booleans())
def test_line_chunker_splits_like_bytes_split(lines: list[bytes], chunk: int, final_newline: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    if data.startswith(b"\xef\xbb\xbf"):
        data = b"x" + data
    got = _all_lines(LineChunker(io.BytesIO(data).read, chunk_bytes=chunk))
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert got == list(enumerate(expected, start=1))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
_LINE = st.one_of(
    st.tuples(st.sampled_from(["", " ", "\t", "\r"]), _JSON.map(json.dumps),
              st.sampled_from(["", " ", "\r", " x", ",", "}"])).map("".join),
    st.text(max_size=12),
)


@given(st.lists(_LINE, max_size=8))
def test_parse_lines_agrees_with_json_loads_line_by_line(texts: list[str]) -> None:
    lines: list[tuple[int, bytes | None]] = [
        (i, t.encode("utf-8", "surrogatepass")) for i, t in enumerate(texts, start=1)
    ]
    got = parse_lines(lines, path="p.jsonl", id_field=None)
    expected: list[tuple[object, int | None]] = []
    for i, text in enumerate(texts, start=1):
        try:
            data = json.loads(text.encode("utf-8", "surrogatepass").decode())
        except ValueError:
            if text.encode("utf-8", "surrogatepass").strip():  # blank lines are skipped
                expected.append((None, i))
            continue
        expected.append((data, None) if type(data) is dict else (None, i))
    assert [(r.data if r.error is None else None, r.error and r.error.line) for r in got] == expected


def test_parsed_records_are_ordinary_frozen_source_records() -> None:
    import dataclasses

    good = parse_lines([(1, b'{"a": 1}')], path="p", id_field=None)[0]
    keyed = parse_lines([(2, b'{"id": 7}')], path="p", id_field="id")[0]
    assert type(good) is SourceRecord
    assert good == SourceRecord({"a": 1})
    assert keyed == SourceRecord({"id": 7}, "7")
    assert keyed.error is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.key = "x"  # type: ignore[misc]


async def test_jsonl_missing_file_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open JSONL file"):
        await read(sources.jsonl(tmp_path / "nope.jsonl"))


async def test_jsonl_early_close_releases_the_file(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(100)))
    agen = generator(sources.jsonl(p).records())
    async with aclosing(agen):
        first = await agen.__anext__()
    assert first.data == {"id": 0}
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()


async def test_csv_reads_rows_with_header_and_quoted_newlines(tmp_path: Path) -> None:
    p = write_bytes(tmp_path / "a.csv", b'id,q\r\n1,"multi\nline, with comma"\r\n2,plain\r\n')
    recs = await read(sources.csv(p, id_field="id"))
    assert [(r.key, r.data) for r in recs] == [
        ("1", {"id": "1", "q": "multi\nline, with comma"}),
        ("2", {"id": "2", "q": "plain"}),
    ]


async def test_csv_bad_rows_carry_the_line_where_they_start(tmp_path: Path) -> None:
    data = b'id,q\n1,"two\nlines"\n2\n\n3,ok\n4,"bad \xff byte"\n,empty id\n5,x,extra\n6,fine\n'
    p = write_bytes(tmp_path / "b.csv", data)
    recs = await read(sources.csv(p, id_field="id"))
    assert [r.key for r in recs if r.error is None] == ["1", "3", "6"]
    bad = {r.error.line: r for r in recs if r.error is not None}
    assert sorted(bad) == [4, 7, 8, 9]
    assert "1 columns; expected 2" in str(bad[4].error)
    assert bad[4].data == "2"
    assert "undecodable" in str(bad[7].error)
    assert "\ufffd" in bad[7].data
    assert isinstance(bad[8].error, SourceError)
    assert bad[8].error.field == "id"
    assert "3 columns" in str(bad[9].error)


async def test_csv_options_fieldnames_delimiter_and_batches(tmp_path: Path) -> None:
    p = tmp_path / "t.tsv"
    p.write_text("".join(f"{i}\tv{i}\n" for i in range(25)))
    src = sources.CsvSource(p, fieldnames=["n", "v"], delimiter="\t", batch_rows=4)
    recs = await read(src)
    assert [r.data for r in recs] == [{"n": str(i), "v": f"v{i}"} for i in range(25)]
    assert src.max_chunk_records == 4


async def test_text_dir_yields_one_record_per_file_keyed_by_path(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "a.txt").write_text("ay\nline 2")
    (tmp_path / "skip.md").write_text("no")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    recs = await read(sources.text_dir(tmp_path))
    good = [r for r in recs if r.error is None]
    assert [r.data for r in good] == [
        {"path": str(tmp_path / "a.txt"), "text": "ay\nline 2"},
        {"path": str(tmp_path / "b.txt"), "text": "bee"},
    ]
    assert [r.key for r in good] == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    ((bad, error),) = [(r, r.error) for r in recs if r.error is not None]
    assert error.path == str(tmp_path / "bad.txt")
    assert "undecodable" in str(bad.error)
    again = await read(sources.text_dir(tmp_path, "*.md"), skip=lambda k: False)
    assert [r.data["text"] for r in again] == ["no"]
    skipped = await read(sources.text_dir(tmp_path), skip={str(tmp_path / "a.txt")}.__contains__)
    assert [r.data["text"] for r in skipped if r.error is None] == ["bee"]


async def test_text_dir_rejects_a_file_path(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("x")
    with pytest.raises(SourceError, match="expects a directory"):
        await read(sources.text_dir(f))
