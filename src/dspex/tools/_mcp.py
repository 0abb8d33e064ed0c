"""MCP tools as ``dx.Tool``: list a connected MCP server's tools and call them through it.

:func:`from_mcp` takes an initialized ``mcp.ClientSession`` (over stdio,
streamable HTTP or any other MCP transport; the caller owns the connection)
and returns one :class:`~dspex.signatures.Tool` per server tool, as DSPy's
``Tool.from_mcp_tool`` does: the name and description come from the server,
the argument schemas are the server's JSON schema properties, and a call
awaits ``session.call_tool``. Arguments are checked before the call (unknown,
missing and mistyped ones raise :class:`~dspex.errors.ToolError`, so ReAct
feeds them back); a result flagged ``is_error`` raises ``ToolError`` with the
server's text. The ``mcp`` package is optional (``pip install dspex[mcp]``)
and only the session object is used here, so nothing is imported from it
(except the pagination parameters, for a server with more than one page of
tools); the session must be used from the event loop that opened it.
Tested with mcp 2.3 on both anyio backends, over stdio and streamable HTTP
(under trio, mcp's HTTP client leaves a few async generators to the garbage
collector, which warns; calls work).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ..errors import ToolError
from ..signatures._tool import Tool

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["from_mcp", "mcp_tool"]

_TYPES: dict[str, Any] = {
    "string": str, "integer": int, "number": float, "boolean": bool, "array": list, "object": dict, "null": None,
}


def _field(obj: Any, *names: str) -> Any:
    """Read an attribute under its mcp 2 (snake_case) or mcp 1 (camelCase) name."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _resolve(prop: dict[str, Any], defs: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 16:
        target = defs.get(ref.split("/")[-1], {})
        rest = {k: v for k, v in prop.items() if k != "$ref"}
        return {**_resolve(dict(target), defs, depth + 1), **rest}
    return prop


def _schema_args(schema: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], set[str], dict[str, str]]:
    """Return (JSON schemas, Python types, required names, descriptions) per argument."""
    props = schema.get("properties") or {}
    defs = schema.get("$defs") or {}
    required = set(schema.get("required") or [])
    args: dict[str, Any] = {}
    types: dict[str, Any] = {}
    desc: dict[str, str] = {}
    for name, raw in props.items():
        prop = _resolve(dict(raw), defs)
        args[name] = prop
        kind = prop.get("type")
        tp = _TYPES.get(kind) if isinstance(kind, str) else None
        types[name] = tp if tp is not None else Any
        desc[name] = prop.get("description", "No description provided.") + (" (Required)" if name in required else "")
    return args, types, required, desc


def _result_value(name: str, result: Any) -> Any:
    """Return the tool's text (or list of texts); raise on an error result."""
    texts = [getattr(c, "text", None) for c in _field(result, "content") or []]
    texts = [t for t in texts if isinstance(t, str)]
    value: Any = texts[0] if len(texts) == 1 else texts
    if _field(result, "is_error", "isError"):
        raise ToolError(f"MCP tool {name!r} failed: {value}")
    if not texts:
        return _field(result, "structured_content", "structuredContent")
    return value


def mcp_tool(session: Any, tool: Any, *, timeout: float | None = None) -> Tool:
    """Return one server tool (an ``mcp`` ``Tool`` from ``list_tools``) as a ``dx.Tool``.

    Raises:
        ToolError: ``tool`` has no name.
    """
    name = _field(tool, "name")
    if not isinstance(name, str) or not name:
        raise ToolError(f"MCP tool {tool!r} has no name; expected an entry of session.list_tools().tools")
    schema = _field(tool, "input_schema", "inputSchema") or {}
    args, types, required, desc = _schema_args(schema)

    async def call(**kwargs: Any) -> Any:
        return _result_value(name, await session.call_tool(name, arguments=kwargs))

    # A real signature (keyword-only, optional ones defaulting to None) lets Tool validate arguments.
    params = [
        inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, annotation=tp if arg in required else tp | None
                          if tp is not Any else Any, default=inspect.Parameter.empty if arg in required else None)
        for arg, tp in types.items()
    ]
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params}
    call.__name__ = name
    return Tool(call, name=name, desc=_field(tool, "description"), args=args, arg_desc=desc, timeout=timeout)


async def from_mcp(session: Any, *, timeout: float | None = None) -> list[Tool]:  # noqa: ASYNC109 (the returned tools' per-call timeout, not this call's)
    """Return the tools of the MCP server behind ``session`` as ``dx.Tool``s.

    Args:
        session: An initialized ``mcp.ClientSession`` (``await
            session.initialize()`` done); keep it open while the tools are used.
        timeout: Per-call timeout for every returned tool, in seconds.

    Raises:
        ToolError: ``session`` has no ``list_tools``/``call_tool``, or a tool
            has no name.

    Example:
        .. code-block:: python

            async with stdio_client(StdioServerParameters(command="my-server")) as (r, w):
                async with ClientSession(r, w) as session:
                    await session.initialize()
                    agent = dx.ReAct("question -> answer", tools=await dx.tools.from_mcp(session))
    """
    if not callable(getattr(session, "list_tools", None)) or not callable(getattr(session, "call_tool", None)):
        raise ToolError(
            f"from_mcp expects an initialized mcp.ClientSession, got {type(session).__name__}; "
            "install the extra with pip install 'dspex[mcp]'"
        )
    tools: list[Tool] = []
    cursor: Any = None
    while True:  # list_tools is paginated
        if cursor is None:
            page = await session.list_tools()
        else:
            from mcp.types import (
                PaginatedRequestParams,  # optional dependency, needed for page 2+ only
            )

            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        tools.extend(mcp_tool(session, t, timeout=timeout) for t in _field(page, "tools") or [])
        cursor = _field(page, "next_cursor", "nextCursor")
        if not cursor:
            return tools
