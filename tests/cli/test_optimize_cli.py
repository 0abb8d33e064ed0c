"""``dspex optimize PROGRAM.json TRAIN.jsonl --out``: compile a saved program on the fake student."""

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

TASK = StudentTask(rules=["mirror", "double", "shift"])


def write_jsonl(path: Path, examples: list[dx.Example]) -> Path:
    path.write_text("".join(json.dumps(e.toDict()) + "\n" for e in examples))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    program_path = tmp_path / "program.json"
    dx.Predict("question -> answer").save(program_path)
    return (program_path, write_jsonl(tmp_path / "train.jsonl", TASK.examples(12, seed=1)),
            write_jsonl(tmp_path / "val.jsonl", TASK.examples(9, seed=2)))


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(student=TASK) as srv:
        yield srv


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["optimize", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("optimizer", ["bootstrap", "random-search"])
def test_optimize_saves_a_better_program(files: tuple[Path, Path, Path], server: FakeLLMServer,
                                         tmp_path: Path, optimizer: str) -> None:
    out = tmp_path / "compiled.json"
    code, text = invoke(str(files[0]), str(files[1]), "--out", str(out), "--optimizer", optimizer,
                        "--valset", str(files[2]), "--lm", "openai/student", "--api-base", server.url + "/v1",
                        "--max-labeled-demos", "6", "--candidates", "2", "--json")
    assert code == 0, text
    summary = json.loads(text)
    assert summary["scores"]["before"] == 0.0
    assert summary["scores"]["after"] == 100.0
    saved = dx.load(out)
    assert isinstance(saved, dx.Predict)
    assert saved.demos  # the saved program carries its demos
    assert summary["demos"] == {"self": len(saved.demos)}


def test_optimize_labeled_without_valset_prints_a_line(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "labeled.json"
    code, text = invoke(str(files[0]), str(files[1]), "--out", str(out), "--optimizer", "labeled",
                        "--max-labeled-demos", "3")
    assert code == 0, text
    assert text.strip() == f"saved {out} (labeled; demos per predictor: {{'self': 3}})"


def test_optimize_without_an_lm_exits_2(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    code, text = invoke(str(files[0]), str(files[1]), "--out", str(tmp_path / "x.json"))
    assert code == 2
    assert "no LM configured" in text


@pytest.mark.parametrize("optimizer", ["copro", "gepa"])
def test_optimize_finds_the_instruction(files: tuple[Path, Path, Path], server: FakeLLMServer,
                                        tmp_path: Path, optimizer: str) -> None:
    out = tmp_path / "compiled.json"
    code, text = invoke(str(files[0]), str(files[1]), "--out", str(out), "--optimizer", optimizer,
                        "--valset", str(files[2]), "--lm", "openai/student", "--api-base", server.url + "/v1",
                        "--candidates", "4", "--json")
    assert code == 0, text
    assert json.loads(text)["scores"] == {"before": 0.0, "after": 100.0}
    saved = dx.load(out)
    assert isinstance(saved, dx.Predict)
    assert saved.signature.instructions == TASK.instruction
