"""A flow whose module nodes cannot resolve an LM fails before it runs (flows/_preflight.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import dspex as dx
from dspex.errors import LMNotConfiguredError
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import Iterator

ANSWER = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


def _flow(module: dx.Module, sink: dx.sinks.CollectSink | None = None) -> tuple[dx.Flow, list[int]]:
    pulled: list[int] = []

    def records() -> Iterator[dict[str, str]]:
        for i in range(3):
            pulled.append(i)
            yield {"question": f"q{i}"}

    flow = dx.Flow("qa")
    flow.source(dx.sources.iterable(records())).map(module, name="answer").sink(sink or dx.sinks.collect())
    return flow, pulled


async def test_no_lm_raises_naming_the_node_and_reads_nothing() -> None:
    flow, pulled = _flow(dx.ChainOfThought("question -> answer"))
    with pytest.raises(LMNotConfiguredError, match=r"node 'answer': no LM configured for predictor 'predict'"):
        await flow.run()
    assert pulled == []


async def test_an_lm_from_the_run_the_context_or_the_predictor_passes() -> None:
    for how in ("run", "context", "predictor"):
        module = dx.Predict("question -> answer")
        lm = ScriptedLM([ANSWER] * 3)
        sink = dx.sinks.collect()
        flow, _ = _flow(module, sink)
        if how == "run":
            report = await flow.run(lm=lm, progress=False)
        elif how == "context":
            with dx.context(lm=lm):
                report = await flow.run(progress=False)
        else:
            module.lm = lm
            report = await flow.run(progress=False)
        assert report.items_out == 3, how
        assert [r["answer"] for r in sink.items] == ["Paris"] * 3, how
