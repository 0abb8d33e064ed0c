"""Program state as JSON: save, load, ``dx.load`` and ``load_dspy_state``.

The file format is DSPy's (``module.save("x.json")``): one entry per
predictor path with ``traces``, ``train``, ``demos`` (JSON values; pydantic
models and datetimes are dumped), ``signature`` (instructions and each
field's prefix/description) and ``lm`` (its settings, never its API key),
plus ``metadata``. dspex adds ``metadata.program``, which says how to rebuild
a built-in module (class, typed signature, config) so that ``dx.load(path)``
returns a working program; custom modules are rebuilt by the user and
loaded with ``module.load(path)``. ``load_dspy_state`` imports the demos and
instructions of a file DSPy saved.
"""

from __future__ import annotations

import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from .._version import __version__
from ..errors import ConfigError, DspexError, StateMismatchError
from ..lm import LM
from ..signatures import Signature, make_signature
from ..signatures._fields import TYPE_UNDEFINED_KEY
from ._example import Example
from ._pickle import load_program_dir

if TYPE_CHECKING:
    from ._module import Module
    from ._predict import Predict

__all__ = [
    "apply_predictor_state",
    "apply_state",
    "load",
    "load_dspy_state",
    "predictor_state",
    "read_state",
    "register_loadable",
    "save_program",
    "set_path",
]

_SECRET_KEYS = frozenset(
    {"api_key", "apikey", "key", "secret", "password", "token", "authorization", "credentials", "headers"}
)
_SECRET_SUFFIXES = ("_api_key", "_secret", "_password", "_token", "_credentials", "_key")
_UNSAFE_LM_KEYS = ("api_base", "base_url", "model_list")
_LOADABLE: dict[str, type[Any]] = {}


def register_loadable(path: str) -> Callable[[type[Any]], type[Any]]:
    """Let ``dx.load`` rebuild the decorated class, saved as ``path``.

    The class provides ``_program_spec(self) -> dict`` and a classmethod
    ``_from_program_spec(spec, types) -> module``.
    """

    def deco(cls: type[Any]) -> type[Any]:
        _LOADABLE[path] = cls
        cls._program_path = path
        return cls

    return deco


def _jsonable(value: Any) -> Any:
    if isinstance(value, Example):
        return {k: _jsonable(v) for k, v in value.items(include_dspy=True)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return to_jsonable_python(value, fallback=str)


def _is_secret(key: Any) -> bool:
    low = str(key).lower()
    return low in _SECRET_KEYS or low.endswith(_SECRET_SUFFIXES)


def _redact(value: Any) -> Any:
    """Drop every key that may hold a credential, recursively."""
    if isinstance(value, Mapping):
        return {k: _redact(v) for k, v in value.items() if not _is_secret(k)}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _lm_state(lm: Any) -> dict[str, Any] | None:
    if lm is None:
        return None
    dump = getattr(lm, "dump_state", None)
    state = dump() if callable(dump) else {"model": getattr(lm, "model", None)}
    return _redact(_jsonable(state)) if state is not None else None


def predictor_state(predictor: Predict) -> dict[str, Any]:
    """Return one predictor's state in DSPy's JSON format."""
    return {
        "traces": _jsonable(predictor.traces),
        "train": _jsonable(predictor.train),
        "demos": [_jsonable(demo) for demo in predictor.demos],
        "signature": predictor.signature.dump_state(),
        "lm": _lm_state(predictor.lm),
    }


def _lm_from_state(state: Mapping[str, Any]) -> Any:
    safe = {k: v for k, v in state.items() if k not in _UNSAFE_LM_KEYS}
    model = safe.pop("model", None)
    if not isinstance(model, str):
        raise ConfigError(f"saved LM state has no model name: {state!r}")
    try:
        return LM.from_state({"model": model, **safe})
    except Exception as exc:
        raise ConfigError(
            f"cannot rebuild the saved LM {model!r} ({exc}); load with load_lm=False and set the LM yourself"
        ) from exc


def _check_predictor_state(name: str, predictor: Predict, state: Any) -> None:
    if not isinstance(state, Mapping) or "signature" not in state:
        raise ConfigError(f"state for predictor {name!r} must be a dict with 'demos' and 'signature', got {state!r}")
    fields = state["signature"].get("fields", [])
    if len(fields) != len(predictor.signature.fields):
        raise ConfigError(
            f"state for predictor {name!r} has {len(fields)} field(s) but its signature "
            f"{predictor.signature.signature!r} has {len(predictor.signature.fields)}"
        )


def apply_predictor_state(predictor: Predict, state: Mapping[str, Any], *, load_lm: bool = True) -> None:
    """Set a predictor's demos, instructions, field texts (and LM) from ``state``."""
    _check_predictor_state("self", predictor, state)
    lm = _lm_from_state(state["lm"]) if load_lm and state.get("lm") else predictor.lm
    predictor.traces = list(state.get("traces", []))
    predictor.train = list(state.get("train", []))
    predictor.signature = predictor.signature.load_state(state["signature"])
    predictor.demos = [Example(d) if isinstance(d, Mapping) else d for d in state.get("demos", [])]
    predictor.lm = lm


def apply_state(
    module: Module, state: Mapping[str, Any], *, load_lm: bool = True, strict: bool = True
) -> list[str]:
    """Apply a whole-program state; validate everything before changing anything.

    Returns:
        The predictor paths that were loaded.

    Raises:
        ConfigError: A predictor of ``module`` has no entry (when ``strict``)
            or an entry does not fit its signature.
    """
    named = module.named_predictors()
    if named and named[0][0] == "self" and "self" not in state and "signature" in state:
        state = {"self": state}  # a Predict saves its own state flat, as DSPy does
    missing = [name for name, _ in named if name not in state]
    if missing and strict:
        available = [k for k in state if k != "metadata"]
        raise StateMismatchError(
            f"saved state has no entry for predictor(s) {missing}; it has {available}. "
            "Is it the state of a different program?"
        )
    loaded = [(name, p) for name, p in named if name in state]
    for name, predictor in loaded:
        _check_predictor_state(name, predictor, state[name])
    for name, predictor in loaded:
        apply_predictor_state(predictor, state[name], load_lm=load_lm)
    return [name for name, _ in loaded]


# -- rebuilding built-in programs --------------------------------------------------
def type_to_str(tp: Any) -> str:
    """Return ``tp`` as signature-string syntax (``list[str]``, ``int | None``)."""
    if tp is type(None) or tp is None:
        return "None"
    if tp is typing.Any:
        return "Any"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_to_str(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_to_str(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def signature_spec(sig: type[Signature]) -> dict[str, Any]:
    """Return what is needed to rebuild ``sig``: its typed string and texts."""
    def side(fields: Mapping[str, Any]) -> str:
        return ", ".join(
            n if (f.json_schema_extra or {}).get(TYPE_UNDEFINED_KEY) else f"{n}: {type_to_str(f.annotation)}"
            for n, f in fields.items()
        )

    return {"string": f"{side(sig.input_fields)} -> {side(sig.output_fields)}", **sig.dump_state()}


def signature_from_spec(spec: Mapping[str, Any], types_: Mapping[str, Any] | None = None) -> type[Signature]:
    """Rebuild a signature from :func:`signature_spec` output."""
    try:
        sig = make_signature(spec["string"], types=types_)
    except DspexError as exc:
        raise ConfigError(
            f"cannot rebuild signature {spec.get('string')!r}: {exc}; pass types={{'Name': Type}} "
            "for custom types"
        ) from exc
    return sig.load_state(spec)


def jsonable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the JSON-serialisable, non-secret items of a predictor config."""
    out = {}
    for key, value in config.items():
        if _is_secret(key):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out


def program_spec(module: Module) -> dict[str, Any] | None:
    """Return ``{"class": ..., ...}`` for a registered built-in module, else a class note."""
    path = getattr(type(module), "_program_path", None)
    if path is not None and _LOADABLE.get(path) is type(module):
        spec: dict[str, Any] = module._program_spec()  # type: ignore[attr-defined]
        return {"class": path, **spec}
    cls = type(module)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "rebuildable": False}


# -- files ----------------------------------------------------------------------------
def program_state(module: Module) -> dict[str, Any]:
    """Return what ``save`` writes: the module's state plus how to rebuild it."""
    state: dict[str, Any] = module.dump_state()
    state["metadata"] = {
        "dependency_versions": {"python": f"{sys.version_info.major}.{sys.version_info.minor}"},
        "dspex_version": __version__,
        "program": program_spec(module),
    }
    return state


def save_program(module: Module, path: str | Path) -> None:
    """Write ``module``'s state to a ``.json`` file (atomically)."""
    target = Path(path)
    if target.suffix != ".json":
        raise ConfigError(f"save path must end with .json, got {str(target)!r}")
    state = program_state(module)
    try:
        text = json.dumps(state, indent=2, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"program state is not JSON-serialisable: {exc}", path=str(target)) from exc
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, target)


def read_state(path_or_state: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Return the state dict in a saved JSON file (or a dict given as is)."""
    if isinstance(path_or_state, Mapping):
        return dict(path_or_state)
    target = Path(path_or_state)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no saved program at {str(target)!r}", path=str(target)) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read saved program {str(target)!r}: {exc}", path=str(target)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"saved program {str(target)!r} must hold a JSON object", path=str(target))
    return data


def load(path: str | Path | Mapping[str, Any], *, types: Mapping[str, Any] | None = None,
         load_lm: bool = True, allow_pickle: bool = False) -> Module:
    """Load a program saved with ``module.save(path)`` (or its state dict).

    Rebuilds built-in modules (``Predict``, ``ChainOfThought`` …) from the
    file and applies their state. A directory written with
    ``save_program=True`` is unpickled whole (any module class), which,
    as in DSPy, needs ``allow_pickle=True``.

    Args:
        path: A ``.json`` file written by ``save`` (or its state dict), or a
            ``save_program`` directory.
        types: Custom types named in the saved signatures.
        load_lm: Also rebuild saved LM settings (without API keys).
        allow_pickle: Allow unpickling a ``save_program`` directory (runs
            code from the file: only for trusted files).

    Raises:
        ConfigError: The file is unreadable, it holds a custom module
            (construct it, then call ``module.load(path)``), or it is a
            pickle and ``allow_pickle`` is False.
    """
    if not isinstance(path, Mapping) and Path(path).is_dir():
        program: Module = load_program_dir(path, allow_pickle)
        return program
    state = read_state(path)
    spec = (state.get("metadata") or {}).get("program")
    if not isinstance(spec, Mapping) or spec.get("class") not in _LOADABLE:
        name = spec.get("class") if isinstance(spec, Mapping) else None
        raise ConfigError(
            f"cannot rebuild the program in {str(path)!r}: saved class {name!r} is not a built-in dspex "
            f"module ({', '.join(sorted(_LOADABLE))}); construct it yourself and call module.load(path)",
            path=str(path),
        )
    module: Module = _LOADABLE[spec["class"]]._from_program_spec(spec, types)
    apply_state(module, state, load_lm=load_lm)
    return module


def load_dspy_state(program: Module, path_or_state: str | Path | Mapping[str, Any], *, strict: bool = True) -> Module:
    """Import demos and instructions from a program state DSPy saved.

    ``program`` must have the same structure (predictor paths and fields)
    as the DSPy program; LM settings in the file are ignored.

    Returns:
        ``program``, updated in place.

    Raises:
        ConfigError: The file is unreadable, or a predictor has no entry
            (when ``strict``) or a different number of fields.
    """
    apply_state(program, read_state(path_or_state), load_lm=False, strict=strict)
    return program


def set_path(root: Any, path: str, value: Any) -> None:
    """Set the attribute at a ``named_predictors`` path (``a.b[0]['k']``)."""
    if path == "self":
        raise ConfigError("cannot replace the root predictor in place; wrap it in a module first")
    parts = re.findall(r"\.?([A-Za-z_]\w*)|\[(\d+)\]|\['([^']*)'\]", path)
    target = root
    for i, (attr, index, key) in enumerate(parts):
        last = i == len(parts) - 1
        if attr:
            if last:
                setattr(target, attr, value)
            else:
                target = getattr(target, attr)
        else:
            sub: Any = int(index) if index else key
            if last:
                target[sub] = value
            else:
                target = target[sub]
