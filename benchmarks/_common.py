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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

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


#: ReAct benchmark: each tool (``add`` async, ``multiply`` sync) pauses this long.
TOOL_PAUSE_S = 0.02


def react_questions(n: int) -> list[dict[str, str]]:
    """Return ``n`` arithmetic questions with their answers, alternating ``+`` (async tool) and ``*`` (sync)."""
    out = []
    for i in range(n):
        a, b = i % 97 + 2, i % 89 + 3
        op, value = ("+", a + b) if i % 2 == 0 else ("*", a * b)
        out.append({"question": f"What is {a} {op} {b}?", "expected": str(value)})
    return out


class LagMonitor:
    """Measure how late a 10 ms periodic wake-up runs: the event loop's responsiveness.

    ``tick(sleep)`` is the loop body for any async library; ``max_ms`` and
    ``p99_ms`` summarise the lags seen (a blocked loop shows as a long lag).
    """

    PERIOD_S = 0.01

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self, sleep: Callable[[float], Any]) -> None:
        """Sample forever (cancel to stop)."""
        while True:
            start = time.perf_counter()
            await sleep(self.PERIOD_S)
            self.lags.append(max(0.0, time.perf_counter() - start - self.PERIOD_S))

    def summary(self) -> dict[str, float]:
        """Return ``{"loop_lag_max_ms", "loop_lag_p99_ms", "loop_samples"}``."""
        lags = sorted(self.lags) or [0.0]
        return {"loop_lag_max_ms": round(1000 * lags[-1], 1),
                "loop_lag_p99_ms": round(1000 * lags[int(0.99 * (len(lags) - 1))], 1),
                "loop_samples": len(self.lags)}
