"""Adapter.prepare: per-(adapter, signature) facts computed once, requests byte-identical to format()."""

from __future__ import annotations

import copy
import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

import dspex as dx
from dspex.adapters import Adapter, ChatAdapter, JSONAdapter
from dspex.adapters._prepared import MAX_DEMO_SETS, Prepared, PreparedTable
from dspex.errors import SignatureError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from dspex.lm import Message

QA = dx.Signature("question -> answer")
TYPED = dx.Signature("context: list[str], question -> answer: int, confident: bool", "Answer with a number.")
DEMOS: list[Any] = [
    dx.Example(context=["a"], question="1+1?", answer=2, confident=True),
    {"question": "incomplete?", "answer": 3},  # no context, no confident: formatted as an incomplete demo
]
INPUTS = {"context": ["x", "y"], "question": "2+2?"}


def test_prepare_returns_one_entry_per_signature_and_adapter() -> None:
    chat, other = ChatAdapter(), ChatAdapter()
    first = chat.prepare(QA)
    assert chat.prepare(QA) is first
    assert chat.prepare(TYPED) is not first
    assert other.prepare(QA) is not first  # the table belongs to the adapter
    assert (first.adapter, first.signature, list(first.outputs)) == (chat, QA, ["answer"])


def test_the_table_is_bounded_and_drops_the_oldest_entry() -> None:
    table = PreparedTable(maxsize=2)
    chat = ChatAdapter()
    sigs = [dx.Signature(f"q{i} -> a") for i in range(3)]
    entries = [table.get(chat, s) for s in sigs]
    assert len(table) == 2
    assert table.get(chat, sigs[2]) is entries[2]
    assert table.get(chat, sigs[0]) is not entries[0]  # evicted first, prepared again


def test_threads_preparing_one_signature_share_one_entry() -> None:
    chat = ChatAdapter()
    sig = dx.Signature("a -> b")
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: chat.prepare(sig), range(64)))
    assert len({id(entry) for entry in got}) == 1


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda a: pickle.loads(pickle.dumps(a))], ids=["deepcopy", "pickle"])
def test_a_copied_adapter_starts_with_an_empty_table(clone: Any) -> None:
    chat = ChatAdapter()
    chat.prepare(QA)
    twin = clone(chat)
    assert twin._prepared is not None
    assert len(twin._prepared) == 0
    assert twin.prepare(QA).adapter is twin


@pytest.mark.parametrize("adapter", [ChatAdapter(), JSONAdapter()], ids=["chat", "json"])
def test_request_is_byte_identical_to_format(adapter: Adapter) -> None:
    prepared = adapter.prepare(TYPED)
    for inputs in (INPUTS, {"context": [], "question": "Other?"}):
        assert adapter.request(prepared, DEMOS, inputs) == adapter.format(TYPED, DEMOS, inputs)
    assert adapter.request(prepared, [], INPUTS) == adapter.format(TYPED, [], INPUTS)


def test_system_and_demo_turns_are_built_once_per_demo_list() -> None:
    chat = ChatAdapter()
    prepared = chat.prepare(TYPED)
    first = chat.request(prepared, DEMOS, INPUTS)
    again = chat.request(prepared, DEMOS, {"context": [], "question": "Other?"})
    assert [a is b for a, b in zip(first[:-1], again[:-1], strict=True)] == [True] * (len(first) - 1)
    assert first[-1] != again[-1]  # the request turn is built per call
    fresh = chat.request(prepared, list(DEMOS[:1]), INPUTS)  # other demo objects: other turns
    assert fresh[0] is not first[0]
    assert len(fresh) == len(first) - 2


def test_demo_turns_are_remembered_for_a_bounded_number_of_demo_lists() -> None:
    chat = ChatAdapter()
    prepared = chat.prepare(QA)
    for i in range(MAX_DEMO_SETS + 5):
        chat.request(prepared, [{"question": f"q{i}", "answer": "a"}], {"question": "now?"})
    assert len(prepared._prefixes) == MAX_DEMO_SETS


class _CountingFormat(ChatAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.formats = 0

    def format(self, signature: type[dx.Signature], demos: Sequence[Mapping[str, Any]] = (),
               inputs: Mapping[str, Any] | None = None) -> list[Message]:
        self.formats += 1
        return super().format(signature, demos, inputs)


def test_an_adapter_overriding_format_is_asked_on_every_call() -> None:
    adapter = _CountingFormat()
    prepared = adapter.prepare(QA)
    for _ in range(3):
        assert adapter.request(prepared, [], {"question": "q"})[-1]["content"].startswith("[[ ## question ## ]]")
    assert adapter.formats == 3


def test_a_history_input_goes_through_format() -> None:
    sig = dx.Signature({"history": (dx.History, dx.InputField()), "question": (str, dx.InputField()),
                        "answer": (str, dx.OutputField())})
    chat = ChatAdapter()
    prepared = chat.prepare(sig)
    assert prepared.history_field == "history"
    inputs = {"history": dx.History(messages=[{"question": "a?", "answer": "b"}]), "question": "c?"}
    assert chat.request(prepared, [], inputs) == chat.format(sig, [], inputs)


class _Counting(ChatAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.requirements = 0
        self.params: list[str | None] = []

    def _output_requirements(self, signature: type[dx.Signature]) -> str:
        self.requirements += 1
        return super()._output_requirements(signature)

    def lm_params(self, signature: type[dx.Signature], provider: str | None = None) -> dict[str, Any]:
        self.params.append(provider)
        return {"temperature": 0.0, "stop": ["x"]}


class _LM:
    def __init__(self, provider: str | None) -> None:
        self.provider = provider


def test_the_output_reminder_and_lm_params_are_computed_once() -> None:
    adapter = _Counting()
    prepared = adapter.prepare(QA)
    for _ in range(3):
        adapter.request(prepared, [], {"question": "q"})
        params = adapter.request_params(prepared, _LM("openai"), {"temperature": 0.5})
    adapter.request_params(prepared, _LM("anthropic"), {})
    assert adapter.requirements == 1
    assert adapter.params == ["openai", "anthropic"]
    assert params == {"temperature": 0.5, "stop": ["x"]}  # the call's config wins
    assert adapter.request_params(prepared, _LM("openai"), {}) == {"temperature": 0.0, "stop": ["x"]}


class _ToolLM:
    provider = "openai"
    supports_function_calling = True


def test_a_native_plan_is_made_once_and_a_bad_signature_fails_every_time() -> None:
    native = ChatAdapter(use_native_function_calling=True)
    good = dx.Signature({"question": (str, dx.InputField()), "tools": (list[dx.Tool], dx.InputField()),
                         "answer": (str, dx.OutputField()), "calls": (dx.ToolCalls, dx.OutputField())})
    plan = native.native_plan(native.prepare(good), _ToolLM())
    assert plan is not None
    assert (plan.tools_field, plan.calls_field, list(plan.render.output_fields)) == ("tools", "calls", ["answer"])
    assert native.native_plan(native.prepare(good), _ToolLM()) is plan
    assert ChatAdapter().native_plan(ChatAdapter().prepare(good), _ToolLM()) is None  # text mode
    bad = dx.Signature({"question": (str, dx.InputField()), "calls": (dx.ToolCalls, dx.OutputField())})
    for _ in range(2):
        with pytest.raises(SignatureError, match="no input holds the tools"):
            native.native_plan(native.prepare(bad), _ToolLM())


def test_the_signature_without_reasoning_is_made_once() -> None:
    sig = dx.Signature({"question": (str, dx.InputField()), "thinking": (dx.Reasoning, dx.OutputField()),
                        "answer": (str, dx.OutputField())})
    prepared = Prepared(ChatAdapter(), sig)
    assert prepared.reasoning_field == "thinking"
    reduced = prepared.without_reasoning()
    assert list(reduced.output_fields) == ["answer"]
    assert prepared.without_reasoning() is reduced
    assert Prepared(ChatAdapter(), QA).without_reasoning() is QA
