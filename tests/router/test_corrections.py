"""Learning from corrections: a corrected task's text routes to the corrected agent, even after a restart."""

from pathlib import Path

import pytest
from _writers import finisher_model

from mcphive import Hive, Settings, UnknownAgent
from mcphive.inference.testing import ScriptedModel, final, tool_call

pytestmark = pytest.mark.anyio

TEXT = "the quarterly numbers look off in the pricing export"


async def test_a_correction_is_used_at_once_and_survives_a_restart(settings: Settings, sample_workspace: Path) -> None:
    model = ScriptedModel([tool_call("finish"), final("x")])
    async with Hive.open(settings, model=model) as hive:
        before = await hive.route(TEXT)
        done = await hive.run(TEXT, workspace=sample_workspace, agent="code")
        target = "ops" if before.agent != "ops" else "docs"
        await hive.correct(done.task_id[:8], target)
        assert (await hive.route(TEXT)).agent == target
    async with Hive.open(settings, model=ScriptedModel([])) as hive:
        assert (await hive.route(TEXT)).agent == target
    assert (settings.data_dir / "routing" / "corrections.jsonl").read_text().count(target) == 1


async def test_correcting_to_an_unknown_agent_is_refused(settings: Settings) -> None:
    async with Hive.open(settings, model=ScriptedModel([])) as hive:
        with pytest.raises(UnknownAgent):
            await hive.correct("abc", "sales")


async def test_correcting_a_plans_step_teaches_its_clause_not_the_brief(
    settings: Settings, sample_workspace: Path
) -> None:
    model = finisher_model()
    async with Hive.open(settings, model=model) as hive:
        done = await hive.run("lint the code and scan for leaked credentials", workspace=sample_workspace)
        step = done.subtasks[1]
        assert step.agent == "security" and "This is one step of the request" in step.text
        assert (await hive.route("scan for leaked credentials")).stage == "rule"  # a security keyword rule
        await hive.correct(step.task_id, "ops")
        route = await hive.route("Scan for  leaked credentials.")
        assert (route.agent, route.stage) == ("ops", "correction")  # the correction wins over the rule
    async with Hive.open(settings, model=ScriptedModel([])) as hive:  # and still does after a restart
        assert (await hive.route("scan for leaked credentials")).agent == "ops"
        assert (await hive.route("scan for leaked AWS credentials")).agent == "security"  # other text: the rule
    learned = (settings.data_dir / "routing" / "corrections.jsonl").read_text()
    assert "scan for leaked credentials" in learned and "one step of the request" not in learned


async def test_a_compound_request_corrected_to_one_agent_runs_as_one_task(
    settings: Settings, sample_workspace: Path
) -> None:
    text = "lint the code and scan for leaked credentials"
    model = finisher_model()
    async with Hive.open(settings, model=model) as hive:
        planned = await hive.run(text, workspace=sample_workspace)
        assert [s.agent for s in planned.subtasks] == ["code", "security"]
        await hive.correct(planned.task_id, "security")
        assert await hive.plan(text) is None
        again = await hive.run(text, workspace=sample_workspace)
    assert again.subtasks == [] and again.agent == "security"
    assert again.route is not None and again.route.stage == "correction"
