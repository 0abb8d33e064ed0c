"""Score several programs on a set of examples in one flow (shared by the search optimizers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..evaluate._batch import run_batch
from ..evaluate._evaluate import call_metric, call_program, split_score

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["percent", "score_programs"]


def percent(scores: Sequence[float]) -> float:
    """Return DSPy's Evaluate score: the mean as a percentage, rounded to 2 places."""
    return round(100 * sum(scores) / len(scores), 2) if scores else 0.0


async def score_programs(programs: Sequence[Any], examples: Sequence[Any], metric: Callable[..., Any], *,
                         concurrency: int, name: str, failure_score: float = 0.0) -> list[list[float]]:
    """Return ``scores[p][e]``: ``metric`` of program ``p`` on example ``e``.

    Every (program, example) pair runs in one ``run_batch`` flow with at most
    ``concurrency`` calls in flight; a pair whose program or metric raises
    scores ``failure_score`` and the others go on.
    """
    pairs = [(p, e) for p in range(len(programs)) for e in range(len(examples))]
    scores = [[failure_score] * len(examples) for _ in programs]

    async def one(_: int, pair: tuple[int, int]) -> dict[str, Any]:
        p, e = pair
        try:
            pred = await call_program(programs[p], examples[e])
            scores[p][e] = float(split_score(await call_metric(metric, examples[e], pred))[0])
        except Exception:
            scores[p][e] = failure_score
        return {}

    await run_batch(one, pairs, concurrency=concurrency, name=name)
    return scores
