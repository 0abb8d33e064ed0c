"""The examples run as documented and print what they promise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_qa_offline() -> None:
    lines = _run("examples/qa_offline.py").splitlines()
    assert lines[0] == "Capital of France? -> Paris  (reasoning: France's capital is Paris.)"
    assert lines[1] == "What is 2 + 2? -> 4  (reasoning: Two plus two is four.)"
    assert lines[2] == "Your input fields are:"
    assert lines[3] == "pos 0.9"


def test_flow_jsonl_runs_then_resumes_without_duplicates(tmp_path: Path) -> None:
    src, dst = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps({"id": i, "question": f"q{i}?"}) + "\n" for i in range(40)))
    first = _run("examples/flow_jsonl.py", str(src), str(dst))
    assert first.startswith("in=40 out=40 failed=0")
    second = _run("examples/flow_jsonl.py", str(src), str(dst))  # same run id: nothing left to do
    assert second.startswith("in=0 out=0 failed=0")
    ids = [json.loads(line)["id"] for line in dst.read_text().splitlines()]
    assert sorted(ids) == list(range(40))


def test_optimize_offline_lifts_the_score() -> None:
    lines = _run("examples/optimize_offline.py").splitlines()
    assert lines[0] == "task: 'mirror violin' -> 'niloiv'"
    assert lines[1] == "uncompiled: 0.0%"
    assert lines[2].startswith("BootstrapFewShot: 100.0% with 4 traced + 4 labeled demos")
    assert lines[2].endswith("the student still has 0")
    assert lines[3].startswith("random search: best of 7 candidates (seed ")
    best = float(lines[3].split(": ")[2].split("%")[0])
    assert best > 0.0  # above the zero-shot candidate
    assert lines[4] == "reloaded: 100.0%"


def test_agent_offline() -> None:
    lines = _run("examples/agent_offline.py").splitlines()
    assert lines == [
        "call   add({'a': 20, 'b': 22})",
        "result add -> 42",
        "call   finish({})",
        "result finish -> Completed.",
        "What is 1 + 2? -> 3",
        "What is the temperature in Oslo? -> 4 °C in Oslo",
        "What is 40 + 2? -> 42",
    ]
