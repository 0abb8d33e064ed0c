"""Real servers' quirks, reproduced by FakeLLMServer (``quirks={...}``) for tests.

Each quirk is one thing an OpenAI-compatible server in the wild does that a
client must survive; ``FakeLLMServer(quirks={"no_stream_usage", ...})``
turns it on for OpenAI-style requests:

- ``refuse_json_schema_500``: ``response_format: json_schema`` answered with
  a 500 naming ``response_format`` (llama-cpp-python's server).
- ``refuse_json_schema_400``: the same refused with a bare 400 that names
  nothing (servers that cannot compile a schema).
- ``refuse_json_object``: ``json_object`` refused with a 400 (LM Studio).
- ``refuse_stream_options``, ``refuse_tool_choice``,
  ``refuse_parallel_tool_calls``, ``refuse_tools``: a 400 naming the parameter.
- ``no_stream_usage``: streams carry no usage even when asked; ``no_usage``:
  no response carries usage at all.
- ``empty_choices_chunks``: extra stream chunks with ``"choices": []``.
- ``keepalive_comments``: ``: keep-alive`` SSE comments between events.
- ``no_ids``: no ``id``, ``created`` or ``system_fingerprint`` anywhere.
- ``odd_model_id``: the model reported as a file path, not the requested name.
- ``text_errors``: error responses as ``text/html``, not JSON.
- ``split_head_body``: a response's head and body sent as two packets
  (uvicorn, so llama-cpp-python's server, does this).

``finish_reason: length`` needs no quirk: any request with ``max_tokens``
below the answer's length gets it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "QUIRKS", "check_quirks", "quirk_frames", "quirk_payload", "quirk_refusal", "send_response", "text_error",
]

QUIRKS = frozenset({
    "refuse_json_schema_500", "refuse_json_schema_400", "refuse_json_object", "refuse_stream_options",
    "refuse_tool_choice", "refuse_parallel_tool_calls", "refuse_tools", "no_stream_usage", "no_usage",
    "empty_choices_chunks", "keepalive_comments", "no_ids", "odd_model_id", "text_errors", "split_head_body",
})  # fmt: skip

ODD_MODEL_ID = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"

Frame = tuple[bytes, int]


def check_quirks(quirks: Iterable[str]) -> frozenset[str]:
    """Return ``quirks`` as a frozenset.

    Raises:
        ConfigError: A name is not one of :data:`QUIRKS`.
    """
    chosen = frozenset(quirks)
    unknown = sorted(chosen - QUIRKS)
    if unknown:
        raise ConfigError(f"unknown FakeLLMServer quirk(s) {unknown}: expected some of {sorted(QUIRKS)}")
    return chosen


def quirk_refusal(quirks: frozenset[str], body: dict[str, Any]) -> tuple[int, str] | None:
    """Return ``(status, message)`` when a quirk refuses this request body, else None."""
    fmt = (body.get("response_format") or {}).get("type") if isinstance(body.get("response_format"), dict) else None
    if fmt == "json_schema" and "refuse_json_schema_500" in quirks:
        return 500, "Internal error: response_format type json_schema is not supported: use text or json_object"
    if fmt == "json_schema" and "refuse_json_schema_400" in quirks:
        return 400, "Bad Request"
    if fmt == "json_object" and "refuse_json_object" in quirks:
        return 400, "'response_format.type' must be 'json_schema' or 'text'"
    for name in ("stream_options", "tool_choice", "parallel_tool_calls", "tools"):
        if body.get(name) is not None and f"refuse_{name}" in quirks:
            return 400, f"Unrecognized request argument supplied: {name}"
    return None


async def send_response(stream: Any, head: bytes, body: bytes, quirks: frozenset[str]) -> None:
    """Send a response's ``head`` and ``body``: one packet, or two with ``split_head_body``."""
    if "split_head_body" in quirks and body:  # uvicorn: the head and the body in two packets
        await stream.send(head)
        await anyio.sleep(0.005)
        await stream.send(body)
        return
    await stream.send(head + body)


def text_error(status: int, message: str) -> bytes:
    """Return an HTML error page (the ``text_errors`` quirk)."""
    return f"<html><body><h1>{status}</h1><p>{message}</p></body></html>".encode()


def _strip(obj: dict[str, Any], quirks: frozenset[str]) -> dict[str, Any]:
    if "no_ids" in quirks:
        for key in ("id", "created", "system_fingerprint"):
            obj.pop(key, None)
    if "odd_model_id" in quirks and "model" in obj:
        obj["model"] = ODD_MODEL_ID
    return obj


def quirk_payload(quirks: frozenset[str], payload: dict[str, Any]) -> dict[str, Any]:
    """Return a non-streamed OpenAI response body with the quirks applied."""
    if "no_usage" in quirks:
        payload.pop("usage", None)
    return _strip(payload, quirks)


def _mapped(frame: Frame, fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Frame | None:
    data, tokens = frame
    if not data.startswith(b"data: {"):
        return frame
    out = fn(json.loads(data[len(b"data: ") :]))
    return None if out is None else (f"data: {json.dumps(out, ensure_ascii=False)}\n\n".encode(), tokens)


def quirk_frames(quirks: frozenset[str], frames: list[Frame]) -> list[Frame]:
    """Return an OpenAI SSE stream's frames with the quirks applied."""
    def fix(chunk: dict[str, Any]) -> dict[str, Any] | None:
        if quirks & {"no_stream_usage", "no_usage"}:
            if chunk.get("usage") and not chunk.get("choices"):
                return None  # the usage-only last chunk is not sent
            chunk.pop("usage", None)
        return _strip(chunk, quirks)

    out = [f for f in (_mapped(frame, fix) for frame in frames) if f is not None]
    if "empty_choices_chunks" in quirks and out:
        empty = json.dumps(_strip({"id": "chatcmpl-empty", "object": "chat.completion.chunk", "created": 0,
                                   "model": "fake-model", "choices": []}, quirks))
        out = [out[0], (f"data: {empty}\n\n".encode(), 0), *out[1:]]
        out.insert(len(out) - 1, (f"data: {empty}\n\n".encode(), 0))
    if "keepalive_comments" in quirks:
        out = [f for frame in out for f in ((b": keep-alive\n\n", 0), frame)]
    return out
