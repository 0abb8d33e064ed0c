"""The sync bridge tells the HTTP pool when a task may block its loop (``_util/_may_block.py``)."""

from __future__ import annotations

import contextvars

import anyio
import anyio.lowlevel

from dspex._util._may_block import allow_blocking, may_block
from dspex._util._sync import run_sync


def test_nothing_may_block_unless_told() -> None:
    assert may_block(object()) is False


def test_allow_blocking_applies_only_inside_the_given_context() -> None:
    loop = object()
    ctx = contextvars.copy_context()
    allow_blocking(ctx, lambda seen: seen is loop)
    assert ctx.run(may_block, loop) is True
    assert ctx.run(may_block, object()) is False  # the check sees which loop asks
    assert may_block(loop) is False  # the caller's own context is untouched


def test_a_sync_call_alone_on_the_main_loop_may_block_it_but_not_with_company() -> None:
    async def probe() -> tuple[bool, bool]:
        token = anyio.lowlevel.current_token().native_token
        alone = may_block(token)
        seen: list[bool] = []

        async def other() -> None:
            seen.append(may_block(token))

        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            await anyio.lowlevel.checkpoint()
            with_company = may_block(token)
        return alone, with_company and all(seen)

    assert run_sync(probe, backend="asyncio", reuse_loop=True) == (True, False)
    # a fresh loop (no reuse) is not the bridge's own: it never blocks
    assert run_sync(probe, backend="asyncio") == (False, False)
