"""Each agent returns a typed result — findings, changes, summary — that is stored and passed on to later steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcphive import Hive, Settings, TaskStatus
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, ScriptedModel, final, tool_call
from mcphive.outcome import SEVERITY_RANK, findings_of, merge_findings
from mcphive.types import Finding, Step, ToolCall

pytestmark = pytest.mark.anyio


def finishes(request: ChatRequest) -> ChatResponse | str:
    """A model that stops after the survey and says so."""
    return "done" if request.tool_choice == "none" else tool_call("finish")


def _ranks(findings: list[Finding]) -> list[int]:
    return [SEVERITY_RANK[f.severity] for f in findings]


async def test_the_code_agents_findings_are_typed_ranked_and_stored(settings: Settings, sample_workspace: Path) -> None:
    async with Hive.open(settings, model=FunctionModel(finishes)) as hive:
        result = await hive.run("lint the code", workspace=sample_workspace, agent="code")
        recorded = await hive.memory.get(result.task_id)
    assert result.status is TaskStatus.SUCCEEDED, result.error
    rules = {(f.file, f.rule) for f in result.findings}
    assert {("pricefeed/client.py", "F821"), ("pricefeed/cache.py", "B006"), ("pricefeed/cache.py", "F401")} <= rules
    assert _ranks(result.findings) == sorted(_ranks(result.findings))
    assert result.findings[0].severity == "high" and result.findings[0].rule == "F821"
    assert all(f.tool == "ruff" for f in result.findings)
    assert result.changes == []
    assert result.summary.startswith("ruff_check: ruff: ") and "F821" in result.summary
    assert recorded is not None
    assert recorded.findings == result.findings and recorded.summary == result.summary


async def test_a_tool_run_again_on_an_overlapping_path_does_not_double_the_findings(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([tool_call("ruff_check", path="pricefeed"), tool_call("finish"), final("done")])
    async with Hive.open(settings, model=model) as hive:
        result = await hive.run("lint the code", workspace=sample_workspace, agent="code")
    raw = [f for call in result.tool_calls for f in (call.structured or {}).get("findings", [])]
    assert [c.tool for c in result.tool_calls] == ["ruff_check", "ruff_check"]
    assert len(raw) == 2 * len(result.findings) > 0  # every violation lives under pricefeed/, reported twice


async def test_an_edit_is_a_typed_change_and_the_fix_reaches_the_file(
    settings: Settings, sample_workspace: Path
) -> None:
    edit = tool_call(
        "replace_block",
        path="pricefeed/pricing.py",
        old="quantity > BULK_THRESHOLD",
        new="quantity >= BULK_THRESHOLD",
    )
    model = ScriptedModel([edit, tool_call("finish"), final("fixed the off-by-one")])
    async with Hive.open(settings, model=model) as hive:
        result = await hive.run("fix the bulk discount", workspace=sample_workspace, agent="code")
        recorded = await hive.memory.get(result.task_id)
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert "quantity >= BULK_THRESHOLD" in (sample_workspace / "pricefeed" / "pricing.py").read_text()
    changed = [(c.path, c.action, c.tool) for c in result.changes]
    assert changed == [("pricefeed/pricing.py", "modified", "replace_block")]
    assert result.changes[0].summary.startswith("-1 +1 lines at line ")
    assert "1 file changes: modified pricefeed/pricing.py" in result.summary
    assert recorded is not None and recorded.changes == result.changes


async def test_a_later_plan_step_is_briefed_with_the_typed_findings_of_the_step_before(
    settings: Settings, sample_workspace: Path
) -> None:
    async with Hive.open(settings, model=FunctionModel(finishes)) as hive:
        result = await hive.run("run the tests and then document it", workspace=sample_workspace)
        recorded = await hive.memory.get(result.task_id)
    assert result.status is TaskStatus.SUCCEEDED, result.error
    tests, docs = result.subtasks
    assert (tests.agent, docs.agent) == ("test", "docs")
    failing = "tests/test_pricing.py::test_bulk_discount_starts_at_ten_units"
    assert [f.rule for f in tests.findings] == [failing]
    assert f"finding: [high] tests/test_pricing.py:18 {failing}" in docs.text
    assert {f.rule for f in result.findings} == {f.rule for f in [*tests.findings, *docs.findings]}
    assert recorded is not None and recorded.findings == result.findings
    assert [s.findings for s in recorded.subtasks] == [tests.findings, docs.findings]


def _call(tool: str, findings: list[dict[str, object]], *, is_error: bool = False) -> ToolCall:
    return ToolCall(server="workspace", tool=tool, structured={"findings": findings}, is_error=is_error,
                    chosen_by="survey")  # fmt: skip


def test_findings_of_skips_errors_and_items_of_another_shape_and_names_the_tool() -> None:
    good = {"file": "a.py", "line": 3, "rule": "X1", "severity": "low", "message": "m"}
    steps = [
        Step(index=0, kind="survey", tool_calls=[_call("lint", [good, {"unexpected": 1}, "text"])]),
        Step(index=1, kind="model", tool_calls=[_call("lint", [good | {"rule": "X2"}], is_error=True)]),
    ]
    assert [(f.rule, f.tool) for f in findings_of(steps)] == [("X1", "lint")]


def test_merge_ranks_by_severity_then_place_and_keeps_distinct_messages_on_one_line() -> None:
    low = Finding(file="b.py", line=1, rule="F401", severity="low", message="`os` unused")
    low_too = Finding(file="b.py", line=1, rule="F401", severity="low", message="`sys` unused")
    high = Finding(file="z.py", line=9, rule="F821", severity="high", message="undefined")
    assert merge_findings([low, high, low_too, low, high]) == [high, low, low_too]
