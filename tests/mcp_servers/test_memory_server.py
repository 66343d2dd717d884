"""The memory server: recall of past tasks and knowledge-base facts, scoped to one principal."""

from pathlib import Path

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
