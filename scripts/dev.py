#!/usr/bin/env python3
"""Set up and run dspex with nothing but python3: ``demo``, ``test`` or ``bench``.

    python3 scripts/dev.py demo    # venv + install + `dspex demo`
    python3 scripts/dev.py test    # venv + install + the whole test suite

The venv lives in ``.venv`` next to this repository and is reused; the install
step is skipped when pyproject.toml has not changed since the last one.
Extra arguments are passed through (``test -k signature``, ``demo --help``).

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
    if not argv or argv[0] not in {"demo", "test", "bench"}:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    ensure_venv()
    if cmd == "demo":
        return subprocess.call([str(BIN / "dspex"), "demo", *rest], cwd=ROOT)
    if cmd == "test":
        if os.environ.get("DSPEX_BROWSER_TESTS", "1") != "1":
            rest = ["--ignore=tests/browser", *rest]
        elif (ROOT / "tests" / "browser").exists():
            ensure_chromium()
        return subprocess.call([str(PY), "-m", "pytest", "-q", *rest], cwd=ROOT)
    return subprocess.call([str(PY), str(ROOT / "benchmarks" / "run.py"), *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
