"""Telemetry: OpenTelemetry spans and metrics (GenAI conventions), and DSPy-style callbacks."""

from ._callbacks import Callback as Callback

__all__ = ["Callback"]
