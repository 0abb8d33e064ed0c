"""Modules: ``Module``, ``Predict``, ``ChainOfThought``, ``ReAct``; ``Example``/``Prediction``; state I/O."""

from ._chain_of_thought import ChainOfThought as ChainOfThought
from ._example import Example as Example
from ._module import Module as Module
from ._predict import ParameterVersion as ParameterVersion
from ._predict import Predict as Predict
from ._prediction import Completions as Completions
from ._prediction import Prediction as Prediction
from ._react import ReAct as ReAct
from ._state import load as load
from ._state import load_dspy_state as load_dspy_state
from ._stream import ModuleStream as ModuleStream

__all__ = [
    "ChainOfThought",
    "Completions",
    "Example",
    "Module",
    "ModuleStream",
    "ParameterVersion",
    "Predict",
    "Prediction",
    "ReAct",
    "load",
    "load_dspy_state",
]
