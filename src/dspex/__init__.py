"""dspex: DSPy's programming model on streaming dataflows.

Typed signatures and composable modules (Predict, ChainOfThought, ...) run as
graphs of async stream operators joined by bounded buffers, on asyncio or
trio. Public names are imported lazily so that ``import dspex`` stays fast.

Example:
    >>> import dspex as dx
    >>> from dspex.testing import ScriptedLM
    >>> qa = dx.ChainOfThought("question -> answer")
    >>> lm = ScriptedLM([{"reasoning": "2 plus 2 is 4.", "answer": "4"}])
    >>> qa(question="What is 2+2?", lm=lm).answer
    '4'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from . import engines as engines
    from . import errors as errors
    from . import events as events
    from . import flows as flows
    from . import operators as ops
    from . import sinks as sinks
    from . import sources as sources
    from . import telemetry as telemetry
    from . import tools as tools
    from . import traces as traces
    from ._context import configure as configure
    from ._context import context as context
    from .adapters import Adapter as Adapter
    from .adapters import ChatAdapter as ChatAdapter
    from .adapters import JSONAdapter as JSONAdapter
    from .backpressure import BufferPolicy as BufferPolicy
    from .backpressure import MemoryWatermarks as MemoryWatermarks
    from .errors import DspexError as DspexError
    from .evaluate import Evaluate as Evaluate
    from .evaluate import metrics as metrics
    from .flows import Flow as Flow
    from .flows import RunReport as RunReport
    from .lm import LM as LM
    from .lm import BaseLM as BaseLM
    from .lm import CircuitBreakerPolicy as CircuitBreakerPolicy
    from .lm import Embedder as Embedder
    from .lm import RateLimit as RateLimit
    from .lm import RetryPolicy as RetryPolicy
    from .lm import Timeouts as Timeouts
    from .lm import configure_cache as configure_cache
    from .lm import inspect_history as inspect_history
    from .modules import Assert as Assert
    from .modules import BestOfN as BestOfN
    from .modules import ChainOfThought as ChainOfThought
    from .modules import Completions as Completions
    from .modules import Example as Example
    from .modules import Module as Module
    from .modules import MultiChainComparison as MultiChainComparison
    from .modules import Parallel as Parallel
    from .modules import Predict as Predict
    from .modules import Prediction as Prediction
    from .modules import ReAct as ReAct
    from .modules import Refine as Refine
    from .modules import Suggest as Suggest
    from .modules import asave_version as asave_version
    from .modules import load as load
    from .modules import load_dspy_state as load_dspy_state
    from .modules import majority as majority
    from .modules import save_version as save_version
    from .optimizers import COPRO as COPRO
    from .optimizers import GEPA as GEPA
    from .optimizers import BootstrapFewShot as BootstrapFewShot
    from .optimizers import BootstrapFewShotWithRandomSearch as BootstrapFewShotWithRandomSearch
    from .optimizers import KNNFewShot as KNNFewShot
    from .optimizers import LabeledFewShot as LabeledFewShot
    from .optimizers import MIPROv2 as MIPROv2
    from .signatures import Audio as Audio
    from .signatures import Citation as Citation
    from .signatures import Citations as Citations
    from .signatures import Code as Code
    from .signatures import Confidence as Confidence
    from .signatures import Document as Document
    from .signatures import Embedding as Embedding
    from .signatures import File as File
    from .signatures import History as History
    from .signatures import Image as Image
    from .signatures import InputField as InputField
    from .signatures import OutputField as OutputField
    from .signatures import Reasoning as Reasoning
    from .signatures import Signature as Signature
    from .signatures import Tool as Tool
    from .signatures import ToolCallResults as ToolCallResults
    from .signatures import ToolCalls as ToolCalls
    from .signatures import ensure_signature as ensure_signature
    from .signatures import make_signature as make_signature
    from .store import RunStore as RunStore
    from .telemetry import Callback as Callback

__all__ = [
    "COPRO",
    "GEPA",
    "LM",
    "Adapter",
    "Assert",
    "Audio",
    "BaseLM",
    "BestOfN",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "BufferPolicy",
    "Callback",
    "ChainOfThought",
    "ChatAdapter",
    "CircuitBreakerPolicy",
    "Citation",
    "Citations",
    "Code",
    "Completions",
    "Confidence",
    "Document",
    "DspexError",
    "Embedder",
    "Embedding",
    "Evaluate",
    "Example",
    "File",
    "Flow",
    "History",
    "Image",
    "InputField",
    "JSONAdapter",
    "KNNFewShot",
    "LabeledFewShot",
    "MIPROv2",
    "MemoryWatermarks",
    "Module",
    "MultiChainComparison",
    "OutputField",
    "Parallel",
    "Predict",
    "Prediction",
    "RateLimit",
    "ReAct",
    "Reasoning",
    "Refine",
    "RetryPolicy",
    "RunReport",
    "RunStore",
    "Signature",
    "Suggest",
    "Timeouts",
    "Tool",
    "ToolCallResults",
    "ToolCalls",
    "__version__",
    "asave_version",
    "configure",
    "configure_cache",
    "context",
    "engines",
    "ensure_signature",
    "errors",
    "events",
    "flows",
    "inspect_history",
    "load",
    "load_dspy_state",
    "majority",
    "make_signature",
    "metrics",
    "ops",
    "save_version",
    "sinks",
    "sources",
    "telemetry",
    "tools",
    "traces",
]

# name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "Adapter": (".adapters", "Adapter"),
    "Assert": (".modules", "Assert"),
    "Audio": (".signatures", "Audio"),
    "BaseLM": (".lm", "BaseLM"),
    "BestOfN": (".modules", "BestOfN"),
    "BootstrapFewShot": (".optimizers", "BootstrapFewShot"),
    "BootstrapFewShotWithRandomSearch": (".optimizers", "BootstrapFewShotWithRandomSearch"),
    "BufferPolicy": (".backpressure", "BufferPolicy"),
    "COPRO": (".optimizers", "COPRO"),
    "Callback": (".telemetry", "Callback"),
    "ChainOfThought": (".modules", "ChainOfThought"),
    "ChatAdapter": (".adapters", "ChatAdapter"),
    "CircuitBreakerPolicy": (".lm", "CircuitBreakerPolicy"),
    "Citation": (".signatures", "Citation"),
    "Citations": (".signatures", "Citations"),
    "Code": (".signatures", "Code"),
    "Completions": (".modules", "Completions"),
    "Confidence": (".signatures", "Confidence"),
    "Document": (".signatures", "Document"),
    "DspexError": (".errors", "DspexError"),
    "Embedder": (".lm", "Embedder"),
    "Embedding": (".signatures", "Embedding"),
    "Evaluate": (".evaluate", "Evaluate"),
    "Example": (".modules", "Example"),
    "File": (".signatures", "File"),
    "Flow": (".flows", "Flow"),
    "GEPA": (".optimizers", "GEPA"),
    "History": (".signatures", "History"),
    "Image": (".signatures", "Image"),
    "InputField": (".signatures", "InputField"),
    "JSONAdapter": (".adapters", "JSONAdapter"),
    "KNNFewShot": (".optimizers", "KNNFewShot"),
    "LM": (".lm", "LM"),
    "LabeledFewShot": (".optimizers", "LabeledFewShot"),
    "MIPROv2": (".optimizers", "MIPROv2"),
    "MemoryWatermarks": (".backpressure", "MemoryWatermarks"),
    "Module": (".modules", "Module"),
    "MultiChainComparison": (".modules", "MultiChainComparison"),
    "OutputField": (".signatures", "OutputField"),
    "Parallel": (".modules", "Parallel"),
    "Predict": (".modules", "Predict"),
    "Prediction": (".modules", "Prediction"),
    "ReAct": (".modules", "ReAct"),
    "RateLimit": (".lm", "RateLimit"),
    "Reasoning": (".signatures", "Reasoning"),
    "Refine": (".modules", "Refine"),
    "RetryPolicy": (".lm", "RetryPolicy"),
    "RunReport": (".flows", "RunReport"),
    "RunStore": (".store", "RunStore"),
    "Signature": (".signatures", "Signature"),
    "Suggest": (".modules", "Suggest"),
    "Timeouts": (".lm", "Timeouts"),
    "Tool": (".signatures", "Tool"),
    "ToolCallResults": (".signatures", "ToolCallResults"),
    "ToolCalls": (".signatures", "ToolCalls"),
    "asave_version": (".modules", "asave_version"),
    "configure": ("._context", "configure"),
    "configure_cache": (".lm", "configure_cache"),
    "context": ("._context", "context"),
    "ensure_signature": (".signatures", "ensure_signature"),
    "engines": (".engines", None),
    "errors": (".errors", None),
    "events": (".events", None),
    "flows": (".flows", None),
    "inspect_history": (".lm", "inspect_history"),
    "load": (".modules", "load"),
    "load_dspy_state": (".modules", "load_dspy_state"),
    "majority": (".modules", "majority"),
    "make_signature": (".signatures", "make_signature"),
    "metrics": (".evaluate.metrics", None),
    "ops": (".operators", None),
    "save_version": (".modules", "save_version"),
    "sinks": (".sinks", None),
    "sources": (".sources", None),
    "telemetry": (".telemetry", None),
    "tools": (".tools", None),
    "traces": (".traces", None),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dspex' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
