"""Fused map -> validate chains: items/s and CPU per item through the runner.

A ``validate`` right after a ``map`` runs inside the map's node (the plan
fuses them), so every item takes the map's checked path (call, check,
retry bookkeeping) instead of the inline chunk loop. This measures that path
with no LM, where the engine's own overhead is all there is:

* ``sync c=1``: a sync reshape, concurrency 1, then ``validate``;
* ``async c=16``: an async reshape at concurrency 16 (ordered), then ``validate``;
* ``sync c=1 plain``: the same map with no validate (the chunk loop), for scale.

Each case runs ``--items`` (default 100,000) records from a list into a
callback sink, in this process, best of ``--repeats`` (3); wall-clock items/s
and CPU µs per item (``time.process_time``). Run::

    .venv/bin/python benchmarks/bench_fused.py [--items 100000] [--backend trio]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

import anyio

import dspex as dx


def _reshape(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "len": len(r["text"])}


async def _reshape_async(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "len": len(r["text"])}


def _ok(r: dict[str, Any]) -> bool:
    return r["len"] > 0


def _flow(case: str, items: int) -> tuple[dx.Flow, list[int]]:
    records = [{"text": f"record {i}"} for i in range(items)]
    seen = [0]

    def count(_record: Any) -> None:
        seen[0] += 1

    flow = dx.Flow(case)
    head = flow.source(records)
    if case == "async c=16":
        head = head.map(_reshape_async, concurrency=16).validate(_ok)
    elif case == "sync c=1":
        head = head.map(_reshape).validate(_ok)
    else:
        head = head.map(_reshape)
    head.sink(dx.sinks.callback(count))
    return flow, seen


async def _measure(case: str, items: int, repeats: int) -> dict[str, Any]:
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        flow, seen = _flow(case, items)
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        report = await flow.run(progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if report.items_out != items or seen[0] != items:
            raise SystemExit(f"{case}: {report.items_out} items out of {items}")
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return {"case": case, "items": items, "items_per_s": round(items / best_wall),
            "cpu_us_per_item": round(best_cpu / items * 1e6, 2)}


async def _main(items: int, repeats: int) -> list[dict[str, Any]]:
    return [await _measure(case, items, repeats)
            for case in ("sync c=1", "async c=16", "sync c=1 plain")]


def main() -> None:
    """Parse the arguments, run every case, print one JSON row per case."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = p.parse_args()
    rows = anyio.run(_main, args.items, args.repeats, backend=args.backend)
    for row in rows:
        print(json.dumps({"backend": args.backend, **row}))


if __name__ == "__main__":
    main()
