"""``dx.sources.websocket``: a source fed by the messages of a WebSocket server.

The source connects to ``url`` (through websockets' Sans-I/O client over anyio,
like the sinks) and turns messages into records: a plain JSON object is a
record; a dspex event feed is understood, so ``prediction_done`` messages yield
their ``outputs`` and ``record`` messages their ``data``, while token, detail
and control messages are skipped. When the server is a dspex WebSocket sink (its
``hello`` says ``"records": true``) only ``record`` messages are used, so each
item arrives once. The stream ends when the server closes the connection or
sends ``run_done``. A message that is not JSON becomes a bad record (with its
message number as ``line``) for the dead letters.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from .._util._redact import redact
from .._ws._conn import open_connection
from ..errors import ConfigError, SourceError
from ._base import SkipFn, Source, SourceRecord, record_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["WebSocketSource", "websocket"]

_EVENT_TYPES = frozenset({
    "token_delta", "field_delta", "field_done", "tool_call", "tool_result", "retry",
    "validation_failed", "usage", "prediction_done", "item_error", "metrics", "run_done",
    "hello", "record", "dropped", "replay_begin", "replay_end", "pong", "error", "ack",
})


class WebSocketSource(Source):
    """Read records from a WebSocket feed; see :func:`websocket`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        id_field: str | None = None,
        replay: int | None = None,
        stop_on_run_done: bool = True,
        connect_timeout: float = 10.0,
        max_message_size: int = 2**20,
        name: str | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"sources.websocket url {redact(url, (token,))!r} must start with ws:// or wss://")
        if replay is not None and replay < 0:
            raise ConfigError(f"sources.websocket replay {replay!r} must be >= 0")
        self.url, self.token, self.id_field = url, token, id_field
        self.replay, self.stop_on_run_done = replay, stop_on_run_done
        self.connect_timeout, self.max_message_size = connect_timeout, max_message_size
        self.name = name or f"websocket:{redact(url, (token,))}"  # names reach logs and errors

    def _connect_url(self) -> str:
        if not self.replay:
            return self.url
        parts = urllib.parse.urlsplit(self.url)
        query = [*urllib.parse.parse_qsl(parts.query), ("replay", str(self.replay))]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    async def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield one record per data message until the feed ends.

        Raises:
            SourceError: The server cannot be reached or refuses the
                connection (``status`` holds the HTTP status).
        """
        conn = await open_connection(
            self._connect_url(), token=self.token, max_size=self.max_message_size,
            connect_timeout=self.connect_timeout, error=SourceError,
        )
        records_only = False
        number = 0
        try:
            while (text := await conn.recv()) is not None:
                number += 1
                try:
                    message = json.loads(text)
                except ValueError as exc:
                    yield SourceRecord(text, None, self._error(number, f"message is not JSON ({exc})"))
                    continue
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "hello":
                    records_only = bool(message.get("records"))
                elif kind == "run_done" and self.stop_on_run_done:
                    break
                data = _data_of(message, kind, records_only)
                if data is _SKIP:
                    continue
                record = self._record(number, data)
                if skip is None or record.key is None or not skip(record.key):
                    yield record
        finally:
            await conn.aclose()

    def _record(self, number: int, data: Any) -> SourceRecord:
        if self.id_field is None:
            return SourceRecord(data)
        try:
            return SourceRecord(data, record_key(data, self.id_field))
        except KeyError:
            msg = f"record has no id field {self.id_field!r}; expected every record to carry it"
            return SourceRecord(data, None, self._error(number, msg, field=self.id_field))

    def _error(self, number: int, message: str, **context: Any) -> SourceError:
        shown = redact(self.url, (self.token,))
        return SourceError(f"{shown} message {number}: {message}", path=shown, line=number, **context)


_SKIP = object()


def _data_of(message: Any, kind: Any, records_only: bool) -> Any:
    if kind not in _EVENT_TYPES:
        return message  # a plain JSON message is a record
    if kind == "record":
        return message.get("data")
    if kind == "prediction_done" and not records_only:
        return message.get("outputs", {})
    return _SKIP


def websocket(url: str, token: str | None = None, **options: Any) -> WebSocketSource:
    """Read records from a WebSocket server's messages.

    Each JSON message is a record; a dspex event feed is understood
    (``prediction_done`` → its ``outputs``, ``record`` → its ``data``, other
    event and control messages skipped, ``run_done`` ends the stream). The
    stream also ends when the server closes the connection. There is no
    reconnect: a source that ends early ends the flow's input.

    Args:
        url: ``ws://`` or ``wss://`` URL.
        token: Sent as ``Authorization: Bearer <token>``.
        **options: ``id_field`` (keyed source), ``replay`` (ask a dspex sink
            for its last N final results first), ``stop_on_run_done`` (True),
            ``connect_timeout`` (10 s), ``max_message_size`` (1 MiB), ``name``.

    Raises:
        ConfigError: Bad URL scheme or option.
    """
    allowed = {"id_field", "replay", "stop_on_run_done", "connect_timeout", "max_message_size", "name"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"sources.websocket: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
    return WebSocketSource(url, token, **options)
