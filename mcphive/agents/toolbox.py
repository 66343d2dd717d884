"""Agents' side of MCP: a broker that owns one client connection per server, and scoped tool views.

Each connection lives in its own task inside the hive's task group, entered and exited there,
so connections opened by one task and used by many never trip anyio's "cancel scope in a
different task" rule. An agent never sees the broker: it gets a :class:`ToolBox`, the subset of
tools its spec allows, and calls them by name.

External servers (settings' ``[[mcp_servers]]``, connected by :mod:`mcphive.agents.external`) go
through the same broker; their tools reach a toolbox as ``<server>.<tool>``, so they never shadow
mcphive's own tools or each other, and only when their definitions match the pins approved with
``mcphive mcp approve`` (:class:`~mcphive.policy.PinStore`).
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
from mcphive.policy import PinStore, ToolDefinitionChanged

__all__ = ["Connection", "ConnectionBroker", "ToolBox", "ToolOutcome", "tool_definition"]

log = logging.getLogger(__name__)


@dataclass
class Connection:
    """A live MCP client and the server's (deterministic) tool list, fetched once."""

    name: str
    client: Client
    tools: dict[str, Tool]
    pins: PinStore | None = None
    """Set for an external server: its tools are namespaced and offered only as approved in these pins."""
    failed: str | None = None
    """Why the transport broke during a call; the broker opens a fresh connection on the next ``connect``."""

    @property
    def external(self) -> bool:
        """Whether this is a connection to a server outside mcphive."""
        return self.pins is not None


def tool_definition(tool: Tool) -> dict[str, Any]:
    """A tool's definition as sent on the wire (camelCase, no nulls): what pins fingerprint."""
    return tool.model_dump(mode="json", by_alias=True, exclude_none=True)


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

    async def connect(
        self,
        key: str,
        name: str,
        target: Callable[[], Any],
        *,
        timeout_s: float | None = None,
        pins: PinStore | None = None,
    ) -> Connection:
        """The connection for ``key``; if new (or its last one failed), opened to ``target()``.

        ``target`` is a factory (of anything ``mcp.Client`` accepts) so that building a server object is paid
        once per connection, not per call. ``timeout_s`` bounds each request, the handshake included; ``pins``
        marks an external server (see :class:`Connection`).
        """
        slot = self._slots.get(key)
        if slot is None or _stale(slot):
            async with self._lock:
                slot = self._slots.get(key)
                if slot is None or _stale(slot):
                    if slot is not None:
                        slot.stop.set()  # the broken connection is closed by the task that owns it
                    slot = self._slots[key] = _Slot()
                    self._tg.start_soon(self._own, slot, name, target(), timeout_s, pins)
        await slot.ready.wait()
        if slot.error is not None:
            raise MCPHiveError(f"cannot connect to MCP server {name!r}: {slot.error}") from slot.error
        assert slot.connection is not None
        return slot.connection

    async def _own(self, slot: _Slot, name: str, target: Any, timeout_s: float | None, pins: PinStore | None) -> None:
        try:
            async with Client(target, read_timeout_seconds=timeout_s) as client:
                listing = await client.list_tools()
                slot.connection = Connection(name, client, {tool.name: tool for tool in listing.tools}, pins)
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


def _stale(slot: _Slot) -> bool:
    return slot.error is not None or (slot.connection is not None and slot.connection.failed is not None)


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
        self._tools: dict[str, Tool] = {}
        self._refused: dict[str, MCPHiveError] = {}
        for connection in connections:
            if connection.external:
                self._add_external(connection, allowed)
                continue
            for tool_name, tool in connection.tools.items():
                if tool_name in allowed and tool_name not in self._where:
                    self._where[tool_name], self._tools[tool_name] = connection, tool
        offered: dict[str, None] = {}
        for entry in allowed:  # in the spec's order; a "server.*" entry stands for that server's tools, by name
            matches = sorted(n for n in self._where if n.startswith(entry[:-1])) if entry.endswith(".*") else [entry]
            offered.update(dict.fromkeys(n for n in matches if n in self._where))
        self.allowed = tuple(offered)
        self._files: list[str] | None = None

    def _add_external(self, connection: Connection, allowed: tuple[str, ...]) -> None:
        """Offer the external tools ``allowed`` names whose definitions match their pins; remember why others not."""
        server, prefix = connection.name, f"{connection.name}."
        wanted = {entry.removeprefix(prefix) for entry in allowed if entry.startswith(prefix)}
        if not wanted or connection.pins is None:
            return
        approved = connection.pins.pins(server) is not None
        review = f"review its tools with `mcphive mcp list`, then run `mcphive mcp approve {server}`"
        for remote, tool in connection.tools.items():
            name = prefix + remote
            if "*" not in wanted and remote not in wanted:
                continue
            if not approved:
                self._refused[name] = ToolError(f"external MCP server {server!r} is not approved yet; {review}")
                continue
            try:
                status = connection.pins.check(server, tool_definition(tool))
            except ToolDefinitionChanged as e:
                self._refused[name] = e
                continue
            if status == "new":
                self._refused[name] = ToolError(f"tool {remote!r} appeared on {server!r} after its approval; {review}")
                continue
            self._where[name], self._tools[name] = connection, tool

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
        """The MCP definition of an allowed tool (an external one as its server defines it, un-namespaced)."""
        return self._tools[name]

    def writes(self, name: str) -> bool:
        """Whether allowed tool ``name`` writes: MCP's reading of its annotations, as the HTTP policy reads them.

        A tool writes unless it says it is read-only or explicitly not destructive (a tool without
        annotations writes); edits, commits and new files say ``destructiveHint``. Unknown tools do not write.
        """
        if name not in self._where:
            return False
        annotations = self.tool(name).annotations
        if annotations is None:
            return True
        return not annotations.read_only_hint and annotations.destructive_hint is not False

    def server_of(self, name: str) -> str:
        """The name of the server that provides ``name``."""
        return self._where[name].name

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Call an allowed tool.

        A failure of an external server's transport (it died, it timed out) is the call's error outcome, so
        the agent's other tools keep working; the broker reconnects on the next task.

        Raises:
            ToolError: the tool is not in this agent's scope, or its external server is not approved.
            ToolDefinitionChanged: an external tool's definition differs from the approved one.
        """
        if name in self._refused:
            refused = self._refused[name]
            raise type(refused)(str(refused))
        if name not in self._where:
            server = f"; its MCP server {name.split('.')[0]!r} is not connected (see the log)" if "." in name else ""
            choices = ", ".join(self.allowed)
            raise ToolError(f"tool {name!r} is not available to this agent{server}; choose one of: {choices}")
        connection = self._where[name]
        started = time.perf_counter()
        if connection.external:
            try:
                result = await connection.client.call_tool(self._tools[name].name, arguments)
            except Exception as e:  # a dead or hung external server must not take the task down
                connection.failed = f"{type(e).__name__}: {e}"
                log.warning("external MCP server %s failed during %s: %s", connection.name, name, connection.failed)
                text = (f"external MCP server {connection.name!r} failed during {name!r} ({connection.failed}); "
                        "use other tools; it is reconnected for the next task")  # fmt: skip
                return ToolOutcome(text, None, True, (time.perf_counter() - started) * 1000)
        else:
            result = await connection.client.call_tool(name, arguments)
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        structured = result.structured_content
        if structured is not None and not text:
            text = json.dumps(structured)
        return ToolOutcome(text, structured, bool(result.is_error), (time.perf_counter() - started) * 1000)
