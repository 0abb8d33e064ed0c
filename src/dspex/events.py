"""The event vocabulary: what modules and flows emit while they run.

Every event is a frozen pydantic model with a ``type`` (the snake_case wire
name), the ``run`` and ``node`` it came from, the ``item_id`` it concerns, and
a sequence number ``seq``. On the wire an event is one JSON object
(:meth:`Event.to_wire`); :func:`event_from_wire` reads one back.
``PredictionDone`` carries the output fields under ``outputs``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "AnyEvent",
    "Event",
    "FieldDelta",
    "FieldDone",
    "ItemError",
    "Metrics",
    "PredictionDone",
    "Retry",
    "RunDone",
    "TokenDelta",
    "ToolCall",
    "ToolResult",
    "Usage",
    "ValidationFailed",
    "event_from_wire",
]


class Event(BaseModel):
    """Base of every event: where it came from and its place in the stream."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    type: str
    run: str | None = None
    node: str | None = None
    item_id: str | None = None
    seq: int = 0
    #: The item's OpenTelemetry trace id (32 hex digits) when the run is traced.
    trace_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """Return the JSON-ready dict sent over WebSocket and to event logs."""
        return self.model_dump(mode="json", exclude_none=True)


class TokenDelta(Event):
    """Raw text as the LM produced it, before it is split into fields."""

    type: Literal["token_delta"] = "token_delta"
    text: str
    predictor: str | None = None


class FieldDelta(Event):
    """More text for one output field, as soon as it is known to belong there."""

    type: Literal["field_delta"] = "field_delta"
    field: str
    text: str
    predictor: str | None = None


class FieldDone(Event):
    """One output field is complete; ``value`` is coerced to the field's type."""

    type: Literal["field_done"] = "field_done"
    field: str
    value: Any = None
    predictor: str | None = None


class ToolCall(Event):
    """A tool is about to be called with ``args`` (as the LM sent them)."""

    type: Literal["tool_call"] = "tool_call"
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    call_id: str | None = None


class ToolResult(Event):
    """A tool returned ``result`` (or failed, with ``error`` set) after ``duration_s``."""

    type: Literal["tool_result"] = "tool_result"
    name: str
    result: Any = None
    error: str | None = None
    call_id: str | None = None
    duration_s: float = 0.0


class Retry(Event):
    """A call is being retried; ``reason`` says why, ``attempt`` counts from 1.

    Client contract: a ``retry`` event means *discard the partial fields* of
    that item (of ``predictor``, when set): the retried attempt streams its
    token and field events again from the start, so text received before the
    ``retry`` must not be kept or concatenated. Sent when a streamed LM call is
    cut after its first token and restarted, and before a parse retry.
    """

    type: Literal["retry"] = "retry"
    attempt: int
    reason: str
    delay_s: float = 0.0
    predictor: str | None = None


class ValidationFailed(Event):
    """An output failed validation; ``message`` is fed back on retry."""

    type: Literal["validation_failed"] = "validation_failed"
    message: str
    field: str | None = None
    attempt: int = 0


class Usage(Event):
    """Tokens (and cost) spent by one LM call."""

    type: Literal["usage"] = "usage"
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cache_hit: bool = False


class PredictionDone(Event):
    """A module finished; ``outputs`` holds the fields, ``prediction`` the object."""

    type: Literal["prediction_done"] = "prediction_done"
    outputs: dict[str, Any] = Field(default_factory=dict)
    prediction: Any = Field(default=None, exclude=True)


class ItemError(Event):
    """An item failed in a node."""

    type: Literal["item_error"] = "item_error"
    error_type: str
    message: str


class Metrics(Event):
    """Periodic run metrics."""

    type: Literal["metrics"] = "metrics"
    values: dict[str, Any] = Field(default_factory=dict)


class RunDone(Event):
    """A run finished; ``report`` summarises it."""

    type: Literal["run_done"] = "run_done"
    report: dict[str, Any] = Field(default_factory=dict)


AnyEvent = Annotated[
    TokenDelta
    | FieldDelta
    | FieldDone
    | ToolCall
    | ToolResult
    | Retry
    | ValidationFailed
    | Usage
    | PredictionDone
    | ItemError
    | Metrics
    | RunDone,
    Field(discriminator="type"),
]
"""Any event, discriminated by ``type``: what ``event_from_wire`` returns."""

_WIRE: TypeAdapter[Any] | None = None


def event_from_wire(data: dict[str, Any]) -> Event:
    """Build the typed event for a wire dict (the inverse of ``to_wire``)."""
    global _WIRE
    if _WIRE is None:
        _WIRE = TypeAdapter(AnyEvent)
    event: Event = _WIRE.validate_python(data)
    return event
