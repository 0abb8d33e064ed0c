"""``JSONAdapter``: DSPy's JSON-object output format, structured outputs, repair.

The system message is DSPy 3.4.1's JSONAdapter message (inputs as
``[[ ## name ## ]]`` blocks, outputs as a 2-space-indented JSON skeleton), demo
answers are indented JSON, and the request ends with ``Respond with a JSON
object in the following order of fields: ...``. ``lm_params`` asks for a
strict structured-output ``response_format`` (or JSON mode when an output is an
open dict). ``parse`` finds and repairs the object (fences, prose, single
quotes, truncation), drops unknown keys and coerces each field.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..signatures._coerce import annotation_name
from ..signatures._types import ToolCalls
from ._base import Adapter
from ._chat import ChatAdapter, empty_response_error, missing_fields_error, parse_outputs
from ._fmt import serialize_for_json, type_note
from ._incremental_json import JSONIncrementalParser
from ._json_repair import extract_object
from ._structured import response_format

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pydantic.fields import FieldInfo

    from ..signatures import Signature
    from ._base import IncrementalParser

__all__ = ["JSONAdapter"]


class JSONAdapter(ChatAdapter):
    """Outputs as one JSON object; native structured outputs where available.

    ``fallback`` is None: this adapter is the last resort. As in DSPy,
    native function calling is on by default here.

    Args:
        callbacks: DSPy callback objects; their ``on_adapter_format_*`` and
            ``on_adapter_parse_*`` hooks run around each request's formatting and
            each completion's parsing.
        use_native_function_calling: Native tools / tool calls for signatures
            with a ``list[Tool]`` input and a ``ToolCalls`` output (None, the
            default, means on, as in DSPy; ``ReAct`` goes native only when
            it is passed as True).
        parallel_tool_calls: Passed to the LM in native mode when not None.
    """

    fallback: Adapter | None = None

    def __init__(
        self,
        callbacks: Sequence[Any] | None = None,
        use_native_function_calling: bool | None = None,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        Adapter.__init__(self, callbacks, use_native_function_calling is not False, parallel_tool_calls)
        self.native_by_default = use_native_function_calling is None

    def format_field_structure(self, signature: type[Signature]) -> str:
        skeleton = {n: type_note(n, f) for n, f in signature.output_fields.items()}
        parts = [
            "All interactions will be structured in the following way, with the appropriate values filled in.",
            "Inputs will have the following structure:",
            self._structure_block(signature.input_fields),
            "Outputs will be a JSON object with the following fields.",
            json.dumps(skeleton, indent=2, ensure_ascii=False),
        ]
        return "\n\n".join(parts).strip()

    def _output_requirements(self, signature: type[Signature]) -> str:
        def info(field: FieldInfo) -> str:
            if field.annotation is ToolCalls:
                return ' (must be a JSON object like {"tool_calls": [{"name": "...", "args": {...}}]})'
            if field.annotation is not str:
                return f" (must be formatted as a valid Python {annotation_name(field.annotation)})"
            return ""

        fields = ", then ".join(f"`{n}`{info(f)}" for n, f in signature.output_fields.items())
        return f"Respond with a JSON object in the following order of fields: {fields}."

    def format_assistant_message_content(self, signature: type[Signature], outputs: Mapping[str, Any],
                                         missing: str | None = None) -> str:
        values = {n: outputs.get(n, missing) for n in signature.output_fields}
        return json.dumps(serialize_for_json(values), indent=2, ensure_ascii=False)

    def lm_params(self, signature: type[Signature], provider: str | None = None) -> dict[str, Any]:
        """Return ``{"response_format": ...}``: strict json_schema, or json_object for open dicts.

        The shape is OpenAI's; provider clients translate it (Anthropic tool
        forcing, Gemini ``responseSchema``).
        """
        return {"response_format": response_format(signature)}

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        if not completion:
            raise empty_response_error(self.name, completion)
        found = extract_object(completion)
        if found is None:
            err = missing_fields_error(
                self.name, signature, completion, None,
                detail="LM response cannot be serialized to a JSON object; expected one JSON object with the "
                       f"keys {list(signature.output_fields)}.")
            raise err
        return parse_outputs(self.name, signature, completion, found.items())

    def parse_stream(self, signature: type[Signature]) -> IncrementalParser:
        return JSONIncrementalParser(self, signature)


# Adapters are stateless, so ChatAdapter's fallback can be one shared instance.
ChatAdapter.fallback = JSONAdapter()
