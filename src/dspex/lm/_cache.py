"""The LM response cache: a bytes-bounded LRU in memory plus SQLite on disk.

Keys are SHA-256 hashes of the canonical JSON of the normalised request (model,
messages, parameters including ``n`` and ``rollout_id``; never credentials or
``api_base``), so sync and async calls share entries. Values are the
response's JSON bytes: every hit is decoded afresh, so callers never share a
mutable object with the cache. The disk tier is lazy — nothing touches the
disk until the first cacheable call — lives in ``$DSPEX_CACHE_DIR`` or
``~/.dspex/cache``, runs its SQLite calls in worker threads, and turns itself
off with one :class:`CacheDisabledWarning` when the directory is not writable.
:class:`SingleFlight` makes concurrent identical requests share one call.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["CacheDisabledWarning", "DiskCache", "LMCache", "MemoryLRU", "SingleFlight", "configure_cache", "default_cache"]

T = TypeVar("T")


class CacheDisabledWarning(UserWarning):
    """The on-disk LM cache could not be opened and is off for this process."""


class MemoryLRU:
    """A least-recently-used map of ``str`` → ``bytes`` bounded by total bytes."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """Return the value for ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        """Store ``value``; evict least-recently-used entries past ``max_bytes``."""
        cost = len(value) + len(key)
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(old) + len(key)
            self._data[key] = value
            self._size += cost
            while self._size > self.max_bytes:
                k, v = self._data.popitem(last=False)
                self._size -= len(v) + len(k)

    @property
    def size_bytes(self) -> int:
        """Bytes held (keys plus values)."""
        return self._size

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()
            self._size = 0


class DiskCache:
    """A SQLite key → bytes table, opened on first use (blocking calls)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "lm_cache.sqlite"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.disabled = False

    def _open(self) -> sqlite3.Connection | None:
        if self._conn is not None or self.disabled:
            return self._conn
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS lm_cache (key TEXT PRIMARY KEY, value BLOB NOT NULL, created REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            self.disabled = True
            warnings.warn(
                f"dspex disk cache disabled: cannot write {str(self.directory)!r} ({exc}); "
                "set DSPEX_CACHE_DIR to a writable directory or use dx.configure_cache(disk=False)",
                CacheDisabledWarning,
                stacklevel=4,
            )
            return None
        self._conn = conn
        return conn

    def get(self, key: str) -> bytes | None:
        """Return the stored bytes for ``key``, or None."""
        with self._lock:
            conn = self._open()
            if conn is None:
                return None
            row = conn.execute("SELECT value FROM lm_cache WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` (replacing any previous value)."""
        with self._lock:
            conn = self._open()
            if conn is None:
                return
            # A full disk must not fail the LM call; the memory tier still holds it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute(
                    "INSERT OR REPLACE INTO lm_cache (key, value, created) VALUES (?, ?, ?)",
                    (key, value, time.time()),
                )

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class LMCache:
    """The two-tier cache used by every ``dx.LM``.

    Args:
        directory: Disk-tier directory (None: ``$DSPEX_CACHE_DIR`` or
            ``~/.dspex/cache``, resolved on first use).
        memory_max_bytes: Bound of the in-memory LRU.
        memory: Enable the memory tier.
        disk: Enable the disk tier.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        memory_max_bytes: int = 256 * 1024 * 1024,
        memory: bool = True,
        disk: bool = True,
    ) -> None:
        self.memory = MemoryLRU(memory_max_bytes) if memory else None
        self._directory = directory
        self._disk_enabled = disk
        self._disk: DiskCache | None = None
        self._disk_lock = threading.Lock()

    def _disk_tier(self) -> DiskCache | None:
        if not self._disk_enabled:
            return None
        with self._disk_lock:
            if self._disk is None:
                directory = self._directory or os.environ.get("DSPEX_CACHE_DIR") or Path.home() / ".dspex" / "cache"
                self._disk = DiskCache(directory)
            return None if self._disk.disabled else self._disk

    async def get(self, key: str) -> bytes | None:
        """Return the cached bytes for ``key`` from memory, else from disk."""
        if self.memory is not None:
            value = self.memory.get(key)
            if value is not None:
                return value
        disk = self._disk_tier()
        if disk is None:
            return None
        value = await anyio.to_thread.run_sync(disk.get, key)
        if value is not None and self.memory is not None:
            self.memory.put(key, value)
        return value

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` in both tiers."""
        if self.memory is not None:
            self.memory.put(key, value)
        disk = self._disk_tier()
        if disk is not None:
            await anyio.to_thread.run_sync(disk.put, key, value)

    @property
    def disk_path(self) -> Path | None:
        """The SQLite file, once the disk tier has been opened."""
        return self._disk.path if self._disk is not None and not self._disk.disabled else None

    def close(self) -> None:
        """Close the disk tier's connection."""
        if self._disk is not None:
            self._disk.close()


_default: LMCache | None = None
_default_lock = threading.Lock()


def default_cache() -> LMCache:
    """Return the process-wide cache (created lazily, touching no disk)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LMCache()
        return _default


def configure_cache(
    *,
    directory: str | os.PathLike[str] | None = None,
    memory_max_bytes: int = 256 * 1024 * 1024,
    memory: bool = True,
    disk: bool = True,
) -> LMCache:
    """Replace the process-wide LM cache (LMs created later, and existing ones, use it).

    Args:
        directory: Where the SQLite file lives (default ``$DSPEX_CACHE_DIR`` or
            ``~/.dspex/cache``).
        memory_max_bytes: Bound of the in-memory LRU, in bytes.
        memory: Keep the in-memory tier.
        disk: Keep the on-disk tier (``False`` for read-only or serverless hosts).
    """
    global _default
    new = LMCache(directory, memory_max_bytes=memory_max_bytes, memory=memory, disk=disk)
    with _default_lock:
        old, _default = _default, new
    if old is not None:
        old.close()
    return new


class SingleFlight:
    """Coalesce concurrent calls with the same key into one (per event loop).

    The first caller for a key runs the function; callers arriving while it
    runs wait and receive the same result (or the same exception). Once it
    finishes, the key is free again.
    """

    def __init__(self) -> None:
        self._calls: RunVar[dict[str, _Flight]] = RunVar(f"dspex_single_flight_{id(self)}")

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return ``(result, shared)``; ``shared`` is True for a follower.

        If the leading call is cancelled, one waiting follower takes over.
        """
        try:
            calls = self._calls.get()
        except LookupError:
            calls = {}
            self._calls.set(calls)
        while (flight := calls.get(key)) is not None:
            await flight.done.wait()
            if isinstance(flight.error, _Abandoned):
                continue
            if flight.error is not None:
                raise flight.error
            return flight.result, True
        flight = calls[key] = _Flight()
        try:
            flight.result = await fn()
            return flight.result, False
        except BaseException as exc:
            flight.error = exc if isinstance(exc, Exception) else _Abandoned()
            raise
        finally:
            del calls[key]
            flight.done.set()


class _Abandoned(Exception):
    """The leading call of a single flight was cancelled."""


class _Flight:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
