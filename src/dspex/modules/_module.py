"""``Module``: the base class of every dspex program.

A module is plain Python: subclass it, keep sub-modules and predictors as
attributes (or in lists and dicts), and write ``aforward`` (awaiting
sub-modules' ``acall``) or a sync ``forward`` (calling them directly). Every
module can be awaited (``acall``), called synchronously (``__call__``) and
streamed (``stream``). A module finds its predictors by walking attributes
(``named_predictors``) and saves/loads their state as DSPy-format JSON.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeGuard

import anyio.to_thread

from .. import _context
from .._context import context
from .._util._sync import run_sync
from ..errors import ConfigError, InputError
from ..lm._types import LMUsage
from ..telemetry._observe import observer
from ._assertions import call_with_backtracks, call_with_backtracks_sync
from ._parallel import Parallel
from ._parameter import Parameter
from ._pickle import read_pickled_state, save_pickled
from ._prediction import Prediction
from ._state import apply_state, read_state, set_path
from ._state import save_program as _save_json
from ._stream import ModuleStream

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._predict import Predict

__all__ = ["USAGE", "Module"]

#: LM usage of the calls made under the innermost running module call.
USAGE: ContextVar[list[LMUsage] | None] = ContextVar("dspex_usage", default=None)

_KIND: dict[type[Module], str] = {}
logger = logging.getLogger("dspex.modules")


def _call_kind(cls: type[Module]) -> str:
    """Return how ``cls`` runs: ``"async"`` (aforward) or ``"sync"`` (forward)."""
    kind = _KIND.get(cls)
    if kind is None:
        if cls.aforward is not Module.aforward or inspect.iscoroutinefunction(cls.forward):
            kind = "async"
        elif cls.forward is not Module.forward:
            kind = "sync"
        else:
            kind = "none"
        _KIND[cls] = kind
    return kind


#: The module whose ``forward`` may run without a warning: set by __call__/acall
#: for the module they run, and by a running ``forward`` for its own instance
#: (so ``super().forward(...)`` is quiet, as in DSPy).
_VIA_CALL: ContextVar[object | None] = ContextVar("dspex_forward_via_call", default=None)


def _guard_forward(fn: Any) -> Any:
    """Wrap a subclass's ``forward`` to log DSPy's warning when it is called directly.

    Inside the body only this instance is allowed, so a ``forward`` calling
    another module's ``forward`` directly is warned about too, as in DSPy.
    """
    def check(self: Any) -> Any:
        if _VIA_CALL.get() is not self:
            logger.warning("Calling module.forward(...) on %s directly is discouraged. Please use module(...) "
                           "instead.", type(self).__name__)
        return _VIA_CALL.set(self)

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def guarded_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            token = check(self)
            try:
                return await fn(self, *args, **kwargs)
            finally:
                _VIA_CALL.reset(token)

        return guarded_async

    @functools.wraps(fn)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = check(self)
        try:
            return fn(self, *args, **kwargs)
        finally:
            _VIA_CALL.reset(token)

    return guarded


def _forward_via_call(module: Any, inputs: dict[str, Any]) -> Any:
    """Call ``module.forward(**inputs)`` as ``__call__`` does (no direct-call warning)."""
    token = _VIA_CALL.set(module)
    try:
        return module.forward(**inputs)
    finally:
        _VIA_CALL.reset(token)


async def _aforward_via_call(module: Any, inputs: dict[str, Any]) -> Any:
    """Await an async ``module.forward(**inputs)`` as ``acall`` does."""
    token = _VIA_CALL.set(module)
    try:
        return await module.forward(**inputs)
    finally:
        _VIA_CALL.reset(token)


def _is_predictor(value: object) -> TypeGuard[Predict]:
    """Return True if ``value`` holds learnable state (``Predict`` is the one such ``Parameter``)."""
    return isinstance(value, Parameter)


def _is_lm(value: Any) -> bool:
    return hasattr(value, "acall") and hasattr(value, "stream") and hasattr(value, "model")


class Module:
    """Base class for programs: compose predictors and sub-modules in plain Python.

    Subclasses define ``async def aforward(self, **inputs)`` or a sync
    ``def forward(self, **inputs)`` returning a :class:`Prediction`.
    ``acall`` runs ``aforward`` on the current event loop, or a sync
    ``forward`` in a worker thread (its sub-module calls come back to the
    loop), so the loop never blocks. Keyword arguments only.

    Example:
        >>> import dspex as dx
        >>> from dspex.testing import ScriptedLM
        >>> class TwoStep(dx.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.draft = dx.Predict("question -> answer")
        ...         self.check = dx.ChainOfThought("question, answer -> verdict: bool")
        ...     async def aforward(self, question):
        ...         a = await self.draft.acall(question=question)
        ...         return await self.check.acall(question=question, answer=a.answer)
        >>> prog = TwoStep()
        >>> [name for name, _ in prog.named_predictors()]
        ['draft', 'check.predict']
        >>> lm = ScriptedLM([{"answer": "4"}, {"reasoning": "ok", "verdict": True}])
        >>> prog(question="2+2?", lm=lm).verdict
        True
    """

    _compiled: bool = False
    #: ``(name, version)`` of the stored version this program was saved as or loaded from
    #: (set by ``save_version``/``load``; absent otherwise).
    dspex_version: tuple[str, int]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("forward")
        if callable(fn):  # DSPy warns when forward() is called instead of module(...)
            cls.forward = _guard_forward(fn)  # type: ignore[method-assign]

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        self.callbacks: list[Any] = list(callbacks or [])
        self._compiled = False

    # -- running ----------------------------------------------------------------
    def forward(self, **inputs: Any) -> Any:
        """Run the module synchronously (define this, or ``aforward``)."""
        if _call_kind(type(self)) == "async":
            return run_sync(functools.partial(self.aforward, **inputs), reuse_loop=True)
        raise NotImplementedError(f"{type(self).__name__} must define forward(**inputs) or aforward(**inputs)")

    async def aforward(self, **inputs: Any) -> Any:
        """Run the module asynchronously (define this, or ``forward``)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(**inputs) or aforward(**inputs)")

    def _positional_error(self, args: tuple[Any, ...]) -> InputError:
        return InputError(
            f"{type(self).__name__} takes keyword arguments only, got {len(args)} positional argument(s); "
            "call it like module(question=...)"
        )

    async def acall(self, *args: Any, lm: Any = None, **inputs: Any) -> Any:
        """Run the module on the current event loop and return its prediction.

        ``lm=`` applies to every predictor inside that has no LM of its own,
        for this call only. ``prediction.usage`` sums every LM call made.

        With an OpenTelemetry SDK provider the call is a ``module`` span, and
        callbacks (the ``callbacks`` setting, then ``self.callbacks``) see
        ``on_module_start``/``on_module_end``.

        Raises:
            InputError: Positional arguments were given.
            NotImplementedError: The class defines neither forward nor aforward.
        """
        if args:
            raise self._positional_error(args)
        watching = observer(self)
        if watching is None:
            return await self._acall(lm, inputs)
        telemetry, callbacks = watching
        return await telemetry.module_call(callbacks, self, inputs, functools.partial(self._acall, lm, inputs))

    async def _acall(self, lm: Any, inputs: dict[str, Any]) -> Any:
        kind = _call_kind(type(self))
        if kind == "none":
            raise NotImplementedError(f"{type(self).__name__} must define forward(**inputs) or aforward(**inputs)")
        parent = USAGE.get()
        spent: list[LMUsage] = []
        token = USAGE.set(spent)
        lm_token = None
        if lm is not None:  # dx.context(lm=lm), without the generator
            overrides = dict(_context._overrides.get())
            overrides["lm"] = lm
            lm_token = _context._overrides.set(MappingProxyType(overrides))
        try:
            name = type(self).__name__
            if kind == "async":
                if type(self).aforward is not Module.aforward:
                    method = functools.partial(self.aforward, **inputs)
                else:  # an async forward: marked as called through acall (no direct-call warning)
                    method = functools.partial(_aforward_via_call, self, inputs)
                result = await call_with_backtracks(name, method)
            else:
                result = await call_with_backtracks(name, functools.partial(self._dispatch, kind, inputs))
        finally:
            if lm_token is not None:
                _context._overrides.reset(lm_token)
            USAGE.reset(token)
        return self._account(result, spent, parent)

    async def _dispatch(self, kind: str, inputs: dict[str, Any]) -> Any:
        if kind == "async":
            if type(self).aforward is not Module.aforward:
                return await self.aforward(**inputs)
            return await _aforward_via_call(self, inputs)
        # The worker thread runs in a copy of this context, flag included.
        return await anyio.to_thread.run_sync(_forward_via_call, self, inputs)

    @staticmethod
    def _account(result: Any, spent: list[LMUsage], parent: list[LMUsage] | None) -> Any:
        if not spent:
            total = LMUsage()
        elif len(spent) == 1:
            total = spent[0]
        else:  # started from the first call, not LMUsage(): a cache hit stays one only if every call was
            total = sum(spent[1:], spent[0])
        if parent is not None and spent:
            parent.append(total)
        if isinstance(result, Prediction) and (spent or result._usage is None):
            result._usage = total  # everything spent under this call, nested calls included
        return result

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        """Run the module synchronously; safe inside a running event loop.

        A sync ``forward`` runs right here; otherwise the call goes through
        ``acall`` on an event loop (a fresh one, or the parent loop from a
        worker thread).
        """
        if args:
            raise self._positional_error(args)
        if _call_kind(type(self)) != "sync":
            return run_sync(functools.partial(self.acall, **inputs), reuse_loop=True)
        watching = observer(self)
        if watching is None:
            return self._call_sync(inputs)
        telemetry, callbacks = watching
        return telemetry.module_call_sync(callbacks, self, inputs, functools.partial(self._call_sync, dict(inputs)))

    def _call_sync(self, inputs: dict[str, Any]) -> Any:
        lm = inputs.pop("lm", None)
        parent = USAGE.get()
        spent: list[LMUsage] = []
        token = USAGE.set(spent)
        try:
            call = functools.partial(_forward_via_call, self, inputs)
            if lm is not None:
                with context(lm=lm):
                    result = call_with_backtracks_sync(type(self).__name__, call)
            else:
                result = call_with_backtracks_sync(type(self).__name__, call)
        finally:
            USAGE.reset(token)
        return self._account(result, spent, parent)

    def _batch_pairs(self, examples: Any) -> list[tuple[Any, Any]]:
        return [(self, ex.inputs() if hasattr(ex, "inputs") and not isinstance(ex, dict) else ex) for ex in examples]

    async def abatch(self, examples: Any, num_threads: int | None = None, max_errors: int | None = None,
                     return_failed_examples: bool = False, **options: Any) -> Any:
        """Run this module over ``examples`` concurrently on the running loop (DSPy's ``batch``).

        Each ``Example`` contributes its ``inputs()`` (a dict is used as
        is); results come back in order, ``None`` for a failure. The other
        arguments and the errors are :class:`Parallel`'s.
        """
        runner = Parallel(num_threads=num_threads, max_errors=max_errors,
                          return_failed_examples=return_failed_examples, **options)
        return await runner.acall(self._batch_pairs(examples))

    def batch(self, examples: Any, num_threads: int | None = None, max_errors: int | None = None,
              return_failed_examples: bool = False, **options: Any) -> Any:
        """Run :meth:`abatch` from synchronous code (DSPy's ``Module.batch``)."""
        runner = Parallel(num_threads=num_threads, max_errors=max_errors,
                          return_failed_examples=return_failed_examples, **options)
        return runner(self._batch_pairs(examples))

    def stream(self, **inputs: Any) -> ModuleStream:
        """Return an async iterator of this call's events, ending with ``PredictionDone``.

        Token, field, usage and retry events come from every predictor inside
        (``event.predictor`` is its path). Consume it to the end, or use
        ``async with`` / ``aclose()`` to stop early; see :class:`ModuleStream`.
        """
        return ModuleStream(self, inputs)

    # -- introspection ----------------------------------------------------------
    def named_predictors(self) -> list[tuple[str, Predict]]:
        """Return ``(path, predictor)`` pairs, e.g. ``("extract.predict", p)``.

        Walks attributes, lists/tuples (``name[0]``) and dicts
        (``name['key']``); skips sub-modules marked ``_compiled``; each
        predictor appears once.
        """
        found: list[tuple[str, Predict]] = []
        seen: set[int] = set()

        def add(name: str, value: Any) -> None:
            if _is_predictor(value):
                if id(value) not in seen:
                    seen.add(id(value))
                    found.append((name, value))
            elif isinstance(value, Module) and not value._compiled:
                for sub, pred in value.named_predictors():
                    add(f"{name}.{sub}", pred)

        if _is_predictor(self):
            add("self", self)
            return found
        for name, value in vars(self).items():
            if isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    add(f"{name}[{i}]", item)
            elif isinstance(value, dict):
                for key, item in value.items():
                    add(f"{name}['{key}']", item)
            else:
                add(name, value)
        return found

    def predictors(self) -> list[Predict]:
        """Return the predictors of :meth:`named_predictors`, in order."""
        return [p for _, p in self.named_predictors()]

    def named_parameters(self) -> list[tuple[str, Predict]]:
        """Return :meth:`named_predictors` (DSPy's older name)."""
        return self.named_predictors()

    def parameters(self) -> list[Predict]:
        """Return :meth:`predictors` (DSPy's older name)."""
        return self.predictors()

    def named_sub_modules(self, type_: type | None = None, skip_compiled: bool = False) -> Iterator[tuple[str, Any]]:
        """Yield ``(path, module)`` for this module and every module inside, breadth first."""
        want = type_ or Module
        queue: list[tuple[str, Any]] = [("self", self)]
        seen = {id(self)}
        while queue:
            name, item = queue.pop(0)
            if isinstance(item, want):
                yield name, item
            if isinstance(item, Module):
                if skip_compiled and item._compiled:
                    continue
                children: Any = vars(item).items()
            elif isinstance(item, list | tuple):
                children = ((f"[{i}]", v) for i, v in enumerate(item))
            elif isinstance(item, dict):
                children = ((f"[{k}]", v) for k, v in item.items())
            else:
                continue
            for sub, value in children:
                if id(value) not in seen and isinstance(value, Module | list | tuple | dict):
                    seen.add(id(value))
                    queue.append((f"{name}.{sub}" if not sub.startswith("[") else f"{name}{sub}", value))

    # -- copies and LMs -----------------------------------------------------------
    def deepcopy(self) -> Any:
        """Return a deep copy; LM objects (and other clients) are shared, not copied.

        As in DSPy, an attribute that cannot be deep-copied (a lock, a client,
        an open file) is copied shallowly instead, or shared if even that
        fails; a warning names it. Sub-modules are copied the same way.
        """
        memo: dict[int, Any] = {}
        for _, module in self.named_sub_modules():
            for value in vars(module).values():
                if _is_lm(value):
                    memo[id(value)] = value
        try:
            return copy.deepcopy(self, memo)
        except Exception:
            return self._copy_by_attribute(memo)

    def _copy_by_attribute(self, memo: dict[int, Any]) -> Any:
        new = type(self).__new__(type(self))
        for attr, value in vars(self).items():
            if isinstance(value, Module):
                copied = value.deepcopy()
            else:
                try:
                    copied = copy.deepcopy(value, memo)
                except Exception:
                    logger.warning("Failed to deep copy attribute %r of %s, falling back to shallow copy or "
                                   "reference copy.", attr, type(self).__name__)
                    try:
                        copied = copy.copy(value)
                    except Exception:
                        copied = value
            new.__dict__[attr] = copied
        return new

    def reset_copy(self) -> Any:
        """Return a deep copy whose predictors are reset (no demos, no LM)."""
        new = self.deepcopy()
        for predictor in new.predictors():
            predictor.reset()
        return new

    def reset(self) -> None:
        """Clear every predictor's demos, traces and LM, in place."""
        for predictor in self.predictors():
            predictor.reset()

    def set_lm(self, lm: Any) -> None:
        """Use ``lm`` for every predictor inside."""
        for predictor in self.predictors():
            predictor.lm = lm

    def get_lm(self) -> Any:
        """Return the LM all predictors share.

        Raises:
            ConfigError: The predictors use different LMs.
        """
        lms = {id(p.lm): p.lm for p in self.predictors()}
        if len(lms) != 1:
            raise ConfigError(
                f"{type(self).__name__} has {len(lms)} different LMs across its predictors; "
                "expected exactly one (use set_lm(lm) first)"
            )
        return next(iter(lms.values()))

    def map_named_predictors(self, func: Any) -> Module:
        """Replace each predictor with ``func(predictor)``, in place; return self."""
        for name, predictor in self.named_predictors():
            set_path(self, name, func(predictor))
        return self

    # -- state ----------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        """Return each predictor's state keyed by path (DSPy's JSON format)."""
        return {name: p.dump_state() for name, p in self.named_predictors()}

    def load_state(self, state: dict[str, Any], *, load_lm: bool = True) -> Module:
        """Apply a state dict from :meth:`dump_state`; all-or-nothing."""
        apply_state(self, state, load_lm=load_lm)
        return self

    def save(self, path: str | Path, save_program: bool = False) -> None:
        """Write the program state (demos, instructions, LM settings) as JSON.

        The file is DSPy-compatible and also records how to rebuild built-in
        modules, so ``dx.load(path)`` works for them. API keys are never
        written. As in DSPy, a ``.pkl`` path pickles the state instead, and
        ``save_program=True`` pickles the whole program into the directory
        ``path`` (both log DSPy's warning about untrusted pickles).

        Raises:
            ConfigError: ``path`` does not end with ``.json`` or ``.pkl`` (or
                has a suffix with ``save_program=True``), or the pickle fails.
        """
        if save_program or Path(path).suffix == ".pkl":
            save_pickled(self, path, save_program)
        else:
            _save_json(self, path)

    def load(self, path: str | Path, *, load_lm: bool = True, allow_pickle: bool = False) -> Module:
        """Load state written by :meth:`save` (or by DSPy) into this module; return self.

        All-or-nothing: a file that does not fit leaves the module unchanged.

        Raises:
            ConfigError: The file is missing or unreadable, or a ``.pkl`` file
                without ``allow_pickle=True``.
            StateMismatchError: A predictor has no entry (also a ``KeyError``,
                as DSPy raises).
        """
        if Path(path).suffix == ".pkl":
            return self.load_state(read_pickled_state(path, allow_pickle), load_lm=load_lm)
        return self.load_state(read_state(path), load_lm=load_lm)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={p!r}" for n, p in self.named_predictors())
        return f"{type(self).__name__}({inner})"
