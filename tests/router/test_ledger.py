"""The idempotency ledger: a task that runs again (re-delivered, resumed) does not repeat a writing call
it completed; the recorded outcome stands in for it."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from _writers import finisher_model

from mcphive import Hive, Settings, TaskStatus
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, tool_call
from mcphive.router.ledger import ToolLedger
from mcphive.router.manager import Parked

COUNTER = "counter.txt"


def appender_model() -> FunctionModel:
    """Appends a mark to counter.txt with replace_block (each execution adds one), then finishes.

    ``old`` stays a prefix of ``new``, so a repeated execution would apply again and leave a second mark.
    """

    def reply(request: ChatRequest) -> ChatResponse | str:
        if request.tool_choice == "none":
            return "done"
        if "replace_block" in (request.messages[-1].content or ""):
            return tool_call("finish")
        return tool_call("replace_block", path=COUNTER, old="count", new="count +")

    return FunctionModel(reply)


def executions(workspace: Path) -> int:
    return (workspace / COUNTER).read_text().count("+")


@pytest.mark.anyio
async def test_a_rerun_task_returns_the_recorded_write_instead_of_writing_again(
    settings: Settings, sample_workspace: Path
) -> None:
    (sample_workspace / COUNTER).write_text("count\n")
    async with Hive.open(settings, model=appender_model()) as hive:
        handle = await hive.submit("mark the counter", workspace=sample_workspace, agent="code")
        with anyio.fail_after(120):
            first = await handle.wait()
        assert executions(sample_workspace) == 1
        # The same task handed out again (as after its worker died): the write is in the ledger.
        with anyio.fail_after(120):
            again = await hive.manager.execute(handle.task)
        assert not isinstance(again, Parked)
        assert executions(sample_workspace) == 1
        # A different task making the same call is not covered by this task's ledger: it writes.
        with anyio.fail_after(120):
            other = await hive.run("mark the counter", workspace=sample_workspace, agent="code")
        assert executions(sample_workspace) == 2
        ledger = ToolLedger(hive.memory.engine)
        recorded = ledger.calls(handle.id)
    assert first.status is again.status is other.status is TaskStatus.SUCCEEDED
    write = first.tool_calls[-1]
    assert write.tool == "replace_block" and not write.is_error
    replayed = again.tool_calls[-1]
    assert (replayed.tool, replayed.result, replayed.structured) == (write.tool, write.result, write.structured)
    assert [(r["tool"], r["arguments"]) for r in recorded] == [
        ("replace_block", {"path": COUNTER, "old": "count", "new": "count +"})
    ]
    assert recorded[0]["call_key"].startswith("1:")  # step 1: after the survey's ruff_check


@pytest.mark.anyio
async def test_read_only_calls_are_not_recorded(settings: Settings, sample_workspace: Path) -> None:
    model = finisher_model()
    async with Hive.open(settings, model=model) as hive:
        with anyio.fail_after(120):
            result = await hive.run("lint the code", workspace=sample_workspace, agent="code")
        recorded = ToolLedger(hive.memory.engine).calls(result.task_id)
    assert [c.tool for c in result.tool_calls] == ["ruff_check"]
    assert recorded == []


@pytest.mark.anyio
async def test_the_ledger_keeps_no_raw_credential_of_a_write(settings: Settings, sample_workspace: Path) -> None:
    key = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key id: detect-secrets flags its shape

    def reply(request: ChatRequest) -> ChatResponse | str:
        if request.tool_choice == "none":
            return "done"
        if "write_file" in (request.messages[-1].content or ""):
            return tool_call("finish")
        return tool_call("write_file", path="settings.env", content=f"aws_access_key_id = '{key}'\n")

    async with Hive.open(settings, model=FunctionModel(reply)) as hive:
        with anyio.fail_after(120):
            result = await hive.run("store the deploy settings", workspace=sample_workspace, agent="code")
        recorded = ToolLedger(hive.memory.engine).calls(result.task_id)
    assert key in (sample_workspace / "settings.env").read_text()  # the write itself is what the model asked
    assert [r["tool"] for r in recorded] == ["write_file"]
    assert key not in str(recorded) and "[REDACTED:AWS Access Key]" in recorded[0]["arguments"]["content"]
