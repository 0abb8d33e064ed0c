"""Retrieval-augmented QA: a BM25 retriever over a bundled corpus, then ChainOfThought, offline.

    pip install 'dspex[rag]'          # bm25s, a small sparse BM25 library
    python examples/rag_offline.py

The flow reads ``data/rag_questions.jsonl``, retrieves the top passages of
``data/corpus.jsonl`` for each question with ``bm25s`` (a real retriever: the
index is built once, queries run in a worker thread), and answers with
``ChainOfThought("context: list[str], question -> answer")``. The model is the
fake LM server with a responder that *reads* the first retrieved passage (it
answers with what follows the passage's last " is "), so every answer is right
exactly when retrieval ranked the right passage first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import bm25s

import dspex as dx
from dspex.testing import FakeLLMServer

DATA = Path(__file__).with_name("data")
_CONTEXT = re.compile(r"\[\[ ## context ## \]\]\s*\n(.*?)\n\n\[\[ ## ", re.S)


class BM25Retriever:
    """Top-``k`` passages of a corpus for a question (bm25s, English stopwords)."""

    def __init__(self, passages: list[dict[str, str]], k: int = 3) -> None:
        self.passages = passages
        self.k = k
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize([p["text"] for p in passages], stopwords="en", show_progress=False),
                         show_progress=False)

    def search(self, query: str) -> list[dict[str, str]]:
        """Return the best ``k`` passages for ``query``, best first."""
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        hits, _scores = self.index.retrieve(tokens, k=self.k, show_progress=False)
        return [self.passages[int(i)] for i in hits[0]]

    async def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add ``context`` (passage texts) and ``sources`` (their ids) to a record."""
        found = await anyio.to_thread.run_sync(self.search, record["question"])
        return {**record, "context": [p["text"] for p in found], "sources": [p["id"] for p in found]}


def reader(request: dict[str, Any]) -> str:
    """A stand-in model: answer from the first passage of the prompt's context."""
    prompt = "\n".join(str(m.get("content", "")) for m in request["messages"])
    context = json.loads(_CONTEXT.findall(prompt)[-1])
    first = context[0].rstrip(".")
    answer = first.rsplit(" is ", 1)[-1]
    return (f"[[ ## reasoning ## ]]\nThe first passage says: {context[0]}\n\n"
            f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def main() -> None:
    retriever = BM25Retriever(_jsonl(DATA / "corpus.jsonl"))
    answers = dx.sinks.collect()
    flow = dx.Flow("rag")
    (flow.source(dx.sources.jsonl(DATA / "rag_questions.jsonl", id_field="id"))
         .map(retriever, concurrency=4, name="retrieve")
         .map(dx.ChainOfThought("context: list[str], question -> answer"), concurrency=4, name="answer")
         .sink(answers))
    async with FakeLLMServer(responder=reader, latency_ms=5) as server:
        lm = dx.LM("openai/fake-reader", api_base=f"{server.url}/v1", api_key="offline", cache=False)
        report = await flow.run(lm=lm, progress=False)
        await lm.aclose()
    right = 0
    for row in sorted(answers.items, key=lambda r: r["id"]):
        right += row["answer"] == row["expected"]
        print(f"{row['question']} -> {row['answer']}  [{row['sources'][0]}]")
    print(f"{right}/{report.items_out} right; {report.status}")


if __name__ == "__main__":
    anyio.run(main)
