"""Translate mcphive's ToolError into the MCP SDK's, at the server boundary.

The SDK turns its own ``ToolError`` into an ``is_error=True`` result carrying our message (which
the model can act on); any other exception becomes a generic "Error executing tool" with the
message withheld. So every deliberate mcphive ToolError is re-raised as the SDK's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from mcp.server.mcpserver.exceptions import ToolError as SDKToolError

from mcphive.errors import ToolError

__all__ = ["tool_errors"]

F = TypeVar("F", bound=Callable[..., Any])


def tool_errors(fn: F) -> F:
    """Wrap a sync or async tool function so mcphive ToolErrors reach the client as tool errors."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except ToolError as e:
                raise SDKToolError(str(e)) from e

        return cast(F, async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ToolError as e:
            raise SDKToolError(str(e)) from e

    return cast(F, wrapper)
