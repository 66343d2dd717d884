"""The echo servers of ``mcp_latency``: a bare ``MCPServer`` and one built the way mcphive builds its servers.

Run as a script it serves one of them over stdio: ``python benchmarks/_echo_server.py mcphive|bare``.
"""

from __future__ import annotations

import logging
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcphive.mcp_servers._errors import tool_errors


def build_bare() -> MCPServer:
    """The SDK's quickstart shape: one plain tool."""
    server: MCPServer = MCPServer("echo")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text."""
        return text

    return server


def build_mcphive() -> MCPServer:
    """As mcphive's servers are built: instructions, titled and annotated tools, structured output, tool_errors."""
    server: MCPServer = MCPServer("echo", instructions="Echoes text back; a latency probe.")

    @server.tool(
        title="Echo", annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True), structured_output=True
    )
    @tool_errors
    async def echo(text: str) -> str:
        """Return the text."""
        return text

    return server


BUILDERS = {"bare": build_bare, "mcphive": build_mcphive}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)
    anyio.run(BUILDERS[sys.argv[1]]().run_stdio_async)
