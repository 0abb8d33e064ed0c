"""The event vocabulary: wire names, JSON round trips, immutability."""

from __future__ import annotations

import json

import pydantic
import pytest

from dspex import events as ev

SAMPLES = [
    ev.TokenDelta(text="Par", run="r1", node="map-1", item_id="7", seq=1),
    ev.FieldDelta(field="answer", text="Par"),
    ev.FieldDone(field="answer", value=0.8),
    ev.ToolCall(name="search", args={"q": "x"}),
    ev.ToolResult(name="search", result=["a"], error=None),
    ev.Retry(attempt=1, reason="429", delay_s=0.5),
    ev.ValidationFailed(message="too long", field="answer", attempt=2),
    ev.Usage(model="m", input_tokens=3, output_tokens=4),
    ev.PredictionDone(outputs={"answer": "Paris"}, item_id="7"),
    ev.ItemError(error_type="ParseError", message="bad"),
    ev.Metrics(values={"items_per_s": 10.0}),
    ev.RunDone(report={"items_in": 1}),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_wire_round_trip(event: ev.Event) -> None:
    wire = json.loads(json.dumps(event.to_wire()))
    assert wire["type"] == event.type
    back = ev.event_from_wire(wire)
    assert type(back) is type(event)
    assert back.to_wire() == event.to_wire()


def test_wire_names_are_snake_case() -> None:
    assert [e.type for e in SAMPLES] == [
        "token_delta", "field_delta", "field_done", "tool_call", "tool_result", "retry",
        "validation_failed", "usage", "prediction_done", "item_error", "metrics", "run_done",
    ]


def test_prediction_done_carries_outputs_and_item_id_but_not_the_object() -> None:
    done = ev.PredictionDone(outputs={"answer": "Paris"}, item_id="q1", prediction=object())
    wire = done.to_wire()
    assert wire["outputs"] == {"answer": "Paris"}
    assert wire["item_id"] == "q1"
    assert "prediction" not in wire


def test_events_are_frozen_and_stamped_by_copy() -> None:
    delta = ev.FieldDelta(field="a", text="x")
    with pytest.raises(pydantic.ValidationError):
        delta.text = "y"
    stamped = delta.model_copy(update={"node": "map-1", "seq": 3})
    assert (stamped.node, stamped.seq, delta.node) == ("map-1", 3, None)


def test_unknown_wire_type_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        ev.event_from_wire({"type": "nope"})
