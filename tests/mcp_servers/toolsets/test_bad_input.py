"""Bad input the other toolset tests leave out: huge, binary and non-UTF-8 files, hanging tools that fork,
missing YAML linters, symlinks out of the workspace under the writing tools, and failed writes mid-patch."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mcphive import _fs
from mcphive.errors import ToolError
from mcphive.mcp_servers import workspace as workspace_server
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import _run, edits, security
from mcphive.mcp_servers.toolsets.code import ruff_check
from mcphive.mcp_servers.toolsets.coverage import write_test_file
from mcphive.mcp_servers.toolsets.docs import docstring_coverage
from mcphive.mcp_servers.toolsets.edits import apply_patch, python_syntax, replace_block
from mcphive.mcp_servers.toolsets.security import secret_scan
from mcphive.mcp_servers.toolsets.workflows import workflow_audit, yaml_lint
from mcphive.mcp_servers.workspace import read_file, search_text, write_file

BINARY = bytes(range(256)) * 8
LATIN1 = '# -*- coding: latin-1 -*-\n"""Prix du caf\xe9."""\n\n\ndef prix():\n    return "\xe9t\xe9"\n'.encode(
    "latin-1"
)
PRICING = "pricefeed/pricing.py"


def test_a_huge_file_is_read_only_up_to_the_cap_and_the_answer_says_so(jail: Jail, workspace: Path) -> None:
    line = "2024-05-01T10:00:00Z INFO request ok\n"
    (workspace / "logs" / "huge.log").write_text(line * (2 * workspace_server.MAX_READ_BYTES // len(line)))
    result = read_file(jail, "logs/huge.log", start_line=1, end_line=3)
    assert result["truncated"] is True and "the file is longer" in result["summary"]
    assert result["total_lines"] == workspace_server.MAX_READ_BYTES // len(line) + 1  # the last one cut mid-line
    assert read_file(jail, PRICING)["truncated"] is False


def test_the_secret_scan_skips_files_over_its_size_cap(
    jail: Jail, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = secret_scan(jail)
    monkeypatch.setattr(security, "MAX_SCAN_BYTES", (workspace / "pricefeed" / "config.py").stat().st_size - 1)
    after = secret_scan(jail)
    assert {f["file"] for f in before["findings"]} >= {"pricefeed/config.py"}
    assert "pricefeed/config.py" not in {f["file"] for f in after["findings"]}
    assert after["files_scanned"] < before["files_scanned"]


def test_an_edit_of_a_file_over_the_cap_is_refused_and_leaves_it_whole(
    jail: Jail, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (workspace / PRICING).read_bytes()
    monkeypatch.setattr(edits, "MAX_EDIT_BYTES", len(before) - 1)
    with pytest.raises(ToolError, match="edit it by hand"):
        replace_block(jail, PRICING, "quantity > BULK_THRESHOLD", "quantity >= BULK_THRESHOLD")
    assert (workspace / PRICING).read_bytes() == before


def test_binary_files_are_refused_by_the_readers_and_editors_and_skipped_by_search(jail: Jail, workspace: Path) -> None:
    (workspace / "pricefeed" / "blob.bin").write_bytes(BINARY + b"def \0")
    with pytest.raises(ToolError, match="binary file"):
        read_file(jail, "pricefeed/blob.bin")
    with pytest.raises(ToolError, match="not UTF-8 text"):
        replace_block(jail, "pricefeed/blob.bin", "def", "xyz")
    diff = "--- a/pricefeed/blob.bin\n+++ b/pricefeed/blob.bin\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(ToolError, match="not UTF-8 text"):
        apply_patch(jail, diff)
    assert (workspace / "pricefeed" / "blob.bin").read_bytes() == BINARY + b"def \0"
    assert "pricefeed/blob.bin" not in {m["file"] for m in search_text(jail, "def")["matches"]}


def test_a_binary_python_file_is_a_syntax_finding_not_a_crash(jail: Jail, workspace: Path) -> None:
    (workspace / "pricefeed" / "garbage.py").write_bytes(BINARY)
    syntax = python_syntax(jail)
    assert [f["file"] for f in syntax["findings"]] == ["pricefeed/garbage.py"]
    assert "pricefeed/garbage.py" in {f["file"] for f in ruff_check(jail)["findings"]}


def test_non_utf8_text_is_read_searched_and_analysed_but_never_edited(jail: Jail, workspace: Path) -> None:
    (workspace / "pricefeed" / "latin.py").write_bytes(LATIN1)
    read = read_file(jail, "pricefeed/latin.py")
    assert "Prix du caf\ufffd" in read["text"]  # undecodable bytes shown as U+FFFD, not an error
    assert [m["line"] for m in search_text(jail, "Prix du caf")["matches"]] == [2]
    assert "pricefeed/latin.py" not in {f["file"] for f in python_syntax(jail)["findings"]}  # its coding cookie
    assert docstring_coverage(jail, "pricefeed/latin.py")["summary"].startswith("docstring coverage 0.0%")
    with pytest.raises(ToolError, match="not UTF-8 text"):
        replace_block(jail, "pricefeed/latin.py", "def prix", "def price")
    assert (workspace / "pricefeed" / "latin.py").read_bytes() == LATIN1


@pytest.mark.parametrize("tool", [workflow_audit, yaml_lint], ids=["workflow_audit", "yaml_lint"])
@pytest.mark.parametrize("content", [BINARY, "name: caf\xe9\n".encode("latin-1")], ids=["binary", "latin-1"])
def test_an_unreadable_yaml_file_is_skipped_and_named_while_the_rest_is_checked(
    jail: Jail, workspace: Path, tool: object, content: bytes
) -> None:
    (workspace / ".github" / "workflows" / "broken.yml").write_bytes(content)
    result = tool(jail)  # type: ignore[operator]
    assert [s["file"] for s in result["skipped"]] == [".github/workflows/broken.yml"]
    assert "skipped 1 unreadable file(s): .github/workflows/broken.yml" in result["summary"]
    assert result["findings"] and ".github/workflows/broken.yml" not in {f["file"] for f in result["findings"]}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is dead, just not reaped


def test_a_hanging_linter_is_stopped_with_everything_it_started(
    jail: Jail, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "child.pid"
    fake = bin_dir / "ruff"  # a "ruff" that starts a child and waits for it forever
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setattr(_run, "DEFAULT_TIMEOUT_S", 1.0)
    with pytest.raises(ToolError, match="ruff ran past its 1 s limit; run it on a smaller path"):
        ruff_check(jail)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kill is sent before the error; the child's exit is observed here
    assert not _alive(child)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the workspace with one file, which no tool may change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.py").write_text("x = 1\n")
    return folder


def test_the_writing_tools_refuse_to_follow_a_symlink_out_of_the_workspace(
    jail: Jail, workspace: Path, outside: Path
) -> None:
    (workspace / "linked").symlink_to(outside)
    (workspace / "tests" / "escape").symlink_to(outside)
    (workspace / "victim_link.py").symlink_to(outside / "victim.py")
    attempts = [
        lambda: write_file(jail, "linked/new.py", "y = 2\n"),
        lambda: write_file(jail, "victim_link.py", "y = 2\n"),
        lambda: replace_block(jail, "victim_link.py", "x = 1", "x = 2"),
        lambda: replace_block(jail, "linked/victim.py", "x = 1", "x = 2"),
        lambda: apply_patch(jail, "--- a/linked/victim.py\n+++ b/linked/victim.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"),
        lambda: apply_patch(jail, "--- /dev/null\n+++ b/linked/new.py\n@@ -0,0 +1 @@\n+y = 2\n"),
        lambda: write_test_file(jail, "tests/escape/test_new.py", "def test_x():\n    pass\n"),
    ]
    for attempt in attempts:
        with pytest.raises(ToolError, match="outside the workspace"):
            attempt()
    assert sorted(p.name for p in outside.iterdir()) == ["victim.py"]
    assert (outside / "victim.py").read_text() == "x = 1\n"


TWO_FILES = (
    "--- a/pricefeed/pricing.py\n+++ b/pricefeed/pricing.py\n@@ -1 +1 @@\n-{first}\n+# patched\n"
    "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-{readme}\n+# patched\n"
)


def _two_file_patch(workspace: Path) -> str:
    first = (workspace / PRICING).read_text().splitlines()[0]
    readme = (workspace / "README.md").read_text().splitlines()[0]
    return TWO_FILES.format(first=first, readme=readme)


@pytest.mark.parametrize("fails", ["staging the second file", "swapping in the second file"])
def test_a_patch_whose_second_write_fails_changes_no_file(
    jail: Jail, workspace: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    diff = _two_file_patch(workspace)
    before = {p: (workspace / p).read_bytes() for p in (PRICING, "README.md")}
    calls = {"n": 0}
    real_stage, real_replace = _fs.stage_file, os.replace

    def flaky_stage(target: Path, data: bytes) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_stage(target, data)

    def flaky_replace(src: str, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    if fails == "staging the second file":
        monkeypatch.setattr(_fs, "stage_file", flaky_stage)
    else:
        monkeypatch.setattr(edits.os, "replace", flaky_replace)
    with pytest.raises(ToolError, match=r"could not be written .*No space left on device.*no file was changed"):
        apply_patch(jail, diff)
    monkeypatch.undo()
    assert {p: (workspace / p).read_bytes() for p in before} == before
    leftovers = [p.name for p in workspace.rglob("*.tmp")]
    assert leftovers == []
    assert apply_patch(jail, diff)["files"] == [PRICING, "README.md"]  # the same patch applies once the disk is fine
