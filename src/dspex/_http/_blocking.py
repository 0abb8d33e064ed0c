"""Blocking keep-alive sockets for the one exchange a sync call is waiting on.

A sync ``__call__`` from the main thread runs on that thread's private loop
(``_util/_aio_runner.py``), and while it has that loop to itself — one task,
nothing else scheduled that matters — there is no one to yield to: the pool
then sends the request and reads the reply on a plain blocking socket here.
Same request bytes (``head_bytes``), same parser, same errors, timeouts and
stale-connection rule as the asyncio path, but no selector round, future,
timer handle or protocol callback per exchange: ~80 µs of CPU per request
against ~200 µs through the loop, sequentially, on the benchmark box. DSPy's
sync path uses a sync HTTP client for the same reason.

Connections are the main thread's alone (that is the only place this runs),
keyed by origin, reused while the server keeps them alive and closed when
they expire, when the pool goes away, at exit, or after a fork (in the child).
"""

from __future__ import annotations

import os
import socket
import weakref
from typing import TYPE_CHECKING

from ..errors import LMTimeoutError, LMTransportError
from ._conn import (
    MAX_STALE_RETRIES,
    RECV_SIZE,
    default_ssl_context,
    head_bytes,
    keepalive_hint,
    whole_response,
)
from ._h1 import HTTPProtocolError, ResponseParser
from ._transport import HTTPResponse, Timeouts, describe_io_error

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Mapping

    from ._conn import Target

__all__ = ["BlockingConnections"]

_Idle = dict[tuple[str, str, int], list[tuple[socket.socket, float]]]


def _close_all(idle: _Idle) -> None:
    for conns in idle.values():
        for sock, _ in conns:
            sock.close()
    idle.clear()


class BlockingConnections:
    """Idle blocking sockets per origin, and one request/response exchange on them.

    Args:
        new_parser: ``new_parser(method, target)`` → a fresh response parser.
        ssl_context: TLS settings for https (default: system trust store).
        expiry: Seconds an idle connection is kept (a server's shorter
            ``Keep-Alive: timeout`` wins).
        clock: Monotonic seconds.
    """

    def __init__(self, new_parser: Callable[[str, Target], ResponseParser], ssl_context: ssl.SSLContext | None,
                 expiry: float, clock: Callable[[], float]) -> None:
        self._new_parser = new_parser
        self._ssl = ssl_context
        self._expiry = expiry
        self._clock = clock
        self._idle: _Idle = {}
        self._pid = os.getpid()
        self.opened = 0
        weakref.finalize(self, _close_all, self._idle)  # the pool went away: close its sockets

    def close_idle(self) -> None:
        """Close every idle connection."""
        _close_all(self._idle)

    def _pop(self, key: tuple[str, str, int]) -> socket.socket | None:
        if self._pid != os.getpid():  # a forked child: the connections are the parent's
            _close_all(self._idle)  # closes the child's copies only
            self._pid = os.getpid()
        conns = self._idle.get(key)
        now = self._clock()
        while conns:
            sock, expires_at = conns.pop()
            if expires_at > now:
                return sock
            sock.close()
        return None

    def _open(self, target: Target, timeouts: Timeouts) -> socket.socket:
        try:
            sock = socket.create_connection((target.host, target.port), timeout=timeouts.connect)
        except TimeoutError:
            raise LMTimeoutError(f"connect timeout ({timeouts.connect}s) talking to {target.origin}") from None
        except OSError as exc:
            raise LMTransportError(f"could not connect to {target.origin}: {describe_io_error(exc)}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tls:
                sock = (self._ssl or default_ssl_context()).wrap_socket(sock, server_hostname=target.host)
        except TimeoutError:
            sock.close()
            raise LMTimeoutError(f"connect timeout ({timeouts.connect}s) talking to {target.origin}") from None
        except OSError as exc:
            sock.close()
            raise LMTransportError(f"could not connect to {target.origin}: {describe_io_error(exc)}") from None
        self.opened += 1
        return sock

    def request(self, method: str, target: Target, headers: Mapping[str, str], body: bytes | None,
                timeouts: Timeouts) -> HTTPResponse:
        """Send the request and read the whole response, retrying stale connections.

        Only a reused connection that failed before any response byte is
        retried (the server closed it while idle); everything else raises.
        """
        payload = head_bytes(method, target, headers, body)
        if body:
            payload += body
        for _ in range(MAX_STALE_RETRIES + 1):
            sock = self._pop(target.key)
            reused = sock is not None
            if sock is None:
                sock = self._open(target, timeouts)
            parser = self._new_parser(method, target)
            try:
                self._exchange(sock, payload, parser, target, timeouts)
            except LMTransportError:
                sock.close()
                if reused and not parser.received_any:
                    continue  # stale keep-alive connection: nothing was received
                raise
            except BaseException:  # timeouts, Ctrl-C: the connection's state is unknown
                sock.close()
                raise
            self._keep(target, sock, parser)
            return whole_response(parser, parser.take_body(), target.origin)
        raise LMTransportError(f"every pooled connection to {target.origin} was stale")

    @staticmethod
    def _exchange(sock: socket.socket, payload: bytes, parser: ResponseParser, target: Target,
                  timeouts: Timeouts) -> None:
        phase, seconds = "write timeout", timeouts.write
        try:
            sock.settimeout(timeouts.write)
            sock.sendall(payload)
            phase, seconds = "read timeout", timeouts.read
            sock.settimeout(timeouts.read)  # per read, as on the asyncio path
            while not parser.complete:
                data = sock.recv(RECV_SIZE)
                if data:
                    parser.feed(data)
                else:
                    parser.feed_eof()
        except TimeoutError:
            raise LMTimeoutError(f"{phase} ({seconds}s) talking to {target.origin}") from None
        except HTTPProtocolError as exc:
            raise LMTransportError(f"{exc} (from {target.origin})") from None
        except OSError as exc:
            raise LMTransportError(f"{describe_io_error(exc)} talking to {target.origin}") from None

    def _keep(self, target: Target, sock: socket.socket, parser: ResponseParser) -> None:
        hint = keepalive_hint(parser.headers)
        expiry = self._expiry if hint is None else min(self._expiry, hint)
        if parser.keep_alive and expiry > 0:
            self._idle.setdefault(target.key, []).append((sock, self._clock() + expiry))
        else:
            sock.close()

