"""``dx.Embedder``: text → vectors, from a callable or an OpenAI-compatible endpoint.

Like DSPy's ``dspy.Embedder``: ``Embedder(model)`` where ``model`` is either
any callable ``texts -> vectors`` (sync or async) or a model name such as
``"openai/text-embedding-3-small"``, served by ``POST {api_base}/embeddings``.
The endpoint is reached through dspex's own LM transport (the shared
keep-alive pool, or httpx behind a proxy) with the LM's key handling, so no
extra HTTP client is needed. Inputs are sent in batches of ``batch_size``,
several batches at once (``concurrency``); results keep the input order.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import TYPE_CHECKING, Any

import anyio

from .._util._sync import run_sync
from ..errors import AuthError, ConfigError, InputError, LMTransportError
from ._lm import LM

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Embedder"]


class Embedder:
    """Compute embeddings with a callable or an OpenAI-compatible ``/embeddings`` endpoint.

    Args:
        model: A callable ``texts -> list of vectors`` (sync or async), or a
            model name ``"provider/name"`` resolved like ``dx.LM``'s.
        batch_size: Most texts per request (or per callable call).
        caching: Keep vectors of texts already embedded (in this instance).
        api_base: The endpoint's base URL (e.g. ``http://127.0.0.1:8000/v1``).
        api_key: The key; default from the provider's environment variable.
        concurrency: Most batches in flight.
        **kwargs: Extra request fields (e.g. ``dimensions=256``) or extra
            keyword arguments of the callable.

    Raises:
        ConfigError: ``model`` is neither callable nor a string, or a size is not an int >= 1.

    Example:
        >>> import dspex as dx
        >>> embed = dx.Embedder(lambda texts: [[float(len(t)), 1.0] for t in texts])
        >>> embed(["ab", "abc"])
        [[2.0, 1.0], [3.0, 1.0]]
    """

    def __init__(self, model: str | Callable[..., Any], batch_size: int = 200, caching: bool = True, *,
                 api_base: str | None = None, api_key: str | None = None, concurrency: int = 4,
                 **kwargs: Any) -> None:
        for name, value in (("batch_size", batch_size), ("concurrency", concurrency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Embedder {name} must be an int >= 1, got {value!r}")
        if not callable(model) and not isinstance(model, str):
            raise ConfigError(f"Embedder model must be a callable or a 'provider/name' string, got {model!r}")
        self.model = model
        self.batch_size = batch_size
        self.caching = caching
        self.concurrency = concurrency
        self.kwargs = dict(kwargs)
        # The LM is only a carrier of provider, base URL, key and transport here.
        self._lm = LM(model, api_base=api_base, api_key=api_key, cache=False) if isinstance(model, str) else None
        self._cache: dict[str, list[float]] = {}

    def __call__(self, inputs: str | Sequence[str], batch_size: int | None = None,
                 caching: bool | None = None, **kwargs: Any) -> Any:
        """Blocking form of :meth:`acall` (safe inside a running loop)."""
        call = functools.partial(self.acall, inputs, batch_size=batch_size, caching=caching, **kwargs)
        return run_sync(call, reuse_loop=True)

    async def acall(self, inputs: str | Sequence[str], batch_size: int | None = None,
                    caching: bool | None = None, **kwargs: Any) -> Any:
        """Return one vector for a string, or a list of vectors (input order) for a list.

        Raises:
            InputError: An input is not a string, or the model returned the wrong number of vectors.
            LMError: The endpoint failed (typed as for ``dx.LM``).
        """
        single = isinstance(inputs, str)
        given: list[object] = [inputs] if single else list(inputs)
        texts = [t for t in given if isinstance(t, str)]
        if len(texts) != len(given):
            raise InputError(f"Embedder inputs must be a string or a list of strings, got {inputs!r:.200}")
        use_cache = self.caching if caching is None else caching
        todo = list(dict.fromkeys(t for t in texts if not (use_cache and t in self._cache)))
        size = batch_size or self.batch_size
        found: dict[str, list[float]] = {}
        limit = anyio.CapacityLimiter(self.concurrency)

        async def run(batch: list[str]) -> None:
            async with limit:
                vectors = await self._embed(batch, {**self.kwargs, **kwargs})
            found.update(zip(batch, vectors, strict=True))

        batches = [todo[start : start + size] for start in range(0, len(todo), size)]
        try:
            async with anyio.create_task_group() as tg:
                for batch in batches:
                    tg.start_soon(run, batch)
        except BaseExceptionGroup as group:  # the first batch error, typed, not a group
            first = group.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        if use_cache:
            self._cache.update(found)
        vectors = [found[t] if t in found else self._cache[t] for t in texts]
        return vectors[0] if single else vectors

    async def _embed(self, batch: list[str], extra: dict[str, Any]) -> list[list[float]]:
        if self._lm is None:
            result = self.model(batch, **extra)  # type: ignore[operator]
            if inspect.isawaitable(result):
                result = await result
        else:
            result = await self._request(batch, extra)
        vectors = [[float(x) for x in v] for v in result]
        if len(vectors) != len(batch):
            raise InputError(f"the embedding model returned {len(vectors)} vectors for {len(batch)} texts; "
                             "expected one per text")
        return vectors

    async def _request(self, batch: list[str], extra: dict[str, Any]) -> list[list[float]]:
        assert self._lm is not None
        endpoint = self._lm.endpoint
        provider = endpoint.provider
        if provider.key_required and not provider.api_key:
            raise AuthError(f"no API key for {self.model!r}: set {' or '.join(provider.env_keys)} or pass api_key=",
                            provider=provider.name, model=provider.model_name)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if provider.api_key:
            headers["authorization"] = f"Bearer {provider.api_key}"
        body = json.dumps({"model": provider.model_name, "input": batch, **extra}).encode()
        resp = await endpoint.transport.request("POST", f"{provider.api_base}/embeddings", headers=headers,
                                                body=body, timeouts=endpoint.config.timeouts)
        raw = await resp.aread()
        if resp.status >= 400:
            raise provider.map_error(resp.status, dict(resp.headers), raw, None)
        try:
            data = json.loads(raw)["data"]
            return [item["embedding"] for item in sorted(data, key=lambda d: d["index"])]
        except (ValueError, KeyError, TypeError) as exc:
            raise LMTransportError(f"malformed embeddings response from {provider.name} "
                                   f"({len(raw)} bytes): {exc}") from exc

    def __repr__(self) -> str:
        name = self.model if isinstance(self.model, str) else getattr(self.model, "__name__", repr(self.model))
        return f"Embedder({name!r}, batch_size={self.batch_size})"
