"""An LM call in a flow leaves no cyclic garbage behind.

Objects in a reference cycle outlive their last use until the cyclic GC finds
them; at hundreds of calls in flight they are promoted to older generations
and every full collection walks them. Before this was checked, each request
left ~11 such objects (the httptools parser and the C parser holding its
bound-method callbacks): on one process at concurrency 256, dropping that
cycle took a ChainOfThought flow from 0.80-0.92 to 0.93-0.97 of a bare
client's throughput. What is left is per run (the graph, the task group),
not per item.
"""

from __future__ import annotations

import gc
import weakref
from collections import Counter

import dspex as dx
from dspex._http._h1 import HttptoolsResponseParser
from dspex.testing import FakeLLMServer

ITEMS = 300


def test_a_complete_response_frees_its_parser_without_the_gc() -> None:
    gc.disable()
    try:
        parser = HttptoolsResponseParser(head_only=False)
        parser.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi")
        assert parser.complete
        assert parser.take_body() == [b"hi"]
        ref = weakref.ref(parser)
        del parser
        assert ref() is None, "the response parser is still in a reference cycle"
    finally:
        gc.enable()


def test_bytes_after_a_complete_response_forbid_reuse() -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"
    later = HttptoolsResponseParser(head_only=False)
    later.feed(reply)
    assert later.keep_alive
    later.feed(b"HTTP/1.1 200 OK\r\n")  # the server sent more than was asked, later
    same = HttptoolsResponseParser(head_only=False)
    same.feed(reply + b"HTTP/1.1 200 OK\r\n")  # ... or in the same read
    for parser in (later, same):
        assert parser.complete
        assert parser.take_body() == [b"hi"]
        assert not parser.keep_alive


async def test_a_flow_of_lm_calls_leaves_under_one_garbage_object_per_item() -> None:
    async with FakeLLMServer() as srv:
        lm = dx.LM("openai/fake-model", api_base=srv.url + "/v1", api_key="sk-test-0000", cache=False)
        flow = dx.Flow("garbage")
        flow.source(dx.sources.iterable([{"question": f"q{i}"} for i in range(ITEMS)])).map(
            dx.ChainOfThought("question -> answer"), concurrency=16).sink(dx.sinks.collect())
        await flow.run(progress=False, lm=lm)  # warm: first-use caches, connections
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            report = await flow.run(progress=False, lm=lm)
            gc.collect()
            garbage = list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        await lm.aclose()
    assert report.items_out == ITEMS
    kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in garbage)
    assert len(garbage) / ITEMS < 1.0, f"{len(garbage) / ITEMS:.1f} cyclic objects per item: {kinds.most_common(8)}"
