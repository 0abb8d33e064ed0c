"""Programs and scripts shared by the DSPy golden generator and the dspex tests.

Each ``build_*`` takes the library (``dspy`` or ``dspex``) and returns what
both sides run. Classes and functions are defined *inside* the builders so
that ``inspect.getsource`` (which Refine sends to the LM) gives the same text
on both sides.
"""

from __future__ import annotations

from typing import Any

QUESTION = {"question": "What is the capital of Belgium?"}

#: Scripted LM answers for the Refine case, in call order: attempt 1 (reward 0),
#: feedback, attempt 2 with the hint (reward 0), feedback, attempt 3 (reward 1).
REFINE_ANSWERS: list[dict[str, Any]] = [
    {"reasoning": "Belgium's capital is Brussels.", "answer": "It is Brussels"},
    {"discussion": "The answer has three words.", "advice": {"draft.predict": "Answer with one word."}},
    {"reasoning": "One word.", "answer": "The Brussels"},
    {"discussion": "Still two words.", "advice": {"draft.predict": "Only the city name."}},
    {"reasoning": "Only the city.", "answer": "Brussels"},
]

#: For BestOfN: two misses, then a hit.
BEST_OF_N_ANSWERS: list[dict[str, Any]] = [
    {"reasoning": "r1", "answer": "It is Brussels"},
    {"reasoning": "r2", "answer": "Brussels city"},
    {"reasoning": "r3", "answer": "Brussels"},
]

MCC_COMPLETIONS: list[dict[str, str]] = [
    {"reasoning": "think about it\nmore lines", "answer": "Brussels"},
    {"rationale": "  recall the map  ", "answer": "Antwerp\nextra"},
    {"reasoning": "capital cities", "answer": "Brussels"},
]
MCC_ANSWER: dict[str, Any] = {"rationale": "Most attempts say Brussels.", "answer": "Brussels"}


def build_refine(lib: Any) -> tuple[Any, Any]:
    """Return ``(program, reward_fn)``: a one-predictor QA program and a one-word reward."""

    class QA(lib.Module):
        def __init__(self):
            super().__init__()
            self.draft = lib.ChainOfThought("question -> answer")

        def forward(self, question):
            return self.draft(question=question)

    def one_word(args, pred):
        return 1.0 if len(pred.answer.split()) == 1 else 0.0

    return QA(), one_word
