"""Signature classes: DSPy's black-box cases (reference/dspy.md §5.2) plus dspex hardening."""

from __future__ import annotations

import copy
import pickle
import typing
from typing import Any, Literal, Optional

import pydantic
import pytest

import dspex as dx
from dspex.errors import ConfigError, SignatureError
from dspex.signatures import (
    _build,
    clear_signature_cache,
    ensure_signature,
    infer_prefix,
    make_signature,
)


class QA(dx.Signature):
    """Answer with a short fact."""

    question: str = dx.InputField()
    answer: str = dx.OutputField(desc="1 to 5 words")


# -- DSPy tests/signatures/test_signature.py, ported -------------------------------------------


def test_field_types_and_custom_attributes() -> None:
    class TestSignature(dx.Signature):
        """Instructions"""

        input1: str = dx.InputField()
        input2: int = dx.InputField()
        output1: list[str] = dx.OutputField()
        output2 = dx.OutputField()

    assert TestSignature.instructions == "Instructions"
    assert TestSignature.input_fields["input1"].annotation is str
    assert TestSignature.input_fields["input2"].annotation is int
    assert TestSignature.output_fields["output1"].annotation == list[str]
    assert TestSignature.output_fields["output2"].annotation is str
    assert list(TestSignature.fields) == ["input1", "input2", "output1", "output2"]


def test_plain_annotation_is_rejected_as_type_error() -> None:
    with pytest.raises(TypeError, match=r"must be declared with dx.InputField"):

        class Bad(dx.Signature):
            input1: str = dx.InputField()
            output: str  # not declared as a field


def test_pydantic_field_is_rejected_as_type_error() -> None:
    with pytest.raises(SignatureError, match="'output'"):

        class Bad(dx.Signature):
            input1: str = dx.InputField()
            output: str = pydantic.Field()


def test_prefix_is_kept_or_inferred() -> None:
    class Sig(dx.Signature):
        input: str = dx.InputField(prefix="Modified:")
        output: str = dx.OutputField()

    assert Sig.input_fields["input"].json_schema_extra["prefix"] == "Modified:"  # type: ignore[index]
    assert Sig.output_fields["output"].json_schema_extra["prefix"] == "Output:"  # type: ignore[index]
    assert Sig.output_fields["output"].json_schema_extra["desc"] == "${output}"  # type: ignore[index]


def test_string_signature_fields() -> None:
    sig = dx.Signature("input1, input2 -> output")
    assert list(sig.input_fields) == ["input1", "input2"]
    assert list(sig.output_fields) == ["output"]
    assert sig.signature == "input1, input2 -> output"


def test_distinct_names_and_empty_string() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        dx.Signature("value -> value")
    with pytest.raises(ValueError, match="expected exactly one '->'"):
        dx.Signature("")


def test_default_instructions() -> None:
    assert dx.Signature("a, b -> c").instructions == "Given the fields `a`, `b`, produce the fields `c`."

    class NoDoc(dx.Signature):
        x: str = dx.InputField()
        y: int = dx.OutputField()

    assert NoDoc.instructions == "Given the fields `x`, produce the fields `y`."


def test_with_instructions_returns_new_type() -> None:
    new = QA.with_instructions("Be terse.")
    assert new is not QA
    assert new.instructions == "Be terse."
    assert QA.instructions == "Answer with a short fact."
    assert list(new.fields) == list(QA.fields)
    assert new.output_fields["answer"].json_schema_extra["desc"] == "1 to 5 words"  # type: ignore[index]


def test_instructions_cannot_be_assigned() -> None:
    with pytest.raises(SignatureError, match=r"immutable.*expected S.with_instructions"):
        QA.instructions = "changed"  # type: ignore[misc]
    assert QA.instructions == "Answer with a short fact."


def test_append_instructions_joins_with_blank_line_and_chains() -> None:
    sig = dx.Signature("text -> translation", "Translate to French.")
    once = sig.append_instructions("Use a formal register.")
    assert once.instructions == "Translate to French.\n\nUse a formal register."
    twice = once.append_instructions("Keep names.")
    assert twice.instructions == "Translate to French.\n\nUse a formal register.\n\nKeep names."
    assert sig.instructions == "Translate to French."


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("camelCaseText", "Camel Case Text"),
        ("snake_case_text", "Snake Case Text"),
        ("text2number", "Text 2 Number"),
        ("HTMLParser", "HTML Parser"),
    ],
)
def test_infer_prefix(name: str, prefix: str) -> None:
    assert infer_prefix(name) == prefix


class Inner(pydantic.BaseModel):
    value: int


class Outer(pydantic.BaseModel):
    inner: Inner
    tags: list[str]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x: list[int] -> y: dict[str, float]", {"x": list[int], "y": dict[str, float]}),
        ("x: Union[int, str] -> y: Optional[str]", {"x": typing.Union[int, str], "y": Optional[str]}),  # noqa: UP007, UP045
        ("x: int | None -> y: str | int", {"x": Optional[int], "y": typing.Union[str, int]}),  # noqa: UP007, UP045
        ("x: Any -> y: list[Any]", {"x": Any, "y": list[Any]}),
        ("x: dict[str, list[Optional[int]]] -> y: tuple[int, ...]",
         {"x": dict[str, list[int | None]], "y": tuple[int, ...]}),
        ("x: List[Dict[str, int]] -> y: Literal['a', 'b']",
         {"x": typing.List[typing.Dict[str, int]], "y": Literal["a", "b"]}),  # noqa: UP006
        ("x: Outer -> y: list[Inner]", {"x": Outer, "y": list[Inner]}),
        ("x: Optional[Outer] -> y: Inner | None", {"x": Optional[Outer], "y": Optional[Inner]}),  # noqa: UP045
    ],
)
def test_typed_string_signatures_equal_class_forms(text: str, expected: dict[str, Any]) -> None:
    sig = dx.Signature(text, types={"Outer": Outer, "Inner": Inner})
    assert {n: f.annotation for n, f in sig.fields.items()} == expected
    cls = make_signature({n: (tp, (dx.InputField if n == "x" else dx.OutputField)()) for n, tp in expected.items()})
    assert sig.equals(cls)


def test_dump_and_load_state_round_trip() -> None:
    sig = QA.with_updated_fields("question", prefix="Q:", desc="the question")
    state = sig.dump_state()
    assert state == {
        "instructions": "Answer with a short fact.",
        "fields": [
            {"prefix": "Q:", "description": "the question"},
            {"prefix": "Answer:", "description": "1 to 5 words"},
        ],
    }
    edited = {**state, "instructions": "New.", "fields": [{"prefix": "P:", "description": "d1"}, state["fields"][1]]}
    loaded = QA.load_state(edited)
    assert loaded.dump_state() == edited
    assert QA.dump_state()["fields"][0] == {"prefix": "Question:", "description": "${question}"}
    with pytest.raises(SignatureError, match="expected"):
        QA.load_state({"fields": "nope"})


# -- field operations ---------------------------------------------------------------------------


def test_insert_prepend_append_delete() -> None:
    sig = QA.prepend("context", dx.InputField(desc="facts"), list[str])
    assert list(sig.input_fields) == ["context", "question"]
    assert sig.input_fields["context"].annotation == list[str]
    sig = sig.append("confidence", dx.OutputField(), float)
    assert list(sig.output_fields) == ["answer", "confidence"]
    sig = sig.insert(0, "reasoning", dx.OutputField(), dx.Reasoning)
    assert list(sig.output_fields) == ["reasoning", "answer", "confidence"]
    sig = sig.insert(-2, "mid", dx.OutputField())
    assert list(sig.output_fields) == ["reasoning", "answer", "mid", "confidence"]
    assert sig.output_fields["mid"].annotation is str
    assert list(sig.delete("mid").output_fields) == ["reasoning", "answer", "confidence"]
    assert list(sig.delete("absent").fields) == list(sig.fields)
    assert sig.instructions == QA.instructions
    assert list(QA.fields) == ["question", "answer"]


def test_insert_errors_name_the_problem() -> None:
    with pytest.raises(SignatureError, match=r"index 5: expected an index in \[-2, 1\]"):
        QA.insert(5, "x", dx.InputField())
    with pytest.raises(SignatureError, match="already has a field"):
        QA.append("answer", dx.OutputField())
    with pytest.raises(SignatureError, match=r"expected dx.InputField"):
        QA.append("x", pydantic.Field())


def test_with_updated_fields_changes_type_and_desc() -> None:
    sig = QA.with_updated_fields("answer", desc="a number", type_=int)
    assert sig.output_fields["answer"].annotation is int
    assert sig.output_fields["answer"].json_schema_extra["desc"] == "a number"  # type: ignore[index]
    assert QA.output_fields["answer"].annotation is str
    assert QA.output_fields["answer"].json_schema_extra["desc"] == "1 to 5 words"  # type: ignore[index]
    with pytest.raises(SignatureError, match="no field 'nope'; expected one of"):
        QA.with_updated_fields("nope", desc="x")


def test_equals() -> None:
    assert dx.Signature("a, b: int -> c").equals(dx.Signature("a, b: int -> c", "Given the fields `a`, `b`, produce the fields `c`."))
    assert not dx.Signature("a -> c").equals(dx.Signature("a -> c: int"))
    assert not dx.Signature("a -> c").equals(dx.Signature("a -> c", "other"))
    assert not dx.Signature("a -> c").equals("a -> c")

    class Untyped(dx.Signature):
        a = dx.InputField()
        c = dx.OutputField()

    assert Untyped.equals(dx.Signature("a -> c"))
    assert Untyped.equals(dx.Signature("a: str -> c"))


def test_fields_constraints_and_defaults() -> None:
    class Scored(dx.Signature):
        text: str = dx.InputField(min_length=1)
        score: float = dx.OutputField(ge=0, le=1, desc="between 0 and 1")
        note: str = dx.OutputField(default="No note")
        tags: list[str] = dx.OutputField(default_factory=list)

    score = Scored.output_fields["score"]
    assert score.json_schema_extra["constraints"] == "greater than or equal to: 0, less than or equal to: 1"  # type: ignore[index]
    assert Scored.input_fields["text"].json_schema_extra["constraints"] == "minimum length: 1"  # type: ignore[index]
    assert Scored.output_fields["note"].default == "No note"
    assert Scored.output_fields["tags"].default_factory is list
    with pytest.raises(pydantic.ValidationError):
        Scored(text="x", score=2.0)
    assert Scored(text="x", score=0.5).tags == []


def test_field_argument_errors() -> None:
    with pytest.raises(SignatureError, match=r"unknown output field argument\(s\) \['bogus'\]"):
        dx.OutputField(bogus=1)
    with pytest.raises(SignatureError, match="desc= must be a string"):
        dx.InputField(desc=3)  # type: ignore[arg-type]


def test_field_names_that_shadow_basemodel_attributes() -> None:
    sig = dx.Signature("question, schema, json -> copy, delete")
    assert list(sig.fields) == ["question", "schema", "json", "copy", "delete"]
    assert list(sig.delete("schema").fields) == ["question", "json", "copy", "delete"]


def test_bad_field_names() -> None:
    with pytest.raises(SignatureError, match="_private"):
        dx.Signature("_private -> b")
    with pytest.raises(SignatureError, match="not a valid Python identifier"):
        make_signature({"not valid": (str, dx.InputField()), "b": (str, dx.OutputField())})


# -- construction forms, ensure_signature -------------------------------------------------------


def test_signature_call_forms() -> None:
    a = dx.Signature("a, b: int -> c: list[str]", instructions=None)
    b = dx.Signature("a, b: int -> c: list[str]", None)
    assert a is b
    assert issubclass(a, dx.Signature)
    assert dx.Signature("a -> c", instructions="Do it.").instructions == "Do it."
    named = make_signature("a -> c", signature_name="MySig")
    assert named.__name__ == "MySig"


def test_make_signature_from_dict() -> None:
    sig = make_signature({"q": (str, dx.InputField()), "a": dx.OutputField(), "n": (None, dx.OutputField())}, "Do.")
    assert list(sig.input_fields) == ["q"]
    assert list(sig.output_fields) == ["a", "n"]
    assert sig.output_fields["a"].annotation is str
    assert sig.instructions == "Do."
    with pytest.raises(SignatureError, match=r"field 'q': expected \(type, dx.InputField\(\)\)"):
        make_signature({"q": str})
    with pytest.raises(SignatureError, match=r"must be declared with dx.InputField"):
        make_signature({"q": (str, pydantic.Field())})
    with pytest.raises(SignatureError, match="got int 5"):
        make_signature(5)  # type: ignore[arg-type]


def test_ensure_signature() -> None:
    assert ensure_signature(QA) is QA
    assert ensure_signature(None) is None
    assert ensure_signature("q -> a") is dx.Signature("q -> a")
    assert ensure_signature(QA, "Other.").instructions == "Other."  # type: ignore[union-attr]
    with pytest.raises(SignatureError, match="expected a signature string"):
        ensure_signature(3)  # type: ignore[arg-type]
    with pytest.raises(SignatureError):
        ensure_signature(dx.Signature)


def test_signature_error_is_type_and_value_error() -> None:
    assert issubclass(SignatureError, TypeError)
    assert issubclass(SignatureError, ValueError)
    assert issubclass(SignatureError, ConfigError)


def test_inherited_signature_keeps_docstring_and_fields() -> None:
    class Child(QA):
        extra: int = dx.OutputField()

    assert Child.instructions == QA.instructions
    assert list(Child.fields) == ["question", "answer", "extra"]


def test_repr_mentions_fields_and_instructions() -> None:
    text = repr(QA)
    assert "QA(question -> answer" in text
    assert "answer: str = OutputField(desc='1 to 5 words')" in text


# -- cache, copy, pickle ------------------------------------------------------------------------


def test_cache_returns_same_object_per_definition() -> None:
    a = dx.Signature("q: int -> a")
    assert dx.Signature("q: int -> a") is a
    assert dx.Signature("q: int -> a", "Other") is not a
    assert make_signature("q: int -> a", signature_name="Other") is not a
    assert dx.Signature("q: Inner -> a", types={"Inner": Inner}) is dx.Signature("q: Inner -> a", types={"Inner": Inner})
    clear_signature_cache()
    assert dx.Signature("q: int -> a") is not a
    assert dx.Signature("q: int -> a").equals(a)


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_build, "CACHE_SIZE", 3)
    clear_signature_cache()
    first = dx.Signature("a0 -> b")
    for i in range(1, 6):
        dx.Signature(f"a{i} -> b")
    assert len(_build._cache) == 3
    assert dx.Signature("a0 -> b") is not first  # evicted, rebuilt
    recent = dx.Signature("a5 -> b")
    assert dx.Signature("a5 -> b") is recent


def test_unhashable_types_bypass_the_cache() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

    types = {"X": int, "junk": Unhashable()}
    a = dx.Signature("q: X -> a", types=types)
    assert a.input_fields["q"].annotation is int
    assert dx.Signature("q: X -> a", types=types) is not a


def test_copy_and_deepcopy_return_the_class() -> None:
    sig = dx.Signature("q -> a: int")
    assert copy.copy(sig) is sig
    assert copy.deepcopy(sig) is sig
    holder = {"sig": sig, "sigs": [QA, sig]}
    cloned = copy.deepcopy(holder)
    assert cloned["sig"] is sig
    assert cloned["sigs"][0] is QA


def test_pickle_string_signature_by_value_returns_cached_class() -> None:
    sig = dx.Signature("context: list[str], question -> answer: float", "Answer.")
    assert pickle.loads(pickle.dumps(sig)) is sig


def test_pickle_derived_and_importable_signatures() -> None:
    derived = QA.append("confidence", dx.OutputField(desc="how sure"), float).with_instructions("Hmm.")
    back = pickle.loads(pickle.dumps(derived))
    assert back.equals(derived)
    assert back.output_fields["confidence"].annotation is float
    assert pickle.loads(pickle.dumps(QA)) is QA
    assert pickle.loads(pickle.dumps(dx.Signature)) is dx.Signature


def test_pickle_local_class_signature_by_value() -> None:
    class Local(dx.Signature):
        """Local instructions."""

        x: int = dx.InputField(ge=0)
        y: list[str] = dx.OutputField()

    back = pickle.loads(pickle.dumps(Local))
    assert back.equals(Local)
    assert back.__name__ == "Local"


def test_signature_instances_validate() -> None:
    sig = dx.Signature("a, b: int -> c: list[str]")
    inst = sig(a="x", b="3", c=["y"])
    assert inst.b == 3
    with pytest.raises(pydantic.ValidationError):
        sig(a="x", b="three", c=[])
