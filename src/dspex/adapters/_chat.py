"""``ChatAdapter``: DSPy's ``[[ ## field ## ]]`` prompt format and its parser.

``format`` produces exactly the messages DSPy 3.4.1's ChatAdapter produces (a
three-block system message, demos as user/assistant turns with incomplete
demos first, ``History`` turns, then the request with its output reminder), so
prompts tuned for DSPy carry over. ``parse`` splits a completion into sections
on lines that start with a ``[[ ## name ## ]]`` marker, keeps the first section
of each output field, coerces it to the field's type and fills defaults;
anything else is a :class:`~dspex.errors.ParseError` keeping the raw text.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ParseError
from ..signatures._coerce import annotation_name, parse_field
from ..signatures._types import ToolCalls
from ._base import Adapter, IncrementalParser
from ._fmt import (
    apply_output_defaults,
    field_descriptions,
    format_field_value,
    history_field,
    split_demos,
    type_note,
)
from ._history import history_messages
from ._incremental import ChatIncrementalParser
from ._parts import split_content_parts, split_message
from ._sections import split_sections

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from ..lm._types import Message
    from ..signatures import Signature
    from ._prepared import Prepared

__all__ = [
    "ChatAdapter", "empty_response_error", "field_error", "missing_fields_error", "parse_outputs",
]

_INCOMPLETE_PREFIX = "This is an example of the task, though some input or output fields are not supplied."
MISSING_IN_DEMO = "Not supplied for this particular example. "
MISSING_IN_HISTORY = "Not supplied for this conversation history message. "


def missing_fields_error(adapter: str, signature: type[Signature], completion: str,
                         parsed: Mapping[str, Any] | None, detail: str | None = None) -> ParseError:
    """Return DSPy's "Adapter X failed to parse the LM response" error, field named first."""
    outputs = signature.output_fields
    missing = [n for n in outputs if parsed is None or n not in parsed]
    if detail is None and missing:
        wanted = ", ".join(f"`{n}` ({annotation_name(outputs[n].annotation)})" for n in missing)
        detail = f"Missing output field(s): {wanted}."
    message = f"{detail}\n\n" if detail else ""
    message += (
        f"Adapter {adapter} failed to parse the LM response. \n\n"
        f"LM Response: {completion} \n\n"
        f"Expected to find output fields in the LM response: [{', '.join(outputs)}] \n\n"
    )
    if parsed is not None:
        message += f"Actual output fields parsed from the LM response: [{', '.join(parsed)}] \n\n"
    err = ParseError(message.rstrip(), raw=completion, adapter=adapter, field=missing[0] if missing else None)
    err.feedback = detail or message.rstrip()  # type: ignore[attr-defined]
    return err


def empty_response_error(adapter: str, completion: Any) -> ParseError:
    """Return the error for an empty or None completion."""
    err = ParseError("The LM returned an empty or null response.", raw="" if completion is None else str(completion),
                     adapter=adapter)
    err.feedback = "Your response was empty."  # type: ignore[attr-defined]
    return err


def field_error(adapter: str, signature: type[Signature], completion: str, parsed: Mapping[str, Any],
                exc: ParseError) -> ParseError:
    """Wrap a field coercion error into the adapter-level ``ParseError``."""
    err = missing_fields_error(adapter, signature, completion, parsed, detail=exc.message)
    err.field = exc.field
    return err


def parse_outputs(adapter: str, signature: type[Signature], completion: str,
                  found: Iterable[tuple[str | None, Any]]) -> dict[str, Any]:
    """Coerce the ``(name, raw)`` pairs an adapter found into the signature's outputs.

    The first occurrence of each output field wins; unknown names are ignored;
    missing fields take their defaults. Shared by ChatAdapter and JSONAdapter.

    Raises:
        ParseError: A value does not coerce, or a required field is missing.
    """
    outputs = signature.output_fields
    fields: dict[str, Any] = {}
    for name, raw in found:
        if name is not None and name not in fields and name in outputs:
            try:
                fields[name] = parse_field(name, raw, outputs[name])
            except ParseError as exc:
                raise field_error(adapter, signature, completion, fields, exc) from None
    fields = apply_output_defaults(outputs, fields)
    if fields.keys() != outputs.keys():
        raise missing_fields_error(adapter, signature, completion, fields)
    return fields


class ChatAdapter(Adapter):
    """DSPy's default adapter: ``[[ ## field ## ]]`` sections, ``[[ ## completed ## ]]`` end.

    Stateless and cheap to construct. The class attribute ``fallback`` is a
    shared :class:`JSONAdapter` (set in ``_json``), used by ``Predict`` when
    parsing still fails after the feedback retry.

    Args:
        callbacks: DSPy callback objects; their ``on_adapter_format_*`` and
            ``on_adapter_parse_*`` hooks run around each request's formatting and
            each completion's parsing.
        use_native_function_calling: Native tools / tool calls for signatures
            with a ``list[Tool]`` input and a ``ToolCalls`` output (off by
            default, as in DSPy).
        native_response_types: Accepted for DSPy compatibility; must be None
            or empty (dspex fills ``Reasoning`` without it).
        use_json_adapter_fallback: False disables the JSONAdapter fallback.
        parallel_tool_calls: Passed to the LM in native mode when not None.

    Raises:
        ConfigError: ``native_response_types`` lists types.
    """

    def __init__(
        self,
        callbacks: Sequence[Any] | None = None,
        use_native_function_calling: bool = False,
        native_response_types: Sequence[type] | None = None,
        use_json_adapter_fallback: bool = True,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        super().__init__(callbacks, use_native_function_calling, parallel_tool_calls)
        if native_response_types:
            raise ConfigError(
                f"native_response_types={list(native_response_types)!r} is not supported; expected None "
                "(dspex fills Reasoning and tool calls natively where the provider returns them)"
            )
        if not use_json_adapter_fallback:
            self.fallback = None

    # ----- system message -------------------------------------------------
    def format_field_description(self, signature: type[Signature]) -> str:
        return (
            f"Your input fields are:\n{field_descriptions(signature.input_fields)}\n"
            f"Your output fields are:\n{field_descriptions(signature.output_fields)}"
        )

    def _structure_block(self, fields: Mapping[str, FieldInfo]) -> str:
        return "\n\n".join(f"[[ ## {n} ## ]]\n{type_note(n, f)}" for n, f in fields.items()).strip()

    def format_field_structure(self, signature: type[Signature]) -> str:
        parts = [
            "All interactions will be structured in the following way, with the appropriate values filled in.",
            self._structure_block(signature.input_fields),
            self._structure_block(signature.output_fields),
            "[[ ## completed ## ]]\n",
        ]
        return "\n\n".join(parts).strip()

    def format_task_description(self, signature: type[Signature]) -> str:
        lines = textwrap.dedent(signature.instructions).splitlines()
        return "In adhering to this structure, your objective is: " + ("\n" + " " * 8).join(["", *lines])

    def format_system_message(self, signature: type[Signature]) -> str:
        """Return the system message: field descriptions, structure, task."""
        return (
            f"{self.format_field_description(signature)}\n"
            f"{self.format_field_structure(signature)}\n"
            f"{self.format_task_description(signature)}"
        )

    # ----- turns ----------------------------------------------------------
    def output_requirements(self, signature: type[Signature]) -> str:
        """Return the reminder appended to the request (which fields, which types).

        Computed once per signature (it sits on every request) and kept in
        ``prepare(signature)``.
        """
        prepared = self.prepare(signature)
        text = prepared.requirements
        if text is None:
            text = prepared.requirements = self._output_requirements(signature)
        return text

    def _output_requirements(self, signature: type[Signature]) -> str:
        def info(field: FieldInfo) -> str:
            if field.annotation is ToolCalls:
                return ' (must be a JSON object like {"tool_calls": [{"name": "...", "args": {...}}]})'
            if field.annotation is not str:
                return f" (must be formatted as a valid Python {annotation_name(field.annotation)})"
            return ""

        fields = ", then ".join(f"`[[ ## {n} ## ]]`{info(f)}" for n, f in signature.output_fields.items())
        return (f"Respond with the corresponding output fields, starting with the field {fields}, "
                "and then ending with the marker for `[[ ## completed ## ]]`.")

    def format_user_message_content(self, signature: type[Signature], inputs: Mapping[str, Any],
                                    prefix: str = "", main_request: bool = False) -> str:
        """Return a user turn: ``[[ ## name ## ]]`` blocks of present inputs (+ reminder)."""
        parts = [prefix]
        for name, field in signature.input_fields.items():
            if name in inputs:
                parts.append(f"[[ ## {name} ## ]]\n{format_field_value(field, inputs[name])}")
        if main_request:
            parts.append(self.output_requirements(signature))
        parts.append("")
        return "\n\n".join(parts).strip()

    def format_assistant_message_content(self, signature: type[Signature], outputs: Mapping[str, Any],
                                         missing: str | None = None) -> str:
        """Return an assistant turn: every output's block, then the completed marker."""
        body = "\n\n".join(
            f"[[ ## {n} ## ]]\n{format_field_value(f, outputs.get(n, missing))}"
            for n, f in signature.output_fields.items()
        ).strip()
        return body + "\n\n[[ ## completed ## ]]\n"

    def format_demos(self, signature: type[Signature], demos: Sequence[Any]) -> list[Message]:
        """Return demo turns: incomplete demos (with a preamble) first, then complete ones."""
        incomplete, complete = split_demos(signature.fields, signature.input_fields, signature.output_fields, demos)
        messages: list[Message] = []
        for demo in incomplete:
            messages.append({"role": "user", "content": self.format_user_message_content(
                signature, demo, prefix=_INCOMPLETE_PREFIX)})
            messages.append({"role": "assistant", "content": self.format_assistant_message_content(
                signature, demo, MISSING_IN_DEMO)})
        for demo in complete:
            messages.append({"role": "user", "content": self.format_user_message_content(signature, demo)})
            messages.append({"role": "assistant", "content": self.format_assistant_message_content(
                signature, demo, MISSING_IN_HISTORY)})
        return messages

    def format_history(self, signature: type[Signature], turns: Sequence[Any]) -> list[Message]:
        """Return ``History`` turns as user/assistant pairs (``signature`` without the history field)."""
        return history_messages(self, signature, turns)

    def format_conversation_history(self, signature: type[Signature], history_field_name: str,
                                    inputs: dict[str, Any]) -> list[Message]:
        """Return the ``History`` turns as messages and remove the field from ``inputs``.

        DSPy's override point: ``signature`` is the signature without the
        history field; ``inputs`` is the call's (copied) inputs dict, from
        which the history value is deleted.
        """
        value = inputs.pop(history_field_name, None)
        turns = getattr(value, "messages", None) if value is not None else None
        if isinstance(value, Mapping):
            turns = value.get("messages")
        return self.format_history(signature, turns or [])

    def format(self, signature: type[Signature], demos: Sequence[Mapping[str, Any]] = (),
               inputs: Mapping[str, Any] | None = None) -> list[Message]:
        inputs = dict(inputs or {})
        messages: list[Message] = [{"role": "system", "content": self.format_system_message(signature)}]
        messages.extend(self.format_demos(signature, demos))
        request_sig = signature
        hist = history_field(signature.input_fields)
        if hist is not None:
            request_sig = signature.delete(hist)
            messages.extend(self.format_conversation_history(request_sig, hist, inputs))
        content = self.format_user_message_content(request_sig, inputs, main_request=True)
        if content:
            messages.append({"role": "user", "content": content})
        # Image/Audio/File values became marked text above; DSPy sends them as content parts.
        return split_content_parts(messages)

    def format_request(self, prepared: Prepared, demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[Message]:
        """Return ``format(signature, demos, inputs)``, building only the request turn per call.

        The system message and demo turns come from ``prepared`` (built once
        per demo list). A subclass that overrides ``format``, and a signature
        with a ``History`` input, get ``format`` itself.
        """
        if type(self).format is not ChatAdapter.format or prepared.history_field is not None:
            return self.format(prepared.signature, demos, inputs)
        signature = prepared.signature
        messages = list(prepared.prefix(demos, lambda ds: self._prefix(signature, ds)))
        content = self.format_user_message_content(signature, inputs, main_request=True)
        if content:
            messages.append(split_message({"role": "user", "content": content}))
        return messages

    def _prefix(self, signature: type[Signature], demos: Sequence[Any]) -> list[Message]:
        prefix: list[Message] = [{"role": "system", "content": self.format_system_message(signature)}]
        prefix.extend(self.format_demos(signature, demos))
        return split_content_parts(prefix)  # images in demos go as content parts, as in format()

    # ----- parsing --------------------------------------------------------
    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        if not completion:
            raise empty_response_error(self.name, completion)
        return parse_outputs(self.name, signature, completion, split_sections(completion))

    def parse_stream(self, signature: type[Signature]) -> IncrementalParser:
        return ChatIncrementalParser(self, signature)
