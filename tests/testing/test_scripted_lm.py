"""ScriptedLM: list/dict/follow-examples modes, rendering, streaming, usage, history."""

from __future__ import annotations

import json

import pytest

import dspex as dx
from dspex.errors import ConfigError
from dspex.lm import BaseLM, LMChunk
from dspex.testing import ScriptedLM

USER = [{"role": "user", "content": "What is the capital of France?"}]


def test_is_a_base_lm() -> None:
    assert isinstance(ScriptedLM([]), BaseLM)


async def test_list_mode_renders_chat_blocks_then_exhausts() -> None:
    lm = ScriptedLM([{"answer": "Paris", "confidence": 0.9}])
    first = await lm.acall(USER)
    assert first.outputs == ["[[ ## answer ## ]]\nParis\n\n[[ ## confidence ## ]]\n0.9"]
    second = await lm.acall(USER)
    assert second.outputs == ["[[ ## answer ## ]]\nNo more responses"]
    assert lm.calls == 2


async def test_values_render_like_dspy_format_field_value() -> None:
    lm = ScriptedLM([{"tags": ["a", "b"], "meta": {"k": 1}, "flag": True}])
    (text,) = (await lm.acall(USER)).outputs
    assert text == '[[ ## tags ## ]]\n["a", "b"]\n\n[[ ## meta ## ]]\n{"k": 1}\n\n[[ ## flag ## ]]\nTrue'


async def test_json_mode_renders_an_object() -> None:
    lm = ScriptedLM([{"answer": "Paris", "n": 3}], adapter="json")
    (text,) = (await lm.acall(USER)).outputs
    assert json.loads(text) == {"answer": "Paris", "n": 3}


async def test_string_answers_are_verbatim() -> None:
    lm = ScriptedLM(["this is not the format"])
    assert (await lm.acall(USER)).outputs == ["this is not the format"]


async def test_dict_mode_matches_substring_of_last_message() -> None:
    lm = ScriptedLM({"France": {"answer": "Paris"}, "Spain": {"answer": "Madrid"}})
    spain = [{"role": "system", "content": "France"}, {"role": "user", "content": "Capital of Spain?"}]
    assert (await lm.acall(spain)).outputs == ["[[ ## answer ## ]]\nMadrid"]
    assert (await lm.acall(USER)).outputs == ["[[ ## answer ## ]]\nParis"]
    other = [{"role": "user", "content": "Capital of Peru?"}]
    with pytest.raises(ConfigError, match=r"no script key occurs in the last message \(keys: 'France', "
                       r"'Spain'\); the message ends with 'Capital of Peru\?'"):
        await lm.acall(other)


def test_no_matching_key_is_named_through_a_module_call() -> None:
    lm = ScriptedLM({"France": {"reasoning": "r", "answer": "Paris"}})
    with pytest.raises(ConfigError, match="no script key occurs"):
        dx.ChainOfThought("question -> answer")(question="Capital of Peru?", lm=lm)


async def test_follow_examples_answers_with_the_matching_demo() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "[[ ## input ## ]]\nWhat color is the sky?"},
        {"role": "assistant", "content": "[[ ## output ## ]]\nblue\n\n[[ ## completed ## ]]\n"},
        {"role": "user", "content": "[[ ## input ## ]]\nWhat color is the sky?\n\nRespond with ..."},
    ]
    lm = ScriptedLM([{"output": "unused"}], follow_examples=True)
    assert (await lm.acall(messages)).outputs == ["[[ ## output ## ]]\nblue\n\n[[ ## completed ## ]]\n"]
    unmatched = [*messages[:3], {"role": "user", "content": "[[ ## input ## ]]\nOther?"}]
    assert (await lm.acall(unmatched)).outputs == ["[[ ## output ## ]]\nunused"]


async def test_n_completions_consume_the_script_in_order() -> None:
    lm = ScriptedLM([{"answer": "one"}, {"answer": "two"}])
    resp = await lm.acall(USER, n=2)
    assert resp.outputs == ["[[ ## answer ## ]]\none", "[[ ## answer ## ]]\ntwo"]
    assert resp.finish_reasons == ["stop", "stop"]


async def test_usage_counts_words_and_history_is_bounded() -> None:
    lm = ScriptedLM([{"answer": "Paris is nice"}] * 3, max_history=2, model="m1")
    resp = await lm.acall(USER, temperature=0.0)
    assert resp.model == "m1"
    assert resp.usage.input_tokens == 6
    assert resp.usage.output_tokens == len(["[[", "##", "answer", "##", "]]", "Paris", "is", "nice"])
    await lm.acall(USER)
    await lm.acall(USER)
    assert len(lm.history) == 2
    assert lm.history[-1]["messages"] == USER
    assert lm.history[0]["params"] == {}


@pytest.mark.parametrize("size", [None, 1, 3])
async def test_stream_chunks_concatenate_to_the_completion(size: int | None) -> None:
    lm = ScriptedLM([{"answer": "Paris is the capital"}], stream_chunk_size=size)
    chunks: list[LMChunk] = [c async for c in lm.stream(USER)]
    assert chunks[-1].done
    assert chunks[-1].usage is not None
    text = "".join(c.text for c in chunks)
    assert text == "[[ ## answer ## ]]\nParis is the capital"
    pieces = [c.text for c in chunks[:-1]]
    assert len(pieces) > 3
    if size is not None:
        assert all(len(p) <= size for p in pieces)
    else:
        assert " is" in pieces


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="adapter"):
        ScriptedLM([], adapter="xml")
    with pytest.raises(ConfigError, match="answers"):
        ScriptedLM("answer")
    with pytest.raises(ConfigError, match="stream_chunk_size"):
        ScriptedLM([], stream_chunk_size=0)


def test_importing_testing_is_lazy() -> None:
    import dspex.testing as t

    assert "ScriptedLM" in dir(t)
    with pytest.raises(AttributeError, match="Nope"):
        t.Nope  # noqa: B018
