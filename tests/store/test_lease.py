"""One live runner per run_id (issue 12, defect 5): the run store's lease."""

from __future__ import annotations

import signal
import socket
import sqlite3
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import dspex.flows as fl
from dspex.errors import FlowFailed, RunLeaseError, StoreError
from dspex.flows._runner import Runner, RunOptions
from dspex.sinks import jsonl
from dspex.sources import iterable
from dspex.store import RunStore

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.reliability


async def test_second_owner_is_refused_until_the_lease_expires(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "s.sqlite") as store:
        first = await store.acquire_lease("r", "owner-a", ttl_s=30, now=1000.0)
        assert first.pass_no == 1
        assert not first.took_over
        with pytest.raises(RunLeaseError, match=r"run 'r' is already running.*owner-a") as info:
            await store.acquire_lease("r", "owner-b", ttl_s=30, now=1020.0)
        assert isinstance(info.value, StoreError)
        assert info.value.extra["owner"] == "owner-a"
        second = await store.acquire_lease("r", "owner-b", ttl_s=30, now=1031.0)  # expired
        assert second.took_over
        assert second.pass_no == 2
        with pytest.raises(RunLeaseError, match="taken over"):
            await store.renew_lease(first, ttl_s=30, now=1032.0)
        await store.release_lease(first)  # a no-op for the old owner
        await store.release_lease(second)
        third = await store.acquire_lease("r", "owner-c", ttl_s=30, now=1033.0)
        assert not third.took_over
        assert third.pass_no == 3


async def test_live_lease_on_another_host_is_refused_until_expiry(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with RunStore(path) as store:
        await store.acquire_lease("r", "other", ttl_s=30, now=0.0)
    with sqlite3.connect(path) as conn:  # make it another host's, with a pid unknown here
        conn.execute("UPDATE leases SET host='elsewhere', pid=999999999")
    async with RunStore(path) as store:
        with pytest.raises(RunLeaseError, match="elsewhere pid 999999999"):
            await store.acquire_lease("r", "me", ttl_s=30, now=10.0)
        assert (await store.acquire_lease("r", "me", ttl_s=30, now=31.0)).took_over


async def test_two_concurrent_runs_with_one_run_id(tmp_path: Path) -> None:
    out, store = tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    gate = anyio.Event()
    started = anyio.Event()

    async def slow(r: dict[str, int]) -> dict[str, int]:
        started.set()
        await gate.wait()
        return r

    def flow_of(fn: Any) -> fl.Flow:
        flow = fl.Flow("twice")
        flow.source(iterable([{"id": i} for i in range(200)], id_field="id")).map(fn).sink(jsonl(out))
        return flow

    reports: list[Any] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            async def first() -> None:
                reports.append(await flow_of(slow).run(run_id="same", store=store, progress=False))

            tg.start_soon(first)
            await started.wait()
            with pytest.raises(RunLeaseError, match="run 'same' is already running"):
                await flow_of(slow).run(run_id="same", store=store, progress=False)
            other = await flow_of(lambda r: r).run(run_id="other", store=tmp_path / "o.sqlite",
                                                   progress=False)
            assert other.status == "completed"  # another run id is not blocked
            gate.set()
    assert reports[0].status == "completed"
    lines = out.read_text().splitlines()
    assert len(lines) == 400  # 200 from "same" once, 200 from "other"; never 600
    again = await flow_of(slow).run(run_id="same", store=store, progress=False)
    assert again.resumed
    assert again.items_in == 0


CHILD = textwrap.dedent("""
    import sys, anyio
    from dspex.store import RunStore

    async def main(path):
        async with RunStore(path) as store:
            lease = await store.acquire_lease("k9", "child")
            print(lease.pass_no, flush=True)
            await anyio.sleep_forever()

    anyio.run(main, sys.argv[1])
""")


async def test_kill_9_runner_lease_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with anyio.fail_after(60):
        async with await anyio.open_process([sys.executable, str(script), str(path)]) as proc:
            assert proc.stdout is not None
            assert (await proc.stdout.receive()).strip() == b"1"
            async with RunStore(path) as store:
                with pytest.raises(RunLeaseError, match=f"owner child on {socket.gethostname()}/pidns"):
                    await store.acquire_lease("k9", "me")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    async with RunStore(path) as store:  # same host, pid gone: taken over at once
        lease = await store.acquire_lease("k9", "me")
    assert lease.took_over
    assert lease.pass_no == 2


async def test_runner_that_lost_its_lease_fails_without_committing(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    started = anyio.Event()

    async def hang(r: dict[str, int]) -> dict[str, int]:
        if r["id"] == 5:
            started.set()
            await anyio.sleep_forever()
        return r

    flow = fl.Flow("lost")
    flow.source(iterable([{"id": i} for i in range(10)], id_field="id")).map(hang) \
        .sink(jsonl(tmp_path / "o.jsonl"))
    options = RunOptions(run_id="l", store=store, progress=False, lease_ttl_s=0.3,
                         checkpoint_interval_s=3600)
    runner = Runner(flow.name, flow.check(), None, options)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            async def run() -> None:
                with pytest.raises(FlowFailed, match="taken over"):
                    await runner.run()

            tg.start_soon(run)
            await started.wait()
            async with RunStore(store) as rs:  # a thief whose clock says the lease expired
                thief = await rs.acquire_lease("l", "thief", now=time.time() + 3600)
    assert thief.took_over
    async with RunStore(store) as rs:
        checkpoint = await rs.load_checkpoint("l")
    assert checkpoint is not None
    assert checkpoint.done == set()


async def test_a_corrupt_store_still_fails_the_run_as_flow_failed(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not a database, just some text" * 100)
    flow = fl.Flow("corrupt")
    flow.source(iterable([{"id": 1}], id_field="id")).sink(jsonl(tmp_path / "o.jsonl"))
    with pytest.raises(FlowFailed, match="corrupt or not a dspex run store") as info:
        await flow.run(run_id="c", store=path, progress=False)
    assert isinstance(info.value.__cause__, StoreError)
    assert not (tmp_path / "o.jsonl").exists()  # no sink was opened
