"""Conformance kits for connectors: ``check_source`` and ``check_sink``.

Like trio's ``_check_streams.py``, each kit is an async function that drives a
connector through its whole contract and fails with an ``AssertionError`` that
says which rule broke. Every built-in source and sink passes them; authors of
new connectors call them from their own tests (on both anyio backends).
"""

from __future__ import annotations

import inspect
import json
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import SourceError
from ..sources._base import Source, SourceRecord

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ..sinks._base import Sink

__all__ = ["check_sink", "check_source", "sample_records"]


async def _read_all(source: Source, skip: Callable[[str], bool] | None = None) -> list[SourceRecord]:
    out = []
    async with aclosing(source.records(skip=skip)) as agen:  # type: ignore[type-var]
        async for record in agen:
            assert isinstance(record, SourceRecord), f"{source!r} yielded {type(record).__name__}"
            out.append(record)
    return out


async def check_source(
    source: Source | Callable[[], Source], *, expect: Sequence[Any] | None = None
) -> list[SourceRecord]:
    """Check a source against the :class:`Source` contract; return its records.

    Args:
        source: A re-readable source, or a factory returning a fresh source
            over the same input (for one-shot inputs such as generators).
        expect: If given, the good records' ``data`` must equal it, in order.

    Checked: ``name`` is a non-empty string; every item is a
    :class:`SourceRecord`; error records carry a ``SourceError`` and no key;
    a keyed source gives a ``str`` key to every good record and honours
    ``skip`` (skipping every other key yields exactly the rest); a second
    read yields the same records; closing after the first record is clean.
    """

    def make() -> Source:
        return source if isinstance(source, Source) else source()

    first = make()
    assert isinstance(first.name, str), f"{first!r}: name must be a str"
    assert first.name, f"{first!r}: name must not be empty"
    records = await _read_all(first)
    good = [r for r in records if r.error is None]
    for rec in records:
        if rec.error is not None:
            assert rec.key is None, f"{first!r}: error record with key {rec.key!r}"
            assert isinstance(rec.error, SourceError), f"{first!r}: {rec.error!r}"
        elif first.id_field is None:
            assert rec.key is None, f"{first!r}: unkeyed source gave key {rec.key!r}"
        else:
            assert isinstance(rec.key, str), f"{first!r}: keyed record without str key: {rec!r}"
    if expect is not None:
        got = [r.data for r in good]
        assert got == list(expect), f"{first!r}: records differ:\n{got!r}\n!=\n{list(expect)!r}"
    again = await _read_all(make())
    assert [(r.data, r.key) for r in again] == [(r.data, r.key) for r in records], (
        f"{first!r}: a second read gave different records"
    )
    if first.id_field is not None and good:
        keys = [r.key for r in good]
        skipped = set(keys[::2])
        rest = await _read_all(make(), skip=skipped.__contains__)
        assert [r.key for r in rest if r.error is None] == [k for k in keys if k not in skipped], (
            f"{first!r}: skip() not honoured"
        )
    if records:
        early = make().records()
        async with aclosing(early):  # type: ignore[type-var]
            async for _ in early:
                break
        with anyio.fail_after(5):  # closed promptly: a later read still works
            assert len(await _read_all(make())) == len(records)
    return records


def sample_records(n: int = 3, start: int = 0) -> list[dict[str, Any]]:
    """Return ``n`` records with string values that every sink can round-trip."""
    return [
        {"id": str(i), "text": f"héllo, \"world\" {i}\nsecond line"}
        for i in range(start, start + n)
    ]


async def _call(fn: Callable[[], Any]) -> Any:
    result = fn()
    return await result if inspect.isawaitable(result) else result


async def _check_read(read: Callable[[], Any] | None, want: list[dict[str, Any]], when: str) -> None:
    if read is None:
        return
    got = await _call(read)
    assert list(got) == want, f"after {when}: sink holds\n{list(got)!r}\nexpected\n{want!r}"


async def check_sink(
    sink_factory: Callable[[], Sink],
    *,
    read: Callable[[], Sequence[dict[str, Any]] | Awaitable[Sequence[dict[str, Any]]]] | None = None,
    tear: Callable[[], Any] | None = None,
    reopen: bool = True,
) -> None:
    """Check a sink against the :class:`Sink` contract.

    Args:
        sink_factory: Returns a sink over the same output each call (e.g. the
            same file path), initially empty.
        read: Returns what the output durably holds, as a list of records
            comparable to :func:`sample_records` (sync or async). Without it
            only the call sequence is checked.
        tear: Simulates a crash mid-write (e.g. appends half a record to the
            file); the kit then checks that reopening cuts it off.
        reopen: Whether a new sink from the factory continues the output
            (persistent sinks); ``False`` skips those steps.

    Checked: open/write/flush; empty batches; ``checkpoint()`` is JSON-able;
    ``restore(position)`` drops what came after (when the position is not
    ``None``); ``aclose`` flushes, is idempotent, and works inside a cancelled
    scope when shielded (as the engine calls it); a torn tail is repaired on
    open; a reopened sink appends after the existing output.
    """
    b1, b2, b3, b4, b5 = (sample_records(2, 10 * i) for i in range(5))
    sink = sink_factory()
    assert isinstance(sink.name, str), f"{sink!r}: name must be a str"
    assert sink.name, f"{sink!r}: name must not be empty"
    await sink.open()
    await sink.write(b1)
    await sink.write([])
    await sink.flush()
    await _check_read(read, b1, "write + flush")
    position = await sink.checkpoint()
    json.dumps(position)  # the run store keeps positions as JSON
    await sink.write(b2)
    await sink.flush()
    await _check_read(read, b1 + b2, "a second write")
    await sink.restore(position)
    kept = b1 if position is not None else b1 + b2
    await _check_read(read, kept, f"restore({position!r})")
    await sink.write(b3)
    await sink.aclose()
    await sink.aclose()  # idempotent
    kept = kept + b3
    await _check_read(read, kept, "aclose")
    if reopen:
        await _check_reopen(sink_factory, read, tear, kept, b4, b5)


async def _check_reopen(
    sink_factory: Callable[[], Sink], read: Callable[[], Any] | None,
    tear: Callable[[], Any] | None, kept: list[dict[str, Any]],
    b4: list[dict[str, Any]], b5: list[dict[str, Any]],
) -> None:
    if tear is not None:
        await _call(tear)
    sink = sink_factory()
    await sink.open()
    await _check_read(read, kept, "reopen" + (" after a torn write" if tear else ""))
    await sink.write(b4)
    with anyio.CancelScope() as scope:
        scope.cancel()
        with anyio.CancelScope(shield=True):
            await sink.aclose()  # the engine's shutdown path under cancellation
    kept = kept + b4
    await _check_read(read, kept, "a shielded aclose in a cancelled scope")
    sink = sink_factory()
    async with sink:
        await sink.write(b5)
    await _check_read(read, kept + b5, "async with")
