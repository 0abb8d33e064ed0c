"""LM errors read as plain words and name the model and provider (issue 12, item 8).

A transport failure must say what happened ("connection reset by peer while
reading the response") and where, never a bare internal class name such as
``BrokenResourceError()``, and every ``LMError`` leaving ``dx.LM`` carries
``model``/``provider`` context, through the lean pool and through httpx.
"""

from __future__ import annotations

import re

import anyio
import httpx
import pytest

from dspex._http._transport import describe_io_error
from dspex.errors import LMError, LMTimeoutError, LMTransportError, ServerError
from dspex.lm import LM, Timeouts
from dspex.testing import FakeLLMServer

# anyio/trio/httpx exception class names that used to leak into messages
_CLASS_NAME = re.compile(r"\b\w+(Error|Exception|Stream)\(|\b(Broken|Closed)Resource|EndOfStream|JSONDecodeError|KeyError")


def _lm(server: FakeLLMServer, http: httpx.AsyncClient | None = None, **kw) -> LM:
    return LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-err-test-0000", cache=False,
              num_retries=0, http_client=http, **kw)


async def _failure(lm: LM, streamed: bool) -> LMError:
    with pytest.raises(LMError) as info:
        if streamed:
            async for _ in lm.stream("Say hello"):
                pass
        else:
            await lm.acall("Say hello")
    return info.value


@pytest.mark.parametrize("client", ["pool", "httpx"])
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("p_reset", "connection reset by peer while reading the response from http://127.0.0.1:"),
        ("p_truncate", "before"),  # "closed before the response was complete" / "ended before completion"
        ("p_malformed", "malformed"),
    ],
)
async def test_transport_errors_are_plain_words_with_model_and_provider(
    client: str, streamed: bool, fault: str, words: str
) -> None:
    async with FakeLLMServer(**{fault: 1.0}) as server, httpx.AsyncClient() as http:
        lm = _lm(server, http if client == "httpx" else None)
        err = await _failure(lm, streamed)
        await lm.aclose()
    assert isinstance(err, LMTransportError)
    assert words in err.message or (fault == "p_truncate" and "complete" in err.message), err.message
    assert not _CLASS_NAME.search(err.message), err.message
    assert (err.model, err.provider) == ("fake-model", "openai")
    assert str(err).endswith("[model='fake-model', provider='openai']")


@pytest.mark.parametrize("streamed", [False, True])
async def test_timeouts_name_model_and_provider(streamed: bool) -> None:
    async with FakeLLMServer(p_hang=1.0) as server:
        lm = _lm(server, timeout=Timeouts(read=0.05))
        err = await _failure(lm, streamed)
        await lm.aclose()
    assert isinstance(err, LMTimeoutError)
    assert err.message.startswith("read timeout (0.05s) talking to http://127.0.0.1:"), err.message
    assert (err.model, err.provider) == ("fake-model", "openai")


async def test_refused_connection_is_plain_words() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
    lm = LM("openai/fake-model", api_base=f"http://127.0.0.1:{port}/v1", api_key="k", cache=False, num_retries=0)
    err = await _failure(lm, False)
    assert err.message == f"could not connect to http://127.0.0.1:{port}: connection refused", err.message
    assert (err.model, err.provider) == ("fake-model", "openai")


def test_describe_io_error_translates_anyio_exceptions() -> None:
    def caused(exc: BaseException, cause: BaseException) -> BaseException:
        exc.__cause__ = cause
        return exc

    assert describe_io_error(caused(anyio.BrokenResourceError(), ConnectionResetError(104, "x"))) == (
        "connection reset by peer"
    )
    assert describe_io_error(caused(anyio.BrokenResourceError(), BrokenPipeError(32, "x"))).startswith("broken pipe")
    assert describe_io_error(anyio.BrokenResourceError()) == "the connection broke (reset or closed by the server)"
    assert describe_io_error(anyio.ClosedResourceError()) == "the connection was already closed"
    assert describe_io_error(anyio.EndOfStream()) == "the server closed the connection"
    assert describe_io_error(OSError(113, "No route to host")) == "No route to host"


async def test_parallel_completions_raise_the_lm_error_not_a_group() -> None:
    """n > 1 on a provider without native n runs n requests; a failure is still one typed LMError."""
    async with FakeLLMServer(p_500=1.0) as server:
        lm = LM("anthropic/claude-fake", api_base=server.url, api_key="sk-x", cache=False, num_retries=0)
        with pytest.raises(ServerError) as info:
            await lm.acall("Say hello", n=3)
        await lm.aclose()
    assert (info.value.model, info.value.provider, info.value.status) == ("claude-fake", "anthropic", 500)
