"""The examples run as documented and print what they promise."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dspex.cli._app import cli
from dspex.testing import FakeLLMServer

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


def test_optimize_search_offline_finds_the_instruction() -> None:
    lines = _run("examples/optimize_search_offline.py").splitlines()
    assert lines == [
        "uncompiled: 0.0%",
        "MIPROv2: 100.0% with instruction 'Apply the rule named first to the word that follows it.'",
        "COPRO: 100.0% after 8 candidates",
        "GEPA: 100.0% from 2 candidates",
        "KNNFewShot: 100.0%",
        "saved qa v2; v1 reloads at 0.0%",
    ]


def test_qa_jsonl_yaml_flow_through_dspex_run(tmp_path: Path) -> None:
    # a copy, so the flow's relative out/ folder lands in tmp_path, not in the repository
    shutil.copy(ROOT / "examples" / "qa_jsonl.yaml", tmp_path)
    shutil.copytree(ROOT / "examples" / "data", tmp_path / "data")
    lines = _run("examples/qa_jsonl.py", str(tmp_path / "qa_jsonl.yaml")).splitlines()
    assert lines[0].startswith("completed: 12 out / 12 in, 0 failed")
    assert lines[1] == "12/12 answers match the answer key"
    assert (tmp_path / "out" / "qa_failed.jsonl").read_text() == ""


def test_rag_offline_retrieves_the_right_passages() -> None:
    lines = _run("examples/rag_offline.py").splitlines()
    assert lines[0] == "What is the capital of Kenya? -> Nairobi  [p02]"
    assert lines[1] == "Who painted the Mona Lisa? -> Leonardo da Vinci  [p14]"
    assert lines[-1] == "6/6 right; completed"


def test_research_agents_two_react_agents_and_a_judge() -> None:
    lines = _run("examples/research_agents.py").splitlines()
    assert lines[0] == ("What is 6 times 7? -> 42  (judge: calculator; calculator said '42', "
                        "encyclopedia said 'no entry')")
    assert lines[1].startswith("Tell me about Norway. -> Oslo is the capital of Norway.  (judge: encyclopedia;")
    assert lines[2].startswith("What is 19 plus 23? -> 42  (judge: calculator;")
    assert lines[4] == "4/4 researched, completed"


def test_live_dashboard_feed_as_a_client_sees_it() -> None:
    lines = _run("examples/live_dashboard.py", "--port", "0", "--watch").splitlines()
    assert lines[0].startswith("live page: http://127.0.0.1:")
    assert "/?token=" in lines[0]
    assert lines[1] == "completed: 12/12 answered"
    assert lines[2] == "dashboard saw 12 records, 12 predictions, token deltas, metrics, run completed"


def test_qa_jsonl_yaml_resumes_with_the_same_run_id(tmp_path: Path) -> None:
    # The flow's header promises `--run-id NAME` resumes; a sink in mode 'w' truncated its
    # file on reopening and the resume failed. The second run has nothing left to do.
    shutil.copy(ROOT / "examples" / "qa_jsonl.yaml", tmp_path)
    shutil.copytree(ROOT / "examples" / "data", tmp_path / "data")
    with FakeLLMServer() as server:
        args = ["run", str(tmp_path / "qa_jsonl.yaml"), "--lm", "openai/fake", "--api-base", f"{server.url}/v1",
                "--run-id", "r1", "--store", str(tmp_path / "store.sqlite"), "--quiet", "--json"]
        reports = [CliRunner().invoke(cli, args) for _ in range(2)]
    assert [r.exit_code for r in reports] == [0, 0], reports[1].output
    assert [json.loads(r.output)["items_out"] for r in reports] == [12, 0]
    answers = (tmp_path / "out" / "qa_answers.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in answers) == list(range(1, 13))
