"""Infra tools for YAML: GitHub Actions workflows audited by zizmor, and any YAML linted by yamllint.

zizmor (a static analyser for GitHub Actions, shipped as a binary inside its wheel) finds
dangerous triggers such as ``pull_request_target``, template injection of attacker-controlled
``${{ github.event... }}`` values into ``run:`` scripts, actions not pinned to a commit, and
credentials persisted in checkouts. It runs with ``--offline``: audits that need the GitHub API
are skipped, so nothing is downloaded. A workspace's own zizmor/yamllint configuration is
honoured, as hadolint's is: which rules apply is a decision the project records there.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import Severity, dump_findings, files_under, run_tool, split_text_files
from mcphive.types import Finding

__all__ = ["TOOLS", "workflow_audit", "yaml_lint"]


_YAML = (".yml", ".yaml")
_MAX_FILES = 500
_ZIZMOR_SEVERITY: dict[str, Severity] = {
    "Informational": "info",
    "Unknown": "info",
    "Low": "low",
    "Medium": "medium",
    "High": "high",
}
# yamllint's parsable format: ``file:line:column: [level] message (rule)``.
_YAMLLINT_LINE = re.compile(
    r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \[(?P<level>\w+)\] (?P<message>.*?)(?: \((?P<rule>[\w-]+)\))?$"
)


def _skipped(skipped: list[dict[str, str]]) -> str:
    """The summary's note on files left out (binary or not UTF-8), or nothing."""
    return (
        f"; skipped {len(skipped)} unreadable file(s): {', '.join(s['file'] for s in skipped[:3])}" if skipped else ""
    )


def _is_workflow(rel: str) -> bool:
    return "/.github/workflows/" in f"/{rel}" or rel.rsplit("/", 1)[-1] in ("action.yml", "action.yaml")


def _primary_location(item: dict[str, Any]) -> tuple[str, int | None, str]:
    """The file, 1-based line and annotation of a zizmor finding's primary location."""
    for location in item.get("locations", []):
        symbolic = location.get("symbolic", {})
        if symbolic.get("kind") != "Primary":
            continue
        key = symbolic.get("key", {}).get("Local", {})
        row = location.get("concrete", {}).get("location", {}).get("start_point", {}).get("row")
        # zizmor counts rows from zero.
        return (
            str(key.get("verbatim_path", "")),
            (row + 1 if isinstance(row, int) else None),
            symbolic.get("annotation", ""),
        )
    return "", None, ""


def _zizmor_finding(jail: Jail, item: dict[str, Any]) -> Finding | None:
    file, line, annotation = _primary_location(item)
    if not file or not (jail.root / file).is_file():
        return None
    ident = str(item.get("ident", "zizmor"))
    severity = _ZIZMOR_SEVERITY.get(str(item.get("determinations", {}).get("severity", "")), "medium")
    return Finding(
        file=jail.relative(jail.resolve(file)),
        line=line,
        rule=ident,
        severity=severity,
        message=f"{item.get('desc', ident)}: {annotation}" if annotation else str(item.get("desc", ident)),
        fix=item.get("url"),
        tool="zizmor",
    )


def workflow_audit(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Audit GitHub Actions workflows with zizmor (offline): dangerous triggers, injection, unpinned actions."""
    # A file named explicitly is audited wherever it lies; a folder is searched for workflow locations.
    explicit = jail.resolve(path).is_file()
    found = [f for f in files_under(jail, path, _YAML) if explicit or _is_workflow(f)]
    workflows, skipped = split_text_files(jail, found[:_MAX_FILES])
    if not workflows:
        return {"findings": [], "files": [], "skipped": skipped,
                "summary": f"no GitHub Actions workflow found under {path!r}{_skipped(skipped)}"}  # fmt: skip
    argv = [
        "zizmor",
        "--offline",
        "--format",
        "json",
        "--no-exit-codes",
        "--no-progress",
        "--",
        *workflows,
    ]
    completed = run_tool(argv, cwd=jail.root, timeout=120)
    try:
        items = json.loads(completed.stdout or "[]")
    except json.JSONDecodeError as e:
        raise ToolError(f"zizmor printed output that is not JSON; check the zizmor version ({e})") from e
    if completed.returncode != 0:
        raise ToolError(f"zizmor failed (exit {completed.returncode}): {completed.stderr.strip()[-500:]}")
    findings = [f for f in (_zizmor_finding(jail, item) for item in items) if f is not None]
    return {
        "findings": dump_findings(findings),
        "files": workflows,
        "skipped": skipped,
        "summary": f"zizmor: {len(findings)} findings in {len(workflows)} workflow file(s){_skipped(skipped)}",
    }


def _yamllint_finding(jail: Jail, line: str) -> Finding | None:
    match = _YAMLLINT_LINE.match(line.strip())
    if match is None:
        return None
    rule = match.group("rule") or "syntax"
    return Finding(
        file=jail.relative(jail.resolve(match.group("file"))),
        line=int(match.group("line")),
        rule=rule,
        severity="high" if rule == "syntax" else ("medium" if match.group("level") == "error" else "low"),
        message=match.group("message"),
        fix=f"see https://yamllint.readthedocs.io/en/stable/rules.html#module-yamllint.rules.{rule.replace('-', '_')}"
        if rule != "syntax"
        else None,
        tool="yamllint",
    )


def yaml_lint(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Lint YAML files with yamllint: syntax errors, duplicate keys, truthy values, indentation."""
    files, skipped = split_text_files(jail, files_under(jail, path, _YAML)[:_MAX_FILES])
    if not files:
        return {"findings": [], "files": [], "skipped": skipped,
                "summary": f"no YAML file found under {path!r}{_skipped(skipped)}"}  # fmt: skip
    completed = run_tool(["yamllint", "-f", "parsable", "--", *files], cwd=jail.root)
    # Exit 1 means "problems found"; anything else with no parsable lines is a failed run.
    findings = [f for f in (_yamllint_finding(jail, line) for line in completed.stdout.splitlines()) if f is not None]
    if completed.returncode not in (0, 1) or (completed.returncode == 1 and not findings):
        raise ToolError(f"yamllint failed (exit {completed.returncode}): {completed.stderr.strip()[-500:]}")
    return {
        "findings": dump_findings(findings),
        "files": files,
        "skipped": skipped,
        "summary": f"yamllint: {len(findings)} problems in {len(files)} YAML file(s){_skipped(skipped)}",
    }


TOOLS = [
    ToolDef(
        "workflow_audit",
        workflow_audit,
        "Audit GitHub Actions workflows with zizmor: pull_request_target, template injection, unpinned actions.",
        file_args={"path": (".yml", ".yaml", "/")},
    ),
    ToolDef(
        "yaml_lint",
        yaml_lint,
        "Lint YAML files with yamllint: syntax errors, duplicate keys, truthy values, indentation.",
        file_args={"path": (".yml", ".yaml", "/")},
    ),
]
