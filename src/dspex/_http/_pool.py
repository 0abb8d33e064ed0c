"""The default LM transport: a lean keep-alive HTTP/1.1 connection pool on anyio.

Connections are anyio byte streams (TCP, or TLS with SNI through the default
SSL context) — on asyncio the leaner streams of ``_http/_aio.py``, and for a
sync call that has its loop to itself blocking sockets (``_http/_blocking.py``)
— and one exchange (``_http/_exchange.py``) talks HTTP/1.1 over all of them,
parsed by ``_http/_h1.py``. Each event loop gets its own idle lists
and per-host slot semaphores, because a connection belongs to the loop that
opened it: a sync call that starts a fresh loop never sees another loop's
sockets, and when a loop shuts down its idle connections are closed (the pool
plants a tiny async generator in each loop, which both asyncio and trio
finalize at shutdown). A request is retried only when it went out on a reused
keep-alive connection that failed before any response byte arrived (the server
had closed it); any other failure surfaces, since POSTs are not idempotent.
Requests send ``Accept-Encoding: identity`` unless the caller sets the header;
a gzip or deflate body is decoded anyway.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import anyio
import anyio.lowlevel

from .._util._may_block import may_block
from ..errors import ConfigError, LMTimeoutError, LMTransportError
from . import _aio, _blocking
from ._conn import (
    INF,
    MAX_STALE_RETRIES,
    Conn,
    Expired,
    Host,
    LoopState,
    Target,
    Timer,
    attempt_timeout,
    default_ssl_context,
    head_bytes,
    loop_sentinel,
    whole_response,
)
from ._exchange import StreamBody, idle_seconds, send_request
from ._h1 import HttptoolsResponseParser, ResponseParser
from ._parsers import default_impl, make_response_parser
from ._transport import _DEFAULT_TIMEOUTS, HTTPResponse, Timeouts, Transport, describe_io_error

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping
    from types import TracebackType


__all__ = ["ConnectionPool"]

try:  # the backend class's own current_token: no EventLoopToken wrapper per request
    from anyio._core._eventloop import get_async_backend as _backend

    def _native_token() -> Any:
        return _backend().current_token()

    def _clock() -> Any:
        return _backend().current_time

except ImportError:  # pragma: no cover - a future anyio without that helper

    def _native_token() -> Any:
        return anyio.lowlevel.current_token().native_token

    def _clock() -> Any:
        return anyio.current_time

class ConnectionPool(Transport):
    """A keep-alive HTTP/1.1 connection pool over anyio streams (both backends).

    At most ``max_connections_per_host`` connections are open per origin and
    event loop; a request waits up to ``timeouts.pool`` for a slot, then raises
    ``LMTimeoutError``. Idle connections close after ``keepalive_expiry``
    seconds (or earlier if the server's ``Keep-Alive: timeout`` says so).
    Cancelling a request closes its connection. ``aclose()`` closes the idle
    connections of the current loop; the pool stays usable. A sync call that
    has the main thread's loop to itself (``_util/_may_block.py``) exchanges on
    blocking sockets of its own, outside the per-loop limit (one call at a time).

    Args:
        max_connections_per_host: Connection limit per (scheme, host, port).
        keepalive_expiry: Seconds an idle connection is kept.
        parser: ``"httptools"`` or ``"h11"`` to force a parser (default: best).
        ssl_context: TLS settings for https (default: system trust store).
    """

    # Every wait of a request is timed already (the stream's or the exchange's
    # deadline), so capping them at Timeouts.attempt spares the LM a cancel
    # scope per call (~20 us on asyncio, most of it anyio finding the task).
    bounds_attempt = True

    def __init__(
        self,
        *,
        max_connections_per_host: int = 256,
        keepalive_expiry: float = 30.0,
        parser: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections_per_host < 1:
            raise ConfigError(
                f"max_connections_per_host must be >= 1, got {max_connections_per_host!r}"
            )
        make_response_parser("GET", "/", "x", parser)  # validates ``parser`` early
        self._impl = default_impl() if parser is None else parser
        self._limit = max_connections_per_host
        self._expiry = float(keepalive_expiry)
        self._parser = parser
        self._ssl = ssl_context
        self._states: WeakKeyDictionary[Any, LoopState] = WeakKeyDictionary()
        self._targets: dict[str, Target] = {}
        self._last: tuple[weakref.ref[Any], LoopState] | None = None
        self._connections_opened = 0
        self._blocking = _blocking.BlockingConnections()

    @property
    def connections_opened(self) -> int:
        """Connections opened so far (asyncio, anyio and blocking ones)."""
        return self._connections_opened + self._blocking.opened

    def _new_parser(self, method: str, target: Target) -> ResponseParser:
        if self._impl == "httptools":
            return HttptoolsResponseParser(head_only=method == "HEAD")
        return make_response_parser(method, target.target, target.host_header, self._impl)

    # -- per-loop state and slots -------------------------------------------------------

    def _current_state(self) -> LoopState | None:
        """Return this loop's state if it exists (the last loop's is one check away)."""
        token = _native_token()
        last = self._last
        if last is not None and last[0]() is token:
            return last[1]
        state = self._states.get(token)
        if state is not None:
            self._last = (weakref.ref(token), state)
        return state

    async def _state(self) -> LoopState:
        state = self._current_state()
        if state is None:
            token = _native_token()
            aio = _aio.asyncio_loop(token)
            state = self._states[token] = LoopState(aio, clock=None if aio is not None else _clock())
            state.sentinel = loop_sentinel(state)
            await state.sentinel.asend(None)
        return state

    def _target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            target = Target(url)
            if len(self._targets) >= 512:
                self._targets.clear()
            self._targets[url] = target
        return target

    def _host(self, state: LoopState, target: Target) -> Host:
        host = state.hosts.get(target.key)
        if host is None:
            host = state.hosts[target.key] = Host(self._limit)
        return host

    async def _wait_slot(self, host: Host, target: Target, timeouts: Timeouts, left: float = INF) -> None:
        """Wait for a connection slot, at most ``timeouts.pool`` (or ``left``, the attempt's rest)."""
        try:
            with anyio.fail_after(min(timeouts.pool, left)):
                await host.slots.acquire()
        except TimeoutError:
            if left < timeouts.pool:
                raise attempt_timeout(timeouts.attempt or 0.0, target.origin) from None
            raise LMTimeoutError(
                f"no free connection to {target.origin} within the pool timeout "
                f"({timeouts.pool}s, max_connections_per_host={self._limit})"
            ) from None

    async def _acquire(self, target: Target, timeouts: Timeouts) -> tuple[LoopState, Host]:
        state = self._current_state() or await self._state()
        host = self._host(state, target)
        try:
            host.slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._wait_slot(host, target, timeouts)
        return state, host

    def _keep(self, state: LoopState, host: Host, conn: Conn, parser: ResponseParser | None) -> bool:
        """Put ``conn`` back on the idle list if it can carry another request."""
        if conn.generation != state.generation:  # aclose() ran meanwhile
            return False
        seconds = idle_seconds(parser, self._expiry)
        if seconds > 0:
            conn.expires_at = state.clock() + seconds
            conn.uses += 1
            host.idle.append(conn)
            return True
        return False

    async def _release(
        self, state: LoopState, host: Host, conn: Conn | None, parser: ResponseParser | None
    ) -> None:
        """Return ``conn`` to the idle list if reusable, else close it; free the slot."""
        try:
            if conn is not None and not self._keep(state, host, conn, parser):
                await anyio.aclose_forcefully(conn.stream)
        finally:
            host.slots.release()

    # -- connections ----------------------------------------------------------------------

    async def _connect(self, target: Target, state: LoopState, timer: Timer) -> Conn:
        if timer.scope is None and not state.blocking:  # an asyncio stream: time the connect here
            with anyio.move_on_after(timer.deadline - state.clock()):
                return await self._open(target, state, timer.deadline)
            raise Expired
        return await self._open(target, state, timer.deadline)

    async def _open(self, target: Target, state: LoopState, deadline: float) -> Conn:
        """Open a connection of ``state``'s kind (blocking ones time out at ``deadline`` themselves)."""
        ssl_context = (self._ssl or default_ssl_context()) if target.tls else None
        stream: Any
        try:
            if state.blocking:
                stream = _blocking.connect(target.host, target.port, deadline, ssl_context)
            elif state.aio is not None:
                stream = await _aio.connect(
                    state.aio, target.host, target.port, ssl_context=ssl_context,
                    server_hostname=target.host,
                )
            elif ssl_context is not None:
                stream = await anyio.connect_tcp(
                    target.host, target.port, ssl_context=ssl_context, tls_hostname=target.host,
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(target.host, target.port)
        except (OSError, anyio.BrokenResourceError) as exc:
            raise LMTransportError(f"could not connect to {target.origin}: {describe_io_error(exc)}") from None
        if state.blocking:
            self._blocking.opened += 1
        else:
            self._connections_opened += 1
        return Conn(stream, state.generation)

    @staticmethod
    def _pop_idle(state: LoopState, host: Host) -> tuple[Conn | None, list[Conn]]:
        """Pop the most recently used live idle connection; return expired ones too."""
        idle = host.idle
        expired: list[Conn] = []
        now = state.clock()
        while idle and idle[0].expires_at <= now:  # the oldest expire first
            expired.append(idle.popleft())
        while idle:
            conn = idle.pop()
            if conn.expires_at > now:
                return conn, expired
            expired.append(conn)
        return None, expired

    async def _exchange(
        self,
        state: LoopState,
        host: Host,
        method: str,
        target: Target,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
        timer: Timer,
        whole: bool,
    ) -> tuple[Conn, ResponseParser]:
        """Send the request and read the response head (``whole``: and body), retrying stale connections.

        Only a reused connection that failed before any response byte is
        retried (the server closed it while idle); everything else raises.
        """
        payload = head_bytes(method, target, headers, body)
        if body:
            payload += body
        for _ in range(MAX_STALE_RETRIES + 1):
            conn = None
            if host.idle:
                conn, expired = self._pop_idle(state, host)
                for old in expired:
                    await anyio.aclose_forcefully(old.stream)
            reused = conn is not None
            if conn is None:
                timer.arm("connect timeout", timeouts.connect)
                conn = await self._connect(target, state, timer)
            if state.timed_streams:
                timer.bind(conn.stream)
            parser = self._new_parser(method, target)
            try:
                await send_request(conn, payload, parser, timer, timeouts, target.origin, whole=whole)
            except LMTransportError:
                await anyio.aclose_forcefully(conn.stream)
                if reused and not parser.received_any:
                    continue  # stale keep-alive connection: nothing was received
                raise
            except BaseException:  # timeouts, cancellation, Ctrl-C: the connection's state is unknown
                await anyio.aclose_forcefully(conn.stream)
                raise
            return conn, parser
        raise LMTransportError(f"every pooled connection to {target.origin} was stale")

    async def _fetch(
        self,
        state: LoopState,
        host: Host,
        method: str,
        target: Target,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
        cap: float,
    ) -> HTTPResponse:
        """Exchange on a connection of ``state`` and read the whole body; keep or close it after.

        No wait runs past ``cap`` (the attempt's deadline on ``state.clock``).
        """
        conn: Conn | None = None
        parser: ResponseParser | None = None
        cap_seconds = timeouts.attempt or 0.0
        try:
            if state.timed_streams:  # asyncio and blocking streams time their own waits
                timer = Timer(None, state.clock, cap, cap_seconds)
                try:
                    conn, parser = await self._exchange(
                        state, host, method, target, headers, body, timeouts, timer, True
                    )
                except Expired:
                    raise timer.error(target.origin) from None
            else:
                with anyio.CancelScope() as scope:
                    timer = Timer(scope, state.clock, cap, cap_seconds)
                    conn, parser = await self._exchange(
                        state, host, method, target, headers, body, timeouts, timer, True
                    )
                if scope.cancelled_caught or parser is None or not parser.complete:
                    raise timer.error(target.origin)
            return whole_response(parser, parser.take_body(), target.origin)
        finally:
            if conn is not None and not self._keep(state, host, conn, parser):
                await anyio.aclose_forcefully(conn.stream)

    # -- Transport API ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> HTTPResponse:
        """Send a request and return the response with its whole body read.

        A sync call that has the main thread's loop to itself blocks that loop
        for the exchange (on a blocking socket, bounded by ``timeouts``); every
        other call waits for a connection slot (at most ``timeouts.pool``).
        The whole call, slot wait included, ends by ``timeouts.attempt``
        (``bounds_attempt``).
        """
        target = self._target(url)
        state = self._current_state() or await self._state()
        attempt = INF if timeouts.attempt is None else timeouts.attempt
        if state.aio is not None and may_block(state.aio):  # nothing else waits for this loop
            blocking = self._blocking.state
            return await self._fetch(
                blocking, self._host(blocking, target), method, target, headers, body, timeouts,
                blocking.clock() + attempt,
            )
        cap = state.clock() + attempt
        host = self._host(state, target)
        try:
            host.slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._wait_slot(host, target, timeouts, attempt)
        try:
            return await self._fetch(state, host, method, target, headers, body, timeouts, cap)
        finally:
            host.slots.release()

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> _StreamContext:
        """Return a context that yields the response with its body still arriving."""
        return _StreamContext(self, method, self._target(url), headers, body, timeouts)

    async def aclose(self) -> None:
        """Close the current loop's idle connections (the pool stays usable)."""
        try:
            token = anyio.lowlevel.current_token().native_token
        except RuntimeError:
            return
        if may_block(token):  # the main thread's sync loop: its blocking sockets too
            self._blocking.close_idle()
        state = self._states.get(token)
        if state is not None:
            state.generation += 1
            await state.close_idle()


class _StreamContext:
    """``async with pool.stream(...) as response``: the response body streams."""

    def __init__(
        self,
        pool: ConnectionPool,
        method: str,
        target: Target,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> None:
        self._pool = pool
        self._args = (method, target, headers, body, timeouts)
        self._state: LoopState | None = None
        self._host: Host | None = None
        self._conn: Conn | None = None
        self._parser: ResponseParser | None = None
        self._released = False

    async def __aenter__(self) -> HTTPResponse:
        method, target, headers, body, timeouts = self._args
        self._state, self._host = await self._pool._acquire(target, timeouts)
        try:
            with anyio.CancelScope() as scope:
                timer = Timer(scope, self._state.clock)
                self._conn, self._parser = await self._pool._exchange(
                    self._state, self._host, method, target, headers, body, timeouts, timer, False
                )
            if scope.cancelled_caught or self._conn is None or self._parser is None:
                raise timer.error(target.origin)
        except BaseException:
            await self._release()
            raise
        chunks = StreamBody(self._conn, self._parser, target.origin, timeouts.read, self._release)
        return HTTPResponse(self._parser.status, self._parser.headers, chunks=chunks, on_close=self._release)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._release()

    async def _release(self) -> None:
        if self._released or self._state is None or self._host is None:
            return
        self._released = True
        await self._pool._release(self._state, self._host, self._conn, self._parser)
