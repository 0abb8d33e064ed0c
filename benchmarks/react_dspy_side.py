"""DSPy's side of ``bench_react.py``; runs in the benchmark venv that has dspy==3.4.1.

    python react_dspy_side.py MODE --url URL [--n N] [--concurrency C]

Modes print one JSON object as their last stdout line:
  batch   ``ReAct.batch(examples, num_threads=C)`` (DSPy's thread pool)
  async   ``ReAct.acall`` under an ``asyncio.Semaphore(C)``, with the event
          loop's lag measured (DSPy calls a sync tool inline on the loop)
The tools are the dspex side's: ``add`` (async, sleeps 20 ms) and
``multiply`` (sync, sleeps 20 ms); ``ok`` counts the correct answers. Never
imported by dspex or its tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from typing import Any

import dspy
from _common import TOOL_PAUSE_S, Clock, LagMonitor, emit, peak_rss_mb, react_questions


async def add(a: int, b: int) -> int:
    """Add two integers."""
    await asyncio.sleep(TOOL_PAUSE_S)
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    time.sleep(TOOL_PAUSE_S)
    return a * b


def _setup(url: str) -> dspy.ReAct:
    lm = dspy.LM("openai/fake-model", api_base=url.rstrip("/") + "/v1", api_key="sk-bench", cache=False)
    # batch() is sync: DSPy may only run the async tool with this switch on.
    dspy.configure(lm=lm, allow_tool_async_sync_conversion=True)
    return dspy.ReAct("question -> answer", tools=[add, multiply], max_iters=5)


def _correct(preds: list[Any], rows: list[dict[str, str]]) -> int:
    return sum(
        1 for p, r in zip(preds, rows, strict=True)
        if p is not None and not isinstance(p, BaseException) and str(getattr(p, "answer", "")).strip() == r["expected"]
    )


def batch(args: argparse.Namespace) -> dict[str, Any]:
    agent, rows = _setup(args.url), react_questions(args.n)
    exs = [dspy.Example(question=r["question"]).with_inputs("question") for r in rows]
    clock = Clock()
    out = agent.batch(exs, num_threads=args.concurrency, max_errors=args.n, disable_progress_bar=True)
    return {**clock.read(), "ok": _correct(out, rows), "peak_rss_mb": peak_rss_mb()}


def run_async(args: argparse.Namespace) -> dict[str, Any]:
    agent, rows = _setup(args.url), react_questions(args.n)
    monitor, idle = LagMonitor(), LagMonitor()

    async def main() -> list[Any]:
        with contextlib.suppress(TimeoutError):  # the idle loop's lag first, as on the dspex side
            await asyncio.wait_for(idle.run(asyncio.sleep), 1.0)
        sem = asyncio.Semaphore(args.concurrency)
        lag = asyncio.create_task(monitor.run(asyncio.sleep))

        async def one(row: dict[str, str]) -> Any:
            async with sem:
                return await agent.acall(question=row["question"])

        try:
            return await asyncio.gather(*(one(r) for r in rows), return_exceptions=True)
        finally:
            lag.cancel()

    clock = Clock()
    preds = asyncio.run(main())
    errors = sorted({type(p).__name__ for p in preds if isinstance(p, BaseException)})
    timing = clock.read()
    timing["wall_s"] -= 1.0  # the idle measurement is not part of the run
    return {**timing, "ok": _correct(preds, rows), "errors": errors, **monitor.summary(),
            **{f"idle_{k}": v for k, v in idle.summary().items()}, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["batch", "async"])
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args()
    logging.getLogger("dspy").setLevel(logging.ERROR)
    emit(batch(args) if args.mode == "batch" else run_async(args))


if __name__ == "__main__":
    main()
