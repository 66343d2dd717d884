"""The memory server: recall of past tasks and knowledge-base facts, scoped to one principal."""

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcphive.mcp_servers.memory import build_memory_server
from mcphive.memory import EpisodicMemory
from mcphive.types import Principal, Task, TaskResult, TaskStatus

pytestmark = pytest.mark.anyio


async def test_facts_and_recall_never_cross_tenants(tmp_path: Path) -> None:
    memory = EpisodicMemory.open(f"sqlite:///{tmp_path / 'm.db'}")
    acme, other = Principal(tenant="acme"), Principal(tenant="other")
    for principal, text in ((acme, "rotate the payments token"), (other, "rotate the billing token")):
        task = Task(text=text, workspace=str(tmp_path), principal=principal)
        await memory.record_task(task)
        await memory.record_result(
            TaskResult(task_id=task.id, text=text, status=TaskStatus.SUCCEEDED, principal=principal)
        )
    try:
        async with Client(build_memory_server(memory, acme)) as client:
            asserted = await client.call_tool(
                "kb_assert", {"subject": "service:checkout", "predicate": "depends_on", "object": "service:payments"}
            )
            assert not asserted.is_error, asserted.content
            facts = await client.call_tool("kb_query", {"subject": "service:checkout"})
            recalled = await client.call_tool("recall_tasks", {"query": "rotate token"})
            empty = await client.call_tool("kb_assert", {"subject": "", "predicate": "p", "object": "o"})
        async with Client(build_memory_server(memory, other)) as client:
            foreign = await client.call_tool("kb_query", {"subject": "service:checkout"})
    finally:
        memory.close()
    assert facts.structured_content is not None
    assert [f["object"] for f in facts.structured_content["facts"]] == ["service:payments"]
    assert recalled.structured_content is not None
    assert [t["text"] for t in recalled.structured_content["tasks"]] == ["rotate the payments token"]
    assert empty.is_error
    assert foreign.structured_content == {"facts": []}


async def test_facts_are_superseded_retracted_and_queried_as_of_a_moment_over_mcp(tmp_path: Path) -> None:
    memory = EpisodicMemory.open(f"sqlite:///{tmp_path / 'm.db'}", functional_predicates=["owned_by"])
    acme = Principal(tenant="acme")
    try:
        async with Client(build_memory_server(memory, acme)) as client:

            async def call(tool: str, **arguments: object) -> dict[str, Any]:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, result.content
                assert result.structured_content is not None
                return result.structured_content

            first = await call("kb_assert", subject="module:prices", predicate="owned_by", object="team:pricing",
                               source="task:41", valid_from="2026-01-01T00:00:00Z")  # fmt: skip
            await call("kb_assert", subject="module:prices", predicate="owned_by", object="team:checkout",
                       valid_from="2026-02-01T00:00:00Z")  # fmt: skip
            await call("kb_assert", subject="service:checkout", predicate="depends_on", object="service:payments")
            await call("kb_assert", subject="service:checkout", predicate="depends_on", object="service:stock")
            await call("kb_assert", subject="service:checkout", predicate="depends_on", object="service:ledger",
                       supersede=True)  # fmt: skip
            retracted = await call("kb_retract", subject="service:checkout", predicate="depends_on")
            now = await call("kb_query", subject="module:prices")
            then = await call("kb_query", subject="module:prices", as_of="2026-01-15T00:00:00Z")
            history = await call("kb_query", subject="service:checkout", history=True)
            naive = await client.call_tool("kb_query", {"subject": "x", "as_of": "2026-01-15T00:00:00"})
    finally:
        memory.close()
    assert [f["object"] for f in now["facts"]] == ["team:checkout"]
    assert [(f["object"], f["source"], f["id"]) for f in then["facts"]] == [("team:pricing", "task:41", first["id"])]
    assert [f["object"] for f in retracted["retracted"]] == ["service:ledger"]
    assert sorted(f["object"] for f in history["facts"]) == ["service:ledger", "service:payments", "service:stock"]
    assert all(f["valid_to"] is not None for f in history["facts"])
    assert naive.is_error
    assert "time zone" in str(naive.content)
