"""``python -m dspex.testing.server`` plus request counters on demand, for the benchmarks.

    python benchmarks/fake_server.py --port 0 --latency-ms 50

Same flags and the same :class:`~dspex.testing.FakeLLMServer` as the package's
command line: prints the server's URL on one line, then serves. Each line read
on stdin is answered with the server's ``stats`` (plus ``cpu_s``, the
server process's CPU time) as one JSON line on stdout,
so the benchmark driver can check that a client (DSPy in particular) really
sent its requests to this server. End of stdin stops the server.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import anyio

from dspex.testing import FakeLLMServer
from dspex.testing.server import _parser, student_task


def _server(argv: list[str]) -> tuple[FakeLLMServer, str]:
    args = _parser().parse_args(argv)
    server = FakeLLMServer(
        host=args.host, port=args.port, latency_ms=args.latency_ms,
        token_delay_ms=args.token_delay_ms, tokens_per_chunk=args.tokens_per_chunk,
        p_429=args.p_429, p_500=args.p_500, p_503=args.p_503, p_hang=args.p_hang,
        p_reset=args.p_reset, p_truncate=args.p_truncate, p_malformed=args.p_malformed,
        retry_after=args.retry_after, seed=args.seed, require_api_key=args.require_api_key,
        model=args.model, parser=args.parser, student=student_task(args.student),
    )  # fmt: skip
    return server, args.backend


async def _serve(server: FakeLLMServer) -> None:
    async with server:
        print(server.url, flush=True)
        while await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
            stats = dataclasses.asdict(server.stats)
            stats["statuses"] = {str(k): v for k, v in stats["statuses"].items()}
            stats["cpu_s"] = time.process_time()
            print(json.dumps(stats), flush=True)


def main() -> None:
    server, backend = _server(sys.argv[1:])
    anyio.run(_serve, server, backend=backend)


if __name__ == "__main__":
    main()
