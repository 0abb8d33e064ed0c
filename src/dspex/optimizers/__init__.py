"""Optimizers: compile a program into a new one with learned demos (DSPy's teleprompters)."""

from ._base import Optimizer as Optimizer
from ._copro import COPRO as COPRO
from ._fewshot import BootstrapFewShot as BootstrapFewShot
from ._fewshot import LabeledFewShot as LabeledFewShot
from ._gepa import GEPA as GEPA
from ._knn import KNNFewShot as KNNFewShot
from ._mipro import MIPROv2 as MIPROv2
from ._random_search import BootstrapFewShotWithRandomSearch as BootstrapFewShotWithRandomSearch

__all__ = [
    "COPRO",
    "GEPA",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "KNNFewShot",
    "LabeledFewShot",
    "MIPROv2",
    "Optimizer",
]
