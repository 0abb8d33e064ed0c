"""The documentation site builds with ``mkdocs build --strict`` and its reference is complete."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import dspex

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
# The public subpackages and modules, each with its own reference page.
PUBLIC_MODULES = (
    "adapters", "backpressure", "errors", "evaluate", "evaluate.metrics", "events", "flows", "lm",
    "modules", "operators", "optimizers", "signatures", "sinks", "sources", "store", "telemetry",
    "testing", "tools", "traces",
)  # fmt: skip


def _documented_path(name: str) -> str:
    """Where ``dspex.NAME`` is rendered: its subpackage path, as the lazy map says."""
    module, attr = dspex._LAZY[name]
    return "dspex" + module + (f".{attr}" if attr else "")


def _inventory(site: Path) -> set[str]:
    """The identifiers in the built site's ``objects.inv`` (Sphinx inventory v2)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four text lines, then a zlib stream
        header_end = raw.index(b"\n", header_end) + 1
    body = zlib.decompress(raw[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.mark.slow
def test_site_builds_strict_with_every_guide(site: Path) -> None:
    for page in ("quickstart", "flows", "streaming", "lm", "agents", "optimization",
                 "yaml-flows", "telemetry", "scaling", "testing", "migration"):  # fmt: skip
        assert (site / page / "index.html").is_file(), f"guide {page}.md was not built"


def test_every_public_name_is_in_the_reference_inventory(site: Path) -> None:
    inventory = _inventory(site)
    missing = [
        f"dspex.{name} (as {_documented_path(name)})"
        for name in dspex.__all__
        if name != "__version__" and _documented_path(name) not in inventory
    ]
    assert not missing, f"public names without a reference entry: {missing}"


def test_every_subpackage_name_is_in_the_reference_inventory(site: Path) -> None:
    inventory = _inventory(site)
    missing = []
    for module_name in PUBLIC_MODULES:
        module = __import__(f"dspex.{module_name}", fromlist=["__all__"])
        names = getattr(module, "__all__", None)
        assert names, f"dspex.{module_name} has no __all__"
        missing += [f"dspex.{module_name}.{n}" for n in names if f"dspex.{module_name}.{n}" not in inventory]
    assert not missing, f"subpackage names without a reference entry: {missing}"


def test_reference_index_lists_exactly_dspex_all() -> None:
    text = (REFERENCE / "index.md").read_text()
    listed = re.findall(r"^\| `dx\.(\w+)` \| \[`([\w.]+)`\]\[([\w.]+)\] \|$", text, re.M)
    names = [name for name, _, _ in listed]
    assert sorted(names) == sorted(n for n in dspex.__all__ if n != "__version__"), (
        "docs/reference/index.md is out of date with dspex.__all__: run scripts/docs_reference_index.py"
    )
    for name, shown, target in listed:
        assert shown == target == _documented_path(name), f"index row for {name} points at {target}"
