"""QA over a JSON-lines file: the YAML flow ``qa_jsonl.yaml`` run by ``dspex run``, offline.

    python examples/qa_jsonl.py [FLOW.yaml]

Starts the fake LM server on 127.0.0.1 with a responder that knows the answers
in ``data/questions.jsonl`` (a stand-in for a model), runs the flow through the
``dspex run`` command line exactly as a user would against a real model, then
checks the answers file against the expected answers.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from dspex.cli import main as dspex
from dspex.testing import FakeLLMServer

_QUESTION = re.compile(r"\[\[ ## question ## \]\]\s*\n(.*?)\s*(?:\n\n|$)", re.S)


def responder(expected: dict[str, str]) -> Any:
    """Answer a ChatAdapter prompt in its format, from the answer key."""

    def respond(request: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content", "")) for m in request["messages"])
        question = _QUESTION.findall(prompt)[-1].strip()
        answer = expected.get(question, "unknown")
        return f"[[ ## reasoning ## ]]\nI know this one.\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"

    return respond


def main(argv: list[str]) -> int:
    flow = Path(argv[0]) if argv else Path(__file__).with_name("qa_jsonl.yaml")
    rows = [json.loads(line) for line in (flow.parent / "data" / "questions.jsonl").read_text().splitlines()]
    with FakeLLMServer(responder=responder({r["question"]: r["expected"] for r in rows}), latency_ms=5) as server:
        try:
            dspex(["run", str(flow), "--lm", "openai/fake", "--api-base", f"{server.url}/v1", "--quiet"])
        except SystemExit as exc:  # click ends every command with SystemExit(code)
            if exc.code:
                return int(exc.code)
    answers = {r["id"]: r for r in map(json.loads, (flow.parent / "out" / "qa_answers.jsonl").read_text().splitlines())}
    right = sum(answers[r["id"]]["answer"] == r["expected"] for r in rows)
    print(f"{right}/{len(rows)} answers match the answer key")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
