"""Stream one ChainOfThought answer to the terminal on a scripted LM.

The smallest end-to-end look at dspex: a signature, a module, and the event
stream (``FieldDelta`` as tokens arrive, then ``PredictionDone``).
"""

from __future__ import annotations

import click

from .._util._sync import run_sync

__all__ = ["stream_one"]


async def _stream(question: str) -> None:
    from .. import events
    from ..modules import ChainOfThought
    from ..testing import ScriptedLM

    lm = ScriptedLM(
        [{"reasoning": "The question asks for a capital city. Paris is the capital of France.",
          "answer": "Paris"}],
        stream_chunk_size=3,
    )
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


def stream_one(question: str) -> None:
    """Print the streamed reasoning and answer for ``question``."""
    click.echo(f"question: {question}")
    run_sync(_stream, question)
