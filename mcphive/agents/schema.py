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


def _choices(files: list[str], kinds: list[str]) -> list[str]:
    """Files whose name ends with one of ``kinds`` (any file when none is given), plus ``.`` and their folders
    when ``"/"`` is a kind — only then: a tool that reads one file (``read_file``) fails on a folder, and a small
    model offered folders first picks them."""
    suffixes = [k for k in kinds if k != "/"]
    chosen = [f for f in files if not suffixes or any(f.rsplit("/", 1)[-1].endswith(s) for s in suffixes)]
    if "/" in kinds:
        folders = sorted({f.rsplit("/", 1)[0] for f in chosen if "/" in f})
        return [".", *folders, *chosen]
    return chosen


def _covered(choice: str, used: set[str]) -> bool:
    """True when a tool already ran on ``choice`` or on a folder that contains it."""
    return any(u in (".", choice) or choice.startswith(u.rstrip("/") + "/") for u in used)


def _narrow(
    schema: dict[str, Any], file_args: dict[str, list[str]], files: list[str], used: set[str]
) -> dict[str, Any] | None:
    """The narrowed schema, or None when every choice it allows was already made."""
    schema = copy.deepcopy(schema)
    required = set(schema.get("required", []))
    # Optional knobs (line ranges, limits) keep their defaults: the small model's choice is the tool and the file.
    schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k in required or k in file_args}
    for name, prop in schema["properties"].items():
        if name in file_args:
            choices = _choices(files, file_args[name])
            if len(file_args) == 1:
                # A one-path tool already run on a path would only repeat itself: offer the rest.
                choices = [c for c in choices if not _covered(c, used)]
                if not choices:
                    return None
            if choices:
                schema["properties"][name] = {"type": "string", "enum": choices[:MAX_ENUM]}
                continue
        if name in required and "enum" not in prop:
            return None  # a free-form required argument is not a choice a small model can be held to
        if not any(key in prop for key in ("type", "enum", "anyOf", "oneOf", "const")):
            # An untyped value (``Any``) cannot become a grammar; a bounded string is what a small model can write.
            prop.update(type="string")
        if prop.get("type") == "string" and "enum" not in prop:
            prop["maxLength"] = MAX_STRING
    return schema


async def narrowed_tools(
    toolbox: ToolBox,
    *,
    constrain: bool,
    done: Iterable[tuple[str, dict[str, Any]]] = (),
    allow_finish: bool = True,
    focus: Iterable[str] = (),
) -> list[ToolSpec]:
    """The agent's tools as model-facing specs, plus ``finish`` when ``allow_finish``.

    ``done`` holds the calls already made (tool, arguments); a constrained model is never offered
    a one-file tool on a file it already ran on. ``focus`` lists the files the findings so far point
    to: when there are any, a constrained model chooses among those, which is where the work is.
    """
    files = await toolbox.workspace_files() if constrain else []
    focused = [f for f in dict.fromkeys(focus) if f in files]
    files = focused or files
    used: dict[str, set[str]] = {}
    for tool_name, arguments in done:
        used.setdefault(tool_name, set()).update(str(v) for v in arguments.values())
    specs: list[ToolSpec] = []
    for name in toolbox.allowed:
        if constrain and name == "list_files":
            continue  # the enums already carry the listing; a small model would only list again
        tool = toolbox.tool(name)
        schema: dict[str, Any] | None = dict(tool.input_schema)
        if constrain:
            meta = tool.meta or {}
            schema = _narrow(dict(tool.input_schema), dict(meta.get(FILE_ARGS_META, {})), files, used.get(name, set()))
        if schema is not None:
            specs.append(ToolSpec(name=name, description=tool.description or "", parameters=schema))
    if allow_finish or not specs:
        specs.append(
            ToolSpec(
                name=FINISH,
                description="Stop calling tools and write the summary.",
                parameters={"type": "object", "properties": {}},
            )
        )
    return specs
