"""Workspace toolsets: the analysis tools the six specialists run, each wrapping a real tool.

A toolset module exposes ``TOOLS: list[ToolDef]``. A tool is a plain synchronous function
``fn(jail, **arguments) -> dict`` (JSON-serialisable; findings under ``"findings"`` as
:class:`~mcphive.types.Finding` dicts, a one-line ``"summary"``). The workspace MCP server
publishes every tool, runs it in a worker thread, and turns :class:`~mcphive.errors.ToolError`
into an MCP error result.

``file_args`` tells the agent loop how to constrain an argument for a small model: the
argument's JSON schema becomes an enum of the workspace's real files with those suffixes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolDef", "all_tools"]


@dataclass(frozen=True)
class ToolDef:
    """One workspace tool: its function, what it does, and how to constrain its arguments."""

    name: str
    fn: Callable[..., dict[str, Any]]
    description: str
    writes: bool = False
    file_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """argument name -> file suffixes used to build enums: ``()`` = any file (files only); ``"/"`` among them adds
    the workspace root and the folders (``("/",)``: any file or folder)."""


def all_tools() -> list[ToolDef]:
    """Every toolset's tools, in a stable order."""
    from mcphive.mcp_servers.toolsets import (
        apiref,
        code,
        coverage,
        deps,
        docs,
        edits,
        git,
        infra,
        manifests,
        mcp_audit,
        metrics,
        ops,
        probes,
        security,
        test,
        workflows,
    )

    tools: list[ToolDef] = []
    for module in (
        *(code, edits, git, docs, apiref, test, coverage),
        *(infra, workflows, manifests, deps, ops, metrics, probes, security, mcp_audit),
    ):
        tools.extend(module.TOOLS)
    return tools
