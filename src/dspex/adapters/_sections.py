"""The ``[[ ## name ## ]]`` section grammar shared by ChatAdapter and its incremental parser.

A line whose stripped text starts with a marker opens a section named by the
marker; :data:`HEADER` is the marker pattern and :func:`split_sections` cuts a
whole completion into ``(name, text)`` pairs the way DSPy 3.4.1 does. The
streaming parser (``_incremental``) applies the same grammar chunk by chunk,
so both read it from here rather than from each other.
"""

from __future__ import annotations

import re

__all__ = ["HEADER", "split_sections"]

HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]")


def split_sections(completion: str) -> list[tuple[str | None, str]]:
    """Return ``[(header, text)]``; the first entry (header None) is the preamble.

    Mirrors DSPy: a line whose stripped text starts with a marker opens a
    section, the rest of that line (from the marker's end, counted in the
    stripped line but sliced from the original one) is its first line, and
    each section's lines are joined with ``\\n`` and stripped.
    """
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    lines = sections[-1][1]
    for line in completion.splitlines():
        if "[[ ## " in line:  # only such lines can open a section
            match = HEADER.match(line.strip())
            if match:
                rest = line[match.end() :].strip()
                lines = [rest] if rest else []
                sections.append((match.group(1), lines))
                continue
        lines.append(line)
    return [(name, "\n".join(lines).strip()) for name, lines in sections]
