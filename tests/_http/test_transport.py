"""The lean keep-alive pool: reuse, limits, expiry, bodies, retries, cancellation."""

from __future__ import annotations

import gzip
import json
import shutil
import ssl
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from _poll import wait_until
from anyio.streams.tls import TLSListener

from dspex._http import _h1, _parsers
from dspex._http._pool import ConnectionPool
from dspex._http._sse import SSEDecoder
from dspex._http._transport import Timeouts
from dspex.errors import ConfigError, LMTimeoutError, LMTransportError
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import SocketStream

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
BODY = json.dumps(CHAT).encode()
HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(params=["httptools", "h11"])
def parser(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def chat(pool: ConnectionPool, url: str, **kw: object) -> dict[str, object]:
    url += "/v1/chat/completions"
    resp = await pool.request(
        "POST", url, headers=HEADERS, body=BODY, **kw  # type: ignore[arg-type]
    )
    assert resp.status == 200
    return json.loads(await resp.aread())  # type: ignore[no-any-return]


# -- a scripted raw HTTP server ------------------------------------------------------


class RawServer:
    """Replies with scripted raw bytes, one script entry per request received."""

    def __init__(self, replies: list[bytes | Callable[[bytes], bytes]], close_after: bool = False):
        self.replies = replies
        self.close_after = close_after
        self.heads: list[bytes] = []
        self.connections = 0
        self.url = ""

    async def _read_request(self, stream: SocketStream, buf: bytes) -> tuple[bytes, bytes]:
        while b"\r\n\r\n" not in buf:
            buf += await stream.receive()
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += await stream.receive()
        return head, rest[length:]

    async def handle(self, stream: SocketStream) -> None:
        self.connections += 1
        buf = b""
        async with stream:
            try:
                while self.replies:
                    head, buf = await self._read_request(stream, buf)
                    self.heads.append(head)
                    reply = self.replies.pop(0)
                    await stream.send(reply(head) if callable(reply) else reply)
                    if self.close_after:
                        return
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass


@asynccontextmanager
async def raw_server(
    replies: list[bytes | Callable[[bytes], bytes]], close_after: bool = False
) -> AsyncIterator[RawServer]:
    server = RawServer(replies, close_after)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        server.url = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, server.handle)
            yield server
            tg.cancel_scope.cancel()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


def chunked(*parts: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{extra}\r\n".encode()
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


# -- reuse, limits, expiry -----------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(parser: str) -> None:
    pool = ConnectionPool(parser=parser)
    async with FakeLLMServer() as srv:
        first = await chat(pool, srv.url)
        for _ in range(4):
            assert await chat(pool, srv.url) == first
        assert srv.stats.connections_opened == 1
        assert srv.stats.requests == 5
        assert pool.connections_opened == 1
        await pool.aclose()
        await wait_until(lambda: srv.stats.connections_closed == 1)


async def test_concurrency_is_capped_per_host() -> None:
    pool = ConnectionPool(max_connections_per_host=2)
    async with FakeLLMServer(latency_ms=30) as srv:
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(chat, pool, srv.url)
        assert srv.stats.requests == 6
        assert srv.stats.connections_opened == 2
        await pool.aclose()


async def test_pool_timeout_when_all_slots_are_busy() -> None:
    pool = ConnectionPool(max_connections_per_host=1)
    async with FakeLLMServer(latency_ms=400) as srv:
        async with anyio.create_task_group() as tg:
            tg.start_soon(chat, pool, srv.url)
            await anyio.sleep(0.05)
            with pytest.raises(LMTimeoutError, match="pool timeout"):
                await chat(pool, srv.url, timeouts=Timeouts(pool=0.05))
        await pool.aclose()


async def test_idle_connections_expire() -> None:
    pool = ConnectionPool(keepalive_expiry=0.05)
    async with FakeLLMServer() as srv:
        await chat(pool, srv.url)
        await anyio.sleep(0.15)
        await chat(pool, srv.url)
        assert srv.stats.connections_opened == 2
        await wait_until(lambda: srv.stats.connections_closed >= 1)
        await pool.aclose()


async def test_server_keepalive_timeout_hint_is_respected() -> None:
    replies: list[bytes | Callable[[bytes], bytes]] = [
        ok(b"a", "keep-alive: timeout=1\r\n"),
        ok(b"b"),
    ]
    async with raw_server(replies) as srv:
        pool = ConnectionPool()
        assert (await pool.request("GET", srv.url, headers={})).status == 200
        # timeout=1 leaves no safe margin, so the connection was not kept
        assert await (await pool.request("GET", srv.url, headers={})).aread() == b"b"
        assert srv.connections == 2


async def test_connection_close_header_is_honoured() -> None:
    async with raw_server([ok(b"x", "connection: close\r\n"), ok(b"y")], close_after=True) as srv:
        pool = ConnectionPool()
        assert await (await pool.request("GET", srv.url, headers={})).aread() == b"x"
        assert await (await pool.request("GET", srv.url, headers={})).aread() == b"y"
        assert srv.connections == 2


# -- bodies ------------------------------------------------------------------------------


async def test_content_length_and_chunked_bodies_on_one_connection(parser: str) -> None:
    replies: list[bytes | Callable[[bytes], bytes]] = [
        ok(b'{"a": 1}'),
        chunked(b"hel", b"lo ", b"world"),
        ok(b""),
    ]
    async with raw_server(replies) as srv:
        pool = ConnectionPool(parser=parser)
        resp = await pool.request("POST", srv.url, headers={}, body=b"{}")
        assert await resp.aread() == b'{"a": 1}'
        async with pool.stream("GET", srv.url + "/s", headers={}) as resp:
            assert b"".join([c async for c in resp.aiter_bytes()]) == b"hello world"
        resp = await pool.request("GET", srv.url, headers={})
        assert await resp.aread() == b""
        assert srv.connections == 1


async def test_chunked_body_is_reassembled(parser: str) -> None:
    async with raw_server([chunked(b"hel", b"lo ", b"world")]) as srv:
        pool = ConnectionPool(parser=parser)
        resp = await pool.request("GET", srv.url, headers={})
        assert await resp.aread() == b"hello world"


async def test_body_until_eof_is_read_and_not_reused(parser: str) -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it"
    async with raw_server([reply], close_after=True) as srv:
        pool = ConnectionPool(parser=parser)
        resp = await pool.request("GET", srv.url, headers={})
        assert await resp.aread() == b"all of it"
        assert resp.header("Content-Type") == "text/plain"


async def test_request_head_is_well_formed() -> None:
    async with raw_server([ok(b"")]) as srv:
        pool = ConnectionPool()
        await pool.request("POST", srv.url + "/v1/x?y=1", headers={"X-Key": "k"}, body=b"abc")
        head = srv.heads[0].decode()
        lines = head.split("\r\n")
        assert lines[0] == "POST /v1/x?y=1 HTTP/1.1"
        assert f"Host: {srv.url.removeprefix('http://')}" in lines
        assert "X-Key: k" in lines
        assert "Content-Length: 3" in lines
        assert "Accept-Encoding: identity" in lines


async def test_gzip_body_is_decoded_anyway(parser: str) -> None:
    packed = gzip.compress(b'{"hello": "world"}' * 50)
    replies: list[bytes | Callable[[bytes], bytes]] = [
        ok(packed, "content-encoding: gzip\r\n"),
        chunked(packed[:10], packed[10:], extra="content-encoding: gzip\r\n"),
    ]
    async with raw_server(replies) as srv:
        pool = ConnectionPool(parser=parser)
        resp = await pool.request("GET", srv.url, headers={})
        assert await resp.aread() == b'{"hello": "world"}' * 50
        async with pool.stream("GET", srv.url, headers={}) as resp:
            assert await resp.aread() == b'{"hello": "world"}' * 50


async def test_sse_stream_arrives_in_pieces(parser: str) -> None:
    pool = ConnectionPool(parser=parser)
    body = json.dumps({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    async with FakeLLMServer(token_delay_ms=1) as srv:
        url = srv.url + "/v1/chat/completions"
        async with pool.stream("POST", url, headers=HEADERS, body=body.encode()) as resp:
            assert resp.status == 200
            assert resp.header("content-type") == "text/event-stream"
            decoder, chunks, events = SSEDecoder(), 0, []
            async for chunk in resp.aiter_bytes():
                chunks += 1
                events += decoder.feed(chunk)
        assert chunks > 3
        assert events[-1].data == "[DONE]"
        usage = json.loads(events[-2].data)["usage"]
        assert usage["completion_tokens"] == srv.stats.completion_tokens
        await chat(pool, srv.url)  # the streamed connection went back to the pool
        assert srv.stats.connections_opened == 1
        await pool.aclose()


# -- the stale-connection retry rule ------------------------------------------------


async def test_stale_keepalive_connection_is_retried(parser: str) -> None:
    pool = ConnectionPool(parser=parser)
    async with FakeLLMServer() as srv:
        await chat(pool, srv.url)
        assert await srv.adrop_idle_connections() == 1
        await chat(pool, srv.url)  # reused socket is dead: retried on a fresh one
        assert srv.stats.requests == 2
        assert srv.stats.connections_opened == 2
        await pool.aclose()


async def test_failure_after_response_bytes_is_not_retried() -> None:
    pool = ConnectionPool()
    async with FakeLLMServer() as srv:
        await chat(pool, srv.url)
        srv.p_truncate = 1.0
        with pytest.raises(LMTransportError, match="before the response was complete"):
            await chat(pool, srv.url)
        assert srv.stats.requests == 2
        await pool.aclose()


async def test_failure_on_a_fresh_connection_is_not_retried() -> None:
    pool = ConnectionPool()
    async with FakeLLMServer(p_reset=1.0) as srv:
        with pytest.raises(LMTransportError):
            await chat(pool, srv.url)
        assert srv.stats.requests == 1


async def test_truncated_stream_raises_transport_error() -> None:
    pool = ConnectionPool()
    body = json.dumps({**CHAT, "stream": True}).encode()
    async with FakeLLMServer(p_truncate=1.0) as srv:
        url = srv.url + "/v1/chat/completions"
        with pytest.raises(LMTransportError):
            async with pool.stream("POST", url, headers=HEADERS, body=body) as resp:
                async for _ in resp.aiter_bytes():
                    pass


# -- cancellation and early exit ------------------------------------------------------


async def test_cancellation_closes_the_connection() -> None:
    pool = ConnectionPool()
    async with FakeLLMServer(p_hang=1.0) as srv:
        with anyio.move_on_after(0.2) as scope:
            await chat(pool, srv.url)
        assert scope.cancelled_caught
        await wait_until(lambda: srv.stats.connections_closed == 1)
        srv.p_hang = 0.0
        await chat(pool, srv.url)
        assert srv.stats.connections_opened == 2
        await pool.aclose()


async def test_leaving_a_stream_early_closes_the_connection() -> None:
    pool = ConnectionPool()
    body = json.dumps({**CHAT, "stream": True}).encode()
    async with FakeLLMServer(token_delay_ms=20) as srv:
        url = srv.url + "/v1/chat/completions"
        async with pool.stream("POST", url, headers=HEADERS, body=body) as resp:
            async for _ in resp.aiter_bytes():
                break
        await wait_until(lambda: srv.stats.connections_closed == 1)
        srv.token_delay_ms = 0
        await chat(pool, srv.url)
        assert srv.stats.connections_opened == 2
        await pool.aclose()


# -- errors ---------------------------------------------------------------------------------


async def test_read_timeout_maps_to_lm_timeout_error() -> None:
    pool = ConnectionPool()
    async with FakeLLMServer(p_hang=1.0) as srv:
        with pytest.raises(LMTimeoutError, match="read timeout"):
            await chat(pool, srv.url, timeouts=Timeouts(read=0.1))


async def test_connection_refused_maps_to_transport_error() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with pytest.raises(LMTransportError, match="could not connect"):
        await ConnectionPool().request("GET", f"http://127.0.0.1:{port}/", headers={})


@pytest.mark.parametrize(
    "reply",
    [b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort"],
    ids=["garbage", "truncated"],
)
async def test_bad_responses_map_to_transport_error(reply: bytes, parser: str) -> None:
    async with raw_server([reply], close_after=True) as srv:
        with pytest.raises(LMTransportError):
            await ConnectionPool(parser=parser).request("GET", srv.url, headers={})


async def test_bad_urls_and_headers_are_config_errors() -> None:
    pool = ConnectionPool()
    with pytest.raises(ConfigError, match="http:// or https://"):
        await pool.request("GET", "ftp://example/", headers={})
    with pytest.raises(ConfigError, match="line break"):
        await pool.request("GET", "http://127.0.0.1:9/", headers={"X": "a\r\nEvil: 1"})


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"Timeouts\.read"):
        Timeouts(read=0)
    with pytest.raises(ConfigError, match="max_connections_per_host"):
        ConnectionPool(max_connections_per_host=0)
    with pytest.raises(ConfigError, match="HTTP parser must be 'httptools' or 'h11'"):
        ConnectionPool(parser="curl")


# -- event loops and the parser fallback ----------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_pool_is_safe_across_successive_event_loops(backend: str) -> None:
    pool = ConnectionPool()
    with FakeLLMServer() as srv:

        async def two_calls() -> None:
            await chat(pool, srv.url)
            await chat(pool, srv.url)

        for run in range(3):
            anyio.run(two_calls, backend=backend)
            # each loop reused its own connection and closed it when it ended
            assert srv.stats.connections_opened == run + 1
            anyio.run(wait_until, lambda closed=run + 1: srv.stats.connections_closed == closed)


def test_h11_is_used_when_httptools_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_h1, "httptools", None)
    assert _parsers.default_impl() == "h11"
    parser = _parsers.make_response_parser("GET", "/", "h")
    parser.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi")
    assert (parser.status, parser.take_body(), parser.complete) == (200, [b"hi"], True)
    with pytest.raises(ConfigError, match="not installed"):
        _parsers.make_response_parser("GET", "/", "h", impl="httptools")


def test_import_without_httptools_falls_back_to_h11() -> None:
    code = (
        "import sys; sys.modules['httptools'] = None\n"
        "from dspex._http import _h1, _parsers, _pool\n"
        "assert _h1.httptools is None and _parsers.default_impl() == 'h11'\n"
        "_pool.ConnectionPool()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_https_with_sni_and_reuse(self_signed: tuple[str, str]) -> None:
    cert, key = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    names: list[str | None] = []

    def on_sni(sock: object, name: str | None, ctx: object) -> None:
        names.append(name)

    server_ctx.sni_callback = on_sni  # type: ignore[assignment]
    server = RawServer([ok(b"secure 1"), ok(b"secure 2")])
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = TLSListener(tcp, server_ctx, standard_compatible=False)
    pool = ConnectionPool(ssl_context=ssl.create_default_context(cafile=cert))
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        url = f"https://localhost:{port}/v1/x"
        assert await (await pool.request("GET", url, headers={})).aread() == b"secure 1"
        assert await (await pool.request("GET", url, headers={})).aread() == b"secure 2"
        assert names == ["localhost"]
        assert server.connections == 1
        await pool.aclose()
        tg.cancel_scope.cancel()


async def test_untrusted_certificate_is_a_transport_error(self_signed: tuple[str, str]) -> None:
    cert, key = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = TLSListener(tcp, server_ctx, standard_compatible=False)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        await anyio.aclose_forcefully(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        with pytest.raises(LMTransportError, match="could not connect"):
            await ConnectionPool().request("GET", f"https://localhost:{port}/", headers={})
        tg.cancel_scope.cancel()
