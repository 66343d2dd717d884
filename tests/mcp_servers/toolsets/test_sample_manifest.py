"""The key acceptance test: every problem planted in the example workspace is found by its tool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import all_tools
from mcphive.sample import copy_sample_project, load_manifest, sample_project_path
from mcphive.types import AGENT_NAMES, Finding

MANIFEST = load_manifest()
TOOL_AGENT = {
    "ruff_check": "code",
    "python_syntax": "code",
    "docstring_coverage": "docs",
    "markdown_links": "docs",
    "api_reference": "docs",
    "run_pytest": "test",
    "coverage_report": "test",
    "dockerfile_lint": "infra",
    "workflow_audit": "infra",
    "yaml_lint": "infra",
    "k8s_manifest_check": "infra",
    "dependency_pins": "infra",
    "log_summary": "ops",
    "metrics_check": "ops",
    "secret_scan": "security",
    "bandit_scan": "security",
    "mcp_tool_audit": "security",
    "dependency_audit": "security",
}
# The analysis tools: read-only, over a workspace path. git_* need a repository and http_probe a URL (tested apart).
ANALYSIS = {t.name: t for t in all_tools() if "path" in t.file_args and not t.writes and not t.name.startswith("git_")}
# dependency_audit asks an advisory service, unreachable offline; its honest "skipped" answer is tested on its own.
TOOLS = {name: tool for name, tool in ANALYSIS.items() if name != "dependency_audit"}


def _tree(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every analysis tool run once on one copy, with the workspace's tree before and after."""
    root = copy_sample_project(tmp_path_factory.mktemp("survey") / "sample_project")
    before = _tree(root)
    jail = Jail(root)
    results = {name: tool.fn(jail) for name, tool in TOOLS.items()}
    return {"root": root, "before": before, "after": _tree(root), "results": results}


@pytest.mark.parametrize("problem", MANIFEST, ids=[p["id"] for p in MANIFEST])
def test_every_planted_problem_is_found_by_its_tool(survey: dict[str, Any], problem: dict[str, Any]) -> None:
    findings = survey["results"][problem["tool"]]["findings"]
    matches = [f for f in findings if f["file"] == problem["file"] and f["rule"] == problem["rule"]]
    assert matches, f"{problem['tool']} did not report {problem['rule']} in {problem['file']}"
    assert any(f["line"] in (None, problem["line"]) for f in matches), [f["line"] for f in matches]


def test_the_manifest_covers_every_agent_with_its_own_tools() -> None:
    assert {p["agent"] for p in MANIFEST} == set(AGENT_NAMES)
    for problem in MANIFEST:
        assert TOOL_AGENT[problem["tool"]] == problem["agent"], problem["id"]
        assert set(problem) == {"id", "agent", "file", "line", "kind", "tool", "rule", "description"}
    assert set(TOOL_AGENT) == set(ANALYSIS)


def test_the_manifest_lies_outside_the_project_the_agents_read() -> None:
    project = sample_project_path()
    assert not any("manifest" in p.name.lower() for p in project.rglob("*"))
    for problem in MANIFEST:
        assert (project / problem["file"]).is_file(), problem["file"]


def test_every_tool_returns_valid_findings_and_a_one_line_summary(survey: dict[str, Any]) -> None:
    for name, result in survey["results"].items():
        assert isinstance(result["summary"], str) and result["summary"], name
        assert "\n" not in result["summary"], name
        json.dumps(result)
        for finding in result["findings"]:
            parsed = Finding.model_validate(finding)
            assert not Path(parsed.file).is_absolute(), (name, parsed.file)
            assert (survey["root"] / parsed.file).is_file(), (name, parsed.file)


def test_the_analysis_tools_leave_the_workspace_unchanged(survey: dict[str, Any]) -> None:
    assert survey["after"] == survey["before"]


def test_secret_values_never_appear_in_any_tool_output(survey: dict[str, Any]) -> None:
    config = (survey["root"] / "pricefeed" / "config.py").read_text()
    secrets = ["AKIAEXAMPLEFAKEKEY00", "fake-pricefeed-admin-pw"]
    assert all(secret in config for secret in secrets)
    dumped = json.dumps(survey["results"])
    for secret in secrets:
        assert secret not in dumped
    assert any(f["rule"] == "AWS Access Key" for f in survey["results"]["secret_scan"]["findings"])


def test_every_analysis_tool_is_read_only_and_constrains_its_path_argument() -> None:
    for tool in ANALYSIS.values():
        assert tool.writes is False, tool.name
        assert "path" in tool.file_args, tool.name
