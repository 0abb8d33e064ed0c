"""The provider protocol and the helpers every provider shares.

A :class:`Provider` is Sans-I/O: ``build_request`` turns OpenAI-style chat
messages and parameters into a :class:`ProviderRequest` (URL, headers, JSON
body), ``parse_response`` turns a decoded JSON body into an
:class:`~dspex.lm._types.LMResponse`, ``parse_stream_event`` folds one SSE
event into a :class:`StreamState` and returns the new text, and ``map_error``
turns an error status and body into a typed :mod:`dspex.errors` exception. The
LM front does all I/O, retries and caching around it.

Inputs are OpenAI-shaped everywhere: messages ``{"role", "content"}`` (with
``tool_calls`` / ``tool_call_id`` for tool turns), ``tools`` as
``{"type": "function", "function": {...}}`` (or the flat inner dict), and
``response_format`` as ``{"type": "json_object"}``, ``{"type": "json_schema",
"json_schema": {"name", "schema", "strict"}}`` or a pydantic model class.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..._util._redact import redact
from ...errors import (
    AuthError,
    ContextWindowExceededError,
    InputError,
    LMProviderError,
    LMTimeoutError,
    RateLimitError,
    ServerError,
)
from .._types import LMResponse, LMUsage, Message, NativeToolCall

__all__ = [
    "Provider",
    "ProviderRequest",
    "StreamState",
    "error_for_status",
    "normalize_response_format",
    "normalize_tools",
]

#: Parameters the LM front consumes itself; never sent to a provider.
RESERVED_PARAMS = frozenset({"cache", "rollout_id", "extra_body", "stream"})

_CONTEXT_PATTERNS = re.compile(
    r"context.length|context.window|maximum context|prompt is too long|too many tokens"
    r"|input token count .* exceeds|exceeds the maximum number of tokens|input is too long"
    r"|reduce the length of the messages",
    re.IGNORECASE,
)


@dataclass
class ProviderRequest:
    """One HTTP request to send: ``POST url`` with ``headers`` and JSON ``body``."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"


@dataclass
class StreamState:
    """What a provider accumulates while parsing one streamed completion."""

    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: LMUsage = field(default_factory=LMUsage)
    finish_reason: str | None = None
    model: str = ""
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_response(self, fallback_model: str) -> LMResponse:
        """Return the completed stream as a one-completion response."""
        calls = []
        for _, raw in sorted(self.tool_calls.items()):
            args = raw.get("args")
            if args is None:
                text = "".join(raw.get("arguments", []))
                try:
                    args = json.loads(text) if text else {}
                except json.JSONDecodeError:
                    args = {"__raw__": text}
            calls.append(NativeToolCall(name=raw.get("name", ""), args=args, id=raw.get("id")))
        return LMResponse(
            outputs=["".join(self.text)],
            model=self.model or fallback_model,
            usage=self.usage,
            tool_calls=[calls],
            finish_reasons=[self.finish_reason],
        )


def normalize_tools(tools: Any) -> list[dict[str, Any]]:
    """Return ``tools`` as flat ``{"name", "description", "parameters"}`` dicts.

    Raises:
        InputError: A tool is not a dict with a ``name``.
    """
    out: list[dict[str, Any]] = []
    for tool in tools or []:
        spec = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(spec, Mapping) or not spec.get("name"):
            raise InputError(
                f"invalid tool {tool!r}: expected {{'type': 'function', 'function': "
                "{'name': ..., 'parameters': {...}}} or {'name': ..., 'parameters': {...}}"
            )
        out.append(
            {
                "name": spec["name"],
                "description": spec.get("description", ""),
                "parameters": spec.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    return out


def normalize_response_format(rf: Any) -> dict[str, Any] | None:
    """Return ``response_format`` in OpenAI's dict form (or None).

    Raises:
        InputError: ``rf`` is neither a dict with a ``type`` nor a pydantic model class.
    """
    if rf is None:
        return None
    schema_fn = getattr(rf, "model_json_schema", None)
    if isinstance(rf, type) and callable(schema_fn):
        return {
            "type": "json_schema",
            "json_schema": {"name": rf.__name__, "schema": schema_fn(), "strict": False},
        }
    if isinstance(rf, Mapping) and rf.get("type") in {"json_object", "json_schema", "text"}:
        return dict(rf)
    raise InputError(
        f"invalid response_format {rf!r}: expected {{'type': 'json_object'}}, "
        "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}} "
        "or a pydantic model class"
    )


def content_text(content: Any) -> str:
    """Return the text of a message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        elif isinstance(part, str):
            parts.append(part)
    return "".join(parts)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """Split ``data:<mime>;base64,<data>`` into ``(mime, data)``."""
    match = re.match(r"data:([^;,]+);base64,(.*)", url, re.DOTALL)
    return (match.group(1), match.group(2)) if match else None


def error_message(body: bytes) -> tuple[str, str]:
    """Return ``(message, code)`` from a JSON error body, or the raw text."""
    text = body.decode("utf-8", "replace")[:2000]
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip(), ""
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("type") or err.get("status") or "")
        return str(err.get("message") or text), code
    return str(err), ""


def error_for_status(
    status: int,
    message: str,
    *,
    code: str = "",
    retry_after: float | None,
    provider: str,
    model: str,
    secrets: tuple[str | None, ...] = (),
) -> LMProviderError | LMTimeoutError:
    """Return the typed error for an HTTP error ``status`` (message redacted)."""
    text = redact(message, secrets)
    ctx: dict[str, Any] = {"status": status, "provider": provider, "model": model}
    if code == "context_length_exceeded" or (
        status in (400, 413, 422) and _CONTEXT_PATTERNS.search(text)
    ):
        return ContextWindowExceededError(f"prompt exceeds the model's context window: {text}", **ctx)
    if status in (401, 403):
        return AuthError(f"{provider} refused the credentials: {text}", **ctx)
    if status == 429 and code not in ("insufficient_quota", "enforced_spend_limit_reached"):
        return RateLimitError(f"rate limited by {provider}: {text}", retry_after=retry_after, **ctx)
    if status == 408:
        return LMTimeoutError(f"{provider} timed out the request: {text}", **ctx)
    if status >= 500:
        return ServerError(f"{provider} server error {status}: {text}", retry_after=retry_after, **ctx)
    return LMProviderError(f"{provider} rejected the request ({status}): {text}", **ctx)


class Provider(ABC):
    """One LM API family (Sans-I/O request building and response parsing).

    Args:
        model_name: The model without its provider prefix (``"gpt-4o-mini"``).
        api_base: Base URL override, or None for the provider's default.
        api_key: The credential, or None (local servers often need none).
    """

    name: ClassVar[str]
    env_keys: ClassVar[tuple[str, ...]]
    default_base: ClassVar[str]
    native_n: ClassVar[bool] = False
    key_required: ClassVar[bool] = True

    def __init__(self, model_name: str, api_base: str | None, api_key: str | None) -> None:
        self.model_name = model_name
        self.api_base = (api_base or self.default_base).rstrip("/")
        self.api_key = api_key

    @abstractmethod
    def build_request(
        self, messages: list[Message], params: dict[str, Any], *, stream: bool
    ) -> ProviderRequest:
        """Return the HTTP request for ``messages`` with ``params``."""

    @abstractmethod
    def parse_response(self, data: Any) -> LMResponse:
        """Return the completions in a decoded JSON response body."""

    @abstractmethod
    def parse_stream_event(self, state: StreamState, event: str | None, data: str) -> str:
        """Fold one SSE event into ``state``; return the new text (may be empty).

        Raises:
            LMProviderError: The stream carried an error event.
        """

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes, retry_after: float | None) -> Exception:
        """Return the typed error for an HTTP error response."""
        message, code = error_message(body)
        return error_for_status(
            status,
            message,
            code=code,
            retry_after=retry_after,
            provider=self.name,
            model=self.model_name,
            secrets=(self.api_key,),
        )

    def stream_error(self, payload: Any) -> Exception:
        """Return the typed error for an error event inside a stream."""
        err = payload.get("error", payload) if isinstance(payload, dict) else payload
        kind = str(err.get("type") or err.get("code") or err.get("status") or "") if isinstance(err, dict) else ""
        message = str(err.get("message", err)) if isinstance(err, dict) else str(err)
        status = {"rate_limit_error": 429, "overloaded_error": 529, "RESOURCE_EXHAUSTED": 429}.get(kind, 500)
        if kind in ("invalid_request_error", "INVALID_ARGUMENT"):
            status = 400
        return error_for_status(
            status, message, code=kind, retry_after=None, provider=self.name,
            model=self.model_name, secrets=(self.api_key,),
        )
