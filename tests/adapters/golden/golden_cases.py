"""Adapter golden cases, written once for both DSPy and dspex.

Every builder takes a namespace ``ns`` with ``Signature``, ``InputField``,
``OutputField`` and ``History`` (``dspy`` when generating fixtures offline,
``dspex`` in the tests) and returns the same signature in that library. The
pydantic models and enums used by the cases live here, so parse results can
be compared by ``repr``. This module never imports dspy itself.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, Optional

import pydantic


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


class Address(pydantic.BaseModel):
    city: str
    zip_code: str | None = None


class Person(pydantic.BaseModel):
    name: str
    age: int
    addresses: list[Address] = pydantic.Field(default_factory=list)


class Score(pydantic.BaseModel):
    score: float


def qa_string(ns: Any) -> Any:
    return ns.Signature("question -> answer")


def qa_context(ns: Any) -> Any:
    return ns.Signature("question, context -> answer, confidence: float")


def qa_class(ns: Any) -> Any:
    class QA(ns.Signature):
        """Answer questions with short factoid answers.

        Think about the question first.
            Indented line stays indented.
        Last line."""

        question: str = ns.InputField(desc="a trivia question")
        answer: str = ns.OutputField(desc="often between 1 and 5 words")

    return QA


def typed(ns: Any) -> Any:
    class Typed(ns.Signature):
        """Fill every typed field."""

        question: str = ns.InputField()
        count: int = ns.InputField(desc="how many")
        tags: list[str] = ns.InputField()
        meta: dict[str, Any] = ns.InputField()
        who: Person = ns.InputField()
        n: int = ns.OutputField()
        score: float = ns.OutputField(desc="a score")
        ok: bool = ns.OutputField()
        items: list[str] = ns.OutputField()
        data: dict[str, Any] = ns.OutputField()
        choice: Literal["yes", "no"] = ns.OutputField()
        color: Color = ns.OutputField()
        level: Level = ns.OutputField()
        maybe: Optional[str] = ns.OutputField()  # noqa: UP045 - DSPy's spelling on purpose
        opt_int: int | None = ns.OutputField()
        person: Person = ns.OutputField()

    return Typed


def constrained(ns: Any) -> Any:
    class Constrained(ns.Signature):
        """Produce constrained values."""

        text: str = ns.InputField(min_length=1)
        prob: float = ns.OutputField(ge=0, le=1, desc="a probability")
        positive: int = ns.OutputField(gt=0)
        name: str = ns.OutputField(min_length=2, max_length=10)

    return Constrained


def literals(ns: Any) -> Any:
    class Literals(ns.Signature):
        x: str = ns.InputField()
        a: Literal["one", "two", 'three"'] = ns.OutputField()
        b: Literal["she's here", "okay", "test"] = ns.OutputField()
        c: Literal[True, 3, "foo"] = ns.OutputField()
        d: Literal[1, 2, 3] = ns.OutputField()

    return Literals


def optional_outputs(ns: Any) -> Any:
    class Opt(ns.Signature):
        question: str = ns.InputField()
        answer: str = ns.OutputField()
        note: str = ns.OutputField(default="No note")
        tags: list[str] = ns.OutputField(default_factory=list)
        maybe: str | None = ns.OutputField()

    return Opt


def score_model(ns: Any) -> Any:
    class ScoreSig(ns.Signature):
        text: str = ns.InputField()
        score: Score = ns.OutputField()

    return ScoreSig


def list_context(ns: Any) -> Any:
    class ListCtx(ns.Signature):
        """Use the passages."""

        context: str = ns.InputField(desc="passages")
        question: str = ns.InputField()
        answer: str = ns.OutputField()

    return ListCtx


def chain_of_thought(ns: Any) -> Any:
    base = ns.Signature("question -> answer: int")
    return base.prepend("reasoning", ns.OutputField(desc="${reasoning}"), type_=str)


def history(ns: Any) -> Any:
    class Chat(ns.Signature):
        question: str = ns.InputField()
        history: ns.History = ns.InputField()
        answer: str = ns.OutputField()

    return Chat


def with_instructions(ns: Any) -> Any:
    return ns.Signature("a, b -> c: list[str]").with_instructions("Line one.\n\n  Line three, indented.\n")


SIGNATURES = {
    "qa_string": qa_string,
    "qa_context": qa_context,
    "qa_class": qa_class,
    "typed": typed,
    "constrained": constrained,
    "literals": literals,
    "optional_outputs": optional_outputs,
    "score_model": score_model,
    "list_context": list_context,
    "chain_of_thought": chain_of_thought,
    "history": history,
    "with_instructions": with_instructions,
}

PERSON = {"name": "Ada", "age": 36, "addresses": [{"city": "London", "zip_code": None}]}


def format_cases(ns: Any) -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    """Return ``(case, signature, demos, inputs)`` format cases; ``ns`` builds History."""
    typed_inputs = {"question": "Q?", "count": 3, "tags": ["a", "b c"], "meta": {"k": [1, 2], "é": None},
                    "who": Person(**PERSON)}
    return [
        ("qa_string_plain", "qa_string", [], {"question": "What is the capital of France?"}),
        ("qa_string_missing_input", "qa_string", [], {}),
        ("qa_context_incomplete_demo", "qa_context", [{"question": "Q1", "answer": "A1"}],
         {"question": "Q", "context": "C"}),
        ("qa_context_mixed_demos", "qa_context", [
            {"question": "Q1", "context": "C1", "answer": "A1", "confidence": 0.9, "augmented": True},
            {"question": "Q2", "answer": "A2"},
            {"question": "Q3"},
            {"answer": "A4", "confidence": 0.1},
            {"question": "Q5", "context": None, "answer": "A5", "confidence": 0.5, "dspy_uuid": "u"},
            {"question": "Q6", "context": "C6", "answer": "A6", "confidence": 1},
        ], {"question": "Q", "context": "C"}),
        ("qa_class_multiline_instructions", "qa_class", [{"question": "2+2?", "answer": "4"}],
         {"question": "Who wrote Hamlet?"}),
        ("typed_all", "typed", [{**typed_inputs, "n": 1, "score": 0.5, "ok": True, "items": ["x"],
                                 "data": {"a": 1}, "choice": "yes", "color": Color.RED, "level": Level.HIGH,
                                 "maybe": None, "opt_int": 3, "person": Person(**PERSON)}], typed_inputs),
        ("constrained", "constrained", [], {"text": "hello"}),
        ("literals", "literals", [{"x": "1", "a": "one", "b": "she's here", "c": True, "d": 2}], {"x": "go"}),
        ("optional_outputs", "optional_outputs", [], {"question": "q"}),
        ("score_model", "score_model", [{"text": "t", "score": Score(score=1.5)}], {"text": "hello"}),
        ("list_context_many", "list_context", [],
         {"context": ["first passage", "multi\nline passage", "has «guillemets»", ""], "question": "Q"}),
        ("list_context_one", "list_context", [], {"context": ["only one"], "question": "Q"}),
        ("list_context_one_multiline", "list_context", [], {"context": ["a\nb"], "question": "Q"}),
        ("list_context_empty", "list_context", [], {"context": [], "question": "Q"}),
        ("list_context_demo", "list_context",
         [{"context": ["p1", "p2"], "question": "Q1", "answer": "A1"}], {"context": "plain", "question": "Q"}),
        ("chain_of_thought", "chain_of_thought", [{"question": "1+1", "reasoning": "add", "answer": 2}],
         {"question": "2+2"}),
        ("history", "history", [], {"question": "And Germany?", "history": ns.History(messages=[
            {"question": "Capital of France?", "answer": "Paris"},
            {"question": "Only a question"},
            {"answer": "Only an answer"},
        ])}),
        ("history_with_demo", "history", [{"question": "dq", "answer": "da"}],
         {"question": "Q", "history": ns.History(messages=[{"question": "q1", "answer": "a1"}])}),
        ("with_instructions", "with_instructions", [{"a": 1, "b": ["p", "q"], "c": ["x", "y"]}],
         {"a": "x", "b": {"k": "v"}}),
    ]


CHAT_PARSE = [
    ("qa_string", "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"),
    ("qa_string", "Some preamble\n[[ ## answer ## ]] Paris is it  \n  and more  \n\n[[ ## completed ## ]]\n"),
    ("qa_string", "[[ ## answer ## ]]\nfirst\n[[ ## answer ## ]]\nsecond"),
    ("qa_string", "  [[ ## answer ## ]] indented header\nrest"),
    ("qa_string", "[[ ## answer ## ]]\r\nwindows\r\nlines\r\n"),
    ("qa_string", "text [[ ## answer ## ]] not at line start"),
    ("qa_string", "{'output':'mismatched value'}"),
    ("qa_string", "[[ ## unknown ## ]]\nx\n[[ ## answer ## ]]\n\n\n  spaced  \n\n"),
    ("qa_string", "[[ ## answer ## ]]"),
    ("qa_context", "[[ ## answer ## ]]\nA\n\n[[ ## confidence ## ]]\n0.8\n\n[[ ## completed ## ]]"),
    ("qa_context", "[[ ## answer ## ]]\nA\n\n[[ ## confidence ## ]]\nhigh"),
    ("qa_context", "[[ ## confidence ## ]]\n1\n[[ ## answer ## ]]\nA"),
    ("typed", "[[ ## n ## ]]\n42\n[[ ## score ## ]]\n0.5\n[[ ## ok ## ]]\nyes\n[[ ## items ## ]]\n[\"a\", 'b']\n"
              "[[ ## data ## ]]\n{'k': [1, 2]}\n[[ ## choice ## ]]\nLiteral['no']\n[[ ## color ## ]]\nGREEN\n"
              "[[ ## level ## ]]\nHIGH\n[[ ## maybe ## ]]\nNone\n[[ ## opt_int ## ]]\nnull\n"
              "[[ ## person ## ]]\n```json\n{\"name\": \"Bo\", \"age\": \"7\"}\n```\n[[ ## completed ## ]]"),
    ("typed", "[[ ## n ## ]]\n42\n[[ ## score ## ]]\n1e3\n[[ ## ok ## ]]\nFalse\n[[ ## items ## ]]\n[]\n"
              "[[ ## data ## ]]\n{}\n[[ ## choice ## ]]\n\"yes\"\n[[ ## color ## ]]\nred\n"
              "[[ ## level ## ]]\n1\n[[ ## maybe ## ]]\nsomething\n[[ ## opt_int ## ]]\n5\n"
              "[[ ## person ## ]]\n{'name': 'Al', 'age': 3, 'addresses': [{'city': 'X'}]}"),
    ("typed", "[[ ## n ## ]]\nforty-two"),
    ("literals", "[[ ## a ## ]]\nthree\"\n[[ ## b ## ]]\n\"she's here\"\n[[ ## c ## ]]\nTrue\n[[ ## d ## ]]\n3"),
    ("literals", "[[ ## a ## ]]\nLiteral['two']\n[[ ## b ## ]]\nokay\n[[ ## c ## ]]\n3\n[[ ## d ## ]]\n'2'"),
    ("literals", "[[ ## a ## ]]\nfour\n[[ ## b ## ]]\nokay\n[[ ## c ## ]]\nfoo\n[[ ## d ## ]]\n1"),
    ("optional_outputs", "[[ ## answer ## ]]\n42"),
    ("optional_outputs", "[[ ## answer ## ]]\n42\n[[ ## tags ## ]]\n[\"a\"]\n[[ ## note ## ]]\nhi\n[[ ## maybe ## ]]\nm"),
    ("optional_outputs", "[[ ## note ## ]]\nno answer"),
    ("score_model", "[[ ## score ## ]]\n{'score': 123_456.789}"),
    ("score_model", "[[ ## score ## ]]\n{\"score\": \"abc\"}"),
    ("chain_of_thought", "[[ ## reasoning ## ]]\nTwo plus two.\nIs four.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"),
    ("constrained", "[[ ## prob ## ]]\n0.25\n[[ ## positive ## ]]\n3\n[[ ## name ## ]]\nBob"),
    ("with_instructions", "[[ ## c ## ]]\n[\"x\", \"y\"]"),
    ("with_instructions", "[[ ## c ## ]]\nx, y"),
]

JSON_PARSE = [
    ("qa_string", '{"answer": "Paris"}'),
    ("qa_string", '```json\n{"answer": "Paris"}\n```'),
    ("qa_string", 'Sure! Here it is: {"answer": "Paris"} Hope this helps.'),
    ("qa_string", "{'answer': 'single quotes'}"),
    ("qa_string", '{"answer": "truncated'),
    ("qa_string", '{"answer": 42, "extra": 1}'),
    ("qa_string", '{"answer": {"nested": [1, 2]}}'),
    ("qa_string", "not json at all"),
    ("qa_string", '[1, 2, 3]'),
    ("qa_string", '{"other": "x"}'),
    ("qa_string", 'prefix {"x": {"y": 1}} and {"answer": "second"}'),
    ("qa_context", '{"answer": "A", "confidence": "0.8"}'),
    ("qa_context", '{"confidence": 0.7, "answer": "A"}'),
    ("qa_context", '{"answer": "A", "confidence": "high"}'),
    ("typed", '{"n": "42", "score": 0.5, "ok": "true", "items": ["a"], "data": {"k": 1}, "choice": "no", '
              '"color": "GREEN", "level": 2, "maybe": null, "opt_int": null, '
              '"person": {"name": "Bo", "age": 7, "addresses": []}}'),
    ("typed", '{"n": 1, "score": 1, "ok": false, "items": "[\\"a\\", \\"b\\"]", "data": "{\\"k\\": 1}", '
              '"choice": "Literal[\'yes\']", "color": "red", "level": "HIGH", "maybe": "x", "opt_int": "7", '
              '"person": "{\\"name\\": \\"Al\\", \\"age\\": 3}"}'),
    ("literals", '{"a": "three\\"", "b": "she\'s here", "c": true, "d": 3}'),
    ("literals", '{"a": "\'one\'", "b": "okay", "c": "3", "d": "2"}'),
    ("optional_outputs", '{"answer": "42"}'),
    ("optional_outputs", '{"answer": "42", "tags": ["a"], "maybe": "m"}'),
    ("optional_outputs", '{"answer": "42", "tags": "[\\"a\\"]"}'),
    ("score_model", '{"score": {"score": 123456.789}}'),
    ("score_model", "{\"score\": \"{'score': 123_456.789}\"}"),
    ("chain_of_thought", '{"reasoning": "Because.", "answer": 4}'),
    ("constrained", '{"prob": 0.5, "positive": 1, "name": "Al"}'),
    ("with_instructions", '{"c": ["x"]}'),
]


def tool_calling(ns: Any) -> Any:
    return ns.Signature(
        {
            "question": (str, ns.InputField()),
            "tools": (list[ns.Tool], ns.InputField(desc="the tools you may call")),
            "answer": (str, ns.OutputField()),
            "calls": (ns.ToolCalls, ns.OutputField()),
        },
        "Use the tools to answer.",
    )


def optional_tool_calls(ns: Any) -> Any:
    return ns.Signature(
        {
            "question": (str, ns.InputField()),
            "calls": (Optional[ns.ToolCalls], ns.OutputField(desc="calls, if any")),  # noqa: UP045
            "per_tool": (dict[str, ns.ToolCalls], ns.OutputField()),
        },
        "Plan tool calls.",
    )


#: Signatures whose fields use custom types; the system message shows their descriptions.
CUSTOM_TYPE_SIGNATURES = {"tool_calling": tool_calling, "optional_tool_calls": optional_tool_calls}
