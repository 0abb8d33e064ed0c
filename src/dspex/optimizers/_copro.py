"""``COPRO``: coordinate ascent over each predictor's instruction and output prefix.

DSPy 3.4.1's algorithm and prompts (``BasicGenerateInstruction`` and
``GenerateInstructionGivenAttempts`` are byte-identical): seed each
predictor with ``breadth - 1`` proposed (instruction, prefix) pairs plus its
own; then for ``depth`` rounds score every candidate on the trainset, keep
the best per predictor, and ask the prompt model for ``breadth`` more given
the attempts so far in ascending score order. DSPy scores candidates one
``Evaluate`` after another; dspex scores all of a predictor's candidates at
once, every (candidate, example) pair in one flow. The candidates of one
predictor are independent in DSPy too (each is scored with the others'
current best), so the outcome is the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._context import context
from ..errors import ConfigError
from ..evaluate._batch import check_concurrency
from ..modules import Module, Predict
from ..signatures import InputField, OutputField, Signature
from ._base import Optimizer, check_student, reject_unknown
from ._scoring import percent, score_programs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["COPRO"]


class BasicGenerateInstruction(Signature):
    """You are an instruction optimizer for large language models. I will give you a ``signature`` of fields (inputs and outputs) in English. Your task is to propose an instruction that will lead a good language model to perform the task well. Don't be afraid to be creative."""

    basic_instruction = InputField(desc="The initial instructions before optimization")
    proposed_instruction = OutputField(desc="The improved instructions for the language model")
    proposed_prefix_for_output_field = OutputField(
        desc="The string at the end of the prompt, which will help the model start solving the task",
    )


class GenerateInstructionGivenAttempts(Signature):
    """You are an instruction optimizer for large language models. I will give some task instructions I've tried, along with their corresponding validation scores. The instructions are arranged in increasing order based on their scores, where higher scores indicate better quality.

    Your task is to propose a new instruction that will lead a good language model to perform the task even better. Don't be afraid to be creative."""

    attempted_instructions = InputField()
    proposed_instruction = OutputField(desc="The improved instructions for the language model")
    proposed_prefix_for_output_field = OutputField(
        desc="The string at the end of the prompt, which will help the model start solving the task",
    )


def _last_field(predictor: Predict) -> str:
    return list(predictor.signature.fields)[-1]


def _with(predictor: Predict, instruction: str, prefix: str) -> None:
    predictor.signature = predictor.signature.with_instructions(instruction).with_updated_fields(
        _last_field(predictor), prefix=prefix)


def _prefix(predictor: Predict) -> str:
    extra = predictor.signature.fields[_last_field(predictor)].json_schema_extra
    return str((extra or {}).get("prefix", "")) if isinstance(extra, dict) else ""


class COPRO(Optimizer):
    """Instruction search by coordinate ascent (DSPy's ``COPRO``).

    Args:
        prompt_model: The LM that proposes instructions (default: the context's LM).
        metric: ``metric(example, pred, trace=None)``.
        breadth: New candidates per predictor per round (> 1).
        depth: Rounds of scoring and re-proposing.
        init_temperature: Temperature of the proposal calls.
        track_stats: Keep ``results_best``/``results_latest`` on the result.
        concurrency: Most task-model calls in flight while scoring.
        failure_score: Score of an example whose program or metric raised.

    The result (a new program; the student is untouched) carries
    ``candidate_programs`` (best first, duplicates dropped as in DSPy) and
    ``total_calls`` (candidates scored).

    Raises:
        ConfigError: ``breadth <= 1``, no metric, a bad concurrency, or an
            unknown argument (a misspelling would otherwise be ignored).
    """

    def __init__(self, prompt_model: Any = None, metric: Callable[..., Any] | None = None, breadth: int = 10,
                 depth: int = 3, init_temperature: float = 1.4, track_stats: bool = False,
                 concurrency: int = 16, failure_score: float = 0.0, **unknown: Any) -> None:
        reject_unknown(COPRO.__init__, unknown)
        if isinstance(breadth, bool) or not isinstance(breadth, int) or breadth <= 1:
            raise ConfigError(f"COPRO breadth must be an int > 1, got {breadth!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"COPRO depth must be an int >= 1, got {depth!r}")
        if not callable(metric):
            raise ConfigError(f"COPRO needs a callable metric, got {metric!r}")
        self.metric = metric
        self.breadth = breadth
        self.depth = depth
        self.init_temperature = init_temperature
        self.prompt_model = prompt_model
        self.track_stats = track_stats
        self.concurrency = check_concurrency(concurrency, "COPRO concurrency")
        self.failure_score = failure_score

    async def _propose(self, signature: type[Signature], n: int, **inputs: Any) -> list[tuple[str, str]]:
        settings = {"lm": self.prompt_model} if self.prompt_model is not None else {}
        with context(**settings):
            pred = await Predict(signature, n=n, temperature=self.init_temperature).acall(**inputs)
        completions = pred.completions
        return list(zip(completions.proposed_instruction, completions.proposed_prefix_for_output_field,
                        strict=True))

    async def acompile(self, student: Any, *, trainset: Sequence[Any], eval_kwargs: dict[str, Any] | None = None,
                       **unknown: Any) -> Any:
        """Return the best program found (see the class doc).

        ``eval_kwargs`` are DSPy's ``Evaluate`` arguments: ``num_threads`` (or
        ``concurrency``) bounds the scoring calls of this run; others are ignored.
        """
        reject_unknown(self.acompile, unknown)
        extra = eval_kwargs or {}
        limit = extra.get("concurrency", extra.get("num_threads"))
        limit = self.concurrency if limit is None else check_concurrency(limit, "COPRO eval_kwargs num_threads")
        module = check_student(student, "COPRO").deepcopy()
        train = list(trainset)
        if not train:
            raise ConfigError("COPRO needs a non-empty trainset to score instructions on")
        preds = module.predictors()
        pool: list[list[tuple[str, str]]] = []
        for predictor in preds:
            proposed = await self._propose(BasicGenerateInstruction, self.breadth - 1,
                                           basic_instruction=predictor.signature.instructions)
            pool.append([*proposed, (predictor.signature.instructions, _prefix(predictor))])
        latest = [list(p) for p in pool]
        evaluated: list[dict[tuple[str, str], dict[str, Any]]] = [{} for _ in preds]
        clone = module.deepcopy()
        total = 0
        stats: list[dict[str, Any]] = []
        for d in range(self.depth):
            for i in range(len(preds)):
                scores = await self._round(clone, i, pool[i] if len(preds) > 1 else latest[i], evaluated[i],
                                           d, train, limit)
                total += len(scores)
                stats.append({"predictor": i, "depth": d, "max": max(scores), "min": min(scores),
                              "average": sum(scores) / len(scores)})
            if d == self.depth - 1:
                break
            for i in range(len(preds)):
                ranked = sorted(evaluated[i].values(), key=lambda c: c["score"], reverse=True)
                shortest = min(len(ranked), self.breadth)
                attempts: list[str] = []
                for k in range(shortest - 1, -1, -1):
                    attempts += [f"Instruction #{shortest - k}: {ranked[k]['instruction']}",
                                 f"Prefix #{shortest - k}: {ranked[k]['prefix']}",
                                 f"Resulting Score #{shortest - k}: {ranked[k]['score']}"]
                latest[i] = await self._propose(GenerateInstructionGivenAttempts, self.breadth,
                                                attempted_instructions=attempts)
                pool[i].extend(latest[i])
        best = _finish(evaluated)
        best.total_calls = total
        if self.track_stats:
            best.results_latest = stats
        return best

    async def _round(self, clone: Module, i: int, candidates: list[tuple[str, str]],
                     evaluated: dict[tuple[str, str], dict[str, Any]], depth: int,
                     train: list[Any], concurrency: int) -> list[float]:
        """Score predictor ``i``'s candidates (others at their best so far); keep its best."""
        programs = []
        keys = []
        for instruction, prefix in candidates:
            key = (instruction.strip('"').strip(), prefix.strip('"').strip())
            program = clone.deepcopy()
            _with(program.predictors()[i], *key)
            programs.append(program)
            keys.append(key)
        scores = await score_programs(programs, train, self.metric, concurrency=concurrency,
                                      name="copro", failure_score=self.failure_score)
        for key, program, subs in zip(keys, programs, scores, strict=True):
            score = percent(subs)
            if key not in evaluated or evaluated[key]["score"] < score:
                evaluated[key] = {"score": score, "program": program, "instruction": key[0],
                                  "prefix": key[1], "depth": depth}
        best = max(evaluated.values(), key=lambda c: c["score"])
        _with(clone.predictors()[i], best["instruction"], best["prefix"])
        return [percent(subs) for subs in scores]


def _finish(evaluated: list[dict[tuple[str, str], dict[str, Any]]]) -> Any:
    """Return the best candidate program, carrying every candidate (DSPy's dedup applied)."""
    candidates = sorted((c for per in evaluated for c in per.values()), key=lambda c: c["score"], reverse=True)
    kept: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    batch_score: float | None = None
    for c in candidates:  # drop a candidate equal to one with the same score (instructions and prefixes)
        if c["score"] == batch_score:
            if any(_same(c["program"], other["program"]) for other in batch):
                continue
            batch.append(c)
        else:
            batch, batch_score = [c], c["score"]
        kept.append(c)
    best = kept[0]["program"]
    best.candidate_programs = kept
    return best


def _same(a: Module, b: Module) -> bool:
    return all(p.signature.instructions == q.signature.instructions and _prefix(p) == _prefix(q)
               for p, q in zip(a.predictors(), b.predictors(), strict=False))
