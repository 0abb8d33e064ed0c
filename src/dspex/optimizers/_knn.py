"""``KNNFewShot``: at inference, bootstrap demos from the k nearest train examples.

DSPy 3.4.1's algorithm: the trainset's inputs are embedded once (each
example as ``"key: value | key: value"`` over its input keys); each call
embeds its own inputs the same way, takes the ``k`` train examples with the
highest dot product (highest first), runs ``BootstrapFewShot`` on them and
answers with the program it compiled. dspex embeds the trainset lazily on
the first call (in DSPy it happens in the constructor, blocking), so the
optimizer can be built without a running endpoint.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ConfigError
from ..modules import Module
from ._base import Optimizer, check_student, reject_unknown
from ._fewshot import BootstrapFewShot

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["KNN", "KNNFewShot"]


def _as_text(pairs: Sequence[tuple[str, Any]]) -> str:
    return " | ".join(f"{key}: {value}" for key, value in pairs)


async def _embed(vectorizer: Any, texts: list[str]) -> list[list[float]]:
    """Call ``vectorizer`` (an Embedder, or any sync/async callable) on ``texts``."""
    if hasattr(vectorizer, "acall"):
        result = await vectorizer.acall(texts)
    else:
        result = vectorizer(texts)
        if inspect.isawaitable(result):
            result = await result
    return [[float(x) for x in row] for row in result]


class KNN:
    """The ``k`` train examples nearest to some inputs, by embedding dot product.

    Args:
        k: How many neighbours.
        trainset: Examples with input keys (``with_inputs``).
        vectorizer: ``dx.Embedder`` or a callable ``texts -> vectors``.
    """

    def __init__(self, k: int, trainset: Sequence[Any], vectorizer: Callable[..., Any]) -> None:
        self.k = k
        self.trainset = list(trainset)
        self.embedding = vectorizer
        self._vectors: list[list[float]] | None = None
        self._lock = anyio.Lock()

    async def _train_vectors(self) -> list[list[float]]:
        async with self._lock:  # concurrent first calls embed the trainset once
            if self._vectors is None:
                texts = [_as_text([(k, v) for k, v in ex.items() if k in ex._input_keys])
                         for ex in self.trainset]
                self._vectors = await _embed(self.embedding, texts)
        return self._vectors

    async def aneighbors(self, **inputs: Any) -> list[Any]:
        """Return the ``k`` nearest train examples, nearest first."""
        vectors = await self._train_vectors()
        [query] = await _embed(self.embedding, [_as_text(list(inputs.items()))])
        scores = [sum(a * b for a, b in zip(row, query, strict=True)) for row in vectors]
        # numpy's argsort()[-k:][::-1]: ascending by score, ties by index, then reversed.
        order = sorted(range(len(scores)), key=lambda i: scores[i])
        return [self.trainset[i] for i in order[-self.k :][::-1]] if self.k else []


class _KNNProgram(Module):
    """The compiled KNNFewShot program: per call, bootstrap on the neighbours, then answer."""

    def __init__(self, program: Module, knn: KNN, teacher: Any, bootstrap_args: dict[str, Any]) -> None:
        super().__init__()
        self.program = program
        self._knn = knn
        self._teacher = teacher
        self._bootstrap_args = bootstrap_args

    async def aforward(self, **inputs: Any) -> Any:
        neighbours = await self._knn.aneighbors(**inputs)
        optimizer = BootstrapFewShot(**self._bootstrap_args)
        compiled = await optimizer.acompile(self.program, teacher=self._teacher, trainset=neighbours)
        return await compiled.acall(**inputs)


class KNNFewShot(Optimizer):
    """Few-shot demos chosen per call by embedding similarity (DSPy's ``KNNFewShot``).

    Args:
        k: Neighbours retrieved per call (the bootstrap trainset).
        trainset: Examples to retrieve from.
        vectorizer: ``dx.Embedder`` (a callable or an ``/embeddings``
            endpoint) or any callable ``texts -> vectors``.
        **few_shot_bootstrap_args: ``BootstrapFewShot`` arguments used per call.

    ``compile`` returns a new program (the student is untouched) whose every
    call embeds its inputs, retrieves the ``k`` nearest examples, bootstraps
    on them (concurrently, through the flow engine) and answers with the
    result. Its ``program`` attribute is the reset copy of the student.

    Raises:
        ConfigError: ``k`` is not an int >= 1, or ``vectorizer`` is not callable.
    """

    def __init__(self, k: int, trainset: Sequence[Any], vectorizer: Callable[..., Any],
                 **few_shot_bootstrap_args: Any) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"KNNFewShot k must be an int >= 1, got {k!r}")
        if not callable(vectorizer) and not hasattr(vectorizer, "acall"):
            raise ConfigError(f"KNNFewShot vectorizer must be a dx.Embedder or a callable, got {vectorizer!r}")
        BootstrapFewShot(**few_shot_bootstrap_args)  # reject bad arguments now, not on the first call
        self.k = k
        self.KNN = KNN(k, trainset, vectorizer)
        self.few_shot_bootstrap_args = dict(few_shot_bootstrap_args)

    async def acompile(self, student: Any, *, trainset: Sequence[Any] | None = None, teacher: Any = None,
                       **unknown: Any) -> Any:
        """Return the retrieving program; ``trainset`` is ignored (given to the constructor)."""
        reject_unknown(self.acompile, unknown)
        check_student(student, "KNNFewShot")
        return _KNNProgram(student.reset_copy(), self.KNN, teacher, self.few_shot_bootstrap_args)

    def compile(self, student: Any, *, trainset: Sequence[Any] | None = None, **kwargs: Any) -> Any:
        """Blocking form of :meth:`acompile` (no LM calls happen at compile time)."""
        return super().compile(student, trainset=list(trainset or []), **kwargs)
