"""The shared blackboard: namespaced keys with versions and compare-and-set, served over MCP.

Agents working on one task (or on the subtasks of a plan) share context through it instead of
passing whole conversations around. Every write bumps the key's version; a write that names an
``expected_version`` fails unless the key is still at that version, so two agents can never
silently overwrite each other.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcphive import __version__
from mcphive.errors import ToolError
from mcphive.mcp_servers._errors import tool_errors

__all__ = ["StateStore", "VersionConflict", "build_state_server"]

MAX_VALUE_BYTES = 256 * 1024

JSONValue = dict[str, Any] | list[Any] | str | int | float | bool | None
"""What a blackboard value may be: any JSON value (a real schema, not "anything")."""


class VersionConflict(ToolError):
    """A compare-and-set write found the key at another version."""


@dataclass(frozen=True)
class _Entry:
    value: Any
    version: int


class StateStore:
    """A thread-safe in-process key/value store with per-key versions."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> dict[str, Any]:
        """The value and version of ``key`` (version 0 and value None when absent)."""
        with self._lock:
            entry = self._data.get((namespace, key))
        return {
            "namespace": namespace,
            "key": key,
            "value": entry.value if entry else None,
            "version": entry.version if entry else 0,
        }

    def put(self, namespace: str, key: str, value: Any, expected_version: int | None = None) -> dict[str, Any]:
        """Write ``value``; with ``expected_version``, only if the key is still at that version."""
        if len(json.dumps(value, default=str)) > MAX_VALUE_BYTES:
            raise ToolError(
                f"value for {namespace}/{key} is over {MAX_VALUE_BYTES} bytes; store a summary or a document instead"
            )
        with self._lock:
            current = self._data.get((namespace, key))
            version = current.version if current else 0
            if expected_version is not None and expected_version != version:
                raise VersionConflict(
                    f"{namespace}/{key} is at version {version}, not {expected_version}; read it again and retry"
                )
            self._data[(namespace, key)] = _Entry(value, version + 1)
        return {"namespace": namespace, "key": key, "version": version + 1}

    def keys(self, namespace: str) -> list[str]:
        """The keys of ``namespace``, sorted."""
        with self._lock:
            return sorted(key for ns, key in self._data if ns == namespace)


def build_state_server(store: StateStore | None = None) -> MCPServer:
    """An MCP server named ``state`` over ``store`` (a fresh one when None).

    The tools are ``async`` although they never await: the store is an in-memory dict behind a
    lock, and the SDK would otherwise hop to a worker thread for every call.
    """
    store = store or StateStore()
    server: MCPServer = MCPServer(
        "state",
        version=__version__,
        instructions="Shared blackboard: namespaced keys with versions and compare-and-set.",
    )
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True)

    @server.tool(title="Read a shared key", annotations=read_only, structured_output=True)
    async def state_get(namespace: str, key: str) -> dict[str, Any]:
        """Read a key from the shared blackboard: its value and version (0 when it does not exist)."""
        return store.get(namespace, key)

    @server.tool(
        title="Write a shared key",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False),
        structured_output=True,
    )
    @tool_errors
    async def state_put(
        namespace: str, key: str, value: JSONValue, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Write a key; pass expected_version to write only if nobody changed it since you read it."""
        return store.put(namespace, key, value, expected_version)

    @server.tool(title="List shared keys", annotations=read_only, structured_output=True)
    async def state_list(namespace: str) -> dict[str, Any]:
        """List the keys of a namespace."""
        return {"namespace": namespace, "keys": store.keys(namespace)}

    return server
