"""``ScriptedLM``: a deterministic in-process LM for tests, docs and demos.

It answers from a script instead of a model, like DSPy's ``DummyLM``: a list
of answers used in order, or a dict keyed by substrings of the last message,
or (``follow_examples``) the demo answer whose input matches the request. Each
answer is rendered in the output format of the chosen adapter (``[[ ## f ## ]]``
blocks for ``"chat"``, a JSON object for ``"json"``); a plain string answer is
returned verbatim, which is how tests script garbage. It streams token by
token, counts usage as whitespace-separated words and records a bounded
history of calls. It satisfies :class:`dspex.lm._types.BaseLM`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import anyio.lowlevel
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from ..errors import ConfigError
from ..lm._types import LMChunk, LMResponse, LMUsage, Message

__all__ = ["ScriptedLM"]

Answer = Mapping[str, Any] | str
_EXHAUSTED: dict[str, Any] = {"answer": "No more responses"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return to_jsonable_python(value, fallback=str)


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    plain = _jsonable(value)
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False)
    return str(plain)


def _content_text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _words(text: str) -> int:
    return len(text.split())


def _chunks(text: str, size: int | None) -> Iterator[str]:
    if size is not None:
        for start in range(0, len(text), size):
            yield text[start : start + size]
        return
    start = 0
    n = len(text)
    while start < n:  # a "token" is leading whitespace plus one word
        end = start
        while end < n and text[end].isspace():
            end += 1
        while end < n and not text[end].isspace():
            end += 1
        yield text[start:end]
        start = end


class ScriptedLM:
    """A deterministic LM answering from a script.

    Args:
        answers: A list of answers used one per completion, in order (then
            ``{"answer": "No more responses"}`` forever, as DSPy's DummyLM); or
            a dict ``{substring: answer}`` where the first key found in the
            last message's content wins (no key found raises ``ConfigError``
            naming the keys and the message, rather than a made-up answer). An answer is a dict of output fields
            (rendered for ``adapter``) or a string returned verbatim.
        follow_examples: Answer with the demo (prior assistant turn) whose
            user turn contains the current request's first input block; fall
            back to ``answers`` when none matches.
        adapter: ``"chat"`` (``[[ ## field ## ]]`` blocks) or ``"json"``.
        stream_chunk_size: Characters per streamed chunk; None (default)
            streams word by word, each chunk carrying its leading whitespace.
        model: The model name reported in responses and usage.
        max_history: How many calls :attr:`history` keeps (oldest dropped).

    Raises:
        ConfigError: ``answers`` or ``adapter`` is not one of the above.

    Example:
        >>> import anyio
        >>> lm = ScriptedLM([{"answer": "Paris"}])
        >>> resp = anyio.run(lm.acall, [{"role": "user", "content": "Capital of France?"}])
        >>> resp.outputs
        ['[[ ## answer ## ]]\\nParis']
    """

    def __init__(
        self,
        answers: Sequence[Answer] | Mapping[str, Answer] = (),
        *,
        follow_examples: bool = False,
        adapter: str = "chat",
        stream_chunk_size: int | None = None,
        stream_chunk: int | None = None,
        model: str = "scripted",
        max_history: int = 1000,
    ) -> None:
        if adapter not in ("chat", "json"):
            raise ConfigError(f"ScriptedLM adapter must be 'chat' or 'json', got {adapter!r}")
        if isinstance(answers, Mapping):
            self._by_key: Mapping[str, Answer] | None = dict(answers)
            self._script: deque[Answer] = deque()
        elif isinstance(answers, Sequence) and not isinstance(answers, str):
            self._by_key = None
            self._script = deque(answers)
        else:
            raise ConfigError(
                f"ScriptedLM answers must be a list of answers or a dict of substring -> answer, "
                f"got {type(answers).__name__}"
            )
        size = stream_chunk_size if stream_chunk_size is not None else stream_chunk
        if size is not None and size < 1:
            raise ConfigError(f"stream_chunk_size must be >= 1 or None, got {size}")
        self.follow_examples = follow_examples
        self.adapter = adapter
        self.stream_chunk_size = size
        self.model = model
        self.history: deque[dict[str, Any]] = deque(maxlen=max_history)
        self.calls = 0

    # -- scripting --------------------------------------------------------------
    def render(self, answer: Answer) -> str:
        """Return ``answer`` as completion text in this LM's output format."""
        if isinstance(answer, str):
            return answer
        if self.adapter == "json":
            return json.dumps({k: _jsonable(v) for k, v in answer.items()}, indent=2, ensure_ascii=False)
        return "\n\n".join(f"[[ ## {k} ## ]]\n{_format_value(v)}" for k, v in answer.items()).strip()

    def _from_examples(self, messages: Sequence[Message]) -> str | None:
        if not messages:
            return None
        final_input = _content_text(messages[-1]).split("\n\n")[0]
        if not final_input:
            return None
        for i in range(len(messages) - 2, 0, -1):
            user, assistant = messages[i - 1], messages[i]
            if (
                assistant.get("role") == "assistant"
                and user.get("role") == "user"
                and final_input in _content_text(user)
            ):
                return _content_text(assistant)
        return None

    def _next_text(self, messages: Sequence[Message]) -> str:
        if self.follow_examples and (found := self._from_examples(messages)) is not None:
            return found
        if self._by_key is not None:
            last = _content_text(messages[-1]) if messages else ""
            for key, answer in self._by_key.items():
                if key in last:
                    return self.render(answer)
            raise self._no_match(last)
        return self.render(self._script.popleft() if self._script else _EXHAUSTED)

    def _no_match(self, last: str) -> ConfigError:
        # Say so here: a made-up answer would surface later as a confusing ParseError
        keys = ", ".join(repr(k) for k in list(self._by_key or ())[:10])
        tail = " ".join(last.split())[-160:]
        return ConfigError(
            f"ScriptedLM: no script key occurs in the last message (keys: {keys}); the message "
            f"ends with {tail!r}. Add a key that is a substring of the prompt, or script a list of answers"
        )

    def _usage(self, messages: Sequence[Message], outputs: Sequence[str]) -> LMUsage:
        return LMUsage(
            input_tokens=sum(_words(_content_text(m)) for m in messages),
            output_tokens=sum(_words(o) for o in outputs),
        )

    def _record(self, messages: Sequence[Message], params: Mapping[str, Any], outputs: list[str], usage: LMUsage) -> None:
        self.calls += 1
        self.history.append(
            {"messages": list(messages), "params": dict(params), "outputs": outputs, "usage": usage, "model": self.model}
        )

    # -- BaseLM -----------------------------------------------------------------
    async def acall(self, messages: list[Message], **params: Any) -> LMResponse:
        """Return ``params["n"]`` (default 1) scripted completions for ``messages``."""
        n = int(params.get("n") or 1)
        outputs = [self._next_text(messages) for _ in range(n)]
        usage = self._usage(messages, outputs)
        self._record(messages, params, outputs, usage)
        return LMResponse(outputs=outputs, model=self.model, usage=usage, finish_reasons=["stop"] * n)

    def stream(self, messages: list[Message], **params: Any) -> AsyncIterator[LMChunk]:
        """Yield one scripted completion in small chunks; the last has ``done``."""
        text = self._next_text(messages)
        usage = self._usage(messages, [text])
        self._record(messages, params, [text], usage)
        return self._stream(text, usage)

    async def _stream(self, text: str, usage: LMUsage) -> AsyncIterator[LMChunk]:
        for piece in _chunks(text, self.stream_chunk_size):
            await anyio.lowlevel.checkpoint()
            yield LMChunk(text=piece)
        yield LMChunk(text="", done=True, usage=usage, finish_reason="stop")

    def dump_state(self) -> None:
        """Return None: a script is not part of a saved program (``"lm": null``)."""
        return None

    def __repr__(self) -> str:
        return f"ScriptedLM(model={self.model!r}, adapter={self.adapter!r}, calls={self.calls})"
