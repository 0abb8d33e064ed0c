"""``BootstrapFewShotWithRandomSearch``: bootstrap many demo sets, keep the best.

DSPy's algorithm with DSPy's seeds: candidate -3 is the zero-shot program,
-2 ``LabeledFewShot``, -1 an unshuffled ``BootstrapFewShot``, and every seed
``s >= 0`` a ``BootstrapFewShot`` over the trainset shuffled with
``Random(s)`` and keeping ``Random(s).randint(1, max_bootstrapped_demos)``
traced demos. Each candidate is scored on the valset and the first best (in
seed order) wins. DSPy builds and scores candidates one after another; dspex
bootstraps them all at once (their teacher calls sharing one concurrency
bound) and scores every (candidate, example) pair in one flow.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ConfigError
from ..evaluate._batch import check_concurrency, run_batch
from ..evaluate._evaluate import call_metric, call_program, split_score
from ._base import Optimizer, check_student, reject_unknown
from ._fewshot import BootstrapFewShot, LabeledFewShot

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["BootstrapFewShotWithRandomSearch"]


class BootstrapFewShotWithRandomSearch(Optimizer):
    """Random search over bootstrapped demo sets, scored on a valset.

    Args:
        metric: ``metric(example, pred, trace=None)`` used to bootstrap and
            to score candidates.
        teacher_settings: As ``BootstrapFewShot``.
        max_bootstrapped_demos: As ``BootstrapFewShot`` (each candidate keeps
            between 1 and ``max_bootstrapped_demos``).
        max_labeled_demos: As ``BootstrapFewShot``.
        max_rounds: As ``BootstrapFewShot``.
        metric_threshold: As ``BootstrapFewShot``.
        max_errors: As ``BootstrapFewShot``.
        num_candidate_programs: Shuffled candidates (seeds 0..N-1), on top of
            the three fixed ones.
        stop_at_score: Keep only candidates up to the first (in seed order)
            whose score reaches this, as DSPy's early stop does.
        concurrency: Most LM calls in flight, while bootstrapping (all
            candidates together) and while scoring; ``num_threads`` is an
            alias.
        failure_score: Score of a valset example whose program or metric raised.

    The returned program carries ``candidate_programs``: dicts with
    ``score``, ``subscores``, ``seed`` and ``program``, best first.
    """

    def __init__(
        self, metric: Callable[..., Any], teacher_settings: dict[str, Any] | None = None,
        max_bootstrapped_demos: int = 4, max_labeled_demos: int = 16, max_rounds: int = 1,
        num_candidate_programs: int = 16, num_threads: int | None = None, max_errors: int | None = None,
        stop_at_score: float | None = None, metric_threshold: float | None = None,
        concurrency: int | None = None, failure_score: float = 0.0,
    ) -> None:
        if not callable(metric):
            raise ConfigError(f"BootstrapFewShotWithRandomSearch needs a callable metric, got {metric!r}")
        if isinstance(num_candidate_programs, bool) or not isinstance(num_candidate_programs, int) \
                or num_candidate_programs < 0:
            raise ConfigError(f"num_candidate_programs must be an int >= 0, got {num_candidate_programs!r}")
        limit = concurrency if concurrency is not None else num_threads if num_threads is not None else 16
        self.metric = metric
        self.teacher_settings = dict(teacher_settings or {})
        self.max_rounds = max_rounds
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold
        self.min_num_samples = 1
        self.max_num_samples = max_bootstrapped_demos
        self.max_errors = max_errors
        self.num_candidate_sets = num_candidate_programs
        self.max_labeled_demos = max_labeled_demos
        self.concurrency = check_concurrency(limit, "BootstrapFewShotWithRandomSearch concurrency")
        self.failure_score = failure_score

    def _seeds(self, restrict: Sequence[int] | None) -> list[int]:
        seeds = list(range(-3, self.num_candidate_sets))
        if restrict is None:
            return seeds
        chosen = [s for s in seeds if s in set(restrict)]
        if not chosen:
            raise ConfigError(f"restrict {sorted(set(restrict))!r} matches no candidate seed in "
                              f"range(-3, {self.num_candidate_sets}); expected some of those seeds")
        return chosen

    async def _candidate(self, seed: int, student: Any, teacher: Any, train: list[Any],
                         labeled_sample: bool, limit: anyio.CapacityLimiter) -> Any:
        if seed == -3:
            return student.reset_copy()
        if seed == -2:
            return await LabeledFewShot(k=self.max_labeled_demos).acompile(
                student, trainset=train, sample=labeled_sample)
        size = self.max_num_samples
        if seed >= 0:
            random.Random(seed).shuffle(train)
            size = random.Random(seed).randint(self.min_num_samples, self.max_num_samples)
        optimizer = BootstrapFewShot(
            metric=self.metric, metric_threshold=self.metric_threshold, max_bootstrapped_demos=size,
            max_labeled_demos=self.max_labeled_demos, teacher_settings=self.teacher_settings,
            max_rounds=self.max_rounds, max_errors=self.max_errors, concurrency=self.concurrency,
        )
        optimizer._shared_limit = limit  # every candidate's teacher calls share one bound
        return await optimizer.acompile(student, teacher=teacher, trainset=train)

    async def acompile(self, student: Any, *, trainset: Sequence[Any], teacher: Any = None,
                       valset: Sequence[Any] | None = None, restrict: Sequence[int] | None = None,
                       labeled_sample: bool = True, **unknown: Any) -> Any:
        """Return the best candidate (first best in seed order), a new program."""
        reject_unknown(self.acompile, unknown)
        check_student(student, "BootstrapFewShotWithRandomSearch")
        train = list(trainset)
        val = list(valset) if valset else train
        if not val:
            raise ConfigError("BootstrapFewShotWithRandomSearch needs a non-empty trainset or valset")
        seeds = self._seeds(restrict)
        programs: dict[int, Any] = {}
        limit = anyio.CapacityLimiter(self.concurrency)

        async def build(seed: int) -> None:
            programs[seed] = await self._candidate(seed, student, teacher, list(train), labeled_sample, limit)

        async with anyio.create_task_group() as tg:
            for seed in seeds:
                tg.start_soon(build, seed)
        subscores = await self._score_all([programs[s] for s in seeds], val)
        score_data: list[dict[str, Any]] = []
        best: Any = None
        best_score = None
        for seed, subs in zip(seeds, subscores, strict=True):
            score = round(100 * sum(subs) / len(val), 2)
            if best_score is None or score > best_score:
                best, best_score = programs[seed], score
            score_data.append({"score": score, "subscores": subs, "seed": seed, "program": programs[seed]})
            if self.stop_at_score is not None and score >= self.stop_at_score:
                break
        best.candidate_programs = sorted(score_data, key=lambda d: d["score"], reverse=True)
        return best

    async def _score_all(self, programs: list[Any], val: list[Any]) -> list[list[Any]]:
        """Score every (program, example) pair in one flow; return scores per program."""
        pairs = [(p, e) for p in range(len(programs)) for e in range(len(val))]
        scores: list[list[Any]] = [[self.failure_score] * len(val) for _ in programs]

        async def one(_: int, pair: tuple[int, int]) -> dict[str, Any]:
            p, e = pair
            try:
                pred = await call_program(programs[p], val[e])
                scores[p][e] = split_score(await call_metric(self.metric, val[e], pred))[0]
            except Exception:
                scores[p][e] = self.failure_score
            return {}

        await run_batch(one, pairs, concurrency=self.concurrency, name="random-search")
        return scores
