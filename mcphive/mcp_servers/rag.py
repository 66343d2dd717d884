"""The RAG MCP server: hybrid search over the ingested documents, as read-only MCP tools.

Tools:
    ``search_docs(query, k)``: the best-matching chunks with their source file and line span.
    ``list_sources()``: every ingested document.

The store is synchronous, so every call runs in a worker thread and the event loop keeps serving.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcphive import __version__
from mcphive.errors import ToolError, UsageError
from mcphive.rag.store import DocumentStore, Hit

__all__ = ["DocHit", "SearchResults", "SourceList", "build_rag_server"]

MAX_K = 50
MAX_QUERY_CHARS = 2000


class DocHit(BaseModel):
    """One search hit as the model sees it."""

    text: str = Field(description="the chunk's text")
    source: str = Field(description="document path, relative to the ingested folder")
    start_line: int = Field(description="first line of the chunk in the source, 1-based")
    end_line: int = Field(description="last line of the chunk, inclusive")
    score: float = Field(description="fused relevance score; higher is better")
    heading: str | None = Field(None, description="the section (Markdown 'A > B') or definition the chunk is in")

    @classmethod
    def from_hit(cls, hit: Hit) -> DocHit:
        """Project a store hit onto the tool's output shape."""
        return cls(
            text=hit.text,
            source=hit.source,
            start_line=hit.start_line,
            end_line=hit.end_line,
            score=hit.score,
            heading=hit.heading,
        )


class SearchResults(BaseModel):
    """Result of ``search_docs``."""

    query: str
    hits: list[DocHit]


class SourceList(BaseModel):
    """Result of ``list_sources``."""

    sources: list[str]
    chunks: int = Field(description="number of stored chunks across all sources")


def build_rag_server(store: DocumentStore) -> MCPServer:
    """An MCP server named ``rag`` that searches ``store``.

    Args:
        store: the document store to expose (already ingested by the caller).

    Returns:
        The server; connect in-process with ``mcp.Client(server)`` or run it over a transport.
    """
    server = MCPServer(
        name="rag", version=__version__, instructions="Search the project's ingested documents and code."
    )
    read_only = ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )

    @server.tool(
        title="Search documents",
        description="Find the passages of the ingested documents and code that best match a question or an exact "
        "identifier (hybrid: meaning + keywords). Returns text with its source file and line span.",
        annotations=read_only,
    )
    async def search_docs(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="question or identifier")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="how many hits to return")] = 5,
    ) -> SearchResults:
        try:
            hits = await anyio.to_thread.run_sync(lambda: store.search(query, k))
        except (UsageError, ToolError) as e:
            raise MCPToolError(str(e)) from e
        return SearchResults(query=query, hits=[DocHit.from_hit(hit) for hit in hits])

    @server.tool(
        title="List documents",
        description="List every ingested document (paths relative to the ingested folder).",
        annotations=read_only,
    )
    async def list_sources() -> SourceList:
        sources, chunks = await anyio.to_thread.run_sync(lambda: (store.sources(), store.count()))
        return SourceList(sources=sources, chunks=chunks)

    return server
