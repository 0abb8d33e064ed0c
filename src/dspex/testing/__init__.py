"""Test doubles: ScriptedLM, MockTransport (an LM's HTTP, offline), FakeLLMServer (loopback HTTP) and LlamaServer (real model).

Names are imported lazily (PEP 562) so that importing ``dspex.testing`` does
not import the HTTP server machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._clock import FakeClock as FakeClock
    from ._conformance import check_sink as check_sink
    from ._conformance import check_source as check_source
    from ._conformance import sample_records as sample_records
    from ._fake_student import StudentTask as StudentTask
    from ._llama_server import LlamaServer as LlamaServer
    from ._llama_server import local_model_path as local_model_path
    from ._mock_transport import MockRequest as MockRequest
    from ._mock_transport import MockResponse as MockResponse
    from ._mock_transport import MockTransport as MockTransport
    from ._scripted_lm import ScriptedLM as ScriptedLM
    from ._server import FakeLLMServer as FakeLLMServer

__all__ = [
    "FakeClock",
    "FakeLLMServer",
    "LlamaServer",
    "MockRequest",
    "MockResponse",
    "MockTransport",
    "ScriptedLM",
    "StudentTask",
    "check_sink",
    "check_source",
    "local_model_path",
    "sample_records",
]

# name -> private module holding it
_LAZY: dict[str, str] = {
    "ScriptedLM": "._scripted_lm",
    "FakeLLMServer": "._server",
    "FakeClock": "._clock",
    "StudentTask": "._fake_student",
    "MockRequest": "._mock_transport",
    "MockResponse": "._mock_transport",
    "MockTransport": "._mock_transport",
    "check_source": "._conformance",
    "check_sink": "._conformance",
    "sample_records": "._conformance",
    "LlamaServer": "._llama_server",
    "local_model_path": "._llama_server",
}


def __getattr__(name: str) -> Any:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dspex.testing' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
