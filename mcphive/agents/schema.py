"""Narrow MCP tool schemas into choices a small model cannot get wrong.

For a constrained (small, local) model every argument that names a workspace file becomes an
enum of the real files of the right kind, and every free string gets a ``maxLength``; a strong
model gets the server's schema unchanged. A ``finish`` pseudo-tool is always offered so that
stopping is an explicit choice.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from mcphive.agents.toolbox import ToolBox
from mcphive.inference.base import ToolSpec
from mcphive.mcp_servers.workspace import FILE_ARGS_META

__all__ = ["FINISH", "MAX_ENUM", "narrowed_tools"]

FINISH = "finish"
MAX_ENUM = 40
MAX_STRING = 200


def _matches(path: str, suffixes: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return not suffixes or any(name.endswith(s) or name == s for s in suffixes)


async def _workspace_files(toolbox: ToolBox) -> list[str]:
    if "list_files" not in toolbox.allowed:
        return []
    outcome = await toolbox.call("list_files", {"pattern": "*"})
    return list((outcome.structured or {}).get("files", []))


def _narrow(schema: dict[str, Any], file_args: dict[str, list[str]], files: list[str], used: set[str]) -> dict[str, Any] | None:
    """The narrowed schema, or None when every choice it allows was already made."""
    schema = copy.deepcopy(schema)
    for name, prop in schema.get("properties", {}).items():
        if name in file_args:
            choices = [f for f in files if _matches(f, file_args[name])]
            if name == "path" and not file_args[name]:
                choices.insert(0, ".")
            if len(file_args) == 1:
                # A one-file tool already run on a file would only repeat itself: offer the others.
                choices = [c for c in choices if c not in used]
                if not choices:
                    return None
            if choices:
                schema["properties"][name] = {"type": "string", "enum": choices[:MAX_ENUM]}
                continue
        if prop.get("type") == "string" and "enum" not in prop:
            prop["maxLength"] = MAX_STRING
    return schema


async def narrowed_tools(
    toolbox: ToolBox, *, constrain: bool, done: Iterable[tuple[str, dict[str, Any]]] = (), allow_finish: bool = True
) -> list[ToolSpec]:
    """The agent's tools as model-facing specs, plus ``finish`` when ``allow_finish``.

    ``done`` holds the calls already made (tool, arguments); a constrained model is never offered
    a one-file tool on a file it already ran on.
    """
    files = await _workspace_files(toolbox) if constrain else []
    used: dict[str, set[str]] = {}
    for tool_name, arguments in done:
        used.setdefault(tool_name, set()).update(str(v) for v in arguments.values())
    specs: list[ToolSpec] = []
    for name in toolbox.allowed:
        tool = toolbox.tool(name)
        schema: dict[str, Any] | None = dict(tool.input_schema)
        if constrain:
            meta = tool.meta or {}
            schema = _narrow(dict(tool.input_schema), dict(meta.get(FILE_ARGS_META, {})), files, used.get(name, set()))
        if schema is not None:
            specs.append(ToolSpec(name=name, description=tool.description or "", parameters=schema))
    if allow_finish or not specs:
        specs.append(ToolSpec(name=FINISH, description="Stop calling tools and write the summary.",
                              parameters={"type": "object", "properties": {}}))
    return specs
