"""A SQLite table sink: each record becomes a row, each field a column.

The table is created from the first record's fields (untyped columns, so
values keep their SQLite types) and gains a column when a later record brings a
new field. Nested values are stored as JSON text. Each :meth:`write` is one
transaction in a worker thread; the position is the largest ``rowid`` and
:meth:`restore` deletes the rows after it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ..errors import ConfigError, SinkError
from ._base import Sink
from ._encode import dumps

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["SqliteSink", "sqlite"]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteSink(Sink):
    """Append records as rows of ``table`` in the SQLite database at ``path``."""

    def __init__(self, path: str | os.PathLike[str], table: str) -> None:
        if not isinstance(table, str) or not table:
            raise ConfigError(f"sinks.sqlite() needs a table name, got {table!r}")
        self.path = os.fspath(path)
        self.table = table
        self.name = f"sqlite:{self.path}:{table}"
        self._conn: sqlite3.Connection | None = None
        self._columns: list[str] = []
        self._lock = threading.Lock()  # one transaction at a time on the connection

    async def _run(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return fn(*args)

        try:
            return await anyio.to_thread.run_sync(locked)
        except sqlite3.Error as exc:
            raise SinkError(f"{self.name}: {exc}", path=self.path) from exc

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        rows = conn.execute(f"PRAGMA table_info({_quote(self.table)})").fetchall()
        self._columns = [row[1] for row in rows]
        self._conn = conn

    async def open(self) -> None:
        """Connect (creating the database file); the table is created on first write."""
        if self._conn is None:
            await self._run(self._open_sync)

    def _cell(self, key: str, value: Any) -> Any:
        if value is None or isinstance(value, str | int | float | bytes):
            return value
        try:
            return dumps(value)
        except (TypeError, ValueError) as exc:
            raise SinkError(
                f"{self.name}: field {key!r} cannot be stored ({exc}); expected text, a number, "
                "bytes or JSON data", field=key, path=self.path,
            ) from exc

    def _write_sync(self, records: Sequence[Mapping[str, Any]]) -> None:
        conn = self._conn
        assert conn is not None
        new = [str(k) for r in records for k in r if str(k) not in self._columns]
        new = list(dict.fromkeys(new))
        if not self._columns and not new:
            raise SinkError(f"{self.name}: records have no fields; expected at least one",
                            path=self.path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not self._columns:
                cols = ", ".join(_quote(c) for c in new)
                conn.execute(f"CREATE TABLE IF NOT EXISTS {_quote(self.table)} ({cols})")
            else:
                for col in new:
                    conn.execute(f"ALTER TABLE {_quote(self.table)} ADD COLUMN {_quote(col)}")
            columns = self._columns + new
            sql = (f"INSERT INTO {_quote(self.table)} ({', '.join(map(_quote, columns))}) "
                   f"VALUES ({', '.join('?' * len(columns))})")
            rows = [[self._cell(c, r.get(c)) for c in columns] for r in records]
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._columns = columns

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Insert the batch in one transaction.

        Raises:
            SinkError: A value cannot be stored (``field`` names it) or the
                database failed.
        """
        if not records:
            return
        if self._conn is None:
            raise SinkError(f"{self.name}: write() before open()", path=self.path)
        await self._run(self._write_sync, records)

    def _max_rowid_sync(self) -> int:
        assert self._conn is not None
        if not self._columns:
            return 0
        (value,) = self._conn.execute(
            f"SELECT coalesce(max(rowid), 0) FROM {_quote(self.table)}"
        ).fetchone()
        return int(value)

    async def checkpoint(self) -> int:
        """Return the largest rowid written (every write is already committed)."""
        if self._conn is None:
            raise SinkError(f"{self.name}: checkpoint() before open()", path=self.path)
        return int(await self._run(self._max_rowid_sync))

    async def restore(self, position: Any) -> None:
        """Delete the rows whose rowid is greater than ``position``."""
        if position is None or self._conn is None or not self._columns:
            return
        conn = self._conn
        sql = f"DELETE FROM {_quote(self.table)} WHERE rowid > ?"
        await self._run(conn.execute, sql, (int(position),))

    async def aclose(self) -> None:
        """Close the connection. Idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await self._run(conn.close)


def sqlite(path: str | os.PathLike[str], table: str) -> SqliteSink:
    """Return a sink appending rows to a SQLite table (``dx.sinks.sqlite``)."""
    return SqliteSink(path, table)
