"""The workspace server: file tools and the path jail, through a real in-process MCP client."""

import os
from pathlib import Path

import pytest
from mcp import Client

from mcphive.errors import WorkspaceError
from mcphive.mcp_servers.workspace import FILE_ARGS_META, build_workspace_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "mod.py").write_text("def f():\n    return 1\n# TODO: more\n")
    (ws / "notes.md").write_text("hello\n")
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("secret\n")
    (tmp_path / "outside.txt").write_text("do not read\n")
    return ws


async def test_list_read_and_search_see_only_workspace_files(root: Path) -> None:
    async with Client(build_workspace_server(root)) as client:
        listed = await client.call_tool("list_files", {"pattern": "*"})
        assert listed.structured_content is not None
        assert listed.structured_content["files"] == ["notes.md", "pkg/mod.py"]
        read = await client.call_tool("read_file", {"path": "pkg/mod.py", "start_line": 2, "end_line": 2})
        assert read.structured_content is not None and read.structured_content["text"] == "    return 1"
        found = await client.call_tool("search_text", {"pattern": "TODO"})
        assert found.structured_content is not None
        assert found.structured_content["matches"] == [{"file": "pkg/mod.py", "line": 3, "text": "# TODO: more"}]


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "pkg/../../outside.txt"])
async def test_paths_that_escape_the_workspace_are_refused(root: Path, path: str) -> None:
    async with Client(build_workspace_server(root)) as client:
        result = await client.call_tool("read_file", {"path": path})
    assert result.is_error
    assert "outside the workspace" in result.content[0].text  # type: ignore[union-attr]


async def test_a_symlink_pointing_outside_is_refused(root: Path) -> None:
    os.symlink(root.parent / "outside.txt", root / "link.txt")
    async with Client(build_workspace_server(root)) as client:
        result = await client.call_tool("read_file", {"path": "link.txt"})
        listed = await client.call_tool("list_files", {"pattern": "*"})
    assert result.is_error
    assert listed.structured_content is not None and "link.txt" not in listed.structured_content["files"]


async def test_write_file_replaces_atomically_and_leaves_no_temp_files(root: Path) -> None:
    os.chmod(root / "notes.md", 0o640)
    async with Client(build_workspace_server(root)) as client:
        result = await client.call_tool("write_file", {"path": "pkg/new.py", "content": "x = 1\n"})
        escaped = await client.call_tool("write_file", {"path": "../evil.py", "content": "x"})
        replaced = await client.call_tool("write_file", {"path": "notes.md", "content": "bye\n"})
    assert not result.is_error and (root / "pkg" / "new.py").read_text() == "x = 1\n"
    # A new file is readable as files usually are (not the temporary file's 0600); a replaced one keeps its mode.
    assert (root / "pkg" / "new.py").stat().st_mode & 0o777 == 0o644
    assert not replaced.is_error and (root / "notes.md").stat().st_mode & 0o777 == 0o640
    assert escaped.is_error and not (root.parent / "evil.py").exists()
    assert not [p for p in (root / "pkg").iterdir() if p.name.endswith(".tmp")]


async def test_tools_say_which_arguments_are_workspace_files_and_which_tools_write(root: Path) -> None:
    async with Client(build_workspace_server(root)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tools["read_file"].meta is not None and tools["read_file"].meta[FILE_ARGS_META] == {"path": []}
    assert tools["write_file"].annotations is not None and tools["write_file"].annotations.destructive_hint
    assert tools["list_files"].annotations is not None and tools["list_files"].annotations.read_only_hint


def test_a_missing_workspace_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not an existing folder"):
        build_workspace_server(tmp_path / "nope")
