"""The WebSocket sink's listener under abuse: accept() faults and idle connections.

Issue 12, defect 1: a flow with a WebSocket sink must outlive a listener whose
``accept()`` fails (out of descriptors, aborted connections) and a crowd of
idle TCP connections that never send a request. Faults are injected three
ways: a listener wrapper that raises the errnos asyncio's server tolerates,
real idle sockets against a small handshake cap, and a child process whose
``RLIMIT_NOFILE`` is lowered until ``accept()`` really fails with EMFILE.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Self

import anyio
import anyio.lowlevel
import pytest

from dspex._ws._conn import WebSocketConnection, open_connection
from dspex.flows import Flow
from dspex.sinks import _ws_server, websocket

pytestmark = pytest.mark.reliability

N = 20


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _broken(code: int) -> anyio.BrokenResourceError:
    exc = anyio.BrokenResourceError()  # how anyio's trio backend reports a failed accept()
    exc.__cause__ = _os_error(code)
    return exc


class FaultyListener:
    """Wrap a real (multi-)listener: ``accept()`` raises each scripted error first."""

    def __init__(self, inner: Any, faults: list[BaseException]) -> None:
        self.inner = inner
        self.target = getattr(inner, "listeners", [inner])[0]  # loopback binds one socket
        self.faults = list(faults)
        self.raised = 0

    async def accept(self) -> Any:
        if self.faults:
            self.raised += 1
            await anyio.lowlevel.checkpoint()
            raise self.faults.pop(0)
        return await self.target.accept()

    def extra(self, attribute: Any, default: Any = None) -> Any:
        return self.inner.extra(attribute, default)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _gated_flow(live: Any, n: int = N) -> Flow:
    """A flow that starts producing once a client watches (bounded wait)."""

    async def items() -> Any:
        with anyio.fail_after(30):
            await live.server.wait_for_client()
        for i in range(n):
            yield {"id": i}

    flow = Flow("listener-abuse")
    flow.source(items()).map(lambda r: {"id": r["id"], "double": 2 * r["id"]}).sink(live)
    return flow


async def _records(conn: WebSocketConnection) -> list[dict[str, Any]]:
    records = []
    with anyio.fail_after(30):
        while (text := await conn.recv()) is not None:
            message = json.loads(text)
            if message["type"] == "record":
                records.append(message["data"])
    return records


async def test_accept_faults_are_logged_and_survived(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    faults: list[BaseException] = [
        _os_error(errno.EMFILE), _os_error(errno.ENFILE), _broken(errno.EMFILE), _os_error(errno.ENOBUFS),
        _os_error(errno.ENOMEM), ConnectionAbortedError(errno.ECONNABORTED, "aborted"), _broken(errno.ECONNABORTED),
    ]
    wrappers: list[FaultyListener] = []
    real = anyio.create_tcp_listener

    async def faulty(**kwargs: Any) -> FaultyListener:
        wrappers.append(FaultyListener(await real(**kwargs), faults))
        return wrappers[-1]

    monkeypatch.setattr(anyio, "create_tcp_listener", faulty)
    caplog.set_level(logging.DEBUG, logger="dspex.websocket")
    live = websocket(metrics_interval=None, close_timeout=2.0)
    received: list[dict[str, Any]] = []

    async def watch() -> None:
        await live.started.wait()
        received.extend(await _records(await open_connection(live.url, connect_timeout=20)))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            report = await _gated_flow(live).run(progress=False)
    assert report.status == "completed"
    assert report.items_out == N
    assert sorted(r["id"] for r in received) == list(range(N))
    assert wrappers[0].raised == len(faults)
    assert live.statistics()["accept_errors"] == len(faults)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("accept() failed" in m and os.strerror(errno.EMFILE) in m for m in warnings)
    assert any("accepting again after 5 failed" in m for m in warnings)  # 5 resource errors in a row


async def test_idle_connections_time_out_and_a_client_still_connects(anyio_backend: str) -> None:
    cap, idle_count = 4, 24
    live = websocket(metrics_interval=None, handshake_timeout=0.3, max_handshakes=cap, close_timeout=2.0)
    received: list[dict[str, Any]] = []
    peak = 0
    idle: list[Any] = []

    async def crowd_then_watch() -> None:
        nonlocal peak
        await live.started.wait()
        port = live.server.port
        idle.extend([await anyio.connect_tcp("127.0.0.1", port) for _ in range(idle_count)])
        client = await open_connection(live.url, connect_timeout=30)  # queued behind the idle crowd
        peak = max(peak, live.statistics()["handshaking"])
        received.extend(await _records(client))

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, live.statistics()["handshaking"])
            await anyio.sleep(0.01)

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                tg.start_soon(crowd_then_watch)
                report = await _gated_flow(live).run(progress=False)
                tg.cancel_scope.cancel()
        assert report.status == "completed"
        assert sorted(r["id"] for r in received) == list(range(N))
        stats = live.statistics()
        assert 1 <= peak <= cap  # never more than the cap mid-handshake
        assert stats["handshake_timeouts"] >= idle_count - cap  # the idle ones were dropped
        for sock in idle:  # ... and the server really closed them
            with anyio.fail_after(10), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await sock.receive()
    finally:
        for sock in idle:
            await sock.aclose()


async def test_stale_handshakes_are_shed_for_newcomers(anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # handshake_timeout is far away: only shedding (oldest past the grace) lets the client in
    monkeypatch.setattr(_ws_server, "HANDSHAKE_GRACE", 0.2)
    cap, idle_count = 4, 16
    live = websocket(metrics_interval=None, handshake_timeout=120, max_handshakes=cap, close_timeout=2.0)
    received: list[dict[str, Any]] = []
    idle: list[Any] = []

    async def crowd_then_watch() -> None:
        await live.started.wait()
        idle.extend([await anyio.connect_tcp("127.0.0.1", live.server.port) for _ in range(idle_count)])
        received.extend(await _records(await open_connection(live.url, connect_timeout=30)))

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(crowd_then_watch)
                report = await _gated_flow(live).run(progress=False)
        assert report.status == "completed"
        assert sorted(r["id"] for r in received) == list(range(N))
        stats = live.statistics()
        assert stats["handshakes_shed"] >= idle_count - cap + 1
        assert stats["handshake_timeouts"] == 0
        for sock in idle:  # every idle socket was closed by the server (none leaked)
            with anyio.fail_after(10), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await sock.receive()
    finally:
        for sock in idle:
            await sock.aclose()


CHILD = textwrap.dedent('''
    import json, os, resource, sys
    import anyio
    from dspex.flows import Flow
    from dspex.sinks import _ws_server, websocket

    N = int(sys.argv[2])

    async def main():
        # the cap is above the descriptor limit: accept() itself must fail with EMFILE
        live = websocket(metrics_interval=None, handshake_timeout=0.4, max_handshakes=500)
        errors = []

        async def items():
            await live.started.wait()
            in_use = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            print(live.url, flush=True)
            with anyio.fail_after(60):
                while not live.server.sessions:
                    await anyio.sleep(0.02)
            for i in range(N):
                yield {"id": i}

        flow = Flow("emfile")
        flow.source(items()).map(lambda r: {"id": r["id"]}).sink(live)
        report = await flow.run(progress=False)
        stats = live.statistics()
        print(json.dumps({"status": report.status, "items_out": report.items_out,
                          "accept_errors": stats["accept_errors"],
                          "handshake_timeouts": stats["handshake_timeouts"]}), flush=True)

    anyio.run(main, backend=sys.argv[1])
''')


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir() or sys.platform == "win32", reason="needs RLIMIT_NOFILE and /proc")
async def test_descriptor_exhaustion_does_not_fail_the_flow(anyio_backend: str, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(script), anyio_backend, str(N)]
    process = await anyio.open_process(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    idle: list[Any] = []
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        lines = _Lines(process.stdout)
        url = await lines.next(limit_s=60)
        assert url.startswith("ws://127.0.0.1:"), url
        port = int(url.rsplit(":", 1)[1].strip("/"))
        idle.extend([await anyio.connect_tcp("127.0.0.1", port) for _ in range(40)])  # > its free descriptors
        await anyio.sleep(0.3)  # let the child run out
        client = await open_connection(url, connect_timeout=45)
        received = await _records(client)
        result = json.loads(await lines.next(limit_s=60))
        with anyio.fail_after(30):
            code = await process.wait()
        stderr = (await process.stderr.receive(1 << 16)).decode(errors="replace") if code else ""
        assert code == 0, stderr
    finally:
        for sock in idle:
            await sock.aclose()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
    assert result["status"] == "completed"
    assert result["items_out"] == N
    assert sorted(r["id"] for r in received) == list(range(N))
    assert result["accept_errors"] >= 1, result  # EMFILE really happened ...
    assert result["handshake_timeouts"] >= 1, result  # ... and the idle sockets were dropped


class _Lines:
    """Read text lines from a process pipe (bounded waits)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buffer = b""

    async def next(self, limit_s: float) -> str:
        with anyio.fail_after(limit_s):
            while b"\n" not in self.buffer:
                self.buffer += await self.stream.receive()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().strip()
