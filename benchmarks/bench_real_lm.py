"""dspex vs DSPy 3.4.1 on a real local model: parsed predictions and requests per prediction.

    .venv-real/bin/python benchmarks/bench_real_lm.py [--n 50] [--max-tokens 64] [--out FILE]

Starts llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct
(``dspex.testing.LlamaServer``; run it from ``.venv-real``, which
``python3 scripts/dev.py test --real`` builds) behind a counting loopback
proxy, then asks the same ``n`` questions through ``Predict("question ->
answer")`` with dspex (this process) and with DSPy (``benchmarks/.venv-dspy``,
built once), both at temperature 0, the same ``max_tokens``, no cache, one
call at a time. It prints and optionally writes, per side: predictions parsed,
typed parse failures, other errors, HTTP requests sent (counted by the proxy,
so failed and retried requests count too) and requests per parsed prediction.
Answer quality is not judged. Loopback only; bounded by ``n``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from _env import DSPY_ENV_VARS, ensure_dspy_venv

if TYPE_CHECKING:
    from anyio.abc import SocketStream

QUESTIONS = [f"What is {i} + {i + 1}?" for i in range(200)]


class CountingProxy:
    """A loopback TCP proxy counting ``POST`` requests (keep-alive safe), on its own thread."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.posts = 0
        self._ready = threading.Event()
        self._stop: Any = None
        threading.Thread(target=anyio.run, args=(self._main,), daemon=True).start()
        if not self._ready.wait(10):
            raise SystemExit("the counting proxy did not start")

    async def _main(self) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self._ready.set()
        await listener.serve(self._handle)

    async def _handle(self, client: SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pipe, upstream, client, False, tg.cancel_scope)
                await self._pipe(client, upstream, True, tg.cancel_scope)

    async def _pipe(self, src: SocketStream, dst: SocketStream, count: bool, scope: Any) -> None:
        try:
            async for data in src:
                if count:
                    self.posts += data.count(b"POST /v1/chat/completions")
                await dst.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()


async def dspex_side(api_base: str, model: str, n: int, max_tokens: int) -> dict[str, Any]:
    import dspex as dx
    from dspex.errors import LMError, ParseError

    parsed = parse_failures = errors = 0
    lm = dx.LM(model, api_base=api_base, cache=False, temperature=0.0, max_tokens=max_tokens)
    predict = dx.Predict("question -> answer")
    for q in QUESTIONS[:n]:
        try:
            await predict.acall(question=q, lm=lm)
            parsed += 1
        except ParseError:
            parse_failures += 1
        except LMError:
            errors += 1
    await lm.aclose()
    return {"parsed": parsed, "parse_failures": parse_failures, "errors": errors, "capabilities": lm.capabilities}


DSPY_SCRIPT = textwrap.dedent("""
    import json, sys
    import dspy
    api_base, model, n, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    questions = [f"What is {i} + {i + 1}?" for i in range(200)][:n]
    lm = dspy.LM(model, api_base=api_base, api_key="none", cache=False, temperature=0.0, max_tokens=max_tokens)
    dspy.configure(lm=lm)
    predict = dspy.Predict("question -> answer")
    parsed = parse_failures = errors = 0
    for q in questions:
        try:
            predict(question=q)
            parsed += 1
        except dspy.utils.exceptions.AdapterParseError:
            parse_failures += 1
        except Exception as exc:  # litellm's errors: the benchmark only counts them
            errors += 1
            print(type(exc).__name__, str(exc)[:200], file=sys.stderr)
    print(json.dumps({"parsed": parsed, "parse_failures": parse_failures, "errors": errors}))
""")


def dspy_side(api_base: str, model: str, n: int, max_tokens: int) -> dict[str, Any]:
    python = ensure_dspy_venv()
    import os

    out = subprocess.run([str(python), "-c", DSPY_SCRIPT, api_base, model, str(n), str(max_tokens)],
                         capture_output=True, text=True, env={**os.environ, **DSPY_ENV_VARS}, timeout=1800)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit("the DSPy side failed")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr_tail"] = out.stderr[-600:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from dspex.testing import LlamaServer

    results: dict[str, Any] = {"n": args.n, "max_tokens": args.max_tokens}
    with LlamaServer() as server:
        proxy = CountingProxy(server.port)
        api_base = f"http://127.0.0.1:{proxy.port}/v1"
        for side in ("dspex", "dspy"):
            before = proxy.posts
            if side == "dspex":
                row = anyio.run(dspex_side, api_base, server.model, args.n, args.max_tokens)
            else:
                row = dspy_side(api_base, server.model, args.n, args.max_tokens)
            row["requests"] = proxy.posts - before
            row["requests_per_prediction"] = round(row["requests"] / max(row["parsed"], 1), 2)
            results[side] = row
            print(f"{side:>6}: {row['parsed']}/{args.n} parsed, {row['parse_failures']} parse failures, "
                  f"{row['errors']} other errors, {row['requests']} requests "
                  f"({row['requests_per_prediction']} per parsed prediction)", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
