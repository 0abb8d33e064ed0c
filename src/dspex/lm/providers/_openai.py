"""OpenAI chat completions, and every server that speaks it.

``POST {api_base}/chat/completions`` with ``Authorization: Bearer``. Covers
OpenAI itself and the compatible servers (vLLM, Ollama, llama.cpp server, LM
Studio, Groq, Together, ...) through ``api_base``. Streaming uses SSE with
``stream_options.include_usage`` so the last chunk (empty ``choices``) carries
the usage, and ``data: [DONE]`` ends the stream. ``n`` is native. Structured
output is ``response_format`` (``json_schema`` / ``json_object``) as is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .._types import LMResponse, LMUsage, Message, NativeToolCall
from ._base import (
    RESERVED_PARAMS,
    Provider,
    ProviderRequest,
    StreamState,
    normalize_response_format,
    normalize_tools,
)

__all__ = ["OpenAIProvider"]

_REASONING = re.compile(r"^(o1|o3|o4|gpt-5)")


def _usage(raw: Any) -> LMUsage:
    if not isinstance(raw, dict):
        return LMUsage()
    details = raw.get("prompt_tokens_details") or {}
    return LMUsage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def _tool_calls(raw: Any) -> list[NativeToolCall]:
    calls = []
    for call in raw or []:
        fn = call.get("function") or {}
        text = fn.get("arguments") or ""
        try:
            args = json.loads(text) if text else {}
        except json.JSONDecodeError:
            args = {"__raw__": text}
        calls.append(NativeToolCall(name=fn.get("name", ""), args=args, id=call.get("id")))
    return calls


class OpenAIProvider(Provider):
    """The OpenAI chat-completions API (and compatible servers)."""

    name = "openai"
    env_keys = ("OPENAI_API_KEY",)
    default_base = "https://api.openai.com/v1"
    native_n = True

    @property
    def key_required(self) -> bool:  # type: ignore[override]
        """A key is needed for api.openai.com, optional for local servers."""
        return self.api_base == self.default_base

    def build_request(
        self, messages: list[Message], params: dict[str, Any], *, stream: bool
    ) -> ProviderRequest:
        """Return ``POST /chat/completions`` for ``messages``."""
        body: dict[str, Any] = {"model": self.model_name, "messages": messages}
        for key, value in params.items():
            if key in RESERVED_PARAMS or value is None:
                continue
            if key == "tools":
                value = [{"type": "function", "function": t} for t in normalize_tools(value)]
            elif key == "response_format":
                value = normalize_response_format(value)
            elif key == "max_tokens" and self._reasoning_model():
                key = "max_completion_tokens"
            body[key] = value
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(params.get("extra_body") or {})
        headers = {"content-type": "application/json"}
        headers["accept"] = "text/event-stream" if stream else "application/json"
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return ProviderRequest(f"{self.api_base}/chat/completions", headers, body)

    @property
    def supports_reasoning(self) -> bool:
        """True for OpenAI's reasoning models (o1, o3, o4, gpt-5)."""
        return bool(_REASONING.match(self.model_name))

    def _reasoning_model(self) -> bool:
        return self.api_base == self.default_base and bool(_REASONING.match(self.model_name))

    def parse_response(self, data: Any) -> LMResponse:
        """Return the ``choices`` of a chat-completion object."""
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        outputs, calls, reasons, thoughts = [], [], [], []
        for choice in choices:
            message = choice.get("message") or {}
            outputs.append(message.get("content") or "")
            calls.append(_tool_calls(message.get("tool_calls")))
            reasons.append(choice.get("finish_reason"))
            thoughts.append(message.get("reasoning_content") or message.get("reasoning") or None)
        return LMResponse(
            outputs=outputs,
            model=str(data.get("model") or self.model_name),
            usage=_usage(data.get("usage")),
            tool_calls=calls,
            finish_reasons=reasons,
            reasoning=thoughts if any(thoughts) else [],
        )

    def parse_stream_event(self, state: StreamState, event: str | None, data: str) -> str:
        """Fold one ``chat.completion.chunk`` (or ``[DONE]``) into ``state``."""
        if data.strip() == "[DONE]":
            state.done = True
            return ""
        chunk = json.loads(data)
        if "error" in chunk:
            raise self.stream_error(chunk)
        state.model = chunk.get("model") or state.model
        if chunk.get("usage"):
            state.usage = _usage(chunk["usage"])
        text = ""
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content") or ""
            if text:
                state.text.append(text)
            for call in delta.get("tool_calls") or []:
                slot = state.tool_calls.setdefault(call.get("index", 0), {"arguments": []})
                fn = call.get("function") or {}
                if call.get("id"):
                    slot["id"] = call["id"]
                if fn.get("name"):
                    slot["name"] = fn["name"]
                if fn.get("arguments"):
                    slot["arguments"].append(fn["arguments"])
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
        return text
