"""Memory samplers: how much memory the process (or its cgroup) uses now.

The memory monitor reads one number, in bytes, every interval. On Linux the
process's resident set size comes from ``/proc/self/statm``; elsewhere the
``resource`` module gives the peak RSS (a coarser fallback). Inside a
container with a memory limit the cgroup's usage (v2 ``memory.current``, v1
``memory.usage_in_bytes``) is what the OOM killer looks at, so ``"auto"``
prefers it when a limit exists. Every sampler is a plain callable returning
bytes, so tests inject their own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "MemoryWatermarks",
    "Sampler",
    "cgroup_limit_bytes",
    "cgroup_sampler",
    "resolve_sampler",
    "rss_bytes",
]

Sampler = Callable[[], float]
"""Returns the memory in use, in bytes."""

MB = 1024 * 1024
_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")


@dataclass(frozen=True, slots=True)
class MemoryWatermarks:
    """When the memory monitor pauses and resumes the sources.

    Args:
        high_mb: Pause every source (and shrink admission) at or above this
            many MiB. ``None``: 85 % of the cgroup limit (an error without one).
        low_mb: Resume below this many MiB (default: 80 % of ``high_mb``).
        interval_s: How often to sample.
        shrink: Admission is cut to this fraction of ``max_in_flight`` while
            paused.
        sampler: ``"auto"`` (cgroup usage if it has a limit, else RSS),
            ``"rss"``, ``"cgroup"``, or a callable returning bytes in use.
    """

    high_mb: float | None = None
    low_mb: float | None = None
    interval_s: float = 0.25
    shrink: float = 0.5
    sampler: str | Sampler = "auto"

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ConfigError(f"MemoryWatermarks.interval_s must be > 0, got {self.interval_s!r}")
        if not 0 < self.shrink <= 1:
            raise ConfigError(f"MemoryWatermarks.shrink must be in (0, 1], got {self.shrink!r}")
        if self.high_mb is not None and self.low_mb is not None and self.low_mb > self.high_mb:
            raise ConfigError(
                f"MemoryWatermarks.low_mb ({self.low_mb}) must not exceed high_mb ({self.high_mb})"
            )
        if not callable(self.sampler) and self.sampler not in ("auto", "rss", "cgroup"):
            raise ConfigError(
                f"MemoryWatermarks.sampler must be 'auto', 'rss', 'cgroup' or a callable, "
                f"got {self.sampler!r}"
            )

    def thresholds(self) -> tuple[float, float]:
        """Return ``(high, low)`` in bytes."""
        high_mb = self.high_mb
        if high_mb is None:
            limit = cgroup_limit_bytes()
            if limit is None:
                raise ConfigError(
                    "MemoryWatermarks.high_mb is required when the process has no cgroup "
                    "memory limit"
                )
            high_mb = 0.85 * limit / MB
        low_mb = self.low_mb if self.low_mb is not None else 0.8 * high_mb
        return high_mb * MB, low_mb * MB


def rss_bytes() -> float:
    """Return the process's resident set size in bytes."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return float(pages * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if sys.platform == "darwin" else peak * 1024)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def cgroup_limit_bytes() -> int | None:
    """Return the cgroup memory limit in bytes, or None when unlimited/unknown."""
    limit = _read_int(_CGROUP_V2 / "memory.max")
    if limit is None:
        limit = _read_int(_CGROUP_V1 / "memory.limit_in_bytes")
        if limit is not None and limit >= 1 << 60:  # v1 "unlimited" is a huge number
            limit = None
    return limit


def cgroup_sampler() -> float:
    """Return the cgroup's memory usage in bytes (v2, then v1, then RSS)."""
    used = _read_int(_CGROUP_V2 / "memory.current")
    if used is None:
        used = _read_int(_CGROUP_V1 / "memory.usage_in_bytes")
    return float(used) if used is not None else rss_bytes()


def resolve_sampler(choice: str | Sampler) -> Sampler:
    """Return the sampler callable for a ``MemoryWatermarks.sampler`` value."""
    if callable(choice):
        return choice
    if choice == "rss":
        return rss_bytes
    if choice == "cgroup":
        return cgroup_sampler
    return cgroup_sampler if cgroup_limit_bytes() is not None else rss_bytes
