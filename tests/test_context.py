"""Settings: configure defaults, context overrides, isolation between tasks."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest

import dspex as dx
from dspex._context import get_setting, settings_snapshot
from dspex._util._sync import run_sync
from dspex.errors import ConfigError


def test_context_overrides_and_restores() -> None:
    assert get_setting("parse_retries") == 1
    with dx.context(parse_retries=3):
        assert get_setting("parse_retries") == 3
        with dx.context(parse_retries=0, max_trace_size=5):
            assert settings_snapshot()["parse_retries"] == 0
            assert get_setting("max_trace_size") == 5
        assert get_setting("parse_retries") == 3
    assert get_setting("parse_retries") == 1


def test_context_restores_on_error() -> None:
    with pytest.raises(RuntimeError), dx.context(parse_retries=9):
        raise RuntimeError("boom")
    assert get_setting("parse_retries") == 1


def test_unknown_setting_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting.*'nope'"), dx.context(nope=1):
        pass
    with pytest.raises(ConfigError, match="'lmm'"):
        dx.configure(lmm=1)


def test_configure_sets_defaults_under_context() -> None:
    before = get_setting("max_history_size")
    try:
        dx.configure(max_history_size=7)
        assert get_setting("max_history_size") == 7
        with dx.context(max_history_size=3):
            assert get_setting("max_history_size") == 3
    finally:
        dx.configure(max_history_size=before)


async def test_concurrent_tasks_see_their_own_context() -> None:
    seen: dict[str, list[object]] = {"a": [], "b": []}

    async def worker(name: str, value: int) -> None:
        with dx.context(parse_retries=value):
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
                seen[name].append(get_setting("parse_retries"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "a", 11)
        tg.start_soon(worker, "b", 22)
    assert seen == {"a": [11] * 5, "b": [22] * 5}
    assert get_setting("parse_retries") == 1


async def test_spawned_tasks_inherit_the_context() -> None:
    got: list[object] = []

    async def child() -> None:
        got.append(get_setting("parse_retries"))

    with dx.context(parse_retries=4):
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
    assert got == [4]


def test_configure_from_another_thread_is_allowed() -> None:
    before = get_setting("max_trace_size")
    errors: list[BaseException] = []

    def other() -> None:
        try:
            dx.configure(max_trace_size=42)
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    try:
        assert not errors
        assert get_setting("max_trace_size") == 42
    finally:
        dx.configure(max_trace_size=before)


def test_run_sync_carries_context_and_works_inside_a_loop() -> None:
    async def read() -> object:
        await anyio.lowlevel.checkpoint()
        return get_setting("parse_retries")

    with dx.context(parse_retries=5):
        assert run_sync(read) == 5

    async def outer() -> object:
        with dx.context(parse_retries=6):
            return run_sync(read)  # sync bridge called from inside a running loop

    assert anyio.run(outer) == 6
    assert anyio.run(outer, backend="trio") == 6
