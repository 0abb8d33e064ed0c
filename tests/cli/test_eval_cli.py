"""``dspex eval PROGRAM.json DATA.jsonl``: a saved program scored against the fake student."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

import dspex as dx
from dspex.cli._app import cli
from dspex.testing import FakeLLMServer, StudentTask

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TASK = StudentTask(rules=["mirror", "double"])


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A program taught one rule (mirror) and a devset of both rules."""
    program = dx.Predict("question -> answer")
    program.demos = [e for e in TASK.examples(4, seed=1) if e.question.startswith("mirror")]
    program_path, data_path = tmp_path / "program.json", tmp_path / "dev.jsonl"
    program.save(program_path)
    data_path.write_text("".join(json.dumps(e.toDict()) + "\n" for e in TASK.examples(6, seed=2)))
    return program_path, data_path


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(student=TASK) as srv:
        yield srv


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["eval", *args])
    return result.exit_code, result.output


def test_eval_json_reports_score_and_results(files: tuple[Path, Path], server: FakeLLMServer) -> None:
    code, out = invoke(str(files[0]), str(files[1]), "--metric", "exact_match", "--lm", "openai/student",
                       "--api-base", server.url + "/v1", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["score"] == 50.0
    assert report["examples"] == 6
    assert report["errors"] == 0
    by_rule = {r["inputs"]["question"].split()[0]: bool(r["score"]) for r in report["results"]}
    assert by_rule == {"mirror": True, "double": False}  # taught mirror only


def test_eval_prints_a_table(files: tuple[Path, Path], server: FakeLLMServer) -> None:
    code, out = invoke(str(files[0]), str(files[1]), "--lm", "openai/student", "--api-base",
                       server.url + "/v1", "--table", "3", "--metric", "f1")
    assert code == 0, out
    assert "f1" in out
    assert "3 more rows not shown" in out
    assert out.strip().splitlines()[-1] == "score: 50.0% over 6 examples (0 errors)"


def test_eval_usage_errors_exit_2(files: tuple[Path, Path], tmp_path: Path) -> None:
    code, out = invoke(str(files[0]), str(files[1]), "--metric", "nope")
    assert code == 2
    assert "unknown metric 'nope'" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    code, out = invoke(str(files[0]), str(bad), "--lm", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
    assert code == 2
    assert "bad.jsonl:1: not JSON" in out
