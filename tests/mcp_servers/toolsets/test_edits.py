"""python_syntax, replace_block and apply_patch: real edits on a copy of the sample project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.edits import apply_patch, python_syntax, replace_block
from mcphive.mcp_servers.toolsets.test import run_pytest
from mcphive.mcp_servers.workspace import WRITES_META, build_workspace_server

PRICING = "pricefeed/pricing.py"
FIX = """\
--- a/pricefeed/pricing.py
+++ b/pricefeed/pricing.py
@@ -18,5 +18,5 @@
     \"\"\"Total price of ``quantity`` units; orders of BULK_THRESHOLD units or more get BULK_DISCOUNT off.\"\"\"
     total = Decimal(str(unit_price)) * quantity
-    if quantity > BULK_THRESHOLD:
+    if quantity >= BULK_THRESHOLD:
         total -= total * BULK_DISCOUNT
     return round_price(float(total))
"""


def test_the_sample_compiles_and_a_broken_module_is_reported_with_its_line(jail: Jail, workspace: Path) -> None:
    assert python_syntax(jail)["findings"] == []
    (workspace / "pricefeed" / "broken.py").write_text("x = 1\ndef f(:\n    pass\n")
    result = python_syntax(jail, "pricefeed")
    [finding] = result["findings"]
    assert (finding["file"], finding["line"], finding["rule"]) == ("pricefeed/broken.py", 2, "syntax-error")
    assert "column" in finding["message"]
    assert result["files_checked"] == 8


def test_replace_block_fixes_the_off_by_one_and_the_suite_then_passes(jail: Jail, workspace: Path) -> None:
    assert run_pytest(jail)["counts"]["failed"] == 1
    result = replace_block(jail, PRICING, "if quantity > BULK_THRESHOLD:", "if quantity >= BULK_THRESHOLD:")
    assert result["line"] == 20
    assert "quantity >= BULK_THRESHOLD" in (workspace / PRICING).read_text()
    after = run_pytest(jail)
    assert after["counts"]["failed"] == 0 and after["counts"]["passed"] == 10


@pytest.mark.parametrize(
    ("old", "reason"),
    [("if quantity > 99:", "not found"), ("round_price(", "occurs 3 times"), ("", "empty")],
)
def test_replace_block_refuses_a_missing_ambiguous_or_empty_block(
    jail: Jail, workspace: Path, old: str, reason: str
) -> None:
    before = (workspace / PRICING).read_bytes()
    with pytest.raises(ToolError, match=reason):
        replace_block(jail, PRICING, old, "x")
    assert (workspace / PRICING).read_bytes() == before


def test_replace_block_keeps_windows_line_endings(jail: Jail, workspace: Path) -> None:
    (workspace / "crlf.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    replace_block(jail, "crlf.txt", "one\ntwo", "uno\ndos")
    assert (workspace / "crlf.txt").read_bytes() == b"uno\r\ndos\r\nthree\r\n"


def test_apply_patch_applies_a_git_style_diff_and_the_suite_passes(jail: Jail, workspace: Path) -> None:
    result = apply_patch(jail, FIX)
    assert result["files"] == [PRICING] and result["hunks"] == 1
    assert run_pytest(jail)["counts"]["failed"] == 0


def test_apply_patch_creates_and_deletes_files(jail: Jail, workspace: Path) -> None:
    diff = (
        "--- /dev/null\n+++ b/notes/todo.txt\n@@ -0,0 +1,2 @@\n+first\n+second\n"
        "--- a/requirements.txt\n+++ /dev/null\n"
        + "@@ -1,{n} +0,0 @@\n".format(n=len((workspace / "requirements.txt").read_text().splitlines()))
        + "".join("-" + line + "\n" for line in (workspace / "requirements.txt").read_text().splitlines())
    )
    apply_patch(jail, diff)
    assert (workspace / "notes" / "todo.txt").read_text() == "first\nsecond\n"
    assert not (workspace / "requirements.txt").exists()


def test_a_conflicting_hunk_changes_no_file_at_all(jail: Jail, workspace: Path) -> None:
    readme_before, pricing_before = (workspace / "README.md").read_bytes(), (workspace / PRICING).read_bytes()
    first_readme_line = (workspace / "README.md").read_text().splitlines()[0]
    good = f"--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-{first_readme_line}\n+# Renamed\n"
    conflicting = FIX.replace("-    if quantity > BULK_THRESHOLD:", "-    if quantity > 12:")
    with pytest.raises(ToolError, match=re.escape("hunk 1 for 'pricefeed/pricing.py' does not apply at line 18")):
        apply_patch(jail, good + conflicting)
    assert (workspace / "README.md").read_bytes() == readme_before
    assert (workspace / PRICING).read_bytes() == pricing_before


@pytest.mark.parametrize(
    ("diff", "reason"),
    [
        ("just some text\n", "no unified diff"),
        ("--- a/../x.py\n+++ b/../x.py\n@@ -1 +1 @@\n-a\n+b\n", "outside the workspace"),
        ("--- a/pricefeed/pricing.py\n+++ b/pricefeed/pricing.py\n@@ -1,3 +1,3 @@\n-a\n", "ends early"),
        (FIX.replace("@@ -18,5 +18,5 @@", "@@ -17,5 +17,5 @@"), "does not apply at line 17"),
    ],
)
def test_malformed_escaping_or_misplaced_diffs_are_refused(jail: Jail, diff: str, reason: str) -> None:
    with pytest.raises(ToolError, match=reason):
        apply_patch(jail, diff)


@pytest.mark.parametrize("path", ["../outside.py", "/etc/hostname"])
def test_edit_tools_refuse_paths_outside_the_workspace(jail: Jail, path: str) -> None:
    with pytest.raises(ToolError, match="outside the workspace"):
        replace_block(jail, path, "a", "b")
    with pytest.raises(ToolError, match="outside the workspace"):
        python_syntax(jail, path)


@pytest.mark.anyio
async def test_the_workspace_server_marks_the_editing_tools_destructive(workspace: Path) -> None:
    async with Client(build_workspace_server(workspace)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        refused = await client.call_tool("replace_block", {"path": PRICING, "old": "no such text", "new": "x"})
    for name in ("replace_block", "apply_patch"):
        annotations, meta = tools[name].annotations, tools[name].meta
        assert annotations is not None and annotations.destructive_hint and not annotations.read_only_hint
        assert meta is not None and meta[WRITES_META] is True
    syntax = tools["python_syntax"].annotations
    assert syntax is not None and syntax.read_only_hint
    assert refused.is_error and "not found" in refused.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a\nb\nc\n", "a\nB\nc"),  # the new side drops the final newline
        ("a\nb\nc", "a\nb\nc\nd\n"),  # the old side had none
        ("".join(f"{i}\n" for i in range(30)), "".join(f"{i}\n" for i in range(30) if i not in (3, 25)) + "end\n"),
    ],
)
def test_apply_patch_reproduces_what_git_diff_describes(jail: Jail, workspace: Path, old: str, new: str) -> None:
    (workspace / "f.txt").write_text(old)
    (workspace / "g.txt").write_text(new)
    command = ["git", "diff", "--no-index", "--no-color", "f.txt", "g.txt"]
    diff = subprocess.run(command, cwd=workspace, capture_output=True, text=True, check=False).stdout
    apply_patch(jail, diff.replace("b/g.txt", "b/f.txt"))
    assert (workspace / "f.txt").read_text() == new
