"""``Predict``: one LM call through an adapter, the primitive every module uses.

``Predict(signature, **config)`` formats its inputs (with its demos) into
messages with the adapter (the ``adapter`` setting, else ``ChatAdapter``),
calls the LM (``lm=`` argument, else its own ``lm``, else the ``lm``
setting), and parses the completion(s) into a :class:`Prediction`. A parse
failure is retried with the error fed back, then tried once with the
adapter's fallback, then raised as :class:`~dspex.errors.ParseError`. When
the call runs under ``Module.stream`` it streams tokens and fields as they
arrive. Demos and instructions are the learnable parameters; each change is
kept in a bounded version history.
"""

from __future__ import annotations

import copy
import difflib
import functools
import time
import types
import typing
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

from pydantic_core import PydanticUndefined

from .. import _context
from .._context import get_setting
from ..adapters._chat import ChatAdapter
from ..errors import ConfigError, InputError, LMNotConfiguredError
from ..signatures import InputField, Signature, Tool, ToolCalls, ensure_signature
from ..telemetry._observe import observer
from ._call import complete_with_retries
from ._inputs import check_inputs
from ._module import USAGE, Module
from ._parameter import Parameter
from ._prediction import Prediction
from ._state import (
    apply_predictor_state,
    jsonable_config,
    predictor_state,
    register_loadable,
    signature_from_spec,
    signature_spec,
)
from ._stream import EMITTER

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


__all__ = ["ParameterVersion", "Predict"]

_PRIVILEGED = ("lm", "config", "demos", "signature")
MAX_VERSIONS = 50


@dataclass(frozen=True)
class ParameterVersion:
    """One state of a predictor's learnable parameters."""

    instructions: str
    demos: tuple[Any, ...]
    at: float


class _SigInfo:
    """What ``acall`` needs to know about a signature, computed once."""

    __slots__ = ("defaults", "hinted", "inputs", "missing_error", "outputs", "required", "signature", "tool_links")

    def __init__(self, signature: type[Signature]) -> None:
        self.signature = signature
        self.hinted: _SigInfo | None = None  # with Refine's hint_ input, made on first use
        self.inputs = tuple(signature.input_fields)
        self.outputs = tuple(signature.output_fields)
        self.defaults: dict[str, tuple[Any, bool]] = {}
        required = []
        for name, field in signature.input_fields.items():
            if field.default is not PydanticUndefined:
                self.defaults[name] = (field.default, False)
            elif field.default_factory is not None:
                self.defaults[name] = (field.default_factory, True)
            elif not _allows_none(field.annotation):
                required.append(name)
        self.required = tuple(required)
        # Bound once here: a lambda per call would allocate a function and two cells.
        self.missing_error: Callable[[Mapping[str, Any]], InputError] = functools.partial(_missing_inputs, self)
        # (ToolCalls output, Tool-list input) pairs: parsed calls get the call's tools bound.
        tools_in = next((n for n, f in signature.input_fields.items() if _holds_tools(f.annotation)), None)
        self.tool_links = tuple(
            (n, tools_in) for n, f in signature.output_fields.items() if f.annotation is ToolCalls and tools_in
        )


def _holds_tools(annotation: Any) -> bool:
    return annotation is Tool or any(_holds_tools(a) for a in get_args(annotation))


def _allows_none(annotation: Any) -> bool:
    if annotation is Any or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(annotation)
    return False


class _Settings:
    """The effective settings of one call, read once (context, then defaults)."""

    __slots__ = ("base", "over")

    def __init__(self) -> None:
        self.over = _context._overrides.get()
        self.base = _context._defaults

    def get(self, name: str) -> Any:
        over = self.over
        return over[name] if name in over else self.base.get(name)


def _missing_inputs(info: _SigInfo, kwargs: Mapping[str, Any]) -> InputError:
    """Name the missing inputs, and the given names that look like misspellings of them."""
    missing = [n for n in info.required if n not in kwargs]
    unknown = [k for k in kwargs if k not in info.inputs]
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, missing, n=1, cutoff=0.6)
        if close:
            hints.append(f"{name!r} is not an input; did you mean {close[0]!r}?")
    hint = f" ({' '.join(hints)})" if hints else (f"; got unknown input(s) {', '.join(map(repr, unknown))}"
                                                  if unknown else "")
    return InputError(
        f"missing required input(s) {', '.join(map(repr, missing))} for Predict"
        f"({info.signature.signature}); expected inputs: {', '.join(info.inputs)}{hint}",
        field=missing[0],
    )


def _hinted(info: _SigInfo) -> _SigInfo:
    """Return ``info`` with DSPy Refine's ``hint_`` input appended (made once per ``info``)."""
    sig = info.signature
    if "hint_" in sig.input_fields:
        return info
    hinted = info.hinted
    if hinted is None:
        field = InputField(desc="A hint to the module from an earlier run")
        hinted = info.hinted = _SigInfo(sig.append("hint_", field, type_=str))
    return hinted


_default_adapter: ChatAdapter | None = None


def default_adapter() -> ChatAdapter:
    """Return the shared ``ChatAdapter`` used when no ``adapter`` is set."""
    global _default_adapter
    if _default_adapter is None:
        _default_adapter = ChatAdapter()
    return _default_adapter


@register_loadable("dspex.modules.Predict")
class Predict(Module, Parameter):
    """Map inputs to outputs with one LM call.

    Args:
        signature: A signature class or string (``"question -> answer"``).
        callbacks: Kept for DSPy compatibility.
        **config: Default LM parameters (``temperature``, ``n``,
            ``max_tokens`` …); a call's ``config={...}`` overrides them.

    Calls take keyword arguments only, plus ``lm=``, ``config=``, ``demos=``
    and ``signature=`` overrides for that call. With ``n>1`` and a
    temperature unset or <= 0.15, the temperature becomes 0.7 (as in DSPy).

    Raises:
        InputError: Positional arguments, or a required input is missing
            (the message names it and lists the signature's inputs).
        LMNotConfiguredError: No LM as argument, on the predictor or in
            the settings.
        ParseError: The completion still does not parse after the feedback
            retry and the fallback adapter; ``.raw`` holds it.

    Example:
        >>> import dspex as dx
        >>> from dspex.testing import ScriptedLM
        >>> qa = dx.Predict("question -> answer", n=2)
        >>> lm = ScriptedLM([{"answer": "Paris"}, {"answer": "paris"}])
        >>> qa(question="Capital of France?", lm=lm).completions.answer
        ['Paris', 'paris']
    """

    def __init__(self, signature: str | type[Signature], callbacks: list[Any] | None = None, **config: Any) -> None:
        super().__init__(callbacks)
        self._versions: deque[ParameterVersion] = deque(maxlen=MAX_VERSIONS)
        self._signature = ensure_signature(signature)
        self._info = _SigInfo(self._signature)
        self.config: dict[str, Any] = config
        self.history: deque[dict[str, Any]] = deque(maxlen=int(get_setting("max_history_size", 10_000)))
        self.reset()

    # -- parameters -------------------------------------------------------------
    def reset(self) -> None:
        """Forget the LM, demos and traces (what ``reset_copy`` does)."""
        self.lm: Any = None
        self.traces: list[Any] = []
        self.train: list[Any] = []
        self._demos: list[Any] = []
        self._record()

    @property
    def signature(self) -> type[Signature]:
        """The signature; setting it records a parameter version."""
        return self._signature

    @signature.setter
    def signature(self, value: str | type[Signature]) -> None:
        self._signature = ensure_signature(value)
        self._info = _SigInfo(self._signature)
        self._record()

    @property
    def demos(self) -> list[Any]:
        """Few-shot examples (dicts or Examples); setting records a version."""
        return self._demos

    @demos.setter
    def demos(self, value: Sequence[Any]) -> None:
        self._demos = value if isinstance(value, list) else list(value)
        self._record()

    def _record(self) -> None:
        if not hasattr(self, "_signature"):
            return
        version = ParameterVersion(self._signature.instructions, tuple(self._demos), time.time())
        last = self._versions[-1] if self._versions else None
        if last is None or last.instructions != version.instructions or last.demos != version.demos:
            self._versions.append(version)

    @property
    def versions(self) -> list[ParameterVersion]:
        """Past states of (instructions, demos), oldest first, at most 50."""
        return list(self._versions)

    def restore_version(self, version: ParameterVersion) -> None:
        """Set instructions and demos back to ``version``."""
        self._signature = self._signature.with_instructions(version.instructions)
        self._info = _SigInfo(self._signature)
        self.demos = list(version.demos)

    def update_config(self, **config: Any) -> None:
        """Merge ``config`` into the default LM parameters."""
        self.config = {**self.config, **config}

    def get_config(self) -> dict[str, Any]:
        """Return the default LM parameters."""
        return self.config

    # -- calling ------------------------------------------------------------------
    def _positional_error(self, args: tuple[Any, ...]) -> InputError:
        names = list(self._info.inputs)
        example = names[0] if names else "field"
        return InputError(  # DSPy's text (tests match it), naming dspex
            "Positional arguments are not allowed when calling `dspex.Predict`, must use keyword arguments "
            f"that match your signature input fields: '{', '.join(names)}'. For example: "
            f"`predict({example}=input_value, ...)`."
        )

    def _resolve_lm(self, lm: Any, settings: _Settings) -> Any:
        lm = lm if lm is not None else self.lm if self.lm is not None else settings.get("lm")
        if lm is None:
            raise LMNotConfiguredError(
                f"no LM configured for Predict({self._signature.signature}); pass lm=..., set "
                "predictor.lm, or call dx.configure(lm=dx.LM('openai/gpt-4o-mini')) or use "
                "`with dx.context(lm=...)`"
            )
        if isinstance(lm, str):
            raise ConfigError(
                f"lm must be an LM object, not the string {lm!r}; use dx.LM({lm!r})"
            )
        return lm

    async def aforward(self, **kwargs: Any) -> Prediction:
        """Run the LM call (same as ``acall``)."""
        return await self.acall(**kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Prediction:
        """Format, call the LM, parse; return the prediction (see the class doc)."""
        if args:
            raise self._positional_error(args)
        watching = observer(self)
        if watching is None:
            return await self._predict(kwargs)
        telemetry, callbacks = watching
        prediction: Prediction = await telemetry.module_call(callbacks, self, kwargs,
                                                             functools.partial(self._predict, kwargs))
        return prediction

    async def _predict(self, kwargs: dict[str, Any]) -> Prediction:
        settings = _Settings()
        lm = self._resolve_lm(kwargs.pop("lm", None), settings)
        config = self.config
        if "config" in kwargs:
            config = {**config, **(kwargs.pop("config") or {})}
        demos = kwargs.pop("demos", None)
        if demos is None:
            demos = self._demos
        info = self._info
        if "signature" in kwargs:
            info = _SigInfo(ensure_signature(kwargs.pop("signature")))
        hints = settings.get("hints")
        if hints is not None:  # a Refine retry: DSPy appends a hint_ input to every call
            info = _hinted(info)
            kwargs["hint_"] = hints.get(id(self), "N/A")
        for field, (default, factory) in info.defaults.items():
            if field not in kwargs:
                kwargs[field] = default() if factory else default
        check_inputs(info.signature, kwargs, info.required, settings.get, info.missing_error)
        n = config.get("n") or 1
        if n > 1:
            temperature = config.get("temperature")
            if temperature is None:
                temperature = (getattr(lm, "kwargs", None) or getattr(lm, "params", None) or {}).get("temperature")
            if temperature is None or temperature <= 0.15:
                config = {**config, "temperature": 0.7}
        adapter = settings.get("adapter") or default_adapter()
        emitter = EMITTER.get()
        name: str | None = None
        if emitter is not None:
            if emitter.usable():
                name = emitter.name_of(self)
            else:
                emitter = None
        result = await complete_with_retries(
            lm, adapter, info.signature, demos, kwargs, config, emitter, name
        )
        pred = Prediction.from_completions(result.values, signature=info.signature)
        for out, tools_in in info.tool_links:
            calls = pred.get(out)
            if isinstance(calls, ToolCalls):
                calls.bind(kwargs.get(tools_in))
        pred.__dict__["_usage"] = result.usage
        spent = USAGE.get()
        if spent is not None:
            spent.append(result.usage)
        self._after_call(settings, kwargs, pred, result, lm)
        return pred

    def _after_call(self, settings: _Settings, inputs: dict[str, Any], pred: Prediction, result: Any, lm: Any) -> None:
        trace = settings.get("trace")
        if trace is not None:
            limit = settings.get("max_trace_size")
            if limit > 0:
                if len(trace) >= limit:
                    del trace[: len(trace) - limit + 1]
                trace.append((self, inputs, pred))
        if not settings.get("disable_history"):
            limit = settings.get("max_history_size")
            if self.history.maxlen != limit:
                self.history = deque(self.history, maxlen=limit)
            self.history.append(
                {"messages": result.messages, "outputs": result.raws, "usage": result.usage,
                 "model": getattr(lm, "model", None), "timestamp": time.time()}
            )

    def inspect_history(self, n: int = 1) -> list[dict[str, Any]]:
        """Return the last ``n`` LM calls this predictor made."""
        return list(self.history)[-n:]

    # -- state --------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        """Return DSPy-format state: traces, train, demos, signature, lm."""
        return predictor_state(self)

    def load_state(self, state: dict[str, Any], *, load_lm: bool = True) -> Predict:
        """Apply a state from :meth:`dump_state` (DSPy's format); return self."""
        apply_predictor_state(self, state, load_lm=load_lm)
        return self

    def _program_spec(self) -> dict[str, Any]:
        return {"signature": signature_spec(self._signature), "config": jsonable_config(self.config)}

    @classmethod
    def _from_program_spec(cls, spec: dict[str, Any], types: Any = None) -> Predict:
        return cls(signature_from_spec(spec["signature"], types), **spec.get("config", {}))

    def __deepcopy__(self, memo: dict[int, Any]) -> Predict:
        new = object.__new__(type(self))
        memo[id(self)] = new
        for key, value in vars(self).items():
            if key == "lm":
                new.__dict__[key] = value
            elif key == "history":
                new.__dict__[key] = deque(maxlen=value.maxlen)
            else:
                new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._signature.signature})"
