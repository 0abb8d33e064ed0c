"""Run leases: one live runner per ``run_id``, and takeover from a dead one.

A runner that checkpoints a run first takes its *lease*: a row in the run
store naming the owner (a random id), its host and pid, and an expiry that
the owner pushes forward with a heartbeat. A second runner for the same
``run_id`` finds a live lease and gets :class:`~dspex.errors.RunLeaseError`
naming the run and the owner. A lease is *dead*, and is taken over, when it
has expired (no heartbeat for ``ttl_s`` seconds, any host) or, on the same
host, at once when its owner's pid no longer exists (``kill -9``). "Same
host" means the same host name *and* pid namespace (containers sharing a
store file never judge each other's pids); a recycled pid only delays the
takeover until expiry. Each
acquisition bumps the run's *pass* number, which the key index uses to tell a
repeated id in this pass from one seen by an earlier (crashed) pass.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RunLeaseError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["LEASE_SCHEMA", "Lease", "acquire", "host_id", "pid_alive", "release", "renew"]

LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    acquired REAL NOT NULL, expires REAL NOT NULL, pass INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease held on a run.

    Attributes:
        run_id: The run.
        owner: The holder's random id.
        host: The holder's host name.
        pid: The holder's process id.
        expires: Wall-clock time (``time.time()``) when it lapses unless renewed.
        pass_no: How many times the run's lease was taken (1 for a new run).
        took_over: True when a dead runner's lease (never released) was taken over.
    """

    run_id: str
    owner: str
    host: str
    pid: int
    expires: float
    pass_no: int
    took_over: bool = False


def host_id() -> str:
    """Return this host's name plus, on Linux, its pid namespace (pids are local to it)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/pidns:{namespace}"


def pid_alive(pid: int) -> bool:
    """Return True if a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def acquire(
    conn: sqlite3.Connection, run_id: str, owner: str, ttl_s: float, now: float | None = None
) -> Lease:
    """Take the lease on ``run_id`` for ``owner`` (one transaction).

    Raises:
        RunLeaseError: A live runner (another owner) holds it.
    """
    now = time.time() if now is None else now
    host, pid = host_id(), os.getpid()
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(
        "SELECT owner, host, pid, expires, pass FROM leases WHERE run_id=?", (run_id,)
    ).fetchone()
    took_over = False
    if row is not None:
        old_owner, old_host, old_pid, expires, _ = row
        live = old_owner != "" and expires > now
        if live and old_owner != owner and (old_host != host or pid_alive(old_pid)):
            conn.execute("ROLLBACK")
            raise RunLeaseError(
                f"run {run_id!r} is already running (lease held by owner {old_owner} on "
                f"{old_host} pid {old_pid}, expires in {expires - now:.0f} s); wait for it "
                "to finish, stop it, or use another run_id",
                run_id=run_id, owner=old_owner,
            )
        took_over = old_owner not in ("", owner)  # held, not released: its runner died
    pass_no = (row[4] if row is not None else 0) + 1
    conn.execute(
        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)",
        (run_id, owner, host, pid, now, now + ttl_s, pass_no),
    )
    conn.execute("COMMIT")
    return Lease(run_id, owner, host, pid, now + ttl_s, pass_no, took_over)


def renew(
    conn: sqlite3.Connection, lease: Lease, ttl_s: float, now: float | None = None
) -> Lease:
    """Push the lease's expiry forward (the heartbeat).

    Raises:
        RunLeaseError: The lease was taken over by another runner meanwhile
            (this runner stalled past its expiry and must stop).
    """
    now = time.time() if now is None else now
    cur = conn.execute(
        "UPDATE leases SET expires=? WHERE run_id=? AND owner=?",
        (now + ttl_s, lease.run_id, lease.owner),
    )
    if cur.rowcount != 1:
        raise RunLeaseError(
            f"run {lease.run_id!r}: the lease of owner {lease.owner} was taken over by "
            "another runner (this one missed its heartbeats); stopping",
            run_id=lease.run_id, owner=lease.owner,
        )
    return Lease(lease.run_id, lease.owner, lease.host, lease.pid, now + ttl_s, lease.pass_no)


def release(conn: sqlite3.Connection, lease: Lease) -> None:
    """Give the lease up (keeping the pass count); a no-op if it was taken over."""
    conn.execute(
        "UPDATE leases SET owner='', expires=0 WHERE run_id=? AND owner=?",
        (lease.run_id, lease.owner),
    )
