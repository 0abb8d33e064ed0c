"""The Sans-I/O SSE decoder: line endings, fields, comments, chunking, UTF-8."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dspex._http._sse import SSEDecoder, SSEEvent


def decode_all(data: bytes) -> list[SSEEvent]:
    return SSEDecoder().feed(data)


def test_basic_event_fields() -> None:
    events = decode_all(b"event: delta\nid: 7\nretry: 1500\ndata: hello\n\n")
    assert events == [SSEEvent(event="delta", data="hello", id="7", retry=1500)]


def test_default_event_type_and_multiline_data() -> None:
    events = decode_all(b"data: one\ndata: two\ndata:three\n\n")
    assert events == [SSEEvent(event="message", data="one\ntwo\nthree")]


def test_crlf_cr_and_lf_line_endings_are_equivalent() -> None:
    lf = decode_all(b"data: a\n\ndata: b\n\n")
    crlf = decode_all(b"data: a\r\n\r\ndata: b\r\n\r\n")
    cr = decode_all(b"data: a\r\rdata: b\r\r")
    assert lf == crlf == cr == [SSEEvent(data="a"), SSEEvent(data="b")]


def test_crlf_split_across_chunks_counts_once() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n") == []  # the LF completes the CRLF, not a blank line
    assert dec.feed(b"\r\n") == [SSEEvent(data="a")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = decode_all(b": keep-alive\nfoo: bar\ndata: x\n: another\n\n")
    assert events == [SSEEvent(data="x")]


def test_blank_line_without_data_dispatches_nothing() -> None:
    assert decode_all(b"event: ping\n\n\n\n") == []
    assert decode_all(b"event: ping\n\ndata: y\n\n") == [SSEEvent(data="y")]


def test_id_persists_and_nul_id_is_ignored() -> None:
    events = decode_all(b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", "1"]


def test_bad_retry_is_ignored() -> None:
    assert decode_all(b"retry: 12a\ndata: z\n\n") == [SSEEvent(data="z")]


def test_field_without_colon_and_no_space_after_colon() -> None:
    assert decode_all(b"data\n\n") == [SSEEvent(data="")]
    assert decode_all(b"data:  two spaces\n\n") == [SSEEvent(data=" two spaces")]


def test_leading_bom_is_stripped_once() -> None:
    assert decode_all("\ufeffdata: a\n\n".encode()) == [SSEEvent(data="a")]


def test_bom_split_across_chunks() -> None:
    dec = SSEDecoder()
    raw = "\ufeffdata: a\n\n".encode()
    assert [ev for i in range(len(raw)) for ev in dec.feed(raw[i : i + 1])] == [SSEEvent(data="a")]


def test_utf8_character_split_across_chunks() -> None:
    dec = SSEDecoder()
    raw = "data: héllo wörld €\n\n".encode()
    events = [ev for i in range(len(raw)) for ev in dec.feed(raw[i : i + 1])]
    assert events == [SSEEvent(data="héllo wörld €")]


def test_pending_reports_an_unterminated_event() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: partial\n")
    assert dec.pending
    dec.feed(b"\n")
    assert not dec.pending


def test_openai_style_stream() -> None:
    raw = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'
    assert [e.data for e in decode_all(raw)] == ['{"a":1}', '{"a":2}', "[DONE]"]


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=20,
)
_event = st.tuples(
    st.one_of(st.none(), st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
    st.lists(_text, min_size=1, max_size=4),
    st.one_of(st.none(), st.from_regex(r"[0-9a-z]{1,6}", fullmatch=True)),
)


def _serialize(events: list[tuple[str | None, list[str], str | None]], eol: bytes) -> bytes:
    out = b""
    for name, lines, ident in events:
        out += b": comment" + eol
        if name:
            out += b"event: " + name.encode() + eol
        if ident:
            out += b"id: " + ident.encode() + eol
        for line in lines:
            out += b"data: " + line.encode() + eol
        out += eol
    return out


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(_event, max_size=6),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_chunking_gives_the_same_events(
    events: list[tuple[str | None, list[str], str | None]], eol: bytes, cuts: list[int]
) -> None:
    raw = _serialize(events, eol)
    whole = SSEDecoder().feed(raw)
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    dec = SSEDecoder()
    pieces = [ev for a, b in itertools.pairwise(points) for ev in dec.feed(raw[a:b])]
    assert pieces == whole
    assert [(e.event, e.data) for e in whole] == [
        (name or "message", "\n".join(lines)) for name, lines, _ in events
    ]
    last_id = None
    for ev, (_, _, ident) in zip(whole, events, strict=True):
        last_id = ident or last_id
        assert ev.id == last_id
