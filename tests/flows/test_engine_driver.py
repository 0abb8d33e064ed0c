"""Flow.run reaches the non-local engines through the driver dspex.engines installs."""

from __future__ import annotations

import pytest

import dspex.engines
import dspex.flows as fl
from dspex.errors import ConfigError
from dspex.flows import _engines
from dspex.sinks import collect


def test_importing_the_engines_installs_their_driver() -> None:
    assert _engines.driver("processes") is dspex.engines.run_on_engine


async def test_a_named_engine_without_the_engines_package_says_what_to_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_engines, "_INSTALLED", [])
    out = collect()
    flow = fl.Flow("nowhere")
    flow.source([{"x": 1}]).sink(out)
    with pytest.raises(ConfigError, match=r"engine='processes' needs .*import dspex\.engines"):
        await flow.run(engine="processes", progress=False)
    assert out.items == []  # nothing ran
    report = await flow.run(progress=False)  # the local engine needs no driver
    assert report.items_out == 1


async def test_an_unknown_engine_name_is_named() -> None:
    flow = fl.Flow("unknown")
    flow.source([{"x": 1}]).sink(collect())
    with pytest.raises(ConfigError, match="unknown engine 'ray'"):
        await flow.run(engine="ray", progress=False)
