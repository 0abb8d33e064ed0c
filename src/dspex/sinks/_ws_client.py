"""``dx.sinks.websocket_client``: push a flow's events and records to a remote server.

The sink keeps one client connection to ``url`` open while the flow runs and
reconnects with exponential backoff and full jitter when it drops. Every message
gets a ``push_id`` (1, 2, ...). Final results (``prediction_done``,
``item_error``, ``record``, ``run_done``) stay in a bounded replay buffer until
the server acknowledges them with ``{"type": "ack", "push_id": n}`` (cumulative)
and are sent again after a reconnect, so delivery is at-least-once (servers
dedupe by ``push_id``). With ``acks=False`` a final result counts as delivered
once written to the socket. Token-level and detail messages are best-effort:
they wait in a bounded buffer (the oldest is dropped when it is full) and are
never re-sent. Writing never blocks the flow.
"""

from __future__ import annotations

import json
import logging
import random
from collections import deque
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

from .._util._redact import redact
from .._ws._conn import WebSocketConnection, open_connection
from ..errors import ConfigError, SinkError
from ._base import Sink
from ._encode import dumps
from ._ws_clients import FINAL, tier_of

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..events import Event

__all__ = ["WebSocketClientSink", "websocket_client"]

LOG = logging.getLogger("dspex.websocket")
_FATAL_STATUS = (401, 403, 404)


class WebSocketClientSink(Sink):
    """Push events and records to a remote WebSocket server, reconnecting.

    See :func:`websocket_client`. ``statistics()`` reports ``sent``, ``acked``,
    ``resent``, ``evicted`` (finals pushed out of a full replay buffer),
    ``dropped`` (live messages lost) and ``connections``.
    """

    wants_events = True

    def __init__(
        self,
        url: str,
        token: str | None = None,
        replay_buffer: int = 1000,
        *,
        queue_size: int = 1000,
        acks: bool = True,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        connect_timeout: float = 10.0,
        close_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"websocket_client url {redact(url, (token,))!r} must start with ws:// or wss://")
        if replay_buffer < 1 or queue_size < 1:
            raise ConfigError(
                f"websocket_client replay_buffer ({replay_buffer!r}) and queue_size "
                f"({queue_size!r}) must be >= 1"
            )
        self.url, self.token, self.acks = url, token, acks
        self.name = name or f"websocket_client:{redact(url, (token,))}"  # names reach logs and errors
        self.replay_buffer, self.queue_size = replay_buffer, queue_size
        self.backoff = (backoff_initial, backoff_max)
        self.connect_timeout, self.close_timeout = connect_timeout, close_timeout
        self.connected = anyio.Event()
        self.last_error: SinkError | None = None
        self._unsent: deque[tuple[int, bytes]] = deque()  # finals not yet written
        self._inflight: deque[tuple[int, bytes]] = deque()  # finals written, not acked
        self._live: deque[tuple[int, bytes]] = deque()  # token/detail messages
        self._next_id = 0
        self._wakeup = anyio.Event()
        self._closing = False
        self._stack: AsyncExitStack | None = None
        self._serving = False
        self._done = anyio.Event()
        self._stats = dict.fromkeys(("sent", "acked", "resent", "evicted", "dropped", "connections"), 0)

    def statistics(self) -> dict[str, Any]:
        """Delivery counters plus the current buffer sizes."""
        pending = {"unsent": len(self._unsent), "unacked": len(self._inflight), "live": len(self._live)}
        return {**self._stats, **pending}

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection up (reconnecting) until closed and drained, or cancelled.

        The flow engine starts this in a task group that outlives :meth:`aclose`.
        """
        self._serving, self._closing = True, False
        self._done, self._wakeup = anyio.Event(), anyio.Event()
        task_status.started()
        await self._run()

    async def open(self) -> None:
        """Start the connection task unless the engine already runs :meth:`serve`.

        Does not wait for the server to be reachable. Standalone, open and
        close from the same task (``async with sink:``).
        """
        if self._serving or self._stack is not None:
            return
        stack = AsyncExitStack()
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        await tg.start(self.serve)
        self._stack = stack

    async def write_event(self, event: Event) -> None:
        """Queue one event for the server. Never blocks."""
        self._push(event.to_wire())

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Queue each record as a ``record`` message. Never blocks."""
        for record in records:
            self._push({"type": "record", "data": record})

    def _push(self, message: dict[str, Any]) -> None:
        if self.last_error is not None and self.last_error.status in _FATAL_STATUS:
            raise self.last_error
        self._next_id += 1
        message["push_id"] = self._next_id
        try:
            entry = (self._next_id, dumps(message).encode("utf-8", errors="surrogatepass"))
        except (TypeError, ValueError) as exc:
            raise SinkError(f"{self.name}: message cannot be encoded as JSON ({exc})") from exc
        if tier_of(message.get("type")) == FINAL:
            if len(self._unsent) + len(self._inflight) >= self.replay_buffer:
                (self._inflight or self._unsent).popleft()
                self._stats["evicted"] += 1
            self._unsent.append(entry)
        else:
            if len(self._live) >= self.queue_size:
                self._live.popleft()
                self._stats["dropped"] += 1
            self._live.append(entry)
        self._wakeup.set()

    async def aclose(self) -> None:
        """Deliver what is pending (within ``close_timeout``), then disconnect."""
        if not self._serving:
            return
        stack, self._stack = self._stack, None
        self._serving = False
        self._closing = True
        self._wakeup.set()
        try:
            with anyio.move_on_after(self.close_timeout):
                await self._done.wait()
            lost = len(self._unsent) + len(self._inflight)
            if lost:
                LOG.warning("%s: %d final results not confirmed by the server", self.name, lost)
        finally:
            if stack is not None:
                await stack.aclose()

    async def _run(self) -> None:
        attempt = 0
        while not (self._closing and self._drained()):
            try:
                conn = await open_connection(
                    self.url, token=self.token, connect_timeout=self.connect_timeout, error=SinkError
                )
            except SinkError as exc:
                self.last_error = exc
                if exc.status in _FATAL_STATUS:
                    LOG.error("%s: %s (not retrying)", self.name, exc)
                    break
                initial, cap = self.backoff
                await anyio.sleep(random.uniform(0, min(cap, initial * 2**attempt)))
                attempt += 1
                continue
            attempt = 0
            self._stats["connections"] += 1
            self.connected.set()
            await self._serve(conn)
        self._done.set()

    async def _serve(self, conn: WebSocketConnection) -> None:
        # finals written on a previous connection but never acknowledged go first
        self._stats["resent"] += len(self._inflight)
        self._unsent.extendleft(reversed(self._inflight))
        self._inflight.clear()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._receive, conn, tg.cancel_scope)
                await self._send_loop(conn)
                tg.cancel_scope.cancel()
        finally:
            await conn.aclose(close_timeout=min(1.0, self.close_timeout))

    async def _send_loop(self, conn: WebSocketConnection) -> None:
        while True:
            batch = self._take_batch()
            if batch:
                if not await conn.send(*batch):
                    return
                self._stats["sent"] += len(batch)
                if not self.acks:
                    self._stats["acked"] += len(self._inflight)
                    self._inflight.clear()
            elif self._closing and self._drained():
                return
            else:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()

    def _take_batch(self, limit: int = 256) -> list[bytes]:
        batch: list[bytes] = []
        unsent, live = self._unsent, self._live
        while (unsent or live) and len(batch) < limit:
            if unsent and (not live or unsent[0][0] < live[0][0]):
                entry = unsent.popleft()
                self._inflight.append(entry)
            else:
                entry = live.popleft()
            batch.append(entry[1])
        return batch

    def _drained(self) -> bool:
        return not (self._unsent or self._inflight or self._live)

    async def _receive(self, conn: WebSocketConnection, scope: anyio.CancelScope) -> None:
        while (text := await conn.recv()) is not None:
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("type") == "ack":
                self._ack(message.get("push_id"))
        scope.cancel()  # the server went away: reconnect

    def _ack(self, push_id: Any) -> None:
        if not isinstance(push_id, int):
            return
        while self._inflight and self._inflight[0][0] <= push_id:
            self._inflight.popleft()
            self._stats["acked"] += 1
        self._wakeup.set()


def websocket_client(url: str, token: str | None = None, replay_buffer: int = 1000, **options: Any) -> WebSocketClientSink:
    """Push the flow's events and final records to a remote WebSocket server.

    Connects to ``url`` when the flow starts and reconnects with exponential
    backoff and full jitter whenever the connection drops; a refusal with HTTP
    401/403/404 is final (the next write raises it). Each message is the
    event's wire JSON (or ``{"type": "record", "data": ...}``) plus a
    ``push_id``. Final results wait in a replay buffer of ``replay_buffer``
    messages until the server acknowledges them (``{"type": "ack",
    "push_id": n}``, cumulative) and are re-sent after a reconnect; when the
    buffer is full the oldest is evicted (counted in ``statistics()``).
    Writing never blocks the flow.

    Args:
        url: ``ws://`` or ``wss://`` URL of the server.
        token: Sent as ``Authorization: Bearer <token>``.
        replay_buffer: Most final results kept until acknowledged.
        **options: ``queue_size`` (live messages kept while disconnected,
            1000), ``acks`` (True; False trusts the socket write),
            ``backoff_initial`` (0.1 s), ``backoff_max`` (5 s),
            ``connect_timeout`` (10 s), ``close_timeout`` (5 s), ``name``.

    Raises:
        ConfigError: Bad URL scheme, buffer size or option name.
    """
    allowed = {"queue_size", "acks", "backoff_initial", "backoff_max", "connect_timeout", "close_timeout", "name"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"websocket_client: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
    return WebSocketClientSink(url, token, replay_buffer, **options)
