"""ab_split compares an uncompiled and a compiled program on live traffic, per variant (both backends)."""

from __future__ import annotations

from typing import Any

import dspex as dx
from dspex.testing import FakeLLMServer, StudentTask

TASK = StudentTask()
TRAIN = TASK.examples(24, seed=1)
TRAFFIC = TASK.examples(60, seed=4)


async def test_ab_split_reports_a_dspy_metric_per_variant() -> None:
    async with FakeLLMServer(student=TASK) as server:
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-test", cache=False)
        with dx.context(lm=lm):
            current = dx.Predict("question -> answer")
            compiled = await dx.LabeledFewShot(k=12).acompile(current, trainset=TRAIN)
            flow = dx.Flow("ab")
            out = dx.sinks.collect()
            flow.source([dict(e.items()) for e in TRAFFIC]).ab_split(
                0.3, current, compiled, metric=dx.metrics.exact_match, concurrency=8, name="ab").sink(out)
            report = await flow.run(progress=False)
        await lm.aclose()
    variants = report.to_dict()["nodes"]["ab"]["extra"]["variants"]
    assert variants["a"]["items"] + variants["b"]["items"] == 60
    assert variants["b"]["items"] > 5
    assert variants["a"]["metric"] == 0.0
    assert variants["b"]["metric"] == 1.0
    assert variants["a"]["metric_errors"] == variants["b"]["metric_errors"] == 0


async def test_a_failing_or_async_metric_is_counted_not_fatal() -> None:
    async def judge(output: dict[str, Any]) -> bool:
        if output["i"] == 3:
            raise ValueError("judge down")
        return bool(output["i"] % 2 == 0)

    flow = dx.Flow("ab")
    flow.source([{"i": i} for i in range(10)]).ab_split(0.0, lambda r: r, lambda r: r, metric=judge, name="ab").sink(
        dx.sinks.collect())
    report = await flow.run(progress=False)
    a = report.to_dict()["nodes"]["ab"]["extra"]["variants"]["a"]
    assert report.items_out == 10
    assert a["metric_errors"] == 1
    assert a["metric"] == 5 / 9
