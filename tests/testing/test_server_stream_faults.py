"""FakeLLMServer's ``fault_after_tokens``: stream faults that strike mid-answer."""

from __future__ import annotations

from typing import Any

import pytest

from dspex.errors import ConfigError, LMError, LMTimeoutError, LMTransportError
from dspex.lm import LM, Timeouts
from dspex.testing import FakeLLMServer


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ("p_reset", LMTransportError, "connection reset by peer"),
        ("p_truncate", LMTransportError, "before the response was complete"),
        ("p_malformed", LMTransportError, "malformed openai stream event"),
        ("p_hang", LMTimeoutError, "read timeout (0.2s)"),
    ],
)
@pytest.mark.parametrize("after", [0, 4])
async def test_stream_faults_strike_after_n_tokens(fault: str, error: type[LMError], words: str, after: int) -> None:
    certain: dict[str, Any] = {fault: 1.0}  # this fault on every request
    async with FakeLLMServer(fault_after_tokens=after, **certain) as server:
        read = 0.2 if fault == "p_hang" else 10.0  # only the hang should wait out a read timeout
        lm = LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-x", cache=False, num_retries=0,
                timeout=Timeouts(read=read))
        texts: list[str] = []
        with pytest.raises(error) as info:
            async for chunk in lm.stream("Tell me about the sea."):
                texts.append(chunk.text)  # noqa: PERF401 (what came before the error is kept)
        await lm.aclose()
    assert words in str(info.value)
    assert len([t for t in texts if t]) == after  # one token per chunk: exactly ``after`` went out
    assert server.stats.faults == {fault.removeprefix("p_"): 1}
    assert server.stats.completion_tokens == 0  # usage is only counted for a complete answer


async def test_non_streamed_calls_keep_their_faults() -> None:
    async with FakeLLMServer(fault_after_tokens=3, p_truncate=1.0) as server:
        lm = LM("openai/fake-model", api_base=f"{server.url}/v1", api_key="sk-x", cache=False, num_retries=0)
        with pytest.raises(LMTransportError, match="before the response was complete"):
            await lm.acall("Tell me about the sea.")
        await lm.aclose()


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_fault_after_tokens_is_validated(bad: object) -> None:
    with pytest.raises(ConfigError, match="fault_after_tokens must be None or an int >= 0"):
        FakeLLMServer(fault_after_tokens=bad)  # type: ignore[arg-type]
