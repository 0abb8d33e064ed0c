"""Adapter.acomplete: one LM call, parsed; streamed through the incremental parser when listened to."""

from __future__ import annotations

from typing import Any

import dspex as dx
from dspex.adapters import ChatAdapter, JSONAdapter
from dspex.adapters._exchange import Live
from dspex.events import Event, FieldDelta, FieldDone, Retry, TokenDelta, Usage
from dspex.testing import ScriptedLM

SIG = dx.Signature("question -> answer, score: int")
ANSWER = {"answer": "Paris is the capital.", "score": 7}


class Sink:
    """Collects what an exchange sends, with the predictor stamp it asked for."""

    def __init__(self) -> None:
        self.events: list[tuple[Event, str | None]] = []

    async def emit(self, event: Event, predictor: str | None = None) -> None:
        self.events.append((event, predictor))

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e, _ in self.events if isinstance(e, kind)]


async def _exchange(adapter: ChatAdapter, lm: Any, live: Live | None, **config: Any) -> Any:
    prepared = adapter.prepare(SIG)
    messages = adapter.request(prepared, [], {"question": "Capital of France?"})
    return await adapter.acomplete(lm, prepared, messages, adapter.request_params(prepared, lm, config), live)


async def test_an_unlistened_exchange_is_one_call_parsed() -> None:
    lm = ScriptedLM([ANSWER])
    done = await _exchange(ChatAdapter(), lm, None)
    assert done.error is None
    assert done.values == [ANSWER]
    assert done.raws[0].startswith("[[ ## answer ## ]]")
    assert lm.calls == 1


async def test_a_parse_failure_is_returned_not_raised() -> None:
    done = await _exchange(ChatAdapter(), ScriptedLM(["no markers here"]), None)
    assert done.values == []
    assert done.raws == ["no markers here"]
    assert done.error is not None
    assert done.error.raw == "no markers here"


async def test_a_listened_exchange_streams_the_same_values_field_by_field() -> None:
    sink = Sink()
    live = Live(sink, "qa", ScriptedLM())
    done = await _exchange(ChatAdapter(), ScriptedLM([ANSWER]), live)
    assert done.values == [ANSWER]
    assert "".join(t.text for t in sink.of(TokenDelta)) == done.raws[0]
    streamed = "".join(d.text for d in sink.of(FieldDelta) if d.field == "answer")
    assert streamed == ANSWER["answer"]
    assert {d.field: d.value for d in sink.of(FieldDone)} == ANSWER
    assert len(sink.of(Usage)) == 1
    assert {p for e, p in sink.events if not isinstance(e, Usage)} == {"qa"}  # Usage goes unstamped


async def test_json_streams_through_its_own_parser() -> None:
    sink = Sink()
    done = await _exchange(JSONAdapter(), ScriptedLM([ANSWER], adapter="json"), Live(sink, None, None))
    assert done.values == [ANSWER]
    assert "".join(d.text for d in sink.of(FieldDelta) if d.field == "answer") == ANSWER["answer"]


async def test_several_completions_come_whole_and_the_first_is_announced() -> None:
    sink = Sink()
    second = {"answer": "Lyon", "score": 1}
    done = await _exchange(ChatAdapter(), ScriptedLM([ANSWER, second]), Live(sink, "qa", None), n=2)
    assert done.values == [ANSWER, second]
    assert sink.of(TokenDelta) == []
    assert {d.field: d.value for d in sink.of(FieldDone)} == ANSWER


async def test_retries_of_one_call_are_numbered_in_order() -> None:
    sink = Sink()
    live = Live(sink, "qa", None)
    await live.retry("parse error: first")
    await live.retry("falling back")
    assert [(r.attempt, r.reason) for r in sink.of(Retry)] == [(1, "parse error: first"), (2, "falling back")]
