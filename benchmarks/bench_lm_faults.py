"""10,000 Predict calls through dx.LM against a fault-injecting loopback server.

SPEC §4: 5 % 429 (Retry-After 0.01 s), 5 % 500, 1 % connection resets and 1 %
truncated responses; concurrency 64. Every item must succeed (retries), none
may be duplicated, and the tokens the predictions report must equal the
server's own counts. Runs both anyio backends and prints one line each with
the wall time, client CPU, retries and faults. The server runs in the same
process and event loop, so the CPU figure includes it. Usage::

    python benchmarks/bench_lm_faults.py [--items 10000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio

import dspex as dx
from dspex.lm import LM, RetryPolicy
from dspex.testing import FakeLLMServer

FAULTS = {"p_429": 0.05, "p_500": 0.05, "p_reset": 0.01, "p_truncate": 0.01, "retry_after": 0.01}


async def run(items: int, concurrency: int) -> dict[str, Any]:
    predict = dx.Predict("question -> answer")
    results: dict[int, dx.Prediction] = {}
    duplicates = 0
    async with FakeLLMServer(seed=1, p_429=FAULTS["p_429"], p_500=FAULTS["p_500"], p_reset=FAULTS["p_reset"],
                             p_truncate=FAULTS["p_truncate"], retry_after=FAULTS["retry_after"]) as server:
        lm = LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-bench-0000", cache=False,
                retry=RetryPolicy(max_retries=10, base_delay=0.005, max_delay=0.05))
        limiter = anyio.CapacityLimiter(concurrency)

        async def one(i: int) -> None:
            nonlocal duplicates
            async with limiter:
                pred = await predict.acall(question=f"What is item number {i}?", lm=lm)
            duplicates += i in results
            results[i] = pred

        wall, cpu = time.perf_counter(), time.process_time()
        async with anyio.create_task_group() as tg:
            for i in range(items):
                tg.start_soon(one, i)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await lm.aclose()
    usage_in = sum(p.usage.input_tokens for p in results.values())
    usage_out = sum(p.usage.output_tokens for p in results.values())
    return {
        "items": items,
        "succeeded": len(results),
        "duplicates": duplicates,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "retries": lm.endpoint.retries,
        "faults": server.stats.faults,
        "server_requests": server.stats.requests,
        "usage_matches_server": (usage_in, usage_out) == (server.stats.prompt_tokens, server.stats.completion_tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    ok = True
    for backend in ("asyncio", "trio"):
        report = anyio.run(run, args.items, args.concurrency, backend=backend)
        ok = ok and report["succeeded"] == args.items and not report["duplicates"] and report["usage_matches_server"]
        print(json.dumps({"backend": backend, **report}))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
