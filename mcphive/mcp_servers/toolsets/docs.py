"""The docs agent's toolset: docstring coverage of public Python names, and broken Markdown links.

Both are pure Python (``ast`` and a small Markdown link scanner), so they run anywhere.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import dump_findings, files_under
from mcphive.types import Finding

__all__ = ["TOOLS", "docstring_coverage", "markdown_links"]

MAX_FILE_BYTES = 2_000_000
"""Larger files are generated or vendored: not worth documenting, and slow to parse."""

_TEST_DIRS = frozenset({"tests", "test", "testing"})
_DefNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _is_test_file(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    name = parts[-1]
    return (
        bool(_TEST_DIRS.intersection(parts[:-1]))
        or name.startswith("test_")
        or name.endswith("_test.py")
        or (name == "conftest.py")
    )


def _exempt(node: _DefNode) -> bool:
    """Private names, typing overloads and property setters need no docstring of their own."""
    if node.name.startswith("_"):
        return True
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("overload", "setter", "deleter"):
            return True
    return False


def _public_definitions(tree: ast.Module) -> list[tuple[str, str, _DefNode]]:
    """(kind, qualified name, node) of module-level functions and classes and their methods."""
    found: list[tuple[str, str, _DefNode]] = []
    for node in tree.body:
        if not isinstance(node, _DefNode) or _exempt(node):
            continue
        if isinstance(node, ast.ClassDef):
            found.append(("class", node.name, node))
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and not _exempt(member):
                    found.append(("method", f"{node.name}.{member.name}", member))
        else:
            found.append(("function", node.name, node))
    return found


def _parse(jail: Jail, rel: str) -> ast.Module | None:
    path = jail.resolve(rel)
    if path.stat().st_size > MAX_FILE_BYTES:
        return None
    try:
        return ast.parse(path.read_bytes(), filename=rel)
    except (SyntaxError, ValueError):
        return None


def docstring_coverage(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Public functions, classes and methods without a docstring (test files skipped), and the coverage."""
    findings: list[Finding] = []
    total = 0
    unparsed: list[str] = []
    for rel in files_under(jail, path, (".py",)):
        if _is_test_file(rel):
            continue
        tree = _parse(jail, rel)
        if tree is None:
            unparsed.append(rel)
            continue
        for kind, name, node in _public_definitions(tree):
            total += 1
            if ast.get_docstring(node) is None:
                findings.append(
                    Finding(
                        file=rel,
                        line=node.lineno,
                        rule="missing-docstring",
                        severity="low",
                        message=f"public {kind} `{name}` has no docstring",
                        fix="add a docstring: what it does, its arguments, what it returns or raises",
                        tool="docstring_coverage",
                    )
                )
    documented = total - len(findings)
    coverage = round(100.0 * documented / total, 1) if total else 100.0
    return {
        "findings": dump_findings(findings),
        "coverage_percent": coverage,
        "public_names": total,
        "documented": documented,
        "unparsed_files": unparsed,
        "summary": f"docstring coverage {coverage}% ({documented}/{total} public names); {len(findings)} missing",
    }


_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_INLINE_LINK = re.compile(r"\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _link_targets(text: str) -> list[tuple[int, str]]:
    """(line, target) of every inline link, image and reference definition outside code."""
    targets: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        line = _CODE_SPAN.sub("", line)
        found = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        reference = _REFERENCE_DEF.match(line)
        if reference:
            found.append(reference.group(1))
        targets.extend((number, target.strip("<>")) for target in found)
    return targets


def _local_target(target: str) -> str | None:
    """The path part of a link to a local file, or None for URLs, mail links and same-page anchors."""
    if not target or target.startswith(("#", "//")) or _SCHEME.match(target):
        return None
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    return path or None


def _broken_reason(jail: Jail, md_rel: str, target: str) -> str | None:
    base = PurePosixPath(".") if target.startswith("/") else PurePosixPath(md_rel).parent
    candidate = str(base / target.lstrip("/"))
    try:
        resolved: Path = jail.resolve(candidate)
    except ToolError:
        return "points outside the workspace"
    return None if resolved.exists() else "points to a file that does not exist"


def markdown_links(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Relative links and images in Markdown files that point to missing files (URLs are not fetched)."""
    findings: list[Finding] = []
    checked = 0
    for rel in files_under(jail, path, (".md", ".markdown")):
        text = jail.resolve(rel).read_text(encoding="utf-8", errors="replace")
        for line, raw in _link_targets(text):
            target = _local_target(raw)
            if target is None:
                continue
            checked += 1
            reason = _broken_reason(jail, rel, target)
            if reason:
                findings.append(
                    Finding(
                        file=rel,
                        line=line,
                        rule="broken-link",
                        severity="medium",
                        message=f"link to {target!r} {reason}",
                        fix=f"create {target!r} or point the link at an existing file",
                        tool="markdown_links",
                    )
                )
    return {
        "findings": dump_findings(findings),
        "links_checked": checked,
        "summary": f"{len(findings)} broken of {checked} local Markdown links under {path!r}",
    }


TOOLS = [
    ToolDef(
        "docstring_coverage",
        docstring_coverage,
        "Find public functions, classes and methods without docstrings; report the coverage percentage.",
        file_args={"path": (".py", "/")},
    ),
    ToolDef(
        "markdown_links",
        markdown_links,
        "Find relative links and images in Markdown files that point to missing files.",
        file_args={"path": (".md", "/")},
    ),
]
