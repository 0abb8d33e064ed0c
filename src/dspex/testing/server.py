"""Command line for the fake LM server: ``python -m dspex.testing.server --port 0``.

Starts :class:`~dspex.testing.FakeLLMServer` on loopback, prints its URL on
one line (flushed, so a parent process can read it), and serves until
interrupted. Every server option has a flag, e.g. ``--latency-ms 50 --p-429 0.1``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import anyio

from .._util._sync import run_sync
from ..errors import ConfigError
from ._fake_student import StudentTask
from ._server import FakeLLMServer

__all__ = ["main", "student_task"]


_DESCRIPTION = """\
Start the fake OpenAI/Anthropic/Gemini-compatible LM server on loopback, print
its base URL on one line (flushed, so a parent process can read it) and serve
until interrupted. Faults are drawn per request with the given probabilities.
"""
_EPILOG = "example: python -m dspex.testing.server --port 8000 --latency-ms 50 --p-429 0.05"
_FAULTS = {
    "429": "answer HTTP 429 with Retry-After",
    "500": "answer HTTP 500",
    "503": "answer HTTP 503",
    "hang": "accept the request and never answer",
    "reset": "reset the connection",
    "truncate": "cut a streamed answer short",
    "malformed": "answer with invalid JSON",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dspex.testing.server", description=_DESCRIPTION,
                                epilog=_EPILOG, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=0, help="port (0 = any free port)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay before each response starts")
    p.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between streamed chunks")
    p.add_argument("--tokens-per-chunk", type=int, default=1, help="tokens per streamed chunk")
    for fault, what in _FAULTS.items():
        p.add_argument(f"--p-{fault}", type=float, default=0.0, help=f"probability to {what}")
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds in the Retry-After header of a 429")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault draws (same seed, same faults)")
    p.add_argument("--require-api-key", default=None, metavar="KEY",
                   help="refuse requests without this key (401); default: any key")
    p.add_argument("--model", default="fake-model", help="model name reported in responses")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop to serve on")
    p.add_argument("--parser", choices=("httptools", "h11"), default=None,
                   help="HTTP parser (default: httptools when installed, else h11)")
    p.add_argument("--student", default=None, metavar="RULES",
                   help="answer StudentTask questions as the fake student: 'all' or rule names, comma-separated")
    return p


def student_task(flag: str | None) -> StudentTask | None:
    """Return the ``StudentTask`` a ``--student`` flag asks for (None without the flag).

    Raises:
        ConfigError: An unknown rule name.
    """
    if flag is None:
        return None
    return StudentTask(rules=None if flag == "all" else [r for r in flag.split(",") if r])


def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        server = FakeLLMServer(
            host=args.host, port=args.port, latency_ms=args.latency_ms,
            token_delay_ms=args.token_delay_ms, tokens_per_chunk=args.tokens_per_chunk,
            p_429=args.p_429, p_500=args.p_500, p_503=args.p_503, p_hang=args.p_hang,
            p_reset=args.p_reset, p_truncate=args.p_truncate, p_malformed=args.p_malformed,
            retry_after=args.retry_after, seed=args.seed,
            require_api_key=args.require_api_key, model=args.model, parser=args.parser,
            student=student_task(args.student),
        )  # fmt: skip
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def serve() -> None:
        async with server:
            print(server.url, flush=True)
            await anyio.sleep_forever()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
        run_sync(serve, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
