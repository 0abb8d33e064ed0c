"""``Tool``: a Python callable (sync or async) described for an LM.

``Tool(func)`` reads the name from ``func.__name__``, the description from its
docstring and the JSON schema of each argument from its signature via
pydantic, exactly as DSPy's ``dspy.Tool`` does (so ReAct prompts match).
Arguments are validated before the call: :meth:`Tool.validate_args` raises
:class:`~dspex.errors.ToolError` naming the argument. :meth:`Tool.acall` awaits
async tools and runs sync ones in a worker thread (``anyio.to_thread``), under
an optional per-tool ``timeout``. Errors raised by the function itself
propagate unchanged, so callers (ReAct) can turn them into observations.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import typing
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import pydantic
from pydantic import GetCoreSchemaHandler, TypeAdapter
from pydantic_core import core_schema, to_jsonable_python

from .._util._sync import run_sync
from ..errors import ToolError
from ._tool_calls import _loads

__all__ = ["Tool"]

_SKIPPED = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class Tool:
    """A callable the LM may ask to run, with a name, description and argument schema.

    Args:
        func: Any sync or async callable (function, method, callable object).
        name: Defaults to ``func.__name__``.
        desc: Defaults to the docstring.
        args: Per-argument JSON schemas, to override the inferred ones.
        arg_types: Per-argument types, to override the annotations.
        arg_desc: Per-argument descriptions, added to the schemas.
        timeout: Seconds :meth:`acall` may take before a ``ToolError``.

    Raises:
        ToolError: ``func`` is not callable or its signature cannot be read.

    Example:
        >>> def add(x: int, y: int = 1) -> int:
        ...     '''Add two numbers.'''
        ...     return x + y
        >>> t = Tool(add)
        >>> t.name, t.args
        ('add', {'x': {'type': 'integer'}, 'y': {'type': 'integer', 'default': 1}})
        >>> t(**t.validate_args({"x": "2"}))
        3
    """

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        desc: str | None = None,
        args: Mapping[str, Any] | None = None,
        arg_types: Mapping[str, Any] | None = None,
        arg_desc: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        if not callable(func):
            raise ToolError(f"Tool expects a callable, got {type(func).__name__} {func!r}")
        self.func = func
        self.name: str = name or _callable_name(func)
        self.desc: str | None = desc if desc is not None else _docstring(func)
        self.timeout = timeout
        params = _parameters(func, self.name)
        hints = _hints(func)
        types = {p.name: hints.get(p.name, Any) for p in params if p.kind not in _SKIPPED}
        types.update(arg_types or {})
        self.arg_types: dict[str, Any] = types
        self.has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        self._positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]
        defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        self._required = [n for n in types if n not in defaults]
        self.arg_desc: dict[str, str] = dict(arg_desc or {})
        self.args: dict[str, Any] = (
            dict(args) if args is not None else _arg_schemas(types, defaults, self.arg_desc, self.name)
        )
        self._model, self._field_args = _args_model(self.name, types, defaults, self.has_kwargs)
        self._is_async = _is_async(func)

    @property
    def is_async(self) -> bool:
        """True if calling the function returns an awaitable."""
        return self._is_async

    def parameters_schema(self) -> dict[str, Any]:
        """Return the JSON schema of all arguments: ``{"type": "object", ...}``."""
        return {
            "type": "object",
            "properties": {k: dict(v) for k, v in self.args.items()},
            "required": [k for k in self.args if k in self._required],
        }

    def validate_args(self, args: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """Validate and coerce ``args`` (a dict, or a JSON object string) for a call.

        Returns:
            The keyword arguments to call the function with; arguments left out
            keep the function's defaults.

        Raises:
            ToolError: ``args`` is not an object, an argument is unknown or
                missing, or a value does not fit its type. The message names
                the tool and the argument.
        """
        if args is None:
            args = {}
        if isinstance(args, str):
            args = _loads(args) if args.strip() else {}
        if not isinstance(args, Mapping):
            raise ToolError(f"tool {self.name!r} expects its arguments as a JSON object, got {args!r}")
        unknown = [k for k in args if k not in self.arg_types]
        if unknown and not self.has_kwargs:
            raise ToolError(
                f"tool {self.name!r} got unknown argument {unknown[0]!r}; expected arguments "
                f"{list(self.arg_types)}",
                field=str(unknown[0]),
            )
        data = dict(args)
        for key, value in data.items():  # LMs often send nested objects as JSON strings
            if isinstance(value, str) and self.args.get(key, {}).get("type") in ("object", "array"):
                with contextlib.suppress(ValueError):  # not JSON after all: validate the string
                    data[key] = json.loads(value)
        try:
            parsed = self._model.model_validate(data)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            arg = str(err["loc"][0]) if err["loc"] else "?"
            what = "is required" if err["type"] == "missing" else f"is invalid: {err['msg']}"
            raise ToolError(
                f"tool {self.name!r}: argument {arg!r} {what} (got {args.get(arg, '<missing>')!r}); "
                f"expected {self.args.get(arg, {})}",
                field=arg,
            ) from None
        out = {self._field_args[f]: getattr(parsed, f) for f in parsed.model_fields_set if f in self._field_args}
        out.update({k: v for k, v in args.items() if k not in self.arg_types})
        return out

    def _invoke(self, kwargs: dict[str, Any]) -> Any:
        positional = [kwargs.pop(n) for n in self._positional if n in kwargs]
        return self.func(*positional, **kwargs)

    def __call__(self, **kwargs: Any) -> Any:
        """Validate ``kwargs`` and call the tool; async tools are run to completion.

        Raises:
            ToolError: The arguments are invalid.
        """
        parsed = self.validate_args(kwargs)
        if self._is_async:
            return run_sync(self._acall_parsed, parsed)
        return self._invoke(parsed)

    async def acall(self, **kwargs: Any) -> Any:
        """Validate ``kwargs`` and run the tool without blocking the event loop.

        Async tools are awaited; sync tools run in a worker thread. With a
        ``timeout``, the call is cancelled (a sync tool's thread is abandoned)
        after that many seconds.

        Raises:
            ToolError: The arguments are invalid, or the call timed out.
        """
        return await self._acall_parsed(self.validate_args(kwargs))

    async def arun(self, args: Mapping[str, Any] | str | None) -> Any:
        """Validate ``args`` (a dict or a JSON object string) and run the tool.

        The same as ``acall(**args)`` for arguments that arrive as data (an
        LM's tool call), including a JSON string and names that are not
        Python identifiers.

        Raises:
            ToolError: The arguments are invalid, or the call timed out.
        """
        return await self._acall_parsed(self.validate_args(args))

    async def _acall_parsed(self, parsed: dict[str, Any]) -> Any:
        with anyio.move_on_after(self.timeout):
            if self._is_async:
                return await self._invoke(parsed)
            result = await anyio.to_thread.run_sync(
                functools.partial(self._invoke, parsed), abandon_on_cancel=self.timeout is not None
            )
            if inspect.isawaitable(result):
                return await result
            return result
        raise ToolError(f"tool {self.name!r} timed out after {self.timeout} s; expected it to finish in time")

    def format(self) -> str:
        """Return the tool as shown in prompts (``str(tool)``)."""
        return str(self)

    def __str__(self) -> str:
        desc = f", whose description is <desc>{self.desc}</desc>.".replace("\n", "  ") if self.desc else "."
        return f"{self.name}{desc} It takes arguments {self.args}."

    def __repr__(self) -> str:
        return f"Tool(name={self.name}, desc={self.desc}, args={self.args})"

    @classmethod
    def _coerce(cls, value: Any) -> Tool:
        if isinstance(value, Tool):
            return value
        if callable(value):
            return cls(value)
        raise ValueError(f"Tool expects a dx.Tool or a callable, got {type(value).__name__} {value!r}")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._coerce,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


def _callable_name(func: Any) -> str:
    for obj in (func, getattr(func, "func", None)):  # functools.partial keeps .func
        name = getattr(obj, "__name__", None)
        if isinstance(name, str):
            return name
    return type(func).__name__


def _parameters(func: Callable[..., Any], name: str) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ToolError(f"cannot read the signature of tool {name!r}: {exc}") from None


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    while isinstance(func, functools.partial):
        func = func.func
    # A callable object's hints are those of its __call__ method.
    target: Any = func if inspect.isfunction(func) or inspect.ismethod(func) else type(func).__call__
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolved forward references: such arguments are untyped
        return {}


def _is_async(func: Any) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    call = type(func).__call__ if callable(func) else None
    return not inspect.isfunction(func) and not inspect.ismethod(func) and inspect.iscoroutinefunction(call)


def _arg_schemas(
    types: Mapping[str, Any], defaults: Mapping[str, Any], arg_desc: Mapping[str, str], name: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arg, tp in types.items():
        try:
            schema = _inline_refs(TypeAdapter(tp).json_schema())
        except Exception as exc:
            raise ToolError(
                f"tool {name!r}: argument {arg!r} has type {tp!r} with no JSON schema ({exc}); "
                "expected JSON-compatible types (str, int, list[...], pydantic models, ...)",
                field=arg,
            ) from None
        if arg in defaults:
            try:
                schema["default"] = to_jsonable_python(defaults[arg])
            except Exception:
                schema["default"] = repr(defaults[arg])
        if arg in arg_desc:
            schema["description"] = arg_desc[arg]
        out[arg] = schema
    return out


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", None)
    if not defs:
        return schema

    def walk(node: Any, depth: int) -> Any:
        if depth > 32:
            raise ValueError("recursive model")
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**walk(defs[ref.split("/")[-1]], depth + 1), **walk(rest, depth + 1)}
            return {k: walk(v, depth) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        return node

    return walk(schema, 0)  # type: ignore[no-any-return]


def _docstring(func: Any) -> str | None:
    while isinstance(func, functools.partial):
        func = func.func
    doc = getattr(func, "__doc__", None)
    return doc if isinstance(doc, str) else None


def _args_model(
    name: str, types: Mapping[str, Any], defaults: Mapping[str, Any], extra: bool
) -> tuple[type[pydantic.BaseModel], dict[str, str]]:
    """Return a model validating the arguments, and its field name → argument name map."""
    fields: dict[str, Any] = {}
    field_args: dict[str, str] = {}
    for i, (arg, tp) in enumerate(types.items()):
        field_name = arg if not arg.startswith("_") else f"arg{i}{arg}"  # pydantic refuses "_x"
        field_args[field_name] = arg
        fields[field_name] = (tp, pydantic.Field(defaults.get(arg, ...), alias=arg))
    config = pydantic.ConfigDict(
        arbitrary_types_allowed=True, extra="allow" if extra else "ignore", protected_namespaces=()
    )
    try:
        model = pydantic.create_model(f"{name}_args", __config__=config, **fields)
    except Exception as exc:
        raise ToolError(f"cannot build an argument model for tool {name!r}: {exc}") from None
    return model, field_args
