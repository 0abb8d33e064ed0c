"""Backpressure: bounded edges, in-flight limits and the memory monitor."""

from ._admission import MemoryMonitor as MemoryMonitor
from ._edge import BufferPolicy as BufferPolicy
from ._edge import Edge as Edge
from ._edge import create_edge as create_edge
from ._limits import InFlightLimiter as InFlightLimiter
from ._limits import SourceGate as SourceGate
from ._memory import MemoryWatermarks as MemoryWatermarks
from ._memory import cgroup_sampler as cgroup_sampler
from ._memory import rss_bytes as rss_bytes

__all__ = [
    "BufferPolicy",
    "Edge",
    "InFlightLimiter",
    "MemoryMonitor",
    "MemoryWatermarks",
    "SourceGate",
    "cgroup_sampler",
    "create_edge",
    "rss_bytes",
]
