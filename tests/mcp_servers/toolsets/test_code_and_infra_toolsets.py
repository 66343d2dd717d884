"""ruff_check and dockerfile_lint on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.code import ruff_check
from mcphive.mcp_servers.toolsets.infra import dockerfile_lint, is_dockerfile


def _rules(result: dict[str, object]) -> set[tuple[str, str]]:
    return {(f["file"], f["rule"]) for f in result["findings"]}  # type: ignore[attr-defined]


def test_the_workspace_ruff_config_cannot_silence_the_fixed_rule_set(jail: Jail, workspace: Path) -> None:
    (workspace / "ruff.toml").write_text('[lint]\nignore = ["F401", "F821"]\n')
    assert {("pricefeed/cache.py", "F401"), ("pricefeed/client.py", "F821")} <= _rules(ruff_check(jail))


def test_ruff_reports_its_fix_suggestion_and_a_severity(jail: Jail) -> None:
    result = ruff_check(jail, path="pricefeed/cache.py")
    unused = next(f for f in result["findings"] if f["rule"] == "F401")
    assert unused["fix"] == "Remove unused import: `os`"
    undefined = next(f for f in ruff_check(jail, path="pricefeed")["findings"] if f["rule"] == "F821")
    assert undefined["severity"] == "high"
    assert {f["file"] for f in result["findings"]} == {"pricefeed/cache.py"}


def test_a_syntax_error_is_a_high_severity_finding(jail: Jail, workspace: Path) -> None:
    (workspace / "broken.py").write_text("def f(:\n    pass\n")
    findings = ruff_check(jail, path="broken.py")["findings"]
    assert findings and all(f["rule"] == "invalid-syntax" and f["severity"] == "high" for f in findings)


def test_ruff_on_a_file_that_is_not_python_reports_nothing(jail: Jail) -> None:
    result = ruff_check(jail, path="README.md")
    assert result["findings"] == []


def test_hadolint_levels_become_severities(jail: Jail) -> None:
    by_rule = {f["rule"]: f for f in dockerfile_lint(jail)["findings"]}
    assert by_rule["DL3020"]["severity"] == "high"  # hadolint "error"
    assert by_rule["DL3007"]["severity"] == "medium"  # "warning"
    assert by_rule["DL3015"]["severity"] == "low"  # "info"
    assert by_rule["DL3007"]["line"] == 1


def test_dockerfile_lint_finds_every_dockerfile_under_a_folder(jail: Jail, workspace: Path) -> None:
    deploy = workspace / "deploy"
    deploy.mkdir()
    (deploy / "worker.Dockerfile").write_text("FROM debian\nRUN cd /tmp && echo hi\n")
    result = dockerfile_lint(jail, path="deploy")
    assert result["files"] == ["deploy/worker.Dockerfile"]
    rules = {f["rule"] for f in result["findings"]}
    assert {"DL3006", "DL3003"} <= rules
    assert {f["file"] for f in result["findings"]} == {"deploy/worker.Dockerfile"}


def test_a_folder_without_dockerfiles_gives_no_findings(jail: Jail) -> None:
    result = dockerfile_lint(jail, path="tests")
    assert result["findings"] == [] and "no Dockerfile" in result["summary"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Dockerfile", True),
        ("Dockerfile.prod", True),
        ("api.Dockerfile", True),
        ("Containerfile", True),
        ("Dockerfile.md", False),
        ("Dockerfiles.txt", False),
        ("README.md", False),
    ],
)
def test_dockerfile_names_are_recognised(name: str, expected: bool) -> None:
    assert is_dockerfile(name) is expected


def test_hadolint_path_checks_go_through_the_jail(jail: Jail) -> None:
    with pytest.raises(ToolError):
        dockerfile_lint(jail, path="../../Dockerfile")
