"""Image/Audio/File inputs reach each provider's wire format and the fake server reads them back."""

from __future__ import annotations

import pytest

import dspex as dx
from dspex.testing import FakeLLMServer

PNG_URI = "data:image/png;base64,iVBORw0KGgo="
WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"
MODELS = ["openai/gpt-fake", "anthropic/claude-fake", "gemini/gemini-fake"]


class Describe(dx.Signature):
    """Describe the inputs."""

    image: dx.Image = dx.InputField()
    document: dx.File = dx.InputField()
    answer: str = dx.OutputField()


class Listen(dx.Signature):
    clip: dx.Audio = dx.InputField()
    answer: str = dx.OutputField()


@pytest.mark.parametrize("model", MODELS)
async def test_image_and_file_parts_arrive_for_each_provider(model: str) -> None:
    async with FakeLLMServer(seed=1) as server:
        lm = dx.LM(model, api_base=server.url, api_key="sk-media-test-0000", cache=False)
        try:
            pred = await dx.Predict(Describe).acall(
                image=dx.Image(PNG_URI), document=dx.File(file_data=PDF, filename="a.pdf"), lm=lm)
        finally:
            await lm.aclose()
    assert pred.answer == "Received image data:image/png;base64; file data:application/pdf;base64"  # echoed
    assert server.stats.last_media == [{"type": "image", "url": PNG_URI}, {"type": "file", "url": PDF}]
    assert server.stats.media_parts == 2


@pytest.mark.parametrize("model", ["openai/gpt-fake", "gemini/gemini-fake"])
async def test_audio_parts_arrive(model: str) -> None:
    async with FakeLLMServer(seed=2) as server:
        lm = dx.LM(model, api_base=server.url, api_key="sk-media-test-0000", cache=False)
        try:
            await dx.Predict(Listen).acall(clip=dx.Audio(data=WAV, audio_format="wav"), lm=lm)
        finally:
            await lm.aclose()
    assert server.stats.last_media == [{"type": "audio", "url": f"data:audio/wav;base64,{WAV}"}]


async def test_remote_image_url_is_passed_by_reference() -> None:
    url = "https://example.com/cat.png"
    async with FakeLLMServer(seed=3) as server:
        lm = dx.LM("anthropic/claude-fake", api_base=server.url, api_key="sk-media-test-0000", cache=False)
        try:
            pred = await dx.Predict("question, image: Image -> answer").acall(question="?", image=dx.Image(url),
                                                                              lm=lm)
        finally:
            await lm.aclose()
    assert server.stats.last_media == [{"type": "image", "url": url}]
    assert pred.answer == f"Received image {url}"


async def test_requests_without_media_record_none() -> None:
    async with FakeLLMServer(seed=4) as server:
        lm = dx.LM("openai/gpt-fake", api_base=server.url, api_key="sk-media-test-0000", cache=False)
        try:
            await dx.Predict("question -> answer").acall(question="plain", lm=lm)
        finally:
            await lm.aclose()
    assert server.stats.last_media == []
    assert server.stats.media_parts == 0
