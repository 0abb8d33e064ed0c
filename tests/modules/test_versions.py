"""Program versions in the run store: save with score, settings and parent; dx.load any version."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

import dspex as dx
from dspex.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

TRAIN = [dx.Example(question=q, answer=a).with_inputs("question")
         for q, a in [("sky", "blue"), ("grass", "green"), ("snow", "white")]]


async def test_versions_keep_score_settings_and_parent(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    base = dx.Predict("question -> answer")
    assert await dx.asave_version(base, "qa", store=path, score=10.0) == 1
    optimizer = dx.LabeledFewShot(k=2)
    compiled = await optimizer.acompile(base, trainset=TRAIN)
    assert compiled.dspex_version == ("qa", 1)  # inherited from the student: the parent
    assert await dx.asave_version(compiled, "qa", store=path, score=55.5, optimizer=optimizer) == 2
    async with dx.RunStore(path) as store:
        versions = await store.versions("qa")
        programs = await store.programs()
    assert [(v["version"], v["score"]) for v in versions] == [(1, 10.0), (2, 55.5)]
    assert versions[0]["meta"] == {}
    assert versions[1]["meta"] == {"optimizer": "LabeledFewShot", "settings": {"k": 2},
                                   "parent": {"name": "qa", "version": 1}}
    assert programs[0]["name"] == "qa"
    assert programs[0]["versions"] == 2
    assert programs[0]["best_score"] == 55.5


def test_load_restores_any_version(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    first = dx.Predict("question -> answer")
    dx.save_version(first, "qa", store=path)
    second = dx.LabeledFewShot(k=2).compile(first, trainset=TRAIN)
    second.signature = second.signature.with_instructions("Name the colour.")
    dx.save_version(second, "qa", store=path, score=1.0)
    latest = dx.load("qa", store=path)
    old = dx.load("qa", store=path, version=1)
    assert latest.signature.instructions == "Name the colour."
    assert len(latest.demos) == 2
    assert latest.dspex_version == ("qa", 2)
    assert old.dspex_version == ("qa", 1)
    assert old.demos == []
    with pytest.raises(ConfigError, match=r"no version 7; expected one of \[1, 2\]"):
        dx.load("qa", store=path, version=7)
    with pytest.raises(ConfigError, match="no program named 'nope'"):
        dx.load("nope", store=path)


def test_a_store_made_before_version_metadata_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE program_versions (name TEXT NOT NULL, version INTEGER NOT NULL, state TEXT "
                 "NOT NULL, score REAL, created REAL NOT NULL, PRIMARY KEY (name, version))")
    conn.close()
    dx.save_version(dx.Predict("question -> answer"), "qa", store=path, meta={"note": "hi"})
    assert dx.load("qa", store=path).dspex_version == ("qa", 1)
