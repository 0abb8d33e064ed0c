"""dx.sources.websocket: records from a WebSocket feed (a dspex sink or any JSON server)."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from dspex import events as ev
from dspex.errors import ConfigError, SourceError
from dspex.sinks import websocket as websocket_sink
from dspex.sinks._ws_server import open_websocket_server
from dspex.sources import websocket

if TYPE_CHECKING:
    from dspex.sources import SourceRecord


async def _collect(source: Any, out: list[SourceRecord], skip: Any = None) -> None:
    async with aclosing(source.records(skip=skip)) as records:
        async for record in records:
            out.append(record)  # noqa: PERF401 - read while it fills


async def _wait_for_clients(server: Any, n: int = 1) -> None:
    with anyio.fail_after(10):
        await server.wait_for_client(n)


async def test_reads_final_records_from_a_dspex_sink_until_run_done() -> None:
    got: list[SourceRecord] = []
    async with websocket_sink(metrics_interval=None) as sink:
        await sink.write([{"id": "a", "answer": "early"}])  # before the source connects
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect, websocket(sink.url, replay=10, id_field="id"), got)
            await _wait_for_clients(sink.server)
            for n in range(3):
                await sink.write_event(ev.TokenDelta(text="x", item_id=str(n)))
                await sink.write_event(ev.PredictionDone(outputs={"answer": n}, item_id=str(n)))
                await sink.write([{"id": f"r{n}", "answer": n}])
            await sink.write_event(ev.RunDone(report={}))
            await sink.write([{"id": "late", "answer": "after run_done"}])
    assert [(r.key, r.data["answer"]) for r in got] == [("a", "early"), ("r0", 0), ("r1", 1), ("r2", 2)]
    assert all(r.error is None for r in got)


async def test_any_json_feed_prediction_outputs_and_bad_messages() -> None:
    got: list[SourceRecord] = []
    async with open_websocket_server(page=False) as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect, websocket(server.url, id_field="id"), got)
            await _wait_for_clients(server)
            for message in [
                {"id": 1, "text": "plain"},
                ev.TokenDelta(text="skip me", item_id="2").to_wire(),
                ev.PredictionDone(outputs={"id": 2, "answer": "out"}, item_id="2").to_wire(),
                {"type": "custom", "id": 3},
                {"no_id": True},
            ]:
                server.broadcast(json.dumps(message).encode(), 2)
            server.broadcast(b"{not json", 2)
            await anyio.lowlevel.checkpoint()
            await server.shutdown()  # the feed ends when the server closes
    assert [r.data for r in got[:3]] == [{"id": 1, "text": "plain"}, {"id": 2, "answer": "out"},
                                         {"type": "custom", "id": 3}]
    assert [r.key for r in got[:3]] == ["1", "2", "3"]
    missing, broken = got[3], got[4]
    assert isinstance(missing.error, SourceError)
    assert missing.error.field == "id"
    assert isinstance(broken.error, SourceError)
    assert "not JSON" in str(broken.error)
    assert broken.data == "{not json"
    assert broken.error.line == 7
    assert len(got) == 5


async def test_skip_drops_done_keys() -> None:
    got: list[SourceRecord] = []
    async with open_websocket_server(page=False) as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect, websocket(server.url, id_field="k"), got, lambda key: key in {"1", "3"})
            await _wait_for_clients(server)
            for k in range(5):
                server.broadcast(json.dumps({"k": k}).encode(), 2)
            await anyio.lowlevel.checkpoint()
            await server.shutdown()
    assert [r.key for r in got] == ["0", "2", "4"]


async def test_refused_connection_is_a_source_error() -> None:
    async with websocket_sink(token="t", metrics_interval=None) as sink:
        with pytest.raises(SourceError) as err:
            await _collect(websocket(sink.url), [])
        assert err.value.status == 401
        got: list[SourceRecord] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect, websocket(sink.url, token="t"), got)
            await _wait_for_clients(sink.server)
            await sink.write([{"ok": True}])
            await sink.write_event(ev.RunDone())
    assert [r.data for r in got] == [{"ok": True}]


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [(("http://x",), {}, "ws://"), (("ws://x",), {"replay": -2}, "replay"),
     (("ws://x",), {"reconnect": True}, "unknown option")],
)
def test_bad_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        websocket(*args, **kwargs)
