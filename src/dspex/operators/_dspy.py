"""``dx.ops.from_dspy``: a DSPy module as a node of a dspex flow (the ``dspy`` extra).

:func:`from_dspy` wraps a ``dspy.Module`` in a :class:`DSPyModule`, which
speaks dspex's module protocol (``acall`` / ``stream``), so ``map`` treats it
like a dspex module: the record's fields that the DSPy module takes become its
inputs, and its prediction's fields are merged into the record. Each call runs
on a private copy of the DSPy LM (``lm.copy()``, empty history), so the usage
of that one call is read from that copy's history even when many calls run at
once; it is reported to the run like a dspex LM call.

DSPy's ``acall`` runs on asyncio only (litellm's async client) and needs the
module to define ``aforward``. Under asyncio such a module is awaited on the
flow's loop; under trio, or for a module with only ``forward``, its sync call
runs in a worker thread (``anyio.to_thread``), so each in-flight item holds
one thread of anyio's default limiter (40 threads) while it waits for the LM.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..errors import ConfigError, InputError
from ..events import PredictionDone, Usage
from ..lm._types import LMUsage

__all__ = ["DSPyModule", "DSPyResult", "from_dspy"]


def _dspy() -> Any:
    try:
        import dspy
    except ImportError as exc:
        raise ConfigError(
            "from_dspy needs DSPy: install the extra with pip install 'dspex[dspy]'"
        ) from exc
    return dspy


class DSPyResult(dict[str, Any]):
    """A DSPy prediction's output fields, with the call's ``usage`` and the original
    ``prediction`` (a ``dspy.Prediction``) as attributes."""

    __slots__ = ("prediction", "usage")

    def __init__(self, fields: Mapping[str, Any], usage: dict[str, LMUsage], prediction: Any) -> None:
        super().__init__(fields)
        self.usage = usage
        self.prediction = prediction


class DSPyModule:
    """A ``dspy.Module`` adapted to dspex's module protocol. Build with :func:`from_dspy`.

    Args:
        module: The DSPy module (``dspy.Predict``, ``dspy.ChainOfThought``, a
            custom ``dspy.Module``...).
        lm: The ``dspy.LM`` to run it with; None uses the LM configured in
            DSPy (``dspy.configure(lm=...)``) when the call starts.
    """

    def __init__(self, module: Any, lm: Any = None) -> None:
        self.module = module
        self.lm = lm
        self.input_names, self.required = _input_names(module)
        self.native_async = callable(getattr(type(module), "aforward", None))

    def __repr__(self) -> str:
        return f"from_dspy({type(self.module).__name__})"

    async def acall(self, **inputs: Any) -> DSPyResult:
        """Run the DSPy module once on ``inputs`` (extra keys are ignored).

        Blocks until the module returns; under trio it runs in a worker thread,
        and cancelling the call (a node timeout) abandons that thread: the DSPy
        call finishes in the background and its result is dropped. Usage is
        read from the LM this call runs with (a copy of ``lm`` or of DSPy's
        configured LM); a predictor pinned to its own ``predictor.lm`` bypasses
        it, and its calls are not counted.

        Raises:
            ConfigError: No DSPy LM is configured.
            InputError: An input the module requires is missing.
            Exception: Whatever the DSPy module raises (the node's error policy applies).
        """
        dspy = _dspy()
        lm = self.lm if self.lm is not None else dspy.settings.lm
        if lm is None:
            raise ConfigError("from_dspy: no DSPy LM; pass lm= or call dspy.configure(lm=...) first")
        kwargs = self._select(inputs)
        call_lm = lm.copy()  # a private history: this call's usage, even with calls in flight
        if self.native_async and not _on_trio():
            with dspy.context(lm=call_lm):
                prediction = await self.module.acall(**kwargs)
        else:  # DSPy's async path needs asyncio (and aforward): run its sync call in a worker thread

            def run() -> Any:
                with dspy.context(lm=call_lm):
                    return self.module(**kwargs)

            prediction = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        return DSPyResult(_fields(prediction), _usage(call_lm), prediction)

    async def stream(self, **inputs: Any) -> AsyncIterator[Any]:
        """Yield one ``Usage`` event per LM call, then ``PredictionDone``.

        DSPy produces its answer whole here (no token deltas).
        """
        result = await self.acall(**inputs)
        for model, usage in result.usage.items():
            yield Usage(model=model.partition("#")[0], **usage.model_dump())
        yield PredictionDone(outputs=dict(result), prediction=result)

    def _select(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if self.input_names is None:
            return dict(inputs)
        missing = [name for name in self.required if name not in inputs]
        if missing:
            raise InputError(
                f"{self!r} needs input field(s) {', '.join(map(repr, missing))}; "
                f"the record has {', '.join(map(repr, inputs)) or 'no fields'}"
            )
        return {name: inputs[name] for name in self.input_names if name in inputs}


def _on_trio() -> bool:
    """True when the running anyio backend is trio (its token is a ``trio.TrioToken``)."""
    return type(anyio.lowlevel.current_token().native_token).__module__.startswith("trio")


def _input_names(module: Any) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The names the module takes and those it requires: ``forward``'s named
    parameters (required: those without a default), else its one signature's
    input fields (all required); None when it takes anything (``**kwargs`` and
    no single signature)."""
    forward = getattr(type(module), "forward", None)  # on the instance, DSPy warns about direct calls
    if callable(forward):
        params = list(inspect.signature(forward).parameters.values())[1:]  # without self
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        named = [p for p in params if p.kind in kinds]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            required = tuple(p.name for p in named if p.default is p.empty)
            return tuple(p.name for p in named), required
    signature = getattr(module, "signature", None)
    if signature is None:
        predictors = list(module.named_predictors()) if hasattr(module, "named_predictors") else []
        signature = predictors[0][1].signature if len(predictors) == 1 else None
    if signature is not None and hasattr(signature, "input_fields"):
        names = tuple(signature.input_fields)
        return names, names
    return None, ()


def _fields(prediction: Any) -> dict[str, Any]:
    to_dict = getattr(prediction, "toDict", None)
    if callable(to_dict):
        return dict(to_dict())
    if isinstance(prediction, Mapping):
        return dict(prediction)
    raise InputError(f"a DSPy module returned {type(prediction).__name__}, expected a dspy.Prediction")


def _usage(lm: Any) -> dict[str, LMUsage]:
    """One :class:`LMUsage` per call in ``lm``'s history, keyed ``model#n``."""
    found: dict[str, LMUsage] = {}
    for n, entry in enumerate(getattr(lm, "history", None) or ()):
        usage = entry.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens", 0) if isinstance(details, Mapping) else 0
        found[f"{entry.get('model') or getattr(lm, 'model', 'dspy')}#{n}"] = LMUsage(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(cached or 0),
            cost=float(entry.get("cost") or 0.0),
            cache_hit=not usage,
        )
    return found


def from_dspy(module: Any, *, lm: Any = None) -> DSPyModule:
    """Adapt a DSPy module so a flow can ``map`` it like a dspex module.

    ``flow.source(...).map(dx.ops.from_dspy(dspy.ChainOfThought("q -> a")), concurrency=8)``:
    each record's fields that the module takes (``forward``'s parameters, or
    its signature's inputs) are passed to it, and the prediction's fields are
    merged into the record. Usage (tokens, cost) of each call is read from
    the DSPy LM's history and added to the run report. Under asyncio a module
    with ``aforward`` (``Predict``, ``ChainOfThought``...) runs through its
    ``acall`` on the flow's loop; under trio, or without ``aforward``, its
    sync call runs in a worker thread.

    Args:
        module: A ``dspy.Module`` instance.
        lm: A ``dspy.LM`` to use instead of DSPy's configured one.

    Returns:
        The adapted module; pass it to ``map``.

    Raises:
        ConfigError: DSPy is not installed (the ``dspy`` extra), or ``module``
            is not a DSPy module.
    """
    dspy = _dspy()
    if not isinstance(module, dspy.Module):
        raise ConfigError(f"from_dspy expects a dspy.Module instance, got {type(module).__name__}")
    if lm is not None and not isinstance(lm, dspy.BaseLM):
        raise ConfigError(f"from_dspy: lm must be a dspy.LM, got {type(lm).__name__}")
    return DSPyModule(module, lm)
