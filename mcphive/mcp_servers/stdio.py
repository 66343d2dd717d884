"""Serving an MCP server over stdio, answering lines that are not JSON-RPC.

The SDK's stdio transport turns a line it cannot parse into an exception on its read stream, and
the server loop logs it at debug level and moves on: the client that sent it waits for an answer
that never comes. JSON-RPC 2.0 asks for an error response with a null id instead — ``-32700`` when
the line is not JSON, ``-32600`` when it is JSON but not a JSON-RPC message — and that is what
:func:`run_stdio` sends, then keeps serving. Everything else is the SDK's ``run_stdio_async``.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

__all__ = ["error_for_bad_line", "run_stdio"]

_MAX_DETAIL = 200


def error_for_bad_line(error: Exception) -> types.JSONRPCError:
    """The JSON-RPC error response (null id) for a line the transport could not read as a message."""
    details = error.errors() if isinstance(error, ValidationError) else []
    if any(d["type"] == "json_invalid" for d in details):
        code, message = types.PARSE_ERROR, "Parse error: the line is not valid JSON"
    else:
        code, message = types.INVALID_REQUEST, "Invalid Request: the line is JSON but not a JSON-RPC 2.0 message"
    # e.g. "Invalid JSON: key must be a string at line 1 column 2"
    data = (details[0]["msg"] if details else str(error) or type(error).__name__)[:_MAX_DETAIL]
    return types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(code=code, message=message, data=data))


async def run_stdio(server: MCPServer) -> None:
    """Serve ``server`` over stdin/stdout until the host closes stdin."""
    lowlevel: Any = server._lowlevel_server  # the SDK's run_stdio_async uses it the same way
    async with stdio_server() as (transport_read, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def answer_bad_lines() -> None:
            async with send:
                async for item in transport_read:
                    if isinstance(item, Exception):
                        await write_stream.send(SessionMessage(error_for_bad_line(item)))
                    else:
                        await send.send(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_bad_lines)
            async with receive:
                await lowlevel.run(receive, write_stream, lowlevel.create_initialization_options())
