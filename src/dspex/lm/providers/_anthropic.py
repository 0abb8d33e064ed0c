"""Anthropic Messages API.

``POST {api_base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``.
System messages move to the top-level ``system``; tool turns become
``tool_use`` / ``tool_result`` content blocks; ``max_tokens`` is required
(default 4096). Structured output forces a single tool (``tool_choice:
{"type": "tool"}``) whose ``input_schema`` is the requested schema, and the
tool input comes back as the completion's JSON text. Streaming follows the
SSE events ``message_start`` → ``content_block_*`` → ``message_delta`` →
``message_stop``. There is no native ``n``: the LM front fans out.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import ConfigError
from .._types import LMResponse, LMUsage, Message, NativeToolCall
from ._base import (
    RESERVED_PARAMS,
    Provider,
    ProviderRequest,
    StreamState,
    content_text,
    normalize_response_format,
    normalize_tools,
    parse_data_url,
)

__all__ = ["AnthropicProvider"]

STRUCTURED_TOOL = "structured_output"
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
_DROPPED = frozenset({"n", "seed", "presence_penalty", "frequency_penalty", "logprobs", "user"})


def _usage(raw: Any, previous: LMUsage | None = None) -> LMUsage:
    if not isinstance(raw, dict):
        return previous or LMUsage()
    prev = previous or LMUsage()
    read = raw.get("cache_read_input_tokens")
    created = raw.get("cache_creation_input_tokens") or 0
    base = raw.get("input_tokens")
    cached = int(read) if read is not None else prev.cached_tokens
    total_in = (int(base) + cached + int(created)) if base is not None else prev.input_tokens
    out = raw.get("output_tokens")
    return LMUsage(
        input_tokens=total_in,
        output_tokens=int(out) if out is not None else prev.output_tokens,
        cached_tokens=cached,
    )


def _document(file: dict[str, Any]) -> dict[str, Any]:
    """Return a ``dx.File`` part as a ``document`` block (base64 data, or a file id)."""
    data = parse_data_url(str(file.get("file_data") or ""))
    if data:
        return {"type": "document", "source": {"type": "base64", "media_type": data[0], "data": data[1]}}
    return {"type": "document", "source": {"type": "file", "file_id": file.get("file_id", "")}}


def _blocks(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            data = parse_data_url(url)
            source = (
                {"type": "base64", "media_type": data[0], "data": data[1]}
                if data
                else {"type": "url", "url": url}
            )
            blocks.append({"type": "image", "source": source})
        elif kind == "file":
            blocks.append(_document(part.get("file") or {}))
        elif kind == "input_audio":
            raise ConfigError("Anthropic models take no audio input (a dx.Audio value); expected text, images, "
                              "documents or files")
        elif isinstance(part, dict):
            blocks.append(part)  # already an Anthropic block
    return blocks


def _convert(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(content_text(msg.get("content")))
            continue
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": msg.get("tool_call_id", ""),
                "content": content_text(msg.get("content")),
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        content = _blocks(msg.get("content"))
        if role == "assistant" and msg.get("tool_calls"):
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
            if isinstance(content, list):
                blocks = content
            for call in msg["tool_calls"]:
                fn = call.get("function") or {}
                args = fn.get("arguments") or "{}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": json.loads(args) if isinstance(args, str) else args,
                    }
                )
            content = blocks
        out.append({"role": "assistant" if role == "assistant" else "user", "content": content})
    return "\n\n".join(s for s in system if s), out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return {"type": "tool", "name": name} if name else dict(choice)
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(
        str(choice), {"type": "auto"}
    )


class AnthropicProvider(Provider):
    """The Anthropic Messages API."""

    name = "anthropic"
    env_keys = ("ANTHROPIC_API_KEY",)
    default_base = "https://api.anthropic.com"
    version = "2023-06-01"

    def build_request(
        self, messages: list[Message], params: dict[str, Any], *, stream: bool
    ) -> ProviderRequest:
        """Return ``POST /v1/messages`` for ``messages``."""
        system, converted = _convert(messages)
        body: dict[str, Any] = {"model": self.model_name, "messages": converted}
        body["max_tokens"] = params.get("max_tokens") or 4096
        if system:
            body["system"] = system
        for key, value in params.items():
            if key in RESERVED_PARAMS or key in _DROPPED or key == "max_tokens" or value is None:
                continue
            if key == "stop":
                body["stop_sequences"] = [value] if isinstance(value, str) else list(value)
            elif key == "tools":
                body["tools"] = [
                    {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
                    for t in normalize_tools(value)
                ]
            elif key == "tool_choice":
                body["tool_choice"] = _tool_choice(value)
            elif key == "response_format":
                self._force_schema(body, normalize_response_format(value))
            else:
                body[key] = value
        if stream:
            body["stream"] = True
        body.update(params.get("extra_body") or {})
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": self.version,
        }
        if self.api_key:
            headers["x-api-key"] = self.api_key
        base = self.api_base
        url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        return ProviderRequest(url, headers, body)

    @staticmethod
    def _force_schema(body: dict[str, Any], rf: dict[str, Any] | None) -> None:
        if not rf or rf.get("type") != "json_schema":
            return  # json_object / text: no native switch; the prompt asks for JSON
        spec = rf.get("json_schema") or {}
        tool = {
            "name": STRUCTURED_TOOL,
            "description": spec.get("description") or "Respond with the structured output.",
            "input_schema": spec.get("schema") or {"type": "object"},
        }
        body["tools"] = [*body.get("tools", []), tool]
        body["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL}

    def parse_response(self, data: Any) -> LMResponse:
        """Return the single completion of a ``message`` object."""
        text: list[str] = []
        calls: list[NativeToolCall] = []
        for block in data.get("content") or []:
            if block.get("type") == "text":
                text.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                if block.get("name") == STRUCTURED_TOOL:
                    text.append(json.dumps(block.get("input") or {}, ensure_ascii=False))
                else:
                    calls.append(
                        NativeToolCall(name=block.get("name", ""), args=block.get("input") or {}, id=block.get("id"))
                    )
        stop = data.get("stop_reason")
        if stop == "tool_use" and not calls:
            stop = "stop"  # the forced structured-output tool ends the turn normally
        return LMResponse(
            outputs=["".join(text)],
            model=str(data.get("model") or self.model_name),
            usage=_usage(data.get("usage")),
            tool_calls=[calls],
            finish_reasons=[_FINISH.get(stop, stop)],
        )

    def parse_stream_event(self, state: StreamState, event: str | None, data: str) -> str:
        """Fold one Messages streaming event into ``state``."""
        payload = json.loads(data)
        kind = payload.get("type") or event
        blocks: dict[int, str] = state.extra.setdefault("blocks", {})
        if kind == "message_start":
            message = payload.get("message") or {}
            state.model = message.get("model") or state.model
            state.usage = _usage(message.get("usage"), state.usage)
        elif kind == "content_block_start":
            block, index = payload.get("content_block") or {}, payload.get("index", 0)
            blocks[index] = block.get("type", "text")
            if block.get("type") == "tool_use":
                if block.get("name") == STRUCTURED_TOOL:
                    blocks[index] = "structured"
                else:
                    state.tool_calls[index] = {"id": block.get("id"), "name": block.get("name"), "arguments": []}
        elif kind == "content_block_delta":
            return self._delta(state, blocks, payload)
        elif kind == "message_delta":
            stop = (payload.get("delta") or {}).get("stop_reason")
            if stop:
                state.finish_reason = "stop" if stop == "tool_use" and not state.tool_calls else _FINISH.get(stop, stop)
            state.usage = _usage(payload.get("usage"), state.usage)
        elif kind == "message_stop":
            state.done = True
        elif kind == "error":
            raise self.stream_error(payload)
        return ""

    @staticmethod
    def _delta(state: StreamState, blocks: dict[int, str], payload: dict[str, Any]) -> str:
        delta, index = payload.get("delta") or {}, payload.get("index", 0)
        text: str
        if delta.get("type") == "text_delta":
            text = delta.get("text", "")
        elif delta.get("type") == "input_json_delta" and blocks.get(index) == "structured":
            text = delta.get("partial_json", "")
        elif delta.get("type") == "input_json_delta" and index in state.tool_calls:
            state.tool_calls[index]["arguments"].append(delta.get("partial_json", ""))
            return ""
        else:
            return ""
        if text:
            state.text.append(text)
        return text
