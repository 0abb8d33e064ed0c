"""YAML flows: a declarative spec (safe-loaded, pydantic-validated) built into a :class:`Flow`.

A spec has ``name``, ``settings`` (``lm``, ``adapter``, run limits),
``sources``, ``nodes``, ``sinks``, an optional ``dead_letter`` sink and
``edges`` (``"a -> b"`` strings; without them the single source, the nodes in
order and every sink form one chain). A node is a module by type name
(``Predict``, ``ChainOfThought``, ``ReAct``, ``BestOfN``, ``Refine``) with a
signature, or a function by import path (``package.module:function``); tools
and reward functions are import paths too, resolved and checked at load time.
Nothing in the file is executed: ``yaml.safe_load`` semantics, no tags.

Every error is a :class:`~dspex.errors.FlowSpecError` whose message starts
with ``file:line:column`` (1-based) of the offending YAML and says what was
expected; ``err.path``, ``err.line`` and ``err.extra["column"]`` carry the same.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import modules, sinks, sources
from .._context import context as settings_context
from ..adapters import ChatAdapter, JSONAdapter
from ..errors import DspexError, FlowSpecError
from ..lm import LM
from ..modules._module import Module
from ..signatures import ensure_signature
from ._flow import Flow, NodeHandle
from ._policy import ErrorPolicy

if TYPE_CHECKING:
    from ..sinks._base import Sink
    from ..sources._base import Source

__all__ = ["FlowFile", "FlowSpec", "load_yaml", "parse_yaml"]

Loc = tuple[str | int, ...]
MODULE_TYPES = ("Predict", "ChainOfThought", "ReAct", "BestOfN", "Refine")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LMSpec(_Spec):
    """An LM: ``model`` plus options (no keys: ``LM`` reads them from the environment)."""

    model: str
    api_base: str | None = None
    cache: bool = True
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)


class SourceSpec(_Spec):
    """A source: ``jsonl``/``csv``/``text_dir`` files, ``stdin``, or inline ``records``."""

    type: Literal["jsonl", "csv", "text_dir", "stdin", "records"]
    path: str | None = None
    id_field: str | None = None
    pattern: str = "*.txt"
    records: list[Any] | None = None


class SinkSpec(_Spec):
    """A sink: ``jsonl``/``csv`` files, ``sqlite`` table, ``stdout`` or a live ``websocket``."""

    type: Literal["jsonl", "csv", "sqlite", "stdout", "websocket"]
    path: str | None = None
    mode: Literal["a", "w"] = "a"
    table: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)


class RetrySpec(_Spec):
    """``on_error: {retry: n, then: skip, backoff_s: 0.5}``."""

    retry: int = Field(ge=0)
    then: Literal["raise", "skip", "dead_letter"] = "raise"
    backoff_s: float = Field(0.0, ge=0)


class NodeSpecModel(_Spec):
    """A map node: a module by type name, or a function by import path."""

    module: Literal["Predict", "ChainOfThought", "ReAct", "BestOfN", "Refine"] | None = None
    function: str | None = None
    signature: str | None = None
    instructions: str | None = None
    lm: str | LMSpec | None = None
    adapter: Literal["chat", "json"] | None = None
    concurrency: int = Field(1, ge=1)
    ordered: bool = True
    timeout: float | None = Field(default=None, gt=0)
    on_error: Literal["raise", "skip", "dead_letter"] | RetrySpec = "raise"
    tools: list[str] = Field(default_factory=list)
    max_iters: int = Field(20, ge=1)
    N: int = Field(3, ge=1)  # DSPy's name
    reward: str | None = None
    threshold: float = 1.0
    of: Literal["Predict", "ChainOfThought"] = "Predict"


class SettingsSpec(_Spec):
    """Run-wide settings: the default LM and adapter, limits, the failure threshold."""

    lm: str | LMSpec | None = None
    adapter: Literal["chat", "json"] | None = None
    max_in_flight: int | None = Field(default=None, ge=1)
    max_failure_rate: float | None = Field(default=None, ge=0, le=1)
    checkpoint_every: int | None = Field(default=None, ge=1)


class FlowSpec(_Spec):
    """The whole YAML document."""

    name: str = "flow"
    settings: SettingsSpec = Field(default_factory=SettingsSpec)
    sources: dict[str, SourceSpec] = Field(min_length=1)
    nodes: dict[str, NodeSpecModel] = Field(default_factory=dict)
    sinks: dict[str, SinkSpec] = Field(min_length=1)
    dead_letter: SinkSpec | None = None
    edges: list[str] | None = None


@dataclass
class FlowFile:
    """A loaded YAML flow: the flow, its context settings and its run options."""

    flow: Flow
    settings: dict[str, Any] = field(default_factory=dict)
    run_options: dict[str, Any] = field(default_factory=dict)


class _Doc:
    """The parsed document with the start marks of its keys and values."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.values: dict[Loc, yaml.Mark] = {}
        self.keys: dict[Loc, yaml.Mark] = {}
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.load(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = f"{exc.problem or 'invalid YAML'}" + (f" ({exc.context})" if exc.context else "")
            raise self.error(f"invalid YAML: {what}", mark) from None
        except yaml.YAMLError as exc:
            raise FlowSpecError(f"{file}: invalid YAML: {exc}", path=file) from None
        if root is not None:
            self._walk(root, ())
        if not isinstance(self.data, dict):
            raise self.error(f"expected a mapping with sources, nodes and sinks, got "
                             f"{type(self.data).__name__}", root.start_mark if root else None)

    def _walk(self, node: yaml.Node, loc: Loc) -> None:
        self.values[loc] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*loc, str(key.value))
                self.keys[sub] = key.start_mark
                self._walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                self._walk(value, (*loc, i))

    def mark(self, loc: Loc, *, key: bool = False) -> yaml.Mark | None:
        """Return the mark of the deepest known prefix of ``loc``."""
        known: Loc = ()
        for part in loc:
            if (*known, part) not in self.values:
                break
            known = (*known, part)
        if key and known == loc and known in self.keys:
            return self.keys[known]
        return self.values.get(known)

    def error(self, message: str, mark: yaml.Mark | None, loc: Loc = ()) -> FlowSpecError:
        """Return a FlowSpecError located at ``mark``."""
        where = ".".join(str(p) for p in loc)
        text = f"{where}: {message}" if where else message
        if mark is None:
            return FlowSpecError(f"{self.file}: {text}", path=self.file)
        line, column = mark.line + 1, mark.column + 1
        return FlowSpecError(f"{self.file}:{line}:{column}: {text}", path=self.file, line=line,
                             column=column)

    def at(self, loc: Loc, message: str, *, key: bool = False) -> FlowSpecError:
        """Return a FlowSpecError for the YAML at ``loc``."""
        return self.error(message, self.mark(loc, key=key), loc)


def _explain(err: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key; check its spelling"
    if kind == "missing":
        return f"missing required key {err['loc'][-1]!r}"
    given = err.get("input")
    return f"{msg}, got {given!r}" if not isinstance(given, dict | list) else msg


def _validate(doc: _Doc) -> FlowSpec:
    try:
        return FlowSpec.model_validate(doc.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # union members add their own names to loc: keep the parts the YAML has
        loc: Loc = tuple(p for p in first["loc"] if isinstance(p, int) or "[" not in str(p))
        while loc and doc.mark(loc) is None:
            loc = loc[:-1]
        if first["type"] == "missing":
            return_loc = loc[:-1] if loc and loc not in doc.values else loc
            raise doc.at(return_loc, _explain(first)) from None
        raise doc.at(_trim(doc, loc), _explain(first),
                     key=first["type"] == "extra_forbidden") from None


def _trim(doc: _Doc, loc: Loc) -> Loc:
    while loc and loc not in doc.values:
        loc = loc[:-1]
    return loc


def parse_yaml(text: str, file: str = "<string>", *, base: Path | None = None) -> FlowFile:
    """Build a flow from YAML ``text`` (``file`` names it in errors).

    Relative file paths in the spec resolve against ``base`` (default: the
    working directory).

    Raises:
        FlowSpecError: The YAML is malformed, does not match the spec, names
            an unknown module, tool or function, or wires an invalid graph;
            the message starts with ``file:line:column``.
    """
    doc = _Doc(text, file)
    spec = _validate(doc)
    return _Builder(doc, spec, base).build()


def load_yaml(path: str | Path) -> FlowFile:
    """Read and build the YAML flow at ``path`` (see :func:`parse_yaml`).

    Relative file paths inside the spec resolve against the YAML file's folder.

    Raises:
        FlowSpecError: The file cannot be read or is not a valid flow.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowSpecError(f"cannot read flow file {str(path)!r}: {exc}", path=str(path)) from None
    return parse_yaml(text, str(path), base=path.parent)


def resolve(ref: str) -> Any:
    """Import ``package.module:name`` (or ``package.module.name``) and return it.

    Raises:
        ValueError: ``ref`` is not an import path or does not resolve.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep:
        module_name, _, attr = ref.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"expected an import path like 'package.module:function', got {ref!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    return target


class _Scoped(Module):
    """A module run under node-level settings (the node's ``adapter``)."""

    def __init__(self, module: Module, **settings: Any) -> None:
        super().__init__()
        self.module = module
        self._settings = settings

    async def aforward(self, **kwargs: Any) -> Any:
        with settings_context(**self._settings):
            return await self.module.acall(**kwargs)


class _Builder:
    """Turn a validated :class:`FlowSpec` into a :class:`Flow`."""

    def __init__(self, doc: _Doc, spec: FlowSpec, base: Path | None) -> None:
        self.doc = doc
        self.spec = spec
        self.base = base
        self.flow = Flow(spec.name)
        self.handles: dict[str, NodeHandle] = {}

    def file(self, value: str | None, loc: Loc) -> Path:
        if not value:
            raise self.doc.at(loc, "missing required key 'path'")
        path = Path(value)
        return path if path.is_absolute() or self.base is None else self.base / path

    def build(self) -> FlowFile:
        spec = self.spec
        names = [*spec.sources, *spec.nodes, *spec.sinks]
        for name in names:
            if names.count(name) > 1:
                raise self.doc.at(("sinks", name), f"name {name!r} is used twice; names must be unique",
                                  key=True)
        edges = self.edges()
        parents: dict[str, list[str]] = {}
        for src, dst in edges:
            parents.setdefault(dst, []).append(src)
        for name, source in spec.sources.items():
            self.handles[name] = self.flow.source(self.source(source, ("sources", name)), name=name)
        for name, node in spec.nodes.items():
            self.handles[name] = self.node(name, node, self.inputs(name, parents, ("nodes", name)))
        for name, sink in spec.sinks.items():
            ups = self.inputs(name, parents, ("sinks", name))
            upstream = ups[0] if len(ups) == 1 else self.flow.merge(*ups, name=f"{name}-merge")
            upstream.sink(self.sink(sink, ("sinks", name)), name=name)
        if spec.dead_letter is not None:
            self.flow.dead_letter(self.sink(spec.dead_letter, ("dead_letter",)))
        try:
            self.flow.check()
        except DspexError as exc:
            raise self.doc.at(("edges",) if spec.edges is not None else (), exc.message) from None
        return FlowFile(self.flow, self.settings(), self.run_options())

    def edges(self) -> list[tuple[str, str]]:
        spec = self.spec
        if spec.edges is None:
            if len(spec.sources) != 1:
                raise self.doc.at(("sources",), "with several sources, list the wiring under 'edges'")
            chain = [*spec.sources, *spec.nodes]
            return [*pairwise(chain), *((chain[-1], s) for s in spec.sinks)]
        known = {*spec.sources, *spec.nodes, *spec.sinks}
        pairs: list[tuple[str, str]] = []
        for i, text in enumerate(spec.edges):
            parts = [p.strip() for p in text.split("->")]
            if len(parts) < 2 or not all(parts):
                raise self.doc.at(("edges", i), f"expected 'upstream -> downstream', got {text!r}")
            for part in parts:
                if part not in known:
                    raise self.doc.at(("edges", i), f"unknown node {part!r}; expected one of "
                                      f"{', '.join(sorted(known))}")
            pairs.extend(pairwise(parts))
        return pairs

    def inputs(self, name: str, parents: dict[str, list[str]], loc: Loc) -> list[NodeHandle]:
        ups = parents.get(name, [])
        if not ups:
            raise self.doc.at(loc, f"{name!r} has no upstream; add an edge 'something -> {name}'", key=True)
        missing = [u for u in ups if u not in self.handles]
        if missing:
            raise self.doc.at(loc, f"{name!r} reads from {missing[0]!r}, which must come before it "
                              "(sources, then nodes in order, then sinks)", key=True)
        return [self.handles[u] for u in ups]

    def source(self, spec: SourceSpec, loc: Loc) -> Source | Any:
        if spec.type == "records":
            if spec.records is None:
                raise self.doc.at(loc, "missing required key 'records' (a list of records)")
            return list(spec.records)
        if spec.type == "stdin":
            return sources.stdin(id_field=spec.id_field)
        path = self.file(spec.path, loc)
        if spec.type == "text_dir":
            return sources.text_dir(path, spec.pattern)
        factory = sources.jsonl if spec.type == "jsonl" else sources.csv
        return factory(path, id_field=spec.id_field)

    def sink(self, spec: SinkSpec, loc: Loc) -> Sink:
        if spec.type == "stdout":
            return sinks.stdout()
        if spec.type == "websocket":
            return sinks.websocket(host=spec.host, port=spec.port)
        path = self.file(spec.path, loc)
        if spec.type == "sqlite":
            if not spec.table:
                raise self.doc.at(loc, "missing required key 'table' for a sqlite sink")
            return sinks.sqlite(path, spec.table)
        factory = sinks.jsonl if spec.type == "jsonl" else sinks.csv
        return factory(path, mode=spec.mode)

    def node(self, name: str, spec: NodeSpecModel, ups: list[NodeHandle]) -> NodeHandle:
        loc: Loc = ("nodes", name)
        if (spec.module is None) == (spec.function is None):
            raise self.doc.at(loc, "expected exactly one of 'module' (a type name: "
                              f"{', '.join(MODULE_TYPES)}) or 'function' (an import path)", key=True)
        fn = self.module(spec, loc) if spec.module else self.resolve(spec.function or "", (*loc, "function"))
        upstream = ups[0] if len(ups) == 1 else self.flow.merge(*ups, name=f"{name}-merge")
        policy = spec.on_error
        on_error = policy if isinstance(policy, str) else ErrorPolicy(
            action=policy.then, retries=policy.retry, backoff_s=policy.backoff_s)
        try:
            return upstream.map(fn, concurrency=spec.concurrency, ordered=spec.ordered,
                                on_error=on_error, name=name, timeout=spec.timeout)
        except DspexError as exc:
            raise self.doc.at(loc, exc.message, key=True) from None

    def resolve(self, ref: str, loc: Loc) -> Any:
        try:
            target = resolve(ref)
        except ValueError as exc:
            raise self.doc.at(loc, str(exc)) from None
        if not callable(target):
            raise self.doc.at(loc, f"{ref!r} is not callable")
        return target

    def module(self, spec: NodeSpecModel, loc: Loc) -> Module:
        if not spec.signature:
            raise self.doc.at(loc, f"a {spec.module} node needs 'signature' (e.g. 'question -> answer')",
                              key=True)
        kind = spec.module if spec.module in ("Predict", "ChainOfThought", "ReAct") else spec.of
        try:
            signature: Any = spec.signature
            if spec.instructions:
                signature = ensure_signature(spec.signature)
                assert signature is not None  # a non-empty string always makes one
                signature = signature.with_instructions(spec.instructions)
            if kind == "ReAct":
                tools = [self.resolve(t, (*loc, "tools", i)) for i, t in enumerate(spec.tools)]
                module: Module = modules.ReAct(signature, tools=tools, max_iters=spec.max_iters)
            else:
                module = getattr(modules, kind)(signature)
            if spec.module in ("BestOfN", "Refine"):
                if not spec.reward:
                    raise self.doc.at(loc, f"a {spec.module} node needs 'reward' (an import path)", key=True)
                reward = self.resolve(spec.reward, (*loc, "reward"))
                module = getattr(modules, spec.module)(module, spec.N, reward, spec.threshold)
        except FlowSpecError:
            raise
        except DspexError as exc:
            raise self.doc.at((*loc, "signature"), exc.message) from None
        if spec.lm is not None:
            module.set_lm(self.lm(spec.lm, (*loc, "lm")))
        if spec.adapter is not None:
            module = _Scoped(module, adapter=_adapter(spec.adapter))
        return module

    def lm(self, spec: str | LMSpec, loc: Loc) -> Any:
        options = {"model": spec} if isinstance(spec, str) else spec.model_dump(exclude_none=True)
        try:
            return LM(**options)
        except DspexError as exc:
            raise self.doc.at(loc, exc.message) from None

    def settings(self) -> dict[str, Any]:
        spec = self.spec.settings
        found: dict[str, Any] = {}
        if spec.lm is not None:
            found["lm"] = self.lm(spec.lm, ("settings", "lm"))
        if spec.adapter is not None:
            found["adapter"] = _adapter(spec.adapter)
        return found

    def run_options(self) -> dict[str, Any]:
        spec = self.spec.settings
        names = ("max_in_flight", "max_failure_rate", "checkpoint_every")
        return {k: getattr(spec, k) for k in names if getattr(spec, k) is not None}


def _adapter(name: str) -> Any:
    return JSONAdapter() if name == "json" else ChatAdapter()
