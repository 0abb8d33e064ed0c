"""The WebSocket sink against real clients on 127.0.0.1: wire format, auth, limits, replay."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from _poll import wait_until
from _ws_helpers import real_connect, run_without_suspending
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dspex import events as ev
from dspex._ws._conn import connect, open_connection
from dspex.errors import ConfigError, SinkError
from dspex.events_schema import wire_schema
from dspex.sinks import WebSocketSink, websocket

ALL_EVENTS: list[ev.Event] = [
    ev.TokenDelta(text="Par", item_id="7", node="qa", run="r1", seq=1),
    ev.FieldDelta(field="answer", text="Paris", item_id="7", seq=2),
    ev.FieldDone(field="answer", value="Paris", item_id="7", seq=3),
    ev.ToolCall(name="search", args={"q": "x"}, call_id="c1", item_id="7"),
    ev.ToolResult(name="search", result=["a"], call_id="c1", item_id="7"),
    ev.Retry(attempt=1, reason="429", delay_s=0.5, item_id="7"),
    ev.ValidationFailed(message="too long", field="answer", attempt=1, item_id="7"),
    ev.Usage(model="m", input_tokens=10, output_tokens=3, cost=0.001, item_id="7"),
    ev.PredictionDone(outputs={"answer": "Paris"}, prediction=object(), item_id="7", node="qa"),
    ev.ItemError(error_type="ParseError", message="bad", item_id="8"),
    ev.Metrics(values={"in_flight": 3}),
    ev.RunDone(report={"items_out": 1}),
]


def _sink(**kwargs: Any) -> WebSocketSink:
    kwargs.setdefault("metrics_interval", None)
    kwargs.setdefault("close_timeout", 2.0)
    return websocket(**kwargs)


async def _recv_json(conn: Any) -> dict[str, Any]:
    with anyio.fail_after(10):
        text = await conn.recv()
    assert text is not None, "connection closed early"
    return json.loads(text)


async def test_events_arrive_as_wire_json_in_order(anyio_backend: str) -> None:
    async with _sink() as sink, real_connect(anyio_backend, sink.url) as client:
        hello = await _recv_json(client)
        assert hello["type"] == "hello"
        assert hello["records"] is True
        for event in ALL_EVENTS:
            run_without_suspending(sink.write_event(event))
        received = [await _recv_json(client) for _ in ALL_EVENTS]
    assert received == [e.to_wire() for e in ALL_EVENTS]
    done = received[8]
    assert done["type"] == "prediction_done"
    assert done["outputs"] == {"answer": "Paris"}
    assert done["item_id"] == "7"
    assert "prediction" not in done
    assert [ev.event_from_wire(m) for m in received][:8] == ALL_EVENTS[:8]
    schema_types = set(wire_schema()["$defs"])
    assert {m["type"] for m in received} <= schema_types


async def test_records_are_sent_as_record_messages() -> None:
    async with _sink() as sink:
        conn = await open_connection(sink.url)
        await _recv_json(conn)
        await sink.write([{"id": 1, "answer": "a"}, {"q": "no id"}])
        first, second = await _recv_json(conn), await _recv_json(conn)
        await conn.aclose()
    assert first == {"type": "record", "data": {"id": 1, "answer": "a"}, "item_id": "1"}
    assert second == {"type": "record", "data": {"q": "no id"}}
    assert sink.statistics()["records"] == 2


async def test_bearer_token_is_required(anyio_backend: str) -> None:
    async with _sink(token="s3cret") as sink:
        for url, headers in [(sink.url, {}), (sink.url, {"Authorization": "Bearer nope"}),
                             (sink.url + "?token=nope", {}), (sink.url, {"Authorization": "Basic s3cret"})]:
            with pytest.raises(InvalidStatus) as info:
                async with real_connect(anyio_backend, url, additional_headers=headers):
                    pass
            assert info.value.response.status_code == 401
            assert info.value.response.headers["WWW-Authenticate"].startswith("Bearer")
        with pytest.raises(SinkError) as err:
            await open_connection(sink.url)
        assert err.value.status == 401
        for url, headers in [(sink.url, {"Authorization": "Bearer s3cret"}), (sink.url + "?token=s3cret", {})]:
            async with real_connect(anyio_backend, url, additional_headers=headers) as client:
                assert (await _recv_json(client))["type"] == "hello"
        assert sink.statistics()["refused"] == 5


async def test_origins_are_checked(anyio_backend: str) -> None:
    async with _sink(origins=["https://app.example"]) as sink:
        with pytest.raises(InvalidStatus) as info:
            async with real_connect(anyio_backend, sink.url, origin="https://evil.example"):
                pass
        assert info.value.response.status_code == 403
        own = f"http://127.0.0.1:{sink.server.port}"
        for origin in ["https://app.example", own, None]:
            async with real_connect(anyio_backend, sink.url, origin=origin) as client:
                assert (await _recv_json(client))["type"] == "hello"


async def test_oversize_client_message_closes_1009(anyio_backend: str) -> None:
    async with _sink(max_message_size=1024) as sink, real_connect(anyio_backend, sink.url) as client:
        await _recv_json(client)
        await client.send(json.dumps({"type": "ping", "pad": "x" * 2000}))
        with pytest.raises(ConnectionClosed) as info, anyio.fail_after(10):
            while True:
                await client.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1009


async def test_shutdown_delivers_queued_then_closes_1001(anyio_backend: str) -> None:
    got: list[dict[str, Any]] = []
    codes: list[tuple[int | None, str | None]] = []
    connected = anyio.Event()

    async def client(url: str) -> None:
        async with real_connect(anyio_backend, url) as conn:
            connected.set()
            got.extend([json.loads(m) async for m in conn])
            codes.append((conn.close_code, conn.close_reason))

    async with anyio.create_task_group() as tg:
        async with _sink() as sink:  # the sink is closed while the client still listens
            tg.start_soon(client, sink.url)
            with anyio.fail_after(10):
                await connected.wait()
            for n in range(20):
                await sink.write_event(ev.PredictionDone(outputs={"n": n}, item_id=str(n)))
    assert [m["outputs"]["n"] for m in got if m["type"] == "prediction_done"] == list(range(20))
    assert codes == [(1001, "server shutting down")]


async def test_late_joiners_replay_last_results() -> None:
    async with _sink(replay=5) as sink:
        for n in range(8):
            await sink.write_event(ev.TokenDelta(text="t", item_id=str(n)))
            await sink.write_event(ev.PredictionDone(outputs={"n": n}, item_id=str(n)))
        conn = await open_connection(sink.url + "?replay=3")
        hello = await _recv_json(conn)
        assert hello["replay_available"] == 5
        assert await _recv_json(conn) == {"type": "replay_begin", "count": 3}
        assert [(await _recv_json(conn))["item_id"] for _ in range(3)] == ["5", "6", "7"]
        assert await _recv_json(conn) == {"type": "replay_end", "count": 3}
        await conn.send(json.dumps({"type": "replay", "last": 50}))
        assert await _recv_json(conn) == {"type": "replay_begin", "count": 5}
        assert [(await _recv_json(conn))["outputs"]["n"] for _ in range(5)] == [3, 4, 5, 6, 7]
        assert (await _recv_json(conn))["type"] == "replay_end"
        await conn.aclose()


async def test_client_messages_ping_and_errors() -> None:
    async with _sink() as sink:
        conn = await open_connection(sink.url)
        await _recv_json(conn)
        await conn.send(json.dumps({"type": "ping", "id": 42}))
        assert await _recv_json(conn) == {"type": "pong", "id": 42}
        await conn.send("not json")
        assert "JSON objects" in (await _recv_json(conn))["message"]
        await conn.send(json.dumps({"type": "subscribe"}))
        assert "unknown message type 'subscribe'" in (await _recv_json(conn))["message"]
        await conn.send(json.dumps({"type": "replay", "last": -1}))
        assert "non-negative integer" in (await _recv_json(conn))["message"]
        conn.stream.protocol.send_binary(b"\x00\x01")
        await conn.stream.flush()
        assert "binary" in (await _recv_json(conn))["message"]
        await conn.aclose()


async def test_keepalive_drops_clients_that_never_answer_pings() -> None:
    async with _sink(ping_interval=0.05, ping_timeout=0.2) as sink:
        silent = await connect(sink.url)  # never reads, so never answers pings
        live = await open_connection(sink.url)
        received: list[str] = []

        async def read_all() -> None:  # reading answers the server's pings
            while (text := await live.recv()) is not None:
                received.append(text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_all)
            await wait_until(lambda: len(sink.server.sessions) == 2)
            await wait_until(lambda: len(sink.server.sessions) == 1)
            survivor = next(iter(sink.server.sessions))
            await wait_until(lambda: survivor.conn.bytes_sent > 200)  # many pings later
            assert len(sink.server.sessions) == 1
            await live.send(json.dumps({"type": "ping"}))
            await wait_until(lambda: any('"pong"' in t for t in received))
            await live.close()
        assert json.loads(received[0])["type"] == "hello"
        await silent.aclose()


async def test_live_page_and_schema_are_served_over_http() -> None:
    async with _sink(path="/feed") as sink, httpx.AsyncClient(base_url=sink.page_url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<meta name="dspex-ws-path" content="/feed">' in page.text
        assert (await http.get("/index.html")).text == page.text
        script = await http.get("/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "WebSocket" in script.text
        assert (await http.get("/style.css")).status_code == 200
        schema = (await http.get("/events.schema.json")).json()
        assert {"token_delta", "prediction_done", "hello", "replay"} <= set(schema["$defs"])
        assert (await http.get("/nope")).status_code == 404
        assert (await http.get("/feed")).status_code == 426  # the endpoint wants an upgrade
        assert sink.url.endswith("/feed")
        with pytest.raises(SinkError):
            await open_connection(sink.url.replace("/feed", "/other"))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"path": "feed"}, "must start with '/'"), ({"port": 70000}, "0..65535"),
     ({"replay": -1}, "replay"), ({"queue_size": 0}, "queue_size"),
     ({"max_message_size": 0}, "max_message_size"), ({"bogus": 1}, "unknown option")],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        websocket(**kwargs)


def test_url_before_open_is_a_clear_error() -> None:
    with pytest.raises(SinkError, match="not running"):
        _ = websocket().url
