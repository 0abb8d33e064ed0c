"""OpenTelemetry metric instruments for runs and LM calls (created only with a meter provider).

:class:`Instruments` holds dspex's instruments on one meter. Per LM call it
records the GenAI client histograms (``gen_ai.client.operation.duration``,
``gen_ai.client.token.usage``); per item and node, ``dspex.item.duration``.
The run-level numbers are not recomputed: :meth:`Instruments.run_recorder`
returns a function that takes the engine's live-metrics sample (the dict the
``Metrics`` event carries, taken every half second) and turns it into
counter increments (items, failures, cost, retries, cache hits, memory
pauses) and gauges (items/s, in-flight, queue depth per node). Nothing here
exists unless a meter provider was configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _semconv as sc

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Instruments"]

#: Counters fed from cumulative values of the live sample: (sample key, instrument, unit, description).
_COUNTED = (
    ("items_in", sc.METRIC_ITEMS, "{item}", "Items read, done and failed (dspex.status)"),
    ("cost", sc.METRIC_COST, "USD", "LM cost"),
    ("retries", sc.METRIC_RETRIES, "{retry}", "Item retries by error policy"),
    ("cache_hits", sc.METRIC_CACHE_HITS, "{call}", "LM calls served from the cache"),
    ("memory_pauses", sc.METRIC_MEMORY_PAUSES, "{pause}", "Sources paused for memory"),
)
_STATUS = {"items_in": "read", "items_done": "done", "items_failed": "failed"}


class Instruments:
    """dspex's instruments on one meter (see the module docstring)."""

    def __init__(self, meter: Any) -> None:
        self.operation_duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration"
        )
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE, unit="{token}", description="Tokens used per LM call"
        )
        self.item_duration = meter.create_histogram(
            sc.METRIC_ITEM_DURATION, unit="s", description="Time one item spent in one node"
        )
        self.counters = {
            key: meter.create_counter(name, unit=unit, description=text) for key, name, unit, text in _COUNTED
        }
        self.items_rate = meter.create_gauge(sc.METRIC_ITEMS_RATE, unit="{item}/s", description="Items done per second")
        self.in_flight = meter.create_gauge(sc.METRIC_IN_FLIGHT, unit="{item}", description="Items admitted, not done")
        self.queue_depth = meter.create_gauge(
            sc.METRIC_QUEUE_DEPTH, unit="{item}", description="Items waiting on a node's input edge"
        )

    def lm_done(self, lm: Any, seconds: float, usage: Any, error: BaseException | None) -> None:
        """Record one LM call's duration and tokens."""
        model = str(getattr(lm, "model", "") or "")
        attributes: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_PROVIDER_NAME: str(getattr(lm, "provider", None) or model.split("/", 1)[0]),
            sc.GEN_AI_REQUEST_MODEL: model.split("/", 1)[-1],
        }
        if error is not None:
            attributes[sc.ERROR_TYPE] = type(error).__qualname__
        self.operation_duration.record(seconds, attributes)
        if usage is not None and error is None:
            self.token_usage.record(int(usage.input_tokens), {**attributes, sc.GEN_AI_TOKEN_TYPE: "input"})
            self.token_usage.record(int(usage.output_tokens), {**attributes, sc.GEN_AI_TOKEN_TYPE: "output"})

    def item_done(self, node: str, seconds: float, status: str) -> None:
        """Record the time one item spent in ``node``."""
        self.item_duration.record(seconds, {sc.DSPEX_NODE: node, sc.DSPEX_STATUS: status})

    def run_recorder(self, flow: str) -> Callable[[Mapping[str, Any]], None]:
        """Return a function recording one live-metrics sample of a run of ``flow``.

        Counters get the increase since the previous sample (the sample holds
        cumulative totals); gauges get the sample's value.
        """
        last: dict[str, float] = {}
        base = {sc.DSPEX_FLOW: flow}

        def add(key: str, value: float, counter: Any, attributes: Mapping[str, Any]) -> None:
            delta = value - last.get(key, 0)
            if delta > 0:
                counter.add(delta, attributes)
                last[key] = value

        def record(sample: Mapping[str, Any]) -> None:
            items = self.counters["items_in"]
            for key, status in _STATUS.items():
                add(key, sample.get(key, 0), items, {**base, sc.DSPEX_STATUS: status})
            for key, counter in self.counters.items():
                if key != "items_in" and key in sample:
                    add(key, sample[key], counter, base)
            self.items_rate.set(sample.get("items_per_s", 0.0), base)
            self.in_flight.set(sample.get("in_flight", 0), base)
            for node, depth in (sample.get("queue_depths") or {}).items():
                self.queue_depth.set(depth, {**base, sc.DSPEX_NODE: node})

        return record
