"""The source contract: an async stream of :class:`SourceRecord` the engine pulls.

A :class:`Source` reads records from somewhere (an iterable, a file, stdin, a
socket) and yields them one at a time from :meth:`Source.records`, an async
generator the engine wraps in ``contextlib.aclosing`` and pulls from its source
task. Sources stream: they never load the whole input, and blocking reads go
through ``anyio.to_thread`` in batches. A bad record does not stop the stream:
it is yielded with ``error`` set (a :class:`~dspex.errors.SourceError` naming
the path and line) so that the engine sends it to the dead letters. A *keyed*
source (``id_field`` set) gives each record a ``key``; the engine passes a
``skip`` predicate built from the run store so that a resumed run does not see
records that were already done.

Keys are normalised with ``str()``: ``7`` and ``"7"`` are the same id. In a
run with a ``run_id`` the engine itself (not ``skip``) checks each key against
the run store's key index: a repeated id is a duplicate (dead-lettered as
``DuplicateKeyError``, or fatal with ``on_duplicate="raise"``), and a bad
record, which has no key, is committed under its *position key* —
``"@line:N"`` when its error names a line of the source's one file (``path``),
else ``"@pos:N"`` (its 1-based record number in the source) — so a resumed run
never dead-letters it twice. Sources must therefore yield the
same records in the same order on every pass for resume to be exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import SourceError

__all__ = ["SkipFn", "Source", "SourceRecord", "record_key"]

SkipFn = Callable[[str], bool]
"""A predicate over record keys: ``True`` means the record is done, do not yield it."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record read by a source.

    Attributes:
        data: The record, usually a dict. For a bad record: the raw text read.
        key: The record's id as a string (``str(record[id_field])``) for a
            keyed source, else ``None``.
        error: Set for a record that could not be read; the engine sends it
            to the dead letters. It names ``path`` and ``line`` when known.
    """

    data: Any
    key: str | None = None
    error: SourceError | None = None


class Source(ABC):
    """Base class of every source.

    Subclasses set :attr:`name` (e.g. ``"jsonl:questions.jsonl"``, used in
    errors and reports) and :attr:`id_field`, and implement :meth:`records`.

    Attributes:
        name: A short readable name for reports and errors.
        id_field: The field whose value is each record's key, or ``None`` for
            an unkeyed source. Only keyed sources can be resumed.
    """

    name: str = "source"
    id_field: str | None = None

    @abstractmethod
    def records(self, *, skip: SkipFn | None = None) -> AsyncIterator[SourceRecord]:
        """Yield the records one by one, streaming.

        The engine wraps the returned async generator in
        ``contextlib.aclosing`` and pulls it; it pauses the source by not
        pulling, so a source keeps at most one read chunk buffered. Closing
        the generator early releases files and threads promptly.

        Args:
            skip: Called with each record's key (keyed sources only); when it
                returns ``True`` the record is not yielded (resume). Records
                with an error are always yielded.

        Returns:
            An async iterator of :class:`SourceRecord`.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def record_key(data: Any, id_field: str) -> str:
    """Return ``str(data[id_field])`` for a mapping or ``str(data.id_field)``.

    Raises:
        KeyError: The record has no such field (or is not a mapping/object).
    """
    if isinstance(data, Mapping):
        value = data[id_field]
    else:
        try:
            value = getattr(data, id_field)
        except AttributeError:
            raise KeyError(id_field) from None
    if value is None:
        raise KeyError(id_field)
    return str(value)
