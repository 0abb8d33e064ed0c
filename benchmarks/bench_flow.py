"""Flow engine benchmarks: streaming memory/throughput and LM-bound concurrency.

1. N JSONL records -> ``map`` -> JSONL sink, each size in a fresh subprocess:
   peak RSS (``ru_maxrss``) for 100k and 1M records (target < 200 MB, flat in
   N) and records/s.
2. 2,000 items through a ``ChainOfThought`` node at concurrency 64 and 256
   against ``FakeLLMServer`` with 50 ms latency, run in a separate process:
   wall time vs the ideal ``N * latency / concurrency`` (target >= 95 %).

Run: ``.venv/bin/python benchmarks/bench_flow.py [--records 1000000] [--backend trio]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

STREAM = r"""
import json, resource, sys, time
import dspex.flows as fl
from dspex.sinks import jsonl
from dspex.sources import jsonl as jsonl_source

src, dst, backend = sys.argv[1], sys.argv[2], sys.argv[3]
flow = fl.Flow("bench")
flow.source(jsonl_source(src)).map(lambda r: {**r, "len": len(r["text"])}).sink(jsonl(dst, mode="w"))
import os; os.environ["DSPEX_BACKEND"] = backend
start = time.perf_counter()
report = flow.run_sync(progress=False)
elapsed = time.perf_counter() - start
print(json.dumps({"records": report.items_out, "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _write_input(path: str, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "text": f"record number {i} with some text"}) + "\n")


def bench_stream(counts: list[int], backend: str) -> list[dict[str, float]]:
    """Stream JSONL -> map -> JSONL for each count in a fresh process."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            src, dst = os.path.join(tmp, f"in-{n}.jsonl"), os.path.join(tmp, "out.jsonl")
            _write_input(src, n)
            proc = subprocess.run([sys.executable, "-c", STREAM, src, dst, backend],
                                  capture_output=True, text=True, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["records_per_s"] = row["records"] / row["seconds"]
            results.append(row)
            print(f"stream {n:>9,} records [{backend}]: {row['seconds']:.1f} s, "
                  f"{row['records_per_s']:,.0f} records/s, peak RSS {row['peak_rss_mb']:.0f} MB",
                  flush=True)
            os.remove(src)
    return results


async def _lm_run(url: str, n: int, concurrency: int) -> float:
    import dspex as dx
    import dspex.flows as fl
    from dspex.lm import LM
    from dspex.sinks import collect

    lm = LM("openai/fake", api_base=f"{url}/v1", api_key="x", cache=False)
    cot = dx.ChainOfThought("question -> answer")

    async def run(count: int) -> float:
        flow = fl.Flow("lm-bench")
        out = collect()
        flow.source([{"question": f"q{i}"} for i in range(count)]).map(
            cot, concurrency=concurrency, ordered=False).sink(out)
        start = time.perf_counter()
        report = await flow.run(progress=False, lm=lm)
        elapsed = time.perf_counter() - start
        assert report.items_out == count, report.to_dict()
        return elapsed

    await run(concurrency)  # open the connections first
    return await run(n)


def bench_lm(n: int, latency_ms: float, backend: str) -> list[dict[str, float]]:
    """Run the ChainOfThought node at concurrency 64 and 256.

    The fake server runs in its own process, so its CPU does not compete with
    the client's event loop for the GIL.
    """
    import anyio

    results: list[dict[str, Any]] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "dspex.testing.server", "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        results.extend(_lm_row(anyio.run(_lm_run, url, n, concurrency, backend=backend), n, concurrency, latency_ms,
                               backend) for concurrency in (64, 256))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def _lm_row(elapsed: float, n: int, concurrency: int, latency_ms: float, backend: str) -> dict[str, float]:
    ideal = n * latency_ms / 1000 / concurrency
    row = {"concurrency": concurrency, "seconds": elapsed, "ideal_s": ideal, "fraction_of_ideal": ideal / elapsed}
    print(f"ChainOfThought x{n} @ {concurrency} [{backend}]: {elapsed:.2f} s "
          f"(ideal {ideal:.2f} s) -> {100 * ideal / elapsed:.1f} % of ideal", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-lm", action="store_true")
    args = parser.parse_args()
    if not args.skip_stream:
        bench_stream(sorted({min(100_000, args.records), args.records}), args.backend)
    if not args.skip_lm:
        bench_lm(args.items, args.latency_ms, args.backend)


if __name__ == "__main__":
    main()
