"""Approval as a durable task state: a task that wants to write parks, frees its worker, and runs the call
only once someone approves it (the SDK, its callback, the CLI); a rejected call is never made."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from _writers import NOTES, finisher_model, writer_model
from mcp import Client

from mcphive import Hive, Settings, TaskStatus, UsageError
from mcphive.cli import main
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, tool_call
from mcphive.mcp_servers.gateway import build_gateway
from mcphive.router.queue_sql import DurableQueue
from mcphive.types import ApprovalDecision, ApprovalRequest


async def until_status(hive: Hive, task_id: str, status: TaskStatus) -> None:
    with anyio.fail_after(120):
        # The status is in the task's record, which another process may write: polling is the only signal.
        while await hive.status(task_id) is not status:  # noqa: ASYNC110
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_parked_task_frees_its_worker_and_writes_only_after_approval(
    settings: Settings, sample_workspace: Path
) -> None:
    model = writer_model()
    async with Hive.open(settings, model=model, workers=1, approval="writes") as hive:
        parked = await hive.submit("write release notes", workspace=sample_workspace, agent="code")
        await until_status(hive, parked.id, TaskStatus.AWAITING_APPROVAL)
        request = await hive.pending_approval(parked.id)
        assert request is not None
        assert (request.server, request.tool) == ("workspace", "write_file")
        assert request.arguments == {"path": NOTES, "content": "hello\n"}
        assert not (sample_workspace / NOTES).exists()
        # The only worker is free: another task runs to the end while the first one waits.
        other = await hive.submit("lint the code", workspace=sample_workspace, agent="code")
        with anyio.fail_after(120):
            assert (await other.wait()).status is TaskStatus.SUCCEEDED
        assert await parked.status() is TaskStatus.AWAITING_APPROVAL
        calls_before = len(model.requests)
        approved = await hive.approve(parked.id[:10])
        with anyio.fail_after(120):
            result = await parked.wait()
    assert approved.call_key == request.call_key
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert (sample_workspace / NOTES).read_text() == "hello\n"
    assert [c.tool for c in result.tool_calls] == ["ruff_check", "write_file"]
    assert not result.tool_calls[-1].is_error
    # Resumed from the checkpoint at the write: one choice after it and the summary, no survey or first choice.
    assert len(model.requests) - calls_before == 2


@pytest.mark.anyio
async def test_a_rejected_call_is_not_made_and_the_agent_is_told_who_rejected_it(
    settings: Settings, sample_workspace: Path
) -> None:
    async with Hive.open(settings, model=writer_model(), approval="writes") as hive:
        handle = await hive.submit("write release notes", workspace=sample_workspace, agent="code")
        await until_status(hive, handle.id, TaskStatus.AWAITING_APPROVAL)
        await hive.reject(handle.id, "not in this release", by="alice")
        with anyio.fail_after(120):
            result = await handle.wait()
    assert result.status is TaskStatus.SUCCEEDED
    assert not (sample_workspace / NOTES).exists()
    rejected = result.tool_calls[-1]
    assert rejected.tool == "write_file" and rejected.is_error
    assert rejected.result.startswith("rejected by alice: not in this release")


@pytest.mark.anyio
async def test_the_callback_answers_for_the_hive(settings: Settings, sample_workspace: Path) -> None:
    asked: list[ApprovalRequest] = []

    async def on_approval(request: ApprovalRequest) -> ApprovalDecision:
        asked.append(request)
        return ApprovalDecision(approved=True, by="bot", reason="notes are fine")

    async with Hive.open(settings, model=writer_model(), approval="writes", on_approval=on_approval) as hive:
        with anyio.fail_after(120):
            result = await hive.run("write release notes", workspace=sample_workspace, agent="code")
    assert result.status is TaskStatus.SUCCEEDED
    assert [r.tool for r in asked] == ["write_file"]
    assert (sample_workspace / NOTES).read_text() == "hello\n"


@pytest.mark.anyio
async def test_writes_run_without_asking_when_approval_is_off(settings: Settings, sample_workspace: Path) -> None:
    async with Hive.open(settings, model=writer_model()) as hive:
        with anyio.fail_after(120):
            result = await hive.run("write release notes", workspace=sample_workspace, agent="code")
    assert result.status is TaskStatus.SUCCEEDED
    assert (sample_workspace / NOTES).exists()


@pytest.mark.anyio
async def test_deciding_on_an_unknown_or_running_task_is_a_usage_error(
    settings: Settings, sample_workspace: Path
) -> None:
    async with Hive.open(settings, model=finisher_model(), approval="writes") as hive:
        with pytest.raises(UsageError, match="no task with id"):
            await hive.approve("feedface")
        with anyio.fail_after(120):
            done = await hive.run("lint the code", workspace=sample_workspace, agent="code")
        with pytest.raises(UsageError, match="succeeded, not awaiting approval"):
            await hive.reject(done.task_id, "too late")


@pytest.mark.anyio
async def test_a_task_parked_by_a_worker_process_is_approved_from_the_cli(
    settings: Settings, sample_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    durable = settings.model_copy(update={"queue": "sqlite", "queue_poll_s": 0.05, "approval": "writes"})
    async with (
        Hive.open(durable, model=writer_model(), workers=1),
        Hive.open(durable, model=finisher_model(), workers=0) as front,
    ):
        handle = await front.submit("write release notes", workspace=sample_workspace, agent="code")
        await until_status(front, handle.id, TaskStatus.AWAITING_APPROVAL)
        queue = DurableQueue.open(durable.queue_database_url)
        try:
            entry = await queue.entry(handle.id)
        finally:
            queue.close()
        assert entry is not None and entry.state == "awaiting_approval" and entry.lease_owner is None

        data_dir = str(durable.data_dir)
        env = ["--data-dir", data_dir]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MCPHIVE_QUEUE", "sqlite")
            assert await anyio.to_thread.run_sync(main, [*env, "--json", "history"]) == 0
            listed = json.loads(capsys.readouterr().out)
            assert [t["status"] for t in listed if t["id"] == handle.id] == ["awaiting_approval"]
            code = await anyio.to_thread.run_sync(main, [*env, "--json", "approve", handle.id[:8]])
            assert code == 0
            approved = json.loads(capsys.readouterr().out)
            assert approved["tool"] == "write_file" and approved["approved"] is True
            with anyio.fail_after(120):
                result = await handle.wait()
            assert await anyio.to_thread.run_sync(main, [*env, "approve", handle.id]) == 2
            assert "not awaiting approval" in capsys.readouterr().err
            assert await anyio.to_thread.run_sync(main, [*env, "reject", "nosuchtask"]) == 2
            assert "no task with id" in capsys.readouterr().err
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert (sample_workspace / NOTES).read_text() == "hello\n"


@pytest.mark.anyio
async def test_the_gateway_shows_the_pending_call_and_decides_on_it(settings: Settings, sample_workspace: Path) -> None:
    async with (
        Hive.open(settings, model=writer_model(), approval="writes") as hive,
        Client(build_gateway(hive)) as client,
    ):
        arguments = {"text": "write release notes", "workspace": str(sample_workspace), "agent": "code"}
        submitted = await client.call_tool("submit_task", arguments)
        assert submitted.structured_content is not None
        task_id = submitted.structured_content["task_id"]
        await until_status(hive, task_id, TaskStatus.AWAITING_APPROVAL)
        status = await client.call_tool("task_status", {"task_id": task_id})
        wrong = await client.call_tool("approve_task", {"task_id": "feedface"})
        decided = await client.call_tool("reject_task", {"task_id": task_id, "reason": "no notes"})
        again = await client.call_tool("reject_task", {"task_id": task_id})
        with anyio.fail_after(120):
            result = await client.call_tool("task_result", {"task_id": task_id})
    assert status.structured_content is not None
    pending = status.structured_content["pending_approval"]
    assert status.structured_content["status"] == "awaiting_approval"
    assert (pending["tool"], pending["arguments"]["path"]) == ("write_file", NOTES)
    assert wrong.is_error and "no task with id" in str(wrong.content)
    assert decided.structured_content is not None and decided.structured_content["approved"] is False
    assert again.is_error and "not awaiting approval" in str(again.content)
    assert result.structured_content is not None and result.structured_content["status"] == "succeeded"
    assert not (sample_workspace / NOTES).exists()


@pytest.mark.anyio
async def test_a_plan_parks_on_its_task_when_a_step_wants_to_write_and_resumes_after_approval(
    settings: Settings, sample_workspace: Path
) -> None:
    goals: list[str] = []

    def reply(request: ChatRequest) -> ChatResponse | str:
        goal = (
            next(m.content or "" for m in request.messages if m.role == "user").splitlines()[0].removeprefix("Task: ")
        )
        goals.append(goal)
        if request.tool_choice == "none":
            return "done"
        if goal.startswith("document") and NOTES not in (request.messages[-1].content or ""):
            return tool_call("write_file", path=NOTES, content="hello\n")
        return tool_call("finish")

    text = "scan for leaked credentials, then document them"  # the docs step waits for the security step
    async with Hive.open(settings, model=FunctionModel(reply), workers=1, approval="writes") as hive:
        handle = await hive.submit(text, workspace=sample_workspace)
        await until_status(hive, handle.id, TaskStatus.AWAITING_APPROVAL)
        request = await hive.pending_approval(handle.id)
        assert request is not None and request.task_id == handle.id  # asked on the plan's task, not a step's
        assert request.call_key.startswith("s2/") and request.tool == "write_file"
        assert not (sample_workspace / NOTES).exists()
        security_calls = sum(g.startswith("scan") for g in goals)
        await hive.approve(handle.id)
        with anyio.fail_after(120):
            result = await handle.wait()
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert [s.agent for s in result.subtasks] == ["security", "docs"]
    assert (sample_workspace / NOTES).read_text() == "hello\n"
    assert not result.subtasks[1].tool_calls[-1].is_error and result.subtasks[1].tool_calls[-1].tool == "write_file"
    # the step that had finished before the plan parked was not run again
    assert sum(g.startswith("scan") for g in goals) == security_calls == 2
