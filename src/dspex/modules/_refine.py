"""``BestOfN`` and ``Refine``: run a module up to N times, keep the best reward.

Both follow DSPy 3.4.1. Attempt ``i`` runs a deep copy of the module whose
LM is ``lm.copy(rollout_id=start + i, temperature=1.0)`` (``start`` is the
LM's own ``rollout_id``, else 0), so each attempt is a distinct cache entry
and a fresh sample. The first prediction whose reward reaches ``threshold``
wins; otherwise the best one seen. ``Refine`` additionally asks the LM, after
each attempt below the threshold, for per-predictor advice (DSPy's
``OfferFeedback`` signature, byte-identical prompt); the advice reaches every
predictor of the next attempt as an extra ``hint_`` input field (through the
``hints`` setting that ``Predict`` reads), exactly where DSPy's wrapper
adapter puts it.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import textwrap
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread

from .._context import context, get_setting
from ..adapters._fmt import field_descriptions
from ..errors import ConfigError
from ..events import Retry
from ..signatures import InputField, OutputField, Signature
from ._module import Module
from ._predict import Predict
from ._prediction import Prediction
from ._stream import EMITTER

__all__ = ["BestOfN", "OfferFeedback", "Refine", "inspect_modules"]

_log = logging.getLogger("dspex.modules")

RewardFn = Callable[[dict[str, Any], Prediction], float | Awaitable[float]]


class OfferFeedback(Signature):
    """
    In the discussion, assign blame to each module that contributed to the final reward being below the threshold, if
    any. Then, prescribe concrete advice of how the module should act on its future input when we retry the process, if
    it were to receive the same or similar inputs. If a module is not to blame, the advice should be N/A.
    The module will not see its own history, so it needs to rely on entirely concrete and actionable advice from you
    to avoid the same mistake on the same or similar inputs.
    """

    program_code: str = InputField(desc="The code of the program that we are analyzing")
    modules_defn: str = InputField(desc="The definition of each module in the program, including its I/O")
    program_inputs: str = InputField(desc="The inputs to the program that we are analyzing")
    program_trajectory: str = InputField(desc="The trajectory of the program's execution, showing each module's I/O")
    program_outputs: str = InputField(desc="The outputs of the program that we are analyzing")
    reward_code: str = InputField(desc="The code of the reward function that we are analyzing")
    target_threshold: float = InputField(desc="The target threshold for the reward function")
    reward_value: float = InputField(desc="The reward value assigned to the program's outputs")
    module_names: list[str] = InputField(desc="The names of the modules in the program, for which we seek advice")
    discussion: str = OutputField(desc="Discussing blame of where each module went wrong, if it did")
    advice: dict[str, str] = OutputField(
        desc="For each module, describe very concretely, in this order: the specific scenarios in which it has made "
        "mistakes in the past and what each mistake was, followed by what it should do differently in that kind of"
        "scenario in the future. If the module is not to blame, write N/A."
    )


def inspect_modules(program: Module) -> str:
    """Return DSPy's text description of each predictor: fields and instructions."""
    separator = "-" * 80
    output = [separator]
    for name, predictor in program.named_predictors():
        signature = predictor.signature
        instructions = textwrap.dedent(signature.instructions)
        instructions = ("\n" + "\t" * 2).join(["", *instructions.splitlines()])
        output.append(f"Module {name}")
        output.append("\n\tInput Fields:")
        output.append(("\n" + "\t" * 2).join(["", *field_descriptions(signature.input_fields).splitlines()]))
        output.append("\tOutput Fields:")
        output.append(("\n" + "\t" * 2).join(["", *field_descriptions(signature.output_fields).splitlines()]))
        output.append(f"\tOriginal Instructions: {instructions}")
        output.append(separator)
    return "\n".join(o.strip("\n") for o in output)


def _mask(value: Any) -> Any:
    """Return ``value`` with anything JSON cannot hold replaced by a placeholder (DSPy's)."""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"<non-serializable: {type(value).__name__}>"


def _dumps(value: Any) -> str:
    # orjson.dumps(..., OPT_INDENT_2) as DSPy writes it: 2-space indent, raw UTF-8.
    return json.dumps(_mask(value), indent=2, ensure_ascii=False)


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        try:
            return inspect.getsource(type(obj))
        except (OSError, TypeError):
            return f"<source of {getattr(obj, '__qualname__', type(obj).__name__)} unavailable>"


class BestOfN(Module):
    """Run ``module`` up to ``N`` times; return the first reward >= threshold, else the best.

    Args:
        module: The module to run (deep-copied per attempt; never mutated).
        N: Maximum number of attempts (>= 1).
        reward_fn: ``(inputs_dict, prediction) -> float``, sync (run in a
            worker thread so it cannot block the loop) or async.
        threshold: Stop at the first attempt whose reward reaches it.
        fail_count: Failed attempts tolerated (an exception from the module
            or the reward); default ``N``. The failure after that is raised,
            as is the last one when every attempt failed.

    Attempts run one after another (each may depend on the last, in
    ``Refine``). With ``dx.context(trace=[...])`` the winner's trace is
    appended, as in DSPy. When streaming, each new attempt emits a ``Retry``.

    Raises:
        ConfigError: ``N`` < 1 or ``reward_fn`` is not callable.
    """

    _name = "BestOfN"

    def __init__(
        self, module: Module, N: int, reward_fn: RewardFn, threshold: float,
        fail_count: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(N, int) or N < 1:
            raise ConfigError(f"{self._name} N must be an int >= 1, got {N!r}")
        if not callable(reward_fn):
            raise ConfigError(f"{self._name} reward_fn must be callable (inputs, prediction) -> float, got {reward_fn!r}")
        self.module = module
        self._reward_fn = reward_fn  # underscore: not walked as a sub-module
        self.threshold = threshold
        self.N = N
        self.fail_count = fail_count or N

    async def _reward(self, inputs: dict[str, Any], pred: Any) -> float:
        fn = self._reward_fn
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):  # noqa: B004
            result = fn(inputs, pred)
        else:
            result = await anyio.to_thread.run_sync(fn, inputs, pred)
        if inspect.isawaitable(result):
            result = await result
        return float(result)

    def _attempt_module(self, lm: Any, rollout_id: int) -> Module:
        mod: Module = self.module.deepcopy()
        if lm is not None and callable(getattr(lm, "copy", None)):
            mod.set_lm(lm.copy(rollout_id=rollout_id, temperature=1.0))
        elif lm is not None:  # an LM without copy() (e.g. ScriptedLM) is used as is
            mod.set_lm(lm)
        return mod

    async def _announce(self, attempt: int, reason: str) -> None:
        emitter = EMITTER.get()
        if emitter is not None and emitter.usable():
            await emitter.emit(Retry(attempt=attempt, reason=f"{self._name}: {reason}"))

    async def aforward(self, **inputs: Any) -> Any:
        """Run the attempts as the class doc says; return the chosen prediction."""
        lm = self.module.get_lm() or get_setting("lm")
        start = int((getattr(lm, "kwargs", None) or {}).get("rollout_id") or 0)
        best: tuple[float, Any, list[Any]] = (-math.inf, None, [])
        advice: Mapping[str, Any] | None = None
        failures = 0
        for idx in range(self.N):
            mod = self._attempt_module(lm, start + idx)
            try:
                trace: list[Any] = []
                hints = None
                if advice is not None:
                    hints = {id(p): advice.get(name, "N/A") for name, p in mod.named_predictors()}
                with context(trace=trace, hints=hints):
                    pred = await mod.acall(**inputs)
                reward = await self._reward(dict(inputs), pred)
                if reward > best[0]:
                    best = (reward, pred, list(trace))
                if reward >= self.threshold or idx == self.N - 1:
                    break
                await self._announce(idx + 2, f"reward {reward} < threshold {self.threshold}")
                advice = await self._advise(mod, inputs, trace, pred, reward, lm)
            except Exception as exc:
                failures += 1
                _log.warning("%s: attempt %d failed with rollout id %d: %r", self._name, idx + 1, start + idx, exc)
                if failures > self.fail_count or (failures == self.N and best[1] is None):
                    raise
                await self._announce(idx + 2, f"attempt failed: {exc!r}")
        outer = get_setting("trace")
        if outer is not None and best[2]:
            outer.extend(best[2])
        return best[1]

    async def _advise(
        self, mod: Module, inputs: dict[str, Any], trace: list[Any], pred: Any, reward: float, lm: Any
    ) -> Mapping[str, Any] | None:
        """Return advice for the next attempt (None: BestOfN gives none)."""
        return None


class Refine(BestOfN):
    """``BestOfN`` that feeds LM-written advice into the next attempt (DSPy's ``Refine``).

    After an attempt below ``threshold`` (except the last), one extra LM call
    with DSPy's ``OfferFeedback`` signature (the settings' LM and adapter)
    receives the program's source, its predictors, the trace of the attempt
    and the reward, and returns ``advice: dict[predictor name, str]``. The
    next attempt's predictors each get an input field ``hint_`` ("A hint to
    the module from an earlier run") holding their advice, ``"N/A"`` when
    none. Arguments, ``fail_count`` and errors are as in :class:`BestOfN`; a
    failed feedback call counts as a failed attempt.
    """

    _name = "Refine"

    def __init__(
        self, module: Module, N: int, reward_fn: RewardFn, threshold: float,
        fail_count: int | None = None,
    ) -> None:
        super().__init__(module, N, reward_fn, threshold, fail_count)
        self._module_code = _source(type(module))
        self._reward_code = _source(reward_fn)

    async def _advise(
        self, mod: Module, inputs: dict[str, Any], trace: list[Any], pred: Any, reward: float, lm: Any
    ) -> Mapping[str, Any] | None:
        names = {id(p): name for name, p in mod.named_predictors()}
        steps = [
            {"module_name": names.get(id(p), type(p).__name__), "inputs": i, "outputs": dict(o)} for p, i, o in trace
        ]
        fields: dict[str, Any] = {
            "program_code": self._module_code,
            "modules_defn": inspect_modules(mod),
            "program_inputs": inputs,
            "program_trajectory": steps,
            "program_outputs": dict(pred) if pred is not None else None,
            "reward_code": self._reward_code,
            "target_threshold": self.threshold,
            "reward_value": reward,
            "module_names": [name for name, _ in mod.named_predictors()],
        }
        # DSPy serialises everything but strings with orjson (so floats become "1.0").
        fields = {k: v if isinstance(v, str) else _dumps(v) for k, v in fields.items()}
        with context(hints=None, trace=None):
            # A fresh predictor per call, as DSPy; the un-copied LM (DSPy: settings.lm).
            advice = (await Predict(OfferFeedback).acall(lm=lm, **fields)).advice
        return advice if isinstance(advice, Mapping) else {}
