"""JSONAdapter's strict ``response_format`` is what DSPy 3.4.1 sends through LiteLLM and the OpenAI SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _golden import load_module
from pydantic_core import PydanticUndefined

from dspex.adapters._structured import response_format
from dspex.signatures import ToolCalls

dspy = pytest.importorskip("dspy")
sdk = pytest.importorskip("openai.lib._pydantic")
json_adapter = pytest.importorskip("dspy.adapters.json_adapter")

GOLDEN = Path(__file__).resolve().parents[1] / "signatures" / "golden"


cases = load_module(GOLDEN / "schema_cases.py", "dspex_structured_schema_cases")
# DSPy drops ToolCalls outputs under native function calling and has no strict form for
# them; dspex keeps them with string-encoded arguments (documented in _structured).
# A mapping nested in a model: DSPy closes it, forcing it empty; dspex asks for json_object.
NESTED_MAPPINGS = ["discriminated", "history_out"]
COMPARABLE = sorted(
    n for n in cases.SIGNATURES
    if n not in NESTED_MAPPINGS
    and not any(ToolCalls in (f.annotation, *getattr(f.annotation, "__args__", ()))
                for f in cases.SIGNATURES[n]().output_fields.values())
)


def _dspy_signature(sig: Any) -> Any:
    fields: dict[str, Any] = {}
    for name, info in sig.input_fields.items():
        fields[name] = (info.annotation, dspy.InputField())
    for name, info in sig.output_fields.items():
        kwargs = {} if info.default is PydanticUndefined else {"default": info.default}
        fields[name] = (info.annotation, dspy.OutputField(**kwargs))
    return dspy.make_signature(fields, sig.instructions)


def _dspy_request(sig: Any) -> dict[str, Any]:
    """What DSPy's JSONAdapter puts in the request: the SDK's strict schema, or json_object."""
    try:
        model = json_adapter._get_structured_outputs_response_format(_dspy_signature(sig))
        schema = sdk.to_strict_json_schema(model)
    except Exception:  # DSPy falls back to json_object whenever the strict schema fails
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema, "strict": True}}


def test_the_comparison_covers_most_cases() -> None:
    assert len(COMPARABLE) >= len(cases.SIGNATURES) - 5


@pytest.mark.parametrize("name", NESTED_MAPPINGS)
def test_nested_mappings_ask_for_json_mode_where_dspy_forces_them_empty(name: str) -> None:
    sig = cases.SIGNATURES[name]()
    assert response_format(sig) == {"type": "json_object"}
    dspy_schema = json.dumps(_dspy_request(sig))
    assert '"properties": {}, "required": []' in dspy_schema  # the mapping can only be {}


@pytest.mark.parametrize("name", COMPARABLE)
def test_response_format_matches_dspy_byte_for_byte(name: str) -> None:
    sig = cases.SIGNATURES[name]()
    assert json.dumps(response_format(sig)) == json.dumps(_dspy_request(sig))
