"""The adapter contract: signature + demos + inputs → messages; completion → fields.

An adapter is stateless and cheap. ``format`` builds chat messages, ``parse``
turns a whole completion into a dict of coerced output values (or raises
:class:`~dspex.errors.ParseError` carrying the raw text), and ``parse_stream``
returns a Sans-I/O :class:`IncrementalParser` fed with text chunks as they
arrive, producing ``FieldDelta``/``FieldDone`` events without waiting for the
end. ``lm_params`` gives request parameters the adapter wants (for example a
structured-output ``response_format``). ``feedback_messages`` builds the turn
that asks the LM to fix a completion that failed to parse.

Modules do not reach into an adapter to run a call; they ask it for the whole
exchange. ``prepare(signature)`` returns the adapter's per-signature facts,
computed once (``Prepared``: system and demo turns, output reminder, request
parameters per provider, native plans); ``request`` builds a call's messages
from them, ``request_params`` its LM parameters, and ``acomplete`` (or
``acomplete_native``) makes the LM call and parses it, streamed through
``parse_stream`` when a ``Live`` target listens (``_exchange``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from .._util._sync import run_sync
from ._callbacks import adapter_callbacks, notify_end, notify_start
from ._exchange import Exchange, Live, complete, complete_native
from ._invoke import invoke
from ._native import NativePlan, plan_for, supports_function_calling
from ._prepared import Prepared, PreparedTable

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..events import Event
    from ..lm._types import Message
    from ..signatures import Signature

__all__ = ["Adapter", "IncrementalParser"]


class IncrementalParser(ABC):
    """Sans-I/O parser of one streamed completion.

    ``feed`` may be called with chunks of any size (down to one character);
    the events it returns, concatenated over all calls and followed by
    ``finish()``, are the same whatever the chunking. ``FieldDelta`` texts of a
    field concatenate to that field's raw text; each ``FieldDone`` carries the
    coerced value, exactly what ``Adapter.parse`` returns for that field.
    """

    @abstractmethod
    def feed(self, text: str) -> list[Event]:
        """Consume ``text`` and return the events it completes."""

    @abstractmethod
    def finish(self) -> list[Event]:
        """End the stream: flush pending deltas and the remaining ``FieldDone``s.

        Raises:
            ParseError: The whole completion does not parse (as ``parse``).
        """

    @property
    @abstractmethod
    def text(self) -> str:
        """All text fed so far."""

    @property
    @abstractmethod
    def values(self) -> dict[str, Any]:
        """Coerced output values, complete once ``finish`` returned."""


class Adapter(ABC):
    """Base class of ``ChatAdapter`` and ``JSONAdapter``.

    Args:
        callbacks: DSPy callback objects; their ``on_adapter_format_*`` and
            ``on_adapter_parse_*`` hooks run around each request's formatting and
            each completion's parsing.
        use_native_function_calling: Send a signature's ``list[Tool]`` input as
            the provider's native tools and fill its ``ToolCalls`` output from
            the provider's tool calls, when the LM supports them.
        parallel_tool_calls: Passed to the LM as ``parallel_tool_calls`` in
            native mode when not None.
    """

    #: Adapter used when parsing still fails after the feedback retry (or None).
    fallback: Adapter | None = None
    use_native_function_calling: bool = False
    #: True when native calling is on only because it is the adapter's default
    #: (JSONAdapter, as in DSPy); ReAct then keeps DSPy's text-mode prompts.
    native_by_default: bool = False
    parallel_tool_calls: bool | None = None
    callbacks: tuple[Any, ...] = ()
    _prepared: PreparedTable | None = None

    def __init__(
        self,
        callbacks: Sequence[Any] | None = None,
        use_native_function_calling: bool = False,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        self.callbacks = tuple(callbacks or ())
        self.use_native_function_calling = bool(use_native_function_calling)
        self.parallel_tool_calls = parallel_tool_calls

    async def acall(self, lm: Any, lm_kwargs: Mapping[str, Any], signature: type[Signature],
                    demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Format, call ``lm`` once and parse every completion (DSPy's ``Adapter.acall``).

        In text mode the ``tools``, ``tool_choice`` and ``parallel_tool_calls``
        kwargs are dropped (the prompt describes the tools), as in DSPy.

        Returns:
            One dict of outputs per completion.

        Raises:
            ParseError: No completion parses, with this adapter or its fallback.
            LMError: The LM call failed.
        """
        return await invoke(self, lm, lm_kwargs, signature, demos, inputs)

    def __call__(self, lm: Any, lm_kwargs: Mapping[str, Any], signature: type[Signature],
                 demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Blocking :meth:`acall` (DSPy's ``adapter(lm, lm_kwargs, signature, demos, inputs)``).

        Runs the call on an event loop; do not call it from async code (use
        ``await adapter.acall(...)``).
        """
        return run_sync(invoke, self, lm, lm_kwargs, signature, demos, inputs, reuse_loop=True)

    # ----- the exchange, as modules use it --------------------------------
    def prepare(self, signature: type[Signature]) -> Prepared:
        """Return this adapter's per-signature facts, computed once (see ``Prepared``).

        Kept in a bounded table on the adapter (512 signatures, oldest
        dropped first); never blocks beyond a short lock on first use.
        """
        table = self._prepared
        if table is None:
            table = self._prepared = PreparedTable()
        return table.get(self, signature)

    def format_request(self, prepared: Prepared, demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[Message]:
        """Return the messages of one call (by default ``format``; adapters reuse ``prepared``)."""
        return self.format(prepared.signature, demos, inputs)

    def request(self, prepared: Prepared, demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[Message]:
        """Return :meth:`format_request`'s messages, telling the adapter's callbacks.

        Raises:
            InputError: A demo or input value cannot be formatted.
        """
        if not adapter_callbacks(self):
            return self.format_request(prepared, demos, inputs)
        call_id = notify_start(self, "format", {"signature": prepared.signature, "demos": demos, "inputs": inputs})
        try:
            messages = self.format_request(prepared, demos, inputs)
        except Exception as exc:
            notify_end(self, "format", call_id, None, exc)
            raise
        notify_end(self, "format", call_id, messages, None)
        return messages

    def request_params(self, prepared: Prepared, lm: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the LM parameters of one call: this adapter's ``lm_params`` under ``config``."""
        extra = prepared.lm_params(getattr(lm, "provider", None))
        return {**extra, **config} if extra else dict(config)

    def native_plan(self, prepared: Prepared, lm: Any) -> NativePlan | None:
        """Return the native tool-calling plan of this call, or None for text mode.

        Native when the adapter has ``use_native_function_calling``, the
        signature has a ``ToolCalls`` output and ``lm`` supports tools.

        Raises:
            SignatureError: Native mode is on and the signature has a
                ``ToolCalls`` output but no input holding tools.
        """
        if not self.use_native_function_calling:
            return None
        plan = prepared.native_plan(plan_for)
        return plan if plan is not None and supports_function_calling(lm) else None

    async def acomplete(self, lm: Any, prepared: Prepared, messages: list[Message], params: dict[str, Any],
                        live: Live | None = None) -> Exchange:
        """Call ``lm`` once with ``messages`` and parse each completion (streamed when ``live``).

        A parse failure comes back as ``Exchange.error`` (the caller retries
        or falls back); see ``_exchange.complete`` for streaming and restarts.

        Raises:
            LMError: The LM call failed.
        """
        return await complete(lm, prepared, messages, params, live)

    async def acomplete_native(self, lm: Any, prepared: Prepared, plan: NativePlan, messages: list[Message],
                               params: dict[str, Any], live: Live | None = None) -> Exchange:
        """Make one native tool-calling call (see ``_exchange.complete_native``).

        Raises:
            ParseError: A completion's text does not parse.
            LMError: The LM call failed.
        """
        return await complete_native(lm, prepared, plan, messages, params, live)

    @property
    def name(self) -> str:
        """The adapter's class name, used in errors."""
        return type(self).__name__

    @abstractmethod
    def format(
        self,
        signature: type[Signature],
        demos: Sequence[Mapping[str, Any]] = (),
        inputs: Mapping[str, Any] | None = None,
    ) -> list[Message]:
        """Return the chat messages for ``inputs``, with ``demos`` as prior turns.

        Demos may be plain dicts or ``Example`` objects.
        """

    @abstractmethod
    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """Return the output fields of ``completion``, coerced to their types.

        Raises:
            ParseError: A required field is missing or a value does not coerce;
                the message names the field and the expected type, and
                ``.raw`` keeps the completion.
        """

    @abstractmethod
    def parse_stream(self, signature: type[Signature]) -> IncrementalParser:
        """Return a fresh incremental parser for one completion."""

    def lm_params(self, signature: type[Signature], provider: str | None = None) -> dict[str, Any]:
        """Return extra LM request parameters this adapter needs (default none)."""
        return {}

    def feedback_messages(self, signature: type[Signature], completion: str, error: Exception) -> list[Message]:
        """Return the assistant + user turns asking the LM to fix ``completion``.

        Uses the error's short field-level ``feedback`` text when it has one
        (adapters' ``ParseError``s do), else ``str(error)``.
        """
        error = getattr(error, "feedback", None) or error
        return [
            {"role": "assistant", "content": completion},
            {
                "role": "user",
                "content": (
                    f"Your previous response could not be parsed: {error}\n\n"
                    "Respond again, following the required output format exactly."
                ),
            },
        ]
