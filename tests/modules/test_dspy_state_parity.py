"""Save/load parity with DSPy 3.4.1 for Predict, ChainOfThought, ReAct and nested modules, both directions.

Fixtures in ``fixtures/parity`` were written by DSPy itself (``make_parity_states.py``):
``dspy_<case>.json`` is DSPy's save; ``dspex_<case>.loaded_by_dspy.json`` is
DSPy's state after loading ``dspex_<case>.json``, the file dspex wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _golden import load_module

import dspex as dx
from dspex.errors import ConfigError

HERE = Path(__file__).with_name("fixtures") / "parity"


cases = load_module(HERE / "parity_cases.py", "dspex_parity_cases")
CASES = sorted(cases.CASES)


def _read(name: str) -> dict[str, Any]:
    return cases.strip_metadata(json.loads((HERE / name).read_text()))


def _blank(case: str) -> Any:
    prog = cases.CASES[case](dx)
    for _, predictor in prog.named_predictors():
        predictor.demos = []
        predictor.signature = predictor.signature.with_instructions("placeholder")
    return prog


@pytest.mark.parametrize("case", CASES)
def test_program_saved_by_dspy_loads_into_the_same_state(case: str) -> None:
    prog = _blank(case)
    dx.load_dspy_state(prog, HERE / f"dspy_{case}.json")
    assert prog.dump_state() == _read(f"dspy_{case}.json")


@pytest.mark.parametrize("case", CASES)
def test_module_load_reads_dspy_files_too(case: str) -> None:
    prog = _blank(case)
    prog.load(HERE / f"dspy_{case}.json")
    saved = _read(f"dspy_{case}.json")
    for name, predictor in prog.named_predictors():
        entry = saved if name == "self" else saved[name]  # a lone Predict saves its state flat
        assert predictor.demos == entry["demos"]  # loaded demos compare equal to the saved dicts
        assert predictor.signature.instructions == entry["signature"]["instructions"]


@pytest.mark.parametrize("case", CASES)
def test_dspex_save_is_the_file_dspy_loaded(case: str, tmp_path: Path) -> None:
    path = tmp_path / f"{case}.json"
    cases.CASES[case](dx).save(path)
    written = cases.strip_metadata(json.loads(path.read_text()))
    assert written == _read(f"dspex_{case}.json")  # the committed file is what dspex writes today
    assert written == _read(f"dspex_{case}.loaded_by_dspy.json")  # and DSPy read every field back


@pytest.mark.parametrize("case", ["predict", "chain_of_thought"])
def test_dx_load_rebuilds_builtin_modules_from_dspex_files(case: str) -> None:
    prog = dx.load(HERE / f"dspex_{case}.json")
    assert prog.dump_state() == _read(f"dspex_{case}.json")


def test_dx_load_asks_for_the_class_of_custom_react_and_dspy_programs() -> None:
    for case in ("nested", "react"):  # a custom class / tools (functions) cannot be rebuilt from JSON
        with pytest.raises(ConfigError, match=r"module\.load"):
            dx.load(HERE / f"dspex_{case}.json")
    with pytest.raises(ConfigError, match="not a built-in"):
        dx.load(HERE / "dspy_predict.json")
