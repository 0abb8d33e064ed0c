"""Load a golden-case module by path (the case files also run under DSPy's venv).

The case files live beside their fixtures, not on ``sys.path``; each is
imported under its own name and registered in ``sys.modules`` so pydantic can
resolve the annotations of the models it defines.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_module"]


def load_module(path: Path, name: str) -> Any:
    """Import the file at ``path`` as module ``name`` and return it."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module
