"""The git tools on a real repository: a git-initialised copy of the sample project."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mcp import Client

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.edits import replace_block
from mcphive.mcp_servers.toolsets.git import git_branch, git_commit, git_diff, git_status
from mcphive.mcp_servers.workspace import build_workspace_server

PRICING = "pricefeed/pricing.py"


def _git(root: Path, *args: str) -> str:
    command = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@localhost", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample project as a git repository with one commit on ``main`` and no identity configured."""
    # The machine's own git configuration (an identity, hooks, aliases) must not leak into the tests.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    _git(workspace, "init", "--quiet", "--initial-branch=main")
    _git(workspace, "add", "--all")
    _git(workspace, "commit", "--quiet", "-m", "initial")
    return workspace


def _fix(jail: Jail) -> None:
    replace_block(jail, PRICING, "if quantity > BULK_THRESHOLD:", "if quantity >= BULK_THRESHOLD:")


def test_status_and_diff_show_an_edit_and_an_untracked_file(repo: Path) -> None:
    jail = Jail(repo)
    assert git_status(jail)["changes"] == [] and git_status(jail)["branch"] == "main"
    _fix(jail)
    (repo / "notes.txt").write_text("new\n")
    status = git_status(jail)
    assert status["changes"] == [{"path": PRICING, "status": " M"}, {"path": "notes.txt", "status": "??"}]
    diff = git_diff(jail)
    assert (
        "-    if quantity > BULK_THRESHOLD:" in diff["diff"] and "+    if quantity >= BULK_THRESHOLD:" in diff["diff"]
    )
    assert diff["files"] == [{"path": PRICING, "added": 1, "removed": 1}]
    assert git_diff(jail, "tests")["files"] == []


def test_work_is_committed_on_a_mcphive_branch_and_main_is_untouched(repo: Path) -> None:
    jail = Jail(repo)
    main_before = _git(repo, "rev-parse", "main").strip()
    _fix(jail)
    branch = git_branch(jail, "fix-bulk-discount")
    assert branch["branch"] == "mcphive/fix-bulk-discount" and branch["created"]
    commit = git_commit(jail, "Give the bulk discount from ten units on")
    assert commit["files"] == [PRICING]
    assert _git(repo, "rev-parse", "HEAD").strip() == commit["commit"]
    assert _git(repo, "rev-parse", "main").strip() == main_before
    assert _git(repo, "log", "-1", "--format=%an <%ae>|%s").strip() == (
        "mcphive agent <mcphive@localhost>|Give the bulk discount from ten units on"
    )
    assert git_status(jail)["changes"] == [] and git_diff(jail)["files"] == []
    again = git_branch(jail, "mcphive/fix-bulk-discount")
    assert not again["created"] and again["branch"] == "mcphive/fix-bulk-discount"


def test_a_commit_on_main_is_refused_and_nothing_is_staged(repo: Path) -> None:
    jail = Jail(repo)
    _fix(jail)
    with pytest.raises(ToolError, match="only made on a mcphive/\\* branch, and this is 'main'"):
        git_commit(jail, "sneaky")
    assert _git(repo, "log", "--format=%s").split() == ["initial"]
    assert _git(repo, "diff", "--cached", "--name-only") == ""


def test_an_empty_commit_and_an_empty_message_are_refused(repo: Path) -> None:
    jail = Jail(repo)
    git_branch(jail, "work")
    with pytest.raises(ToolError, match="nothing to commit"):
        git_commit(jail, "nothing")
    _fix(jail)
    with pytest.raises(ToolError, match="message is empty"):
        git_commit(jail, "  ")


@pytest.mark.parametrize("name", ["../main", "a..b", "-x", "with space", "x.lock", ""])
def test_unusable_branch_names_are_refused(repo: Path, name: str) -> None:
    with pytest.raises(ToolError, match="not a usable branch name"):
        git_branch(Jail(repo), name)


def test_a_folder_that_is_not_a_repository_top_is_refused(repo: Path, workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="inside a larger git repository"):
        git_status(Jail(repo / "pricefeed"))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ToolError, match="not a git repository"):
        git_status(Jail(plain))


def test_a_diff_path_outside_the_workspace_is_refused(repo: Path) -> None:
    with pytest.raises(ToolError, match="outside the workspace"):
        git_diff(Jail(repo), "../elsewhere")


@pytest.mark.anyio
async def test_the_workspace_server_marks_branch_and_commit_as_writers(repo: Path) -> None:
    async with Client(build_workspace_server(repo)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        refused = await client.call_tool("git_commit", {"message": "on main"})
    for name in ("git_branch", "git_commit"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.destructive_hint
    for name in ("git_status", "git_diff"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint
    assert refused.is_error and "git_branch" in refused.content[0].text  # type: ignore[union-attr]
