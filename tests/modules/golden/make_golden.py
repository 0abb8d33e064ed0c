"""Generate the module golden fixtures from DSPy 3.4.1 (offline; never collected).

Run with the separate DSPy venv::

    .venv-dspy/bin/python tests/modules/golden/make_golden.py

It writes ``modules_golden.json`` next to this file: every message DSPy sends
to a DummyLM for the cases in ``module_cases.py`` (Refine with its feedback
calls, BestOfN, MultiChainComparison), plus the returned answers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dspy
from dspy.clients import base_lm
from dspy.utils.dummies import DummyLM

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import module_cases as cases


def run(answers: list[dict[str, Any]], fn: Any) -> dict[str, Any]:
    base_lm.GLOBAL_HISTORY.clear()
    lm = DummyLM(answers)
    with dspy.context(lm=lm):
        pred = fn()
    calls = [{"messages": entry["messages"]} for entry in base_lm.GLOBAL_HISTORY]
    return {"calls": calls, "outputs": {k: str(v) for k, v in pred.items()}}


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    program, reward = cases.build_refine(dspy)
    refine = dspy.Refine(program, N=3, reward_fn=reward, threshold=1.0)
    program2, reward2 = cases.build_refine(dspy)
    best = dspy.BestOfN(program2, N=3, reward_fn=reward2, threshold=1.0)
    mcc = dspy.MultiChainComparison("question -> answer", M=3)
    completions = [dspy.Prediction(**c) for c in cases.MCC_COMPLETIONS]
    data = {
        "refine": run(cases.REFINE_ANSWERS, lambda: refine(**cases.QUESTION)),
        "best_of_n": run(cases.BEST_OF_N_ANSWERS, lambda: best(**cases.QUESTION)),
        "mcc": run([cases.MCC_ANSWER], lambda: mcc(completions, **cases.QUESTION)),
    }
    (HERE / "modules_golden.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote modules_golden.json: {len(data)} cases")


if __name__ == "__main__":
    main()
