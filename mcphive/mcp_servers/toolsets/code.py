"""The code agent's toolset: lint Python with ruff.

ruff runs with ``--isolated`` and a fixed rule selection. The workspace's own ruff settings are
ignored on purpose: a project that silenced a rule (or selected hundreds of style rules) would
otherwise change what the agent sees, and the agent's findings must mean the same thing in every
workspace. The selection is the set that finds bugs rather than style: pyflakes (``F``),
pycodestyle's error classes (``E4``, ``E7``, ``E9``) and flake8-bugbear (``B``).
"""

from __future__ import annotations

import json
from typing import Any

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import Severity, dump_findings, existing_path, relative_or_none, run_tool
from mcphive.types import Finding

__all__ = ["RUFF_SELECT", "TOOLS", "ruff_check"]

RUFF_SELECT = "E4,E7,E9,F,B"
"""The ruff rules every workspace is checked against (see the module docstring for why fixed)."""

# Rules whose violation breaks the program at run time rather than hinting at a bug.
_HIGH = ("E9", "F82", "F63", "F70", "invalid-syntax")
_LOW = ("F401", "F541", "F811", "F841", "E401", "E402")


def _severity(code: str) -> Severity:
    if code.startswith(_HIGH):
        return "high"
    if code.startswith(_LOW):
        return "low"
    return "medium"


def ruff_check(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Lint Python files under ``path`` (a file or folder) with ruff; one finding per violation."""
    existing_path(jail, path)
    argv = ["ruff", "check", "--output-format", "json", "--no-cache", "--isolated", "--exit-zero"]
    completed = run_tool([*argv, "--select", RUFF_SELECT, "--", path], cwd=jail.root)
    if completed.returncode != 0:
        raise ToolError(f"ruff failed (exit {completed.returncode}): {completed.stderr.strip()[:500]}")
    try:
        violations = json.loads(completed.stdout or "[]")
    except json.JSONDecodeError as e:
        raise ToolError(f"ruff printed output that is not JSON; check the ruff version ({e})") from e
    findings: list[Finding] = []
    for item in violations:
        file = relative_or_none(jail, item["filename"], jail.root)
        if file is None:
            continue
        code = item.get("code") or "invalid-syntax"
        fix = item.get("fix") or {}
        findings.append(
            Finding(
                file=file,
                line=(item.get("location") or {}).get("row"),
                rule=code,
                severity=_severity(code),
                message=item.get("message", ""),
                fix=fix.get("message"),
                tool="ruff",
            )
        )
    files = len({f.file for f in findings})
    return {
        "findings": dump_findings(findings),
        "rules": RUFF_SELECT,
        "summary": f"ruff: {len(findings)} violations in {files} files under {path!r}",
    }


TOOLS = [
    ToolDef(
        "ruff_check",
        ruff_check,
        "Lint Python code with ruff (pyflakes, pycodestyle errors, bugbear): rule code, line, message, fix.",
        file_args={"path": (".py", "/")},
    )
]
