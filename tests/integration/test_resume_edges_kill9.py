"""kill -9 a run over malformed lines and repeated ids while a second runner knocks.

The input holds 10 malformed lines and 5 repeated ids spread through 3,000
records. A child process runs the flow; while it lives, a second runner with
the same ``run_id`` is refused (the lease) without touching the output; the
child is killed with SIGKILL; the resumed run takes the dead runner's lease
over. In the end every good record is in the output once, and every bad line
and every repeat is in the dead letters once (issue 12, defects 4 and 5).
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from dspex.errors import RunLeaseError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.slow]  # kill -9 of real subprocesses

N = 3000
BAD_LINES = [17 + 300 * n for n in range(10)]  # 1-based line numbers of malformed lines
REPEATS = [(40 + 600 * n, 300 + 600 * n) for n in range(5)]  # (id repeated, at record index)

SCRIPT = """
import sys, anyio
import dspex.flows as fl
from dspex.sinks import jsonl
from dspex.sources import jsonl as jsonl_source

async def work(r):
    await anyio.sleep(0.0005)
    return {"id": r["id"], "copy": r.get("copy", 1)}

def build(src, out, dead):
    flow = fl.Flow("edges9")
    flow.source(jsonl_source(src, id_field="id")).map(work, concurrency=8, ordered=False) \\
        .sink(jsonl(out))
    flow.dead_letter(jsonl(dead))
    return flow

async def main(src, out, dead, store):
    await build(src, out, dead).run(run_id="e9", store=store, progress=False,
                                    checkpoint_every=50, checkpoint_interval_s=0.05)

if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:5], backend=sys.argv[5])
"""


def _input(path: Path) -> None:
    rows: list[str] = [json.dumps({"id": i}) for i in range(N)]
    for ident, at in reversed(REPEATS):  # a string copy of an int id: one id
        rows.insert(at, json.dumps({"id": str(ident), "copy": 2}))
    for line in BAD_LINES:
        rows.insert(line - 1, '{"id": broken' if line % 2 else "[1, 2]")
    path.write_text("\n".join(rows) + "\n")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_kill9_resume_with_bad_lines_repeats_and_a_second_runner(
    tmp_path: Path, backend: str
) -> None:
    src, out, dead = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    store, script = tmp_path / "s.sqlite", tmp_path / "child.py"
    _input(src)
    script.write_text(SCRIPT)
    child = runpy.run_path(str(script), run_name="edges9_child")  # the same build() here
    args = [str(src), str(out), str(dead), str(store)]
    proc = subprocess.Popen([sys.executable, str(script), *args, backend],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_lines(out)) < 300 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"

    async def second() -> None:
        await child["build"](src, out, dead).run(run_id="e9", store=store, progress=False)

    with pytest.raises(RunLeaseError, match=f"run 'e9' is already running .* pid {proc.pid}"):
        anyio.run(second, backend=backend)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert len(_lines(out)) < N

    async def resume() -> Any:
        return await child["build"](src, out, dead).run(run_id="e9", store=store, progress=False)

    report = anyio.run(resume, backend=backend)
    assert report.resumed
    assert report.status == "completed"
    outputs = _lines(out)
    assert sorted(r["id"] for r in outputs) == list(range(N))  # each good id once
    assert all(r["copy"] == 1 for r in outputs)  # the first copy is the one kept
    letters = _lines(dead)
    keys = sorted(d["key"] for d in letters)
    assert len(keys) == len(set(keys)) == 15, keys
    assert sorted(d["line"] for d in letters if "line" in d) == BAD_LINES
    repeats = [d for d in letters if d["error_type"] == "DuplicateKeyError"]
    assert sorted(int(d["data"]["id"]) for d in repeats) == [ident for ident, _ in REPEATS]
