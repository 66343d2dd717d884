"""The memory server: agents recall past tasks and assert or query knowledge-base facts over MCP.

Every call is scoped to the principal the server was built for: one tenant never sees
another's episodes or facts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcphive import __version__
from mcphive.errors import ToolError, UsageError
from mcphive.mcp_servers._errors import tool_errors
from mcphive.memory import EpisodicMemory, RecallScope
from mcphive.types import Principal

if TYPE_CHECKING:
    from mcphive.memory import Summarizer

__all__ = ["build_memory_server"]


def build_memory_server(
    memory: EpisodicMemory, principal: Principal, *, summarizer: Summarizer | None = None
) -> MCPServer:
    """An MCP server named ``memory`` over ``memory`` and its knowledge base, for ``principal``.

    The knowledge base treats ``memory.functional_predicates`` as one-object-at-a-time relations;
    ``summarizer`` writes consolidated notes (default: extractive, no model).
    """
    kb = memory.knowledge
    server: MCPServer = MCPServer(
        "memory", version=__version__, instructions="Recall past tasks; assert, retract and query facts."
    )
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True)

    @server.tool(title="Recall past tasks", annotations=read_only, structured_output=True)
    async def recall_tasks(query: str, k: int = 5) -> dict[str, Any]:
        """Past tasks whose text or answer match the query, best first."""
        rows = await memory.recall(query, min(max(k, 1), 50), principal=principal)
        return {"tasks": [r.model_dump(mode="json") for r in rows]}

    @server.tool(
        title="Record a fact",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        structured_output=True,
    )
    @tool_errors
    async def kb_assert(
        subject: str,
        predicate: str,
        object: str,
        source: str = "",
        supersede: bool | None = None,
        valid_from: datetime | None = None,
    ) -> dict[str, Any]:
        """Record a fact as subject-predicate-object (e.g. service:checkout depends_on service:payments).

        supersede=true ends the other current facts of this subject and predicate (they stay in the
        history); left out, it does so for functional predicates only. valid_from (ISO 8601 with a
        zone) says since when the fact holds; default now.
        """
        try:
            fact = await kb.assert_fact(
                subject,
                predicate,
                object,
                source=source,
                tenant=principal.tenant,
                supersede=supersede,
                valid_from=valid_from,
            )
        except UsageError as e:
            raise ToolError(str(e)) from e
        return fact.model_dump(mode="json")

    @server.tool(
        title="Retract a fact",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        structured_output=True,
    )
    @tool_errors
    async def kb_retract(subject: str, predicate: str, object: str | None = None) -> dict[str, Any]:
        """End the current facts of a subject and predicate (only the one with this object when given).

        Nothing is deleted: retracted facts stay visible to kb_query with as_of or history.
        """
        try:
            facts = await kb.retract(subject, predicate, object, tenant=principal.tenant)
        except UsageError as e:
            raise ToolError(str(e)) from e
        return {"retracted": [f.model_dump(mode="json") for f in facts]}

    @server.tool(title="Query facts", annotations=read_only, structured_output=True)
    @tool_errors
    async def kb_query(
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        as_of: datetime | None = None,
        history: bool = False,
    ) -> dict[str, Any]:
        """Facts matching a subject, predicate and/or object (any may be left out), valid now.

        as_of (ISO 8601 with a zone) shows the facts valid at that moment; history=true shows every
        version, including superseded and retracted ones.
        """
        try:
            facts = await kb.query(subject, predicate, object, tenant=principal.tenant, as_of=as_of, history=history)
        except UsageError as e:
            raise ToolError(str(e)) from e
        return {"facts": [f.model_dump(mode="json") for f in facts]}

    @server.tool(
        title="Consolidate old episodes",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        structured_output=True,
    )
    @tool_errors
    async def consolidate_memory(older_than_days: float | None = None, max_notes: int | None = None) -> dict[str, Any]:
        """Summarise this tenant's episodes older than the retention age into compact notes.

        The episodes stay recallable; each note lists the ids of those it summarises.
        older_than_days defaults to the configured retention.
        """
        try:
            if older_than_days is not None and older_than_days <= 0:
                raise UsageError(f"older_than_days must be positive, got {older_than_days}")
            report = await memory.consolidate(
                RecallScope(tenant=principal.tenant),
                older_than=timedelta(days=older_than_days) if older_than_days is not None else None,
                summarizer=summarizer,
                max_notes=max_notes,
            )
        except UsageError as e:
            raise ToolError(str(e)) from e
        return {
            "notes": [{"id": n.id, "thread": n.thread, "text": n.text, "sources": n.metadata["sources"]}
                      for n in report.notes],
            "consolidated": report.consolidated,
            "methods": report.methods,
        }  # fmt: skip

    return server
