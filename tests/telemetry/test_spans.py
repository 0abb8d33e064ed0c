"""OpenTelemetry spans: run → node → item → module → LM call, with GenAI attributes.

A ChainOfThought flow runs against the loopback fake LM server with the
SDK's in-memory exporter passed as the run's tracer provider (both
backends); the exported spans must form the documented tree, carry the
GenAI attributes, and the item's trace id must reach the event-aware sink.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import dspex as dx
from dspex.flows import Flow
from dspex.sinks import Sink, collect
from dspex.telemetry._spans import resolve
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

N = 3


class EventKeeper(Sink):
    """An event-aware sink that keeps every event it is given."""

    wants_events = True

    def __init__(self) -> None:
        self.name = "events"
        self.events: list[Any] = []

    async def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        return None

    async def write_event(self, event: Any) -> None:
        self.events.append(event)

    async def flush(self) -> None:
        return None


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _lm(server: FakeLLMServer) -> dx.LM:
    return dx.LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-otel-test-0000", cache=False)


def _attrs(span: Any) -> dict[str, Any]:
    """A span's or a metric point's attributes (OpenTelemetry types them optional)."""
    return dict(span.attributes or {})


def _parent(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return by_id.get(span.parent.span_id) if span.parent is not None else None


def _parent_name(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str:
    parent = _parent(span, by_id)
    assert parent is not None, f"{span.name} has no parent"
    return parent.name


def _times(span: ReadableSpan) -> tuple[int, int]:
    """A finished span's start and end (OpenTelemetry types them optional)."""
    assert span.start_time is not None
    assert span.end_time is not None
    return span.start_time, span.end_time


def _metrics(reader: InMemoryMetricReader) -> MetricsData:
    data = reader.get_metrics_data()
    assert data is not None, "no metrics were recorded"
    return data


async def _run_cot_flow(provider: TracerProvider, **settings: Any) -> tuple[Any, EventKeeper, list[Any]]:
    keeper, out = EventKeeper(), collect()
    flow = Flow("qa")
    flow.source([{"question": f"What is {i} + {i}?"} for i in range(N)]).map(
        dx.ChainOfThought("question -> answer"), concurrency=2, name="cot"
    ).sink(out, keeper)
    async with FakeLLMServer() as server:
        lm = _lm(server)
        report = await flow.run(progress=False, lm=lm, tracer_provider=provider, **settings)
        await lm.aclose()
    return report, keeper, out.items


async def test_chain_of_thought_flow_span_tree_and_genai_attributes() -> None:
    provider, exporter = _provider()
    report, keeper, items = await _run_cot_flow(provider)
    assert report.items_out == N
    assert len(items) == N
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    runs = [s for s in spans if s.name == "flow qa"]
    assert len(runs) == 1
    run = runs[0]
    assert run.parent is None
    assert _attrs(run)["dspex.flow.name"] == "qa"
    assert _attrs(run)["dspex.run.id"] == report.run_id
    assert _attrs(run)["dspex.status"] == "completed"
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}  # one trace per run

    node = next(s for s in spans if s.name == "node cot")
    assert _parent(node, by_id) is run
    assert _attrs(node)["dspex.node.kind"] == "map"
    item_spans = [s for s in spans if s.name == "item cot"]
    assert sorted(_attrs(s)["dspex.item.id"] for s in item_spans) == [str(i) for i in range(1, N + 1)]
    assert all(_parent(s, by_id) is node for s in item_spans)

    cot = [s for s in spans if s.name == "module ChainOfThought"]
    predict = [s for s in spans if s.name == "module Predict"]
    chat = [s for s in spans if s.name == "chat fake-model"]
    assert len(cot) == len(predict) == len(chat) == N
    assert all(_parent(s, by_id) in item_spans for s in cot)
    assert all(_parent(s, by_id) in cot for s in predict)
    assert all(_parent(s, by_id) in predict for s in chat)
    for span in chat:
        attrs = _attrs(span)
        assert span.kind is SpanKind.CLIENT
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == "fake-model"
        assert attrs["gen_ai.response.model"] == "fake-model"
        assert attrs["gen_ai.usage.input_tokens"] > 0
        assert attrs["gen_ai.usage.output_tokens"] > 0
        assert "gen_ai.input.messages" not in attrs
        assert "gen_ai.output.messages" not in attrs
    # every span of an item's subtree ends inside its parent
    for span in spans:
        parent = _parent(span, by_id)
        if parent is not None:
            assert _times(parent)[0] <= _times(span)[0]
            assert _times(span)[1] <= _times(parent)[1]

    # the item's trace id rides on its events (the event-aware sink streams the module)
    item_events = [e for e in keeper.events if e.item_id is not None]
    assert item_events
    assert {e.trace_id for e in item_events} == {f"{run.context.trace_id:032x}"}
    assert all(e.to_wire()["trace_id"] == e.trace_id for e in item_events)


async def test_content_is_captured_only_when_asked() -> None:
    provider, exporter = _provider()
    await _run_cot_flow(provider, capture_content=True)
    chat = [s for s in exporter.get_finished_spans() if s.name == "chat fake-model"]
    assert len(chat) == N
    for span in chat:
        assert "What is" in _attrs(span)["gen_ai.input.messages"]
        assert "[[ ## answer ## ]]" in _attrs(span)["gen_ai.output.messages"]


async def test_failed_lm_call_marks_its_spans_with_error_type() -> None:
    provider, exporter = _provider()
    predict = dx.Predict("question -> answer")
    async with FakeLLMServer(require_api_key="sk-the-right-key-000") as server:
        lm = dx.LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-wrong-key-0000000",
                   cache=False, retry=dx.RetryPolicy(max_retries=0))
        with dx.context(tracer_provider=provider), pytest.raises(dx.errors.AuthError):
            await predict.acall(question="hi", lm=lm)
        await lm.aclose()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert _attrs(spans["chat fake-model"])["error.type"] == "AuthError"
    assert spans["chat fake-model"].status.status_code is StatusCode.ERROR
    assert _attrs(spans["module Predict"])["error.type"] == "AuthError"


async def test_no_sdk_provider_means_no_telemetry() -> None:
    # OpenTelemetry's global provider is the API's proxy until an SDK one is set:
    # nothing listens, so the hooks see None and do no span work.
    assert resolve() is None
    lm = dx.LM("openai/fake-model", api_base="http://127.0.0.1:9/v1", api_key="sk-unused-0000000")
    from dspex.telemetry._observe import observed_lm

    assert observed_lm(lm) is lm


async def test_explicit_provider_wins_and_metrics_are_recorded() -> None:
    provider, _ = _provider()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    report, _, _ = await _run_cot_flow(provider, meter_provider=meters)
    assert report.items_out == N
    data = _metrics(reader)
    points: dict[str, list[Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    durations = points["gen_ai.client.operation.duration"]
    assert sum(p.count for p in durations) == N
    tokens = points["gen_ai.client.token.usage"]
    assert {_attrs(p)["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    assert sum(p.count for p in points["dspex.item.duration"]) == N
    items = {_attrs(p)["dspex.status"]: p.value for p in points["dspex.items"]}
    assert items["read"] == N
    assert items["done"] == N
    assert {_attrs(p)["dspex.flow.name"] for p in points["dspex.in_flight"]} == {"qa"}
    assert "cot" in {_attrs(p).get("dspex.node.name") for p in points["dspex.queue.depth"]}
    meters.shutdown()


async def test_react_tool_calls_are_execute_tool_spans() -> None:
    from dspex.testing import ScriptedLM

    provider, exporter = _provider()

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    react = dx.ReAct("question -> answer", tools=[add])
    lm = ScriptedLM([
        {"next_thought": "add", "next_tool_name": "add", "next_tool_args": {"a": 2, "b": 2}},
        {"next_thought": "bad", "next_tool_name": "add", "next_tool_args": {"a": "x"}},
        {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "2+2=4", "answer": "4"},
    ])
    with dx.context(tracer_provider=provider):
        assert (await react.acall(question="2+2?", lm=lm)).answer == "4"
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    tools = [s for s in spans if s.name == "execute_tool add"]
    assert len(tools) == 2
    assert all(_attrs(s)["gen_ai.operation.name"] == "execute_tool" for s in tools)
    assert all(_attrs(s)["gen_ai.tool.name"] == "add" for s in tools)
    assert all(_parent_name(s, by_id) == "module ReAct" for s in tools)
    ok, bad = sorted(tools, key=lambda s: _times(s)[0])
    assert "error.type" not in _attrs(ok)
    assert ok.status.status_code is not StatusCode.ERROR
    assert _attrs(bad)["error.type"] == "ToolError"
    assert bad.status.status_code is StatusCode.ERROR


async def test_trace_context_crosses_tasks_and_worker_threads() -> None:
    import anyio

    from dspex.testing import ScriptedLM

    provider, exporter = _provider()

    class Fanout(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = dx.Predict("question -> answer")
            self.b = dx.Predict("question -> answer")

        async def aforward(self, question: str) -> Any:
            async with anyio.create_task_group() as tg:  # each sub-call in its own task
                tg.start_soon(lambda: self.a.acall(question=question))
                tg.start_soon(lambda: self.b.acall(question=question))
            return dx.Prediction(answer="done")

    class SyncForward(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = dx.Predict("question -> answer")

        def forward(self, question: str) -> Any:  # runs in a worker thread under acall
            return self.p(question=question)

    lm = ScriptedLM([{"answer": "1"}, {"answer": "2"}, {"answer": "3"}])
    with dx.context(tracer_provider=provider, lm=lm):
        await Fanout().acall(question="q")
        await SyncForward().acall(question="q")
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    fanout = next(s for s in spans if s.name == "module Fanout")
    sync = next(s for s in spans if s.name == "module SyncForward")
    parents = sorted(_parent_name(s, by_id) for s in spans if s.name == "module Predict")
    assert parents == ["module Fanout", "module Fanout", "module SyncForward"]
    assert fanout.context.trace_id != sync.context.trace_id  # two top-level calls, two traces


_GLOBAL_SCRIPT = """
import anyio, dspex as dx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from dspex.telemetry._spans import resolve
from dspex.testing import ScriptedLM

assert resolve() is None
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # the global one, as an application would
assert resolve() is not None and resolve().tracer_provider is provider

async def main():
    await dx.Predict("question -> answer").acall(question="q", lm=ScriptedLM([{"answer": "a"}]))

anyio.run(main, backend=BACKEND)
print(sorted(s.name for s in exporter.get_finished_spans()))
"""


def test_the_global_provider_is_used_once_set(anyio_backend: str) -> None:
    # OpenTelemetry's global provider can be set once per process: use a child process
    import subprocess
    import sys

    script = _GLOBAL_SCRIPT.replace("BACKEND", repr(anyio_backend))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chat scripted', 'module Predict']"


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
async def test_items_failed_by_policy_are_marked_on_their_spans(policy: str) -> None:
    provider, exporter = _provider()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])

    async def odd_fails(record: dict[str, int]) -> dict[str, int]:
        if record["x"] % 2:
            raise ValueError(f"odd {record['x']}")
        return record

    flow = Flow("policies")
    flow.source([{"x": i} for i in range(6)]).map(odd_fails, on_error=policy, name="m").sink(collect())
    report = await flow.run(progress=False, tracer_provider=provider, meter_provider=meters)
    assert report.items_failed == 3
    items = [s for s in exporter.get_finished_spans() if s.name == "item m"]
    failed = sorted(_attrs(s)["dspex.item.id"] for s in items if _attrs(s).get("error.type") == "ValueError")
    assert failed == ["2", "4", "6"]  # ids count from 1: x = 1, 3, 5
    assert all(s.status.status_code is StatusCode.ERROR for s in items if _attrs(s)["dspex.item.id"] in failed)
    statuses: dict[str, int] = {}
    for rm in _metrics(reader).resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "dspex.item.duration":
                    for point in metric.data.data_points:
                        assert isinstance(point, HistogramDataPoint)
                        statuses[_attrs(point)["dspex.status"]] = point.count
    assert statuses == {"ok": 3, "error": 3}
    meters.shutdown()
