"""``python -m dspex.testing.server --help``: plain text, every flag documented."""

from __future__ import annotations

import re

import pytest

from dspex.testing.server import _parser


def test_help_is_plain_text_and_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    assert ":class:" not in text
    undocumented = [a.dest for a in parser._actions if not a.help]
    assert undocumented == []
    assert re.search(r"--p-429 P_429\s+probability to answer HTTP 429", text)
