"""``Parameter``: the marker of modules that hold learnable state (DSPy's ``dspy.Parameter``).

``Module.named_predictors`` walks a program's attributes and collects the
objects that carry demos and instructions; it recognises them by this base
class, which ``Predict`` inherits, so the generic walk needs no import of
``Predict`` itself (``Predict`` is built on ``Module``, so the reverse import
would be a cycle).
"""

from __future__ import annotations

__all__ = ["Parameter"]


class Parameter:
    """Base class marking a module whose demos and instructions are learnable."""

    __slots__ = ()
