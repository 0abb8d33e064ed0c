"""dx.Embedder (callable or /v1/embeddings) and KNNFewShot on the student task (both backends)."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import dspex as dx
from dspex.errors import AuthError, ConfigError, InputError
from dspex.testing import FakeLLMServer, StudentTask
from dspex.testing._fake_embeddings import fake_embedding

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TASK = StudentTask()
TRAIN = TASK.examples(24, seed=1)
DEV = TASK.examples(18, seed=2)


@asynccontextmanager
async def served(**kwargs: Any) -> AsyncIterator[tuple[FakeLLMServer, dx.Embedder, dx.LM]]:
    async with FakeLLMServer(student=TASK, **kwargs) as server:
        base = server.url + "/v1"
        lm = dx.LM("openai/student", api_base=base, api_key="sk-test", cache=False)
        try:
            yield server, dx.Embedder("openai/fake-embed", api_base=base, api_key="sk-test", batch_size=4), lm
        finally:
            await lm.aclose()


async def test_endpoint_embeddings_keep_input_order_across_batches_and_cache() -> None:
    texts = [f"word{i} mirror" for i in range(10)] + ["word3 mirror"]
    async with served() as (server, embedder, _):
        vectors = await embedder.acall(texts)
        requests = server.stats.requests
        again = await embedder.acall(texts[:5])
        assert server.stats.requests == requests  # all cached
        single = await embedder.acall("shift lantern", caching=False)
    assert vectors == [fake_embedding(t) for t in texts]
    assert again == vectors[:5]
    assert requests == 3  # 10 distinct texts in batches of 4
    assert single == fake_embedding("shift lantern")
    assert math.isclose(sum(v * v for v in single), 1.0)


async def test_endpoint_errors_are_typed() -> None:
    async with FakeLLMServer(require_api_key="sk-right") as server:
        wrong = dx.Embedder("openai/e", api_base=server.url + "/v1", api_key="sk-wrong")
        with pytest.raises(AuthError):
            await wrong.acall(["a"])


async def test_callables_sync_or_async_and_bad_input() -> None:
    async def aembed(texts: list[str]) -> list[list[float]]:
        return [[float(len(t))] for t in texts]

    assert await dx.Embedder(aembed, batch_size=1).acall(["ab", "c"]) == [[2.0], [1.0]]
    assert dx.Embedder(lambda ts: [[1.0, 0.0] for _ in ts])(["x"]) == [[1.0, 0.0]]
    with pytest.raises(InputError, match="one per text"):
        await dx.Embedder(lambda ts: [[1.0]]).acall(["a", "b"])
    with pytest.raises(InputError, match="list of strings"):
        await dx.Embedder(aembed).acall([1, 2])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="batch_size"):
        dx.Embedder(aembed, batch_size=0)
    with pytest.raises(ConfigError, match="callable"):
        dx.Embedder(42)  # type: ignore[arg-type]


async def test_knn_returns_the_nearest_examples_first() -> None:
    async with served() as (_, embedder, _):
        knn = dx.KNNFewShot(3, TRAIN, embedder).KNN
        found = await knn.aneighbors(question="mirror xylophone")
    query = fake_embedding("question: mirror xylophone")
    sims = sorted((sum(a * b for a, b in zip(fake_embedding(f"question: {e.question}"), query, strict=True)), i)
                  for i, e in enumerate(TRAIN))
    assert [e.question for e in found] == [TRAIN[i].question for _, i in sims[-3:][::-1]]
    assert all(e.question.startswith("mirror ") for e in found)  # the rule word dominates similarity


async def test_knn_few_shot_lifts_the_dev_score_and_leaves_the_student_alone() -> None:
    student = dx.Predict("question -> answer")
    evaluate = dx.Evaluate(devset=DEV, metric=dx.metrics.exact_match, concurrency=8)
    async with served() as (_, embedder, lm):
        optimizer = dx.KNNFewShot(4, TRAIN, embedder, metric=dx.metrics.exact_match,
                                  max_bootstrapped_demos=2, max_labeled_demos=4, concurrency=4)
        with dx.context(lm=lm):
            before = await evaluate.acall(student)
            compiled = await optimizer.acompile(student, trainset=TRAIN)
            after = await evaluate.acall(compiled)
    assert compiled is not student
    assert student.demos == []
    assert not student._compiled
    assert before.score == 0.0
    assert after.score >= 80.0, after.score  # stated margin: +80 points


def test_knn_few_shot_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="k must be"):
        dx.KNNFewShot(0, TRAIN, lambda ts: ts)
    with pytest.raises(ConfigError, match="max_rounds"):
        dx.KNNFewShot(2, TRAIN, lambda ts: ts, max_rounds=-1)


async def test_bad_embedding_requests_are_400s() -> None:
    async with FakeLLMServer() as server:
        async with httpx.AsyncClient() as client:
            bad = await client.post(server.url + "/v1/embeddings", json={"input": [1, 2]})
            missing = await client.post(server.url + "/v1/embeddings", content=b"{}")
            ok = await client.post(server.url + "/v1/embeddings", json={"input": "a b", "dimensions": 8})
    assert bad.status_code == 400
    assert missing.status_code == 400
    assert ok.json()["data"][0]["embedding"] == fake_embedding("a b", 8)


async def test_a_missing_key_is_an_auth_error_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthError, match="no API key"):
        await dx.Embedder("openai/text-embedding-3-small").acall(["x"])
