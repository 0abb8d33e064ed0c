"""ReAct at scale: 1,000 agent items at concurrency 64 on FakeLLMServer (50 ms), dspex vs DSPy.

Each item is an arithmetic question ("What is 7 + 12?" / "What is 7 * 12?");
the agent calls ``add`` (async, 20 ms) or ``multiply`` (sync, ``time.sleep``
20 ms), then ``finish``, then extracts: 3 LM calls and one tool call, so the
ideal wall time is ``N * (3 * latency + 20 ms) / concurrency``. Rows:

* dspex: a flow ``map(ReAct, concurrency=64)`` on asyncio and on trio, with
  the event loop's lag sampled every 10 ms (the sync tool runs in a worker
  thread, so the loop should never stall for its 20 ms), and the lag of the
  same loop idle for 1 s before (what the machine's load alone causes);
* DSPy 3.4.1: ``ReAct.batch(num_threads=64)`` (thread pool) and ``acall``
  under ``asyncio.Semaphore(64)`` (its sync tool runs inline on the loop:
  the lag column shows it).

Every row counts correct answers (the fake server plays the agent
deterministically) and the requests the server saw. The fake server runs in
its own process; each side in a fresh process.

Run: ``.venv/bin/python benchmarks/bench_react.py [--n 1000] [--concurrency 64] [--out results.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TOOL_PAUSE_S, Clock, LagMonitor, emit, peak_rss_mb, react_questions


def _tools() -> list[Any]:
    import anyio

    async def add(a: int, b: int) -> int:
        """Add two integers."""
        await anyio.sleep(TOOL_PAUSE_S)
        return a + b

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        time.sleep(TOOL_PAUSE_S)
        return a * b

    return [add, multiply]


async def _dspex_run(url: str, n: int, concurrency: int) -> dict[str, Any]:
    import anyio

    import dspex as dx
    from dspex.sinks import collect

    lm = dx.LM("openai/fake-model", api_base=url.rstrip("/") + "/v1", api_key="sk-bench", cache=False)
    agent = dx.ReAct("question -> answer", tools=_tools(), max_iters=5)
    rows = react_questions(n)
    out = collect()
    flow = dx.Flow("bench-react")
    flow.source(rows).map(agent, concurrency=concurrency, ordered=False, on_error="dead_letter").sink(out)
    # The idle loop's lag first: on a loaded machine the OS alone delays wake-ups.
    idle = LagMonitor()
    with anyio.move_on_after(1.0):
        await idle.run(anyio.sleep)
    monitor = LagMonitor()
    async with anyio.create_task_group() as tg:
        tg.start_soon(monitor.run, anyio.sleep)
        clock = Clock()
        report = await flow.run(progress=False, lm=lm)
        timing = clock.read()
        tg.cancel_scope.cancel()
    await lm.aclose()
    ok = sum(1 for r in out.items if str(r.get("answer", "")).strip() == r["expected"])
    return {**timing, "ok": ok, "items_out": report.items_out, "failed": report.items_failed,
            **monitor.summary(), **{f"idle_{k}": v for k, v in idle.summary().items()}, "peak_rss_mb": peak_rss_mb()}


def dspex_side(args: argparse.Namespace) -> None:
    """Run the dspex flow in this process and print its JSON row."""
    import anyio

    emit(anyio.run(_dspex_run, args.url, args.n, args.concurrency, backend=args.backend))


def _row(name: str, result: dict[str, Any], ideal: float) -> dict[str, Any]:
    result = {"side": name, **result, "ideal_s": round(ideal, 3), "fraction_of_ideal": ideal / result["wall_s"]}
    lag = f"loop lag max {result['loop_lag_max_ms']:.1f} ms (p99 {result['loop_lag_p99_ms']:.1f})" \
        if "loop_lag_max_ms" in result else "loop lag n/a (threads)"
    if "idle_loop_lag_max_ms" in result:
        lag += f"; idle loop before: max {result['idle_loop_lag_max_ms']:.1f} (p99 {result['idle_loop_lag_p99_ms']:.1f})"
    print(f"{name:<22} {result['wall_s']:6.2f} s  {100 * result['fraction_of_ideal']:5.1f} % of ideal  "
          f"correct {result['ok']}/{result['expected']}  requests {result['server_requests']}  "
          f"cpu {result['cpu_s']:.1f} s  rss {result['peak_rss_mb']:.0f} MB  {lag}", flush=True)
    return result


def drive(args: argparse.Namespace) -> None:
    """Start the fake server, run every side, print and optionally save the rows."""
    from _env import DSPY_ENV_VARS, ensure_dspy_venv, machine
    from _procs import Server, checked

    os.environ.update(DSPY_ENV_VARS)
    dspy_python = None if args.skip_dspy else ensure_dspy_venv()
    ideal = args.n * (3 * args.latency_ms / 1000 + TOOL_PAUSE_S) / args.concurrency
    print(f"ReAct x{args.n} @ concurrency {args.concurrency}, LM latency {args.latency_ms:g} ms, "
          f"tools 20 ms: ideal {ideal:.2f} s", flush=True)
    rows = []
    with Server(latency_ms=args.latency_ms) as srv:
        opts = {"n": args.n, "concurrency": args.concurrency}
        for backend in ("asyncio", "trio"):
            result = checked(srv, args.n, sys.executable, "bench_react.py", "dspex", backend=backend, **opts)
            rows.append(_row(f"dspex flow [{backend}]", result, ideal))
        if dspy_python is not None:
            for mode, name in (("batch", "DSPy batch (threads)"), ("async", "DSPy acall (asyncio)")):
                result = checked(srv, args.n, dspy_python, "react_dspy_side.py", mode, **opts)
                rows.append(_row(name, result, ideal))
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "config": vars(args), "rows": rows}, indent=1))
        print(f"wrote {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="drive", choices=["drive", "dspex"])
    p.add_argument("--url", default="")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    p.add_argument("--skip-dspy", action="store_true")
    p.add_argument("--out", default="")
    args = p.parse_args()
    if args.mode == "dspex":
        dspex_side(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
