"""JSON Schemas of the WebSocket wire messages, generated from pydantic models.

The WebSocket sink sends one JSON object per message. Most are events from
:mod:`dspex.events` (``event.to_wire()``); the rest are the sink's own control
messages, modelled here: ``hello`` (first message on every connection),
``record`` (a final record written to the sink), ``dropped`` (this client fell
behind and lost ``count`` token or detail messages), ``replay_begin`` /
``replay_end`` (around replayed final results), ``pong`` and ``error``; a
remote server may answer the ``websocket_client`` sink with ``ack``. Clients may
send ``replay`` and ``ping``. :func:`wire_schema` builds one schema per message
type; ``python -m dspex.events_schema [PATH]`` writes it (the shipped copy is
``docs/events.schema.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import events as ev

__all__ = [
    "Ack",
    "ClientPing",
    "ClientReplay",
    "Dropped",
    "ErrorMessage",
    "Hello",
    "Pong",
    "Record",
    "ReplayBegin",
    "ReplayEnd",
    "main",
    "wire_schema",
]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class Hello(_Wire):
    """First server message: who is talking and how much can be replayed."""

    type: Literal["hello"] = "hello"
    server: str = "dspex"
    version: str
    protocol: int = 1
    replay_available: int = 0


class Record(_Wire):
    """A final record the flow wrote to the sink (input fields plus outputs)."""

    type: Literal["record"] = "record"
    data: dict[str, Any]
    item_id: str | None = None
    push_id: int | None = None


class Dropped(_Wire):
    """This client fell behind: ``count`` token/detail messages were skipped."""

    type: Literal["dropped"] = "dropped"
    count: int
    total: int


class ReplayBegin(_Wire):
    """``count`` replayed final results follow."""

    type: Literal["replay_begin"] = "replay_begin"
    count: int


class ReplayEnd(_Wire):
    """The replayed final results are over; live messages follow."""

    type: Literal["replay_end"] = "replay_end"
    count: int


class Pong(_Wire):
    """Answer to a client ``ping`` (echoes its ``id`` if given)."""

    type: Literal["pong"] = "pong"
    id: Any = None


class ErrorMessage(_Wire):
    """The server could not understand a client message."""

    type: Literal["error"] = "error"
    message: str


class Ack(_Wire):
    """A receiving server confirms every pushed message up to ``push_id``."""

    type: Literal["ack"] = "ack"
    push_id: int


class ClientReplay(_Wire):
    """Client request: send me the last ``last`` final results."""

    type: Literal["replay"] = "replay"
    last: int = Field(default=100, ge=0)


class ClientPing(_Wire):
    """Client request: answer with ``pong`` (application-level keep-alive)."""

    type: Literal["ping"] = "ping"
    id: Any = None


_EVENTS: tuple[type[BaseModel], ...] = (
    ev.TokenDelta,
    ev.FieldDelta,
    ev.FieldDone,
    ev.ToolCall,
    ev.ToolResult,
    ev.Retry,
    ev.ValidationFailed,
    ev.Usage,
    ev.PredictionDone,
    ev.ItemError,
    ev.Metrics,
    ev.RunDone,
)
_SERVER: tuple[type[BaseModel], ...] = (Hello, Record, Dropped, ReplayBegin, ReplayEnd, Pong, ErrorMessage)
_CLIENT: tuple[type[BaseModel], ...] = (ClientReplay, ClientPing)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    required = schema.setdefault("required", [])
    if "type" not in required:
        required.insert(0, "type")
    return schema


def wire_schema() -> dict[str, Any]:
    """Return a JSON Schema (2020-12) with one definition per wire message type.

    ``$defs`` maps each ``type`` value (``"token_delta"``, ``"hello"``, ...)
    to its schema; ``server_messages`` and ``client_messages`` list which side
    sends which; the top level accepts any server message.
    """
    every: tuple[type[BaseModel], ...] = (*_EVENTS, *_SERVER, *_CLIENT, Ack)
    models = {m.model_fields["type"].default: m for m in every}
    defs = {name: _schema(model) for name, model in models.items()}
    server = [m.model_fields["type"].default for m in (*_EVENTS, *_SERVER)]
    client = [m.model_fields["type"].default for m in _CLIENT]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dspex.dev/schemas/events.schema.json",
        "title": "dspex WebSocket wire messages",
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in server],
        "server_messages": server,
        "client_messages": client,
        "push_replies": ["ack"],
        "$defs": defs,
    }


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the path in ``argv`` (or stdout); return 0."""
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(wire_schema(), indent=2, sort_keys=False) + "\n"
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
