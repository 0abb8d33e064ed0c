"""The optimizer contract: ``compile``/``acompile`` return a new program.

Every dspex optimizer (DSPy's "teleprompter") takes a student program and a
trainset and returns a *new* program with learned demos and/or instructions;
the student is never modified. ``acompile`` runs on the current event loop
and sends its batches of LM calls through the flow engine; ``compile`` is the
blocking form for sync code (safe inside a running loop, like ``Module``).
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from .._util._sync import run_sync
from ..errors import ConfigError
from ..modules import Module

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Optimizer", "check_student", "reject_unknown"]


def check_student(student: Any, what: str) -> Module:
    """Return ``student`` if it is a dspex ``Module`` with predictors, else raise.

    Raises:
        ConfigError: Not a Module, or no predictors to optimize.
    """
    if not isinstance(student, Module):
        raise ConfigError(f"{what} expects a dspex Module as the student, got {student!r}")
    if not student.predictors():
        raise ConfigError(f"{what}: the student {type(student).__name__} has no predictors to optimize")
    return student


def reject_unknown(method: Callable[..., Any], unknown: Mapping[str, Any]) -> None:
    """Raise if ``unknown`` (the ``**kwargs`` a method caught) holds any name.

    Optimizers take DSPy's keyword arguments by name; a misspelled or foreign
    one (``valset=`` where the optimizer has no valset) would otherwise be
    dropped without a word and the user would believe it was used.

    Raises:
        ConfigError: ``unknown`` is not empty; the message names the unknown
            arguments and the ones ``method`` accepts.
    """
    if not unknown:
        return
    accepted = [name for name, param in inspect.signature(method).parameters.items()
                if param.kind is param.KEYWORD_ONLY or (param.kind is param.POSITIONAL_OR_KEYWORD and name != "self")]
    owner = getattr(method, "__qualname__", repr(method)).replace(".acompile", ".compile").replace(".__init__", "")
    names = ", ".join(repr(k) for k in sorted(unknown))
    raise ConfigError(f"{owner} got unknown argument(s) {names}; it accepts: {', '.join(accepted)}")


class Optimizer(ABC):
    """Base class of optimizers: ``acompile(student, *, trainset, ...)`` → new program."""

    @abstractmethod
    async def acompile(self, student: Any, *, trainset: list[Any], **kwargs: Any) -> Any:
        """Return an optimized copy of ``student``; the student is left untouched."""

    def compile(self, student: Any, *, trainset: list[Any], **kwargs: Any) -> Any:
        """Run :meth:`acompile` to completion from sync code and return the program."""
        return run_sync(functools.partial(self.acompile, student, trainset=trainset, **kwargs), reuse_loop=True)

    def get_params(self) -> dict[str, Any]:
        """Return the optimizer's settings (its public attributes)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if not callable(v))
        return f"{type(self).__name__}({inner})"
