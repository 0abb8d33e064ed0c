"""The broadcast server behind the WebSocket sink.

:class:`WebSocketServer` listens on a TCP port with anyio, speaks WebSocket
through websockets' Sans-I/O ``ServerProtocol`` (one code path for asyncio and
trio), serves the live page to plain HTTP ``GET``s, and broadcasts encoded
messages to every connected client: framed once, held for a short tick when
there are many clients, then written by one task to every client that keeps up
with one non-blocking write of the same bytes, and queued for the others in
per-client bounded queues (:mod:`._ws_clients`). It keeps the last ``replay`` final results for late
joiners (``?replay=N`` or a ``{"type": "replay", "last": N}`` message), answers
``{"type": "ping"}`` with ``{"type": "pong"}``, and on shutdown closes every
client with code 1001 after delivering what was queued.

The listener is built to outlive abuse. A failed ``accept()`` never ends
:meth:`WebSocketServer.serve` (and so never fails the flow): out of descriptors
or buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM) it logs and backs off, as
asyncio's own server does; a connection aborted before it was accepted is
skipped. At most ``max_handshakes`` connections may be in their opening
handshake (not yet authenticated) at once, each for at most
``handshake_timeout`` seconds, so idle TCP connections cannot pin descriptors.
When every slot is held, the oldest handshake that has lasted longer than
``HANDSHAKE_GRACE`` (1 s; a real client sends its request within a round
trip) is dropped to make room, so idle connections cannot lock clients out
either; while all are younger, new connections wait in the kernel's backlog.
"""

from __future__ import annotations

import errno
import json
import logging
from collections import deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._util._redact import RedactingLogger
from .._version import __version__
from .._ws._conn import LOG, ProtocolStream
from ..errors import ConfigError, SinkError
from ._ws_clients import (
    DETAIL,
    FINAL,
    SLOW_CODE,
    ClientSession,
    FlushTick,
    SessionOptions,
    encode,
    server_frame,
)
from ._ws_http import HandshakePolicy, load_page_assets, own_origins, route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence

    from anyio.abc import SocketListener, SocketStream, TaskGroup
    from websockets.server import ServerProtocol

    from ._ws_http import Routed

__all__ = ["WebSocketServer", "open_websocket_server"]

# accept() failures that only concern the connection being accepted: skip it.
_SKIP_ERRNOS = frozenset(
    getattr(errno, name) for name in (
        "ECONNABORTED", "ECONNRESET", "EPROTO", "EPERM", "EINTR", "EAGAIN", "EWOULDBLOCK",
        "ENETDOWN", "ENETUNREACH", "EHOSTDOWN", "EHOSTUNREACH", "ENONET", "ETIMEDOUT", "ENOPROTOOPT",
    ) if hasattr(errno, name)
)
ACCEPT_BACKOFF = (0.05, 1.0)  # first and longest pause after a resource error (asyncio waits 1 s)
HANDSHAKE_GRACE = 1.0  # a handshake older than this may be dropped for a newcomer when all slots are held
# Largest batch written straight to a client's socket; a bigger one goes through the client
# queues, so a burst cannot park more than this per client in a transport's buffer.
DIRECT_MAX = 65536


class WebSocketServer:
    """Broadcast encoded messages to every connected WebSocket client.

    Args:
        host: Interface to listen on (loopback by default).
        port: TCP port; 0 picks a free one (see :attr:`url`).
        path: WebSocket endpoint path; the live page is served at ``/``.
        token: Bearer token required from clients (``Authorization: Bearer``
            header or ``?token=`` query); refused with HTTP 401 otherwise.
        origins: Extra allowed ``Origin`` values (browsers), ``["*"]`` for
            any; others are refused with HTTP 403. The server's own origin and
            clients sending no ``Origin`` (non-browsers) are always allowed.
        max_message_size: Largest client message in bytes (close 1009 beyond).
        options: Per-client queue size and timing knobs.
        replay: How many final results to keep for late joiners.
        handshake_timeout: Seconds a connection has to complete its HTTP
            request and take the answer; then it is dropped.
        max_handshakes: Most connections in their opening handshake at once;
            beyond it, the oldest one past ``HANDSHAKE_GRACE`` is dropped, or
            accepting pauses until one finishes.
        page: Serve the live page on plain GET requests.

    Raises:
        ConfigError: For an invalid path, port or size.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/",
        token: str | None = None,
        origins: Iterable[str] | None = None,
        max_message_size: int = 2**20,
        options: SessionOptions | None = None,
        replay: int = 100,
        handshake_timeout: float = 10.0,
        max_handshakes: int = 64,
        page: bool = True,
    ) -> None:
        _check(path.startswith("/"), f"path {path!r} must start with '/'")
        _check(0 <= port <= 65535, f"port {port!r} must be in 0..65535")
        _check(max_message_size > 0, f"max_message_size {max_message_size!r} must be > 0")
        _check(replay >= 0, f"replay {replay!r} must be >= 0")
        _check(handshake_timeout > 0, f"handshake_timeout {handshake_timeout!r} must be > 0")
        _check(max_handshakes >= 1, f"max_handshakes {max_handshakes!r} must be >= 1")
        self.options = options or SessionOptions()
        _check(self.options.queue_size >= 1, f"queue_size {self.options.queue_size!r} must be >= 1")
        interval = self.options.flush_interval
        _check(0 <= interval <= 1, f"flush_interval {interval!r} must be in 0..1 seconds")
        self._tick = FlushTick(interval, lambda: len(self.sessions))
        self._outbox: list[tuple[bytes, int, bytes]] = []  # broadcasts held for the next flush
        self._flush_wanted: anyio.Event | None = None  # set to wake the flusher (None: no flusher running)
        self._joined: anyio.Event | None = None  # set when a client completes its handshake
        self.host, self.path, self.token = host, path, token
        self.origins = () if origins is None else (origins,) if isinstance(origins, str) else tuple(origins)
        self.max_message_size = max_message_size
        self.handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.page = page
        self.port: int | None = None
        self.sessions: set[ClientSession] = set()
        self.hello: dict[str, Any] = {}
        self._requested_port = port
        self._replay: deque[bytes] = deque(maxlen=replay)
        self._policy = HandshakePolicy(path=path, token=token, origins=self.origins, page=page)
        self._log = RedactingLogger(LOG, (token,))  # websockets logs request lines and headers at DEBUG
        self._slots: anyio.Semaphore | None = None  # per serve(): taken before accept(), freed once authenticated
        self._pending: dict[_Slot, None] = {}  # handshakes in progress, oldest first
        self._accepting: anyio.CancelScope | None = None
        self._stats = dict.fromkeys(
            ("connections", "refused", "messages", "kicked", "dropped", "handshake_timeouts", "handshakes_shed",
             "accept_errors", "direct_writes", "queued_batches"), 0,
        )

    @property
    def url(self) -> str:
        """The ``ws://`` URL clients connect to (once serving)."""
        return f"ws://{self._authority()}{self.path}"

    @property
    def page_url(self) -> str:
        """The ``http://`` URL of the live page (once serving)."""
        return f"http://{self._authority()}/"

    def _authority(self) -> str:
        if self.port is None:
            raise SinkError("the WebSocket server is not running yet: open the sink (or run the flow) first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def broadcast(self, data: bytes, tier: int) -> None:
        """Send one encoded message to every client; never blocks (see :meth:`broadcast_many`)."""
        self.broadcast_many(((data, tier),))

    def broadcast_many(self, messages: Sequence[tuple[bytes, int]]) -> None:
        """Send several ``(data, tier)`` messages to every client, in order; never blocks.

        Each message is framed once, whatever the number of clients. Below
        the flush tick's threshold they are handed over at once; with more
        clients they are held for the tick's interval, together with whatever
        else is broadcast meanwhile, and then handed over by one task
        (:meth:`flush`): no per-client task wakes for a client that keeps up.
        """
        replay = self._replay if self._replay.maxlen else None
        self._stats["messages"] += len(messages)
        outbox = self._outbox if self.sessions else None
        for data, tier in messages:
            if tier == FINAL and replay is not None:
                replay.append(data)
            if outbox is not None:
                outbox.append((data, tier, server_frame(data)))
        if outbox is None:
            return
        if self._flush_wanted is None or not self._tick.hold():
            self.flush()
        else:
            self._flush_wanted.set()

    def flush(self) -> None:
        """Hand every held broadcast to every client now; never blocks.

        The frames of the held messages are joined into one byte string, the
        same for every client: a client that keeps up (nothing queued, its
        socket taking bytes) gets it in one non-blocking write, any other
        client gets the messages in its queue, under the slow-client policy
        (see :meth:`ClientSession.deliver`). A batch over ``DIRECT_MAX``
        bytes goes through the queues for every client (bounded memory).
        """
        messages, self._outbox = self._outbox, []
        if not messages:
            return
        frames = b"".join(frame for _, _, frame in messages)
        sessions = tuple(self.sessions)
        if len(frames) > DIRECT_MAX:
            for session in sessions:
                session.send_many(messages)
            self._stats["queued_batches"] += len(sessions)
            return
        direct = sum(session.deliver(messages, frames) for session in sessions)
        self._stats["direct_writes"] += direct
        self._stats["queued_batches"] += len(sessions) - direct

    async def _flusher(self) -> None:
        """Flush held broadcasts one tick after the first of them; runs until cancelled."""
        try:
            while True:
                wanted = self._flush_wanted = anyio.Event()
                await wanted.wait()
                hold = self._tick.hold()
                if hold:
                    await anyio.sleep(hold)
                self.flush()
        finally:
            self._flush_wanted = None  # broadcasts without a flusher are handed over at once

    async def wait_for_client(self, count: int = 1) -> None:
        """Block until at least ``count`` clients are connected (returns at once if they are)."""
        while len(self.sessions) < count:
            joined = self._joined = anyio.Event()
            await joined.wait()

    def replay_to(self, session: ClientSession, last: int) -> None:
        """Send ``session`` the last ``last`` final results, bracketed by markers."""
        kept = list(self._replay)
        items = kept[len(kept) - min(last, len(kept)) :] if last > 0 else []
        session.send(encode({"type": "replay_begin", "count": len(items)}), FINAL)
        for data in items:
            session.send(data, FINAL)
        session.send(encode({"type": "replay_end", "count": len(items)}), FINAL)

    def statistics(self) -> dict[str, Any]:
        """Counters: clients, handshaking, connections, refused, messages, kicked,
        dropped, handshake_timeouts, handshakes_shed (dropped for a newcomer),
        accept_errors, direct_writes (broadcast batches written at once to a
        client that keeps up) and queued_batches (batches queued for a client
        behind, or too big to write at once)."""
        live_drops = sum(s.queue.dropped for s in self.sessions)
        return {
            **self._stats,
            "clients": len(self.sessions),
            "handshaking": len(self._pending),
            "dropped": self._stats["dropped"] + live_drops,
            "replay_size": len(self._replay),
        }

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve clients until cancelled; reports started once bound.

        Raises:
            OSError: Only if the port cannot be bound. Once listening, failed
                ``accept()`` calls are logged and retried, never raised.
        """
        assets = await anyio.to_thread.run_sync(load_page_assets, self.path) if self.page else {}
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self._requested_port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self._policy = HandshakePolicy(
            path=self.path, token=self.token, origins=self.origins, own=own_origins(self.host, self.port),
            page=self.page, assets=assets,
        )
        # a name like "localhost" may bind several sockets (a MultiListener): accept on each
        listeners: list[SocketListener] = list(getattr(listener, "listeners", [listener]))
        self._slots, self._pending = anyio.Semaphore(self.max_handshakes), {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watchdog)
            tg.start_soon(self._flusher)
            with anyio.CancelScope() as self._accepting:
                task_status.started()
                async with listener, anyio.create_task_group() as accepting:
                    for one in listeners:
                        accepting.start_soon(self._accept_loop, one, tg)

    async def _accept_loop(self, listener: SocketListener, tg: TaskGroup) -> None:
        """Accept connections until the listener closes; never raises for a failed accept.

        A handshake slot is taken before each ``accept()`` (see :meth:`_take_slot`),
        so at most ``max_handshakes`` connections are unauthenticated at a time.
        """
        assert self._slots is not None
        failures = 0
        while True:
            await self._take_slot(self._slots)
            try:
                stream = await listener.accept()
            except anyio.ClosedResourceError:
                self._slots.release()
                return
            except (OSError, anyio.BrokenResourceError) as exc:
                self._slots.release()
                failures = await self._accept_failed(exc, failures)
                continue
            except BaseException:
                self._slots.release()
                raise
            if failures:
                LOG.warning("WebSocket server on port %s is accepting again after %d failed accept() calls",
                            self.port, failures)
                failures = 0
            tg.start_soon(self._handle, stream, _Slot(self, self._slots))

    async def _take_slot(self, slots: anyio.Semaphore) -> None:
        """Take a handshake slot, shedding the oldest stale handshake if all are held.

        Blocks while every handshake in progress is younger than
        ``HANDSHAKE_GRACE``; then the oldest is dropped (its handler frees the
        slot), so a crowd of idle connections cannot keep clients out.
        """
        while True:
            try:
                slots.acquire_nowait()
                return
            except anyio.WouldBlock:
                pass
            wait = HANDSHAKE_GRACE
            oldest = next(iter(self._pending), None)
            if oldest is not None:
                age = anyio.current_time() - oldest.accepted_at
                if age >= HANDSHAKE_GRACE:
                    # one newcomer sheds one handshake, whose handler frees the slot at
                    # its next checkpoint: wait for that slot instead of shedding more
                    oldest.shed()
                    self._stats["handshakes_shed"] += 1
                else:
                    wait = HANDSHAKE_GRACE - age
            with anyio.move_on_after(wait):
                await slots.acquire()
                return

    async def _accept_failed(self, exc: BaseException, failures: int) -> int:
        """Log one failed ``accept()`` and pause if the system is out of resources.

        Returns the new count of consecutive resource failures (the backoff grows
        with it, from 50 ms to 1 s; the first of a streak is logged as a warning).
        """
        cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) and exc.__cause__ else exc
        code = getattr(cause, "errno", None)
        self._stats["accept_errors"] += 1
        if code in _SKIP_ERRNOS:  # that one connection is gone; the next may be fine
            LOG.debug("WebSocket server on port %s: accept() failed (%s); skipped", self.port, cause)
            await anyio.lowlevel.checkpoint()
            return failures
        initial, longest = ACCEPT_BACKOFF
        delay = min(longest, initial * 2**failures)
        level = logging.WARNING if failures == 0 else logging.DEBUG
        LOG.log(level, "WebSocket server on port %s: accept() failed (%s: %s); retrying in %.2f s "
                "(%d connections in their handshake, %d clients)", self.port, type(cause).__name__,
                cause, delay, len(self._pending), len(self.sessions))
        await anyio.sleep(delay)
        return failures + 1

    async def shutdown(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop accepting, drain and close every client with ``code``.

        Clients get what was already queued, then a close frame; clients that
        do not finish within ``close_timeout`` are disconnected.
        """
        if self._accepting is not None:
            self._accepting.cancel()
        self.flush()  # held broadcasts go out before the close frames
        for session in tuple(self.sessions):
            session.close(code, reason)
        with anyio.move_on_after(self.options.close_timeout):
            for session in tuple(self.sessions):
                await session.done.wait()
        for session in tuple(self.sessions):
            session.kick(code, reason)
        with anyio.move_on_after(self.options.close_timeout):
            for session in tuple(self.sessions):
                await session.done.wait()

    async def _handle(self, stream: SocketStream, slot: _Slot) -> None:
        try:
            await self._serve_connection(stream, slot)
        except Exception:  # one bad client must never take the server down
            LOG.exception("WebSocket connection failed")
        finally:
            slot.release()
            # every way out closes the socket, cancellation at shutdown included
            # (a connection cancelled mid-handshake would otherwise keep its descriptor)
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _handshake(self, conn: ProtocolStream, protocol: ServerProtocol) -> Routed | None:
        """Read the HTTP request and answer it; None if the client left first.

        A refusal or a page is flushed here (so a client that does not read
        its answer is dropped by the handshake timeout too); the 101 of an
        accepted upgrade is queued for the caller to send.
        """
        from websockets.http11 import Request

        request = None
        while request is None and not conn.eof:
            request = next((e for e in await conn.receive() if isinstance(e, Request)), None)
        if request is None:
            return None
        routed = route(protocol, request, self._policy)
        protocol.send_response(routed.response)
        if not routed.upgrade:
            self._stats["refused"] += routed.response.status_code >= 400
            await conn.flush()
        return routed

    async def _serve_connection(self, stream: SocketStream, slot: _Slot) -> None:
        from websockets.server import ServerProtocol

        self._stats["connections"] += 1
        # origins are checked by route() (same-origin default), not by websockets
        protocol = ServerProtocol(max_size=self.max_message_size, logger=self._log)
        conn = ProtocolStream(protocol, stream)
        routed = None
        with slot.scope:  # the handshake timeout (from accept) or shedding cancels it
            routed = await self._handshake(conn, protocol)
        if slot.scope.cancelled_caught and not slot.shed_off:
            self._stats["handshake_timeouts"] += 1
        if routed is None or not routed.upgrade:
            await conn.aclose()
            return
        session = ClientSession(conn, self.options, self._on_text)
        hello = {"type": "hello", "server": "dspex", "version": __version__, "protocol": 1}
        session.send(encode({**hello, **self.hello, "replay_available": len(self._replay)}), FINAL)
        if routed.replay:
            self.replay_to(session, routed.replay)
        # Registered before the 101 response leaves: a client that has seen its
        # handshake complete receives every message broadcast after that (and only
        # those: what is held was broadcast before, and may be in its replay).
        self.flush()
        self.sessions.add(session)
        if self._joined is not None:
            self._joined.set()
        slot.release()  # authenticated: no longer counts against max_handshakes
        try:
            await conn.flush()
            await session.run()
        finally:
            self.sessions.discard(session)
            self._stats["dropped"] += session.queue.dropped
            self._stats["kicked"] += session.close_code == SLOW_CODE

    def _on_text(self, session: ClientSession, text: str) -> None:
        self.flush()  # what was broadcast before this message reaches the client before the answer
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "replay":
            last = message.get("last", self._replay.maxlen) if isinstance(message, dict) else 0
            if isinstance(last, int) and not isinstance(last, bool) and last >= 0:
                self.replay_to(session, last)
                return
            error = f"replay 'last' must be a non-negative integer, got {last!r}"
        elif kind == "ping":
            pong: dict[str, Any] = {"type": "pong"}
            if isinstance(message, dict) and "id" in message:
                pong["id"] = message["id"]
            session.send(encode(pong), DETAIL)
            return
        elif message is None:
            error = f"client messages must be JSON objects, got {text[:80]!r}"
        else:
            error = f"unknown message type {kind!r}; expected 'replay' or 'ping'"
        session.send(encode({"type": "error", "message": error}), DETAIL)

    async def _watchdog(self) -> None:
        limit = self.options.slow_client_limit_s
        while True:
            await anyio.sleep(max(0.02, min(1.0, limit / 4)))
            now = anyio.current_time()
            for session in tuple(self.sessions):
                if session.queue.behind_for(now) > limit:
                    session.kick(SLOW_CODE, f"client too slow: behind for more than {limit:g} s")


@asynccontextmanager
async def open_websocket_server(**kwargs: Any) -> AsyncIterator[WebSocketServer]:
    """Run a :class:`WebSocketServer` for the duration of the block.

    On exit every client is closed with 1001 (after its queue drains, within
    ``close_timeout``) and the listener stops. Keyword arguments are those of
    :class:`WebSocketServer`.
    """
    server = WebSocketServer(**kwargs)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        try:
            yield server
        finally:
            with anyio.CancelScope(shield=True):
                await server.shutdown()
            tg.cancel_scope.cancel()


class _Slot:
    """One accepted connection's handshake slot (taken by the accept loop).

    ``scope`` bounds the handshake: its deadline is ``handshake_timeout`` after
    the accept, and :meth:`shed` cancels it early. :meth:`release` frees the
    slot (once) when the handshake ends, however it ends.
    """

    __slots__ = ("_held", "_pending", "_slots", "accepted_at", "scope", "shed_off")

    def __init__(self, server: WebSocketServer, slots: anyio.Semaphore) -> None:
        self._slots, self._pending = slots, server._pending
        self.accepted_at = anyio.current_time()
        self.scope = anyio.CancelScope(deadline=self.accepted_at + server.handshake_timeout)
        self.shed_off = False
        self._held = True
        self._pending[self] = None

    def shed(self) -> None:
        """Drop this handshake to make room (a no-op once it has ended)."""
        if self in self._pending:
            del self._pending[self]
            self.shed_off = True
            self.scope.cancel()

    def release(self) -> None:
        """Free the slot; later calls do nothing."""
        if self._held:
            self._held = False
            self._pending.pop(self, None)
            self._slots.release()


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"websocket sink: {message}")
