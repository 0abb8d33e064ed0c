"""Pickled programs as DSPy writes them: .pkl state, save_program directories, allow_pickle, KeyError on mismatch."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

import dspex as dx
from dspex.errors import ConfigError, StateMismatchError
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from pathlib import Path


class Pipeline(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dx.Predict("question -> answer")
        self.check = dx.ChainOfThought("question, answer -> verdict: bool")

    def forward(self, question: str) -> Any:
        return self.draft(question=question)


def test_pkl_state_round_trip_needs_allow_pickle(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    prog = Pipeline()
    prog.draft.demos = [dx.Example(question="q", answer="a")]
    path = tmp_path / "state.pkl"
    with caplog.at_level(logging.WARNING, logger="dspex.modules"):
        prog.save(path)
    assert "Loading untrusted .pkl files can run arbitrary code" in caplog.text
    fresh = Pipeline()
    with pytest.raises(ConfigError, match="allow_pickle=True") as info:
        fresh.load(path)
    assert isinstance(info.value, ValueError)  # DSPy raises ValueError here
    assert fresh.draft.demos == []
    fresh.load(path, allow_pickle=True)
    assert fresh.draft.demos == [{"question": "q", "answer": "a"}]
    assert fresh.dump_state() == prog.dump_state()


def test_save_program_pickles_the_whole_module(tmp_path: Path) -> None:
    prog = Pipeline()
    prog.check.predict.demos = [dx.Example(question="q", answer="a", reasoning="r", verdict=True)]
    target = tmp_path / "program"
    prog.save(target, save_program=True)
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "program.pkl"]
    with pytest.raises(ConfigError, match="allow_pickle=True"):
        dx.load(target)
    loaded = dx.load(target, allow_pickle=True)
    assert type(loaded).__name__ == "Pipeline"
    assert loaded.dump_state() == prog.dump_state()
    assert loaded(question="x", lm=ScriptedLM([{"answer": "y"}])).answer == "y"


def test_save_program_paths_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without a suffix"):
        Pipeline().save(tmp_path / "p.json", save_program=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        Pipeline().save(tmp_path / "file", save_program=True)
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(ConfigError, match="does not exist"):
        dx.load(empty, allow_pickle=True)  # no program.pkl inside
    with pytest.raises(ConfigError, match="does not exist"):
        Pipeline().load(tmp_path / "missing.pkl", allow_pickle=True)


def test_unpicklable_programs_fail_with_a_config_error(tmp_path: Path) -> None:
    prog = Pipeline()
    prog.callback = lambda: None  # lambdas do not pickle
    with pytest.raises(ConfigError, match="non-picklable"):
        prog.save(tmp_path / "p", save_program=True)
    assert not (tmp_path / "p" / "program.pkl").exists()


def test_missing_predictor_entry_raises_what_dspy_raises(tmp_path: Path) -> None:
    single = dx.Predict("question -> answer")
    single.save(tmp_path / "one.json")
    prog = Pipeline()
    with pytest.raises(KeyError) as info:
        prog.load(tmp_path / "one.json")
    assert isinstance(info.value, StateMismatchError)
    assert isinstance(info.value, ConfigError)
    assert str(info.value).startswith("saved state has no entry for predictor(s) ['draft'")
    assert prog.draft.demos == []
