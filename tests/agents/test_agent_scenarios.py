"""One end-to-end scenario per specialist: routed by its text, the deterministic survey, then a tool the
(scripted) model chooses — every tool runs for real through MCP on a copy of the example workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from mcphive import Hive, Settings, TaskStatus
from mcphive.agents.spec import load_specs
from mcphive.inference.testing import ScriptedModel, final, tool_call

pytestmark = pytest.mark.anyio

# agent -> (task text as a user would type it, the model's chosen tool and arguments, a word its result must hold)
SCENARIOS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "code": (
        "check pricefeed/cli.py for syntax errors and lint problems",
        "python_syntax",
        {"path": "."},
        "files_checked",
    ),
    "docs": ("which public functions lack docstrings? document the API", "api_reference", {"path": "."}, "pricefeed"),
    "test": ("run the test suite and report coverage", "coverage_report", {"path": "."}, "pricefeed"),
    "infra": ("lint the Dockerfile and check the kubernetes manifests", "read_file", {"path": "Dockerfile"}, "FROM"),
    "ops": ("analyze the application logs for error spikes", "search_text", {"pattern": "ERROR"}, "app.log"),
    "security": ("scan the project for hard-coded secrets", "search_text", {"pattern": "password"}, "password"),
}


@pytest.mark.parametrize("agent", list(SCENARIOS))
async def test_each_specialist_surveys_then_runs_the_models_choice_for_real(
    settings: Settings, sample_workspace: Path, agent: str
) -> None:
    text, tool, arguments, expected = SCENARIOS[agent]
    spec = load_specs()[agent]
    assert tool in spec.tools and tool not in {c.tool for c in spec.survey}  # a model's own choice, in its scope
    model = ScriptedModel([tool_call(tool, **arguments), final(f"{agent} summary")])
    async with Hive.open(settings.model_copy(update={"max_model_steps": 1}), model=model) as hive:
        with anyio.fail_after(300):
            result = await hive.run(text, workspace=sample_workspace)
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert result.agent == agent, result.route
    kinds = [(s.kind, [c.tool for c in s.tool_calls]) for s in result.steps]
    assert kinds == [*(("survey", [c.tool]) for c in spec.survey), ("model", [tool]), ("final", [])]
    chosen = result.tool_calls[-1]
    assert chosen.chosen_by == "model" and not chosen.is_error, chosen.result
    assert expected in chosen.result
    # The survey found the agent's planted problems and the typed outcome carries them on.
    assert result.findings, f"{agent}: no findings from its survey"
    assert result.answer == f"{agent} summary"
