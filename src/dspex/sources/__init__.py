"""Sources: where a flow's records come from (iterables, files, stdin, sockets)."""

from ._base import SkipFn as SkipFn
from ._base import Source as Source
from ._base import SourceRecord as SourceRecord
from ._iterable import IterableSource as IterableSource
from ._iterable import iterable as iterable

# WebSocket client feed (owned by the WebSocket engineer) goes here:
#   from ._websocket import websocket as websocket

__all__ = [
    "IterableSource",
    "SkipFn",
    "Source",
    "SourceRecord",
    "iterable",
]
