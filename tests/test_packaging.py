"""pyproject.toml uses the current license form (no setuptools deprecation banner on install)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())


def test_license_is_an_spdx_string() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"


def test_build_requires_a_setuptools_that_reads_spdx_licenses() -> None:
    (pin,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", pin)
    assert match is not None
    assert int(match.group(1)) >= 77
