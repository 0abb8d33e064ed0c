"""YAML flows: broken files name file:line:column; YAML and Python build the same graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dspex as dx
from dspex.errors import FlowSpecError
from dspex.flows import retry
from dspex.flows._yaml import load_yaml, parse_yaml
from dspex.operators import MapOperator
from dspex.testing import ScriptedLM

CORPUS = Path(__file__).parent / "yaml_corpus"


def _expected(path: Path) -> tuple[int, int, str]:
    """Each broken file's first line: ``# expect LINE:COLUMN substring``."""
    head = path.read_text().splitlines()[0].removeprefix("# expect ").strip()
    where, _, needle = head.partition(" ")
    line, column = where.split(":")
    return int(line), int(column), needle


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_file_names_file_line_column_and_what_was_expected(path: Path) -> None:
    line, column, needle = _expected(path)
    with pytest.raises(FlowSpecError) as info:
        load_yaml(path)
    err = info.value
    assert str(err).startswith(f"{path}:{line}:{column}: "), str(err)
    assert needle in str(err)
    assert (err.path, err.line, err.extra["column"]) == (str(path), line, column)


def test_the_corpus_is_not_empty() -> None:
    assert len(list(CORPUS.glob("*.yaml"))) >= 12


def test_unreadable_file_is_a_flow_spec_error(tmp_path: Path) -> None:
    with pytest.raises(FlowSpecError, match="cannot read flow file"):
        load_yaml(tmp_path / "missing.yaml")


def _shape(flow: dx.Flow) -> list[tuple[Any, ...]]:
    """Everything that makes two graphs the same, without object identities."""
    rows = []
    for node in flow.nodes:
        op = node.op
        module = op.call.fn if op is not None and hasattr(op, "call") else None
        sig = getattr(getattr(module, "predict", module), "signature", None) if module else None
        rows.append((
            node.name, node.kind, [(p.name, port) for p, port in node.inputs], str(node.policy),
            getattr(op, "concurrency", None), getattr(op, "ordered", None), type(module).__name__,
            sig.signature if sig is not None else None,
            sig.instructions if sig is not None else None,
            type(node.source).__name__ if node.source else None,
            [type(s).__name__ for s in node.sinks],
        ))
    return rows


YAML_QA = """
name: qa
sources:
  questions: {type: jsonl, path: q.jsonl, id_field: id}
nodes:
  answer:
    module: ChainOfThought
    signature: "question -> answer"
    instructions: Answer in one word.
    concurrency: 8
    ordered: false
    on_error: {retry: 2, then: dead_letter}
  short:
    module: Predict
    signature: "answer -> summary"
sinks:
  out: {type: jsonl, path: out.jsonl}
  screen: {type: stdout}
edges:
  - questions -> answer -> short -> out
  - answer -> screen
"""


def _python_qa(base: Path) -> dx.Flow:
    flow = dx.Flow("qa")
    sig = dx.make_signature("question -> answer", "Answer in one word.")
    answer = flow.source(dx.sources.jsonl(base / "q.jsonl", id_field="id"), name="questions").map(
        dx.ChainOfThought(sig), concurrency=8, ordered=False,
        on_error=retry(2, then="dead_letter"), name="answer")
    answer.map(dx.Predict("answer -> summary"), name="short").sink(dx.sinks.jsonl(base / "out.jsonl"),
                                                                    name="out")
    answer.sink(dx.sinks.stdout(), name="screen")
    return flow


def test_python_and_yaml_build_the_same_graph(tmp_path: Path) -> None:
    from_yaml = parse_yaml(YAML_QA, "qa.yaml", base=tmp_path).flow
    assert _shape(from_yaml) == _shape(_python_qa(tmp_path))
    assert _shape(from_yaml)[1][3] == "retry(2, then='dead_letter')"


def test_default_edges_chain_source_nodes_and_sinks() -> None:
    spec = """
sources: {s: {type: records, records: [{question: q}]}}
nodes:
  a: {module: Predict, signature: "question -> answer"}
sinks: {x: {type: stdout}, y: {type: stdout}}
"""
    flow = parse_yaml(spec).flow
    assert [(n.name, [p.name for p, _ in n.inputs]) for n in flow.nodes] == [
        ("s", []), ("a", ["s"]), ("x", ["a"]), ("y", ["a"])]


def test_yaml_flow_runs_with_settings_and_function_nodes(tmp_path: Path) -> None:
    src = tmp_path / "q.jsonl"
    src.write_text("".join(json.dumps({"id": i, "question": f"q{i}"}) + "\n" for i in range(3)))
    spec = f"""
name: upper
settings: {{max_failure_rate: 0.5, adapter: chat}}
sources: {{q: {{type: jsonl, path: {src.name}, id_field: id}}}}
nodes:
  answer: {{module: Predict, signature: "question -> answer", adapter: json}}
  shout: {{function: "yaml_helpers:shout"}}
sinks: {{out: {{type: jsonl, path: out.jsonl, mode: w}}}}
dead_letter: {{type: jsonl, path: dead.jsonl}}
"""
    loaded = parse_yaml(spec, "upper.yaml", base=tmp_path)
    assert loaded.run_options == {"max_failure_rate": 0.5}
    assert type(loaded.settings["adapter"]).__name__ == "ChatAdapter"
    lm = ScriptedLM(['{"answer": "yes"}'] * 3)  # JSON: the node's adapter, not the flow's chat
    report = loaded.flow.run_sync(progress=False, lm=lm, **loaded.run_options)
    assert report.status == "completed"
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["YES", "YES", "YES"]
    assert "JSON" in lm.history[0]["messages"][0]["content"]


def test_react_node_resolves_tools_by_import_path() -> None:
    spec = """
sources: {s: {type: records, records: [{question: q}]}}
nodes:
  agent:
    module: ReAct
    signature: "question -> answer"
    tools: ["yaml_helpers:add", "yaml_helpers.lookup"]
    max_iters: 3
sinks: {x: {type: stdout}}
"""
    op = parse_yaml(spec).flow.nodes[1].op
    assert isinstance(op, MapOperator)
    agent = op.call.fn
    assert sorted(agent.tools) == ["add", "finish", "lookup"]
    assert agent.max_iters == 3
