"""Approval through the MCP host: ``run_task`` asks the user with an elicitation form when a task wants to write.

The 2026-07-28 era asks by returning InputRequiredResult (the client answers on a retry); the 2025 era sends
the elicitation request mid-call; a host that cannot ask gets the pending call back to decide with a tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _writers import NOTES, writer_model
from mcp import Client
from mcp.types import ElicitRequestParams, ElicitResult

from mcphive import Hive, Settings
from mcphive.mcp_servers.gateway import build_gateway

pytestmark = pytest.mark.anyio


class Host:
    """An MCP host's user: answers every approval form the same way and keeps the questions."""

    def __init__(self, approve: bool | None) -> None:
        self.approve, self.questions = approve, []

    async def __call__(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        self.questions.append(params.message)
        if self.approve is None:
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"approve": self.approve, "reason": "from the host"})


ARGS = {"text": "write release notes", "agent": "code"}


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_the_host_user_approves_and_the_task_writes(
    settings: Settings, sample_workspace: Path, mode: str
) -> None:
    host = Host(approve=True)
    async with (
        Hive.open(settings, model=writer_model(), approval="writes") as hive,
        Client(build_gateway(hive), mode=mode, elicitation_callback=host) as client,  # type: ignore[arg-type]
    ):
        result = await client.call_tool("run_task", ARGS | {"workspace": str(sample_workspace)})
    assert not result.is_error, result.content
    assert result.structured_content is not None and result.structured_content["status"] == "succeeded"
    assert len(host.questions) == 1 and "write_file" in host.questions[0] and NOTES in host.questions[0]
    assert (sample_workspace / NOTES).read_text() == "hello\n"


@pytest.mark.parametrize("approve", [False, None], ids=["rejected", "declined"])
async def test_a_rejected_or_declined_form_means_the_call_is_never_made(
    settings: Settings, sample_workspace: Path, approve: bool | None
) -> None:
    host = Host(approve=approve)
    async with (
        Hive.open(settings, model=writer_model(), approval="writes") as hive,
        Client(build_gateway(hive), elicitation_callback=host) as client,  # type: ignore[arg-type]
    ):
        result = await client.call_tool("run_task", ARGS | {"workspace": str(sample_workspace)})
    assert result.structured_content is not None and result.structured_content["status"] == "succeeded"
    assert len(host.questions) == 1
    assert not (sample_workspace / NOTES).exists()


async def test_a_host_that_cannot_ask_gets_the_pending_call_to_decide_with_a_tool(
    settings: Settings, sample_workspace: Path
) -> None:
    async with (
        Hive.open(settings, model=writer_model(), approval="writes") as hive,
        Client(build_gateway(hive)) as client,
    ):
        parked = await client.call_tool("run_task", ARGS | {"workspace": str(sample_workspace)})
        assert parked.structured_content is not None
        assert parked.structured_content["status"] == "awaiting_approval"
        task_id = parked.structured_content["task_id"]
        assert parked.structured_content["pending_approval"]["tool"] == "write_file"
        await client.call_tool("approve_task", {"task_id": task_id})
        done = await client.call_tool("task_result", {"task_id": task_id})
    assert done.structured_content is not None and done.structured_content["status"] == "succeeded"
    assert (sample_workspace / NOTES).read_text() == "hello\n"
