"""``mcphive serve``: run the gateway, or one substrate server, over stdio.

Stdout belongs to the MCP protocol here: logs go to stderr, and nothing else may print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mcphive.errors import UsageError
from mcphive.mcp_servers.stdio import run_stdio
from mcphive.settings import Settings

__all__ = ["serve_http_servers", "serve_stdio"]


async def serve_stdio(settings: Settings, server: str, root: str | None) -> None:
    """Serve ``server`` (gateway, state, workspace, memory or rag) over stdio until the host closes it."""
    if server == "gateway":
        from mcphive.hive import Hive
        from mcphive.mcp_servers.gateway import build_gateway

        async with Hive.open(settings) as hive:
            await run_stdio(build_gateway(hive))
        return
    if server == "state":
        from mcphive.mcp_servers.state import build_state_server

        await run_stdio(build_state_server())
    elif server == "workspace":
        from mcphive.mcp_servers.workspace import build_workspace_server

        if root is None:
            raise UsageError("--server workspace needs --root PATH, the folder the tools may touch")
        await run_stdio(build_workspace_server(Path(root)))
    elif server == "memory":
        from mcphive.mcp_servers.memory import build_memory_server
        from mcphive.memory import EpisodicMemory
        from mcphive.types import Principal

        memory = EpisodicMemory.open(settings.database_url)
        try:
            await run_stdio(build_memory_server(memory, Principal(tenant=settings.tenant, user=settings.user)))
        finally:
            memory.close()
    else:
        from mcphive.mcp_servers.rag import build_rag_server
        from mcphive.rag import DocumentStore

        await run_stdio(build_rag_server(DocumentStore.from_settings(settings)))


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--http takes HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:8765), not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve_http_servers(settings: Settings, where: str, root: str | None, say: Callable[[str], None]) -> None:
    """Serve the gateway, state, memory and RAG servers (and a workspace with ``root``) over streamable HTTP.

    Every request passes the policy: bearer tokens and scopes, Origin, size and rate limits.
    """
    from mcphive._asgi import http_url
    from mcphive.hive import Hive
    from mcphive.mcp_servers.gateway import build_gateway
    from mcphive.mcp_servers.http import serve_http
    from mcphive.mcp_servers.memory import build_memory_server
    from mcphive.mcp_servers.state import build_state_server

    host, port = _host_port(where)
    async with Hive.open(settings) as hive:
        servers = {
            "gateway": build_gateway(hive),
            "state": build_state_server(hive.state_store),
            "memory": build_memory_server(hive.memory, hive.principal),
        }
        if settings.rag_chroma_url or settings.rag_dir.exists():
            servers["rag"] = hive.rag_server()
        if root is not None:
            from mcphive.mcp_servers.workspace import build_workspace_server

            servers["workspace"] = build_workspace_server(Path(root))
        names = ", ".join(f"/mcp/{name}" for name in servers)

        def ready(actual: int) -> None:
            say(f"serving MCP on {http_url(host, actual)} ({names}; the gateway also at /mcp)")

        await serve_http(servers, settings.policy.with_env_tokens(), host=host, port=port, ready=ready)
