"""``scripts/dev.py test``: CI's full run lints first; ``--fast`` and focused runs stay short."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dspex_dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dev(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, list[Any]]:
    """The script with every process it would start recorded instead (lint clean, tests pass)."""
    module = _load_dev()
    calls: list[Any] = []

    def call(cmd: list[str], **_: Any) -> int:
        calls.append(cmd[1:] if cmd[1:3] == ["-m", "pytest"] else cmd)
        return 0

    monkeypatch.setattr(module.subprocess, "call", call)
    def real_tier(rest: list[str]) -> int:
        calls.append(["real", *rest])
        return 0

    monkeypatch.setattr(module, "run_real_tier", real_tier)
    monkeypatch.setattr(module, "ensure_chromium", lambda: calls.append(["chromium"]))
    monkeypatch.delenv("DSPEX_REAL_TESTS", raising=False)
    monkeypatch.delenv("DSPEX_BROWSER_TESTS", raising=False)
    return module, calls


def test_the_full_run_lints_then_runs_everything(dev: tuple[ModuleType, list[Any]]) -> None:
    module, calls = dev
    assert module.test([]) == 0
    ruff, mypy, chromium, pytest_run, real = calls
    assert ruff[1:] == ["check", "src", "tests", "benchmarks", "scripts", "examples"]
    assert Path(ruff[0]).name == "ruff"
    assert [Path(mypy[0]).name] == ["mypy"]  # its files and strictness come from pyproject.toml
    assert chromium == ["chromium"]
    assert pytest_run == ["-m", "pytest", "-q", "-m", "not real_lm"]
    assert real == ["real"]


def test_lint_findings_fail_the_run_before_any_test(dev: tuple[ModuleType, list[Any]],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    module, calls = dev
    def failing(cmd: list[str], **_: Any) -> int:
        calls.append(cmd)
        return 1

    monkeypatch.setattr(module.subprocess, "call", failing)
    assert module.test([]) == 1
    assert len(calls) == 2  # ruff and mypy both ran (every finding printed), nothing else
    assert "lint findings" in capsys.readouterr().err


def test_fast_skips_lint_slow_tests_and_the_real_tier(dev: tuple[ModuleType, list[Any]]) -> None:
    module, calls = dev
    assert module.test(["--fast"]) == 0
    assert calls == [["-m", "pytest", "-q", "-m", "not real_lm and not slow"]]


def test_a_focused_run_stays_focused(dev: tuple[ModuleType, list[Any]]) -> None:
    module, calls = dev
    assert module.test(["tests/cli", "-x"]) == 0
    assert calls == [["chromium"], ["-m", "pytest", "-q", "-m", "not real_lm", "tests/cli", "-x"]]
    calls.clear()
    assert module.test(["--fast", "-m", "slow", "tests/cli"]) == 0
    assert calls == [["-m", "pytest", "-q", "-m", "slow", "tests/cli"]]  # the user's marker wins


def test_ci_runs_exactly_the_readme_command() -> None:
    command = "python3 scripts/dev.py test"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == command
    assert f"{command}    #" in (ROOT / "README.md").read_text()


def test_lint_is_its_own_command(dev: tuple[ModuleType, list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    module, calls = dev
    monkeypatch.setattr(module, "ensure_venv", lambda: None)
    assert module.main(["lint"]) == 0
    assert [Path(c[0]).name for c in calls] == ["ruff", "mypy"]
