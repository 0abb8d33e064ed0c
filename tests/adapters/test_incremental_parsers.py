"""Incremental (streaming) parsers: exact event sequences for hand-picked streams."""

from __future__ import annotations

from typing import Any

import pytest

import dspex as dx
from dspex.adapters import ChatAdapter, IncrementalParser, JSONAdapter
from dspex.errors import ParseError
from dspex.events import Event, FieldDelta, FieldDone


def merged(events: list[Event]) -> list[tuple[str, str, Any]]:
    """Return ``(kind, field, text_or_value)`` with adjacent deltas of a field merged."""
    out: list[tuple[str, str, Any]] = []
    for ev in events:
        if isinstance(ev, FieldDelta):
            if out and out[-1][0] == "delta" and out[-1][1] == ev.field:
                out[-1] = ("delta", ev.field, out[-1][2] + ev.text)
            else:
                out.append(("delta", ev.field, ev.text))
        else:
            assert isinstance(ev, FieldDone)
            out.append(("done", ev.field, ev.value))
    return out


def stream(parser: IncrementalParser, text: str, size: int = 1) -> list[Event]:
    events: list[Event] = []
    for i in range(0, len(text), size):
        events += parser.feed(text[i : i + size])
    return events + parser.finish()


COT = dx.Signature("question -> reasoning, answer: int")


def test_chat_stream_char_by_char() -> None:
    text = "[[ ## reasoning ## ]]\nTwo plus\ntwo.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]\n"
    parser = ChatAdapter().parse_stream(COT)
    assert merged(stream(parser, text)) == [
        ("delta", "reasoning", "Two plus\ntwo."),
        ("done", "reasoning", "Two plus\ntwo."),
        ("delta", "answer", "4"),
        ("done", "answer", 4),
    ]
    assert parser.values == {"reasoning": "Two plus\ntwo.", "answer": 4}
    assert parser.text == text


def test_chat_field_done_arrives_when_next_section_starts() -> None:
    parser = ChatAdapter().parse_stream(COT)
    assert parser.feed("[[ ## reasoning ## ]]\nBecause") == [FieldDelta(field="reasoning", text="Because")]
    assert parser.feed("\n[[ ## ans") == []  # a possible marker is held back
    events = parser.feed("wer ## ]] 4")
    assert merged(events) == [("done", "reasoning", "Because"), ("delta", "answer", "4")]
    assert parser.values == {"reasoning": "Because"}


def test_chat_holds_only_whitespace_and_marker_prefixes() -> None:
    parser = ChatAdapter().parse_stream(dx.Signature("q -> answer"))
    assert parser.feed("[[ ## answer ## ]]\n  Paris  ") == [FieldDelta(field="answer", text="Paris")]
    assert parser.feed("\n\nis") == [FieldDelta(field="answer", text="  \n\nis")]
    assert parser.feed("\n  [[ #") == []
    assert parser.feed("# 1!") == [FieldDelta(field="answer", text="\n  [[ ## 1!")]
    assert parser.feed("\n[1") == [FieldDelta(field="answer", text="\n[1")]
    assert parser.feed("\n[[ ## other ## ]]\nignored") == [
        FieldDone(field="answer", value="Paris  \n\nis\n  [[ ## 1!\n[1")
    ]
    assert parser.finish() == []


def test_chat_crlf_split_across_chunks_counts_once() -> None:
    parser = ChatAdapter().parse_stream(dx.Signature("q -> answer"))
    events = parser.feed("[[ ## answer ## ]]\r\nline one\r") + parser.feed("\nline two") + parser.finish()
    assert merged(events) == [("delta", "answer", "line one\nline two"), ("done", "answer", "line one\nline two")]


def test_chat_finish_raises_like_parse_and_keeps_earlier_events() -> None:
    parser = ChatAdapter().parse_stream(COT)
    events = parser.feed("[[ ## reasoning ## ]]\nhmm\n[[ ## answer ## ]]\nfour\n[[ ## completed ## ]]")
    assert merged(events) == [("delta", "reasoning", "hmm"), ("done", "reasoning", "hmm"), ("delta", "answer", "four")]
    with pytest.raises(ParseError) as info:
        parser.finish()
    assert info.value.field == "answer"
    assert "field `answer`: expected int, got 'four'" in str(info.value)
    with pytest.raises(ParseError, match="after finish"):
        parser.feed("more")


def test_chat_defaults_are_reported_at_finish() -> None:
    class Opt(dx.Signature):
        q: str = dx.InputField()
        answer: str = dx.OutputField()
        note: str = dx.OutputField(default="No note")

    parser = ChatAdapter().parse_stream(Opt)
    assert merged(stream(parser, "[[ ## answer ## ]]\n42", size=3)) == [
        ("delta", "answer", "42"),
        ("done", "answer", "42"),
        ("done", "note", "No note"),
    ]


def test_chat_duplicate_and_unknown_sections_are_not_streamed() -> None:
    parser = ChatAdapter().parse_stream(dx.Signature("q -> answer"))
    text = "preamble\n[[ ## junk ## ]]\nx\n[[ ## answer ## ]]\nfirst\n[[ ## answer ## ]]\nsecond"
    assert merged(stream(parser, text, size=4)) == [("delta", "answer", "first"), ("done", "answer", "first")]


def test_json_stream_decodes_string_escapes() -> None:
    sig = dx.Signature("q -> reasoning, answer: int")
    text = '```json\n{"reasoning": "a\\nb \\"q\\" \\u00e9 \\ud83d\\ude00", "skip": {"x": "}"}, "answer": 42}\n```'
    parser = JSONAdapter().parse_stream(sig)
    decoded = 'a\nb "q" é \U0001f600'
    assert merged(stream(parser, text)) == [
        ("delta", "reasoning", decoded),
        ("done", "reasoning", decoded),
        ("delta", "answer", "42"),
        ("done", "answer", 42),
    ]
    assert parser.values == {"reasoning": decoded, "answer": 42}


def test_json_nested_values_stream_raw_text() -> None:
    sig = dx.Signature("q -> items: list[str], data: dict[str, Any]")
    text = "{'items': ['a', 'b]'], \"data\": {\"k\": [1, {\"z\": null}]}}"
    parser = JSONAdapter().parse_stream(sig)
    assert merged(stream(parser, text, size=2)) == [
        ("delta", "items", "['a', 'b]']"),
        ("delta", "data", '{"k": [1, {"z": null}]}'),
        ("done", "data", {"k": [1, {"z": None}]}),
        ("done", "items", ["a", "b]"]),
    ]


def test_json_truncated_stream_is_repaired_at_finish() -> None:
    parser = JSONAdapter().parse_stream(dx.Signature("q -> answer, n: int"))
    events = parser.feed('{"n": 3, "answer": "cut') + parser.finish()
    assert merged(events) == [
        ("delta", "n", "3"),
        ("done", "n", 3),
        ("delta", "answer", "cut"),
        ("done", "answer", "cut"),
    ]


def test_json_duplicate_key_final_value_wins() -> None:
    parser = JSONAdapter().parse_stream(dx.Signature("q -> answer"))
    events = stream(parser, '{"answer": "one", "answer": "two"}', size=5)
    assert merged(events) == [("delta", "answer", "one"), ("done", "answer", "one"), ("done", "answer", "two")]
    assert parser.values == {"answer": "two"}


def test_json_finish_raises_on_garbage() -> None:
    parser = JSONAdapter().parse_stream(dx.Signature("q -> answer"))
    assert parser.feed("I cannot answer that.") == []
    with pytest.raises(ParseError, match="cannot be serialized to a JSON object") as info:
        parser.finish()
    assert info.value.raw == "I cannot answer that."


def test_empty_feed_is_a_no_op() -> None:
    for adapter in (ChatAdapter(), JSONAdapter()):
        parser = adapter.parse_stream(dx.Signature("q -> answer"))
        assert parser.feed("") == []
        assert parser.text == ""
        with pytest.raises(ParseError, match="empty or null response"):
            parser.finish()
