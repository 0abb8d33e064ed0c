"""The benchmark's environment: DSPy's own venv, and a description of the machine.

DSPy is never a dependency of dspex: it lives in ``benchmarks/.venv-dspy``
(gitignored), built on first use from the same base interpreter as the
project venv with ``dspy==3.4.1`` and reused afterwards (a stamp file records
the pinned version). :func:`machine` describes the machine and the load on it
so that results files written on different days can be compared.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DSPY_VERSION = "3.4.1"
DSPY_VENV = HERE / ".venv-dspy"
DSPY_PYTHON = DSPY_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
_STAMP = DSPY_VENV / f".dspy-{DSPY_VERSION}"

#: Set for the whole run: DSPy must not fetch LiteLLM's price list from the network,
#: and keeps its disk cache (unused: ``cache=False``) inside its venv.
DSPY_ENV_VARS = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "DSPY_CACHEDIR": str(DSPY_VENV / "cache")}


def ensure_dspy_venv() -> Path:
    """Return the DSPy venv's python, creating the venv and installing DSPy if needed."""
    if _STAMP.exists() and DSPY_PYTHON.exists():
        return DSPY_PYTHON
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"building {DSPY_VENV} with dspy=={DSPY_VERSION} (once)...", flush=True)
    if not DSPY_PYTHON.exists():
        subprocess.run([base, "-m", "venv", str(DSPY_VENV)], check=True)
    pip = subprocess.run([str(DSPY_PYTHON), "-m", "pip", "install", "-q", f"dspy=={DSPY_VERSION}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        sys.stderr.write(pip.stdout + pip.stderr)
        raise SystemExit(f"could not install dspy=={DSPY_VERSION} into {DSPY_VENV}")
    got = subprocess.run([str(DSPY_PYTHON), "-c", "import dspy; print(dspy.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if got != DSPY_VERSION:
        raise SystemExit(f"{DSPY_VENV} has dspy {got}, expected {DSPY_VERSION}; delete it and run again")
    _STAMP.write_text(got)
    return DSPY_PYTHON


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (empty where unknown)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """Describe the machine, the interpreters and the code under test."""
    import dspex

    dspy_version = subprocess.run([str(DSPY_PYTHON), "-c", "import importlib.metadata as m; print(m.version('dspy'))"],
                                  capture_output=True, text=True).stdout.strip()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "dspex_version": dspex.__version__,
        "dspy_version": dspy_version,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_src": bool(_git("status", "--porcelain", "--", "src")),
        "load_average_start": load_average(),
    }
