"""Sinks: where a flow's final records go (files, memory, callbacks, SQLite, sockets)."""

from ._base import Sink as Sink
from ._files import CsvSink as CsvSink
from ._files import FileSink as FileSink
from ._files import JsonlSink as JsonlSink
from ._files import csv as csv
from ._files import jsonl as jsonl
from ._parquet import ParquetSink as ParquetSink
from ._parquet import parquet as parquet
from ._run import current_run_id as current_run_id
from ._simple import CallbackSink as CallbackSink
from ._simple import CollectSink as CollectSink
from ._simple import StdoutSink as StdoutSink
from ._simple import callback as callback
from ._simple import collect as collect
from ._simple import stdout as stdout
from ._sqlite import SqliteSink as SqliteSink
from ._sqlite import sqlite as sqlite
from ._traces import TraceSink as TraceSink
from ._traces import trace_store as trace_store
from ._ws_client import WebSocketClientSink as WebSocketClientSink
from ._ws_client import websocket_client as websocket_client
from ._ws_sink import WebSocketSink as WebSocketSink
from ._ws_sink import websocket as websocket

__all__ = [
    "CallbackSink",
    "CollectSink",
    "CsvSink",
    "FileSink",
    "JsonlSink",
    "ParquetSink",
    "Sink",
    "SqliteSink",
    "StdoutSink",
    "TraceSink",
    "WebSocketClientSink",
    "WebSocketSink",
    "callback",
    "collect",
    "csv",
    "current_run_id",
    "jsonl",
    "parquet",
    "sqlite",
    "stdout",
    "trace_store",
    "websocket",
    "websocket_client",
]
