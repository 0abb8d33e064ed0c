"""``MIPROv2``: grounded instruction proposals crossed with bootstrapped demo sets, searched with Optuna TPE.

DSPy 3.4.1's algorithm, step for step, with its seeds: one ``Random(seed)``
draws, in DSPy's order, the auto-mode valset sample, the demo-set shuffles
and sizes, the proposer's tips and rollout ids, and every minibatch; an
Optuna ``TPESampler(seed=seed, multivariate=True)`` picks the
(instruction, demo set) of every predictor per trial. So the same seed and
the same LM answers give the same program. What dspex changes is how the
LM work runs: the demo sets are bootstrapped together and the proposals
made together (each batch through the flow engine, bounded by
``concurrency``), and every evaluation — a minibatch or the full valset —
runs its examples concurrently. Trials stay sequential, because each TPE
suggestion depends on the scores before it.
"""

from __future__ import annotations

import logging
import math
import random
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._context import context, get_setting
from ..errors import ConfigError
from ..evaluate._batch import check_concurrency
from ._base import Optimizer, check_student, reject_unknown
from ._fewshot import BootstrapFewShot, LabeledFewShot
from ._proposer import GroundedProposer
from ._scoring import percent, score_programs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..modules import Module

__all__ = ["MIPROv2"]

AUTO_RUN_SETTINGS = {"light": {"n": 6, "val_size": 100}, "medium": {"n": 12, "val_size": 300},
                     "heavy": {"n": 18, "val_size": 1000}}
BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT = 3
LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT = 0
MIN_MINIBATCH_SIZE = 50


def _optuna() -> Any:
    try:
        import optuna  # an optional extra: imported when MIPROv2 runs, not with dspex
    except ImportError as exc:
        raise ConfigError("MIPROv2 needs optuna: pip install 'dspex[mipro]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def num_trials_for(num_predictors: int, zeroshot: bool, num_candidates: int) -> int:
    """Return DSPy's trial budget ``max(2·P·log2(n), 1.5·n)``, P doubled when demos are searched."""
    num_vars = num_predictors * (1 if zeroshot else 2)
    return int(max(2 * num_vars * math.log2(num_candidates), 1.5 * num_candidates))


class MIPROv2(Optimizer):
    """Instruction and demo optimization with Bayesian search (DSPy's ``MIPROv2``).

    Args:
        metric: ``metric(example, pred, trace=None)``.
        prompt_model: The LM that proposes instructions (default: the context's LM).
        task_model: The LM the program runs on (default: the context's LM).
        teacher_settings: As ``BootstrapFewShot``.
        max_bootstrapped_demos: As ``BootstrapFewShot``.
        max_labeled_demos: As ``BootstrapFewShot``.
        max_errors: As ``BootstrapFewShot``.
        metric_threshold: As ``BootstrapFewShot``.
        auto: ``"light"``/``"medium"``/``"heavy"`` (n = 6/12/18 candidates,
            valset sampled to 100/300/1000) or None (then ``num_candidates``
            here and ``num_trials`` in ``compile`` are required).
        num_candidates: Instruction and demo-set candidates (auto=None).
        num_threads: Alias of ``concurrency``.
        seed: Seeds the RNG and the TPE sampler (same seed → same result).
        init_temperature: Temperature of the proposal calls.
        verbose: Log each trial at INFO.
        track_stats: Attach ``trial_logs``, ``score``, ``candidate_programs``
            and ``mb_candidate_programs`` to the result.
        log_dir: Save every evaluated program there as JSON.
        concurrency: Most LM calls in flight (bootstrapping, proposing, scoring).
        failure_score: Score of an example whose program or metric raised.

    Raises:
        ConfigError: Bad ``auto``, or a non-callable metric.
    """

    def __init__(
        self, metric: Callable[..., Any], prompt_model: Any = None, task_model: Any = None,
        teacher_settings: dict[str, Any] | None = None, max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4, auto: str | None = "light", num_candidates: int | None = None,
        num_threads: int | None = None, max_errors: int | None = None, seed: int = 9,
        init_temperature: float = 1.0, verbose: bool = False, track_stats: bool = True,
        log_dir: str | None = None, metric_threshold: float | None = None, concurrency: int | None = None,
        failure_score: float = 0.0,
    ) -> None:
        if auto not in (None, "light", "medium", "heavy"):
            raise ConfigError(f"MIPROv2 auto must be 'light', 'medium', 'heavy' or None, got {auto!r}")
        if not callable(metric):
            raise ConfigError(f"MIPROv2 needs a callable metric, got {metric!r}")
        limit = concurrency if concurrency is not None else num_threads if num_threads is not None else 16
        self.metric = metric
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.auto = auto
        self.num_candidates = num_candidates
        self.max_errors = max_errors
        self.seed = seed
        self.init_temperature = init_temperature
        self.verbose = verbose
        self.track_stats = track_stats
        self.log_dir = log_dir
        self.metric_threshold = metric_threshold
        self.concurrency = check_concurrency(limit, "MIPROv2 concurrency")
        self.failure_score = failure_score

    def _sizes(self, program: Module, num_trials: int | None, minibatch: bool, zeroshot: bool,
               valset: list[Any], rng: random.Random) -> tuple[int, list[Any], bool, int, int]:
        """Return (num_trials, valset, minibatch, instruction candidates, demo-set candidates)."""
        if self.auto is None:
            if self.num_candidates is None or num_trials is None:
                hint = "" if self.num_candidates is None else \
                    f" (about {num_trials_for(len(program.predictors()), zeroshot, self.num_candidates)})"
                raise ConfigError("MIPROv2 with auto=None needs num_candidates= and compile(num_trials=)" + hint)
            return num_trials, valset, minibatch, self.num_candidates, self.num_candidates
        if self.num_candidates is not None or num_trials is not None:
            raise ConfigError("MIPROv2 with auto set takes neither num_candidates nor num_trials; "
                              "set auto=None to choose them")
        n, val_size = AUTO_RUN_SETTINGS[self.auto]["n"], AUTO_RUN_SETTINGS[self.auto]["val_size"]
        valset = [valset[i] for i in rng.sample(range(len(valset)), min(val_size, len(valset)))]
        trials = num_trials_for(len(program.predictors()), zeroshot, n)
        return trials, valset, len(valset) > MIN_MINIBATCH_SIZE, n if zeroshot else int(n * 0.5), n

    @staticmethod
    def _split(trainset: list[Any], valset: Sequence[Any] | None) -> tuple[list[Any], list[Any]]:
        if not trainset:
            raise ConfigError("MIPROv2 needs a non-empty trainset")
        if valset is None:
            if len(trainset) < 2:
                raise ConfigError("MIPROv2 needs at least 2 train examples when no valset is given")
            cutoff = len(trainset) - min(1000, max(1, int(len(trainset) * 0.80)))
            return trainset[:cutoff], trainset[cutoff:]
        if not valset:
            raise ConfigError("MIPROv2 valset must have at least 1 example")
        return trainset, list(valset)

    async def acompile(
        self, student: Any, *, trainset: Sequence[Any], teacher: Any = None, valset: Sequence[Any] | None = None,
        num_trials: int | None = None, max_bootstrapped_demos: int | None = None,
        max_labeled_demos: int | None = None, seed: int | None = None, minibatch: bool = True,
        minibatch_size: int = 35, minibatch_full_eval_steps: int = 5, program_aware_proposer: bool = True,
        data_aware_proposer: bool = True, view_data_batch_size: int = 10, tip_aware_proposer: bool = True,
        fewshot_aware_proposer: bool = True, **unknown: Any,
    ) -> Any:
        """Return the best program found (a new one; the student is untouched).

        Raises:
            ConfigError: Inconsistent sizes (see the class doc), a minibatch
                larger than the valset, no LM, or optuna missing.
        """
        reject_unknown(self.acompile, unknown)
        check_student(student, "MIPROv2")
        task_model = self.task_model if self.task_model is not None else get_setting("lm")
        prompt_model = self.prompt_model if self.prompt_model is not None else get_setting("lm")
        if task_model is None or prompt_model is None:
            raise ConfigError("MIPROv2 needs prompt_model= and task_model=, or an LM in dx.context(lm=...)")
        boot = self.max_bootstrapped_demos if max_bootstrapped_demos is None else max_bootstrapped_demos
        labeled = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        zeroshot = boot == 0 and labeled == 0
        seed = seed or self.seed
        rng = random.Random(seed)
        train, val = self._split(list(trainset), valset)
        trials, val, minibatch, n_instr, n_demos = self._sizes(student, num_trials, minibatch, zeroshot, val, rng)
        if minibatch and minibatch_size > len(val):
            raise ConfigError(f"MIPROv2 minibatch_size {minibatch_size} exceeds the valset size {len(val)}")
        optuna = _optuna()
        program = student.deepcopy()
        proposer = GroundedProposer(
            prompt_model, program, train, view_data_batch_size=view_data_batch_size,
            use_dataset_summary=data_aware_proposer, program_aware=program_aware_proposer,
            use_task_demos=fewshot_aware_proposer, num_demos_in_context=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
            use_tip=tip_aware_proposer, rng=rng, init_temperature=self.init_temperature,
            concurrency=self.concurrency)
        sizes = (BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT, LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT) if zeroshot \
            else (boot, labeled)
        demos = await self._demos_and_summary(proposer, task_model, program, train, teacher, rng, n_demos, *sizes)
        instructions = await proposer.propose(demos, n_instr)
        for i, predictor in enumerate(program.predictors()):
            instructions[i][0] = predictor.signature.instructions
        self._instructions, self._demos = instructions, (None if zeroshot else demos)
        with context(lm=task_model):
            return await _Search(self, optuna, program, val, rng, seed).run(
                trials, minibatch, minibatch_size, minibatch_full_eval_steps)

    async def _demos_and_summary(self, proposer: GroundedProposer, task_model: Any, program: Module,
                                 train: list[Any], teacher: Any, rng: random.Random, n: int, boot: int,
                                 labeled: int) -> dict[int, list[list[Any]]]:
        """Bootstrap the demo sets (task model) while the proposer summarises the data (it needs no demos)."""
        found: dict[str, Any] = {}

        async def bootstrap() -> None:
            with context(lm=task_model):
                found["demos"] = await self._demo_sets(program, train, teacher, rng, n, boot, labeled)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(bootstrap)
                tg.start_soon(proposer.summarize)  # never raises: a failed summary is just left out
        except BaseExceptionGroup as group:  # the bootstrap's own error, not (nested) groups
            first: BaseException = group
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return found["demos"]  # type: ignore[no-any-return]

    async def _demo_sets(self, program: Module, train: list[Any], teacher: Any, rng: random.Random, n: int,
                         boot: int, labeled: int) -> dict[int, list[list[Any]]]:
        """Build DSPy's ``n`` demo-set candidates per predictor (``create_n_fewshot_demo_sets``)."""
        plans: list[tuple[int, list[Any], int]] = []
        for s in range(-3, n - 3):  # draw in DSPy's order first, then bootstrap every set at once
            copy = list(train)
            size = boot
            if not (s == -3 or (s == -2 and labeled > 0) or s == -1):
                rng.shuffle(copy)
                size = rng.randint(1, boot)
            plans.append((s, copy, size))
        limit = anyio.CapacityLimiter(self.concurrency)
        built: dict[int, Module] = {}

        async def build(index: int, s: int, copy: list[Any], size: int) -> None:
            if s == -3:
                built[index] = program.reset_copy()
            elif s == -2 and labeled > 0:
                built[index] = await LabeledFewShot(k=labeled).acompile(program, trainset=copy)
            else:
                optimizer = BootstrapFewShot(
                    metric=self.metric, metric_threshold=self.metric_threshold, max_bootstrapped_demos=size,
                    max_labeled_demos=labeled, teacher_settings=self.teacher_settings,
                    max_errors=self.max_errors, concurrency=self.concurrency)
                optimizer._shared_limit = limit  # every set's teacher calls share one bound
                built[index] = await optimizer.acompile(program, teacher=teacher, trainset=copy)

        async with anyio.create_task_group() as tg:
            for index, plan in enumerate(plans):
                tg.start_soon(build, index, *plan)
        return {i: [list(built[j].predictors()[i].demos) for j in range(len(plans))]
                for i in range(len(program.predictors()))}


class _Search:
    """MIPROv2's step 3: TPE trials on minibatches, full evaluations every N trials."""

    def __init__(self, opt: MIPROv2, optuna: Any, program: Module, val: list[Any], rng: random.Random,
                 seed: int) -> None:
        self.opt, self.optuna, self.program, self.val, self.rng = opt, optuna, program, val, rng
        self.instructions, self.demos = opt._instructions, opt._demos
        with warnings.catch_warnings():  # multivariate TPE is "experimental" in optuna, as DSPy uses it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.trial_logs: dict[int, dict[str, Any]] = {}
        self.score_data: list[dict[str, Any]] = []
        self.by_params: dict[str, list[tuple[float, Module, dict[str, int]]]] = {}
        self.fully_evaluated: dict[str, dict[str, Any]] = {}
        self.total_eval_calls = 0

    def _distributions(self) -> dict[str, Any]:
        cat = self.optuna.distributions.CategoricalDistribution
        out: dict[str, Any] = {}
        for i in range(len(self.instructions)):
            out[f"{i}_predictor_instruction"] = cat(range(len(self.instructions[i])))
            if self.demos:
                out[f"{i}_predictor_demos"] = cat(range(len(self.demos[i])))
        return out

    async def _evaluate(self, program: Module, size: int) -> float:
        """Score ``program`` on the valset, or on a random minibatch of ``size`` (drawn from the RNG)."""
        batch = self.val if size >= len(self.val) else \
            [self.val[i] for i in self.rng.sample(range(len(self.val)), size)]
        scores = await score_programs([program], batch, self.opt.metric, concurrency=self.opt.concurrency,
                                      name="mipro-eval", failure_score=self.opt.failure_score)
        return percent(scores[0])

    def _save(self, program: Module, name: str) -> str | None:
        if self.opt.log_dir is None:
            return None
        path = Path(self.opt.log_dir) / "evaluated_programs" / f"program_{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        program.save(path)
        return str(path)

    def _apply(self, trial: Any, program: Module) -> tuple[list[str], dict[str, int]]:
        """Let the trial choose each predictor's instruction (and demo set); put them in ``program``."""
        chosen: list[str] = []
        raw: dict[str, int] = {}
        for i, predictor in enumerate(program.predictors()):
            idx = trial.suggest_categorical(f"{i}_predictor_instruction", range(len(self.instructions[i])))
            predictor.signature = predictor.signature.with_instructions(self.instructions[i][idx])
            chosen.append(f"Predictor {i}: Instruction {idx}")
            raw[f"{i}_predictor_instruction"] = idx
            if self.demos:
                d = trial.suggest_categorical(f"{i}_predictor_demos", range(len(self.demos[i])))
                predictor.demos = self.demos[i][d]
                chosen.append(f"Predictor {i}: Few-Shot Set {d}")
                raw[f"{i}_predictor_demos"] = d
        return chosen, raw

    async def run(self, num_trials: int, minibatch: bool, minibatch_size: int, full_eval_steps: int) -> Any:
        """Run the trials; return the best fully evaluated program with DSPy's attributes."""
        extra_at_end = 1 if num_trials % full_eval_steps != 0 else 0
        adjusted = int(num_trials + num_trials // full_eval_steps + 1 + extra_at_end) if minibatch else num_trials
        default = await self._evaluate(self.program, len(self.val))
        self.total_eval_calls = len(self.val)
        self.trial_logs[1] = {"full_eval_score": default, "total_eval_calls_so_far": len(self.val),
                              "full_eval_program_path": self._save(self.program, "-1")}
        best_score, best = default, self.program.deepcopy()
        self.score_data.append({"score": default, "program": self.program.deepcopy(), "full_eval": True})
        baseline = {f"{i}_predictor_instruction": 0 for i in range(len(self.instructions))}
        if self.demos:
            baseline.update({f"{i}_predictor_demos": 0 for i in range(len(self.instructions))})
        self.study.add_trial(self.optuna.trial.create_trial(params=baseline, distributions=self._distributions(),
                                                            value=default))
        for _ in range(num_trials):
            trial = self.study.ask()
            trial_num = trial.number + 1
            candidate = self.program.deepcopy()
            chosen, raw = self._apply(trial, candidate)
            size = minibatch_size if minibatch else len(self.val)
            score = await self._evaluate(candidate, size)
            self.total_eval_calls += size
            if not minibatch and score > best_score:
                best_score, best = score, candidate.deepcopy()
            self.score_data.append({"score": score, "program": candidate, "full_eval": size >= len(self.val)})
            key = "mb_" if minibatch else "full_eval_"
            self.trial_logs[trial_num] = {**raw, f"{key}score": score, f"{key}program_path":
                                          self._save(candidate, str(trial_num)),
                                          "total_eval_calls_so_far": self.total_eval_calls}
            if self.opt.verbose:
                log_trial(trial_num, adjusted, score, chosen, best_score)
            self.by_params.setdefault(",".join(chosen), []).append((score, candidate, raw))
            if minibatch and (trial_num % (full_eval_steps + 1) == 0 or trial_num == adjusted - 1):
                best_score, best = await self._full_eval(trial_num, best_score, best)
            self.study.tell(trial, score)
        return self._finish(best, best_score)

    async def _full_eval(self, trial_num: int, best_score: float, best: Module) -> tuple[float, Module]:
        """Fully evaluate the best-mean combination not yet fully evaluated; add it as a trial."""
        ranked = sorted(((k, sum(s for s, _, _ in v) / len(v), v[0][1], v[0][2]) for k, v in self.by_params.items()),
                        key=lambda r: r[1], reverse=True)
        pick = next((r for r in ranked if r[0] not in self.fully_evaluated), None)
        if pick is None:
            return best_score, best  # DSPy raises here; every combination is already fully scored
        key, _, program, params = pick
        score = await self._evaluate(program, len(self.val))
        self.score_data.append({"score": score, "program": program, "full_eval": True})
        self.study.add_trial(self.optuna.trial.create_trial(params=params, distributions=self._distributions(),
                                                            value=score))
        self.fully_evaluated[key] = {"program": program, "score": score}
        self.total_eval_calls += len(self.val)
        self.trial_logs[trial_num + 1] = {"full_eval_score": score, "total_eval_calls_so_far": self.total_eval_calls,
                                          "full_eval_program_path": self._save(program, f"{trial_num + 1}_full_eval")}
        if score > best_score:
            return score, program.deepcopy()
        return best_score, best

    def _finish(self, best: Module, best_score: float) -> Module:
        if self.opt.track_stats:
            ranked = sorted(self.score_data, key=lambda d: d["score"], reverse=True)
            # DSPy's statistics attributes on the compiled program (Module does not declare them)
            vars(best).update(trial_logs=self.trial_logs, score=best_score, total_calls=self.total_eval_calls,
                              mb_candidate_programs=[d for d in ranked if not d["full_eval"]],
                              candidate_programs=[d for d in ranked if d["full_eval"]])
        return best


def log_trial(trial_num: int, total: int, score: float, chosen: list[str], best: float) -> None:
    """Log one trial at INFO (``verbose=True``)."""
    logging.getLogger("dspex.optimizers").info("MIPROv2 trial %d/%d: score %s with %s; best full score %s",
                                               trial_num, total, score, ", ".join(chosen), best)
