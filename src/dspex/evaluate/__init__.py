"""Evaluation: ``Evaluate`` (a program on a devset, as a flow) and ``metrics``."""

from . import metrics as metrics
from ._evaluate import Evaluate as Evaluate
from ._evaluate import EvaluationResult as EvaluationResult

__all__ = ["Evaluate", "EvaluationResult", "metrics"]
