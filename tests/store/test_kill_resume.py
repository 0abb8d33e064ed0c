"""kill -9 a process that writes a JSONL sink and commits to the run store, then resume."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
from typing import TYPE_CHECKING

import anyio

from dspex import sinks
from dspex.store import Checkpointer, RunStore

if TYPE_CHECKING:
    from pathlib import Path

N = 20_000

CHILD = textwrap.dedent("""
    import sys, anyio
    from dspex import sinks
    from dspex.store import Checkpointer, RunStore

    async def main(store_path, out_path, n):
        sink = sinks.JsonlSink(out_path, buffer_bytes=512)
        async with RunStore(store_path) as store, sink:
            cp = Checkpointer(store, "killed", [sink])
            skip = await cp.resume()
            pending = []
            for i in range(n):
                if skip(str(i)):
                    continue
                await sink.write([{"id": i, "text": "x" * (i % 50)}])
                pending.append(str(i))
                if len(pending) == 97:
                    await cp.commit(pending)
                    pending = []
                    if cp.committed == 97 * 3:
                        print("committed", flush=True)

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
""")


async def test_kill_9_mid_run_then_resume_is_exactly_once(tmp_path: Path) -> None:
    store_path, out = tmp_path / "s.sqlite", tmp_path / "out.jsonl"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cmd = [sys.executable, str(script), str(store_path), str(out), str(N)]
    with anyio.fail_after(60):
        async with await anyio.open_process(cmd) as proc:
            assert proc.stdout is not None
            line = await proc.stdout.receive()
            assert line.startswith(b"committed"), line
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written_before = out.read_bytes().count(b"\n")
    assert 0 < written_before < N  # killed mid-run

    sink = sinks.jsonl(out)
    async with RunStore(store_path) as store, sink:
        cp = Checkpointer(store, "killed", [sink])
        skip = await cp.resume()
        assert cp.resumed is not None
        assert len(cp.resumed.done) >= 97 * 3
        todo = [i for i in range(N) if not skip(str(i))]
        for start in range(0, len(todo), 500):
            chunk = todo[start:start + 500]
            await sink.write([{"id": i, "text": "x" * (i % 50)} for i in chunk])
            await cp.commit([str(i) for i in chunk])
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == list(range(N))
