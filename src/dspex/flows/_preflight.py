"""Pre-flight checks of a flow: every module node can resolve an LM before anything runs.

Without this, a flow whose predictors have no LM (none on the predictor, in
the run's settings, in ``dx.context`` or ``dx.configure``) would start, read
its whole source and dead-letter every item with the same error.
:func:`require_lms` runs where the run's settings apply (``flow.run(lm=...)``,
the YAML ``settings.lm``, the CLI's ``--lm``) and fails fast instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._context import get_setting
from ..errors import LMNotConfiguredError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._graph import Plan

__all__ = ["require_lms"]


def _module_calls(op: Any) -> Iterator[Any]:
    """Yield the Modules an operator calls (a map's function, both arms of an A/B split)."""
    calls = getattr(op, "calls", None)
    for call in calls.values() if isinstance(calls, dict) else (getattr(op, "call", None),):
        if call is not None and getattr(call, "mode", None) == "module":
            yield call.fn


def require_lms(plan: Plan) -> None:
    """Check that every predictor of every module node has an LM to call.

    A predictor resolves its LM from ``predictor.lm`` (the node's ``lm`` in
    YAML), else the ``lm`` setting in effect (run settings, ``dx.context``,
    ``dx.configure``); this checks the same. Modules that call LMs other than
    through their predictors are not inspected.

    Raises:
        LMNotConfiguredError: A predictor has no LM; the message names the
            node and the predictor, and how to give one.
    """
    if get_setting("lm") is not None:
        return
    for node in plan.nodes:
        for module in _module_calls(node.op):
            named = getattr(module, "named_predictors", None)
            if not callable(named):
                continue
            for path, predictor in named():
                if getattr(predictor, "lm", None) is None:
                    sig = getattr(getattr(predictor, "signature", None), "signature", "?")
                    raise LMNotConfiguredError(
                        f"node {node.name!r}: no LM configured for predictor {path!r} (Predict({sig})); "
                        "give one with --lm (CLI), settings.lm or the node's lm (YAML), flow.run(lm=...), "
                        "predictor.lm, or dx.configure(lm=...)"
                    )
