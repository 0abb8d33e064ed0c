"""ChatAdapter: DSPy's black-box format/parse cases (reference §5.2) and bad input."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any, Literal

import pydantic
import pytest

import dspex as dx
from dspex.adapters import ChatAdapter, JSONAdapter
from dspex.errors import InputError, ParseError
from dspex.signatures import History

if TYPE_CHECKING:
    from collections.abc import Iterator


class QA(dx.Signature):
    """Answer questions with short factoid answers."""

    question: str = dx.InputField()
    answer: str = dx.OutputField(desc="often between 1 and 5 words")


def test_simple_qa_exact_messages() -> None:
    messages = ChatAdapter().format(QA, [], {"question": "What is the capital of France?"})
    assert messages == [
        {
            "role": "system",
            "content": (
                "Your input fields are:\n1. `question` (str):\nYour output fields are:\n"
                "1. `answer` (str): often between 1 and 5 words\n"
                "All interactions will be structured in the following way, with the appropriate values filled in."
                "\n\n[[ ## question ## ]]\n{question}\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]\n"
                "In adhering to this structure, your objective is: \n"
                "        Answer questions with short factoid answers."
            ),
        },
        {
            "role": "user",
            "content": (
                "[[ ## question ## ]]\nWhat is the capital of France?\n\n"
                "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, "
                "and then ending with the marker for `[[ ## completed ## ]]`."
            ),
        },
    ]


def test_incomplete_demo_from_reference() -> None:
    sig = dx.Signature("question, context -> answer, confidence: float")
    messages = ChatAdapter().format(sig, [{"question": "Q1", "answer": "A1"}], {"question": "Q", "context": "C"})
    assert messages[1] == {
        "role": "user",
        "content": "This is an example of the task, though some input or output fields are not supplied."
                   "\n\n[[ ## question ## ]]\nQ1",
    }
    assert messages[2] == {
        "role": "assistant",
        "content": "[[ ## answer ## ]]\nA1\n\n[[ ## confidence ## ]]\nNot supplied for this particular example."
                   "\n\n[[ ## completed ## ]]\n",
    }
    assert messages[3]["content"].endswith(
        "then `[[ ## confidence ## ]]` (must be formatted as a valid Python float), "
        "and then ending with the marker for `[[ ## completed ## ]]`."
    )


def test_literal_quoting_matrix() -> None:
    class S(dx.Signature):
        x: str = dx.InputField()
        a: Literal["one", "two", 'three"'] = dx.OutputField()
        b: Literal["she's here", "okay", "test"] = dx.OutputField()
        c: Literal[True, 3, "foo"] = dx.OutputField()

    system = ChatAdapter().format(S, [], {"x": "1"})[0]["content"]
    assert "`a` (Literal['one', 'two', 'three\"']):" in system
    assert "`b` (Literal[\"she's here\", 'okay', 'test']):" in system
    assert "`c` (Literal[True, 3, 'foo']):" in system


class _ExampleLike:
    """A mapping-like demo, as ``dx.Example`` is."""

    def __init__(self, **data: Any) -> None:
        self._data = data

    def keys(self) -> Iterator[str]:
        return iter(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]


class _ToDict:
    def __init__(self, **data: Any) -> None:
        self._data = data

    def toDict(self) -> dict[str, Any]:
        return dict(self._data)


def test_demos_may_be_dicts_examples_or_todict_objects() -> None:
    demo = {"question": "Q1", "answer": "A1", "augmented": True}
    adapter = ChatAdapter()
    expected = adapter.format(QA, [demo], {"question": "Q"})
    assert adapter.format(QA, [_ExampleLike(**demo)], {"question": "Q"}) == expected
    assert adapter.format(QA, [_ToDict(**demo)], {"question": "Q"}) == expected
    with pytest.raises(InputError, match="demo 42 must be a dict"):
        adapter.format(QA, [42], {"question": "Q"})  # type: ignore[list-item]


def test_history_turns_render_between_demos_and_request() -> None:
    class Chat(dx.Signature):
        question: str = dx.InputField()
        history: History = dx.InputField()
        answer: str = dx.OutputField()

    hist = History(messages=[{"question": "Capital of France?", "answer": "Paris"}])
    messages = ChatAdapter().format(Chat, [], {"question": "And Germany?", "history": hist})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"].startswith("[[ ## question ## ]]\nCapital of France?\n\nRespond with")
    assert messages[2]["content"] == "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]\n"
    assert "history" not in messages[3]["content"]


def test_parse_simple_answer() -> None:
    assert ChatAdapter().parse(dx.Signature("question -> answer"), "[[ ## answer ## ]]\nParis") == {"answer": "Paris"}


def test_parse_mismatched_output_raises() -> None:
    completion = "{'output':'mismatched value'}"
    with pytest.raises(ParseError, match="Adapter ChatAdapter failed to parse") as info:
        ChatAdapter().parse(dx.Signature("question -> answer"), completion)
    assert info.value.raw == completion
    assert info.value.adapter == "ChatAdapter"
    assert info.value.field == "answer"
    assert "Missing output field(s): `answer` (str)." in str(info.value)


class Score(pydantic.BaseModel):
    score: float


def test_parse_python_dict_into_pydantic_model() -> None:
    class S(dx.Signature):
        text: str = dx.InputField()
        score: Score = dx.OutputField()

    assert ChatAdapter().parse(S, "[[ ## score ## ]]\n{'score': 123_456.789}") == {"score": Score(score=123456.789)}


class Optionals(dx.Signature):
    question: str = dx.InputField()
    answer: str = dx.OutputField()
    note: str = dx.OutputField(default="No note")
    tags: list[str] = dx.OutputField(default_factory=list)
    maybe: str | None = dx.OutputField()


def test_optional_outputs_take_defaults() -> None:
    got = ChatAdapter().parse(Optionals, "[[ ## answer ## ]]\n42")
    assert got == {"answer": "42", "note": "No note", "tags": [], "maybe": None}
    got = ChatAdapter().parse(Optionals, '[[ ## answer ## ]]\n42\n\n[[ ## tags ## ]]\n["a"]')
    assert got["tags"] == ["a"]


def test_missing_required_output_names_field_and_type() -> None:
    sig = dx.Signature("question -> answer, confidence: float")
    completion = "[[ ## answer ## ]]\nParis"
    with pytest.raises(ParseError) as info:
        ChatAdapter().parse(sig, completion)
    err = info.value
    assert err.field == "confidence"
    assert err.raw == completion
    assert "Missing output field(s): `confidence` (float)." in str(err)
    assert "Expected to find output fields in the LM response: [answer, confidence]" in str(err)
    assert "Actual output fields parsed from the LM response: [answer]" in str(err)


def test_wrong_type_names_field_expected_type_and_value() -> None:
    sig = dx.Signature("question -> answer, confidence: float")
    completion = "[[ ## answer ## ]]\nParis\n[[ ## confidence ## ]]\nvery high"
    with pytest.raises(ParseError) as info:
        ChatAdapter().parse(sig, completion)
    assert info.value.field == "confidence"
    assert str(info.value).startswith("field `confidence`: expected float, got 'very high'")
    assert info.value.raw == completion
    feedback = ChatAdapter().feedback_messages(sig, completion, info.value)
    assert feedback[0] == {"role": "assistant", "content": completion}
    assert "field `confidence`: expected float, got 'very high'" in feedback[1]["content"]
    assert "LM Response" not in feedback[1]["content"]


def test_constraint_violation_is_a_parse_error() -> None:
    class S(dx.Signature):
        q: str = dx.InputField()
        p: float = dx.OutputField(ge=0, le=1)

    with pytest.raises(ParseError, match="field `p`: expected float, got '3'") as info:
        ChatAdapter().parse(S, "[[ ## p ## ]]\n3")
    assert info.value.field == "p"


@pytest.mark.parametrize("completion", ["", None])
def test_empty_completion(completion: Any) -> None:
    with pytest.raises(ParseError, match=r"The LM returned an empty or null response\."):
        ChatAdapter().parse(QA, completion)


@pytest.mark.parametrize(
    "completion",
    ["\x00\x01\x02", "[[ ## answer", "[[ ## ANSWER ## ]]\nx", "answer: Paris", "]]\n[[\n##", "\ud800"],
)
def test_garbage_completions_raise_parse_error(completion: str) -> None:
    with pytest.raises(ParseError) as info:
        ChatAdapter().parse(QA, completion)
    assert info.value.raw == completion
    assert info.value.field == "answer"


def test_parse_error_pickles_with_feedback() -> None:
    with pytest.raises(ParseError) as info:
        ChatAdapter().parse(QA, "nothing")
    clone = pickle.loads(pickle.dumps(info.value))
    assert clone.raw == "nothing"
    assert clone.field == "answer"
    assert clone.feedback == info.value.feedback  # type: ignore[attr-defined]


def test_fallback_chain() -> None:
    assert isinstance(ChatAdapter().fallback, JSONAdapter)
    assert JSONAdapter().fallback is None
    assert ChatAdapter().lm_params(QA) == {}


def test_missing_inputs_are_skipped_and_no_inputs_gives_reminder_only() -> None:
    messages = ChatAdapter().format(dx.Signature("a, b -> c"), [], {"b": "B"})
    assert messages[-1]["content"].startswith("[[ ## b ## ]]\nB\n\nRespond with")
    messages = ChatAdapter().format(dx.Signature("a -> c"), [])
    assert messages[-1]["content"].startswith("Respond with the corresponding output fields")


def test_fallback_is_a_class_attribute() -> None:
    assert isinstance(ChatAdapter.fallback, JSONAdapter)
    assert JSONAdapter.fallback is None


def test_str_annotated_list_input_renders_non_str_items() -> None:
    content = ChatAdapter().format(dx.Signature("context, q -> a"), [], {"context": [1, "two"], "q": "?"})[-1]["content"]
    assert content.startswith("[[ ## context ## ]]\n[1] «1»\n[2] «two»\n\n[[ ## q ## ]]\n?")
