"""Adapters: signature + demos + inputs → chat messages; completion → typed fields."""

from ._base import Adapter as Adapter
from ._base import IncrementalParser as IncrementalParser
from ._chat import ChatAdapter as ChatAdapter
from ._json import JSONAdapter as JSONAdapter

__all__ = ["Adapter", "ChatAdapter", "IncrementalParser", "JSONAdapter"]
