"""``dspex optimize PROGRAM.json TRAIN.jsonl --out COMPILED.json``: compile a saved program.

Loads a program saved with ``module.save``, reads a trainset (and optional
valset) from JSON lines, runs ``LabeledFewShot``, ``BootstrapFewShot`` or
``BootstrapFewShotWithRandomSearch``, saves the compiled program, and prints
the valset score before and after (``--json``: one JSON object). Exit codes:
0 done, 1 the optimization failed, 2 bad usage (files, metric, no LM).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ._eval import read_examples, resolve_metric

__all__ = ["optimize_command"]

_OPTIMIZERS = ("labeled", "bootstrap", "random-search")


def _optimizer(name: str, metric: Any, demos: int, labeled: int, candidates: int, concurrency: int) -> Any:
    from ..optimizers import BootstrapFewShot, BootstrapFewShotWithRandomSearch, LabeledFewShot

    if name == "labeled":
        return LabeledFewShot(k=labeled)
    if name == "bootstrap":
        return BootstrapFewShot(metric=metric, max_bootstrapped_demos=demos, max_labeled_demos=labeled,
                                concurrency=concurrency)
    return BootstrapFewShotWithRandomSearch(metric=metric, max_bootstrapped_demos=demos, max_labeled_demos=labeled,
                                            num_candidate_programs=candidates, concurrency=concurrency)


@click.command("optimize")
@click.argument("program_path", metavar="PROGRAM.json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("train_path", metavar="TRAIN.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where the compiled program is saved (.json).")
@click.option("--optimizer", "name", type=click.Choice(_OPTIMIZERS), default="bootstrap", show_default=True)
@click.option("--metric", default="exact_match", show_default=True,
              help="exact_match, f1, contains, answer_passage_match, semantic_f1, or module:function.")
@click.option("--valset", "val_path", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Examples to score on (random search also selects on them).")
@click.option("--max-bootstrapped-demos", "demos", default=4, show_default=True, type=click.IntRange(min=0))
@click.option("--max-labeled-demos", "labeled", default=16, show_default=True, type=click.IntRange(min=0))
@click.option("--candidates", default=8, show_default=True, type=click.IntRange(min=0),
              help="Random search: shuffled candidate programs.")
@click.option("--lm", "model", default=None, help="LM to use, e.g. openai/gpt-4o-mini (else the saved one).")
@click.option("--api-base", default=None, help="Base URL of an OpenAI-compatible endpoint.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def optimize_command(program_path: Path, train_path: Path, out_path: Path, name: str, metric: str,
                     val_path: Path | None, demos: int, labeled: int, candidates: int, model: str | None,
                     api_base: str | None, concurrency: int, as_json: bool) -> None:
    """Compile a saved program on TRAIN.jsonl and save it to --out."""
    from .._context import context
    from ..errors import ConfigError, DspexError
    from ..evaluate import Evaluate
    from ..lm import LM
    from ..modules import load

    scorer = resolve_metric(metric)
    try:
        program = load(program_path)
        lm = (LM(model, api_base=api_base) if api_base else LM(model)) if model else program.get_lm()
        inputs = list(dict.fromkeys(n for p in program.predictors() for n in p.signature.input_fields))
        train = read_examples(train_path, inputs)
        val = read_examples(val_path, inputs) if val_path else None
        optimizer = _optimizer(name, scorer, demos, labeled, candidates, concurrency)
        with context(lm=lm):
            extra = {"valset": val} if val is not None and name == "random-search" else {}
            compiled = optimizer.compile(program, trainset=train, **extra)
            scores = None
            if val is not None:
                evaluate = Evaluate(devset=val, metric=scorer, concurrency=concurrency)
                scores = {"before": evaluate(program).score, "after": evaluate(compiled).score}
        compiled.save(out_path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except DspexError as exc:
        click.echo(f"error: optimization failed: {exc}", err=True)
        sys.exit(1)
    summary = {"optimizer": name, "out": str(out_path), "train": len(train), "scores": scores,
               "demos": {n: len(p.demos) for n, p in compiled.named_predictors()}}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"saved {out_path} ({name}; demos per predictor: {summary['demos']})")
    if scores is not None:
        click.echo(f"valset score: {scores['before']}% -> {scores['after']}%")
