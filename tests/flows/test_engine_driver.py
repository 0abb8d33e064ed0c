"""Flow.run reaches the non-local engines through the driver dspex.engines installs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import dspex.engines
import dspex.flows as fl
from dspex.errors import ConfigError
from dspex.flows import _engines
from dspex.sinks import collect


def test_importing_the_engines_installs_their_driver() -> None:
    assert _engines.driver("processes") is dspex.engines.run_on_engine


def test_a_named_engine_loads_the_engines_on_first_use_and_a_local_run_never_does() -> None:
    script = textwrap.dedent("""
        import sys
        import dspex as dx

        flow = dx.Flow("here")
        flow.source([{"id": i} for i in range(6)]).map(lambda r: {**r, "y": 2}).sink(dx.sinks.collect())
        flow.run_sync(progress=False)
        assert "dspex.engines" not in sys.modules, "a local run loaded the engines"
        report = flow.run_sync(engine="processes", workers=2, progress=False)
        assert report.items_out == 6, report
        print("engines loaded:", "dspex.engines" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "engines loaded: True" in done.stdout


async def test_a_driver_module_that_installs_nothing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_engines, "_INSTALLED", [])
    monkeypatch.setattr(_engines, "_DEFAULT_DRIVER", "dspex.flows._report")  # installs nothing
    out = collect()
    flow = fl.Flow("nowhere")
    flow.source([{"x": 1}]).sink(out)
    with pytest.raises(ConfigError, match=r"engine='processes': dspex\.flows\._report installed no driver"):
        await flow.run(engine="processes", progress=False)
    assert out.items == []  # nothing ran
    report = await flow.run(progress=False)  # the local engine needs no driver
    assert report.items_out == 1


async def test_an_unknown_engine_name_is_named() -> None:
    flow = fl.Flow("unknown")
    flow.source([{"x": 1}]).sink(collect())
    with pytest.raises(ConfigError, match="unknown engine 'ray'"):
        await flow.run(engine="ray", progress=False)
