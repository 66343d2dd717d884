"""The docs agent's API reference: Markdown built from signatures and docstrings with ``ast``.

Nothing is imported or run, so a workspace whose modules have side effects (or missing
dependencies) still gets its reference. A module's ``__all__`` (a literal list or tuple) decides
what is public; without one, every name not starting with ``_`` is. Private modules (``_x.py``)
and test files are skipped. The text is returned, not written: the agent decides where it goes.
"""

from __future__ import annotations

import ast
import copy
from pathlib import PurePosixPath
from typing import Any

from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import files_under

__all__ = ["MAX_REFERENCE_CHARS", "TOOLS", "api_reference"]

MAX_REFERENCE_CHARS = 200_000
"""A longer reference is cut here (and marked truncated); run the tool on a sub-package instead."""

_MAX_FILE_BYTES = 2_000_000
_TEST_DIRS = frozenset({"tests", "test", "testing"})
_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _skipped(rel: str) -> bool:
    """Test files and private modules have no place in an API reference."""
    parts = PurePosixPath(rel).parts
    name = parts[-1]
    if _TEST_DIRS.intersection(parts[:-1]) or name.startswith("test_") or name == "conftest.py":
        return True
    return any(part.startswith("_") and part != "__init__.py" for part in parts)


def _module_name(rel: str) -> str:
    path = PurePosixPath(rel).with_suffix("")
    parts = path.parts[:-1] if path.name == "__init__" else path.parts
    return ".".join(parts) or path.name


def _declared_all(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return {v for v in value if isinstance(v, str)} if isinstance(value, list | tuple) else None
    return None


def _first_line(node: _Def | ast.Module) -> str:
    doc = ast.get_docstring(node)
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> str:
    args = copy.copy(node.args)
    if method and (args.posonlyargs or args.args):
        # Leave out self/cls: readers call the method on an instance or the class.
        if args.posonlyargs:
            args.posonlyargs = args.posonlyargs[1:]
        else:
            args.args = args.args[1:]
        positional = len(args.posonlyargs) + len(args.args)
        args.defaults = (
            args.defaults[len(args.defaults) - positional :] if len(args.defaults) > positional else args.defaults
        )
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    return f"{prefix}{node.name}({ast.unparse(args)}){returns}"


def _entry(title: str, summary: str) -> str:
    return f"- `{title}`" + (f": {summary}" if summary else " *(undocumented)*")


def _class_lines(node: ast.ClassDef, counts: dict[str, int]) -> list[str]:
    bases = ", ".join(ast.unparse(b) for b in node.bases)
    lines = [f"### class `{node.name}{f'({bases})' if bases else ''}`", "", _first_line(node) or "*(undocumented)*"]
    methods = [
        m
        for m in node.body
        if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
        and (not m.name.startswith("_") or m.name == "__init__")
    ]
    if methods:
        lines.append("")
    for method in methods:
        counts["methods"] += 1
        counts["undocumented"] += not _first_line(method)
        lines.append(_entry(_signature(method, method=True), _first_line(method)))
    return [*lines, ""]


def _module_section(rel: str, tree: ast.Module, counts: dict[str, int]) -> list[str]:
    public = _declared_all(tree)
    lines = [f"## `{_module_name(rel)}`", "", f"*{rel}*" + (f" — {_first_line(tree)}" if _first_line(tree) else ""), ""]
    for node in tree.body:
        if not isinstance(node, _Def) or node.name.startswith("_") or (public is not None and node.name not in public):
            continue
        counts["undocumented"] += not _first_line(node)
        if isinstance(node, ast.ClassDef):
            counts["classes"] += 1
            lines.extend(_class_lines(node, counts))
        else:
            counts["functions"] += 1
            lines.extend([_entry(_signature(node, method=False), _first_line(node)), ""])
    return lines


def api_reference(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Markdown API reference of the public modules, classes, functions and methods under ``path``."""
    counts = {"modules": 0, "classes": 0, "functions": 0, "methods": 0, "undocumented": 0}
    sections: list[str] = []
    unparsed: list[str] = []
    for rel in files_under(jail, path, (".py",)):
        if _skipped(rel):
            continue
        file = jail.resolve(rel)
        try:
            if file.stat().st_size > _MAX_FILE_BYTES:
                raise ValueError("too large")
            tree = ast.parse(file.read_bytes(), filename=rel)
        except (SyntaxError, ValueError):
            unparsed.append(rel)
            continue
        counts["modules"] += 1
        sections.extend(_module_section(rel, tree, counts))
    text = "\n".join(["# API reference", "", *sections]).rstrip() + "\n"
    truncated = len(text) > MAX_REFERENCE_CHARS
    documented = counts["classes"] + counts["functions"] + counts["methods"] - counts["undocumented"]
    return {
        "findings": [],
        "markdown": text[:MAX_REFERENCE_CHARS],
        "truncated": truncated,
        "counts": counts,
        "unparsed_files": unparsed,
        "summary": (
            f"API reference of {counts['modules']} modules: {counts['classes']} classes, {counts['functions']} "
            f"functions, {counts['methods']} methods ({documented} documented)"
        ),
    }


TOOLS = [
    ToolDef(
        "api_reference",
        api_reference,
        "Build a Markdown API reference (signatures and first docstring lines) of the public Python names.",
        file_args={"path": (".py", "/")},
    )
]
