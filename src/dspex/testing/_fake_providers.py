"""Wire formats of the three LM APIs the fake server speaks, as their docs define them.

Each provider has a parser from its request JSON to a neutral :class:`ChatCall`
and renderers from neutral :class:`Choice` objects to its response body, its
SSE stream frames and its error body: OpenAI chat completions (``choices``,
``usage.prompt_tokens``, ``chat.completion.chunk`` deltas, the
``stream_options.include_usage`` usage chunk and ``data: [DONE]``), Anthropic
Messages (``content`` blocks, ``message_start`` … ``message_stop`` events) and
Gemini ``generateContent`` (``candidates``, ``usageMetadata``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from ._fake_answers import split_tokens

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "BadRequest", "ChatCall", "Choice", "error_body", "fault_frame", "parse_call", "render", "route", "stream",
]

Frame = tuple[bytes, int]  # SSE bytes, tokens of text they carry (for pacing)


class BadRequest(Exception):
    """The request body is not a valid call for this provider."""


@dataclass
class ChatCall:
    """A provider-neutral view of one generation request."""

    provider: str
    model: str
    system: str = ""
    texts: list[str] = field(default_factory=list)
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    tool_descs: dict[str, str] = field(default_factory=dict)
    forced_tool: str | None = None
    tool_results: bool = False
    #: Non-text content parts received, provider-neutral (see ``media_parts``).
    media: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Choice:
    """One generated candidate: text, a tool call, or both (text first), with its token count."""

    text: str = ""
    tool: tuple[str, dict[str, Any]] | None = None
    finish: str = "stop"  # stop | length | tool
    tokens: int = 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _uri(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


def _neutral_part(part: dict[str, Any]) -> dict[str, Any] | None:
    """Map one OpenAI, Anthropic or Gemini media part to ``{"type": image|audio|file, ...}``."""
    kind = part.get("type")
    if kind == "image_url":
        return {"type": "image", "url": (part.get("image_url") or {}).get("url", "")}
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        return {"type": "audio", "url": _uri(f"audio/{audio.get('format', '')}", audio.get("data", ""))}
    if kind == "file":
        file = part.get("file") or {}
        return {"type": "file", "url": file.get("file_data") or file.get("file_id", "")}
    if kind in ("image", "document"):  # Anthropic
        src = part.get("source") or {}
        url = _uri(src.get("media_type", ""), src.get("data", "")) if src.get("type") == "base64" else (
            src.get("url") or src.get("file_id", ""))
        return {"type": "image" if kind == "image" else "file", "url": url}
    blob = part.get("inlineData") or part.get("fileData")  # Gemini
    if isinstance(blob, dict):
        mime = str(blob.get("mimeType", ""))
        kind = "image" if mime.startswith("image/") else "audio" if mime.startswith("audio/") else "file"
        return {"type": kind, "url": _uri(mime, blob.get("data", "")) if "data" in blob else blob.get("fileUri", "")}
    return None


def media_parts(content: Any) -> list[dict[str, Any]]:
    """Return the media parts of a message content, as ``{"type", "url"}`` (data URI or URL).

    The same image sent through any provider's format gives the same dict,
    so tests can check what each provider client put on the wire.
    """
    if not isinstance(content, list):
        return []
    return [n for p in content if isinstance(p, dict) and (n := _neutral_part(p)) is not None]


def _need(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind):
        raise BadRequest(f"'{key}' is required and must be a {kind.__name__}")
    return value


def _openai(body: dict[str, Any], model: str) -> ChatCall:
    messages = _need(body, "messages", list)
    call = ChatCall("openai", str(body.get("model") or model))
    for m in messages:
        if not isinstance(m, dict):
            raise BadRequest("'messages' must be a list of objects")
        text = _text_of(m.get("content"))
        call.media.extend(media_parts(m.get("content")))
        if m.get("role") in ("system", "developer"):
            call.system += text
        call.tool_results |= m.get("role") == "tool"
        call.texts.append(text)
    call.n = int(body.get("n") or 1)
    call.stream = bool(body.get("stream"))
    call.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    call.max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        call.json_schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    call.json_mode = fmt.get("type") == "json_object"
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        call.tools[fn.get("name", "")] = fn.get("parameters") or {"type": "object"}
        call.tool_descs[fn.get("name", "")] = str(fn.get("description") or "")
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        call.forced_tool = (choice.get("function") or {}).get("name")
    elif choice == "required":
        call.forced_tool = ""
    elif choice == "none":
        call.tools = {}
    return call


def _anthropic(body: dict[str, Any], model: str) -> ChatCall:
    messages = _need(body, "messages", list)
    call = ChatCall("anthropic", str(body.get("model") or model))
    call.system = _text_of(body.get("system"))
    call.texts.append(call.system)
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        call.texts.append(_text_of(content))
        call.media.extend(media_parts(content))
        if isinstance(content, list):
            call.tool_results |= any(
                isinstance(p, dict) and p.get("type") == "tool_result" for p in content
            )
    call.stream = bool(body.get("stream"))
    call.include_usage = True
    call.max_tokens = _need(body, "max_tokens", int)
    for tool in body.get("tools") or []:
        call.tools[tool.get("name", "")] = tool.get("input_schema") or {"type": "object"}
        call.tool_descs[tool.get("name", "")] = str(tool.get("description") or "")
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        call.forced_tool = choice.get("name")
    elif choice.get("type") == "any":
        call.forced_tool = ""
    elif choice.get("type") == "none":
        call.tools = {}
    return call


def _gemini(body: dict[str, Any], model: str, stream: bool) -> ChatCall:
    contents = _need(body, "contents", list)
    call = ChatCall("gemini", model, stream=stream, include_usage=True)
    call.system = _text_of((body.get("systemInstruction") or {}).get("parts"))
    call.texts.append(call.system)
    for c in contents:
        parts = c.get("parts") if isinstance(c, dict) else None
        call.texts.append(_text_of(parts))
        call.media.extend(media_parts(parts))
        if isinstance(parts, list):
            call.tool_results |= any(isinstance(p, dict) and "functionResponse" in p for p in parts)
    cfg = body.get("generationConfig") or {}
    call.n = int(cfg.get("candidateCount") or 1)
    call.max_tokens = cfg.get("maxOutputTokens")
    schema = cfg.get("responseJsonSchema") or cfg.get("responseSchema")
    call.json_schema = schema if isinstance(schema, dict) else None
    call.json_mode = cfg.get("responseMimeType") == "application/json"
    for tool in body.get("tools") or []:
        for fn in tool.get("functionDeclarations") or []:
            call.tools[fn.get("name", "")] = fn.get("parameters") or {"type": "object"}
            call.tool_descs[fn.get("name", "")] = str(fn.get("description") or "")
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
    if mode == "ANY":
        allowed = body["toolConfig"]["functionCallingConfig"].get("allowedFunctionNames") or [""]
        call.forced_tool = allowed[0]
    elif mode == "NONE":
        call.tools = {}
    return call


def parse_call(
    provider: str, body: dict[str, Any], model: str = "", stream: bool = False
) -> ChatCall:
    """Parse a request body into a :class:`ChatCall` (raises :class:`BadRequest`)."""
    if provider == "openai":
        call = _openai(body, model)
    elif provider == "anthropic":
        call = _anthropic(body, model)
    else:
        call = _gemini(body, model, stream)
    if not 1 <= call.n <= 16:
        raise BadRequest(f"'n' must be between 1 and 16, got {call.n}")
    return call


_OPENAI_FINISH = {"stop": "stop", "length": "length", "tool": "tool_calls"}
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}
_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool": "STOP"}


def _openai_message(c: Choice, i: int) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": c.text, "refusal": None}
    if c.tool is not None:
        msg["content"] = c.text or None
        msg["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": c.tool[0], "arguments": json.dumps(c.tool[1])},
            }
        ]
    return msg


def render(call: ChatCall, choices: list[Choice], rid: str, prompt_tokens: int) -> dict[str, Any]:
    """Return the non-streaming response body."""
    out_tokens = sum(c.tokens for c in choices)
    if call.provider == "openai":
        return {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": call.model,
            "choices": [
                {
                    "index": i,
                    "message": _openai_message(c, i),
                    "logprobs": None,
                    "finish_reason": _OPENAI_FINISH[c.finish],
                }
                for i, c in enumerate(choices)
            ],
            "usage": _openai_usage(prompt_tokens, out_tokens),
            "system_fingerprint": "fp_dspex_fake",
        }
    if call.provider == "anthropic":
        c = choices[0]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": c.text}]
        if c.tool is not None:
            name, args = c.tool
            tool_use = {"type": "tool_use", "id": f"toolu_{rid}", "name": name, "input": args}
            blocks = [*blocks, tool_use] if c.text else [tool_use]
        return {
            "id": f"msg_{rid}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": blocks,
            "stop_reason": _ANTHROPIC_STOP[c.finish],
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": out_tokens},
        }
    return {
        "candidates": [_gemini_candidate(c, i, c.text, final=True) for i, c in enumerate(choices)],
        "usageMetadata": _gemini_usage(prompt_tokens, out_tokens),
        "modelVersion": call.model,
        "responseId": rid,
    }


def _openai_usage(prompt: int, out: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}


def _gemini_usage(prompt: int, out: int) -> dict[str, int]:
    total = prompt + out
    return {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": total}


def _gemini_candidate(c: Choice, i: int, text: str, final: bool) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}]
    if c.tool is not None and final:
        call = {"functionCall": {"name": c.tool[0], "args": c.tool[1]}}
        parts = [*parts, call] if text else [call]
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": i}
    if final:
        cand["finishReason"] = _GEMINI_FINISH[c.finish]
    return cand


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def _groups(text: str, per_chunk: int) -> Iterator[tuple[str, int]]:
    tokens = split_tokens(text)
    for start in range(0, len(tokens), per_chunk):
        group = tokens[start : start + per_chunk]
        yield "".join(group), len(group)


def fault_frame(frames: list[Frame], fault: str | None, after_tokens: int | None) -> int | None:
    """Return the index of the frame a stream ``fault`` strikes before, or None.

    With ``after_tokens`` None, truncation and malformed chunks strike halfway
    (reset and hang strike before the response). Otherwise every stream fault
    strikes once ``after_tokens`` tokens went out; the last frame never does.
    """
    if fault not in ("reset", "hang", "truncate", "malformed"):
        return None
    if after_tokens is None:
        return len(frames) // 2 if fault in ("truncate", "malformed") else None
    sent = 0
    for i, (_, tokens) in enumerate(frames[:-1]):
        if sent >= after_tokens:
            return i
        sent += tokens
    return len(frames) - 1


def stream(
    call: ChatCall, choices: list[Choice], rid: str, prompt_tokens: int, per_chunk: int
) -> Iterator[Frame]:
    """Yield the SSE frames of a streamed response, with their token counts."""
    if call.provider == "openai":
        yield from _stream_openai(call, choices, rid, prompt_tokens, per_chunk)
    elif call.provider == "anthropic":
        yield from _stream_anthropic(call, choices[0], rid, prompt_tokens, per_chunk)
    else:
        yield from _stream_gemini(call, choices, rid, prompt_tokens, per_chunk)


def _stream_openai(
    call: ChatCall, choices: list[Choice], rid: str, prompt_tokens: int, per_chunk: int
) -> Iterator[Frame]:
    base = {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk", "created": 1700000000,
            "model": call.model, "system_fingerprint": "fp_dspex_fake"}  # fmt: skip
    extra = {"usage": None} if call.include_usage else {}

    def chunk(i: int, delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice], **extra})

    for i, c in enumerate(choices):
        yield chunk(i, {"role": "assistant", "content": "", "refusal": None}, None), 0
        for piece, n in _groups(c.text, per_chunk):
            yield chunk(i, {"content": piece}, None), n
        if c.tool is not None:
            call_delta = {"index": 0, "id": f"call_{i}", "type": "function",
                          "function": {"name": c.tool[0], "arguments": ""}}  # fmt: skip
            yield chunk(i, {"tool_calls": [call_delta]}, None), 0
            for piece, n in _groups(json.dumps(c.tool[1]), per_chunk):
                args = {"index": 0, "function": {"arguments": piece}}
                yield chunk(i, {"tool_calls": [args]}, None), n
        yield chunk(i, {}, _OPENAI_FINISH[c.finish]), 0
    if call.include_usage:
        usage = _openai_usage(prompt_tokens, sum(c.tokens for c in choices))
        yield _sse({**base, "choices": [], "usage": usage}), 0
    yield b"data: [DONE]\n\n", 0


def _anthropic_blocks(c: Choice, rid: str, per_chunk: int) -> list[tuple[dict[str, Any], list[tuple[dict[str, Any], int]]]]:
    """Return each content block's start and its deltas: text first, then the tool use."""
    blocks: list[tuple[dict[str, Any], list[tuple[dict[str, Any], int]]]] = []
    if c.text or c.tool is None:
        deltas = [({"type": "text_delta", "text": p}, n) for p, n in _groups(c.text, per_chunk)]
        blocks.append(({"type": "text", "text": ""}, deltas))
    if c.tool is not None:
        start = {"type": "tool_use", "id": f"toolu_{rid}", "name": c.tool[0], "input": {}}
        deltas = [({"type": "input_json_delta", "partial_json": p}, n)
                  for p, n in _groups(json.dumps(c.tool[1]), per_chunk)]  # fmt: skip
        blocks.append((start, deltas))
    return blocks


def _stream_anthropic(
    call: ChatCall, c: Choice, rid: str, prompt_tokens: int, per_chunk: int
) -> Iterator[Frame]:
    message: dict[str, Any] = {"id": f"msg_{rid}", "type": "message", "role": "assistant", "content": [],
               "model": call.model, "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": prompt_tokens, "output_tokens": 1}}  # fmt: skip
    yield _sse({"type": "message_start", "message": message}, "message_start"), 0
    for index, (block, deltas) in enumerate(_anthropic_blocks(c, rid, per_chunk)):
        start = {"type": "content_block_start", "index": index, "content_block": block}
        yield _sse(start, "content_block_start"), 0
        if index == 0:
            yield _sse({"type": "ping"}, "ping"), 0
        for delta, n in deltas:
            yield _sse({"type": "content_block_delta", "index": index, "delta": delta},
                       "content_block_delta"), n  # fmt: skip
        yield _sse({"type": "content_block_stop", "index": index}, "content_block_stop"), 0
    final = {"type": "message_delta",
             "delta": {"stop_reason": _ANTHROPIC_STOP[c.finish], "stop_sequence": None},
             "usage": {"output_tokens": c.tokens}}  # fmt: skip
    yield _sse(final, "message_delta"), 0
    yield _sse({"type": "message_stop"}, "message_stop"), 0


def _stream_gemini(
    call: ChatCall, choices: list[Choice], rid: str, prompt_tokens: int, per_chunk: int
) -> Iterator[Frame]:
    out_tokens = sum(c.tokens for c in choices)
    for i, c in enumerate(choices):
        # the text streams in pieces; a function call arrives whole, with the last piece
        pieces = list(_groups(c.text, per_chunk)) or [("", 0)]
        for k, (piece, n) in enumerate(pieces):
            last = i == len(choices) - 1 and k == len(pieces) - 1
            body: dict[str, Any] = {
                "candidates": [_gemini_candidate(c, i, piece, final=k == len(pieces) - 1)],
                "usageMetadata": _gemini_usage(prompt_tokens, out_tokens if last else 0),
                "modelVersion": call.model,
                "responseId": rid,
            }
            if not last:
                body["usageMetadata"] = {"promptTokenCount": prompt_tokens}
            yield _sse(body), n


_ERR_OPENAI = {400: "invalid_request_error", 401: "invalid_api_key", 404: "not_found",
               429: "rate_limit_exceeded", 500: "server_error",
               503: "service_unavailable"}  # fmt: skip
_ERR_ANTHROPIC = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                  429: "rate_limit_error", 500: "api_error", 503: "overloaded_error"}  # fmt: skip
_ERR_GEMINI = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


def error_body(provider: str, status: int, message: str) -> dict[str, Any]:
    """Return the provider's error JSON for ``status``."""
    if provider == "anthropic":
        kind = _ERR_ANTHROPIC.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if provider == "gemini":
        return {"error": {"code": status, "message": message,
                          "status": _ERR_GEMINI.get(status, "UNKNOWN")}}  # fmt: skip
    code = _ERR_OPENAI.get(status, "server_error")
    kind = "requests" if status == 429 else "server_error"
    if status < 429:
        kind = "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def route(target: str) -> tuple[str, str, bool, dict[str, list[str]]] | None:
    """Return (provider, model, stream-by-path, query) for a request target."""
    path, _, query = target.partition("?")
    qs = parse_qs(query)
    for prefix in ("/v1", ""):
        if path == f"{prefix}/chat/completions":
            return "openai", "", False, qs
        if path == f"{prefix}/messages":
            return "anthropic", "", False, qs
    for prefix in ("/v1beta/models/", "/v1/models/", "/models/"):
        if path.startswith(prefix) and ":" in path:
            model, _, method = unquote(path[len(prefix) :]).rpartition(":")
            if method in ("generateContent", "streamGenerateContent"):
                return "gemini", model, method == "streamGenerateContent", qs
    return None
