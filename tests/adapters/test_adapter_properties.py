"""Property tests: render → parse round trips, and chunking-independent streaming."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dspex as dx
from dspex.adapters import Adapter, ChatAdapter, JSONAdapter
from dspex.adapters._sections import HEADER, split_sections
from dspex.errors import ParseError
from dspex.events import Event, FieldDelta, FieldDone

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["answer", "score", "a", "b_2", "reasoning", "x_y_z"]
ADAPTERS: list[Adapter] = [ChatAdapter(), JSONAdapter()]

_text = st.text(alphabet=st.sampled_from(list("abcXYZ019 .,:;!?'\"-_()[]{}#«»é中\\/\n\t")), max_size=40)


def _clean_str(value: str) -> bool:
    """A str value the chat format can carry: no marker lines, no edge whitespace."""
    return value == value.strip() and not any(HEADER.match(line.strip()) for line in value.split("\n"))


_VALUES: dict[Any, st.SearchStrategy[Any]] = {
    str: _text.filter(_clean_str),
    int: st.integers(min_value=-(10**12), max_value=10**12),
    float: st.floats(allow_nan=False, allow_infinity=False, width=64),
    bool: st.booleans(),
    list[str]: st.lists(_text, max_size=4),
}


@st.composite
def signature_and_values(draw: st.DrawFn) -> tuple[type[dx.Signature], dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    types = {n: draw(st.sampled_from(list(_VALUES))) for n in names}
    fields: dict[str, Any] = {"question": (str, dx.InputField())}
    fields.update({n: (types[n], dx.OutputField()) for n in names})
    sig = dx.make_signature(fields)
    return sig, {n: draw(_VALUES[types[n]]) for n in names}


@SETTINGS
@given(case=signature_and_values(), adapter=st.sampled_from(ADAPTERS))
def test_parse_inverts_rendered_assistant_turn(case: tuple[Any, dict[str, Any]], adapter: Adapter) -> None:
    sig, values = case
    rendered = adapter.format_assistant_message_content(sig, values)  # type: ignore[attr-defined]
    assert adapter.parse(sig, rendered) == values


def _merge(events: list[Event]) -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    for ev in events:
        if isinstance(ev, FieldDelta):
            if out and out[-1][:2] == ("delta", ev.field):
                out[-1] = ("delta", ev.field, out[-1][2] + ev.text)
            else:
                out.append(("delta", ev.field, ev.text))
        else:
            assert isinstance(ev, FieldDone)
            out.append(("done", ev.field, repr(ev.value)))
    return out


def _run(adapter: Adapter, sig: Any, text: str, sizes: list[int]) -> tuple[list[Event], Any]:
    """Feed ``text`` in chunks whose sizes cycle through ``sizes`` (one chunk if empty)."""
    parser = adapter.parse_stream(sig)
    events: list[Event] = []
    i, k = 0, 0
    while i < len(text):
        size = sizes[k % len(sizes)] if sizes else len(text)
        events += parser.feed(text[i : i + size])
        i, k = i + size, k + 1
    try:
        events += parser.finish()
    except ParseError as exc:
        return events, ("error", exc.field)
    return events, parser.values


def _one_shot(adapter: Adapter, sig: Any, text: str) -> Any:
    try:
        return adapter.parse(sig, text)
    except ParseError as exc:
        return ("error", exc.field)


def _deltas(events: list[Event]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for ev in events:
        if isinstance(ev, FieldDelta):
            joined[ev.field] = joined.get(ev.field, "") + ev.text
    return joined


def _check_chunking(adapter: Adapter, sig: Any, text: str, sizes: list[int]) -> list[Event]:
    whole, whole_values = _run(adapter, sig, text, [])
    chunked, chunked_values = _run(adapter, sig, text, sizes)
    assert _merge(chunked) == _merge(whole)
    assert chunked_values == whole_values == _one_shot(adapter, sig, text)
    return chunked


_sizes = st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=12)


@SETTINGS
@given(case=signature_and_values(), adapter=st.sampled_from(ADAPTERS), sizes=_sizes,
       trailer=st.sampled_from(["", "\n\n[[ ## completed ## ]]\n", "\n\nThanks!"]))
def test_streaming_matches_one_shot_on_rendered_turns(case: Any, adapter: Adapter, sizes: list[int],
                                                      trailer: str) -> None:
    sig, values = case
    text = adapter.format_assistant_message_content(sig, values) + trailer  # type: ignore[attr-defined]
    events = _check_chunking(adapter, sig, text, sizes)
    done = {ev.field: ev.value for ev in events if isinstance(ev, FieldDone)}
    assert done == values
    deltas = _deltas(events)
    for name, value in values.items():
        if isinstance(value, str):
            assert deltas.get(name, "") == value


_WORDS = st.sampled_from(["Paris", "42", "x", "«»", "]]", "[[", "[", "[[ ## ", " ## ]]", "[[ ## n", " ", "  ", "\t"])
_BREAKS = st.sampled_from(["\n", "\n", "\r\n", "\r", "\u2028", "\x0c", "\x1e"])


@st.composite
def chat_completion(draw: st.DrawFn) -> str:
    """Lines that are headers (maybe indented, maybe with a remainder) or content."""
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        content = "".join(draw(st.lists(_WORDS, max_size=5)))
        if draw(st.booleans()):
            name = draw(st.sampled_from(["answer", "n", "completed", "other"]))
            indent = draw(st.sampled_from(["", "", " ", "  ", "\t"]))
            content = f"{indent}[[ ## {name} ## ]]{content}"
        parts.append(content + draw(_BREAKS))
    return "".join(parts)


_small_sizes = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=chat_completion(), sizes=_small_sizes)
def test_chat_streaming_matches_one_shot_on_arbitrary_text(text: str, sizes: list[int]) -> None:
    sig = dx.Signature("q -> answer, n: int")
    events = _check_chunking(ChatAdapter(), sig, text, sizes)
    sections: dict[str, str] = {}
    for name, body in split_sections(text):
        if name in sig.output_fields and name not in sections:
            sections[name] = body
    assert _deltas(events) == {k: v for k, v in sections.items() if v}


_JSON_PIECES = st.sampled_from([
    "{", "}", "[", "]", '"answer"', '"n"', "'answer'", '"other"', ":", ",", " ", "\n", '"', "'",
    '"Paris"', "42", "-1.5e3", "true", "null", "\\", '\\"', "\\u00e9", "\\ud83d", "\\ude00", "```json\n", "x",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_JSON_PIECES, max_size=30), sizes=_small_sizes)
def test_json_streaming_matches_one_shot_on_arbitrary_text(pieces: list[str], sizes: list[int]) -> None:
    sig = dx.Signature("q -> answer, n: int")
    text = "".join(pieces)
    assume(text)
    _check_chunking(JSONAdapter(), sig, text, sizes)


@SETTINGS
@given(value=st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30),
       ascii_only=st.booleans(), sizes=_small_sizes)
def test_json_string_deltas_are_the_decoded_value(value: str, ascii_only: bool, sizes: list[int]) -> None:
    sig = dx.Signature("q -> answer, n: int")
    text = json.dumps({"answer": value, "n": 1}, ensure_ascii=ascii_only)
    events = _check_chunking(JSONAdapter(), sig, text, sizes)
    assert _deltas(events) == ({"answer": value, "n": "1"} if value else {"n": "1"})
    assert [(ev.field, ev.value) for ev in events if isinstance(ev, FieldDone)] == [("answer", value), ("n", 1)]
