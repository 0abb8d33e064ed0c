"""An LM transport on ``httpx.AsyncClient``: proxies, HTTP/2, user-supplied clients.

:func:`~dspex._http._factory.get_transport` picks this transport when a proxy is
configured or the user passes a client. httpx is imported only when one is
built. httpx's errors are mapped to ``LMTransportError``/``LMTimeoutError``
so callers see the same errors as with the lean pool. A client passed in by
the user is never closed by dspex; a client this transport created is closed
by :meth:`HttpxTransport.aclose` or when its event loop shuts down (httpx
connections belong to one loop, so each loop gets its own client). Leaving a
stream early drains its body for up to 0.25 s first, since httpx's nested
async generators make trio warn if they are collected half-way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import anyio
import anyio.lowlevel

from ..errors import LMTimeoutError, LMTransportError
from ._transport import (
    _DEFAULT_TIMEOUTS,
    HTTPResponse,
    Timeouts,
    Transport,
    describe_io_error,
    redact_url,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from types import TracebackType

    import httpx

__all__ = ["HttpxTransport"]

_DRAIN_SECONDS = 0.25


def _map_error(exc: BaseException, url: str) -> Exception | None:
    import httpx

    shown = redact_url(url)
    if isinstance(exc, httpx.TimeoutException):
        phase = {httpx.ConnectTimeout: "connect timeout", httpx.ReadTimeout: "read timeout",
                 httpx.WriteTimeout: "write timeout", httpx.PoolTimeout: "pool timeout (no free connection)"}
        return LMTimeoutError(f"{phase.get(type(exc), 'timeout')} talking to {shown}")
    if isinstance(exc, httpx.ConnectError):
        return LMTransportError(f"could not connect to {shown}: {describe_io_error(exc)}")
    if isinstance(exc, httpx.ReadError):
        return LMTransportError(f"{describe_io_error(exc)} while reading the response from {shown}")
    if isinstance(exc, httpx.WriteError):
        return LMTransportError(f"{describe_io_error(exc)} while sending the request to {shown}")
    if isinstance(exc, httpx.TransportError | httpx.StreamError):
        # protocol errors carry a readable message (e.g. "peer closed connection
        # without sending complete message body"); the class name adds nothing
        return LMTransportError(f"request to {shown} failed: {exc or describe_io_error(exc)}")
    return None


class HttpxTransport(Transport):
    """Send LM requests through an ``httpx.AsyncClient``.

    Args:
        client: A user-owned client (used as is, never closed here).
        proxy: A proxy URL; without it and ``client``, httpx reads the proxy
            environment variables (``HTTPS_PROXY``, ``NO_PROXY``, ...).
        max_connections: httpx's connection limit (it has no per-host limit).
        keepalive_expiry: Seconds an idle connection is kept.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        proxy: str | None = None,
        max_connections: int = 256,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._user_client = client
        self._proxy = proxy
        self._max = max_connections
        self._expiry = keepalive_expiry
        self._own: WeakKeyDictionary[Any, list[Any]] = WeakKeyDictionary()

    @property
    def uses_proxy(self) -> bool:
        """True when requests may go through a proxy (argument or environment)."""
        return self._user_client is None

    async def _client(self) -> httpx.AsyncClient:
        if self._user_client is not None:
            return self._user_client
        token = anyio.lowlevel.current_token().native_token
        entry = self._own.get(token)
        if entry is None:
            import httpx

            client = httpx.AsyncClient(
                proxy=self._proxy,
                trust_env=self._proxy is None,
                limits=httpx.Limits(
                    max_connections=self._max,
                    max_keepalive_connections=self._max,
                    keepalive_expiry=self._expiry,
                ),
            )
            entry = self._own[token] = [client, _client_sentinel(client)]
            await entry[1].asend(None)
        return entry[0]  # type: ignore[no-any-return]

    async def _build(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, t: Timeouts
    ) -> httpx.Request:
        import httpx

        client = await self._client()
        merged = dict(headers)
        if not any(k.lower() == "accept-encoding" for k in merged):
            merged["Accept-Encoding"] = "identity"
        timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
        return client.build_request(method, url, headers=merged, content=body, timeout=timeout)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> HTTPResponse:
        """Send a request and return the response with its whole body read."""
        request = await self._build(method, url, headers, body, timeouts)
        try:
            resp = await (await self._client()).send(request)
        except Exception as exc:
            mapped = _map_error(exc, url)
            if mapped is None:
                raise
            raise mapped from None
        return HTTPResponse(resp.status_code, _headers(resp), content=resp.content)

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> _HttpxStream:
        """Return a context that yields the response with its body still arriving."""
        return _HttpxStream(self, (method, url, headers, body, timeouts))

    async def aclose(self) -> None:
        """Close the current loop's client if this transport made it (never a user's)."""
        try:
            token = anyio.lowlevel.current_token().native_token
        except RuntimeError:
            return
        entry = self._own.pop(token, None)
        if entry is not None:
            await entry[1].aclose()  # its ``finally`` closes the client


async def _client_sentinel(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """Suspend forever; finalized at loop shutdown, it closes the loop's client."""
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await client.aclose()


def _headers(resp: httpx.Response) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in resp.headers.multi_items()]


class _HttpxStream:
    def __init__(self, transport: HttpxTransport, args: tuple[Any, ...]) -> None:
        self._transport = transport
        self._args = args
        self._url: str = args[1]
        self._resp: Any = None
        self._body: _HttpxBody | None = None

    async def __aenter__(self) -> HTTPResponse:
        request = await self._transport._build(*self._args)
        try:
            client = await self._transport._client()
            self._resp = await client.send(request, stream=True)
        except Exception as exc:
            mapped = _map_error(exc, self._url)
            if mapped is None:
                raise
            raise mapped from None
        return HTTPResponse(
            self._resp.status_code,
            _headers(self._resp),
            chunks=self._chunks(),
            on_close=self._close,
        )

    def _chunks(self) -> _HttpxBody:
        self._body = _HttpxBody(self._resp.aiter_bytes(), self._url)
        return self._body

    async def _close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is None:
            return
        # httpx reads bodies through nested async generators; left half-way, trio
        # warns when they are collected. Draining briefly (an error body, a
        # short tail) lets them finish; a long stream is cut after the budget.
        try:
            with anyio.move_on_after(_DRAIN_SECONDS):
                if self._body is None:
                    await resp.aread()
                elif not self._body.done:
                    async for _ in self._body:
                        pass
        except Exception:
            pass
        finally:
            with anyio.CancelScope(shield=True):
                if self._body is not None and not self._body.done:
                    await self._body.source.aclose()  # type: ignore[attr-defined]
                await resp.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()


class _HttpxBody:
    """Async iterator over httpx body chunks with errors mapped to dspex errors."""

    def __init__(self, source: AsyncIterator[bytes], url: str) -> None:
        self.source = source
        self.done = False
        self._url = url

    def __aiter__(self) -> _HttpxBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.source.__anext__()
        except StopAsyncIteration:
            self.done = True
            raise
        except Exception as exc:
            mapped = _map_error(exc, self._url)
            if mapped is None:
                raise
            raise mapped from None
