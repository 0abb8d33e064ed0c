"""Graph validation before a run: errors name the nodes at fault."""

from __future__ import annotations

from typing import Any

import pytest

import dspex.flows as fl
from dspex.errors import GraphError
from dspex.flows import ErrorPolicy
from dspex.flows._graph import NodeSpec, plan
from dspex.operators import MapOperator
from dspex.sinks import collect
from dspex.sources import iterable


def _module(sig: str) -> Any:
    import dspex as dx

    return dx.Predict(sig)


def _keyed_source(fields: Any) -> Any:
    src = iterable([{"question": "q"}])
    src.fields = fields  # type: ignore[attr-defined]
    return src


def test_no_source() -> None:
    with pytest.raises(GraphError, match="no source"):
        fl.Flow("empty").check()


def test_dangling_handle_named() -> None:
    flow = fl.Flow("dangle")
    src = flow.source([1])
    src.map(lambda r: r, name="lost")
    src.sink(collect())
    with pytest.raises(GraphError, match="'lost'") as info:
        flow.check()
    assert info.value.node == "lost"


def test_unused_branch_output_named() -> None:
    flow = fl.Flow("branch")
    yes, _no = flow.source([1]).branch(bool, name="split")
    yes.sink(collect())
    with pytest.raises(GraphError, match="'split' output 'falses'"):
        flow.check()


def test_cycle_detected_with_node_names() -> None:
    policy = ErrorPolicy()
    src = NodeSpec("src", "source", 0, policy, source=iterable([1]))
    a = NodeSpec("a", "map", 1, policy, op=MapOperator(lambda r: r))
    b = NodeSpec("b", "map", 2, policy, op=MapOperator(lambda r: r))
    sink = NodeSpec("out", "sink", 3, policy, sinks=(collect(),))
    a.inputs = [(src, 0), (b, 0)]
    b.inputs = [(a, 0)]
    sink.inputs = [(b, 0)]
    with pytest.raises(GraphError, match="cycle through node\\(s\\) 'a', 'b'"):
        plan([src, a, b, sink])


def test_duplicate_names() -> None:
    flow = fl.Flow("dup")
    src = flow.source([1])
    src.map(lambda r: r, name="m")
    with pytest.raises(GraphError, match="'m' already exists"):
        src.map(lambda r: r, name="m")


def test_module_input_fields_checked_against_known_schema() -> None:
    flow = fl.Flow("fields")
    flow.source(_keyed_source(["question"])).map(_module("question -> answer"), name="qa") \
        .map(_module("answer, context -> summary"), name="sum").sink(collect())
    with pytest.raises(GraphError, match="'sum' needs input field\\(s\\) 'context'") as info:
        flow.check()
    assert info.value.node == "sum"
    assert info.value.field == "context"


def test_field_type_mismatch_named() -> None:
    flow = fl.Flow("types")
    flow.source(_keyed_source({"question": str})).map(_module("question -> n: int")) \
        .map(_module("n: float, question -> ok: bool"), name="second") \
        .map(_module("n: bool -> z"), name="third").sink(collect())
    with pytest.raises(GraphError, match="'third' expects field 'n' of type bool"):
        flow.check()


def test_unknown_schema_is_not_checked() -> None:
    flow = fl.Flow("open")
    flow.source([{"question": "q"}]).map(_module("context -> answer")).sink(collect())
    flow.check()  # the iterable source has no declared fields


def test_validate_with_retries_needs_a_map_before_it() -> None:
    flow = fl.Flow("v")
    flow.source([1]).filter(bool, name="keep").validate(bool, "msg", retries=2, name="check") \
        .sink(collect())
    with pytest.raises(GraphError, match=r"'check' has retries=2.*'keep'"):
        flow.check()


def test_timeout_needs_a_map_before_it() -> None:
    flow = fl.Flow("t")
    flow.source([1]).tap(print, name="peek").timeout(1.0, name="late").sink(collect())
    with pytest.raises(GraphError, match=r"timeout node 'late'.*'peek'"):
        flow.check()


def test_validate_and_timeout_fuse_into_the_map() -> None:
    flow = fl.Flow("fuse")
    m = flow.source([1]).map(lambda r: r, name="m")
    m.validate(bool, "msg", retries=1, name="v").timeout(2.0, name="t").sink(collect())
    p = flow.check()
    assert {n.name: t.name for n, t in p.fused.items()} == {"v": "m", "t": "m"}
    assert [n.name for n in p.runnable()] == ["source-1", "m", "sink-5"]
