"""dspex against a real OpenAI-compatible server and a real (tiny) model.

Protocol behaviour only, never answer quality: no transport or server errors,
every item either parsed or a typed ParseError, usage counted, structured
output negotiated, deltas arriving before the end.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from _poll import wait_until

import dspex as dx
from dspex.errors import LMError, ParseError
from dspex.events import FieldDelta, PredictionDone, TokenDelta
from dspex.flows import Flow
from dspex.sinks import collect
from dspex.sinks._ws_sink import websocket
from dspex.sources import iterable

pytestmark = pytest.mark.real_lm

QUESTIONS = [f"What is {i} + {i + 1}?" for i in range(50)]


async def parsed_or_typed(module: Any, lm: Any, question: str) -> dx.Prediction | None:
    """Return the prediction, or None for a typed ParseError; any LMError fails the test."""
    try:
        prediction: dx.Prediction = await module.acall(question=question, lm=lm)
    except ParseError as err:
        if err.raw is None:  # a dead letter keeps the raw completion
            raise AssertionError(f"a ParseError without its raw completion: {err!r}") from err
        return None
    return prediction


async def test_plain_call_and_stream_report_usage(real_lm: Any) -> None:
    response = await real_lm.acall("Say hello.")
    assert response.outputs
    assert response.usage.output_tokens > 0
    chunks = [c async for c in real_lm.stream("Say hello.")]
    assert chunks[-1].done
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens > 0
    assert sum(1 for c in chunks if c.text) >= 2  # text arrives in several deltas


@pytest.mark.parametrize("module", ["predict", "cot"])
async def test_predict_and_chain_of_thought(real_lm: Any, module: str) -> None:
    program = dx.Predict("question -> answer") if module == "predict" else dx.ChainOfThought("question -> answer")
    results = [await parsed_or_typed(program, real_lm, q) for q in QUESTIONS[:3]]
    assert len(results) == 3
    for entry in real_lm.history:
        assert entry["usage"]["output_tokens"] > 0


async def test_json_adapter_negotiates_structured_output(real_lm: Any) -> None:
    with dx.context(adapter=dx.JSONAdapter()):
        for q in QUESTIONS[:2]:
            await parsed_or_typed(dx.Predict("question -> answer"), real_lm, q)
    rungs = {e["structured_output"] for e in real_lm.history}
    assert rungs <= {"json_schema", "json_object", "prompt"}
    assert rungs
    # llama-cpp-python refuses json_schema (a 500): negotiated once, remembered, never retried
    assert real_lm.endpoint.retries == 0
    assert real_lm.capabilities["structured_output"] in ("json_schema", "json_object", "prompt")


async def test_streamed_predict_sends_deltas_before_the_end(real_lm: Any) -> None:
    kinds: list[type] = []
    with dx.context(lm=real_lm):
        try:
            async for event in dx.ChainOfThought("question -> answer").stream(question=QUESTIONS[0]):
                kinds.append(type(event))  # noqa: PERF401 (the events before a ParseError are kept)
        except ParseError:
            kinds.append(ParseError)  # a typed parse failure after the deltas is allowed
    assert kinds[-1] in (PredictionDone, ParseError)
    assert TokenDelta in kinds
    assert FieldDelta in kinds
    assert kinds.index(TokenDelta) < len(kinds) - 1
    assert kinds.index(FieldDelta) < len(kinds) - 1


class _ChatOnly(dx.ChatAdapter):
    """ChatAdapter without the JSON fallback: one request per item keeps the tier fast."""

    fallback = None


@pytest.mark.timeout(300)
async def test_flow_of_50_items_at_concurrency_4(real_lm: Any) -> None:
    out = collect()
    flow = Flow("real-50")
    records = [{"id": f"q{i}", "question": q} for i, q in enumerate(QUESTIONS)]
    flow.source(iterable(records)).map(dx.Predict("question -> answer"), concurrency=4,
                                       on_error="dead_letter").sink(out)
    # the JSON fallback (grammar-constrained sampling, ~10 s a call here) is covered above
    with dx.context(adapter=_ChatOnly(), parse_retries=0):
        # a 135M model often misses the format: parse failures are allowed, never other errors
        lm = real_lm.copy(max_tokens=32)
        report = await flow.run(lm=lm, progress=False, max_failure_rate=1.0)
    assert report.items_in == 50
    assert report.status == "completed"
    assert report.items_out + report.items_failed == 50
    for letter in report.dead_letters:  # only parse failures, typed, never LM errors
        assert isinstance(letter.error, ParseError), letter.error
        assert not isinstance(letter.error, LMError), letter.error
    assert len(lm.history) == 50  # one request per item, each with its usage counted
    assert all(entry["usage"]["output_tokens"] > 0 for entry in lm.history)


async def test_websocket_sink_streams_real_tokens(real_lm: Any, anyio_backend: str) -> None:
    connect: Any  # the two backends' clients: the same interface, two classes
    if anyio_backend == "asyncio":
        from websockets.asyncio.client import connect
    else:
        from websockets.trio.client import connect
    sink = websocket(metrics_interval=0.1)
    out = collect()
    messages: list[dict[str, Any]] = []

    async def watch() -> None:
        await sink.started.wait()
        async with connect(sink.url) as conn:
            messages.extend([json.loads(m) async for m in conn])

    async def records() -> Any:
        await wait_until(lambda: sink.server.sessions, limit_s=30)
        for i, q in enumerate(QUESTIONS[:3]):
            yield {"id": f"q{i}", "question": q}

    flow = Flow("real-ws")
    flow.source(iterable(records())).map(dx.Predict("question -> answer"), concurrency=2,
                                         on_error="dead_letter").sink(out, sink)
    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            report = await flow.run(lm=real_lm, progress=False)
    assert report.items_out + report.items_failed == 3
    kinds = [m["type"] for m in messages]
    assert "token_delta" in kinds, sorted(set(kinds))
    assert "field_delta" in kinds, sorted(set(kinds))
    assert "run_done" in kinds
    first_delta = next(i for i, k in enumerate(kinds) if k in ("token_delta", "field_delta"))
    assert first_delta < kinds.index("run_done")
