"""Sinks: where a flow's final records go (files, memory, callbacks, SQLite, sockets)."""

from ._base import Sink as Sink
from ._simple import CallbackSink as CallbackSink
from ._simple import CollectSink as CollectSink
from ._simple import StdoutSink as StdoutSink
from ._simple import callback as callback
from ._simple import collect as collect
from ._simple import stdout as stdout

# WebSocket sinks (owned by the WebSocket engineer) go here:
#   from ._ws_server import websocket as websocket
#   from ._ws_client import websocket_client as websocket_client

__all__ = [
    "CallbackSink",
    "CollectSink",
    "Sink",
    "StdoutSink",
    "callback",
    "collect",
    "stdout",
]
