"""Program versions in the run store: save a compiled program with its lineage; load any version.

``save_version(program, "qa", store=..., score=..., optimizer=opt)`` stores
the program's full state (what ``module.save`` writes) as version N of
``"qa"``, with its score, the optimizer's name and settings, and its parent
(the version it was compiled from). A program loaded from the store
remembers its version (``program.dspex_version``), and a program compiled
from it inherits that (optimizers deep-copy the student), so the parent is
recorded without being passed. ``dx.load("qa", store=..., version=N)``
restores any version (the latest when ``version`` is None); ``dx.load(path)``
still loads a saved JSON file.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .._util._sync import run_sync
from ..errors import ConfigError
from ..store._sqlite import DEFAULT_STORE_PATH, RunStore
from ._state import load as load_state_file
from ._state import program_state

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from ._module import Module

__all__ = ["aload_version", "asave_version", "load", "optimizer_settings", "save_version"]

StoreLike = RunStore | str | os.PathLike[str]


@asynccontextmanager
async def _opened(store: StoreLike) -> AsyncIterator[RunStore]:
    """Yield ``store`` itself, or a RunStore on that path (closed afterwards)."""
    if isinstance(store, RunStore):
        yield store
        return
    async with RunStore(store) as opened:
        yield opened


def _plain(value: Any) -> Any:
    """Return a JSON-able stand-in for a setting (a callable by name, an LM by model)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "model") and isinstance(value.model, str):
        return value.model
    if callable(value):
        return getattr(value, "__qualname__", None) or type(value).__name__
    return repr(value)


def optimizer_settings(optimizer: Any) -> dict[str, Any]:
    """Return ``{"optimizer": name, "settings": {...}}`` for an optimizer (JSON-able)."""
    params = optimizer.get_params() if hasattr(optimizer, "get_params") else dict(vars(optimizer))
    settings = {k: _plain(v) for k, v in params.items() if not k.startswith("_")}
    return {"optimizer": type(optimizer).__name__, "settings": settings}


async def asave_version(program: Module, name: str, *, store: StoreLike, score: float | None = None,
                        optimizer: Any = None, parent: tuple[str, int] | None = None,
                        meta: Mapping[str, Any] | None = None) -> int:
    """Save ``program`` as the next version of ``name``; return the version number.

    Args:
        program: The (compiled) program.
        name: The program's name in the store.
        store: A ``RunStore`` or the path of its database.
        score: Its score (e.g. ``Evaluate``'s percentage).
        optimizer: The optimizer that produced it (its name and settings are kept).
        parent: ``(name, version)`` it came from; default ``program.dspex_version``.
        meta: Extra JSON-able facts to keep.

    Raises:
        ConfigError: The name is empty or the state is not JSON-able.
        StoreError: The store cannot be written.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a program version needs a non-empty name, got {name!r}")
    origin = parent if parent is not None else getattr(program, "dspex_version", None)
    info: dict[str, Any] = dict(meta or {})
    if optimizer is not None:
        info.update(optimizer_settings(optimizer))
    if origin is not None:
        info["parent"] = {"name": origin[0], "version": int(origin[1])}
    try:
        text = json.dumps(program_state(program), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"program state is not JSON-serialisable: {exc}") from exc
    async with _opened(store) as opened:
        version = await opened.save_version(name, text, score, meta=info)
    program.dspex_version = (name, version)
    return version


def save_version(program: Module, name: str, **kwargs: Any) -> int:
    """Blocking form of :func:`asave_version`."""
    return run_sync(functools.partial(asave_version, program, name, **kwargs), reuse_loop=True)


async def aload_version(name: str, version: int | None = None, *, store: StoreLike,
                        types: Mapping[str, Any] | None = None, load_lm: bool = True) -> Module:
    """Return version ``version`` (default: the latest) of program ``name`` from the store.

    Raises:
        ConfigError: No such program or version (the message lists what exists).
    """
    async with _opened(store) as opened:
        versions = await opened.versions(name)
    if not versions:
        raise ConfigError(f"no program named {name!r} in the run store")
    row = versions[-1] if version is None else next((v for v in versions if v["version"] == version), None)
    if row is None:
        raise ConfigError(f"program {name!r} has no version {version!r}; expected one of "
                          f"{[v['version'] for v in versions]}")
    program = load_state_file(json.loads(row["state"]), types=types, load_lm=load_lm)
    program.dspex_version = (name, row["version"])
    return program


def load(path: str | Path | Mapping[str, Any], *, store: StoreLike | None = None, version: int | None = None,
         types: Mapping[str, Any] | None = None, load_lm: bool = True, allow_pickle: bool = False) -> Module:
    """Load a saved program: from a JSON file, or version ``version`` of a program in ``store``.

    With ``store`` (or ``version``), ``path`` is the program's name in the
    run store (default store path when ``store`` is None); otherwise it is a
    file written by ``module.save`` (or the state dict), or a directory
    written by ``module.save(dir, save_program=True)``, which is unpickled
    only with ``allow_pickle=True`` (as in DSPy).

    Raises:
        ConfigError: Unreadable file, unknown program or version, a custom
            module class (construct it, then ``module.load_state``), or a
            pickled program without ``allow_pickle=True``.
    """
    if store is None and version is None:
        return load_state_file(path, types=types, load_lm=load_lm, allow_pickle=allow_pickle)
    if not isinstance(path, str):
        raise ConfigError(f"with store= or version=, load takes the program's name, got {path!r}")
    target: StoreLike = store if store is not None else DEFAULT_STORE_PATH
    call = functools.partial(aload_version, path, version, store=target, types=types, load_lm=load_lm)
    return run_sync(call, reuse_loop=True)
