"""What one endpoint accepts, learned by negotiation: structured output, tools, stream options.

OpenAI-compatible servers differ in which optional request parameters they
take: llama.cpp's server refuses ``response_format: json_schema`` (with a
500), LM Studio refuses ``json_object``, some servers reject
``stream_options``, ``tool_choice`` or ``parallel_tool_calls``.
:class:`Capabilities` remembers, per endpoint (one ``(api_base, model)``, for
the LM's lifetime), what the server refused; :class:`Trial` is one call's
negotiation: it rewrites the parameters to what is not known to be refused,
and on a refusal steps down one rung and tries again, without touching the
retry budget. The structured-output ladder is ``json_schema`` (strict), then
``json_object``, then none (the prompt alone asks for JSON and the adapter
repairs it). ``tool_choice``, ``parallel_tool_calls`` and ``stream_options``
are dropped when refused; refused ``tools`` have no fallback and raise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import UnsupportedParameterError

__all__ = ["NEGOTIABLE", "Capabilities", "Trial", "refused_parameter"]

#: Optional parameters a server may refuse, most specific name first (a body
#: naming ``tool_choice`` also names ``tool``...).
NEGOTIABLE = ("parallel_tool_calls", "tool_choice", "stream_options", "response_format", "tools")

_MENTIONS = {
    "parallel_tool_calls": re.compile(r"parallel_tool_calls", re.I),
    "tool_choice": re.compile(r"tool_choice", re.I),
    "stream_options": re.compile(r"stream_options|include_usage", re.I),
    "response_format": re.compile(r"response_format|response format|json_schema|json_object|structured output", re.I),
    "tools": re.compile(r"\btools?\b|function.?call", re.I),
}

#: The structured-output ladder, from the most to the least the server does.
LADDER = ("json_schema", "json_object", "prompt")


def refused_parameter(status: int, message: str, sent: dict[str, Any]) -> str | None:
    """Return the optional parameter an error response refuses, or None.

    A refusal is a 400/422 or a 5xx whose message names a negotiable
    parameter that the request carried (``sent`` is the request body). A
    400/422 naming none of them still counts as refusing ``response_format``
    when the request carried one (servers often answer a schema they cannot
    compile with a bare "bad request"). The caller checks the error type
    first: a context-window, auth or rate-limit error is never a refusal.
    """
    if not (status in (400, 422) or status >= 500):
        return None
    present = [p for p in NEGOTIABLE if sent.get(p) is not None]
    for name in present:
        if _MENTIONS[name].search(message):
            return name
    if status in (400, 422) and "response_format" in present:
        return "response_format"
    return None


@dataclass
class Capabilities:
    """What one endpoint was found to refuse (shared by an LM and its copies).

    ``refused_formats`` holds ``response_format`` types the server refused
    (``"json_schema"``, ``"json_object"``); ``refused`` holds other refused
    parameters. ``accepted_format`` is the last structured-output rung a
    successful call used. Updated only when a call succeeds at a lower rung,
    so a request that fails for other reasons teaches nothing.
    """

    refused_formats: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    accepted_format: str | None = None
    negotiations: int = 0

    def trial(self, params: dict[str, Any]) -> Trial:
        """Return the negotiation of one call with ``params``."""
        return Trial(self, params)

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-able view (for reports and ``lm.capabilities``)."""
        return {
            "structured_output": self.accepted_format,
            "refused_response_formats": sorted(self.refused_formats),
            "refused_parameters": sorted(self.refused),
            "negotiations": self.negotiations,
        }


def _format_type(rf: Any) -> str | None:
    if isinstance(rf, dict):
        kind = rf.get("type")
        return kind if kind in ("json_schema", "json_object") else None
    if isinstance(rf, type) and callable(getattr(rf, "model_json_schema", None)):
        return "json_schema"
    return None


class Trial:
    """One call's negotiation: the parameters to send now, and what to drop next.

    Args:
        caps: The endpoint's :class:`Capabilities` (read now, written on success).
        params: The call's parameters as the caller gave them.
    """

    def __init__(self, caps: Capabilities, params: dict[str, Any]) -> None:
        self.caps = caps
        self.original = params
        self.refused_formats = set(caps.refused_formats)
        self.refused = set(caps.refused)
        self.stepped = False

    @property
    def format_level(self) -> str | None:
        """The rung this attempt uses, or None when no structured output was asked."""
        wanted = _format_type(self.original.get("response_format"))
        if wanted is None:
            return None
        start = LADDER.index(wanted)
        return next((r for r in LADDER[start:] if r not in self.refused_formats), "prompt")

    @property
    def params(self) -> dict[str, Any]:
        """The parameters to send: refused ones dropped, ``response_format`` stepped down."""
        out = {k: v for k, v in self.original.items() if k not in self.refused}
        level = self.format_level
        if level == "prompt":
            out.pop("response_format", None)
        elif level == "json_object" and _format_type(self.original.get("response_format")) != "json_object":
            out["response_format"] = {"type": "json_object"}
        return out

    @property
    def drop_stream_options(self) -> bool:
        """True when the server refused ``stream_options`` (usage is then counted locally)."""
        return "stream_options" in self.refused

    def step_down(self, exc: UnsupportedParameterError) -> None:
        """Take the refusal ``exc`` into account for the next attempt.

        Raises:
            UnsupportedParameterError: ``exc`` itself, when nothing is left to
                drop (refused ``tools``, or a parameter already dropped).
        """
        name = exc.parameter
        if name == "response_format":
            level = self.format_level
            if level is None or level == "prompt":
                raise exc
            self.refused_formats.add(level)
        elif name in ("tools",) or name in self.refused:
            self.caps.refused.add(name)
            raise exc
        else:
            self.refused.add(name)
        self.stepped = True
        self.caps.negotiations += 1

    def succeeded(self) -> dict[str, Any]:
        """Record what worked; return ``{"structured_output", "dropped_params"}`` for the response."""
        level = self.format_level
        if self.stepped:
            self.caps.refused_formats |= self.refused_formats
            self.caps.refused |= self.refused
        if level is not None:
            self.caps.accepted_format = level
        dropped = sorted(p for p in self.refused if p in self.original or p == "stream_options")
        return {"structured_output": level, "dropped_params": dropped}

