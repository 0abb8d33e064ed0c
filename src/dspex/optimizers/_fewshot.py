"""``LabeledFewShot`` and ``BootstrapFewShot``: demos from labels and from teacher traces.

Both follow DSPy 3.4.1 step for step, so that the same trainset, seed and
(deterministic) teacher give the same demos. ``BootstrapFewShot`` differs in
how it runs, not in what it picks: DSPy runs the teacher on one example at a
time, dspex runs a window of examples at once through the flow engine (the
window sized from the demos still needed and the success rate so far), then
accepts results strictly in trainset order, so completion order never
changes the outcome. A failing example is simply not bootstrapped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._context import context, get_setting
from ..errors import ConfigError
from ..evaluate._batch import check_concurrency, run_batch
from ..evaluate._evaluate import call_metric, call_program, split_score
from ..modules import Example, Module
from ._base import Optimizer, check_student, reject_unknown

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import anyio

__all__ = ["BootstrapFewShot", "LabeledFewShot"]

log = logging.getLogger("dspex.optimizers")


class LabeledFewShot(Optimizer):
    """Give every predictor ``k`` labeled examples from the trainset as demos.

    Args:
        k: Demos per predictor.

    With ``sample=True`` (default) each predictor in turn gets
    ``random.Random(0).sample(trainset, k)`` from one shared RNG, as in
    DSPy; otherwise the first ``k``. No LM calls.

    Example:
        >>> import dspex as dx
        >>> train = [dx.Example(question=str(i), answer=str(i)).with_inputs("question") for i in range(5)]
        >>> prog = dx.LabeledFewShot(k=2).compile(dx.Predict("question -> answer"), trainset=train)
        >>> [d.question for d in prog.demos]
        ['3', '4']
    """

    def __init__(self, k: int = 16) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ConfigError(f"LabeledFewShot k must be an int >= 0, got {k!r}")
        self.k = k

    async def acompile(self, student: Any, *, trainset: Sequence[Any], sample: bool = True,
                       **unknown: Any) -> Any:
        """Return a reset copy of ``student`` whose predictors carry labeled demos."""
        reject_unknown(self.acompile, unknown)
        program = check_student(student, "LabeledFewShot").reset_copy()
        train = list(trainset)
        if not train:
            return program
        rng = random.Random(0)
        n = min(self.k, len(train))
        for predictor in program.predictors():
            predictor.demos = rng.sample(train, n) if sample else train[:n]
        return program


@dataclass
class _Attempt:
    """The outcome of running the teacher on one example (one round)."""

    success: bool = False
    traces: dict[str, list[Example]] = field(default_factory=dict)
    error: BaseException | None = None


def _stable_seed(demos: Sequence[Example]) -> int:
    text = repr([sorted(d.items(), key=lambda kv: kv[0]) for d in demos])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "replace")).digest()[:8], "big")


class BootstrapFewShot(Optimizer):
    """Collect demos from the teacher's successful traces (DSPy's algorithm).

    Args:
        metric: ``metric(example, pred, trace)``; a trace passes when the
            result is truthy, or ``>= metric_threshold`` when that is set.
            None accepts every trace.
        metric_threshold: See ``metric``.
        teacher_settings: ``dx.context`` settings for the teacher's calls.
        max_bootstrapped_demos: Most traced demos per predictor.
        max_labeled_demos: Labeled demos to top up with (and the teacher's
            own LabeledFewShot demos when it is uncompiled).
        max_rounds: Attempts per example; round r > 0 uses
            ``lm.copy(rollout_id=r, temperature=1.0)`` to bypass caches.
        max_errors: None (default): errors never abort; an example that
            raises is just not bootstrapped. An int: raise the error once
            that many examples failed (DSPy's budget).
        concurrency: Most teacher calls in flight.

    When one predictor runs several times in one trace, one of its steps is
    kept at random as in DSPy, but seeded by a SHA-256 of the demos (DSPy
    uses its own hasher), so that rare case may keep a different step.

    As in DSPy, the program returned (and the teacher, when it gets labeled
    demos) is a ``reset_copy``: predictors drop their own LM and use the
    context's (``dx.context(lm=...)``) or ``teacher_settings["lm"]``.

    ``acompile`` raises ``ConfigError`` when the student is compiled or the
    teacher's structure differs, and re-raises the first error when every
    attempt failed (nothing could be learned, e.g. no LM configured).
    """

    def __init__(
        self, metric: Callable[..., Any] | None = None, metric_threshold: float | None = None,
        teacher_settings: dict[str, Any] | None = None, max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16, max_rounds: int = 1, max_errors: int | None = None,
        concurrency: int = 16,
    ) -> None:
        for name, value in (("max_bootstrapped_demos", max_bootstrapped_demos),
                            ("max_labeled_demos", max_labeled_demos), ("max_rounds", max_rounds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"BootstrapFewShot {name} must be an int >= 0, got {value!r}")
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors
        self.concurrency = check_concurrency(concurrency, "BootstrapFewShot concurrency")
        self.error_count = 0
        self._shared_limit: anyio.CapacityLimiter | None = None

    async def acompile(self, student: Any, *, trainset: Sequence[Any], teacher: Any = None,
                       **unknown: Any) -> Any:
        """Return a compiled copy of ``student``: traced demos, then labeled ones."""
        reject_unknown(self.acompile, unknown)
        check_student(student, "BootstrapFewShot")
        train = list(trainset)
        program = student.reset_copy()
        if program._compiled:
            raise ConfigError("BootstrapFewShot: the student must be uncompiled (student._compiled is True)")
        coach = teacher.deepcopy() if teacher is not None else student.deepcopy()
        if self.max_labeled_demos and not coach._compiled:
            coach = await LabeledFewShot(k=self.max_labeled_demos).acompile(coach.reset_copy(), trainset=train)
        names = _match_predictors(program, coach)
        traces, done = await self._bootstrap(coach, train, names)
        validation = [x for i, x in enumerate(train) if i not in done]
        random.Random(0).shuffle(validation)
        rng = random.Random(0)
        for name, predictor in program.named_predictors():
            augmented = traces[name][: self.max_bootstrapped_demos]
            size = max(0, min(self.max_labeled_demos - len(augmented), len(validation)))
            predictor.demos = augmented + rng.sample(validation, size)
        program._compiled = True
        return program

    async def _bootstrap(self, teacher: Module, train: list[Any], names: list[str]
                         ) -> tuple[dict[str, list[Example]], set[int]]:
        """Run the teacher window by window; accept successes in trainset order."""
        traces: dict[str, list[Example]] = {name: [] for name in names}
        done: set[int] = set()
        pos = tried = 0
        errors: list[BaseException] = []
        while pos < len(train) and len(done) < self.max_bootstrapped_demos and self.max_rounds > 0:
            need = self.max_bootstrapped_demos - len(done)
            rate = len(done) / tried if tried else 1.0
            # Enough examples to find the demos still needed at the success rate so far.
            window = list(range(pos, min(len(train), pos + max(need, math.ceil(need / max(rate, 0.125))))))
            outcomes = await self._attempt_window(teacher, train, window)
            failed = [a.error for i in window for a in outcomes[i] if a.error is not None]
            if failed and self.max_errors is not None and self.error_count >= self.max_errors:
                raise failed[0]  # DSPy's error budget, opted into with max_errors=
            for index in window:
                if len(done) >= self.max_bootstrapped_demos:
                    break  # DSPy stops here; later results are discarded, as if never run
                tried += 1
                attempt = outcomes[index]
                errors.extend(a.error for a in attempt if a.error is not None)
                won = next((a for a in attempt if a.success), None)
                if won is not None:
                    done.add(index)
                    for name, demos in won.traces.items():
                        traces[name].extend(demos)
            pos = window[-1] + 1
        if errors and len(errors) >= tried * self.max_rounds and not done:
            raise errors[0]
        log.info("bootstrapped %d full traces from %d examples", len(done), tried)
        return traces, done

    async def _attempt_window(self, teacher: Module, train: list[Any], window: list[int]
                              ) -> dict[int, list[_Attempt]]:
        outcomes: dict[int, list[_Attempt]] = {i: [] for i in window}
        todo = list(window)
        for round_idx in range(self.max_rounds):
            if not todo:
                break

            async def attempt(_: int, index: int, round_idx: int = round_idx) -> dict[str, Any]:
                if self._shared_limit is None:
                    outcomes[index].append(await self._attempt(teacher, train[index], round_idx))
                else:  # a search running several bootstraps bounds their calls together
                    async with self._shared_limit:
                        outcomes[index].append(await self._attempt(teacher, train[index], round_idx))
                return {}

            await run_batch(attempt, todo, concurrency=self.concurrency, name="bootstrap")
            todo = [i for i in todo if not outcomes[i][-1].success]
        return outcomes

    async def _attempt(self, teacher: Module, example: Any, round_idx: int) -> _Attempt:
        settings = dict(self.teacher_settings)
        if round_idx > 0:
            lm = settings.get("lm") or get_setting("lm")
            if lm is not None and hasattr(lm, "copy"):
                settings["lm"] = lm.copy(rollout_id=round_idx, temperature=1.0)
        runner = _without_example(teacher, example)
        names = {id(p): name for name, p in runner.named_predictors()}
        trace: list[Any] = []
        try:
            with context(trace=trace, **settings):
                pred = await call_program(runner, example)
            success = True
            if self.metric is not None:
                score, _ = split_score(await call_metric(self.metric, example, pred, trace))
                success = bool(score >= self.metric_threshold if self.metric_threshold else score)
        except Exception as exc:
            self._count_error(exc, example)
            return _Attempt(error=exc)
        return _Attempt(True, _collect_traces(trace, names)) if success else _Attempt()

    def _count_error(self, exc: Exception, example: Any) -> None:
        self.error_count += 1
        log.warning("bootstrapping failed on %r: %s: %s", example, type(exc).__name__, exc)


def _without_example(teacher: Module, example: Any) -> Module:
    """Return ``teacher``, or a copy without ``example`` among its demos (DSPy removes it)."""
    if not any(example in p.demos for p in teacher.predictors()):
        return teacher
    copy: Module = teacher.deepcopy()
    for predictor in copy.predictors():
        predictor.demos = [d for d in predictor.demos if d != example]
    return copy


def _collect_traces(trace: list[Any], names: dict[int, str]) -> dict[str, list[Example]]:
    found: dict[str, list[Example]] = {}
    for predictor, inputs, outputs in trace:
        name = names.get(id(predictor))
        if name is None:
            continue  # a call from outside the teacher (DSPy skips these too)
        found.setdefault(name, []).append(Example({"augmented": True, **dict(inputs), **dict(outputs.items())}))
    for name, demos in found.items():
        if len(demos) > 1:  # one step per predictor: a random earlier one half the time, else the last
            rng = random.Random(_stable_seed(demos))
            found[name] = [rng.choice(demos[:-1]) if rng.random() < 0.5 else demos[-1]]
    return found


def _match_predictors(student: Module, teacher: Module) -> list[str]:
    ours, theirs = student.named_predictors(), teacher.named_predictors()
    if len(ours) != len(theirs):
        raise ConfigError(f"student has {len(ours)} predictors but the teacher has {len(theirs)}; "
                          "they must have the same structure")
    for (name1, p1), (name2, p2) in zip(ours, theirs, strict=True):
        if name1 != name2:
            raise ConfigError(f"student predictor {name1!r} does not match teacher predictor {name2!r}; "
                              "they must have the same structure")
        if p1.signature.signature != p2.signature.signature:
            raise ConfigError(f"predictor {name1!r}: student signature {p1.signature.signature!r} differs "
                              f"from the teacher's {p2.signature.signature!r}")
        if p1 is p2:
            raise ConfigError(f"predictor {name1!r} is shared by the student and the teacher")
    return [name for name, _ in ours]
