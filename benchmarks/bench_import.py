"""Wall time of ``import dspex``, of the command line's start (and of ``import dspy`` when given its python).

    python benchmarks/bench_import.py [--dspy-python PATH] [--runs 7]

Each run is a fresh interpreter; prints min and median in seconds, less the
interpreter's own start. The command line rows are ``import dspex.cli`` and
``dspex --help`` (which must import no command module) and ``dspex run
--help`` (which imports the ``run`` command's module, and so the flow engine).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def measure(python: str, module: str, runs: int) -> list[float]:
    """Seconds per ``import module`` in a fresh interpreter, less the interpreter's start."""
    return measure_args(python, ["-c", f"import {module}"], runs)


def measure_args(python: str, args: list[str], runs: int) -> list[float]:
    """Seconds per ``python *args`` (output discarded), less the interpreter's start."""
    subprocess.run([python, *args], check=True, capture_output=True)  # warm .pyc
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, *args], check=True, capture_output=True)
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
    rows.append(("dspex.cli", measure(sys.executable, "dspex.cli", args.runs)))
    rows.append(("dspex --help", measure_args(sys.executable, ["-m", "dspex", "--help"], args.runs)))
    rows.append(("dspex run --help", measure_args(sys.executable, ["-m", "dspex", "run", "--help"], args.runs)))
    if args.dspy_python:
        rows.append(("dspy", measure(args.dspy_python, "dspy", args.runs)))
    print(f"{'import or command':<22}{'min s':>10}{'median s':>10}")
    for name, times in rows:
        print(f"{name:<22}{min(times):>10.3f}{statistics.median(times):>10.3f}")
    if args.dspy_python:
        ratio = statistics.median(rows[-1][1]) / max(statistics.median(rows[0][1]), 1e-6)
        print(f"dspy / dspex median ratio: {ratio:.1f}x")


if __name__ == "__main__":
    main()
