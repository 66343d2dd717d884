"""The gateway's handle-and-poll tools, progress, resources and prompts, through an in-process MCP client."""

import json
from pathlib import Path

import anyio
import pytest
from _writers import finisher_model
from mcp import Client

from mcphive import Hive, Settings
from mcphive.inference.testing import ScriptedModel, final, tool_call
from mcphive.mcp_servers.gateway import build_gateway

pytestmark = pytest.mark.anyio


async def test_run_task_streams_progress_while_the_task_runs(settings: Settings, sample_workspace: Path) -> None:
    messages: list[str] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    model = ScriptedModel([tool_call("finish"), final("ok")])
    async with Hive.open(settings, model=model) as hive, Client(build_gateway(hive)) as client:
        result = await client.call_tool(
            "run_task",
            {"text": "lint the code", "workspace": str(sample_workspace), "agent": "code"},
            progress_callback=progress,
        )
    assert not result.is_error, result.content
    assert messages[0].startswith("routed to code") and "survey: ruff_check" in messages
    assert messages[-1] == "finished: succeeded"


async def test_submit_then_poll_status_with_its_log_then_fetch_the_result(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([tool_call("finish"), final("polled")])
    async with Hive.open(settings, model=model) as hive, Client(build_gateway(hive)) as client:
        submitted = await client.call_tool(
            "submit_task", {"text": "lint", "workspace": str(sample_workspace), "agent": "code"}
        )
        assert submitted.structured_content is not None
        task_id = submitted.structured_content["task_id"]
        with anyio.fail_after(60):
            result = await client.call_tool("task_result", {"task_id": task_id})
        status = await client.call_tool("task_status", {"task_id": task_id})
    assert result.structured_content is not None and result.structured_content["answer"] == "polled"
    assert status.structured_content is not None
    assert status.structured_content["status"] == "succeeded"
    assert "survey: ruff_check" in status.structured_content["log"]


async def test_resources_list_agents_recent_tasks_and_one_tasks_record(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([tool_call("finish"), final("recorded")])
    async with Hive.open(settings, model=model) as hive, Client(build_gateway(hive)) as client:
        done = await hive.run("lint", workspace=sample_workspace, agent="code")
        agents = await client.read_resource("mcphive://agents")
        recent = await client.read_resource("mcphive://tasks/recent")
        one = await client.read_resource(f"mcphive://tasks/{done.task_id}")
    assert [a["name"] for a in json.loads(agents.contents[0].text)][:2] == ["code", "docs"]  # type: ignore[union-attr]
    assert json.loads(recent.contents[0].text)[0]["id"] == done.task_id  # type: ignore[union-attr]
    assert json.loads(one.contents[0].text)["answer"] == "recorded"  # type: ignore[union-attr]


async def test_prompts_are_offered_and_filled_with_the_workspace(settings: Settings) -> None:
    async with Hive.open(settings, model=ScriptedModel([])) as hive, Client(build_gateway(hive)) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("security_review", {"workspace": "/src/app"})
    assert names == {"security_review", "fix_failing_tests", "triage_logs"}
    assert "/src/app" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_a_plans_result_summarises_each_subtasks_tool_calls_like_a_tasks(
    settings: Settings, sample_workspace: Path
) -> None:
    model = finisher_model()
    async with Hive.open(settings, model=model) as hive, Client(build_gateway(hive)) as client:
        got = await client.call_tool(
            "run_task", {"text": "lint the code and scan for leaked credentials", "workspace": str(sample_workspace)}
        )
    assert not got.is_error, got.content
    brief = got.structured_content
    assert brief is not None and [s["agent"] for s in brief["subtasks"]] == ["code", "security"]
    for sub in brief["subtasks"]:  # the survey's calls, summarised; full outputs stay in the task's record
        assert "steps" not in sub and sub["tool_calls"] and set(sub["tool_calls"][0]) == {
            "tool", "chosen_by", "is_error", "summary"
        }  # fmt: skip
    assert brief["findings"], "the subtasks' findings roll up into the plan's"
