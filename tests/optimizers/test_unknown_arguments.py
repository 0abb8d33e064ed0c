"""Optimizers reject keyword arguments they do not take instead of ignoring them.

No LM is needed: the check runs before any work, so each case raises at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import dspex as dx
from dspex.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

TRAIN = [dx.Example(question="q", answer="a").with_inputs("question")]


def _metric(example: Any, pred: Any, trace: Any = None) -> bool:
    return bool(example.answer == pred.answer)


def _gepa_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> bool:
    return _metric(gold, pred)


def _embed(texts: list[str]) -> list[list[float]]:
    return [[float(len(t)), 1.0] for t in texts]


OPTIMIZERS: dict[str, Callable[[], Any]] = {
    "LabeledFewShot": lambda: dx.LabeledFewShot(k=1),
    "BootstrapFewShot": lambda: dx.BootstrapFewShot(metric=_metric),
    "BootstrapFewShotWithRandomSearch": lambda: dx.BootstrapFewShotWithRandomSearch(metric=_metric),
    "KNNFewShot": lambda: dx.KNNFewShot(k=1, trainset=TRAIN, vectorizer=_embed),
    "COPRO": lambda: dx.COPRO(metric=_metric, breadth=2, depth=1),
    "MIPROv2": lambda: dx.MIPROv2(metric=_metric, auto="light"),
    "GEPA": lambda: dx.GEPA(metric=_gepa_metric, auto="light", reflection_lm=object()),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compile_names_a_misspelled_argument(name: str) -> None:
    optimizer = OPTIMIZERS[name]()
    with pytest.raises(ConfigError, match=rf"{name}\.compile got unknown argument\(s\) 'trainest'; it accepts: .*trainset"):
        optimizer.compile(dx.Predict("question -> answer"), trainset=TRAIN, trainest=TRAIN)


def test_compile_names_an_argument_this_optimizer_lacks() -> None:
    # BootstrapFewShot has no valset (DSPy's has none either): it must not be dropped silently.
    with pytest.raises(ConfigError, match="'valset'; it accepts: student, trainset, teacher"):
        dx.BootstrapFewShot(metric=_metric).compile(dx.Predict("question -> answer"), trainset=TRAIN, valset=TRAIN)


def test_copro_constructor_names_a_misspelled_argument() -> None:
    with pytest.raises(ConfigError, match=r"COPRO got unknown argument\(s\) 'bredth'; it accepts: .*breadth"):
        dx.COPRO(metric=_metric, bredth=3)
