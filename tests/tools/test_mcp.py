"""MCP tools as dx.Tool, against a real MCP server process (stdio and streamable HTTP), both backends."""

from __future__ import annotations

import re
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from mcp import ClientSession  # a dev dependency: these tests must run in CI, not skip
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

import dspex as dx
from dspex.errors import ToolError
from dspex.testing import ScriptedLM

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

SERVER = '''
import sys
from mcp.server.mcpserver import MCPServer

app = MCPServer("dspex-test")


@app.tool()
def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def search(query: str, tags: list[str] | None = None) -> list[str]:
    """Search the catalogue."""
    return [f"{query}:{t}" for t in (tags or ["all"])]


@app.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError("refused: " + reason)


if sys.argv[1] == "stdio":
    app.run()
else:  # port 0: the OS picks a free loopback port, which uvicorn logs
    app.run(transport="streamable-http", host="127.0.0.1", port=0)
'''


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    path = tmp_path / "mcp_server.py"
    path.write_text(SERVER)
    return path


@asynccontextmanager
async def stdio_session(script: Path) -> AsyncIterator[Any]:
    params = StdioServerParameters(command=sys.executable, args=[str(script), "stdio"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(script: Path) -> AsyncIterator[Any]:
    process = await anyio.open_process([sys.executable, str(script), "http"], stderr=-1)
    assert process.stderr is not None
    try:
        url = None
        with anyio.fail_after(30):
            buffer = b""
            async for chunk in process.stderr:
                buffer += chunk
                found = re.search(rb"http://127\.0\.0\.1:(\d+)", buffer)
                if found:
                    url = f"http://127.0.0.1:{int(found.group(1))}/mcp"
                    break
        assert url is not None, buffer.decode(errors="replace")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, process.stderr)  # request logs must not fill the pipe
            async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                yield session
            tg.cancel_scope.cancel()
    finally:
        process.terminate()
        with anyio.move_on_after(10, shield=True):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


SESSIONS = {"stdio": stdio_session, "http": http_session}

# mcp 2.3's streamable HTTP client works under trio, but leaves httpx2/httpcore2 async generators to the
# garbage collector there (trio warns; asyncio does not). Upstream's leak, not ours: only that is ignored.
UPSTREAM_TRIO_LEAKS = [
    pytest.mark.filterwarnings("ignore:Async generator 'httpx2.:ResourceWarning"),
    pytest.mark.filterwarnings("ignore:Async generator 'httpcore2.:ResourceWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <async_generator object (EventSource|Response|HTTP11ConnectionByteStream)"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]
pytestmark = UPSTREAM_TRIO_LEAKS


@pytest.mark.slow
@pytest.mark.parametrize("transport", sorted(SESSIONS))
async def test_server_tools_become_dx_tools(transport: str, server_script: Path) -> None:
    async with SESSIONS[transport](server_script) as session:
        tools = {t.name: t for t in await dx.tools.from_mcp(session)}
        assert sorted(tools) == ["add", "fail", "search"]
        add = tools["add"]
        assert add.desc == "Add two integers."
        assert add.args["a"]["type"] == "integer"
        assert add.args["b"]["default"] == 1
        assert await add.acall(a=2, b=3) == "5"
        assert await add.acall(a=2) == "3"
        assert await tools["search"].acall(query="tea", tags=["green", "black"]) == ["tea:green", "tea:black"]
        with pytest.raises(ToolError, match="MCP tool 'fail' failed"):
            await tools["fail"].acall(reason="x")
        # Validated before the server sees it.
        with pytest.raises(ToolError, match="argument 'a' is required"):
            await add.acall(b=1)
        with pytest.raises(ToolError, match="unknown argument 'c'"):
            await add.acall(a=1, c=2)


@pytest.mark.slow
@pytest.mark.parametrize("transport", sorted(SESSIONS))
async def test_react_runs_mcp_tools(transport: str, server_script: Path) -> None:
    async with SESSIONS[transport](server_script) as session:
        tools = await dx.tools.from_mcp(session)
        lm = ScriptedLM([
            {"next_thought": "add", "next_tool_name": "add", "next_tool_args": {"a": 20, "b": 22}},
            {"next_thought": "try", "next_tool_name": "fail", "next_tool_args": {"reason": "test"}},
            {"next_thought": "bad", "next_tool_name": "add", "next_tool_args": {"a": "many"}},
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "20 + 22", "answer": "42"},
        ])
        pred = await dx.ReAct("question -> answer", tools=tools).acall(question="20 + 22?", lm=lm)
    traj = pred.trajectory
    assert traj["observation_0"] == "42"
    assert traj["observation_1"].startswith("Execution error in fail: ")
    assert "MCP tool 'fail' failed" in traj[
        "observation_1"
    ]
    assert "argument 'a' is invalid" in traj["observation_2"]
    assert pred.answer == "42"
    # The MCP schema is what the LM is shown, as DSPy shows it.
    assert "(1) add, whose description is <desc>Add two integers.</desc>" in lm.history[0]["messages"][0]["content"]


async def test_from_mcp_rejects_a_non_session() -> None:
    with pytest.raises(ToolError, match=r"expects an initialized mcp\.ClientSession"):
        await dx.tools.from_mcp(object())
