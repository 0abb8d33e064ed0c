"""NaN and infinities reach every JSON writer as ``null`` (issue 12, item 8).

Python's ``json`` writes ``NaN``/``Infinity``, which standard JSON parsers
(browsers, ``jq``, most languages) reject. Every sink writing JSON or text now
writes ``null`` (CSV: an empty cell, as for ``None``), nested at any depth.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from typing import TYPE_CHECKING, Any

import anyio
import pydantic
import pytest
from _ws_helpers import real_connect
from hypothesis import given
from hypothesis import strategies as st

from dspex import events as ev
from dspex import sinks
from dspex.flows import Flow
from dspex.sinks import websocket
from dspex.sinks._encode import dumps, encode_jsonl, finite
from dspex.sources import iterable

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.reliability

NAN, INF = float("nan"), float("inf")


class Score(pydantic.BaseModel):
    value: float
    parts: list[float]


def strict_loads(text: str | bytes) -> Any:
    """Parse standard JSON only: NaN/Infinity raise."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def record() -> dict[str, Any]:
    return {
        "id": "r1",
        "nan": NAN,
        "inf": INF,
        "ninf": -INF,
        "ok": 1.5,
        "nested": {"list": [1.0, NAN, {"deep": (INF, 2.0)}]},
        "model": Score(value=NAN, parts=[INF, 3.0]),
    }


EXPECTED = {
    "id": "r1", "nan": None, "inf": None, "ninf": None, "ok": 1.5,
    "nested": {"list": [1.0, None, {"deep": [None, 2.0]}]},
    "model": {"value": None, "parts": [None, 3.0]},
}


def test_dumps_and_encode_jsonl_write_null_for_non_finite_floats() -> None:
    assert strict_loads(dumps(record())) == EXPECTED
    assert strict_loads(dumps(record(), ascii_only=True)) == EXPECTED
    lines = encode_jsonl([{"i": 0}, record(), {"x": [NAN]}], sink="t").decode().splitlines()
    assert [strict_loads(line) for line in lines] == [{"i": 0}, EXPECTED, {"x": [None]}]


def test_lone_surrogate_and_nan_in_one_batch_stay_standard_json() -> None:
    data = encode_jsonl([{"s": "bad \udc80", "n": NAN}], sink="t")
    assert strict_loads(data) == {"s": "bad \udc80", "n": None}


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
))
def test_any_json_value_with_any_floats_encodes_as_standard_json(value: Any) -> None:
    parsed = strict_loads(dumps(value))
    assert parsed == finite(value)
    if not _has_nonfinite(value):  # finite data: byte-identical to the stdlib
        assert dumps(value) == json.dumps(value, ensure_ascii=False)


def _has_nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nonfinite(v) for v in value)
    return False


async def test_file_and_sqlite_sinks_write_null(tmp_path: Path) -> None:
    async with sinks.jsonl(tmp_path / "o.jsonl") as sink:
        await sink.write([record()])
    assert strict_loads((tmp_path / "o.jsonl").read_text()) == EXPECTED

    async with sinks.csv(tmp_path / "o.csv") as sink:
        await sink.write([{"id": "a", "nan": NAN, "inf": -INF, "nested": [NAN, 1.0]}])
    text = (tmp_path / "o.csv").read_bytes().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows == [{"id": "a", "nan": "", "inf": "", "nested": "[null, 1.0]"}]

    db = tmp_path / "o.sqlite"
    async with sinks.sqlite(db, "t") as sink:
        await sink.write([{"id": "a", "nested": {"x": [INF, NAN, 2.0]}}])
    conn = sqlite3.connect(db)
    try:
        (nested,) = conn.execute("SELECT nested FROM t").fetchone()
    finally:
        conn.close()
    assert strict_loads(nested) == {"x": [None, None, 2.0]}


async def test_websocket_records_and_events_carry_null(anyio_backend: str) -> None:
    sink = websocket()
    messages: list[dict[str, Any]] = []

    async def watch() -> None:
        await sink.started.wait()
        async with real_connect(anyio_backend, sink.url) as conn:
            messages.extend([strict_loads(raw) async for raw in conn])  # a NaN would raise here

    async def connected() -> None:
        while True:  # the caller bounds it with fail_after
            if sink.server.sessions:
                break
            await anyio.sleep(0.005)

    async def rows() -> Any:
        await connected()
        await sink.write_event(ev.PredictionDone(outputs={"score": NAN, "l": [INF]}, item_id="r1"))
        yield record()

    flow = Flow("nan-ws")
    flow.source(iterable(rows())).sink(sink)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            report = await flow.run(progress=False)
    assert report.items_out == 1
    (data,) = [m["data"] for m in messages if m["type"] == "record"]
    assert data == EXPECTED
    (done,) = [m for m in messages if m["type"] == "prediction_done"]
    assert done["outputs"] == {"score": None, "l": [None]}


async def test_websocket_client_pushes_null_to_a_remote_server() -> None:
    from _ws_helpers import Receiver

    from dspex.sinks import websocket_client

    receiver = Receiver()
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        client = websocket_client(receiver.url)
        flow = Flow("nan-push")
        flow.source(iterable([record()])).sink(client)
        with anyio.fail_after(30):
            report = await flow.run(progress=False)
        tg.cancel_scope.cancel()
    assert report.items_out == 1
    (data,) = [m["data"] for m in receiver.messages if m["type"] == "record"]
    assert data == EXPECTED  # json.loads would have read NaN back as a float
