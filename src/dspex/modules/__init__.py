"""Modules: ``Module``, ``Predict``, ``ChainOfThought``, ``ReAct``, ``BestOfN``/``Refine``,
``MultiChainComparison``, ``Parallel``, ``Assert``/``Suggest``; ``Example``/``Prediction``; state I/O."""

from ._assertions import Assert as Assert
from ._assertions import Suggest as Suggest
from ._chain_of_thought import ChainOfThought as ChainOfThought
from ._compare import MultiChainComparison as MultiChainComparison
from ._compare import majority as majority
from ._example import Example as Example
from ._module import Module as Module
from ._parallel import Parallel as Parallel
from ._predict import ParameterVersion as ParameterVersion
from ._predict import Predict as Predict
from ._prediction import Completions as Completions
from ._prediction import Prediction as Prediction
from ._react import ReAct as ReAct
from ._refine import BestOfN as BestOfN
from ._refine import Refine as Refine
from ._state import load_dspy_state as load_dspy_state
from ._stream import ModuleStream as ModuleStream
from ._versions import asave_version as asave_version
from ._versions import load as load
from ._versions import save_version as save_version

__all__ = [
    "Assert",
    "BestOfN",
    "ChainOfThought",
    "Completions",
    "Example",
    "Module",
    "ModuleStream",
    "MultiChainComparison",
    "Parallel",
    "ParameterVersion",
    "Predict",
    "Prediction",
    "ReAct",
    "Refine",
    "Suggest",
    "asave_version",
    "load",
    "load_dspy_state",
    "majority",
    "save_version",
]
