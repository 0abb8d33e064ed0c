"""Default exposure of the WebSocket feed: same-origin by default, tokens from the CLI.

Issue 12, defect 2: browsers apply no CORS to WebSockets, so without an
``Origin`` check any page the user visits could read the feed. The sink
refuses foreign origins unless listed; ``dspex serve`` and ``dspex demo
--serve`` generate a bearer token and print the page URL carrying it, unless
``--no-auth``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from click.testing import CliRunner

from dspex._ws._conn import WebSocketConnection, connect, open_connection
from dspex.cli._serve import serve_command
from dspex.errors import SinkError
from dspex.sinks import websocket
from dspex.sinks._ws_http import own_origins

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.reliability


async def _hello(conn: WebSocketConnection) -> dict[str, Any]:
    with anyio.fail_after(10):
        text = await conn.recv()
    assert text is not None
    message = json.loads(text)
    await conn.aclose()
    return dict(message)


async def _status(url: str, origin: str | None, **kwargs: Any) -> int:
    """Open a connection with ``origin``; return 101 or the refusal's HTTP status."""
    try:
        conn = await connect(url, origin=origin, connect_timeout=10, **kwargs)
    except SinkError as exc:
        if exc.status is None:  # a refusal always carries its HTTP status
            raise
        return int(exc.status)
    await WebSocketConnection(conn).aclose()
    return 101


async def test_foreign_origins_are_refused_by_default(anyio_backend: str) -> None:
    async with websocket(metrics_interval=None) as live:
        port = live.server.port
        allowed = [None, f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"]
        refused = ["https://evil.example", f"http://evil.example:{port}", f"http://127.0.0.1:{port + 1}",
                   "null", f"https://127.0.0.1:{port}x"]
        assert [await _status(live.url, origin) for origin in allowed] == [101] * len(allowed)
        assert [await _status(live.url, origin) for origin in refused] == [403] * len(refused)
        assert live.statistics()["refused"] == len(refused)


async def test_listed_and_wildcard_origins(anyio_backend: str) -> None:
    async with websocket(metrics_interval=None, origins=["https://app.example"]) as live:
        assert await _status(live.url, "https://app.example") == 101
        assert await _status(live.url, "https://other.example") == 403
    async with websocket(metrics_interval=None, origins=["*"]) as live:
        assert await _status(live.url, "https://other.example") == 101


async def _raw_upgrade(port: int, host: str, origin: str) -> str:
    """Send a hand-written upgrade request (any Host header); return the status line."""
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    )
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        await sock.send(request.encode())
        with anyio.fail_after(10):
            data = b""
            while b"\r\n" not in data:
                data += await sock.receive()
    return data.split(b"\r\n", 1)[0].decode()


async def test_dns_rebinding_is_refused_but_an_ip_literal_host_is_own(anyio_backend: str) -> None:
    async with websocket(metrics_interval=None, host="127.0.0.1") as live:
        port = live.server.port
        # a rebinding page: its origin matches the Host header, but it is a DNS name
        rebound = await _raw_upgrade(port, f"evil.example:{port}", f"http://evil.example:{port}")
        # the page opened at an IP address the server answers on: origin == Host, an IP literal
        literal = await _raw_upgrade(port, f"10.9.8.7:{port}", f"http://10.9.8.7:{port}")
        spoofed = await _raw_upgrade(port, f"10.9.8.7:{port}", f"http://10.9.8.6:{port}")
    assert rebound.startswith("HTTP/1.1 403")
    assert literal.startswith("HTTP/1.1 101")
    assert spoofed.startswith("HTTP/1.1 403")


FLOW_FILE = '''
import os
from pathlib import Path

import anyio
from dspex.flows import Flow

GO = Path(os.environ["DSPEX_TEST_GO"])


async def items():
    with anyio.fail_after(60):  # wait (bounded) until the test has checked the door
        while not GO.exists():
            await anyio.sleep(0.02)
    for i in range(3):
        yield {"id": i}


flow = Flow("served")
flow.source(items()).map(lambda r: {"id": r["id"], "x": 10 * r["id"]})
'''


class _Child:
    """A ``python -m dspex ...`` child process whose stdout is read line by line."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.buffer = b""
        self.seen: list[str] = []

    async def line_with(self, marker: str, limit_s: float = 60) -> str:
        with anyio.fail_after(limit_s):
            while True:
                while b"\n" not in self.buffer:
                    chunk = await self.process.stdout.receive()
                    self.buffer += chunk
                raw, _, self.buffer = self.buffer.partition(b"\n")
                line = raw.decode().strip()
                self.seen.append(line)
                if marker in line:
                    return line


async def _run_child(args: list[str], env: dict[str, str], check: Any) -> tuple[int, list[str], str]:
    process = await anyio.open_process(
        [sys.executable, "-m", "dspex", *args], env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    child = _Child(process)
    try:
        await check(child)
        with anyio.fail_after(60):
            code = await process.wait()
        errors = b""
        assert process.stderr is not None
        with anyio.move_on_after(5):
            async for chunk in process.stderr:
                errors += chunk
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
    return code, child.seen, errors.decode(errors="replace")


def _page(line: str) -> tuple[str, str | None]:
    url = line.split("live page: ", 1)[1].split()[0]
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("token", [None])[0]
    return url, token


async def _read_records(conn: WebSocketConnection) -> list[dict[str, Any]]:
    records = []
    with anyio.fail_after(60):
        while (text := await conn.recv()) is not None:
            message = json.loads(text)
            if message["type"] == "record":
                records.append(message["data"])
    return records


async def test_serve_generates_a_token_and_prints_the_page_url(anyio_backend: str, tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW_FILE)
    go = tmp_path / "go"
    records: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}

    async def check(child: _Child) -> None:
        _, token = _page(await child.line_with("live page: "))
        feed = (await child.line_with("WebSocket feed: ")).split("WebSocket feed: ", 1)[1]
        seen["token"] = token
        with pytest.raises(SinkError) as refused:
            await open_connection(feed, connect_timeout=10)
        seen["without"] = refused.value.status
        with pytest.raises(SinkError) as wrong:
            await open_connection(feed, token="not-the-token", connect_timeout=10)
        seen["wrong"] = wrong.value.status
        # the way the live page does it: the token from its URL, in the WebSocket query
        conn = await open_connection(f"{feed}?{urllib.parse.urlencode({'token': token})}", connect_timeout=10)
        go.write_text("go")
        records.extend(await _read_records(conn))

    code, _, errors = await _run_child(
        # --linger 0: the feed closes when the run ends (else it stays 30 s for the connected reader)
        ["serve", str(tmp_path / "flow.py"), "--port", "0", "--linger", "0"], {"DSPEX_TEST_GO": str(go)}, check
    )
    assert code == 0, errors
    assert seen["without"] == 401
    assert seen["wrong"] == 401
    assert seen["token"] is not None
    assert len(seen["token"]) >= 20
    assert sorted(r["x"] for r in records) == [0, 10, 20]


async def test_serve_no_auth_serves_without_a_token(anyio_backend: str, tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW_FILE)
    go = tmp_path / "go"
    records: list[dict[str, Any]] = []
    pages: list[str] = []

    async def check(child: _Child) -> None:
        url, token = _page(await child.line_with("live page: "))
        pages.append(url)
        assert token is None
        feed = (await child.line_with("WebSocket feed: ")).split("WebSocket feed: ", 1)[1]
        conn = await open_connection(feed, connect_timeout=10)
        go.write_text("go")
        records.extend(await _read_records(conn))

    code, _, errors = await _run_child(
        ["serve", str(tmp_path / "flow.py"), "--port", "0", "--no-auth", "--linger", "0"],
        {"DSPEX_TEST_GO": str(go)}, check,
    )
    assert code == 0, errors
    assert "?token=" not in pages[0]
    assert "--no-auth" in errors
    assert len(records) == 3


def test_no_auth_and_a_token_contradict(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW_FILE)
    result = CliRunner().invoke(serve_command, [str(tmp_path / "flow.py"), "--no-auth", "--token", "abcd1234"])
    assert result.exit_code == 2
    assert "contradict" in result.output


@pytest.mark.slow
async def test_demo_serve_needs_the_printed_token(anyio_backend: str, tmp_path: Path) -> None:
    records: list[dict[str, Any]] = []
    statuses: list[int | None] = []

    async def check(child: _Child) -> None:
        url, token = _page(await child.line_with("live page: "))
        parts = urllib.parse.urlsplit(url)
        feed = f"ws://{parts.netloc}/"
        with pytest.raises(SinkError) as refused:
            await open_connection(feed, connect_timeout=10)
        statuses.append(refused.value.status)
        assert token is not None
        conn = await open_connection(f"{feed}?token={token}", connect_timeout=10)  # the run starts now
        records.extend(await _read_records(conn))

    args = ["demo", "--serve", "-n", "2", "--port", "0", "--out", str(tmp_path / "answers.jsonl")]
    code, _, errors = await _run_child(args, {}, check)
    assert code == 0, errors
    assert statuses == [401]
    assert len(records) == 2
    assert all(r["answer"] == r["expected"] for r in records)


def test_own_origins_by_bind_address() -> None:
    assert own_origins("192.168.1.5", 8765) == {("192.168.1.5", 8765)}  # a LAN address: only itself
    for wildcard in ("0.0.0.0", "::", "127.0.0.1", "localhost", "[::1]"):
        assert {("localhost", 80), ("127.0.0.1", 80), ("::1", 80)} <= own_origins(wildcard, 80)
    assert ("evil.example", 80) not in own_origins("0.0.0.0", 80)
