"""One table of faults, run through every stream under the pool's one exchange.

Each case scripts a raw HTTP server (in a thread, so it serves any loop) and
runs the same requests three ways: a sync call with the main loop to itself
(the blocking socket), and async calls on asyncio (``_http/_aio.py``'s
streams) and on trio (anyio's). All three must raise the same typed error with
the same words, and open the same number of connections.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest

from dspex._http._pool import ConnectionPool
from dspex._http._transport import Timeouts
from dspex._util._sync import run_sync
from dspex.errors import LMTimeoutError, LMTransportError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("quiet_main_loop")]

PATHS = ["blocking", "asyncio", "trio"]
TIMEOUTS = Timeouts(connect=5, read=0.3, write=0.3)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


GZ = gzip.compress(b"zipped " * 40)

# Per connection, what the server does in turn: bytes (read a request, send them), or
# "close" (close now), "reset" (read a request, then RST), "hang" (send nothing more until the end).
Script = list[bytes | str]


@dataclass
class Case:
    scripts: list[Script] | None  # None: nothing listens on the port
    error: type[Exception] | None = None
    match: str = ""
    requests: int = 1
    upload: int = 0  # bytes of request body (a POST), else a GET
    connections: int = 1
    body: bytes = b"ok"


CASES = {
    "reset before any byte": Case([["reset"]], LMTransportError, "connection reset by peer"),
    "truncated content-length body": Case(
        [[b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", "close"]],
        LMTransportError, "before the response was complete"),
    "truncated chunked body": Case(
        [[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", "close"]],
        LMTransportError, "before the response was complete"),
    "malformed chunk size": Case(
        [[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"]],
        LMTransportError, "malformed HTTP response"),
    "not HTTP at all": Case([[b"NOT HTTP AT ALL\r\n\r\n", "close"]], LMTransportError, "malformed HTTP response"),
    "stall before the head": Case([["hang"]], LMTimeoutError, "read timeout"),
    "stall while the request is sent": Case([["hang"]], LMTimeoutError, "write timeout", upload=16 << 20),
    "stall mid-body": Case(
        [[b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf", "hang"]], LMTimeoutError, "read timeout"),
    "corrupt gzip body": Case(
        [[b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\njunk"]],
        LMTransportError, "invalid gzip body"),
    "connection refused": Case(None, LMTransportError, "could not connect", connections=0),
    "stale keep-alive connection is retried": Case([[ok(b"ok"), "close"], [ok(b"ok")]], requests=2, connections=2),
    "failure after response bytes is not retried": Case(
        [[ok(b"ok"), b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nok", "close"]],
        LMTransportError, "before the response was complete", requests=2),
    "connection: close is honoured": Case(
        [[ok(b"ok", b"connection: close\r\n")], [ok(b"ok")]], requests=2, connections=2),
    "chunked gzip body is decoded": Case(
        [[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n"
          + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (GZ[:7], GZ[7:])) + b"0\r\n\r\n"]],
        body=b"zipped " * 40),
}


@dataclass
class ScriptedServer:
    """Serve ``scripts`` (one per connection, in order) from a thread, on 127.0.0.1."""

    scripts: list[Script]
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1/x"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            conn, _ = self.listener.accept()
            with conn:
                self._run(conn, script)

    def _run(self, conn: socket.socket, script: Script) -> None:
        conn.settimeout(10)
        buf = b""
        for step in script:
            if step == "close":
                return
            if step == "hang":
                self.stop.wait(10)
                return
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            buf = buf.partition(b"\r\n\r\n")[2]  # the client sends GETs: no body
            if step == "reset":  # SO_LINGER 0: close() sends an RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            assert isinstance(step, bytes)
            conn.sendall(step)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.listener.close()


def run_path(path: str, go: Callable[[], Awaitable[None]]) -> None:
    """Run ``go`` as a sync call alone on the main loop, or as a task on a fresh loop."""
    if path == "blocking":
        run_sync(go, reuse_loop=True)
    else:
        anyio.run(go, backend=path)


def refused_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return f"http://127.0.0.1:{listener.getsockname()[1]}/v1/x"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list(CASES))
def test_fault_table(name: str, path: str) -> None:
    case = CASES[name]
    server = ScriptedServer(case.scripts) if case.scripts is not None else None
    url = server.url if server is not None else refused_url()
    pool = ConnectionPool()
    bodies: list[bytes] = []

    async def go() -> None:
        for _ in range(case.requests):
            if case.upload:  # more than the socket buffers take: sending must wait
                resp = await pool.request("POST", url, headers={}, body=b"x" * case.upload, timeouts=TIMEOUTS)
            else:
                resp = await pool.request("GET", url, headers={}, timeouts=TIMEOUTS)
            bodies.append(await resp.aread())

    try:
        if case.error is None:
            run_path(path, go)
            assert bodies == [case.body] * case.requests
        else:
            with pytest.raises(case.error, match=case.match):
                run_path(path, go)
            assert len(bodies) == case.requests - 1
    finally:
        if server is not None:
            server.close()
    assert pool.connections_opened == case.connections
    # the path really was the one named: blocking sockets only for the sync call
    assert pool._blocking.opened == (case.connections if path == "blocking" else 0)
