"""The shared blackboard: namespaced keys with versions and compare-and-set, served over MCP.

Agents working on one task (or on the subtasks of a plan) share context through it instead of
passing whole conversations around. Every write bumps the key's version; a write that names an
``expected_version`` fails unless the key is still at that version, so two agents can never
silently overwrite each other.

MCP 2026-07-28 is stateless: state that spans calls travels as server-minted *handles*.
``state_open(namespace)`` returns a random, expiring handle bound to the caller's identity, and
every other tool takes either ``namespace`` or ``handle``. A handle is not authentication (the
transport's auth still applies); it only names a namespace for the principal that opened it.
The caller's identity is the :class:`~mcphive.types.Principal` of the bearer token over HTTP
(:data:`~mcphive.mcp_servers.http.GRANT_SCOPE_KEY`), and the ``principal`` the server was built
with in-process and over stdio, where whoever holds the pipe is the one caller.

``state_watch`` is the poll-style change feed: each namespace has a version that every write bumps,
and a watcher gets the keys changed since the version it last saw, waiting (bounded) for one.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

from mcphive import __version__
from mcphive.errors import ToolError
from mcphive.mcp_servers._errors import tool_errors
from mcphive.mcp_servers.http import grant_of
from mcphive.types import Principal

__all__ = [
    "DEFAULT_HANDLE_TTL",
    "MAX_WATCH_SECONDS",
    "StateStore",
    "VersionConflict",
    "build_state_server",
]

MAX_VALUE_BYTES = 256 * 1024
DEFAULT_HANDLE_TTL = 3600.0
"""Seconds a handle from ``state_open`` stays valid."""
MAX_WATCH_SECONDS = 30.0
"""The longest ``state_watch`` waits for a change: long enough to save polls, short of HTTP timeouts."""

JSONValue = dict[str, Any] | list[Any] | str | int | float | bool | None
"""What a blackboard value may be: any JSON value (a real schema, not "anything")."""


class VersionConflict(ToolError):
    """A compare-and-set write found the key at another version."""


@dataclass(frozen=True)
class _Entry:
    value: Any
    version: int
    changed_at: int  # the namespace version this write produced, for state_watch


@dataclass(frozen=True)
class _Handle:
    namespace: str
    owner: Principal
    expires_at: float


class StateStore:
    """A thread-safe in-process key/value store with per-key and per-namespace versions, and handles.

    Args:
        handle_ttl: seconds a handle from :meth:`open` stays valid.
        clock: a monotonic clock (injectable so that expiry can be tested without waiting).
    """

    def __init__(self, *, handle_ttl: float = DEFAULT_HANDLE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, dict[str, _Entry]] = {}
        self._ns_versions: dict[str, int] = {}
        self._handles: dict[str, _Handle] = {}
        self._lock = threading.Lock()
        self._handle_ttl = handle_ttl
        self._clock = clock
        # One event per watched namespace, set (and dropped) by the next write there. Writes come from the
        # event loop's thread (the tools and the hive); anyio events are not safe to set from other threads.
        self._changed: dict[str, anyio.Event] = {}

    def get(self, namespace: str, key: str) -> dict[str, Any]:
        """The value and version of ``key`` (version 0 and value None when absent)."""
        with self._lock:
            entry = self._data.get(namespace, {}).get(key)
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
            entries = self._data.setdefault(namespace, {})
            current = entries.get(key)
            version = current.version if current else 0
            if expected_version is not None and expected_version != version:
                raise VersionConflict(
                    f"{namespace}/{key} is at version {version}, not {expected_version}; read it again and retry"
                )
            ns_version = self._ns_versions.get(namespace, 0) + 1
            self._ns_versions[namespace] = ns_version
            entries[key] = _Entry(value, version + 1, ns_version)
            changed = self._changed.pop(namespace, None)
        if changed is not None:
            changed.set()
        return {"namespace": namespace, "key": key, "version": version + 1}

    def keys(self, namespace: str) -> list[str]:
        """The keys of ``namespace``, sorted."""
        with self._lock:
            return sorted(self._data.get(namespace, {}))

    def open(self, namespace: str, owner: Principal) -> dict[str, Any]:
        """Mint a random handle for ``namespace``, valid for ``owner`` only, until it expires."""
        if not namespace:
            raise ToolError("namespace must not be empty; name the blackboard to open, e.g. 'plan:<task id>'")
        handle = secrets.token_urlsafe(24)
        now = self._clock()
        with self._lock:
            # Forget expired handles here so that the table stays as small as the live ones.
            for stale in [h for h, v in self._handles.items() if v.expires_at <= now]:
                del self._handles[stale]
            self._handles[handle] = _Handle(namespace, owner, now + self._handle_ttl)
        return {"handle": handle, "namespace": namespace, "expires_in_s": self._handle_ttl}

    def resolve(self, handle: str, caller: Principal) -> str:
        """The namespace ``handle`` names for ``caller``.

        Raises:
            ToolError: the handle is unknown, expired, or was opened by another principal (one message
                for all three, so that a caller cannot probe which handles exist).
        """
        with self._lock:
            found = self._handles.get(handle)
        if found is None or found.expires_at <= self._clock() or found.owner != caller:
            raise ToolError(f"handle {handle[:8]!r}… is not valid for you; call state_open again")
        return found.namespace

    async def watch(self, namespace: str, since_version: int, wait_seconds: float) -> dict[str, Any]:
        """The keys of ``namespace`` changed after namespace version ``since_version``.

        When none has, waits up to ``wait_seconds`` (capped at :data:`MAX_WATCH_SECONDS`) for a write.
        """
        with anyio.move_on_after(min(max(wait_seconds, 0.0), MAX_WATCH_SECONDS)):
            while True:
                with self._lock:
                    if self._ns_versions.get(namespace, 0) > since_version:
                        break
                    event = self._changed.setdefault(namespace, anyio.Event())
                await event.wait()
        with self._lock:
            entries = self._data.get(namespace, {})
            changes = [
                {"key": key, "value": e.value, "version": e.version}
                for key, e in sorted(entries.items())
                if e.changed_at > since_version
            ]
            version = self._ns_versions.get(namespace, 0)
        return {"namespace": namespace, "version": version, "changes": changes}


def _caller(ctx: Context, default: Principal) -> Principal:
    """The principal of the request being served: the token's over HTTP, else the server's own."""
    try:
        request = ctx.request_context.request
    except ValueError:  # no request at all (a direct call): the server's principal
        return default
    grant = grant_of(request)
    return grant.principal if grant is not None else default


def _namespace(store: StateStore, ctx: Context, default: Principal, namespace: str | None, handle: str | None) -> str:
    if (namespace is None) == (handle is None):
        raise ToolError("pass exactly one of namespace or handle (a handle comes from state_open)")
    if handle is not None:
        return store.resolve(handle, _caller(ctx, default))
    assert namespace is not None
    return namespace


def build_state_server(
    store: StateStore | None = None, *, principal: Principal | None = None, wait_limit: float = MAX_WATCH_SECONDS
) -> MCPServer:
    """An MCP server named ``state`` over ``store`` (a fresh one when None).

    Args:
        store: the blackboard to serve.
        principal: who the caller is when the transport carries no identity (in-process, stdio);
            over HTTP behind :mod:`mcphive.mcp_servers.http` the bearer token's principal is used instead.
        wait_limit: the most seconds one ``state_watch`` call may wait.

    The tools are ``async`` although most never await: the store is an in-memory dict behind a
    lock, and the SDK would otherwise hop to a worker thread for every call.
    """
    store = store or StateStore()
    me = principal or Principal()
    server: MCPServer = MCPServer(
        "state",
        version=__version__,
        instructions="Shared blackboard: namespaced keys with versions and compare-and-set. Address a namespace "
        "by name, or by a handle from state_open; state_watch waits for changes.",
    )
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False)

    @server.tool(title="Open a namespace", annotations=writes, structured_output=True)
    @tool_errors
    async def state_open(namespace: str, ctx: Context) -> dict[str, Any]:
        """Get a handle for a namespace, valid for you only until expires_in_s; pass it as handle to the others."""
        return store.open(namespace, _caller(ctx, me))

    @server.tool(title="Read a shared key", annotations=read_only, structured_output=True)
    @tool_errors
    async def state_get(
        key: str, ctx: Context, namespace: str | None = None, handle: str | None = None
    ) -> dict[str, Any]:
        """Read a key from the shared blackboard: its value and version (0 when it does not exist)."""
        return store.get(_namespace(store, ctx, me, namespace, handle), key)

    @server.tool(title="Write a shared key", annotations=writes, structured_output=True)
    @tool_errors
    async def state_put(
        key: str,
        value: JSONValue,
        ctx: Context,
        namespace: str | None = None,
        handle: str | None = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Write a key; pass expected_version to write only if nobody changed it since you read it."""
        return store.put(_namespace(store, ctx, me, namespace, handle), key, value, expected_version)

    @server.tool(title="List shared keys", annotations=read_only, structured_output=True)
    @tool_errors
    async def state_list(ctx: Context, namespace: str | None = None, handle: str | None = None) -> dict[str, Any]:
        """List the keys of a namespace."""
        resolved = _namespace(store, ctx, me, namespace, handle)
        return {"namespace": resolved, "keys": store.keys(resolved)}

    @server.tool(title="Watch a namespace", annotations=read_only, structured_output=True)
    @tool_errors
    async def state_watch(
        ctx: Context,
        namespace: str | None = None,
        handle: str | None = None,
        since_version: int = 0,
        wait_seconds: float = 10.0,
    ) -> dict[str, Any]:
        """Keys changed since a namespace version (waits up to wait_seconds for one); pass the returned version next."""
        resolved = _namespace(store, ctx, me, namespace, handle)
        return await store.watch(resolved, since_version, min(wait_seconds, wait_limit))

    return server
