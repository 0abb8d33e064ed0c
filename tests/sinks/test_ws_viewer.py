"""The WebSocket sink waits for a first viewer and lingers for it; ``dspex serve`` exposes both."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from click.testing import CliRunner

import dspex as dx
from dspex._ws._conn import open_connection
from dspex.cli._serve import serve_command
from dspex.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "viewer-token-0123"


async def _watch(live: Any, seen: list[dict[str, Any]], stay_s: float = 0.0) -> None:
    """Connect once the sink serves; read until run_done, stay a while, then leave."""
    await live.started.wait()
    conn = await open_connection(live.url, token=TOKEN)
    try:
        while True:
            text = await conn.recv()
            assert text is not None, "closed before run_done"
            seen.append(json.loads(text))
            if seen[-1]["type"] == "run_done":
                break
        await anyio.sleep(stay_s)  # a viewer looking at the finished run
    finally:
        await conn.aclose()


@pytest.mark.anyio
async def test_sources_wait_for_the_first_viewer_who_sees_every_record() -> None:
    live = dx.sinks.websocket(token=TOKEN, replay=0, metrics_interval=None, wait_for_client_s=30)
    flow = dx.Flow("watched")
    flow.source([{"n": i} for i in range(5)]).map(lambda r: {"n": r["n"] * 2}).sink(live)
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(20):  # far below wait_for_client_s: the viewer released the sources
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, live, seen)
            report = await flow.run(progress=False)
    records = [m["data"]["n"] for m in seen if m["type"] == "record"]
    assert records == [0, 2, 4, 6, 8]  # replay=0: only a viewer there from the start has them all
    assert report.items_out == 5
    assert live.waited_s > 0


@pytest.mark.anyio
async def test_linger_keeps_serving_until_the_viewer_leaves() -> None:
    live = dx.sinks.websocket(token=TOKEN, metrics_interval=None, wait_for_client_s=30, linger_s=60)
    flow = dx.Flow("lingering")
    flow.source([1, 2]).map(lambda r: {"n": r}).sink(live)
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(20):  # far below linger_s: the sink closed because the viewer left
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, live, seen, 0.5)
            await flow.run(progress=False, sink_timeout_s=90)
    assert seen[-1]["type"] == "run_done"
    assert live.lingered_s >= 0.5  # it served the page while the viewer stayed


@pytest.mark.anyio
async def test_linger_without_a_viewer_ends_promptly() -> None:
    live = dx.sinks.websocket(metrics_interval=None, linger_s=60)
    flow = dx.Flow("alone")
    flow.source([1]).map(lambda r: {"n": r}).sink(live)
    with anyio.fail_after(20):
        await flow.run(progress=False, sink_timeout_s=90)
    assert live.lingered_s < 60


@pytest.mark.parametrize("option", ["wait_for_client_s", "linger_s"])
def test_negative_waits_are_refused(option: str) -> None:
    with pytest.raises(ConfigError, match=f"{option} must be a number of seconds >= 0, got -1"):
        dx.sinks.websocket(**{option: -1})


def test_serve_runs_a_yaml_flow(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("""
name: served-yaml
sources: {numbers: {type: records, records: [{n: 1}, {n: 2}]}}
nodes: {copy: {function: "builtins:dict"}}
sinks: {out: {type: jsonl, path: out.jsonl, mode: w}}
""")
    result = CliRunner().invoke(serve_command, [str(flow), "--port", "0", "--linger", "0", "--no-auth"])
    assert result.exit_code == 0, result.output
    assert "completed: 2 out / 2 in" in result.output
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [{"n": 1}, {"n": 2}]


def test_serve_reports_a_broken_yaml_flow_with_its_position(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("sources: {numbers: {type: records, records: []}}\nsinks: {out: {type: nope}}\n")
    result = CliRunner().invoke(serve_command, [str(flow)])
    assert result.exit_code == 2
    assert f"{flow}:2:21: sinks.out.type:" in result.output
