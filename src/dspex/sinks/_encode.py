"""Turn records into JSON text for file sinks, whatever values they hold.

Records reaching a sink may hold pydantic models, predictions, datetimes, sets,
paths, enums, bytes or dataclasses. :func:`to_plain` maps such a value to plain
JSON data; :func:`encode_jsonl` encodes a whole batch into UTF-8 JSON lines and
raises :class:`~dspex.errors.SinkError` naming the field when a value cannot be
encoded.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from json import encoder as _json_encoder
from pathlib import PurePath
from typing import Any

from ..errors import SinkError

__all__ = ["dumps", "encode_jsonl", "to_plain"]


def to_plain(value: Any) -> Any:
    """Return JSON-ready data for one non-JSON value, or raise ``TypeError``."""
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return model_dump(mode="json")
    to_dict = getattr(value, "toDict", None)
    if callable(to_dict) and not isinstance(value, type):
        return to_dict()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | PurePath | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(data).decode("ascii")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=to_plain)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, default=to_plain)


def dumps(value: Any) -> str:
    """Encode one value as JSON text (non-ASCII kept as is)."""
    return _ENCODER.encode(value)


def _record_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """Return ``value -> JSON text`` with ``encoder``'s settings, minus its per-call set-up.

    ``JSONEncoder.encode`` builds a new C encoder for every value; building it
    once per batch makes each record one C call (about 2x faster, same text).
    Not reused across batches: after an error the C encoder may keep stale
    circular-reference markers.
    """
    make = _json_encoder.c_make_encoder
    if make is None or encoder.indent is not None:
        return encoder.encode
    quote = (_json_encoder.encode_basestring_ascii if encoder.ensure_ascii
             else _json_encoder.encode_basestring)
    chunks = make(
        {} if encoder.check_circular else None, encoder.default, quote, None,
        encoder.key_separator, encoder.item_separator, encoder.sort_keys, encoder.skipkeys,
        encoder.allow_nan,
    )
    join = "".join
    return lambda value: join(chunks(value, 0))


def _blame(record: Mapping[str, Any], sink: str, exc: Exception) -> SinkError:
    if isinstance(record, Mapping):
        for key, value in record.items():
            try:
                _ENCODER.encode(value)
            except (TypeError, ValueError) as inner:
                return SinkError(
                    f"{sink}: field {key!r} cannot be written as JSON ({inner}); expected "
                    "JSON data, a pydantic model, datetime, set, enum, path or dataclass",
                    field=str(key), path=sink,
                )
    return SinkError(
        f"{sink}: record cannot be written as JSON ({exc}); expected a mapping of JSON data",
        path=sink,
    )


def encode_jsonl(records: Sequence[Mapping[str, Any]], *, sink: str) -> bytes:
    """Encode a batch as UTF-8 JSON lines, each ending with ``\\n``.

    Raises:
        SinkError: A value cannot be encoded; ``field`` names it.
    """
    parts = []
    encode = _record_encoder(_ENCODER)
    for record in records:
        try:
            parts.append(encode(record))
        except (TypeError, ValueError, RecursionError) as exc:
            raise _blame(record, sink, exc) from exc
    parts.append("")
    text = "\n".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them, keep valid UTF-8
        return "".join(_ASCII_ENCODER.encode(r) + "\n" for r in records).encode("ascii")
