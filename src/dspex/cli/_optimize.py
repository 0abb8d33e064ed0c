"""``dspex optimize PROGRAM.json TRAIN.jsonl --out COMPILED.json``: compile a saved program.

Loads a program saved with ``module.save``, reads a trainset (and optional
valset) from JSON lines, runs ``LabeledFewShot``, ``BootstrapFewShot``,
``BootstrapFewShotWithRandomSearch``, ``MIPROv2`` or ``COPRO``, saves the
compiled program, and prints the valset score before and after (``--json``:
one JSON object). With ``--store``/``--name`` the compiled program is also
saved as a version in the run store, with its score, the optimizer settings
and its parent (``dspex inspect --store`` lists them). Exit codes: 0 done,
1 the optimization failed, 2 bad usage (files, metric, no LM).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .._context import context, get_setting
from ..evaluate import Evaluate
from ..lm import LM
from ..modules import Prediction, load, save_version
from ..optimizers import (
    COPRO,
    GEPA,
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    LabeledFewShot,
    MIPROv2,
)
from ..optimizers._mipro import num_trials_for
from ._eval import read_examples, resolve_metric
from ._exit import exit_codes

__all__ = ["optimize_command"]

_OPTIMIZERS = ("labeled", "bootstrap", "random-search", "mipro", "copro", "gepa")
# Optimizers that select on a valset (the others only learn from the trainset).
_TAKES_VALSET = ("random-search", "mipro", "gepa")


def _with_feedback(metric: Any) -> Any:
    """Return ``metric`` as a GEPA metric: five arguments, feedback naming the expected answer."""
    def gepa_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
        result = metric(gold, pred)
        score = float(getattr(result, "score", result))
        wanted = {k: v for k, v in gold.items() if k not in gold.inputs()}
        return Prediction(score=score, feedback=f"This trajectory got a score of {score}. Expected: {wanted}.")

    return gepa_metric


def _optimizer(name: str, metric: Any, demos: int, labeled: int, candidates: int, concurrency: int,
               seed: int) -> Any:
    if name == "labeled":
        return LabeledFewShot(k=labeled)
    if name == "bootstrap":
        return BootstrapFewShot(metric=metric, max_bootstrapped_demos=demos, max_labeled_demos=labeled,
                                concurrency=concurrency)
    if name == "mipro":
        return MIPROv2(metric=metric, max_bootstrapped_demos=demos, max_labeled_demos=labeled, auto=None,
                       num_candidates=max(candidates, 2), seed=seed, concurrency=concurrency)
    if name == "copro":
        return COPRO(metric=metric, breadth=max(candidates, 2), depth=2, concurrency=concurrency)
    if name == "gepa":
        return GEPA(metric=_with_feedback(metric), max_full_evals=max(candidates, 1), reflection_lm=get_setting("lm"),
                    seed=seed, concurrency=concurrency)
    return BootstrapFewShotWithRandomSearch(metric=metric, max_bootstrapped_demos=demos, max_labeled_demos=labeled,
                                            num_candidate_programs=candidates, concurrency=concurrency)


def _compile_args(name: str, val: Any, trials: int | None, candidates: int) -> dict[str, Any]:
    """Return the extra ``compile`` arguments of optimizer ``name``."""
    extra: dict[str, Any] = {"valset": val} if val is not None and name in _TAKES_VALSET else {}
    if name == "mipro":
        size = len(val) if val is not None else 0
        extra.update(num_trials=trials or num_trials_for(1, False, max(candidates, 2)),
                     minibatch=size > 35, minibatch_size=min(35, max(size, 1)))
    return extra


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
              help="Random search: shuffled candidate programs; mipro: instruction and demo-set "
                   "candidates; copro: instructions per round; gepa: full evaluations of budget.")
@click.option("--trials", default=None, type=click.IntRange(min=1), help="mipro: search trials (default from candidates).")
@click.option("--seed", default=9, show_default=True, type=int, help="mipro: seed of the search.")
@click.option("--store", "store_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the compiled program as a version in this run store.")
@click.option("--name", "version_name", default=None, help="The program's name in the run store (with --store).")
@click.option("--lm", "model", default=None, help="LM to use, e.g. openai/gpt-4o-mini (else the saved one).")
@click.option("--api-base", default=None, help="Base URL of an OpenAI-compatible endpoint.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@exit_codes("optimization")
def optimize_command(program_path: Path, train_path: Path, out_path: Path, name: str, metric: str,
                     val_path: Path | None, demos: int, labeled: int, candidates: int, trials: int | None,
                     seed: int, store_path: Path | None, version_name: str | None, model: str | None,
                     api_base: str | None, concurrency: int, as_json: bool) -> None:
    """Compile a saved program on TRAIN.jsonl and save it to --out."""
    scorer = resolve_metric(metric)
    program = load(program_path)
    lm = (LM(model, api_base=api_base) if api_base else LM(model)) if model else program.get_lm()
    inputs = list(dict.fromkeys(n for p in program.predictors() for n in p.signature.input_fields))
    train = read_examples(train_path, inputs)
    val = read_examples(val_path, inputs) if val_path else None
    with context(lm=lm):
        optimizer = _optimizer(name, scorer, demos, labeled, candidates, concurrency, seed)
        compiled = optimizer.compile(program, trainset=train, **_compile_args(name, val, trials, candidates))
        scores = None
        if val is not None:
            evaluate = Evaluate(devset=val, metric=scorer, concurrency=concurrency)
            scores = {"before": evaluate(program).score, "after": evaluate(compiled).score}
    compiled.save(out_path)
    version = _save_version(compiled, program, optimizer, store_path, version_name or program_path.stem, scores)
    summary = {"optimizer": name, "out": str(out_path), "train": len(train), "scores": scores,
               "demos": {n: len(p.demos) for n, p in compiled.named_predictors()}, "version": version}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"saved {out_path} ({name}; demos per predictor: {summary['demos']})")
    if scores is not None:
        click.echo(f"valset score: {scores['before']}% -> {scores['after']}%")
    if version is not None:
        click.echo(f"saved version {version['version']} of {version['name']!r} in {store_path}")


def _save_version(compiled: Any, program: Any, optimizer: Any, store_path: Path | None, name: str,
                  scores: dict[str, float] | None) -> dict[str, Any] | None:
    """Save the student (once, as the parent) and the compiled program as versions; None without a store."""
    if store_path is None:
        return None
    if getattr(program, "dspex_version", None) is None:  # the student becomes the parent version
        save_version(program, name, store=store_path, score=scores["before"] if scores else None)
    compiled.dspex_version = program.dspex_version
    number = save_version(compiled, name, store=store_path, score=scores["after"] if scores else None,
                          optimizer=optimizer)
    return {"name": name, "version": number}
