"""Optimizers: compile a program into a new one with learned demos (DSPy's teleprompters)."""

from ._base import Optimizer as Optimizer
from ._fewshot import BootstrapFewShot as BootstrapFewShot
from ._fewshot import LabeledFewShot as LabeledFewShot
from ._random_search import BootstrapFewShotWithRandomSearch as BootstrapFewShotWithRandomSearch

__all__ = ["BootstrapFewShot", "BootstrapFewShotWithRandomSearch", "LabeledFewShot", "Optimizer"]
