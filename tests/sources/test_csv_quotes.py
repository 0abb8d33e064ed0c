"""CSV: an unterminated quote is one bad record with its line span; later rows survive.

Regression for issue 12 (8): one open quote used to swallow every later row
into a single dead letter labelled with a misleading syntax error.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
from _source_reading import read
from hypothesis import given, settings
from hypothesis import strategies as st

from dspex import sources
from dspex.errors import ConfigError, SourceError
from dspex.sources._csv import CsvRows

if TYPE_CHECKING:
    from pathlib import Path

    from dspex.sources import SourceRecord

pytestmark = pytest.mark.reliability



def rows_of(text: str, **options: object) -> list[SourceRecord]:
    """Read ``text`` with CsvRows synchronously (no file, no event loop)."""
    settings_ = sources.CsvSource("mem.csv", batch_rows=7, **options)  # type: ignore[arg-type]
    reader = CsvRows(settings_, io.StringIO(text, newline=""))
    out: list[SourceRecord] = []
    while not reader.eof:
        out.extend(reader.next_batch())
    return out


async def test_open_quote_to_end_of_file_is_one_bad_record_and_later_rows_are_kept(
    tmp_path: Path,
) -> None:
    lines = ["id,q"] + [f"{i},row {i}" for i in range(1, 11)]
    lines[3] = '3,"never closed'
    p = tmp_path / "q.csv"
    p.write_text("\n".join(lines) + "\n")
    recs = await read(sources.csv(p, id_field="id"))
    assert [r.key for r in recs if r.error is None] == ["1", "2", "4", "5", "6", "7", "8", "9", "10"]
    (bad,) = [r for r in recs if r.error is not None]
    err = bad.error
    assert isinstance(err, SourceError)
    assert err.line == 4
    assert err.extra["end_line"] == 11
    assert err.field == "q"
    assert err.path == str(p)
    assert "unterminated quoted field in column 2 ('q')" in str(err)
    assert "the file ends first" in str(err)
    assert "resumes at line 5" in str(err)
    assert bad.data == '3,"never closed'


def test_open_quote_stopped_by_a_later_quote_is_reported_and_both_rows_resync() -> None:
    text = 'a,b\n1,"x\n2,y\n3,"z\n4,w\n'
    recs = rows_of(text)
    assert [r.data for r in recs if r.error is None] == [{"a": "2", "b": "y"}, {"a": "4", "b": "w"}]
    bad = [r.error for r in recs if r.error is not None]
    assert [(e.line, e.extra["end_line"]) for e in bad] == [(2, 4), (4, 5)]
    assert "the CSV breaks first" in str(bad[0])
    assert "the file ends first" in str(bad[1])


def test_a_quoted_field_may_span_at_most_max_field_lines() -> None:
    legit = 'a,b\n1,"one\ntwo\nthree"\n2,ok\n'
    assert [r.data for r in rows_of(legit, max_field_lines=3)] == [
        {"a": "1", "b": "one\ntwo\nthree"}, {"a": "2", "b": "ok"},
    ]
    recs = rows_of(legit, max_field_lines=2)
    bad = [r.error for r in recs if r.error is not None]
    assert bad[0].line == 2
    assert bad[0].extra["end_line"] == 4
    assert "span over 2 lines" in str(bad[0])
    # reading resumed on line 3: the field's own lines are read as rows
    assert {"a": "2", "b": "ok"} in [r.data for r in recs if r.error is None]


def test_non_strict_reader_still_reports_an_open_quote_at_the_end() -> None:
    recs = rows_of('a,b\n1,"x\n2,y\n', strict=False)
    assert [r.data for r in recs if r.error is None] == [{"a": "2", "b": "y"}]
    (bad,) = [r.error for r in recs if r.error is not None]
    assert bad.line == 2
    assert bad.extra["end_line"] == 3


def test_an_open_quote_on_the_last_line_spans_that_line_only() -> None:
    recs = rows_of('a,b\n1,x\n2,"y')
    assert [r.data for r in recs if r.error is None] == [{"a": "1", "b": "x"}]
    (bad,) = [r.error for r in recs if r.error is not None]
    assert (bad.line, bad.extra["end_line"]) == (3, 3)


def test_max_field_lines_is_validated() -> None:
    with pytest.raises(ConfigError, match="max_field_lines must be an int >= 1"):
        sources.csv("x.csv", max_field_lines=0)


_values = st.text(alphabet="abcxyz019 ", min_size=1, max_size=6)


@st.composite
def _csv_with_open_quotes(draw: st.DrawFn) -> tuple[str, list[dict[str, str]], list[tuple[int, str]]]:
    ncols = draw(st.integers(1, 4))
    header = [f"c{i}" for i in range(ncols)]
    nrows = draw(st.integers(0, 30))
    rows = [draw(st.lists(_values, min_size=ncols, max_size=ncols)) for _ in range(nrows)]
    bad_rows = draw(st.sets(st.integers(0, max(0, nrows - 1)), max_size=nrows))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    clean: list[dict[str, str]] = []
    bad: list[tuple[int, str]] = []
    for i, row in enumerate(rows):
        if i in bad_rows:
            col = draw(st.integers(0, ncols - 1))
            row[col] = '"' + row[col]  # opened, never closed
            bad.append((i + 2, header[col]))  # line numbers: the header is line 1
        else:
            clean.append(dict(zip(header, row, strict=True)))
    text = eol.join([",".join(header), *(",".join(r) for r in rows)]) + eol
    return text, clean, bad


@settings(max_examples=150, deadline=None)
@given(case=_csv_with_open_quotes(), max_lines=st.integers(1, 40))
def test_every_open_quote_is_one_bad_record_and_no_clean_row_is_lost(
    case: tuple[str, list[dict[str, str]], list[tuple[int, str]]], max_lines: int
) -> None:
    text, clean, bad = case
    recs = rows_of(text, max_field_lines=max_lines)
    assert [r.data for r in recs if r.error is None] == clean
    errors = [r.error for r in recs if r.error is not None]
    assert [(e.line, e.field) for e in errors] == bad
    assert all("unterminated quoted field" in str(e) for e in errors)
    assert all(e.line <= e.extra["end_line"] < e.line + max_lines + 1 for e in errors)
