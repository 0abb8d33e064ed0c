"""What both sides of the benchmarks share: inputs, cases and timers (standard library only).

Imported by ``dspex_side.py`` (project venv) and ``dspy_side.py`` (the DSPy
venv, where dspex is not installed), so it must never import either library.
Both sides feed the same questions, time the same signatures and parse the
same completion, so their figures can stand side by side.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

#: The program under test: ``Predict(SIGNATURE)`` or ``ChainOfThought(SIGNATURE)``.
SIGNATURE = "question -> answer"

#: Signature strings timed by the parse micro-benchmark.
SIGNATURE_CASES = {
    "simple": "question -> answer",
    "typed": "context: list[str], question -> answer: float",
}

#: A ChainOfThought (question -> reasoning, answer) completion in ChatAdapter format.
COMPLETION = (
    "[[ ## reasoning ## ]]\nThe question asks for 21 plus 21. Adding them gives 42.\n\n"
    "[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]\n"
)

#: Inputs of the adapter-format micro-benchmark.
FORMAT_INPUTS = {"question": "What is 21 plus 21? Show your reasoning step by step."}


def questions(n: int) -> list[dict[str, str]]:
    """Return ``n`` distinct inputs (distinct prompts: no cache can help)."""
    return [{"question": f"What is {i} plus {i}?"} for i in range(n)]


def best_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Return the best of ``repeat`` runs of ``number`` calls, in µs per call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB (``ru_maxrss``)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class Clock:
    """Wall and process CPU time since construction."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        """Return ``{"wall_s", "cpu_s"}`` elapsed so far."""
        return {"wall_s": time.perf_counter() - self.wall0, "cpu_s": time.process_time() - self.cpu0}


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last stdout line (the driver reads that line)."""
    print(json.dumps(result), flush=True)
