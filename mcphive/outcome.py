"""An agent's typed outcome, derived from its steps: findings, changes and a deterministic summary.

Every workspace tool returns structured output with a common shape — ``"findings"`` (dicts of
:class:`~mcphive.types.Finding`), ``"changes"`` for the tools that write files (dicts of
:class:`~mcphive.types.Change`) and a one-line ``"summary"`` — so a task's outcome is a pure
function of its tool calls. The agent loop computes it when a run ends; the episodic memory
recomputes it from the stored calls when it rebuilds a result, so nothing is stored twice.

Findings are de-duplicated (the same file, line, rule and message reported twice — a tool run
again on an overlapping path — counts once) and ranked most severe first, then by file and line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from mcphive.types import Change, Finding, Step, TaskResult

__all__ = ["SEVERITY_RANK", "changes_of", "fill_outcome", "findings_of", "merge_findings", "summary_of"]

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
"""Severity -> rank; lower is more severe."""

_SUMMARY_FINDINGS = 5


def _key(finding: Finding) -> tuple[str, int, str, str]:
    return finding.file, finding.line or 0, finding.rule, finding.message


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` without exact repeats (same file, line, rule and message), most severe first."""
    unique: dict[tuple[str, int, str, str], Finding] = {}
    for finding in findings:
        unique.setdefault(_key(finding), finding)
    return sorted(unique.values(), key=lambda f: (SEVERITY_RANK[f.severity], f.file, f.line or 0, f.rule))


def _structured_items(steps: Iterable[Step], key: str) -> Iterable[tuple[str, dict[str, Any]]]:
    for step in steps:
        for call in step.tool_calls:
            if call.is_error or not call.structured:
                continue
            for item in call.structured.get(key) or []:
                if isinstance(item, dict):
                    yield call.tool, item


def findings_of(steps: Iterable[Step]) -> list[Finding]:
    """Every finding the tool calls of ``steps`` returned, de-duplicated and most severe first.

    An item that is not a valid finding (a tool outside mcphive with another shape) is skipped.
    """
    found: list[Finding] = []
    for tool, item in _structured_items(steps, "findings"):
        try:
            finding = Finding.model_validate(item)
        except ValidationError:
            continue
        found.append(finding if finding.tool else finding.model_copy(update={"tool": tool}))
    return merge_findings(found)


def changes_of(steps: Iterable[Step]) -> list[Change]:
    """The file changes the writing tools of ``steps`` reported, in the order they were made."""
    changes: list[Change] = []
    for tool, item in _structured_items(steps, "changes"):
        try:
            changes.append(Change.model_validate({"tool": tool, **item}))
        except ValidationError:
            continue
    return changes


def summary_of(findings: list[Finding], changes: list[Change], steps: Iterable[Step]) -> str:
    """A short deterministic account: each tool's own summary, the finding counts by severity, the most
    severe findings and the files changed."""
    told = [(call.tool, (call.structured or {}).get("summary")) for step in steps for call in step.tool_calls]
    lines = [f"{tool}: {said}" for tool, said in told if said]
    if findings:
        counts = Counter[str](f.severity for f in findings)
        by_severity = ", ".join(f"{counts[s]} {s}" for s in SEVERITY_RANK if counts[s])
        lines.append(f"{len(findings)} findings ({by_severity}); most severe:")
        lines.extend(
            f"- [{f.severity}] {f.file}{f':{f.line}' if f.line else ''} {f.rule}: {f.message}"[:200]
            for f in findings[:_SUMMARY_FINDINGS]
        )
    else:
        lines.append("no findings")
    if changes:
        lines.append(f"{len(changes)} file changes: " + "; ".join(f"{c.action} {c.path}" for c in changes))
    return "\n".join(lines)


def fill_outcome(result: TaskResult) -> TaskResult:
    """Set ``result``'s findings, changes and summary from its steps (subtasks' outcomes merged in); returns it."""
    findings = findings_of(result.steps)
    changes = changes_of(result.steps)
    summary = summary_of(findings, changes, result.steps) if result.steps else ""
    if result.subtasks:
        findings = merge_findings([*findings, *(f for sub in result.subtasks for f in sub.findings)])
        changes = [*changes, *(c for sub in result.subtasks for c in sub.changes)]
        summary = "\n\n".join(s for s in [summary, *(sub.summary for sub in result.subtasks)] if s)
    result.findings, result.changes, result.summary = findings, changes, summary
    return result
