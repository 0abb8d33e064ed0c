"""run_sync's routes: the main thread's own loop, the loop thread, and from inside a loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import anyio
import anyio.lowlevel
import pytest

import dspex as dx
from dspex._util import _aio_runner
from dspex._util._sync import run_sync
from dspex.testing import FakeLLMServer

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def _where() -> tuple[str, str]:
    await anyio.lowlevel.checkpoint()
    return threading.current_thread().name, VAR.get()


def test_main_thread_sync_calls_run_on_its_own_persistent_loop() -> None:
    token = VAR.set("caller")
    try:
        first = run_sync(_where, reuse_loop=True)
        loops = {run_sync(_loop_id, reuse_loop=True) for _ in range(3)}
    finally:
        VAR.reset(token)
    assert first == (threading.main_thread().name, "caller")  # no hand-off, context carried
    assert len(loops) == 1  # the same loop every call


async def _loop_id() -> int:
    return id(asyncio.get_running_loop())


def test_worker_threads_hand_off_to_the_loop_thread() -> None:
    box: dict[str, object] = {}

    def worker() -> None:
        box["where"] = run_sync(_where, reuse_loop=True)

    thread = threading.Thread(target=worker, name="user-worker")
    thread.start()
    thread.join()
    assert box["where"] == ("dspex-loop-asyncio", "unset")


def test_trio_backend_uses_the_loop_thread() -> None:
    name, _ = run_sync(_where, backend="trio", reuse_loop=True)
    assert name == "dspex-loop-trio"


def test_sync_module_calls_keep_one_connection_alive() -> None:
    with FakeLLMServer() as server:
        lm = dx.LM("openai/fake", api_base=server.url + "/v1", api_key="sk-test", cache=False)
        predict = dx.Predict("question -> answer")
        answers = [predict(question=f"q{i}", lm=lm).answer for i in range(5)]
        assert all(answers)
        assert server.stats.requests == 5
        assert server.stats.connections_opened == 1  # keep-alive survived between sync calls


def test_a_sync_call_inside_a_main_loop_call_does_not_deadlock() -> None:
    async def outer() -> tuple[str, str]:
        return run_sync(_where, reuse_loop=True)  # nested: this thread's loop is busy

    name, _ = run_sync(outer, reuse_loop=True)
    assert name != threading.main_thread().name


def test_ctrl_c_cancels_the_call_and_runs_its_cleanup() -> None:
    cleaned = threading.Event()

    async def slow() -> None:
        asyncio.get_running_loop().call_later(0.01, _interrupt)
        try:
            await anyio.sleep(30)
        finally:
            cleaned.set()

    with pytest.raises(KeyboardInterrupt):
        run_sync(slow, reuse_loop=True)
    assert cleaned.is_set()
    assert run_sync(_where, reuse_loop=True)[0] == threading.main_thread().name  # loop still usable


def _interrupt() -> None:
    raise KeyboardInterrupt


def test_errors_propagate_unchanged() -> None:
    async def boom() -> None:
        raise dx.errors.InputError("bad input", field="question")

    with pytest.raises(dx.errors.InputError, match="bad input"):
        run_sync(boom, reuse_loop=True)


def test_only_the_main_thread_may_use_the_main_loop() -> None:
    assert _aio_runner.usable()
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(_aio_runner.usable()))
    thread.start()
    thread.join()
    assert seen == [False]
