"""Google Gemini ``generateContent``.

``POST {api_base}/v1beta/models/{model}:generateContent`` (streaming:
``:streamGenerateContent?alt=sse``, one ``GenerateContentResponse`` per SSE
event) with ``x-goog-api-key``. Roles are ``user`` / ``model``; system
messages become ``systemInstruction``; tools are ``functionDeclarations`` and
tool turns ``functionCall`` / ``functionResponse`` parts. Sampling goes into
``generationConfig`` (``n`` is native as ``candidateCount``); structured output
sets ``responseMimeType: application/json`` and ``responseSchema``, the
OpenAPI subset Gemini accepts, which :func:`gemini_schema` derives from JSON
Schema (``$ref`` inlined, unsupported keys dropped, ``null`` unions turned
into ``nullable``).
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from ..._jsonschema import GEMINI_WIRE, UnsupportedSchema, rewrite_schema
from ...errors import InputError
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

__all__ = ["GeminiProvider", "gemini_schema"]

_CONFIG = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


_CONVERTED: dict[str, Any] = {}
_CONVERTED_MAX = 256


def gemini_schema(schema: Any) -> Any:
    """Return ``schema`` (JSON Schema) in the OpenAPI subset Gemini accepts, best effort.

    Conversions are memoised by the schema's JSON text (a request's schema is
    usually the same every call, and encoding it costs a fraction of
    rewriting it), so the result may be shared between calls: treat it as
    read-only. At most ``_CONVERTED_MAX`` schemas are kept.

    Raises:
        InputError: ``schema`` has a recursive model or a ``$ref`` that does
            not resolve (Gemini's subset has no references).
    """
    if not isinstance(schema, dict):
        return schema
    try:
        key = json.dumps(schema, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON data: convert without memoising
        key = None
    hit = _CONVERTED.get(key) if key is not None else None
    if hit is not None:
        return hit
    try:
        out = rewrite_schema(schema, GEMINI_WIRE)
    except UnsupportedSchema as exc:
        where = "/".join(exc.path) or "the root"
        raise InputError(f"schema for gemini cannot be expressed at {where}: {exc.why}") from None
    if key is not None:
        if len(_CONVERTED) >= _CONVERTED_MAX:
            _CONVERTED.clear()
        _CONVERTED[key] = out
    return out


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return [{"text": content or ""}]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            data = parse_data_url(url)
            parts.append(
                {"inlineData": {"mimeType": data[0], "data": data[1]}}
                if data
                else {"fileData": {"mimeType": mimetypes.guess_type(url)[0] or "image/*", "fileUri": url}}
            )
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}})
        elif kind == "file":
            file = part.get("file") or {}
            data = parse_data_url(str(file.get("file_data") or ""))
            parts.append(
                {"inlineData": {"mimeType": data[0], "data": data[1]}}
                if data
                else {"fileData": {"mimeType": "application/octet-stream", "fileUri": file.get("file_id", "")}}
            )
        elif isinstance(part, dict):
            parts.append(part)
    return parts


def _convert(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for msg in messages:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(content_text(msg.get("content")))
        elif role == "tool":
            text = content_text(msg.get("content"))
            try:
                result = json.loads(text)
            except json.JSONDecodeError:
                result = text
            name = names.get(msg.get("tool_call_id", ""), msg.get("name", ""))
            part = {"functionResponse": {"name": name, "response": result if isinstance(result, dict) else {"result": result}}}
            if contents and contents[-1]["role"] == "user" and "functionResponse" in contents[-1]["parts"][0]:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        elif role == "assistant":
            parts = [p for p in _parts(msg.get("content")) if p.get("text") != ""]
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") or {}
                names[call.get("id", "")] = fn.get("name", "")
                args = fn.get("arguments") or "{}"
                parts.append({"functionCall": {"name": fn.get("name", ""), "args": json.loads(args) if isinstance(args, str) else args}})
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
        else:
            contents.append({"role": "user", "parts": _parts(msg.get("content"))})
    return "\n\n".join(s for s in system if s), contents


def _tool_config(choice: Any) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(str(choice), "AUTO")
    return {"functionCallingConfig": {"mode": mode}}


def _usage(raw: Any) -> LMUsage:
    if not isinstance(raw, dict):
        return LMUsage()
    return LMUsage(
        input_tokens=int(raw.get("promptTokenCount") or 0),
        output_tokens=int(raw.get("candidatesTokenCount") or 0) + int(raw.get("thoughtsTokenCount") or 0),
        cached_tokens=int(raw.get("cachedContentTokenCount") or 0),
    )


def _candidate(cand: dict[str, Any]) -> tuple[str, list[NativeToolCall]]:
    text: list[str] = []
    calls: list[NativeToolCall] = []
    for part in (cand.get("content") or {}).get("parts") or []:
        if "text" in part and not part.get("thought"):
            text.append(part["text"])
        elif "functionCall" in part:
            fc = part["functionCall"]
            calls.append(NativeToolCall(name=fc.get("name", ""), args=fc.get("args") or {}, id=fc.get("id")))
    return "".join(text), calls


class GeminiProvider(Provider):
    """The Gemini API (Google AI Studio ``generativelanguage``)."""

    name = "gemini"
    env_keys = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    default_base = "https://generativelanguage.googleapis.com"
    native_n = True

    def build_request(
        self, messages: list[Message], params: dict[str, Any], *, stream: bool
    ) -> ProviderRequest:
        """Return ``POST .../models/{model}:generateContent`` for ``messages``."""
        system, contents = _convert(messages)
        body: dict[str, Any] = {"contents": contents}
        config: dict[str, Any] = {}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        for key, value in params.items():
            if key in RESERVED_PARAMS or value is None:
                continue
            if key in _CONFIG:
                config[_CONFIG[key]] = value
            elif key == "stop":
                config["stopSequences"] = [value] if isinstance(value, str) else list(value)
            elif key == "tools":
                decls = [
                    {"name": t["name"], "description": t["description"], "parameters": gemini_schema(t["parameters"])}
                    for t in normalize_tools(value)
                ]
                body["tools"] = [{"functionDeclarations": decls}]
            elif key == "tool_choice":
                body["toolConfig"] = _tool_config(value)
            elif key == "response_format":
                self._schema_config(config, normalize_response_format(value))
            elif key in ("safetySettings", "cachedContent", "toolConfig"):
                body[key] = value
            else:
                config[key] = value  # generationConfig fields given in Gemini's own names
        if config:
            body["generationConfig"] = config
        body.update(params.get("extra_body") or {})
        headers = {"content-type": "application/json"}
        headers["accept"] = "text/event-stream" if stream else "application/json"
        if self.api_key:
            headers["x-goog-api-key"] = self.api_key
        base = self.api_base
        root = base if base.endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return ProviderRequest(f"{root}/models/{self.model_name}:{verb}", headers, body)

    @staticmethod
    def _schema_config(config: dict[str, Any], rf: dict[str, Any] | None) -> None:
        if not rf or rf.get("type") == "text":
            return
        config["responseMimeType"] = "application/json"
        if rf.get("type") == "json_schema":
            config["responseSchema"] = gemini_schema((rf.get("json_schema") or {}).get("schema") or {})

    def parse_response(self, data: Any) -> LMResponse:
        """Return the ``candidates`` of a ``GenerateContentResponse``."""
        cands = sorted(data.get("candidates") or [], key=lambda c: c.get("index", 0))
        outputs, calls, reasons = [], [], []
        for cand in cands:
            text, tool_calls = _candidate(cand)
            outputs.append(text)
            calls.append(tool_calls)
            reason = cand.get("finishReason")
            reasons.append("tool_calls" if tool_calls else _FINISH.get(reason, reason and reason.lower()))
        return LMResponse(
            outputs=outputs or [""],
            model=str(data.get("modelVersion") or self.model_name),
            usage=_usage(data.get("usageMetadata")),
            tool_calls=calls or [[]],
            finish_reasons=reasons or [None],
        )

    def parse_stream_event(self, state: StreamState, event: str | None, data: str) -> str:
        """Fold one streamed ``GenerateContentResponse`` into ``state``."""
        chunk = json.loads(data)
        if "error" in chunk:
            raise self.stream_error(chunk)
        state.model = chunk.get("modelVersion") or state.model
        if chunk.get("usageMetadata"):
            state.usage = _usage(chunk["usageMetadata"])
        text = ""
        for cand in chunk.get("candidates") or []:
            if cand.get("index", 0) != 0:
                continue
            text, calls = _candidate(cand)
            if text:
                state.text.append(text)
            for call in calls:
                state.tool_calls[len(state.tool_calls)] = {"name": call.name, "args": call.args, "id": call.id}
            if cand.get("finishReason"):
                reason = cand["finishReason"]
                state.finish_reason = "tool_calls" if state.tool_calls else _FINISH.get(reason, reason.lower())
                state.done = True
        return text
