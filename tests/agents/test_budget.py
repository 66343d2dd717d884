"""Token budgets: a hard limit stops the task, keeps its steps, and is shared by a plan's subtasks."""

from pathlib import Path

import anyio
import pytest
from _writers import NOTES, writer_model

from mcphive import Hive, Settings, TaskStatus
from mcphive.inference.testing import FunctionModel, ScriptedModel, final, tool_call

pytestmark = pytest.mark.anyio


async def test_a_task_over_its_hard_budget_stops_and_keeps_what_it_did(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([tool_call("read_file", path="README.md"), final("a long summary that will not fit")])
    tight = settings.model_copy(update={"max_task_tokens": 20, "max_model_steps": 1})
    async with Hive.open(tight, model=model) as hive:
        handle = await hive.submit("lint the code", workspace=sample_workspace, agent="code")
        result = await handle.wait()
        events = [e for e in hive.events_so_far(handle.id) if e.kind == "model"]
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and "over its budget of 20" in result.error
    assert [c.tool for c in result.tool_calls] == ["ruff_check", "read_file"]  # the work done so far is kept
    assert any("warning" in e.data for e in events)


async def test_a_plans_subtasks_draw_on_one_budget(settings: Settings, sample_workspace: Path) -> None:
    model = FunctionModel(lambda r: "ok" if r.tool_choice == "none" else tool_call("finish"))  # ~26 tokens per subtask
    tight = settings.model_copy(update={"max_task_tokens": 40, "workers": 1})
    async with Hive.open(tight, model=model) as hive:
        result = await hive.run("lint the code, then document it", workspace=sample_workspace)
    statuses = [s.status for s in result.subtasks]
    assert statuses[0] is TaskStatus.SUCCEEDED and statuses[1] is TaskStatus.FAILED
    assert result.subtasks[1].error is not None and "budget of 40" in result.subtasks[1].error


async def test_a_resumed_task_counts_what_it_spent_before_it_stopped(
    settings: Settings, sample_workspace: Path
) -> None:
    # The writer's first choice (15 tokens) is spent before the task parks for approval; after the approval the run
    # resumes from its checkpoint: a choice (15) and the summary (11) take it to 41, over 35 (26 on their own).
    tight = settings.model_copy(update={"max_task_tokens": 35})
    async with Hive.open(tight, model=writer_model(), workers=1, approval="writes") as hive:
        handle = await hive.submit("write release notes", workspace=sample_workspace, agent="code")
        with anyio.fail_after(120):
            while await handle.status() is not TaskStatus.AWAITING_APPROVAL:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        await hive.approve(handle.id)
        with anyio.fail_after(120):
            result = await handle.wait()
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and "used 41 tokens, over its budget of 35" in result.error
    assert (sample_workspace / NOTES).read_text() == "hello\n"  # the approved write was made and is kept
