"""DSPy's side of the benchmarks; runs in the benchmark venv that has dspy==3.4.1.

    python dspy_side.py MODE [--url URL] [--n N] [--concurrency C] [--program predict|cot]

Modes print one JSON object as their last stdout line:
  throughput-batch  ``Module.batch(examples, num_threads=C)`` over N questions
  throughput-async  ``Module.acall`` under an ``asyncio.Semaphore(C)``
  cpu               process CPU per call, sequential sync calls (server latency 0)
  cpu-async         the same through ``acall`` in one event loop
  memory            peak RSS after ``batch`` over N questions
  micro             µs per ``dspy.Signature`` parse, ChatAdapter format and parse
Each mode counts the predictions whose ``answer`` parsed, so a run where DSPy
failed (or fell back to another adapter) shows. The driver also compares the
fake server's request count before and after. Never imported by dspex or its
tests; the driver sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so that LiteLLM
does not try to download its price list at import.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
from typing import Any

import dspy
from _common import (
    COMPLETION,
    FORMAT_INPUTS,
    SIGNATURE,
    SIGNATURE_CASES,
    Clock,
    best_us,
    emit,
    peak_rss_mb,
    questions,
)


def _program(kind: str) -> dspy.Module:
    return dspy.ChainOfThought(SIGNATURE) if kind == "cot" else dspy.Predict(SIGNATURE)


def _lm(url: str) -> dspy.LM:
    return dspy.LM("openai/fake-model", api_base=url.rstrip("/") + "/v1", api_key="sk-bench", cache=False)


def _engine(lm: dspy.LM) -> str:
    """Return which of DSPy's engines serves ``lm``: its own "lm15" client, or "litellm"."""
    from dspy.clients.backend_selection import select_backend

    return "lm15" if select_backend(lm).native else "litellm"


def _answered(pred: Any) -> bool:
    return pred is not None and not isinstance(pred, BaseException) and bool(getattr(pred, "answer", None))


def throughput_batch(args: argparse.Namespace) -> dict[str, Any]:
    prog = _program(args.program)
    exs = [dspy.Example(**q).with_inputs("question") for q in questions(args.n)]
    lm = _lm(args.url)
    dspy.configure(lm=lm)
    clock = Clock()
    out = prog.batch(exs, num_threads=args.concurrency, max_errors=args.n, disable_progress_bar=True)
    result = clock.read()
    return {**result, "ok": sum(1 for p in out if _answered(p)), "peak_rss_mb": peak_rss_mb(), "engine": _engine(lm)}


def throughput_async(args: argparse.Namespace) -> dict[str, Any]:
    prog, lm = _program(args.program), _lm(args.url)
    dspy.configure(lm=lm)

    async def main() -> list[Any]:
        sem = asyncio.Semaphore(args.concurrency)

        async def one(q: dict[str, str]) -> Any:
            async with sem:
                return await prog.acall(**q)

        return await asyncio.gather(*(one(q) for q in questions(args.n)), return_exceptions=True)

    clock = Clock()
    results = asyncio.run(main())
    out = clock.read()
    errors = sorted({type(r).__name__ for r in results if isinstance(r, BaseException)})
    return {**out, "ok": sum(1 for r in results if _answered(r)), "errors": errors, "engine": _engine(lm),
            "peak_rss_mb": peak_rss_mb()}


def cpu(args: argparse.Namespace, use_async: bool) -> dict[str, Any]:
    prog, lm = _program(args.program), _lm(args.url)
    dspy.configure(lm=lm)
    inputs, warm = questions(args.n), questions(20)
    if use_async:
        async def run_all() -> tuple[int, dict[str, float]]:
            for q in warm:
                await prog.acall(**q)
            clock = Clock()
            done = 0
            for q in inputs:
                done += _answered(await prog.acall(**q))
            return done, clock.read()

        ok, out = asyncio.run(run_all())
    else:
        for q in warm:
            prog(**q)
        clock = Clock()
        ok = sum(1 for q in inputs if _answered(prog(**q)))
        out = clock.read()
    return {**out, "ok": ok, "calls": args.n, "cpu_ms_per_call": 1000 * out["cpu_s"] / args.n,
            "wall_ms_per_call": 1000 * out["wall_s"] / args.n, "engine": _engine(lm)}


def micro(args: argparse.Namespace) -> dict[str, Any]:
    sig = dspy.ChainOfThought(SIGNATURE).predict.signature
    adapter = dspy.ChatAdapter()
    out: dict[str, Any] = {}
    for name, text in SIGNATURE_CASES.items():
        out[f"signature_{name}_us"] = best_us(functools.partial(dspy.Signature, text), max(args.n // 10, 50), 5)
    out["format_us"] = best_us(lambda: adapter.format(sig, [], FORMAT_INPUTS), args.n, 5)
    out["parse_us"] = best_us(lambda: adapter.parse(sig, COMPLETION), args.n, 5)
    assert adapter.parse(sig, COMPLETION)["answer"] == "42"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["throughput-batch", "throughput-async", "cpu", "cpu-async", "memory", "micro"])
    p.add_argument("--url", default="")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--program", choices=["predict", "cot"], default="predict")
    args = p.parse_args()
    logging.getLogger("dspy").setLevel(logging.ERROR)  # a failed item is counted, not logged N times
    modes = {
        "throughput-batch": throughput_batch,
        "throughput-async": throughput_async,
        "cpu": lambda a: cpu(a, False),
        "cpu-async": lambda a: cpu(a, True),
        "memory": throughput_batch,
        "micro": micro,
    }
    emit(modes[args.mode](args))


if __name__ == "__main__":
    main()
