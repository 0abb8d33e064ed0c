"""``dspex run FLOW.yaml``: report, resume, failure threshold, exit codes, progress lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from dspex.cli._app import cli
from dspex.testing import FakeLLMServer

if TYPE_CHECKING:
    from collections.abc import Iterator

FLOW = """
name: shout
sources:
  questions: {type: jsonl, path: q.jsonl, id_field: id}
nodes:
  answer:
    module: Predict
    signature: "question -> answer"
    concurrency: 4
    on_error: dead_letter
sinks:
  out: {type: jsonl, path: out.jsonl}
"""
_QUESTION = re.compile(r"\[\[ ## question ## \]\]\s*\n(.*?)\s*(?:\n\n|$)", re.S)


def _respond(request: dict[str, Any]) -> str:
    prompt = "\n".join(str(m.get("content", "")) for m in request["messages"])
    question = _QUESTION.findall(prompt)[-1]
    if "bad" in question:
        return "no fields here"  # unparseable: the item fails (dead letter)
    return f"[[ ## answer ## ]]\n{question.upper()}\n\n[[ ## completed ## ]]"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=_respond) as srv:
        yield srv


def _files(tmp_path: Path, questions: list[str]) -> Path:
    (tmp_path / "q.jsonl").write_text(
        "".join(json.dumps({"id": i, "question": q}) + "\n" for i, q in enumerate(questions)))
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    return flow


def invoke(server: FakeLLMServer | None, *args: str) -> Any:
    lm = ["--lm", "openai/fake", "--api-base", server.url + "/v1"] if server else []
    return CliRunner().invoke(cli, ["run", *args, *lm])


def test_run_prints_the_report_as_json(tmp_path: Path, server: FakeLLMServer) -> None:
    flow = _files(tmp_path, ["one", "two", "three"])
    result = invoke(server, str(flow), "--json", "--quiet", "--store", str(tmp_path / "s.sqlite"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["status"], report["items_in"], report["items_out"]) == ("completed", 3, 3)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["answer"] for r in rows) == ["ONE", "THREE", "TWO"]


def test_run_id_resumes_without_redoing_items(tmp_path: Path, server: FakeLLMServer) -> None:
    flow = _files(tmp_path, ["one", "two"])
    store = str(tmp_path / "s.sqlite")
    first = invoke(server, str(flow), "--run-id", "r1", "--json", "--quiet", "--store", store)
    second = invoke(server, str(flow), "--run-id", "r1", "--json", "--quiet", "--store", store)
    assert first.exit_code == second.exit_code == 0, second.output
    assert json.loads(first.stdout)["items_in"] == 2
    assert json.loads(second.stdout)["items_in"] == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(("rate", "code"), [("0.2", 1), ("0.5", 0)])
def test_exit_code_1_past_the_failure_threshold(tmp_path: Path, server: FakeLLMServer, rate: str,
                                                code: int) -> None:
    flow = _files(tmp_path, ["one", "bad one", "three"])
    result = invoke(server, str(flow), "--max-failure-rate", rate, "--quiet",
                    "--store", str(tmp_path / "s.sqlite"))
    assert result.exit_code == code, result.output
    status = "failed" if code else "completed"
    assert result.stdout.startswith(f"{status}: 2 out / 3 in, 1 failed")


def test_bad_flow_file_exits_2_naming_line_and_column(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.replace("concurrency: 4", "concurrency: lots"))
    result = invoke(None, str(flow))
    assert result.exit_code == 2
    assert f"{flow}:9:18: nodes.answer.concurrency:" in result.output
    assert "valid integer" in result.output


def test_bad_lm_exits_2(tmp_path: Path) -> None:
    flow = _files(tmp_path, ["one"])
    result = CliRunner().invoke(cli, ["run", str(flow), "--lm", "nosuch/model"])
    assert result.exit_code == 2
    assert "unknown provider 'nosuch'" in result.output


def test_no_lm_anywhere_exits_2_naming_the_node_before_running(tmp_path: Path) -> None:
    flow = _files(tmp_path, ["one", "two"])
    result = invoke(None, str(flow), "--store", str(tmp_path / "s.sqlite"))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: node 'answer': no LM configured for predictor 'self'")
    assert "--lm" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
    assert not (tmp_path / "s.sqlite").exists()


def test_a_node_lm_in_the_yaml_satisfies_the_pre_flight_check(tmp_path: Path, server: FakeLLMServer) -> None:
    flow = _files(tmp_path, ["one"])
    node_lm = f"lm: {{model: openai/fake, api_base: '{server.url}/v1', cache: false}}"
    flow.write_text(FLOW.replace("concurrency: 4", f"concurrency: 4\n    {node_lm}"))
    result = invoke(None, str(flow), "--json", "--quiet", "--store", str(tmp_path / "s.sqlite"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items_out"] == 1


def test_progress_lines_go_to_stderr_without_a_tty(tmp_path: Path, server: FakeLLMServer) -> None:
    flow = _files(tmp_path, ["one", "two"])
    result = invoke(server, str(flow), "--store", str(tmp_path / "s.sqlite"))
    assert result.exit_code == 0, result.output
    assert re.search(r"shout: 2 in, 2 out, [\d.,]+ items/s, \d+ in flight, 0 failed", result.stderr)
    quiet = invoke(server, str(flow), "--quiet", "--store", str(tmp_path / "s2.sqlite"))
    assert "items/s" not in quiet.stderr


def test_a_raising_node_fails_the_run_with_exit_1_and_a_partial_json_report(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    flow = _files(tmp_path, ["one", "bad one"])
    flow.write_text(FLOW.replace("on_error: dead_letter", "on_error: raise"))
    result = invoke(server, str(flow), "--json", "--quiet", "--store", str(tmp_path / "s.sqlite"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert json.loads(result.stdout)["status"] == "failed"


def test_run_takes_a_python_flow_file_too(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "import dspex as dx\n"
        "flow = dx.Flow('py')\n"
        "flow.source([{'n': 1}, {'n': 2}]).map(lambda r: {'n': r['n'] + 1}).sink(dx.sinks.collect())\n"
    )
    result = invoke(None, str(flow), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items_out"] == 2


@pytest.mark.slow
def test_run_on_the_processes_engine_writes_part_files_and_a_manifest(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    flow = _files(tmp_path, ["one", "two", "three", "four", "five", "six"])
    result = invoke(server, str(flow), "--json", "--quiet", "--store", str(tmp_path / "s.sqlite"),
                    "--engine", "processes", "--workers", "2", "--partitions", "3")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["status"], report["items_in"], report["items_out"]) == ("completed", 6, 6)
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    rows = [json.loads(line) for part in manifest["parts"]
            for line in Path(part["path"]).read_text().splitlines()]
    assert sorted(r["answer"] for r in rows) == ["FIVE", "FOUR", "ONE", "SIX", "THREE", "TWO"]


def test_engine_flags_that_do_not_fit_are_usage_errors(tmp_path: Path) -> None:
    flow = _files(tmp_path, ["one"])
    assert invoke(None, str(flow), "--address", "tcp://127.0.0.1:1").exit_code == 2
    assert invoke(None, str(flow), "--workers", "3").exit_code == 2
