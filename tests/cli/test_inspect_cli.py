"""``dspex inspect``: a saved program, the versions in a run store, a run's traces."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from click.testing import CliRunner

import dspex as dx
from dspex.cli._app import cli
from dspex.testing import FakeLLMServer, StudentTask

if TYPE_CHECKING:
    from pathlib import Path

TASK = StudentTask(rules=["mirror", "double", "shift"])


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def write_jsonl(path: Path, examples: list[dx.Example]) -> Path:
    path.write_text("".join(json.dumps(e.toDict()) + "\n" for e in examples))
    return path


def test_optimize_saves_versions_and_inspect_lists_them(tmp_path: Path) -> None:
    program = tmp_path / "qa.json"
    dx.Predict("question -> answer").save(program)
    train = write_jsonl(tmp_path / "train.jsonl", TASK.examples(12, seed=1))
    val = write_jsonl(tmp_path / "val.jsonl", TASK.examples(9, seed=2))
    store = tmp_path / "store.sqlite"
    with FakeLLMServer(student=TASK) as server:
        code, text = invoke("optimize", str(program), str(train), "--out", str(tmp_path / "out.json"),
                            "--optimizer", "mipro", "--valset", str(val), "--lm", "openai/student",
                            "--api-base", server.url + "/v1", "--candidates", "3", "--trials", "4",
                            "--max-labeled-demos", "3", "--max-bootstrapped-demos", "2",
                            "--store", str(store), "--json")
    assert code == 0, text
    summary = json.loads(text)
    assert summary["version"] == {"name": "qa", "version": 2}
    assert summary["scores"]["after"] == 100.0
    code, text = invoke("inspect", "--store", str(store), "qa", "--json")
    versions = json.loads(text)["versions"]
    assert code == 0
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["score"] == 0.0
    assert versions[1]["score"] == 100.0
    assert versions[1]["meta"]["optimizer"] == "MIPROv2"
    assert versions[1]["meta"]["settings"]["seed"] == 9
    assert versions[1]["meta"]["parent"] == {"name": "qa", "version": 1}
    code, text = invoke("inspect", "--store", str(store), "qa")
    assert code == 0
    assert "MIPROv2" in text
    assert "qa v1" in text
    code, text = invoke("inspect", "--store", str(store), "--json")
    assert json.loads(text)["programs"][0]["versions"] == 2
    code, text = invoke("inspect", "--store", str(store), "qa", "--version", "2", "--json")
    shown = json.loads(text)["program"]["predictors"][0]
    assert code == 0
    assert shown["demos"] > 0
    assert shown["signature"] == "question -> answer"


def test_inspect_a_file_a_run_and_errors(tmp_path: Path) -> None:
    program = tmp_path / "p.json"
    dx.Predict("question -> answer").save(program)
    code, text = invoke("inspect", str(program))
    assert code == 0
    assert "question -> answer" in text
    store = tmp_path / "s.sqlite"
    flow = dx.Flow("t")
    flow.source([{"q": "a"}, {"q": "b"}]).map(lambda r: {**r, "a": 1, "score": 1.0}).sink(
        dx.sinks.trace_store("p", inputs=["q"], outputs=["a"], store=store, run_id="run-1"))
    flow.run_sync(progress=False)
    code, text = invoke("inspect", "--store", str(store), "--run", "run-1", "--json")
    assert code == 0
    assert json.loads(text)["traces"] == 2
    code, text = invoke("inspect", "--store", str(store), "nope")
    assert code == 2
    assert "no program named 'nope'" in text
    code, text = invoke("inspect", "--store", str(store), "--run", "nope")
    assert code == 2
    assert "no run 'nope'" in text
    code, text = invoke("inspect")
    assert code == 2
    assert "give PROGRAM.json" in text
