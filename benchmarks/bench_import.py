"""Wall time of ``import dspex`` (and of ``import dspy`` when given its python).

    python benchmarks/bench_import.py [--dspy-python PATH] [--runs 7]

Each run is a fresh interpreter; prints min and median in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def measure(python: str, module: str, runs: int) -> list[float]:
    subprocess.run([python, "-c", f"import {module}"], check=True)  # warm .pyc
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - start)
    base = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        base.append(time.perf_counter() - start)
    overhead = min(base)
    return [t - overhead for t in times]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dspy-python", default=None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = [("dspex", measure(sys.executable, "dspex", args.runs))]
    rows.append(("dspex + dx.Predict", measure(sys.executable, "dspex; dspex.Predict", args.runs)))
    if args.dspy_python:
        rows.append(("dspy", measure(args.dspy_python, "dspy", args.runs)))
    print(f"{'import':<22}{'min s':>10}{'median s':>10}")
    for name, times in rows:
        print(f"{name:<22}{min(times):>10.3f}{statistics.median(times):>10.3f}")
    if args.dspy_python:
        ratio = statistics.median(rows[2][1]) / max(statistics.median(rows[0][1]), 1e-6)
        print(f"dspy / dspex median ratio: {ratio:.1f}x")


if __name__ == "__main__":
    main()
