"""The run store: a SQLite file holding run progress, program versions and traces.

:class:`RunStore` keeps, per run id, the keys that are done and each sink's
last committed position; :meth:`RunStore.commit` writes both in one
transaction, which is what makes a resumed run exactly-once even after
``kill -9``. It also holds each run's lease (one live runner per run id, see
:mod:`._lease`) and key index (every id a run has read, to catch repeats
without holding them in memory, see :mod:`._keys`). The same file keeps
saved program versions with their scores (optimizers) and execution traces
(inputs, outputs, score) that can become a trainset. The database runs in WAL mode; every call goes through
``anyio.to_thread`` one at a time, so the event loop never blocks on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import anyio.to_thread

from ..errors import StoreError
from . import _keys, _lease
from ._keys import SEEN_SCHEMA
from ._lease import LEASE_SCHEMA, Lease

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["DEFAULT_STORE_PATH", "Checkpoint", "RunStore"]

DEFAULT_STORE_PATH = ".dspex/store.sqlite"
"""Where a ``RunStore`` lives when no path is given (relative to the working directory)."""
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,
    commits INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS done_keys (
    run_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run_id, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sink_positions (
    run_id TEXT NOT NULL, sink TEXT NOT NULL, position TEXT NOT NULL,
    PRIMARY KEY (run_id, sink)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS program_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL, score REAL,
    created REAL NOT NULL, meta TEXT, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS traces (
    id INTEGER PRIMARY KEY, program TEXT NOT NULL, run_id TEXT, inputs TEXT NOT NULL,
    outputs TEXT NOT NULL, score REAL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS traces_program ON traces (program, score);
""" + SEEN_SCHEMA + LEASE_SCHEMA


@dataclass(slots=True)
class Checkpoint:
    """What a run had committed: its done keys and each sink's position.

    Attributes:
        run_id: The run this checkpoint belongs to.
        done: The keys of the records that are done (keys only, as a set).
        positions: Sink name → the JSON-able position from ``Sink.checkpoint``.
        commits: How many commits the run made.
    """

    run_id: str
    done: set[str] = field(default_factory=set)
    positions: dict[str, Any] = field(default_factory=dict)
    commits: int = 0


class RunStore:
    """A SQLite run store (WAL mode); all I/O runs in a worker thread.

    Args:
        path: The database file; its directory is created on open. Default
            ``./.dspex/store.sqlite``. ``":memory:"`` keeps it in memory.

    Use ``async with RunStore(path) as store:`` or call :meth:`open` and
    :meth:`aclose`. Calls are serialised; each is one short transaction.

    Raises:
        StoreError: On open (the file is not a database, or is locked) and on
            any later read or write failure, naming the path.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE_PATH) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open (and create) the database; idempotent."""
        if self._conn is None:
            self._conn = await anyio.to_thread.run_sync(self._connect)

    async def aclose(self) -> None:
        """Close the database; idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close, conn)

    def _close(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                _add_meta_column(conn)
            except BaseException:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(_explain(exc, self.path), path=self.path) from exc
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            await self.open()
        conn = self._conn
        assert conn is not None

        def call() -> T:
            with self._lock:
                try:
                    return fn(conn)
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise StoreError(_explain(exc, self.path), path=self.path) from exc

        return await anyio.to_thread.run_sync(call)

    # -- checkpoints ---------------------------------------------------------------

    async def load_checkpoint(self, run_id: str, *, with_done: bool = True) -> Checkpoint | None:
        """Return the run's committed done keys and sink positions, or ``None``.

        With ``with_done=False`` the done keys are not loaded (``done`` is
        empty): the engine asks :meth:`claim_keys` per chunk instead, so that
        resuming a run of millions of keys does not hold them all in memory.
        """

        def load(conn: sqlite3.Connection) -> Checkpoint | None:
            row = conn.execute("SELECT commits FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                return None
            done: set[str] = set()
            if with_done:
                keys = conn.execute("SELECT key FROM done_keys WHERE run_id=?", (run_id,))
                done = {k for (k,) in keys}
            rows = conn.execute(
                "SELECT sink, position FROM sink_positions WHERE run_id=?", (run_id,)
            )
            positions = {sink: json.loads(pos) for sink, pos in rows}
            return Checkpoint(run_id, done, positions, int(row[0]))

        return await self._run(load)

    async def commit(
        self, run_id: str, keys: Sequence[str], sink_positions: Mapping[str, Any]
    ) -> None:
        """Mark ``keys`` done and store each sink's position, in ONE transaction.

        Either all of it is durable or none of it is (a crash mid-commit
        leaves the previous checkpoint intact).

        Raises:
            StoreError: A position is not JSON-serialisable, or the write failed.
        """
        try:
            encoded = [(run_id, s, json.dumps(p)) for s, p in sink_positions.items()]
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"sink positions must be JSON-serialisable, got {dict(sink_positions)!r}",
                path=self.path,
            ) from exc
        key_rows = [(run_id, str(k)) for k in keys]

        def write(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO runs (run_id, created, updated, commits) VALUES (?, ?, ?, 1) "
                "ON CONFLICT(run_id) DO UPDATE SET updated=excluded.updated, "
                "commits=commits+1",
                (run_id, now, now),
            )
            conn.executemany("INSERT OR IGNORE INTO done_keys VALUES (?, ?)", key_rows)
            conn.executemany("INSERT OR REPLACE INTO sink_positions VALUES (?, ?, ?)", encoded)
            conn.execute("COMMIT")

        await self._run(write)

    async def runs(self) -> list[dict[str, Any]]:
        """Return every run with its number of done keys, newest first."""

        def list_runs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT r.run_id, r.created, r.updated, r.commits, "
                "(SELECT count(*) FROM done_keys d WHERE d.run_id=r.run_id) "
                "FROM runs r ORDER BY r.updated DESC"
            )
            names = ("run_id", "created", "updated", "commits", "done")
            return [dict(zip(names, row, strict=True)) for row in rows]

        return await self._run(list_runs)

    async def delete_run(self, run_id: str) -> None:
        """Forget a run's progress (its next run starts from scratch)."""

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            for table in ("runs", "done_keys", "sink_positions", "seen_keys", "leases"):
                conn.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            conn.execute("COMMIT")

        await self._run(delete)

    # -- leases and the key index -------------------------------------------------

    async def acquire_lease(
        self, run_id: str, owner: str, *, ttl_s: float = 30.0, now: float | None = None
    ) -> Lease:
        """Take the run's lease for ``owner`` (see :mod:`dspex.store._lease`).

        Raises:
            RunLeaseError: Another live runner holds it (names run and owner).
        """
        return await self._run(lambda conn: _lease.acquire(conn, run_id, owner, ttl_s, now))

    async def renew_lease(self, lease: Lease, *, ttl_s: float = 30.0, now: float | None = None) -> Lease:
        """Push the lease's expiry ``ttl_s`` ahead (the heartbeat).

        Raises:
            RunLeaseError: Another runner took the lease over meanwhile.
        """
        return await self._run(lambda conn: _lease.renew(conn, lease, ttl_s, now))

    async def release_lease(self, lease: Lease) -> None:
        """Give the lease up so that the next runner starts at once."""
        await self._run(lambda conn: _lease.release(conn, lease))

    async def claim_keys(
        self, run_id: str, pass_no: int, entries: Sequence[tuple[str | None, int, str]],
        *, check_done: bool,
    ) -> list[tuple[str, int | None, bool]]:
        """Index a chunk of source records; say which repeat an id and which are done.

        ``entries`` holds ``(key, ordinal, position_key)`` per record in
        source order: ``key`` is ``None`` for a bad record, ``ordinal`` is the
        record's number in the source, ``position_key`` its position key
        (``"@line:N"`` / ``"@pos:N"``). A key first met in this pass is
        recorded with its ordinal (one indexed row, so memory stays flat for
        any number of keys); a key met earlier in *this* pass is a repeat.

        Returns:
            Per entry ``(ident, first, done)``: ``ident`` is the key under
            which the record is committed (its key, or its position key for a
            bad record or a repeat), ``first`` the ordinal of the first copy
            for a repeat (else ``None``), ``done`` whether ``ident`` is
            already committed (only looked up when ``check_done``).
        """

        return await self._run(
            lambda conn: _keys.claim(conn, run_id, pass_no, entries, check_done)
        )

    # -- program versions and traces ----------------------------------------------

    async def save_version(self, name: str, state_json: str, score: float | None = None, *,
                           meta: Mapping[str, Any] | None = None) -> int:
        """Store a new version of program ``name``; return its number (1, 2, ...).

        ``meta`` is any JSON-able mapping kept with it (optimizer settings, parent).
        """
        meta_json = json.dumps(dict(meta), default=repr) if meta is not None else None

        def save(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            (last,) = conn.execute(
                "SELECT coalesce(max(version), 0) FROM program_versions WHERE name=?", (name,)
            ).fetchone()
            conn.execute(
                "INSERT INTO program_versions (name, version, state, score, created, meta) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, last + 1, state_json, score, time.time(), meta_json),
            )
            conn.execute("COMMIT")
            return int(last) + 1

        return await self._run(save)

    async def versions(self, name: str) -> list[dict[str, Any]]:
        """Return the versions of program ``name``, oldest first.

        Each is a dict with ``version``, ``state`` (the JSON text), ``score``,
        ``created`` and ``meta`` (a dict, empty when none was saved).
        """

        def load(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT version, state, score, created, meta FROM program_versions "
                "WHERE name=? ORDER BY version",
                (name,),
            )
            names = ("version", "state", "score", "created", "meta")
            found = [dict(zip(names, row, strict=True)) for row in rows]
            for row in found:
                row["meta"] = json.loads(row["meta"]) if row["meta"] else {}
            return found

        return await self._run(load)

    async def programs(self) -> list[dict[str, Any]]:
        """Return every saved program: ``name``, ``versions`` (count), ``best_score``, ``updated``."""

        def load(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT name, count(*), max(score), max(created) FROM program_versions "
                "GROUP BY name ORDER BY name"
            )
            names = ("name", "versions", "best_score", "updated")
            return [dict(zip(names, row, strict=True)) for row in rows]

        return await self._run(load)

    async def add_traces(
        self, program: str, traces: Sequence[Mapping[str, Any]], *, run_id: str | None = None
    ) -> None:
        """Record execution traces: mappings with ``inputs``, ``outputs``, ``score``."""
        try:
            rows = [
                (program, run_id, json.dumps(t["inputs"]), json.dumps(t["outputs"]),
                 t.get("score"), time.time())
                for t in traces
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                "each trace must be a mapping with JSON-serialisable 'inputs' and 'outputs' "
                f"(and an optional numeric 'score'): {exc}",
                path=self.path,
            ) from exc

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO traces (program, run_id, inputs, outputs, score, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")

        await self._run(write)

    async def traces(self, program: str | None = None, *, run_id: str | None = None,
                     min_score: float | None = None) -> list[dict[str, Any]]:
        """Return recorded traces of ``program`` and/or ``run_id`` (``score >= min_score``), oldest first.

        Each is a dict with ``inputs``, ``outputs``, ``score`` and ``run_id``.

        Raises:
            StoreError: Neither ``program`` nor ``run_id`` was given.
        """
        if program is None and run_id is None:
            raise StoreError("traces() needs program= or run_id= to select traces", path=self.path)

        def load(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            sql = "SELECT inputs, outputs, score, run_id FROM traces WHERE 1=1"
            args: tuple[Any, ...] = ()
            for column, value in (("program", program), ("run_id", run_id)):
                if value is not None:
                    sql += f" AND {column}=?"
                    args += (value,)
            if min_score is not None:
                sql += " AND score >= ?"
                args += (min_score,)
            rows = conn.execute(sql + " ORDER BY id", args)
            return [
                {"inputs": json.loads(i), "outputs": json.loads(o), "score": s, "run_id": r}
                for i, o, s, r in rows
            ]

        return await self._run(load)


def _add_meta_column(conn: sqlite3.Connection) -> None:
    """Give a store made before versions carried metadata its ``meta`` column."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(program_versions)")}
    if "meta" not in columns:
        conn.execute("ALTER TABLE program_versions ADD COLUMN meta TEXT")


def _explain(exc: BaseException, path: str) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        hint = "another process holds a write lock on it; wait for it or use another store path"
    elif "not a database" in text or "malformed" in text or "file is encrypted" in text:
        hint = "the file is corrupt or not a dspex run store; move it away to start a new one"
    else:
        hint = "expected a writable SQLite run store"
    return f"run store {path!r} failed: {text} ({hint})"
