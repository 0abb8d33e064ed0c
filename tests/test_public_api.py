"""Guards on the public surface: __all__, the lazy map, the TYPE_CHECKING block."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import dspex

INIT = Path(dspex.__file__)


def _type_checking_names() -> set[str]:
    tree = ast.parse(INIT.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                for alias in stmt.names:
                    assert alias.asname, f"{alias.name} must be re-exported with an explicit 'as'"
                    if stmt.module:  # `from .x import Y as Y`: a name keeps its own name
                        assert alias.asname == alias.name, f"{alias.name} must be re-exported as itself"
                    names.add(alias.asname)
    return names


def _isort_style(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order (CI runs ruff): SCREAMING_CASE, then CamelCase, then the rest."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_all_is_sorted_and_unique() -> None:
    assert list(dspex.__all__) == sorted(dspex.__all__, key=_isort_style)
    assert len(set(dspex.__all__)) == len(dspex.__all__)


def test_lazy_map_type_checking_and_all_agree() -> None:
    lazy = set(dspex._LAZY)
    assert lazy == _type_checking_names()
    assert set(dspex.__all__) == lazy | {"__version__"}


def test_every_public_name_resolves_to_dspex() -> None:
    for name in dspex.__all__:
        if name == "__version__":
            continue
        value = getattr(dspex, name)
        module = str(getattr(value, "__module__", None) or getattr(value, "__name__", ""))
        assert module.startswith("dspex"), (name, module)


def test_lazy_map_points_at_the_defining_object() -> None:
    for name, (module_name, attr) in dspex._LAZY.items():
        module = importlib.import_module(module_name, "dspex")
        expected = module if attr is None else getattr(module, attr)
        assert getattr(dspex, name) is expected


def test_unknown_attribute_is_a_clear_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        dspex.NoSuchThing  # noqa: B018  # the attribute access is the test


def test_import_dspex_is_lazy() -> None:
    # Time itself is measured by benchmarks/bench_import.py; this guards the cause:
    # importing the package must not pull in the heavy dependencies.
    code = (
        "import sys, dspex\n"
        "heavy = ['pydantic', 'anyio', 'httpx', 'websockets', 'rich', 'click', 'json_repair',"
        " 'opentelemetry', 'yaml', 'pyarrow', 'trio']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_dir_lists_public_names() -> None:
    assert set(dspex.__all__) <= set(dir(dspex))
