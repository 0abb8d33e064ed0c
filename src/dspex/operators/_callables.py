"""Adapting what a user maps over records: functions, coroutines, modules.

A :class:`RecordCall` wraps the callable given to ``map`` and friends. A
plain function receives the record and returns the next one (or an
awaitable of it); an ``async def`` is awaited. A dspex ``Module`` is called
with the record fields its signature takes as inputs, and the record that
flows on is the input record plus the prediction's output fields (the
semantics of a dataframe ``map``). When an event-aware sink is downstream the
module is run through ``module.stream`` and its events are forwarded.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from contextlib import aclosing, nullcontext
from typing import TYPE_CHECKING, Any

from .._context import context as settings_context
from ..errors import ConfigError, InputError
from ..events import PredictionDone
from ..modules import Module
from ..modules._stream import call_emitting

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._base import NodeContext
    from ._item import Item
    from ._usage import UsageTotals

__all__ = ["RecordCall", "is_module", "module_signature"]


def is_module(obj: Any) -> bool:
    """Return True if ``obj`` is a dspex Module (or quacks like one)."""
    if isinstance(obj, Module):
        return True
    return (
        not inspect.isroutine(obj)
        and callable(getattr(obj, "acall", None))
        and callable(getattr(obj, "stream", None))
    )


def module_signature(module: Any) -> Any:
    """Return the module's single signature, or None for a generic module."""
    sig = getattr(module, "signature", None)
    if sig is not None and hasattr(sig, "input_fields"):
        return sig
    named = getattr(module, "named_predictors", None)
    if callable(named):
        try:
            predictors = list(named())
        except Exception:  # a half-built module: treat as generic
            return None
        if len(predictors) == 1:
            sig = getattr(predictors[0][1], "signature", None)
            if sig is not None and hasattr(sig, "input_fields"):
                return sig
    return None


def _annotations(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: getattr(info, "annotation", None) for name, info in fields.items()}


def _as_mapping(record: Any, node: str) -> Mapping[str, Any]:
    if isinstance(record, Mapping):
        return record
    to_dict = getattr(record, "toDict", None)
    if callable(to_dict):
        return to_dict()  # type: ignore[no-any-return]
    raise InputError(
        f"map node {node!r} runs a module, so each record must be a mapping of field "
        f"names to values; got {type(record).__name__}"
    )


class RecordCall:
    """One callable applied to records: sync, async, or a module."""

    __slots__ = ("fn", "inputs", "mode", "offload", "outputs", "sync")

    def __init__(self, fn: Any, *, what: str = "map") -> None:
        if not callable(fn) and not is_module(fn):
            raise ConfigError(f"{what} expects a function, an async function or a Module, got {fn!r}")
        self.fn = fn
        self.inputs: dict[str, Any] | None = None
        self.outputs: dict[str, Any] | None = None
        if is_module(fn):
            self.mode = "module"
            sig = module_signature(fn)
            if sig is not None:
                self.inputs = _annotations(sig.input_fields)
                self.outputs = _annotations(sig.output_fields)
        elif inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        ):
            self.mode = "async"
        else:
            self.mode = "sync"
        self.sync = self.mode == "sync"
        # ``async (record) -> result`` running a sync function off the loop: set only
        # on a run's own copy (``offloaded``), since the executor belongs to the run
        self.offload: Callable[[Any], Awaitable[Any]] | None = None

    def offloaded(self, offload: Callable[[Any], Awaitable[Any]]) -> RecordCall:
        """Return a copy that runs a sync function through ``offload`` (``self`` is unchanged)."""
        call = copy.copy(self)
        call.offload = offload
        return call

    def __call__(
        self, record: Any, ctx: NodeContext, item: Item, feedback: tuple[str, ...] = (), *,
        usage: UsageTotals | None = None,
    ) -> Awaitable[Any]:
        """Apply the callable to ``record`` (with validation ``feedback``); await the result once.

        ``usage`` also receives a module's LM usage (an ab_split variant's
        totals): it belongs to the caller's run, so this object keeps no run state.
        """
        if not feedback and self.mode == "module":
            # the module call's own awaitable: no pass-through coroutine kept
            # per item in flight (one more object for the cyclic GC)
            return self._call_module(record, ctx, item, usage)
        return self._call(record, ctx, item, feedback, usage)

    async def _call(
        self, record: Any, ctx: NodeContext, item: Item, feedback: tuple[str, ...], usage: UsageTotals | None
    ) -> Any:
        scope = settings_context(feedback=feedback) if feedback else nullcontext()
        with scope:
            if self.mode == "module":
                return await self._call_module(record, ctx, item, usage)
            if self.offload is not None and self.sync:
                return await self.offload(record)
            result = self.fn(record)
            if self.mode == "async" or inspect.isawaitable(result):
                result = await result
            return result

    async def _call_module(
        self, record: Any, ctx: NodeContext, item: Item, extra: UsageTotals | None
    ) -> Any:
        mapping = _as_mapping(record, ctx.name)
        if self.inputs is not None:
            # a loop, not a comprehension: one reading ``mapping`` would make it a
            # closure cell for the whole call
            inputs = {}
            for k in self.inputs:
                if k in mapping:
                    inputs[k] = mapping[k]
        else:
            inputs = dict(mapping)
        if ctx.events:
            prediction = await self._stream(inputs, ctx, item)
        else:
            prediction = await self.fn.acall(**inputs)
        usage = getattr(prediction, "usage", None)
        ctx.add_usage(usage)
        if extra is not None and usage is not None:
            extra.add(usage)
        return {**mapping, **self._outputs_of(prediction)}

    async def _stream(self, inputs: dict[str, Any], ctx: NodeContext, item: Item) -> Any:
        direct = _direct_stream(self.fn)
        if direct is not None:  # no task or buffer between the LM and the event bus
            return await direct(self.fn, inputs, lambda event: ctx.emit(event, item))
        prediction = None
        outputs: dict[str, Any] = {}
        async with aclosing(self.fn.stream(**inputs)) as events:
            async for event in events:
                if isinstance(event, PredictionDone):
                    prediction = event.prediction
                    outputs = dict(event.outputs)
                await ctx.emit(event, item)
        if prediction is None:
            if not outputs:
                raise InputError(
                    f"module in node {ctx.name!r} ended its event stream without PredictionDone"
                )
            return outputs
        return prediction

    def _outputs_of(self, prediction: Any) -> dict[str, Any]:
        if isinstance(prediction, Mapping):
            return dict(prediction)
        to_dict = getattr(prediction, "toDict", None)
        if callable(to_dict):
            return dict(to_dict())
        found: dict[str, Any] = {}
        for name in self.outputs or ():
            try:
                found[name] = getattr(prediction, name)
            except AttributeError:
                continue
        return found or dict(vars(prediction))


def _direct_stream(fn: Any) -> Any:
    """Return ``call_emitting`` if ``fn`` streams like a dspex Module, else None.

    A module that overrides ``stream`` is consumed through it instead.
    """
    if isinstance(fn, Module) and type(fn).stream is Module.stream:
        return call_emitting
    return None
