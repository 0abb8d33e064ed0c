"""The pool's blocking path: a main-thread sync call with the loop to itself."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex as dx
from dspex._http._pool import ConnectionPool
from dspex._http._transport import HTTPResponse, Timeouts
from dspex._util._sync import run_sync
from dspex.errors import LMTimeoutError, LMTransportError
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from collections.abc import Iterator

CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
HEADERS = {"Content-Type": "application/json"}

pytestmark = pytest.mark.usefixtures("quiet_main_loop")


def sync_request(pool: ConnectionPool, url: str, **kw: Any) -> HTTPResponse:
    async def go() -> HTTPResponse:
        return await pool.request("POST", url + "/v1/chat/completions", headers=HEADERS, body=CHAT, **kw)

    return run_sync(go, reuse_loop=True)


def test_sequential_sync_requests_share_one_blocking_connection() -> None:
    pool = ConnectionPool()
    with FakeLLMServer() as srv:
        for _ in range(3):
            assert sync_request(pool, srv.url).status == 200
        assert srv.stats.requests == 3
        assert srv.stats.connections_opened == 1
    assert pool._blocking.opened == 1
    assert pool.connections_opened == 1


def test_a_sync_call_that_fans_out_uses_the_asyncio_connections() -> None:
    pool = ConnectionPool()

    async def two() -> list[int]:
        statuses: list[int] = []

        async def one() -> None:
            resp = await pool.request("POST", url + "/v1/chat/completions", headers=HEADERS, body=CHAT)
            statuses.append(resp.status)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
        return statuses

    with FakeLLMServer(latency_ms=20) as srv:
        url = srv.url
        assert run_sync(two, reuse_loop=True) == [200, 200]
        assert srv.stats.connections_opened == 2  # both in flight at once
    assert pool._blocking.opened == 0


def test_stale_blocking_connection_is_retried_once_on_a_fresh_one() -> None:
    pool = ConnectionPool()
    with FakeLLMServer() as srv:
        sync_request(pool, srv.url)
        assert srv.drop_idle_connections() == 1
        assert sync_request(pool, srv.url).status == 200
        assert srv.stats.requests == 2
        assert srv.stats.connections_opened == 2


def test_a_forked_child_drops_the_parents_blocking_connections() -> None:
    pool = ConnectionPool()
    with FakeLLMServer() as srv:
        sync_request(pool, srv.url)
        assert sum(len(h.idle) for h in pool._blocking.state.hosts.values()) == 1
        pid = os.fork()
        if pid == 0:  # the child: its copy of the idle socket is closed, the list empty
            os._exit(0 if all(not h.idle for h in pool._blocking.state.hosts.values()) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sync_request(pool, srv.url).status == 200  # the parent's connection is still open
        assert srv.stats.connections_opened == 1


def test_failure_after_response_bytes_is_not_retried() -> None:
    pool = ConnectionPool()
    with FakeLLMServer() as srv:
        sync_request(pool, srv.url)
        srv.p_truncate = 1.0
        with pytest.raises(LMTransportError, match="before the response was complete"):
            sync_request(pool, srv.url)
        assert srv.stats.requests == 2


def test_read_timeout_is_an_lm_timeout_error() -> None:
    pool = ConnectionPool()
    with FakeLLMServer(p_hang=1.0) as srv:
        with pytest.raises(LMTimeoutError, match="read timeout"):
            sync_request(pool, srv.url, timeouts=Timeouts(read=0.1))


def test_connection_refused_is_a_transport_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(LMTransportError, match="could not connect"):
        sync_request(ConnectionPool(), f"http://127.0.0.1:{port}")


def test_ctrl_c_in_a_blocking_read_closes_that_connection() -> None:
    pool = ConnectionPool()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with FakeLLMServer(p_hang=1.0) as srv:
        previous = signal.signal(signal.SIGALRM, interrupt)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(KeyboardInterrupt):
                sync_request(pool, srv.url)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        srv.p_hang = 0.0
        assert sync_request(pool, srv.url).status == 200
        assert pool._blocking.opened == 2  # the interrupted socket was not reused


class ThreadServer:
    """Scripted raw replies on one connection, served from a thread."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            buf = b""
            while self.replies:
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(65536)
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                conn.sendall(self.replies.pop(0))

    def close(self) -> None:
        self.thread.join(10)
        self.listener.close()


@contextmanager
def thread_server(replies: list[bytes]) -> Iterator[ThreadServer]:
    server = ThreadServer(replies)
    try:
        yield server
    finally:
        server.close()


def test_gzip_and_chunked_bodies_are_decoded() -> None:
    packed = gzip.compress(b'{"hello": "world"}' * 50)
    plain = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(packed), packed)
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (packed[:10], packed[10:])) + b"0\r\n\r\n")
    pool = ConnectionPool()
    with thread_server([plain, chunked]) as srv:
        for _ in range(2):
            assert run_sync(lambda: _read(pool, srv.url), reuse_loop=True) == b'{"hello": "world"}' * 50
    assert pool._blocking.opened == 1


async def _read(pool: ConnectionPool, url: str) -> bytes:
    return await (await pool.request("GET", url, headers={}, timeouts=Timeouts(read=5))).aread()


def test_sync_predict_calls_use_the_blocking_path() -> None:
    with FakeLLMServer() as srv:
        lm = dx.LM("openai/fake", api_base=srv.url + "/v1", api_key="sk-test", cache=False)
        predict = dx.Predict("question -> answer")
        assert all(predict(question=f"q{i}", lm=lm).answer for i in range(3))
        pool = lm._endpoint.transport
        assert isinstance(pool, ConnectionPool)
        assert pool._blocking.opened >= 1
        assert srv.stats.requests == 3
