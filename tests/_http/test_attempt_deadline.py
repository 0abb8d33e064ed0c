"""``Timeouts.attempt`` on the lean pool: the pool ends the whole call itself.

The pool times every wait of a request already (the stream's deadline on
asyncio and the blocking path, the exchange's cancel scope on trio), so it
caps each one at the attempt's deadline and the LM adds no cancel scope of its
own (``Transport.bounds_attempt``). A transport that does not bound the
attempt still gets the LM's scope. The server here drips its answer: every
read is quick, only the whole is slow.
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from _poll import wait_until

import dspex as dx
from dspex._http._pool import ConnectionPool
from dspex._http._transport import HTTPResponse, Timeouts, Transport
from dspex._util._sync import run_sync
from dspex.errors import LMTimeoutError
from dspex.lm import _engine
from dspex.testing import FakeLLMServer, MockResponse, MockTransport

if TYPE_CHECKING:
    from collections.abc import Iterator

CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
HEADERS = {"Content-Type": "application/json"}
ANSWER = json.dumps({
    "id": "x", "object": "chat.completion", "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "[[ ## answer ## ]]\nfour\n\n[[ ## completed ## ]]"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}).encode()
PIECES = 40
PIECE_S = 0.04  # the whole answer takes ~1.6 s, eight times the attempt; every read waits 40 ms
ATTEMPT_MSG = r"0\.2s timeout per attempt \(Timeouts\.attempt\)"


class Dripper:
    """Answer every request in ``PIECES`` pieces ``PIECE_S`` apart (a thread per connection, 127.0.0.1).

    Counts the answers it sent whole and those it could not finish because the
    client hung up (``cut``): what the client's deadline did, without a clock.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # closing a socket does not wake an accept() in another thread
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        self.answered = 0
        self.cut = 0

    def _answer(self, conn: socket.socket) -> bool:
        """Send one answer piece by piece; False once the client hung up or the server stops."""
        reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(
            ANSWER) + ANSWER
        step = len(reply) // PIECES + 1
        for i in range(0, len(reply), step):
            if self.stop.wait(PIECE_S):
                return False
            try:
                conn.sendall(reply[i:i + step])
            except OSError:
                self.cut += 1
                return False
        self.answered += 1
        return True

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            buf = b""
            try:
                while not self.stop.is_set():
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length")))
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    buf = rest[length:]
                    if not self._answer(conn):
                        return
            except OSError:
                return

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()


@contextmanager
def dripping_server() -> Iterator[Dripper]:
    server = Dripper()
    thread = threading.Thread(target=server._accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(5)
        server.listener.close()


async def _post(pool: ConnectionPool, url: str, timeouts: Timeouts) -> HTTPResponse:
    return await pool.request("POST", url + "/v1/chat/completions", headers=HEADERS, body=CHAT,
                              timeouts=timeouts)


async def test_the_pool_ends_a_dripping_answer_at_the_attempt_deadline() -> None:
    pool = ConnectionPool()
    with dripping_server() as srv:
        with anyio.fail_after(10), pytest.raises(LMTimeoutError, match=ATTEMPT_MSG):
            await _post(pool, srv.url, Timeouts(read=5, attempt=0.2))
        await wait_until(lambda: srv.cut == 1)  # the client hung up mid-answer
        # without the attempt deadline the same answer arrives whole: the cap is what cut it
        resp = await _post(pool, srv.url, Timeouts(read=5, attempt=None))
        assert json.loads(await resp.aread())["usage"]["total_tokens"] == 7
        await wait_until(lambda: srv.answered == 1)  # the server thread counts after its last send
        assert srv.cut == 1
        await pool.aclose()


@pytest.mark.usefixtures("quiet_main_loop")
def test_the_blocking_path_ends_at_the_attempt_deadline_too() -> None:
    """A sync call alone on its loop reads a blocking socket, which no cancel scope can interrupt."""
    pool = ConnectionPool()
    with dripping_server() as srv:
        with pytest.raises(LMTimeoutError, match=ATTEMPT_MSG):
            run_sync(lambda: _post(pool, srv.url, Timeouts(read=5, attempt=0.2)), reuse_loop=True)
        anyio.run(wait_until, lambda: srv.cut == 1)
        assert srv.answered == 0
    assert pool._blocking.opened == 1  # it really took the blocking path


async def test_waiting_for_a_connection_slot_counts_toward_the_attempt() -> None:
    pool = ConnectionPool(max_connections_per_host=1)
    async with FakeLLMServer(latency_ms=1000) as srv:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_post, pool, srv.url, Timeouts())
            await wait_until(lambda: srv.stats.requests == 1)  # the one slot is taken
            with anyio.fail_after(10), pytest.raises(LMTimeoutError, match=ATTEMPT_MSG):
                await _post(pool, srv.url, Timeouts(pool=5, attempt=0.2))
            tg.cancel_scope.cancel()
        assert srv.stats.requests == 1  # the second request never got a connection
        await pool.aclose()


async def test_an_lm_on_the_pool_names_its_model_and_adds_no_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scope(*args: Any) -> None:
        raise AssertionError("the pool bounds the attempt; the LM must not add a cancel scope")

    monkeypatch.setattr(_engine, "_Within", no_scope)
    with dripping_server() as srv:
        lm = dx.LM("openai/m", api_base=srv.url + "/v1", api_key="sk-test-0000", cache=False, num_retries=0,
                   timeout=Timeouts(read=5, attempt=0.2))
        assert lm.endpoint.transport.bounds_attempt
        with anyio.fail_after(10), pytest.raises(LMTimeoutError, match=ATTEMPT_MSG) as info:
            await lm.acall("hi")
        await lm.aclose()
        assert srv.answered == 0
    assert (info.value.model, info.value.provider) == ("m", "openai")


async def test_a_transport_that_does_not_bound_the_attempt_gets_the_lms_scope() -> None:
    async def slow(request: object) -> MockResponse:
        await anyio.sleep(30)
        raise AssertionError("the attempt deadline should have cut this short")

    transport = MockTransport(slow)
    assert not transport.bounds_attempt
    assert not Transport.bounds_attempt  # third-party transports: the LM keeps bounding them
    lm = dx.LM("openai/m", api_key="sk-test-0000", transport=transport, cache=False, num_retries=0,
               timeout=Timeouts(read=5, attempt=0.2))
    # the guard would raise TimeoutError; the attempt's scope raises LMTimeoutError naming Timeouts.attempt
    with anyio.fail_after(10), pytest.raises(LMTimeoutError, match=ATTEMPT_MSG):
        await lm.acall("hi")
