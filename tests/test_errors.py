"""The error tree: context kwargs, messages, pickling, retryability."""

from __future__ import annotations

import pickle

import pytest

from dspex import errors as E


def test_context_is_keyword_only_and_shown_in_message() -> None:
    err = E.RateLimitError("rate limited by provider", status=429, retry_after=1.5, model="gpt")
    assert err.status == 429
    assert err.retry_after == 1.5
    assert err.model == "gpt"
    assert err.node is None
    text = str(err)
    assert text.startswith("rate limited by provider")
    assert "status=429" in text
    assert "retry_after=1.5" in text
    with pytest.raises(TypeError):
        E.DspexError("x", "positional context")  # type: ignore[call-arg]  # the misuse under test


@pytest.mark.parametrize(
    "cls",
    [E.DspexError, E.ServerError, E.SourceError, E.ItemFailed, E.FlowFailed, E.SignatureError, E.InputError],
)
def test_errors_pickle_with_their_context(cls: type[E.DspexError]) -> None:
    err = cls("it broke", line=7, path="in.jsonl", item_id="a1", custom="kept")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    assert back.line == 7
    assert back.extra == {"custom": "kept"}


def test_parse_error_keeps_raw_completion_through_pickle() -> None:
    err = E.ParseError("no field `answer`", raw="[[ ## nope ## ]]", adapter="ChatAdapter", field="answer")
    back = pickle.loads(pickle.dumps(err))
    assert back.raw == "[[ ## nope ## ]]"
    assert back.adapter == "ChatAdapter"
    assert back.field == "answer"


def test_tree_shape() -> None:
    assert issubclass(E.SignatureError, E.ConfigError)
    assert issubclass(E.GraphError, E.ConfigError)
    assert issubclass(E.FlowSpecError, E.ConfigError)
    for cls in (E.RateLimitError, E.AuthError, E.ContextWindowExceededError, E.ServerError):
        assert issubclass(cls, E.LMProviderError)
        assert issubclass(cls, E.LMError)
    for other in (E.LMTransportError, E.LMTimeoutError, E.CircuitOpenError):
        assert issubclass(other, E.LMError)
    # DSPy users catch these builtins in the same places.
    assert issubclass(E.SignatureError, ValueError)
    assert issubclass(E.SignatureError, TypeError)
    assert issubclass(E.InputError, ValueError)
    assert issubclass(E.LMNotConfiguredError, ValueError)
    assert not issubclass(E.ParseError, ValueError)
    assert all(issubclass(getattr(E, n), E.DspexError) for n in E.__all__ if n != "is_retryable")


def test_is_retryable_is_decided_by_type() -> None:
    assert E.is_retryable(E.RateLimitError("429"))
    assert E.is_retryable(E.ServerError("503"))
    assert E.is_retryable(E.LMTransportError("reset"))
    assert E.is_retryable(E.LMTimeoutError("slow"))
    assert not E.is_retryable(E.AuthError("401"))
    assert not E.is_retryable(E.ContextWindowExceededError("too long"))
    assert not E.is_retryable(E.ParseError("bad"))
    assert not E.is_retryable(ValueError("x"))
