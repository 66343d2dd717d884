"""The RAG MCP server, driven through a real in-process MCP client."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from mcphive.embeddings import Embedder
from mcphive.mcp_servers.rag import build_rag_server
from mcphive.rag import DocumentStore, ingest

from .corpus import write_corpus

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> DocumentStore:
    store = DocumentStore(tmp_path / "db", embedder)
    ingest(store, write_corpus(tmp_path / "ws"))
    return store


async def test_search_docs_returns_structured_hits_with_source_and_lines(store: DocumentStore) -> None:
    with anyio.fail_after(30):
        async with Client(build_rag_server(store)) as client:
            result = await client.call_tool("search_docs", {"query": "zqx_frobnicate_v7", "k": 2})
    assert not result.is_error
    assert result.structured_content is not None
    hits = result.structured_content["hits"]
    assert len(hits) == 2
    assert hits[0]["source"] == "pkg/widgets.py"
    assert (hits[0]["start_line"], hits[0]["end_line"]) == (9, 11)
    assert hits[0]["text"].startswith("def zqx_frobnicate_v7(")
    assert "zqx_frobnicate_v7" in (hits[0]["heading"] or "")  # the citation names the definition
    assert hits[0]["score"] >= hits[1]["score"]


async def test_list_sources_names_every_ingested_document(store: DocumentStore) -> None:
    with anyio.fail_after(30):
        async with Client(build_rag_server(store)) as client:
            result = await client.call_tool("list_sources", {})
    assert not result.is_error
    assert result.structured_content == {
        "sources": ["NOTES.txt", "docs/guide.md", "pkg/widgets.py"],
        "chunks": store.count(),
    }


async def test_tools_are_titled_and_read_only(store: DocumentStore) -> None:
    with anyio.fail_after(30):
        async with Client(build_rag_server(store)) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"search_docs", "list_sources"}
    for tool in tools.values():
        assert tool.title
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.output_schema is not None


@pytest.mark.parametrize(
    "arguments", [{"query": ""}, {"query": "   "}, {"query": "x", "k": 0}, {"query": "x", "k": 51}]
)
async def test_invalid_search_arguments_come_back_as_tool_errors(
    store: DocumentStore, arguments: dict[str, object]
) -> None:
    with anyio.fail_after(30):
        async with Client(build_rag_server(store)) as client:
            result = await client.call_tool("search_docs", arguments)
    assert result.is_error
    assert result.content


async def test_a_blank_query_error_tells_the_model_what_to_do(store: DocumentStore) -> None:
    with anyio.fail_after(30):
        async with Client(build_rag_server(store)) as client:
            result = await client.call_tool("search_docs", {"query": "   "})
    assert result.is_error
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "empty search query; pass the words or identifier to look for" in text
