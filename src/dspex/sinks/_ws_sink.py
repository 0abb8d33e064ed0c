"""``dx.sinks.websocket``: broadcast a flow's events live to WebSocket clients.

The sink runs a :class:`~._ws_server.WebSocketServer` while the flow runs. Every
module event the engine forwards (tokens, field deltas, tool calls, retries,
final predictions, item errors, metrics, run done) becomes one JSON message
(``event.to_wire()``), and every final record written to the sink a ``record``
message. Writing never blocks the flow: each client has its own bounded queue
(see :mod:`._ws_clients`). The flow engine publishes run-level ``metrics``
events (items, items/s, in flight, queue depths, tokens, cost); meanwhile the
sink's own ``metrics`` event, every ``metrics_interval`` seconds, carries only
its client count and dropped messages. Without engine metrics (a sink used
on its own) it also counts items done/failed, items/s, tokens and cost from
the events it sees, for the live page served on the same port.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ConfigError, SinkError
from ..events import Metrics
from ._base import Sink
from ._encode import dumps
from ._ws_clients import FINAL, SessionOptions, tier_of
from ._ws_server import WebSocketServer

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ..events import Event

__all__ = ["WebSocketSink", "websocket"]

MiB = 2**20


class WebSocketSink(Sink):
    """A sink that serves the flow's events to WebSocket clients and a live page.

    The server runs in :meth:`serve` (started by the flow engine before
    ``open()``, or by ``open()`` itself when used standalone); ``url`` and
    ``page_url`` are known from then on. ``write_event``/``write`` queue
    messages for every client and return without waiting; ``aclose()``
    delivers what is queued and closes every client with code 1001. See
    :func:`websocket` for the arguments.
    """

    wants_events = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/",
        token: str | None = None,
        origins: Iterable[str] | None = None,
        *,
        max_message_size: int = MiB,
        queue_size: int = 1000,
        slow_client_limit_s: float = 10.0,
        replay: int = 100,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 20.0,
        close_timeout: float = 5.0,
        flush_interval: float = 0.002,
        metrics_interval: float | None = 1.0,
        handshake_timeout: float = 10.0,
        max_handshakes: int = 64,
        page: bool = True,
        name: str | None = None,
        wait_for_client_s: float = 0.0,
        linger_s: float = 0.0,
    ) -> None:
        for key, value in (("wait_for_client_s", wait_for_client_s), ("linger_s", linger_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"websocket sink: {key} must be a number of seconds >= 0, got {value!r}")
        self.wait_for_client_s = float(wait_for_client_s)
        self.linger_s = float(linger_s)
        self.waited_s = self.lingered_s = 0.0  # time the last run spent on either, for reports
        options = SessionOptions(
            queue_size=queue_size,
            slow_client_limit_s=slow_client_limit_s,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            flush_interval=flush_interval,
        )
        self.server = WebSocketServer(
            host=host, port=port, path=path, token=token, origins=origins,
            max_message_size=max_message_size, options=options, replay=replay, page=page,
            handshake_timeout=handshake_timeout, max_handshakes=max_handshakes,
        )  # validates eagerly: bad arguments fail at flow build time
        self.server.hello["records"] = True  # final records arrive as ``record`` messages
        self.name = name or f"websocket:{host}:{port}{path}"
        self.metrics_interval = metrics_interval
        self._stack: AsyncExitStack | None = None
        self._serving = False
        self.started = anyio.Event()  # set once serving: ``url`` is known
        self._counts = {"items_done": 0, "items_failed": 0, "tokens": 0, "cost": 0.0, "records": 0}
        self._window: tuple[float, float] = (0.0, 0)
        self._run: str | None = None
        self._engine_metrics_at: float | None = None

    @property
    def url(self) -> str:
        """``ws://host:port/path`` once the sink is open (the flow is running)."""
        return self.server.url

    @property
    def page_url(self) -> str:
        """``http://host:port/``: the live page, once the sink is open."""
        return self.server.page_url

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the server (and the metrics publisher) until cancelled.

        The flow engine starts this in a task group that outlives
        :meth:`aclose`; reports started once the port is bound.
        """
        async with anyio.create_task_group() as tg:
            await tg.start(self.server.serve)
            if self.metrics_interval:
                tg.start_soon(self._publish_metrics, self.metrics_interval)
            self._serving = True
            self.started.set()
            task_status.started()

    async def open(self) -> None:
        """Start serving unless the engine already runs :meth:`serve`.

        Standalone (``async with sink:``), the sink owns a task group from
        ``open()`` to ``aclose()``, so both must be called by the same task,
        nested like a context manager.
        """
        if not (self._serving or self._stack is not None):
            stack = AsyncExitStack()
            try:
                tg = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(tg.cancel_scope.cancel)
                await tg.start(self.serve)
            except OSError as exc:
                await stack.aclose()
                raise SinkError(f"{self.name}: cannot listen on {self.server.host}: {exc}") from exc
            self._stack = stack
        if self.wait_for_client_s:
            # the flow opens its sinks before its sources start: holding here lets
            # a viewer see the run from its first token
            start = anyio.current_time()
            with anyio.move_on_after(self.wait_for_client_s):
                await self.server.wait_for_client()
            self.waited_s = anyio.current_time() - start

    async def _linger(self) -> None:
        """Keep serving up to ``linger_s`` after the last event, while any viewer stays."""
        start = anyio.current_time()
        with anyio.move_on_after(self.linger_s):
            while True:
                await anyio.sleep(0.1)
                if not self.server.sessions and anyio.current_time() - start >= 1.0:
                    break  # everyone left (a second's grace for a page still connecting)
        self.lingered_s = anyio.current_time() - start

    async def write_event(self, event: Event) -> None:
        """Queue one event for every client. Never blocks or suspends."""
        self.server.broadcast(*self._message(event))

    async def write_events(self, events: Sequence[Event]) -> None:
        """Queue several events for every client, in order (one wake-up per client).

        The flow engine calls this with whatever events are ready at once.
        Each event is encoded (and framed) once, whatever the number of clients.
        """
        self.server.broadcast_many([self._message(event) for event in events])

    def _message(self, event: Event) -> tuple[bytes, int]:
        try:
            wire = event.to_wire()
        except (TypeError, ValueError):
            wire = event.model_dump(exclude_none=True)
        kind = wire.get("type")
        self._count(kind, wire)
        if kind == "metrics" and wire.get("node") is None:
            self._engine_metrics_at = anyio.current_time()  # the flow engine reports the run
        if self._run is None and wire.get("run"):
            self._run = str(wire["run"])
            self.server.hello["run"] = self._run
        return _encode(wire), tier_of(kind)

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Queue each final record as a ``record`` message. Never blocks."""
        messages = []
        for record in records:
            self._counts["records"] += 1
            message: dict[str, Any] = {"type": "record", "data": record}
            item_id = record.get("id") if hasattr(record, "get") else None
            if item_id is not None:
                message["item_id"] = str(item_id)
            messages.append((_encode(message), FINAL))
        self.server.broadcast_many(messages)

    def statistics(self) -> dict[str, Any]:
        """Server counters plus what this sink has seen (items, tokens, cost)."""
        return {**self._counts, **self.server.statistics()}

    async def aclose(self) -> None:
        """Send a last metrics event, drain every client and close them with 1001."""
        if not self._serving:
            return
        if self.linger_s:
            await self._linger()
        stack, self._stack = self._stack, None
        self._serving = False
        self.started = anyio.Event()
        try:
            if self.metrics_interval:
                self._broadcast_metrics()
            self._engine_metrics_at = None  # a reused sink starts over
            await self.server.shutdown()
        finally:
            if stack is not None:
                await stack.aclose()

    def _count(self, kind: Any, wire: Mapping[str, Any]) -> None:
        counts = self._counts
        if kind == "prediction_done":
            counts["items_done"] += 1
        elif kind == "item_error":
            counts["items_failed"] += 1
        elif kind == "usage":
            counts["tokens"] += int(wire.get("input_tokens", 0)) + int(wire.get("output_tokens", 0))
            counts["cost"] += float(wire.get("cost", 0.0))

    async def _publish_metrics(self, interval: float) -> None:
        self._window = (anyio.current_time(), 0)
        while True:
            await anyio.sleep(interval)
            self._broadcast_metrics()

    def _engine_reports(self) -> bool:
        seen = self._engine_metrics_at
        return seen is not None and anyio.current_time() - seen <= 2 * max(self.metrics_interval or 0, 0.5)

    def _client_values(self) -> dict[str, Any]:
        stats = self.server.statistics()
        return {"ws_clients": stats["clients"], "ws_dropped": stats["dropped"]}

    def _broadcast_metrics(self) -> None:
        if self._engine_reports():  # the run's figures come from the engine: add the clients only
            event = Metrics(run=self._run, node=self.name, values=self._client_values())
            self.server.broadcast(_encode(event.to_wire()), tier_of("metrics"))
            return
        now = anyio.current_time()
        done = self._counts["items_done"] or self._counts["records"]
        since, before = self._window
        rate = (done - before) / (now - since) if now > since else 0.0
        self._window = (now, done)
        values = {
            **self._counts,
            "items_per_s": round(rate, 2),
            "cost": round(self._counts["cost"], 6),
            **self._client_values(),
        }
        event = Metrics(run=self._run, node=self.name, values=values)
        self.server.broadcast(_encode(event.to_wire()), tier_of("metrics"))


def _encode(message: Mapping[str, Any]) -> bytes:
    try:
        return dumps(message).encode("utf-8", errors="surrogatepass")
    except (TypeError, ValueError) as exc:
        raise SinkError(f"websocket sink: message cannot be encoded as JSON ({exc})") from exc


def websocket(
    host: str = "127.0.0.1",
    port: int = 0,
    path: str = "/",
    token: str | None = None,
    origins: Iterable[str] | None = None,
    **options: Any,
) -> WebSocketSink:
    """Serve the flow's events live over WebSocket (and a live page over HTTP).

    Every connected client receives each event as one JSON message whose
    ``"type"`` is the event's snake_case name (see ``docs/events.schema.json``).
    Writing never blocks the flow: each client has a bounded queue
    (``queue_size`` messages); when it is full, token-level messages are
    dropped first, then detail messages; final results (``prediction_done``,
    ``item_error``, ``record``, ``run_done``) are never dropped, and a client
    that cannot hold them, or stays behind for ``slow_client_limit_s``, is
    closed with code 1008. Clients without the bearer ``token`` get HTTP 401
    before the upgrade; browsers from a foreign origin get 403 (same-origin by
    default: the live page served on this port may connect, other web pages
    may not unless listed in ``origins``); client messages over
    ``max_message_size`` bytes close with 1009, text that is not UTF-8 with
    1007; shutdown closes with 1001. With many clients, messages are written
    to them together, at most every ``flush_interval`` seconds (the whole
    interval from 100 clients on, proportionally less below, not at all
    under 25), so each client gets everything of one interval in one write:
    what lets hundreds of clients follow a token stream. Late joiners get the last N final results
    with ``?replay=N`` or ``{"type": "replay", "last": N}`` (up to ``replay``).

    The listener never fails the flow: failed ``accept()`` calls (out of
    descriptors, aborted connections) are logged and retried with backoff; at
    most ``max_handshakes`` connections may be mid-handshake (not yet
    authenticated), each for at most ``handshake_timeout`` seconds, and when
    all are held the oldest one past 1 s is dropped for the newcomer.

    Args:
        host: Interface to listen on (loopback by default).
        port: TCP port; 0 picks a free one (read ``.url`` once running).
        path: WebSocket endpoint path; the live page is served at ``/``.
        token: Bearer token clients must present, or None for no auth
            (anyone who can reach the port, and the same-origin page, reads
            the feed: set one whenever ``host`` is not loopback).
        origins: Extra allowed browser origins (e.g.
            ``["https://app.example"]``), ``["*"]`` for any. Requests with no
            ``Origin`` header (non-browser clients) are always allowed.
        **options: ``max_message_size`` (1 MiB), ``queue_size`` (1000),
            ``slow_client_limit_s`` (10), ``replay`` (100), ``ping_interval``
            (20 s, None disables), ``ping_timeout`` (20 s), ``close_timeout``
            (5 s), ``flush_interval`` (0.002 s at 100+ clients; 0 writes
            each message at once), ``metrics_interval`` (1 s, None disables),
            ``handshake_timeout`` (10 s), ``max_handshakes`` (64), ``page``
            (True), ``name``, ``wait_for_client_s`` (0: when opened, wait up
            to this long for a first client, so the sources start once a page
            watches), ``linger_s`` (0: when closing, keep serving up to this
            long while a client is connected, so the page shows the finished
            run; raise ``Flow.run``'s ``sink_timeout_s`` above it).

    Returns:
        The sink; add it with ``node.sink(...)``.

    Raises:
        ConfigError: An argument is out of range (bad path, port or size).
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigError(
            f"websocket sink: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(sorted(_OPTIONS))}"
        )
    return WebSocketSink(host, port, path, token, origins, **options)


_OPTIONS = frozenset({
    "max_message_size", "queue_size", "slow_client_limit_s", "replay", "ping_interval",
    "ping_timeout", "close_timeout", "flush_interval", "metrics_interval", "handshake_timeout",
    "max_handshakes", "page", "name", "wait_for_client_s", "linger_s",
})
