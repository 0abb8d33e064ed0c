"""Tools: ``Tool`` (a callable described for an LM) and MCP servers' tools as ``Tool``s."""

from ..signatures._tool import Tool as Tool
from ._mcp import from_mcp as from_mcp
from ._mcp import mcp_tool as mcp_tool

__all__ = ["Tool", "from_mcp", "mcp_tool"]
