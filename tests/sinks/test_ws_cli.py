"""``dspex serve`` and the demo flow behind ``dspex demo``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dspex.cli._demo import load_questions, run_demo_flow
from dspex.cli._serve import attach_websocket, serve_command
from dspex.events_schema import main as schema_main
from dspex.flows import Flow
from dspex.sinks import collect, websocket

FLOW_FILE = '''
import dspex as dx
from dspex.flows import Flow
from dspex.testing import ScriptedLM

lm = ScriptedLM([{"reasoning": "r", "answer": str(i)} for i in range(3)], stream_chunk_size=2)
flow = Flow("served")
flow.source([{"question": f"q{i}"} for i in range(3)]).map(dx.ChainOfThought("question -> answer"))
'''


def test_serve_runs_a_python_flow_with_a_live_page(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(FLOW_FILE)
    result = CliRunner().invoke(serve_command, [str(path), "--port", "0", "--token", "s3cret"])
    assert result.exit_code == 0, result.output
    assert "live page: http://127.0.0.1:" in result.output
    assert "completed: 3 out / 3 in" in result.output
    assert "s3cret" not in result.output  # the token is never printed


def test_serve_rejects_a_file_without_a_flow(tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    result = CliRunner().invoke(serve_command, [str(path)])
    assert result.exit_code == 2
    assert "must define `flow" in result.output


def test_attach_websocket_reuses_or_adds_a_sink() -> None:
    flow = Flow("f")
    out = collect()
    flow.source([1]).map(lambda r: {"x": r}).sink(out)
    live = attach_websocket(flow, port=0)
    sink_node = next(n for n in flow.nodes if n.kind == "sink")
    assert sink_node.sinks == (out, live)
    assert attach_websocket(flow) is live
    flow2 = Flow("g")
    mine = websocket()
    flow2.source([1]).sink(mine)
    assert attach_websocket(flow2) is mine


def test_demo_flow_answers_the_bundled_questions(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    assert len(load_questions()) == 300
    assert run_demo_flow(serve=False, n=12, out_path=out) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12
    assert all(r["answer"] == r["expected"] for r in rows)
    assert {r["id"] for r in rows} == {q["id"] for q in load_questions(12)}


def test_shipped_schema_matches_the_models(tmp_path: Path) -> None:
    fresh = tmp_path / "schema.json"
    assert schema_main([str(fresh)]) == 0
    shipped = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"
    assert json.loads(fresh.read_text()) == json.loads(shipped.read_text())
