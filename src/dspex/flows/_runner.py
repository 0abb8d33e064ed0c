"""The local engine: runs a planned flow as one task per node over bounded edges.

:class:`Runner` wires the plan: one bounded edge into every running node
(several producers share it through cloned send ends), one task per node in a
task group, a dead-letter task, an event-bus task when an event-aware sink
exists, and helper tasks (memory monitor, progress, periodic checkpoint
commits, live metrics for event-aware sinks) that are cancelled once the
nodes finish. Sinks are opened before the
first record and closed in ``finally`` under ``CancelScope(shield=True)`` plus
``fail_after``, so output is flushed even on error or cancellation. A failure
anywhere surfaces as one :class:`~dspex.errors.FlowFailed` chained from the
task group's ``ExceptionGroup`` (never a bare group); cancellation propagates
unchanged after the cleanup. With checkpointing, the run's lease is taken
before any sink opens (a second live runner fails with ``RunLeaseError``),
renewed while the sinks are open, and after a cancellation or failure the
keys already written are committed once more (shielded, within
``sink_timeout_s``) so that a resume does not pay for them again.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from .._util._clock import AnyioClock
from ..backpressure._admission import MemoryMonitor
from ..backpressure._edge import BufferPolicy, EdgeReceiver, EdgeSender, create_edge
from ..backpressure._limits import InFlightLimiter, SourceGate
from ..errors import ConfigError, DspexError, FlowFailed, GraphError, RunLeaseError
from ..events import Metrics, RunDone
from ..operators._base import NodeContext, Operator, Outputs, RunServices
from ..operators._usage import UsageTotals
from ..operators._window import BatchOperator, WindowOperator
from ..sinks._run import bound_run
from ..telemetry import _semconv as sc
from ..telemetry._spans import ACTIVE, Telemetry, resolve
from ._endpoints import SourceTask, run_dead_letters, run_events, run_sink
from ._metrics import LiveMetrics
from ._progress import Progress
from ._report import NodeStats, RunReport
from ._tracking import DUPLICATE_POLICIES
from ._wiring import Checkpointing, event_routes, unique_sinks

if TYPE_CHECKING:
    from ..backpressure._memory import MemoryWatermarks
    from ..operators._item import DeadLetter
    from ..sinks._base import Sink
    from ._graph import NodeSpec, Plan
    from ._progress import ProgressHook

__all__ = ["RunOptions", "Runner"]

log = logging.getLogger("dspex.flows")


@dataclass
class RunOptions:
    """Engine settings for one run (see ``Flow.run``)."""

    run_id: str | None = None
    store: Any = None
    progress: bool | ProgressHook | None = None
    progress_every_s: float = 10.0
    clock: Any = None
    memory: MemoryWatermarks | None = None
    buffer: BufferPolicy | None = None
    max_in_flight: int = 10_000
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 5.0
    lease_ttl_s: float = 30.0
    sink_timeout_s: float = 30.0
    keep_dead_letters: int = 10_000
    metrics_interval_s: float | None = 0.5
    max_failure_rate: float | None = None
    on_duplicate: str = "dead_letter"

    def __post_init__(self) -> None:
        rate = self.max_failure_rate
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1
        ):
            raise ConfigError(
                f"max_failure_rate must be None or a number in [0, 1], got {rate!r}"
            )
        if self.on_duplicate not in DUPLICATE_POLICIES:
            raise ConfigError(
                f"on_duplicate must be one of {', '.join(map(repr, DUPLICATE_POLICIES))}, "
                f"got {self.on_duplicate!r}"
            )
        every = self.progress_every_s
        if isinstance(every, bool) or not isinstance(every, int | float) or not every > 0:
            raise ConfigError(f"progress_every_s must be a number > 0, got {every!r}")


class Runner:
    """Run one planned flow once."""

    def __init__(
        self, name: str, plan: Plan, dead_letter: Sink | None, options: RunOptions
    ) -> None:
        self.name = name
        self.plan = plan
        self.dead_letter_sink = dead_letter
        self.options = options
        self.run_id = options.run_id or uuid.uuid4().hex[:12]
        self.clock = options.clock or AnyioClock()
        self.buffer = options.buffer or BufferPolicy()
        self.usage = UsageTotals()
        self.stats = {n: NodeStats(n.name, n.kind) for n in plan.nodes}
        self.dl_stats = NodeStats("dead_letter", "dead_letter")
        self.kept: list[DeadLetter] = []
        self.sinks = unique_sinks(plan.nodes, dead_letter)
        self.failed_in: dict[int, str] = {}
        self.monitor: Any = None
        self.checkpointing: Checkpointing | None = None
        self.metrics: LiveMetrics | None = None
        self.started = 0.0
        self.failure = ""
        self.telemetry: Telemetry | None = None

    # -- setup ----------------------------------------------------------------
    def _limiter(self) -> InFlightLimiter:
        floor = 1
        for node in self.plan.nodes:
            size = getattr(node.op, "size", None)
            if isinstance(node.op, (BatchOperator, WindowOperator)) and size:
                floor = max(floor, size + 1)
        return InFlightLimiter(max(self.options.max_in_flight, floor), floor=floor)

    def _edges(self) -> tuple[dict[NodeSpec, EdgeReceiver], dict[NodeSpec, EdgeSender]]:
        receivers: dict[NodeSpec, EdgeReceiver] = {}
        senders: dict[NodeSpec, EdgeSender] = {}
        for node in self.plan.runnable():
            if node.inputs:
                policy = BufferPolicy.coerce(node.buffer, self.buffer)
                send, receive = create_edge(node.name, policy)
                senders[node], receivers[node] = send, receive
                self.stats[node].edge = receive.edge
        return receivers, senders

    def _outputs(self, node: NodeSpec, senders: dict[NodeSpec, EdgeSender], ctx: NodeContext) -> Outputs:
        tail = self.plan.tail(node)
        ports = [
            [senders[t].clone() for t in self.plan.targets(tail, port)]
            for port in range(len(tail.port_names))
        ]
        return Outputs(ports, ctx)

    def _contexts(self, services: RunServices, event_nodes: set[str]) -> dict[NodeSpec, NodeContext]:
        return {
            node: NodeContext(
                node.name, self.stats[node], node.policy, services, events=node.name in event_nodes
            )
            for node in self.plan.nodes
        }

    # -- running --------------------------------------------------------------
    async def run(self) -> RunReport:
        """Run the flow to completion and return its report.

        Whether OpenTelemetry listens is decided once, here: with an SDK
        provider the run is a ``flow`` span (node, item, module and LM spans
        nest under it) and its live counters feed the metric instruments;
        without one no span work happens anywhere in the run.

        Raises:
            FlowFailed: A node, source or sink failed (chained from the group).
        """
        telemetry = self.telemetry = resolve()
        token = ACTIVE.set(telemetry)  # every task of the run inherits it
        try:
            if telemetry is None or telemetry.tracer is None:
                return await self._run()
            attributes = {sc.DSPEX_FLOW: self.name, sc.DSPEX_RUN_ID: self.run_id}
            with telemetry.span(f"flow {self.name}", attributes) as span:
                report = await self._run()
                if span is not None:
                    span.set_attribute(sc.DSPEX_STATUS, report.status)
                return report
        finally:
            ACTIVE.reset(token)

    async def _run(self) -> RunReport:
        self.started = time.perf_counter()
        # lease first: a second live runner must fail before it opens (truncates) a sink
        try:
            ck = await Checkpointing.create(self.plan, self.sinks, self.options, self.run_id)
        except RunLeaseError:
            raise  # the run never started: say so plainly, not as a failed run
        except DspexError as exc:
            raise self._flow_failed(exc) from exc
        self.checkpointing = ck
        status = "failed"
        try:
            opened = _sinks_opened(self.sinks, self.options.sink_timeout_s, self.run_id)
            if ck is not None:
                opened.extra.append(ck.heartbeat)
            async with opened:
                await self._run_checkpointed()
            status = self._verdict()
            if status == "failed":
                log.warning("flow %s: run %s failed: %s", self.name, self.run_id, self.failure)
        except anyio.get_cancelled_exc_class():
            status = "cancelled"
            raise
        except BaseExceptionGroup as group:
            _, rest = group.split(anyio.get_cancelled_exc_class())
            if rest is None:
                status = "cancelled"
                raise
            raise self._flow_failed(rest) from group
        except DspexError as exc:
            if isinstance(exc, FlowFailed):
                raise
            raise self._flow_failed(exc) from exc
        finally:
            self.status = status
            if ck is not None:
                await ck.aclose()
        return self.report(status)

    async def _run_checkpointed(self) -> None:
        ck = self.checkpointing
        finished = False
        try:
            if ck is not None:
                await ck.resume()
            await self._run_graph()
            finished = True
            if ck is not None:
                await ck.commit()
            self._check_accounted()
            await self._run_done()
        finally:
            if ck is not None and not finished:
                # cancelled or failed: keep what is done (its LM calls are paid for)
                await ck.salvage(self.options.sink_timeout_s)

    def _check_accounted(self) -> None:
        """Fail a run whose items were not all written, dropped or dead-lettered.

        Every item admitted by a source is released exactly once (sink write,
        drop, dead letter). One still counted once the nodes have finished was
        lost by the engine: report it rather than a silently short output. The
        final commit has run, so only finished keys are committed and a resume
        with the same ``run_id`` redoes the lost ones.

        Raises:
            FlowFailed: Items are unaccounted for.
        """
        lost = self.services.limiter.in_flight
        if lost > 0:
            failed = FlowFailed(
                f"flow {self.name!r} ended with {lost} items neither written, dropped nor "
                "dead-lettered (an engine bug); with a run_id, resume the run to redo them"
            )
            failed.report = self.report("failed")
            raise failed

    async def _run_graph(self) -> None:
        limiter = self._limiter()
        gate = SourceGate()
        tracker = self.checkpointing.tracker if self.checkpointing else None
        routes, event_nodes = event_routes(self.plan)
        ev_send, ev_recv = anyio.create_memory_object_stream[Any](1024)
        dl_send, dl_recv = anyio.create_memory_object_stream[Any](self.buffer.chunk)
        services = RunServices(
            self.run_id, self.clock, limiter, self.usage, tracker=tracker,
            dead_letter=dl_send.send, event_send=ev_send if routes else None,
        )
        services.telemetry = self.telemetry
        self.services = services
        contexts = self._contexts(services, event_nodes)
        stages = self.plan.stages(contexts)  # this run's operators (fused maps are copies)
        receivers, senders = self._edges()
        barrier = self.checkpointing.barrier if self.checkpointing else None
        dl_ctx = NodeContext("dead_letter", self.dl_stats, contexts[self.plan.nodes[0]].policy, services)
        async with anyio.create_task_group() as helpers:
            self._start_helpers(helpers, gate, limiter, ev_send)
            instruments = self.telemetry.instruments if self.telemetry is not None else None
            recorder = instruments.run_recorder(self.name) if instruments is not None else None
            if (routes or recorder is not None) and self.options.metrics_interval_s:
                self.metrics = LiveMetrics(
                    self, ev_send if routes else None, self.options.metrics_interval_s, recorder
                )
                helpers.start_soon(self.metrics.run)
            async with anyio.create_task_group() as drain:
                drain.start_soon(partial(
                    run_dead_letters, dl_recv, self.dead_letter_sink, self.kept, dl_ctx, barrier,
                    keep_max=self.options.keep_dead_letters,
                ))
                if routes:
                    drain.start_soon(run_events, ev_recv, routes)
                else:
                    ev_recv.close()
                try:
                    async with anyio.create_task_group() as nodes:
                        for node in self.plan.runnable():
                            ctx = contexts[node]
                            task = self._task(node, stages.get(node), ctx, receivers, senders, gate, barrier)
                            nodes.start_soon(self._guard, node, task, name=node.name)
                        for send in senders.values():
                            send.close()
                finally:
                    dl_send.close()
                    if self.metrics is not None:
                        self.metrics.publish()  # the final counters, before the bus closes
                    ev_send.close()
            helpers.cancel_scope.cancel()

    def _start_helpers(self, tg: Any, gate: SourceGate, limiter: InFlightLimiter, ev_send: Any) -> None:
        if self.options.memory is not None:
            def changed(values: dict[str, Any]) -> None:
                log.info("flow %s: memory %s", self.name, values)
                if self.services.event_send is not None:
                    event = Metrics(values=values, run=self.run_id, seq=next(self.services.seq))
                    # a full or already closed bus (the run is ending): drop the sample
                    with suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                        ev_send.send_nowait(event)

            self.monitor = MemoryMonitor(self.options.memory, gate, limiter, changed)
            tg.start_soon(self.monitor.run, self.clock)
        if self.checkpointing is not None:
            tg.start_soon(self.checkpointing.loop, self.clock)
        if self.options.progress is not False:
            tg.start_soon(Progress(self, self.options.progress, self.options.progress_every_s).run)

    def _task(
        self, node: NodeSpec, op: Operator | None, ctx: NodeContext,
        receivers: dict[NodeSpec, EdgeReceiver], senders: dict[NodeSpec, EdgeSender],
        gate: SourceGate, barrier: Any,
    ) -> Any:
        receive = receivers.get(node)
        if node.kind == "sink":
            async def sink_task() -> None:
                with receivers[node]:
                    await run_sink(receivers[node], node.sinks, ctx, barrier)

            return sink_task
        out = self._outputs(node, senders, ctx)
        if node.source is not None:
            sources = [n for n in self.plan.nodes if n.source is not None]
            prefix = f"{node.name}:" if len(sources) > 1 else ""
            ck = self.checkpointing
            index = ck.index(node.source) if ck is not None else None
            task = SourceTask(node.source, out, ctx, gate, self.buffer, prefix=prefix, index=index)
            run = task.run
        elif op is not None:
            async def run() -> None:
                await op.run(receivers[node], out, ctx)
        else:
            raise GraphError(f"node {node.name!r} has neither a source nor an operator", node=node.name)

        async def guarded() -> None:
            try:
                await run()
            finally:
                out.close()
                if receive is not None:
                    receive.close()

        return guarded

    async def _guard(self, node: NodeSpec, task: Any) -> None:
        telemetry = self.telemetry
        try:
            if telemetry is None or telemetry.tracer is None:
                await task()
                return
            with telemetry.span(f"node {node.name}", {sc.DSPEX_NODE: node.name, sc.DSPEX_NODE_KIND: node.kind}):
                await task()
        except Exception as exc:
            self.failed_in.setdefault(id(exc), node.name)
            raise

    async def _run_done(self) -> None:
        waiting = [s for s in self.sinks if s.wants_events]
        if not waiting:
            return
        report = self.report(self._verdict()).to_dict()
        event = RunDone(report=report, run=self.run_id, seq=next(self.services.seq))
        for sink in waiting:
            await sink.write_event(event)

    # -- results --------------------------------------------------------------
    def _verdict(self) -> str:
        """Return ``"failed"`` when too many items failed, else ``"completed"``.

        With ``max_failure_rate=None`` a run fails only when every item read
        failed (``items_failed >= items_in > 0``); with a rate ``r`` it fails
        when ``items_failed / items_in > r`` (so ``0`` fails on any failure).
        A run that read nothing has not failed. Sets :attr:`failure`.
        """
        items_in = sum(self.stats[n].items_in for n in self.plan.nodes if n.kind == "source")
        failed = sum(s.items_failed for s in self.stats.values())
        rate = self.options.max_failure_rate
        if items_in <= 0 or failed <= 0:
            return "completed"
        if rate is None and failed >= items_in:
            self.failure = f"every item failed ({failed} failed of {items_in} read)"
            return "failed"
        if rate is not None and failed / items_in > rate:
            self.failure = (
                f"{failed} of {items_in} items failed ({failed / items_in:.1%}), "
                f"above max_failure_rate={rate}"
            )
            return "failed"
        return "completed"

    def _flow_failed(self, error: BaseException) -> FlowFailed:
        leaf = error
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        node = getattr(leaf, "node", None) or self.failed_in.get(id(leaf))
        where = f" in node {node!r}" if node else ""
        failed = FlowFailed(
            f"flow {self.name!r} failed{where}: {type(leaf).__name__}: {leaf}", node=node
        )
        failed.report = self.report("failed")
        return failed

    def report(self, status: str) -> RunReport:
        """Build the :class:`RunReport` from the live counters."""
        nodes = {n.name: self.stats[n].report() for n in self.plan.nodes}
        items_in = sum(self.stats[n].items_in for n in self.plan.nodes if n.kind == "source")
        items_out = sum(self.stats[n].items_out for n in self.plan.nodes if n.kind == "sink")
        failed = sum(s.items_failed for s in self.stats.values())
        ck = self.checkpointing
        services = getattr(self, "services", None)
        return RunReport(
            flow=self.name,
            run_id=self.run_id,
            status=status,
            items_in=items_in,
            items_out=items_out,
            items_failed=failed,
            usage=self.usage.to_dict(),
            cost=self.usage.cost,
            duration_s=time.perf_counter() - self.started,
            nodes=nodes,
            dead_letters=list(self.kept),
            dead_letter_count=self.dl_stats.items_out,
            memory_pauses=self.monitor.pauses if self.monitor is not None else 0,
            memory=self.monitor.stats() if self.monitor is not None else {},
            resumed=bool(ck and ck.resumed),
            committed_keys=ck.committed if ck else 0,
            validation_failures=services.validation_failures if services else 0,
        )


class _sinks_opened:
    """Open every sink; close them all under a shield with a deadline.

    The run id is current (``dx.sinks.current_run_id``) from before the first
    ``serve``/``open`` until after the last ``aclose``; nothing is set on the
    sinks, which may serve other runs at the same time. A sink with
    background work (a WebSocket server or client) defines
    ``async def serve(*, task_status)``: it is started here, before the sink
    is opened, in a task group that outlives ``aclose()`` and is cancelled
    after every sink is closed.
    """

    def __init__(self, sinks: list[Sink], timeout_s: float, run_id: str) -> None:
        self.extra: list[Any] = []  # more background tasks (the lease heartbeat)
        self.sinks = sinks
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.opened: list[Sink] = []
        self.background = anyio.create_task_group()
        self.bound = ExitStack()

    async def __aenter__(self) -> None:
        # set before any task starts: the serve tasks and the run's tasks inherit it
        self.bound.enter_context(bound_run(self.run_id))
        try:
            await self.background.__aenter__()
        except BaseException:
            self.bound.close()
            raise
        try:
            for task in self.extra:
                await self.background.start(task)
            for sink in self.sinks:
                serve = getattr(sink, "serve", None)
                if serve is not None:
                    await self.background.start(serve)
                await sink.open()
                self.opened.append(sink)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._close_all(exc_info[0] is None)
        finally:
            try:
                self.background.cancel_scope.cancel()
                await self.background.__aexit__(None, None, None)
            finally:
                self.bound.close()

    async def _close_all(self, report: bool) -> None:
        errors = []
        with anyio.CancelScope(shield=True):
            for sink in reversed(self.opened):
                try:
                    with anyio.fail_after(self.timeout_s):
                        await sink.aclose()
                except Exception as exc:  # report below, close the others first
                    errors.append((sink, exc))
        if errors and report:
            failed, error = errors[0]
            raise FlowFailed(f"sink {failed.name!r} failed to close: {error}") from error
