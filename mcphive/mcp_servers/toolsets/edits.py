"""The code agent's editing tools: check Python syntax, replace one exact block, apply a unified diff.

Edits are all-or-nothing. :func:`replace_block` refuses a block that is missing or appears more
than once (the model must quote more context), and :func:`apply_patch` checks every hunk of every
file in memory before it writes anything, so a diff that does not apply cleanly leaves the
workspace byte-identical. There is no fuzz and no offset search: a hunk applies at the line its
header names or not at all, because a small model's diff that "almost" matches is usually wrong.
Files are replaced atomically (a temporary file renamed over the old one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcphive import _fs
from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import dump_findings, files_under
from mcphive.types import Finding

__all__ = ["MAX_EDIT_BYTES", "TOOLS", "apply_patch", "atomic_write", "python_syntax", "replace_block"]

MAX_EDIT_BYTES = 1_000_000
"""The largest file (or diff) an editing tool reads or writes."""

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_DEV_NULL = "/dev/null"


def atomic_write(target: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``target`` through a temporary file in the same folder, then rename it into place.

    Args:
        target: the absolute path to write (its folder is created if missing).
        data: the new content.
        exclusive: refuse to replace an existing file; the check and the write are one atomic step.

    Raises:
        ToolError: ``exclusive`` and ``target`` already exists.
    """
    try:
        _fs.atomic_write(target, data, exclusive=exclusive)
    except FileExistsError as e:
        raise ToolError(f"{target.name!r} already exists; pick a new file name") from e


def _read_text(jail: Jail, path: str) -> tuple[Path, str]:
    target = jail.resolve(path)
    if not target.is_file():
        raise ToolError(f"{path!r} is not a file in the workspace; call list_files to see what exists")
    if target.stat().st_size > MAX_EDIT_BYTES:
        raise ToolError(f"{path!r} is over {MAX_EDIT_BYTES} bytes; edit it by hand")
    raw = target.read_bytes()
    try:
        # Decoding the bytes (not reading in text mode) keeps \r\n as written: untouched lines stay identical.
        return target, raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolError(f"{path!r} is not UTF-8 text; only text files can be edited") from e


def python_syntax(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Compile every Python file under ``path`` (without running it); one finding per syntax error."""
    findings: list[Finding] = []
    checked = files_under(jail, path, (".py",))
    for rel in checked:
        source = jail.resolve(rel).read_bytes()
        try:
            compile(source, rel, "exec", dont_inherit=True)
        except SyntaxError as e:
            where = f" (column {e.offset})" if e.offset else ""
            findings.append(
                Finding(
                    file=rel,
                    line=e.lineno,
                    rule="syntax-error",
                    severity="high",
                    message=f"{e.msg}{where}",
                    fix="fix the syntax at this line; the module cannot be imported until then",
                    tool="python_syntax",
                )
            )
        except ValueError as e:  # e.g. a null byte in the source
            findings.append(
                Finding(file=rel, rule="syntax-error", severity="high", message=str(e), tool="python_syntax")
            )
    return {
        "findings": dump_findings(findings),
        "files_checked": len(checked),
        "summary": f"{len(findings)} syntax errors in {len(checked)} Python files under {path!r}",
    }


def replace_block(jail: Jail, path: str, old: str, new: str) -> dict[str, Any]:
    """Replace the one exact occurrence of ``old`` in a text file with ``new``.

    Raises:
        ToolError: the file is missing or not text, ``old`` is empty, absent, or occurs more than once.
    """
    target, text = _read_text(jail, path)
    if not old:
        raise ToolError("old is empty; quote the exact lines to replace")
    count = text.count(old)
    if count == 0 and "\r\n" in text and "\r\n" not in old:
        old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")  # the model writes \n line ends
        count = text.count(old)
    if count == 0:
        raise ToolError(f"the block to replace was not found in {path!r}; read_file it and quote it exactly")
    if count > 1:
        raise ToolError(f"the block occurs {count} times in {path!r}; quote more surrounding lines to pick one")
    start = text.index(old)
    line = text.count("\n", 0, start) + 1
    atomic_write(target, text.replace(old, new, 1).encode("utf-8"))
    removed, added = old.count("\n") + 1, new.count("\n") + 1 if new else 0
    change = {
        "path": jail.relative(target),
        "action": "modified",
        "summary": f"-{removed} +{added} lines at line {line}",
    }
    return {
        "path": path,
        "line": line,
        "removed_lines": removed,
        "added_lines": added,
        "changes": [change],
        "summary": f"replaced 1 block at line {line} of {path}",
    }


@dataclass
class _Hunk:
    old_start: int
    old_lines: list[str] = field(default_factory=list)
    new_lines: list[str] = field(default_factory=list)
    new_ends_without_newline: bool = False
    removed: int = 0
    added: int = 0


@dataclass
class _FilePatch:
    old_path: str
    new_path: str
    hunks: list[_Hunk] = field(default_factory=list)


def _strip_prefix(name: str) -> str:
    name = name.split("\t", 1)[0].strip()
    if name != _DEV_NULL and name[:2] in ("a/", "b/"):
        return name[2:]
    return name


def _parse_hunk(lines: list[str], i: int, header: re.Match[str], patch: _FilePatch) -> int:
    old_count = int(header[2]) if header[2] is not None else 1
    new_count = int(header[4]) if header[4] is not None else 1
    hunk = _Hunk(old_start=int(header[1]))
    tag = " "
    while len(hunk.old_lines) < old_count or len(hunk.new_lines) < new_count:
        if i >= len(lines):
            raise ToolError(f"a hunk for {patch.new_path!r} ends early; the @@ counts do not match its lines")
        line = lines[i]
        i += 1
        if line.startswith("\\"):  # "\ No newline at end of file", about the line before it
            hunk.new_ends_without_newline |= tag in " +"
            continue
        tag, body = (line[:1] or " "), line[1:]
        if tag not in " -+":
            raise ToolError(f"line {i} of the diff starts with {tag!r}; hunk lines start with ' ', '-' or '+'")
        if tag in " -":
            hunk.old_lines.append(body)
        if tag in " +":
            hunk.new_lines.append(body)
        hunk.removed += tag == "-"
        hunk.added += tag == "+"
    if len(hunk.old_lines) != old_count or len(hunk.new_lines) != new_count:
        raise ToolError(f"a hunk for {patch.new_path!r} has more lines than its @@ header counts")
    if i < len(lines) and lines[i].startswith("\\"):
        hunk.new_ends_without_newline |= tag in " +"
        i += 1
    patch.hunks.append(hunk)
    return i


def _parse_diff(diff: str) -> list[_FilePatch]:
    lines = diff.splitlines()
    patches: list[_FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            patches.append(_FilePatch(_strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])))
            i += 2
        elif (header := _HUNK.match(line)) is not None:
            if not patches:
                raise ToolError("the diff has a hunk before any '--- a/file' / '+++ b/file' header")
            i = _parse_hunk(lines, i + 1, header, patches[-1])
        else:
            i += 1  # "diff --git", "index ..." and other preamble lines
    if not patches or not any(p.hunks for p in patches):
        raise ToolError("no unified diff found; pass the output of `diff -u` or `git diff`")
    return patches


def _apply_hunks(name: str, text: str, hunks: list[_Hunk]) -> str:
    """The patched text; every hunk must match exactly at its stated line."""
    ending = "\r\n" if "\r\n" in text else "\n"
    source = text.splitlines(keepends=True)
    result: list[str] = []
    cursor = 0
    for number, hunk in enumerate(hunks, 1):
        # "-0,0" (an empty old side) inserts after line 0; otherwise old_start is 1-based.
        start = hunk.old_start - 1 if hunk.old_lines else hunk.old_start
        actual = [s.rstrip("\r\n") for s in source[start : start + len(hunk.old_lines)]]
        if start < cursor or actual != hunk.old_lines:
            raise ToolError(
                f"hunk {number} for {name!r} does not apply at line {hunk.old_start}: the file there differs "
                "from the diff's context; read_file the lines and rebuild the diff (nothing was changed)"
            )
        result.extend(source[cursor:start])
        result.extend(line + ending for line in hunk.new_lines)
        if hunk.new_ends_without_newline and result:
            result[-1] = result[-1][: -len(ending)]
        cursor = start + len(hunk.old_lines)
    result.extend(source[cursor:])
    return "".join(result)


def _plan(jail: Jail, patch: _FilePatch) -> tuple[str, Path, str | None]:
    """(name, target, new text or None to delete) for one file, checked but not written."""
    creating, deleting = patch.old_path == _DEV_NULL, patch.new_path == _DEV_NULL
    name = patch.old_path if deleting else patch.new_path
    target = jail.resolve(name)
    if creating:
        if target.exists():
            raise ToolError(f"the diff creates {name!r}, which already exists (nothing was changed)")
        text = ""
    else:
        if patch.old_path != patch.new_path and not deleting:
            raise ToolError(f"the diff renames {patch.old_path!r}; renames are not supported (nothing was changed)")
        target, text = _read_text(jail, name)
    patched = _apply_hunks(name, text, patch.hunks)
    if deleting and patched:
        raise ToolError(f"the diff deletes {name!r} but does not remove all of its lines (nothing was changed)")
    return name, target, None if deleting else patched


def _commit(plans: list[tuple[str, Path, str | None]]) -> None:
    """Write every planned file as one all-or-nothing step.

    Every new content is first staged in a temporary file beside its target (where a full disk or
    a permission problem shows up); only then are the files swapped in by renames. If a rename or
    a deletion still fails, the files already swapped are restored from their old bytes.

    Raises:
        ToolError: a file could not be written; no file of the patch was changed.
    """
    originals = {target: target.read_bytes() if target.exists() else None for _name, target, _text in plans}
    staged: list[tuple[Path, str]] = []
    done: list[Path] = []
    try:
        for _name, target, text in plans:
            if text is not None:
                staged.append((target, _fs.stage_file(target, text.encode("utf-8"))))
        for target, tmp in staged:
            os.replace(tmp, target)
            done.append(target)
        for _name, target, text in plans:
            if text is None:
                target.unlink()
                done.append(target)
    except OSError as e:
        for target in reversed(done):
            old = originals[target]
            if old is None:
                target.unlink(missing_ok=True)
            else:
                atomic_write(target, old)
        raise ToolError(f"the patch could not be written ({e}); no file was changed") from e
    finally:
        for _target, tmp in staged:
            Path(tmp).unlink(missing_ok=True)


def _change(patch: _FilePatch) -> dict[str, str]:
    """What one file's section of a diff did, for the task's list of changes."""
    removed = sum(h.removed for h in patch.hunks)
    added = sum(h.added for h in patch.hunks)
    if patch.old_path == _DEV_NULL:
        return {"path": patch.new_path, "action": "created", "summary": f"+{added} lines"}
    if patch.new_path == _DEV_NULL:
        return {"path": patch.old_path, "action": "deleted", "summary": f"-{removed} lines"}
    return {
        "path": patch.new_path,
        "action": "modified",
        "summary": f"-{removed} +{added} lines in {len(patch.hunks)} hunks",
    }


def apply_patch(jail: Jail, diff: str) -> dict[str, Any]:
    """Apply a unified diff to the workspace: every hunk applies exactly, or no file is touched.

    Raises:
        ToolError: the diff is malformed, names a path outside the workspace, or a hunk does not apply.
    """
    if len(diff.encode()) > MAX_EDIT_BYTES:
        raise ToolError(f"the diff is over {MAX_EDIT_BYTES} bytes; split it into smaller patches")
    patches = _parse_diff(diff)
    names = [p.old_path if p.new_path == _DEV_NULL else p.new_path for p in patches]
    if len(set(names)) != len(names):
        raise ToolError("the diff patches one file in two sections; merge them into one (nothing was changed)")
    plans = [_plan(jail, p) for p in patches]  # every check runs before the first write
    _commit(plans)
    hunks = sum(len(p.hunks) for p in patches)
    return {
        "files": [name for name, _t, _x in plans],
        "hunks": hunks,
        "changes": [_change(patch) for patch in patches],
        "summary": f"applied {hunks} hunks to {len(plans)} files: {', '.join(names)}",
    }


TOOLS = [
    ToolDef(
        "python_syntax",
        python_syntax,
        "Compile Python files without running them; report each syntax error with its line and column.",
        file_args={"path": (".py", "/")},
    ),
    ToolDef(
        "replace_block",
        replace_block,
        "Replace one exact block of text in a file with new text; refused if the block is missing or ambiguous.",
        writes=True,
        file_args={"path": ()},
    ),
    ToolDef(
        "apply_patch",
        apply_patch,
        "Apply a unified diff (git diff, diff -u) to the workspace; refused, touching nothing, unless every hunk fits.",
        writes=True,
    ),
]
