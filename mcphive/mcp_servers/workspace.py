"""The workspace server: file tools and the six specialists' analysis toolsets over one workspace root.

Every path goes through the :class:`~mcphive.mcp_servers.jail.Jail`; every toolset function runs
in a worker thread so a slow linter never blocks the event loop. Each tool's ``_meta`` carries
``mcphive/file_args`` — which arguments name workspace files and of what kind — so that the agent
loop can narrow them to enums of real files for a small model.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcphive import __version__, _fs
from mcphive.errors import ToolError
from mcphive.mcp_servers._errors import tool_errors
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef, all_tools

__all__ = ["FILE_ARGS_META", "WRITES_META", "build_workspace_server", "file_tools"]

FILE_ARGS_META = "mcphive/file_args"
WRITES_META = "mcphive/writes"
MAX_READ_BYTES = 200_000
MAX_WRITE_BYTES = 1_000_000


def list_files(jail: Jail, pattern: str = "*", limit: int = 500) -> dict[str, Any]:
    """List workspace files whose relative path matches a glob pattern."""
    files = [f for f in jail.files() if fnmatch.fnmatch(f, pattern) or fnmatch.fnmatch(Path(f).name, pattern)]
    return {"files": files[:limit], "total": len(files), "summary": f"{len(files)} files match {pattern!r}"}


def _head(target: Path) -> tuple[bytes, bool]:
    """The first :data:`MAX_READ_BYTES` of a file (never more is read), and whether the file is longer."""
    with target.open("rb") as f:
        raw = f.read(MAX_READ_BYTES + 1)
    return raw[:MAX_READ_BYTES], len(raw) > MAX_READ_BYTES


def read_file(jail: Jail, path: str, start_line: int = 1, end_line: int = 200) -> dict[str, Any]:
    """Read lines start_line..end_line (1-based, inclusive) of a text file."""
    target = jail.resolve(path)
    if not target.is_file():
        raise ToolError(f"{path!r} is not a file in the workspace; call list_files to see what exists")
    raw, truncated = _head(target)
    if b"\0" in raw:
        raise ToolError(f"{path!r} is a binary file; only text files can be read")
    lines = raw.decode("utf-8", errors="replace").splitlines()
    start, end = max(1, start_line), max(start_line, end_line)
    chunk = lines[start - 1 : end]
    last = start + len(chunk) - 1
    return {
        "path": path,
        "start_line": start,
        "end_line": last,
        "total_lines": len(lines),
        "truncated": truncated,
        "text": "\n".join(chunk),
        "summary": f"{path}: lines {start}-{last} of {len(lines)}"
        + (f" in its first {MAX_READ_BYTES} bytes (the file is longer; only those are read)" if truncated else ""),
    }


def search_text(jail: Jail, pattern: str, max_results: int = 50) -> dict[str, Any]:
    """Search text files for a regular expression; returns file, line and the matching line."""
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ToolError(f"pattern {pattern!r} is not a valid regular expression: {e}") from e
    matches: list[dict[str, Any]] = []
    for rel in jail.files():
        raw, _ = _head(jail.resolve(rel))
        if b"\0" in raw:
            continue
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
            if regex.search(line):
                matches.append({"file": rel, "line": number, "text": line.strip()[:300]})
                if len(matches) >= max_results:
                    return {"matches": matches, "truncated": True, "summary": f"first {max_results} matches"}
    return {"matches": matches, "truncated": False, "summary": f"{len(matches)} matches"}


def write_file(jail: Jail, path: str, content: str) -> dict[str, Any]:
    """Write a text file atomically (the old content stays intact if anything fails)."""
    data = content.encode("utf-8")
    if len(data) > MAX_WRITE_BYTES:
        raise ToolError(f"content is over {MAX_WRITE_BYTES} bytes; write a smaller file")
    target = jail.resolve(path)
    action = "modified" if target.exists() else "created"
    _fs.atomic_write(target, data)
    size = len(data)
    change = {"path": jail.relative(target), "action": action, "summary": f"{size} bytes"}
    return {"path": path, "bytes": size, "changes": [change], "summary": f"wrote {path}"}


def file_tools() -> list[ToolDef]:
    """The generic file tools every agent may be given."""
    return [
        ToolDef("list_files", list_files, "List workspace files matching a glob pattern."),
        ToolDef("read_file", read_file, "Read a range of lines of a text file.", file_args={"path": ()}),
        ToolDef("search_text", search_text, "Search the workspace's text files for a regular expression."),
        ToolDef("write_file", write_file, "Create or overwrite a text file in the workspace.", writes=True),
    ]


def _bind(tool: ToolDef, jail: Jail) -> Callable[..., Awaitable[dict[str, Any]]]:
    """An async MCP tool function with ``tool.fn``'s signature minus the jail, run in a thread."""
    signature = inspect.signature(tool.fn, eval_str=True)
    params = [p for name, p in signature.parameters.items() if name != "jail"]

    @tool_errors
    async def call(**arguments: Any) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(functools.partial(tool.fn, jail, **arguments))

    call.__name__ = tool.name
    call.__doc__ = tool.description
    call.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": dict[str, Any]}
    return call


def build_workspace_server(root: str | Path) -> MCPServer:
    """An MCP server named ``workspace`` whose tools act on ``root`` and nothing outside it."""
    jail = Jail(root)
    server: MCPServer = MCPServer(
        "workspace", version=__version__, instructions=f"Files and analysis tools for the workspace {jail.root}."
    )
    for tool in [*file_tools(), *all_tools()]:
        annotations = ToolAnnotations(
            read_only_hint=not tool.writes, destructive_hint=tool.writes, idempotent_hint=not tool.writes
        )
        meta = {FILE_ARGS_META: {k: list(v) for k, v in tool.file_args.items()}, WRITES_META: tool.writes}
        server.add_tool(
            _bind(tool, jail),
            name=tool.name,
            title=tool.description.rstrip("."),
            description=tool.description,
            annotations=annotations,
            meta=meta,
            structured_output=True,
        )
    return server
