"""Spans exported over OTLP/HTTP to a real receiver process (loopback, port 0).

The receiver (``_otlp_receiver.py``) is a separate Python process decoding
the protobuf with ``opentelemetry-proto``; the exporter is the SDK's
``OTLPSpanExporter`` behind a ``BatchSpanProcessor``, as in production.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import dspex as dx
from dspex.flows import Flow
from dspex.sinks import collect
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from collections.abc import Iterator

RECEIVER = Path(__file__).with_name("_otlp_receiver.py")
N = 4


@pytest.fixture
def receiver() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, str(RECEIVER)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


async def test_flow_spans_reach_an_otlp_http_receiver(receiver: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = receiver
    session = requests.Session()
    session.trust_env = False  # loopback only: never through a proxy from the environment
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", session=session, timeout=10)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    flow = Flow("otlp")
    out = collect()
    flow.source([{"question": f"What is {i} + 1?"} for i in range(N)]).map(
        dx.ChainOfThought("question -> answer"), concurrency=2, name="cot"
    ).sink(out)
    async with FakeLLMServer() as server:
        lm = dx.LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-otlp-test-0000", cache=False)
        report = await flow.run(progress=False, lm=lm, tracer_provider=provider)
        await lm.aclose()
    assert report.items_out == N
    assert provider.force_flush(10_000)
    provider.shutdown()
    proc.terminate()
    stdout, _ = proc.communicate(timeout=10)
    spans = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    names = [s["name"] for s in spans]
    assert names.count("flow otlp") == 1
    assert names.count("node cot") == 1
    assert names.count("item cot") == N
    assert names.count("chat fake-model") == N
    assert names.count("module ChainOfThought") == names.count("module Predict") == N
    assert {s["scope"] for s in spans} == {"dspex"}
    assert len({s["trace_id"] for s in spans}) == 1
    by_id = {s["span_id"]: s for s in spans}
    for chat in (s for s in spans if s["name"] == "chat fake-model"):
        assert by_id[chat["parent_id"]]["name"] == "module Predict"
        assert chat["kind"] == 3  # SPAN_KIND_CLIENT
        attrs = chat["attributes"]
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "fake-model"
        assert int(attrs["gen_ai.usage.input_tokens"]) > 0
        assert int(attrs["gen_ai.usage.output_tokens"]) > 0
