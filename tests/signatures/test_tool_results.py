"""ToolCallResults and ToolCalls.tool_call_results (DSPy 3.4.1's history replay types)."""

from __future__ import annotations

import pytest

import dspex as dx
from dspex.adapters._fmt import json_schema

CALLS = dx.ToolCalls.from_dict_list([{"name": "search", "args": {"q": "x"}, "id": "c1"}])


def test_results_pair_calls_with_values_and_check_lengths() -> None:
    results = dx.ToolCallResults.from_tool_calls_and_values(CALLS, ["found"])
    assert results.tool_call_results[0].model_dump() == {"call_id": "c1", "name": "search", "value": "found",
                                                         "is_error": False}
    with pytest.raises(ValueError, match="same length"):
        dx.ToolCallResults.from_tool_calls_and_values(CALLS, ["a", "b"])
    with pytest.raises(ValueError, match="is_errors"):
        dx.ToolCallResults.from_tool_calls_and_values(CALLS, ["a"], [True, False])


@pytest.mark.parametrize("raw", [[{"name": "search", "value": 1}], {"tool_call_results": [{"name": "search", "value": 1}]},
                                 {"name": "search", "value": 1}])
def test_results_accept_dspys_shapes(raw: object) -> None:
    assert dx.ToolCallResults.model_validate(raw).tool_call_results[0].value == 1


def test_results_reject_other_values() -> None:
    with pytest.raises(ValueError, match="ToolCallResults expects"):
        dx.ToolCallResults.model_validate("nothing")


def test_tool_calls_keep_results_in_dumps_but_not_in_the_schema() -> None:
    results = dx.ToolCallResults.from_tool_calls_and_values(CALLS, ["found"])
    calls = dx.ToolCalls(tool_calls=CALLS.tool_calls, tool_call_results=results)
    dumped = calls.model_dump()
    assert dumped["tool_call_results"]["tool_call_results"][0]["value"] == "found"
    again = dx.ToolCalls.model_validate(dumped)
    assert dx.ToolCallResults.model_validate(again.tool_call_results) == results
    assert "tool_call_results" not in json_schema(dx.ToolCalls).get("properties", {})
    assert CALLS.model_dump() == {"tool_calls": [{"name": "search", "args": {"q": "x"}}]}
