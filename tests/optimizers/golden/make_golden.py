"""Generate the optimizer/Evaluate golden file from DSPy 3.4.1 (offline; never collected).

Run with a DSPy venv::

    .venv-dspy/bin/python tests/optimizers/golden/make_golden.py

It writes ``dspy_golden.json`` next to this file: for each case the inputs
(trainset, the scripted LM's answers keyed by question, the settings) and
what DSPy produced (demos per predictor, candidate scores, Evaluate scores
and per-example results). ``tests/optimizers/test_golden.py`` replays every
case with dspex and asserts the same outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
from dspy.evaluate.metrics import F1, answer_exact_match
from dspy.utils.dummies import DummyLM

HERE = Path(__file__).resolve().parent

COLORS = [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"),
          ("banana", "yellow"), ("carrot", "orange"), ("violet", "purple"), ("chocolate", "brown"),
          ("ash", "grey"), ("ocean", "deep blue"), ("lemon", "yellow"), ("cherry", "dark red"),
          ("pumpkin", "orange"), ("ivory", "off white"), ("emerald", "green")]
# What the scripted LM answers per question: some right, some wrong, some right after normalisation.
ANSWERS = {"sky": "Blue.", "grass": "purple", "snow": "white", "coal": "the black", "blood": "crimson",
           "banana": "yellow", "carrot": "orange", "violet": "violet", "chocolate": "Brown!",
           "ash": "silver", "ocean": "blue deep", "lemon": "Yellow", "cherry": "red",
           "pumpkin": "orange", "ivory": "white", "emerald": "green"}


def examples(pairs: list[tuple[str, str]]) -> list[dspy.Example]:
    return [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in pairs]


def scripted(cot: bool = False) -> DummyLM:
    def answer(q: str, a: str) -> dict[str, str]:
        return {"reasoning": f"{q} is {a}", "answer": a} if cot else {"answer": a}

    # Keys match the final user message, which ends with the question block.
    return DummyLM({f"## question ## ]]\n{q}\n": answer(q, a) for q, a in ANSWERS.items()})


def demos(program: dspy.Module) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(d.toDict()) for d in p.demos] for name, p in program.named_predictors()}


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, answer -> verdict")


def labeled_cases() -> list[dict[str, Any]]:
    out = []
    for k, sample, program in [(3, True, "predict"), (3, False, "predict"), (20, True, "predict"), (4, True, "two_step")]:
        student = dspy.Predict("question -> answer") if program == "predict" else TwoStep()
        compiled = dspy.LabeledFewShot(k=k).compile(student, trainset=examples(COLORS[:10]), sample=sample)
        out.append({"kind": "labeled", "k": k, "sample": sample, "program": program, "train": 10,
                    "demos": demos(compiled)})
    return out


def bootstrap_cases() -> list[dict[str, Any]]:
    out = []
    settings = [(2, 3, 12, "predict"), (4, 16, 16, "predict"), (3, 0, 12, "predict"), (8, 4, 16, "predict"),
                (3, 5, 12, "cot"), (16, 16, 16, "predict")]
    for boot, labeled, n, program in settings:
        student = dspy.Predict("question -> answer") if program == "predict" else dspy.ChainOfThought("question -> answer")
        with dspy.context(lm=scripted(cot=program == "cot")):
            compiled = dspy.BootstrapFewShot(metric=answer_exact_match, max_bootstrapped_demos=boot,
                                             max_labeled_demos=labeled).compile(student, trainset=examples(COLORS[:n]))
        out.append({"kind": "bootstrap", "max_bootstrapped_demos": boot, "max_labeled_demos": labeled,
                    "train": n, "program": program, "demos": demos(compiled)})
    return out


def random_search_cases() -> list[dict[str, Any]]:
    out = []
    for boot, labeled, candidates in [(3, 4, 4), (2, 2, 6)]:
        with dspy.context(lm=scripted()):
            best = dspy.BootstrapFewShotWithRandomSearch(
                metric=answer_exact_match, max_bootstrapped_demos=boot, max_labeled_demos=labeled,
                num_candidate_programs=candidates, num_threads=1,
            ).compile(dspy.Predict("question -> answer"), trainset=examples(COLORS[:10]),
                      valset=examples(COLORS[10:]))
        out.append({"kind": "random_search", "max_bootstrapped_demos": boot, "max_labeled_demos": labeled,
                    "num_candidate_programs": candidates, "train": [0, 10], "val": [10, 16],
                    "best_demos": demos(best),
                    "candidates": [{"seed": c["seed"], "score": c["score"], "subscores": [bool(s) for s in c["subscores"]],
                                    "demos": demos(c["program"])} for c in best.candidate_programs]})
    return out


def f1_metric(example: dspy.Example, pred: dspy.Prediction, trace: Any = None) -> float:
    return F1(pred.answer, [example.answer])


def evaluate_cases() -> list[dict[str, Any]]:
    out = []
    for name, metric in [("exact_match", answer_exact_match), ("f1", f1_metric)]:
        with dspy.context(lm=scripted()):
            result = dspy.Evaluate(devset=examples(COLORS), metric=metric, num_threads=1)(
                dspy.Predict("question -> answer"))
        out.append({"kind": "evaluate", "metric": name, "score": result.score,
                    "results": [{"answer": p.get("answer"), "score": s} for _, p, s in result.results]})
    return out


METRIC_PAIRS = [("The Eiffel Tower!", "eiffel tower"), ("paris", "Paris, France"), ("Café", "cafe"),
                ("an apple a day", "apple day"), ("  New   York ", "new york"), ("yes", "no"),
                ("Crème brûlée", "creme brulee"), ("42", "forty-two"), ("the the", ""), ("U.S.A.", "usa"),
                ("red and blue", "blue red"), ("", "")]
PASSAGES = [(["The Eiffel Tower is in Paris.", "Other"], "eiffel tower"), (["Tower of Eiffel"], "Eiffel Tower"),
            (["São Paulo, Brazil"], "sao paulo"), (["A new-york minute"], "new york"), ([], "x")]


def metric_cases() -> list[dict[str, Any]]:
    from dspy.evaluate.metrics import answer_passage_match, normalize_text

    out = []
    for pred, gold in METRIC_PAIRS:
        ex, p = dspy.Example(answer=gold), dspy.Prediction(answer=pred)
        out.append({"kind": "metric", "pred": pred, "gold": gold, "normalized": normalize_text(pred),
                    "exact_match": bool(answer_exact_match(ex, p)), "f1": F1(pred, [gold]),
                    "frac_half": bool(answer_exact_match(ex, p, frac=0.5))})
    for passages, gold in PASSAGES:
        out.append({"kind": "passage", "passages": passages, "gold": gold,
                    "match": bool(answer_passage_match(dspy.Example(answer=gold), dspy.Prediction(context=passages)))})
    return out


def main() -> None:
    cases = labeled_cases() + bootstrap_cases() + random_search_cases() + evaluate_cases() + metric_cases()
    golden = {"dspy": dspy.__version__, "colors": COLORS, "answers": ANSWERS, "cases": cases}
    (HERE / "dspy_golden.json").write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
