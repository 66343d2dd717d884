"""workflow_audit (zizmor), yaml_lint (yamllint), k8s_manifest_check and dependency_pins/_audit on real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.deps import dependency_audit, dependency_pins
from mcphive.mcp_servers.toolsets.manifests import k8s_manifest_check
from mcphive.mcp_servers.toolsets.workflows import workflow_audit, yaml_lint
from mcphive.sample import copy_sample_project, load_manifest

TOOLS = {
    "workflow_audit": workflow_audit,
    "yaml_lint": yaml_lint,
    "k8s_manifest_check": k8s_manifest_check,
    "dependency_pins": dependency_pins,
}
PROBLEMS = [p for p in load_manifest() if p["tool"] in TOOLS]


def _rules(result: dict[str, Any]) -> set[tuple[str, int | None, str]]:
    return {(f["file"], f["line"], f["rule"]) for f in result["findings"]}


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each infra tool run once over a copy of the example project."""
    jail = Jail(copy_sample_project(tmp_path_factory.mktemp("infra") / "sample_project"))
    return {name: fn(jail) for name, fn in TOOLS.items()}


def test_the_manifest_plants_problems_for_every_new_infra_tool() -> None:
    assert {p["tool"] for p in PROBLEMS} == set(TOOLS)


@pytest.mark.parametrize("problem", PROBLEMS, ids=[p["id"] for p in PROBLEMS])
def test_every_planted_infra_problem_is_found_at_its_line(survey: dict[str, Any], problem: dict[str, Any]) -> None:
    assert (problem["file"], problem["line"], problem["rule"]) in _rules(survey[problem["tool"]])


def test_zizmor_passes_a_workflow_pinned_to_shas_with_a_safe_trigger(jail: Jail, workspace: Path) -> None:
    (workspace / ".github" / "workflows" / "ci.yml").write_text(
        "name: ci\non:\n  pull_request:\npermissions: {}\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2\n"
        "        with:\n          persist-credentials: false\n"
        '      - run: echo "$TITLE"\n        env:\n          TITLE: ${{ github.event.pull_request.title }}\n'
    )
    result = workflow_audit(jail)
    assert result["files"] == [".github/workflows/ci.yml"]
    rules = {f["rule"] for f in result["findings"]}
    assert not rules & {"dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"}


def test_zizmor_severities_and_links_come_through(survey: dict[str, Any]) -> None:
    by_rule = {f["rule"]: f for f in survey["workflow_audit"]["findings"]}
    assert by_rule["dangerous-triggers"]["severity"] == "high"
    assert by_rule["dangerous-triggers"]["fix"] == "https://docs.zizmor.sh/audits/#dangerous-triggers"
    assert by_rule["dangerous-triggers"]["tool"] == "zizmor"


def test_a_folder_without_workflows_gives_no_findings(jail: Jail) -> None:
    result = workflow_audit(jail, path="k8s")
    assert result["findings"] == [] and "no GitHub Actions workflow" in result["summary"]


def test_yamllint_reports_a_syntax_error_as_high(jail: Jail, workspace: Path) -> None:
    (workspace / "k8s" / "broken.yaml").write_text("---\nkey: [unclosed\n")
    findings = yaml_lint(jail, path="k8s/broken.yaml")["findings"]
    assert [(f["rule"], f["severity"]) for f in findings] == [("syntax", "high")]


def test_a_job_needs_no_probes_and_a_digest_or_pod_level_non_root_is_enough(jail: Jail, workspace: Path) -> None:
    (workspace / "k8s" / "job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: backfill\nspec:\n  template:\n    spec:\n"
        "      securityContext:\n        runAsNonRoot: true\n      containers:\n        - name: run\n"
        "          image: ghcr.io/example/pricefeed@sha256:" + "a" * 64 + "\n"
        "          resources:\n            limits:\n              cpu: '1'\n"
        "      initContainers:\n        - name: init\n          image: busybox\n"
    )
    result = k8s_manifest_check(jail, path="k8s/job.yaml")
    assert _rules(result) == {
        ("k8s/job.yaml", 18, "k8s-image-untagged"),
        ("k8s/job.yaml", 17, "k8s-no-resource-limits"),
    }


def test_a_manifest_that_does_not_parse_is_listed_not_fatal(jail: Jail, workspace: Path) -> None:
    (workspace / "k8s" / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nspec: [\n")
    result = k8s_manifest_check(jail, path="k8s")
    assert [u["file"] for u in result["unparsed"]] == ["k8s/bad.yaml"]
    assert result["files"] == ["k8s/deployment.yaml"]


def test_pyproject_dependencies_are_checked_with_their_lines(jail: Jail, workspace: Path) -> None:
    (workspace / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = [\n  "httpx>=0.27",\n  "attrs~=23.1",\n  "idna<4,>=3",\n'
        '  "click",\n]\n[project.optional-dependencies]\ndev = ["pytest==8.2.0"]\n'
    )
    result = dependency_pins(jail, path="pyproject.toml")
    assert _rules(result) == {
        ("pyproject.toml", 4, "unbounded-requirement"),
        ("pyproject.toml", 7, "unpinned-requirement"),
    }
    assert result["requirements"] == 5


def test_requirement_options_and_invalid_lines_do_not_pass_for_dependencies(jail: Jail, workspace: Path) -> None:
    (workspace / "requirements.txt").write_text(
        "-r requirements-dev.txt\n--index-url https://x.invalid/simple\nok==1 # c\n===\n"
    )
    result = dependency_pins(jail, path="requirements.txt")
    assert result["findings"] == [] and result["requirements"] == 1
    assert [(i["file"], i["line"]) for i in result["invalid"]] == [("requirements.txt", 4)]


def test_dependency_audit_never_fakes_a_clean_result(jail: Jail) -> None:
    result = dependency_audit(jail)
    assert result["audited"] == ["ruff"] and result["not_audited"] == ["pytest", "requests"]
    if result["skipped"]:
        # The usual case here: no advisory service is reachable, so nothing may be claimed.
        assert result["findings"] == [] and "advisory database unreachable" in result["reason"]
        assert "skipped" in result["summary"]
    else:
        assert all(f["tool"] == "pip-audit" and f["file"] == "requirements-dev.txt" for f in result["findings"])
        assert "known vulnerabilities" in result["summary"]


def test_dependency_audit_with_nothing_pinned_says_so(jail: Jail, workspace: Path) -> None:
    (workspace / "requirements-dev.txt").write_text("requests\n")
    result = dependency_audit(jail)
    assert result["skipped"] is False and result["findings"] == [] and "no exactly pinned" in result["summary"]


def test_paths_outside_the_workspace_are_refused(jail: Jail) -> None:
    for fn in TOOLS.values():
        with pytest.raises(ToolError):
            fn(jail, path="../..")
