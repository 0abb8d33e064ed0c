"""The run store's key index: which source ids a run has met, and where.

Duplicate detection must remember every id a run has read, which for a run
of millions of records does not fit comfortably in memory; the run store's
SQLite file is the index instead. Per run it keeps one row per key (its
ordinal, the record's number in the source, and the *pass* that met it: each
lease acquisition is a new pass). The engine asks about a whole chunk of
records at once (:func:`claim`): two ``IN`` queries and one ``executemany``
per chunk, so the cost per key is a few microseconds and memory stays flat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator, Sequence

__all__ = ["SEEN_SCHEMA", "claim"]

SEEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_keys (
    run_id TEXT NOT NULL, key TEXT NOT NULL, ordinal INTEGER NOT NULL, pass INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)) WITHOUT ROWID;
"""

_IN_BATCH = 500  # well under SQLite's bound on host parameters per statement


def _parts(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _IN_BATCH):
        yield keys[start:start + _IN_BATCH]


def _seen(conn: sqlite3.Connection, run_id: str, keys: list[str]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for part in _parts(keys):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT key, ordinal, pass FROM seen_keys WHERE run_id=? AND key IN ({marks})",
            (run_id, *part),
        )
        found.update((key, (ordinal, pass_no)) for key, ordinal, pass_no in rows)
    return found


def _done(conn: sqlite3.Connection, run_id: str, keys: list[str]) -> set[str]:
    done: set[str] = set()
    for part in _parts(keys):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT key FROM done_keys WHERE run_id=? AND key IN ({marks})",
            (run_id, *part),
        )
        done.update(key for (key,) in rows)
    return done


def claim(
    conn: sqlite3.Connection, run_id: str, pass_no: int,
    entries: Sequence[tuple[str | None, int, str]], check_done: bool,
) -> list[tuple[str, int | None, bool]]:
    """Index one chunk of records in one transaction (see ``RunStore.claim_keys``).

    A key met by an earlier pass is no repeat: its row moves to this pass
    and ordinal (the input may have been reordered since a crash). A key met
    earlier in this pass, in this chunk or a previous one, is a repeat.
    """
    conn.execute("BEGIN IMMEDIATE")
    seen = _seen(conn, run_id, [key for key, _, _ in entries if key is not None])
    out: list[tuple[str, int | None]] = []
    writes = []
    for key, ordinal, position in entries:
        if key is None:
            out.append((position, None))
            continue
        row = seen.get(key)
        if row is None or row[1] != pass_no:
            seen[key] = (ordinal, pass_no)
            writes.append((run_id, key, ordinal, pass_no))
            out.append((key, None))
        else:
            out.append((position, row[0]))
    conn.executemany("INSERT OR REPLACE INTO seen_keys VALUES (?, ?, ?, ?)", writes)
    done = _done(conn, run_id, [ident for ident, _ in out]) if check_done else set()
    conn.execute("COMMIT")
    return [(ident, first, ident in done) for ident, first in out]
