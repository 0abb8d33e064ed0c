"""The h11 (pure-Python) HTTP/1.1 parsers: the fallback when httptools is missing.

``make_response_parser``/``make_request_parser`` in ``_parsers`` choose these
when httptools did not import, or when ``impl="h11"`` is asked for.
"""

from __future__ import annotations

import h11

from ._h1 import HTTPProtocolError, ParsedRequest, RequestParser, ResponseParser

__all__ = ["H11RequestParser", "H11ResponseParser"]


class H11ResponseParser(ResponseParser):
    def __init__(self, method: str, target: str, host: str) -> None:
        super().__init__()
        self._conn = h11.Connection(h11.CLIENT)
        # h11 tracks both directions: replay our request head to set its state.
        self._conn.send(h11.Request(method=method, target=target, headers=[("host", host)]))
        self._conn.send(h11.EndOfMessage())
        self._head_only = method == "HEAD"

    def _drain(self) -> None:
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HTTPProtocolError(f"malformed HTTP response: {exc}") from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self.status = event.status_code
                self.headers = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers
                ]
                self.head_done = True
            elif isinstance(event, h11.Data):
                self.body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
                self.keep_alive = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                if conn.trailing_data[0]:
                    self.keep_alive = False
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise HTTPProtocolError("connection closed before the response was complete")

    def feed(self, data: bytes) -> None:
        self.received_any = True
        if self.complete:
            self.keep_alive = False
            return
        self._conn.receive_data(data)
        self._drain()

    def feed_eof(self) -> None:
        if self.complete:
            return
        self._conn.receive_data(b"")
        self._drain()
        if not self.complete:
            raise HTTPProtocolError("connection closed before the response was complete")


class H11RequestParser(RequestParser):
    def __init__(self) -> None:
        self._conn = h11.Connection(h11.SERVER)
        self._head: h11.Request | None = None
        self._body: list[bytes] = []

    def feed(self, data: bytes) -> list[ParsedRequest]:
        self._conn.receive_data(data)
        done: list[ParsedRequest] = []
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HTTPProtocolError(f"malformed HTTP request: {exc}") from None
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return done
            if event is h11.PAUSED:
                # One request per h11 cycle; carry leftover bytes to a fresh one.
                leftover = bytes(self._conn.trailing_data[0])
                self._conn = h11.Connection(h11.SERVER)
                if not leftover:
                    return done
                self._conn.receive_data(leftover)
                continue
            if isinstance(event, h11.Request):
                self._head, self._body = event, []
            elif isinstance(event, h11.Data):
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and self._head is not None:
                head = self._head
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
                conn_hdr = ",".join(v for k, v in headers if k == "connection").lower()
                done.append(
                    ParsedRequest(
                        method=head.method.decode("ascii"),
                        target=head.target.decode("latin-1"),
                        headers=headers,
                        body=b"".join(self._body),
                        keep_alive=head.http_version == b"1.1" and "close" not in conn_hdr,
                    )
                )
                self._head = None
