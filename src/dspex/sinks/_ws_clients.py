"""Per-client bounded queues and the slow-client policy of the WebSocket sink.

Every connected client owns a :class:`ClientQueue` of encoded messages, and a
:class:`ClientSession` whose writer task drains it onto the socket. The producer
(the flow, through the server) only ever calls :meth:`ClientSession.deliver`,
``send`` or ``send_many``, which never block. A client that keeps up (nothing
queued, its socket taking bytes) gets a broadcast batch written at once, the
same bytes for every client, without its writer waking (:meth:`ClientSession.deliver`);
any other client gets it queued. When a queue is full, token-level messages (``token_delta``, ``field_delta``) are dropped
first, then detail messages (``field_done``, ``usage``, ``metrics``, ...); final
results (``prediction_done``, ``item_error``, ``record``, ``run_done``) are never
dropped. A client whose queue is full of final results, or that stays behind for
longer than the slow-client limit, is disconnected with close code 1008.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from websockets.frames import Frame

    from .._ws._conn import ProtocolStream

__all__ = [
    "DETAIL",
    "FINAL",
    "TOKEN",
    "ClientQueue",
    "ClientSession",
    "FlushTick",
    "SessionOptions",
    "encode",
    "tier_of",
]

TOKEN, DETAIL, FINAL = 0, 1, 2
TOKEN_TYPES = frozenset({"token_delta", "field_delta"})
FINAL_TYPES = frozenset({"prediction_done", "item_error", "record", "run_done"})
SLOW_CODE = 1008
INVALID_DATA_CODE = 1007
_BATCH = 256


def tier_of(message_type: str | None) -> int:
    """Return the drop tier of a message type: TOKEN, DETAIL or FINAL."""
    if message_type in TOKEN_TYPES:
        return TOKEN
    if message_type in FINAL_TYPES:
        return FINAL
    return DETAIL


def encode(message: dict[str, Any]) -> bytes:
    """Encode one wire message as compact UTF-8 JSON."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def server_frame(data: bytes) -> bytes:
    """Return ``data`` as one unmasked WebSocket text frame (server side, no extensions).

    A broadcast message is framed once with websockets' own serializer and
    the same bytes are queued for every client (see :meth:`ClientSession.send`).
    """
    from websockets.frames import Frame, Opcode

    return Frame(Opcode.TEXT, data).serialize(mask=False)


class _Entry:
    __slots__ = ("data", "frame", "live", "tier")

    def __init__(self, data: bytes, tier: int, frame: bytes | None) -> None:
        self.data = data
        self.tier = tier
        self.frame = frame
        self.live = True


class ClientQueue:
    """A bounded FIFO of encoded messages that drops by tier when full.

    ``push`` never blocks. When ``capacity`` messages are queued, a new message
    evicts the oldest queued message of a lower tier (token first, then
    detail), or is itself dropped if nothing lower is queued. A final result
    that finds the queue full of final results is refused (``push`` returns
    False): the caller must disconnect the client. Order is preserved among
    the messages that are delivered.

    Args:
        capacity: Most messages held at once (at least 1).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.dropped = 0
        self.peak = 0
        self.behind_since: float | None = None
        self._entries: deque[_Entry] = deque()
        self._tiers: tuple[deque[_Entry], ...] = (deque(), deque(), deque())
        self._live = 0
        self._unreported = 0
        self._wakeup = anyio.Event()

    def __len__(self) -> int:
        return self._live

    def push(self, data: bytes, tier: int, frame: bytes | None = None) -> bool:
        """Queue ``data`` (with its ready-made ``frame``, if any); False only when a
        final result cannot be held."""
        if self._live >= self.capacity:
            if self.behind_since is None:
                self.behind_since = anyio.current_time()
            if not self._evict_below(tier):
                if tier == FINAL:
                    return False
                self._count_drop()
                return True
        entry = _Entry(data, tier, frame)
        self._entries.append(entry)
        self._tiers[tier].append(entry)
        self._live += 1
        if self._live > self.peak:
            self.peak = self._live
        if self._live == 1:  # only an empty queue has a waiter to wake
            self._wakeup.set()
        return True

    def _evict_below(self, tier: int) -> bool:
        for lower in range(tier):
            if self._tiers[lower]:
                self._tiers[lower].popleft().live = False
                self._live -= 1
                self._count_drop()
                return True
        return False

    def _count_drop(self) -> None:
        self.dropped += 1
        self._unreported += 1

    def pop_batch(self, limit: int = _BATCH) -> list[bytes]:
        """Take up to ``limit`` messages, preceded by a ``dropped`` notice if any."""
        return [entry.data for entry in self.pop_entries(limit)]

    def pop_entries(self, limit: int = _BATCH) -> list[_Entry]:
        """Like :meth:`pop_batch`, but each message with its ready-made frame (or None)."""
        out: list[_Entry] = []
        if self._unreported and self._live:
            notice = encode({"type": "dropped", "count": self._unreported, "total": self.dropped})
            out.append(_Entry(notice, DETAIL, None))
            self._unreported = 0
        entries, tiers = self._entries, self._tiers
        while entries and len(out) < limit:
            entry = entries.popleft()
            if entry.live:
                tiers[entry.tier].popleft()
                self._live -= 1
                out.append(entry)
        if self._live <= self.capacity // 2:
            self.behind_since = None
        if not self._live and self._wakeup.is_set():  # drained: a later wait() must block
            self._wakeup = anyio.Event()
        return out

    def wake(self) -> None:
        """Wake the waiter even though nothing was queued (e.g. to close)."""
        self._wakeup.set()

    async def wait(self) -> None:
        """Block until a message is queued or :meth:`wake` is called."""
        if not self._live:
            await self._wakeup.wait()
        self._wakeup = anyio.Event()

    def behind_for(self, now: float) -> float:
        """Seconds this queue has been full without draining (0 if not behind)."""
        return 0.0 if self.behind_since is None else now - self.behind_since


class FlushTick:
    """How long the server holds broadcasts before writing them to every client.

    Why: one token broadcast to N clients costs N socket writes (and N
    wake-ups of the readers). Holding broadcasts for a short interval lets
    every client receive all the messages of one interval in one write, so
    the cost per token falls as tokens arrive faster, while a message waits
    at most one interval (plus the time to serve the clients ahead of it).
    The interval grows with the fan-out: ``interval`` at ``full_at`` clients
    or more, proportionally less below, and no holding at all under
    ``MIN_HOLD`` (a few clients are cheap to serve at once; holding would
    only add latency).

    Args:
        interval: Longest hold in seconds (0 disables holding).
        clients: Returns the current number of clients (None: always ``full_at``).
        full_at: The client count from which the whole ``interval`` applies.
    """

    __slots__ = ("clients", "full_at", "interval")

    MIN_HOLD = 0.0005

    def __init__(self, interval: float, clients: Callable[[], int] | None = None, full_at: int = 100) -> None:
        self.interval = interval
        self.clients = clients
        self.full_at = max(1, full_at)

    def hold(self) -> float:
        """The interval for the current number of clients (0: do not hold)."""
        share = 1.0 if self.clients is None else min(1.0, self.clients() / self.full_at)
        hold = self.interval * share
        return hold if hold >= self.MIN_HOLD else 0.0


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Timing and size knobs shared by every client session."""

    queue_size: int = 1000
    slow_client_limit_s: float = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 5.0
    flush_interval: float = 0.002


class ClientSession:
    """One connected client: a reader, a writer and a keep-alive pinger.

    Args:
        conn: The open connection (handshake done).
        options: Queue size and timing knobs.
        on_text: Called with (session, text) for each client text message.
    """

    def __init__(
        self,
        conn: ProtocolStream,
        options: SessionOptions,
        on_text: Callable[[ClientSession, str], None],
    ) -> None:
        self.conn = conn
        self.options = options
        self.queue = ClientQueue(options.queue_size)
        self.on_text = on_text
        self.done = anyio.Event()
        self.close_code: int | None = None
        self._closing: tuple[int, str] | None = None
        self._kick: tuple[int, str] | None = None
        self._scope: anyio.CancelScope | None = None
        self._fragments: list[bytes] | None = None
        self._ping: bytes = b""
        self._pong = anyio.Event()
        from websockets.protocol import State  # websockets is imported once a client connects

        self._open = State.OPEN  # looked up once: deliver() runs per client and broadcast

    def send(self, data: bytes, tier: int, frame: bytes | None = None) -> None:
        """Queue one message without blocking; disconnect the client if it cannot keep up.

        ``frame`` is ``data`` already framed by :func:`server_frame` (shared by
        every client of a broadcast); without it the writer frames ``data``.
        """
        if self._kick is not None or self._closing is not None:
            return
        if not self.queue.push(data, tier, frame):
            self.kick(SLOW_CODE, f"client too slow: {self.queue.capacity} final results pending")
            return
        self._check_behind()

    def send_many(self, messages: Sequence[tuple[bytes, int, bytes | None]]) -> None:
        """Queue several ``(data, tier, frame)`` messages; the writer wakes once for all."""
        if self._kick is not None or self._closing is not None:
            return
        push = self.queue.push
        for data, tier, frame in messages:
            if not push(data, tier, frame):
                self.kick(SLOW_CODE, f"client too slow: {self.queue.capacity} final results pending")
                return
        self._check_behind()

    def deliver(self, messages: Sequence[tuple[bytes, int, bytes]], frames: bytes) -> bool:
        """Hand a broadcast batch over: written at once if the client keeps up, else queued.

        ``frames`` is every message of ``messages`` framed (the same bytes for
        every client). A client with nothing queued, nothing in flight and a
        socket that takes bytes gets them written now, without a wake-up of
        its writer (which only sends what the socket did not take); any other
        client gets the messages queued, under the slow-client policy.
        Never blocks. Returns True if the batch was written at once.
        """
        protocol = self.conn.protocol
        if (self._kick is None and self._closing is None and not self.queue
                and protocol.state is self._open and not protocol.extensions and self.conn.write_nowait(frames)):
            if self.conn.tail:
                self.queue.wake()  # the writer sends the rest
            return True
        self.send_many(messages)
        return False

    def _check_behind(self) -> None:
        limit = self.options.slow_client_limit_s
        if self.queue.behind_since is not None and self.queue.behind_for(anyio.current_time()) > limit:
            self.kick(SLOW_CODE, f"client too slow: behind for more than {limit:g} s")

    def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close gracefully: deliver what is queued, then send a close frame."""
        if self._closing is None:
            self._closing = (code, reason)
            self.queue.wake()

    def kick(self, code: int, reason: str) -> None:
        """Disconnect soon, without waiting: send a close frame if the socket takes it.

        The writer stops sending queued messages and sends the close frame; a
        writer stuck on a full socket is cancelled after a short deadline
        (``min(1 s, close_timeout)``) and the socket is dropped.
        """
        if self._kick is not None:
            return
        self._kick = (code, reason)
        self.queue.wake()
        if self._scope is not None:
            self._arm_kick(self._scope)

    def _arm_kick(self, scope: anyio.CancelScope) -> None:
        grace = min(1.0, self.options.close_timeout)
        scope.deadline = min(scope.deadline, anyio.current_time() + grace)

    async def run(self) -> None:
        """Serve the client until it leaves, is kicked, or the server closes it."""
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if self._kick is not None:
                    self._arm_kick(tg.cancel_scope)
                tg.start_soon(self._writer)
                tg.start_soon(self._pinger)
                await self._reader()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish()
            self.done.set()

    async def _finish(self) -> None:
        from websockets.protocol import State

        protocol = self.conn.protocol
        if self._kick is not None and protocol.state is State.OPEN and not self.conn.broken:
            protocol.fail(*self._kick)
            with anyio.move_on_after(min(1.0, self.options.close_timeout)):
                await self.conn.flush()
        if self._kick is not None:
            self.close_code = self._kick[0]
        elif protocol.close_sent is not None:
            self.close_code = protocol.close_sent.code
        await self.conn.aclose()

    async def _reader(self) -> None:
        from websockets.protocol import State

        protocol = self.conn.protocol
        while not self.conn.eof and protocol.state is not State.CLOSED:
            timeout = self.options.close_timeout if protocol.close_expected() else math.inf
            with anyio.move_on_after(timeout) as scope:
                events = await self.conn.receive()
            if scope.cancelled_caught:
                return
            for event in events:
                self._on_frame(event)  # type: ignore[arg-type]

    def _on_frame(self, frame: Frame) -> None:
        from websockets.frames import Opcode

        if frame.opcode is Opcode.PONG:
            if frame.data == self._ping:
                self._pong.set()
        elif frame.opcode is Opcode.TEXT:
            self._fragments = [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
        elif frame.opcode is Opcode.BINARY:
            self._fragments = None
            msg = "binary messages are not supported; send JSON text"
            self.send(encode({"type": "error", "message": msg}), DETAIL)
        if frame.fin and self._fragments is not None and frame.opcode in (Opcode.TEXT, Opcode.CONT):
            data, self._fragments = b"".join(self._fragments), None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:  # RFC 6455 §8.1: fail the connection with 1007
                self.kick(INVALID_DATA_CODE, f"invalid UTF-8 in a text message at byte {exc.start}")
                return
            self.on_text(self, text)

    async def _writer(self) -> None:
        from websockets.protocol import State

        protocol = self.conn.protocol
        while True:
            if self._kick is not None:
                if protocol.state is State.OPEN:
                    protocol.fail(*self._kick)
                await self.conn.flush()
                return
            batch = self.queue.pop_entries()
            if batch or self.conn.tail:
                if protocol.state is not State.OPEN:
                    return
                _frame_into(protocol, batch)
                if not await self.conn.flush():
                    return
            elif self._closing is not None:
                if protocol.state is State.OPEN:
                    protocol.send_close(*self._closing)
                    await self.conn.flush()
                return
            else:
                await self.queue.wait()

    async def _pinger(self) -> None:
        from websockets.protocol import State

        interval = self.options.ping_interval
        protocol = self.conn.protocol
        while interval and protocol.state is State.OPEN:
            await anyio.sleep(interval)
            self._ping, self._pong = os.urandom(4), anyio.Event()
            with anyio.move_on_after(self.options.ping_timeout) as scope:
                if protocol.state is not State.OPEN:
                    return
                protocol.send_ping(self._ping)
                await self.conn.flush()
                await self._pong.wait()
            if scope.cancelled_caught:
                self.kick(1011, "keepalive ping timeout")
                return


def _frame_into(protocol: Any, batch: list[_Entry]) -> None:
    """Queue ``batch`` on ``protocol`` as text frames, reusing ready-made frames.

    A ready-made frame is valid only for a server connection without
    extensions (no compression: the bytes are the same for every client) and
    outside a fragmented message; then it goes straight into the protocol's
    output (``writes``, what ``send_frame`` appends to), in order with the
    protocol's own frames. Otherwise websockets frames the message itself.
    """
    from websockets.protocol import Side

    shared = protocol.side is Side.SERVER and not protocol.extensions and not protocol.expect_continuation_frame
    writes = protocol.writes
    for entry in batch:
        if shared and entry.frame is not None:
            writes.append(entry.frame)
        else:
            protocol.send_text(entry.data)
