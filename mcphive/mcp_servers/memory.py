"""The memory server: agents recall past tasks and assert or query knowledge-base facts over MCP.

Every call is scoped to the principal the server was built for: one tenant never sees
another's episodes or facts.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcphive import __version__
from mcphive.errors import ToolError, UsageError
from mcphive.mcp_servers._errors import tool_errors
from mcphive.memory import EpisodicMemory, KnowledgeBase
from mcphive.types import Principal

__all__ = ["build_memory_server"]


def build_memory_server(memory: EpisodicMemory, principal: Principal) -> MCPServer:
    """An MCP server named ``memory`` over ``memory`` and its knowledge base, for ``principal``."""
    kb = KnowledgeBase(memory)
    server: MCPServer = MCPServer(
        "memory", version=__version__, instructions="Recall past tasks; assert and query facts."
    )
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True)

    @server.tool(title="Recall past tasks", annotations=read_only, structured_output=True)
    async def recall_tasks(query: str, k: int = 5) -> dict[str, Any]:
        """Past tasks whose text or answer match the query, best first."""
        rows = await memory.recall(query, min(max(k, 1), 50), principal=principal)
        return {"tasks": [r.model_dump(mode="json") for r in rows]}

    @server.tool(
        title="Assert a fact",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        structured_output=True,
    )
    @tool_errors
    async def kb_assert(subject: str, predicate: str, object: str, source: str = "") -> dict[str, Any]:
        """Record a fact as subject-predicate-object (e.g. service:checkout depends_on service:payments)."""
        try:
            fact = await kb.assert_fact(subject, predicate, object, source=source, tenant=principal.tenant)
        except UsageError as e:
            raise ToolError(str(e)) from e
        return fact.model_dump(mode="json")

    @server.tool(title="Query facts", annotations=read_only, structured_output=True)
    async def kb_query(subject: str | None = None, predicate: str | None = None) -> dict[str, Any]:
        """Facts matching a subject and/or predicate (either may be left out)."""
        facts = await kb.query(subject, predicate, tenant=principal.tenant)
        return {"facts": [f.model_dump(mode="json") for f in facts]}

    return server
