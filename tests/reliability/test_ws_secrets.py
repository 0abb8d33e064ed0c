"""No bearer token in the logs: a full WebSocket cycle captured at DEBUG.

Issue 12, defect 7: websockets' Sans-I/O protocols log the request line
(``GET /?token=…``) and every header (``Authorization: Bearer …``) at DEBUG,
on the server sink, the client sink, the source and ``open_connection``. Every
line that reaches a handler (``dspex.*``, ``websockets.*``, anything) must
carry ``[REDACTED]`` instead; so must error messages that name the URL.
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.parse
from typing import Any

import anyio
import pytest
from _poll import wait_until

from dspex import events as ev
from dspex._util._redact import RedactingLogger, redact
from dspex._ws._conn import open_connection
from dspex.errors import SinkError, SourceError
from dspex.sinks import websocket, websocket_client
from dspex.sources import websocket as websocket_source

pytestmark = pytest.mark.reliability


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) for record in caplog.records]  # with any traceback


async def _first(conn: Any) -> dict[str, Any]:
    with anyio.fail_after(10):
        text = await conn.recv()
    assert text is not None
    return dict(json.loads(text))


async def _client_cycle(url: str, token: str, errors: list[str]) -> None:
    """Header auth, query auth, a refused URL carrying the token."""
    by_header = await open_connection(url, token=token, connect_timeout=10)
    assert (await _first(by_header))["type"] == "hello"
    by_query = await open_connection(f"{url}?{urllib.parse.urlencode({'token': token})}", connect_timeout=10)
    assert (await _first(by_query))["type"] == "hello"
    await by_query.aclose()
    with pytest.raises(SinkError) as refused:
        await open_connection(f"{url}nowhere?token={token}", connect_timeout=10)
    errors.append(str(refused.value))
    await by_header.aclose()


async def _client_sink_cycle(url: str, token: str, errors: list[str]) -> None:
    pusher = websocket_client(url, token=token, acks=False, close_timeout=5.0)
    async with pusher:
        with anyio.fail_after(10):
            await pusher.connected.wait()
        await pusher.write([{"id": 1, "answer": "a"}])
        await pusher.write_event(ev.PredictionDone(outputs={"answer": "a"}, item_id="1"))
    assert pusher.statistics()["sent"] == 2
    lost = websocket_client(f"{url}nowhere?token={token}", token=token, close_timeout=1.0)
    async with lost:
        await wait_until(lambda: lost.last_error is not None)
    errors.extend([str(lost.last_error), lost.name])


async def _source_cycle(live: Any, token: str, errors: list[str]) -> list[Any]:
    source = websocket_source(live.url, token=token, replay=5)
    got: list[Any] = []

    async def read() -> None:
        async for record in source.records():
            got.append(record.data)  # noqa: PERF401 - a comprehension would lose them on cancellation

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        with anyio.fail_after(10):
            await live.server.wait_for_client()
        await live.write_event(ev.RunDone(report={}))
    with pytest.raises(SourceError) as refused:
        async for _ in websocket_source(f"{live.url}nowhere?token={token}", token=token).records():
            pass
    errors.append(str(refused.value))
    return got


async def test_no_token_in_debug_logs_or_errors(anyio_backend: str, caplog: pytest.LogCaptureFixture) -> None:
    token = secrets.token_urlsafe(16)
    caplog.set_level(logging.DEBUG)  # every logger: dspex.*, websockets.*, the rest
    errors: list[str] = []

    async def until_closed(conn: Any) -> None:
        with anyio.fail_after(10):
            while await conn.recv() is not None:
                pass

    # the task group outlives the sink: the watcher reads while the server closes it
    async with anyio.create_task_group() as tg, websocket(
        token=token, metrics_interval=None, close_timeout=2.0
    ) as live:
        await live.write([{"id": 0, "answer": "kept for replay"}])
        await _client_cycle(live.url, token, errors)
        await _client_sink_cycle(live.url, token, errors)
        got = await _source_cycle(live, token, errors)
        watcher = await open_connection(live.url, token=token, connect_timeout=10)
        await _first(watcher)
        tg.start_soon(until_closed, watcher)
    assert watcher.close_code == 1001  # the server closed the watcher on the way out
    assert got == [{"id": 0, "answer": "kept for replay"}]
    lines = _lines(caplog)
    leaked = [line for line in [*lines, *errors] if token in line]
    assert leaked == []
    # the lines that used to leak are there, redacted (so this test can fail)
    assert any("> Authorization: Bearer [REDACTED]" in line for line in lines)  # client side
    assert any("< Authorization: Bearer [REDACTED]" in line for line in lines)  # server side
    assert any("GET /?token=[REDACTED]" in line for line in lines)
    assert any("/nowhere?token=[REDACTED]" in e for e in errors)
    assert len(lines) > 50


def test_redacting_logger_formats_then_redacts(caplog: pytest.LogCaptureFixture) -> None:
    log = RedactingLogger(logging.getLogger("dspex.test.redact"), ["short"])
    with caplog.at_level(logging.DEBUG, logger="dspex.test.redact"):
        log.debug("> %s: %s", "Authorization", "Bearer short")
        log.info("GET /feed?replay=3&token=%s HTTP/1.1", "abc")
        log.warning("100%% of %s", "items")
        log.debug("odd %d", "args")  # a bad format string is shown, not raised
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "> Authorization: Bearer [REDACTED]",
        "GET /feed?replay=3&token=[REDACTED] HTTP/1.1",
        "100% of items",
        "odd %d args",
    ]
    assert redact("ws://h:1/?token=t&replay=2") == "ws://h:1/?token=[REDACTED]&replay=2"
