"""``dx.Evaluate``: score a program on a devset, as a flow.

``Evaluate(devset=..., metric=...)(program)`` runs the program on every
example (``program(**example.inputs())``) and the metric on every prediction
with ``concurrency`` calls in flight, through the flow engine: it shows
progress, can send each result live to extra sinks (a WebSocket broadcast),
and with ``run_id=`` a killed evaluation resumes where it stopped. The result
is DSPy's: ``.score`` is a percentage rounded to 2 decimals and ``.results``
holds ``(example, prediction, score)`` in devset order. Unlike DSPy there is
no error budget that throws finished answers away: an example whose program
or metric raises scores ``failure_score`` and the others go on (when only
the metric raised, the example keeps its prediction; DSPy keeps an empty one).
"""

from __future__ import annotations

import csv
import functools
import inspect
import json
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from rich.console import Console
from rich.table import Table

from .._util._sync import run_sync
from ..errors import ConfigError, InputError
from ..modules import Example, Module, Prediction
from ..sinks import jsonl
from ._batch import check_concurrency, run_batch

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..sinks import Sink

__all__ = ["Evaluate", "EvaluationResult", "call_metric", "call_program", "split_score"]


class EvaluationResult(Prediction):
    """What :class:`Evaluate` returns: ``score`` (a percentage) and ``results``.

    Attributes:
        score: ``round(100 * sum(scores) / len(devset), 2)``.
        results: ``(example, prediction, score)`` per example, devset order.
        feedback: The metric's feedback text per example (or None).
        errors: ``{index: "ExcType: message"}`` for examples that failed.
    """

    def __init__(self, score: float, results: list[tuple[Any, Any, Any]], *,
                 feedback: list[str | None] | None = None, errors: dict[int, str] | None = None) -> None:
        super().__init__(score=score, results=results)
        self.__dict__["feedback"] = feedback if feedback is not None else [None] * len(results)
        self.__dict__["errors"] = errors or {}

    def __repr__(self) -> str:
        return f"EvaluationResult(score={self.score}, results=<list of {len(self.results)} results>)"


async def call_program(program: Any, example: Any) -> Any:
    """Run ``program(**example.inputs())`` on the loop (a sync callable in a thread)."""
    inputs = dict(example.inputs().items()) if isinstance(example, Example) else dict(example)
    if isinstance(program, Module):
        return await program.acall(**inputs)
    if inspect.iscoroutinefunction(program) or inspect.iscoroutinefunction(type(program).__call__):
        return await program(**inputs)
    return await anyio.to_thread.run_sync(functools.partial(program, **inputs))


async def call_metric(metric: Callable[..., Any], example: Any, pred: Any, trace: Any = None) -> Any:
    """Return ``metric(example, pred[, trace])``, awaiting it if it is async.

    As in DSPy, Evaluate passes two arguments and bootstrapping three (the
    trace). A dspex ``Module`` (an LM judge) is awaited through ``acall``.
    """
    if isinstance(metric, Module):
        return await metric.acall(example=example, pred=pred, trace=trace)
    result = metric(example, pred) if trace is None else metric(example, pred, trace)
    if inspect.isawaitable(result):
        result = await result
    return result


def split_score(value: Any) -> tuple[Any, str | None]:
    """Return ``(score, feedback)`` from a bool, a number, or an object with ``.score``.

    Raises:
        InputError: The metric returned something else.
    """
    if isinstance(value, bool | int | float):
        return value, None
    score = getattr(value, "score", None) if not isinstance(value, dict) else value.get("score")
    if isinstance(score, bool | int | float):
        feedback = getattr(value, "feedback", None) if not isinstance(value, dict) else value.get("feedback")
        return score, None if feedback is None else str(feedback)
    raise InputError(
        f"a metric must return a bool, a number, or an object with a numeric .score "
        f"(e.g. dx.Prediction(score=0.5, feedback='...')), got {value!r}"
    )


def _metric_name(metric: Any) -> str:
    return metric.__name__ if isinstance(metric, types.FunctionType) else type(metric).__name__


def _plain(value: Any) -> Any:
    return value.toDict() if isinstance(value, Example) else value


def output_rows(results: Sequence[tuple[Any, Any, Any]], metric_name: str) -> list[dict[str, Any]]:
    """Return DSPy's saved-result rows: example and prediction fields, then the score."""
    rows = []
    for example, pred, score in results:
        ex = _plain(example)
        if hasattr(pred, "items") and callable(pred.items):
            pd = _plain(pred)
            row = {(f"example_{k}" if k in pd else k): v for k, v in ex.items()}
            row.update({(f"pred_{k}" if k in ex else k): v for k, v in pd.items()})
        else:
            row = {**ex, "prediction": pred}
        row[metric_name] = score
        rows.append(row)
    return rows


class Evaluate:
    """Score a program on a devset with a metric, concurrently, as a flow.

    Args:
        devset: The examples (``dx.Example`` with inputs marked).
        metric: ``metric(example, pred)`` returning a bool, a number, or an
            object with ``.score`` (and optional ``.feedback``); sync, async,
            or an LM judge module.
        concurrency: Most examples in flight (``num_threads`` is DSPy's
            name for it and is accepted as an alias). Default 16.
        display_progress: Show the flow's progress line.
        display_table: Print a results table (True, or the number of rows).
        failure_score: The score of an example whose program or metric raised.
        save_as_json: Write DSPy's result rows as a JSON list to this path.
        save_as_csv: Write the same rows as CSV.
        max_errors: Accepted for DSPy compatibility; dspex never aborts on
            errors, so it has no effect.
        sinks: Extra sinks getting one record per example as it finishes
            (``index``, ``score``, ``feedback``, ``error``, ``prediction``).

    Calling blocks until every example is scored; ``acall`` is the async
    form. Nothing is cancelled on a failing example.

    Raises:
        ConfigError: No metric, or a bad ``concurrency``.
        InputError: An empty devset, or an example without ``with_inputs``
            (when called, before anything runs).

    Example:
        >>> import dspex as dx
        >>> from dspex.testing import ScriptedLM
        >>> devset = [dx.Example(question=q, answer=a).with_inputs("question")
        ...           for q, a in [("2+2?", "4"), ("3+3?", "6")]]
        >>> qa = dx.Predict("question -> answer")
        >>> qa.lm = ScriptedLM({"2+2": {"answer": "4"}, "3+3": {"answer": "7"}})
        >>> dx.Evaluate(devset=devset, metric=dx.metrics.exact_match)(qa).score
        50.0
    """

    def __init__(
        self, *, devset: Sequence[Any], metric: Callable[..., Any] | None = None,
        concurrency: int | None = None, num_threads: int | None = None,
        display_progress: bool = False, display_table: bool | int = False,
        failure_score: float = 0.0, save_as_json: str | Path | None = None,
        save_as_csv: str | Path | None = None, max_errors: int | None = None,
        provide_traceback: bool | None = None, sinks: Sequence[Sink] = (),
    ) -> None:
        limit = concurrency if concurrency is not None else num_threads if num_threads is not None else 16
        self.devset = list(devset)
        self.metric = metric
        self.concurrency = check_concurrency(limit, "Evaluate concurrency")
        self.display_progress = display_progress
        self.display_table = display_table
        self.failure_score = failure_score
        self.save_as_json = save_as_json
        self.save_as_csv = save_as_csv
        self.max_errors = max_errors
        self.provide_traceback = provide_traceback
        self.sinks = tuple(sinks)

    def __call__(self, program: Any, metric: Callable[..., Any] | None = None, devset: Sequence[Any] | None = None,
                 **kwargs: Any) -> EvaluationResult:
        """Evaluate synchronously; see :meth:`acall` for the arguments."""
        return run_sync(functools.partial(self.acall, program, metric=metric, devset=devset, **kwargs),
                        reuse_loop=True)

    async def acall(
        self, program: Any, metric: Callable[..., Any] | None = None, devset: Sequence[Any] | None = None, *,
        concurrency: int | None = None, num_threads: int | None = None, display_progress: bool | None = None,
        display_table: bool | int | None = None, save_as_json: str | Path | None = None,
        save_as_csv: str | Path | None = None, run_id: str | None = None, store: Any = None,
        journal: str | Path | None = None, checkpoint_every: int = 100,
        callback_metadata: dict[str, Any] | None = None,
    ) -> EvaluationResult:
        """Run the evaluation and return its result.

        Arguments left None take the constructor's values. ``run_id`` makes
        the run resumable: per-example results are journaled (JSON lines, by
        default ``.dspex/evaluate/<run_id>.jsonl``) exactly once, and a rerun
        with the same id skips the examples already scored and reads their
        results back from the journal. Progress is committed every
        ``checkpoint_every`` examples (and every 5 s); ``callback_metadata``
        is accepted for DSPy compatibility and unused.

        Raises:
            ConfigError: No metric, or a bad ``concurrency``.
            InputError: An empty devset.
            FlowFailed: The flow itself failed (not a single example).
        """
        metric = metric if metric is not None else self.metric
        if metric is None or not callable(metric):
            raise ConfigError(f"Evaluate needs a callable metric(example, pred), got {metric!r}")
        examples = list(devset) if devset is not None else self.devset
        if not examples:
            raise InputError("Evaluate needs a devset with at least one example, got an empty devset")
        unmarked = next((i for i, e in enumerate(examples) if isinstance(e, Example) and e.input_keys is None), None)
        if unmarked is not None:
            raise InputError(f"devset example {unmarked} has no input fields marked: {examples[unmarked]!r}; "
                             "build examples with dx.Example(...).with_inputs('question', ...)")
        limit = concurrency if concurrency is not None else num_threads
        limit = check_concurrency(limit, "concurrency") if limit is not None else self.concurrency
        sinks = list(self.sinks)
        journal_path = None
        if run_id is not None:
            journal_path = Path(journal) if journal is not None else Path(".dspex") / "evaluate" / f"{run_id}.jsonl"
            sinks.append(jsonl(journal_path))
        live: dict[int, tuple[Any, Any, str | None]] = {}
        work = functools.partial(self._one, program, metric, live)
        progress = display_progress if display_progress is not None else self.display_progress
        records = await run_batch(work, examples, concurrency=limit, name="evaluate", progress=progress,
                                  sinks=sinks, run_id=run_id, store=store, checkpoint_every=checkpoint_every)
        if journal_path is not None:
            records = await anyio.to_thread.run_sync(_read_journal, journal_path)
        result = self._assemble(examples, records, live)
        await self._report(result, metric, display_table, save_as_json, save_as_csv)
        return result

    async def _one(self, program: Any, metric: Any, live: dict[int, Any], index: int, example: Any) -> dict[str, Any]:
        pred: Any = Prediction()
        error = feedback = None
        score: Any = self.failure_score
        try:
            pred = await call_program(program, example)
            score, feedback = split_score(await call_metric(metric, example, pred))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            score = self.failure_score
        live[index] = (pred, score, feedback)
        return {"score": score, "feedback": feedback, "error": error,
                "prediction": pred.toDict() if isinstance(pred, Example) else pred}

    def _assemble(self, examples: list[Any], records: list[dict[str, Any]],
                  live: dict[int, Any]) -> EvaluationResult:
        by_index = {int(r["index"]): r for r in records}
        results: list[tuple[Any, Any, Any]] = []
        feedback: list[str | None] = []
        errors: dict[int, str] = {}
        for i, example in enumerate(examples):
            record = by_index.get(i)
            if i in live:
                pred, score, note = live[i]
            elif record is not None:  # scored by an earlier run, read from the journal
                raw = record.get("prediction")
                pred = Prediction(**raw) if isinstance(raw, dict) else raw
                score, note = record["score"], record.get("feedback")
            else:
                raise ConfigError(f"evaluation journal has no result for example {i}; "
                                  "use a new run_id or delete the journal")
            if record is not None and record.get("error"):
                errors[i] = record["error"]
            results.append((example, pred, score))
            feedback.append(note)
        total = sum(score for *_, score in results)
        return EvaluationResult(round(100 * total / len(examples), 2), results, feedback=feedback, errors=errors)

    async def _report(self, result: EvaluationResult, metric: Any, display_table: bool | int | None,
                      save_as_json: Any, save_as_csv: Any) -> None:
        table = display_table if display_table is not None else self.display_table
        json_path = save_as_json if save_as_json is not None else self.save_as_json
        csv_path = save_as_csv if save_as_csv is not None else self.save_as_csv
        name = _metric_name(metric)
        if table:
            print_table(result.results, name, None if table is True else int(table))
        if json_path or csv_path:
            rows = output_rows(result.results, name)
            await anyio.to_thread.run_sync(_write_files, rows, json_path, csv_path)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_files(rows: list[dict[str, Any]], json_path: Any, csv_path: Any) -> None:
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(rows, f, default=str)
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


def print_table(results: Sequence[tuple[Any, Any, Any]], metric_name: str, limit: int | None) -> None:
    """Print the first ``limit`` result rows (all when None) as a rich table on stdout."""
    rows = output_rows(results[:limit] if limit is not None else results, metric_name)
    table = Table(title=f"Evaluate ({len(results)} examples)")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for column in columns:
        table.add_column(column, overflow="fold", max_width=40)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console().print(table)
    if limit is not None and limit < len(results):
        print(f"... {len(results) - limit} more rows not shown")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "✔️ [True]" if value else ""
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."
