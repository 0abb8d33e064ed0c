"""Metrics: plain functions ``metric(example, pred, trace=None)`` and LM judges.

These behave like DSPy 3.4.1's ``dspy.evaluate`` metrics: text is normalised
the way ``answer_exact_match`` does it (Unicode NFD, lowercase, punctuation
removed, the articles a/an/the dropped, whitespace collapsed), ``exact_match``
returns a bool, ``f1`` a float, and the metric functions read
``example.answer`` and ``pred.answer``. When ``trace`` is not None (the
optimizers' bootstrapping mode) a metric should return a bool; the LM judges
:class:`SemanticF1` and :class:`CompleteAndGrounded` then compare their score
with ``threshold``. Users add their own metrics as plain functions (sync or
async), returning a bool, a number, or a ``Prediction(score=..., feedback=...)``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio

from .._util._sync import run_sync
from .._util._text import normalize_text
from ..errors import InputError
from ..modules import ChainOfThought, Module, Prediction
from ..signatures import InputField, OutputField, Signature

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "EM",
    "F1",
    "AnswerCompleteness",
    "AnswerGroundedness",
    "CompleteAndGrounded",
    "DecompositionalSemanticRecallPrecision",
    "SemanticF1",
    "SemanticRecallPrecision",
    "answer_exact_match",
    "answer_passage_match",
    "contains",
    "em_score",
    "exact_match",
    "f1",
    "f1_score",
    "normalize_text",
    "passage_has_answers",
]

# DPR's SimpleTokenizer: runs of letters/digits/marks, or any other single non-space character.
_DPR_TOKEN = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+|\S")


def em_score(prediction: str, ground_truth: str) -> bool:
    """Return whether the two strings are equal after :func:`normalize_text`."""
    return normalize_text(prediction) == normalize_text(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Return the token F1 of two strings after :func:`normalize_text` (0 without overlap)."""
    pred_tokens = normalize_text(prediction).split()
    truth_tokens = normalize_text(ground_truth).split()
    same = sum((Counter(pred_tokens) & Counter(truth_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def _answers(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise InputError(f"{what} must be a string or a non-empty list of strings, got {value!r}")


def EM(prediction: str, answers_list: list[str]) -> bool:  # DSPy's name
    """Return True if ``prediction`` exactly matches any answer after normalisation.

    Raises:
        InputError: ``answers_list`` is not a non-empty list of strings.
    """
    return max(em_score(prediction, a) for a in _answers(answers_list, "answers_list"))


def F1(prediction: str, answers_list: list[str]) -> float:  # DSPy's name
    """Return the best token F1 of ``prediction`` against the answers.

    Raises:
        InputError: ``answers_list`` is not a non-empty list of strings.
    """
    return max(f1_score(prediction, a) for a in _answers(answers_list, "answers_list"))


def _field(obj: Any, name: str, role: str) -> Any:
    try:
        return obj[name] if isinstance(obj, dict) else getattr(obj, name)
    except (AttributeError, KeyError):
        raise InputError(f"the metric reads {role}.{name}, but {role} has no field {name!r}: {obj!r}") from None


def answer_exact_match(example: Any, pred: Any, trace: Any = None, frac: float = 1.0) -> bool:
    """Return whether ``pred.answer`` matches ``example.answer`` (a string or list).

    With ``frac < 1`` the best token F1 must reach ``frac`` instead.

    Raises:
        InputError: A field is missing, or ``example.answer`` is not a string
            or a list of strings.

    Example:
        >>> import dspex as dx
        >>> answer_exact_match(dx.Example(answer="Eiffel Tower"), dx.Prediction(answer="the eiffel tower."))
        True
    """
    answers = _answers(_field(example, "answer", "example"), "example.answer")
    prediction = str(_field(pred, "answer", "pred"))
    if frac >= 1.0:
        return EM(prediction, answers)
    return F1(prediction, answers) >= frac


exact_match = answer_exact_match
"""Alias of ``answer_exact_match`` (DSPy's ``dspy.evaluate.answer_exact_match``)."""


def f1(example: Any, pred: Any, trace: Any = None) -> float:
    """Return the best token F1 of ``pred.answer`` against ``example.answer``."""
    answers = _answers(_field(example, "answer", "example"), "example.answer")
    return F1(str(_field(pred, "answer", "pred")), answers)


def contains(example: Any, pred: Any, trace: Any = None) -> bool:
    """Return whether a normalised ``example.answer`` occurs in ``pred.answer`` (as words)."""
    answers = _answers(_field(example, "answer", "example"), "example.answer")
    return passage_has_answers(str(_field(pred, "answer", "pred")), answers)


def _dpr_words(text: str) -> list[str]:
    return [t.lower() for t in _DPR_TOKEN.findall(unicodedata.normalize("NFD", text))]


def passage_has_answers(passage: str, answers: Sequence[str]) -> bool:
    """Return whether any answer's tokens occur contiguously in ``passage`` (DPR matching)."""
    words = _dpr_words(normalize_text(passage))
    for answer in answers:
        want = _dpr_words(normalize_text(answer))
        for i in range(len(words) - len(want) + 1):
            if words[i : i + len(want)] == want:
                return True
    return False


def answer_passage_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """Return whether any passage in ``pred.context`` contains an answer of ``example.answer``."""
    answers = _answers(_field(example, "answer", "example"), "example.answer")
    passages = _field(pred, "context", "pred")
    if isinstance(passages, str):
        passages = [passages]
    return any(passage_has_answers(str(p), answers) for p in passages)


# -- LM judges (prompts as in DSPy 3.4.1's dspy/evaluate/auto_evaluation.py) ---------------------


class SemanticRecallPrecision(Signature):
    """
    Compare a system's response to the ground truth to compute its recall and precision.
    If asked to reason, enumerate key ideas in each response, and whether they are present in the other response.
    """

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    recall: float = OutputField(desc="fraction (out of 1.0) of ground truth covered by the system response")
    precision: float = OutputField(desc="fraction (out of 1.0) of system response covered by the ground truth")


class DecompositionalSemanticRecallPrecision(Signature):
    """
    Compare a system's response to the ground truth to compute recall and precision of key ideas.
    You will first enumerate key ideas in each response, discuss their overlap, and then report recall and precision.
    """

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    ground_truth_key_ideas: str = OutputField(desc="enumeration of key ideas in the ground truth")
    system_response_key_ideas: str = OutputField(desc="enumeration of key ideas in the system response")
    discussion: str = OutputField(desc="discussion of the overlap between ground truth and system response")
    recall: float = OutputField(desc="fraction (out of 1.0) of ground truth covered by the system response")
    precision: float = OutputField(desc="fraction (out of 1.0) of system response covered by the ground truth")


class AnswerCompleteness(Signature):
    """
    Estimate the completeness of a system's responses, against the ground truth.
    You will first enumerate key ideas in each response, discuss their overlap, and then report completeness.
    """

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    ground_truth_key_ideas: str = OutputField(desc="enumeration of key ideas in the ground truth")
    system_response_key_ideas: str = OutputField(desc="enumeration of key ideas in the system response")
    discussion: str = OutputField(desc="discussion of the overlap between ground truth and system response")
    completeness: float = OutputField(desc="fraction (out of 1.0) of ground truth covered by the system response")


class AnswerGroundedness(Signature):
    """
    Estimate the groundedness of a system's responses, against real retrieved documents written by people.
    You will first enumerate whatever non-trivial or check-worthy claims are made in the system response, and then
    discuss the extent to which some or all of them can be deduced from the retrieved context and basic commonsense.
    """

    question: str = InputField()
    retrieved_context: str = InputField()
    system_response: str = InputField()
    system_response_claims: str = OutputField(
        desc="enumeration of non-trivial or check-worthy claims in the system response"
    )
    discussion: str = OutputField(desc="discussion of how supported the claims are by the retrieved context")
    groundedness: float = OutputField(
        desc="fraction (out of 1.0) of system response supported by the retrieved context"
    )


def _harmonic(precision: float, recall: float) -> float:
    precision, recall = max(0.0, min(1.0, precision)), max(0.0, min(1.0, recall))
    return 0.0 if precision + recall == 0 else 2 * (precision * recall) / (precision + recall)


class _Judge(Module):
    """An LM-judged metric: callable like a metric, ``judge(example, pred, trace=None)``."""

    threshold: float

    def __call__(self, example: Any = None, pred: Any = None, trace: Any = None, **inputs: Any) -> Any:
        """Score synchronously; positional ``(example, pred, trace)`` as DSPy's judges take."""
        return run_sync(functools.partial(self.acall, example=example, pred=pred, trace=trace, **inputs),
                        reuse_loop=True)

    def _result(self, score: float, trace: Any) -> Prediction:
        return Prediction(score=score if trace is None else score >= self.threshold)


class SemanticF1(_Judge):
    """Score ``pred.response`` against ``example.response`` by LM-judged recall and precision.

    Args:
        threshold: With a ``trace`` (bootstrapping) the score becomes
            ``score >= threshold``.
        decompositional: Enumerate key ideas first (a longer prompt).

    Returns a ``Prediction(score=...)`` (it acts as a number). One LM call
    per example, through ``ChainOfThought`` with DSPy's signature text.
    """

    def __init__(self, threshold: float = 0.66, decompositional: bool = False) -> None:
        super().__init__()
        self.threshold = threshold
        sig = DecompositionalSemanticRecallPrecision if decompositional else SemanticRecallPrecision
        self.module = ChainOfThought(sig)

    async def aforward(self, example: Any, pred: Any, trace: Any = None) -> Prediction:  # type: ignore[override]
        """Judge one prediction (one LM call)."""
        scores = await self.module.acall(
            question=_field(example, "question", "example"),
            ground_truth=_field(example, "response", "example"),
            system_response=_field(pred, "response", "pred"),
        )
        return self._result(_harmonic(scores.precision, scores.recall), trace)


class CompleteAndGrounded(_Judge):
    """Score completeness (vs ``example.response``) and groundedness (vs ``pred.context``).

    Args:
        threshold: With a ``trace`` the score becomes ``score >= threshold``.

    Two LM calls per example, run concurrently; the score is their F1.
    """

    def __init__(self, threshold: float = 0.66) -> None:
        super().__init__()
        self.threshold = threshold
        self.completeness_module = ChainOfThought(AnswerCompleteness)
        self.groundedness_module = ChainOfThought(AnswerGroundedness)

    async def aforward(self, example: Any, pred: Any, trace: Any = None) -> Prediction:  # type: ignore[override]
        """Judge one prediction (two LM calls)."""
        question = _field(example, "question", "example")
        response = _field(pred, "response", "pred")
        out: dict[str, Any] = {}

        async def completeness() -> None:
            out["c"] = await self.completeness_module.acall(
                question=question, ground_truth=_field(example, "response", "example"), system_response=response)

        async def groundedness() -> None:
            out["g"] = await self.groundedness_module.acall(
                question=question, retrieved_context=_field(pred, "context", "pred"), system_response=response)

        async with anyio.create_task_group() as tg:
            tg.start_soon(completeness)
            tg.start_soon(groundedness)
        return self._result(_harmonic(out["g"].groundedness, out["c"].completeness), trace)
