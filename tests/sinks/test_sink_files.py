"""JSONL and CSV file sinks: batching, encoding, torn-tail repair, restore."""

from __future__ import annotations

import csv as pycsv
import datetime as dt
import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dspex import sinks
from dspex.errors import ConfigError, SinkError
from dspex.sinks._encode import encode_jsonl, to_plain


def jsonl_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


class Color(enum.Enum):
    RED = "red"


class Model(pydantic.BaseModel):
    a: int
    when: dt.date


@dataclass
class Point:
    x: int
    y: int


async def test_jsonl_encodes_non_json_values(tmp_path: Path) -> None:
    p = tmp_path / "out" / "a.jsonl"
    async with sinks.jsonl(p) as sink:
        await sink.write([{
            "model": Model(a=1, when=dt.date(2024, 5, 6)),
            "at": dt.datetime(2024, 1, 2, 3, 4, 5),
            "tags": {"b", "a"},
            "color": Color.RED,
            "path": Path("/x"),
            "point": Point(1, 2),
            "raw": b"\xff",
            "text": "é\u2028",
        }])
    (rec,) = jsonl_lines(p)
    assert rec == {
        "model": {"a": 1, "when": "2024-05-06"}, "at": "2024-01-02T03:04:05",
        "tags": ["a", "b"], "color": "red", "path": "/x", "point": {"x": 1, "y": 2},
        "raw": {"base64": "/w=="}, "text": "é\u2028",
    }
    assert "é".encode() in p.read_bytes()  # UTF-8, not \\u escapes


async def test_jsonl_unencodable_value_names_the_field(tmp_path: Path) -> None:
    async with sinks.jsonl(tmp_path / "a.jsonl") as sink:
        with pytest.raises(SinkError, match="field 'bad'") as info:
            await sink.write([{"ok": 1, "bad": object()}])
    assert info.value.field == "bad"
    assert (tmp_path / "a.jsonl").read_bytes() == b""


async def test_jsonl_lone_surrogates_stay_valid_utf8(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    async with sinks.jsonl(p) as sink:
        await sink.write([{"t": "a\udcff"}])
    assert jsonl_lines(p) == [{"t": "a\udcff"}]


async def test_jsonl_buffers_then_writes_whole_batches(tmp_path: Path) -> None:
    p = tmp_path / "b.jsonl"
    sink = sinks.JsonlSink(p, buffer_bytes=100)
    await sink.open()
    await sink.write([{"i": 1}])
    assert p.read_bytes() == b""  # buffered
    await sink.write([{"pad": "x" * 100}])
    assert len(jsonl_lines(p)) == 2  # drained in one write
    await sink.write([{"i": 3}])
    assert await sink.checkpoint() == p.stat().st_size
    assert len(jsonl_lines(p)) == 3
    await sink.aclose()


async def test_jsonl_open_cuts_a_torn_last_line(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_bytes(b'{"i": 1}\n{"i": 2}\n{"i": 3, "tex')
    sink = sinks.jsonl(p)
    await sink.open()
    assert sink.repaired == len(b'{"i": 3, "tex')
    await sink.write([{"i": 4}])
    await sink.aclose()
    assert jsonl_lines(p) == [{"i": 1}, {"i": 2}, {"i": 4}]


async def test_jsonl_torn_tail_longer_than_a_block(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_bytes(b'{"i": 1}\n' + b'{"x": "' + b"y" * 200_000)
    async with sinks.jsonl(p):
        pass
    assert p.read_bytes() == b'{"i": 1}\n'
    p.write_bytes(b"no newline at all")
    async with sinks.jsonl(p):
        pass
    assert p.read_bytes() == b""


async def test_restore_truncates_to_the_checkpoint(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    sink = sinks.jsonl(p)
    await sink.open()
    await sink.write([{"i": 1}])
    pos = await sink.checkpoint()
    await sink.write([{"i": 2}])
    await sink.aclose()
    resumed = sinks.jsonl(p)
    await resumed.open()
    await resumed.restore(pos)
    await resumed.write([{"i": 3}])
    await resumed.aclose()
    assert jsonl_lines(p) == [{"i": 1}, {"i": 3}]


async def test_restore_past_the_end_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "w.jsonl"
    p.write_text('{"i": 1}\n')
    sink = sinks.jsonl(p, mode="w")
    await sink.open()
    with pytest.raises(SinkError, match="shorter than the checkpoint position 9"):
        await sink.restore(9)
    await sink.aclose()
    with pytest.raises(SinkError, match="before open"):
        await sinks.jsonl(p).write([{"i": 1}])
    with pytest.raises(ConfigError, match="mode must be"):
        sinks.jsonl(p, mode="x")  # type: ignore[arg-type]


async def test_csv_header_from_first_record_stable_order(tmp_path: Path) -> None:
    p = tmp_path / "o.csv"
    async with sinks.csv(p) as sink:
        await sink.write([{"id": 1, "text": 'a,"b"\nc', "n": None}])
        await sink.write([{"text": "z", "id": 2, "n": [1, 2]}, {"id": 3}])
    async with sinks.csv(p) as sink:  # append reuses the existing header
        await sink.write([{"n": 1.5, "id": 4, "text": "w"}])
        with pytest.raises(SinkError, match="field 'extra' is not a column") as info:
            await sink.write([{"id": 5, "extra": 1}])
        assert info.value.field == "extra"
    with p.open(newline="", encoding="utf-8") as f:
        rows = list(pycsv.reader(f))
    assert rows == [
        ["id", "text", "n"], ["1", 'a,"b"\nc', ""], ["2", "z", "[1, 2]"], ["3", "", ""],
        ["4", "w", "1.5"],
    ]


async def test_csv_extras_ignored_and_restore_to_zero_rewrites_header(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    sink = sinks.csv(p, extrasaction="ignore", fieldnames=["a"])
    await sink.open()
    start = await sink.checkpoint()
    await sink.write([{"a": 1, "b": 2}])
    await sink.restore(start)
    await sink.write([{"a": 3}])
    await sink.aclose()
    assert p.read_bytes() == b"a\r\n3\r\n"


async def test_csv_torn_row_is_cut_on_open(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes(b"a,b\r\n1,2\r\n3,\"par")
    async with sinks.csv(p) as sink:
        await sink.write([{"a": 5, "b": 6}])
    assert p.read_bytes() == b"a,b\r\n1,2\r\n5,6\r\n"


async def test_overlapping_writes_keep_records_whole(tmp_path: Path) -> None:
    import anyio

    p = tmp_path / "c.jsonl"
    async with sinks.JsonlSink(p, buffer_bytes=0) as sink:
        async with anyio.create_task_group() as tg:
            for t in range(8):
                batch = [{"t": t, "i": i, "pad": "x" * 500} for i in range(20)]
                tg.start_soon(sink.write, batch)
        assert await sink.checkpoint() == p.stat().st_size
    recs = jsonl_lines(p)
    assert sorted((r["t"], r["i"]) for r in recs) == [(t, i) for t in range(8) for i in range(20)]


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6) | st.datetimes() | st.frozensets(st.integers(), max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(st.lists(st.dictionaries(st.text(max_size=4), _VALUES, max_size=4), max_size=5))
def test_encode_jsonl_writes_what_json_dumps_writes(records: list[dict[str, object]]) -> None:
    expected = "".join(json.dumps(r, ensure_ascii=False, default=to_plain) + "\n" for r in records)
    try:
        expected_bytes = expected.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the ASCII-escaped fallback
        expected_bytes = "".join(json.dumps(r, default=to_plain) + "\n" for r in records).encode()
    assert encode_jsonl(records, sink="t") == expected_bytes


def test_encode_jsonl_recovers_after_an_unencodable_record() -> None:
    shared = {"k": 1}
    with pytest.raises(SinkError, match="field 'bad'"):
        encode_jsonl([{"a": shared, "bad": object()}], sink="t")
    assert encode_jsonl([{"a": shared}, {"b": shared}], sink="t") == b'{"a": {"k": 1}}\n{"b": {"k": 1}}\n'
