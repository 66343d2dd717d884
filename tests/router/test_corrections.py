"""Learning from corrections: a corrected task's text routes to the corrected agent, even after a restart."""

from pathlib import Path

import pytest

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
