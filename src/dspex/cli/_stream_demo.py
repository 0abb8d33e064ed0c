"""Stream one ChainOfThought answer to the terminal over real HTTP.

The smallest end-to-end look at dspex: a signature, a module, an ``LM`` talking
to the embedded OpenAI-compatible test server (no API key), and the event
stream (``FieldDelta`` as tokens arrive, then ``PredictionDone``). The server
answers deterministically in the adapter's format, derived from the prompt.
"""

from __future__ import annotations

import click

from .. import events
from .._util._sync import run_sync
from ..lm import LM
from ..modules import ChainOfThought
from ..testing import FakeLLMServer

__all__ = ["stream_one"]


async def _stream(question: str, token_delay_ms: float) -> None:
    async with FakeLLMServer(token_delay_ms=token_delay_ms, latency_ms=20) as server:
        lm = LM("openai/dspex-fake", api_base=server.url + "/v1", api_key="not-needed", cache=False)
        qa = ChainOfThought("question -> answer")
        current = None
        async for ev in qa.stream(question=question, lm=lm):
            if isinstance(ev, events.FieldDelta):
                if ev.field != current:
                    click.echo(f"\n{ev.field}: ", nl=False)
                    current = ev.field
                click.echo(ev.text, nl=False)
            elif isinstance(ev, events.PredictionDone):
                click.echo(f"\n\ndone: {ev.outputs}")
        await lm.aclose()


def stream_one(question: str, token_delay_ms: float = 15.0) -> None:
    """Print the streamed reasoning and answer for ``question``."""
    click.echo(f"question: {question}")
    run_sync(_stream, question, token_delay_ms)
