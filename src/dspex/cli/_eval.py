"""``dspex eval PROGRAM.json DATA.jsonl --metric exact_match``: score a saved program.

Loads a program saved with ``module.save`` (``dx.load``), reads examples from
a JSON-lines file, runs :class:`dspex.Evaluate` with progress on a terminal,
then prints a rich results table, or with ``--json`` one JSON object (score,
counts, per-example results) for scripts. Exit codes: 0 done, 1 the
evaluation failed, 2 bad usage (unreadable files, unknown metric, no LM).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import _context
from ..evaluate import Evaluate, metrics
from ..evaluate._evaluate import print_table
from ..lm import LM
from ..modules import Example, load
from ._exit import exit_codes

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["eval_command", "read_examples", "resolve_metric"]

_BUILTIN = ("exact_match", "answer_exact_match", "f1", "contains", "answer_passage_match")


def resolve_metric(name: str) -> Callable[..., Any]:
    """Return a built-in metric by name, or ``module:function`` imported.

    Raises:
        click.BadParameter: Unknown name or import failure.
    """
    if name in _BUILTIN:
        return getattr(metrics, name)  # type: ignore[no-any-return]
    if name in ("semantic_f1", "SemanticF1"):
        return metrics.SemanticF1()
    module_name, _, attr = name.partition(":")
    if not attr:
        raise click.BadParameter(f"unknown metric {name!r}; expected one of {', '.join(_BUILTIN)}, "
                                 "semantic_f1, or module:function", param_hint="--metric")
    try:
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot import metric {name!r}: {exc}", param_hint="--metric") from None


def read_examples(path: Path, inputs: list[str]) -> list[Any]:
    """Return the JSON-lines examples of ``path`` with ``inputs`` marked (those present).

    Raises:
        click.BadParameter: A line is not a JSON object, or the file is empty.
    """
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise click.BadParameter(f"{path}:{number}: not JSON ({exc})", param_hint="DATA") from None
        if not isinstance(record, dict):
            raise click.BadParameter(f"{path}:{number}: expected a JSON object, got {line[:60]!r}",
                                     param_hint="DATA")
        examples.append(Example(record).with_inputs(*[k for k in inputs if k in record]))
    if not examples:
        raise click.BadParameter(f"{path} holds no examples", param_hint="DATA")
    return examples


def _summary(result: Any, n: int) -> dict[str, Any]:
    return {"score": result.score, "examples": n, "errors": len(result.errors),
            "results": [{"index": i, "inputs": dict(e.inputs().items()),
                         "prediction": p.toDict() if hasattr(p, "toDict") else p, "score": s,
                         "feedback": result.feedback[i], "error": result.errors.get(i)}
                        for i, (e, p, s) in enumerate(result.results)]}


@click.command("eval")
@click.argument("program_path", metavar="PROGRAM.json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("data_path", metavar="DATA.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--metric", default="exact_match", show_default=True,
              help="exact_match, f1, contains, answer_passage_match, semantic_f1, or module:function.")
@click.option("--lm", "model", default=None, help="LM to use, e.g. openai/gpt-4o-mini (else the saved one).")
@click.option("--api-base", default=None, help="Base URL of an OpenAI-compatible endpoint.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--table", "rows", default=20, show_default=True, type=click.IntRange(min=0),
              help="Rows of the results table (0: none).")
@click.option("--run-id", default=None, help="Resume a killed evaluation with the same id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@exit_codes("evaluation")
def eval_command(program_path: Path, data_path: Path, metric: str, model: str | None, api_base: str | None,
                 concurrency: int, rows: int, run_id: str | None, as_json: bool) -> None:
    """Score a saved program on DATA.jsonl with a metric."""
    scorer = resolve_metric(metric)
    program = load(program_path)
    if model is not None:
        program.set_lm(LM(model, api_base=api_base) if api_base else LM(model))
    inputs = list(dict.fromkeys(n for p in program.predictors() for n in p.signature.input_fields))
    examples = read_examples(data_path, inputs)
    evaluate = Evaluate(devset=examples, metric=scorer, concurrency=concurrency,
                        display_progress=not as_json and sys.stderr.isatty())
    with _context.context():
        result = evaluate(program, run_id=run_id)
    if as_json:
        click.echo(json.dumps(_summary(result, len(examples)), default=str))
        return
    if rows:
        print_table(result.results, getattr(scorer, "__name__", type(scorer).__name__), rows)
    click.echo(f"score: {result.score}% over {len(examples)} examples ({len(result.errors)} errors)")
