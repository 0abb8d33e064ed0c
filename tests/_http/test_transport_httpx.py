"""Transport selection (get_transport) and the httpx-backed transport."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from dspex._http._factory import get_transport
from dspex._http._httpx_transport import HttpxTransport
from dspex._http._pool import ConnectionPool
from dspex._http._sse import SSEDecoder
from dspex._http._transport import Timeouts, redact_url
from dspex.errors import ConfigError, LMTimeoutError, LMTransportError
from dspex.testing import FakeLLMServer

PROXY_VARS = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"]
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)


# -- selection ---------------------------------------------------------------------------


def test_default_is_the_shared_lean_pool() -> None:
    first = get_transport()
    assert isinstance(first, ConnectionPool)
    assert get_transport() is first
    assert get_transport(max_connections_per_host=8) is not first


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
def test_proxy_env_var_selects_httpx(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "http://127.0.0.1:9")
    transport = get_transport()
    assert isinstance(transport, HttpxTransport)
    assert transport.uses_proxy


def test_no_proxy_keeps_the_pool_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert isinstance(get_transport(url="http://127.0.0.1:8000/v1"), ConnectionPool)
    assert isinstance(get_transport(url="https://api.example.com/v1"), HttpxTransport)


def test_proxy_argument_and_user_client_select_httpx() -> None:
    assert isinstance(get_transport(proxy="http://127.0.0.1:9"), HttpxTransport)
    client = httpx.AsyncClient()
    transport = get_transport(client=client)
    assert isinstance(transport, HttpxTransport)
    assert not transport.uses_proxy


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_connections_per_host"):
        get_transport(max_connections_per_host=0)
    with pytest.raises(ConfigError, match="keepalive_expiry"):
        get_transport(keepalive_expiry=0)


def test_redact_url_drops_query_and_credentials() -> None:
    url = "https://user:pw@host:1/v1beta/models/m:generateContent?key=SECRET"
    assert redact_url(url) == "https://host:1/v1beta/models/m:generateContent"


# -- the httpx transport against the fake server -----------------------------------------


async def test_request_and_stream() -> None:
    transport = HttpxTransport()
    async with FakeLLMServer() as srv:
        url = srv.url + "/v1/chat/completions"
        resp = await transport.request("POST", url, headers={}, body=BODY)
        assert resp.status == 200
        assert resp.header("content-type") == "application/json"
        text = json.loads(await resp.aread())["choices"][0]["message"]["content"]
        body = json.dumps({**json.loads(BODY), "stream": True}).encode()
        async with transport.stream("POST", url, headers={}, body=body) as resp:
            decoder = SSEDecoder()
            events = [ev async for chunk in resp.aiter_bytes() for ev in decoder.feed(chunk)]
        assert events[-1].data == "[DONE]"
        deltas = [json.loads(e.data)["choices"][0]["delta"].get("content", "") for e in events[:-1]]
        assert "".join(deltas) == text
        assert srv.stats.connections_opened == 1
        await transport.aclose()


async def test_leaving_a_stream_early_is_clean() -> None:
    transport = HttpxTransport()
    body = json.dumps({**json.loads(BODY), "stream": True}).encode()
    async with FakeLLMServer(token_delay_ms=1) as srv:
        url = srv.url + "/v1/chat/completions"
        async with transport.stream("POST", url, headers={}, body=body) as resp:
            async for _ in resp.aiter_bytes():
                break
        # the short remainder was drained, so the connection is reused
        resp = await transport.request("POST", url, headers={}, body=BODY)
        assert resp.status == 200
        assert srv.stats.connections_opened == 1
        await transport.aclose()


async def test_user_client_is_used_and_not_closed() -> None:
    async with httpx.AsyncClient() as client, FakeLLMServer() as srv:
        transport = get_transport(client=client)
        url = srv.url + "/v1/chat/completions"
        resp = await transport.request("POST", url, headers={}, body=BODY)
        assert resp.status == 200
        await transport.aclose()
        assert not client.is_closed


async def test_errors_are_mapped() -> None:
    transport = HttpxTransport()
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with pytest.raises(LMTransportError, match=r"^could not connect to http://127\.0\.0\.1:\d+/: ") as info:
        await transport.request("GET", f"http://127.0.0.1:{port}/", headers={})
    assert "ConnectError" not in str(info.value)  # plain words, not httpx's class names
    async with FakeLLMServer(p_hang=1.0) as srv:
        with pytest.raises(LMTimeoutError, match=r"^read timeout talking to http://127\."):
            await transport.request(
                "POST", srv.url + "/v1/chat/completions", headers={}, body=BODY,
                timeouts=Timeouts(read=0.1),
            )  # fmt: skip
    async with FakeLLMServer(p_reset=1.0) as srv:
        with pytest.raises(LMTransportError) as info:
            await transport.request("POST", srv.url + "/v1/chat/completions", headers={}, body=BODY)
        assert "Error" not in info.value.message, info.value.message
    await transport.aclose()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_own_client_is_per_event_loop(backend: str) -> None:
    transport = HttpxTransport()
    with FakeLLMServer() as srv:

        async def call() -> int:
            resp = await transport.request(
                "POST", srv.url + "/v1/chat/completions", headers={}, body=BODY
            )
            return resp.status

        assert anyio.run(call, backend=backend) == 200
        assert anyio.run(call, backend=backend) == 200
        assert srv.stats.connections_opened == 2
