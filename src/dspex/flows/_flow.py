"""``dx.Flow``: the fluent builder of a dataflow, and how to run it.

``flow.source(src)`` returns a :class:`NodeHandle`; each handle method adds a
node downstream and returns the new node's handle, so a pipeline reads as a
chain: ``flow.source(s).map(qa, concurrency=64).validate(ok, "msg").sink(out)``.
A handle may be used several times (fan-out: every consumer gets each
record), ``flow.merge(a, b)`` joins branches, ``branch``/``route`` return one
handle per output. Nodes are named ``"<kind>-<n>"`` unless given ``name=``.
``await flow.run(...)`` validates the graph, then runs it on the local engine
and returns a :class:`~dspex.flows.RunReport`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .._context import _check as check_settings
from .._context import context as settings_context
from .._util._sync import run_sync
from ..errors import ConfigError, GraphError
from ..operators import _factories as ops
from ..sinks._base import Sink
from ..sources import iterable
from ..sources._base import Source
from ._engines import driver
from ._graph import NodeSpec, Plan, plan
from ._policy import ErrorPolicy, as_policy
from ._preflight import require_lms
from ._runner import Runner, RunOptions

if TYPE_CHECKING:
    from ..backpressure._edge import BufferPolicy
    from ..operators._base import Operator
    from ._report import RunReport

__all__ = ["Branch", "Flow", "NodeHandle"]


class Branch(NamedTuple):
    """The two outputs of ``branch``: records for which the predicate is true/false."""

    trues: NodeHandle
    falses: NodeHandle


class NodeHandle:
    """A node's output in a flow under construction; methods add nodes after it."""

    __slots__ = ("flow", "node", "port")

    def __init__(self, flow: Flow, node: NodeSpec, port: int = 0) -> None:
        self.flow = flow
        self.node = node
        self.port = port

    @property
    def name(self) -> str:
        """Return the node's name."""
        return self.node.name

    def then(
        self, op: Operator, *, on_error: Any = "raise", buffer: BufferPolicy | int | None = None
    ) -> NodeHandle:
        """Add operator ``op`` after this node and return its handle."""
        return self.flow.add(op, self, on_error=on_error, buffer=buffer)

    def map(
        self, fn: Any, concurrency: int = 1, ordered: bool = True, on_error: Any = "raise",
        name: str | None = None, *, timeout: float | None = None,
        buffer: BufferPolicy | int | None = None, executor: str = "inline",
    ) -> NodeHandle:
        """Apply ``fn`` (function, async function or Module) to every record.

        A module gets the record's fields its signature takes as inputs; the
        record flowing on is the input plus the prediction's outputs. At most
        ``concurrency`` items are in flight in this node; ``ordered`` keeps
        input order through a reorder buffer bounded by ``concurrency``.
        ``executor`` says where a sync ``fn`` runs: ``"inline"`` on the event
        loop (default; cheap Python), ``"threads"`` (it blocks) or
        ``"processes"`` (CPU-bound; ``fn`` and records must pickle), in
        batches of records to at most ``concurrency`` workers.
        """
        op = ops.map(fn, concurrency=concurrency, ordered=ordered, timeout=timeout, name=name,
                     executor=executor)
        return self.then(op, on_error=on_error, buffer=buffer)

    def flat_map(
        self, fn: Any, concurrency: int = 1, ordered: bool = True, on_error: Any = "raise",
        name: str | None = None, *, buffer: BufferPolicy | int | None = None,
        executor: str = "inline",
    ) -> NodeHandle:
        """Map each record to an iterable of records, flattened (``executor`` as for ``map``)."""
        op = ops.flat_map(fn, concurrency=concurrency, ordered=ordered, name=name,
                          executor=executor)
        return self.then(op, on_error=on_error, buffer=buffer)

    def filter(
        self, fn: Callable[[Any], Any], *, on_error: Any = "raise", name: str | None = None,
        concurrency: int = 1, ordered: bool = True, executor: str = "inline",
    ) -> NodeHandle:
        """Keep only records for which ``fn(record)`` is true (``executor`` as for ``map``)."""
        op = ops.filter(fn, name=name, concurrency=concurrency, ordered=ordered, executor=executor)
        return self.then(op, on_error=on_error)

    def validate(
        self, fn: Callable[[Any], Any], msg: str | Callable[[Any], str] = "validation failed",
        retries: int = 0, mode: str = "assert", *, on_error: Any = "raise",
        name: str | None = None,
    ) -> NodeHandle:
        """Check records; retry the map before with ``msg`` as feedback; assert or flag."""
        op = ops.validate(fn, msg, retries=retries, mode=mode, name=name)
        return self.then(op, on_error=on_error)

    def batch(
        self, size: int | None = None, timeout: float | None = None, *, name: str | None = None
    ) -> NodeHandle:
        """Group records into lists of ``size`` and/or every ``timeout`` seconds."""
        return self.then(ops.batch(size, timeout, name=name))

    def window(
        self, seconds: float, *, key: Callable[[Any], Any] | None = None,
        size: int | None = None, name: str | None = None,
    ) -> NodeHandle:
        """Group records into tumbling time windows (optionally per key)."""
        return self.then(ops.window(seconds, key=key, size=size, name=name))

    def route(
        self, selector: Callable[[Any], Hashable], keys: Sequence[Hashable], *,
        default: Hashable | None = None, on_error: Any = "raise", name: str | None = None,
    ) -> dict[Hashable, NodeHandle]:
        """Send each record to the output ``selector(record)``; return key -> handle."""
        handle = self.then(ops.route(selector, keys, default=default, name=name), on_error=on_error)
        return {key: NodeHandle(self.flow, handle.node, i) for i, key in enumerate(keys)}

    def branch(
        self, predicate: Callable[[Any], Any], *, on_error: Any = "raise", name: str | None = None
    ) -> Branch:
        """Split records by ``predicate``: ``trues, falses = handle.branch(p)``."""
        handle = self.then(ops.branch(predicate, name=name), on_error=on_error)
        return Branch(NodeHandle(self.flow, handle.node, 0), NodeHandle(self.flow, handle.node, 1))

    def broadcast(self, n: int = 2) -> tuple[NodeHandle, ...]:
        """Return ``n`` handles of this output; each consumer gets every record."""
        if n < 1:
            raise ConfigError(f"broadcast needs n >= 1, got {n!r}")
        return tuple(NodeHandle(self.flow, self.node, self.port) for _ in range(n))

    def merge(self, *others: NodeHandle, name: str | None = None) -> NodeHandle:
        """Join this output with ``others`` into one stream."""
        return self.flow.merge(self, *others, name=name)

    def tap(
        self, fn: Callable[[Any], Any], *, on_error: Any = "raise", name: str | None = None
    ) -> NodeHandle:
        """Call ``fn(record)`` for its side effect; records pass unchanged."""
        return self.then(ops.tap(fn, name=name), on_error=on_error)

    def rate_limit(self, per_second: float, *, burst: int = 1, name: str | None = None) -> NodeHandle:
        """Let at most ``per_second`` records through per second."""
        return self.then(ops.rate_limit(per_second, burst=burst, name=name))

    def dedupe(
        self, key: Callable[[Any], Hashable] | str | None = None, *,
        max_keys: int | None = None, name: str | None = None,
    ) -> NodeHandle:
        """Drop records whose key (default: source key or the record) was seen."""
        return self.then(ops.dedupe(key, max_keys=max_keys, name=name))

    def timeout(self, seconds: float, *, on_error: Any = "raise", name: str | None = None) -> NodeHandle:
        """Fail items whose map (right before) takes longer than ``seconds``."""
        return self.then(ops.timeout(seconds, name=name), on_error=on_error)

    def ab_split(
        self, fraction: float, variant_a: Any, variant_b: Any, *,
        metric: Callable[[Any], float] | None = None, concurrency: int = 1,
        ordered: bool = True, on_error: Any = "raise", name: str | None = None,
    ) -> NodeHandle:
        """Send a stable ``fraction`` of items to ``variant_b``; report per variant."""
        op = ops.ab_split(fraction, variant_a, variant_b, metric=metric,
                          concurrency=concurrency, ordered=ordered, name=name)
        return self.then(op, on_error=on_error)

    def sink(
        self, *sinks: Sink, name: str | None = None, buffer: BufferPolicy | int | None = None
    ) -> NodeHandle:
        """Write every record to each of ``sinks`` (batched); returns the sink node."""
        return self.flow.add_sink(self, sinks, name=name, buffer=buffer)

    def __repr__(self) -> str:
        return f"<NodeHandle {self.node.name!r} port {self.port}>"


class Flow:
    """A dataflow: sources, operators and sinks joined by bounded edges.

    Args:
        name: The flow's name (reports, logs, events).
        buffer: Default :class:`~dspex.backpressure.BufferPolicy` of edges.
        max_in_flight: Most items admitted by the sources and not yet done.

    Example:
        >>> import dspex as dx
        >>> out = dx.sinks.collect()
        >>> flow = dx.Flow("double")
        >>> _ = flow.source([1, 2, 3]).map(lambda r: {"x": r * 2}).sink(out)
        >>> flow.run_sync(progress=False).items_out, out.items
        (3, [{'x': 2}, {'x': 4}, {'x': 6}])
    """

    def __init__(
        self, name: str = "flow", *, buffer: BufferPolicy | None = None,
        max_in_flight: int = 10_000,
    ) -> None:
        self.name = name
        self.buffer = buffer
        self.max_in_flight = max_in_flight
        self.nodes: list[NodeSpec] = []
        self.dead_letter_sink: Sink | None = None

    def _name(self, kind: str, given: str | None) -> str:
        if given is not None:
            if not isinstance(given, str) or not given:
                raise ConfigError(f"node name must be a non-empty string, got {given!r}")
            return given
        return f"{kind}-{len(self.nodes) + 1}"

    def _spec(self, kind: str, name: str | None, policy: ErrorPolicy, **kw: Any) -> NodeSpec:
        spec = NodeSpec(self._name(kind, name), kind, len(self.nodes), policy, **kw)
        if any(n.name == spec.name for n in self.nodes):
            raise GraphError(f"a node named {spec.name!r} already exists in flow {self.name!r}",
                             node=spec.name)
        self.nodes.append(spec)
        return spec

    def _own(self, handle: NodeHandle) -> NodeHandle:
        if not isinstance(handle, NodeHandle) or handle.flow is not self:
            raise GraphError(f"{handle!r} is not a node handle of flow {self.name!r}")
        if handle.node.kind == "sink":
            raise GraphError(f"sink node {handle.node.name!r} has no output to connect",
                             node=handle.node.name)
        return handle

    def source(self, src: Any, *, name: str | None = None) -> NodeHandle:
        """Add a source (a ``Source``, or any iterable / async iterable of records)."""
        if not isinstance(src, Source):
            if isinstance(src, (str, bytes)) or not (
                isinstance(src, Iterable) or hasattr(src, "__aiter__")
            ):
                raise ConfigError(
                    f"flow.source expects a Source or an iterable of records, got {src!r}"
                )
            src = iterable(src)
        spec = self._spec("source", name, ErrorPolicy(), source=src)
        return NodeHandle(self, spec)

    def add(
        self, op: Operator, *parents: NodeHandle, on_error: Any = "raise",
        buffer: BufferPolicy | int | None = None,
    ) -> NodeHandle:
        """Add operator ``op`` fed by ``parents`` and return its handle."""
        if not parents:
            raise GraphError(f"operator {op!r} needs at least one upstream handle")
        inputs = [(self._own(p).node, p.port) for p in parents]
        spec = self._spec(op.kind, op.name, as_policy(on_error), op=op, inputs=inputs, buffer=buffer)
        op.name = spec.name
        return NodeHandle(self, spec)

    def add_sink(
        self, parent: NodeHandle, sinks: Sequence[Sink], *, name: str | None = None,
        buffer: BufferPolicy | int | None = None,
    ) -> NodeHandle:
        """Add a sink node writing to ``sinks``; return its handle."""
        if not sinks:
            raise GraphError("sink() needs at least one sink")
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise ConfigError(f"sink() expects Sink objects, got {sink!r}")
        spec = self._spec("sink", name, ErrorPolicy(), sinks=tuple(sinks),
                          inputs=[(self._own(parent).node, parent.port)], buffer=buffer)
        return NodeHandle(self, spec)

    def merge(self, *handles: NodeHandle, name: str | None = None) -> NodeHandle:
        """Join several outputs into one stream (fan-in)."""
        if len(handles) < 2:
            raise GraphError(f"merge needs at least two handles, got {len(handles)}")
        return self.add(ops.merge(name=name), *handles)

    def dead_letter(self, sink: Sink) -> Flow:
        """Send failed items (``on_error="dead_letter"``) and bad records to ``sink``."""
        if not isinstance(sink, Sink):
            raise ConfigError(f"dead_letter expects a Sink, got {sink!r}")
        self.dead_letter_sink = sink
        return self

    def check(self) -> Plan:
        """Validate the graph now (``run`` does it too) and return the plan.

        Raises:
            GraphError: The graph is invalid; the message names the nodes.
        """
        return plan(self.nodes)

    async def run(
        self, *, run_id: str | None = None, store: Any = None,
        progress: bool | Callable[[RunReport], None] | None = None, clock: Any = None,
        memory: Any = None, buffer: BufferPolicy | None = None,
        max_in_flight: int | None = None, checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 5.0, sink_timeout_s: float = 30.0,
        max_failure_rate: float | None = None, on_duplicate: str = "dead_letter",
        progress_every_s: float = 10.0, engine: str | Any = "local", workers: int | None = None,
        address: str | None = None, partitions: int | None = None, backend: str | None = None,
        **settings: Any,
    ) -> RunReport:
        """Run the flow to the end and return its report.

        Args:
            run_id: Names the run; with a keyed source, progress is committed
                to the run store and re-running with the same id resumes.
            store: A ``RunStore`` or a path (default ``./.dspex/store.sqlite``).
            progress: ``None`` (bar on a TTY, otherwise a line on stderr every
                ``progress_every_s`` seconds and at the end), ``True`` (bar),
                ``False`` (silent), or a callable given a running
                ``RunReport`` every ``progress_every_s`` seconds and at the
                end (on other engines: the counts summed over the running
                partitions, at most 10 times a second, then the final report).
            clock: Clock for time-based operators (default: real time).
            memory: :class:`~dspex.backpressure.MemoryWatermarks` to pause the
                sources under memory pressure.
            buffer: Default edge buffer for this run.
            max_in_flight: Global limit of items in flight.
            checkpoint_every: Commit after this many done keys ...
            checkpoint_interval_s: ... or this many seconds.
            sink_timeout_s: Deadline for each sink to close (flush), and for
                the last commit after a cancellation or failure.
            max_failure_rate: When the run's report says ``"failed"`` instead
                of ``"completed"`` (nothing is raised; ``on_error`` still
                decides per item): ``None`` when every item read failed
                (``items_failed >= items_in > 0``), else when
                ``items_failed / items_in`` exceeds this rate (``0`` = any).
            on_duplicate: With a ``run_id``, what a keyed source's repeated id
                does (ids compare as strings: ``7`` and ``"7"`` are one id):
                ``"dead_letter"`` (the repeat becomes a ``DuplicateKeyError``
                dead letter, the first copy is kept) or ``"raise"``.
            engine: ``"local"`` (this process), ``"processes"`` (``workers``
                local processes) or ``"dask"`` (a Dask cluster: ``address``,
                or a LocalCluster of ``workers``), or an ``Engine``. The
                other engines split the one keyed source into ``partitions``
                (default ``2 * workers``), run each on the local engine in a
                worker and merge the reports; file sinks write one file per
                partition plus a manifest (see ``dspex.engines``). Any engine
                but ``"local"`` needs ``import dspex.engines`` first: the
                engines depend on flows, never the other way round.
            workers: Worker processes for ``"processes"``/``"dask"`` (default 2).
            address: A Dask scheduler address (``engine="dask"``).
            partitions: How many partitions (fixed for a run id at its start).
            backend: The workers' event loop, ``"asyncio"`` (default) or ``"trio"``.
            **settings: ``dx.context`` settings (``lm=``, ``adapter=``, ...)
                applied for the run.

        Raises:
            GraphError: The graph is invalid (before anything runs).
            ConfigError: An unknown setting or engine, or a non-local engine
                before ``dspex.engines`` was imported.
            LMNotConfiguredError: A module node's predictor has no LM (node,
                run settings or context); nothing ran.
            FlowFailed: The run failed; ``.report`` holds the partial report.
            RunLeaseError: Another live runner holds ``run_id`` (nothing ran).
        """
        check_settings(settings)
        if engine == "local" and (workers, address, partitions, backend) != (None,) * 4:
            raise ConfigError("workers, address, partitions and backend apply to "
                              "engine='processes' or 'dask', not the local engine")
        with settings_context(**settings):
            require_lms(self.check())  # fail before any source is read
        if engine != "local":
            return await self._run_on(engine, workers, address, partitions, backend, dict(
                run_id=run_id, store=store, progress=progress, clock=clock, memory=memory, buffer=buffer,
                max_in_flight=max_in_flight, checkpoint_every=checkpoint_every,
                checkpoint_interval_s=checkpoint_interval_s, sink_timeout_s=sink_timeout_s,
                max_failure_rate=max_failure_rate, on_duplicate=on_duplicate, **settings))
        options = RunOptions(
            run_id=run_id, store=store, progress=progress, clock=clock, memory=memory,
            buffer=buffer or self.buffer, max_in_flight=max_in_flight or self.max_in_flight,
            checkpoint_every=checkpoint_every, checkpoint_interval_s=checkpoint_interval_s,
            sink_timeout_s=sink_timeout_s, max_failure_rate=max_failure_rate,
            on_duplicate=on_duplicate, progress_every_s=progress_every_s,
        )
        runner = Runner(self.name, self.check(), self.dead_letter_sink, options)
        with settings_context(**settings):
            return await runner.run()

    async def _run_on(self, engine: Any, workers: int | None, address: str | None,
                      partitions: int | None, backend: str | None, kw: dict[str, Any]) -> RunReport:
        run = driver(engine)  # installed by dspex.engines, which this package never imports
        run_id, store, progress = kw.pop("run_id"), kw.pop("store"), kw.pop("progress")
        return await run(
            self, engine, workers=workers, address=address, partitions=partitions,
            backend=backend, run_id=run_id, store=store, progress=progress, options=kw)

    def run_sync(self, **kwargs: Any) -> RunReport:
        """Run the flow from synchronous code (see :meth:`run`)."""
        async def main() -> RunReport:
            return await self.run(**kwargs)

        return run_sync(main)

    def __repr__(self) -> str:
        return f"<Flow {self.name!r} with {len(self.nodes)} nodes>"
