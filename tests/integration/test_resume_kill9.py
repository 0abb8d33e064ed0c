"""Crash and resume: ``kill -9`` a flow mid-run, re-run it, every input exactly once.

After the kill, the committed state must be exact: the output file up to the
committed position holds exactly the done keys, once each. The resumed run
must write every item it reads (a chunk lost in flight once made it report
success with a short output).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from dspex.store import Checkpoint, RunStore

if TYPE_CHECKING:
    from pathlib import Path

N = 3000

SCRIPT = """
import sys, anyio
import dspex.flows as fl
from dspex.sinks import jsonl
from dspex.sources import jsonl as jsonl_source

async def work(r):
    await anyio.sleep(0.0005)
    return {**r, "out": r["id"] * 2}

flow = fl.Flow("kill9")
(flow.source(jsonl_source(sys.argv[1], id_field="id"))
     .map(work, concurrency=8, ordered=False)
     .sink(jsonl(sys.argv[2])))
report = flow.run_sync(run_id="k9", store=sys.argv[3], progress=False,
                       checkpoint_every=50, checkpoint_interval_s=0.05)
print(report.items_in, report.items_out, report.resumed, flush=True)
"""


def _run(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def _committed(store: Path) -> Checkpoint:
    async def load() -> Checkpoint | None:
        async with RunStore(store) as rs:
            return await rs.load_checkpoint("k9")

    checkpoint = anyio.run(load)
    assert checkpoint is not None
    return checkpoint


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(180)
@pytest.mark.slow  # kill -9 of a real subprocess
def test_kill9_then_resume_each_input_exactly_once(tmp_path: Path) -> None:
    src, out, store = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "store.sqlite"
    src.write_text("".join(json.dumps({"id": i, "text": f"item {i}"}) + "\n" for i in range(N)))
    args = [str(src), str(out), str(store)]

    proc = _run(args)
    deadline = time.monotonic() + 120
    while _lines(out) < 300 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()  # reap it and close its pipes
    killed_at = _lines(out)
    assert 300 <= killed_at < N
    committed = _committed(store)
    (position,) = committed.positions.values()
    prefix = out.read_bytes()[:position]
    committed_ids = [str(json.loads(line)["id"]) for line in prefix.splitlines()]
    assert (position == 0 or prefix.endswith(b"\n"))
    assert len(committed_ids) == len(committed.done)
    assert set(committed_ids) == committed.done

    second = _run(args)
    stdout, stderr = second.communicate(timeout=150)
    assert second.returncode == 0, stderr
    items_in, items_out, resumed = stdout.split()
    assert resumed == "True"
    assert 0 < int(items_in) < N
    assert items_out == items_in  # nothing lost in flight
    assert int(items_in) == N - len(committed.done)

    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == N
    assert sorted(ids) == list(range(N))
    assert all(r["out"] == 2 * r["id"] for r in records)
