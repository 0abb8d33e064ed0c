"""Connection-level faults FakeLLMServer injects: a request never answered, a reset."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

from anyio.abc import SocketAttribute

if TYPE_CHECKING:
    from anyio.abc import SocketStream


async def hang(stream: SocketStream) -> None:
    """Answer nothing; return when the client gives up and closes."""
    while await stream.receive(65536):
        pass


def reset_on_close(stream: SocketStream) -> None:
    """Make the coming close send a TCP reset instead of a clean FIN (SO_LINGER 0)."""
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
