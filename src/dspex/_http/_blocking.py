"""The blocking socket as one more byte stream under the pool's one exchange.

A sync ``__call__`` from the main thread runs on that thread's own loop
(``_util/_aio_runner.py``), and while it has that loop to itself — one task,
nothing else scheduled that matters — there is no one to yield to: the sync
bridge says so (``_util/_may_block.py``) and the pool then runs its exchange
(``_http/_pool.py``, the same code as on any loop) over a :class:`BlockingStream`:
a plain blocking socket behind the ``send``/``receive``/``aclose`` coroutines
the pool awaits, which never suspend. Same request bytes, parser, framing,
keep-alive rule, errors and timeouts as every other stream, but no selector
round, future, timer handle or protocol callback per exchange (DSPy's sync path
uses a sync HTTP client for the same reason).

The stream times its own waits like ``_http/_aio.py``'s: the exchange's
:class:`~dspex._http._conn.Timer` moves ``deadline`` and each blocking call gets
the time left as its socket timeout, raising :class:`~dspex._http._conn.Expired`
when it runs out.

:class:`BlockingConnections` keeps these connections apart from any loop's (a
blocking socket must never reach a task that shares its loop): the main
thread's alone, reused while the server keeps them alive and closed when they
expire, when the pool goes away, at exit, or after a fork (in the child).
"""

from __future__ import annotations

import os
import socket
import time
import weakref
from time import monotonic as _monotonic
from typing import TYPE_CHECKING

import anyio
from anyio.abc import AsyncResource

from ._conn import INF, RECV_SIZE, Expired, LoopState

if TYPE_CHECKING:
    import ssl

__all__ = ["BlockingConnections", "BlockingStream", "connect"]



class BlockingStream(AsyncResource):
    """A blocking socket with the pool's stream interface; its awaits never suspend.

    ``deadline`` (``time.monotonic`` seconds, ``inf`` for none) bounds every
    call: each one waits at most the time left, then raises :class:`Expired`.
    Socket failures surface as ``OSError`` (the exchange maps them), the end of
    the peer's data as ``anyio.EndOfStream``.
    """

    __slots__ = ("_sock", "deadline")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline = INF

    def _arm(self) -> None:
        deadline = self.deadline
        if deadline == INF:
            self._sock.settimeout(None)
            return
        left = deadline - _monotonic()
        if left <= 0:
            raise Expired
        self._sock.settimeout(left)  # the next call polls for at most what is left

    async def send(self, data: bytes) -> None:
        """Send all of ``data``, blocking until the kernel took it or the deadline passed."""
        self._arm()
        try:
            self._sock.sendall(data)
        except TimeoutError:  # a subclass of OSError: catch it first
            raise Expired from None

    async def receive(self, max_bytes: int = RECV_SIZE) -> bytes:
        """Block for the next bytes (at most ``max_bytes``); ``EndOfStream`` when the peer is done."""
        self._arm()
        try:
            data = self._sock.recv(max_bytes)
        except TimeoutError:
            raise Expired from None
        if not data:
            raise anyio.EndOfStream
        return data

    def close(self) -> None:
        """Close the socket now (idempotent)."""
        self._sock.close()

    async def aclose(self) -> None:
        """Close the socket now (idempotent)."""
        self._sock.close()


def connect(
    host: str, port: int, deadline: float, ssl_context: ssl.SSLContext | None
) -> BlockingStream:
    """Open a TCP connection (TLS with SNI when ``ssl_context`` is given) before ``deadline``.

    Raises:
        Expired: The deadline (``time.monotonic`` seconds) passed first.
        OSError: The connection or the TLS handshake failed.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise Expired
    try:
        sock = socket.create_connection((host, port), timeout=left)
    except TimeoutError:
        raise Expired from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:  # the handshake runs under what is left of the timeout
            sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        sock.close()
        raise Expired from None
    except BaseException:
        sock.close()
        raise
    return BlockingStream(sock)


def _close_all(state: LoopState) -> None:
    """Close every idle blocking socket of ``state`` now (no loop needed)."""
    conns = [c for host in state.hosts.values() for c in host.idle]
    for host in state.hosts.values():
        host.idle.clear()
    for conn in conns:
        if isinstance(conn.stream, BlockingStream):  # always, here: this state opens no other kind
            conn.stream.close()


class BlockingConnections:
    """The pool's blocking connections: one :class:`LoopState` of its own, main thread only.

    Its hosts' slot semaphores are never used: only the one task that has the
    main loop to itself exchanges here, one request at a time. ``state`` is
    what the pool exchanges on; a forked child starts with it empty.
    """

    def __init__(self) -> None:
        self.state = LoopState(clock=time.monotonic, blocking=True)
        self.opened = 0
        weakref.finalize(self, _close_all, self.state)  # the pool went away: close its sockets
        _all.add(self)

    def close_idle(self) -> None:
        """Close every idle connection; connections in use then close when released."""
        self.state.generation += 1
        _close_all(self.state)


_all: weakref.WeakSet[BlockingConnections] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    """In a forked child: close its copies of the parent's sockets (the parent's stay open)."""
    for connections in list(_all):
        connections.close_idle()


# once per process, rather than a getpid() system call per request
os.register_at_fork(after_in_child=_forget_parent_connections)
