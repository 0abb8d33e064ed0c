"""Spans for flow run → node → item → module → LM call, following the GenAI conventions.

:func:`resolve` decides once whether anything is listening: the tracer and
meter providers passed in, else the ``tracer_provider``/``meter_provider``
settings, else OpenTelemetry's global providers. The API's own providers
(no-op, or the proxy before ``set_tracer_provider``) count as nobody, and
then :func:`resolve` returns None and every hook below is skipped by one
``is None`` test. A flow run resolves once and pins the result for all its
tasks in a ``ContextVar`` (both anyio backends copy contextvars at spawn),
so the hot path does no provider lookups. Module, LM and tool calls made
outside a run resolve per call (a few dict lookups, cached per provider).

Spans nest through OpenTelemetry's context, which is a ``ContextVar`` too:
the run span is current in the runner's task, each node span in its node
task (and the workers it spawns), each item span while its item is
processed. LM and tool spans are never made current: they are leaves, and a
streamed LM call would otherwise hold a context across ``yield``. Prompt and
completion text go on LM spans only when ``capture_content`` is set.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.metrics import _internal as _otel_metrics_internal
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _context
from .._context import get_setting
from .._version import __version__
from . import _semconv as sc
from ._callbacks import new_call_id, notify
from ._metrics import Instruments

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping

    from opentelemetry.trace import Span, Tracer

__all__ = ["ACTIVE", "UNPINNED", "Telemetry", "ambient", "current", "resolve"]

#: ``ACTIVE``'s value outside a flow run (also a "missing" marker).
UNPINNED: Any = object()

#: The telemetry pinned by the running flow (None: nothing listens); unset outside runs.
ACTIVE: ContextVar[Telemetry | None] = ContextVar("dspex_telemetry", default=UNPINNED)

_cache: dict[tuple[int, int, bool], Telemetry] = {}


def _real(provider: Any, api_module: str) -> Any:
    """Return ``provider`` unless it is one of the API's own no-op or proxy providers."""
    if provider is None or type(provider).__module__.startswith(api_module):
        return None
    return provider


_env_checked = False


def _global_providers() -> tuple[Any, Any]:
    """Return OpenTelemetry's global (tracer, meter) providers, None where unset.

    The public getters look ``OTEL_PYTHON_*_PROVIDER`` up in ``os.environ`` on
    every call while no provider is set (about 1 µs each), which is most of
    what an unobserved call would pay. So they are called once (which loads a
    provider named in the environment) and afterwards the API's set-once
    globals are read directly, falling back to the getters if the API ever
    renames them.
    """
    global _env_checked
    if not _env_checked:
        otel_trace.get_tracer_provider()
        otel_metrics.get_meter_provider()
        _env_checked = True
    tp = getattr(otel_trace, "_TRACER_PROVIDER", UNPINNED)
    mp = getattr(_otel_metrics_internal, "_METER_PROVIDER", UNPINNED)
    return (
        otel_trace.get_tracer_provider() if tp is UNPINNED else tp,
        otel_metrics.get_meter_provider() if mp is UNPINNED else mp,
    )


def resolve(tracer_provider: Any = None, meter_provider: Any = None) -> Telemetry | None:
    """Return the telemetry to use now, or None when no SDK provider is configured.

    Resolution: the arguments, else the ``tracer_provider`` / ``meter_provider``
    settings, else OpenTelemetry's global providers. Results are cached per
    provider pair, so instruments are created once.
    """
    tp = tracer_provider or get_setting("tracer_provider")
    mp = meter_provider or get_setting("meter_provider")
    if tp is None or mp is None:
        global_tp, global_mp = _global_providers()
        tp = _real(tp or global_tp, "opentelemetry.trace")
        mp = _real(mp or global_mp, "opentelemetry.metrics")
        if tp is None and mp is None:
            return None
    capture = bool(get_setting("capture_content", False))
    key = (id(tp), id(mp), capture)
    found = _cache.get(key)
    if found is None or found.tracer_provider is not tp or found.meter_provider is not mp:
        if len(_cache) > 32:
            _cache.clear()
        found = _cache[key] = Telemetry(tp, mp, capture_content=capture)
    return found


class _Ambient:
    """What :func:`ambient` last computed, and the inputs it was computed from."""

    __slots__ = ("callbacks", "defaults", "meter", "overrides", "telemetry", "tracer")

    def __init__(self, key: tuple[Any, Any, Any, Any], telemetry: Telemetry | None, callbacks: tuple[Any, ...]) -> None:
        self.overrides, self.defaults, self.tracer, self.meter = key
        self.telemetry = telemetry
        self.callbacks = callbacks


_last = _Ambient((UNPINNED, UNPINNED, UNPINNED, UNPINNED), None, ())


#: The settings that decide what observes a call.
_OBSERVING = frozenset({"tracer_provider", "meter_provider", "capture_content", "callbacks"})


def ambient() -> tuple[Telemetry | None, tuple[Any, ...]]:
    """Return (telemetry, the ``callbacks`` setting) for the current settings.

    Settings snapshots are immutable and the global providers are set once,
    so the answer is cached against their identities; a snapshot that
    overrides none of the observing settings (``lm=`` per call, say) shares
    the entry of its defaults. An unobserved call pays a few ``is`` tests.
    """
    overrides = _context._overrides.get()
    defaults = _context._defaults
    tracer = getattr(otel_trace, "_TRACER_PROVIDER", UNPINNED)
    meter = getattr(_otel_metrics_internal, "_METER_PROVIDER", UNPINNED)
    last = _last
    if (last.defaults is defaults and last.tracer is tracer and last.meter is meter
            and tracer is not UNPINNED and meter is not UNPINNED
            and (last.overrides is overrides or (last.overrides is None and _OBSERVING.isdisjoint(overrides)))):
        return last.telemetry, last.callbacks
    return _refresh((None if _OBSERVING.isdisjoint(overrides) else overrides, defaults, tracer, meter))


def _refresh(key: tuple[Any, Any, Any, Any]) -> tuple[Telemetry | None, tuple[Any, ...]]:
    global _last
    telemetry = resolve()
    callbacks = tuple(get_setting("callbacks") or ())
    _last = _Ambient(key, telemetry, callbacks)  # one assignment: safe across threads
    return telemetry, callbacks


def current() -> Telemetry | None:
    """Return the running flow's telemetry, else the one the current settings give."""
    pinned = ACTIVE.get()
    if pinned is not UNPINNED:
        return pinned
    return ambient()[0]


def _jsonish(value: Any) -> str:
    try:
        return json.dumps(value, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _fail(span: Span, exc: BaseException) -> None:
    span.set_attribute(sc.ERROR_TYPE, type(exc).__qualname__)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


class _ItemScope:
    """The item being traced in the current task, its span, and whether it failed."""

    __slots__ = ("failed", "item", "span")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.span: Span | None = None
        self.failed = False


_ITEM: ContextVar[_ItemScope | None] = ContextVar("dspex_item_span", default=None)


class Telemetry:
    """A tracer and the metric instruments of one provider pair (see :func:`resolve`).

    Args:
        tracer_provider: An SDK tracer provider, or None for no spans.
        meter_provider: An SDK meter provider, or None for no metrics.
        capture_content: Put prompts, completions and tool arguments on spans.
    """

    def __init__(self, tracer_provider: Any, meter_provider: Any, *, capture_content: bool = False) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.capture_content = capture_content
        self.tracer: Tracer | None = (
            tracer_provider.get_tracer(sc.SCOPE, __version__) if tracer_provider is not None else None
        )
        self.instruments: Instruments | None = (
            Instruments(meter_provider.get_meter(sc.SCOPE, __version__)) if meter_provider is not None else None
        )

    # -- flow structure (current spans) -----------------------------------------
    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span | None]:
        """Open a span made current for the block; errors mark it (``error.type``)."""
        tracer = self.tracer
        if tracer is None:
            yield None
            return
        with tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except Exception as exc:  # cancellation is not an error of this span
                _fail(span, exc)
                raise

    @contextmanager
    def item(self, node: str, item: Any) -> Iterator[None]:
        """Trace one item through one node: an ``item`` span plus the duration histogram.

        The first node to see the item stores the span's context on
        ``item.trace`` (events then carry its trace id); later nodes link to it.
        An item the node's error policy skips or dead-letters is marked failed
        by :meth:`item_failed`; one that raises is marked by the exception.
        """
        attributes: dict[str, Any] = {sc.DSPEX_NODE: node, sc.DSPEX_ITEM_ID: item.id}
        if item.key is not None:
            attributes[sc.DSPEX_ITEM_KEY] = item.key
        started = time.perf_counter()
        scope = _ItemScope(item)
        token = _ITEM.set(scope)
        status = "ok"
        try:
            if self.tracer is None:
                yield
            else:
                origin = item.trace
                links = [otel_trace.Link(origin)] if origin is not None else None
                with self.tracer.start_as_current_span(
                    f"item {node}", attributes=attributes, links=links,
                    record_exception=False, set_status_on_exception=False,
                ) as span:
                    scope.span = span
                    if origin is None:
                        item.trace = span.get_span_context()
                    try:
                        yield
                    except Exception as exc:
                        _fail(span, exc)
                        raise
        except Exception:
            status = "error"
            raise
        finally:
            _ITEM.reset(token)
            if self.instruments is not None:
                status = "error" if scope.failed else status
                self.instruments.item_done(node, time.perf_counter() - started, status)

    def item_failed(self, item: Any, error: BaseException) -> None:
        """Mark ``item``'s span in the current node as failed (its policy kept it quiet)."""
        scope = _ITEM.get()
        if scope is None or scope.item is not item:
            return  # not inside this item's span (a source record, a plain chunked map)
        scope.failed = True
        if scope.span is not None:
            _fail(scope.span, error)

    # -- calls ------------------------------------------------------------------
    @contextmanager
    def module_scope(self, callbacks: tuple[Any, ...], instance: Any, inputs: dict[str, Any]) -> Iterator[list[Any]]:
        """Wrap one module call in a ``module`` span and its callbacks.

        The block appends the call's result to the yielded list (for
        ``on_module_end``); an exception is reported and re-raised.
        """
        call_id = new_call_id() if callbacks else ""
        if callbacks:
            notify(callbacks, "on_module_start", call_id, instance, inputs)
        name = type(instance).__name__
        result: list[Any] = []
        try:
            with self.span(f"module {name}", {sc.DSPEX_MODULE: name}):
                yield result
        except Exception as exc:
            if callbacks:
                notify(callbacks, "on_module_end", call_id, None, exc)
            raise
        if callbacks:
            notify(callbacks, "on_module_end", call_id, result[0] if result else None, None)

    async def module_call(self, callbacks: tuple[Any, ...], instance: Any, inputs: dict[str, Any],
                          call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` (a module's ``acall``) inside :meth:`module_scope`."""
        with self.module_scope(callbacks, instance, inputs) as result:
            result.append(await call())
        return result[0]

    def module_call_sync(self, callbacks: tuple[Any, ...], instance: Any, inputs: dict[str, Any],
                         call: Callable[[], Any]) -> Any:
        """Run ``call`` (a sync ``forward`` called directly) inside :meth:`module_scope`."""
        with self.module_scope(callbacks, instance, inputs) as result:
            result.append(call())
        return result[0]

    def lm_start(self, lm: Any, messages: Any, params: Mapping[str, Any]) -> Span | None:
        """Start a ``chat {model}`` client span for one LM call (not made current)."""
        if self.tracer is None:
            return None
        model = str(getattr(lm, "model", "") or "")
        provider = getattr(lm, "provider", None) or (model.split("/", 1)[0] if "/" in model else "unknown")
        request_model = model.split("/", 1)[1] if "/" in model else model
        attributes: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_PROVIDER_NAME: str(provider),
            sc.GEN_AI_REQUEST_MODEL: request_model,
        }
        if self.capture_content:
            attributes[sc.GEN_AI_INPUT_MESSAGES] = _jsonish(messages)
        return self.tracer.start_span(
            f"{sc.OP_CHAT} {request_model}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def lm_end(self, span: Span | None, lm: Any, started: float, *, usage: Any = None,
               response_model: str | None = None, outputs: Any = None,
               finish_reasons: Any = None, error: BaseException | None = None) -> None:
        """End an LM span (usage, response model, error) and record the LM histograms."""
        if span is not None:
            if response_model:
                span.set_attribute(sc.GEN_AI_RESPONSE_MODEL, response_model)
            if usage is not None:
                span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, int(usage.input_tokens))
                span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, int(usage.output_tokens))
            reasons = [r for r in finish_reasons or () if r]
            if reasons:
                span.set_attribute(sc.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
            if outputs is not None and self.capture_content:
                span.set_attribute(sc.GEN_AI_OUTPUT_MESSAGES, _jsonish(list(outputs)))
            if error is not None:
                _fail(span, error)
            span.end()
        if self.instruments is not None:
            self.instruments.lm_done(lm, time.perf_counter() - started, usage, error)

    async def tool_call(self, callbacks: tuple[Any, ...], tool: Any, name: str, args: Any,
                        call_id: str | None, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` (one tool) inside an ``execute_tool`` span and the tool callbacks.

        ``call`` returns the tool outcome (its ``observation`` and ``error``
        text): a tool failure marks the span without raising.
        """
        cb_id = new_call_id() if callbacks else ""
        if callbacks:
            notify(callbacks, "on_tool_start", cb_id, tool, args if isinstance(args, dict) else {"_raw": args})
        span = None
        if self.tracer is not None:
            attributes: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name}
            if call_id:
                attributes[sc.GEN_AI_TOOL_CALL_ID] = call_id
            if self.capture_content:
                attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = _jsonish(args)
            span = self.tracer.start_span(f"{sc.OP_EXECUTE_TOOL} {name}", kind=SpanKind.INTERNAL,
                                          attributes=attributes)
        try:
            outcome = await call()
        except BaseException as exc:
            if span is not None:
                _fail(span, exc)
                span.end()
            if callbacks and isinstance(exc, Exception):
                notify(callbacks, "on_tool_end", cb_id, None, exc)
            raise
        error = getattr(outcome, "error", None)
        if span is not None:
            if error is not None:
                span.set_attribute(sc.ERROR_TYPE, "ToolError")
                span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
            elif self.capture_content:
                span.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, _jsonish(getattr(outcome, "observation", None)))
            span.end()
        if callbacks:
            notify(callbacks, "on_tool_end", cb_id, getattr(outcome, "observation", outcome), None)
        return outcome
