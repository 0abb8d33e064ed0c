"""ServerStats: what FakeLLMServer saw and said, for tests to compare totals against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ServerStats"]


@dataclass
class ServerStats:
    """What the server saw and said; compare these totals in tests."""

    requests: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    by_provider: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Media parts (images, audio, files) of the last request that had any,
    #: provider-neutral: ``[{"type": "image", "url": ...}, ...]``.
    last_media: list[dict[str, Any]] = field(default_factory=list)
    media_parts: int = 0

    @property
    def active_connections(self) -> int:
        """Connections open right now."""
        return self.connections_opened - self.connections_closed
