"""Griffe extension for the docs build: render ``Example:`` sections as examples.

STYLE.md writes doctests under ``Example:`` (as trio and DSPy do), but griffe's
Google parser only treats ``Examples:`` as an examples section, so ``>>>`` lines
under ``Example:`` would render as Markdown prose (and ``[...]`` doctest output
would be read as a cross-reference). Loaded by mkdocs.yml; docstrings unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` headings to ``Examples:`` before docstrings are parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: ARG002
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
