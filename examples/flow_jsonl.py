"""A batch flow over JSONL on the local fake LM server, resumable by run id.

    python examples/flow_jsonl.py [questions.jsonl] [answers.jsonl]

Without arguments it writes a small questions file next to the answers. The
embedded FakeLLMServer is a real OpenAI-compatible HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import anyio

import dspex as dx
from dspex.testing import FakeLLMServer


async def main(questions: Path, answers: Path) -> None:
    async with FakeLLMServer(latency_ms=20, p_429=0.05, retry_after=0.01) as server:
        lm = dx.LM("openai/fake-model", api_base=server.url + "/v1", api_key="not-needed")
        qa = dx.ChainOfThought("question -> answer")
        flow = dx.Flow("qa-batch")
        (
            flow.source(dx.sources.jsonl(questions, id_field="id"))
            .map(qa, concurrency=32, ordered=False, on_error="dead_letter")
            .validate(lambda r: len(r["answer"].split()) <= 5, "answer too long", retries=1)
            .sink(dx.sinks.jsonl(answers))
        )
        report = await flow.run(lm=lm, run_id="example", store=answers.with_suffix(".store.sqlite"),
                                progress=False)
        print(f"in={report.items_in} out={report.items_out} failed={report.items_failed} "
              f"cost=${report.cost:.4f} in {report.duration_s:.2f}s -> {answers}")
        await lm.aclose()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    else:
        tmp = Path(tempfile.mkdtemp(prefix="dspex-example-"))
        src, dst = tmp / "questions.jsonl", tmp / "answers.jsonl"
        src.write_text("".join(json.dumps({"id": i, "question": f"What is {i} + {i}?"}) + "\n" for i in range(100)))
    anyio.run(main, src, dst)
