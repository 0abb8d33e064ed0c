"""Microseconds per string-signature parse: cold (cache bypassed) and cached.

    python benchmarks/bench_signature.py [--dspy-python PATH] [--number 2000] [--repeat 5]

"cold" builds a new class each time (string parse + pydantic class creation);
"parse only" is just the string → (name, type) parse; "cached" is
``dx.Signature(text)`` hitting the signature cache. Each figure is the best
of ``--repeat`` runs of ``--number`` calls. With ``--dspy-python`` the same
strings are timed with ``dspy.Signature`` (which has no cache) in that
interpreter, side by side.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Callable

CASES = {
    "simple": "question -> answer",
    "typed": "context: list[str], question -> answer: float",
    "rich": "docs: list[dict[str, Any]], query: str, k: int | None -> answer: Literal['yes', 'no'], "
    "score: Optional[float], tags: list[str]",
}

_DSPY_SNIPPET = """
import json, sys, time
import dspy
cases, number, repeat = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = {}
for name, text in cases.items():
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            dspy.Signature(text)
        best = min(best, (time.perf_counter() - start) / number)
    out[name] = best * 1e6
print(json.dumps(out))
"""


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Return the best mean time of ``fn`` in microseconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def measure_dspex(number: int, repeat: int) -> dict[str, dict[str, float]]:
    import dspex as dx
    from dspex.signatures._make import signature_from_string
    from dspex.signatures._parse import base_type_names, parse_fields

    # dx.Signature(text) is answered by its metaclass (cached), which mypy does not see through
    signature_from_text = cast("Callable[[str], object]", dx.Signature)

    names = base_type_names()
    rows: dict[str, dict[str, float]] = {}
    for label, text in CASES.items():
        cold_n = max(number // 10, 50)
        rows[label] = {
            "parse only": best_us(functools.partial(parse_fields, text, names), number, repeat),
            "cold": best_us(functools.partial(signature_from_string, text), cold_n, repeat),
            "cached": best_us(functools.partial(signature_from_text, text), number * 10, repeat),
        }
    return rows


def measure_dspy(python: str, number: int, repeat: int) -> dict[str, float]:
    cold_n = max(number // 10, 50)
    result = subprocess.run(
        [python, "-c", _DSPY_SNIPPET, json.dumps(CASES), str(cold_n), str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dspy-python", default=None)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = measure_dspex(args.number, args.repeat)
    dspy = measure_dspy(args.dspy_python, args.number, args.repeat) if args.dspy_python else {}
    header = f"{'case':<8} {'parse only':>11} {'cold':>10} {'cached':>9}"
    if dspy:
        header += f" {'dspy':>10} {'dspy/cold':>10}"
    print(f"µs per signature, python {sys.version.split()[0]}")
    print(header)
    for label, row in rows.items():
        line = f"{label:<8} {row['parse only']:>11.1f} {row['cold']:>10.1f} {row['cached']:>9.2f}"
        if dspy:
            line += f" {dspy[label]:>10.1f} {dspy[label] / row['cold']:>9.1f}x"
        print(line)


if __name__ == "__main__":
    main()
