"""ReAct: prompts byte-identical to DSPy 3.4.1, DSPy's loop, and dspex's tool-running policy."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from _golden import load_module

import dspex as dx
from dspex.errors import ContextWindowExceededError, ParseError, ToolError
from dspex.events import PredictionDone, ToolCall, ToolResult, event_from_wire
from dspex.testing import ScriptedLM

GOLDEN = Path(__file__).resolve().parents[1] / "adapters" / "golden"


react_cases = load_module(GOLDEN / "react_cases.py", "dspex_golden_react_cases")
GOLDEN_REACT = json.loads((GOLDEN / "react.json").read_text())


def _agent(case: dict[str, Any]) -> dx.ReAct:
    sig = react_cases.SIGNATURES[case["signature"]](dx)
    tools = [react_cases.TOOLS[name] for name in case["tools"]]
    return dx.ReAct(sig, tools=tools, max_iters=case.get("max_iters", 20))


RUNS = {key: (case, kind) for key, case, kind in react_cases.runs()}


@pytest.mark.parametrize("name", sorted(RUNS))
async def test_prompts_and_trajectory_match_dspy(name: str) -> None:
    case, kind = RUNS[name]
    expected = GOLDEN_REACT[name]
    lm = ScriptedLM(case["answers"], adapter=kind)
    adapter = dx.JSONAdapter() if kind == "json" else dx.ChatAdapter()
    with dx.context(adapter=adapter):
        pred = await _agent(case).acall(**case["inputs"], lm=lm)
    calls = [entry["messages"] for entry in lm.history]
    assert len(calls) == len(expected["calls"])
    for got, want in zip(calls, expected["calls"], strict=True):
        assert got == want
    got_traj = {k: {"type": type(v).__name__, "repr": repr(v)} for k, v in pred.trajectory.items()}
    assert got_traj == expected["trajectory"]
    for key, want in expected["outputs"].items():
        assert repr(str(pred[key]) if key == "reasoning" else pred[key]) == want["repr"]


def test_sync_call_matches_too() -> None:
    case = react_cases.CASES["weather_two_steps"]
    lm = ScriptedLM(case["answers"])
    pred = _agent(case)(**case["inputs"], lm=lm)
    assert [e["messages"] for e in lm.history] == GOLDEN_REACT["weather_two_steps"]["calls"]
    assert pred.answer == "Sunny, 21 C."


def _steps(*steps: tuple[str, Any], final: dict[str, Any] | None = None) -> list[Any]:
    answers: list[Any] = [
        {"next_thought": f"step {i}", "next_tool_name": name, "next_tool_args": args}
        for i, (name, args) in enumerate(steps)
    ]
    answers.append({"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}})
    answers.append(final or {"reasoning": "r", "answer": "ok"})
    return answers


def boom(x: int) -> int:
    """Always fails."""
    raise RuntimeError(f"boom {x}")


async def slow(x: int) -> int:
    """Takes too long."""
    await anyio.sleep(30)
    return x


def double(x: int) -> int:
    """Double x."""
    return 2 * x


async def test_tool_exception_becomes_observation_and_run_continues() -> None:
    lm = ScriptedLM(_steps(("boom", {"x": 3}), ("double", {"x": 4})))
    pred = await dx.ReAct("question -> answer", tools=[boom, double]).acall(question="q", lm=lm)
    obs = pred.trajectory["observation_0"]
    assert obs.startswith("Execution error in boom: \nTraceback (most recent call last):")
    assert obs.endswith("RuntimeError: boom 3")
    assert pred.trajectory["observation_1"] == 8
    assert pred.answer == "ok"


async def test_tool_timeout_becomes_observation() -> None:
    tool = dx.Tool(slow, timeout=0.05)
    lm = ScriptedLM(_steps(("slow", {"x": 1}), ("double", {"x": 2})))
    with anyio.fail_after(10):
        pred = await dx.ReAct("question -> answer", tools=[tool, double]).acall(question="q", lm=lm)
    obs = pred.trajectory["observation_0"]
    assert obs.startswith("Execution error in slow: ")
    assert "timed out after 0.05 s" in obs
    assert pred.trajectory["observation_1"] == 4


async def test_bad_arguments_become_observation() -> None:
    lm = ScriptedLM(_steps(("double", {"x": "not a number"}), ("double", {"y": 1}), ("double", {"x": 5})))
    pred = await dx.ReAct("question -> answer", tools=[double]).acall(question="q", lm=lm)
    assert "ToolError: tool 'double': argument 'x' is invalid" in pred.trajectory["observation_0"]
    assert "unknown argument 'y'" in pred.trajectory["observation_1"]
    assert pred.trajectory["observation_2"] == 10
    assert pred.answer == "ok"


async def test_unknown_tool_name_becomes_observation_listing_valid_names() -> None:
    bad = {"next_thought": "hmm", "next_tool_name": "rm_rf", "next_tool_args": {"path": "/"}}
    # The predictor retries once with feedback and once with the JSON fallback before giving up.
    lm = ScriptedLM([bad, bad, bad, *_steps(("double", {"x": 1}))])
    pred = await dx.ReAct("question -> answer", tools=[double]).acall(question="q", lm=lm)
    assert pred.trajectory["tool_name_0"] == "rm_rf"
    obs = pred.trajectory["observation_0"]
    assert obs.startswith("Execution error in rm_rf: ")
    assert "expected one of: double, finish" in obs
    assert pred.trajectory["observation_1"] == 2
    assert pred.answer == "ok"
    feedback = lm.history[1]["messages"][-1]["content"]
    assert "next_tool_name" in feedback
    assert "double" in feedback


async def test_unparseable_reply_raises_parse_error() -> None:
    lm = ScriptedLM(["garbage", "garbage", "garbage"])
    with pytest.raises(ParseError):
        await dx.ReAct("question -> answer", tools=[double]).acall(question="q", lm=lm)


async def test_only_registered_tools_run() -> None:
    ran: list[str] = []

    def secret() -> str:
        ran.append("secret")
        return "leaked"

    lm = ScriptedLM([{"next_thought": "t", "next_tool_name": "secret", "next_tool_args": {}}] * 3
                    + _steps())
    agent = dx.ReAct("question -> answer", tools=[double])
    pred = await agent.acall(question="q", lm=lm)
    assert ran == []
    assert "unknown tool 'secret'" in pred.trajectory["observation_0"]
    assert list(agent.tools) == ["double", "finish"]


async def test_max_iters_per_call_override() -> None:
    lm = ScriptedLM([*[{"next_thought": "t", "next_tool_name": "double", "next_tool_args": {"x": 1}}] * 3,
                     {"reasoning": "r", "answer": "a"}])
    pred = await dx.ReAct("question -> answer", tools=[double]).acall(question="q", max_iters=3, lm=lm)
    assert [k for k in pred.trajectory if k.startswith("tool_name")] == ["tool_name_0", "tool_name_1", "tool_name_2"]
    assert pred.answer == "a"


class _OverflowLM(ScriptedLM):
    """Raises a context-window error whenever the prompt holds more than ``limit`` steps."""

    def __init__(self, answers: list[Any], limit: int) -> None:
        super().__init__(answers)
        self.limit = limit

    async def acall(self, messages: list[Any], **params: Any) -> Any:
        if messages[-1]["content"].count("[[ ## thought_") > self.limit:
            raise ContextWindowExceededError("prompt too long", model="scripted")
        return await super().acall(messages, **params)


async def test_trajectory_truncation_drops_oldest_steps() -> None:
    answers = _steps(("double", {"x": 1}), ("double", {"x": 2}), ("double", {"x": 3}))
    lm = _OverflowLM(answers, limit=2)
    pred = await dx.ReAct("question -> answer", tools=[double]).acall(question="q", lm=lm)
    assert pred.answer == "ok"
    # Steps 0 and 1 were dropped to fit; the latest ones survive.
    assert "thought_0" not in pred.trajectory
    assert "observation_3" in pred.trajectory


async def test_truncation_of_a_single_step_raises() -> None:
    lm = _OverflowLM(_steps(("double", {"x": 1})), limit=0)
    with pytest.raises(ContextWindowExceededError, match=r"3 attempts|only has one tool call"):
        await dx.ReAct("question -> answer", tools=[double]).acall(question="q", lm=lm)


_LOOP_TICKED = threading.Event()


def sleepy(x: int) -> int:
    """Block the calling thread until the event loop has ticked 3 times (10 s at most)."""
    return x if _LOOP_TICKED.wait(10) else -1


async def test_sync_tool_never_blocks_the_event_loop() -> None:
    # The sync tool blocks its thread until the loop's ticker has run 3 times: a tool run on
    # the loop itself would starve the ticker and return -1 after 10 s, whatever the load.
    _LOOP_TICKED.clear()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1
            if ticks == 3:
                _LOOP_TICKED.set()

    lm = ScriptedLM(_steps(("sleepy", {"x": 1})))
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        pred = await dx.ReAct("question -> answer", tools=[sleepy]).acall(question="q", lm=lm)
        tg.cancel_scope.cancel()
    assert pred.trajectory["observation_0"] == 1
    assert ticks >= 3


async def test_stream_emits_tool_call_and_result_events() -> None:
    lm = ScriptedLM(_steps(("double", {"x": 4}), ("boom", {"x": 1})))
    agent = dx.ReAct("question -> answer", tools=[double, boom])
    events = [ev async for ev in agent.stream(question="q", lm=lm)]
    calls = [e for e in events if isinstance(e, ToolCall)]
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [(c.name, c.args) for c in calls] == [("double", {"x": 4}), ("boom", {"x": 1}), ("finish", {})]
    assert results[0].result == 8
    assert results[0].error is None
    assert results[0].duration_s >= 0
    assert results[1].result is None
    assert results[1].error is not None
    assert "boom 1" in results[1].error
    assert results[2].result == "Completed."
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    # Each call precedes its result, and the stream still ends with the prediction.
    assert events.index(calls[0]) < events.index(results[0]) < events.index(calls[1])
    assert isinstance(events[-1], PredictionDone)
    assert events[-1].outputs["answer"] == "ok"
    assert event_from_wire(results[1].to_wire()) == results[1]


async def test_tool_result_event_error_has_no_traceback_but_the_lm_sees_dspys_text() -> None:
    lm = ScriptedLM(_steps(("boom", {"x": 2})))
    agent = dx.ReAct("question -> answer", tools=[boom])
    events = [ev async for ev in agent.stream(question="q", lm=lm)]
    failed = next(e for e in events if isinstance(e, ToolResult) and e.name == "boom")
    # the event goes to clients (WebSocket): type and message only, no server paths
    assert failed.error == "RuntimeError: boom 2"
    wire = json.dumps(failed.to_wire())
    assert "Traceback" not in wire
    assert "test_react.py" not in wire
    assert "boom 2" in wire
    # the observation fed back to the LM keeps DSPy's traceback summary
    obs = events[-1].outputs["trajectory"]["observation_0"]
    assert obs.startswith("Execution error in boom: \nTraceback (most recent call last):")
    assert obs.endswith("RuntimeError: boom 2")


def test_bad_tools_are_rejected_at_construction() -> None:
    with pytest.raises(ToolError, match="expects a callable"):
        dx.ReAct("question -> answer", tools=[42])  # type: ignore[list-item]
    with pytest.raises(ToolError, match="two tools are named 'double'"):
        dx.ReAct("question -> answer", tools=[double, double])


def test_loads_a_dspy_saved_react(tmp_path: Path) -> None:
    """A program saved by dspy.ReAct loads into dx.ReAct: same predictor paths, demos carried over."""
    agent = dx.ReAct("question -> answer", tools=[react_cases.get_weather])
    assert [name for name, _ in agent.named_predictors()] == ["react", "extract.predict"]
    path = tmp_path / "react.json"
    path.write_text((GOLDEN / "react_state.json").read_text())
    agent.load(path)
    assert agent.react.demos[0]["next_tool_name"] == "finish"
    agent.save(tmp_path / "again.json")
    saved = json.loads((tmp_path / "again.json").read_text())
    assert saved["react"]["signature"] == json.loads(path.read_text())["react"]["signature"]
