"""``GEPA``: reflective prompt evolution with a Pareto frontier (DSPy 3.x), on the ``gepa`` engine.

As in DSPy, dspex does not re-implement the engine: the ``gepa`` package
(the ``gepa`` extra, ``pip install 'dspex[gepa]'``) keeps the candidates and
their per-example validation scores, picks parents from the Pareto frontier
over validation examples, mutates one component (a predictor's instruction)
at a time from a reflective dataset of traces and metric feedback, and
merges candidates. dspex supplies the adapter (``_gepa_adapter.py``): every
minibatch and full evaluation runs through the flow engine concurrently.
The engine is synchronous, so it runs in a worker thread and its calls hop
back to the event loop; the budget, seed and settings are DSPy's.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import random
import sys
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio.to_thread

from .._context import get_setting
from ..errors import ConfigError
from ..evaluate._batch import check_concurrency
from ._base import Optimizer, check_student, reject_unknown
from ._gepa_adapter import DspexGEPAAdapter

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from gepa.core.adapter import GEPAAdapter

__all__ = ["GEPA"]

log = logging.getLogger("dspex.optimizers")
AUTO_RUN_SETTINGS = {"light": {"n": 6}, "medium": {"n": 12}, "heavy": {"n": 18}}
_UNSUPPORTED = ("use_wandb", "use_mlflow", "code_proposer")


def auto_budget(num_preds: int, num_candidates: int, valset_size: int, minibatch_size: int = 35,
                full_eval_steps: int = 5) -> int:
    """Return DSPy's metric-call budget for ``auto`` (MIPROv2's trial count, turned into calls)."""
    trials = int(max(2 * (num_preds * 2) * math.log2(num_candidates), 1.5 * num_candidates))
    total = valset_size + num_candidates * 5 + trials * minibatch_size
    if trials == 0:
        return total
    periodic = (trials + 1) // full_eval_steps + 1
    return total + (periodic + (1 if trials < full_eval_steps else 0)) * valset_size


class _Logger:
    def log(self, message: str) -> None:
        log.info("%s", message)


class GEPA(Optimizer):
    """Reflective prompt evolution (DSPy's ``GEPA``; the engine is the ``gepa`` package).

    Args:
        metric: ``metric(gold, pred, trace=None, pred_name=None, pred_trace=None)``
            returning a number or a score with ``feedback`` text.
        auto: The budget as ``"light"``/``"medium"``/``"heavy"``; exactly one
            of ``auto``, ``max_full_evals`` and ``max_metric_calls`` is set.
        max_full_evals: The budget in full evaluations.
        max_metric_calls: The budget in metric calls.
        reflection_minibatch_size: Examples reflected on per mutation.
        candidate_selection_strategy: ``"pareto"`` or ``"current_best"``.
        reflection_lm: The LM proposing instructions (required unless
            ``instruction_proposer`` is given).
        skip_perfect_score: As in DSPy.
        perfect_score: As in DSPy.
        use_merge: As in DSPy.
        max_merge_invocations: As in DSPy (None: no limit but the budget).
        component_selector: As in DSPy.
        failure_score: As in DSPy.
        log_dir: As in DSPy; it makes the run resumable.
        track_stats: As in DSPy.
        track_best_outputs: As in DSPy.
        seed: As in DSPy.
        gepa_kwargs: As in DSPy.
        instruction_proposer: A custom sync ``ProposalFn``.
        num_threads: Alias of ``concurrency``.
        concurrency: Most LM calls in flight per evaluation.

    Raises:
        ConfigError: A metric not taking five arguments, not exactly one
            budget, no reflection LM or proposer, or a DSPy-only integration
            (wandb, mlflow, code proposer) switched on.
    """

    def __init__(
        self, metric: Callable[..., Any], *, auto: str | None = None, max_full_evals: int | None = None,
        max_metric_calls: int | None = None, reflection_minibatch_size: int = 3,
        candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto", reflection_lm: Any = None, skip_perfect_score: bool = True,
        add_format_failure_as_feedback: bool = False, instruction_proposer: Callable[..., Any] | None = None,
        code_proposer: Any = None, component_selector: Any = "round_robin", use_merge: bool = True,
        max_merge_invocations: int | None = 5, num_threads: int | None = None, failure_score: float = 0.0,
        perfect_score: float = 1.0, log_dir: str | None = None, track_stats: bool = False,
        use_wandb: bool = False, wandb_api_key: str | None = None, wandb_init_kwargs: dict[str, Any] | None = None,
        track_best_outputs: bool = False, warn_on_score_mismatch: bool = True, use_mlflow: bool = False,
        seed: int | None = 0, gepa_kwargs: dict[str, Any] | None = None, concurrency: int | None = None,
    ) -> None:
        try:
            inspect.signature(metric).bind(None, None, None, None, None)
        except (TypeError, ValueError) as exc:
            raise ConfigError("GEPA metric must accept five arguments: (gold, pred, trace, pred_name, "
                              "pred_trace)") from exc
        if (max_metric_calls is not None) + (max_full_evals is not None) + (auto is not None) != 1:
            raise ConfigError("GEPA needs exactly one of auto, max_full_evals, max_metric_calls; got "
                              f"auto={auto!r}, max_full_evals={max_full_evals!r}, max_metric_calls={max_metric_calls!r}")
        if auto is not None and auto not in AUTO_RUN_SETTINGS:
            raise ConfigError(f"GEPA auto must be 'light', 'medium' or 'heavy', got {auto!r}")
        if reflection_lm is None and instruction_proposer is None:
            raise ConfigError("GEPA needs reflection_lm= (or instruction_proposer=)")
        for name, value in zip(_UNSUPPORTED, (use_wandb, use_mlflow, code_proposer), strict=True):
            if value:
                raise ConfigError(f"GEPA {name} is a DSPy integration dspex does not provide; leave it unset")
        if candidate_selection_strategy not in ("pareto", "current_best"):
            raise ConfigError("GEPA candidate_selection_strategy must be 'pareto' or 'current_best', "
                              f"got {candidate_selection_strategy!r}")
        if track_best_outputs and not track_stats:
            raise ConfigError("GEPA track_best_outputs needs track_stats=True")
        limit = concurrency if concurrency is not None else num_threads if num_threads is not None else 16
        self.metric_fn = metric
        self.auto, self.max_full_evals, self.max_metric_calls = auto, max_full_evals, max_metric_calls
        self.reflection_minibatch_size = reflection_minibatch_size
        self.candidate_selection_strategy = candidate_selection_strategy
        self.reflection_lm = reflection_lm
        self.skip_perfect_score, self.perfect_score = skip_perfect_score, perfect_score
        self.add_format_failure_as_feedback = add_format_failure_as_feedback
        self.instruction_proposer = instruction_proposer
        self.component_selector = component_selector
        self.use_merge, self.max_merge_invocations = use_merge, max_merge_invocations
        self.failure_score = failure_score
        self.log_dir, self.track_stats, self.track_best_outputs = log_dir, track_stats, track_best_outputs
        self.warn_on_score_mismatch = warn_on_score_mismatch
        self.seed = seed
        self.gepa_kwargs = dict(gepa_kwargs or {})
        self.concurrency = check_concurrency(limit, "GEPA concurrency")

    def _budget(self, num_preds: int, train: int, val: int | None) -> int:
        if self.auto is not None:
            return auto_budget(max(num_preds, 1), AUTO_RUN_SETTINGS[self.auto]["n"], val if val is not None else train)
        if self.max_full_evals is not None:
            return self.max_full_evals * (train + (val or 0))
        assert self.max_metric_calls is not None
        return self.max_metric_calls

    async def acompile(self, student: Any, *, trainset: Sequence[Any], teacher: Any = None,
                       valset: Sequence[Any] | None = None, **unknown: Any) -> Any:
        """Return the best candidate program (a new one; the student is untouched).

        Raises:
            ConfigError: Empty trainset, a teacher given, an unknown argument,
                or the ``gepa`` package missing.
        """
        reject_unknown(self.acompile, unknown)
        try:  # the optional extra: imported when GEPA runs, not with dspex
            from gepa.api import optimize
        except ImportError as exc:
            raise ConfigError("GEPA needs the gepa package: pip install 'dspex[gepa]'") from exc
        check_student(student, "GEPA")
        train = list(trainset)
        if not train or teacher is not None:
            raise ConfigError("GEPA needs a non-empty trainset and takes no teacher")
        val = list(valset) if valset else None
        budget = self._budget(len(student.predictors()), len(train), len(val) if val else None)
        adapter = DspexGEPAAdapter(
            student, self.metric_fn, task_lm=get_setting("lm"), reflection_lm=self.reflection_lm,
            failure_score=self.failure_score, concurrency=self.concurrency, rng=random.Random(self.seed),
            instruction_proposer=self.instruction_proposer,
            add_format_failure_as_feedback=self.add_format_failure_as_feedback)
        seed_candidate = {name: p.signature.instructions for name, p in student.named_predictors()}
        merges = sys.maxsize if self.max_merge_invocations is None else self.max_merge_invocations
        run = functools.partial(
            optimize, seed_candidate=seed_candidate, trainset=train, valset=val or train,
            adapter=cast("GEPAAdapter[Any, Any, Any]", adapter),  # gepa's Protocol, met structurally
            reflection_lm=None, candidate_selection_strategy=self.candidate_selection_strategy,
            skip_perfect_score=self.skip_perfect_score, reflection_minibatch_size=self.reflection_minibatch_size,
            module_selector=self.component_selector, perfect_score=self.perfect_score, use_merge=self.use_merge,
            max_merge_invocations=merges, max_metric_calls=budget, logger=_Logger(),
            run_dir=self.log_dir, track_best_outputs=self.track_best_outputs, display_progress_bar=False,
            raise_on_exception=True, seed=self.seed or 0, **self.gepa_kwargs)
        result = await anyio.to_thread.run_sync(run)  # the engine is sync; its calls hop back to this loop
        candidate = result.best_candidate
        assert isinstance(candidate, dict), candidate  # a dict seed evolves dict candidates
        best = adapter.build_program(candidate)
        if self.track_stats:  # DSPy's attribute on the compiled program (Module does not declare it)
            vars(best)["detailed_results"] = _details(result, adapter)
        return best


def _details(result: Any, adapter: DspexGEPAAdapter) -> dict[str, Any]:
    """DSPy's ``DspyGEPAResult`` fields, as a dict with programs for candidates."""
    scores = list(result.val_aggregate_scores)
    return {"candidates": [adapter.build_program(c) for c in result.candidates], "parents": result.parents,
            "val_aggregate_scores": scores, "val_subscores": result.val_subscores,
            "per_val_instance_best_candidates": result.per_val_instance_best_candidates,
            "discovery_eval_counts": result.discovery_eval_counts,
            "best_outputs_valset": result.best_outputs_valset, "total_metric_calls": result.total_metric_calls,
            "num_full_val_evals": result.num_full_val_evals, "log_dir": result.run_dir, "seed": result.seed,
            "best_idx": max(range(len(scores)), key=lambda i: scores[i])}
