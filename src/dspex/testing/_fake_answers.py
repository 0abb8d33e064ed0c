"""Deterministic completions for the fake LM server, derived from the prompt itself.

The server reads which output fields a DSPy/dspex prompt asks for (the
ChatAdapter ``[[ ## name ## ]]`` structure after "Your output fields are:", or
the JSONAdapter's JSON skeleton, or a ``response_format`` JSON schema) and
answers in the same format. Every value comes from a hash of the request, so
one request always gets one answer, and it is type-aware: the ``# note:``
lines say when a field is an int, float, bool, one of a set of literals, or
must follow a JSON schema; ``reasoning`` gets a sentence.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ._fake_agent import choose_step, extract_answer, tools_from_prompt

__all__ = [
    "FieldSpec",
    "count_tokens",
    "fake_completion",
    "fields_from_prompt",
    "media_echo",
    "split_tokens",
    "value_for_schema",
]

_WORDS = ["amber", "blue", "coral", "delta", "ember", "fable", "garnet", "harbor", "island", "jade", "kestrel", "lumen", "meadow", "nova", "orchid", "pebble", "quartz", "river", "sierra", "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr"]
_FIELD_LINE = re.compile(r"^\s*\d+\. `(\w+)` \((.*?)\):")
_NOTE_PREFIX = "# note: the value you produce "
_TOKEN = re.compile(r"\s*\S+|\s+")
_COUNT = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class FieldSpec:
    """An output field the prompt asks for: its name, kind and options."""

    name: str
    kind: str = "str"  # str int float bool choice schema
    choices: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into word-like tokens that join back to ``text`` exactly."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """Count tokens the way the fake server bills them (words and symbols)."""
    return len(_COUNT.findall(text))


@functools.lru_cache(maxsize=1024)
def count_tokens_cached(text: str) -> int:
    """:func:`count_tokens`, memoised (system prompts repeat on every request)."""
    return count_tokens(text)


def _seed(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def _phrase(seed: int, words: int = 2) -> str:
    out = []
    for _ in range(words):
        out.append(_WORDS[seed % len(_WORDS)])
        seed //= len(_WORDS)
    return " ".join(out)


def _parse_note(name: str, note: str) -> FieldSpec:
    if note.startswith("must be True or False"):
        return FieldSpec(name, "bool")
    if note.startswith("must be a single int value"):
        return FieldSpec(name, "int")
    if note.startswith("must be a single float value"):
        return FieldSpec(name, "float")
    for marker in ("must exactly match (no extra characters) one of: ", "must be one of: "):
        if note.startswith(marker):
            options = tuple(o.strip() for o in note[len(marker) :].split(";") if o.strip())
            return FieldSpec(name, "choice", choices=options or ("",))
    marker = "must adhere to the JSON schema: "
    if note.startswith(marker):
        try:
            schema = json.loads(note[len(marker) :])
        except ValueError:
            return FieldSpec(name)
        return FieldSpec(name, "schema", schema=schema if isinstance(schema, dict) else None)
    return FieldSpec(name)


def _notes_from_chat(system: str) -> dict[str, str]:
    notes: dict[str, str] = {}
    for line in system.splitlines():
        m = re.match(r"^\{(\w+)\}\s+" + re.escape(_NOTE_PREFIX) + r"(.*)$", line)
        if m:
            notes[m.group(1)] = m.group(2)
    return notes


def _notes_from_json(system: str) -> dict[str, str] | None:
    start = system.find("Outputs will be a JSON object with the following fields.")
    if start < 0:
        return None
    brace = system.find("{", start)
    try:
        skeleton, _ = json.JSONDecoder().raw_decode(system[brace:])
    except ValueError:
        return {}
    notes: dict[str, str] = {}
    if isinstance(skeleton, dict):
        for name, text in skeleton.items():
            if isinstance(text, str) and _NOTE_PREFIX in text:
                notes[name] = text.split(_NOTE_PREFIX, 1)[1]
            else:
                notes[name] = ""
    return notes


@functools.lru_cache(maxsize=256)
def fields_from_prompt(system: str) -> tuple[tuple[FieldSpec, ...], str] | None:
    """Return the output fields and ``"chat"``/``"json"`` format, or None.

    None means the prompt is not a DSPy-style prompt. Results are cached:
    a load test repeats one system prompt thousands of times.
    """
    head = "Your output fields are:"
    at = system.find(head)
    if at < 0:
        return None
    names: list[str] = []
    for line in system[at + len(head) :].splitlines():
        m = _FIELD_LINE.match(line)
        if m:
            names.append(m.group(1))
        elif line.startswith("All interactions will be structured"):
            break
    json_notes = _notes_from_json(system)
    notes = json_notes if json_notes is not None else _notes_from_chat(system)
    fmt = "json" if json_notes is not None else "chat"
    return tuple(_parse_note(n, notes.get(n, "")) for n in names), fmt


def value_for_schema(schema: dict[str, Any], seed: int, depth: int = 0) -> Any:
    """Return a deterministic value that validates against a JSON schema subset."""
    if schema.get("enum"):
        return schema["enum"][seed % len(schema["enum"])]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return value_for_schema(options[0], seed, depth)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    kind = str(kind).lower()
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {
            k: value_for_schema(v, _seed(str(seed), k), depth + 1)
            for k, v in props.items()
            if depth < 6
        }
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        count = max(int(schema.get("minItems", 0)), 2)
        return [value_for_schema(items, _seed(str(seed), str(i)), depth + 1) for i in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 0)) + seed % 100
    if kind == "number":
        return round((seed % 1000) / 1000, 3)
    if kind == "boolean":
        return seed % 2 == 0
    return _phrase(seed)


def _value(spec: FieldSpec, seed: int) -> Any:
    if spec.kind == "int":
        return seed % 100
    if spec.kind == "float":
        return round((seed % 1000) / 1000, 3)
    if spec.kind == "bool":
        return seed % 2 == 0
    if spec.kind == "choice":
        return spec.choices[seed % len(spec.choices)]
    if spec.kind == "schema" and spec.schema is not None:
        return value_for_schema(spec.schema, seed)
    if spec.name in ("reasoning", "rationale"):
        return (
            f"Let's think step by step: the inputs point to {_phrase(seed, 3)}, "
            "so the answer follows."
        )
    return _phrase(seed)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _play_agent(specs: tuple[FieldSpec, ...], values: dict[str, Any], system: str, user: str) -> None:
    """Fill a ReAct step or a trajectory extraction the way ``_fake_agent`` decides."""
    if not user:
        return
    if "next_tool_name" in values and "next_tool_args" in values:
        thought, name, args = choose_step(tools_from_prompt(system), user)
        values.update(next_tool_name=name, next_tool_args=args)
        if "next_thought" in values:
            values["next_thought"] = thought
        return
    found = extract_answer(user)
    if found is None:
        return
    reasoning, answer = found
    for spec in specs:
        if spec.name in ("reasoning", "rationale"):
            values[spec.name] = reasoning
        elif spec.kind == "str" or (spec.kind in ("int", "float") and _is_number(answer)):
            values[spec.name] = answer


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def media_echo(media: list[dict[str, Any]], system: str) -> dict[str, Any] | None:
    """Return the echo of a request's media parts for its first text output field, if any.

    ``"Received image https://…; file data:application/pdf;base64"``: each
    part's type and URL (data URIs cut to their header), so a test can check
    what reached the fake server through the whole stack.
    """
    found = fields_from_prompt(system) if media else None
    field = next((s.name for s in found[0] if s.kind == "str"), None) if found else None
    if field is None:
        return None
    shown = [f"{m['type']} {m['url'].split(',', 1)[0] if m['url'].startswith('data:') else m['url']}" for m in media]
    return {field: "Received " + "; ".join(shown)}


def fake_completion(
    system: str,
    key: str,
    *,
    json_schema: dict[str, Any] | None = None,
    json_mode: bool = False,
    user: str = "",
    overrides: dict[str, Any] | None = None,
) -> str:
    """Return the deterministic completion for a prompt.

    Args:
        system: The system text (where DSPy prompts describe their outputs).
        key: A stable digest of the whole request (and choice index).
        json_schema: A ``response_format`` schema to satisfy, if any.
        json_mode: Answer with a JSON object even for a chat-format prompt.
        user: The last message's text: a ReAct step or extraction reads its
            question and trajectory (see ``_fake_agent``).
        overrides: Values for some output fields (those the prompt asks for).
    """
    seed = _seed(key)
    if json_schema is not None:
        return json.dumps(value_for_schema(json_schema, seed), ensure_ascii=False)
    found = fields_from_prompt(system)
    if found is None:
        text = f"This is a fake reply about {_phrase(seed, 3)}."
        return json.dumps({"answer": text}) if json_mode else text
    specs, fmt = found
    values = {s.name: _value(s, _seed(key, s.name)) for s in specs}
    _play_agent(specs, values, system, user)
    if overrides:
        values.update((k, v) for k, v in overrides.items() if k in values)
    if fmt == "json" or json_mode:
        return json.dumps(values, ensure_ascii=False)
    blocks = [f"[[ ## {name} ## ]]\n{_render(v)}" for name, v in values.items()]
    return "\n\n".join([*blocks, "[[ ## completed ## ]]"])
