"""Processes of a benchmark run: the fake LM server and each measured client.

Every measurement runs in its own process so that process CPU time and peak
RSS belong to that client alone; the server (``fake_server.py``) runs in yet
another process, one per latency setting, and reports its request counters
on demand so the driver can check that each client really sent its requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import os
    from types import TracebackType

HERE = Path(__file__).resolve().parent


class SideError(RuntimeError):
    """A measured process failed or printed no result."""


class Server:
    """``fake_server.py`` in a child process; ``with Server(latency_ms=50) as s: s.url``."""

    def __init__(self, **flags: float | str) -> None:
        args = [sys.executable, str(HERE / "fake_server.py"), "--port", "0"]
        for name, value in flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.flags = flags
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://127."):
            self.close()
            raise SideError(f"the fake server did not start (flags {flags}), printed {self.url!r}")

    def stats(self) -> dict[str, Any]:
        """Return the server's counters (``requests``...) and its process CPU time ``cpu_s``."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        return json.loads(self._proc.stdout.readline())  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the server (end of stdin), killing it if it does not exit."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def run_side(python: str | os.PathLike[str], script: str, mode: str, *, env: dict[str, str] | None = None,
             timeout: float = 900, **options: Any) -> dict[str, Any]:
    """Run ``script MODE --option value ...`` with ``python``; return its last stdout line as JSON."""
    args = [str(python), str(HERE / script), mode]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SideError(f"{script} {mode} {options} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def checked(server: Server, expected: int, python: str | os.PathLike[str], script: str, mode: str,
            **kw: Any) -> dict[str, Any]:
    """Run a side against ``server``; add the requests it sent, the server's CPU time, and whether
    every answer parsed."""
    before = server.stats()
    out = run_side(python, script, mode, url=server.url, **kw)
    after = server.stats()
    out["server_requests"] = after["requests"] - before["requests"]
    out["server_cpu_s"] = round(after["cpu_s"] - before["cpu_s"], 3)
    out["server_connections"] = after["connections_opened"] - before["connections_opened"]
    out["expected"] = expected
    out["all_ok"] = out.get("ok") == expected and out["server_requests"] >= expected
    return out
