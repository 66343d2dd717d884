"""A seventh agent from settings alone: no code, routed by its examples, using its scoped tools."""

from pathlib import Path

import pytest

from mcphive import ConfigError, Hive, Settings, TaskStatus
from mcphive.inference.testing import ScriptedModel, final, tool_call
from mcphive.settings import AgentConfig

pytestmark = pytest.mark.anyio

RELEASE = AgentConfig(
    name="release",
    description="Prepares releases: changelog entries and version bumps.",
    instructions="You are the release agent. Read the changelog and say what the next version should be.",
    examples=["prepare the release notes", "bump the version for the next release", "draft the changelog entry"],
    tools=["read_file", "list_files"],
    survey=[{"tool": "read_file", "arguments": {"path": "CHANGELOG.md"}}],
    rules=[r"(?i)\brelease\b"],
)


async def test_an_agent_defined_in_settings_is_routed_and_runs_its_survey(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([tool_call("finish"), final("next version: 0.3.0")])
    async with Hive.open(settings.model_copy(update={"agents": [RELEASE]}), model=model) as hive:
        route = await hive.route("cut a release for friday")
        result = await hive.run("cut a release for friday", workspace=sample_workspace)
    assert route.agent == "release" and route.stage == "rule"
    assert result.status is TaskStatus.SUCCEEDED and result.agent == "release"
    assert [(c.tool, c.chosen_by) for c in result.tool_calls] == [("read_file", "survey")]
    assert "You are the release agent" in model.requests[0].messages[0].content


async def test_an_agent_with_an_unknown_tool_is_a_config_error(settings: Settings) -> None:
    bad = RELEASE.model_copy(update={"tools": ["read_file", "deploy_to_prod"]})
    with pytest.raises(ConfigError, match="unknown tool\\(s\\) deploy_to_prod"):
        async with Hive.open(settings.model_copy(update={"agents": [bad]}), model=ScriptedModel([])):
            pass
