"""External MCP servers (settings' ``[[mcp_servers]]``): how agents reach them, and how their tools get approved.

A server is a ``command`` spoken to over stdio or a ``url`` over streamable HTTP (with a bearer token read
from the environment variable ``bearer_token_env``). The hive's :class:`ExternalServers` opens each through
the same :class:`~mcphive.agents.toolbox.ConnectionBroker` as mcphive's own servers (one pooled connection,
reconnected when it breaks) and re-lists its tools for every task, so a server that changes a tool between
tasks is caught at once. Which agent may use which tool is the server entry's ``allow`` table
(:func:`mcphive.agents.spec.specs_for` turns it into ``<server>.<tool>`` entries of the agents' specs); whether
a tool's definition is approved is the pin file's business (:class:`~mcphive.policy.PinStore`, at
:func:`pin_file`), checked by :class:`~mcphive.agents.toolbox.ToolBox`.

:func:`list_servers` and :func:`approve_server` implement ``mcphive mcp list`` and ``mcphive mcp approve``.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Tool

from mcphive.agents.toolbox import Connection, ConnectionBroker, tool_definition
from mcphive.errors import ConfigError, MCPHiveError, UsageError
from mcphive.policy import PinStore
from mcphive.settings import ExternalServerConfig, Settings

__all__ = ["ExternalServers", "approve_server", "client_target", "list_servers", "pin_file"]

log = logging.getLogger(__name__)

_RETRY_S = 30.0
"""After a failed connection, tasks skip the server this long instead of each waiting on it again."""


def pin_file(settings: Settings) -> Path:
    """Where the approved tool definitions of external servers are pinned: ``data_dir/mcp_pins.json``."""
    return settings.data_dir / "mcp_pins.json"


def client_target(config: ExternalServerConfig) -> Any:
    """What ``mcp.Client`` connects to for ``config``: the stdio command, or an HTTP transport with its token."""
    if config.command is not None:
        return StdioServerParameters(
            command=config.command, args=list(config.args), env=dict(config.env) or None, cwd=config.cwd
        )
    return _http_transport(config)


@asynccontextmanager
async def _http_transport(config: ExternalServerConfig) -> AsyncIterator[Any]:
    assert config.url is not None
    headers = {}
    if config.bearer_token_env is not None:
        token = os.environ.get(config.bearer_token_env, "").strip()
        if not token:
            raise ConfigError(
                f"MCP server {config.name!r} takes its bearer token from ${config.bearer_token_env}, which is "
                "not set; export it before starting mcphive"
            )
        headers["authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=config.timeout_s) as http,
        streamable_http_client(config.url, http_client=http) as streams,
    ):
        yield streams


async def _all_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a server whose cursor never ends cannot hang a task
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


class ExternalServers:
    """The hive's connections to the external servers, opened lazily and re-listed per task."""

    def __init__(self, configs: Sequence[ExternalServerConfig], pins: PinStore, broker: ConnectionBroker) -> None:
        # A server no agent may use is never started.
        self.configs = [config for config in configs if any(config.allow.values())]
        self.pins = pins
        self._broker = broker
        self._retry_at: dict[str, float] = {}
        self._seen: dict[str, Connection] = {}
        self.errors: dict[str, str] = {}
        """Why each unreachable server is unreachable (its last connection error)."""

    async def connections(self) -> list[Connection]:
        """The live connections, tool lists fresh; a server that cannot be reached is logged and left out."""
        live = []
        for config in self.configs:
            connection = await self._connect(config)
            if connection is not None:
                live.append(connection)
        return live

    async def _connect(self, config: ExternalServerConfig) -> Connection | None:
        name = config.name
        if time.monotonic() < self._retry_at.get(name, 0.0):
            return None
        try:
            connection = await self._broker.connect(
                f"external:{name}", name, partial(client_target, config), timeout_s=config.timeout_s, pins=self.pins
            )
        except MCPHiveError as e:  # one unreachable server must not take the agents' other tools down
            self._unavailable(name, str(e))
            return None
        if self._seen.get(name) is connection:  # not new: the server may have changed its tools since
            try:
                connection.tools = {tool.name: tool for tool in await _all_tools(connection.client)}
            except Exception as e:
                connection.failed = f"{type(e).__name__}: {e}"
                self._unavailable(name, f"listing its tools failed: {connection.failed}")
                return None
        self._seen[name] = connection
        self.errors.pop(name, None)
        return connection

    def _unavailable(self, name: str, reason: str) -> None:
        self.errors[name] = reason
        self._retry_at[name] = time.monotonic() + _RETRY_S
        log.warning("external MCP server %s is unavailable (retrying in %.0f s): %s", name, _RETRY_S, reason)


def _config(settings: Settings, server: str) -> ExternalServerConfig:
    for config in settings.mcp_servers:
        if config.name == server:
            return config
    configured = ", ".join(c.name for c in settings.mcp_servers) or "none; add [[mcp_servers]] to mcphive.toml"
    raise UsageError(f"no external MCP server named {server!r}; configured: {configured}")


async def _current_tools(config: ExternalServerConfig) -> list[dict[str, Any]]:
    """The server's tool definitions now, from a connection of its own."""
    try:
        with anyio.fail_after(config.timeout_s * 2):
            async with Client(client_target(config), read_timeout_seconds=config.timeout_s) as client:
                return [tool_definition(tool) for tool in await _all_tools(client)]
    except MCPHiveError:
        raise
    except Exception as e:
        raise UsageError(
            f"cannot reach MCP server {config.name!r} ({type(e).__name__}: {e}); check its command or url"
        ) from e


async def list_servers(settings: Settings) -> list[dict[str, Any]]:
    """Every configured external server: where it is, who may use it, and each tool's pin state."""
    pins = PinStore(pin_file(settings))
    rows = []
    for config in settings.mcp_servers:
        row: dict[str, Any] = {
            "name": config.name,
            "transport": "stdio" if config.command else "http",
            "target": " ".join([config.command, *config.args]) if config.command else config.url,
            "allow": config.allow,
            "approved": pins.pins(config.name) is not None,
            "error": None,
            "tools": [],
        }
        try:
            tools = await _current_tools(config)
        except UsageError as e:
            row["error"] = str(e)
            rows.append(row)
            continue
        review = pins.review(config.name, tools)
        state = {n: "approved" for n in review.unchanged} | {n: "changed" for n in review.changed}
        state |= {n: "new" for n in review.added}
        row["tools"] = [
            {"name": f"{config.name}.{t['name']}", "pin": state[t["name"]], "description": t.get("description", "")}
            for t in tools
        ]
        row["tools"] += [{"name": f"{config.name}.{n}", "pin": "removed", "description": ""} for n in review.removed]
        rows.append(row)
    return rows


async def approve_server(settings: Settings, server: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Pin ``server``'s current tool definitions (unless ``dry_run``) and say what changed since the last approval.

    Returns ``{"server", "approved", "added", "changed", "removed", "unchanged", "diffs"}``; ``diffs`` maps each
    changed tool to a unified diff of its approved and current definitions.
    """
    config = _config(settings, server)
    pins = PinStore(pin_file(settings))
    tools = await _current_tools(config)
    review = pins.review(server, tools)
    before = pins.definitions(server)
    now = {str(t["name"]): t for t in tools}
    diffs = {name: _diff(name, before.get(name), now[name]) for name in review.changed}
    if not dry_run:
        pins.approve(server, tools)
    return {
        "server": server,
        "approved": not dry_run,
        "added": list(review.added),
        "changed": list(review.changed),
        "removed": list(review.removed),
        "unchanged": list(review.unchanged),
        "diffs": diffs,
    }


def _diff(name: str, before: Any, after: dict[str, Any]) -> str:
    if before is None:
        return f"(the approved definition of {name!r} was not recorded; its fingerprint differs)"
    old = json.dumps(before, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    new = json.dumps(after, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(difflib.unified_diff(old, new, f"{name} (approved)", f"{name} (now)", lineterm=""))
