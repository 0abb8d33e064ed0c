"""The flow graph: node specs, validation before a run, and fusion.

A flow is a DAG of :class:`NodeSpec` (sources, operators, sinks) joined by
edges from a node's output *port* to a node's input. Before anything runs,
:func:`plan` checks it and raises :class:`~dspex.errors.GraphError` naming the
nodes at fault: no source, a cycle, a dangling node (an output never sunk),
fields a module needs that the upstream records do not provide (when the
upstream schema is known), mismatched field types, a ``validate`` with retries
or a ``timeout`` that is not right after a ``map``. It then *fuses* each such
validate/timeout node into its map (so retries can re-invoke the module) and
returns the :class:`Plan` the runner executes.

The plan works on its own copies of the flow's node specs, and a run's fused
map is a per-run copy of the map operator (:meth:`Plan.stages`): planning and
running never change the flow or the operators it holds, so one flow can be
planned and run several times, also at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import GraphError
from ..operators._control import TimeoutOperator
from ..operators._map import MapOperator
from ..operators._validate import ValidateOperator

if TYPE_CHECKING:
    from ..backpressure._edge import BufferPolicy
    from ..operators._base import NodeContext, Operator
    from ..operators._validate import Check
    from ..sinks._base import Sink
    from ..sources._base import Source
    from ._policy import ErrorPolicy

__all__ = ["NodeSpec", "Plan", "plan"]

_FUSE_INTO = ("map", "ab_split")


@dataclass(eq=False)
class NodeSpec:
    """One node of a flow as declared (not yet running)."""

    name: str
    kind: str
    index: int
    policy: ErrorPolicy
    op: Operator | None = None
    source: Source | None = None
    sinks: tuple[Sink, ...] = ()
    inputs: list[tuple[NodeSpec, int]] = field(default_factory=list)
    buffer: BufferPolicy | int | None = None
    children: list[list[NodeSpec]] = field(default_factory=list)

    @property
    def port_names(self) -> tuple[str, ...]:
        """Return the names of the node's output ports."""
        if self.kind == "sink":
            return ()
        return self.op.port_names if self.op is not None else ("out",)

    def __repr__(self) -> str:
        return f"<node {self.name!r}>"


@dataclass(frozen=True)
class Plan:
    """A validated graph, ready to run (its node specs are the plan's own copies).

    Attributes:
        nodes: Every node in topological order.
        fused: Validate/timeout nodes fused into a map -> that map's node.
    """

    nodes: list[NodeSpec]
    fused: dict[NodeSpec, NodeSpec]

    def stages(self, contexts: Mapping[NodeSpec, NodeContext]) -> dict[NodeSpec, Operator]:
        """Return the operator each running operator node runs, for one run.

        A map with fused validate/timeout nodes gets a per-run copy
        (:meth:`~dspex.operators.MapOperator.staged`) holding their checks,
        bound to their ``contexts``, and the fused deadline; every other node
        runs its operator as declared. No operator is changed.
        """
        checks: dict[NodeSpec, list[Check]] = {}
        deadlines: dict[NodeSpec, tuple[float, NodeContext]] = {}
        for node, target in self.fused.items():  # in flow order: checks run in that order
            if isinstance(node.op, ValidateOperator):
                checks.setdefault(target, []).append(node.op.check(contexts[node]))
            elif isinstance(node.op, TimeoutOperator):
                deadlines[target] = (node.op.seconds, contexts[node])
        stages: dict[NodeSpec, Operator] = {}
        for node in self.runnable():
            op = node.op
            if op is None:
                continue
            if isinstance(op, MapOperator) and (node in checks or node in deadlines):
                seconds, owner = deadlines.get(node) or (None, None)
                op = op.staged(checks=tuple(checks.get(node, ())), timeout=seconds, timeout_ctx=owner)
            stages[node] = op
        return stages

    def runnable(self) -> list[NodeSpec]:
        """Return the nodes that run as tasks (fused nodes excluded)."""
        return [n for n in self.nodes if n not in self.fused]

    def targets(self, node: NodeSpec, port: int) -> list[NodeSpec]:
        """Return the running nodes fed by ``node``'s ``port`` (through fusions)."""
        found: list[NodeSpec] = []
        for child in node.children[port] if node.children else ():
            if child in self.fused:
                found.extend(self.targets(child, 0))
            else:
                found.append(child)
        return found

    def tail(self, node: NodeSpec) -> NodeSpec:
        """Return the last node fused into ``node`` (itself if none)."""
        while node.children and len(node.children[0]) == 1 and node.children[0][0] in self.fused:
            node = node.children[0][0]
        return node


def _link(nodes: list[NodeSpec]) -> None:
    for node in nodes:
        node.children = [[] for _ in node.port_names]
    for node in nodes:
        for parent, port in node.inputs:
            parent.children[port].append(node)


def _toposort(nodes: list[NodeSpec]) -> list[NodeSpec]:
    indegree = {n: len(n.inputs) for n in nodes}
    ready = [n for n in nodes if indegree[n] == 0]
    order: list[NodeSpec] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for port in node.children:
            for child in port:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
    if len(order) != len(nodes):
        stuck = sorted(n.name for n in nodes if indegree[n] > 0)
        raise GraphError(f"the flow has a cycle through node(s) {', '.join(map(repr, stuck))}")
    return order


def _check_dangling(nodes: list[NodeSpec]) -> None:
    problems = []
    for node in nodes:
        for port, name in enumerate(node.port_names):
            if node.children[port]:
                continue
            where = repr(node.name) if len(node.port_names) == 1 else f"{node.name!r} output {name!r}"
            problems.append(where)
    if problems:
        raise GraphError(
            f"dangling node(s): {', '.join(problems)} never reach a sink; "
            f"end every branch with .sink(...)",
            node=problems[0].split(" ")[0].strip("'"),
        )


def _fusable(node: NodeSpec) -> NodeSpec | None:
    """Return the map node ``node`` (validate/timeout) can fuse into, or None."""
    if len(node.inputs) != 1:
        return None
    parent, port = node.inputs[0]
    if len(parent.children[port]) != 1:
        return None
    if isinstance(parent.op, (ValidateOperator, TimeoutOperator)):
        return parent  # resolved through the chain by the caller
    if isinstance(parent.op, MapOperator) and parent.op.kind in _FUSE_INTO:
        return parent
    return None


def _fuse(order: list[NodeSpec]) -> dict[NodeSpec, NodeSpec]:
    fused: dict[NodeSpec, NodeSpec] = {}
    for node in order:
        if not isinstance(node.op, (ValidateOperator, TimeoutOperator)):
            continue
        parent = _fusable(node)
        if parent is not None and parent in fused:
            parent = fused[parent]
        elif parent is not None and not isinstance(parent.op, MapOperator):
            parent = None
        if parent is None:
            _unfusable(node)
            continue
        fused[node] = parent
    return fused


def _unfusable(node: NodeSpec) -> None:
    upstream = ", ".join(repr(p.name) for p, _ in node.inputs) or "nothing"
    if isinstance(node.op, TimeoutOperator):
        raise GraphError(
            f"timeout node {node.name!r} must come right after a map node that feeds only it; "
            f"its upstream is {upstream}",
            node=node.name,
        )
    if isinstance(node.op, ValidateOperator) and node.op.retries > 0:
        raise GraphError(
            f"validate node {node.name!r} has retries={node.op.retries}, which re-invoke the "
            f"map node right before it; its upstream is {upstream} (a map feeding only it "
            f"is expected)",
            node=node.name,
        )


def _schema_of_source(source: Any) -> dict[str, Any] | None:
    fields = getattr(source, "fields", None)
    if fields is None:
        return None
    if isinstance(fields, Mapping):
        return dict(fields)
    return dict.fromkeys(fields)


def _compatible(have: Any, want: Any) -> bool:
    if not isinstance(have, type) or not isinstance(want, type):
        return True
    if issubclass(have, want) or (have is int and want is float):
        return True
    return want is str  # a string field takes anything printable


def _check_fields(order: list[NodeSpec]) -> None:
    schemas: dict[NodeSpec, dict[str, Any] | None] = {}
    for node in order:
        if node.source is not None:
            schemas[node] = _schema_of_source(node.source)
            continue
        ups = [schemas.get(parent) for parent, _ in node.inputs]
        upstream = ups[0] if len(ups) == 1 else None
        known = [u for u in ups if u is not None]
        if len(ups) > 1 and len(known) == len(ups):  # a merge: the fields every input has
            upstream = {k: v for k, v in known[0].items() if all(k in u for u in known[1:])}
        needs = node.op.input_fields() if node.op is not None else None
        if needs and upstream is not None:
            _compare(node, needs, upstream)
        schemas[node] = node.op.output_fields(upstream) if node.op is not None else upstream


def _compare(node: NodeSpec, needs: dict[str, Any], upstream: dict[str, Any]) -> None:
    parents = ", ".join(repr(p.name) for p, _ in node.inputs)
    missing = [name for name in needs if name not in upstream]
    if missing:
        raise GraphError(
            f"node {node.name!r} needs input field(s) {', '.join(map(repr, missing))} that "
            f"upstream {parents} does not provide (it provides: "
            f"{', '.join(map(repr, upstream)) or 'nothing'})",
            node=node.name,
            field=missing[0],
        )
    for name, want in needs.items():
        have = upstream[name]
        if not _compatible(have, want):
            raise GraphError(
                f"node {node.name!r} expects field {name!r} of type {want.__name__}, but "
                f"upstream {parents} gives {have.__name__}",
                node=node.name,
                field=name,
            )


def _copies(nodes: list[NodeSpec]) -> list[NodeSpec]:
    """Return copies of ``nodes`` linked to each other (the originals stay as they are)."""
    copies = {node: replace(node, inputs=[], children=[]) for node in nodes}
    for node, copy in copies.items():
        copy.inputs = [(copies[parent], port) for parent, port in node.inputs]
    return list(copies.values())


def plan(nodes: list[NodeSpec]) -> Plan:
    """Validate ``nodes`` and return the plan to run, on copies of the specs.

    Raises:
        GraphError: No source, a cycle, a dangling node, missing or mismatched
            fields, or a validate/timeout that cannot fuse with its map.
    """
    if not any(n.kind == "source" for n in nodes):
        raise GraphError("the flow has no source; start it with flow.source(...)")
    names: dict[str, NodeSpec] = {}
    for node in nodes:
        if node.name in names:
            raise GraphError(f"two nodes are named {node.name!r}; node names must be unique",
                             node=node.name)
        names[node.name] = node
    nodes = _copies(nodes)
    _link(nodes)
    order = _toposort(nodes)
    _check_dangling(order)
    fused = _fuse(order)
    _check_fields(order)
    return Plan(order, fused)
