"""Griffe extension for the docs build: Sphinx habits in docstrings, rendered as Markdown.

STYLE.md writes doctests under ``Example:`` (as trio and DSPy do), but griffe's
Google parser only treats ``Examples:`` as an examples section, so ``>>>`` lines
under ``Example:`` would render as Markdown prose (and ``[...]`` doctest output
would be read as a cross-reference). Docstrings also use Sphinx roles
(``:class:`~dspex.x.Y```), which Markdown would print verbatim; they become code
spans with the name as written (the last part after a ``~``). Loaded by
mkdocs.yml; the docstrings in the source are unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` headings to ``Examples:`` and turn Sphinx roles into code spans."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(_role, value)
