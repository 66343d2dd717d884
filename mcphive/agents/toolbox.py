"""Agents' side of MCP: a broker that owns one client connection per server, and scoped tool views.

Each connection lives in its own task inside the hive's task group, entered and exited there,
so connections opened by one task and used by many never trip anyio's "cancel scope in a
different task" rule. An agent never sees the broker: it gets a :class:`ToolBox`, the subset of
tools its spec allows, and calls them by name.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp import Client
from mcp.types import TextContent, Tool

from mcphive.errors import MCPHiveError, ToolError

__all__ = ["Connection", "ConnectionBroker", "ToolBox", "ToolOutcome"]

log = logging.getLogger(__name__)


@dataclass
class Connection:
    """A live MCP client and the server's (deterministic) tool list, fetched once."""

    name: str
    client: Client
    tools: dict[str, Tool]


@dataclass
class _Slot:
    ready: anyio.Event = field(default_factory=anyio.Event)
    stop: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)
    connection: Connection | None = None
    error: BaseException | None = None


class ConnectionBroker:
    """Opens each MCP connection once, in a task it owns, and hands the same one to every caller."""

    def __init__(self, task_group: TaskGroup) -> None:
        self._tg = task_group
        self._slots: dict[str, _Slot] = {}
        self._lock = anyio.Lock()

    async def connect(self, key: str, name: str, target: Callable[[], Any]) -> Connection:
        """The connection for ``key``; if new, opened to ``target()`` (anything ``mcp.Client`` accepts).

        ``target`` is a factory so that building a server object is paid once per connection, not per call.
        """
        slot = self._slots.get(key)
        if slot is None or slot.error is not None:
            async with self._lock:
                slot = self._slots.get(key)
                if slot is None or slot.error is not None:
                    slot = self._slots[key] = _Slot()
                    self._tg.start_soon(self._own, slot, name, target())
        await slot.ready.wait()
        if slot.error is not None:
            raise MCPHiveError(f"cannot connect to MCP server {name!r}: {slot.error}") from slot.error
        assert slot.connection is not None
        return slot.connection

    async def _own(self, slot: _Slot, name: str, target: Any) -> None:
        try:
            async with Client(target) as client:
                listing = await client.list_tools()
                slot.connection = Connection(name, client, {tool.name: tool for tool in listing.tools})
                slot.ready.set()
                await slot.stop.wait()
        except Exception as e:  # a failed connection is reported to every waiter, not raised into the task group
            log.warning("MCP connection %s failed: %s", name, e)
            slot.error = e
        finally:
            slot.ready.set()
            slot.closed.set()

    async def aclose(self) -> None:
        """Close every connection (each in the task that opened it) and wait until they are closed."""
        for slot in self._slots.values():
            slot.stop.set()
        for slot in self._slots.values():
            await slot.closed.wait()
        self._slots.clear()


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call returned."""

    text: str
    structured: dict[str, Any] | None
    is_error: bool
    duration_ms: float


class ToolBox:
    """An agent's scoped view: only the tools its spec lists, each bound to the server that has it."""

    def __init__(self, connections: list[Connection], allowed: tuple[str, ...]) -> None:
        self._where: dict[str, Connection] = {}
        for connection in connections:
            for tool_name in connection.tools:
                if tool_name in allowed:
                    self._where.setdefault(tool_name, connection)
        self.allowed = tuple(name for name in allowed if name in self._where)
        self._files: list[str] | None = None

    async def workspace_files(self) -> list[str]:
        """The workspace's files (through ``list_files``), listed once per toolbox, i.e. per task.

        Only constrained models use the listing, and they are never offered a tool that creates files,
        so it cannot go stale during the task.
        """
        if self._files is None:
            listed = await self.call("list_files", {"pattern": "*"}) if "list_files" in self.allowed else None
            self._files = list((listed.structured or {}).get("files", [])) if listed else []
        return self._files

    def tool(self, name: str) -> Tool:
        """The MCP definition of an allowed tool."""
        return self._where[name].tools[name]

    def server_of(self, name: str) -> str:
        """The name of the server that provides ``name``."""
        return self._where[name].name

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Call an allowed tool.

        Raises:
            ToolError: the tool is not in this agent's scope.
        """
        if name not in self._where:
            raise ToolError(f"tool {name!r} is not available to this agent; choose one of: {', '.join(self.allowed)}")
        started = time.perf_counter()
        result = await self._where[name].client.call_tool(name, arguments)
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        structured = result.structured_content
        if structured is not None and not text:
            text = json.dumps(structured)
        return ToolOutcome(text, structured, bool(result.is_error), (time.perf_counter() - started) * 1000)
