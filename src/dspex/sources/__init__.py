"""Sources: where a flow's records come from (iterables, files, stdin, sockets)."""

from ._base import SkipFn as SkipFn
from ._base import Source as Source
from ._base import SourceRecord as SourceRecord
from ._files import CsvSource as CsvSource
from ._files import JsonlSource as JsonlSource
from ._files import TextDirSource as TextDirSource
from ._files import csv as csv
from ._files import jsonl as jsonl
from ._files import text_dir as text_dir
from ._iterable import IterableSource as IterableSource
from ._iterable import iterable as iterable
from ._parquet import ParquetSource as ParquetSource
from ._parquet import parquet as parquet
from ._stdin import StdinSource as StdinSource
from ._stdin import stdin as stdin
from ._websocket import WebSocketSource as WebSocketSource
from ._websocket import websocket as websocket

__all__ = [
    "CsvSource",
    "IterableSource",
    "JsonlSource",
    "ParquetSource",
    "SkipFn",
    "Source",
    "SourceRecord",
    "StdinSource",
    "TextDirSource",
    "WebSocketSource",
    "csv",
    "iterable",
    "jsonl",
    "parquet",
    "stdin",
    "text_dir",
    "websocket",
]
