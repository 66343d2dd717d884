"""coverage_report runs the sample's suite under coverage.py; write_test_file adds test modules only."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.coverage import coverage_report, write_test_file
from mcphive.mcp_servers.toolsets.test import run_pytest
from mcphive.mcp_servers.workspace import build_workspace_server

CONFIG_TEST = """\
from pricefeed.config import check_admin_password


def test_a_wrong_password_is_refused():
    assert not check_admin_password("not the password")
"""


def test_coverage_reports_real_percentages_and_leaves_nothing_behind(jail: Jail, workspace: Path) -> None:
    before = sorted(p.relative_to(workspace) for p in workspace.rglob("*"))
    result = coverage_report(jail)
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*")) == before
    files = result["files"]
    assert files["pricefeed/pricing.py"]["percent"] == 100.0
    assert files["pricefeed/config.py"]["percent"] == 0.0 and files["pricefeed/config.py"]["missing_lines"]
    assert not any(name.startswith("tests/") for name in files)
    assert 0 < result["total_percent"] < 100
    assert result["tests_failed"]  # the sample's off-by-one test fails, and coverage is still reported
    uncovered = {f["file"] for f in result["findings"]}
    assert "pricefeed/config.py" in uncovered and "pricefeed/pricing.py" not in uncovered
    assert all(f["rule"] == "uncovered-lines" for f in result["findings"])


def test_a_new_test_module_raises_coverage_and_runs_green(jail: Jail) -> None:
    before = coverage_report(jail)["files"]["pricefeed/config.py"]["percent"]
    written = write_test_file(jail, "tests/test_config.py", CONFIG_TEST)
    assert written["tests"] == 1
    after = coverage_report(jail)
    assert after["files"]["pricefeed/config.py"]["percent"] > before
    assert run_pytest(jail, "tests/test_config.py")["counts"]["passed"] == 1


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("pricefeed/test_x.py", "not under tests/"),
        ("test_top.py", "not under tests/"),
        ("tests/helpers.py", "not a test module name"),
        ("tests/test_x.txt", "not a test module name"),
        ("tests/test_pricing.py", "already exists"),
        ("../tests/test_x.py", "outside the workspace"),
    ],
)
def test_write_test_file_refuses_other_places_names_and_overwrites(
    jail: Jail, workspace: Path, path: str, reason: str
) -> None:
    existing = (workspace / "tests" / "test_pricing.py").read_bytes()
    with pytest.raises(ToolError, match=reason):
        write_test_file(jail, path, CONFIG_TEST)
    assert (workspace / "tests" / "test_pricing.py").read_bytes() == existing
    assert not (workspace / "pricefeed" / "test_x.py").exists() and not (workspace / "tests" / "helpers.py").exists()


def test_write_test_file_refuses_source_that_does_not_compile(jail: Jail, workspace: Path) -> None:
    with pytest.raises(ToolError, match="does not compile \\(line 1\\)"):
        write_test_file(jail, "tests/test_bad.py", "def test_x(:\n    pass\n")
    assert not (workspace / "tests" / "test_bad.py").exists()


def test_coverage_refuses_a_path_outside_the_workspace(jail: Jail) -> None:
    with pytest.raises(ToolError, match="outside the workspace"):
        coverage_report(jail, "../elsewhere")


@pytest.mark.anyio
async def test_the_workspace_server_marks_write_test_file_destructive(workspace: Path) -> None:
    async with Client(build_workspace_server(workspace)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        written = await client.call_tool("write_test_file", {"path": "tests/test_new.py", "content": "x = 1\n"})
    writer, reader = tools["write_test_file"].annotations, tools["coverage_report"].annotations
    assert writer is not None and writer.destructive_hint
    assert reader is not None and reader.read_only_hint
    assert not written.is_error and (workspace / "tests" / "test_new.py").read_text() == "x = 1\n"
