"""Pickled programs, as DSPy writes them: ``.pkl`` state files and ``save_program=True`` directories.

JSON is the default and the safe format. Like DSPy, dspex also writes a
program's state as a pickle (``module.save("p.pkl")``) or the whole program
object (``module.save("dir", save_program=True)`` → ``dir/program.pkl`` and
``dir/metadata.json``), logging DSPy's warning that loading untrusted pickles
runs arbitrary code. Reading a pickle needs ``allow_pickle=True`` every time;
without it the load raises before the file is opened. dspex uses the standard
``pickle`` module (DSPy uses cloudpickle), so classes must be importable.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ConfigError

if TYPE_CHECKING:
    from ._module import Module

__all__ = ["PICKLE_WARNING", "check_pickle_allowed", "load_program_dir", "read_pickled_state", "save_pickled"]

logger = logging.getLogger("dspex.modules")

PICKLE_WARNING = ("Loading untrusted .pkl files can run arbitrary code, which may be dangerous. To avoid this, "
                  'prefer saving using json format using module.save("module.json").')
_REFUSED = ("Loading .pkl files can run arbitrary code, which may be dangerous. Prefer saving with .json files if "
            "possible. Set `allow_pickle=True` if you are sure about the source of the file and in a trusted "
            "environment.")


def _metadata() -> dict[str, Any]:
    return {"dependency_versions": {"python": f"{sys.version_info.major}.{sys.version_info.minor}"},
            "dspex_version": __version__}


def check_pickle_allowed(allow_pickle: bool) -> None:
    """Raise DSPy's refusal unless ``allow_pickle`` is True.

    Raises:
        ConfigError: ``allow_pickle`` is False (a ``ValueError``, as in DSPy).
    """
    if not allow_pickle:
        raise ConfigError(_REFUSED)


def _dump(obj: Any, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(obj, fh)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"Saving failed with error: {exc}. Please remove the non-picklable attributes from your program "
            "(LM clients, locks), or save the state only as .json.", path=str(target)) from exc
    os.replace(tmp, target)


def save_pickled(module: Module, path: str | Path, save_program: bool) -> None:
    """Write ``module``'s state as a ``.pkl`` file, or the whole program into a directory.

    Raises:
        ConfigError: ``save_program`` with a path that has a suffix or is a
            file; a ``.pkl`` path without it that does not end in ``.pkl``;
            or the object does not pickle.
    """
    target = Path(path)
    logger.warning(PICKLE_WARNING)
    if not save_program:
        if target.suffix != ".pkl":
            raise ConfigError(f"`path` must end with `.json` or `.pkl` when `save_program=False`, but received: "
                              f"{target}", path=str(target))
        _dump({**module.dump_state(), "metadata": _metadata()}, target)
        return
    if target.suffix:
        raise ConfigError(f"`path` must point to a directory without a suffix when `save_program=True`, but "
                          f"received: {target}", path=str(target))
    if target.exists() and not target.is_dir():
        raise ConfigError(f"The path '{target}' exists but is not a directory.", path=str(target))
    target.mkdir(parents=True, exist_ok=True)
    _dump(module, target / "program.pkl")
    (target / "metadata.json").write_text(json.dumps(_metadata(), indent=2) + "\n", encoding="utf-8")


def _unpickle(target: Path) -> Any:
    try:
        with open(target, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The path '{target}' does not exist.", path=str(target)) from None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ConfigError(f"cannot unpickle {str(target)!r}: {exc}", path=str(target)) from exc


def read_pickled_state(path: str | Path, allow_pickle: bool) -> dict[str, Any]:
    """Return the state dict in a ``.pkl`` state file.

    Raises:
        ConfigError: ``allow_pickle`` is False, or the file is missing, not a
            pickle, or does not hold a state dict.
    """
    check_pickle_allowed(allow_pickle)
    state = _unpickle(Path(path))
    if not isinstance(state, dict):
        raise ConfigError(f"{str(path)!r} does not hold a program state dict", path=str(path))
    return state


def load_program_dir(path: str | Path, allow_pickle: bool) -> Module:
    """Return the program saved with ``save_program=True`` in directory ``path``.

    Raises:
        ConfigError: ``allow_pickle`` is False, the directory or its
            ``program.pkl`` is missing, or it does not hold a module.
    """
    check_pickle_allowed(allow_pickle)
    target = Path(path)
    if not target.is_dir():
        raise ConfigError(f"The path '{target}' does not exist.", path=str(target))
    program = _unpickle(target / "program.pkl")
    if not callable(getattr(program, "named_predictors", None)):
        raise ConfigError(f"{str(target / 'program.pkl')!r} holds a {type(program).__name__}, not a module",
                          path=str(target))
    module: Module = program  # checked above: it walks its predictors like a Module
    return module
